//! The contact endpoints: create/upsert, read, update, delete, list with
//! `modifiedSince`, batch update, asynchronous import, and the processes that
//! report on imports.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::Brevo;
use super::attributes::{AttrOp, Source, coerce_attributes, normalize_email, normalize_phone};
use super::error::{ApiError, JsonBody, Params, parse_json};
use super::store::{
    ContactChange, ContactQuery, ContactView, IdKind, Identifier, ImportJob, ImportRow, ProcessStatus, Store,
};
use crate::common::Origin;

/// Most contacts one `POST /contacts/batch` may update.
pub const BATCH_MAX: usize = 100;
/// Largest import body Brevo accepts (`fileBody` / `jsonBody`): 10 MB.
pub const IMPORT_MAX_BYTES: usize = 10 * 1024 * 1024;

/// Reads `identifier` as Brevo does: with `identifierType` when given, else an
/// email (contains `@`), a phone number (`+` prefix) or a contact id (digits).
pub fn parse_identifier(identifier: &str, kind: Option<&str>) -> Result<Option<Identifier>, ApiError> {
    let key = |k: IdKind, v: &str| Some(Identifier::Key(k, v.to_string()));
    let phone = |k: IdKind| Ok(normalize_phone(identifier).map(|p| Identifier::Key(k, p)));
    match kind {
        None if identifier.contains('@') => Ok(key(IdKind::Email, &identifier.trim().to_ascii_lowercase())),
        None if identifier.starts_with('+') => phone(IdKind::Sms),
        None => Ok(identifier.parse().ok().map(Identifier::Id)),
        Some("email_id") => Ok(key(IdKind::Email, &identifier.trim().to_ascii_lowercase())),
        Some("contact_id") => Ok(identifier.parse().ok().map(Identifier::Id)),
        Some("ext_id") => Ok(key(IdKind::ExtId, identifier)),
        Some("phone_id") => phone(IdKind::Sms),
        Some("whatsapp_id") => phone(IdKind::Whatsapp),
        Some("landline_number_id") => phone(IdKind::Landline),
        Some(_) => Err(ApiError::invalid("identifierType is not valid")),
    }
}

fn resolve(store: &Store, identifier: &str, params: &Params) -> Result<u64, ApiError> {
    parse_identifier(identifier, params.get("identifierType"))?
        .and_then(|ident| store.lookup(&ident))
        .ok_or_else(|| ApiError::not_found("Contact does not exist"))
}

/// Parses Brevo's date-time query values (RFC 3339; a `+` left unencoded arrives as a space).
pub fn parse_since(name: &str, raw: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else { return Ok(None) };
    let fixed = match raw.rfind(' ') {
        Some(i) if i > 10 => format!("{}+{}", &raw[..i], &raw[i + 1..]),
        _ => raw.to_string(),
    };
    DateTime::parse_from_rfc3339(&fixed)
        .map(|t| Some(t.to_utc()))
        .map_err(|_| ApiError::invalid(format!("{name} is not in the valid format YYYY-MM-DDTHH:mm:ss.SSSZ")))
}

/// `filter=equals(NAME,"value")` (Brevo's only filter operator).
fn parse_filter(raw: Option<&str>) -> Result<Option<(String, Value)>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    let bad = || ApiError::invalid("filter is not valid: use equals(ATTRIBUTE,value)");
    let inner = raw.trim().strip_prefix("equals(").and_then(|s| s.strip_suffix(')')).ok_or_else(bad)?;
    let (name, value) = inner.split_once(',').ok_or_else(bad)?;
    let value = value.trim();
    let value = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(text) => Value::String(text.to_string()),
        None => serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string())),
    };
    Ok(Some((name.trim().to_ascii_uppercase(), value)))
}

/// One page of contacts for a query, serialised under the read lock.
pub fn contacts_page(api: &Brevo, query: ContactQuery, limit: u64, offset: u64) -> Response {
    let store = api.read();
    let ids = api.query_ids(&store, query);
    let start = (offset as usize).min(ids.len());
    let end = start.saturating_add(limit as usize).min(ids.len());
    let contacts: Vec<_> =
        ids[start..end].iter().filter_map(|id| store.contacts.get(id)).map(|c| c.view(false)).collect();
    Json(ContactsPage { contacts, count: ids.len() }).into_response()
}

