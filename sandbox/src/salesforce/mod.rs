//! The Salesforce sandbox: OAuth, the REST API (SOQL query/queryAll, sObject
//! CRUD and external-id upsert, describe, sObject Collections, Composite,
//! getUpdated/getDeleted, limits) and Bulk API 2.0, for Lead, Contact, Account
//! and Task, with Salesforce's validation, error bodies and daily API allocation.
//!
//! # Layout
//! - `mod.rs` (this file): the [`Salesforce`] server, OAuth and sessions, the
//!   allocation, routing, seed and state.
//! - `model`: ids, values, records, ordered JSON. `schema`: fields and describe.
//! - `store`: tables, indexes, validation, writes, rollback.
//! - `soql`: the SOQL subset. `rest`: REST handlers. `bulk`: Bulk API 2.0.
//! - `error`: the two error shapes.
//!
//! # Endpoints
//! `POST /services/oauth2/token` (`grant_type` = `refresh_token`, `password` or
//! `client_credentials`, form-encoded, credentials from [`crate::Credentials`]).
//! Everything under `/services/data/vNN.N/` needs `Authorization: Bearer <token>`
//! (any version is accepted; `GET /services/data` lists them). Tokens expire after
//! `SandboxOptions::salesforce_token_ttl` on the sandbox clock, or at once on
//! `expire_sessions`, answering 401 `INVALID_SESSION_ID`.
//!
//! | path under `/services/data/vNN.N` | methods |
//! |---|---|
//! | `/`, `/limits`, `/sobjects` | GET |
//! | `/query?q=`, `/queryAll?q=`, `/query/{locator}-{offset}` | GET (`Sforce-Query-Options: batchSize=200..2000`) |
//! | `/sobjects/{type}` | GET, POST (create) |
//! | `/sobjects/{type}/describe` | GET |
//! | `/sobjects/{type}/updated?start=&end=`, `/deleted?start=&end=` | GET |
//! | `/sobjects/{type}/{id}` | GET (`?fields=`), PATCH, DELETE |
//! | `/sobjects/{type}/{extField}/{value}` | GET, PATCH (upsert: 201 / 200 / 300), DELETE |
//! | `/composite/sobjects` | POST (create ≤ 200), PATCH (update), DELETE `?ids=` |
//! | `/composite/sobjects/{type}` | GET `?ids=&fields=`, DELETE `?ids=` |
//! | `/composite/sobjects/{type}/{extField}` | PATCH (upsert ≤ 200) |
//! | `/composite` | POST (≤ 25 subrequests, `allOrNone`, `@{ref.field}`) |
//! | `/jobs/ingest`, `/jobs/ingest/{id}`, `/batches`, `/successfulResults`, `/failedResults`, `/unprocessedrecords` | Bulk 2.0 ingest |
//! | `/jobs/query`, `/jobs/query/{id}`, `/jobs/query/{id}/results` | Bulk 2.0 query (`locator`, `maxRecords`) |
//!
//! Sandbox-only (not Salesforce APIs, but authenticated and counted like them):
//! `POST /services/apexrest/crmsync-sandbox/convert` `{"leadId", "accountId"?,
//! "contactId"?}` → `{"leadId","accountId","contactId","success":true}` and
//! `POST /services/apexrest/crmsync-sandbox/merge` `{"object", "masterId",
//! "duplicateIds": [..]}`; in-process: [`Salesforce::convert_lead`],
//! [`Salesforce::merge`].
//!
//! Every call under `/services/data/vNN.N` (and apexrest) counts against the daily
//! allocation (`SandboxOptions::salesforce_daily_limit`, reset when the sandbox
//! clock's UTC date changes); each answer carries `Sforce-Limit-Info:
//! api-usage=N/MAX`; once spent, calls get 403 `REQUEST_LIMIT_EXCEEDED`. The
//! allocation is a quota, not a rate limit: it applies whether or not rate limits
//! are switched on. Composite and collection calls count once.
//!
//! # Seed (`POST /__sandbox/seed`, `SandboxOptions.seed["salesforce"]`)
//! ```json
//! {
//!   "fields": {"Lead": [
//!     {"name": "AC_Contact_Id__c", "type": "string", "length": 64, "externalId": true, "unique": true},
//!     {"name": "AC_Sync_Status__c", "type": "picklist", "values": ["Synced successfully", "Pending next sync"]},
//!     {"name": "Annual_Revenue__c", "type": "currency", "precision": 18, "scale": 2},
//!     {"name": "Interests__c", "type": "multipicklist", "values": ["A", "B"], "restricted": true}]},
//!   "duplicate_rules": ["Lead", "Contact"],
//!   "limits": {"daily_limit": 15000, "used": 0},
//!   "records": {"Lead": [{"LastName": "Lovelace", "Company": "Acme", "Email": "ada@example.com",
//!                         "SystemModstamp": "2024-01-01T00:00:00Z"}]},
//!   "generate": {"Lead": 1000, "Contact": 1000}
//! }
//! ```
//! Every key is optional. Field types: `string`, `email`, `phone`, `url`,
//! `textarea`, `picklist`, `multipicklist`, `reference` (+ `referenceTo`),
//! `boolean`, `currency`, `double`, `percent`, `int`, `date`, `datetime`; other
//! keys: `label`, `required`, `default`, `restricted`. `duplicate_rules` turns on
//! a "same email" duplicate rule (`DUPLICATES_DETECTED`; bypassed by
//! `Sforce-Duplicate-Rule-Header: allowSave=true`). Seeded records may set system
//! fields (`Id`, `CreatedDate`, `LastModifiedDate`, `SystemModstamp`, `IsDeleted`,
//! `IsConverted`...); timestamps default to the sandbox clock. `generate` adds
//! synthetic records (`gen-<object>-<n>@example.com`).
//!
//! # State (`GET /__sandbox/state`)
//! `{"objects": {"Lead": [record with every field, deleted ones included], ...},
//! "api_usage": {"used", "max"}, "sessions": n, "duplicate_rules": [...],
//! "bulk_jobs": [job info, ...]}`.

