//! The Brevo connector (API v3) over reqwest.
//!
//! # What it owns
//! - Auth: the `api-key` header. One rate limiter of `requests_per_second`
//!   (Brevo: 10/s on `/contacts*`) per API key, shared by every connection
//!   using that key ([`crate::ratelimit`]). Brevo's `x-sib-ratelimit-*`
//!   headers are honoured: when a response says nothing is left, the next
//!   call waits for the reset; a 429 waits out `x-sib-ratelimit-reset`
//!   (Brevo sends no `Retry-After`).
//! - The list: every contact crmsync writes joins the connection's list
//!   (`list_id`, or `list_name`: found, or created in the first folder), and
//!   only that list's contacts are read.
//! - Records: object `contact`, fields `email` and the attributes by their
//!   UPPERCASE names, typed by the account's attribute definitions
//!   ([`attributes`]). An `emailBlacklisted` contact reads with the
//!   `unsubscribe` pseudo-field; an `unsubscribe` write blacklists. Nothing
//!   crmsync sends ever clears `emailBlacklisted`.
//! - Change reads: `GET /contacts?listIds=&modifiedSince=&sort=asc`, paged
//!   by offset over one fixed `modifiedSince` window; a finished scan moves
//!   the window to the moment it began by Brevo's clock (the `Date` of its
//!   first answer) less [`DATE_SLACK`]: a contact modified behind the scan
//!   while it ran is read by the next one, however long the scan took.
//! - Writes ([`write`]): `POST /contacts/batch` for updates by id, 100 a
//!   call (a refused batch changes nothing; its contacts then go one by one
//!   through `PUT /contacts/{id}`, as does an email change);
//!   `POST /contacts` with `updateEnabled` for email-keyed upserts (a 204
//!   carries no id: the id is read back with `GET /contacts/{email}`); from
//!   `import_threshold` email-keyed upserts on, `POST /contacts/import`
//!   polled through `/processes/{id}`, the ids then read from the list.

mod attributes;
mod config;
mod write;

pub use config::{CAPABILITIES, DEFAULT_API_URL, VENDOR_ENTRY};

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use crmsync_core::Secret;
use crmsync_sdk::types::{Record, System, Value};
use futures_util::StreamExt;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value as Json, json};
use tokio::sync::Mutex;

use crate::http::{DATE_SLACK, Http, HttpOptions, Reply, status_error};
use crate::ratelimit;
use crate::{
    Capabilities, Changes, Connector, ConnectorError, ConnectorLimits, Cursor, MarketingApi, Write,
    WriteResult,
};
use attributes::Attribute;

const VENDOR: &str = "Brevo";
/// Most contacts one `GET /contacts` page returns.
pub const PAGE_LIMIT: usize = 1000;
/// Most ids one `GET /contacts?ids=` takes.
const IDS_LIMIT: usize = 20;
/// Most contacts one write call takes (one import).
pub const WRITE_LIMIT: usize = 1000;

/// Which list the connection syncs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListChoice {
    /// An existing list.
    Id(u64),
    /// Found by name, or created.
    Name(String),
}

#[derive(Debug, Clone)]
pub struct BrevoConfig {
    /// The API's base URL, `https://api.brevo.com/v3`.
    pub api_url: String,
    pub api_key: Secret,
    pub list: ListChoice,
    /// Contacts created in Brevo may become Salesforce Leads.
    pub create_in_salesforce: bool,
    /// The account's contacts rate limit, shared by every connection to it.
    pub requests_per_second: Option<f64>,
    /// Email-keyed upserts of at least this many contacts go through an import.
    pub import_threshold: usize,
    /// Calls in flight at once for one-by-one writes (the limiter still paces them).
    pub concurrency: usize,
    /// Pause between `/processes/{id}` polls.
    pub import_poll: Duration,
    /// The integration's monthly task quota (Brevo: 100,000).
    pub monthly_tasks: Option<u64>,
    pub http: HttpOptions,
}

