//! The ActiveCampaign connector (API v3) over reqwest.
//!
//! # What it owns
//! - Auth: the `Api-Token` header. One rate limiter of `requests_per_second`
//!   (AC: 5/s per account, shared by every key) per account URL, shared by
//!   every connection to that account ([`crate::ratelimit`]);
//!   429 waits out `Retry-After`.
//! - Records: objects `contact` and `account` (see `accounts`). Fields: `email`, `firstName`, `lastName`,
//!   `phone`; custom fields by personalization tag (`INDUSTRY` or
//!   `%INDUSTRY%`), resolved to field ids through `/fields` (cached). Write-only
//!   pseudo-fields: `tags` (text list of tags to add; missing tags are
//!   created) and `account` (account name: found or created, and the contact
//!   linked to it).
//! - Change reads: every contact `filters[updated_after]` (a date) lets
//!   through, scanned by id (`orders[id]`, `id_greater`); those updated since
//!   the previous scan began, by AC's clock, are the changes (`ContactCursor`).
//! - Writes (`write`): updates by id go through `PUT /contacts/{id}` (an email
//!   change stays the same person); email-keyed and new contacts go through
//!   `/contact/sync` concurrently for small batches, and through
//!   `/import/bulk_import` (≤ 250 a call, polled with `/import/info`) from
//!   `bulk_threshold` on. Both are idempotent by email.

mod accounts;
mod config;
pub mod marketing;
mod write;

pub use config::{CAPABILITIES, VENDOR_ENTRY};

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use crmsync_sdk::types::{Record, System, Value};
use futures_util::StreamExt;
use serde_json::Value as Json;
use tokio::sync::Mutex;

use crate::http::{DATE_SLACK, Http, HttpOptions, Reply, status_error};
use crate::ratelimit;
use crate::{
    Capabilities, Changes, Connector, ConnectorError, ConnectorLimits, Cursor, MarketingApi, Write,
    WriteResult,
};
use crmsync_core::Secret;
use crmsync_core::activity::{Activity, Automation, Campaign};

const VENDOR: &str = "ActiveCampaign";
/// Most contacts one bulk import takes.
pub const IMPORT_LIMIT: usize = 250;
/// Most records one list call returns.
pub const PAGE_LIMIT: usize = 100;
/// The contact fields that are not custom fields.
const STANDARD: [&str; 4] = ["email", "firstName", "lastName", "phone"];

#[derive(Debug, Clone)]
pub struct ActiveCampaignConfig {
    /// The account's API URL, e.g. `https://acme.api-us1.com` (`/api/3` is added).
    pub api_url: String,
    pub api_token: Secret,
    /// The account's rate limit, shared by every connection to it.
    pub requests_per_second: Option<f64>,
    /// Upserts of at least this many contacts go through bulk import.
    pub bulk_threshold: usize,
    /// `/contact/sync` calls in flight at once (the limiter still paces them).
    pub concurrency: usize,
    /// Pause between `/import/info` polls of an unfinished import.
    pub import_poll: Duration,
    /// Read custom field values on change reads and `get` (one call per contact).
    pub read_field_values: bool,
    pub http: HttpOptions,
}

impl ActiveCampaignConfig {
    pub fn new(api_url: impl Into<String>, api_token: Secret) -> Self {
        ActiveCampaignConfig {
            api_url: api_url.into(),
            api_token,
            requests_per_second: Some(5.0),
            bulk_threshold: 10,
            concurrency: 5,
            import_poll: Duration::from_secs(1),
            read_field_values: true,
            http: HttpOptions::default(),
        }
    }
}

/// A contact custom field.
#[derive(Debug, Clone)]
struct Field {
    id: String,
    perstag: String,
    kind: String,
}

pub struct ActiveCampaignConnector {
    cfg: ActiveCampaignConfig,
    base: String,
    http: Http,
    /// Custom fields by upper-cased personalization tag.
    fields: Mutex<Option<Arc<HashMap<String, Field>>>>,
    /// Tag ids and account ids by lower-cased name.
    tags: Mutex<HashMap<String, String>>,
    accounts: Mutex<HashMap<String, String>>,
    /// Account custom fields by lower-cased label.
    account_fields: Mutex<Option<Arc<accounts::AccountFields>>>,
}

