//! Contacts (`/contacts`, `/contact/sync`, sub-resources, `/contactLists`),
//! custom fields (`/fields`, `/fieldValues`), tags (`/tags`, `/contactTags`)
//! and bulk import (`/import/bulk_import`, `/import/info`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::ActiveCampaign;
use super::api::{
    AcError, AcResult, Base, Params, created, id_attr, ok, parse_body, parse_filter_date, str_attr, wrapped,
};
use super::render::{View, value_string};
use super::store::{ContactInput, ContactQuery, Field, Import, ImportContact, OrderKey, Store, valid_email};

/// Most contacts one bulk import may carry.
pub const MAX_IMPORT: usize = 250;

type Ac = State<Arc<ActiveCampaign>>;

/// A path id; anything but a number finds nothing, as in AC.
pub fn path_id(raw: &str, kind: &str) -> Result<u64, AcError> {
    raw.trim().parse().map_err(|_| AcError::not_found(kind, raw))
}

/// `{"contact": {"email", "firstName", "lastName", "phone", "fieldValues": [{"field", "value"}]}}`.
fn contact_input(body: &Value) -> ContactInput {
    let c = wrapped(body, "contact");
    let field_values = c
        .get("fieldValues")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|fv| {
                    Some((id_attr(fv, "field")?, value_string(fv.get("value").unwrap_or(&Value::Null))))
                })
                .collect()
        })
        .unwrap_or_default();
    ContactInput {
        email: str_attr(c, "email"),
        first_name: str_attr(c, "firstName"),
        last_name: str_attr(c, "lastName"),
        phone: str_attr(c, "phone"),
        field_values,
    }
}

/// `{"fieldValues": [...], "contact": {...}}`: the answer to contact writes.
fn written(s: &Store, base: &Base, id: u64, touched: &[u64]) -> Result<Value, AcError> {
    let view = View { s, base };
    let c = s.contact(id)?;
    let field_values: Vec<Value> = c
        .field_values
        .iter()
        .filter_map(|fv| s.field_values.get(fv))
        .filter(|fv| touched.contains(&fv.field))
        .map(|fv| view.field_value(fv))
        .collect();
    let mut contact = view.contact(c);
    contact["organization"] = json!("");
    contact["fieldValues"] = json!(c.field_values.iter().map(u64::to_string).collect::<Vec<_>>());
    Ok(json!({ "fieldValues": field_values, "contact": contact }))
}

pub async fn create(State(ac): Ac, base: Base, body: Bytes) -> AcResult {
    let input = contact_input(&parse_body(&body)?);
    let touched: Vec<u64> = input.field_values.iter().map(|(f, _)| *f).collect();
    let now = ac.now();
    let mut s = ac.write();
    let id = s.create_contact(input, now)?;
    created(written(&s, &base, id, &touched)?)
}

pub async fn sync(State(ac): Ac, base: Base, body: Bytes) -> AcResult {
    let input = contact_input(&parse_body(&body)?);
    let touched: Vec<u64> = input.field_values.iter().map(|(f, _)| *f).collect();
    let now = ac.now();
    let mut s = ac.write();
    let (id, was_created) = s.sync_contact(input, now)?;
    let body = written(&s, &base, id, &touched)?;
    if was_created { created(body) } else { ok(body) }
}

pub async fn update(State(ac): Ac, base: Base, Path(raw): Path<String>, body: Bytes) -> AcResult {
    let id = path_id(&raw, "Subscriber")?;
    let input = contact_input(&parse_body(&body)?);
    let touched: Vec<u64> = input.field_values.iter().map(|(f, _)| *f).collect();
    let now = ac.now();
    let mut s = ac.write();
    s.update_contact(id, input, now)?;
    let mut body = written(&s, &base, id, &touched)?;
    body["contact"]["organization"] = Value::Null;
    ok(body)
}

pub async fn delete(State(ac): Ac, Path(raw): Path<String>) -> AcResult {
    let id = raw
        .trim()
        .parse()
        .map_err(|_| AcError::NotFound(format!("No result found for contact with id {raw}")))?;
    ac.write()
        .delete_contact(id)
        .map_err(|_| AcError::NotFound(format!("No result found for contact with id {id}")))?;
    ok(json!({}))
}

