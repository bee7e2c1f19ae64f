//! The ActiveCampaign API v3 sandbox: one in-memory AC account served under
//! `/api/3/`, with AC's auth, payloads, status codes, error bodies, paging and
//! its 5 requests/second account rate limit.
//!
//! # Layout
//! - [`store`]: the records and contact indexes (by id, by lower-cased email, by
//!   `udate`), contact upsert/query, bulk-import application.
//! - [`api`]: the shared HTTP pieces — [`api::AcError`] (AC's error shapes),
//!   body and query parsing, paging, timestamps, links.
//! - [`render`]: records as AC's JSON.
//! - `contacts`: contacts, `/contact/sync`, custom fields and values, tags,
//!   contact tags, bulk import.
//! - `accounts`: accounts, account contacts, account custom fields.
//! - `marketing`: automations, contact automations, campaigns, activities,
//!   tracking logs.
//! - `seed`: the seed and state JSON.
//!
//! # Behaviour
//! - Auth: header `Api-Token: <activecampaign_api_token>`; missing or wrong →
//!   403 `{"message": "You are not authorized to access this resource"}`.
//! - Rate limit (when `ctx.rate_limits()` is on): a token bucket of 5 requests
//!   per second for the whole account, no burst beyond that; excess → 429
//!   `{"message": "Too Many Requests"}` with `Retry-After` (seconds). The bucket
//!   refills with real time or with the sandbox clock, whichever moved more, so
//!   tests can refill it by advancing the clock. Bulk import has its own limit
//!   of 100 imports per minute → 400 as AC documents.
//! - Timestamps come from the sandbox clock, at second precision (so does
//!   every answer's `Date` header, after the authorisation check), rendered in
//!   the account time zone (`2024-01-02T03:04:05-05:00`; default -05:00, seed
//!   `utc_offset`). Date filters without an offset are read in that zone.
//! - Lists: `limit` (default 20, max 100), `offset`, `meta.total` (a string,
//!   as AC sends it). `GET /contacts` pages efficiently by `id_greater` +
//!   `orders[id]` and by `filters[updated_after]` + `orders[udate]`.
//!   `filters[updated_after]`/`created_after` are day-granular (a time
//!   part is ignored; the day starts in the account time zone) and strict
//!   (`udate >` the day's start), `_before` likewise.
//! - `POST /contact/sync` and bulk import dedupe by email, case-insensitively;
//!   sync answers 201 when it created the contact and 200 when it updated one.
//! - Bulk import (`POST /import/bulk_import`, 1–250 contacts) is queued and
//!   applied at the latest by the first `GET /import/info?batchId=` for it, or
//!   by any request once the sandbox clock is [`IMPORT_DELAY_SECS`] past its
//!   acceptance; `/import/info` then reports `completed` with the contact ids.
//! - Campaigns and automations carry `labels` (names, e.g. `"Salesforce"`);
//!   AC shows labels in its UI but documents no API field for them, so the
//!   sandbox adds a `labels` array to both and a case-insensitive
//!   `filters[label_name]=` on both lists.
//!
//! # Seed JSON (`POST /__sandbox/seed`, `SandboxOptions.seed["activecampaign"]`)
//! Every key is optional; records are added to what is there. Ids are assigned
//! in order unless given; timestamps are RFC 3339 strings or Unix seconds and
//! default to the sandbox clock.
//! ```json
//! {
//!   "utc_offset": "-05:00",
//!   "fields": [{"id": 1, "title": "Industry", "type": "text", "perstag": "INDUSTRY"}],
//!   "tags": [{"tag": "vip", "tagType": "contact", "description": ""}],
//!   "accountCustomFieldMeta": [{"fieldLabel": "Employees", "fieldType": "number"}],
//!   "accounts": [{"name": "Acme", "accountUrl": "https://acme.test",
//!                 "fields": [{"customFieldId": 1, "fieldValue": "500"}]}],
//!   "contacts": [{"id": 7, "email": "ann@acme.test", "firstName": "Ann", "lastName": "Lee",
//!                 "phone": "", "cdate": "2024-01-01T00:00:00Z", "udate": "2024-01-02T00:00:00Z",
//!                 "fieldValues": [{"field": 1, "value": "Retail"}], "tags": ["vip"],
//!                 "lists": [{"list": 1, "status": 1}], "account": "Acme", "jobTitle": "CTO"}],
//!   "generate_contacts": {"count": 100000, "prefix": "user", "domain": "example.com"},
//!   "automations": [{"id": 2, "name": "Welcome", "status": "1", "labels": ["Salesforce"]}],
//!   "campaigns": [{"id": 3, "name": "June news", "type": "single", "status": "5",
//!                  "labels": ["Salesforce"], "sdate": "2024-06-01T10:00:00Z", "automation": 2}],
//!   "activities": [{"contact": 7, "type": "open", "tstamp": "2024-06-01T10:05:00Z", "campaign": 3}],
//!   "trackingLogs": [{"email": "ann@acme.test", "type": "open", "tstamp": 1717236300, "campaign": 3}]
//! }
//! ```
//! Activity `type` is one of `sent`, `open`, `reply`, `click`, `automation_entered`,
//! `automation_completed`, `site`, `event`, `email` (rendered as AC's
//! `reference_type`: `CampaignSend`, `CampaignOpen`, `CampaignReply`, `LinkClick`,
//! `AutomationEntered`, `AutomationCompleted`, `SiteTracking`, `EventTracking`,
//! `SubscriberEmail`); activities and tracking logs name their contact by
//! `contact` (id) or `email`.
//!
//! # State JSON (`GET /__sandbox/state`)
//! `{"contacts": [{"id", "email", "firstName", "lastName", "phone", "cdate", "udate",
//! "fieldValues": {"<field id>": "value"}, "tags": ["name"], "lists": {"<list>": status},
//! "account": id|null}], "fields", "tags", "accounts" (with "fields"), "accountContacts",
//! "accountCustomFieldMeta", "automations", "contactAutomations", "campaigns",
//! "activities", "trackingLogs", "imports": [{"batchId", "status", "queued", "success",
//! "failure"}], "counts": {"contacts": n, ...}}` — timestamps as RFC 3339 UTC.