impl BrevoConfig {
    pub fn new(api_key: Secret, list: ListChoice) -> Self {
        BrevoConfig {
            api_url: DEFAULT_API_URL.into(),
            api_key,
            list,
            create_in_salesforce: false,
            requests_per_second: Some(10.0),
            import_threshold: 50,
            concurrency: 5,
            import_poll: Duration::from_secs(1),
            monthly_tasks: Some(100_000),
            http: HttpOptions::default(),
        }
    }
}

/// What the `x-sib-ratelimit-*` headers said last: nothing is left until `until`.
#[derive(Debug, Default)]
struct Pause {
    until: Option<tokio::time::Instant>,
}

pub struct BrevoConnector {
    cfg: BrevoConfig,
    base: String,
    http: Http,
    /// The attributes by name, loaded once (again when a write names an unknown one).
    attributes: Mutex<Option<Arc<HashMap<String, Attribute>>>>,
    /// The connection's list id, once resolved.
    list_id: Mutex<Option<u64>>,
    pause: Arc<StdMutex<Pause>>,
}

/// Brevo error bodies: `{"code","message"}`.
fn classify(reply: &Reply) -> ConnectorError {
    let body: Json = serde_json::from_slice(&reply.body).unwrap_or(Json::Null);
    let code = body.get("code").and_then(Json::as_str).unwrap_or("");
    let text = body.get("message").and_then(Json::as_str).unwrap_or("");
    let message = match (code, text) {
        ("", "") => reply.status.to_string(),
        ("", m) => m.to_string(),
        (c, "") => c.to_string(),
        (c, m) => format!("{c}: {m}"),
    };
    match reply.status.as_u16() {
        // No `Retry-After`: the window's reset says how long to wait.
        429 | 425 => ConnectorError::RateLimited {
            vendor: VENDOR,
            retry_after: Some(reset_of(&reply.headers).unwrap_or(Duration::from_secs(1))),
        },
        403 => ConnectorError::Auth { vendor: VENDOR, message },
        402 => ConnectorError::QuotaExceeded { vendor: VENDOR, message },
        _ => status_error(VENDOR, reply, message),
    }
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// `x-sib-ratelimit-reset`, in seconds.
fn reset_of(headers: &HeaderMap) -> Option<Duration> {
    header_u64(headers, "x-sib-ratelimit-reset").map(Duration::from_secs)
}

fn unsupported(object: &str) -> ConnectorError {
    ConnectorError::Rejected {
        vendor: VENDOR,
        status: 0,
        message: format!("Brevo object {object:?} is not supported here (\"contact\")"),
    }
}

fn bad(message: impl Into<String>) -> ConnectorError {
    ConnectorError::BadResponse { vendor: VENDOR, message: message.into() }
}

fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim()).ok().map(|t| t.with_timezone(&Utc))
}

fn id_of(c: &Json) -> Option<String> {
    c.get("id").and_then(Json::as_u64).map(|n| n.to_string())
}

