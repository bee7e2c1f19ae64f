//! The admin API's shape: one table of routes — method, path, role, what it
//! does, its query parameters and body — from which the router, the role
//! checks and the OpenAPI document at `/openapi.json` are all built, so the
//! document cannot drift from what the server answers.
//!
//! Also here: the bearer-token roles (admin, standard; constant-time
//! comparison; 401 with `WWW-Authenticate`, 403 for the standard token on an
//! admin route), JSON error bodies ([`problem`]) and the access log (one
//! `crmsync::access` line per request: method, route pattern — never the raw
//! path, which may hold an email —, status, milliseconds).

// Handlers answer errors as ready responses; their size does not matter here.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{DefaultBodyLimit, FromRef, MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{MethodRouter, get, post, put};
use serde_json::{Value, json};

use super::serve::{self as s, App};
use super::{Service, activity_api as activity, plugin_api as plugins, records};
use crmsync_core::Secret;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token: health, readiness, this document, the dashboard page.
    Open,
    /// The standard token (or the admin one): reads, metrics, record actions.
    Standard,
    /// The admin token only: connections, schedules, plugins.
    Admin,
}

impl Access {
    fn name(self) -> &'static str {
        match self {
            Access::Open => "none",
            Access::Standard => "standard",
            Access::Admin => "admin",
        }
    }
}

/// One route of the admin API, described and served.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub summary: &'static str,
    /// Query parameters: name and meaning.
    pub query: &'static [(&'static str, &'static str)],
    /// The request body, when it has one: its media type and what it holds.
    pub body: Option<(&'static str, &'static str)>,
    handler: MethodRouter<App>,
}

fn route(method: Method, path: &'static str, access: Access, summary: &'static str) -> RouteBuilder {
    RouteBuilder(Route {
        method,
        path,
        access,
        summary,
        query: &[],
        body: None,
        handler: MethodRouter::new(),
    })
}

struct RouteBuilder(Route);

impl RouteBuilder {
    fn query(mut self, query: &'static [(&'static str, &'static str)]) -> Self {
        self.0.query = query;
        self
    }
    fn json(mut self, body: &'static str) -> Self {
        self.0.body = Some(("application/json", body));
        self
    }
    fn form(mut self, body: &'static str) -> Self {
        self.0.body = Some(("multipart/form-data", body));
        self
    }
    fn to(mut self, handler: MethodRouter<App>) -> Route {
        self.0.handler = handler;
        self.0
    }
}

impl FromRef<App> for Arc<Service> {
    fn from_ref(app: &App) -> Self {
        app.service.clone()
    }
}

