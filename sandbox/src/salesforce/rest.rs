//! REST API handlers: routing of `/services/data/vNN.N/...`, resources, limits,
//! describe, SOQL query with cursors, sObject CRUD and external-id upsert,
//! getUpdated/getDeleted, sObject Collections and Composite.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use chrono::{DateTime, Duration, Timelike, Utc};
use serde_json::{Map, Value, json};

use super::error::{ItemError, SfError, items_body};
use super::model::{J, SfId, format_datetime, parse_datetime};
use super::schema::Source;
use super::soql::{self, Select};
use super::store::{Match, Store};
use super::{Cursor, MAX_CURSORS, Req, Resp, Salesforce, lock};

/// Records per sObject Collections call.
const COLLECTION_LIMIT: usize = 200;
/// Subrequests per Composite call.
const COMPOSITE_LIMIT: usize = 25;
/// getUpdated / getDeleted id cap.
const REPLICATION_ID_LIMIT: usize = 600_000;

/// The store a handler works on: shared for reads, exclusive for writes.
enum Db<'a> {
    R(&'a Store),
    W(&'a mut Store),
}

impl Db<'_> {
    fn r(&self) -> &Store {
        match self {
            Db::R(s) => s,
            Db::W(s) => s,
        }
    }
    fn w(&mut self) -> Result<&mut Store, SfError> {
        match self {
            Db::W(s) => Ok(s),
            Db::R(_) => Err(SfError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "UNKNOWN_EXCEPTION",
                "write without a write lock",
            )),
        }
    }
}

fn object(store: &Store, name: &str) -> Result<usize, SfError> {
    store.object(name).ok_or_else(SfError::not_found)
}

fn created(id: &SfId) -> Value {
    json!({"id": id.as_str(), "success": true, "errors": []})
}

fn failed(id: Option<&SfId>, errors: &[ItemError]) -> Value {
    let errors: Vec<Value> = errors.iter().map(ItemError::to_json).collect();
    match id {
        Some(id) => json!({"id": id.as_str(), "success": false, "errors": errors}),
        None => json!({"success": false, "errors": errors}),
    }
}

