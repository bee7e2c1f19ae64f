//! The Mailchimp connector (Marketing API 3.0) over reqwest.
//!
//! # What it owns
//! - Auth: HTTP Basic with the API key (the data centre is the key's
//!   `-usN` suffix), or `Authorization: Bearer` with an OAuth access token
//!   and the account's API root. `connect` reads the API root (`GET /`) for
//!   the user's role — managers and above may write — and the audience.
//! - Throttling: Mailchimp allows 10 simultaneous connections per key, so
//!   every connector using one key shares one semaphore of
//!   `max_connections` (9) permits, held per attempt. 429, and a *bare* 403
//!   (no problem document: what Mailchimp's edge answers under load), are
//!   retried with backoff; a 403 problem document is a refusal of the user's
//!   rights.
//! - Records: object `member`, one audience per connection. The id of a
//!   member is its `contact_id`, which an email change keeps; member paths
//!   accept it in place of the subscriber hash. Fields: `email_address`, and
//!   the audience's merge fields by tag (`FNAME`, `COMPANY`, …); reads add
//!   the `unsubscribe` pseudo-field for unsubscribed members.
//! - Change reads (`since_last_changed`, `sort_field=last_changed` ascending):
//!   a `(last_changed, ids read at that second)` cursor, so members sharing
//!   one second across a page boundary are neither skipped nor read forever
//!   (a second with more than [`CURSOR_IDS`] members is paged by offset).
//!   The newest second read is read again until it is [`SETTLE`] old: a
//!   member changed later in that same second is not missed (what is read
//!   twice is an echo the engine skips).
//! - Writes: see `write`.

mod activity;
mod batches;
mod config;
mod write;

pub use config::{CAPABILITIES, SANDBOX_AUDIENCE, VENDOR_ENTRY, data_centre};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex as StdMutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use crmsync_core::Secret;
use crmsync_sdk::types::{Record, System, Value};
use futures_util::StreamExt;
use md5::{Digest, Md5};
use serde_json::Value as Json;
use tokio::sync::{Mutex, Semaphore};

use crate::http::{Http, HttpOptions, Reply, status_error};
use crate::{
    Capabilities, Changes, Connector, ConnectorError, ConnectorLimits, Cursor, MarketingApi, Write,
    WriteResult,
};

const VENDOR: &str = "Mailchimp";
/// Most members one batch-subscribe call takes.
pub const BATCH_LIMIT: usize = 500;
/// Most members one listing page returns.
pub const PAGE_LIMIT: usize = 1000;
/// Ids kept in a change cursor for the members read at its second.
const CURSOR_IDS: usize = 64;
/// How long after a second the change read takes it as complete (clock
/// skew included): a newer second is read again by the next read.
const SETTLE: chrono::Duration = chrono::Duration::minutes(2);
/// The object Leads and Contacts become.
const MEMBER: &str = "member";
/// The member's email field.
pub const EMAIL: &str = "email_address";

/// How the connector proves who it is.
#[derive(Debug, Clone)]
pub enum Auth {
    /// HTTP Basic, any user name, the key as password.
    ApiKey(Secret),
    /// An OAuth access token (`Authorization: Bearer`).
    Token(Secret),
}

impl Auth {
    fn secret(&self) -> &Secret {
        match self {
            Auth::ApiKey(s) | Auth::Token(s) => s,
        }
    }
}

/// The status a new member gets (`status_if_new`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Subscribed,
    Pending,
    Unsubscribed,
    Transactional,
}

impl Status {
    /// The statuses a member may be created with.
    pub fn new_member(s: &str) -> Option<Status> {
        match s.trim() {
            "subscribed" => Some(Status::Subscribed),
            "pending" => Some(Status::Pending),
            "unsubscribed" => Some(Status::Unsubscribed),
            "transactional" => Some(Status::Transactional),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Subscribed => "subscribed",
            Status::Pending => "pending",
            Status::Unsubscribed => "unsubscribed",
            Status::Transactional => "transactional",
        }
    }
}

/// What a deletion of a linked Salesforce record does to its member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDelete {
    /// `DELETE …/members/{id}`: archived (Mailchimp's delete; restorable).
    Archive,
    /// `POST …/members/{id}/actions/delete-permanent`: forgotten for good.
    Delete,
    /// Left as it is.
    Ignore,
}

