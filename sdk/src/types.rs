//! The contract's types as plain Rust: what plugins and the host work with.
//!
//! These mirror `wit/since_v1.0.0/plugin.wit` one to one; the generated
//! bindings stay private and are converted at the boundary. Every type also has
//! a JSON form (used by fixtures, `crmsync plugin test` and the host's state):
//! null, text, number, boolean and text-list are plain JSON; the others are
//! tagged objects `{"$date": "2026-11-23"}`, `{"$datetime": "2026-11-23T10:00:00Z"}`
//! and `{"$decimal": "1234.50"}`.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde::de::{self, Deserializer};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// A typed field value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Text(String),
    Number(f64),
    Boolean(bool),
    Date(NaiveDate),
    DateTime(DateTime<Utc>),
    Decimal(Decimal),
    TextList(Vec<String>),
}

impl Value {
    pub fn text(s: impl Into<String>) -> Self {
        Value::Text(s.into())
    }

    /// The text, if this is a text value.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// True for null, empty or whitespace-only text, and empty lists.
    pub fn is_empty(&self) -> bool {
        match self {
            Value::Null => true,
            Value::Text(s) => s.trim().is_empty(),
            Value::TextList(l) => l.is_empty(),
            _ => false,
        }
    }

    /// The value's kind, as named in the contract.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Text(_) => "text",
            Value::Number(_) => "number",
            Value::Boolean(_) => "boolean",
            Value::Date(_) => "date",
            Value::DateTime(_) => "datetime",
            Value::Decimal(_) => "decimal",
            Value::TextList(_) => "text-list",
        }
    }
}

impl fmt::Display for Value {
    /// The value as plain text, the way a text field would hold it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => Ok(()),
            Value::Text(s) => f.write_str(s),
            Value::Number(n) => write!(f, "{n}"),
            Value::Boolean(b) => write!(f, "{b}"),
            Value::Date(d) => write!(f, "{}", d.format("%Y-%m-%d")),
            Value::DateTime(t) => f.write_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            Value::Decimal(d) => write!(f, "{d}"),
            Value::TextList(l) => f.write_str(&l.join(";")),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Boolean(b)
    }
}
impl From<f64> for Value {
    fn from(n: f64) -> Self {
        Value::Number(n)
    }
}
impl From<Decimal> for Value {
    fn from(d: Decimal) -> Self {
        Value::Decimal(d)
    }
}
impl From<NaiveDate> for Value {
    fn from(d: NaiveDate) -> Self {
        Value::Date(d)
    }
}
impl From<DateTime<Utc>> for Value {
    fn from(t: DateTime<Utc>) -> Self {
        Value::DateTime(t)
    }
}
impl From<Vec<String>> for Value {
    fn from(l: Vec<String>) -> Self {
        Value::TextList(l)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let tagged = |s: S, tag: &str, text: String| {
            let mut map = s.serialize_map(Some(1))?;
            map.serialize_entry(tag, &text)?;
            map.end()
        };
        match self {
            Value::Null => s.serialize_unit(),
            Value::Text(t) => s.serialize_str(t),
            Value::Number(n) => s.serialize_f64(*n),
            Value::Boolean(b) => s.serialize_bool(*b),
            Value::Date(_) | Value::DateTime(_) => {
                let tag = if matches!(self, Value::Date(_)) { "$date" } else { "$datetime" };
                tagged(s, tag, self.to_string())
            }
            Value::Decimal(d) => tagged(s, "$decimal", d.to_string()),
            Value::TextList(l) => l.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let json = serde_json::Value::deserialize(d)?;
        Value::from_json(json).map_err(de::Error::custom)
    }
}

impl Value {
    /// Reads the JSON form described in the module docs.
    pub fn from_json(json: serde_json::Value) -> Result<Value, String> {
        use serde_json::Value as J;
        Ok(match json {
            J::Null => Value::Null,
            J::Bool(b) => Value::Boolean(b),
            J::Number(n) => Value::Number(n.as_f64().ok_or("number out of range")?),
            J::String(s) => Value::Text(s),
            J::Array(items) => Value::TextList(
                items
                    .into_iter()
                    .map(|i| match i {
                        J::String(s) => Ok(s),
                        other => Err(format!("a text-list holds only strings, found {other}")),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            J::Object(map) => {
                let mut entries = map.into_iter();
                let (Some((tag, J::String(text))), None) = (entries.next(), entries.next()) else {
                    return Err(
                        "an object value must be one of {\"$date\": ..}, {\"$datetime\": ..}, {\"$decimal\": ..}"
                            .into(),
                    );
                };
                match tag.as_str() {
                    "$date" => Value::Date(
                        NaiveDate::parse_from_str(&text, "%Y-%m-%d")
                            .map_err(|e| format!("bad $date {text:?}: {e}"))?,
                    ),
                    "$datetime" => Value::DateTime(
                        DateTime::parse_from_rfc3339(&text)
                            .map_err(|e| format!("bad $datetime {text:?}: {e}"))?
                            .with_timezone(&Utc),
                    ),
                    "$decimal" => Value::Decimal(
                        text.parse::<Decimal>().map_err(|e| format!("bad $decimal {text:?}: {e}"))?,
                    ),
                    other => return Err(format!("unknown value tag {other:?}")),
                }
            }
        })
    }
}

/// The systems crmsync connects.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum System {
    Salesforce,
    #[serde(rename = "activecampaign")]
    ActiveCampaign,
    Mailchimp,
    Brevo,
}

impl System {
    pub fn is_marketing(self) -> bool {
        !matches!(self, System::Salesforce)
    }
}

/// A record of one system. Fields are kept sorted by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub system: System,
    #[serde(rename = "object")]
    pub object_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default)]
    pub fields: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_at: Option<DateTime<Utc>>,
}

