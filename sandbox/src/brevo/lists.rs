//! Lists and folders: `/v3/contacts/lists*` and `/v3/contacts/folders*`,
//! including list membership (add/remove by emails, ids or ext ids).
//!
//! A list's `totalSubscribers` counts members not email-blacklisted,
//! `totalBlacklisted` the blacklisted ones, `uniqueSubscribers` both (as in
//! Brevo's examples, where unique = total + blacklisted).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Brevo;
use super::contacts::{contacts_page, parse_since};
use super::error::{ApiError, JsonBody, Params};
use super::store::{ContactChange, ContactQuery, IdKind, Identifier, List, Store, fmt_ts};

/// Most contacts one add/remove call may name.
pub const MEMBERSHIP_MAX: usize = 150;

pub fn parse_id(raw: &str, name: &str) -> Result<u64, ApiError> {
    raw.parse().map_err(|_| ApiError::invalid(format!("{name} should be an integer")))
}

fn list_json(store: &Store, list: &List, extended: bool) -> Value {
    let (subscribers, blacklisted) = store.list_counts(list);
    let mut v = json!({
        "id": list.id,
        "name": list.name,
        "totalBlacklisted": blacklisted,
        "totalSubscribers": subscribers,
        "uniqueSubscribers": subscribers + blacklisted,
        "folderId": list.folder_id,
    });
    if extended {
        v["createdAt"] = json!(fmt_ts(list.created_at));
        v["campaignStats"] = json!([]);
        v["dynamicList"] = json!(false);
    }
    v
}

fn folder_json(store: &Store, id: u64, name: &str) -> Value {
    let (mut subscribers, mut blacklisted) = (0, 0);
    for list in store.lists.values().filter(|l| l.folder_id == id) {
        let (s, b) = store.list_counts(list);
        subscribers += s;
        blacklisted += b;
    }
    json!({
        "id": id,
        "name": name,
        "totalBlacklisted": blacklisted,
        "totalSubscribers": subscribers,
        "uniqueSubscribers": subscribers + blacklisted,
    })
}

/// Pages `items` (ids ascending) with Brevo's `limit` (≤ 50, default 10), `offset`, `sort`.
fn page<T>(items: Vec<T>, params: &Params) -> Result<(Vec<T>, usize), ApiError> {
    let limit = params.int("limit", 10, Some(50))? as usize;
    let offset = params.int("offset", 0, None)? as usize;
    let count = items.len();
    let mut items = items;
    if params.descending()? {
        items.reverse();
    }
    Ok((items.into_iter().skip(offset).take(limit).collect(), count))
}

/// `GET /v3/contacts/lists`
pub async fn lists(State(api): State<Arc<Brevo>>, params: Params) -> Result<Response, ApiError> {
    let store = api.read();
    let (items, count) = page(store.lists.values().collect(), &params)?;
    let lists: Vec<Value> = items.into_iter().map(|l| list_json(&store, l, false)).collect();
    Ok(Json(json!({ "lists": lists, "count": count })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListBody {
    name: Option<String>,
    folder_id: Option<u64>,
}

/// `POST /v3/contacts/lists`: 201 `{"id"}`.
pub async fn create_list(
    State(api): State<Arc<Brevo>>,
    JsonBody(body): JsonBody<ListBody>,
) -> Result<Response, ApiError> {
    let name =
        body.name.filter(|n| !n.trim().is_empty()).ok_or_else(|| ApiError::missing("name is required"))?;
    let folder = body.folder_id.ok_or_else(|| ApiError::missing("folderId is required"))?;
    let now = api.now();
    let mut store = api.write();
    if !store.folders.contains_key(&folder) {
        return Err(ApiError::invalid(format!("Folder ID {folder} does not exist")));
    }
    let id = store.add_list(None, name, folder, now);
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))).into_response())
}

fn find_list<'a>(store: &'a Store, raw: &str) -> Result<&'a List, ApiError> {
    store.lists.get(&parse_id(raw, "listId")?).ok_or_else(|| ApiError::not_found("List ID does not exist"))
}

/// `GET /v3/contacts/lists/{listId}`
pub async fn get_list(State(api): State<Arc<Brevo>>, Path(raw): Path<String>) -> Result<Response, ApiError> {
    let store = api.read();
    let list = find_list(&store, &raw)?;
    Ok(Json(list_json(&store, list, true)).into_response())
}

