//! Field metadata from `describe` and typed value conversion both ways:
//! Salesforce JSON / Bulk CSV ⇄ `crmsync_sdk::Value`. A value that cannot be
//! converted, a field the object lacks or a text over the field's length is a
//! per-record [`VendorError`] — never a silent drop or truncation.

use std::collections::HashMap;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use crmsync_sdk::types::Value;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::Value as Json;

use crate::VendorError;

/// One field as `describe` reports it.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub ftype: String,
    #[serde(default)]
    pub length: u32,
    #[serde(default)]
    pub scale: u32,
    #[serde(default)]
    pub createable: bool,
    #[serde(default)]
    pub updateable: bool,
    #[serde(default)]
    pub external_id: bool,
    /// A formula (or compound) field: computed by Salesforce, read-only.
    #[serde(default)]
    pub calculated: bool,
}

/// An object's fields, by lower-cased API name.
#[derive(Debug, Clone)]
pub struct Describe {
    pub object: String,
    /// API names in describe order (what queries select).
    pub names: Vec<String>,
    fields: HashMap<String, FieldInfo>,
}

#[derive(serde::Deserialize)]
struct DescribeBody {
    name: String,
    fields: Vec<FieldInfo>,
}

impl Describe {
    pub fn from_json(body: &[u8]) -> Result<Describe, serde_json::Error> {
        let d: DescribeBody = serde_json::from_slice(body)?;
        // Compound address/location fields cannot be selected with their parts in every API version.
        let fields: Vec<FieldInfo> = d
            .fields
            .into_iter()
            .filter(|f| !matches!(f.ftype.as_str(), "address" | "location" | "base64"))
            .collect();
        Ok(Describe {
            object: d.name,
            names: fields.iter().map(|f| f.name.clone()).collect(),
            fields: fields.into_iter().map(|f| (f.name.to_ascii_lowercase(), f)).collect(),
        })
    }

    pub fn field(&self, name: &str) -> Option<&FieldInfo> {
        self.fields.get(&name.to_ascii_lowercase())
    }

    pub fn has(&self, name: &str) -> bool {
        self.field(name).is_some()
    }

    /// The writable field `name`, or the per-record error explaining why not.
    pub fn writable(&self, name: &str, create: bool) -> Result<&FieldInfo, VendorError> {
        let f = self.field(name).ok_or_else(|| {
            record_error(
                "INVALID_FIELD",
                format!("No such column '{name}' on sobject of type {}", self.object),
            )
        })?;
        if (create && !f.createable) || (!create && !f.updateable) {
            return Err(record_error(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                format!("Unable to create/update field: {}", f.name),
            ));
        }
        Ok(f)
    }
}

pub fn record_error(code: &str, message: impl Into<String>) -> VendorError {
    VendorError { code: code.into(), message: message.into(), retryable: false }
}

fn cannot(f: &FieldInfo, v: &Value) -> VendorError {
    record_error(
        "INVALID_TYPE_ON_FIELD_IN_RECORD",
        format!("{}: a {} value cannot be written to a {} field", f.name, v.kind(), f.ftype),
    )
}

/// A value to write, typed for field `f`: what goes into JSON and CSV.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    Null,
    Text(String),
    Bool(bool),
    Number(Decimal),
}

impl Out {
    pub fn json(&self) -> Json {
        match self {
            Out::Null => Json::Null,
            Out::Text(s) => Json::String(s.clone()),
            Out::Bool(b) => Json::Bool(*b),
            Out::Number(d) => {
                if d.scale() == 0
                    && let Some(i) = d.to_i64()
                {
                    return Json::from(i);
                }
                d.to_f64().and_then(serde_json::Number::from_f64).map_or(Json::Null, Json::Number)
            }
        }
    }

    /// Bulk API CSV: `#N/A` clears a field (an empty cell would keep it).
    pub fn csv(&self) -> String {
        match self {
            Out::Null => "#N/A".into(),
            Out::Text(s) => s.clone(),
            Out::Bool(b) => b.to_string(),
            Out::Number(d) => d.normalize().to_string(),
        }
    }
}

