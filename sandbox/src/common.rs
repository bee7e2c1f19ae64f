//! What every vendor server shares: the controllable clock, call counters and the
//! request log, fault injection, the rate-limit switch, and the admin API.
//!
//! The admin API lives under `/__sandbox/` on each vendor's port and is not part
//! of any vendor API; its calls are neither counted nor subject to faults:
//!
//! | method | path | body / effect |
//! |---|---|---|
//! | GET | `/__sandbox/state` | the vendor's whole state as JSON |
//! | POST | `/__sandbox/seed` | vendor-specific seed JSON, added to the state |
//! | POST | `/__sandbox/reset` | empties the state, counters, log and faults |
//! | GET | `/__sandbox/calls` | `{"total": n, "by_endpoint": {"GET /path/{id}": n}}` |
//! | GET | `/__sandbox/log` | the last requests: method, path, query, status, at |
//! | POST | `/__sandbox/faults` | one [`FaultRule`] (or a list) appended to the queue |
//! | DELETE | `/__sandbox/faults` | removes every fault rule |
//! | POST | `/__sandbox/rate-limits` | `{"enabled": bool}` |
//! | POST | `/__sandbox/clock` | `{"set": "RFC 3339"}`, `{"advance_secs": n}` or `{"real": true}` |
//! | POST | `/__sandbox/expire-sessions` | invalidates every issued token (Salesforce) |

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};

use crate::SandboxError;

/// Where the admin API lives on every vendor port.
pub const ADMIN_PREFIX: &str = "/__sandbox";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Vendor {
    Salesforce,
    ActiveCampaign,
    Mailchimp,
    Brevo,
}

impl Vendor {
    pub const ALL: [Vendor; 4] =
        [Vendor::Salesforce, Vendor::ActiveCampaign, Vendor::Mailchimp, Vendor::Brevo];

    /// The vendor whose [`Vendor::key`] this is.
    pub fn from_key(key: &str) -> Option<Vendor> {
        Self::ALL.into_iter().find(|v| v.key() == key)
    }

    /// The key of this vendor in seed files and JSON.
    pub fn key(self) -> &'static str {
        match self {
            Vendor::Salesforce => "salesforce",
            Vendor::ActiveCampaign => "activecampaign",
            Vendor::Mailchimp => "mailchimp",
            Vendor::Brevo => "brevo",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Vendor::Salesforce => "Salesforce",
            Vendor::ActiveCampaign => "ActiveCampaign",
            Vendor::Mailchimp => "Mailchimp",
            Vendor::Brevo => "Brevo",
        }
    }
}

/// A clock shared by every vendor server. Real time by default; tests can set
/// it, freeze it, or move it forward through the admin API or directly.
#[derive(Debug, Clone, Default)]
pub struct Clock(Arc<Mutex<ClockMode>>);

#[derive(Debug, Clone, Copy, Default)]
enum ClockMode {
    #[default]
    Real,
    /// Real time shifted by this many milliseconds.
    Offset(i64),
    /// Frozen at this instant until moved.
    Fixed(DateTime<Utc>),
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        match *self.0.lock().expect("clock lock") {
            ClockMode::Real => Utc::now(),
            ClockMode::Offset(ms) => Utc::now() + chrono::Duration::milliseconds(ms),
            ClockMode::Fixed(t) => t,
        }
    }

    /// Freezes the clock at `t`.
    pub fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().expect("clock lock") = ClockMode::Fixed(t);
    }

    /// Moves the clock forward (a frozen clock stays frozen, a running one keeps running).
    pub fn advance(&self, by: Duration) {
        let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        let mut mode = self.0.lock().expect("clock lock");
        *mode = match *mode {
            ClockMode::Real => ClockMode::Offset(by.num_milliseconds()),
            ClockMode::Offset(ms) => ClockMode::Offset(ms + by.num_milliseconds()),
            ClockMode::Fixed(t) => ClockMode::Fixed(t + by),
        };
    }

    pub fn real(&self) {
        *self.0.lock().expect("clock lock") = ClockMode::Real;
    }
}

/// One logged request.
#[derive(Debug, Clone, Serialize)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// The route template, e.g. `GET /api/3/contacts/{id}`.
    pub endpoint: String,
    pub status: u16,
    pub at: DateTime<Utc>,
}

/// Call counters per endpoint and a bounded request log.
#[derive(Debug, Default)]
pub struct Telemetry {
    total: AtomicU64,
    inner: Mutex<TelemetryInner>,
}

#[derive(Debug, Default)]
struct TelemetryInner {
    by_endpoint: BTreeMap<String, u64>,
    log: VecDeque<LoggedRequest>,
}