mod bulk;
mod error;
mod model;
mod rest;
mod schema;
mod soql;
mod store;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use chrono::{DateTime, NaiveDate, Utc};
use md5::{Digest, Md5};
use rand::Rng;
use serde_json::{Value, json};

use crate::common::{Origin, Vendor, VendorApi, VendorCtx};
use crate::{Credentials, SandboxOptions};

pub use error::{ItemError, SfError};
use model::{J, SfId, millis};
use schema::{CustomFieldSpec, ORG_ID, USER_ID};
use store::{Store, WriteCtx};

/// The API version answers are written for when a caller has none (`/services/data` lists more).
pub const API_VERSION: &str = "v60.0";
/// Largest request body accepted (Bulk uploads: 150 MB).
const MAX_BODY: usize = 150 * 1024 * 1024;
/// Open query cursors kept; the oldest is dropped first.
const MAX_CURSORS: usize = 512;

/// The daily API allocation.
#[derive(Debug)]
struct Usage {
    max: u64,
    used: u64,
    day: NaiveDate,
}

/// An open query cursor (`nextRecordsUrl`).
struct Cursor {
    query: soql::Query,
    ids: Vec<SfId>,
    batch: usize,
}

#[derive(Default)]
struct Cursors {
    map: HashMap<String, Arc<Cursor>>,
    order: VecDeque<String>,
    seq: u64,
}

