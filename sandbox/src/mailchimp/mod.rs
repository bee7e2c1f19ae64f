//! The Mailchimp Marketing API 3.0 sandbox: audiences (lists), members, merge
//! fields, batch subscribe, asynchronous batch operations, activity feeds,
//! campaigns and their email-activity reports, the account root and `/ping` —
//! everything under `/3.0/`, as the real API serves it.
//!
//! # Layout
//! - [`error`]: the problem+json error shape and Mailchimp's error titles.
//! - [`store`]: the data model and its indexes.
//! - `members`: member CRUD, listing with `since_last_changed` paging, batch
//!   subscribe (`POST /lists/{id}`), compliance and forgotten-email rules.
//! - `lists`: audiences and merge fields (with the plan's field cap).
//! - `batches`: `POST /batches` and the deterministic pending → started →
//!   finished lifecycle; results served as a gzipped tar of JSON files.
//! - `reports`: `GET /`, `/ping`, activity feeds, campaigns, email activity.
//! - `seed`: the seed and state JSON.
//!
//! # Endpoints (under `/3.0`)
//! `GET /`, `GET /ping`; `GET/POST /lists`, `GET/DELETE /lists/{id}`,
//! `POST /lists/{id}` (batch subscribe); `GET/POST /lists/{id}/members`,
//! `GET/PUT/PATCH/DELETE /lists/{id}/members/{hash}`,
//! `POST .../members/{hash}/actions/delete-permanent`, `GET/POST .../members/{hash}/tags`,
//! `GET .../members/{hash}/activity-feed`; `GET/POST /lists/{id}/merge-fields`,
//! `GET/PATCH/DELETE /lists/{id}/merge-fields/{merge_id}`; `GET/POST /batches`,
//! `GET/DELETE /batches/{id}`; `GET /campaigns`, `GET /campaigns/{id}`,
//! `GET /reports/{campaign_id}/email-activity`. Outside `/3.0`: `GET /batch-results/{id}.tar.gz`.
//! `fields`/`exclude_fields` (dotted paths) project every GET response.
//! A known path with another method → 405; anything else → 404.
//!
//! # Auth and limits
//! HTTP Basic with any user name and the API key as password, `Authorization:
//! apikey KEY`, or `Authorization: Bearer TOKEN` (the API key, or a token added
//! with the seed's `api_keys`). No credentials → 401 "API Key Missing"; unknown →
//! 401 "API Key Invalid". Users below manager (`author`, `viewer`) get 403 on every
//! write. With rate limits on, more than 10 requests in flight for one key get
//! 429 "Too Many Requests" (Mailchimp's 10 simultaneous connections); the count
//! includes injected latency (see [`crate::common::VendorApi::admit`]).
//! Every error is `application/problem+json` `{type, title, status, detail, instance}`,
//! except an injected 403 fault: that is the bare HTML 403 Mailchimp's edge
//! answers under load, which a client must retry, not take for missing rights.
//!
//! # Behaviour worth knowing
//! - `{subscriber_hash}` is the MD5 of the lowercased email; the email itself or
//!   the member's `contact_id` (kept across email changes) is accepted in its
//!   place, as the real API does.
//! - `since_last_changed` is inclusive (`last_changed >= value`), `before_last_changed`
//!   exclusive; times have whole seconds. Listing orders by `last_changed`
//!   ascending unless `sort_field`/`sort_dir` say otherwise; archived members are
//!   listed only with `status=archived`. `count` is capped at 1000.
//! - A write that changes nothing leaves `last_changed` alone, so a sync engine
//!   does not see its own no-op writes as changes.
//! - Unsubscribed and cleaned members cannot be set to `subscribed` by PUT, PATCH
//!   or batch subscribe: 400 "Member In Compliance State" (`pending` is allowed).
//! - `DELETE` archives; `actions/delete-permanent` forgets the email, after which
//!   adding it again fails with 400 "Forgotten Email Not Subscribed".
//! - Batch subscribe answers HTTP 200 with per-member `errors`; ≤ 500 members.
//! - `POST /batches` stays `pending`; each `GET /batches/{id}` advances it: the
//!   first poll reports `started`, the second applies every operation and reports
//!   `finished` (seed `batch_polls_to_finish` changes the count; 0 = at submit).
//!   `response_body_url` points at `GET /batch-results/{id}.tar.gz` on this
//!   server: a gzipped tar of JSON files, each an array of `{status_code,
//!   operation_id, response}` (`response` a JSON string), as the real API serves
//!   (see [`batches`]).
//! - Responses carry no `_links`.
//!
//! # Seed (`POST /__sandbox/seed`, `SandboxOptions.seed["mailchimp"]`)
//! ```json
//! {
//!   "account": {"role": "owner|admin|manager|author|viewer", "premium": false,
//!               "merge_field_limit": 30, "account_name": "...", "email": "...",
//!               "pricing_plan_type": "monthly", "max_lists": 100},
//!   "api_keys": [{"key": "<32 hex>-us6", "role": "viewer"}],
//!   "batch_polls_to_finish": 2,
//!   "lists": [{
//!     "id": "a1b2c3d4e5", "name": "Audience",
//!     "merge_fields": [{"tag": "COMPANY", "name": "Company", "type": "text",
//!                       "required": false, "options": {}}],
//!     "members": [{"email_address": "ann@example.com", "status": "subscribed",
//!                  "merge_fields": {"FNAME": "Ann"}, "tags": ["vip"],
//!                  "last_changed": "2024-01-01T00:00:00Z", "timestamp_opt": "...",
//!                  "language": "", "vip": false,
//!                  "activity": [{"action": "open", "timestamp": "...",
//!                                "campaign_id": "c1", "url": null}]}]
//!   }],
//!   "campaigns": [{"id": "c1", "list_id": "a1b2c3d4e5", "title": "...",
//!                  "subject_line": "...", "status": "sent", "type": "regular",
//!                  "send_time": "...", "emails_sent": 10}]
//! }
//! ```
//! All keys are optional. A seeded list keeps the default fields (FNAME, LNAME,
//! ADDRESS, PHONE) plus those listed; seeding an existing list id adds to it.
//!
//! # State (`GET /__sandbox/state`)
//! `{"account", "lists": [{...list as the API returns it, "merge_fields": [...],
//! "members": [{...member as the API returns it, "activity": [...]}],
//! "forgotten": [hashes]}], "campaigns": [...], "batches": [...]}`.