/// Every route of the admin API.
pub fn table() -> Vec<Route> {
    use Access::{Admin, Open, Standard};
    let (g, p, u) = (Method::GET, Method::POST, Method::PUT);
    vec![
        route(g.clone(), "/health", Open, "`{\"status\": \"ok\"}` while the process answers").to(get(health)),
        route(g.clone(), "/ready", Open, "200 while the service runs its schedules, 503 once shutdown began")
            .to(get(s::ready)),
        route(g.clone(), "/openapi.json", Open, "this document").to(get(openapi)),
        route(g.clone(), "/", Open, "the web dashboard (it asks for a token, kept in the tab only)")
            .to(get(dashboard)),
        route(g.clone(), "/metrics", Standard, "Prometheus text: runs, calls, outbox, progress, quota")
            .to(get(s::metrics)),
        route(g.clone(), "/connections", Standard, "the state of every connection").to(get(s::connections)),
        route(g.clone(), "/connections/{name}/runs", Standard, "recent runs, newest first, with counts per outcome")
            .query(&[("limit", "runs on the page (≤ 500, default 50)"), ("offset", "runs skipped")])
            .to(get(s::runs)),
        route(g.clone(), "/connections/{name}/errors", Standard, "per-record errors, newest first, filtered and paged")
            .query(&[
                ("limit", "errors on the page (≤ 1000, default 100)"),
                ("offset", "errors skipped"),
                ("object", "only this object"),
                ("code", "only this error code"),
                ("record", "only this record id"),
            ])
            .to(get(s::errors)),
        route(
            g.clone(),
            "/connections/{name}/records/{record}",
            Standard,
            "one record by Salesforce id or email: its link, the values last synced on each side, the plugin version that mapped it, its errors and queued writes",
        )
        .to(get(records::lookup)),
        route(g.clone(), "/connections/{name}/records/{sf_id}/activities", Standard, "the record's 20 most recent marketing activities")
            .to(get(activity::api_activities)),
        route(g.clone(), "/connections/{name}/actions", Standard, "campaigns and automations labelled Salesforce")
            .to(get(activity::api_offered)),
        route(p.clone(), "/connections/{name}/records/{sf_id}/add-to-automation", Standard, "add the record's contact to an automation")
            .json("{\"automation\": \"id or name\"}")
            .to(post(activity::api_add_to_automation)),
        route(p.clone(), "/connections/{name}/records/{sf_id}/send-campaign", Standard, "send a one-off campaign to the record's contact")
            .json("{\"campaign\": \"id or name\"}")
            .to(post(activity::api_send_campaign)),
        route(g.clone(), "/plugins", Standard, "installed plugin versions and the active one per connection and role")
            .to(get(plugins::list)),
        route(p.clone(), "/plugins", Admin, "install a plugin version, validated (contract, its fixtures) before anything changes; 422 when refused")
            .form("name, version, component (.wasm), optional fixtures (JSON lines), activate (a connection), role, config (the version's own, JSON), schema (the JSON Schema its config must satisfy)")
            .to(post(plugins::upload).layer(DefaultBodyLimit::max(plugins::MAX_COMPONENT))),
        route(p.clone(), "/connections/{name}/run", Admin, "run the whole cycle now")
            .query(&[("wait", "true: answer with the run record once it ends")])
            .to(post(s::run_now)),
        route(p.clone(), "/connections/{name}/dry-run", Admin, "what a cycle would write, writing and storing nothing, with totals")
            .query(&[("limit", "planned writes shown per direction (default 50)")])
            .to(post(s::dry_run)),
        route(u, "/connections/{name}/schedule", Admin, "replace the job's schedule; \"manual\" removes it")
            .json("{\"schedule\": \"every 2 hours\"}")
            .to(put(s::set_schedule)),
        route(p.clone(), "/connections/{name}/pause", Admin, "stop scheduled runs (kept across restarts); run now still runs once")
            .to(post(s::pause)),
        route(p.clone(), "/connections/{name}/resume", Admin, "scheduled runs start again").to(post(s::resume)),
        route(p.clone(), "/connections/{name}/activate", Admin, "a draft connection starts running (as resume)")
            .to(post(s::resume)),
        route(p.clone(), "/connections/{name}/deactivate", Admin, "the connection becomes a draft: saved, not run (as pause)")
            .to(post(s::pause)),
        route(p.clone(), "/connections/{name}/plugins/{role}/activate", Admin, "activate an installed version for the role")
            .json("{\"plugin\": \"name@version\"}")
            .to(post(s::activate)),
        route(p.clone(), "/connections/{name}/plugins/{role}/rollback", Admin, "back to the version active before")
            .to(post(s::rollback)),
        route(
            p,
            "/connections/{name}/plugins/{role}/preview",
            Admin,
            "shadow preview: a candidate version beside the active one on recent records, writing nothing; per-record differences with totals",
        )
        .query(&[("records", "recent records to run on (default 200, at most 2000)")])
        .form("component (.wasm), optional config (the candidate's, JSON), name, version")
        .to(post(plugins::preview).layer(DefaultBodyLimit::max(plugins::MAX_COMPONENT))),
    ]
}

/// The router: each route behind its role check, all behind the access log.
pub(super) fn router(app: App) -> axum::Router {
    let mut router = axum::Router::new();
    for r in table() {
        let handler = match r.access {
            Access::Open => r.handler,
            Access::Standard => {
                r.handler.route_layer(middleware::from_fn_with_state(app.clone(), standard_role))
            }
            Access::Admin => r.handler.route_layer(middleware::from_fn_with_state(app.clone(), admin_role)),
        };
        router = router.route(r.path, handler);
    }
    router.layer(middleware::from_fn(access_log)).with_state(app)
}

