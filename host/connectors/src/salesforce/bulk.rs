//! Bulk API 2.0 ingest for large groups of writes: create the job, upload one
//! CSV, close it (`UploadComplete`), poll until it is done, then read the
//! successful and failed results and map them back to the batch. Results are
//! matched by the `Id` column (update, delete), the external id (upsert), or
//! the uploaded row itself (insert), since Salesforce does not keep row order.

use std::collections::{HashMap, VecDeque};

use serde_json::Value as Json;

use super::{Op, Prepared, SalesforceConnector, VENDOR, record_error, retryable_code};
use crate::{ConnectorError, VendorError, WriteResult, Written};

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobInfo {
    id: String,
    state: String,
    #[serde(default)]
    number_records_failed: u64,
    #[serde(default)]
    error_message: Option<String>,
}

fn bad(message: String) -> ConnectorError {
    ConnectorError::BadResponse { vendor: VENDOR, message }
}

impl SalesforceConnector {
    pub(super) async fn bulk_ingest(
        &self,
        object: &str,
        op: Op,
        ext: Option<&str>,
        group: &[Prepared],
        results: &mut [Option<WriteResult>],
    ) -> Result<(), ConnectorError> {
        // Columns: the union of every row's fields, `Id` first for updates and deletes.
        let mut columns: Vec<String> = Vec::new();
        if matches!(op, Op::Update | Op::Delete) {
            columns.push("Id".into());
        }
        for p in group {
            for (k, _) in &p.fields {
                if !columns.iter().any(|c| c.eq_ignore_ascii_case(k)) {
                    columns.push(k.clone());
                }
            }
        }
        let mut csv =
            csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(Vec::new());
        let row_of = |p: &Prepared| -> Vec<String> {
            columns
                .iter()
                .map(|c| {
                    if c == "Id" {
                        return p.id.clone().unwrap_or_default();
                    }
                    // Absent → empty cell (keep); null → #N/A (clear).
                    p.fields.iter().find(|(k, _)| k == c).map(|(_, v)| v.csv()).unwrap_or_default()
                })
                .collect()
        };
        let csv_err = |e: csv::Error| bad(format!("cannot write CSV: {e}"));
        csv.write_record(&columns).map_err(csv_err)?;
        // Result rows echo the uploaded cells: index the group by its match key.
        let key_col = match op {
            Op::Update | Op::Delete => Some(0),
            Op::Upsert => ext.and_then(|e| columns.iter().position(|c| c.eq_ignore_ascii_case(e))),
            Op::Create => None,
        };
        let mut pending: HashMap<String, VecDeque<usize>> = HashMap::new();
        for (i, p) in group.iter().enumerate() {
            let row = row_of(p);
            let key = match key_col {
                Some(k) => row[k].to_lowercase(),
                None => row.join("\u{1f}"),
            };
            pending.entry(key).or_default().push_back(i);
            csv.write_record(&row).map_err(csv_err)?;
        }
        let body = csv.into_inner().map_err(|e| bad(format!("cannot write CSV: {e}")))?;

        let operation = match op {
            Op::Update => "update",
            Op::Create => "insert",
            Op::Upsert => "upsert",
            Op::Delete => "delete",
        };
        let mut spec = serde_json::json!({"object": object, "operation": operation, "contentType": "CSV", "lineEnding": "LF", "columnDelimiter": "COMMA"});
        if let (Op::Upsert, Some(ext)) = (op, ext) {
            spec["externalIdFieldName"] = Json::String(ext.to_string());
        }
        let job: JobInfo = self
            .call("bulk_create_job", |c, base, _| c.post(format!("{base}/jobs/ingest")).json(&spec))
            .await?
            .json(VENDOR)?;
        let id = job.id;
        self.call("bulk_upload", |c, base, _| {
            c.put(format!("{base}/jobs/ingest/{id}/batches"))
                .header("Content-Type", "text/csv")
                .body(body.clone())
        })
        .await?;
        self.call("bulk_close", |c, base, _| {
            c.patch(format!("{base}/jobs/ingest/{id}")).json(&serde_json::json!({"state": "UploadComplete"}))
        })
        .await?;
        let info = loop {
            let info: JobInfo = self
                .call("bulk_poll", |c, base, _| c.get(format!("{base}/jobs/ingest/{id}")))
                .await?
                .json(VENDOR)?;
            match info.state.as_str() {
                "JobComplete" => break info,
                "Failed" | "Aborted" => {
                    return Err(ConnectorError::Rejected {
                        vendor: VENDOR,
                        status: 200,
                        message: format!(
                            "Bulk job {id} {}: {}",
                            info.state,
                            info.error_message.unwrap_or_default()
                        ),
                    });
                }
                _ => tokio::time::sleep(self.cfg.bulk_poll).await,
            }
        };
        let need_success = op != Op::Update && op != Op::Delete || info.number_records_failed > 0;
        if need_success {
            let text = self
                .call("bulk_successful_results", |c, base, _| {
                    c.get(format!("{base}/jobs/ingest/{id}/successfulResults/"))
                })
                .await?
                .text();
            for (row, sf_id, extra) in parse_results(&text, &columns)? {
                let key = key_of(&row, key_col);
                if let Some(i) = pending.get_mut(&key).and_then(VecDeque::pop_front) {
                    let created = extra.eq_ignore_ascii_case("true");
                    results[group[i].index] = Some(Ok(Written { id: sf_id, created }));
                }
            }
        }
        if info.number_records_failed > 0 {
            let text = self
                .call("bulk_failed_results", |c, base, _| {
                    c.get(format!("{base}/jobs/ingest/{id}/failedResults/"))
                })
                .await?
                .text();
            for (row, _, error) in parse_results(&text, &columns)? {
                let key = key_of(&row, key_col);
                if let Some(i) = pending.get_mut(&key).and_then(VecDeque::pop_front) {
                    results[group[i].index] = Some(Err(bulk_error(&error)));
                }
            }
        }
        // Updates and deletes with no failures: every row succeeded.
        for idxs in pending.values() {
            for &i in idxs {
                let p = &group[i];
                if !need_success && results[p.index].is_none() {
                    results[p.index] =
                        Some(Ok(Written { id: p.id.clone().unwrap_or_default(), created: false }));
                }
            }
        }
        Ok(())
    }
}

