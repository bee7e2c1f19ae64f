//! Brevo contact attributes: their definitions (`GET /contacts/attributes`,
//! cached), record values to Brevo's JSON and back by attribute type, and
//! creating an attribute a mapping names that the account lacks.
//!
//! Brevo silently drops a value of the wrong type or an unknown category
//! option; crmsync checks every value against its attribute first, so such a
//! value is that record's error instead of a silent loss. Types:
//! - `text` ⇄ [`Value::Text`] (dates as `YYYY-MM-DD`, lists joined);
//! - `float` ⇄ [`Value::Number`] (a [`Value::Decimal`] goes as a number);
//! - `boolean` ⇄ [`Value::Boolean`];
//! - `date` ⇄ [`Value::Date`], written and read as `YYYY-MM-DD` only (the
//!   seed's rule: another form read back stays text, and the mapping refuses it);
//! - `category` ⇄ the option's label as [`Value::Text`] (written as its
//!   enumeration value; a label outside the enumeration is refused);
//! - `multiple-choice` ⇄ [`Value::TextList`] (every option must exist);
//! - the phone identifiers `SMS`, `WHATSAPP`, `LANDLINE_NUMBER` read as
//!   `+<digits>`, the form they are written in.

use chrono::{NaiveDate, SecondsFormat};
use crmsync_core::VendorError;
use crmsync_sdk::types::Value;
use serde_json::{Value as Json, json};

/// The phone-number identifier attributes.
pub const PHONES: [&str; 3] = ["SMS", "WHATSAPP", "LANDLINE_NUMBER"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Float,
    Boolean,
    Date,
    Category,
    MultipleChoice,
    /// `id` (transactional) and anything newer: read as text, never written.
    Other,
}

/// One attribute of the account.
#[derive(Debug, Clone)]
pub struct Attribute {
    pub name: String,
    pub kind: Kind,
    /// `calculated` / `global` attributes are formulas: read-only.
    pub computed: bool,
    /// `category` options: `(value, label)`.
    pub options: Vec<(i64, String)>,
    /// `multiple-choice` options.
    pub choices: Vec<String>,
}

impl Attribute {
    /// One item of `GET /contacts/attributes`.
    pub fn parse(a: &Json) -> Option<Attribute> {
        let name = a.get("name")?.as_str()?.to_ascii_uppercase();
        let category = a.get("category").and_then(Json::as_str).unwrap_or("normal");
        let options: Vec<(i64, String)> = a
            .get("enumeration")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(|e| Some((e.get("value")?.as_i64()?, e.get("label")?.as_str()?.to_string())))
            .collect();
        let kind = match a.get("type").and_then(Json::as_str) {
            // A category attribute is listed as `text` with its enumeration.
            _ if category == "category" || !options.is_empty() => Kind::Category,
            Some("text") | None => Kind::Text,
            Some("float") => Kind::Float,
            Some("boolean") => Kind::Boolean,
            Some("date") => Kind::Date,
            Some("category") => Kind::Category,
            Some("multiple-choice") => Kind::MultipleChoice,
            Some(_) => Kind::Other,
        };
        let choices = a
            .get("multiCategoryOptions")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(|o| o.as_str().map(String::from))
            .collect();
        Some(Attribute {
            name,
            kind,
            computed: matches!(category, "calculated" | "global"),
            options,
            choices,
        })
    }

    /// A record value as this attribute's JSON, or the record's error.
    pub fn write(&self, v: &Value) -> Result<Json, VendorError> {
        if self.computed || self.kind == Kind::Other {
            return Err(refused(&self.name, "is computed by Brevo and cannot be written"));
        }
        if v.is_empty() {
            return Ok(Json::String(String::new()));
        }
        let wrong = |what: &str| refused(&self.name, &format!("takes {what}, not a {} value", v.kind()));
        match self.kind {
            Kind::Text => Ok(Json::String(text(v))),
            Kind::Float => match v {
                Value::Number(n) => Ok(json!(n)),
                Value::Decimal(d) => {
                    d.to_string().parse::<f64>().map(|f| json!(f)).map_err(|_| wrong("a number"))
                }
                Value::Text(t) => t.trim().parse::<f64>().map(|f| json!(f)).map_err(|_| wrong("a number")),
                _ => Err(wrong("a number")),
            },
            Kind::Boolean => match v {
                Value::Boolean(b) => Ok(json!(b)),
                Value::Text(t) => {
                    crmsync_sdk::convert::parse_bool(t).map(|b| json!(b)).map_err(|_| wrong("yes or no"))
                }
                _ => Err(wrong("yes or no")),
            },
            Kind::Date => match v {
                Value::Date(d) => Ok(json!(d.format("%Y-%m-%d").to_string())),
                Value::DateTime(t) => Ok(json!(t.date_naive().format("%Y-%m-%d").to_string())),
                Value::Text(t) => NaiveDate::parse_from_str(t.trim(), "%Y-%m-%d")
                    .map(|d| json!(d.to_string()))
                    .map_err(|_| wrong("a date written YYYY-MM-DD")),
                _ => Err(wrong("a date written YYYY-MM-DD")),
            },
            Kind::Category => {
                let label = text(v);
                self.options
                    .iter()
                    .find(|(n, l)| l.eq_ignore_ascii_case(label.trim()) || label.trim() == n.to_string())
                    .map(|(n, _)| json!(n))
                    .ok_or_else(|| {
                        let known: Vec<&str> = self.options.iter().map(|(_, l)| l.as_str()).collect();
                        refused(
                            &self.name,
                            &format!("has no option {label:?} (options: {})", known.join(", ")),
                        )
                    })
            }
            Kind::MultipleChoice => {
                let picked: Vec<String> = match v {
                    Value::TextList(l) => l.clone(),
                    other => vec![other.to_string()],
                };
                if let Some(bad) = picked.iter().find(|p| !self.choices.iter().any(|c| c == *p)) {
                    return Err(refused(&self.name, &format!("has no option {bad:?}")));
                }
                Ok(json!(picked))
            }
            Kind::Other => Err(refused(&self.name, "cannot be written")),
        }
    }

