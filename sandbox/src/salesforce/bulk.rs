//! Bulk API 2.0: ingest jobs (insert, update, upsert, delete, hardDelete from
//! CSV, processed when the job is closed with `UploadComplete`, with
//! `successfulResults` / `failedResults` / `unprocessedrecords` CSV) and query
//! jobs (SOQL run at creation, `results` paged with `locator` / `maxRecords` and
//! the `Sforce-Locator` / `Sforce-NumberOfRecords` headers).

use std::collections::HashMap;

use axum::http::{Method, StatusCode};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::error::{ItemError, SfError};
use super::model::{SfId, Val, base64, format_datetime};
use super::schema::{Source, USER_ID};
use super::soql;
use super::store::{Changes, Store, text_to_val};
use super::{Body, Req, Resp, Salesforce, lock};

/// Records per query-results page when `maxRecords` is not given.
const DEFAULT_MAX_RECORDS: usize = 50_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Insert,
    Update,
    Upsert,
    Delete,
    HardDelete,
}

impl Operation {
    fn parse(s: &str) -> Option<Operation> {
        Some(match s {
            "insert" => Operation::Insert,
            "update" => Operation::Update,
            "upsert" => Operation::Upsert,
            "delete" => Operation::Delete,
            "hardDelete" => Operation::HardDelete,
            _ => return None,
        })
    }
    fn name(self) -> &'static str {
        match self {
            Operation::Insert => "insert",
            Operation::Update => "update",
            Operation::Upsert => "upsert",
            Operation::Delete => "delete",
            Operation::HardDelete => "hardDelete",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    UploadComplete,
    JobComplete,
    Failed,
    Aborted,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Open => "Open",
            State::UploadComplete => "UploadComplete",
            State::JobComplete => "JobComplete",
            State::Failed => "Failed",
            State::Aborted => "Aborted",
        }
    }
    fn terminal(self) -> bool {
        matches!(self, State::JobComplete | State::Failed | State::Aborted)
    }
}

/// CSV settings shared by both job kinds.
#[derive(Debug, Clone)]
struct Format {
    delimiter: u8,
    delimiter_name: String,
    line_ending: String,
}

impl Format {
    fn from_body(body: &Value) -> Result<Format, SfError> {
        let name = body.get("columnDelimiter").and_then(Value::as_str).unwrap_or("COMMA").to_string();
        let delimiter = match name.as_str() {
            "COMMA" => b',',
            "TAB" => b'\t',
            "PIPE" => b'|',
            "SEMICOLON" => b';',
            "CARET" => b'^',
            "BACKQUOTE" => b'`',
            other => return Err(invalid_job(&format!("Invalid column delimiter: {other}"))),
        };
        let line_ending = body.get("lineEnding").and_then(Value::as_str).unwrap_or("LF").to_string();
        if line_ending != "LF" && line_ending != "CRLF" {
            return Err(invalid_job(&format!("Invalid line ending: {line_ending}")));
        }
        if body.get("contentType").and_then(Value::as_str).is_some_and(|c| c != "CSV") {
            return Err(invalid_job("contentType must be CSV"));
        }
        Ok(Format { delimiter, delimiter_name: name, line_ending })
    }

    fn writer(&self) -> csv::Writer<Vec<u8>> {
        let terminator =
            if self.line_ending == "CRLF" { csv::Terminator::CRLF } else { csv::Terminator::Any(b'\n') };
        csv::WriterBuilder::new()
            .delimiter(self.delimiter)
            .terminator(terminator)
            .quote_style(csv::QuoteStyle::Always)
            .from_writer(Vec::new())
    }
}

fn invalid_job(message: &str) -> SfError {
    SfError::bad_request("INVALIDJOB", message)
}

fn job_state_error(message: &str) -> SfError {
    SfError::new(StatusCode::CONFLICT, "INVALIDJOBSTATE", message)
}