fn key_of(row: &[String], key_col: Option<usize>) -> String {
    match key_col {
        Some(k) => row.get(k).map(|s| s.to_lowercase()).unwrap_or_default(),
        None => row.join("\u{1f}"),
    }
}

/// Rows of a results CSV: `(uploaded cells in our column order, sf__Id, sf__Created | sf__Error)`.
fn parse_results(
    text: &str,
    columns: &[String],
) -> Result<Vec<(Vec<String>, String, String)>, ConnectorError> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(text.as_bytes());
    let headers: Vec<String> =
        reader.headers().map_err(|e| bad(format!("Bulk results: {e}")))?.iter().map(String::from).collect();
    let pos = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let id_col = pos("sf__Id");
    let extra_col = pos("sf__Created").or_else(|| pos("sf__Error"));
    let cols: Vec<Option<usize>> = columns.iter().map(|c| pos(c)).collect();
    let mut out = Vec::new();
    for row in reader.records() {
        let row = row.map_err(|e| bad(format!("Bulk results: {e}")))?;
        let cell = |i: Option<usize>| i.and_then(|i| row.get(i)).unwrap_or("").to_string();
        let cells = cols.iter().map(|c| cell(*c)).collect();
        out.push((cells, cell(id_col), cell(extra_col)));
    }
    Ok(out)
}

/// `CODE:message:Fields --` → a per-record error.
fn bulk_error(raw: &str) -> VendorError {
    let raw = raw.trim().trim_end_matches("--").trim();
    match raw.split_once(':') {
        Some((code, rest))
            if !code.is_empty() && code.chars().all(|c| c.is_ascii_uppercase() || c == '_') =>
        {
            let message = rest.rsplit_once(':').map_or(rest, |(m, _)| m).trim().to_string();
            VendorError { code: code.to_string(), message, retryable: retryable_code(code) }
        }
        _ => record_error("UNKNOWN_EXCEPTION", raw),
    }
}
