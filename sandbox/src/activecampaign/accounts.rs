//! Accounts (`/accounts`), their contacts (`/accountContacts`) and custom
//! fields (`/accountCustomFieldMeta`, `/accountCustomFieldData`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::ActiveCampaign;
use super::api::{AcError, AcResult, Base, Params, created, id_attr, ok, parse_body, str_attr, wrapped};
use super::contacts::path_id;
use super::render::View;
use super::store::{Account, AccountFieldDatum, AccountFieldMeta, Store};

type Ac = State<Arc<ActiveCampaign>>;

/// Sets an account's custom field value (creating the datum if new).
pub fn set_account_field(
    s: &mut Store,
    account: u64,
    field: u64,
    value: Value,
    currency: Option<String>,
    now: i64,
) -> Result<u64, AcError> {
    if !s.account_field_meta.contains_key(&field) {
        return Err(AcError::not_found("AccountCustomFieldMetum", field));
    }
    if let Some(d) = s.account_field_data.values_mut().find(|d| d.account == account && d.field == field) {
        d.value = value;
        d.currency = currency.or(d.currency.take());
        d.updated = now;
        return Ok(d.id);
    }
    let id = s.ids.next("accountCustomFieldDatum");
    s.account_field_data
        .insert(id, AccountFieldDatum { id, account, field, value, currency, created: now, updated: now });
    Ok(id)
}

/// Applies `fields: [{"customFieldId", "fieldValue", "fieldCurrency"}]` of an account write.
fn apply_fields(s: &mut Store, account: u64, a: &Value, now: i64) -> Result<(), AcError> {
    for f in a.get("fields").and_then(Value::as_array).into_iter().flatten() {
        let field = id_attr(f, "customFieldId")
            .ok_or_else(|| AcError::missing("The customFieldId was not provided", "customFieldId"))?;
        let value = f.get("fieldValue").cloned().unwrap_or(Value::Null);
        set_account_field(s, account, field, value, str_attr(f, "fieldCurrency"), now)?;
    }
    Ok(())
}

/// Creates an account from `{"name", "accountUrl", "owner", "fields"}` (shared with seeds).
pub fn insert_account(s: &mut Store, a: &Value, now: i64) -> Result<u64, AcError> {
    let Some(name) = str_attr(a, "name").filter(|n| !n.trim().is_empty()) else {
        return Err(AcError::missing("The account name was not provided.", "name"));
    };
    if s.account_by_name(&name).is_some() {
        return Err(AcError::unprocessable("An account with this name already exists", "duplicate", "name"));
    }
    let id = s.ids.next("account");
    s.insert_account(Account {
        id,
        name: name.trim().into(),
        account_url: str_attr(a, "accountUrl"),
        owner: id_attr(a, "owner").unwrap_or(1),
        created: now,
        updated: now,
    });
    apply_fields(s, id, a, now)?;
    Ok(id)
}

fn account_written(s: &Store, base: &Base, id: u64) -> Result<Value, AcError> {
    let view = View { s, base };
    let a = s.accounts.get(&id).ok_or_else(|| AcError::not_found("Account", id))?;
    let mut v = view.account(a);
    v["fields"] = json!(view.account_fields(id));
    Ok(json!({ "account": v }))
}

pub async fn create(State(ac): Ac, base: Base, body: Bytes) -> AcResult {
    let body = parse_body(&body)?;
    let now = ac.now();
    let mut s = ac.write();
    let id = insert_account(&mut s, wrapped(&body, "account"), now)?;
    created(account_written(&s, &base, id)?)
}

pub async fn update(State(ac): Ac, base: Base, Path(raw): Path<String>, body: Bytes) -> AcResult {
    let id = path_id(&raw, "Account")?;
    let body = parse_body(&body)?;
    let a = wrapped(&body, "account");
    let now = ac.now();
    let mut s = ac.write();
    if !s.accounts.contains_key(&id) {
        return Err(AcError::not_found("Account", id));
    }
    if let Some(name) = str_attr(a, "name") {
        if name.trim().is_empty() {
            return Err(AcError::missing("The account name was not provided.", "name"));
        }
        if s.account_by_name(&name).is_some_and(|other| other.id != id) {
            return Err(AcError::unprocessable(
                "An account with this name already exists",
                "duplicate",
                "name",
            ));
        }
    }
    apply_fields(&mut s, id, a, now)?;
    if let Some(name) = str_attr(a, "name") {
        s.rename_account(id, &name);
    }
    if let Some(acc) = s.accounts.get_mut(&id) {
        if let Some(url) = str_attr(a, "accountUrl") {
            acc.account_url = Some(url);
        }
        if let Some(owner) = id_attr(a, "owner") {
            acc.owner = owner;
        }
        acc.updated = now;
    }
    ok(account_written(&s, &base, id)?)
}