pub async fn retrieve(State(ac): Ac, base: Base, Path(raw): Path<String>) -> AcResult {
    let id = path_id(&raw, "Subscriber")?;
    let s = ac.read();
    let view = View { s: &s, base: &base };
    let c = s.contact(id)?;
    let automations: Vec<Value> = c
        .automations
        .iter()
        .filter_map(|id| s.contact_automations.get(id))
        .map(|ca| view.contact_automation(ca))
        .collect();
    let lists: Vec<Value> = c.lists.iter().map(|m| view.contact_list(c, m)).collect();
    let account_contacts: Vec<Value> = c
        .account_contact
        .and_then(|id| s.account_contacts.get(&id))
        .map(|ac| view.account_contact(ac))
        .into_iter()
        .collect();
    let ids = |v: &[Value]| v.iter().map(|x| x["id"].clone()).collect::<Vec<_>>();
    let field_values = view.field_values_of(c);
    let mut contact = view.contact(c);
    contact["contactAutomations"] = json!(ids(&automations));
    contact["contactLists"] = json!(ids(&lists));
    contact["fieldValues"] = json!(ids(&field_values));
    contact["geoIps"] = json!([]);
    contact["deals"] = json!([]);
    contact["accountContacts"] = json!(ids(&account_contacts));
    ok(json!({
        "contactAutomations": automations,
        "contactLists": lists,
        "deals": [],
        "fieldValues": field_values,
        "geoAddresses": [],
        "geoIps": [],
        "accountContacts": account_contacts,
        "contact": contact,
    }))
}

/// Builds a [`ContactQuery`] from `GET /contacts` parameters.
fn contact_query(p: &Params, s: &Store) -> Result<ContactQuery, AcError> {
    let (limit, offset) = p.page()?;
    let date = |key: &str| -> Result<Option<i64>, AcError> {
        match p.value(key) {
            None => Ok(None),
            Some(v) => parse_filter_date(v, s.utc_offset)
                .map(Some)
                .ok_or_else(|| AcError::bad_request(&format!("{key} must be a date (YYYY-MM-DD)"))),
        }
    };
    let mut ids: Vec<u64> = Vec::new();
    for raw in p.all("ids").chain(p.all("ids[]")) {
        for part in raw.split(',').map(str::trim).filter(|x| !x.is_empty()) {
            ids.push(part.parse().map_err(|_| AcError::bad_request("ids must be numbers"))?);
        }
    }
    // The sort keys AC's reference declares (no `udate`: an undeclared key is ignored).
    let keys = ["id", "cdate", "email", "first_name", "last_name", "name", "score"];
    let (order, desc) = match p.order(&keys) {
        Some(("cdate", d)) => (OrderKey::Cdate, d),
        Some(("email", d)) => (OrderKey::Email, d),
        Some(("first_name", d)) => (OrderKey::FirstName, d),
        Some(("last_name", d)) => (OrderKey::LastName, d),
        Some(("name", d)) => (OrderKey::Name, d),
        Some((_, d)) => (OrderKey::Id, d),
        None => (OrderKey::Id, false),
    };
    let status = match p.value("status") {
        None | Some("-1") => None,
        Some(v) => Some(v.parse().map_err(|_| AcError::bad_request("status must be a number"))?),
    };
    let positive = |key: &str| -> Result<Option<u64>, AcError> { Ok(p.num(key)?.filter(|v| *v > 0)) };
    Ok(ContactQuery {
        email: p.value("email").map(str::to_string),
        email_like: p.value("email_like").map(str::to_string),
        search: p.value("search").map(str::to_string),
        ids: (!ids.is_empty()).then_some(ids),
        id_greater: p.num("id_greater")?,
        id_less: p.num("id_less")?,
        exclude: p.num("exclude")?,
        created_after: date("filters[created_after]")?,
        created_before: date("filters[created_before]")?,
        updated_after: date("filters[updated_after]")?,
        updated_before: date("filters[updated_before]")?,
        tagid: positive("tagid")?,
        listid: positive("listid")?,
        status,
        seriesid: positive("seriesid")?,
        order,
        desc,
        limit,
        offset,
    })
}