/// AC error bodies: `{"errors":[{"title","code"}]}` (422), `{"message"}`.
fn classify(reply: &Reply) -> ConnectorError {
    let body: Json = serde_json::from_slice(&reply.body).unwrap_or(Json::Null);
    let first = body.get("errors").and_then(|e| e.get(0));
    let message = match first {
        Some(e) => {
            let code = e.get("code").and_then(Json::as_str).unwrap_or("invalid");
            let title = e.get("title").and_then(Json::as_str).unwrap_or("");
            format!("{code}: {title}")
        }
        None => body
            .get("message")
            .and_then(Json::as_str)
            .map(String::from)
            .unwrap_or_else(|| reply.status.to_string()),
    };
    match reply.status.as_u16() {
        403 => ConnectorError::Auth { vendor: VENDOR, message },
        _ => status_error(VENDOR, reply, message),
    }
}

fn unsupported(object: &str) -> ConnectorError {
    ConnectorError::Rejected {
        vendor: VENDOR,
        status: 0,
        message: format!("ActiveCampaign object {object:?} is not supported here (\"contact\", \"account\")"),
    }
}

fn bad(message: impl Into<String>) -> ConnectorError {
    ConnectorError::BadResponse { vendor: VENDOR, message: message.into() }
}

/// A JSON id that AC may send as a string or a number.
fn id_text(v: Option<&Json>) -> Option<String> {
    match v? {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim()).ok().map(|t| t.with_timezone(&Utc))
}

/// Where the contact change read stands. AC documents `filters[updated_after]`
/// as a *date* and no ordering by update time, so a read is a scan of every
/// contact updated since the day before the watermark (the date is read in
/// the account's time zone), paged by id (`orders[id]=ASC`, `id_greater`),
/// keeping those updated at or after the watermark. A completed scan moves
/// the watermark to the moment the scan began by AC's clock (the `Date` of
/// its first answer) less [`DATE_SLACK`]: what changed before then the scan
/// read, however long it ran; what changed after, the next scan keeps.
#[derive(Debug, Clone, PartialEq)]
struct ContactCursor {
    watermark: Option<DateTime<Utc>>,
    /// A scan in progress: the last id read and when the scan began.
    scan: Option<(u64, DateTime<Utc>)>,
}

impl ContactCursor {
    fn decode(c: Option<&Cursor>) -> Result<ContactCursor, ConnectorError> {
        let Some(c) = c else { return Ok(ContactCursor { watermark: None, scan: None }) };
        let bad = || ConnectorError::Rejected {
            vendor: VENDOR,
            status: 0,
            message: format!("not an ActiveCampaign cursor: {}", c.0),
        };
        let time = |t: &str| if t == "-" { Ok(None) } else { parse_ts(t).map(Some).ok_or_else(bad) };
        let parts: Vec<&str> = c.0.split('|').collect();
        match parts.as_slice() {
            ["v3", w] => Ok(ContactCursor { watermark: time(w)?, scan: None }),
            ["v3", w, id, began] => Ok(ContactCursor {
                watermark: time(w)?,
                scan: Some((id.parse().map_err(|_| bad())?, parse_ts(began).ok_or_else(bad)?)),
            }),
            // An earlier version's cursor: its watermark stands; a scan it
            // had in progress starts again (it read again, never missed).
            ["v2", w, ..] => Ok(ContactCursor { watermark: time(w)?, scan: None }),
            [t, ..] => Ok(ContactCursor { watermark: Some(parse_ts(t).ok_or_else(bad)?), scan: None }),
            [] => Err(bad()),
        }
    }

    fn encode(&self) -> Cursor {
        let t = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        let w = self.watermark.map_or("-".into(), t);
        Cursor(match self.scan {
            None => format!("v3|{w}"),
            Some((id, began)) => format!("v3|{w}|{id}|{}", t(began)),
        })
    }

    /// The `filters[updated_after]` date of this scan: the day before the
    /// watermark's (UTC) date, so any account time zone is covered.
    fn window(&self) -> Option<String> {
        self.watermark.map(day_before)
    }
}

/// A day-granular `filters[updated_after]` value covering `t` in any time zone.
fn day_before(t: DateTime<Utc>) -> String {
    (t.date_naive() - chrono::Duration::days(1)).format("%Y-%m-%d").to_string()
}