fn finish_csv(w: csv::Writer<Vec<u8>>) -> String {
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

struct IngestJob {
    id: String,
    object: &'static str,
    obj: usize,
    operation: Operation,
    ext_field: Option<String>,
    format: Format,
    state: State,
    created: DateTime<Utc>,
    modstamp: DateTime<Utc>,
    version: String,
    uploads: Vec<String>,
    processed: u64,
    failed: u64,
    error: Option<String>,
    success_csv: String,
    failed_csv: String,
    unprocessed_csv: String,
}

impl IngestJob {
    fn info(&self, with_content_url: bool) -> Value {
        let mut v = json!({
            "id": self.id,
            "operation": self.operation.name(),
            "object": self.object,
            "createdById": USER_ID,
            "createdDate": format_datetime(self.created),
            "systemModstamp": format_datetime(self.modstamp),
            "state": self.state.name(),
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": self.version.trim_start_matches('v').parse::<f64>().unwrap_or(60.0),
            "jobType": "V2Ingest",
            "lineEnding": self.format.line_ending,
            "columnDelimiter": self.format.delimiter_name,
            "numberRecordsProcessed": self.processed,
            "numberRecordsFailed": self.failed,
            "retries": 0,
            "totalProcessingTime": 0,
            "apiActiveProcessingTime": 0,
            "apexProcessingTime": 0,
        });
        if let Some(ext) = &self.ext_field {
            v["externalIdFieldName"] = json!(ext);
        }
        if let Some(e) = &self.error {
            v["errorMessage"] = json!(e);
        }
        if with_content_url {
            v["contentUrl"] =
                json!(format!("services/data/{}/jobs/ingest/{}/batches", self.version, self.id));
        }
        v
    }
}

struct QueryJob {
    id: String,
    object: &'static str,
    operation: String,
    query_text: String,
    query: soql::Query,
    ids: Vec<SfId>,
    format: Format,
    state: State,
    created: DateTime<Utc>,
    version: String,
}

impl QueryJob {
    fn info(&self) -> Value {
        json!({
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": USER_ID,
            "createdDate": format_datetime(self.created),
            "systemModstamp": format_datetime(self.created),
            "state": self.state.name(),
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": self.version.trim_start_matches('v').parse::<f64>().unwrap_or(60.0),
            "jobType": "V2Query",
            "lineEnding": self.format.line_ending,
            "columnDelimiter": self.format.delimiter_name,
            "numberRecordsProcessed": if self.state == State::JobComplete { self.ids.len() } else { 0 },
            "retries": 0,
            "totalProcessingTime": 0,
            "query": self.query_text,
        })
    }
}

/// Every Bulk job, by id.
#[derive(Default)]
pub struct Jobs {
    ingest: HashMap<String, IngestJob>,
    query: HashMap<String, QueryJob>,
    order: Vec<String>,
    seq: u64,
    batches: u64,
    query_jobs: u64,
}

impl Jobs {
    fn next_id(&mut self) -> String {
        self.seq += 1;
        SfId::mint("750", self.seq).to_string()
    }

    /// Info of every job, oldest first.
    pub fn infos(&self, _version: &str) -> Vec<Value> {
        self.order
            .iter()
            .filter_map(|id| {
                self.ingest.get(id).map(|j| j.info(false)).or_else(|| self.query.get(id).map(QueryJob::info))
            })
            .collect()
    }

    /// `(ingest uploads, query jobs)` so far, for `/limits`.
    pub fn usage(&self) -> (u64, u64) {
        (self.batches, self.query_jobs)
    }
}

/// A CSV column of an ingest upload.
enum Column {
    Id,
    Field(u16),
    /// `Account.Ext__c`: set reference field `.0` to the record of object `.1` whose field `.2` matches.
    Related(u16, usize, u16),
}

impl Salesforce {
    pub(crate) fn bulk(&self, req: &Req) -> Result<Resp, SfError> {
        let segs: Vec<&str> = req.segs.iter().map(String::as_str).collect();
        let m = &req.method;
        match segs.as_slice() {
            ["jobs", "ingest"] if *m == Method::POST => self.create_ingest(req),
            ["jobs", "query"] if *m == Method::POST => self.create_query(req),
            ["jobs", kind @ ("ingest" | "query")] if *m == Method::GET => {
                let jobs = lock(&self.bulk);
                let records: Vec<Value> = jobs
                    .order
                    .iter()
                    .filter_map(|id| {
                        if *kind == "ingest" {
                            jobs.ingest.get(id).map(|j| j.info(false))
                        } else {
                            jobs.query.get(id).map(QueryJob::info)
                        }
                    })
                    .collect();
                Ok(Resp::ok(json!({"done": true, "records": records, "nextRecordsUrl": null})))
            }
            ["jobs", "ingest", id] if *m == Method::GET => {
                let jobs = lock(&self.bulk);
                jobs.ingest.get(*id).map(|j| Resp::ok(j.info(false))).ok_or_else(SfError::not_found)
            }
            ["jobs", "query", id] if *m == Method::GET => {
                let jobs = lock(&self.bulk);
                jobs.query.get(*id).map(|j| Resp::ok(j.info())).ok_or_else(SfError::not_found)
            }
            ["jobs", "ingest", id] if *m == Method::PATCH => self.patch_ingest(req, id),
            ["jobs", "query", id] if *m == Method::PATCH => self.patch_query(req, id),
            ["jobs", kind @ ("ingest" | "query"), id] if *m == Method::DELETE => {
                let mut jobs = lock(&self.bulk);
                let state = if *kind == "ingest" {
                    jobs.ingest.get(*id).map(|j| j.state)
                } else {
                    jobs.query.get(*id).map(|j| j.state)
                };
                match state {
                    None => Err(SfError::not_found()),
                    Some(s) if !s.terminal() => Err(job_state_error(
                        "Job must be in a terminal state (JobComplete, Failed or Aborted) to be deleted",
                    )),
                    Some(_) => {
                        jobs.ingest.remove(*id);
                        jobs.query.remove(*id);
                        jobs.order.retain(|j| j != id);
                        Ok(Resp::empty(StatusCode::NO_CONTENT))
                    }
                }
            }
            ["jobs", "ingest", id, "batches"] if *m == Method::PUT => self.upload(req, id),
            ["jobs", "ingest", id, kind @ ("successfulResults" | "failedResults" | "unprocessedrecords")]
                if *m == Method::GET =>
            {
                let jobs = lock(&self.bulk);
                let job = jobs.ingest.get(*id).ok_or_else(SfError::not_found)?;
                if !job.state.terminal() && *kind != "unprocessedrecords" {
                    return Err(job_state_error("Job is not complete"));
                }
                let csv = match *kind {
                    "successfulResults" => job.success_csv.clone(),
                    "failedResults" => job.failed_csv.clone(),
                    _ => job.unprocessed_csv.clone(),
                };
                Ok(Resp { status: StatusCode::OK, body: Body::Csv(csv), headers: Vec::new() })
            }
            ["jobs", "query", id, "results"] if *m == Method::GET => self.query_results(req, id),
            ["jobs", ..] if segs.len() <= 4 => {
                Err(SfError::method_not_allowed(m.as_str(), "GET,POST,PATCH,PUT,DELETE"))
            }
            _ => Err(SfError::not_found()),
        }
    }

    fn create_ingest(&self, req: &Req) -> Result<Resp, SfError> {
        let body = req.json()?;
        let object_name =
            body.get("object").and_then(Value::as_str).ok_or_else(|| invalid_job("object is required"))?;
        let operation = body.get("operation").and_then(Value::as_str).unwrap_or("");
        let operation = Operation::parse(operation)
            .ok_or_else(|| invalid_job(&format!("Invalid operation: {operation}")))?;
        let format = Format::from_body(&body)?;
        let (obj, object, ext_field) = {
            let store = self.read();
            let obj = store
                .object(object_name)
                .ok_or_else(|| invalid_job(&format!("Unable to find object: {object_name}")))?;
            let def = &store.schema[obj];
            let ext = match (operation, body.get("externalIdFieldName").and_then(Value::as_str)) {
                (Operation::Upsert, None) => return Err(invalid_job("External ID was blank for upsert")),
                (Operation::Upsert, Some(f)) => {
                    let fd = def
                        .field_named(f)
                        .ok_or_else(|| invalid_job(&format!("Field name not found: {f}")))?;
                    if !(fd.external_id || fd.id_lookup || fd.source == Source::Id) {
                        return Err(invalid_job(&format!(
                            "The field {} is not an External ID field",
                            fd.name
                        )));
                    }
                    Some(fd.name.clone())
                }
                _ => None,
            };
            (obj, def.name, ext)
        };
        let now = self.now();
        let mut jobs = lock(&self.bulk);
        let id = jobs.next_id();
        let job = IngestJob {
            id: id.clone(),
            object,
            obj,
            operation,
            ext_field,
            format,
            state: State::Open,
            created: now,
            modstamp: now,
            version: req.version.clone(),
            uploads: Vec::new(),
            processed: 0,
            failed: 0,
            error: None,
            success_csv: String::new(),
            failed_csv: String::new(),
            unprocessed_csv: String::new(),
        };
        let info = job.info(true);
        jobs.ingest.insert(id.clone(), job);
        jobs.order.push(id);
        Ok(Resp::ok(info))
    }

    fn upload(&self, req: &Req, id: &str) -> Result<Resp, SfError> {
        let mut jobs = lock(&self.bulk);
        let job = jobs.ingest.get_mut(id).ok_or_else(SfError::not_found)?;
        if job.state != State::Open {
            return Err(job_state_error(&format!(
                "Job is in {} state; data can only be uploaded to an Open job",
                job.state.name()
            )));
        }
        let text = String::from_utf8(req.body.to_vec())
            .map_err(|_| SfError::bad_request("INVALIDREQUEST", "The CSV data must be UTF-8"))?;
        if text.trim().is_empty() {
            return Err(SfError::bad_request("INVALIDREQUEST", "No content found in the request"));
        }
        job.uploads.push(text);
        job.modstamp = self.now();
        jobs.batches += 1;
        Ok(Resp::empty(StatusCode::CREATED))
    }

    fn patch_ingest(&self, req: &Req, id: &str) -> Result<Resp, SfError> {
        let body = req.json()?;
        let state = body.get("state").and_then(Value::as_str).unwrap_or("");
        let mut jobs = lock(&self.bulk);
        let job = jobs.ingest.get_mut(id).ok_or_else(SfError::not_found)?;
        match state {
            "Aborted" => {
                if job.state.terminal() {
                    return Err(job_state_error(&format!(
                        "Aborting already {} Job not allowed",
                        job.state.name()
                    )));
                }
                job.state = State::Aborted;
                job.modstamp = self.now();
                Ok(Resp::ok(job.info(false)))
            }
            "UploadComplete" => {
                if job.state != State::Open {
                    return Err(job_state_error(&format!(
                        "Job is in {} state and cannot be closed",
                        job.state.name()
                    )));
                }
                job.state = State::UploadComplete;
                job.modstamp = self.now();
                let info = job.info(false);
                let uploads = std::mem::take(&mut job.uploads);
                let (obj, op, ext, format) =
                    (job.obj, job.operation, job.ext_field.clone(), job.format.clone());
                drop(jobs);
                // Process now (outside the jobs lock): the next GET sees JobComplete.
                let outcome = self.process_ingest(obj, op, ext.as_deref(), &format, &uploads);
                let mut jobs = lock(&self.bulk);
                if let Some(job) = jobs.ingest.get_mut(id) {
                    job.modstamp = self.now();
                    match outcome {
                        Ok(r) => {
                            job.state = State::JobComplete;
                            job.processed = r.processed;
                            job.failed = r.failed;
                            job.success_csv = r.success;
                            job.failed_csv = r.failures;
                            job.unprocessed_csv = r.unprocessed;
                        }
                        Err(message) => {
                            job.state = State::Failed;
                            job.error = Some(message);
                            job.unprocessed_csv = uploads.concat();
                        }
                    }
                }
                Ok(Resp::ok(info))
            }
            other => Err(invalid_job(&format!("Invalid state: {other}"))),
        }
    }

    /// Runs an ingest job's rows against the store.
    fn process_ingest(
        &self,
        obj: usize,
        op: Operation,
        ext: Option<&str>,
        format: &Format,
        uploads: &[String],
    ) -> Result<IngestOutcome, String> {
        let mut out = IngestOutcome::default();
        let mut success = format.writer();
        let mut failures = format.writer();
        let mut header_written = false;
        let mut store = self.write();
        let w = super::store::WriteCtx { now: self.now(), admin: false, allow_duplicates: false };
        for upload in uploads {
            if format.line_ending == "LF" && upload.contains("\r\n") {
                return Err(
                    "ClientInputError : LineEnding is invalid on user data. Current LineEnding setting is LF"
                        .into(),
                );
            }
            // Flexible: a row with more or fewer cells than the header fails on
            // its own (below) instead of ending the read.
            let mut reader = csv::ReaderBuilder::new()
                .delimiter(format.delimiter)
                .has_headers(true)
                .flexible(true)
                .from_reader(upload.as_bytes());
            let headers: Vec<String> = reader
                .headers()
                .map_err(|e| format!("InvalidBatch : {e}"))?
                .iter()
                .map(str::to_string)
                .collect();
            let columns = columns(&store, obj, &headers)?;
            let ext_col = match (op, ext) {
                (Operation::Upsert, Some(ext)) => {
                    Some(headers.iter().position(|h| h.eq_ignore_ascii_case(ext)).ok_or_else(|| {
                        format!("InvalidBatch : The External ID field {ext} is not present in the header")
                    })?)
                }
                _ => None,
            };
            if matches!(op, Operation::Delete | Operation::HardDelete)
                && !(columns.len() == 1 && matches!(columns[0], Column::Id))
            {
                return Err(format!("InvalidBatch : The '{}' batch must contain only ids", op.name()));
            }
            if !header_written {
                let mut h = vec!["sf__Id".to_string(), "sf__Created".to_string()];
                h.extend(headers.iter().cloned());
                let _ = success.write_record(&h);
                h[1] = "sf__Error".into();
                let _ = failures.write_record(&h);
                header_written = true;
            }
            for row in reader.records() {
                out.processed += 1;
                // A row that cannot be read, or whose cell count differs from the
                // header's, is a failed row: listed with the header's columns.
                let unreadable = match &row {
                    Err(e) => Some((format!("INVALID_FIELD:{e}: --"), Vec::new())),
                    Ok(r) if r.len() != headers.len() => Some((
                        format!(
                            "INVALID_FIELD:row at line {} has {} columns but the header has {}: --",
                            r.position().map_or(0, csv::Position::line),
                            r.len(),
                            headers.len()
                        ),
                        r.iter().map(str::to_string).collect(),
                    )),
                    Ok(_) => None,
                };
                if let Some((error, mut cells)) = unreadable {
                    out.failed += 1;
                    cells.resize(headers.len(), String::new());
                    let mut rec = vec![String::new(), error];
                    rec.extend(cells);
                    let _ = failures.write_record(&rec);
                    continue;
                }
                let Ok(row) = row else { continue };
                let cells: Vec<&str> = row.iter().collect();
                match apply_row(&mut store, obj, op, &columns, ext_col, &cells, &w) {
                    Ok((id, was_created)) => {
                        let mut rec = vec![id.to_string(), was_created.to_string()];
                        rec.extend(cells.iter().map(|c| c.to_string()));
                        let _ = success.write_record(&rec);
                    }
                    Err((id, e)) => {
                        out.failed += 1;
                        let mut rec = vec![id.map(|i| i.to_string()).unwrap_or_default(), e.to_bulk()];
                        rec.extend(cells.iter().map(|c| c.to_string()));
                        let _ = failures.write_record(&rec);
                    }
                }
            }
        }
        drop(store);
        out.success = finish_csv(success);
        out.failures = finish_csv(failures);
        Ok(out)
    }

    fn create_query(&self, req: &Req) -> Result<Resp, SfError> {
        let body = req.json()?;
        let operation = body.get("operation").and_then(Value::as_str).unwrap_or("query").to_string();
        if operation != "query" && operation != "queryAll" {
            return Err(invalid_job(&format!("Invalid operation: {operation}")));
        }
        let text = body
            .get("query")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid_job("query is required"))?
            .to_string();
        let format = Format::from_body(&body)?;
        let (query, ids, object) = {
            let store = self.read();
            let query = soql::parse(&text, &store, self.now())?;
            let ids = query.run(&store, operation == "queryAll");
            let object = store.schema[query.obj].name;
            (query, ids, object)
        };
        let mut jobs = lock(&self.bulk);
        let id = jobs.next_id();
        jobs.query_jobs += 1;
        let job = QueryJob {
            id: id.clone(),
            object,
            operation,
            query_text: text,
            query,
            ids,
            format,
            state: State::JobComplete,
            created: self.now(),
            version: req.version.clone(),
        };
        let mut info = job.info();
        info["state"] = json!("UploadComplete");
        jobs.query.insert(id.clone(), job);
        jobs.order.push(id);
        Ok(Resp::ok(info))
    }

    fn patch_query(&self, req: &Req, id: &str) -> Result<Resp, SfError> {
        let body = req.json()?;
        let mut jobs = lock(&self.bulk);
        let job = jobs.query.get_mut(id).ok_or_else(SfError::not_found)?;
        match body.get("state").and_then(Value::as_str) {
            Some("Aborted") if job.state.terminal() => Err(job_state_error(&format!(
                "Aborting already {} Job not allowed",
                if job.state == State::JobComplete { "Completed" } else { job.state.name() }
            ))),
            Some("Aborted") => {
                job.state = State::Aborted;
                Ok(Resp::ok(job.info()))
            }
            other => Err(invalid_job(&format!("Invalid state: {}", other.unwrap_or("")))),
        }
    }

    fn query_results(&self, req: &Req, id: &str) -> Result<Resp, SfError> {
        let offset = match req.param("locator").filter(|l| !l.is_empty() && *l != "null") {
            None => 0,
            Some(l) => decode_locator(l)
                .ok_or_else(|| SfError::bad_request("INVALIDLOCATOR", format!("Invalid locator: {l}")))?,
        };
        let max =
            match req.param("maxRecords") {
                None => DEFAULT_MAX_RECORDS,
                Some(m) => m.parse::<usize>().ok().filter(|m| *m > 0).ok_or_else(|| {
                    SfError::bad_request("INVALIDREQUEST", format!("Invalid maxRecords: {m}"))
                })?,
            };
        let (query, ids, format) = {
            let jobs = lock(&self.bulk);
            let job = jobs.query.get(id).ok_or_else(SfError::not_found)?;
            if job.state != State::JobComplete {
                return Err(job_state_error(&format!("Job is in {} state", job.state.name())));
            }
            let end = (offset + max).min(job.ids.len());
            let page: Vec<SfId> = job.ids.get(offset..end).map(<[SfId]>::to_vec).unwrap_or_default();
            (job.query.clone(), (page, end, job.ids.len()), job.format.clone())
        };
        let (page, end, total) = ids;
        let mut w = format.writer();
        let _ = w.write_record(query.csv_header());
        {
            let store = self.read();
            let table = &store.tables[query.obj];
            for rec in page.iter().filter_map(|id| table.records.get(id)) {
                let _ = w.write_record(query.csv_row(&store, rec));
            }
        }
        let locator = if end < total { base64(end.to_string().as_bytes()) } else { "null".to_string() };
        Ok(Resp {
            status: StatusCode::OK,
            body: Body::Csv(finish_csv(w)),
            headers: vec![("sforce-locator", locator), ("sforce-numberofrecords", page.len().to_string())],
        })
    }
}

