//! The Salesforce connector: REST API (SOQL query/queryAll, sObject
//! Collections, describe) and Bulk API 2.0, over reqwest.
//!
//! # What it owns
//! - Auth (`auth`): OAuth refresh-token flow, or the password grant (sandbox);
//!   a 401 `INVALID_SESSION_ID` refreshes once and retries the call.
//! - Change detection: one `queryAll` ordered by `(SystemModstamp, Id)` from a
//!   compound cursor — `WHERE SystemModstamp > :t OR (SystemModstamp = :t AND
//!   Id > :id)` — so records sharing a timestamp are never skipped, and the
//!   same query returns deletions and merges (`IsDeleted = true`,
//!   `MasterRecordId`) in order. Purged beyond the recycle bin is left to
//!   drift reconciliation ([`Connector::list_ids`]).
//! - Writes: sObject Collections, ≤ 200 records a call (update by `Id`,
//!   create, upsert by an external id for idempotent creates, delete). Writes
//!   keyed by email are looked up first (one SOQL `IN` per chunk) and become
//!   updates or creates; two records with one email is a per-record
//!   `DUPLICATE_EMAIL` error. `write` takes batches of any size: a group of
//!   at least `bulk_threshold` writes of one kind goes through one Bulk API
//!   2.0 ingest job instead (`bulk`).
//! - Values (`convert`): `describe` is cached per object and types every
//!   value both ways; what does not convert is a per-record error.
//! - API usage: `Sforce-Limit-Info` is read on every response
//!   ([`SalesforceApi::api_usage`]); `/limits` reads it on demand
//!   ([`SalesforceApi::refresh_usage`]).
//! - Lead conversion info for the engine: [`SalesforceConnector::converted_leads`].

mod auth;
mod bulk;
mod config;
pub mod convert;
pub mod tasks;

pub use config::SalesforceSection;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use crmsync_sdk::types::{Record, System, Value};
use serde_json::{Map, Value as Json};
use tokio::sync::Mutex;

use crate::http::{Http, HttpOptions, Reply, status_error};
use crate::{
    ApiUsage, Changes, Connector, ConnectorError, ConnectorLimits, Cursor, Deleted, SalesforceApi,
    VendorError, Write, WriteKey, WriteResult, Written,
};
pub use auth::SalesforceAuth;
use convert::{Describe, Out, record_error};
use crmsync_core::Secret;
use crmsync_core::activity::TaskRow;

const VENDOR: &str = "Salesforce";
/// Records per sObject Collections call.
pub const COLLECTION_LIMIT: usize = 200;
/// Most records one query page returns.
pub const MAX_PAGE: usize = 2000;
/// SOQL text budget per query, so the URL stays well under 16 KB.
const SOQL_BUDGET: usize = 12_000;

/// A parent record's field read with its child: `field` is selected when the
/// object has the `reference` field.
struct ParentField {
    reference: &'static str,
    field: &'static str,
}

/// The parent fields records carry: a Contact's account name (the
/// marketing account it joins).
const PARENT_FIELDS: &[ParentField] = &[ParentField { reference: "AccountId", field: "Account.Name" }];

/// How to reach one org.
#[derive(Debug, Clone)]
pub struct SalesforceConfig {
    /// Where the token endpoint lives: `https://login.salesforce.com`,
    /// `https://test.salesforce.com`, a My Domain, or the sandbox URL.
    pub login_url: String,
    /// `v60.0`.
    pub api_version: String,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub auth: SalesforceAuth,
    /// A group of at least this many writes of one kind goes through Bulk API 2.0.
    pub bulk_threshold: usize,
    /// Pause between Bulk job status polls.
    pub bulk_poll: Duration,
    /// External id field per object, for idempotent creates ([`WriteKey::New`]).
    pub external_ids: HashMap<String, String>,
    pub http: HttpOptions,
}

impl SalesforceConfig {
    pub fn new(login_url: impl Into<String>, client_id: impl Into<String>, auth: SalesforceAuth) -> Self {
        SalesforceConfig {
            login_url: login_url.into(),
            api_version: "v60.0".into(),
            client_id: client_id.into(),
            client_secret: None,
            auth,
            bulk_threshold: 2000,
            bulk_poll: Duration::from_secs(2),
            external_ids: HashMap::new(),
            http: HttpOptions::default(),
        }
    }
}