impl ActiveCampaignConnector {
    pub fn new(cfg: ActiveCampaignConfig) -> Result<ActiveCampaignConnector, ConnectorError> {
        let base = format!("{}/api/3", cfg.api_url.trim_end_matches('/'));
        let mut http = Http::new(VENDOR, cfg.http.clone(), classify)?;
        if let Some(rps) = cfg.requests_per_second {
            http = http.with_limiter(ratelimit::shared(&cfg.api_url, rps));
        }
        Ok(ActiveCampaignConnector {
            cfg,
            base,
            http,
            fields: Mutex::default(),
            tags: Mutex::default(),
            accounts: Mutex::default(),
            account_fields: Mutex::default(),
        })
    }

    async fn get_reply(
        &self,
        what: &'static str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Reply, ConnectorError> {
        let url = format!("{}/{path}", self.base);
        let token = self.cfg.api_token.expose();
        self.http.send(what, |c| c.get(&url).header("Api-Token", token).query(query)).await
    }

    async fn get_json(
        &self,
        what: &'static str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Json, ConnectorError> {
        self.get_reply(what, path, query).await?.json(VENDOR)
    }

    async fn send_json(
        &self,
        what: &'static str,
        method: reqwest::Method,
        path: &str,
        body: &Json,
    ) -> Result<Reply, ConnectorError> {
        let url = format!("{}/{path}", self.base);
        let token = self.cfg.api_token.expose();
        self.http.send(what, |c| c.request(method.clone(), &url).header("Api-Token", token).json(body)).await
    }

    /// Custom fields by perstag, loaded once (again when `reload`).
    async fn fields(&self, reload: bool) -> Result<Arc<HashMap<String, Field>>, ConnectorError> {
        let mut cache = self.fields.lock().await;
        if let (Some(f), false) = (cache.as_ref(), reload) {
            return Ok(f.clone());
        }
        let mut map = HashMap::new();
        let mut offset = 0;
        loop {
            let page = self
                .get_json(
                    "fields",
                    "fields",
                    &[("limit", PAGE_LIMIT.to_string()), ("offset", offset.to_string())],
                )
                .await?;
            let items = page.get("fields").and_then(Json::as_array).cloned().unwrap_or_default();
            for f in &items {
                if let (Some(id), Some(tag)) = (id_text(f.get("id")), f.get("perstag").and_then(Json::as_str))
                {
                    let kind = f.get("type").and_then(Json::as_str).unwrap_or("text").to_string();
                    map.insert(tag.to_ascii_uppercase(), Field { id, perstag: tag.to_string(), kind });
                }
            }
            offset += items.len();
            if items.len() < PAGE_LIMIT {
                break;
            }
        }
        let map = Arc::new(map);
        *cache = Some(map.clone());
        Ok(map)
    }

    /// A contact JSON as a record (custom field values added by [`Self::with_field_values`]).
    fn to_record(c: &Json) -> Record {
        let mut rec = Record::new(System::ActiveCampaign, "contact");
        rec.id = id_text(c.get("id"));
        rec.modified_at = c.get("udate").and_then(Json::as_str).and_then(parse_ts);
        for k in STANDARD {
            let v = c.get(k).and_then(Json::as_str).unwrap_or("");
            rec.fields.insert(k.to_string(), if v.is_empty() { Value::Null } else { Value::text(v) });
        }
        rec
    }

    /// Reads each record's custom field values (one call per contact, paced).
    /// Adds each record's custom field values, with the fewer calls of two
    /// documented ways: per field, the account's `/fieldValues?filters[fieldid]`
    /// listing (100 a page), or per contact, `/contacts/{id}/fieldValues`. The
    /// first page of each field's listing tells its size, so the choice is
    /// made before paying for it.
    async fn with_field_values(&self, mut records: Vec<Record>) -> Result<Vec<Record>, ConnectorError> {
        if !self.cfg.read_field_values || records.is_empty() {
            return Ok(records);
        }
        let fields = self.fields(false).await?;
        if fields.is_empty() {
            return Ok(records);
        }
        let by_id: HashMap<&str, &Field> = fields.values().map(|f| (f.id.as_str(), f)).collect();
        let wanted: HashMap<String, usize> =
            records.iter().enumerate().filter_map(|(i, r)| Some((r.id.clone()?, i))).collect();
        let values = if wanted.len() > 2 * fields.len() {
            self.field_values_by_field(&fields, &wanted).await?
        } else {
            None
        };
        let values = match values {
            Some(v) => v,
            None => self.field_values_by_contact(&records).await?,
        };
        for v in values {
            let (Some(contact), Some(f)) = (
                id_text(v.get("contact")).and_then(|c| wanted.get(&c).copied()),
                id_text(v.get("field")).and_then(|id| by_id.get(id.as_str()).copied()),
            ) else {
                continue;
            };
            let raw = v.get("value").and_then(Json::as_str).unwrap_or("");
            records[contact].fields.insert(f.perstag.clone(), write::from_ac(&f.kind, raw));
        }
        Ok(records)
    }