pub mod error;
pub mod store;

mod batches;
mod lists;
mod members;
mod reports;
mod seed;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::SandboxOptions;
use crate::common::{Origin, Vendor, VendorApi, VendorCtx};
pub use error::McError;
use store::{Role, Store};

/// Mailchimp's limit of simultaneous connections per API key.
pub const MAX_CONCURRENT: usize = 10;
/// Largest page any listing returns.
pub const MAX_COUNT: usize = 1000;
/// Most members one batch-subscribe call takes.
pub const MAX_BATCH_MEMBERS: usize = 500;

pub struct Mailchimp {
    ctx: VendorCtx,
    api_key: String,
    store: RwLock<Store>,
    /// Requests in flight per credential (for the 10-connection limit).
    in_flight: Mutex<HashMap<String, Arc<AtomicUsize>>>,
    /// Resume points for sequential member paging (see `members::list`).
    hints: Mutex<HashMap<String, members::PageHint>>,
}

impl Mailchimp {
    pub fn new(ctx: VendorCtx, opts: &SandboxOptions) -> Self {
        Self {
            ctx,
            api_key: opts.credentials.mailchimp_api_key.clone(),
            store: RwLock::default(),
            in_flight: Mutex::default(),
            hints: Mutex::default(),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Store> {
        self.store.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Store> {
        self.store.write().unwrap_or_else(|e| e.into_inner())
    }

    fn now(&self) -> DateTime<Utc> {
        store::secs(self.ctx.clock.now())
    }

    /// The role of the user behind a credential, or why it is refused.
    fn role_of(&self, key: Option<&str>) -> Result<Role, McError> {
        let key = key.filter(|k| !k.is_empty()).ok_or(McError::KeyMissing)?;
        let store = self.read();
        if key == self.api_key {
            return Ok(store.account.role);
        }
        store.extra_keys.get(key).copied().ok_or(McError::KeyInvalid)
    }

    /// Routes one call (from HTTP or from a batch operation) to its handler.
    fn dispatch(&self, call: &Call) -> Reply {
        let segs: Vec<&str> = call.segs.iter().map(String::as_str).collect();
        let method = call.method;
        if !matches!(method, "GET" | "HEAD" | "OPTIONS") && !call.role.can_write() {
            return Err(McError::Forbidden);
        }
        match (method, segs.as_slice()) {
            ("GET", []) => reports::root(self, call),
            ("GET", ["ping"]) => reports::ping(),
            ("GET", ["lists"]) => lists::list_lists(self, call),
            ("POST", ["lists"]) => lists::create_list(self, call),
            ("GET", ["lists", id]) => lists::get_list(self, id),
            ("DELETE", ["lists", id]) => lists::delete_list(self, id),
            ("POST", ["lists", id]) => members::batch_subscribe(self, call, id),
            ("GET", ["lists", id, "members"]) => members::list(self, call, id),
            ("POST", ["lists", id, "members"]) => members::create(self, call, id),
            ("GET", ["lists", id, "members", hash]) => members::get(self, id, hash),
            ("PUT", ["lists", id, "members", hash]) => members::upsert(self, call, id, hash),
            ("PATCH", ["lists", id, "members", hash]) => members::patch(self, call, id, hash),
            ("DELETE", ["lists", id, "members", hash]) => members::archive(self, id, hash),
            ("POST", ["lists", id, "members", hash, "actions", "delete-permanent"]) => {
                members::delete_permanent(self, id, hash)
            }
            ("GET", ["lists", id, "members", hash, "tags"]) => members::get_tags(self, id, hash),
            ("POST", ["lists", id, "members", hash, "tags"]) => members::post_tags(self, call, id, hash),
            ("GET", ["lists", id, "members", hash, "activity-feed"]) => {
                reports::activity_feed(self, call, id, hash)
            }
            ("GET", ["lists", id, "merge-fields"]) => lists::list_merge_fields(self, call, id),
            ("POST", ["lists", id, "merge-fields"]) => lists::create_merge_field(self, call, id),
            ("GET", ["lists", id, "merge-fields", mid]) => lists::get_merge_field(self, id, mid),
            ("PATCH", ["lists", id, "merge-fields", mid]) => lists::patch_merge_field(self, call, id, mid),
            ("DELETE", ["lists", id, "merge-fields", mid]) => lists::delete_merge_field(self, id, mid),
            ("GET", ["batches"]) => batches::list(self, call),
            ("POST", ["batches"]) => batches::submit(self, call),
            ("GET", ["batches", id]) => batches::get(self, call, id),
            ("DELETE", ["batches", id]) => batches::delete(self, id),
            ("GET", ["campaigns"]) => reports::campaigns(self, call),
            ("GET", ["campaigns", id]) => reports::campaign(self, id),
            ("GET", ["reports", id, "email-activity"]) => reports::email_activity(self, call, id),
            (_, segs) if is_route(segs) => Err(McError::MethodNotAllowed),
            _ => Err(McError::NotFound),
        }
    }

    /// Counts a request in flight for its credential; `None` when refused.
    fn enter(&self, key: &str) -> Option<InFlight> {
        let counter = {
            let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(key.to_string()).or_default().clone()
        };
        let now = counter.fetch_add(1, Ordering::SeqCst) + 1;
        let guard = InFlight(counter);
        if now > MAX_CONCURRENT && self.ctx.rate_limits() {
            return None; // the guard's drop undoes the count
        }
        Some(guard)
    }
}

/// Whether `segs` is a path this server serves (for 405 versus 404).
fn is_route(segs: &[&str]) -> bool {
    matches!(
        segs,
        [] | ["ping"]
            | ["lists"]
            | ["lists", _]
            | ["lists", _, "members" | "merge-fields"]
            | ["lists", _, "members" | "merge-fields", _]
            | ["lists", _, "members", _, "tags" | "activity-feed"]
            | ["lists", _, "members", _, "actions", "delete-permanent"]
            | ["batches"]
            | ["batches", _]
            | ["campaigns"]
            | ["campaigns", _]
            | ["reports", _, "email-activity"]
    )
}

/// One request in flight; dropping it frees the slot.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One API call, from HTTP or from a batch operation.
pub(crate) struct Call<'a> {
    pub method: &'a str,
    /// Path segments after `/3.0`, percent-decoded.
    pub segs: Vec<String>,
    pub query: &'a HashMap<String, String>,
    pub body: &'a [u8],
    pub role: Role,
    /// `http(s)://host:port` of this server (for URLs in responses).
    pub base_url: &'a str,
}

impl Call<'_> {
    /// A non-empty query parameter.
    pub fn q(&self, key: &str) -> Option<&str> {
        self.query.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }

    pub fn q_bool(&self, key: &str) -> Result<Option<bool>, McError> {
        match self.q(key).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(None),
            Some("true" | "1") => Ok(Some(true)),
            Some("false" | "0") => Ok(Some(false)),
            Some(v) => Err(McError::invalid(format!("The value '{v}' for '{key}' is not a boolean."))),
        }
    }