/// How many requests the log keeps.
const LOG_CAPACITY: usize = 10_000;

impl Telemetry {
    fn record(&self, entry: LoggedRequest) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let mut inner = self.inner.lock().expect("telemetry lock");
        *inner.by_endpoint.entry(entry.endpoint.clone()).or_default() += 1;
        if inner.log.len() == LOG_CAPACITY {
            inner.log.pop_front();
        }
        inner.log.push_back(entry);
    }

    /// Every vendor API call made so far (admin calls excluded).
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Calls per endpoint template, e.g. `"POST /api/3/import/bulk_import" -> 40`.
    pub fn by_endpoint(&self) -> BTreeMap<String, u64> {
        self.inner.lock().expect("telemetry lock").by_endpoint.clone()
    }

    pub fn log(&self) -> Vec<LoggedRequest> {
        self.inner.lock().expect("telemetry lock").log.iter().cloned().collect()
    }

    pub fn reset(&self) {
        self.total.store(0, Ordering::Relaxed);
        *self.inner.lock().expect("telemetry lock") = TelemetryInner::default();
    }
}

/// One fault to inject. Rules are checked in order; the first whose `endpoint`
/// matches applies and uses up one of its `times`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultRule {
    /// Applies to requests whose `METHOD /path` contains this text; all when absent.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// How many matching calls this rule affects; unlimited when absent.
    #[serde(default)]
    pub times: Option<u32>,
    pub fault: Fault,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Fault {
    /// Delay the response, then serve it normally.
    Latency { ms: u64 },
    /// Answer with this status; the body defaults to the vendor's own error shape
    /// for that status (see [`VendorApi::error_body`]).
    Status {
        status: u16,
        #[serde(default)]
        retry_after_secs: Option<u64>,
        #[serde(default)]
        body: Option<Value>,
    },
    /// Never answer (the client's timeout fires). The request is held for an
    /// hour, or until the sandbox shuts down, then answered 504.
    Timeout,
    /// Invalidate every issued session first (Salesforce answers 401 INVALID_SESSION_ID).
    ExpireSession,
}

/// The state every vendor server shares with the admin API.
#[derive(Debug, Clone)]
pub struct VendorCtx {
    pub vendor: Vendor,
    pub clock: Clock,
    pub telemetry: Arc<Telemetry>,
    faults: Arc<Mutex<Vec<FaultRule>>>,
    rate_limits: Arc<AtomicBool>,
}

impl VendorCtx {
    pub fn new(vendor: Vendor, clock: Clock, rate_limits: bool) -> Self {
        Self {
            vendor,
            clock,
            telemetry: Arc::default(),
            faults: Arc::default(),
            rate_limits: Arc::new(AtomicBool::new(rate_limits)),
        }
    }

    /// Whether the vendor's real rate limits are enforced right now.
    pub fn rate_limits(&self) -> bool {
        self.rate_limits.load(Ordering::Relaxed)
    }

    pub fn set_rate_limits(&self, on: bool) {
        self.rate_limits.store(on, Ordering::Relaxed);
    }

    pub fn add_fault(&self, rule: FaultRule) {
        self.faults.lock().expect("faults lock").push(rule);
    }

    pub fn clear_faults(&self) {
        self.faults.lock().expect("faults lock").clear();
    }

    /// Takes the fault that applies to `endpoint`, if any, using up one of its times.
    fn take_fault(&self, endpoint: &str) -> Option<Fault> {
        let mut rules = self.faults.lock().expect("faults lock");
        let idx = rules
            .iter()
            .position(|r| r.endpoint.as_deref().is_none_or(|e| endpoint.contains(e)) && r.times != Some(0))?;
        let rule = &mut rules[idx];
        let fault = rule.fault.clone();
        if let Some(times) = rule.times.as_mut() {
            *times -= 1;
            if *times == 0 {
                rules.remove(idx);
            }
        }
        Some(fault)
    }
}

/// What a vendor module implements so the shared server can host it.
pub trait VendorApi: Send + Sync + 'static {
    fn vendor(&self) -> Vendor;
    /// The vendor API's routes (paths exactly as the real API has them).
    fn router(self: Arc<Self>) -> Router;
    /// Adds seed data (the vendor's own JSON shape, documented in its module).
    fn seed(&self, data: Value) -> Result<(), String>;
    /// The whole state, for tests and `GET /__sandbox/state`.
    fn state(&self) -> Value;
    /// Empties the state.
    fn reset(&self);
    /// Invalidates issued sessions; only Salesforce has any.
    fn expire_sessions(&self) {}
    /// The body this vendor sends with an error status, in its own documented shape.
    fn error_body(&self, status: StatusCode) -> Response;
    /// Admission control, run before faults and the handler: `Err` answers the
    /// request at once (e.g. Mailchimp's 429 past 10 concurrent connections);
    /// `Ok(guard)` is held until the response is ready, so injected latency
    /// counts as time in flight. Admits everything by default.
    fn admit(&self, _headers: &axum::http::HeaderMap) -> Result<Option<Box<dyn Send>>, Box<Response>> {
        Ok(None)
    }
}