/// One API request, as the dispatcher sees it (also built for composite subrequests).
pub(crate) struct Req {
    pub method: Method,
    /// `v60.0`.
    pub version: String,
    /// Path segments after `/services/data/vNN.N`, percent-decoded.
    pub segs: Vec<String>,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Req {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Result<Value, SfError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            SfError::json_parser(format!(
                "Unexpected character: was expecting a JSON value at [line:{}, column:{}] ({e})",
                e.line(),
                e.column()
            ))
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub(crate) enum Body {
    Empty,
    Json(J),
    Csv(String),
}

/// One API answer (also embedded in composite responses).
pub(crate) struct Resp {
    pub status: StatusCode,
    pub body: Body,
    pub headers: Vec<(&'static str, String)>,
}

impl Resp {
    pub fn json(status: StatusCode, body: impl Into<J>) -> Resp {
        Resp { status, body: Body::Json(body.into()), headers: Vec::new() }
    }
    pub fn ok(body: impl Into<J>) -> Resp {
        Resp::json(StatusCode::OK, body)
    }
    pub fn empty(status: StatusCode) -> Resp {
        Resp { status, body: Body::Empty, headers: Vec::new() }
    }
    pub fn body_value(&self) -> Value {
        match &self.body {
            Body::Empty => Value::Null,
            Body::Json(j) => j.to_value(),
            Body::Csv(s) => Value::String(s.clone()),
        }
    }
}

impl From<SfError> for Resp {
    fn from(e: SfError) -> Resp {
        Resp::json(e.status, e.body())
    }
}

impl IntoResponse for Resp {
    fn into_response(self) -> Response {
        let mut response = match self.body {
            Body::Empty => self.status.into_response(),
            Body::Json(j) => {
                let bytes = serde_json::to_vec(&j).unwrap_or_default();
                (self.status, [(header::CONTENT_TYPE, "application/json;charset=UTF-8")], bytes)
                    .into_response()
            }
            Body::Csv(s) => (self.status, [(header::CONTENT_TYPE, "text/csv")], s).into_response(),
        };
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, v);
            }
        }
        response
    }
}

/// What a lead conversion created or reused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertResult {
    pub account_id: String,
    pub contact_id: String,
}

pub struct Salesforce {
    ctx: VendorCtx,
    credentials: Credentials,
    token_ttl: Duration,
    default_limit: u64,
    store: RwLock<Store>,
    /// Access token → issued at (sandbox clock).
    sessions: Mutex<HashMap<String, DateTime<Utc>>>,
    usage: Mutex<Usage>,
    cursors: Mutex<Cursors>,
    bulk: Mutex<bulk::Jobs>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Salesforce {
    pub fn new(ctx: VendorCtx, opts: &SandboxOptions) -> Self {
        let day = ctx.clock.now().date_naive();
        Self {
            credentials: opts.credentials.clone(),
            token_ttl: opts.salesforce_token_ttl,
            default_limit: opts.salesforce_daily_limit,
            store: RwLock::new(Store::default()),
            sessions: Mutex::default(),
            usage: Mutex::new(Usage { max: opts.salesforce_daily_limit, used: 0, day }),
            cursors: Mutex::default(),
            bulk: Mutex::default(),
            ctx,
        }
    }

    fn now(&self) -> DateTime<Utc> {
        millis(self.ctx.clock.now())
    }

    fn read(&self) -> RwLockReadGuard<'_, Store> {
        self.store.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Store> {
        self.store.write().unwrap_or_else(|e| e.into_inner())
    }

    fn write_ctx(&self, headers: &HeaderMap) -> WriteCtx {
        let allow = headers
            .get("sforce-duplicate-rule-header")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.replace(' ', "").to_ascii_lowercase().contains("allowsave=true"));
        WriteCtx { now: self.now(), admin: false, allow_duplicates: allow }
    }

    // ---- sessions ----

    /// Mints an access token directly (for in-process tests and benchmarks).
    pub fn issue_token(&self) -> String {
        let token: String =
            rand::rng().sample_iter(&rand::distr::Alphanumeric).take(96).map(char::from).collect();
        let token = format!("{}!{token}", &ORG_ID[..15]);
        lock(&self.sessions).insert(token.clone(), self.now());
        token
    }

