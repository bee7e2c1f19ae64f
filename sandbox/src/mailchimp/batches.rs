//! Batch operations: `POST /batches`, `GET /batches[/{id}]`, `DELETE /batches/{id}`.
//!
//! A batch is applied deterministically on a later poll rather than in the
//! background: it stays `pending` until its first `GET`, which reports
//! `started`; the poll that reaches `batch_polls_to_finish` (default 2) runs
//! every operation through the same dispatcher as HTTP calls, with the
//! submitter's rights, and reports `finished`.
//!
//! Results are served as the real API serves them: `response_body_url` is a
//! gzipped tar archive (`GET /batch-results/{id}.tar.gz`, no auth, like the
//! pre-signed storage URL Mailchimp hands out) of JSON files, each a JSON array
//! of `{status_code, operation_id, response}` with `response` the operation's
//! body as a JSON *string*. A client must read every file: the sandbox puts
//! [`RESULTS_PER_FILE`] results in each, in operation order (how Mailchimp
//! splits results over files is not documented).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;
use md5::{Digest, Md5};
use serde::Deserialize;
use serde_json::{Value, json};

use super::store::{Batch, BatchStatus, Operation, Role, random_id};
use super::{Body, Call, Mailchimp, McError, Reply, no_content, ok, project, segments};

/// Most batches that may be pending at once.
const MAX_PENDING: usize = 500;

/// Results in each JSON file of a batch's results archive.
pub const RESULTS_PER_FILE: usize = 100;

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
        b.response_body_url = format!("{base_url}/batch-results/{id}.tar.gz");
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

/// `GET /batch-results/{id}.tar.gz`: the finished batch's results archive (no
/// auth, like the pre-signed URL the real API hands out). The bare id is
/// accepted too.
pub(crate) async fn results(State(mc): State<Arc<Mailchimp>>, Path(name): Path<String>) -> Response {
    let id = name.strip_suffix(".tar.gz").unwrap_or(&name);
    let archive = {
        let store = mc.read();
        match store.batches.get(id) {
            Some(Batch { results: Some(results), completed_at, submitted_at, .. }) => {
                results_archive(id, results, completed_at.unwrap_or(*submitted_at))
            }
            _ => return McError::NotFound.into_response(),
        }
    };
    match archive {
        Ok(bytes) => (StatusCode::OK, [(header::CONTENT_TYPE, "application/x-gzip")], bytes).into_response(),
        Err(e) => {
            tracing::error!(batch = id, error = %e, "could not pack the batch results");
            McError::Status(StatusCode::INTERNAL_SERVER_ERROR).into_response()
        }
    }
}

/// A gzipped tar of JSON files, [`RESULTS_PER_FILE`] results each, named by a
/// hash of the batch id and the file's index (stable across downloads).
pub fn results_archive(batch_id: &str, results: &[Value], mtime: DateTime<Utc>) -> std::io::Result<Vec<u8>> {
    let mut archive = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    for (i, chunk) in results.chunks(RESULTS_PER_FILE).enumerate() {
        let body = serde_json::to_vec(chunk)?;
        let name = hex::encode(Md5::digest(format!("{batch_id}/{i}").as_bytes()));
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(u64::try_from(mtime.timestamp()).unwrap_or(0));
        archive.append_data(&mut header, format!("{}.json", &name[..10]), body.as_slice())?;
    }
    archive.into_inner()?.finish()
}