    pub fn q_time(&self, key: &str) -> Result<Option<DateTime<Utc>>, McError> {
        self.q(key)
            .map(|v| {
                store::parse_time(v).ok_or_else(|| {
                    McError::invalid(format!("The value '{v}' for '{key}' is not a valid date."))
                })
            })
            .transpose()
    }

    /// `count` (default 10, at most 1000) and `offset`.
    pub fn paging(&self) -> Result<(usize, usize), McError> {
        let num = |key: &str, default: usize| -> Result<usize, McError> {
            self.q(key).map_or(Ok(default), |v| {
                v.parse::<usize>().map_err(|_| {
                    McError::invalid(format!("The value '{v}' for '{key}' must be a non-negative integer."))
                })
            })
        };
        Ok((num("count", 10)?.min(MAX_COUNT), num("offset", 0)?))
    }

    /// The JSON body, or Mailchimp's parse error.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, McError> {
        parse_json(self.body)
    }
}

/// Parses a request body: malformed JSON → "JSON Parse Error", wrong shape →
/// "Invalid Resource" naming the problem.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, McError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| McError::JsonParse("We encountered an unspecified JSON parsing error.".into()))?;
    serde_json::from_value(value).map_err(|e| McError::Invalid {
        detail: "The resource submitted could not be validated. For field-specific details, see the 'errors' array.".into(),
        errors: vec![(String::new(), e.to_string())],
    })
}

