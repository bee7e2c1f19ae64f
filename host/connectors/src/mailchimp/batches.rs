//! Large backfills through batch operations: one `POST /batches` of `PUT
//! …/members/{hash}` operations (each `operation_id` the write's index),
//! polled with `GET /batches/{id}` until `finished`, then the results read
//! from `response_body_url` — a gzipped tar of JSON files, each an array of
//! `{status_code, operation_id, response}` with `response` a JSON string.
//! The results URL is pre-signed storage: it is fetched without the key.

use std::collections::HashMap;
use std::io::Read;

use reqwest::Method;
use serde_json::{Value as Json, json};

use super::write::{Member, contact_id, vendor_error};
use super::{MailchimpConnector, VENDOR, bad, problem_message};
use crate::VendorError;
use crate::{ConnectorError, WriteResult, Written};

/// Operations in one batch (Mailchimp documents no cap; this keeps one
/// results archive small).
const OPERATIONS_PER_BATCH: usize = 5000;

/// Every `{status_code, operation_id, response}` in a results archive.
pub(super) fn read_results(archive: &[u8]) -> Result<Vec<Json>, ConnectorError> {
    let mut out = Vec::new();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    let entries = tar.entries().map_err(|e| bad(format!("batch results are not a gzipped tar: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("batch results: {e}")))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let mut text = String::new();
        entry.read_to_string(&mut text).map_err(|e| bad(format!("batch results: {e}")))?;
        if text.trim().is_empty() {
            continue;
        }
        let items: Vec<Json> = serde_json::from_str(&text)
            .map_err(|e| bad(format!("a batch results file is not a JSON array: {e}")))?;
        out.extend(items);
    }
    Ok(out)
}

impl MailchimpConnector {
    pub(super) async fn batch_operations(
        &self,
        members: &[Member],
        results: &mut [Option<WriteResult>],
    ) -> Result<(), ConnectorError> {
        for chunk in members.chunks(OPERATIONS_PER_BATCH) {
            self.one_batch(chunk, results).await?;
        }
        Ok(())
    }

    async fn one_batch(
        &self,
        chunk: &[Member],
        results: &mut [Option<WriteResult>],
    ) -> Result<(), ConnectorError> {
        let operations: Vec<Json> = chunk
            .iter()
            .map(|m| {
                json!({
                    "method": "PUT",
                    "path": format!("/{}", self.list_path(&format!("/members/{}", m.hash()))),
                    "operation_id": m.index.to_string(),
                    "body": m.put_body(self.cfg.status_if_new).to_string(),
                })
            })
            .collect();
        let body = json!({ "operations": operations });
        let submitted: Json =
            self.send_json("batch_submit", Method::POST, "batches", &[], Some(&body)).await?.json(VENDOR)?;
        let id = submitted
            .get("id")
            .and_then(Json::as_str)
            .ok_or_else(|| bad("a batch without an id"))?
            .to_string();
        let url = loop {
            let batch = self.get_json("batch_status", &format!("batches/{id}"), &[]).await?;
            if batch.get("status").and_then(Json::as_str) == Some("finished") {
                let url = batch.get("response_body_url").and_then(Json::as_str).unwrap_or("");
                if url.is_empty() {
                    return Err(bad(format!("batch {id} finished without response_body_url")));
                }
                break url.to_string();
            }
            tokio::time::sleep(self.cfg.batch_poll).await;
        };
        let archive = self.http.send("batch_results", |c| c.get(&url)).await?;
        let mut by_index: HashMap<usize, Json> = HashMap::new();
        for r in read_results(&archive.body)? {
            if let Some(i) = r.get("operation_id").and_then(Json::as_str).and_then(|s| s.parse().ok()) {
                by_index.insert(i, r);
            }
        }
        for m in chunk {
            results[m.index] = Some(match by_index.remove(&m.index) {
                None => Err(VendorError::permanent(
                    "no-result",
                    format!("batch {id} reported nothing for this member"),
                )),
                Some(r) => outcome(&r)?,
            });
        }
        Ok(())
    }
}

/// One operation's result as the record's outcome; a throttled or failed
/// operation fails the call (the engine retries it; PUT is idempotent).
fn outcome(r: &Json) -> Result<WriteResult, ConnectorError> {
    let status = r.get("status_code").and_then(Json::as_u64).unwrap_or(0) as u16;
    let response: Json = r
        .get("response")
        .and_then(Json::as_str)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Json::Null);
    match status {
        200..=299 => Ok(Ok(Written { id: contact_id(&response)?, created: false })),
        400 | 404 | 422 => {
            let message = problem_message(&response).unwrap_or_else(|| format!("{status}"));
            Ok(Err(vendor_error(&message)))
        }
        _ => Err(ConnectorError::Server {
            vendor: VENDOR,
            status,
            message: problem_message(&response).unwrap_or_else(|| "a batch operation failed".into()),
        }),
    }
}