/// One running vendor server.
pub struct Server {
    pub vendor: Vendor,
    pub addr: SocketAddr,
    pub scheme: Scheme,
    pub ctx: VendorCtx,
    stop: Option<oneshot::Sender<()>>,
    stopping: Arc<watch::Sender<bool>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Hosted {
    api: Arc<dyn VendorApi>,
    ctx: VendorCtx,
    /// Turns true when the server shuts down, releasing held (timed-out) requests.
    stopping: Arc<watch::Sender<bool>>,
}

impl Server {
    /// Serves `api` over plain HTTP on `addr`.
    pub async fn start(
        api: Arc<dyn VendorApi>,
        ctx: VendorCtx,
        addr: SocketAddr,
    ) -> Result<Server, SandboxError> {
        Server::start_with(api, ctx, addr, None).await
    }

    /// Serves `api` on `addr`, over HTTPS with `tls`'s certificate when given.
    pub async fn start_with(
        api: Arc<dyn VendorApi>,
        ctx: VendorCtx,
        addr: SocketAddr,
        tls: Option<&crate::tls::SandboxCert>,
    ) -> Result<Server, SandboxError> {
        let vendor = api.vendor();
        let bind_error = |source| SandboxError::Bind { vendor: vendor.name(), addr, source };
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let stopping = Arc::new(watch::channel(false).0);
        let hosted = Hosted { api: api.clone(), ctx: ctx.clone(), stopping: stopping.clone() };
        let scheme = if tls.is_some() { Scheme::Https } else { Scheme::Http };
        let app = Router::new()
            .merge(api.router().route_layer(middleware::from_fn_with_state(hosted.clone(), observe)))
            .nest(ADMIN_PREFIX, admin_router(hosted))
            .layer(Extension(scheme));
        let (stop, stopped) = oneshot::channel::<()>();
        let stopped = async {
            let _ = stopped.await;
        };
        let task = match tls {
            None => tokio::spawn(serve(vendor, listener, app, stopped)),
            Some(cert) => {
                let listener = crate::tls::TlsListener::new(listener, cert.acceptor()).map_err(bind_error)?;
                tokio::spawn(serve(vendor, listener, app, stopped))
            }
        };
        Ok(Server { vendor, addr, scheme, ctx, stop: Some(stop), stopping, task })
    }

    /// Base URL of this server, e.g. `https://127.0.0.1:41234`.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme.as_str(), self.addr)
    }

    /// Stops accepting, releases requests held by a timeout fault, and waits
    /// for the requests in flight to finish.
    pub async fn shutdown(mut self) {
        self.stopping.send_replace(true);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.task.await;
    }
}

async fn serve<L>(
    vendor: Vendor,
    listener: L,
    app: Router,
    stopped: impl std::future::Future<Output = ()> + Send + 'static,
) where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stopped).await {
        tracing::error!(vendor = vendor.name(), error = %e, "sandbox server stopped");
    }
}

/// Whether a server speaks plain HTTP or HTTPS. Every request carries it as an
/// extension, so URLs in responses (`instance_url`, `response_body_url`, links)
/// name the scheme the client used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheme {
    #[default]
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// `scheme://host[:port]` of this server as the client addressed it (the
/// `Host` header and the connection's [`Scheme`]), for absolute URLs in
/// responses. Never rejects: without a `Host` header it says `127.0.0.1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin(pub String);

impl Origin {
    pub fn of(headers: &axum::http::HeaderMap, extensions: &axum::http::Extensions) -> Origin {
        let scheme = extensions.get::<Scheme>().copied().unwrap_or_default();
        let host = headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
        Origin(format!("{}://{host}", scheme.as_str()))
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Origin::of(&parts.headers, &parts.extensions))
    }
}