#[derive(Default)]
struct IngestOutcome {
    processed: u64,
    failed: u64,
    success: String,
    failures: String,
    unprocessed: String,
}

fn decode_locator(l: &str) -> Option<usize> {
    // Locators are base64 of the decimal offset.
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in l.bytes().filter(|c| *c != b'=') {
        let v = alphabet.iter().position(|a| *a == c)? as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    String::from_utf8(out).ok()?.parse().ok()
}

fn columns(store: &Store, obj: usize, headers: &[String]) -> Result<Vec<Column>, String> {
    let def = &store.schema[obj];
    headers
        .iter()
        .map(|h| {
            let not_found = || format!("InvalidBatch : Field name not found : {h}");
            match h.split_once('.') {
                None => {
                    let f = def.field(h).ok_or_else(not_found)?;
                    Ok(if def.def(f).source == Source::Id { Column::Id } else { Column::Field(f) })
                }
                Some((rel, field)) => {
                    let rf = def.relationship(rel).ok_or_else(not_found)?;
                    let target = def
                        .def(rf)
                        .reference_to
                        .iter()
                        .find_map(|t| store.object(t))
                        .ok_or_else(not_found)?;
                    let tf = store.schema[target].field(field).ok_or_else(not_found)?;
                    let tfd = store.schema[target].def(tf);
                    if !(tfd.external_id || tfd.id_lookup || tfd.source == Source::Id) {
                        return Err(format!(
                            "InvalidBatch : Field {field} is not an External ID field on {}",
                            store.schema[target].name
                        ));
                    }
                    Ok(Column::Related(rf, target, tf))
                }
            }
        })
        .collect()
}

type RowResult = Result<(SfId, bool), (Option<SfId>, ItemError)>;

fn apply_row(
    store: &mut Store,
    obj: usize,
    op: Operation,
    columns: &[Column],
    ext_col: Option<usize>,
    cells: &[&str],
    w: &super::store::WriteCtx,
) -> RowResult {
    let mut id = None;
    let mut changes: Changes = Vec::new();
    for (col, cell) in columns.iter().zip(cells) {
        match col {
            Column::Id => {
                if !cell.is_empty() {
                    id = Some(SfId::parse(cell).ok_or_else(|| {
                        (
                            None,
                            ItemError::new(
                                "MALFORMED_ID",
                                format!("{} ID: id value of incorrect type: {cell}", store.schema[obj].name),
                                &["Id"],
                            ),
                        )
                    })?);
                }
            }
            Column::Field(f) => {
                let def = store.schema[obj].def(*f);
                if cell.is_empty() {
                    continue;
                }
                if *cell == "#N/A" {
                    changes.push((*f, None));
                    continue;
                }
                changes.push((*f, text_to_val(def, cell).map_err(|e| (None, e))?));
            }
            Column::Related(rf, target, tf) => {
                if cell.is_empty() {
                    continue;
                }
                let found = store.find_by(*target, *tf, cell);
                match found.as_slice() {
                    [one] => changes.push((*rf, Some(Val::str(one.as_str())))),
                    _ => {
                        let fd = store.schema[obj].def(*rf);
                        return Err((
                            None,
                            ItemError::new(
                                "INVALID_FIELD",
                                format!(
                                    "Foreign key external ID: {cell} not found for field {} in entity {}",
                                    store.schema[*target].def(*tf).name,
                                    store.schema[*target].name
                                ),
                                &[fd.name.as_str()],
                            ),
                        ));
                    }
                }
            }
        }
    }
    let first = |mut e: Vec<ItemError>| {
        if e.is_empty() { ItemError::new("UNKNOWN_EXCEPTION", "unknown", &[]) } else { e.swap_remove(0) }
    };
    let live = |id: Option<SfId>| {
        id.ok_or_else(|| {
            (None, ItemError::new("MISSING_ARGUMENT", "Id not specified in an update call", &[]))
        })
    };
    match op {
        Operation::Insert => store.create(obj, changes, w).map(|id| (id, true)).map_err(|e| (None, first(e))),
        Operation::Update => {
            let id = live(id)?;
            store.update(obj, id, changes, w).map(|()| (id, false)).map_err(|e| (Some(id), first(e)))
        }
        Operation::Upsert => {
            let Some(col) = ext_col else {
                return Err((None, ItemError::new("MISSING_ARGUMENT", "no external id column", &[])));
            };
            let key = cells.get(col).copied().unwrap_or("");
            if matches!(columns.get(col), Some(Column::Id)) {
                return match id {
                    Some(id) => store
                        .update(obj, id, changes, w)
                        .map(|()| (id, false))
                        .map_err(|e| (Some(id), first(e))),
                    None => store.create(obj, changes, w).map(|id| (id, true)).map_err(|e| (None, first(e))),
                };
            }
            let Some(Column::Field(f)) = columns.get(col) else {
                return Err((None, ItemError::new("MISSING_ARGUMENT", "no external id column", &[])));
            };
            if key.is_empty() {
                let name = store.schema[obj].def(*f).name.clone();
                return Err((
                    None,
                    ItemError::new("MISSING_ARGUMENT", format!("{name} not specified"), &[name.as_str()]),
                ));
            }
            store.upsert(obj, *f, key, changes, w).map_err(|e| (None, first(e)))
        }
        Operation::Delete => {
            let id = live(id)?;
            store.delete(obj, id, w.now).map(|()| (id, false)).map_err(|e| (Some(id), e))
        }
        Operation::HardDelete => {
            let id = live(id)?;
            store.hard_delete(obj, id, w.now).map(|()| (id, false)).map_err(|e| (Some(id), e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locators_round_trip() {
        for n in [1usize, 200, 2000, 123_456] {
            assert_eq!(decode_locator(&base64(n.to_string().as_bytes())), Some(n));
        }
    }
}