/// The latest `Sforce-Limit-Info: api-usage=N/M`.
#[derive(Debug, Default)]
struct Usage {
    used: AtomicU64,
    limit: AtomicU64,
}

pub struct SalesforceConnector {
    cfg: SalesforceConfig,
    http: Http,
    session: auth::Sessions,
    describes: Mutex<HashMap<String, Arc<Describe>>>,
    usage: Arc<Usage>,
    /// The org's time zone, read once.
    time_zone: Mutex<Option<Option<String>>>,
}

impl std::fmt::Debug for SalesforceConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SalesforceConnector").field("login_url", &self.cfg.login_url).finish_non_exhaustive()
    }
}

/// Maps a Salesforce error reply: `[{"message","errorCode"}]` (REST) or
/// `{"error","error_description"}` (OAuth).
fn classify(reply: &Reply) -> ConnectorError {
    let body: Json = serde_json::from_slice(&reply.body).unwrap_or(Json::Null);
    let first = body.get(0).unwrap_or(&body);
    let code = first.get("errorCode").or_else(|| first.get("error")).and_then(Json::as_str).unwrap_or("");
    let text =
        first.get("message").or_else(|| first.get("error_description")).and_then(Json::as_str).unwrap_or("");
    let message = if code.is_empty() { reply.status.to_string() } else { format!("{code}: {text}") };
    match (reply.status.as_u16(), code) {
        (403, "REQUEST_LIMIT_EXCEEDED") => ConnectorError::QuotaExceeded { vendor: VENDOR, message },
        (400, "invalid_grant" | "invalid_client" | "invalid_client_id" | "unsupported_grant_type") => {
            ConnectorError::Auth { vendor: VENDOR, message }
        }
        _ => status_error(VENDOR, reply, message),
    }
}

/// Per-item codes worth retrying later.
fn retryable_code(code: &str) -> bool {
    matches!(
        code,
        "UNABLE_TO_LOCK_ROW"
            | "ALL_OR_NONE_OPERATION_ROLLED_BACK"
            | "REQUEST_RUNNING_TOO_LONG"
            | "SERVER_UNAVAILABLE"
            | "QUERY_TIMEOUT"
            | "REQUEST_LIMIT_EXCEEDED"
    )
}

/// SOQL string literal.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn soql_datetime(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `timestamp|id` cursors.
fn encode_cursor(t: DateTime<Utc>, id: &str) -> Cursor {
    Cursor(format!("{}|{id}", soql_datetime(t)))
}

fn decode_cursor(c: &Cursor) -> Result<(DateTime<Utc>, String), ConnectorError> {
    let bad = || ConnectorError::Rejected {
        vendor: VENDOR,
        status: 0,
        message: format!("not a Salesforce cursor: {}", c.0),
    };
    let (t, id) = c.0.split_once('|').ok_or_else(bad)?;
    let t = convert::parse_datetime(t).ok_or_else(bad)?;
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(bad());
    }
    Ok((t, id.to_string()))
}