pub async fn list(State(ac): Ac, base: Base, p: Params) -> AcResult {
    let s = ac.read();
    let q = contact_query(&p, &s)?;
    let (total, page) = s.query_contacts(&q);
    let view = View { s: &s, base: &base };
    let contacts: Vec<Value> = page
        .into_iter()
        .map(|c| {
            let mut v = view.contact(c);
            v["scoreValues"] = json!([]);
            v
        })
        .collect();
    ok(json!({
        "scoreValues": [],
        "contacts": contacts,
        "meta": {
            "total": total.to_string(),
            "page_input": {
                "segmentid": 0, "formid": 0, "listid": q.listid.unwrap_or(0), "tagid": q.tagid.unwrap_or(0),
                "limit": q.limit, "offset": q.offset, "search": q.search, "sort": Value::Null,
                "seriesid": q.seriesid.unwrap_or(0), "waitid": 0, "status": q.status.map_or(-1, i64::from),
                "forceQuery": 0, "cacheid": "",
            },
        },
    }))
}

pub async fn contact_field_values(State(ac): Ac, base: Base, Path(raw): Path<String>) -> AcResult {
    let id = path_id(&raw, "Subscriber")?;
    let s = ac.read();
    let view = View { s: &s, base: &base };
    ok(json!({ "fieldValues": view.field_values_of(s.contact(id)?) }))
}

pub async fn contact_tags_of(State(ac): Ac, base: Base, Path(raw): Path<String>) -> AcResult {
    let id = path_id(&raw, "Subscriber")?;
    let s = ac.read();
    let view = View { s: &s, base: &base };
    let tags: Vec<Value> = s
        .contact(id)?
        .contact_tags
        .iter()
        .filter_map(|ct| s.contact_tags.get(ct))
        .map(|ct| view.contact_tag(ct))
        .collect();
    ok(json!({ "contactTags": tags }))
}

pub async fn contact_lists_of(State(ac): Ac, base: Base, Path(raw): Path<String>) -> AcResult {
    let id = path_id(&raw, "Subscriber")?;
    let s = ac.read();
    let view = View { s: &s, base: &base };
    let c = s.contact(id)?;
    ok(json!({ "contactLists": c.lists.iter().map(|m| view.contact_list(c, m)).collect::<Vec<_>>() }))
}

/// `POST /contactLists` `{"contactList": {"list", "contact", "status"}}`.
pub async fn update_list_status(State(ac): Ac, base: Base, body: Bytes) -> AcResult {
    let body = parse_body(&body)?;
    let cl = wrapped(&body, "contactList");
    let list =
        id_attr(cl, "list").ok_or_else(|| AcError::missing("The list attribute was not provided", "list"))?;
    let contact = id_attr(cl, "contact")
        .ok_or_else(|| AcError::missing("The contact attribute was not provided", "contact"))?;
    let status = match id_attr(cl, "status") {
        Some(s @ (1 | 2)) => s as u8,
        _ => {
            return Err(AcError::unprocessable(
                "Status must be 1 (subscribed) or 2 (unsubscribed)",
                "invalid",
                "status",
            ));
        }
    };
    let now = ac.now();
    let mut s = ac.write();
    s.contact(contact)?;
    s.set_list_status(contact, list, status, now);
    s.touch(contact, now);
    let view = View { s: &s, base: &base };
    let c = s.contact(contact)?;
    let membership =
        c.lists.iter().find(|m| m.list == list).ok_or_else(|| AcError::not_found("ContactList", list))?;
    let mut rendered = view.contact_list(c, membership);
    // The write answer echoes the status as a number and an empty reason, as AC's example shows.
    rendered["status"] = json!(status);
    rendered["unsubreason"] = json!("");
    ok(json!({ "contacts": [view.contact(c)], "contactList": rendered }))
}