    fn check_session(&self, headers: &HeaderMap) -> Result<(), SfError> {
        let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
        let token =
            value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("OAuth ")).unwrap_or("").trim();
        let mut sessions = lock(&self.sessions);
        let issued = *sessions.get(token).ok_or_else(SfError::session)?;
        let ttl = chrono::Duration::from_std(self.token_ttl).unwrap_or(chrono::Duration::MAX);
        if self.now() - issued >= ttl {
            sessions.remove(token);
            return Err(SfError::session());
        }
        Ok(())
    }

    /// Checks an OAuth grant: `Ok(refresh token to hand out)` or `(error, description)`.
    fn check_grant(&self, form: &[(String, String)]) -> Result<Option<String>, (&'static str, &'static str)> {
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let c = &self.credentials;
        if get("client_id") != Some(c.salesforce_client_id.as_str()) {
            return Err(("invalid_client_id", "client identifier invalid"));
        }
        let secret = get("client_secret");
        if secret.is_some_and(|s| s != c.salesforce_client_secret) {
            return Err(("invalid_client", "invalid client credentials"));
        }
        match get("grant_type") {
            Some("refresh_token") if get("refresh_token") == Some(c.salesforce_refresh_token.as_str()) => {
                Ok(None)
            }
            Some("refresh_token") => Err(("invalid_grant", "expired access/refresh token")),
            Some("password" | "client_credentials") if secret.is_none() => {
                Err(("invalid_client", "invalid client credentials"))
            }
            Some("password") => {
                // The password may carry the user's security token appended.
                let password_ok =
                    get("password").is_some_and(|p| p.starts_with(c.salesforce_password.as_str()));
                if get("username") == Some(c.salesforce_username.as_str()) && password_ok {
                    Ok(None)
                } else {
                    Err(("invalid_grant", "authentication failure"))
                }
            }
            Some("client_credentials") => Ok(None),
            Some("authorization_code") => Ok(Some(c.salesforce_refresh_token.clone())),
            _ => Err(("unsupported_grant_type", "grant type not supported")),
        }
    }

    /// `POST /services/oauth2/token`: parameters from the form body or the query string.
    fn oauth_token(&self, origin: &Origin, mut form: Vec<(String, String)>, body: &[u8]) -> Response {
        form.extend(model::parse_form(&String::from_utf8_lossy(body)));
        let refresh = match self.check_grant(&form) {
            Ok(refresh) => refresh,
            Err((error, description)) => {
                let body = json!({"error": error, "error_description": description});
                return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
            }
        };
        let instance_url = origin.0.clone();
        let token = self.issue_token();
        let issued_at = self.now().timestamp_millis().to_string();
        let id = format!("{instance_url}/id/{ORG_ID}/{USER_ID}");
        let signature = model::base64(&Md5::digest(format!("{id}{issued_at}{token}").as_bytes()));
        let mut body = json!({
            "access_token": token,
            "instance_url": instance_url,
            "id": id,
            "token_type": "Bearer",
            "issued_at": issued_at,
            "signature": signature,
            "scope": "api refresh_token",
        });
        if let Some(r) = refresh {
            body["refresh_token"] = Value::String(r);
        }
        (StatusCode::OK, axum::Json(body)).into_response()
    }

    // ---- allocation ----

    fn usage(&self) -> MutexGuard<'_, Usage> {
        let mut u = lock(&self.usage);
        let today = self.ctx.clock.now().date_naive();
        if u.day != today {
            u.day = today;
            u.used = 0;
        }
        u
    }

    /// Counts one call; `Err` once the allocation is spent.
    fn charge(&self) -> Result<(u64, u64), (u64, u64)> {
        let mut u = self.usage();
        if u.used >= u.max {
            return Err((u.used, u.max));
        }
        u.used += 1;
        Ok((u.used, u.max))
    }

    /// `(used, max)` of today's allocation.
    pub fn api_usage(&self) -> (u64, u64) {
        let u = self.usage();
        (u.used, u.max)
    }

    /// Sets today's usage and, optionally, the daily maximum.
    pub fn set_api_usage(&self, used: u64, max: Option<u64>) {
        let mut u = self.usage();
        u.used = used;
        if let Some(m) = max {
            u.max = m;
        }
    }

    // ---- in-process admin ----

    /// Converts a lead the way Salesforce's lead conversion does.
    pub fn convert_lead(
        &self,
        lead: &str,
        account: Option<&str>,
        contact: Option<&str>,
    ) -> Result<ConvertResult, SfError> {
        let parse = |s: &str| {
            SfId::parse(s).ok_or_else(|| SfError::bad_request("MALFORMED_ID", format!("malformed id {s}")))
        };
        let lead = parse(lead)?;
        let account = account.map(parse).transpose()?;
        let contact = contact.map(parse).transpose()?;
        let w = WriteCtx { now: self.now(), admin: false, allow_duplicates: true };
        let (a, c) =
            self.write().convert_lead(lead, account, contact, &w).map_err(|e| SfError::from_items(&[e]))?;
        Ok(ConvertResult { account_id: a.to_string(), contact_id: c.to_string() })
    }

    /// Merges up to two `losers` into `master` (both of `object`).
    pub fn merge(&self, object: &str, master: &str, losers: &[&str]) -> Result<(), SfError> {
        let mut store = self.write();
        let obj = store.object(object).ok_or_else(|| {
            SfError::bad_request("INVALID_TYPE", format!("sObject type '{object}' is not supported."))
        })?;
        let parse = |s: &str| {
            SfId::parse(s).ok_or_else(|| SfError::bad_request("MALFORMED_ID", format!("malformed id {s}")))
        };
        let master = parse(master)?;
        let losers = losers.iter().map(|l| parse(l)).collect::<Result<Vec<_>, _>>()?;
        let w = WriteCtx { now: self.now(), admin: false, allow_duplicates: true };
        store.merge(obj, master, &losers, &w).map_err(|e| SfError::from_items(&[e]))
    }

    /// One record with every field, deleted ones included (`None` if unknown).
    pub fn record(&self, object: &str, id: &str) -> Option<Value> {
        let store = self.read();
        let obj = store.object(object)?;
        let rec = store.record(obj, &SfId::parse(id)?)?;
        Some(store.record_json(obj, rec, API_VERSION, None).to_value())
    }

    // ---- serving ----

    async fn handle(State(sf): State<Arc<Salesforce>>, req: Request) -> Response {
        let (parts, body) = req.into_parts();
        let body = match axum::body::to_bytes(body, MAX_BODY).await {
            Ok(b) => b,
            Err(_) => {
                return Resp::from(SfError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "REQUEST_ENTITY_TOO_LARGE",
                    "request too large",
                ))
                .into_response();
            }
        };
        let segs: Vec<String> = parts
            .uri
            .path()
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| model::percent_decode(s, false))
            .collect();
        let query = parts.uri.query().map(model::parse_form).unwrap_or_default();
        match segs.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            ["services", "oauth2", "token"] if parts.method == Method::POST => {
                sf.oauth_token(&Origin::of(&parts.headers, &parts.extensions), query, &body)
            }
            ["services", "oauth2", "token"] => {
                Resp::from(SfError::method_not_allowed(parts.method.as_str(), "POST")).into_response()
            }
            ["services", "data"] => Resp::ok(versions()).into_response(),
            ["services", "data", version, ..] | ["services", "apexrest", version, ..] => {
                let apex = segs[1] == "apexrest";
                if !apex && !valid_version(version) {
                    return Resp::from(SfError::not_found()).into_response();
                }
                if let Err(e) = sf.check_session(&parts.headers) {
                    return Resp::from(e).into_response();
                }
                let (used, max) = match sf.charge() {
                    Ok(u) => u,
                    Err((used, max)) => {
                        let mut r = Resp::from(SfError::limit_exceeded());
                        r.headers.push(("sforce-limit-info", format!("api-usage={used}/{max}")));
                        return r.into_response();
                    }
                };
                let req = Req {
                    method: parts.method.clone(),
                    version: if apex { API_VERSION.to_string() } else { version.to_string() },
                    segs: segs[if apex { 2 } else { 3 }..].to_vec(),
                    query,
                    headers: parts.headers.clone(),
                    body,
                };
                let mut resp = if apex { sf.apex(&req) } else { sf.dispatch(&req, None) };
                resp.headers.push(("sforce-limit-info", format!("api-usage={used}/{max}")));
                resp.into_response()
            }
            _ => Resp::from(SfError::not_found()).into_response(),
        }
    }

    /// The sandbox-only Apex REST routes: lead conversion and merge.
    fn apex(&self, req: &Req) -> Resp {
        let run = || -> Result<Resp, SfError> {
            let path: Vec<&str> = req.segs.iter().map(String::as_str).collect();
            if req.method != Method::POST {
                return Err(SfError::method_not_allowed(req.method.as_str(), "POST"));
            }
            let body = req.json()?;
            let text = |k: &str| body.get(k).and_then(Value::as_str);
            match path.as_slice() {
                ["crmsync-sandbox", "convert"] => {
                    let lead = text("leadId").ok_or_else(|| {
                        SfError::bad_request("REQUIRED_FIELD_MISSING", "leadId is required")
                    })?;
                    let r = self.convert_lead(lead, text("accountId"), text("contactId"))?;
                    Ok(Resp::ok(
                        json!({"leadId": lead, "accountId": r.account_id, "contactId": r.contact_id, "success": true}),
                    ))
                }
                ["crmsync-sandbox", "merge"] => {
                    let object = text("object").unwrap_or("");
                    let master = text("masterId").unwrap_or("");
                    let losers: Vec<&str> = body
                        .get("duplicateIds")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    self.merge(object, master, &losers)?;
                    Ok(Resp::ok(
                        json!({"id": master, "mergedRecordIds": losers, "success": true, "errors": []}),
                    ))
                }
                _ => Err(SfError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "Could not find a match for URL")),
            }
        };
        run().unwrap_or_else(Resp::from)
    }

    // ---- seed and state ----

    fn apply_seed(&self, data: Value) -> Result<(), String> {
        let obj = data.as_object().ok_or("the Salesforce seed must be a JSON object")?;
        for key in obj.keys() {
            if !["fields", "duplicate_rules", "limits", "records", "generate"].contains(&key.as_str()) {
                return Err(format!("unknown seed key {key}"));
            }
        }
        let mut store = self.write();
        let object =
            |store: &Store, name: &str| store.object(name).ok_or_else(|| format!("unknown object {name}"));
        if let Some(fields) = data.get("fields") {
            let fields = fields.as_object().ok_or("fields must map object names to lists")?;
            for (name, list) in fields {
                let o = object(&store, name)?;
                let specs: Vec<CustomFieldSpec> =
                    serde_json::from_value(list.clone()).map_err(|e| format!("fields.{name}: {e}"))?;
                for spec in specs {
                    let field = spec.into_field().map_err(|e| format!("fields.{name}: {e}"))?;
                    store.add_field(o, field);
                }
            }
        }
        match data.get("duplicate_rules") {
            None => {}
            Some(Value::Array(names)) => {
                for n in names {
                    let o = object(&store, n.as_str().ok_or("duplicate_rules lists object names")?)?;
                    store.duplicate_rules.insert(o);
                }
            }
            Some(Value::Object(map)) => {
                for (n, on) in map {
                    let o = object(&store, n)?;
                    if on.as_bool() == Some(true) {
                        store.duplicate_rules.insert(o);
                    } else {
                        store.duplicate_rules.remove(&o);
                    }
                }
            }
            Some(_) => return Err("duplicate_rules must be a list or an object".into()),
        }
        if let Some(limits) = data.get("limits") {
            let max = limits.get("daily_limit").and_then(Value::as_u64);
            let used = limits.get("used").and_then(Value::as_u64);
            drop(store);
            let current = self.api_usage().0;
            self.set_api_usage(used.unwrap_or(current), max);
            store = self.write();
        }
        let w = WriteCtx { now: self.now(), admin: true, allow_duplicates: true };
        if let Some(records) = data.get("records") {
            let records = records.as_object().ok_or("records must map object names to lists")?;
            for (name, list) in records {
                let o = object(&store, name)?;
                let list = list.as_array().ok_or_else(|| format!("records.{name} must be a list"))?;
                for (i, rec) in list.iter().enumerate() {
                    let map =
                        rec.as_object().ok_or_else(|| format!("records.{name}[{i}] must be an object"))?;
                    let changes = store
                        .changes_from_json(o, map, &[])
                        .map_err(|e| format!("records.{name}[{i}]: {}", e.message))?;
                    store.create(o, changes, &w).map_err(|errs| {
                        let msgs: Vec<String> =
                            errs.iter().map(|e| format!("{}: {}", e.status_code, e.message)).collect();
                        format!("records.{name}[{i}]: {}", msgs.join("; "))
                    })?;
                }
            }
        }
        if let Some(generate) = data.get("generate") {
            let generate = generate.as_object().ok_or("generate must map object names to counts")?;
            for (name, n) in generate {
                let o = object(&store, name)?;
                let n = n.as_u64().ok_or_else(|| format!("generate.{name} must be a count"))?;
                let object_name = store.schema[o].name;
                let lower = object_name.to_ascii_lowercase();
                let field = |store: &Store, f: &str| store.schema[o].field(f);
                for i in 0..n {
                    let mut changes = Vec::new();
                    let mut set = |f: Option<u16>, v: String| {
                        if let Some(f) = f {
                            changes.push((f, Some(model::Val::str(v))));
                        }
                    };
                    match object_name {
                        "Account" => set(field(&store, "Name"), format!("Generated Account {i}")),
                        "Task" => set(field(&store, "Subject"), format!("Generated task {i}")),
                        _ => {
                            set(field(&store, "FirstName"), format!("Gen{i}"));
                            set(field(&store, "LastName"), format!("{object_name}{i}"));
                            set(field(&store, "Email"), format!("gen-{lower}-{i}@example.com"));
                            set(field(&store, "Company"), format!("Company {}", i % 1000));
                        }
                    }
                    store.create(o, changes, &w).map_err(|e| format!("generate.{name}: {e:?}"))?;
                }
            }
        }
        Ok(())
    }
}