/// `PUT /v3/contacts/lists/{listId}`: 204.
pub async fn update_list(
    State(api): State<Arc<Brevo>>,
    Path(raw): Path<String>,
    JsonBody(body): JsonBody<ListBody>,
) -> Result<Response, ApiError> {
    let id = parse_id(&raw, "listId")?;
    let mut store = api.write();
    if let Some(folder) = body.folder_id.filter(|f| !store.folders.contains_key(f)) {
        return Err(ApiError::invalid(format!("Folder ID {folder} does not exist")));
    }
    let list = store.lists.get_mut(&id).ok_or_else(|| ApiError::not_found("List ID does not exist"))?;
    if let Some(name) = body.name.filter(|n| !n.trim().is_empty()) {
        list.name = name;
    }
    if let Some(folder) = body.folder_id {
        list.folder_id = folder;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /v3/contacts/lists/{listId}`: 204.
pub async fn delete_list(
    State(api): State<Arc<Brevo>>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&raw, "listId")?;
    if api.write().remove_list(id) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found("List ID does not exist"))
    }
}

/// `GET /v3/contacts/lists/{listId}/contacts` (`limit` ≤ 500, default 50).
pub async fn list_contacts(
    State(api): State<Arc<Brevo>>,
    Path(raw): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let id = find_list(&api.read(), &raw)?.id;
    let limit = params.int("limit", 50, Some(500))?;
    let offset = params.int("offset", 0, None)?;
    let query = ContactQuery {
        ids: Vec::new(),
        lists: vec![id],
        modified_since: parse_since("modifiedSince", params.get("modifiedSince"))?,
        created_since: None,
        equals: None,
        descending: params.descending()?,
    };
    Ok(contacts_page(&api, query, limit, offset))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MembershipBody {
    emails: Option<Vec<String>>,
    ids: Option<Vec<u64>>,
    ext_ids: Option<Vec<String>>,
    #[serde(default)]
    all: bool,
}

impl MembershipBody {
    /// Each named contact as `(what to echo back, how to find it)`.
    fn targets(self) -> Result<Vec<(Value, Identifier)>, ApiError> {
        let targets: Vec<(Value, Identifier)> = match (self.emails, self.ids, self.ext_ids) {
            (Some(emails), None, None) => emails
                .into_iter()
                .map(|e| (json!(e), Identifier::Key(IdKind::Email, e.trim().to_ascii_lowercase())))
                .collect(),
            (None, Some(ids), None) => ids.into_iter().map(|id| (json!(id), Identifier::Id(id))).collect(),
            (None, None, Some(ext)) => {
                ext.into_iter().map(|x| (json!(x), Identifier::Key(IdKind::ExtId, x))).collect()
            }
            (None, None, None) => return Err(ApiError::missing("One of emails, ids or extIds is required")),
            _ => return Err(ApiError::invalid("Pass only one of emails, ids or extIds")),
        };
        if targets.is_empty() {
            return Err(ApiError::missing("At least one contact is required"));
        }
        if targets.len() > MEMBERSHIP_MAX {
            return Err(ApiError::out_of_range(format!("At most {MEMBERSHIP_MAX} contacts per request")));
        }
        Ok(targets)
    }
}

/// Adds (`add = true`) or removes each target; returns `(success, failure)`.
fn change_membership(
    store: &mut Store,
    list: u64,
    targets: Vec<(Value, Identifier)>,
    add: bool,
    now: chrono::DateTime<chrono::Utc>,
) -> (Vec<Value>, Vec<Value>) {
    let (mut success, mut failure) = (Vec::new(), Vec::new());
    for (echo, ident) in targets {
        let member = store
            .lookup(&ident)
            .filter(|id| store.contacts.get(id).is_some_and(|c| c.list_ids.contains(&list) != add));
        let Some(id) = member else {
            failure.push(echo);
            continue;
        };
        let change = if add {
            ContactChange { link: vec![list], ..ContactChange::default() }
        } else {
            ContactChange { unlink: vec![list], ..ContactChange::default() }
        };
        match store.update(id, change, now) {
            Ok(()) => success.push(echo),
            Err(_) => failure.push(echo),
        }
    }
    (success, failure)
}

/// `{"contacts": {"success": [...], "failure": [...]}}`; an empty `failure` is left
/// out (the spec's `oneOf` of email and id arrays cannot match an empty array).
fn membership_body(success: Vec<Value>, failure: Vec<Value>) -> Value {
    let mut contacts = json!({ "success": success });
    if !failure.is_empty() {
        contacts["failure"] = json!(failure);
    }
    json!({ "contacts": contacts })
}

/// `POST /v3/contacts/lists/{listId}/contacts/add`: 201
/// `{"contacts": {"success": [...], "failure": [...]}}`; 400 when none was added.
pub async fn add_contacts(
    State(api): State<Arc<Brevo>>,
    Path(raw): Path<String>,
    JsonBody(body): JsonBody<MembershipBody>,
) -> Result<Response, ApiError> {
    let targets = body.targets()?;
    let now = api.now();
    let mut store = api.write();
    let list = find_list(&store, &raw)?.id;
    let (success, failure) = change_membership(&mut store, list, targets, true, now);
    if success.is_empty() {
        return Err(ApiError::invalid("Contact already in list and/or does not exist"));
    }
    Ok((StatusCode::CREATED, Json(membership_body(success, failure))).into_response())
}

/// `POST /v3/contacts/lists/{listId}/contacts/remove`: like add; `{"all": true}`
/// empties the list and answers `{"contacts": {"total": n, "processId": id}}`.
pub async fn remove_contacts(
    State(api): State<Arc<Brevo>>,
    Path(raw): Path<String>,
    JsonBody(body): JsonBody<MembershipBody>,
) -> Result<Response, ApiError> {
    let now = api.now();
    if body.all {
        let mut store = api.write();
        let list = find_list(&store, &raw)?;
        let (id, members): (u64, Vec<u64>) = (list.id, list.members.iter().copied().collect());
        for member in &members {
            let change = ContactChange { unlink: vec![id], ..ContactChange::default() };
            store.update(*member, change, now)?;
        }
        let pid = store.add_process("remove_contacts_from_list", now, None);
        let body = json!({ "contacts": { "total": members.len(), "processId": pid } });
        return Ok((StatusCode::CREATED, Json(body)).into_response());
    }
    let targets = body.targets()?;
    let mut store = api.write();
    let list = find_list(&store, &raw)?.id;
    let (success, failure) = change_membership(&mut store, list, targets, false, now);
    if success.is_empty() {
        return Err(ApiError::invalid("Contact does not exist and/or is not in the list"));
    }
    Ok((StatusCode::CREATED, Json(membership_body(success, failure))).into_response())
}

/// `GET /v3/contacts/folders`
pub async fn folders(State(api): State<Arc<Brevo>>, params: Params) -> Result<Response, ApiError> {
    let store = api.read();
    let (items, count) = page(store.folders.values().collect(), &params)?;
    let folders: Vec<Value> = items.into_iter().map(|f| folder_json(&store, f.id, &f.name)).collect();
    Ok(Json(json!({ "folders": folders, "count": count })).into_response())
}

#[derive(Debug, Deserialize)]
pub struct FolderBody {
    name: Option<String>,
}

/// `POST /v3/contacts/folders`: 201 `{"id"}`.
pub async fn create_folder(
    State(api): State<Arc<Brevo>>,
    JsonBody(body): JsonBody<FolderBody>,
) -> Result<Response, ApiError> {
    let name =
        body.name.filter(|n| !n.trim().is_empty()).ok_or_else(|| ApiError::missing("name is required"))?;
    let id = api.write().add_folder(None, name);
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))).into_response())
}

fn folder_not_found() -> ApiError {
    ApiError::not_found("Folder ID does not exist")
}

/// `GET /v3/contacts/folders/{folderId}`
pub async fn get_folder(
    State(api): State<Arc<Brevo>>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&raw, "folderId")?;
    let store = api.read();
    let folder = store.folders.get(&id).ok_or_else(folder_not_found)?;
    Ok(Json(folder_json(&store, id, &folder.name)).into_response())
}

/// `PUT /v3/contacts/folders/{folderId}`: 204.
pub async fn update_folder(
    State(api): State<Arc<Brevo>>,
    Path(raw): Path<String>,
    JsonBody(body): JsonBody<FolderBody>,
) -> Result<Response, ApiError> {
    let id = parse_id(&raw, "folderId")?;
    let name =
        body.name.filter(|n| !n.trim().is_empty()).ok_or_else(|| ApiError::missing("name is required"))?;
    let mut store = api.write();
    store.folders.get_mut(&id).ok_or_else(folder_not_found)?.name = name;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /v3/contacts/folders/{folderId}`: deletes the folder and its lists; 204.
pub async fn delete_folder(
    State(api): State<Arc<Brevo>>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&raw, "folderId")?;
    let mut store = api.write();
    store.folders.remove(&id).ok_or_else(folder_not_found)?;
    let lists: Vec<u64> = store.lists.values().filter(|l| l.folder_id == id).map(|l| l.id).collect();
    for list in lists {
        store.remove_list(list);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /v3/contacts/folders/{folderId}/lists`
pub async fn folder_lists(
    State(api): State<Arc<Brevo>>,
    Path(raw): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let id = parse_id(&raw, "folderId")?;
    let store = api.read();
    store.folders.get(&id).ok_or_else(folder_not_found)?;
    let (items, count) = page(store.lists.values().filter(|l| l.folder_id == id).collect(), &params)?;
    let lists: Vec<Value> = items.into_iter().map(|l| list_json(&store, l, false)).collect();
    Ok(Json(json!({ "lists": lists, "count": count })).into_response())
}