/// `PERSTAG` from a title: upper-case letters and digits, `_` elsewhere.
fn perstag(title: &str) -> String {
    title
        .trim()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' })
        .collect()
}

/// Creates a custom field from `{"title", "type", ...}` (shared with seeds).
pub fn insert_field(s: &mut Store, f: &Value, id: Option<u64>, now: i64) -> Result<u64, AcError> {
    let title = str_attr(f, "title").filter(|t| !t.trim().is_empty());
    let Some(title) = title else {
        return Err(AcError::missing("The title field is required.", "title"));
    };
    let Some(kind) = str_attr(f, "type").filter(|t| !t.trim().is_empty()) else {
        return Err(AcError::missing("The type field is required.", "type"));
    };
    if s.fields.values().any(|x| x.title.eq_ignore_ascii_case(title.trim())) {
        return Err(AcError::Unprocessable(vec![super::api::ErrorItem {
            title: "There is already a field with this title".into(),
            detail: format!("There is already a field named '{}' -- choose another name", title.trim()),
            code: "duplicate".into(),
            attribute: None,
        }]));
    }
    let id = match id {
        Some(id) => {
            s.ids.bump("field", id);
            id
        }
        None => s.ids.next("field"),
    };
    let flag = |key: &str, default: bool| str_attr(f, key).map_or(default, |v| v == "1" || v == "true");
    s.fields.insert(
        id,
        Field {
            id,
            title: title.trim().into(),
            kind,
            descript: str_attr(f, "descript"),
            perstag: str_attr(f, "perstag").map_or_else(|| perstag(&title), |p| perstag(&p)),
            defval: str_attr(f, "defval"),
            isrequired: flag("isrequired", false),
            visible: flag("visible", true),
            ordernum: id_attr(f, "ordernum").unwrap_or(id),
            cdate: now,
            udate: now,
        },
    );
    Ok(id)
}

pub async fn create_field(State(ac): Ac, base: Base, body: Bytes) -> AcResult {
    let body = parse_body(&body)?;
    let now = ac.now();
    let mut s = ac.write();
    let id = insert_field(&mut s, wrapped(&body, "field"), None, now)?;
    let view = View { s: &s, base: &base };
    let field = s.fields.get(&id).map(|f| view.field(f)).unwrap_or_default();
    created(json!({ "field": field }))
}

pub async fn retrieve_field(State(ac): Ac, base: Base, Path(raw): Path<String>) -> AcResult {
    let id = path_id(&raw, "Field")?;
    let s = ac.read();
    let f = s.fields.get(&id).ok_or_else(|| AcError::not_found("Field", id))?;
    ok(json!({ "field": View { s: &s, base: &base }.field(f) }))
}

pub async fn list_fields(State(ac): Ac, base: Base, p: Params) -> AcResult {
    let (limit, offset) = p.page()?;
    let s = ac.read();
    let view = View { s: &s, base: &base };
    let fields: Vec<Value> = s.fields.values().skip(offset).take(limit).map(|f| view.field(f)).collect();
    ok(
        json!({ "fieldOptions": [], "fieldRels": [], "fields": fields, "meta": { "total": s.fields.len().to_string() } }),
    )
}

pub async fn list_field_values(State(ac): Ac, base: Base, p: Params) -> AcResult {
    let (limit, offset) = p.page()?;
    let field = p.num("filters[fieldid]")?;
    let val = p.get("filters[val]");
    let s = ac.read();
    let view = View { s: &s, base: &base };
    let matching = s
        .field_values
        .values()
        .filter(|v| field.is_none_or(|f| v.field == f) && val.is_none_or(|x| v.value == x));
    let total = matching.clone().count();
    let page: Vec<Value> = matching.skip(offset).take(limit).map(|v| view.field_value(v)).collect();
    ok(json!({ "fieldValues": page, "meta": { "total": total.to_string() } }))
}

