//! The admin API's record lookup: `GET /connections/{name}/records/{record}`
//! (standard role) by Salesforce id, email or marketing id — what crmsync
//! knows of the record: its link (ids on both sides, the values last synced
//! on each, when, and the plugin version that mapped it), its errors, and the
//! writes about it still queued.

// Handlers answer errors as ready responses; their size does not matter here.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use crmsync_core::Store;
use serde_json::json;

use super::Service;
use super::api::problem;

pub(super) async fn lookup(
    State(service): State<Arc<Service>>,
    Path((name, record)): Path<(String, String)>,
) -> Response {
    if let Err(e) = service.connection(&name) {
        return problem(StatusCode::NOT_FOUND, e.to_string());
    }
    match find(&service, &name, record.trim()) {
        Ok(Some(found)) => Json(found).into_response(),
        Ok(None) => problem(
            StatusCode::NOT_FOUND,
            "no link, error or queued write for this record (give a Salesforce id, an email or a marketing id)",
        ),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn find(
    service: &Service,
    connection: &str,
    record: &str,
) -> Result<Option<serde_json::Value>, crmsync_core::StoreError> {
    let store = &service.store;
    let link = if record.contains('@') {
        store.link_by_email(connection, &record.to_lowercase())?
    } else {
        match store.link_by_sf(connection, record)? {
            Some(link) => Some(link),
            None => store.link_by_remote(connection, None, record)?,
        }
    };
    // Every name the record goes by: what it was asked by, and its link's ids.
    let mut names = vec![record.to_lowercase()];
    if let Some(l) = &link {
        names.extend([l.sf_id.to_lowercase(), l.remote_id.to_lowercase()]);
        names.extend(l.email.clone());
    }
    let about = |id: &Option<String>| id.as_ref().is_some_and(|id| names.contains(&id.to_lowercase()));
    let mut errors: Vec<_> =
        store.errors(connection)?.into_iter().filter(|e| names.contains(&e.record.to_lowercase())).collect();
    errors.sort_by_key(|e| std::cmp::Reverse(e.at));
    let queued: Vec<_> = store
        .pending(connection)?
        .into_iter()
        .filter(|(_, e)| about(&e.sf_id) || about(&e.remote_id) || about(&e.email))
        .map(|(seq, e)| json!({"seq": seq, "kind": e.kind, "target": e.target, "object": e.object, "plugin": e.plugin}))
        .collect();
    if link.is_none() && errors.is_empty() && queued.is_empty() {
        return Ok(None);
    }
    Ok(Some(json!({
        "connection": connection,
        "link": link,
        "errors": errors,
        "queued": queued,
    })))
}
