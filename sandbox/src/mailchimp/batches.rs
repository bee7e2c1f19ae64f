//! Batch operations: `POST /batches`, `GET /batches[/{id}]`, `DELETE /batches/{id}`.
//!
//! A batch is applied deterministically on a later poll rather than in the
//! background: it stays `pending` until its first `GET`, which reports
//! `started`; the poll that reaches `batch_polls_to_finish` (default 2) runs
//! every operation through the same dispatcher as HTTP calls, with the
//! submitter's rights, and reports `finished`. Results are served as one JSON
//! array at `GET /batch-results/{id}` (the real API serves a `.tar.gz` of JSON
//! files holding the same `[{status_code, operation_id, response}]` records).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::store::{Batch, BatchStatus, Operation, Role, random_id};
use super::{Body, Call, Mailchimp, McError, Reply, json_response, no_content, ok, project, segments};

/// Most batches that may be pending at once.
const MAX_PENDING: usize = 500;

#[derive(Deserialize)]
struct SubmitBody {
    operations: Vec<Operation>,
}

pub(crate) fn submit(mc: &Mailchimp, call: &Call) -> Reply {
    let body: SubmitBody = call.json()?;
    let mut errors = Vec::new();
    for (i, op) in body.operations.iter().enumerate() {
        if !matches!(op.method.to_ascii_uppercase().as_str(), "GET" | "POST" | "PUT" | "PATCH" | "DELETE") {
            errors.push((format!("operations.{i}.method"), "Value is not one of the allowed values.".into()));
        }
        if op.path.trim().is_empty() {
            errors.push((format!("operations.{i}.path"), "This value should not be blank.".into()));
        }
    }
    if body.operations.is_empty() {
        errors.push(("operations".into(), "This value should not be blank.".into()));
    }
    if !errors.is_empty() {
        return Err(McError::Invalid {
            detail: "The resource submitted could not be validated. For field-specific details, see the 'errors' array.".into(),
            errors,
        });
    }
    let now = mc.now();
    let (id, run_now) = {
        let mut store = mc.write();
        let pending = store.batches.values().filter(|b| b.status != BatchStatus::Finished).count();
        if pending >= MAX_PENDING {
            return Err(McError::TooManyRequests(format!(
                "You have more than {MAX_PENDING} pending batches. Please wait for them to finish."
            )));
        }
        let id = random_id(10);
        let run_now = store.batch_polls_to_finish == 0;
        let batch = Batch {
            id: id.clone(),
            status: if run_now { BatchStatus::Finalizing } else { BatchStatus::Pending },
            operations: body.operations,
            role: call.role,
            polls: 0,
            submitted_at: now,
            completed_at: None,
            finished_operations: 0,
            errored_operations: 0,
            results: None,
            response_body_url: String::new(),
        };
        store.batch_order.push(id.clone());
        store.batches.insert(id.clone(), batch);
        (id, run_now)
    };
    if run_now {
        execute(mc, &id, call.base_url);
    }
    get_json(mc, &id)
}

fn get_json(mc: &Mailchimp, id: &str) -> Reply {
    let store = mc.read();
    ok(store.batches.get(id).ok_or(McError::NotFound)?.to_json())
}

/// Polls a batch, advancing it one step (see the module docs).
pub(crate) fn get(mc: &Mailchimp, call: &Call, id: &str) -> Reply {
    let run = {
        let mut store = mc.write();
        let needed = store.batch_polls_to_finish;
        let batch = store.batches.get_mut(id).ok_or(McError::NotFound)?;
        match batch.status {
            BatchStatus::Pending | BatchStatus::Started => {
                batch.polls += 1;
                if batch.polls >= needed {
                    batch.status = BatchStatus::Finalizing;
                    true
                } else {
                    batch.status = BatchStatus::Started;
                    false
                }
            }
            BatchStatus::Finalizing | BatchStatus::Finished => false,
        }
    };
    if run {
        execute(mc, id, call.base_url);
    }
    get_json(mc, id)
}

/// Runs every operation of a batch (no lock held between them) and stores the results.
fn execute(mc: &Mailchimp, id: &str, base_url: &str) {
    let (operations, role): (Vec<Operation>, Role) = {
        let store = mc.read();
        match store.batches.get(id) {
            Some(b) => (b.operations.clone(), b.role),
            None => return,
        }
    };
    let mut results = Vec::with_capacity(operations.len());
    let mut errored = 0;
    for op in &operations {
        let query: HashMap<String, String> = op
            .params
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string)))
            .collect();
        let method = op.method.to_ascii_uppercase();
        let call = Call {
            method: &method,
            segs: segments(&op.path),
            query: &query,
            body: op.body.as_deref().unwrap_or("").as_bytes(),
            role,
            base_url,
        };
        let (status, response) = match mc.dispatch(&call) {
            Ok((status, Body::Empty)) => (status, String::new()),
            Ok((status, Body::Raw(bytes))) => (status, String::from_utf8_lossy(&bytes).into_owned()),
            Ok((status, Body::Json(v))) if method == "GET" => (status, project(v, &query).to_string()),
            Ok((status, Body::Json(v))) => (status, v.to_string()),
            Err(e) => (e.status(), e.body().to_string()),
        };
        if status.as_u16() >= 400 {
            errored += 1;
        }
        results.push(json!({
            "status_code": status.as_u16(),
            "operation_id": op.operation_id,
            "response": response,
        }));
    }
    let now = mc.now();
    let mut store = mc.write();
    if let Some(b) = store.batches.get_mut(id) {
        b.status = BatchStatus::Finished;
        b.finished_operations = operations.len();
        b.errored_operations = errored;
        b.completed_at = Some(now);
        b.results = Some(results);
        b.response_body_url = format!("{base_url}/batch-results/{id}");
    }
}

pub(crate) fn list(mc: &Mailchimp, call: &Call) -> Reply {
    let (count, offset) = call.paging()?;
    let store = mc.read();
    let batches: Vec<Value> = store
        .batch_order
        .iter()
        .filter_map(|id| store.batches.get(id))
        .skip(offset)
        .take(count)
        .map(Batch::to_json)
        .collect();
    ok(json!({"batches": batches, "total_items": store.batches.len()}))
}

pub(crate) fn delete(mc: &Mailchimp, id: &str) -> Reply {
    let mut store = mc.write();
    store.batches.remove(id).ok_or(McError::NotFound)?;
    store.batch_order.retain(|b| b != id);
    no_content()
}

/// `GET /batch-results/{id}`: the finished batch's results (no auth, like the
/// pre-signed URL the real API hands out).
pub(crate) async fn results(State(mc): State<Arc<Mailchimp>>, Path(id): Path<String>) -> Response {
    let store = mc.read();
    match store.batches.get(&id).and_then(|b| b.results.as_ref()) {
        Some(results) => json_response(StatusCode::OK, &Value::Array(results.clone())),
        None => McError::NotFound.into_response(),
    }
}