/// A successful answer's body.
pub(crate) enum Body {
    Empty,
    Json(Value),
    /// Already-serialized JSON: member pages and batch results skip building a
    /// `Value` tree (only when no `fields`/`exclude_fields` projection is asked).
    Raw(Vec<u8>),
}

pub(crate) type Reply = Result<(StatusCode, Body), McError>;

fn ok(v: Value) -> Reply {
    Ok((StatusCode::OK, Body::Json(v)))
}

/// Serializes `v` straight to bytes, or to a `Value` when the caller projects fields.
fn ok_serialized<T: serde::Serialize>(call: &Call, v: &T) -> Reply {
    let projected = call.query.contains_key("fields") || call.query.contains_key("exclude_fields");
    let body = if projected {
        serde_json::to_value(v).map(Body::Json)
    } else {
        serde_json::to_vec(v).map(Body::Raw)
    };
    body.map(|b| (StatusCode::OK, b)).map_err(|_| McError::Status(StatusCode::INTERNAL_SERVER_ERROR))
}

fn no_content() -> Reply {
    Ok((StatusCode::NO_CONTENT, Body::Empty))
}

/// The credential in a request: Basic password, `apikey KEY` or `Bearer TOKEN`.
fn credential(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => {
            let decoded = base64_decode(rest)?;
            let text = String::from_utf8(decoded).ok()?;
            Some(text.split_once(':').map_or(text.clone(), |(_, key)| key.to_string()))
        }
        "apikey" | "bearer" | "oauth" => Some(rest.to_string()),
        _ => None,
    }
}

