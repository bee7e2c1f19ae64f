//! The Brevo (ex-Sendinblue) API v3 sandbox: contacts, attributes, lists,
//! folders, imports and processes, and the account — the parts crmsync uses.
//!
//! # Layout
//! - [`store`]: the account's data and its indexes (by id, identifier, `modifiedAt`).
//! - [`contacts`]: `/v3/contacts` create/upsert, read, update, delete, listing,
//!   `/contacts/batch`, `/contacts/import` and `/v3/processes`.
//! - [`attributes`]: attribute definitions, value checking, `/contacts/attributes`.
//! - [`lists`]: `/contacts/lists*` and `/contacts/folders*`.
//! - [`ratelimit`]: the 10 requests/second limit and the `x-sib-ratelimit-*` headers.
//! - [`error`]: Brevo's `{"code","message"}` errors and the extractors that produce them.
//!
//! # Behaviour worth knowing
//! - Auth: header `api-key` must be the `brevo_api_key` credential, else
//!   401 `{"code":"unauthorized","message":"Key not found"}`.
//! - `POST /v3/contacts` answers 201 `{"id"}` on create; with `updateEnabled: true`
//!   an existing contact (same email, `ext_id` or SMS) is updated: 204, no body;
//!   without it 400 `duplicate_parameter` with `metadata.duplicate_identifiers`.
//! - Attribute values of the wrong type, and unknown attributes, are ignored;
//!   phone numbers without a country code are 400 `invalid_parameter`.
//! - `GET /v3/contacts` orders by creation (`sort`, default `desc`);
//!   `modifiedSince` keeps contacts with `modifiedAt >= modifiedSince` (the sandbox
//!   reads "after" inclusively: nothing modified in the same millisecond is lost).
//!   Adding a contact to or removing it from a list modifies it, as in Brevo.
//! - `POST /v3/contacts/batch`: at most 100 contacts, all or nothing; unknown ones
//!   → 404 `No contact found for indexes 3,4` (0-based), as Brevo answers.
//! - `POST /v3/contacts/import` (≤ 10 MB) → 202 `{"processId"}`; nothing changes
//!   until the process runs: `GET /v3/processes/{id}` says `in_process` on the
//!   first poll and runs the import (and any older queued one) on the second,
//!   which says `completed`; an import also runs once [`IMPORT_AUTORUN_SECS`] of
//!   sandbox time have passed. Imports never clear `emailBlacklisted` (an
//!   unsubscribe); only an explicit `emailBlacklisted: false` on
//!   create/update/batch does.
//! - Every response has the `x-sib-ratelimit-*` headers (see [`ratelimit`]) and a
//!   `Date` from the sandbox clock (the clock of `createdAt` / `modifiedAt`).
//!
//! # Seed JSON (`POST /__sandbox/seed`, `SandboxOptions.seed["brevo"]`)
//! Every key is optional; items are added in this order:
//! ```json
//! {
//!   "attributes": [{"name": "COMPANY", "category": "normal", "type": "text"},
//!                  {"name": "TIER", "category": "category",
//!                   "enumeration": [{"value": 1, "label": "Gold"}]}],
//!   "folders": [{"id": 5, "name": "CRM"}],
//!   "lists": [{"id": 7, "name": "Newsletter", "folderId": 5}],
//!   "contacts": [{"id": 42, "email": "ann@example.com", "ext_id": "003xx",
//!                 "attributes": {"FIRSTNAME": "Ann", "SMS": "+33612345678"},
//!                 "listIds": [7], "emailBlacklisted": false, "smsBlacklisted": false,
//!                 "createdAt": "2024-01-01T00:00:00Z", "modifiedAt": "2024-01-02T00:00:00Z"}]
//! }
//! ```
//! Ids are optional (the next free one is used); `folderId` defaults to 1, the
//! default folder; timestamps default to the sandbox clock. Seeded contact
//! attributes must exist (the defaults are `FIRSTNAME`, `LASTNAME`, `SMS`,
//! `WHATSAPP`, `LANDLINE_NUMBER`, `EXT_ID`, `OPT_IN`, `DOUBLE_OPT-IN`).
//!
//! # State JSON (`GET /__sandbox/state`)
//! `{"contacts": [contact as GET /v3/contacts/{id} shows it, by id],
//!   "lists": [list as GET /v3/contacts/lists/{id} shows it + "contactIds"],
//!   "folders": [...], "attributes": [...],
//!   "processes": [{"id", "name", "status", "createdAt",
//!                  "report": {"created", "updated", "skipped", "invalid_rows", "invalid_emails"}}]}`