    /// A stored value as a record value.
    pub fn read(&self, v: &Json) -> Value {
        match (self.kind, v) {
            (_, Json::Null) => Value::Null,
            (_, Json::String(s)) if s.trim().is_empty() => Value::Null,
            (Kind::Date, Json::String(s)) => {
                NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_or_else(|_| Value::text(s), Value::Date)
            }
            (Kind::Category, Json::Number(n)) => n
                .as_i64()
                .and_then(|n| self.options.iter().find(|(v, _)| *v == n))
                .map_or_else(|| Value::text(n.to_string()), |(_, l)| Value::text(l)),
            _ => plain(&self.name, v),
        }
    }

    /// The attribute a mapping needs, typed by the first value written to
    /// it; `None` when the value says nothing of the type (empty) or is a
    /// list (a multiple-choice attribute needs its options set in Brevo).
    pub fn infer(name: &str, v: &Value) -> Option<(&'static str, Attribute)> {
        let (kind, brevo) = match v {
            Value::Text(_) => (Kind::Text, "text"),
            Value::Number(_) | Value::Decimal(_) => (Kind::Float, "float"),
            Value::Boolean(_) => (Kind::Boolean, "boolean"),
            Value::Date(_) => (Kind::Date, "date"),
            Value::DateTime(_) => (Kind::Text, "text"),
            _ => return None,
        };
        let attribute = Attribute {
            name: name.to_string(),
            kind,
            computed: false,
            options: Vec::new(),
            choices: Vec::new(),
        };
        Some((brevo, attribute))
    }
}

/// A value whose attribute is unknown (or plain JSON): typed by its JSON.
pub fn plain(name: &str, v: &Json) -> Value {
    match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => n.as_f64().map_or(Value::Null, Value::Number),
        Json::String(s) if s.trim().is_empty() => Value::Null,
        Json::String(s) if PHONES.contains(&name) => {
            let digits = s.trim().trim_start_matches('+');
            if digits.chars().all(|c| c.is_ascii_digit()) {
                Value::text(format!("+{digits}"))
            } else {
                Value::text(s)
            }
        }
        Json::String(s) => Value::text(s),
        Json::Array(items) => Value::TextList(
            items.iter().map(|i| i.as_str().map_or_else(|| i.to_string(), String::from)).collect(),
        ),
        Json::Object(_) => Value::text(v.to_string()),
    }
}

/// A value as text for a text attribute.
fn text(v: &Value) -> String {
    match v {
        Value::Date(d) => d.format("%Y-%m-%d").to_string(),
        Value::DateTime(t) => t.to_rfc3339_opts(SecondsFormat::Secs, true),
        Value::TextList(l) => l.join(", "),
        other => other.to_string(),
    }
}

fn refused(name: &str, why: &str) -> VendorError {
    VendorError::permanent("invalid_attribute", format!("Brevo attribute {name} {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(json: Json) -> Attribute {
        Attribute::parse(&json).expect("attribute")
    }

    #[test]
    fn every_type_round_trips() {
        let cases = [
            (attr(json!({"name": "A", "type": "text"})), Value::text("x")),
            (attr(json!({"name": "B", "type": "float"})), Value::Number(12.5)),
            (attr(json!({"name": "C", "type": "boolean"})), Value::Boolean(false)),
            (
                attr(json!({"name": "D", "type": "date"})),
                Value::Date(NaiveDate::from_ymd_opt(1990, 9, 25).unwrap()),
            ),
            (
                attr(json!({"name": "E", "category": "category", "type": "text",
                    "enumeration": [{"value": 1, "label": "Gold"}, {"value": 2, "label": "Silver"}]})),
                Value::text("Silver"),
            ),
            (
                attr(json!({"name": "F", "type": "multiple-choice", "multiCategoryOptions": ["a", "b"]})),
                Value::TextList(vec!["a".into(), "b".into()]),
            ),
        ];
        for (a, v) in cases {
            let sent = a.write(&v).expect("writes");
            // Brevo stores a category by label.
            let stored = if a.kind == Kind::Category { json!("Silver") } else { sent.clone() };
            assert_eq!(a.read(&stored), v, "{}", a.name);
            assert_eq!(a.read(&sent), v, "{} (as sent)", a.name);
        }
    }

    #[test]
    fn what_brevo_would_drop_silently_is_refused() {
        let cat = attr(
            json!({"name": "TIER", "category": "category", "enumeration": [{"value": 1, "label": "Gold"}]}),
        );
        assert!(cat.write(&Value::text("Platinum")).unwrap_err().message.contains("Platinum"));
        let date = attr(json!({"name": "DOB", "type": "date"}));
        assert!(date.write(&Value::text("25/09/1990")).is_err());
        // A date not written YYYY-MM-DD stays text, for the mapping to refuse.
        assert_eq!(date.read(&json!("25/09/1990")), Value::text("25/09/1990"));
        let f = attr(json!({"name": "N", "type": "float"}));
        assert!(f.write(&Value::text("lots")).is_err());
        let calc = attr(json!({"name": "SCORE", "category": "calculated", "type": "float"}));
        assert!(calc.write(&Value::Number(1.0)).is_err());
        assert_eq!(plain("SMS", &json!("33612345678")), Value::text("+33612345678"));
    }
}