pub async fn retrieve(State(ac): Ac, base: Base, Path(raw): Path<String>) -> AcResult {
    let id = path_id(&raw, "Account")?;
    let s = ac.read();
    let a = s.accounts.get(&id).ok_or_else(|| AcError::not_found("Account", id))?;
    ok(json!({ "account": View { s: &s, base: &base }.account(a) }))
}

pub async fn delete(State(ac): Ac, Path(raw): Path<String>) -> AcResult {
    let id = path_id(&raw, "Account")?;
    let mut s = ac.write();
    s.remove_account(id)?;
    ok(json!({}))
}

pub async fn list(State(ac): Ac, base: Base, p: Params) -> AcResult {
    let (limit, offset) = p.page()?;
    let search = p.value("search").map(str::to_lowercase);
    let s = ac.read();
    let view = View { s: &s, base: &base };
    let matching = s
        .accounts
        .values()
        .filter(|a| search.as_ref().is_none_or(|q| a.name.to_lowercase().contains(q.as_str())));
    let total = matching.clone().count();
    let accounts: Vec<Value> = matching
        .skip(offset)
        .take(limit)
        .map(|a| {
            let mut v = view.account(a);
            let contacts = s.account_contacts.values().filter(|x| x.account == a.id).count();
            v["contactCount"] = json!(contacts.to_string());
            v["dealCount"] = json!("0");
            v["links"] = json!({
                "notes": base.link(&format!("accounts/{}/notes", a.id)),
                "accountCustomFieldData": base.link(&format!("accounts/{}/accountCustomFieldData", a.id)),
                "accountContacts": base.link(&format!("accounts/{}/accountContacts", a.id)),
            });
            v
        })
        .collect();
    ok(json!({ "accounts": accounts, "meta": { "total": total.to_string() } }))
}

pub async fn link(State(ac): Ac, base: Base, body: Bytes) -> AcResult {
    let body = parse_body(&body)?;
    let a = wrapped(&body, "accountContact");
    let contact = id_attr(a, "contact")
        .ok_or_else(|| AcError::missing("The contact attribute was not provided", "contact"))?;
    let account = id_attr(a, "account")
        .ok_or_else(|| AcError::missing("The account attribute was not provided", "account"))?;
    let job_title = str_attr(a, "jobTitle").unwrap_or_default();
    let now = ac.now();
    let mut s = ac.write();
    let id = s.link_account(contact, account, &job_title, now)?;
    let view = View { s: &s, base: &base };
    let x = s.account_contacts.get(&id).ok_or_else(|| AcError::not_found("AccountContact", id))?;
    let mut v = view.account_contact(x);
    // The create answer carries numeric ids, as AC's example shows.
    v["account"] = json!(x.account);
    v["contact"] = json!(x.contact);
    created(json!({ "accountContact": v }))
}

pub async fn list_contacts(State(ac): Ac, base: Base, p: Params) -> AcResult {
    let (limit, offset) = p.page()?;
    let contact = p.num("filters[contact]")?;
    let account = p.num("filters[account]")?;
    let s = ac.read();
    let view = View { s: &s, base: &base };
    let matching = s
        .account_contacts
        .values()
        .filter(|x| contact.is_none_or(|c| x.contact == c) && account.is_none_or(|a| x.account == a));
    let total = matching.clone().count();
    let rows: Vec<Value> = matching.skip(offset).take(limit).map(|x| view.account_contact(x)).collect();
    ok(json!({ "accountContacts": rows, "meta": { "total": total.to_string() } }))
}

pub async fn retrieve_contact(State(ac): Ac, base: Base, Path(raw): Path<String>) -> AcResult {
    let id = path_id(&raw, "AccountContact")?;
    let s = ac.read();
    let x = s.account_contacts.get(&id).ok_or_else(|| AcError::not_found("AccountContact", id))?;
    ok(json!({ "accountContact": View { s: &s, base: &base }.account_contact(x) }))
}

pub async fn unlink(State(ac): Ac, Path(raw): Path<String>) -> AcResult {
    let id = path_id(&raw, "AccountContact")?;
    ac.write().unlink_account(id)?;
    ok(json!({}))
}

