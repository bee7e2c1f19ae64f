//! What every ActiveCampaign handler shares: the error shapes, JSON body and
//! query parsing, paging, timestamps in the account time zone, and links.

use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde_json::{Value, json};

use crate::common::Origin;

/// Default and maximum `limit` of AC list endpoints.
pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;

/// One entry of AC's 422 `errors` array.
#[derive(Debug, Clone)]
pub struct ErrorItem {
    pub title: String,
    pub detail: String,
    pub code: String,
    /// The attribute for `source.pointer` (`/data/attributes/<attr>`).
    pub attribute: Option<String>,
}

/// An ActiveCampaign error response, in the shape the real API sends.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AcError {
    /// 403 `{"message": ...}` (bad or missing `Api-Token`, or not allowed).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// 404 `{"message": "No Result found for <Kind> with id <id>"}`.
    #[error("{0}")]
    NotFound(String),
    /// 422 `{"errors": [{"title","detail","code","source":{"pointer"}}]}`.
    #[error("{}", titles(.0))]
    Unprocessable(Vec<ErrorItem>),
    /// 400 with the given body (AC often sends `{}`).
    #[error("bad request: {0}")]
    BadRequest(Value),
    /// 429 with `Retry-After` (seconds).
    #[error("rate limited, retry after {retry_after}s")]
    RateLimited { retry_after: u64 },
    /// Any other status with a fixed body.
    #[error("status {status}: {body}")]
    Json { status: u16, body: Value },
}

fn titles(items: &[ErrorItem]) -> String {
    items.iter().map(|e| e.title.as_str()).collect::<Vec<_>>().join("; ")
}

impl AcError {
    pub fn not_found(kind: &str, id: impl std::fmt::Display) -> Self {
        AcError::NotFound(format!("No Result found for {kind} with id {id}"))
    }

    pub fn unprocessable(title: &str, code: &str, attribute: &str) -> Self {
        AcError::Unprocessable(vec![ErrorItem {
            title: title.into(),
            detail: String::new(),
            code: code.into(),
            attribute: Some(attribute.into()),
        }])
    }

    pub fn missing(title: &str, attribute: &str) -> Self {
        Self::unprocessable(title, "field_missing", attribute)
    }

    pub fn json(status: u16, body: Value) -> Self {
        AcError::Json { status, body }
    }

    pub fn bad_request(message: &str) -> Self {
        AcError::BadRequest(json!({ "message": message }))
    }
}

impl IntoResponse for AcError {
    fn into_response(self) -> Response {
        match self {
            AcError::Forbidden(message) => {
                (StatusCode::FORBIDDEN, Json(json!({ "message": message }))).into_response()
            }
            AcError::NotFound(message) => {
                (StatusCode::NOT_FOUND, Json(json!({ "message": message }))).into_response()
            }
            AcError::Unprocessable(items) => {
                let errors: Vec<Value> = items
                    .into_iter()
                    .map(|e| {
                        let mut v = json!({ "title": e.title, "detail": e.detail, "code": e.code });
                        if let Some(attr) = e.attribute {
                            v["source"] = json!({ "pointer": format!("/data/attributes/{attr}") });
                        }
                        v
                    })
                    .collect();
                (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({ "errors": errors }))).into_response()
            }
            AcError::BadRequest(body) => (StatusCode::BAD_REQUEST, Json(body)).into_response(),
            AcError::RateLimited { retry_after } => {
                let mut r = (StatusCode::TOO_MANY_REQUESTS, Json(json!({ "message": "Too Many Requests" })))
                    .into_response();
                r.headers_mut().insert("retry-after", HeaderValue::from(retry_after));
                r
            }
            AcError::Json { status, body } => {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                (status, Json(body)).into_response()
            }
        }
    }
}

pub type AcResult = Result<Response, AcError>;

/// A 200 JSON response.
pub fn ok(body: Value) -> AcResult {
    Ok(Json(body).into_response())
}

/// A 201 JSON response.
pub fn created(body: Value) -> AcResult {
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Parses a JSON request body; malformed JSON is AC's 400 `{}`.
pub fn parse_body(body: &[u8]) -> Result<Value, AcError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|_| AcError::BadRequest(json!({})))
}

/// The object under `key` of a request body (`{"contact": {...}}`), or an empty one.
pub fn wrapped<'a>(body: &'a Value, key: &str) -> &'a Value {
    static EMPTY: Value = Value::Null;
    body.get(key).filter(|v| v.is_object()).unwrap_or(&EMPTY)
}

/// A string attribute; numbers and booleans are accepted the way AC's PHP does.
pub fn str_attr(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "1" } else { "0" }.into()),
        _ => None,
    }
}