/// Counts and logs every vendor call, then applies the first matching fault.
async fn observe(State(hosted): State<Hosted>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let template =
        req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string()).unwrap_or_else(|| path.clone());
    let endpoint = format!("{method} {template}");

    let admitted = hosted.api.admit(req.headers());
    let _in_flight = match admitted {
        Ok(guard) => guard,
        Err(response) => {
            return record(&hosted, method, path, query, endpoint, *response);
        }
    };
    let fault = hosted.ctx.take_fault(&format!("{method} {path}"));
    let response = match fault {
        None => next.run(req).await,
        Some(Fault::Latency { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            next.run(req).await
        }
        Some(Fault::Status { status, retry_after_secs, body }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = match body {
                Some(body) => (status, Json(body)).into_response(),
                None => hosted.api.error_body(status),
            };
            if let Some(secs) = retry_after_secs {
                response.headers_mut().insert("retry-after", HeaderValue::from(secs));
            }
            response
        }
        Some(Fault::Timeout) => {
            // Hold the connection until the client gives up (or the sandbox stops,
            // so a graceful shutdown does not wait an hour).
            let mut stopping = hosted.stopping.subscribe();
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
                _ = stopping.wait_for(|s| *s) => {}
            }
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        Some(Fault::ExpireSession) => {
            hosted.api.expire_sessions();
            next.run(req).await
        }
    };
    record(&hosted, method, path, query, endpoint, response)
}

fn record(
    hosted: &Hosted,
    method: String,
    path: String,
    query: Option<String>,
    endpoint: String,
    response: Response,
) -> Response {
    hosted.ctx.telemetry.record(LoggedRequest {
        method,
        path,
        query,
        endpoint,
        status: response.status().as_u16(),
        at: hosted.ctx.clock.now(),
    });
    response
}

fn admin_router(hosted: Hosted) -> Router {
    Router::new()
        .route("/state", get(|State(h): State<Hosted>| async move { Json(h.api.state()) }))
        .route("/seed", post(admin_seed))
        .route("/reset", post(admin_reset))
        .route("/calls", get(admin_calls))
        .route("/log", get(|State(h): State<Hosted>| async move { Json(h.ctx.telemetry.log()) }))
        .route("/faults", post(admin_add_faults).delete(admin_clear_faults))
        .route("/rate-limits", post(admin_rate_limits))
        .route("/clock", post(admin_clock))
        .route(
            "/expire-sessions",
            post(|State(h): State<Hosted>| async move {
                h.api.expire_sessions();
                StatusCode::NO_CONTENT
            }),
        )
        .with_state(hosted)
}

/// Seeds from the body; a body that is not JSON, or JSON the vendor rejects,
/// gets 400 `{"error": "<what is wrong>"}`.
async fn admin_seed(State(h): State<Hosted>, body: axum::body::Bytes) -> Response {
    let bad = |message: String| (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response();
    let data: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad(format!("the {} seed is not JSON: {e}", h.api.vendor().name())),
    };
    match h.api.seed(data) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(message) => bad(format!("bad {} seed: {message}", h.api.vendor().name())),
    }
}

async fn admin_reset(State(h): State<Hosted>) -> StatusCode {
    h.api.reset();
    h.ctx.telemetry.reset();
    h.ctx.clear_faults();
    StatusCode::NO_CONTENT
}

async fn admin_calls(State(h): State<Hosted>) -> Json<Value> {
    Json(json!({ "total": h.ctx.telemetry.total(), "by_endpoint": h.ctx.telemetry.by_endpoint() }))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(FaultRule),
    Many(Vec<FaultRule>),
}

async fn admin_add_faults(State(h): State<Hosted>, Json(body): Json<OneOrMany>) -> StatusCode {
    let rules = match body {
        OneOrMany::One(rule) => vec![rule],
        OneOrMany::Many(rules) => rules,
    };
    for rule in rules {
        h.ctx.add_fault(rule);
    }
    StatusCode::NO_CONTENT
}

async fn admin_clear_faults(State(h): State<Hosted>) -> StatusCode {
    h.ctx.clear_faults();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct RateLimits {
    enabled: bool,
}

async fn admin_rate_limits(State(h): State<Hosted>, Json(body): Json<RateLimits>) -> StatusCode {
    h.ctx.set_rate_limits(body.enabled);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct ClockChange {
    #[serde(default)]
    set: Option<DateTime<Utc>>,
    #[serde(default)]
    advance_secs: Option<u64>,
    #[serde(default)]
    real: Option<bool>,
}

async fn admin_clock(State(h): State<Hosted>, Json(body): Json<ClockChange>) -> Json<Value> {
    if body.real == Some(true) {
        h.ctx.clock.real();
    }
    if let Some(t) = body.set {
        h.ctx.clock.set(t);
    }
    if let Some(secs) = body.advance_secs {
        h.ctx.clock.advance(Duration::from_secs(secs));
    }
    Json(json!({ "now": h.ctx.clock.now() }))
}