pub async fn contact_account_contacts(State(ac): Ac, base: Base, Path(raw): Path<String>) -> AcResult {
    let id = path_id(&raw, "Subscriber")?;
    let s = ac.read();
    let view = View { s: &s, base: &base };
    let c = s.contact(id)?;
    let rows: Vec<Value> = c
        .account_contact
        .and_then(|x| s.account_contacts.get(&x))
        .map(|x| view.account_contact(x))
        .into_iter()
        .collect();
    ok(json!({ "accountContacts": rows }))
}

/// Creates an account custom field from `{"fieldLabel", "fieldType", ...}` (shared with seeds).
pub fn insert_field_meta(s: &mut Store, m: &Value, now: i64) -> Result<u64, AcError> {
    let Some(label) = str_attr(m, "fieldLabel").filter(|l| !l.trim().is_empty()) else {
        return Err(AcError::missing("The field label field is required.", "fieldLabel"));
    };
    let Some(kind) = str_attr(m, "fieldType").filter(|t| !t.trim().is_empty()) else {
        return Err(AcError::missing("The field type field is required.", "fieldType"));
    };
    let id = s.ids.next("accountCustomFieldMetum");
    let options = m
        .get("fieldOptions")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|o| o.as_str().map(str::to_string)).collect());
    let flag = |key: &str| str_attr(m, key).is_some_and(|v| v == "1" || v == "true");
    s.account_field_meta.insert(
        id,
        AccountFieldMeta {
            id,
            label: label.trim().into(),
            kind,
            options,
            default: m.get("fieldDefault").cloned().unwrap_or(Value::Null),
            default_currency: str_attr(m, "fieldDefaultCurrency"),
            visible: flag("isFormVisible"),
            required: flag("isRequired"),
            display_order: id_attr(m, "displayOrder").unwrap_or(id),
            created: now,
            updated: now,
        },
    );
    Ok(id)
}

pub async fn create_field_meta(State(ac): Ac, base: Base, body: Bytes) -> AcResult {
    let body = parse_body(&body)?;
    let now = ac.now();
    let mut s = ac.write();
    let id = insert_field_meta(&mut s, wrapped(&body, "accountCustomFieldMetum"), now)?;
    let view = View { s: &s, base: &base };
    let m = s.account_field_meta.get(&id).map(|m| view.account_field_meta(m)).unwrap_or_default();
    ok(json!({ "accountCustomFieldMetum": m }))
}

pub async fn list_field_meta(State(ac): Ac, base: Base, p: Params) -> AcResult {
    let (limit, offset) = p.page()?;
    let s = ac.read();
    let view = View { s: &s, base: &base };
    let rows: Vec<Value> =
        s.account_field_meta.values().skip(offset).take(limit).map(|m| view.account_field_meta(m)).collect();
    ok(json!({ "accountCustomFieldMeta": rows, "meta": { "total": s.account_field_meta.len().to_string() } }))
}

pub async fn create_field_datum(State(ac): Ac, base: Base, body: Bytes) -> AcResult {
    let body = parse_body(&body)?;
    let d = wrapped(&body, "accountCustomFieldDatum");
    let account = id_attr(d, "customerAccountId")
        .or_else(|| id_attr(d, "accountId"))
        .ok_or_else(|| AcError::missing("The customerAccountId was not provided", "customerAccountId"))?;
    let field = id_attr(d, "customFieldId")
        .ok_or_else(|| AcError::missing("The customFieldId was not provided", "customFieldId"))?;
    let value = d
        .get("fieldValue")
        .cloned()
        .ok_or_else(|| AcError::missing("The fieldValue was not provided", "fieldValue"))?;
    let now = ac.now();
    let mut s = ac.write();
    if !s.accounts.contains_key(&account) {
        return Err(AcError::not_found("Account", account));
    }
    let id = set_account_field(&mut s, account, field, value, str_attr(d, "fieldCurrency"), now)?;
    if let Some(a) = s.accounts.get_mut(&account) {
        a.updated = now;
    }
    let view = View { s: &s, base: &base };
    let datum = s.account_field_data.get(&id).map(|d| view.account_field_datum(d)).unwrap_or_default();
    ok(json!({ "accountCustomFieldDatum": datum }))
}

pub async fn list_field_data(State(ac): Ac, base: Base, p: Params) -> AcResult {
    let (limit, offset) = p.page()?;
    let account = p.num("filters[customerAccountId]")?;
    let s = ac.read();
    let view = View { s: &s, base: &base };
    let matching = s.account_field_data.values().filter(|d| account.is_none_or(|a| d.account == a));
    let total = matching.clone().count();
    let rows: Vec<Value> = matching.skip(offset).take(limit).map(|d| view.account_field_datum(d)).collect();
    ok(json!({ "accountCustomFieldData": rows, "meta": { "total": total.to_string() } }))
}