    /// Marks the records unsubscribed from a list (`status=2`) with the
    /// `unsubscribe` pseudo-field: one call per page (`ids` + `status`).
    async fn with_unsubscribes(&self, mut records: Vec<Record>) -> Result<Vec<Record>, ConnectorError> {
        let ids: Vec<String> = records.iter().filter_map(|r| r.id.clone()).collect();
        if ids.is_empty() {
            return Ok(records);
        }
        let mut out = std::collections::HashSet::new();
        for chunk in ids.chunks(PAGE_LIMIT) {
            let query = vec![
                ("ids", chunk.join(",")),
                ("status", "2".to_string()),
                ("limit", PAGE_LIMIT.to_string()),
            ];
            out.extend(self.contacts(query).await?.iter().filter_map(|c| id_text(c.get("id"))));
        }
        for r in &mut records {
            if r.id.as_ref().is_some_and(|id| out.contains(id)) {
                r.set(crmsync_core::connector::fields::UNSUBSCRIBE, Value::Boolean(true));
            }
        }
        Ok(records)
    }

    /// One call per contact.
    async fn field_values_by_contact(&self, records: &[Record]) -> Result<Vec<Json>, ConnectorError> {
        let ids: Vec<String> = records.iter().filter_map(|r| r.id.clone()).collect();
        let answers: Vec<Result<Json, ConnectorError>> = futures_util::stream::iter(ids)
            .map(|id| async move {
                self.get_json("contact_field_values", &format!("contacts/{id}/fieldValues"), &[]).await
            })
            .buffered(self.cfg.concurrency.max(1))
            .collect()
            .await;
        let mut out = Vec::new();
        for answer in answers {
            let answer = answer?;
            for v in answer.get("fieldValues").and_then(Json::as_array).into_iter().flatten() {
                // The contact's own listing: the contact is the one asked for.
                out.push(v.clone());
            }
        }
        Ok(out)
    }

    /// Each field's whole listing, when that costs fewer calls than one per
    /// contact; `None` (after one page per field) when it would not.
    async fn field_values_by_field(
        &self,
        fields: &HashMap<String, Field>,
        wanted: &HashMap<String, usize>,
    ) -> Result<Option<Vec<Json>>, ConnectorError> {
        let page = |field: &str, offset: usize| {
            vec![
                ("filters[fieldid]", field.to_string()),
                ("limit", PAGE_LIMIT.to_string()),
                ("offset", offset.to_string()),
            ]
        };
        let mut out = Vec::new();
        let mut rest = Vec::new();
        let mut cost = 0;
        for f in fields.values() {
            let first = self.get_json("field_values", "fieldValues", &page(&f.id, 0)).await?;
            let items = first.get("fieldValues").and_then(Json::as_array).cloned().unwrap_or_default();
            let total = first
                .get("meta")
                .and_then(|m| m.get("total"))
                .and_then(|t| {
                    t.as_str().and_then(|s| s.parse().ok()).or_else(|| t.as_u64().map(|n| n as usize))
                })
                .unwrap_or(items.len());
            cost += total.div_ceil(PAGE_LIMIT).saturating_sub(1);
            rest.push((f.id.clone(), items.len(), total));
            out.extend(items);
        }
        if cost >= wanted.len() {
            return Ok(None);
        }
        for (field, mut offset, total) in rest {
            while offset < total {
                let next = self.get_json("field_values", "fieldValues", &page(&field, offset)).await?;
                let items = next.get("fieldValues").and_then(Json::as_array).cloned().unwrap_or_default();
                if items.is_empty() {
                    break;
                }
                offset += items.len();
                out.extend(items);
            }
        }
        out.retain(|v| id_text(v.get("contact")).is_some_and(|c| wanted.contains_key(&c)));
        Ok(Some(out))
    }

    fn contacts_of(page: &Json) -> Vec<Json> {
        page.get("contacts").and_then(Json::as_array).cloned().unwrap_or_default()
    }

    /// One page of `/contacts` with these parameters.
    async fn contacts(&self, query: Vec<(&str, String)>) -> Result<Vec<Json>, ConnectorError> {
        Ok(Self::contacts_of(&self.get_json("contacts", "contacts", &query).await?))
    }
}