/// Standard base64 (with or without padding); `None` when malformed.
fn base64_decode(input: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in input.bytes().filter(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) =
                (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Path segments after `/3.0` (or the whole path for batch operations that omit it).
fn segments(path: &str) -> Vec<String> {
    let path = path.strip_prefix("/3.0").unwrap_or(path);
    path.split('/').filter(|s| !s.is_empty()).map(percent_decode).collect()
}

/// `fields=a.b,c` keeps only those paths; `exclude_fields=` drops them.
fn project(value: Value, query: &HashMap<String, String>) -> Value {
    let paths = |key: &str| -> Vec<Vec<String>> {
        query.get(key).map_or_else(Vec::new, |v| {
            v.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| p.split('.').map(str::to_string).collect())
                .collect()
        })
    };
    let mut value = value;
    let include = paths("fields");
    if !include.is_empty() {
        value = keep(value, &include);
    }
    for path in paths("exclude_fields") {
        drop_path(&mut value, &path);
    }
    value
}

fn keep(value: Value, paths: &[Vec<String>]) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.into_iter().map(|v| keep(v, paths)).collect()),
        Value::Object(mut map) => {
            let mut out = serde_json::Map::new();
            for first in paths.iter().filter_map(|p| p.first()) {
                let Some(v) = map.remove(first) else { continue };
                let whole = paths.iter().any(|p| p.len() == 1 && p[0] == *first);
                let v = if whole {
                    v
                } else {
                    let sub: Vec<Vec<String>> = paths
                        .iter()
                        .filter(|p| p.len() > 1 && p[0] == *first)
                        .map(|p| p[1..].to_vec())
                        .collect();
                    keep(v, &sub)
                };
                out.insert(first.clone(), v);
            }
            Value::Object(out)
        }
        other => other,
    }
}

fn drop_path(value: &mut Value, path: &[String]) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(|v| drop_path(v, path)),
        Value::Object(map) => match path {
            [] => {}
            [last] => {
                map.remove(last);
            }
            [first, rest @ ..] => {
                if let Some(v) = map.get_mut(first) {
                    drop_path(v, rest);
                }
            }
        },
        _ => {}
    }
}

/// The one HTTP handler: auth, then [`Mailchimp::dispatch`], then projection.
async fn handle(
    State(mc): State<Arc<Mailchimp>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    origin: Origin,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
    body: Bytes,
) -> Response {
    let Ok(Query(query)) = query else {
        return McError::invalid("The query string could not be parsed.").into_response();
    };
    let role = match mc.role_of(credential(&headers).as_deref()) {
        Ok(role) => role,
        Err(e) => return e.into_response(),
    };
    let base_url = origin.0;
    let call = Call {
        method: method.as_str(),
        segs: segments(uri.path()),
        query: &query,
        body: &body,
        role,
        base_url: &base_url,
    };
    match mc.dispatch(&call) {
        Ok((status, Body::Empty)) => status.into_response(),
        Ok((status, Body::Raw(bytes))) => raw_response(status, bytes),
        Ok((status, Body::Json(value))) => {
            let value = if method == Method::GET { project(value, &query) } else { value };
            json_response(status, &value)
        }
        Err(e) => e.into_response(),
    }
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    raw_response(status, serde_json::to_vec(value).unwrap_or_default())
}