impl OnDelete {
    pub fn parse(s: &str) -> Option<OnDelete> {
        match s.trim() {
            "archive" => Some(OnDelete::Archive),
            "delete" => Some(OnDelete::Delete),
            "ignore" => Some(OnDelete::Ignore),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct MailchimpConfig {
    /// The API root, e.g. `https://us21.api.mailchimp.com` (`/3.0` is added).
    pub api_url: String,
    pub auth: Auth,
    /// The audience (list id).
    pub audience: String,
    pub status_if_new: Status,
    pub on_delete: OnDelete,
    /// Requests in flight at once for this key (Mailchimp refuses the 11th).
    pub max_connections: usize,
    /// Email-keyed writes of at least this many members use batch subscribe.
    pub batch_threshold: usize,
    /// Email-keyed writes of at least this many members use `POST /batches`
    /// (asynchronous, results as a gzipped tar); 0: never.
    pub batch_operations_from: usize,
    /// Pause between polls of a `POST /batches` batch.
    pub batch_poll: Duration,
    pub http: HttpOptions,
}

impl MailchimpConfig {
    pub fn new(api_url: impl Into<String>, auth: Auth, audience: impl Into<String>) -> Self {
        MailchimpConfig {
            api_url: api_url.into(),
            auth,
            audience: audience.into(),
            status_if_new: Status::Subscribed,
            on_delete: OnDelete::Archive,
            max_connections: 9,
            batch_threshold: 10,
            batch_operations_from: 0,
            batch_poll: Duration::from_secs(2),
            http: HttpOptions::default(),
        }
    }
}

/// One audience merge field.
#[derive(Debug, Clone)]
pub(crate) struct MergeField {
    pub kind: String,
}

pub struct MailchimpConnector {
    cfg: MailchimpConfig,
    base: String,
    http: Http,
    /// The audience's merge fields by tag, loaded once (again on an unknown tag).
    merge_fields: Mutex<Option<Arc<HashMap<String, MergeField>>>>,
    /// The activity listing being paged (see [`activity`]).
    activities: Mutex<activity::Listing>,
}

/// MD5 of the lowercased, trimmed email: a member's id in member paths.
pub fn subscriber_hash(email: &str) -> String {
    hex::encode(Md5::digest(email.trim().to_lowercase().as_bytes()))
}

/// The semaphore of every connector using one key (keyed by the key's
/// hash, so the key itself is kept nowhere but in its [`Secret`]).
fn shared_permits(secret: &Secret, permits: usize) -> Arc<Semaphore> {
    static REGISTRY: OnceLock<StdMutex<HashMap<String, Arc<Semaphore>>>> = OnceLock::new();
    let mut map = REGISTRY.get_or_init(StdMutex::default).lock().unwrap_or_else(|e| e.into_inner());
    map.entry(subscriber_hash(secret.expose())).or_insert_with(|| Arc::new(Semaphore::new(permits))).clone()
}

/// A Mailchimp problem document's `title: detail` (and per-field errors).
fn problem_message(body: &Json) -> Option<String> {
    let title = body.get("title").and_then(Json::as_str)?;
    let detail = body.get("detail").and_then(Json::as_str).unwrap_or("");
    let fields: Vec<String> = body
        .get("errors")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let field = e.get("field").and_then(Json::as_str).unwrap_or("");
            let message = e.get("message").and_then(Json::as_str)?;
            Some(if field.is_empty() { message.to_string() } else { format!("{field}: {message}") })
        })
        .collect();
    Some(match (detail.is_empty(), fields.is_empty()) {
        (true, true) => title.to_string(),
        (false, true) => format!("{title}: {detail}"),
        (true, false) => format!("{title}: {}", fields.join("; ")),
        (false, false) => format!("{title}: {detail} ({})", fields.join("; ")),
    })
}

/// Mailchimp answers: problem documents (`{type, title, status, detail}`).
/// A 403 without one is its edge refusing a connection under load.
fn classify(reply: &Reply) -> ConnectorError {
    let body: Json = serde_json::from_slice(&reply.body).unwrap_or(Json::Null);
    let problem = problem_message(&body);
    let status = reply.status.as_u16();
    match (status, problem) {
        (401, Some(message)) => ConnectorError::Auth {
            vendor: VENDOR,
            message: format!("{message} (check the API key and its data-centre suffix)"),
        },
        (403, Some(message)) => ConnectorError::Auth {
            vendor: VENDOR,
            message: format!("{message} (the Mailchimp user behind this key needs manager rights or higher)"),
        },
        (403, None) => ConnectorError::Server {
            vendor: VENDOR,
            status,
            message: "a bare 403 (Mailchimp's answer to too many connections); retried".into(),
        },
        (_, Some(message)) => status_error(VENDOR, reply, message),
        (_, None) => status_error(VENDOR, reply, format!("{status} without a problem document")),
    }
}

pub(crate) fn bad(message: impl Into<String>) -> ConnectorError {
    ConnectorError::BadResponse { vendor: VENDOR, message: message.into() }
}

fn unsupported(object: &str) -> ConnectorError {
    ConnectorError::Rejected {
        vendor: VENDOR,
        status: 0,
        message: format!("Mailchimp object {object:?} is not supported here (\"member\")"),
    }
}

fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim()).ok().map(|t| t.with_timezone(&Utc))
}