fn udate_id(c: &Json) -> Option<(DateTime<Utc>, u64)> {
    let t = c.get("udate").and_then(Json::as_str).and_then(parse_ts)?;
    let id = id_text(c.get("id"))?.parse().ok()?;
    Some((t, id))
}

#[async_trait]
impl Connector for ActiveCampaignConnector {
    fn calls(&self) -> u64 {
        self.http.calls()
    }

    fn calls_by_endpoint(&self) -> Vec<(&'static str, u64)> {
        self.http.calls_by_endpoint()
    }

    fn system(&self) -> System {
        System::ActiveCampaign
    }

    fn vendor(&self) -> &'static str {
        VENDOR
    }

    /// Checks the token (`crmsync connect test`).
    async fn connect(&self) -> Result<(), ConnectorError> {
        self.get_json("connect", "contacts", &[("limit", "1".into())]).await.map(|_| ())
    }

    fn limits(&self) -> ConnectorLimits {
        ConnectorLimits {
            max_write_batch: IMPORT_LIMIT,
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
        if object == "account" {
            return self.fetch_accounts(since, limit).await;
        }
        if object != "contact" {
            return Err(unsupported(object));
        }
        let limit = limit.clamp(1, PAGE_LIMIT);
        let mut cursor = ContactCursor::decode(since)?;
        let after_id = cursor.scan.map_or(0, |(id, _)| id);
        let mut query = vec![
            ("orders[id]", "ASC".to_string()),
            ("id_greater", after_id.to_string()),
            ("limit", limit.to_string()),
        ];
        if let Some(day) = cursor.window() {
            query.push(("filters[updated_after]", day));
        }
        let asked = Utc::now();
        let reply = self.get_reply("contacts", "contacts", &query).await?;
        let began = cursor.scan.map_or_else(|| reply.date().unwrap_or(asked), |(_, began)| began);
        let page = Self::contacts_of(&reply.json(VENDOR)?);
        let keyed: Vec<(DateTime<Utc>, u64)> = page.iter().filter_map(udate_id).collect();
        if keyed.len() != page.len() {
            return Err(bad("a contact without udate or id"));
        }
        let watermark = cursor.watermark;
        let fresh: Vec<Record> = page
            .iter()
            .zip(&keyed)
            .filter(|(_, (t, _))| watermark.is_none_or(|w| *t >= w))
            .map(|(c, _)| Self::to_record(c))
            .collect();
        let more = page.len() >= limit;
        cursor.scan = match (more, keyed.last()) {
            (true, Some((_, last))) => Some((*last, began)),
            _ => {
                // The scan is complete: the watermark moves (never back).
                cursor.watermark = Some(began - DATE_SLACK).max(watermark);
                None
            }
        };
        let records = self.with_unsubscribes(self.with_field_values(fresh).await?).await?;
        Ok(Changes { records, next: Some(cursor.encode()), more, ..Changes::default() })
    }

    async fn get(&self, object: &str, ids: &[String]) -> Result<Vec<Record>, ConnectorError> {
        if object == "account" {
            return self.get_accounts(ids).await;
        }
        if object != "contact" {
            return Err(unsupported(object));
        }
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(PAGE_LIMIT) {
            let found =
                self.contacts(vec![("ids", chunk.join(",")), ("limit", PAGE_LIMIT.to_string())]).await?;
            out.extend(found.iter().map(Self::to_record));
        }
        self.with_field_values(out).await
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
            emails.iter().map(|e| e.trim().to_lowercase()).filter(|e| !e.is_empty()).collect();
        wanted.sort();
        wanted.dedup();
        let found: Vec<Result<(String, Vec<String>), ConnectorError>> = futures_util::stream::iter(wanted)
            .map(|email| async move {
                let hits = self.contacts(vec![("email", email.clone())]).await?;
                Ok((email, hits.iter().filter_map(|c| id_text(c.get("id"))).collect()))
            })
            .buffered(self.cfg.concurrency.max(1))
            .collect()
            .await;
        let mut out = BTreeMap::new();
        for r in found {
            let (email, ids) = r?;
            if !ids.is_empty() {
                out.insert(email, ids);
            }
        }
        Ok(out)
    }

    async fn write(&self, object: &str, writes: Vec<Write>) -> Result<Vec<WriteResult>, ConnectorError> {
        if object == "account" {
            return self.write_accounts(writes).await;
        }
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
        let mut query = vec![("orders[id]", "ASC".to_string()), ("limit", limit.to_string())];
        if let Some(c) = after {
            let id: u64 = c.0.parse().map_err(|_| ConnectorError::Rejected {
                vendor: VENDOR,
                status: 0,
                message: format!("not an id cursor: {}", c.0),
            })?;
            query.push(("id_greater", id.to_string()));
        }
        let ids: Vec<String> =
            self.contacts(query).await?.iter().filter_map(|c| id_text(c.get("id"))).collect();
        let next = (ids.len() == limit).then(|| ids.last().map(|id| Cursor(id.clone()))).flatten();
        Ok((ids, next))
    }
}