/// `getContacts`, serialised straight from the store (no intermediate `Value`).
#[derive(Serialize)]
struct ContactsPage<'a> {
    contacts: Vec<ContactView<'a>>,
    count: usize,
}

/// `GET /v3/contacts`
pub async fn list(State(api): State<Arc<Brevo>>, params: Params) -> Result<Response, ApiError> {
    let limit = params.int("limit", 50, Some(1000))?;
    let offset = params.int("offset", 0, None)?;
    if params.get("segmentId").is_some() {
        return Err(ApiError::invalid("segmentId: the sandbox has no segments"));
    }
    let mut lists = Vec::new();
    for raw in params.all("listIds").flat_map(|v| v.split(',')) {
        lists.push(raw.trim().parse::<u64>().map_err(|_| ApiError::invalid("listIds should be integers"))?);
    }
    let mut ids = Vec::new();
    for raw in params.all("ids").flat_map(|v| v.split(',')) {
        ids.push(raw.trim().parse::<u64>().map_err(|_| ApiError::invalid("ids should be integers"))?);
    }
    if ids.len() > 20 {
        return Err(ApiError::out_of_range("ids: at most 20 contact ids"));
    }
    let query = ContactQuery {
        ids,
        lists,
        modified_since: parse_since("modifiedSince", params.get("modifiedSince"))?,
        created_since: parse_since("createdSince", params.get("createdSince"))?,
        equals: parse_filter(params.get("filter"))?,
        descending: params.descending()?,
    };
    Ok(contacts_page(&api, query, limit, offset))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateContact {
    email: Option<String>,
    #[serde(rename = "ext_id")]
    ext_id: Option<String>,
    attributes: Option<Map<String, Value>>,
    email_blacklisted: Option<bool>,
    sms_blacklisted: Option<bool>,
    list_ids: Option<Vec<u64>>,
    #[serde(default)]
    update_enabled: bool,
}

/// Builds the change a create/update body asks for.
pub fn change_from(
    store: &Store,
    email: Option<&str>,
    ext_id: Option<&str>,
    attributes: Option<&Map<String, Value>>,
) -> Result<ContactChange, ApiError> {
    let coerced = match attributes {
        Some(raw) => coerce_attributes(&store.attributes, raw, Source::Api)?,
        None => Default::default(),
    };
    let mut change = ContactChange::from_coerced(coerced);
    if let Some(email) = email.filter(|e| !e.trim().is_empty()) {
        change.email = Some(normalize_email(email)?);
    }
    if let Some(ext_id) = ext_id {
        change.attrs.retain(|(name, _)| name != "EXT_ID");
        let op = if ext_id.is_empty() { AttrOp::Clear } else { AttrOp::Set(json!(ext_id)) };
        change.attrs.push(("EXT_ID".into(), op));
    }
    Ok(change)
}

/// `POST /v3/contacts`: 201 `{"id"}` when created; with `updateEnabled` an
/// existing contact (same email, `ext_id` or SMS) is updated instead: 204.
pub async fn create(
    State(api): State<Arc<Brevo>>,
    JsonBody(body): JsonBody<CreateContact>,
) -> Result<Response, ApiError> {
    let now = api.now();
    let mut store = api.write();
    let mut change =
        change_from(&store, body.email.as_deref(), body.ext_id.as_deref(), body.attributes.as_ref())?;
    change.email_blacklisted = body.email_blacklisted;
    change.sms_blacklisted = body.sms_blacklisted;
    change.link = body.list_ids.unwrap_or_default();
    let existing = store.matching(&change);
    match existing.as_slice() {
        [] => {
            let id = store.create(change, now)?;
            Ok((StatusCode::CREATED, Json(json!({ "id": id }))).into_response())
        }
        [id] if body.update_enabled => {
            store.update(*id, change, now)?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(Store::duplicate_error("create", &store.taken_identifiers(None, &change))),
    }
}

/// `GET /v3/contacts/{identifier}`
pub async fn get(
    State(api): State<Arc<Brevo>>,
    Path(identifier): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let store = api.read();
    let id = resolve(&store, &identifier, &params)?;
    let contact = store.contacts.get(&id).ok_or_else(|| ApiError::not_found("Contact does not exist"))?;
    Ok(Json(contact.view(true)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateContact {
    attributes: Option<Map<String, Value>>,
    #[serde(rename = "ext_id")]
    ext_id: Option<String>,
    email_blacklisted: Option<bool>,
    sms_blacklisted: Option<bool>,
    list_ids: Option<Vec<u64>>,
    unlink_list_ids: Option<Vec<u64>>,
}

impl UpdateContact {
    fn into_change(self, store: &Store) -> Result<ContactChange, ApiError> {
        let mut change = change_from(store, None, self.ext_id.as_deref(), self.attributes.as_ref())?;
        change.email_blacklisted = self.email_blacklisted;
        change.sms_blacklisted = self.sms_blacklisted;
        change.link = self.list_ids.unwrap_or_default();
        change.unlink = self.unlink_list_ids.unwrap_or_default();
        Ok(change)
    }
}

/// `PUT /v3/contacts/{identifier}`: 204.
pub async fn update(
    State(api): State<Arc<Brevo>>,
    Path(identifier): Path<String>,
    params: Params,
    JsonBody(body): JsonBody<UpdateContact>,
) -> Result<Response, ApiError> {
    let now = api.now();
    let mut store = api.write();
    let id = resolve(&store, &identifier, &params)?;
    let mut change = body.into_change(&store)?;
    // Brevo: changing a blocklisted contact's email resubscribes it.
    let current = store.contacts.get(&id).and_then(|c| c.email.clone());
    if change.email.is_some() && change.email != current && change.email_blacklisted.is_none() {
        change.email_blacklisted = Some(false);
    }
    store.update(id, change, now)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /v3/contacts/{identifier}`: 204.
pub async fn delete(
    State(api): State<Arc<Brevo>>,
    Path(identifier): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let mut store = api.write();
    let id = resolve(&store, &identifier, &params)?;
    store.delete(id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
pub struct BatchBody {
    contacts: Option<Vec<BatchItem>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchItem {
    email: Option<String>,
    id: Option<u64>,
    sms: Option<String>,
    #[serde(flatten)]
    update: UpdateContact,
}

/// `POST /v3/contacts/batch`: updates up to [`BATCH_MAX`] existing contacts, all
/// or none. Unknown contacts fail the whole call with Brevo's
/// 404 `{"code":"document_not_found","message":"No contact found for indexes 3,4"}`
/// (0-based positions); success is 204.
pub async fn batch(
    State(api): State<Arc<Brevo>>,
    JsonBody(body): JsonBody<BatchBody>,
) -> Result<Response, ApiError> {
    let items =
        body.contacts.filter(|c| !c.is_empty()).ok_or_else(|| ApiError::missing("contacts is required"))?;
    if items.len() > BATCH_MAX {
        return Err(ApiError::out_of_range(format!("contacts: at most {BATCH_MAX} contacts per request")));
    }
    let now = api.now();
    let mut store = api.write();
    let mut planned = Vec::with_capacity(items.len());
    let mut missing = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let ident = match (item.id, item.email.as_deref(), item.sms.as_deref()) {
            (Some(id), None, None) => Some(Identifier::Id(id)),
            (None, Some(email), None) => {
                Some(Identifier::Key(IdKind::Email, email.trim().to_ascii_lowercase()))
            }
            (None, None, Some(sms)) => normalize_phone(sms).map(|p| Identifier::Key(IdKind::Sms, p)),
            (None, None, None) => {
                return Err(ApiError::missing(format!(
                    "contacts[{index}]: one of email, id or sms is required"
                )));
            }
            _ => {
                return Err(ApiError::invalid(format!(
                    "contacts[{index}]: pass only one of email, id or sms"
                )));
            }
        };
        let change = item
            .update
            .into_change(&store)
            .map_err(|e| ApiError { message: format!("contacts[{index}]: {}", e.message), ..e })?;
        match ident.and_then(|i| store.lookup(&i)) {
            Some(id) => planned.push((id, change)),
            None => missing.push(index.to_string()),
        }
    }
    if !missing.is_empty() {
        return Err(ApiError::not_found(format!("No contact found for indexes {}", missing.join(","))));
    }
    for (id, change) in &planned {
        let taken = store.taken_identifiers(Some(*id), change);
        if !taken.is_empty() {
            return Err(Store::duplicate_error("update", &taken));
        }
        store.check_lists(&change.link)?;
        store.check_lists(&change.unlink)?;
    }
    for (id, change) in planned {
        store.update(id, change, now)?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportBody {
    file_url: Option<String>,
    file_body: Option<String>,
    json_body: Option<Vec<Value>>,
    list_ids: Option<Vec<u64>>,
    new_list: Option<NewList>,
    #[serde(default)]
    email_blacklist: bool,
    #[serde(default)]
    sms_blacklist: bool,
    update_existing_contacts: Option<bool>,
    #[serde(default)]
    empty_contacts_attributes: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewList {
    list_name: Option<String>,
    folder_id: Option<u64>,
}

/// Reads a `;`-separated CSV (`,` when the header has no `;`) whose header names
/// the attributes; the `EMAIL` column is the email.
fn parse_csv(text: &str) -> Result<Vec<ImportRow>, ApiError> {
    let header = text.lines().next().unwrap_or_default();
    let delimiter = if !header.contains(';') && header.contains(',') { b',' } else { b';' };
    let mut reader =
        csv::ReaderBuilder::new().delimiter(delimiter).flexible(true).from_reader(text.as_bytes());
    let columns: Vec<String> = reader
        .headers()
        .map_err(|e| ApiError::invalid(format!("fileBody is not valid CSV: {e}")))?
        .iter()
        .map(|h| h.trim().to_ascii_uppercase())
        .collect();
    if columns.iter().all(|c| c.is_empty()) {
        return Err(ApiError::invalid("fileBody has no header row"));
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| ApiError::invalid(format!("fileBody is not valid CSV: {e}")))?;
        let mut row = ImportRow { email: None, attributes: Map::new() };
        for (name, value) in columns.iter().zip(record.iter()) {
            if name == "EMAIL" {
                row.email = Some(value.to_string()).filter(|v| !v.trim().is_empty());
            } else if !name.is_empty() {
                row.attributes.insert(name.clone(), Value::String(value.to_string()));
            }
        }
        rows.push(row);
    }
    Ok(rows)
}

fn parse_json_rows(items: Vec<Value>) -> Result<Vec<ImportRow>, ApiError> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let Value::Object(mut obj) = item else {
                return Err(ApiError::invalid(format!("jsonBody[{i}] should be an object")));
            };
            let email = match obj.remove("email") {
                Some(Value::String(e)) if !e.trim().is_empty() => Some(e),
                None | Some(Value::Null) | Some(Value::String(_)) => None,
                Some(_) => return Err(ApiError::invalid(format!("jsonBody[{i}].email should be a string"))),
            };
            let attributes = match obj.remove("attributes") {
                Some(Value::Object(a)) => a,
                None | Some(Value::Null) => Map::new(),
                Some(_) => {
                    return Err(ApiError::invalid(format!("jsonBody[{i}].attributes should be an object")));
                }
            };
            Ok(ImportRow { email, attributes })
        })
        .collect()
}

/// `POST /v3/contacts/import`: checks the request, then answers
/// 202 `{"processId"}`; the rows are applied when the process runs (see
/// [`process`]). Blacklisting is never cleared by an import.
pub async fn import(State(api): State<Arc<Brevo>>, bytes: Bytes) -> Result<Response, ApiError> {
    if bytes.len() > IMPORT_MAX_BYTES {
        return Err(ApiError::invalid(
            "The import body exceeds the maximum allowed size of 10MB: use fileUrl for bigger files",
        ));
    }
    let body: ImportBody = parse_json(&bytes)?;
    let sources = [body.file_url.is_some(), body.file_body.is_some(), body.json_body.is_some()];
    let rows = match (body.file_url, body.file_body, body.json_body) {
        _ if sources.iter().filter(|s| **s).count() > 1 => {
            return Err(ApiError::invalid("Pass only one of fileUrl, fileBody or jsonBody"));
        }
        (Some(_), None, None) => {
            return Err(ApiError::invalid(
                "fileUrl cannot be fetched: the sandbox is offline, use fileBody or jsonBody",
            ));
        }
        (None, Some(csv), None) => parse_csv(&csv)?,
        (None, None, Some(items)) => parse_json_rows(items)?,
        _ => return Err(ApiError::missing("One of fileUrl, fileBody or jsonBody is required")),
    };
    let now = api.now();
    let mut store = api.write();
    let mut list_ids = body.list_ids.unwrap_or_default();
    store.check_lists(&list_ids)?;
    if let Some(new_list) = body.new_list {
        let name = new_list
            .list_name
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| ApiError::missing("newList.listName is required"))?;
        let folder = new_list.folder_id.ok_or_else(|| ApiError::missing("newList.folderId is required"))?;
        if !store.folders.contains_key(&folder) {
            return Err(ApiError::invalid(format!("Folder ID {folder} does not exist")));
        }
        list_ids.push(store.add_list(None, name, folder, now));
    }
    if list_ids.is_empty() {
        return Err(ApiError::missing("listIds or newList is required"));
    }
    let update_existing = body.update_existing_contacts.unwrap_or(true);
    let job = ImportJob {
        rows,
        list_ids,
        update_existing,
        empty_clears: update_existing && body.empty_contacts_attributes,
        email_blacklist: body.email_blacklist,
        sms_blacklist: body.sms_blacklist,
    };
    let pid = store.add_process("IMPORTUSER", now, Some(job));
    Ok((StatusCode::ACCEPTED, Json(json!({ "processId": pid }))).into_response())
}

/// `GET /v3/processes/{processId}`: an import moves on one step per poll —
/// `queued` → `in_process` on the first, then it runs and is `completed` on the
/// second. (Imports also run by themselves once [`super::IMPORT_AUTORUN_SECS`]
/// of sandbox time have passed.)
pub async fn process(
    State(api): State<Arc<Brevo>>,
    Path(raw): Path<String>,
    origin: Origin,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "invalid_parameter", "processId is invalid");
    let pid: u64 = raw.parse().map_err(|_| not_found())?;
    let now = api.now();
    let mut store = api.write();
    let status = store.processes.get(&pid).map(|p| p.status).ok_or_else(not_found)?;
    match status {
        ProcessStatus::Queued => {
            if let Some(p) = store.processes.get_mut(&pid) {
                p.status = ProcessStatus::InProcess;
            }
        }
        ProcessStatus::InProcess => store.run_imports_through(pid, now),
        ProcessStatus::Completed => {}
    }
    let process = store.processes.get(&pid).ok_or_else(not_found)?;
    let mut body = json!({ "id": process.id, "status": process.status, "name": process.name });
    if let Some(report) = &process.report {
        // Brevo links CSV reports of the problem rows (pre-signed, no api-key needed).
        let invalid = (!report.invalid_emails.is_empty())
            .then(|| format!("{}/reports/{pid}/invalid_emails.csv", origin.0));
        body["info"] = json!({ "import": {
            "invalid_emails": invalid, "duplicate_contact_id": null, "duplicate_ext_id": null,
            "duplicate_email_id": null, "duplicate_phone_id": null, "duplicate_whatsapp_id": null,
            "duplicate_landline_number_id": null,
        } });
    }
    Ok(Json(body).into_response())
}

/// `GET /reports/{processId}/invalid_emails.csv`: the `info.import.invalid_emails`
/// report of a completed import (outside `/v3`, no api-key, like a pre-signed URL).
pub async fn invalid_emails_report(
    State(api): State<Arc<Brevo>>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let store = api.read();
    let report = raw
        .parse::<u64>()
        .ok()
        .and_then(|pid| store.processes.get(&pid))
        .and_then(|p| p.report.as_ref())
        .ok_or_else(|| ApiError::not_found("Report not found"))?;
    let mut csv = String::from("EMAIL\n");
    for email in &report.invalid_emails {
        csv.push_str(email);
        csv.push('\n');
    }
    Ok(([(axum::http::header::CONTENT_TYPE, "text/csv")], csv).into_response())
}

/// `GET /v3/processes`
pub async fn processes(State(api): State<Arc<Brevo>>, params: Params) -> Result<Response, ApiError> {
    let limit = params.int("limit", 10, Some(50))? as usize;
    let offset = params.int("offset", 0, None)? as usize;
    let descending = params.descending()?;
    let store = api.read();
    let page: Vec<Value> = {
        let all = store.processes.values();
        let items: Box<dyn Iterator<Item = _>> = if descending { Box::new(all.rev()) } else { Box::new(all) };
        items
            .skip(offset)
            .take(limit)
            .map(|p| json!({ "id": p.id, "status": p.status, "name": p.name }))
            .collect()
    };
    Ok(Json(json!({ "processes": page, "count": store.processes.len() })).into_response())
}