/// Splits `items` into `IN (...)` lists whose text stays within the budget.
fn in_lists(items: &[String], room: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for item in items {
        let q = quote(item);
        if !cur.is_empty() && cur.len() + q.len() + 1 > room {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(',');
        }
        cur.push_str(&q);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryPage {
    total_size: usize,
    #[serde(default)]
    next_records_url: Option<String>,
    records: Vec<Map<String, Json>>,
}

#[derive(serde::Deserialize)]
struct ItemResult {
    #[serde(default)]
    id: Option<String>,
    success: bool,
    #[serde(default)]
    errors: Vec<ItemError>,
    #[serde(default)]
    created: Option<bool>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemError {
    status_code: String,
    message: String,
}

impl ItemResult {
    fn outcome(self, fallback_id: Option<&str>, created: bool) -> WriteResult {
        if self.success {
            let id = self.id.or(fallback_id.map(String::from)).unwrap_or_default();
            return Ok(Written { id, created: self.created.unwrap_or(created) });
        }
        let first = self.errors.into_iter().next();
        let (code, message) = first
            .map_or(("UNKNOWN_EXCEPTION".into(), "failed without an error".into()), |e| {
                (e.status_code, e.message)
            });
        Err(VendorError { retryable: retryable_code(&code), code, message })
    }
}

/// How one write goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    Update,
    Create,
    Upsert,
    Delete,
}

/// A write ready to send: its index in the batch and its converted fields.
struct Prepared {
    index: usize,
    op: Op,
    id: Option<String>,
    fields: Vec<(String, Out)>,
}

impl SalesforceConnector {
    pub fn new(cfg: SalesforceConfig) -> Result<SalesforceConnector, ConnectorError> {
        let usage = Arc::new(Usage::default());
        let seen = usage.clone();
        let http = Http::new(VENDOR, cfg.http.clone(), classify)?.with_observer(Arc::new(move |headers| {
            let info = headers.get("sforce-limit-info").and_then(|v| v.to_str().ok());
            if let Some((used, limit)) = info.and_then(parse_limit_info) {
                seen.used.store(used, Ordering::Relaxed);
                seen.limit.store(limit, Ordering::Relaxed);
            }
        }));
        Ok(SalesforceConnector {
            cfg,
            http,
            session: auth::Sessions::default(),
            describes: Mutex::default(),
            usage,
            time_zone: Mutex::default(),
        })
    }

    /// A REST call under `/services/data/vNN.N/`, refreshing the session once on 401.
    async fn call(
        &self,
        what: &'static str,
        build: impl Fn(&reqwest::Client, &str, &str) -> reqwest::RequestBuilder,
    ) -> Result<Reply, ConnectorError> {
        let session = self.session.get(self).await?;
        let base = |s: &auth::Session| format!("{}/services/data/{}", s.instance_url, self.cfg.api_version);
        let first = {
            let url = base(&session);
            self.http
                .send(what, |c| build(c, &url, session.token.expose()).bearer_auth(session.token.expose()))
                .await
        };
        match first {
            Err(ConnectorError::Auth { .. }) => {
                tracing::info!(vendor = VENDOR, call = what, "session expired; refreshing");
                let fresh = self.session.refresh(self, &session).await?;
                let url = base(&fresh);
                self.http
                    .send(what, |c| build(c, &url, fresh.token.expose()).bearer_auth(fresh.token.expose()))
                    .await
            }
            other => other,
        }
    }

    /// The cached describe of `object`.
    pub async fn describe(&self, object: &str) -> Result<Arc<Describe>, ConnectorError> {
        let mut cache = self.describes.lock().await;
        if let Some(d) = cache.get(object) {
            return Ok(d.clone());
        }
        let reply =
            self.call("describe", |c, base, _| c.get(format!("{base}/sobjects/{object}/describe"))).await?;
        let d = Arc::new(Describe::from_json(&reply.body).map_err(|e| ConnectorError::BadResponse {
            vendor: VENDOR,
            message: format!("describe {object}: {e}"),
        })?);
        cache.insert(object.to_string(), d.clone());
        Ok(d)
    }

    /// One page of a SOQL query (`all` = queryAll) with the given batch size.
    async fn query_page(&self, soql: &str, all: bool, batch: usize) -> Result<QueryPage, ConnectorError> {
        let endpoint = if all { "queryAll" } else { "query" };
        let options = format!("batchSize={}", batch.clamp(200, MAX_PAGE));
        let reply = self
            .call("query", |c, base, _| {
                c.get(format!("{base}/{endpoint}"))
                    .query(&[("q", soql)])
                    .header("Sforce-Query-Options", options.as_str())
            })
            .await?;
        reply.json(VENDOR)
    }

    /// Every record a query returns, following `nextRecordsUrl`.
    async fn query_all_pages(&self, soql: &str) -> Result<Vec<Map<String, Json>>, ConnectorError> {
        let mut page = self.query_page(soql, false, MAX_PAGE).await?;
        let mut out = std::mem::take(&mut page.records);
        while let Some(next) = page.next_records_url.take() {
            let reply = self
                .call("query_more", |c, base, _| {
                    // nextRecordsUrl is absolute from the host: /services/data/vNN.N/query/...
                    let host = base.split("/services/data").next().unwrap_or(base);
                    c.get(format!("{host}{next}"))
                })
                .await?;
            page = reply.json(VENDOR)?;
            out.append(&mut page.records);
        }
        Ok(out)
    }

    fn to_record(&self, object: &str, d: &Describe, mut raw: Map<String, Json>) -> Record {
        raw.remove("attributes");
        let mut rec = Record::new(System::Salesforce, object);
        rec.id = raw.get("Id").and_then(Json::as_str).map(String::from);
        rec.modified_at = raw.get("SystemModstamp").and_then(Json::as_str).and_then(convert::parse_datetime);
        for (k, v) in raw {
            match v {
                // A parent's fields (`Account.Name`), flattened to dotted names.
                Json::Object(parent) => {
                    for (field, v) in parent.into_iter().filter(|(f, _)| f != "attributes") {
                        rec.fields.insert(format!("{k}.{field}"), convert::from_salesforce(None, &v));
                    }
                }
                v => {
                    let value = convert::from_salesforce(d.field(&k), &v);
                    rec.fields.insert(k, value);
                }
            }
        }
        // No parent: its fields are empty (Salesforce answers `"Account": null`).
        for parent in PARENT_FIELDS.iter().filter(|p| d.has(p.reference)) {
            rec.fields.entry(parent.field.to_string()).or_insert(Value::Null);
        }
        rec
    }

    /// Every field of the object, plus the parent fields mappings may use
    /// (`Account.Name` on a Contact).
    fn select_list(d: &Describe) -> String {
        let mut select = d.names.join(", ");
        for parent in PARENT_FIELDS.iter().filter(|p| d.has(p.reference)) {
            select.push_str(", ");
            select.push_str(parent.field);
        }
        select
    }

    /// `(lead id, converted contact id, converted account id)` of the given
    /// leads that are converted.
    pub async fn converted_leads(
        &self,
        lead_ids: &[String],
    ) -> Result<Vec<(String, String, Option<String>)>, ConnectorError> {
        let mut out = Vec::new();
        for list in in_lists(lead_ids, SOQL_BUDGET) {
            let soql = format!(
                "SELECT Id, ConvertedContactId, ConvertedAccountId FROM Lead WHERE IsConverted = true AND Id IN ({list})"
            );
            for r in self.query_all_pages(&soql).await? {
                let text = |k: &str| r.get(k).and_then(Json::as_str).map(String::from);
                if let (Some(lead), Some(contact)) = (text("Id"), text("ConvertedContactId")) {
                    out.push((lead, contact, text("ConvertedAccountId")));
                }
            }
        }
        Ok(out)
    }

    /// Converts a write's fields for `op` (the `Id` key is never a field).
    fn prepare_fields(
        d: &Describe,
        record: &Record,
        create: bool,
    ) -> Result<Vec<(String, Out)>, VendorError> {
        let mut out = Vec::with_capacity(record.fields.len());
        for (name, value) in &record.fields {
            if name.eq_ignore_ascii_case("Id") {
                continue;
            }
            let f = d.writable(name, create)?;
            out.push((f.name.clone(), convert::to_salesforce(f, value)?));
        }
        Ok(out)
    }

    /// Resolves email keys to ids: `email → ids`, lower-cased.
    async fn ids_by_email(
        &self,
        object: &str,
        emails: &[String],
    ) -> Result<BTreeMap<String, Vec<String>>, ConnectorError> {
        let mut wanted: Vec<String> =
            emails.iter().map(|e| e.trim().to_lowercase()).filter(|e| !e.is_empty()).collect();
        wanted.sort();
        wanted.dedup();
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for list in in_lists(&wanted, SOQL_BUDGET) {
            let soql = format!("SELECT Id, Email FROM {object} WHERE Email IN ({list}) ORDER BY Id");
            for r in self.query_all_pages(&soql).await? {
                if let (Some(id), Some(email)) =
                    (r.get("Id").and_then(Json::as_str), r.get("Email").and_then(Json::as_str))
                {
                    out.entry(email.trim().to_lowercase()).or_default().push(id.to_string());
                }
            }
        }
        Ok(out)
    }

    /// Sends one group through Collections, ≤ 200 a call; results by batch index.
    async fn collections(
        &self,
        object: &str,
        op: Op,
        ext: Option<&str>,
        group: &[Prepared],
        results: &mut [Option<WriteResult>],
    ) -> Result<(), ConnectorError> {
        for chunk in group.chunks(COLLECTION_LIMIT) {
            let reply = if op == Op::Delete {
                let ids: Vec<&str> = chunk.iter().filter_map(|p| p.id.as_deref()).collect();
                let ids = ids.join(",");
                self.call("collections_delete", |c, base, _| {
                    c.delete(format!("{base}/composite/sobjects"))
                        .query(&[("ids", ids.as_str()), ("allOrNone", "false")])
                })
                .await?
            } else {
                let records: Vec<Json> = chunk
                    .iter()
                    .map(|p| {
                        let mut m = Map::new();
                        m.insert("attributes".into(), serde_json::json!({"type": object}));
                        if let (Op::Update, Some(id)) = (op, &p.id) {
                            m.insert("Id".into(), Json::String(id.clone()));
                        }
                        for (k, v) in &p.fields {
                            m.insert(k.clone(), v.json());
                        }
                        Json::Object(m)
                    })
                    .collect();
                let body = serde_json::json!({"allOrNone": false, "records": records});
                let path = match (op, ext) {
                    (Op::Upsert, Some(ext)) => format!("composite/sobjects/{object}/{ext}"),
                    _ => "composite/sobjects".into(),
                };
                let what = match op {
                    Op::Update => "collections_update",
                    Op::Create => "collections_create",
                    _ => "collections_upsert",
                };
                self.call(what, |c, base, _| {
                    let url = format!("{base}/{path}");
                    let req = if op == Op::Create { c.post(url) } else { c.patch(url) };
                    req.header("Sforce-Call-Options", "client=crmsync").json(&body)
                })
                .await?
            };
            let items: Vec<ItemResult> = reply.json(VENDOR)?;
            if items.len() != chunk.len() {
                return Err(ConnectorError::BadResponse {
                    vendor: VENDOR,
                    message: format!("{} results for {} records", items.len(), chunk.len()),
                });
            }
            for (p, item) in chunk.iter().zip(items) {
                results[p.index] = Some(item.outcome(p.id.as_deref(), op == Op::Create));
            }
        }
        Ok(())
    }
}

/// `api-usage=10018/100000` (possibly among other parts).
fn parse_limit_info(v: &str) -> Option<(u64, u64)> {
    let part = v.split(';').map(str::trim).find_map(|p| p.strip_prefix("api-usage="))?;
    let (used, limit) = part.split_once('/')?;
    Some((used.trim().parse().ok()?, limit.trim().parse().ok()?))
}

#[async_trait]
impl Connector for SalesforceConnector {
    fn calls(&self) -> u64 {
        self.http.calls()
    }

    fn calls_by_endpoint(&self) -> Vec<(&'static str, u64)> {
        self.http.calls_by_endpoint()
    }

    fn system(&self) -> System {
        System::Salesforce
    }

    fn vendor(&self) -> &'static str {
        VENDOR
    }

    /// Logs in (or reuses the session); `Connected` for `crmsync connect test`.
    async fn connect(&self) -> Result<(), ConnectorError> {
        self.describe("Lead").await.map(|_| ())
    }

    fn limits(&self) -> ConnectorLimits {
        ConnectorLimits { max_write_batch: COLLECTION_LIMIT, max_page: MAX_PAGE, requests_per_second: None }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(vendor = VENDOR, object, limit))]
    async fn fetch_changes(
        &self,
        object: &str,
        since: Option<&Cursor>,
        limit: usize,
    ) -> Result<Changes, ConnectorError> {
        let d = self.describe(object).await?;
        let mut select = Self::select_list(&d);
        for extra in ["IsDeleted", "SystemModstamp"] {
            if !d.has(extra) {
                select.push_str(&format!(", {extra}"));
            }
        }
        let filter = match since {
            None => String::new(),
            Some(c) => {
                let (t, id) = decode_cursor(c)?;
                let t = soql_datetime(t);
                format!(" WHERE SystemModstamp > {t} OR (SystemModstamp = {t} AND Id > {})", quote(&id))
            }
        };
        let limit = limit.clamp(1, MAX_PAGE);
        let soql = format!("SELECT {select} FROM {object}{filter} ORDER BY SystemModstamp, Id");
        let page = self.query_page(&soql, true, limit).await?;
        let taken = page.records.len().min(limit);
        let more = page.total_size > taken;
        let remaining = Some(page.total_size.saturating_sub(taken) as u64);
        let mut changes = Changes { more, remaining, ..Changes::default() };
        let mut last = None;
        for raw in page.records.into_iter().take(limit) {
            let id = raw.get("Id").and_then(Json::as_str).unwrap_or_default().to_string();
            let stamp = raw.get("SystemModstamp").and_then(Json::as_str).and_then(convert::parse_datetime);
            if let Some(t) = stamp {
                last = Some((t, id.clone()));
            }
            if raw.get("IsDeleted").and_then(Json::as_bool) == Some(true) {
                let merged_into = raw.get("MasterRecordId").and_then(Json::as_str).map(String::from);
                changes.deleted.push(Deleted { object_type: object.to_string(), id, merged_into, at: stamp });
            } else {
                changes.records.push(self.to_record(object, &d, raw));
            }
        }
        changes.next = last.map(|(t, id)| encode_cursor(t, &id)).or_else(|| since.cloned());
        Ok(changes)
    }

    async fn get(&self, object: &str, ids: &[String]) -> Result<Vec<Record>, ConnectorError> {
        let d = self.describe(object).await?;
        let select = Self::select_list(&d);
        let mut out = Vec::with_capacity(ids.len());
        for list in in_lists(ids, SOQL_BUDGET.saturating_sub(select.len()).max(1000)) {
            let soql = format!("SELECT {select} FROM {object} WHERE Id IN ({list})");
            for raw in self.query_all_pages(&soql).await? {
                out.push(self.to_record(object, &d, raw));
            }
        }
        Ok(out)
    }

    async fn find_by_email(
        &self,
        object: &str,
        emails: &[String],
    ) -> Result<BTreeMap<String, Vec<String>>, ConnectorError> {
        self.ids_by_email(object, emails).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(vendor = VENDOR, object, writes = writes.len()))]
    async fn write(&self, object: &str, writes: Vec<Write>) -> Result<Vec<WriteResult>, ConnectorError> {
        let d = self.describe(object).await?;
        let ext = self.cfg.external_ids.get(object).cloned();
        let mut results: Vec<Option<WriteResult>> = vec![None; writes.len()];
        // Email keys: one lookup for the batch.
        let emails: Vec<String> = writes
            .iter()
            .filter_map(|w| match w {
                Write::Upsert { key: WriteKey::Email(e), .. } => Some(e.clone()),
                _ => None,
            })
            .collect();
        let by_email =
            if emails.is_empty() { BTreeMap::new() } else { self.ids_by_email(object, &emails).await? };
        let mut groups: HashMap<Op, Vec<Prepared>> = HashMap::new();
        for (index, w) in writes.iter().enumerate() {
            let prepared = match w {
                Write::Delete { id } => {
                    Ok(Prepared { index, op: Op::Delete, id: Some(id.clone()), fields: Vec::new() })
                }
                Write::Upsert { key, record } => {
                    let target = match key {
                        WriteKey::Id(id) => Ok((Op::Update, Some(id.clone()), None)),
                        WriteKey::Email(e) => match by_email.get(&e.trim().to_lowercase()).map(Vec::as_slice)
                        {
                            None | Some([]) => Ok((Op::Create, None, None)),
                            Some([one]) => Ok((Op::Update, Some(one.clone()), None)),
                            Some(many) => Err(record_error(
                                "DUPLICATE_EMAIL",
                                format!(
                                    "{} {object} records have this email: {}",
                                    many.len(),
                                    many.join(", ")
                                ),
                            )),
                        },
                        WriteKey::Name(_) => Err(record_error(
                            "INVALID_KEY",
                            format!("{object} records are not written by name"),
                        )),
                        WriteKey::New { idempotency_key } => match &ext {
                            Some(_) => Ok((Op::Upsert, None, Some(idempotency_key.clone()))),
                            None => Ok((Op::Create, None, None)),
                        },
                    };
                    target.and_then(|(op, id, key)| {
                        let mut fields = Self::prepare_fields(&d, record, op != Op::Update)?;
                        if let (Some(key), Some(ext)) = (key, &ext) {
                            fields.retain(|(k, _)| !k.eq_ignore_ascii_case(ext));
                            fields.push((ext.clone(), Out::Text(key)));
                        }
                        Ok(Prepared { index, op, id, fields })
                    })
                }
            };
            match prepared {
                Ok(p) => groups.entry(p.op).or_default().push(p),
                Err(e) => results[index] = Some(Err(e)),
            }
        }
        for op in [Op::Update, Op::Upsert, Op::Create, Op::Delete] {
            let Some(group) = groups.get(&op) else { continue };
            if group.len() >= self.cfg.bulk_threshold.max(1) {
                self.bulk_ingest(object, op, ext.as_deref(), group, &mut results).await?;
            } else {
                self.collections(object, op, ext.as_deref(), group, &mut results).await?;
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(record_error("UNKNOWN_EXCEPTION", "no result for this record"))))
            .collect())
    }

    async fn list_ids(
        &self,
        object: &str,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<(Vec<String>, Option<Cursor>), ConnectorError> {
        let filter = match after {
            Some(c) if c.0.chars().all(|ch| ch.is_ascii_alphanumeric()) => {
                format!(" WHERE Id > {}", quote(&c.0))
            }
            Some(c) => {
                return Err(ConnectorError::Rejected {
                    vendor: VENDOR,
                    status: 0,
                    message: format!("not an id cursor: {}", c.0),
                });
            }
            None => String::new(),
        };
        let limit = limit.clamp(1, MAX_PAGE);
        let page =
            self.query_page(&format!("SELECT Id FROM {object}{filter} ORDER BY Id"), false, limit).await?;
        let ids: Vec<String> = page
            .records
            .iter()
            .take(limit)
            .filter_map(|r| r.get("Id").and_then(Json::as_str).map(String::from))
            .collect();
        let next = (page.total_size > ids.len()).then(|| ids.last().map(|id| Cursor(id.clone()))).flatten();
        Ok((ids, next))
    }
}