impl Record {
    pub fn new(system: System, object_type: impl Into<String>) -> Self {
        Record {
            system,
            object_type: object_type.into(),
            id: None,
            fields: BTreeMap::new(),
            modified_at: None,
        }
    }

    /// Builder-style: sets the id.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Builder-style: sets a field.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.fields.insert(name.into(), value.into());
        self
    }

    /// The field's value; `None` when the record has no such field.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields.get(name)
    }

    /// The field's text, if it holds non-empty text.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_text).filter(|s| !s.trim().is_empty())
    }

    pub fn set(&mut self, name: impl Into<String>, value: impl Into<Value>) {
        self.fields.insert(name.into(), value.into());
    }

    /// A short label for errors and logs: `Lead 00Q…` or `contact (new)`.
    pub fn label(&self) -> String {
        match &self.id {
            Some(id) => format!("{} {id}", self.object_type),
            None => format!("{} (new)", self.object_type),
        }
    }
}

/// Which way records flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    ToMarketing,
    ToSalesforce,
}

/// What every call carries; `C` is the plugin's parsed config.
#[derive(Debug, Clone, PartialEq)]
pub struct Context<C = serde_json::Value> {
    pub connection: String,
    pub direction: Direction,
    pub run_id: String,
    /// The object type records are being turned into, when the host knows it.
    pub target: Option<String>,
    pub config: C,
}

/// A config type for plugins that take none: accepts any JSON object.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, schemars::JsonSchema)]
pub struct NoConfig {}

/// A per-record failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordError {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl RecordError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        RecordError { code: code.into(), message: message.into(), field: None }
    }

    /// Builder-style: names the field at fault.
    pub fn on(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{} (field {field}): {}", self.code, self.message),
            None => write!(f, "{}: {}", self.code, self.message),
        }
    }
}

impl std::error::Error for RecordError {}

/// The Salesforce object a marketing-side record is created as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SalesforceObject {
    Lead,
    Contact,
}

impl SalesforceObject {
    pub fn object_type(self) -> &'static str {
        match self {
            SalesforceObject::Lead => "Lead",
            SalesforceObject::Contact => "Contact",
        }
    }
}

/// A selector's verdict on one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Selection {
    Sync,
    Skip(String),
    CreateAs(SalesforceObject),
}

/// Which side of a link a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Salesforce,
    Marketing,
}

/// A linked record changed on both sides since the last sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conflict {
    #[serde(default)]
    pub base: Option<Record>,
    pub salesforce: Record,
    pub marketing: Record,
}

/// A resolver's answer for one conflict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resolution {
    pub merged: BTreeMap<String, Value>,
    pub winners: BTreeMap<String, Side>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_json() {
        let values = vec![
            Value::Null,
            Value::text("Ada"),
            Value::Number(1.5),
            Value::Boolean(true),
            Value::Date(NaiveDate::from_ymd_opt(1990, 9, 25).unwrap()),
            Value::DateTime(DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z").unwrap().into()),
            Value::Decimal("1234.50".parse().unwrap()),
            Value::TextList(vec!["a".into(), "b".into()]),
        ];
        let json = serde_json::to_string(&values).unwrap();
        assert_eq!(
            json,
            r#"[null,"Ada",1.5,true,{"$date":"1990-09-25"},{"$datetime":"2026-11-23T10:00:00Z"},{"$decimal":"1234.50"},["a","b"]]"#
        );
        let back: Vec<Value> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, values);
    }

    #[test]
    fn bad_tagged_values_are_refused_with_the_reason() {
        let err = serde_json::from_str::<Value>(r#"{"$date":"25/09/1990"}"#).unwrap_err();
        assert!(err.to_string().contains("bad $date"), "{err}");
        let err = serde_json::from_str::<Value>(r#"{"$money":"1"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown value tag"), "{err}");
        let err = serde_json::from_str::<Value>(r#"[1,2]"#).unwrap_err();
        assert!(err.to_string().contains("only strings"), "{err}");
    }
}