/// `{"contacts": [contact], "fieldValue": {...}}` after a fieldValue write.
fn field_value_written(s: &Store, base: &Base, fv: u64) -> AcResult {
    let view = View { s, base };
    let v = s.field_values.get(&fv).ok_or_else(|| AcError::not_found("FieldValue", fv))?;
    let mut rendered = view.field_value(v);
    // Write answers carry numeric contact/field/owner, as AC's examples show.
    rendered["contact"] = json!(v.contact);
    rendered["field"] = json!(v.field);
    rendered["owner"] = json!(v.contact);
    let contact = view.contact(s.contact(v.contact)?);
    ok(json!({ "contacts": [contact], "fieldValue": rendered }))
}

pub async fn create_field_value(State(ac): Ac, base: Base, body: Bytes) -> AcResult {
    let body = parse_body(&body)?;
    let fv = wrapped(&body, "fieldValue");
    let contact = id_attr(fv, "contact")
        .ok_or_else(|| AcError::missing("The contact attribute was not provided", "contact"))?;
    let field = id_attr(fv, "field")
        .ok_or_else(|| AcError::missing("The field attribute was not provided", "field"))?;
    let value = fv
        .get("value")
        .map(value_string)
        .ok_or_else(|| AcError::missing("The value attribute was not provided", "value"))?;
    let now = ac.now();
    let mut s = ac.write();
    s.contact(contact)?;
    if !s.fields.contains_key(&field) {
        return Err(AcError::not_found("Field", field));
    }
    let id =
        s.set_field_value(contact, field, value, now).ok_or_else(|| AcError::not_found("Field", field))?;
    s.touch(contact, now);
    field_value_written(&s, &base, id)
}

pub async fn update_field_value(State(ac): Ac, base: Base, Path(raw): Path<String>, body: Bytes) -> AcResult {
    let id = path_id(&raw, "FieldValue")?;
    let body = parse_body(&body)?;
    let value = wrapped(&body, "fieldValue")
        .get("value")
        .map(value_string)
        .ok_or_else(|| AcError::missing("The value attribute was not provided", "value"))?;
    let now = ac.now();
    let mut s = ac.write();
    let (contact, field) = s
        .field_values
        .get(&id)
        .map(|v| (v.contact, v.field))
        .ok_or_else(|| AcError::not_found("FieldValue", id))?;
    s.set_field_value(contact, field, value, now);
    s.touch(contact, now);
    field_value_written(&s, &base, id)
}

pub async fn retrieve_field_value(State(ac): Ac, base: Base, Path(raw): Path<String>) -> AcResult {
    let id = path_id(&raw, "FieldValue")?;
    let s = ac.read();
    let v = s.field_values.get(&id).ok_or_else(|| AcError::not_found("FieldValue", id))?;
    ok(json!({ "fieldValue": View { s: &s, base: &base }.field_value(v) }))
}

pub async fn delete_field_value(State(ac): Ac, Path(raw): Path<String>) -> AcResult {
    let id = path_id(&raw, "FieldValue")?;
    let now = ac.now();
    let mut s = ac.write();
    let v = s.field_values.remove(&id).ok_or_else(|| AcError::not_found("FieldValue", id))?;
    if let Some(c) = s.contacts.get_mut(&v.contact) {
        c.field_values.retain(|x| *x != id);
    }
    s.touch(v.contact, now);
    ok(json!({}))
}

pub async fn list_tags(State(ac): Ac, base: Base, p: Params) -> AcResult {
    let (limit, offset) = p.page()?;
    let contains = p.value("search").or(p.value("filters[search][contains]")).map(str::to_lowercase);
    let eq = p.value("filters[search][eq]").map(str::to_lowercase);
    let starts = p.value("filters[search][starts_with]").map(str::to_lowercase);
    let s = ac.read();
    let view = View { s: &s, base: &base };
    let matching = s.tags.values().filter(|t| {
        let name = t.tag.to_lowercase();
        contains.as_ref().is_none_or(|c| name.contains(c.as_str()))
            && eq.as_ref().is_none_or(|e| name == *e)
            && starts.as_ref().is_none_or(|st| name.starts_with(st.as_str()))
    });
    let total = matching.clone().count();
    let tags: Vec<Value> = matching.skip(offset).take(limit).map(|t| view.tag(t)).collect();
    ok(json!({ "tags": tags, "meta": { "total": total.to_string() } }))
}