#[async_trait]
impl SalesforceApi for SalesforceConnector {
    fn api_usage(&self) -> Option<ApiUsage> {
        let limit = self.usage.limit.load(Ordering::Relaxed);
        (limit > 0).then(|| ApiUsage { used: self.usage.used.load(Ordering::Relaxed), limit })
    }

    /// `GET /limits`: `DailyApiRequests` `Max` and `Remaining`. The call's own
    /// `Sforce-Limit-Info` header updates the usage too.
    async fn refresh_usage(&self) -> Result<Option<ApiUsage>, ConnectorError> {
        let reply = self.call("limits", |c, base, _| c.get(format!("{base}/limits"))).await?;
        let body: Json = reply.json(VENDOR)?;
        let daily = body.get("DailyApiRequests");
        let max = daily.and_then(|d| d.get("Max")).and_then(Json::as_u64);
        let remaining = daily.and_then(|d| d.get("Remaining")).and_then(Json::as_u64);
        if let (Some(limit), Some(remaining)) = (max, remaining) {
            self.usage.used.store(limit.saturating_sub(remaining), Ordering::Relaxed);
            self.usage.limit.store(limit, Ordering::Relaxed);
        }
        Ok(self.api_usage())
    }

    /// `SELECT TimeZoneSidKey FROM Organization`, once per connector.
    async fn org_time_zone(&self) -> Result<Option<String>, ConnectorError> {
        let mut cached = self.time_zone.lock().await;
        if let Some(tz) = cached.as_ref() {
            return Ok(tz.clone());
        }
        let rows = self.query_all_pages("SELECT TimeZoneSidKey FROM Organization").await?;
        let tz = rows.first().and_then(|r| r.get("TimeZoneSidKey")).and_then(Json::as_str).map(String::from);
        *cached = Some(tz.clone());
        Ok(tz)
    }

