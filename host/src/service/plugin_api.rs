//! The admin API's plugin routes: upload a new version while the service
//! runs (validated — contract and its own fixtures — before anything changes;
//! a refused one leaves the running version serving), optionally activate it
//! for a connection's role at once, and list what is installed and active.
//!
//! `POST /plugins` (admin) takes `multipart/form-data`: `name`, `version`,
//! `component` (the `.wasm`), optional `fixtures` (JSON lines), optional
//! `config` (the version's own config, JSON: it travels with the version, so
//! a rollback restores the old config too), optional
//! `activate` (a connection) with `role` (needed when the component exports
//! several roles). `GET /plugins` (standard) lists versions and activations.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use crmsync_runtime::registry::Manifest;
use crmsync_runtime::{Role, fixtures};
use serde_json::json;

use super::Service;
use super::api::problem;

/// The largest component the API takes (bytes).
pub const MAX_COMPONENT: usize = 64 * 1024 * 1024;

/// What an upload carries.
#[derive(Default)]
struct Upload {
    name: Option<String>,
    version: Option<String>,
    component: Option<Vec<u8>>,
    fixtures: Option<String>,
    activate: Option<String>,
    role: Option<String>,
    /// The version's own config, or a preview's candidate config (JSON).
    config: Option<String>,
    /// The JSON Schema its config must satisfy.
    schema: Option<String>,
}

async fn read(mut form: Multipart) -> Result<Upload, Response> {
    let bad = |e: axum::extract::multipart::MultipartError| problem(StatusCode::BAD_REQUEST, e.body_text());
    let mut up = Upload::default();
    while let Some(field) = form.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "component" => up.component = Some(field.bytes().await.map_err(bad)?.to_vec()),
            "name" | "version" | "fixtures" | "activate" | "role" | "config" | "schema" => {
                let text = Some(field.text().await.map_err(bad)?);
                match name.as_str() {
                    "name" => up.name = text,
                    "version" => up.version = text,
                    "fixtures" => up.fixtures = text,
                    "activate" => up.activate = text,
                    "config" => up.config = text,
                    "schema" => up.schema = text,
                    _ => up.role = text,
                }
            }
            other => {
                return Err(problem(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "unknown form field {other:?} (name, version, component, fixtures, activate, role, config, schema)"
                    ),
                ));
            }
        }
    }
    Ok(up)
}

/// `POST /plugins`: install (and optionally activate) a new version.
pub async fn upload(State(service): State<Arc<Service>>, form: Multipart) -> Response {
    let up = match read(form).await {
        Ok(up) => up,
        Err(r) => return r,
    };
    let (Some(name), Some(version), Some(bytes)) = (up.name, up.version, up.component) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "a plugin upload needs the fields name, version and component",
        );
    };
    let cases = match up.fixtures.as_deref().map(|t| fixtures::parse(t, None)).transpose() {
        Ok(cases) => cases.unwrap_or_default(),
        Err(e) => return problem(StatusCode::UNPROCESSABLE_ENTITY, format!("fixtures: {e}")),
    };
    let role: Option<Role> = match up.role.as_deref().map(str::parse).transpose() {
        Ok(r) => r,
        Err(e) => return problem(StatusCode::BAD_REQUEST, e),
    };
    if let Some(c) = &up.activate
        && !service.connections.contains_key(c)
    {
        return problem(StatusCode::NOT_FOUND, format!("no connection named {c:?}"));
    }
    let config = match up.config.as_deref().map(serde_json::from_str::<serde_json::Value>).transpose() {
        Ok(c) => c,
        Err(e) => return problem(StatusCode::BAD_REQUEST, format!("config is not JSON: {e}")),
    };
    let schema = match up.schema.as_deref().map(serde_json::from_str::<serde_json::Value>).transpose() {
        Ok(s) => s,
        Err(e) => return problem(StatusCode::BAD_REQUEST, format!("schema is not JSON: {e}")),
    };
    let manifest =
        Manifest { name, version, roles: role.into_iter().collect(), fixtures: cases, config, schema };
    // Compiling and running the fixtures is CPU work: off the async workers.
    let registry = service.registry.clone();
    let installed = tokio::task::spawn_blocking(move || registry.install(&bytes, &manifest)).await;
    let installed = match installed {
        Ok(Ok(installed)) => installed,
        Ok(Err(e)) => return problem(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        Err(e) => return problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let roles: Vec<String> = installed.roles.iter().map(Role::to_string).collect();
    let mut answer = json!({
        "installed": installed.id.to_string(),
        "sha256": installed.id.sha256,
        "roles": roles,
        "fixtures_passed": installed.fixtures_passed,
    });
    if let Some(connection) = up.activate {
        let role = match (role, installed.roles.len()) {
            (Some(r), _) => r,
            (None, 1) => *installed.roles.iter().next().expect("one role"),
            (None, _) => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "installed; it exports several roles: give `role` to activate one",
                );
            }
        };
        let key = format!("{}@{}", installed.id.name, installed.id.version);
        match service.registry.activate(&connection, role, &key) {
            Ok(id) => {
                answer["active"] =
                    json!({"connection": connection, "role": role.to_string(), "plugin": id.to_string()})
            }
            Err(e) => {
                return problem(StatusCode::UNPROCESSABLE_ENTITY, format!("installed, not activated: {e}"));
            }
        }
    }
    (StatusCode::CREATED, Json(answer)).into_response()
}