mod accounts;
pub mod api;
mod contacts;
mod marketing;
pub mod render;
mod seed;
pub mod store;

use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::SandboxOptions;
use crate::common::{Vendor, VendorApi, VendorCtx};
use api::AcError;
use store::Store;

/// Requests per second per account, and the bucket size (AC allows no burst).
pub const RATE_PER_SEC: f64 = 5.0;
/// Bulk imports allowed per minute.
pub const IMPORTS_PER_MIN: f64 = 100.0;
/// Seconds of sandbox clock after which a queued import applies on its own.
pub const IMPORT_DELAY_SECS: i64 = 2;

/// A token bucket that refills with real time or the sandbox clock, whichever
/// advanced more since the last request. Real time is tokio's clock, so a test
/// on a paused runtime controls it too (and gets exact counts).
#[derive(Debug)]
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    real: Instant,
    clock: DateTime<Utc>,
}

impl Bucket {
    fn new(rate: f64, burst: f64, clock: DateTime<Utc>) -> Self {
        Self { rate, burst, tokens: burst, real: Instant::now(), clock }
    }

    /// Takes one token, or says how many whole seconds until one is there.
    fn take(&mut self, clock: DateTime<Utc>) -> Result<(), u64> {
        let real = Instant::now();
        let by_real = real.duration_since(self.real).as_secs_f64();
        let by_clock = ((clock - self.clock).num_milliseconds() as f64 / 1000.0).max(0.0);
        self.tokens = (self.tokens + by_real.max(by_clock) * self.rate).min(self.burst);
        self.real = real;
        self.clock = clock;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err((((1.0 - self.tokens) / self.rate).ceil() as u64).max(1))
        }
    }
}