/// Brevo's `modifiedSince` form: `YYYY-MM-DDTHH:mm:ss.SSSZ`.
fn since_param(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Where a change read stands: a `modifiedSince` window and, while a scan of
/// it is under way, the offset reached and when the scan began.
#[derive(Debug, Clone, PartialEq)]
struct ContactCursor {
    watermark: Option<DateTime<Utc>>,
    scan: Option<(usize, DateTime<Utc>)>,
}

impl ContactCursor {
    fn decode(c: Option<&Cursor>) -> Result<ContactCursor, ConnectorError> {
        let Some(c) = c else { return Ok(ContactCursor { watermark: None, scan: None }) };
        let bad = || ConnectorError::Rejected {
            vendor: VENDOR,
            status: 0,
            message: format!("not a Brevo cursor: {}", c.0),
        };
        let time = |t: &str| if t == "-" { Ok(None) } else { parse_ts(t).map(Some).ok_or_else(bad) };
        match c.0.split('|').collect::<Vec<_>>().as_slice() {
            ["b2", w] => Ok(ContactCursor { watermark: time(w)?, scan: None }),
            ["b2", w, offset, began] => Ok(ContactCursor {
                watermark: time(w)?,
                scan: Some((offset.parse().map_err(|_| bad())?, parse_ts(began).ok_or_else(bad)?)),
            }),
            // An earlier version's cursor: its window stands; a scan it had
            // in progress starts again (it reads again, never misses).
            ["b1", w, ..] => Ok(ContactCursor { watermark: time(w)?, scan: None }),
            _ => Err(bad()),
        }
    }

    fn encode(&self) -> Cursor {
        let w = self.watermark.map_or("-".into(), since_param);
        Cursor(match self.scan {
            None => format!("b2|{w}"),
            Some((offset, began)) => format!("b2|{w}|{offset}|{}", since_param(began)),
        })
    }
}

impl BrevoConnector {
    pub fn new(cfg: BrevoConfig) -> Result<BrevoConnector, ConnectorError> {
        let base = cfg.api_url.trim_end_matches('/').to_string();
        let pause = Arc::new(StdMutex::new(Pause::default()));
        let seen = pause.clone();
        let observe: crate::http::Observe = Arc::new(move |headers: &HeaderMap| {
            // Nothing left in this window: the next call waits for its reset.
            if header_u64(headers, "x-sib-ratelimit-remaining") == Some(0)
                && let Some(reset) = reset_of(headers)
            {
                let mut p = seen.lock().unwrap_or_else(|e| e.into_inner());
                let until = tokio::time::Instant::now() + reset.min(Duration::from_secs(3600));
                p.until = Some(p.until.map_or(until, |u| u.max(until)));
            }
        });
        let mut http = Http::new(VENDOR, cfg.http.clone(), classify)?.with_observer(observe);
        if let Some(rps) = cfg.requests_per_second {
            // One limiter per account: the key is the URL and a digest of the API key.
            let mut h = std::collections::hash_map::DefaultHasher::new();
            cfg.api_key.expose().hash(&mut h);
            http = http.with_limiter(ratelimit::shared(&format!("{base}#{:x}", h.finish()), rps));
        }
        Ok(BrevoConnector { cfg, base, http, attributes: Mutex::default(), list_id: Mutex::default(), pause })
    }

    /// Waits while Brevo's headers said the window is spent.
    async fn wait_for_window(&self) {
        let until = self.pause.lock().unwrap_or_else(|e| e.into_inner()).until;
        if let Some(until) = until {
            if until > tokio::time::Instant::now() {
                tokio::time::sleep_until(until).await;
            }
            let mut p = self.pause.lock().unwrap_or_else(|e| e.into_inner());
            if p.until.is_some_and(|u| u <= tokio::time::Instant::now()) {
                p.until = None;
            }
        }
    }

    /// One call: `body` as JSON when given.
    async fn call(
        &self,
        what: &'static str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Json>,
    ) -> Result<Reply, ConnectorError> {
        self.wait_for_window().await;
        let url = format!("{}/{path}", self.base);
        let key = self.cfg.api_key.expose();
        self.http
            .send(what, |c| {
                let r = c
                    .request(method.clone(), &url)
                    .header("api-key", key)
                    .header("accept", "application/json");
                let r = r.query(query);
                match body {
                    Some(b) => r.json(b),
                    None => r,
                }
            })
            .await
    }

    async fn get_json(
        &self,
        what: &'static str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Json, ConnectorError> {
        self.call(what, Method::GET, path, query, None).await?.json(VENDOR)
    }

    /// The attributes by name, loaded once (again when `reload`).
    async fn attributes(&self, reload: bool) -> Result<Arc<HashMap<String, Attribute>>, ConnectorError> {
        let mut cache = self.attributes.lock().await;
        if let (Some(a), false) = (cache.as_ref(), reload) {
            return Ok(a.clone());
        }
        let listed = self.get_json("attributes", "contacts/attributes", &[]).await?;
        let items =
            listed.get("attributes").and_then(Json::as_array).ok_or_else(|| bad("no attributes list"))?;
        let map: HashMap<String, Attribute> =
            items.iter().filter_map(Attribute::parse).map(|a| (a.name.clone(), a)).collect();
        let map = Arc::new(map);
        *cache = Some(map.clone());
        Ok(map)
    }

    /// The connection's list: the configured id, or the list of that name
    /// (created in the first folder when missing).
    async fn list(&self) -> Result<u64, ConnectorError> {
        let mut cached = self.list_id.lock().await;
        if let Some(id) = *cached {
            return Ok(id);
        }
        let id = match &self.cfg.list {
            ListChoice::Id(id) => match self.get_json("list", &format!("contacts/lists/{id}"), &[]).await {
                Ok(_) => *id,
                Err(ConnectorError::Rejected { status: 404, message, .. }) => {
                    return Err(ConnectorError::Rejected {
                        vendor: VENDOR,
                        status: 404,
                        message: format!("list {id} does not exist in this Brevo account ({message})"),
                    });
                }
                Err(e) => return Err(e),
            },
            ListChoice::Name(name) => match self.find_list(name).await? {
                Some(id) => id,
                None => self.create_list(name).await?,
            },
        };
        *cached = Some(id);
        Ok(id)
    }

    async fn find_list(&self, name: &str) -> Result<Option<u64>, ConnectorError> {
        let mut offset = 0;
        loop {
            let query = [("limit", "50".to_string()), ("offset", offset.to_string()), ("sort", "asc".into())];
            let page = self.get_json("lists", "contacts/lists", &query).await?;
            let lists = page.get("lists").and_then(Json::as_array).cloned().unwrap_or_default();
            let hit = lists.iter().find(|l| {
                l.get("name")
                    .and_then(Json::as_str)
                    .is_some_and(|n| n.trim().eq_ignore_ascii_case(name.trim()))
            });
            if let Some(l) = hit {
                return l
                    .get("id")
                    .and_then(Json::as_u64)
                    .map(Some)
                    .ok_or_else(|| bad("a list without an id"));
            }
            offset += lists.len();
            if lists.len() < 50 {
                return Ok(None);
            }
        }
    }

    async fn create_list(&self, name: &str) -> Result<u64, ConnectorError> {
        let folders = self
            .get_json("folders", "contacts/folders", &[("limit", "1".into()), ("offset", "0".into())])
            .await?;
        let folder = match folders.pointer("/folders/0/id").and_then(Json::as_u64) {
            Some(f) => f,
            None => {
                let made = self
                    .call(
                        "create_folder",
                        Method::POST,
                        "contacts/folders",
                        &[],
                        Some(&json!({"name": "crmsync"})),
                    )
                    .await?
                    .json::<Json>(VENDOR)?;
                made.get("id").and_then(Json::as_u64).ok_or_else(|| bad("a folder created without an id"))?
            }
        };
        let body = json!({"name": name.trim(), "folderId": folder});
        let made = self
            .call("create_list", Method::POST, "contacts/lists", &[], Some(&body))
            .await?
            .json::<Json>(VENDOR)?;
        let id = made.get("id").and_then(Json::as_u64).ok_or_else(|| bad("a list created without an id"))?;
        tracing::info!(vendor = VENDOR, list = id, "created the connection's Brevo list");
        Ok(id)
    }

    /// A contact's JSON as a record: every attribute the account has (empty
    /// ones as null, so a value cleared in Brevo reads as cleared).
    fn to_record(c: &Json, attrs: &HashMap<String, Attribute>) -> Record {
        let mut rec = Record::new(System::Brevo, "contact");
        rec.id = id_of(c);
        rec.modified_at = c.get("modifiedAt").and_then(Json::as_str).and_then(parse_ts);
        let email = c.get("email").and_then(Json::as_str).unwrap_or("");
        rec.fields.insert("email".into(), if email.is_empty() { Value::Null } else { Value::text(email) });
        for (name, a) in attrs {
            if !a.computed && name != "EMAIL" {
                rec.fields.insert(name.clone(), Value::Null);
            }
        }
        if let Some(values) = c.get("attributes").and_then(Json::as_object) {
            for (name, v) in values {
                let name = name.to_ascii_uppercase();
                let value = match attrs.get(&name) {
                    Some(a) => a.read(v),
                    None => attributes::plain(&name, v),
                };
                rec.fields.insert(name, value);
            }
        }
        if c.get("emailBlacklisted").and_then(Json::as_bool) == Some(true) {
            rec.set(crmsync_core::connector::fields::UNSUBSCRIBE, Value::Boolean(true));
        }
        rec
    }

    fn contacts_of(page: &Json) -> Result<Vec<Json>, ConnectorError> {
        match page.get("contacts") {
            Some(Json::Array(items)) => Ok(items.clone()),
            // Brevo leaves `contacts` out of an empty page.
            None | Some(Json::Null) => Ok(Vec::new()),
            Some(_) => Err(bad("contacts is not a list")),
        }
    }

    /// One page of the list's contacts, oldest created first.
    async fn list_page(
        &self,
        since: Option<DateTime<Utc>>,
        offset: usize,
        limit: usize,
        descending: bool,
    ) -> Result<(Vec<Json>, Option<DateTime<Utc>>), ConnectorError> {
        let list = self.list().await?;
        let mut query = vec![
            ("listIds", list.to_string()),
            ("limit", limit.to_string()),
            ("offset", offset.to_string()),
            ("sort", if descending { "desc" } else { "asc" }.to_string()),
        ];
        if let Some(t) = since {
            query.push(("modifiedSince", since_param(t)));
        }
        let reply = self.call("contacts", Method::GET, "contacts", &query, None).await?;
        Ok((Self::contacts_of(&reply.json(VENDOR)?)?, reply.date()))
    }

    /// A contact by id, email or phone; `None` when Brevo has none.
    async fn contact(&self, identifier: &str, kind: &str) -> Result<Option<Json>, ConnectorError> {
        let path = format!("contacts/{}", urlencode(identifier));
        match self.get_json("contact", &path, &[("identifierType", kind.to_string())]).await {
            Ok(c) => Ok(Some(c)),
            Err(ConnectorError::Rejected { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Percent-encodes a path segment (an email's `+` and `@`).
fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'@' => out.push(b as char),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[async_trait]
impl Connector for BrevoConnector {
    fn calls(&self) -> u64 {
        self.http.calls()
    }

    fn calls_by_endpoint(&self) -> Vec<(&'static str, u64)> {
        self.http.calls_by_endpoint()
    }

    fn system(&self) -> System {
        System::Brevo
    }

    fn vendor(&self) -> &'static str {
        VENDOR
    }

    /// Checks the key (`GET /account`), then the list.
    async fn connect(&self) -> Result<(), ConnectorError> {
        self.get_json("connect", "account", &[]).await?;
        self.list().await.map(|_| ())
    }

    fn limits(&self) -> ConnectorLimits {
        ConnectorLimits {
            max_write_batch: WRITE_LIMIT,
            max_page: PAGE_LIMIT,
            requests_per_second: self.cfg.requests_per_second,
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(vendor = VENDOR, object, limit))]
    async fn fetch_changes(
        &self,
        object: &str,
        since: Option<&Cursor>,
        limit: usize,
    ) -> Result<Changes, ConnectorError> {
        if object != "contact" {
            return Err(unsupported(object));
        }
        let limit = limit.clamp(1, PAGE_LIMIT);
        let mut cursor = ContactCursor::decode(since)?;
        let offset = cursor.scan.map_or(0, |(offset, _)| offset);
        let asked = Utc::now();
        let (page, date) = self.list_page(cursor.watermark, offset, limit, false).await?;
        let began = cursor.scan.map_or_else(|| date.unwrap_or(asked), |(_, began)| began);
        let attrs = self.attributes(false).await?;
        let records: Vec<Record> = page.iter().map(|c| Self::to_record(c, &attrs)).collect();
        if records.iter().any(|r| r.id.is_none() || r.modified_at.is_none()) {
            return Err(bad("a contact without id or modifiedAt"));
        }
        let more = page.len() >= limit;
        cursor.scan = if more {
            Some((offset + page.len(), began))
        } else {
            // The scan is complete: the window moves on (never back).
            cursor.watermark = Some(began - DATE_SLACK).max(cursor.watermark);
            None
        };
        Ok(Changes { records, next: Some(cursor.encode()), more, ..Changes::default() })
    }

    async fn get(&self, object: &str, ids: &[String]) -> Result<Vec<Record>, ConnectorError> {
        if object != "contact" {
            return Err(unsupported(object));
        }
        let attrs = self.attributes(false).await?;
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_LIMIT) {
            if chunk.iter().any(|id| id.parse::<u64>().is_err()) {
                return Err(bad(format!("not Brevo contact ids: {}", chunk.join(","))));
            }
            let query =
                [("ids", chunk.join(",")), ("limit", IDS_LIMIT.to_string()), ("sort", "asc".to_string())];
            let page = Self::contacts_of(&self.get_json("contacts_by_id", "contacts", &query).await?)?;
            out.extend(page.iter().map(|c| Self::to_record(c, &attrs)));
        }
        Ok(out)
    }

    async fn find_by_email(
        &self,
        object: &str,
        emails: &[String],
    ) -> Result<BTreeMap<String, Vec<String>>, ConnectorError> {
        if object != "contact" {
            return Err(unsupported(object));
        }
        let mut wanted: Vec<String> =
            emails.iter().map(|e| e.trim().to_lowercase()).filter(|e| e.contains('@')).collect();
        wanted.sort();
        wanted.dedup();
        let found: Vec<Result<(String, Option<String>), ConnectorError>> = futures_util::stream::iter(wanted)
            .map(|email| async move {
                let c = self.contact(&email, "email_id").await?;
                Ok((email, c.as_ref().and_then(id_of)))
            })
            .buffered(self.cfg.concurrency.max(1))
            .collect()
            .await;
        let mut out = BTreeMap::new();
        for r in found {
            if let (email, Some(id)) = r? {
                out.insert(email, vec![id]);
            }
        }
        Ok(out)
    }

    async fn write(&self, object: &str, writes: Vec<Write>) -> Result<Vec<WriteResult>, ConnectorError> {
        if object != "contact" {
            return Err(unsupported(object));
        }
        self.write_contacts(writes).await
    }

    async fn list_ids(
        &self,
        object: &str,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<(Vec<String>, Option<Cursor>), ConnectorError> {
        if object != "contact" {
            return Err(unsupported(object));
        }
        let limit = limit.clamp(1, PAGE_LIMIT);
        let offset: usize = match after {
            Some(c) => c.0.parse().map_err(|_| ConnectorError::Rejected {
                vendor: VENDOR,
                status: 0,
                message: format!("not an offset cursor: {}", c.0),
            })?,
            None => 0,
        };
        let (page, _) = self.list_page(None, offset, limit, false).await?;
        let ids: Vec<String> = page.iter().filter_map(id_of).collect();
        let next = (page.len() == limit).then(|| Cursor((offset + page.len()).to_string()));
        Ok((ids, next))
    }
}

/// People and consent only.
#[async_trait]
impl MarketingApi for BrevoConnector {
    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    fn creates_in_salesforce(&self) -> Option<bool> {
        Some(self.cfg.create_in_salesforce)
    }

    fn monthly_tasks(&self) -> Option<u64> {
        self.cfg.monthly_tasks
    }

    /// Brevo identifies a contact by email or by SMS number.
    fn identifier_fields(&self) -> &'static [&'static str] {
        &["email", "SMS"]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let t = parse_ts("2024-01-02T03:04:05.123Z").expect("t");
        let scanning = ContactCursor { watermark: Some(t), scan: Some((2000, t)) };
        assert_eq!(ContactCursor::decode(Some(&scanning.encode())).expect("c"), scanning);
        let idle = ContactCursor { watermark: None, scan: None };
        assert_eq!(ContactCursor::decode(Some(&idle.encode())).expect("c"), idle);
        assert!(ContactCursor::decode(Some(&Cursor("v2|x".into()))).is_err());
        // A scan an earlier version had in progress starts again.
        let b1 =
            ContactCursor::decode(Some(&Cursor("b1|2024-01-02T03:04:05.123Z|2000|-".into()))).expect("c");
        assert_eq!((b1.watermark, b1.scan), (Some(t), None));
        assert_eq!(since_param(t), "2024-01-02T03:04:05.123Z");
        assert_eq!(urlencode("a+b@x.com"), "a%2Bb@x.com");
    }
}