/// Contacts, accounts, tags, the activity feed, campaigns and automations.
#[async_trait]
impl MarketingApi for ActiveCampaignConnector {
    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    /// One listing of the tag's contacts changed since the page's oldest
    /// record (`tagid` + `filters[updated_after]`), not one call per contact.
    async fn tagged(
        &self,
        object: &str,
        tag: &str,
        records: &[Record],
    ) -> Result<std::collections::HashSet<String>, ConnectorError> {
        if object != "contact" {
            return Err(unsupported(object));
        }
        let wanted: std::collections::HashSet<&str> =
            records.iter().filter_map(|r| r.id.as_deref()).collect();
        if wanted.is_empty() {
            return Ok(Default::default());
        }
        let tag_id = self.tag_id(tag).await?;
        let since = records.iter().filter_map(|r| r.modified_at).min();
        let mut found = std::collections::HashSet::new();
        let mut offset = 0;
        loop {
            let mut query = vec![
                ("tagid", tag_id.clone()),
                ("limit", PAGE_LIMIT.to_string()),
                ("offset", offset.to_string()),
                ("orders[id]", "ASC".to_string()),
            ];
            if let Some(t) = since {
                query.push(("filters[updated_after]", day_before(t)));
            }
            let page = self.contacts(query).await?;
            found.extend(
                page.iter().filter_map(|c| id_text(c.get("id"))).filter(|id| wanted.contains(id.as_str())),
            );
            offset += page.len();
            if page.len() < PAGE_LIMIT {
                return Ok(found);
            }
        }
    }

    async fn activities_after(
        &self,
        after: Option<DateTime<Utc>>,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<Activity>, ConnectorError> {
        ActiveCampaignConnector::activities_after(self, after, offset, limit).await
    }

    async fn recent_activities(&self, person: &str, limit: usize) -> Result<Vec<Activity>, ConnectorError> {
        ActiveCampaignConnector::recent_activities(self, person, limit).await
    }

    async fn campaigns(&self, label: Option<&str>) -> Result<Vec<Campaign>, ConnectorError> {
        ActiveCampaignConnector::campaigns(self, label).await
    }

    async fn automations(&self, label: Option<&str>) -> Result<Vec<Automation>, ConnectorError> {
        ActiveCampaignConnector::automations(self, label).await
    }

    async fn add_to_automation(&self, person: &str, automation: &str) -> Result<String, ConnectorError> {
        ActiveCampaignConnector::add_to_automation(self, person, automation).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let t = parse_ts("2024-01-02T03:04:05-05:00").expect("t");
        let scanning = ContactCursor { watermark: Some(t), scan: Some((7, t)) };
        assert_eq!(ContactCursor::decode(Some(&scanning.encode())).expect("c"), scanning);
        let idle = ContactCursor { watermark: None, scan: None };
        assert_eq!(ContactCursor::decode(Some(&idle.encode())).expect("c"), idle);
        assert!(ContactCursor::decode(Some(&Cursor("yesterday|x".into()))).is_err());
        // An earlier cursor's time carries over as the watermark.
        let old = ContactCursor::decode(Some(&Cursor("2024-01-02T08:04:05Z|12".into()))).expect("c");
        assert_eq!((old.watermark, old.scan), (Some(t), None));
        // A scan an earlier version had in progress starts again.
        let v2 = ContactCursor::decode(Some(&Cursor("v2|2024-01-02T08:04:05Z|7|-".into()))).expect("c");
        assert_eq!((v2.watermark, v2.scan), (Some(t), None));
        // The filter is a date, the day before the watermark's.
        assert_eq!(old.window().as_deref(), Some("2024-01-01"));
    }
}
