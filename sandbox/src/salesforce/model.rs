//! The data model: 18-character record ids, typed field values, records, the
//! ordered JSON the API answers with, and small encoding helpers.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::Value;

/// A Salesforce record id in its 18-character, case-insensitive-safe form.
/// Ids the sandbox mints sort in creation order (fixed-width base 62 in ASCII order).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SfId([u8; 18]);

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const SUFFIX: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

impl SfId {
    /// The id number `seq` of the object with key prefix `prefix` (3 chars).
    pub fn mint(prefix: &str, seq: u64) -> SfId {
        let mut raw = [b'0'; 18];
        raw[..3].copy_from_slice(&prefix.as_bytes()[..3]);
        raw[3] = b'5';
        raw[4] = b'g';
        let mut n = seq;
        for slot in raw[6..15].iter_mut().rev() {
            *slot = BASE62[(n % 62) as usize];
            n /= 62;
        }
        Self::with_suffix(raw)
    }

    /// Parses a 15- or 18-character id; the 3-character suffix is recomputed.
    pub fn parse(s: &str) -> Option<SfId> {
        let bytes = s.as_bytes();
        if !(bytes.len() == 15 || bytes.len() == 18) || !bytes.iter().all(u8::is_ascii_alphanumeric) {
            return None;
        }
        let mut raw = [0u8; 18];
        raw[..15].copy_from_slice(&bytes[..15]);
        let id = Self::with_suffix(raw);
        if bytes.len() == 18 && !id.0[15..].eq_ignore_ascii_case(&bytes[15..]) {
            return None;
        }
        Some(id)
    }

    fn with_suffix(mut raw: [u8; 18]) -> SfId {
        for chunk in 0..3 {
            let mut bits = 0usize;
            for j in 0..5 {
                if raw[chunk * 5 + j].is_ascii_uppercase() {
                    bits |= 1 << j;
                }
            }
            raw[15 + chunk] = SUFFIX[bits];
        }
        SfId(raw)
    }

    pub fn as_str(&self) -> &str {
        // Always ASCII alphanumerics by construction.
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    pub fn prefix(&self) -> &str {
        &self.as_str()[..3]
    }

    /// The smallest id, for range scans.
    pub const MIN: SfId = SfId([0; 18]);
}

impl fmt::Debug for SfId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for SfId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stored field value.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Str(Box<str>),
    Num(f64),
    Bool(bool),
    Date(NaiveDate),
    DateTime(DateTime<Utc>),
}

impl Val {
    pub fn str(s: impl Into<Box<str>>) -> Val {
        Val::Str(s.into())
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as the REST API writes it.
    pub fn to_json(&self, integer: bool) -> Value {
        match self {
            Val::Str(s) => Value::String(s.to_string()),
            Val::Num(n) if integer => Value::from(*n as i64),
            Val::Num(n) => serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number),
            Val::Bool(b) => Value::Bool(*b),
            Val::Date(d) => Value::String(d.format("%Y-%m-%d").to_string()),
            Val::DateTime(t) => Value::String(format_datetime(*t)),
        }
    }

    /// The value as Bulk API CSV writes it.
    pub fn to_csv(&self, integer: bool) -> String {
        match self {
            Val::Str(s) => s.to_string(),
            Val::Num(n) if integer => (*n as i64).to_string(),
            Val::Num(n) => n.to_string(),
            Val::Bool(b) => b.to_string(),
            Val::Date(d) => d.format("%Y-%m-%d").to_string(),
            Val::DateTime(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
        }
    }
}

/// `2024-01-15T10:30:00.000+0000`, the REST API's datetime format.
pub fn format_datetime(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

/// Parses the datetime forms Salesforce accepts (`Z`, `+0000`, `+00:00`, with or
/// without fractional seconds).
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(t) = DateTime::parse_from_str(s, fmt) {
            return Some(t.with_timezone(&Utc));
        }
    }
    None
}

/// Truncates to the millisecond, the precision Salesforce stores.
pub fn millis(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// One record. Timestamps and the deletion mark are typed; every other stored
/// field lives in `values`, sorted by field index (absent = null).
#[derive(Debug, Clone)]
pub struct Record {
    pub id: SfId,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub modstamp: DateTime<Utc>,
    /// When the record went to the recycle bin (`IsDeleted = true`).
    pub deleted: Option<DateTime<Utc>>,
    pub values: Vec<(u16, Val)>,
}

impl Record {
    pub fn get(&self, field: u16) -> Option<&Val> {
        self.values.binary_search_by_key(&field, |(f, _)| *f).ok().map(|i| &self.values[i].1)
    }

    pub fn set(&mut self, field: u16, value: Option<Val>) {
        match (self.values.binary_search_by_key(&field, |(f, _)| *f), value) {
            (Ok(i), Some(v)) => self.values[i].1 = v,
            (Ok(i), None) => {
                self.values.remove(i);
            }
            (Err(i), Some(v)) => self.values.insert(i, (field, v)),
            (Err(_), None) => {}
        }
    }
}

/// JSON with key order kept (the API puts `attributes` first and fields in
/// select order) without switching serde_json's map type for the workspace.
#[derive(Debug, Clone)]
pub enum J {
    V(Value),
    O(Vec<(Cow<'static, str>, J)>),
    A(Vec<J>),
}

impl J {
    pub fn obj() -> JObj {
        JObj(Vec::new())
    }

    pub fn to_value(&self) -> Value {
        match self {
            J::V(v) => v.clone(),
            J::O(fields) => {
                Value::Object(fields.iter().map(|(k, v)| (k.to_string(), v.to_value())).collect())
            }
            J::A(items) => Value::Array(items.iter().map(J::to_value).collect()),
        }
    }
}

impl From<Value> for J {
    fn from(v: Value) -> J {
        J::V(v)
    }
}

/// Builder for an ordered object.
pub struct JObj(Vec<(Cow<'static, str>, J)>);

impl JObj {
    pub fn put(mut self, key: impl Into<Cow<'static, str>>, value: impl Into<J>) -> Self {
        self.0.push((key.into(), value.into()));
        self
    }
    pub fn push(&mut self, key: impl Into<Cow<'static, str>>, value: impl Into<J>) {
        self.0.push((key.into(), value.into()));
    }
    pub fn done(self) -> J {
        J::O(self.0)
    }
}

impl Serialize for J {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            J::V(v) => v.serialize(s),
            J::O(fields) => {
                let mut map = s.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
            J::A(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
        }
    }
}

/// Standard base64 (with padding), for token signatures and Bulk locators.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes `%XX` escapes (and `+` as space when `plus` is set).
pub fn percent_decode(s: &str, plus: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 3 <= bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' if plus => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `a=1&b=2` (form bodies and query strings).
pub fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_case_safe_suffix_and_sort_by_sequence() {
        let a = SfId::mint("00Q", 1);
        let b = SfId::mint("00Q", 62);
        assert_eq!(a.as_str().len(), 18);
        assert!(a < b);
        assert_eq!(SfId::parse(&a.as_str()[..15]), Some(a));
        assert_eq!(SfId::parse(a.as_str()), Some(a));
        assert_eq!(SfId::parse("001"), None);
        // A known id: 001A0000006Vm9r -> 001A0000006Vm9rIAC
        assert_eq!(SfId::parse("001A0000006Vm9r").map(|i| i.to_string()), Some("001A0000006Vm9rIAC".into()));
    }

    #[test]
    fn base64_and_percent() {
        assert_eq!(base64(b"2000"), "MjAwMA==");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(percent_decode("a%40b.com+x", true), "a@b.com x");
        assert_eq!(percent_decode("100%", false), "100%");
    }
}