pub async fn create_tag(State(ac): Ac, base: Base, body: Bytes) -> AcResult {
    let body = parse_body(&body)?;
    let t = wrapped(&body, "tag");
    let name = str_attr(t, "tag").unwrap_or_default();
    let kind = str_attr(t, "tagType").unwrap_or_default();
    let description = str_attr(t, "description").unwrap_or_default();
    let now = ac.now();
    let mut s = ac.write();
    let id = s.create_tag(&name, &kind, &description, now)?;
    let view = View { s: &s, base: &base };
    let tag = s.tags.get(&id).map(|t| view.tag(t)).unwrap_or_default();
    created(json!({ "tag": tag }))
}

pub async fn retrieve_tag(State(ac): Ac, base: Base, Path(raw): Path<String>) -> AcResult {
    let id = path_id(&raw, "Tag")?;
    let s = ac.read();
    let t = s.tags.get(&id).ok_or_else(|| AcError::not_found("Tag", id))?;
    let mut tag = View { s: &s, base: &base }.tag(t);
    tag["subscriber_count"] = json!(s.contact_tags.values().filter(|ct| ct.tag == id).count().to_string());
    ok(json!({ "tag": tag }))
}

pub async fn add_contact_tag(State(ac): Ac, base: Base, body: Bytes) -> AcResult {
    let body = parse_body(&body)?;
    let ct = wrapped(&body, "contactTag");
    let missing = |attr: &str| {
        AcError::json(
            422,
            json!({ "errors": [{ "status": 422, "title": "Missing attribute", "source": { "pointer": format!("/data/attributes/{attr}") } }] }),
        )
    };
    let contact = id_attr(ct, "contact").ok_or_else(|| missing("contact"))?;
    let tag = id_attr(ct, "tag").ok_or_else(|| missing("tag"))?;
    let now = ac.now();
    let mut s = ac.write();
    let id = s.add_contact_tag(contact, tag, now)?;
    let view = View { s: &s, base: &base };
    let rendered = s.contact_tags.get(&id).map(|ct| view.contact_tag(ct)).unwrap_or_default();
    created(json!({ "contactTag": rendered }))
}

pub async fn remove_contact_tag(State(ac): Ac, Path(raw): Path<String>) -> AcResult {
    let id = path_id(&raw, "ContactTag")?;
    let now = ac.now();
    ac.write().remove_contact_tag(id, now)?;
    ok(json!({}))
}

/// Validates one bulk-import contact; the reason when it is unusable.
fn import_contact(v: &Value) -> Result<ImportContact, String> {
    let email = str_attr(v, "email").map(|e| e.trim().to_string()).unwrap_or_default();
    if email.is_empty() {
        return Err("Field 'email' is required".into());
    }
    if !valid_email(&email) {
        return Err("Field 'email' incorrect format".into());
    }
    let list_ids = |key: &str| -> Vec<u64> {
        v.get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|x| id_attr(x, "listid")).collect())
            .unwrap_or_default()
    };
    let mut fields = Vec::new();
    for f in v.get("fields").and_then(Value::as_array).into_iter().flatten() {
        let id = id_attr(f, "id").ok_or("Field 'fields.id' must be a number")?;
        fields.push((id, value_string(f.get("value").unwrap_or(&Value::Null))));
    }
    Ok(ImportContact {
        email,
        first_name: str_attr(v, "first_name"),
        last_name: str_attr(v, "last_name"),
        phone: str_attr(v, "phone"),
        account_name: str_attr(v, "customer_acct_name"),
        tags: v
            .get("tags")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .filter(|t| !t.trim().is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        fields,
        subscribe: list_ids("subscribe"),
        unsubscribe: list_ids("unsubscribe"),
    })
}

