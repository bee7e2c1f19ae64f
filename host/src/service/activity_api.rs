//! The admin API handlers for marketing activities and actions (routed with
//! their roles in [`super::api`]); the work is in [`crmsync_engine::activity`].
//!
//! | method | path | |
//! |---|---|---|
//! | GET | `/connections/{name}/records/{sf_id}/activities` | the 20 most recent activities |
//! | GET | `/connections/{name}/actions` | campaigns and automations labelled Salesforce |
//! | POST | `/connections/{name}/records/{sf_id}/add-to-automation` | `{"automation": "id or name"}` |
//! | POST | `/connections/{name}/records/{sf_id}/send-campaign` | `{"campaign": "id or name"}` |

// Handlers answer errors as ready responses; their size does not matter here.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State as AxumState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use crmsync_engine::activity::{self, ActivityError, RecordRef};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Connection, Service};

pub(super) type Svc = AxumState<Arc<Service>>;

/// The admin API's answer status for an activity error.
fn status(e: &ActivityError) -> StatusCode {
    match e {
        ActivityError::Unsupported { .. }
        | ActivityError::NotLinked { .. }
        | ActivityError::NotFound { .. } => StatusCode::NOT_FOUND,
        ActivityError::NotLabelled { .. } => StatusCode::FORBIDDEN,
        ActivityError::Inactive { .. } => StatusCode::CONFLICT,
        ActivityError::OneOff { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        ActivityError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        ActivityError::Connector(_) => StatusCode::BAD_GATEWAY,
    }
}

fn answer<T: Serialize>(result: Result<T, ActivityError>) -> Response {
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => (status(&e), Json(json!({"error": e.to_string()}))).into_response(),
    }
}

fn connection<'s>(service: &'s Service, name: &str) -> Result<&'s Arc<Connection>, Response> {
    service
        .connection(name)
        .map_err(|e| (StatusCode::NOT_FOUND, Json(json!({"error": e.to_string()}))).into_response())
}

pub(super) async fn api_activities(
    AxumState(s): Svc,
    Path((name, sf_id)): Path<(String, String)>,
) -> Response {
    match connection(&s, &name) {
        Ok(conn) => answer(activity::recent(conn.marketing(&s.store), &RecordRef::SalesforceId(sf_id)).await),
        Err(r) => r,
    }
}

pub(super) async fn api_offered(AxumState(s): Svc, Path(name): Path<String>) -> Response {
    match connection(&s, &name) {
        Ok(conn) => answer(activity::offered(conn.marketing(&s.store)).await),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
pub(super) struct AutomationBody {
    automation: String,
}

#[derive(Deserialize)]
pub(super) struct CampaignBody {
    campaign: String,
}

pub(super) async fn api_add_to_automation(
    AxumState(s): Svc,
    Path((name, sf_id)): Path<(String, String)>,
    Json(body): Json<AutomationBody>,
) -> Response {
    match connection(&s, &name) {
        Ok(conn) => {
            answer(activity::add_to_automation(conn.marketing(&s.store), &sf_id, &body.automation).await)
        }
        Err(r) => r,
    }
}

pub(super) async fn api_send_campaign(
    AxumState(s): Svc,
    Path((name, sf_id)): Path<(String, String)>,
    Json(body): Json<CampaignBody>,
) -> Response {
    match connection(&s, &name) {
        Ok(conn) => answer(activity::send_campaign(conn.marketing(&s.store), &sf_id, &body.campaign).await),
        Err(r) => r,
    }
}