/// The ActiveCampaign sandbox server state.
pub struct ActiveCampaign {
    ctx: VendorCtx,
    token: String,
    store: RwLock<Store>,
    requests: Mutex<Bucket>,
    imports: Mutex<Bucket>,
}

impl ActiveCampaign {
    pub fn new(ctx: VendorCtx, opts: &SandboxOptions) -> Self {
        let now = ctx.clock.now();
        Self {
            token: opts.credentials.activecampaign_api_token.clone(),
            store: RwLock::new(Store::default()),
            requests: Mutex::new(Bucket::new(RATE_PER_SEC, RATE_PER_SEC, now)),
            imports: Mutex::new(Bucket::new(IMPORTS_PER_MIN / 60.0, IMPORTS_PER_MIN, now)),
            ctx,
        }
    }

    /// The sandbox clock, in AC's second precision.
    fn now(&self) -> i64 {
        api::secs(self.ctx.clock.now())
    }

    fn read(&self) -> RwLockReadGuard<'_, Store> {
        self.store.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Store> {
        self.store.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks the bulk-import rate (100 per minute) when limits are on.
    fn take_import_slot(&self) -> Result<(), AcError> {
        if !self.ctx.rate_limits() {
            return Ok(());
        }
        let mut bucket = self.imports.lock().unwrap_or_else(|e| e.into_inner());
        bucket.take(self.ctx.clock.now()).map_err(|_| {
            AcError::BadRequest(json!({
                "success": 0,
                "message": "Rate limit exceeded.",
                "failureReasons": ["Up to 100 imports may be requested per minute.Please batch contacts into larger requests, or retry this request in a minute."],
            }))
        })
    }

    /// Applies queued imports whose delay has passed.
    fn apply_due_imports(&self) {
        let now = self.now();
        let due = {
            let s = self.read();
            s.pending_imports
                .front()
                .and_then(|b| s.imports.get(b))
                .is_some_and(|i| i.accepted + IMPORT_DELAY_SECS <= now)
        };
        if due {
            self.write().apply_due_imports(now - IMPORT_DELAY_SECS, now);
        }
    }
}

/// Auth, then the account rate limit, then due imports; runs before every handler.
async fn guard(State(ac): State<Arc<ActiveCampaign>>, req: Request, next: Next) -> Response {
    let authorized =
        req.headers().get("api-token").and_then(|v| v.to_str().ok()).is_some_and(|t| t == ac.token);
    if !authorized {
        return AcError::Forbidden("You are not authorized to access this resource".into()).into_response();
    }
    if ac.ctx.rate_limits() {
        let taken = ac.requests.lock().unwrap_or_else(|e| e.into_inner()).take(ac.ctx.clock.now());
        if let Err(retry_after) = taken {
            return AcError::RateLimited { retry_after }.into_response();
        }
    }
    ac.apply_due_imports();
    let mut response = next.run(req).await;
    // AC's `Date` is its own clock, the one `udate` and `cdate` use.
    let now = ac.ctx.clock.now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    if let Ok(date) = axum::http::HeaderValue::from_str(&now) {
        response.headers_mut().insert(axum::http::header::DATE, date);
    }
    response
}

/// Unknown `/api/3/...` paths: AC answers 404 with a message.
async fn no_route() -> Response {
    (StatusCode::NOT_FOUND, axum::Json(json!({ "message": "No Result found" }))).into_response()
}

impl VendorApi for ActiveCampaign {
    fn vendor(&self) -> Vendor {
        Vendor::ActiveCampaign
    }