fn flag(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// A JSON value used as an external-id key.
fn key_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn parse_time_param(req: &Req, name: &str) -> Result<DateTime<Utc>, SfError> {
    let raw = req
        .param(name)
        .ok_or_else(|| SfError::bad_request("MISSING_ARGUMENT", format!("{name} date not specified")))?;
    let t = parse_datetime(raw.trim()).ok_or_else(|| {
        SfError::bad_request("INVALID_REPLICATION_DATE", format!("unable to parse {name} date: {raw}"))
    })?;
    // The API ignores the seconds.
    Ok(t.with_second(0).and_then(|t| t.with_nanosecond(0)).unwrap_or(t))
}

impl Salesforce {
    /// Runs one API request; `held` is the store a composite call already locked.
    pub(crate) fn dispatch(&self, req: &Req, held: Option<&mut Store>) -> Resp {
        let first = req.segs.first().map(String::as_str);
        let result = match (first, held) {
            (Some("jobs"), None) => self.bulk(req),
            (Some("composite"), None) if req.segs.len() == 1 => self.composite(req),
            (Some("jobs"), Some(_)) => Err(SfError::bad_request(
                "INVALID_API_INPUT",
                "Bulk API requests are not supported in a composite request",
            )),
            (Some("composite"), Some(_)) if req.segs.len() == 1 => {
                Err(SfError::bad_request("INVALID_API_INPUT", "Composite requests cannot be nested"))
            }
            (_, Some(store)) => self.route(req, Db::W(store)),
            (_, None) if req.method == Method::GET => self.route(req, Db::R(&self.read())),
            (_, None) => self.route(req, Db::W(&mut self.write())),
        };
        result.unwrap_or_else(Resp::from)
    }

    fn route(&self, req: &Req, mut db: Db<'_>) -> Result<Resp, SfError> {
        let segs: Vec<&str> = req.segs.iter().map(String::as_str).collect();
        let m = &req.method;
        let get = *m == Method::GET;
        let not_allowed = |allowed: &str| Err(SfError::method_not_allowed(m.as_str(), allowed));
        match segs.as_slice() {
            [] if get => Ok(Resp::ok(self.resources(&req.version))),
            ["limits"] if get => Ok(Resp::ok(self.limits())),
            ["sobjects"] if get => Ok(Resp::ok(describe_global(db.r(), &req.version))),
            [endpoint @ ("query" | "queryAll")] if get => self.query(req, db.r(), *endpoint == "queryAll"),
            [endpoint @ ("query" | "queryAll"), locator] if get => {
                self.query_more(req, db.r(), endpoint, locator)
            }
            ["sobjects", o] if get => {
                let s = db.r();
                let def = &s.schema[object(s, o)?];
                Ok(Resp::ok(json!({"objectDescribe": def.basic(&req.version), "recentItems": []})))
            }
            ["sobjects", o] if *m == Method::POST => self.create_one(req, db.w()?, o),
            ["sobjects", o, "describe"] if get => {
                let s = db.r();
                Ok(Resp::ok(s.schema[object(s, o)?].describe(&req.version)))
            }
            ["sobjects", o, "updated"] if get => self.get_updated(req, db.r(), o),
            ["sobjects", o, "deleted"] if get => self.get_deleted(req, db.r(), o),
            ["sobjects", _, "describe" | "updated" | "deleted"] => not_allowed("GET,HEAD"),
            ["sobjects", o, id] if get => self.get_one(req, db.r(), o, id),
            ["sobjects", o, id] if *m == Method::PATCH => self.update_one(req, db.w()?, o, id),
            ["sobjects", o, id] if *m == Method::DELETE => self.delete_one(db.w()?, o, id),
            ["sobjects", o, field, value] if get || *m == Method::DELETE => {
                self.by_external_id(req, &mut db, o, field, value)
            }
            ["sobjects", o, field, value] if *m == Method::PATCH => {
                self.upsert_one(req, db.w()?, o, field, value)
            }
            ["composite", "sobjects"] if *m == Method::POST => self.collection_create(req, db.w()?),
            ["composite", "sobjects"] if *m == Method::PATCH => self.collection_update(req, db.w()?),
            ["composite", "sobjects"] | ["composite", "sobjects", _] if *m == Method::DELETE => {
                self.collection_delete(req, db.w()?)
            }
            ["composite", "sobjects", o] if get => self.collection_retrieve(req, db.r(), o),
            ["composite", "sobjects", o, field] if *m == Method::PATCH => {
                self.collection_upsert(req, db.w()?, o, field)
            }
            [] | ["limits"] | ["sobjects"] | ["query" | "queryAll"] | ["query" | "queryAll", _] => {
                not_allowed("GET,HEAD")
            }
            ["sobjects", _] => not_allowed("GET,HEAD,POST"),
            ["sobjects", _, _] | ["sobjects", _, _, _] => not_allowed("GET,HEAD,PATCH,DELETE"),
            ["composite", "sobjects"] => not_allowed("POST,PATCH,DELETE"),
            ["composite", "sobjects", _] => not_allowed("GET,DELETE"),
            ["composite", "sobjects", _, _] => not_allowed("PATCH"),
            _ => Err(SfError::not_found()),
        }
    }

    fn resources(&self, v: &str) -> Value {
        let base = format!("/services/data/{v}");
        json!({
            "sobjects": format!("{base}/sobjects"),
            "query": format!("{base}/query"),
            "queryAll": format!("{base}/queryAll"),
            "limits": format!("{base}/limits"),
            "composite": format!("{base}/composite"),
            "jobs": format!("{base}/jobs"),
            "identity": format!("/id/{}/{}", super::ORG_ID, super::USER_ID),
        })
    }

    fn limits(&self) -> Value {
        let (used, max) = self.api_usage();
        let (batches, query_jobs) = lock(&self.bulk).usage();
        let pair = |m: u64, used: u64| json!({"Max": m, "Remaining": m.saturating_sub(used)});
        json!({
            "DailyApiRequests": pair(max, used),
            "DailyBulkApiBatches": pair(15_000, batches),
            "DailyBulkV2QueryJobs": pair(10_000, query_jobs),
            "DailyBulkV2QueryFileStorageMB": pair(976_562, 0),
            "DailyAsyncApexExecutions": pair(250_000, 0),
            "DataStorageMB": pair(1_024, 0),
            "FileStorageMB": pair(1_024, 0),
            "HourlyTimeBasedWorkflow": pair(1_000, 0),
            "ConcurrentSyncLongRunningRequests": pair(10, 0),
        })
    }

    // ---- query ----

    fn batch_size(req: &Req) -> usize {
        req.header("sforce-query-options")
            .and_then(|v| {
                v.split(',').find_map(|p| {
                    p.trim().strip_prefix("batchSize=").and_then(|n| n.trim().parse::<usize>().ok())
                })
            })
            .map_or(2000, |n| n.clamp(200, 2000))
    }

    fn query(&self, req: &Req, store: &Store, all: bool) -> Result<Resp, SfError> {
        let q = req
            .param("q")
            .filter(|q| !q.trim().is_empty())
            .ok_or_else(|| SfError::bad_request("MALFORMED_QUERY", "A query string has to be specified"))?;
        let query = soql::parse(q, store, self.now())?;
        let ids = query.run(store, all);
        match &query.select {
            Select::Count => Ok(Resp::ok(json!({"totalSize": ids.len(), "done": true, "records": []}))),
            Select::CountField(alias) => {
                let mut row = Map::new();
                row.insert("attributes".into(), json!({"type": "AggregateResult"}));
                row.insert(alias.clone(), json!(ids.len()));
                Ok(Resp::ok(json!({"totalSize": 1, "done": true, "records": [row]})))
            }
            Select::Fields(_) => {
                let cursor = Cursor { query, ids, batch: Self::batch_size(req) };
                let endpoint = if all { "queryAll" } else { "query" };
                Ok(Resp::ok(self.page(store, Arc::new(cursor), None, 0, &req.version, endpoint)))
            }
        }
    }

    fn query_more(&self, req: &Req, store: &Store, endpoint: &str, locator: &str) -> Result<Resp, SfError> {
        let invalid = || SfError::bad_request("INVALID_QUERY_LOCATOR", "invalid query locator");
        let (id, offset) = locator.rsplit_once('-').ok_or_else(invalid)?;
        let offset: usize = offset.parse().map_err(|_| invalid())?;
        let cursor = lock(&self.cursors).map.get(id).cloned().ok_or_else(invalid)?;
        if offset > cursor.ids.len() {
            return Err(invalid());
        }
        let batch = req.header("sforce-query-options").map(|_| Self::batch_size(req));
        Ok(Resp::ok(
            self.page(store, cursor, Some(id.to_string()), offset, &req.version, endpoint).with_batch(batch),
        ))
    }

    /// One page of a cursor; registers the cursor when more pages follow.
    fn page<'a>(
        &'a self,
        store: &'a Store,
        cursor: Arc<Cursor>,
        locator: Option<String>,
        offset: usize,
        version: &str,
        endpoint: &str,
    ) -> PageOut<'a> {
        PageOut {
            sf: self,
            store,
            cursor,
            locator,
            offset,
            version: version.to_string(),
            endpoint: endpoint.to_string(),
            batch: None,
        }
    }

    // ---- single records ----

    fn parse_record_id(store: &Store, o: usize, raw: &str) -> Result<SfId, SfError> {
        let id = SfId::parse(raw).ok_or_else(|| {
            SfError::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                format!("Provided external ID field does not exist or is not accessible: {raw}"),
            )
        })?;
        if id.prefix() != store.schema[o].key_prefix {
            return Err(SfError::not_found());
        }
        Ok(id)
    }

    fn live_error(e: ItemError) -> SfError {
        match e.status_code.as_str() {
            "ENTITY_IS_DELETED" => {
                SfError::new(StatusCode::NOT_FOUND, "ENTITY_IS_DELETED", "entity is deleted")
            }
            "INVALID_CROSS_REFERENCE_KEY" => SfError::not_found(),
            _ => SfError::from_items(&[e]),
        }
    }

    fn fields_param(store: &Store, o: usize, req: &Req) -> Result<Option<Vec<u16>>, SfError> {
        let Some(list) = req.param("fields") else { return Ok(None) };
        let def = &store.schema[o];
        list.split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(|f| {
                def.field(f).ok_or_else(|| {
                    SfError::bad_request(
                        "INVALID_FIELD",
                        format!(
                            "No such column '{f}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.",
                            def.name
                        ),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    fn get_one(&self, req: &Req, store: &Store, o: &str, raw: &str) -> Result<Resp, SfError> {
        let o = object(store, o)?;
        let id = Self::parse_record_id(store, o, raw)?;
        let rec = store.record(o, &id).ok_or_else(SfError::not_found)?;
        if rec.deleted.is_some() {
            return Err(Self::live_error(ItemError::new("ENTITY_IS_DELETED", "entity is deleted", &[])));
        }
        let fields = Self::fields_param(store, o, req)?;
        Ok(Resp::ok(store.record_json(o, rec, &req.version, fields.as_deref())))
    }

    fn body_object(req: &Req) -> Result<Map<String, Value>, SfError> {
        match req.json()? {
            Value::Object(m) => Ok(m),
            _ => Err(SfError::json_parser("Cannot deserialize instance of SObject from START_ARRAY value")),
        }
    }

    fn create_one(&self, req: &Req, store: &mut Store, o: &str) -> Result<Resp, SfError> {
        let o = object(store, o)?;
        let body = Self::body_object(req)?;
        let changes = store.changes_from_json(o, &body, &[])?;
        match store.create(o, changes, &self.write_ctx(&req.headers)) {
            Ok(id) => Ok(Resp::json(StatusCode::CREATED, created(&id))),
            Err(errors) => Ok(Resp::json(StatusCode::BAD_REQUEST, items_body(&errors))),
        }
    }

    fn update_one(&self, req: &Req, store: &mut Store, o: &str, raw: &str) -> Result<Resp, SfError> {
        let o = object(store, o)?;
        let id = Self::parse_record_id(store, o, raw)?;
        let body = Self::body_object(req)?;
        let changes = store.changes_from_json(o, &body, &["Id"])?;
        match store.update(o, id, changes, &self.write_ctx(&req.headers)) {
            Ok(()) => Ok(Resp::empty(StatusCode::NO_CONTENT)),
            Err(errors) => Ok(Self::errors_resp(errors)),
        }
    }

    fn errors_resp(errors: Vec<ItemError>) -> Resp {
        match errors.as_slice() {
            [e] if e.fields.is_empty()
                && matches!(e.status_code.as_str(), "ENTITY_IS_DELETED" | "INVALID_CROSS_REFERENCE_KEY") =>
            {
                Resp::from(Self::live_error(e.clone()))
            }
            _ => Resp::json(StatusCode::BAD_REQUEST, items_body(&errors)),
        }
    }

    fn delete_one(&self, store: &mut Store, o: &str, raw: &str) -> Result<Resp, SfError> {
        let o = object(store, o)?;
        let id = Self::parse_record_id(store, o, raw)?;
        store.delete(o, id, self.now()).map_err(Self::live_error)?;
        Ok(Resp::empty(StatusCode::NO_CONTENT))
    }

    /// The field an external-id path names; it must be an external id, an
    /// id-lookup field or `Id`.
    fn key_field(store: &Store, o: usize, field: &str) -> Result<u16, SfError> {
        let def = &store.schema[o];
        let f = def.field(field).ok_or_else(|| {
            SfError::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                format!("Provided external ID field does not exist or is not accessible: {field}"),
            )
        })?;
        let fd = def.def(f);
        if !(fd.external_id || fd.id_lookup || fd.source == Source::Id) {
            return Err(SfError::bad_request(
                "INVALID_FIELD",
                format!("Field {} is not an External ID or indexed field for {}", fd.name, def.name),
            ));
        }
        Ok(f)
    }

    fn multiple_choices(store: &Store, o: usize, ids: &[SfId], version: &str) -> Resp {
        let name = store.schema[o].name;
        let urls: Vec<String> =
            ids.iter().map(|id| format!("/services/data/{version}/sobjects/{name}/{id}")).collect();
        Resp::json(StatusCode::MULTIPLE_CHOICES, json!(urls))
    }

    fn by_external_id(
        &self,
        req: &Req,
        db: &mut Db<'_>,
        o: &str,
        field: &str,
        value: &str,
    ) -> Result<Resp, SfError> {
        let store = db.r();
        let o = object(store, o)?;
        let f = Self::key_field(store, o, field)?;
        let id = match store.match_key(o, f, value) {
            Match::None => return Err(SfError::not_found()),
            Match::Many(ids) => return Ok(Self::multiple_choices(store, o, &ids, &req.version)),
            Match::One(id) => id,
        };
        if req.method == Method::GET {
            let rec = store.record(o, &id).ok_or_else(SfError::not_found)?;
            let fields = Self::fields_param(store, o, req)?;
            return Ok(Resp::ok(store.record_json(o, rec, &req.version, fields.as_deref())));
        }
        let now = self.now();
        db.w()?.delete(o, id, now).map_err(Self::live_error)?;
        Ok(Resp::empty(StatusCode::NO_CONTENT))
    }

    fn upsert_one(
        &self,
        req: &Req,
        store: &mut Store,
        o: &str,
        field: &str,
        value: &str,
    ) -> Result<Resp, SfError> {
        let o = object(store, o)?;
        let f = Self::key_field(store, o, field)?;
        let body = Self::body_object(req)?;
        let changes = store.changes_from_json(o, &body, &["Id"])?;
        if let Match::Many(ids) = store.match_key(o, f, value) {
            return Ok(Self::multiple_choices(store, o, &ids, &req.version));
        }
        match store.upsert(o, f, value, changes, &self.write_ctx(&req.headers)) {
            Ok((id, true)) => Ok(Resp::json(
                StatusCode::CREATED,
                json!({"id": id.as_str(), "success": true, "errors": [], "created": true}),
            )),
            Ok((id, false)) => {
                Ok(Resp::ok(json!({"id": id.as_str(), "success": true, "errors": [], "created": false})))
            }
            Err(errors) if errors.first().is_some_and(|e| e.status_code == "NOT_FOUND") => {
                Err(SfError::not_found())
            }
            Err(errors) => Ok(Self::errors_resp(errors)),
        }
    }

    // ---- replication ----

    fn replication_window(
        &self,
        req: &Req,
        max_days: i64,
    ) -> Result<(DateTime<Utc>, DateTime<Utc>), SfError> {
        let start = parse_time_param(req, "start")?;
        let end = parse_time_param(req, "end")?;
        let now = self.now();
        let now_minute = now.with_second(0).and_then(|t| t.with_nanosecond(0)).unwrap_or(now);
        if start >= end {
            return Err(SfError::bad_request(
                "INVALID_REPLICATION_DATE",
                "EndDate must chronologically follow StartDate",
            ));
        }
        if start < now - Duration::days(max_days) {
            return Err(SfError::bad_request(
                "INVALID_REPLICATION_DATE",
                format!("startDate cannot be more than {max_days} days ago"),
            ));
        }
        Ok((start, end.min(now_minute)))
    }

    fn get_updated(&self, req: &Req, store: &Store, o: &str) -> Result<Resp, SfError> {
        let o = object(store, o)?;
        let (start, end) = self.replication_window(req, 30)?;
        let table = &store.tables[o];
        let ids: Vec<&str> = table
            .by_modstamp
            .range((start, SfId::MIN)..(end, SfId::MIN))
            .filter(|(_, id)| table.records.get(id).is_some_and(|r| r.deleted.is_none()))
            .map(|(_, id)| id.as_str())
            .collect();
        if ids.len() > REPLICATION_ID_LIMIT {
            return Err(SfError::bad_request("EXCEEDED_ID_LIMIT", "Too many ids: choose a shorter window"));
        }
        Ok(Resp::ok(json!({"ids": ids, "latestDateCovered": format_datetime(end)})))
    }

    fn get_deleted(&self, req: &Req, store: &Store, o: &str) -> Result<Resp, SfError> {
        let o = object(store, o)?;
        let (start, end) = self.replication_window(req, 15)?;
        let table = &store.tables[o];
        let mut rows: Vec<(DateTime<Utc>, SfId)> = table
            .deleted_log
            .range((start, SfId::MIN)..(end, SfId::MIN))
            .chain(table.purged_log.range((start, SfId::MIN)..(end, SfId::MIN)))
            .copied()
            .collect();
        rows.sort();
        if rows.len() > REPLICATION_ID_LIMIT {
            return Err(SfError::bad_request("EXCEEDED_ID_LIMIT", "Too many ids: choose a shorter window"));
        }
        let earliest =
            table.deleted_log.iter().chain(table.purged_log.iter()).map(|(t, _)| *t).min().unwrap_or(start);
        let records: Vec<Value> = rows
            .iter()
            .map(|(t, id)| json!({"id": id.as_str(), "deletedDate": format_datetime(*t)}))
            .collect();
        Ok(Resp::ok(json!({
            "deletedRecords": records,
            "earliestDateAvailable": format_datetime(earliest),
            "latestDateCovered": format_datetime(end),
        })))
    }

    // ---- sObject Collections ----

    fn collection_records(req: &Req) -> Result<(bool, Vec<Map<String, Value>>), SfError> {
        let body = Self::body_object(req)?;
        let all_or_none = flag(body.get("allOrNone"));
        let records = match body.get("records") {
            Some(Value::Array(items)) => items,
            _ => return Err(SfError::json_parser("records must be an array of SObjects")),
        };
        if records.len() > COLLECTION_LIMIT {
            return Err(SfError::bad_request(
                "EXCEEDED_ID_LIMIT",
                format!(
                    "record limit reached. cannot submit more than {COLLECTION_LIMIT} records into this call"
                ),
            ));
        }
        let records = records
            .iter()
            .map(|r| {
                r.as_object()
                    .cloned()
                    .ok_or_else(|| SfError::json_parser("records must be an array of SObjects"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((all_or_none, records))
    }

    fn record_type(store: &Store, rec: &Map<String, Value>) -> Result<usize, ItemError> {
        let name = rec.get("attributes").and_then(|a| a.get("type")).and_then(Value::as_str);
        let name =
            name.ok_or_else(|| ItemError::new("INVALID_TYPE", "Must send a concrete entity type.", &[]))?;
        store.object(name).ok_or_else(|| {
            ItemError::new("INVALID_TYPE", format!("sObject type '{name}' is not supported."), &[])
        })
    }

    /// Runs `op` on every item inside one transaction; with `all_or_none`, one
    /// failure rolls everything back and the other items report the rollback.
    fn run_items<T>(
        store: &mut Store,
        all_or_none: bool,
        items: Vec<T>,
        mut op: impl FnMut(&mut Store, T) -> Result<Value, Value>,
    ) -> Resp {
        let sp = store.savepoint();
        let results: Vec<Result<Value, Value>> = items.into_iter().map(|item| op(store, item)).collect();
        let any_failed = results.iter().any(Result::is_err);
        let rollback = all_or_none && any_failed;
        store.release(sp, rollback);
        let out: Vec<Value> = results
            .into_iter()
            .map(|r| match r {
                Ok(mut v) if rollback => {
                    let id = v.get("id").and_then(Value::as_str).and_then(SfId::parse);
                    let mut f = failed(id.as_ref(), &[ItemError::rolled_back()]);
                    if let Some(c) = v.get_mut("created").map(Value::take) {
                        f["created"] = c;
                    }
                    f
                }
                Ok(v) | Err(v) => v,
            })
            .collect();
        Resp::ok(Value::Array(out))
    }

    fn collection_create(&self, req: &Req, store: &mut Store) -> Result<Resp, SfError> {
        let (all_or_none, records) = Self::collection_records(req)?;
        // Parse every record first: a bad field or value fails the whole call.
        let mut items = Vec::with_capacity(records.len());
        for rec in &records {
            items.push(match Self::record_type(store, rec) {
                Ok(o) => Ok((o, store.changes_from_json(o, rec, &[])?)),
                Err(e) => Err(e),
            });
        }
        let w = self.write_ctx(&req.headers);
        Ok(Self::run_items(store, all_or_none, items, |store, item| {
            let (o, changes) = item.map_err(|e| failed(None, &[e]))?;
            store.create(o, changes, &w).map(|id| created(&id)).map_err(|e| failed(None, &e))
        }))
    }

    fn collection_update(&self, req: &Req, store: &mut Store) -> Result<Resp, SfError> {
        let (all_or_none, records) = Self::collection_records(req)?;
        let mut items = Vec::with_capacity(records.len());
        for rec in &records {
            let raw = rec
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("id"))
                .and_then(|(_, v)| v.as_str())
                .map(str::to_string);
            let item = match (Self::record_type(store, rec), raw) {
                (Err(e), raw) => Err((raw.as_deref().and_then(SfId::parse), e)),
                (Ok(_), None) => {
                    Err((None, ItemError::new("MISSING_ARGUMENT", "Id not specified in an update call", &[])))
                }
                (Ok(o), Some(raw)) => match SfId::parse(&raw) {
                    Some(id) if id.prefix() == store.schema[o].key_prefix => {
                        Ok((o, id, store.changes_from_json(o, rec, &["Id"])?))
                    }
                    Some(id) => Err((
                        Some(id),
                        ItemError::new(
                            "MALFORMED_ID",
                            format!("{} ID: id value of incorrect type: {raw}", store.schema[o].name),
                            &["Id"],
                        ),
                    )),
                    None => Err((
                        None,
                        ItemError::new(
                            "MALFORMED_ID",
                            format!("{} ID: id value of incorrect type: {raw}", store.schema[o].name),
                            &["Id"],
                        ),
                    )),
                },
            };
            items.push(item);
        }
        let w = self.write_ctx(&req.headers);
        Ok(Self::run_items(store, all_or_none, items, |store, item| {
            let (o, id, changes) = item.map_err(|(id, e)| failed(id.as_ref(), &[e]))?;
            store.update(o, id, changes, &w).map(|()| created(&id)).map_err(|e| failed(Some(&id), &e))
        }))
    }

    fn collection_upsert(&self, req: &Req, store: &mut Store, o: &str, field: &str) -> Result<Resp, SfError> {
        let o = object(store, o)?;
        let f = Self::key_field(store, o, field)?;
        let fname = store.schema[o].def(f).name.clone();
        let (all_or_none, records) = Self::collection_records(req)?;
        let mut keys: Vec<Option<String>> = Vec::with_capacity(records.len());
        let mut items = Vec::with_capacity(records.len());
        for rec in &records {
            let key = rec.iter().find(|(k, _)| k.eq_ignore_ascii_case(&fname)).and_then(|(_, v)| key_text(v));
            keys.push(key.as_ref().map(|k| k.to_lowercase()));
            let item = match Self::record_type(store, rec) {
                Err(e) => Err(e),
                Ok(t) if t != o => Err(ItemError::new(
                    "INVALID_TYPE",
                    format!("Record type {} does not match {}", store.schema[t].name, store.schema[o].name),
                    &[],
                )),
                Ok(_) => match key {
                    None => Err(ItemError::new("MISSING_ARGUMENT", format!("{fname} not specified"), &[])),
                    Some(k) => Ok((k, store.changes_from_json(o, rec, &["Id"])?)),
                },
            };
            items.push(item);
        }
        // The same key twice in one call fails both records, as Salesforce does.
        let dup = |k: &Option<String>| k.is_some() && keys.iter().filter(|x| *x == k).count() > 1;
        let items: Vec<_> = items
            .into_iter()
            .zip(keys.iter())
            .map(|(item, k)| match item {
                Ok((key, _)) if dup(k) => Err(ItemError::new(
                    "DUPLICATE_EXTERNAL_ID",
                    format!("Duplicate external id specified: {key}"),
                    &[&fname],
                )),
                other => other,
            })
            .collect();
        let w = self.write_ctx(&req.headers);
        Ok(Self::run_items(store, all_or_none, items, |store, item| {
            let (key, changes) = item.map_err(|e| failed(None, &[e]))?;
            match store.upsert(o, f, &key, changes, &w) {
                Ok((id, was_created)) => {
                    Ok(json!({"id": id.as_str(), "success": true, "errors": [], "created": was_created}))
                }
                Err(e) => Err(failed(None, &e)),
            }
        }))
    }

    fn collection_delete(&self, req: &Req, store: &mut Store) -> Result<Resp, SfError> {
        let ids: Vec<String> = req
            .param("ids")
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        if ids.is_empty() {
            return Err(SfError::bad_request("MISSING_ARGUMENT", "ids parameter is required"));
        }
        if ids.len() > COLLECTION_LIMIT {
            return Err(SfError::bad_request(
                "EXCEEDED_ID_LIMIT",
                format!("Cannot delete more than {COLLECTION_LIMIT} records at a time"),
            ));
        }
        let all_or_none = req.param("allOrNone").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let now = self.now();
        Ok(Self::run_items(store, all_or_none, ids, |store, raw| {
            let id = SfId::parse(&raw).ok_or_else(|| {
                failed(None, &[ItemError::new("MALFORMED_ID", format!("malformed id {raw}"), &[])])
            })?;
            let o = store.object_of_id(&id).ok_or_else(|| {
                failed(
                    Some(&id),
                    &[ItemError::new("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", &[])],
                )
            })?;
            store.delete(o, id, now).map(|()| created(&id)).map_err(|e| failed(Some(&id), &[e]))
        }))
    }

    fn collection_retrieve(&self, req: &Req, store: &Store, o: &str) -> Result<Resp, SfError> {
        let o = object(store, o)?;
        let fields = Self::fields_param(store, o, req)?
            .ok_or_else(|| SfError::bad_request("MISSING_ARGUMENT", "fields parameter is required"))?;
        let out: Vec<J> = req
            .param("ids")
            .unwrap_or("")
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|raw| {
                SfId::parse(raw.trim())
                    .and_then(|id| store.record(o, &id))
                    .filter(|r| r.deleted.is_none())
                    .map_or(J::V(Value::Null), |r| store.record_json(o, r, &req.version, Some(&fields)))
            })
            .collect();
        Ok(Resp::ok(J::A(out)))
    }

    // ---- Composite ----

    fn composite(&self, req: &Req) -> Result<Resp, SfError> {
        if req.method != Method::POST {
            return Err(SfError::method_not_allowed(req.method.as_str(), "POST"));
        }
        let body = Self::body_object(req)?;
        let all_or_none = flag(body.get("allOrNone"));
        let subs = match body.get("compositeRequest") {
            Some(Value::Array(subs)) => subs,
            _ => return Err(SfError::json_parser("compositeRequest is required")),
        };
        if subs.len() > COMPOSITE_LIMIT {
            return Err(SfError::bad_request(
                "LIMIT_EXCEEDED",
                format!("Composite request size limit exceeded: at most {COMPOSITE_LIMIT} subrequests"),
            ));
        }
        let mut seen = Vec::new();
        for sub in subs {
            let r = sub.get("referenceId").and_then(Value::as_str).unwrap_or("");
            if r.is_empty() || !r.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || seen.contains(&r)
            {
                return Err(SfError::bad_request(
                    "INVALID_INPUT",
                    format!("Invalid or duplicate referenceId: '{r}'"),
                ));
            }
            seen.push(r);
        }
        let mut store = self.write();
        let sp = store.savepoint();
        let mut results: Vec<(String, Option<Value>)> = Vec::new();
        let mut out: Vec<Value> = Vec::new();
        let mut failed_at = None;
        for (i, sub) in subs.iter().enumerate() {
            let reference = sub.get("referenceId").and_then(Value::as_str).unwrap_or("").to_string();
            let resp = match self.subrequest(req, sub, &results) {
                Ok(sub_req) => self.dispatch(&sub_req, Some(&mut store)),
                Err(e) => Resp::from(e),
            };
            let ok = resp.status.is_success();
            let mut headers = Map::new();
            if resp.status == StatusCode::CREATED
                && let (Some(id), Some(Value::String(url))) =
                    (resp.body_value().get("id").and_then(Value::as_str), sub.get("url"))
            {
                headers.insert(
                    "Location".into(),
                    json!(format!("{}/{id}", url.split('?').next().unwrap_or(url).trim_end_matches('/'))),
                );
            }
            let value = resp.body_value();
            out.push(json!({"body": value, "httpHeaders": headers, "httpStatusCode": resp.status.as_u16(), "referenceId": reference}));
            results.push((reference, ok.then_some(value)));
            if !ok && all_or_none {
                failed_at = Some(i);
                break;
            }
        }
        store.release(sp, failed_at.is_some());
        drop(store);
        if let Some(at) = failed_at {
            let halted = json!([{"errorCode": "PROCESSING_HALTED", "message": "The transaction was rolled back since another operation in the same transaction failed."}]);
            for (i, sub) in subs.iter().enumerate() {
                if i == at {
                    continue;
                }
                let reference = sub.get("referenceId").cloned().unwrap_or(Value::Null);
                let entry = json!({"body": halted, "httpHeaders": {}, "httpStatusCode": 400, "referenceId": reference});
                if i < out.len() {
                    out[i] = entry;
                } else {
                    out.push(entry);
                }
            }
        }
        Ok(Resp::ok(json!({"compositeResponse": out})))
    }

    /// Builds one composite subrequest, resolving `@{ref.path}` references.
    fn subrequest(
        &self,
        outer: &Req,
        sub: &Value,
        results: &[(String, Option<Value>)],
    ) -> Result<Req, SfError> {
        let method = sub.get("method").and_then(Value::as_str).unwrap_or("");
        let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|_| SfError::bad_request("INVALID_INPUT", format!("Invalid method: {method}")))?;
        let url = sub
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| SfError::bad_request("INVALID_INPUT", "url is required"))?;
        let url = resolve_refs(url, results)?;
        let body = match sub.get("body") {
            Some(b) => resolve_value(b, results)?,
            None => Value::Null,
        };
        let (path, query) = url.split_once('?').unwrap_or((url.as_str(), ""));
        let segs: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| super::model::percent_decode(s, false))
            .collect();
        let version = match segs.as_slice() {
            [a, b, v, ..] if a == "services" && b == "data" && super::valid_version(v) => v.clone(),
            _ => {
                return Err(SfError::bad_request(
                    "INVALID_INPUT",
                    format!("The URL must start with /services/data/vXX.X: {path}"),
                ));
            }
        };
        let mut headers: HeaderMap = outer.headers.clone();
        if let Some(Value::Object(h)) = sub.get("httpHeaders") {
            for (k, v) in h {
                if let (Ok(name), Some(Ok(value))) =
                    (HeaderName::from_bytes(k.as_bytes()), v.as_str().map(HeaderValue::from_str))
                {
                    headers.insert(name, value);
                }
            }
        }
        Ok(Req {
            method,
            version,
            segs: segs[3..].to_vec(),
            query: super::model::parse_form(query),
            headers,
            body: if body.is_null() {
                Bytes::new()
            } else {
                Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
            },
        })
    }
}

/// The value at `ref.path` (e.g. `NewAccount.id`, `q.records[0].Id`).
fn lookup_ref(expr: &str, results: &[(String, Option<Value>)]) -> Result<Value, SfError> {
    let halted = || {
        let reference = expr.split(['.', '[']).next().unwrap_or(expr);
        SfError::bad_request(
            "PROCESSING_HALTED",
            format!(
                "Invalid reference specified. No value for {expr} found in {reference}. Provided referenceId ('{reference}') must exist and be successful."
            ),
        )
    };
    let mut parts = expr.split('.');
    let head = parts.next().unwrap_or("");
    let (name, first_index) = split_index(head);
    let mut cur = results.iter().find(|(r, _)| r == name).and_then(|(_, v)| v.clone()).ok_or_else(halted)?;
    if let Some(i) = first_index {
        cur = cur.get(i).cloned().ok_or_else(halted)?;
    }
    for part in parts {
        let (key, index) = split_index(part);
        cur = cur.get(key).cloned().ok_or_else(halted)?;
        if let Some(i) = index {
            cur = cur.get(i).cloned().ok_or_else(halted)?;
        }
    }
    Ok(cur)
}

fn split_index(part: &str) -> (&str, Option<usize>) {
    match part.split_once('[') {
        Some((k, rest)) => (k, rest.trim_end_matches(']').parse().ok()),
        None => (part, None),
    }
}

fn resolve_refs(text: &str, results: &[(String, Option<Value>)]) -> Result<String, SfError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("@{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end =
            after.find('}').ok_or_else(|| SfError::bad_request("INVALID_INPUT", "unterminated reference"))?;
        match lookup_ref(&after[..end], results)? {
            Value::String(s) => out.push_str(&s),
            other => out.push_str(&other.to_string()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn resolve_value(v: &Value, results: &[(String, Option<Value>)]) -> Result<Value, SfError> {
    Ok(match v {
        Value::String(s) if s.contains("@{") => Value::String(resolve_refs(s, results)?),
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| resolve_value(i, results)).collect::<Result<_, _>>()?)
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), resolve_value(v, results)?)))
                .collect::<Result<_, SfError>>()?,
        ),
        other => other.clone(),
    })
}