fn valid_version(v: &str) -> bool {
    v.strip_prefix('v').and_then(|n| n.split_once('.')).is_some_and(|(a, b)| {
        !a.is_empty()
            && !b.is_empty()
            && a.bytes().all(|c| c.is_ascii_digit())
            && b.bytes().all(|c| c.is_ascii_digit())
    })
}

/// `GET /services/data`: versions 20.0 to 60.0 with their release names.
fn versions() -> Value {
    let list: Vec<Value> = (20..=60)
        .map(|n: i32| {
            let k = n - 60;
            let (season, year) = match k.rem_euclid(3) {
                0 => ("Spring", 24 + k.div_euclid(3)),
                1 => ("Summer", 24 + k.div_euclid(3)),
                _ => ("Winter", 25 + k.div_euclid(3)),
            };
            json!({"label": format!("{season} '{year:02}"), "url": format!("/services/data/v{n}.0"), "version": format!("{n}.0")})
        })
        .collect();
    Value::Array(list)
}

/// Route templates (each also registered with a trailing slash).
const ROUTES: &[&str] = &[
    "/services/oauth2/token",
    "/services/data",
    "/services/data/{version}",
    "/services/data/{version}/limits",
    "/services/data/{version}/query",
    "/services/data/{version}/query/{locator}",
    "/services/data/{version}/queryAll",
    "/services/data/{version}/queryAll/{locator}",
    "/services/data/{version}/sobjects",
    "/services/data/{version}/sobjects/{sobject}",
    "/services/data/{version}/sobjects/{sobject}/describe",
    "/services/data/{version}/sobjects/{sobject}/updated",
    "/services/data/{version}/sobjects/{sobject}/deleted",
    "/services/data/{version}/sobjects/{sobject}/{id}",
    "/services/data/{version}/sobjects/{sobject}/{field}/{value}",
    "/services/data/{version}/composite",
    "/services/data/{version}/composite/sobjects",
    "/services/data/{version}/composite/sobjects/{sobject}",
    "/services/data/{version}/composite/sobjects/{sobject}/{field}",
    "/services/data/{version}/jobs/ingest",
    "/services/data/{version}/jobs/ingest/{job}",
    "/services/data/{version}/jobs/ingest/{job}/batches",
    "/services/data/{version}/jobs/ingest/{job}/{results}",
    "/services/data/{version}/jobs/query",
    "/services/data/{version}/jobs/query/{job}",
    "/services/data/{version}/jobs/query/{job}/results",
    "/services/apexrest/crmsync-sandbox/convert",
    "/services/apexrest/crmsync-sandbox/merge",
];