fn raw_response(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json; charset=utf-8")], body).into_response()
}

impl VendorApi for Mailchimp {
    fn vendor(&self) -> Vendor {
        Vendor::Mailchimp
    }

    fn router(self: Arc<Self>) -> Router {
        let mut router = Router::new();
        for path in [
            "/3.0",
            "/3.0/",
            "/3.0/ping",
            "/3.0/lists",
            "/3.0/lists/{list_id}",
            "/3.0/lists/{list_id}/members",
            "/3.0/lists/{list_id}/members/{subscriber_hash}",
            "/3.0/lists/{list_id}/members/{subscriber_hash}/tags",
            "/3.0/lists/{list_id}/members/{subscriber_hash}/activity-feed",
            "/3.0/lists/{list_id}/members/{subscriber_hash}/actions/delete-permanent",
            "/3.0/lists/{list_id}/merge-fields",
            "/3.0/lists/{list_id}/merge-fields/{merge_id}",
            "/3.0/batches",
            "/3.0/batches/{batch_id}",
            "/3.0/campaigns",
            "/3.0/campaigns/{campaign_id}",
            "/3.0/reports/{campaign_id}/email-activity",
        ] {
            router = router.route(path, any(handle));
        }
        router
            .route("/batch-results/{archive}", axum::routing::get(batches::results))
            .fallback(|| async { McError::NotFound.into_response() })
            .with_state(self)
    }

    fn seed(&self, data: Value) -> Result<(), String> {
        seed::seed(self, data)
    }

    fn state(&self) -> Value {
        seed::state(self)
    }

    fn reset(&self) {
        *self.write() = Store::default();
        self.hints.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// An injected 403 is the *bare* one Mailchimp's edge answers under
    /// load (an HTML page, no problem document); a user's missing rights
    /// are a problem document from the API itself.
    fn error_body(&self, status: StatusCode) -> Response {
        if status == StatusCode::FORBIDDEN {
            let page = "<HTML><HEAD><TITLE>Access Denied</TITLE></HEAD><BODY>You don't have permission to access this server.</BODY></HTML>";
            return (status, [(header::CONTENT_TYPE, "text/html")], page).into_response();
        }
        McError::Status(status).into_response()
    }

    fn admit(&self, headers: &HeaderMap) -> Result<Option<Box<dyn Send>>, Box<Response>> {
        let key = credential(headers).unwrap_or_default();
        match self.enter(&key) {
            Some(guard) => Ok(Some(Box::new(guard))),
            None => Err(Box::new(
                McError::TooManyRequests(format!(
                    "You have exceeded the limit of {MAX_CONCURRENT} simultaneous connections."
                ))
                .into_response(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        assert_eq!(base64_decode("dXNlcjprZXk=").as_deref(), Some(&b"user:key"[..]));
        assert_eq!(base64_decode("not base64!"), None);
    }

    #[test]
    fn segments_decode_emails() {
        assert_eq!(segments("/3.0/lists/x/members/a%40b.com"), ["lists", "x", "members", "a@b.com"]);
        assert_eq!(segments("/lists/x"), ["lists", "x"]);
    }

    #[test]
    fn projection_keeps_and_drops_paths() {
        let v =
            serde_json::json!({"members": [{"id": "1", "email_address": "a", "tags": []}], "total_items": 1});
        let q: HashMap<String, String> =
            [("fields".to_string(), "members.id,total_items".to_string())].into();
        assert_eq!(project(v.clone(), &q), serde_json::json!({"members": [{"id": "1"}], "total_items": 1}));
        let q: HashMap<String, String> = [("exclude_fields".to_string(), "members.tags".to_string())].into();
        assert_eq!(
            project(v, &q),
            serde_json::json!({"members": [{"id": "1", "email_address": "a"}], "total_items": 1})
        );
    }
}