#[derive(serde::Deserialize)]
pub(super) struct PreviewQuery {
    /// How many recent records (default 200, at most 2000).
    #[serde(default = "default_preview_records")]
    records: usize,
}

fn default_preview_records() -> usize {
    200
}

/// `POST /connections/{name}/plugins/{role}/preview`: multipart `component`,
/// optional `config` (the candidate's, JSON), `name` and `version` (shown).
/// Runs it beside the active version on recent records; writes nothing.
pub(super) async fn preview(
    State(service): State<Arc<Service>>,
    Path((name, role)): Path<(String, String)>,
    Query(q): Query<PreviewQuery>,
    form: Multipart,
) -> Response {
    let conn = match service.connection(&name) {
        Ok(c) => c.clone(),
        Err(e) => return problem(StatusCode::NOT_FOUND, e.to_string()),
    };
    let role: Role = match role.parse() {
        Ok(r) => r,
        Err(e) => return problem(StatusCode::NOT_FOUND, e),
    };
    let up = match read(form).await {
        Ok(up) => up,
        Err(r) => return r,
    };
    let Some(bytes) = up.component else {
        return problem(StatusCode::BAD_REQUEST, "a preview needs the field component (.wasm)");
    };
    if let Some(config) = &up.config
        && let Err(e) = serde_json::from_str::<serde_json::Value>(config)
    {
        return problem(StatusCode::BAD_REQUEST, format!("config is not JSON: {e}"));
    }
    let (plugin_name, version) =
        (up.name.unwrap_or_else(|| "candidate".into()), up.version.unwrap_or_else(|| "preview".into()));
    let registry = service.registry.clone();
    let loaded =
        tokio::task::spawn_blocking(move || registry.runtime().load(&bytes, &plugin_name, &version)).await;
    let candidate = match loaded {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return problem(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        Err(e) => return problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    match service.preview(&conn, role, &candidate, up.config, q.records).await {
        Ok(report) => Json(report).into_response(),
        Err(e) => problem(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    }
}

/// `GET /plugins`: installed versions, and which is active per connection and role.
pub async fn list(State(service): State<Arc<Service>>) -> Response {
    let (versions, active) = match (service.registry.list(), service.registry.active()) {
        (Ok(v), Ok(a)) => (v, a),
        (Err(e), _) | (_, Err(e)) => return problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let versions: Vec<_> = versions
        .iter()
        .map(|v| {
            json!({
                "plugin": v.id.to_string(),
                "sha256": v.id.sha256,
                "roles": v.roles.iter().map(Role::to_string).collect::<Vec<_>>(),
                "fixtures_passed": v.fixtures_passed,
                "installed_at": v.installed_at,
                "config": v.config.as_deref().and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok()),
            })
        })
        .collect();
    let active: Vec<_> = active
        .iter()
        .map(|((connection, role), plugin)| json!({"connection": connection, "role": role.to_string(), "plugin": plugin}))
        .collect();
    Json(json!({"versions": versions, "active": active})).into_response()
}