pub mod attributes;
pub mod contacts;
pub mod error;
pub mod lists;
pub mod ratelimit;
pub mod store;

use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::SandboxOptions;
use crate::common::{Vendor, VendorApi, VendorCtx};
use attributes::{AttrCategory, AttrType, AttributeDef};
use error::ApiError;
use ratelimit::{Family, Quota, RateLimiter};
use store::{ContactQuery, Store, fmt_ts};

/// Sandbox seconds after which a queued import runs even if nobody polls it.
pub const IMPORT_AUTORUN_SECS: i64 = 10;

/// Largest request body read (imports beyond 10 MB get Brevo's 400, not a 413).
const BODY_LIMIT: usize = 32 * 1024 * 1024;

/// How many recent query results are kept for paging.
const QUERY_CACHE: usize = 8;

/// A query result kept so that paging through it with `offset` is O(limit).
struct CachedQuery {
    query: ContactQuery,
    generation: u64,
    ids: Arc<Vec<u64>>,
}

pub struct Brevo {
    ctx: VendorCtx,
    api_key: String,
    store: RwLock<Store>,
    queries: Mutex<Vec<CachedQuery>>,
    limiter: RateLimiter,
}

impl Brevo {
    pub fn new(ctx: VendorCtx, opts: &SandboxOptions) -> Self {
        Self {
            ctx,
            api_key: opts.credentials.brevo_api_key.clone(),
            store: RwLock::new(Store::new()),
            queries: Mutex::new(Vec::new()),
            limiter: RateLimiter::default(),
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.ctx.clock.now()
    }

    fn read(&self) -> RwLockReadGuard<'_, Store> {
        self.store.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Store> {
        self.store.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The ids `query` matches, from the cache while no contact has changed.
    fn query_ids(&self, store: &Store, query: ContactQuery) -> Arc<Vec<u64>> {
        let lock = || self.queries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(hit) = lock().iter().find(|c| c.generation == store.generation && c.query == query) {
            return hit.ids.clone();
        }
        let ids = Arc::new(store.query(&query));
        let mut cache = lock();
        cache.retain(|c| c.generation == store.generation);
        if cache.len() >= QUERY_CACHE {
            cache.remove(0);
        }
        cache.push(CachedQuery { query, generation: store.generation, ids: ids.clone() });
        ids
    }

    /// Runs the imports that have waited long enough.
    fn run_due_imports(&self, now: DateTime<Utc>) {
        let autorun = chrono::Duration::seconds(IMPORT_AUTORUN_SECS);
        if self.read().due_import(now, autorun).is_some() {
            let mut store = self.write();
            if let Some(pid) = store.due_import(now, autorun) {
                store.run_imports_through(pid, now);
            }
        }
    }
}

/// Auth, rate limit and the rate-limit headers, around every Brevo route.
async fn gate(State(api): State<Arc<Brevo>>, req: Request, next: Next) -> Response {
    let now = api.now();
    let quota = api.limiter.take(Family::of_path(req.uri().path()), now);
    let authorized = req.uri().path().starts_with("/reports/")
        || req.headers().get("api-key").is_some_and(|key| key.as_bytes() == api.api_key.as_bytes());
    let mut response = if !authorized {
        ApiError::unauthorized().into_response()
    } else if !quota.within && api.ctx.rate_limits() {
        ApiError::too_many_requests().into_response()
    } else {
        api.run_due_imports(now);
        next.run(req).await
    };
    quota.write_headers(response.headers_mut());
    // Brevo's `Date` is its own clock, the one `modifiedAt` and `createdAt` use.
    if let Ok(date) = axum::http::HeaderValue::from_str(&now.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
    {
        response.headers_mut().insert(axum::http::header::DATE, date);
    }
    response
}

/// `GET /v3/account`
async fn account() -> Json<Value> {
    Json(json!({
        "email": "sandbox@crmsync.example",
        "firstName": "Sandbox",
        "lastName": "Account",
        "companyName": "crmsync sandbox",
        "address": {
            "street": "1 Loopback Street",
            "city": "Localhost",
            "zipCode": "00000",
            "country": "France"
        },
        "plan": [{ "type": "free", "credits": 300, "creditsType": "sendLimit" }],
        "relay": {
            "enabled": true,
            "data": { "userName": "sandbox@crmsync.example", "relay": "smtp-relay.brevo.com", "port": 587 }
        },
        "marketingAutomation": { "enabled": false }
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Seed {
    #[serde(default)]
    attributes: Vec<SeedAttribute>,
    #[serde(default)]
    folders: Vec<SeedFolder>,
    #[serde(default)]
    lists: Vec<SeedList>,
    #[serde(default)]
    contacts: Vec<SeedContact>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SeedAttribute {
    name: String,
    #[serde(default = "normal")]
    category: String,
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    enumeration: Vec<SeedEnum>,
    #[serde(default)]
    multi_category_options: Vec<String>,
}

fn normal() -> String {
    "normal".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedEnum {
    value: i64,
    label: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedFolder {
    id: Option<u64>,
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SeedList {
    id: Option<u64>,
    name: String,
    #[serde(default = "default_folder")]
    folder_id: u64,
}

fn default_folder() -> u64 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SeedContact {
    id: Option<u64>,
    email: Option<String>,
    #[serde(rename = "ext_id")]
    ext_id: Option<String>,
    #[serde(default)]
    attributes: Map<String, Value>,
    #[serde(default)]
    list_ids: Vec<u64>,
    #[serde(default)]
    email_blacklisted: bool,
    #[serde(default)]
    sms_blacklisted: bool,
    created_at: Option<DateTime<Utc>>,
    modified_at: Option<DateTime<Utc>>,
}

fn seed_into(store: &mut Store, seed: Seed, now: DateTime<Utc>) -> Result<(), String> {
    for a in seed.attributes {
        let category =
            AttrCategory::parse(&a.category).ok_or(format!("attribute {}: bad category", a.name))?;
        let kind = match (a.kind.as_deref(), category) {
            (Some(t), _) => AttrType::parse(t).ok_or(format!("attribute {}: bad type {t}", a.name))?,
            (None, AttrCategory::Category) => AttrType::Category,
            (None, _) => AttrType::Text,
        };
        store.add_attribute(AttributeDef {
            name: a.name.to_ascii_uppercase(),
            category,
            kind,
            enumeration: a.enumeration.into_iter().map(|e| (e.value, e.label)).collect(),
            options: a.multi_category_options,
            formula: None,
            is_recurring: None,
        });
    }
    for f in seed.folders {
        store.add_folder(f.id, f.name);
    }
    for l in seed.lists {
        if !store.folders.contains_key(&l.folder_id) {
            return Err(format!("list {}: folder {} does not exist", l.name, l.folder_id));
        }
        store.add_list(l.id, l.name, l.folder_id, now);
    }
    for (i, c) in seed.contacts.into_iter().enumerate() {
        let fail = |e: ApiError| format!("contacts[{i}]: {}", e.message);
        if let Some(unknown) = c.attributes.keys().find(|k| {
            !store.attributes.contains_key(*k)
                && !attributes::PHONE_ATTRS.contains(&k.as_str())
                && *k != "EXT_ID"
        }) {
            return Err(format!("contacts[{i}]: attribute {unknown} does not exist"));
        }
        let mut change =
            contacts::change_from(store, c.email.as_deref(), c.ext_id.as_deref(), Some(&c.attributes))
                .map_err(fail)?;
        change.email_blacklisted = Some(c.email_blacklisted);
        change.sms_blacklisted = Some(c.sms_blacklisted);
        change.link = c.list_ids;
        let created = c.created_at.unwrap_or(now);
        store.create_as(c.id, change, created, c.modified_at.unwrap_or(created)).map_err(fail)?;
    }
    Ok(())
}

impl VendorApi for Brevo {
    fn vendor(&self) -> Vendor {
        Vendor::Brevo
    }

    fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/v3/account", get(account))
            .route("/v3/contacts", get(contacts::list).post(contacts::create))
            .route("/v3/contacts/batch", post(contacts::batch))
            .route("/v3/contacts/import", post(contacts::import))
            .route(
                "/v3/contacts/{identifier}",
                get(contacts::get).put(contacts::update).delete(contacts::delete),
            )
            .route("/v3/contacts/attributes", get(attributes::list))
            .route(
                "/v3/contacts/attributes/{category}/{name}",
                post(attributes::create).put(attributes::update).delete(attributes::delete),
            )
            .route("/v3/contacts/lists", get(lists::lists).post(lists::create_list))
            .route(
                "/v3/contacts/lists/{listId}",
                get(lists::get_list).put(lists::update_list).delete(lists::delete_list),
            )
            .route("/v3/contacts/lists/{listId}/contacts", get(lists::list_contacts))
            .route("/v3/contacts/lists/{listId}/contacts/add", post(lists::add_contacts))
            .route("/v3/contacts/lists/{listId}/contacts/remove", post(lists::remove_contacts))
            .route("/v3/contacts/folders", get(lists::folders).post(lists::create_folder))
            .route(
                "/v3/contacts/folders/{folderId}",
                get(lists::get_folder).put(lists::update_folder).delete(lists::delete_folder),
            )
            .route("/v3/contacts/folders/{folderId}/lists", get(lists::folder_lists))
            .route("/v3/processes", get(contacts::processes))
            .route("/v3/processes/{processId}", get(contacts::process))
            .route("/reports/{processId}/invalid_emails.csv", get(contacts::invalid_emails_report))
            .fallback(|| async { ApiError::not_found("Invalid route") })
            .method_not_allowed_fallback(|| async {
                ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "Method not allowed")
            })
            .layer(middleware::from_fn_with_state(self.clone(), gate))
            .layer(DefaultBodyLimit::max(BODY_LIMIT))
            .with_state(self)
    }

    fn seed(&self, data: Value) -> Result<(), String> {
        let seed: Seed = serde_json::from_value(data).map_err(|e| e.to_string())?;
        let now = self.now();
        let mut store = self.write();
        seed_into(&mut store, seed, now)
    }

    fn state(&self) -> Value {
        let store = self.read();
        let contacts: Vec<Value> = store
            .contacts
            .values()
            .map(|c| serde_json::to_value(c.view(false)).unwrap_or(Value::Null))
            .collect();
        let lists: Vec<Value> = store
            .lists
            .values()
            .map(|l| {
                let (subscribers, blacklisted) = store.list_counts(l);
                json!({
                    "id": l.id, "name": l.name, "folderId": l.folder_id, "createdAt": fmt_ts(l.created_at),
                    "totalSubscribers": subscribers, "totalBlacklisted": blacklisted,
                    "uniqueSubscribers": subscribers + blacklisted, "contactIds": l.members,
                })
            })
            .collect();
        let folders: Vec<Value> =
            store.folders.values().map(|f| json!({ "id": f.id, "name": f.name })).collect();
        let attributes: Vec<Value> = store
            .attribute_order
            .iter()
            .filter_map(|n| store.attributes.get(n))
            .map(AttributeDef::to_json)
            .collect();
        let processes: Vec<Value> = store
            .processes
            .values()
            .map(|p| {
                json!({ "id": p.id, "name": p.name, "status": p.status,
                        "createdAt": fmt_ts(p.created_at), "report": p.report })
            })
            .collect();
        json!({
            "contacts": contacts, "lists": lists, "folders": folders,
            "attributes": attributes, "processes": processes,
        })
    }

    fn reset(&self) {
        *self.write() = Store::new();
        self.queries.lock().unwrap_or_else(PoisonError::into_inner).clear();
        self.limiter.reset();
    }

    fn error_body(&self, status: StatusCode) -> Response {
        let mut response = ApiError::for_status(status).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS {
            Quota::exhausted().write_headers(response.headers_mut());
        }
        response
    }
}