impl VendorApi for Salesforce {
    fn vendor(&self) -> Vendor {
        Vendor::Salesforce
    }

    fn router(self: Arc<Self>) -> Router {
        let mut router = Router::new();
        for route in ROUTES {
            router = router
                .route(route, any(Salesforce::handle))
                .route(&format!("{route}/"), any(Salesforce::handle));
        }
        router.with_state(self)
    }

    fn seed(&self, data: Value) -> Result<(), String> {
        self.apply_seed(data)
    }

    fn state(&self) -> Value {
        let store = self.read();
        let mut objects = serde_json::Map::new();
        for (o, def) in store.schema.iter().enumerate() {
            let records: Vec<Value> = store.tables[o]
                .records
                .values()
                .map(|r| store.record_json(o, r, API_VERSION, None).to_value())
                .collect();
            objects.insert(def.name.to_string(), Value::Array(records));
        }
        let rules: Vec<&str> = store.duplicate_rules.iter().map(|o| store.schema[*o].name).collect();
        drop(store);
        let (used, max) = self.api_usage();
        json!({
            "objects": objects,
            "api_usage": {"used": used, "max": max},
            "sessions": lock(&self.sessions).len(),
            "duplicate_rules": rules,
            "bulk_jobs": lock(&self.bulk).infos(API_VERSION),
        })
    }

    fn reset(&self) {
        self.write().clear();
        lock(&self.sessions).clear();
        *lock(&self.cursors) = Cursors::default();
        *lock(&self.bulk) = bulk::Jobs::default();
        let mut u = lock(&self.usage);
        u.used = 0;
        u.max = self.default_limit;
    }

    fn expire_sessions(&self) {
        lock(&self.sessions).clear();
    }

    fn error_body(&self, status: StatusCode) -> Response {
        let e = match status.as_u16() {
            401 => SfError::session(),
            403 | 429 => SfError::limit_exceeded(),
            404 => SfError::not_found(),
            503 => SfError::new(
                status,
                "SERVER_UNAVAILABLE",
                "Server temporarily unavailable. Please try again.",
            ),
            s if s >= 500 => SfError::new(
                status,
                "UNKNOWN_EXCEPTION",
                "An unexpected error occurred. Please include this ErrorId if you contact support: 1234567890-12345 (-1234567890)",
            ),
            _ => SfError::new(status, "BAD_REQUEST", status.canonical_reason().unwrap_or("error")),
        };
        let mut e = e;
        e.status = status;
        Resp::from(e).into_response()
    }
}