    fn router(self: Arc<Self>) -> Router {
        use accounts as a;
        use contacts as c;
        use marketing as m;
        let api = Router::new()
            .route("/contacts", get(c::list).post(c::create))
            .route("/contacts/{id}", get(c::retrieve).put(c::update).delete(c::delete))
            .route("/contact/sync", post(c::sync))
            .route("/contacts/{id}/fieldValues", get(c::contact_field_values))
            .route("/contacts/{id}/contactTags", get(c::contact_tags_of))
            .route("/contacts/{id}/contactLists", get(c::contact_lists_of))
            .route("/contacts/{id}/accountContacts", get(a::contact_account_contacts))
            .route("/contacts/{id}/contactAutomations", get(m::contact_automations_of))
            .route("/contacts/{id}/trackingLogs", get(m::tracking_logs_of))
            .route("/contactLists", post(c::update_list_status))
            .route("/fields", get(c::list_fields).post(c::create_field))
            .route("/fields/{id}", get(c::retrieve_field))
            .route("/fieldValues", get(c::list_field_values).post(c::create_field_value))
            .route(
                "/fieldValues/{id}",
                get(c::retrieve_field_value).put(c::update_field_value).delete(c::delete_field_value),
            )
            .route("/tags", get(c::list_tags).post(c::create_tag))
            .route("/tags/{id}", get(c::retrieve_tag))
            .route("/contactTags", post(c::add_contact_tag))
            .route("/contactTags/{id}", axum::routing::delete(c::remove_contact_tag))
            .route("/import/bulk_import", post(c::bulk_import).get(c::bulk_import_status))
            .route("/import/info", get(c::import_info))
            .route("/accounts", get(a::list).post(a::create))
            .route("/accounts/{id}", get(a::retrieve).put(a::update).delete(a::delete))
            .route("/accountContacts", get(a::list_contacts).post(a::link))
            .route("/accountContacts/{id}", get(a::retrieve_contact).delete(a::unlink))
            .route("/accountCustomFieldMeta", get(a::list_field_meta).post(a::create_field_meta))
            .route("/accountCustomFieldData", get(a::list_field_data).post(a::create_field_datum))
            .route("/automations", get(m::list_automations))
            .route("/contactAutomations", get(m::list_contact_automations).post(m::add_to_automation))
            .route(
                "/contactAutomations/{id}",
                get(m::retrieve_contact_automation).delete(m::remove_from_automation),
            )
            .route("/campaigns", get(m::list_campaigns))
            .route("/campaigns/{id}", get(m::retrieve_campaign))
            .route("/activities", get(m::list_activities))
            .fallback(no_route)
            .layer(middleware::from_fn_with_state(self.clone(), guard))
            .with_state(self);
        Router::new().nest("/api/3", api)
    }

    fn seed(&self, data: Value) -> Result<(), String> {
        let now = self.now();
        seed::seed(&mut self.write(), &data, now)
    }

    fn state(&self) -> Value {
        self.apply_due_imports();
        seed::state(&self.read())
    }

    fn reset(&self) {
        *self.write() = Store::default();
        let now = self.ctx.clock.now();
        *self.requests.lock().unwrap_or_else(|e| e.into_inner()) =
            Bucket::new(RATE_PER_SEC, RATE_PER_SEC, now);
        *self.imports.lock().unwrap_or_else(|e| e.into_inner()) =
            Bucket::new(IMPORTS_PER_MIN / 60.0, IMPORTS_PER_MIN, now);
    }

    fn error_body(&self, status: StatusCode) -> Response {
        let err = match status.as_u16() {
            400 => AcError::BadRequest(json!({})),
            403 => AcError::Forbidden("Forbidden".into()),
            404 => AcError::NotFound("No Result found".into()),
            422 => AcError::Unprocessable(vec![api::ErrorItem {
                title: "Unprocessable Entity".into(),
                detail: String::new(),
                code: "invalid".into(),
                attribute: None,
            }]),
            429 => {
                return (status, axum::Json(json!({ "message": "Too Many Requests" }))).into_response();
            }
            code => AcError::json(code, json!({ "message": status.canonical_reason().unwrap_or("Error") })),
        };
        let mut r = err.into_response();
        *r.status_mut() = status;
        r
    }
}