fn fmt_ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A merge-field value as a typed value.
fn from_mc(v: &Json) -> Value {
    match v {
        Json::Null => Value::Null,
        Json::String(s) if s.trim().is_empty() => Value::Null,
        Json::String(s) => Value::text(s.clone()),
        Json::Number(n) => n.as_f64().map_or(Value::Null, Value::Number),
        Json::Bool(b) => Value::Boolean(*b),
        // An address: its parts, in postal order.
        Json::Object(map) => {
            let parts: Vec<&str> = ["addr1", "addr2", "city", "state", "zip", "country"]
                .iter()
                .filter_map(|k| map.get(*k).and_then(Json::as_str))
                .filter(|s| !s.trim().is_empty())
                .collect();
            if parts.is_empty() { Value::Null } else { Value::text(parts.join(", ")) }
        }
        Json::Array(items) => {
            Value::TextList(items.iter().filter_map(Json::as_str).map(String::from).collect())
        }
    }
}

/// Where the member change read stands: members changed at or after `at`,
/// except `ids` (read already at exactly `at`), or, when that second held
/// more members than a cursor keeps, except the first `skip` of them.
#[derive(Debug, Clone, PartialEq, Default)]
struct MemberCursor {
    at: Option<DateTime<Utc>>,
    ids: Vec<String>,
    skip: usize,
}

impl MemberCursor {
    fn decode(c: Option<&Cursor>) -> Result<MemberCursor, ConnectorError> {
        let Some(c) = c else { return Ok(MemberCursor::default()) };
        let bad = || ConnectorError::Rejected {
            vendor: VENDOR,
            status: 0,
            message: format!("not a Mailchimp cursor: {}", c.0),
        };
        let parts: Vec<&str> = c.0.split('|').collect();
        match parts.as_slice() {
            ["mc1", at, skip, ids] => Ok(MemberCursor {
                at: Some(parse_ts(at).ok_or_else(bad)?),
                skip: skip.parse().map_err(|_| bad())?,
                ids: ids.split(',').filter(|s| !s.is_empty()).map(String::from).collect(),
            }),
            _ => Err(bad()),
        }
    }

    fn encode(&self) -> Option<Cursor> {
        let at = self.at?;
        Some(Cursor(format!("mc1|{}|{}|{}", fmt_ts(at), self.skip, self.ids.join(","))))
    }
}

impl MailchimpConnector {
    pub fn new(cfg: MailchimpConfig) -> Result<MailchimpConnector, ConnectorError> {
        let base = format!("{}/3.0", cfg.api_url.trim_end_matches('/').trim_end_matches("/3.0"));
        let permits = shared_permits(cfg.auth.secret(), cfg.max_connections.clamp(1, 10));
        let http = Http::new(VENDOR, cfg.http.clone(), classify)?.with_concurrency(permits);
        Ok(MailchimpConnector {
            cfg,
            base,
            http,
            merge_fields: Mutex::default(),
            activities: Mutex::default(),
        })
    }