/// The OpenAPI 3.1 document of [`table`].
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for r in table() {
        let mut parameters: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        parameters.extend(r.query.iter().map(|(name, what)| {
            json!({"name": name, "in": "query", "required": false, "description": what, "schema": {"type": "string"}})
        }));
        let mut responses = json!({
            "200": {"description": "done", "content": {"application/json": {}}},
            "default": {"description": "an error: `{\"error\": message}`",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        });
        if r.access != Access::Open {
            responses["401"] = json!({"description": "no or a wrong bearer token"});
        }
        if r.access == Access::Admin {
            responses["403"] = json!({"description": "the standard token: this route needs the admin token"});
        }
        let mut op = json!({
            "summary": r.summary,
            "x-crmsync-role": r.access.name(),
            "parameters": parameters,
            "responses": responses,
        });
        op["security"] = match r.access {
            Access::Open => json!([]),
            _ => json!([{"bearer": []}]),
        };
        if let Some((media, what)) = r.body {
            op["requestBody"] = json!({"required": true, "description": what, "content": {media: {}}});
        }
        let item = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        item[r.method.as_str().to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "crmsync admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Two roles: the admin token (service.admin_token) may call every route; the standard token (service.standard_token) the routes whose x-crmsync-role is standard.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}},
        },
        "paths": paths,
    })
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn openapi() -> Json<Value> {
    Json(document())
}

async fn dashboard() -> Response {
    (
        [(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'",
        )],
        Html(include_str!("dashboard.html")),
    )
        .into_response()
}

/// One line per request, at info, target `crmsync::access`.
async fn access_log(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string());
    let response = next.run(req).await;
    tracing::info!(
        target: "crmsync::access",
        method = %method,
        route = route.as_deref().unwrap_or("(no route)"),
        status = response.status().as_u16(),
        ms = started.elapsed().as_secs_f64() * 1000.0,
        "admin API request"
    );
    response
}

/// The two tokens.
pub(super) struct Tokens {
    /// Everything: connections, schedules, plugins, activation.
    pub admin: Option<Secret>,
    /// Reads and record actions.
    pub standard: Option<Secret>,
}

impl Tokens {
    /// The role a request's bearer token carries (the scheme in any case, RFC 9110 §11.1).
    fn role(&self, req: &Request) -> Option<Access> {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim().as_bytes())?;
        let is = |t: &Option<Secret>| t.as_ref().is_some_and(|t| constant_eq(t.expose().as_bytes(), given));
        // Both compared, whichever matches: the time taken says nothing of either.
        match (is(&self.admin), is(&self.standard)) {
            (true, _) => Some(Access::Admin),
            (false, true) => Some(Access::Standard),
            (false, false) => None,
        }
    }
}

async fn standard_role(State(app): State<App>, req: Request, next: Next) -> Response {
    authorize(&app, Access::Standard, req, next).await
}

async fn admin_role(State(app): State<App>, req: Request, next: Next) -> Response {
    authorize(&app, Access::Admin, req, next).await
}

/// Lets the request through when its token's role covers `needed`: no or a
/// wrong token is 401 (with `WWW-Authenticate`), the standard token on an
/// admin route 403.
async fn authorize(app: &App, needed: Access, req: Request, next: Next) -> Response {
    let refused = match app.tokens.role(&req) {
        Some(Access::Admin) => return next.run(req).await,
        Some(Access::Standard) if needed != Access::Admin => return next.run(req).await,
        Some(_) => {
            return problem(
                StatusCode::FORBIDDEN,
                "this route changes configuration: it needs the admin token",
            );
        }
        None if app.tokens.admin.is_none() && app.tokens.standard.is_none() => {
            "the admin API has no token configured (service.admin_token)"
        }
        None => "missing or wrong bearer token",
    };
    let mut response = problem(StatusCode::UNAUTHORIZED, refused);
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer realm=\"crmsync\""));
    response
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A JSON error answer: `{"error": message}`.
pub(super) fn problem(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_once_with_its_role() {
        let doc = document();
        let mut seen = std::collections::HashSet::new();
        for r in table() {
            assert!(seen.insert((r.method.clone(), r.path)), "{} {} twice", r.method, r.path);
            let op = &doc["paths"][r.path][r.method.as_str().to_ascii_lowercase()];
            assert_eq!(op["x-crmsync-role"], r.access.name(), "{} {}", r.method, r.path);
            let params = op["parameters"].as_array().unwrap();
            for seg in r.path.split('/').filter(|s| s.starts_with('{')) {
                let name = seg.trim_matches(['{', '}']);
                assert!(params.iter().any(|p| p["name"] == name && p["in"] == "path"), "{}", r.path);
            }
        }
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_eq(b"abc", b"abc"));
        assert!(!constant_eq(b"abc", b"abd"));
        assert!(!constant_eq(b"abc", b"abcd"));
    }
}