/// Converts `v` for field `f`.
pub fn to_salesforce(f: &FieldInfo, v: &Value) -> Result<Out, VendorError> {
    if matches!(v, Value::Null) {
        return Ok(Out::Null);
    }
    let out = match f.ftype.as_str() {
        "boolean" => Out::Bool(match v {
            Value::Boolean(b) => *b,
            Value::Number(n) if *n == 0.0 || *n == 1.0 => *n == 1.0,
            Value::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" | "y" | "on" => true,
                "false" | "no" | "0" | "n" | "off" | "" => false,
                _ => return Err(cannot(f, v)),
            },
            _ => return Err(cannot(f, v)),
        }),
        "currency" | "double" | "percent" | "int" | "long" => {
            let d = match v {
                Value::Decimal(d) => *d,
                Value::Number(n) => Decimal::from_f64_retain(*n).ok_or_else(|| cannot(f, v))?,
                Value::Text(s) if s.trim().is_empty() => return Ok(Out::Null),
                Value::Text(s) => parse_decimal_text(s).ok_or_else(|| {
                    record_error(
                        "INVALID_TYPE_ON_FIELD_IN_RECORD",
                        format!("{}: not a number: {s:?}", f.name),
                    )
                })?,
                _ => return Err(cannot(f, v)),
            };
            let scale = if matches!(f.ftype.as_str(), "int" | "long") { 0 } else { f.scale };
            if scale == 0 && matches!(f.ftype.as_str(), "int" | "long") && d.fract() != Decimal::ZERO {
                return Err(record_error(
                    "INVALID_TYPE_ON_FIELD_IN_RECORD",
                    format!("{}: not a whole number", f.name),
                ));
            }
            Out::Number(d.round_dp(scale))
        }
        "date" => Out::Text(match v {
            Value::Date(d) => d.format("%Y-%m-%d").to_string(),
            Value::DateTime(t) => t.date_naive().format("%Y-%m-%d").to_string(),
            Value::Text(s) if s.trim().is_empty() => return Ok(Out::Null),
            Value::Text(s) => parse_date(s).ok_or_else(|| cannot(f, v))?.format("%Y-%m-%d").to_string(),
            _ => return Err(cannot(f, v)),
        }),
        "datetime" => Out::Text(match v {
            Value::DateTime(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
            Value::Date(d) => d
                .and_hms_opt(0, 0, 0)
                .map(|t| t.and_utc())
                .ok_or_else(|| cannot(f, v))?
                .to_rfc3339_opts(SecondsFormat::Millis, true),
            Value::Text(s) if s.trim().is_empty() => return Ok(Out::Null),
            Value::Text(s) => {
                parse_datetime(s).ok_or_else(|| cannot(f, v))?.to_rfc3339_opts(SecondsFormat::Millis, true)
            }
            _ => return Err(cannot(f, v)),
        }),
        "multipicklist" => Out::Text(match v {
            Value::TextList(l) => {
                l.iter().map(|s| s.trim()).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(";")
            }
            other => other.to_string(),
        }),
        _ => Out::Text(match v {
            Value::TextList(l) => l.join(";"),
            other => other.to_string(),
        }),
    };
    if let Out::Text(s) = &out {
        let n = s.chars().count();
        if f.length > 0 && n > f.length as usize {
            return Err(record_error(
                "STRING_TOO_LONG",
                format!("{}: data value too large: {n} characters (max length={})", f.name, f.length),
            ));
        }
        if s.is_empty() {
            return Ok(Out::Null);
        }
    }
    Ok(out)
}

/// Converts a field of a Salesforce JSON record into a typed value.
pub fn from_salesforce(f: Option<&FieldInfo>, v: &Json) -> Value {
    let ftype = f.map_or("string", |f| f.ftype.as_str());
    match (ftype, v) {
        (_, Json::Null) => Value::Null,
        (_, Json::Bool(b)) => Value::Boolean(*b),
        ("int" | "long", Json::Number(n)) => n.as_f64().map_or(Value::Null, Value::Number),
        (_, Json::Number(n)) => {
            let s = n.to_string();
            Decimal::from_str(&s)
                .or_else(|_| Decimal::from_scientific(&s))
                .map(Value::Decimal)
                .unwrap_or_else(|_| n.as_f64().map_or(Value::Null, Value::Number))
        }
        ("date", Json::String(s)) => parse_date(s).map_or_else(|| Value::Text(s.clone()), Value::Date),
        ("datetime", Json::String(s)) => {
            parse_datetime(s).map_or_else(|| Value::Text(s.clone()), Value::DateTime)
        }
        ("multipicklist", Json::String(s)) => {
            Value::TextList(s.split(';').map(str::trim).filter(|p| !p.is_empty()).map(String::from).collect())
        }
        (_, Json::String(s)) => Value::Text(s.clone()),
        (_, other) => Value::Text(other.to_string()),
    }
}

/// `2024-01-15`, or the date of a datetime.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().or_else(|| parse_datetime(s).map(|t| t.date_naive()))
}

/// The datetime forms Salesforce writes and accepts (`Z`, `+0000`, `+00:00`).
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .map(|t| t.with_timezone(&Utc))
        .ok()
}