fn describe_global(store: &Store, version: &str) -> Value {
    json!({
        "encoding": "UTF-8",
        "maxBatchSize": COLLECTION_LIMIT,
        "sobjects": store.schema.iter().map(|o| o.basic(version)).collect::<Vec<_>>(),
    })
}

/// A query page being rendered (kept lazy so `query_more` can change the batch).
pub(crate) struct PageOut<'a> {
    sf: &'a Salesforce,
    store: &'a Store,
    cursor: Arc<Cursor>,
    locator: Option<String>,
    offset: usize,
    version: String,
    endpoint: String,
    batch: Option<usize>,
}

impl PageOut<'_> {
    fn with_batch(mut self, batch: Option<usize>) -> Self {
        self.batch = batch;
        self
    }
}

impl From<PageOut<'_>> for J {
    fn from(p: PageOut<'_>) -> J {
        let batch = p.batch.unwrap_or(p.cursor.batch);
        let total = p.cursor.ids.len();
        let end = (p.offset + batch).min(total);
        let table = &p.store.tables[p.cursor.query.obj];
        let records: Vec<J> = p.cursor.ids[p.offset..end]
            .iter()
            .filter_map(|id| table.records.get(id))
            .map(|r| p.cursor.query.render(p.store, r, &p.version))
            .collect();
        let mut out = J::obj().put("totalSize", Value::from(total)).put("done", Value::from(end >= total));
        if end < total {
            let locator = p.locator.clone().unwrap_or_else(|| {
                let mut cursors = lock(&p.sf.cursors);
                cursors.seq += 1;
                let id = SfId::mint("01g", cursors.seq).to_string();
                cursors.map.insert(id.clone(), p.cursor.clone());
                cursors.order.push_back(id.clone());
                while cursors.order.len() > MAX_CURSORS {
                    if let Some(old) = cursors.order.pop_front() {
                        cursors.map.remove(&old);
                    }
                }
                id
            });
            out.push(
                "nextRecordsUrl",
                Value::from(format!("/services/data/{}/{}/{locator}-{end}", p.version, p.endpoint)),
            );
        }
        out.push("records", J::A(records));
        out.done()
    }
}