    pub fn audience(&self) -> &str {
        &self.cfg.audience
    }

    fn authorize(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.cfg.auth {
            Auth::ApiKey(k) => req.basic_auth("crmsync", Some(k.expose())),
            Auth::Token(t) => req.bearer_auth(t.expose()),
        }
    }

    /// `GET {base}/{path}`.
    pub(crate) async fn get_json(
        &self,
        what: &'static str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Json, ConnectorError> {
        let url = format!("{}/{path}", self.base);
        self.http.send(what, |c| self.authorize(c.get(&url)).query(query)).await?.json(VENDOR)
    }

    pub(crate) async fn send_json(
        &self,
        what: &'static str,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Json>,
    ) -> Result<Reply, ConnectorError> {
        let url = format!("{}/{path}", self.base);
        self.http
            .send(what, |c| {
                let req = self.authorize(c.request(method.clone(), &url)).query(query);
                match body {
                    Some(b) => req.json(b),
                    None => req,
                }
            })
            .await
    }

    /// `lists/{audience}` + `rest`.
    pub(crate) fn list_path(&self, rest: &str) -> String {
        format!("lists/{}{rest}", self.cfg.audience)
    }

    /// The audience's merge fields by tag, loaded once (again when `reload`).
    pub(crate) async fn merge_fields(
        &self,
        reload: bool,
    ) -> Result<Arc<HashMap<String, MergeField>>, ConnectorError> {
        let mut cache = self.merge_fields.lock().await;
        if let (Some(f), false) = (cache.as_ref(), reload) {
            return Ok(f.clone());
        }
        let page = self
            .get_json(
                "merge_fields",
                &self.list_path("/merge-fields"),
                &[("count", PAGE_LIMIT.to_string()), ("fields", "merge_fields.tag,merge_fields.type".into())],
            )
            .await?;
        let mut map = HashMap::new();
        for f in page.get("merge_fields").and_then(Json::as_array).into_iter().flatten() {
            if let Some(tag) = f.get("tag").and_then(Json::as_str) {
                let kind = f.get("type").and_then(Json::as_str).unwrap_or("text").to_string();
                map.insert(tag.to_ascii_uppercase(), MergeField { kind });
            }
        }
        let map = Arc::new(map);
        *cache = Some(map.clone());
        Ok(map)
    }

    /// A member JSON as a record.
    pub(crate) fn to_record(m: &Json) -> Option<Record> {
        let mut rec = Record::new(System::Mailchimp, MEMBER);
        rec.id = Some(m.get("contact_id").and_then(Json::as_str)?.to_string());
        rec.modified_at = m.get("last_changed").and_then(Json::as_str).and_then(parse_ts);
        let email = m.get(EMAIL).and_then(Json::as_str).unwrap_or("");
        rec.fields.insert(EMAIL.into(), if email.is_empty() { Value::Null } else { Value::text(email) });
        for (tag, v) in m.get("merge_fields").and_then(Json::as_object).into_iter().flatten() {
            rec.fields.insert(tag.clone(), from_mc(v));
        }
        if m.get("status").and_then(Json::as_str) == Some("unsubscribed") {
            rec.set(crmsync_core::connector::fields::UNSUBSCRIBE, Value::Boolean(true));
        }
        Some(rec)
    }