/// A number written for people: currency symbols and codes, thousands
/// separators (`,` `.` space, apostrophe) and a decimal comma are understood:
/// `"$1,234.50"`, `"1 234,50 €"`, `"1.234,50"`, `"-12"`, `"(12.5)"`.
pub fn parse_decimal_text(raw: &str) -> Option<Decimal> {
    let t = raw.trim();
    let negative = t.starts_with('-') || (t.starts_with('(') && t.ends_with(')')) || t.ends_with('-');
    let body: String = t.chars().filter(|c| c.is_ascii_digit() || matches!(c, '.' | ',')).collect();
    // Anything else must be a currency sign, code, space or sign.
    let junk_ok = t.chars().all(|c| {
        c.is_ascii_digit()
            || matches!(c, '.' | ',' | ' ' | '\u{a0}' | '\u{202f}' | '\'' | '-' | '+' | '(' | ')')
            || c.is_alphabetic() && c.is_uppercase()
            || !c.is_ascii() && !c.is_alphanumeric()
            || c == '$'
    });
    if body.is_empty() || !junk_ok || !body.chars().any(|c| c.is_ascii_digit()) {
        return None;
    }
    let last_dot = body.rfind('.');
    let last_comma = body.rfind(',');
    let decimal_sep = match (last_dot, last_comma) {
        (Some(d), Some(c)) => Some(if d > c { '.' } else { ',' }),
        (Some(d), None) => {
            // "1.234" alone is ambiguous; one dot followed by exactly three digits
            // with another group before it is a thousands separator only when repeated.
            if body.matches('.').count() > 1 { None } else { Some('.').filter(|_| d < body.len()) }
        }
        (None, Some(c)) => {
            if body.matches(',').count() > 1 || body.len() - c - 1 == 3 {
                None
            } else {
                Some(',')
            }
        }
        (None, None) => None,
    };
    let mut normal = String::with_capacity(body.len());
    for c in body.chars() {
        match (c, decimal_sep) {
            ('0'..='9', _) => normal.push(c),
            (s, Some(d)) if s == d => normal.push('.'),
            _ => {}
        }
    }
    let d = Decimal::from_str(&normal).ok()?;
    Some(if negative { -d } else { d })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(ftype: &str, length: u32, scale: u32) -> FieldInfo {
        FieldInfo {
            name: "F__c".into(),
            ftype: ftype.into(),
            length,
            scale,
            createable: true,
            updateable: true,
            external_id: false,
            calculated: false,
        }
    }

    #[test]
    fn currency_text_in_many_notations() {
        let d = |s: &str| Decimal::from_str(s).ok();
        assert_eq!(parse_decimal_text("$1,234.50"), d("1234.50"));
        assert_eq!(parse_decimal_text("1 234,50 €"), d("1234.50"));
        assert_eq!(parse_decimal_text("1.234,50"), d("1234.50"));
        assert_eq!(parse_decimal_text("1,234"), d("1234"));
        assert_eq!(parse_decimal_text("12,5"), d("12.5"));
        assert_eq!(parse_decimal_text("-12"), d("-12"));
        assert_eq!(parse_decimal_text("USD 99.9"), d("99.9"));
        assert_eq!(parse_decimal_text("twelve"), None);
    }

    #[test]
    fn values_convert_both_ways() {
        let cur = field("currency", 0, 2);
        assert_eq!(to_salesforce(&cur, &Value::text("$1,234.567")), Ok(Out::Number(Decimal::new(123457, 2))));
        assert!(to_salesforce(&cur, &Value::text("abc")).is_err());
        let b = field("boolean", 0, 0);
        assert_eq!(to_salesforce(&b, &Value::text("Yes")), Ok(Out::Bool(true)));
        let ms = field("multipicklist", 4099, 0);
        let list = Value::TextList(vec!["A".into(), "B".into()]);
        assert_eq!(to_salesforce(&ms, &list).map(|o| o.json()), Ok(Json::String("A;B".into())));
        assert_eq!(from_salesforce(Some(&ms), &Json::String("A;B".into())), list);
        let s = field("string", 3, 0);
        assert_eq!(
            to_salesforce(&s, &Value::text("abcd")).map_err(|e| e.code),
            Err("STRING_TOO_LONG".into())
        );
        let d = field("date", 0, 0);
        assert_eq!(to_salesforce(&d, &Value::text("2024-02-29")), Ok(Out::Text("2024-02-29".into())));
        let dt = field("datetime", 0, 0);
        let t = from_salesforce(Some(&dt), &Json::String("2024-01-15T10:30:00.000+0000".into()));
        assert_eq!(to_salesforce(&dt, &t), Ok(Out::Text("2024-01-15T10:30:00.000Z".into())));
    }
}