/// An id attribute given as a number or a numeric string.
pub fn id_attr(v: &Value, key: &str) -> Option<u64> {
    match v.get(key)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Query parameters in order (repeated keys such as `ids[]` kept).
#[derive(Debug, Default)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// A non-empty value.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.get(key).map(str::trim).filter(|v| !v.is_empty())
    }

    pub fn all(&self, key: &str) -> impl Iterator<Item = &str> {
        self.0.iter().filter(move |(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// A numeric parameter; a non-number is a 400.
    pub fn num(&self, key: &str) -> Result<Option<u64>, AcError> {
        match self.value(key) {
            None => Ok(None),
            Some(v) => {
                v.parse().map(Some).map_err(|_| AcError::bad_request(&format!("{key} must be a number")))
            }
        }
    }

    /// `limit` (default 20, at most 100) and `offset`.
    pub fn page(&self) -> Result<(usize, usize), AcError> {
        let limit = self.num("limit")?.map_or(DEFAULT_LIMIT, |l| (l as usize).min(MAX_LIMIT));
        let offset = self.num("offset")?.unwrap_or(0) as usize;
        Ok((limit, offset))
    }

    /// `orders[<key>]=ASC|DESC` for the first present key of `keys`.
    pub fn order<'a>(&self, keys: &[&'a str]) -> Option<(&'a str, bool)> {
        keys.iter().find_map(|k| {
            self.value(&format!("orders[{k}]")).map(|dir| (*k, dir.eq_ignore_ascii_case("desc")))
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = AcError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        Ok(Params(form_pairs(query)))
    }
}

/// Decodes `a=1&b[c]=2` (form encoding) into pairs.
pub fn form_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The base of links in responses, `http(s)://<host>/api/3`, from the `Host`
/// header and the connection's scheme.
#[derive(Debug, Clone)]
pub struct Base(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Base {
    type Rejection = AcError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let origin = Origin::of(&parts.headers, &parts.extensions);
        Ok(Base(format!("{}/api/3", origin.0)))
    }
}

impl Base {
    pub fn link(&self, path: &str) -> String {
        format!("{}/{path}", self.0)
    }
}

/// `2018-09-12T16:53:50-05:00`: how AC renders timestamps (account time zone).
pub fn fmt_ts(ts: i64, offset: FixedOffset) -> String {
    match DateTime::from_timestamp(ts, 0) {
        Some(t) => t.with_timezone(&offset).format("%Y-%m-%dT%H:%M:%S%:z").to_string(),
        None => "0000-00-00T00:00:00-00:00".into(),
    }
}

/// `2018-09-28 13:50:41` in UTC (`created_utc_timestamp`).
pub fn fmt_utc(ts: i64) -> String {
    match DateTime::from_timestamp(ts, 0) {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        None => "0000-00-00 00:00:00".into(),
    }
}

/// Parses a date filter (`filters[updated_after]` and the like), which AC's
/// reference types as a *date*: the day's start in the account time zone. A
/// value with a time is accepted, but only its date counts — the sandbox
/// gives no precision the reference does not promise.
pub fn parse_filter_date(s: &str, offset: FixedOffset) -> Option<i64> {
    let s = s.trim();
    let day = s.get(..10).and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())?;
    offset.from_local_datetime(&day.and_hms_opt(0, 0, 0)?).single().map(|t| t.timestamp())
}

/// Parses a timestamp: RFC 3339 with an offset, or a date / date-time
/// without one, read in the account time zone.
pub fn parse_date(s: &str, offset: FixedOffset) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp());
    }
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%z") {
        return Some(t.timestamp());
    }
    for f in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return offset.from_local_datetime(&t).single().map(|t| t.timestamp());
        }
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    offset.from_local_datetime(&d.and_hms_opt(0, 0, 0)?).single().map(|t| t.timestamp())
}

/// A seed timestamp: RFC 3339 or a Unix-seconds number; `default` when absent.
pub fn seed_ts(v: Option<&Value>, offset: FixedOffset, default: i64) -> Result<i64, String> {
    match v {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| format!("bad timestamp {n}")),
        Some(Value::String(s)) => parse_date(s, offset).ok_or_else(|| format!("bad timestamp {s:?}")),
        Some(other) => Err(format!("bad timestamp {other}")),
    }
}

/// Seconds since the epoch of a clock reading.
pub fn secs(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_in_the_account_zone() {
        let off = FixedOffset::west_opt(5 * 3600).expect("offset");
        let t = parse_date("2024-01-02T03:04:05-05:00", off).expect("rfc3339");
        assert_eq!(parse_date("2024-01-02 03:04:05", off), Some(t));
        assert_eq!(parse_date("2024-01-02T08:04:05Z", off), Some(t));
        assert_eq!(fmt_ts(t, off), "2024-01-02T03:04:05-05:00");
        assert_eq!(parse_date("2024-01-02", off), Some(t - 3 * 3600 - 4 * 60 - 5));
        assert_eq!(parse_date("yesterday", off), None);
    }

    #[test]
    fn query_pairs_decode_brackets_and_repeats() {
        let p = Params(form_pairs("filters%5Bupdated_after%5D=2024-01-01+10%3A00&ids[]=1&ids[]=2&x=%"));
        assert_eq!(p.get("filters[updated_after]"), Some("2024-01-01 10:00"));
        assert_eq!(p.all("ids[]").collect::<Vec<_>>(), vec!["1", "2"]);
        assert_eq!(p.get("x"), Some("%"));
    }
}