    /// One member by id, hash or email; `None` when absent (or archived).
    pub(crate) async fn member(&self, key: &str) -> Result<Option<Json>, ConnectorError> {
        match self.get_json("member", &self.list_path(&format!("/members/{key}")), &[]).await {
            Ok(m) if m.get("status").and_then(Json::as_str) == Some("archived") => Ok(None),
            Ok(m) => Ok(Some(m)),
            Err(ConnectorError::Rejected { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One page of the member listing.
    /// A page of members, and how many match the query (`total_items`).
    async fn members(&self, query: Vec<(&str, String)>) -> Result<(Vec<Json>, Option<u64>), ConnectorError> {
        let mut page = self.get_json("members", &self.list_path("/members"), &query).await?;
        let total = page.get("total_items").and_then(Json::as_u64);
        match page.get_mut("members").map(Json::take) {
            Some(Json::Array(members)) => Ok((members, total)),
            _ => Err(bad("a member page without members")),
        }
    }
}

#[async_trait]
impl Connector for MailchimpConnector {
    fn calls(&self) -> u64 {
        self.http.calls()
    }

    fn calls_by_endpoint(&self) -> Vec<(&'static str, u64)> {
        self.http.calls_by_endpoint()
    }

    fn system(&self) -> System {
        System::Mailchimp
    }

    fn vendor(&self) -> &'static str {
        VENDOR
    }

    /// The API root (the user's role) and the audience.
    async fn connect(&self) -> Result<(), ConnectorError> {
        let root = self.get_json("connect", "", &[("fields", "account_name,role".into())]).await?;
        let role = root.get("role").and_then(Json::as_str).unwrap_or("");
        if !matches!(role, "owner" | "admin" | "manager" | "") {
            return Err(ConnectorError::Auth {
                vendor: VENDOR,
                message: format!(
                    "the Mailchimp user behind this key is {role}: crmsync needs manager rights or higher"
                ),
            });
        }
        match self.get_json("audience", &self.list_path(""), &[("fields", "id,name".into())]).await {
            Ok(_) => Ok(()),
            Err(ConnectorError::Rejected { status: 404, message, .. }) => Err(ConnectorError::Rejected {
                vendor: VENDOR,
                status: 404,
                message: format!("audience {:?} not found ({message})", self.cfg.audience),
            }),
            Err(e) => Err(e),
        }
    }

    fn limits(&self) -> ConnectorLimits {
        ConnectorLimits { max_write_batch: BATCH_LIMIT, max_page: PAGE_LIMIT, requests_per_second: None }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(vendor = VENDOR, object, limit))]
    async fn fetch_changes(
        &self,
        object: &str,
        since: Option<&Cursor>,
        limit: usize,
    ) -> Result<Changes, ConnectorError> {
        if object != MEMBER {
            return Err(unsupported(object));
        }
        let limit = limit.clamp(1, PAGE_LIMIT);
        let cursor = MemberCursor::decode(since)?;
        let by_ids = cursor.skip == 0;
        let (offset, count) =
            if by_ids { (0, (limit + cursor.ids.len()).min(PAGE_LIMIT)) } else { (cursor.skip, limit) };
        let mut query = vec![
            ("sort_field", "last_changed".to_string()),
            ("sort_dir", "ASC".to_string()),
            ("count", count.to_string()),
            ("offset", offset.to_string()),
        ];
        if let Some(at) = cursor.at {
            query.push(("since_last_changed", fmt_ts(at)));
        }
        let (page, total) = self.members(query).await?;
        let full = page.len() >= count;
        let seen: HashSet<&str> = cursor.ids.iter().map(String::as_str).collect();
        let mut records = Vec::new();
        let mut next = cursor.clone();
        let mut cut = false;
        let mut consumed = 0;
        for m in &page {
            consumed += 1;
            let record = Self::to_record(m).ok_or_else(|| bad("a member without contact_id"))?;
            let at = record.modified_at.ok_or_else(|| bad("a member without last_changed"))?;
            let id = record.id.clone().unwrap_or_default();
            if by_ids && Some(at) == cursor.at && seen.contains(id.as_str()) {
                continue;
            }
            if records.len() == limit {
                cut = true;
                consumed -= 1;
                break;
            }
            if next.at != Some(at) {
                next = MemberCursor { at: Some(at), ids: Vec::new(), skip: 0 };
            }
            if next.skip > 0 || next.ids.len() >= CURSOR_IDS {
                // Too many members in one second for the cursor: by offset.
                next.skip = if next.skip > 0 { next.skip + 1 } else { next.ids.len() + 1 };
                next.ids.clear();
            } else {
                next.ids.push(id);
            }
            records.push(record);
        }
        let more = full || cut;
        let remaining = total.map(|t| t.saturating_sub((offset + consumed) as u64));
        // The newest second may still gain members (Mailchimp keeps whole
        // seconds): until it is safely past, the next read starts at it again.
        if !more
            && let Some(t) = next.at
            && t > Utc::now() - SETTLE
        {
            next = MemberCursor { at: Some(t), ids: Vec::new(), skip: 0 };
        }
        Ok(Changes {
            records,
            next: next.encode().or_else(|| since.cloned()),
            more,
            remaining,
            ..Changes::default()
        })
    }

    async fn get(&self, object: &str, ids: &[String]) -> Result<Vec<Record>, ConnectorError> {
        if object != MEMBER {
            return Err(unsupported(object));
        }
        let found: Vec<Result<Option<Json>, ConnectorError>> = futures_util::stream::iter(ids.to_vec())
            .map(|id| async move { self.member(&id).await })
            .buffered(self.cfg.max_connections.max(1))
            .collect()
            .await;
        let mut out = Vec::new();
        for f in found {
            out.extend(f?.as_ref().and_then(Self::to_record));
        }
        Ok(out)
    }

    async fn find_by_email(
        &self,
        object: &str,
        emails: &[String],
    ) -> Result<BTreeMap<String, Vec<String>>, ConnectorError> {
        if object != MEMBER {
            return Err(unsupported(object));
        }
        let mut wanted: Vec<String> =
            emails.iter().map(|e| e.trim().to_lowercase()).filter(|e| !e.is_empty()).collect();
        wanted.sort();
        wanted.dedup();
        let found: Vec<Result<(String, Option<Json>), ConnectorError>> = futures_util::stream::iter(wanted)
            .map(|email| async move {
                let m = self.member(&subscriber_hash(&email)).await?;
                Ok((email, m))
            })
            .buffered(self.cfg.max_connections.max(1))
            .collect()
            .await;
        let mut out = BTreeMap::new();
        for f in found {
            let (email, m) = f?;
            if let Some(id) = m.as_ref().and_then(|m| m.get("contact_id")).and_then(Json::as_str) {
                out.insert(email, vec![id.to_string()]);
            }
        }
        Ok(out)
    }

    async fn write(&self, object: &str, writes: Vec<Write>) -> Result<Vec<WriteResult>, ConnectorError> {
        if object != MEMBER {
            return Err(unsupported(object));
        }
        self.write_members(writes).await
    }

    /// Every member's id (archived members are gone), paged by offset.
    async fn list_ids(
        &self,
        object: &str,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<(Vec<String>, Option<Cursor>), ConnectorError> {
        if object != MEMBER {
            return Err(unsupported(object));
        }
        let limit = limit.clamp(1, PAGE_LIMIT);
        let offset: usize = match after {
            None => 0,
            Some(c) => c.0.parse().map_err(|_| ConnectorError::Rejected {
                vendor: VENDOR,
                status: 0,
                message: format!("not an offset cursor: {}", c.0),
            })?,
        };
        let (page, _) = self
            .members(vec![
                ("fields", "members.contact_id,total_items".into()),
                ("count", limit.to_string()),
                ("offset", offset.to_string()),
            ])
            .await?;
        let ids: Vec<String> = page
            .iter()
            .filter_map(|m| m.get("contact_id").and_then(Json::as_str))
            .map(String::from)
            .collect();
        let next = (page.len() == limit).then(|| Cursor((offset + page.len()).to_string()));
        Ok((ids, next))
    }
}

#[async_trait]
impl MarketingApi for MailchimpConnector {
    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    async fn activities_after(
        &self,
        after: Option<DateTime<Utc>>,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<crmsync_core::activity::Activity>, ConnectorError> {
        self.activities_page(after, offset, limit).await
    }

    async fn recent_activities(
        &self,
        person: &str,
        limit: usize,
    ) -> Result<Vec<crmsync_core::activity::Activity>, ConnectorError> {
        self.member_activities(person, limit).await
    }

    /// Every campaign of the audience (names for Tasks); Mailchimp has no labels.
    async fn campaigns(
        &self,
        label: Option<&str>,
    ) -> Result<Vec<crmsync_core::activity::Campaign>, ConnectorError> {
        if label.is_some() {
            return Err(self.unsupported("campaigns by label"));
        }
        self.campaign_names().await
    }

    /// A new audience merge field, within the plan's cap.
    async fn add_field(
        &self,
        name: &str,
        kind: &str,
        tag: Option<&str>,
        required: bool,
    ) -> Result<String, ConnectorError> {
        MailchimpConnector::add_merge_field(self, name, kind, tag, required).await
    }
}

/// The merge-field types Mailchimp has.
pub const MERGE_TYPES: [&str; 11] =
    ["text", "number", "address", "phone", "date", "url", "imageurl", "radio", "dropdown", "birthday", "zip"];

/// Most merge fields an audience may have (Premium plans; others have 30,
/// which Mailchimp itself enforces).
pub const MERGE_FIELD_CAP: usize = 80;

impl MailchimpConnector {
    /// `POST /lists/{id}/merge-fields`: refused before the call when the
    /// type is unknown or the audience is at the cap, naming the field; the
    /// new field's tag.
    pub async fn add_merge_field(
        &self,
        name: &str,
        kind: &str,
        tag: Option<&str>,
        required: bool,
    ) -> Result<String, ConnectorError> {
        let refuse = |message: String| ConnectorError::Rejected { vendor: VENDOR, status: 0, message };
        if name.trim().is_empty() {
            return Err(refuse("a merge field needs a name".into()));
        }
        if !MERGE_TYPES.contains(&kind) {
            return Err(refuse(format!(
                "{kind:?} is not a Mailchimp merge-field type ({})",
                MERGE_TYPES.join(", ")
            )));
        }
        let fields = self.merge_fields(true).await?;
        if fields.len() >= MERGE_FIELD_CAP {
            return Err(refuse(format!(
                "cannot add merge field {name:?}: audience {} already has {} merge fields, Mailchimp's cap of {MERGE_FIELD_CAP}",
                self.cfg.audience,
                fields.len()
            )));
        }
        let mut body = serde_json::json!({"name": name.trim(), "type": kind, "required": required});
        if let Some(t) = tag.map(str::trim).filter(|t| !t.is_empty()) {
            body["tag"] = serde_json::json!(t.to_ascii_uppercase());
        }
        let created = self
            .send_json(
                "add_merge_field",
                reqwest::Method::POST,
                &self.list_path("/merge-fields"),
                &[],
                Some(&body),
            )
            .await
            .map_err(|e| match e {
                ConnectorError::Rejected { status, message, .. } => {
                    refuse(format!("cannot add merge field {name:?}: {message} ({status})"))
                }
                other => other,
            })?
            .json::<Json>(VENDOR)?;
        self.merge_fields(true).await?;
        created
            .get("tag")
            .and_then(Json::as_str)
            .map(String::from)
            .ok_or_else(|| bad("a merge field without a tag"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_md5_of_the_lowercased_email() {
        assert_eq!(subscriber_hash(" Ann@Example.com "), subscriber_hash("ann@example.com"));
        assert_eq!(subscriber_hash("urist.mcvankab@freddiesjokes.com"), "62eeb292278cc15f5817cb78f7790b08");
    }

    #[test]
    fn cursors_round_trip() {
        let t = parse_ts("2024-01-02T03:04:05Z").unwrap();
        let c = MemberCursor { at: Some(t), ids: vec!["a".into(), "b".into()], skip: 0 };
        assert_eq!(MemberCursor::decode(c.encode().as_ref()).unwrap(), c);
        let c = MemberCursor { at: Some(t), ids: vec![], skip: 70 };
        assert_eq!(MemberCursor::decode(c.encode().as_ref()).unwrap(), c);
        assert!(MemberCursor::decode(Some(&Cursor("x".into()))).is_err());
        assert_eq!(MemberCursor::default().encode(), None);
    }

    #[test]
    fn bare_403_is_transient_and_a_problem_403_is_not() {
        let reply = |status: u16, body: &str| Reply {
            status: reqwest::StatusCode::from_u16(status).unwrap(),
            headers: Default::default(),
            body: body.as_bytes().to_vec(),
        };
        assert!(classify(&reply(403, "<html>Access Denied</html>")).is_transient());
        let forbidden = r#"{"title":"Forbidden","status":403,"detail":"You are not permitted"}"#;
        let e = classify(&reply(403, forbidden));
        assert!(!e.is_transient());
        assert!(e.to_string().contains("manager"), "{e}");
        assert!(classify(&reply(429, r#"{"title":"Too Many Requests","status":429}"#)).is_transient());
    }
}