    async fn with_cases(&self, contact_ids: &[String]) -> Result<HashSet<String>, ConnectorError> {
        let mut out = HashSet::new();
        for list in in_lists(contact_ids, SOQL_BUDGET) {
            for r in self
                .query_all_pages(&format!("SELECT ContactId FROM Case WHERE ContactId IN ({list})"))
                .await?
            {
                out.extend(r.get("ContactId").and_then(Json::as_str).map(String::from));
            }
        }
        Ok(out)
    }

    async fn tasks_of(
        &self,
        who_ids: &[String],
        since: DateTime<Utc>,
    ) -> Result<Vec<TaskRow>, ConnectorError> {
        SalesforceConnector::tasks_of(self, who_ids, since).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_and_limit_info_round_trip() {
        let t = convert::parse_datetime("2024-01-01T00:00:00.000Z").expect("t");
        let c = encode_cursor(t, "00Q000000000001AAA");
        assert_eq!(decode_cursor(&c).expect("decodes"), (t, "00Q000000000001AAA".to_string()));
        assert!(decode_cursor(&Cursor("x' OR Id != '".into())).is_err());
        assert_eq!(parse_limit_info("api-usage=18/15000; api-bursts=1/750"), Some((18, 15000)));
        assert_eq!(quote("o'brien\\"), "'o\\'brien\\\\'");
        let lists = in_lists(&vec!["a".repeat(10); 5], 30);
        assert_eq!(lists.len(), 3);
    }
}