pub async fn bulk_import(State(ac): Ac, body: Bytes) -> AcResult {
    ac.take_import_slot()?;
    let body = parse_body(&body)?;
    let not_queued = "JSON payload did not pass validation. Please fix failure Reasons and retry. The import was not queued for processing.";
    let Some(items) = body.get("contacts").and_then(Value::as_array).filter(|a| !a.is_empty()) else {
        return Err(AcError::BadRequest(
            json!({ "success": 0, "message": not_queued, "failureReasons": ["Field 'contacts' is required and must be a non-empty array"] }),
        ));
    };
    if items.len() > MAX_IMPORT {
        return Err(AcError::BadRequest(json!({
            "success": 0,
            "message": not_queued,
            "failureReasons": [format!("Up to {MAX_IMPORT} contacts may be imported per request; got {}", items.len())],
        })));
    }
    let mut contacts = Vec::with_capacity(items.len());
    let mut reasons = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match import_contact(item) {
            Ok(c) => contacts.push(c),
            Err(reason) => reasons.push(json!({ "contact": i, "failureReason": reason })),
        }
    }
    if !reasons.is_empty() {
        return Err(AcError::BadRequest(
            json!({ "success": 0, "message": not_queued, "failureReasons": reasons }),
        ));
    }
    let batch_id = uuid::Uuid::new_v4().to_string();
    let queued = contacts.len();
    let now = ac.now();
    let mut s = ac.write();
    s.imports.insert(
        batch_id.clone(),
        Import {
            batch_id: batch_id.clone(),
            accepted: now,
            contacts,
            completed: None,
            success: Vec::new(),
            failure: Vec::new(),
        },
    );
    s.pending_imports.push_back(batch_id.clone());
    ok(
        json!({ "success": 1, "queued_contacts": queued, "batchId": batch_id, "message": "Contact import queued" }),
    )
}

pub async fn import_info(State(ac): Ac, p: Params) -> AcResult {
    let Some(batch) = p.value("batchId").map(str::to_string) else {
        return Err(AcError::BadRequest(
            json!({ "success": 0, "message": "'batchId' is a required field." }),
        ));
    };
    let now = ac.now();
    let mut s = ac.write();
    if !s.imports.contains_key(&batch) {
        return Err(AcError::BadRequest(
            json!({ "success": 0, "message": format!("No import found for batchId '{batch}'.") }),
        ));
    }
    s.apply_import(&batch, now);
    let import = s.imports.get(&batch).ok_or_else(|| AcError::BadRequest(json!({ "success": 0 })))?;
    ok(json!({ "status": "completed", "success": import.success, "failure": import.failure }))
}

/// `GET /import/bulk_import`: queued and completed batches per day.
pub async fn bulk_import_status(State(ac): Ac) -> AcResult {
    let s = ac.read();
    let mut outstanding: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    let mut completed: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for i in s.imports.values() {
        let day = chrono::DateTime::from_timestamp(i.accepted, 0)
            .map(|t| t.with_timezone(&s.utc_offset).format("%Y-%m-%d").to_string())
            .unwrap_or_default();
        let (map, n) = match i.completed {
            None => (&mut outstanding, i.contacts.len()),
            Some(_) => (&mut completed, i.success.len() + i.failure.len()),
        };
        let e = map.entry(day).or_default();
        e.0 += 1;
        e.1 += n as u64;
    }
    let rows = |m: std::collections::BTreeMap<String, (u64, u64)>| -> Vec<Value> {
        m.into_iter()
            .map(|(d, (b, c))| json!({ "forDate": d, "batches": b.to_string(), "contacts": c.to_string() }))
            .collect()
    };
    ok(json!({ "outstanding": rows(outstanding), "recentlyCompleted": rows(completed) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perstags_are_upper_snake() {
        assert_eq!(perstag("Company size"), "COMPANY_SIZE");
    }

    #[test]
    fn import_contacts_validate_email_and_fields() {
        assert!(import_contact(&json!({"email": "bad"})).is_err());
        let c = import_contact(&json!({"email": "a@b.io", "fields": [{"id": "3", "value": ["x", "y"]}], "tags": ["t"], "subscribe": [{"listid": 1}]}))
            .expect("valid");
        assert_eq!(c.fields, vec![(3, "||x||y||".to_string())]);
        assert_eq!(c.subscribe, vec![1]);
    }
}
