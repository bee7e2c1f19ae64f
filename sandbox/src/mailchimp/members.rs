//! Audience members: `GET/POST /lists/{id}/members`, `GET/PUT/PATCH/DELETE
//! /lists/{id}/members/{hash}`, `actions/delete-permanent`, member tags, and
//! batch subscribe (`POST /lists/{id}`). One function, [`write_member`], applies
//! every kind of write so PUT, PATCH, POST, batch subscribe and `/batches`
//! operations share the same validation, compliance and forgotten-email rules.

use std::collections::{HashMap, HashSet};
use std::ops::Bound::{self, Excluded, Included, Unbounded};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::store::{Ids, List, Member, MemberView, MergeField, Status, parse_time, subscriber_hash, ts};
use super::{Call, MAX_BATCH_MEMBERS, Mailchimp, McError, Reply, no_content, ok, ok_serialized};

/// The writable member fields, as PUT, PATCH, POST and batch subscribe take them.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct MemberInput {
    email_address: Option<String>,
    status: Option<String>,
    status_if_new: Option<String>,
    email_type: Option<String>,
    merge_fields: Option<Map<String, Value>>,
    interests: Option<Map<String, Value>>,
    language: Option<String>,
    vip: Option<bool>,
    location: Option<Location>,
    marketing_permissions: Option<Vec<Value>>,
    ip_signup: Option<String>,
    timestamp_signup: Option<String>,
    ip_opt: Option<String>,
    timestamp_opt: Option<String>,
    tags: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
struct Location {
    latitude: Option<f64>,
    longitude: Option<f64>,
}

/// Which endpoint a write comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Put,
    Patch,
    Post,
    Batch { update_existing: bool },
}

/// `{subscriber_hash}` as given: the MD5 itself, or the email (hashed here).
pub(crate) fn resolve_hash(key: &str) -> String {
    if key.contains('@') { subscriber_hash(key) } else { key.to_ascii_lowercase() }
}

/// `{subscriber_hash}` as the real API takes it: the MD5, the email, or the
/// member's `contact_id` (which an email change keeps).
pub(crate) fn resolve(list: &List, key: &str) -> String {
    let hash = resolve_hash(key);
    if list.members.contains_key(&hash) {
        return hash;
    }
    list.by_contact.get(key).cloned().unwrap_or(hash)
}

fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else { return false };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c == ',' || c == ';')
        && !local.contains('@')
}

fn field_error(field: &str, message: &str) -> McError {
    McError::Invalid {
        detail: "The resource submitted could not be validated. For field-specific details, see the 'errors' array.".into(),
        errors: vec![(field.to_string(), message.to_string())],
    }
}

fn parse_status(value: &str, field: &str, batch: bool) -> Result<Status, McError> {
    match Status::parse(value) {
        Some(Status::Archived) | None => Err(field_error(field, "Value is not one of the allowed values.")),
        Some(Status::Transactional) if batch => {
            Err(field_error(field, "Value is not one of the allowed values."))
        }
        Some(s) => Ok(s),
    }
}

/// Checks and normalises one merge-field value for its field's type.
fn merge_value(def: &MergeField, value: Value) -> Result<Value, String> {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    };
    match def.kind.as_str() {
        "number" => match &value {
            Value::Number(_) => Ok(value),
            Value::Null => Ok(Value::String(String::new())),
            Value::String(s) if s.trim().is_empty() => Ok(Value::String(String::new())),
            Value::String(s) => s
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(|n| match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => json!(f as i64),
                    _ => Value::Number(n),
                })
                .ok_or_else(|| "Please enter a number".to_string()),
            _ => Err("Please enter a number".into()),
        },
        "address" => match value {
            Value::Object(map) => {
                let get = |k: &str| map.get(k).and_then(&text).unwrap_or_default();
                if ["addr1", "city", "state", "zip"].iter().any(|k| get(k).trim().is_empty()) {
                    return Err("Please enter a complete address".into());
                }
                Ok(json!({
                    "addr1": get("addr1"), "addr2": get("addr2"), "city": get("city"),
                    "state": get("state"), "zip": get("zip"),
                    "country": if get("country").is_empty() { "US".to_string() } else { get("country") },
                }))
            }
            Value::String(s) => Ok(Value::String(s)),
            Value::Null => Ok(Value::String(String::new())),
            _ => Err("Please enter a complete address".into()),
        },
        "radio" | "dropdown" => {
            let s = text(&value).ok_or("Please choose an option")?;
            let choices = def.options.get("choices").and_then(Value::as_array);
            match choices {
                Some(c) if !s.is_empty() && !c.is_empty() && !c.iter().any(|x| x.as_str() == Some(&s)) => {
                    Err("Please choose an option".into())
                }
                _ => Ok(Value::String(s)),
            }
        }
        _ => text(&value)
            .map(Value::String)
            .ok_or_else(|| format!("Schema describes string, {} found instead", kind_of(&value))),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_blank(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        _ => false,
    }
}

fn time_field(value: Option<&str>, field: &str) -> Result<Option<DateTime<Utc>>, McError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => parse_time(v).map(Some).ok_or_else(|| field_error(field, "Please enter a valid date")),
    }
}

/// Applies one member write to `list`: returns the member's hash and whether it
/// was created (or re-added from the archive).
pub(crate) fn write_member(
    list: &mut List,
    ids: &mut Ids,
    path_key: Option<&str>,
    input: MemberInput,
    mode: Mode,
    skip_merge_validation: bool,
    now: DateTime<Utc>,
) -> Result<(String, bool), McError> {
    let email = input.email_address.as_deref().map(str::trim).filter(|e| !e.is_empty());
    if let Some(e) = email
        && !valid_email(e)
    {
        return Err(McError::invalid(format!(
            "{e} looks fake or invalid, please enter a real email address."
        )));
    }
    let hash = match (path_key, email) {
        (Some(key), _) => resolve(list, key),
        (None, Some(e)) => subscriber_hash(e),
        (None, None) => return Err(field_error("email_address", "This value should not be blank.")),
    };
    let existing = list.members.get(&hash);
    let live = existing.is_some_and(|m| m.status != Status::Archived);
    let shown = email.unwrap_or(existing.map_or("", |m| m.email.as_str())).to_string();
    match mode {
        Mode::Patch if existing.is_none() => return Err(McError::NotFound),
        Mode::Post | Mode::Batch { update_existing: false } if live => {
            return Err(McError::MemberExists(format!(
                "{shown} is already a list member. Use PUT to insert or update list members."
            )));
        }
        _ => {}
    }
    if existing.is_none() {
        if list.forgotten.contains(&hash) {
            return Err(McError::Forgotten(format!(
                "{shown} was permanently deleted and cannot be re-imported. The contact must re-subscribe to get back on the list."
            )));
        }
        match email {
            None => return Err(field_error("email_address", "This value should not be blank.")),
            Some(e) if subscriber_hash(e) != hash => {
                return Err(McError::invalid(
                    "The subscriber hash in the path does not match the email address in the body.",
                ));
            }
            Some(_) => {}
        }
    }

    let batch = matches!(mode, Mode::Batch { .. });
    let requested = match mode {
        Mode::Put if !live => {
            let s = input.status_if_new.as_deref().or(input.status.as_deref());
            let s = s.ok_or_else(|| field_error("status_if_new", "This value should not be blank."))?;
            Some(parse_status(s, "status_if_new", false)?)
        }
        Mode::Post | Mode::Batch { .. } if !live => {
            let s = input.status.as_deref();
            let s = s.ok_or_else(|| field_error("status", "This value should not be blank."))?;
            Some(parse_status(s, "status", batch)?)
        }
        _ => input.status.as_deref().map(|s| parse_status(s, "status", batch)).transpose()?,
    };
    let previous = existing.map(|m| match m.status {
        Status::Archived => m.prior_status.unwrap_or(Status::Subscribed),
        s => s,
    });
    if requested == Some(Status::Subscribed)
        && matches!(previous, Some(Status::Unsubscribed | Status::Cleaned))
    {
        return Err(McError::Compliance(format!(
            "{shown} is in a compliance state due to unsubscribe, bounce, or compliance review and cannot be subscribed."
        )));
    }

    let before = existing.cloned();
    let mut m = match &before {
        Some(m) => m.clone(),
        None => Member::new(email.unwrap_or_default(), ids.next_web_id()),
    };

    // Merge fields: known tags only (unknown ones are ignored), typed per field.
    let mut errors = Vec::new();
    let provided: HashSet<String> = input
        .merge_fields
        .as_ref()
        .map(|mf| mf.keys().map(|k| k.to_uppercase()).collect())
        .unwrap_or_default();
    for (tag, value) in input.merge_fields.into_iter().flatten() {
        let tag = tag.to_uppercase();
        let Some(def) = list.merge_field(&tag) else { continue };
        match merge_value(def, value) {
            Ok(v) => {
                m.merge_fields.insert(tag, v);
            }
            Err(message) => errors.push((tag, message)),
        }
    }
    if !skip_merge_validation {
        for def in list.merge_fields.iter().filter(|f| f.required) {
            let check = !live || provided.contains(&def.tag);
            if check && is_blank(m.merge_fields.get(&def.tag)) && errors.iter().all(|(t, _)| *t != def.tag) {
                errors.push((def.tag.clone(), "Please enter a value".into()));
            }
        }
    }
    if !errors.is_empty() {
        return Err(McError::Invalid { detail: "Your merge fields were invalid.".into(), errors });
    }

    if let Some(interests) = input.interests {
        for (id, v) in interests {
            if !v.is_boolean() {
                return Err(field_error(&format!("interests.{id}"), "Schema describes boolean"));
            }
            m.interests.insert(id, v);
        }
    }
    if let Some(t) = input.email_type {
        if t != "html" && t != "text" {
            return Err(field_error("email_type", "Value is not one of the allowed values."));
        }
        m.email_type = t;
    }
    if let Some(l) = input.language {
        m.language = l;
    }
    if let Some(v) = input.vip {
        m.vip = v;
    }
    if let Some(loc) = input.location {
        m.location = Some((loc.latitude.unwrap_or(0.0), loc.longitude.unwrap_or(0.0)));
    }
    if let Some(p) = input.marketing_permissions {
        m.marketing_permissions = p;
    }
    if let Some(ip) = input.ip_signup {
        m.ip_signup = ip;
    }
    if let Some(ip) = input.ip_opt {
        m.ip_opt = ip;
    }
    if let Some(t) = time_field(input.timestamp_signup.as_deref(), "timestamp_signup")? {
        m.timestamp_signup = Some(t);
    }
    let opt_time = time_field(input.timestamp_opt.as_deref(), "timestamp_opt")?;
    if let Some(t) = opt_time {
        m.timestamp_opt = Some(t);
    }
    for name in input.tags.into_iter().flatten() {
        let name = name.trim().to_string();
        if !name.is_empty() && !m.tags.iter().any(|(_, n, _)| *n == name) {
            let id = list.tag_id(&name, ids);
            m.tags.push((id, name, now));
        }
    }

    // Status.
    if let Some(status) = requested {
        if status != m.status {
            if status == Status::Subscribed && opt_time.is_none() {
                m.timestamp_opt = Some(now);
            }
            m.prior_status = None;
        }
        m.status = status;
        m.unsubscribe_reason =
            (status == Status::Unsubscribed).then(|| "N/A (Unsubscribed by an admin)".to_string());
    }

    // Email change (PUT/PATCH on an existing member with a different address).
    let mut old_hash = None;
    if let (Some(e), Some(_)) = (email, &before) {
        let new_hash = subscriber_hash(e);
        if new_hash != m.hash {
            if list.members.get(&new_hash).is_some_and(|o| o.status != Status::Archived) {
                return Err(McError::MemberExists(format!(
                    "{e} is already a list member. Use PUT to insert or update list members."
                )));
            }
            if list.forgotten.contains(&new_hash) {
                return Err(McError::Forgotten(format!(
                    "{e} was permanently deleted and cannot be re-imported. The contact must re-subscribe to get back on the list."
                )));
            }
            old_hash = Some(std::mem::replace(&mut m.hash, new_hash));
        }
        m.email = e.to_string();
    }

    if before.as_ref() == Some(&m) {
        return Ok((m.hash, false));
    }
    m.last_changed = now;
    m.seq = ids.next_seq();
    if let Some(old) = old_hash {
        list.remove_member(&old);
        if let Some(o) = list.members.get(&m.hash).cloned() {
            // An archived member under the new address gives way.
            list.remove_member(&o.hash);
        }
    }
    let hash = m.hash.clone();
    list.put_member(m);
    Ok((hash, !live))
}

fn with_list<T>(
    mc: &Mailchimp,
    list_id: &str,
    f: impl FnOnce(&mut List, &mut Ids) -> Result<T, McError>,
) -> Result<T, McError> {
    let mut store = mc.write();
    let store = &mut *store;
    let list = store.lists.get_mut(list_id).ok_or(McError::NotFound)?;
    f(list, &mut store.ids)
}

pub(crate) fn get(mc: &Mailchimp, list_id: &str, key: &str) -> Reply {
    let store = mc.read();
    let list = store.lists.get(list_id).ok_or(McError::NotFound)?;
    let m = list.members.get(&resolve(list, key)).ok_or(McError::NotFound)?;
    ok(m.to_json(list_id, &list.merge_fields))
}

fn single_write(mc: &Mailchimp, call: &Call, list_id: &str, key: Option<&str>, mode: Mode) -> Reply {
    let input: MemberInput = call.json()?;
    let skip = call.q_bool("skip_merge_validation")?.unwrap_or(false);
    let now = mc.now();
    let json = with_list(mc, list_id, |list, ids| {
        let (hash, _) = write_member(list, ids, key, input, mode, skip, now)?;
        let member = list.members.get(&hash).ok_or(McError::NotFound)?;
        Ok(member.to_json(&list.id, &list.merge_fields))
    })?;
    ok(json)
}

pub(crate) fn upsert(mc: &Mailchimp, call: &Call, list_id: &str, key: &str) -> Reply {
    single_write(mc, call, list_id, Some(key), Mode::Put)
}

pub(crate) fn patch(mc: &Mailchimp, call: &Call, list_id: &str, key: &str) -> Reply {
    single_write(mc, call, list_id, Some(key), Mode::Patch)
}

pub(crate) fn create(mc: &Mailchimp, call: &Call, list_id: &str) -> Reply {
    single_write(mc, call, list_id, None, Mode::Post)
}

/// `DELETE`: archives the member.
pub(crate) fn archive(mc: &Mailchimp, list_id: &str, key: &str) -> Reply {
    let now = mc.now();
    with_list(mc, list_id, |list, ids| {
        let m = list.members.get(&resolve(list, key)).ok_or(McError::NotFound)?;
        if m.status == Status::Archived {
            return Err(McError::NotFound);
        }
        let mut m = m.clone();
        m.prior_status = Some(m.status);
        m.status = Status::Archived;
        m.last_changed = now;
        m.seq = ids.next_seq();
        list.put_member(m);
        Ok(())
    })?;
    no_content()
}

pub(crate) fn delete_permanent(mc: &Mailchimp, list_id: &str, key: &str) -> Reply {
    with_list(mc, list_id, |list, _| {
        let hash = resolve(list, key);
        list.remove_member(&hash).ok_or(McError::NotFound)?;
        list.forgotten.insert(hash);
        Ok(())
    })?;
    no_content()
}

pub(crate) fn get_tags(mc: &Mailchimp, list_id: &str, key: &str) -> Reply {
    let store = mc.read();
    let list = store.lists.get(list_id).ok_or(McError::NotFound)?;
    let m = list.members.get(&resolve(list, key)).ok_or(McError::NotFound)?;
    let tags: Vec<Value> =
        m.tags.iter().map(|(id, name, at)| json!({"id": id, "name": name, "date_added": ts(*at)})).collect();
    ok(json!({"tags": tags, "total_items": m.tags.len()}))
}

#[derive(Deserialize)]
struct TagsBody {
    tags: Vec<TagChange>,
}

#[derive(Deserialize)]
struct TagChange {
    name: String,
    status: String,
}

/// `POST .../tags`: `{"tags": [{"name", "status": "active|inactive"}]}` → 204.
pub(crate) fn post_tags(mc: &Mailchimp, call: &Call, list_id: &str, key: &str) -> Reply {
    let body: TagsBody = call.json()?;
    let now = mc.now();
    with_list(mc, list_id, |list, ids| {
        let mut m = list.members.get(&resolve(list, key)).ok_or(McError::NotFound)?.clone();
        let before = m.tags.clone();
        for change in body.tags {
            match change.status.as_str() {
                "active" => {
                    if !m.tags.iter().any(|(_, n, _)| *n == change.name) {
                        let id = list.tag_id(&change.name, ids);
                        m.tags.push((id, change.name, now));
                    }
                }
                "inactive" => m.tags.retain(|(_, n, _)| *n != change.name),
                _ => return Err(field_error("tags.status", "Value is not one of the allowed values.")),
            }
        }
        if m.tags != before {
            m.last_changed = now;
            m.seq = ids.next_seq();
            list.put_member(m);
        }
        Ok(())
    })?;
    no_content()
}

#[derive(Serialize)]
struct BatchReply<'a> {
    new_members: Vec<MemberView<'a>>,
    updated_members: Vec<MemberView<'a>>,
    errors: &'a [Value],
    total_created: usize,
    total_updated: usize,
    error_count: usize,
}

#[derive(Serialize)]
struct MemberPage<'a> {
    members: Vec<MemberView<'a>>,
    list_id: &'a str,
    total_items: usize,
}

#[derive(Deserialize)]
struct BatchBody {
    members: Vec<Value>,
    #[serde(default)]
    update_existing: bool,
    #[serde(default)]
    #[allow(dead_code)]
    sync_tags: bool,
}

/// `POST /lists/{id}`: batch subscribe/unsubscribe, HTTP 200 with per-member errors.
pub(crate) fn batch_subscribe(mc: &Mailchimp, call: &Call, list_id: &str) -> Reply {
    let body: BatchBody = call.json()?;
    if body.members.len() > MAX_BATCH_MEMBERS {
        return Err(McError::invalid(format!(
            "You may only submit {MAX_BATCH_MEMBERS} members per request; this request has {}.",
            body.members.len()
        )));
    }
    let skip_merge = call.q_bool("skip_merge_validation")?.unwrap_or(false);
    let skip_dupes = call.q_bool("skip_duplicate_check")?.unwrap_or(false);
    let now = mc.now();
    let mode = Mode::Batch { update_existing: body.update_existing };
    with_list(mc, list_id, |list, ids| {
        let (mut created, mut updated, mut errors) = (Vec::new(), Vec::new(), Vec::new());
        let mut seen = HashSet::new();
        for raw in body.members {
            let email = raw.get("email_address").and_then(Value::as_str).unwrap_or_default().to_string();
            let hash = subscriber_hash(&email);
            if !email.is_empty() && !seen.insert(hash) {
                if !skip_dupes {
                    errors.push(json!({
                        "email_address": email,
                        "error": format!("{email} is a duplicate in this request."),
                        "error_code": "ERROR_GENERIC",
                    }));
                }
                continue;
            }
            let result = serde_json::from_value::<MemberInput>(raw)
                .map_err(|e| field_error("", &e.to_string()))
                .and_then(|input| write_member(list, ids, None, input, mode, skip_merge, now));
            match result {
                Ok((hash, true)) => created.push(hash),
                Ok((hash, false)) => updated.push(hash),
                Err(e) => {
                    let code = match e {
                        McError::MemberExists(_) => "ERROR_CONTACT_EXISTS",
                        _ => "ERROR_GENERIC",
                    };
                    let error = match e {
                        McError::MemberExists(_) => format!(
                            "{email} is already a list member, do you want to update? please provide update_existing:true in the request body"
                        ),
                        e => e.batch_message(),
                    };
                    errors.push(json!({"email_address": email, "error": error, "error_code": code}));
                }
            }
        }
        let views = |hashes: &[String]| -> Vec<MemberView<'_>> {
            hashes
                .iter()
                .filter_map(|h| list.members.get(h))
                .map(|m| m.view(&list.id, &list.merge_fields))
                .collect()
        };
        let reply = BatchReply {
            new_members: views(&created),
            updated_members: views(&updated),
            errors: &errors,
            total_created: created.len(),
            total_updated: updated.len(),
            error_count: errors.len(),
        };
        ok_serialized(call, &reply)
    })
}

/// Where sequential paging over one query left off, so the next page starts
/// there instead of skipping `offset` members again. Valid for one list version.
#[derive(Debug, Clone)]
pub(crate) struct PageHint {
    version: u64,
    next_offset: usize,
    last_key: (DateTime<Utc>, u64),
    total: usize,
}

type Key = (DateTime<Utc>, u64);

/// Whether `BTreeMap::range(lo, hi)` is well-formed (it panics otherwise).
fn valid_range(lo: &Bound<Key>, hi: &Bound<Key>) -> bool {
    match (lo, hi) {
        (Included(a), Included(b)) | (Included(a), Excluded(b)) | (Excluded(a), Included(b)) => a <= b,
        (Excluded(a), Excluded(b)) => a < b,
        _ => true,
    }
}

fn keys_in<'a>(
    list: &'a List,
    lo: Bound<Key>,
    hi: Bound<Key>,
    desc: bool,
) -> Box<dyn Iterator<Item = (&'a Key, &'a String)> + 'a> {
    if !valid_range(&lo, &hi) {
        return Box::new(std::iter::empty());
    }
    let range = list.by_changed.range((lo, hi));
    if desc { Box::new(range.rev()) } else { Box::new(range) }
}

/// `GET /lists/{id}/members` with Mailchimp's filters, sorting and paging.
pub(crate) fn list(mc: &Mailchimp, call: &Call, list_id: &str) -> Reply {
    let (count, offset) = call.paging()?;
    let status = call
        .q("status")
        .map(|s| {
            Status::parse(s).ok_or_else(|| field_error("status", "Value is not one of the allowed values."))
        })
        .transpose()?;
    let since = call.q_time("since_last_changed")?;
    let before = call.q_time("before_last_changed")?;
    let since_opt = call.q_time("since_timestamp_opt")?;
    let before_opt = call.q_time("before_timestamp_opt")?;
    let unsub_since = call.q_time("unsubscribed_since")?;
    let vip_only = call.q_bool("vip_only")?.unwrap_or(false);
    let email_type = call.q("email_type");
    let unique = call.q("unique_email_id");
    let sort_field = call.q("sort_field").unwrap_or("last_changed");
    if !matches!(sort_field, "last_changed" | "timestamp_opt" | "timestamp_signup") {
        return Err(field_error("sort_field", "Value is not one of the allowed values."));
    }
    let desc = match call.q("sort_dir").map(str::to_ascii_uppercase).as_deref() {
        None | Some("ASC") => false,
        Some("DESC") => true,
        Some(_) => return Err(field_error("sort_dir", "Value is not one of the allowed values.")),
    };
    let filtered = status.is_some()
        || since_opt.is_some()
        || before_opt.is_some()
        || unsub_since.is_some()
        || vip_only
        || email_type.is_some()
        || unique.is_some();
    let keep = |m: &Member| {
        status.map_or(m.status != Status::Archived, |s| m.status == s)
            && since_opt.is_none_or(|t| m.timestamp_opt.is_some_and(|o| o >= t))
            && before_opt.is_none_or(|t| m.timestamp_opt.is_some_and(|o| o < t))
            && unsub_since.is_none_or(|t| m.status == Status::Unsubscribed && m.last_changed >= t)
            && (!vip_only || m.vip)
            && email_type.is_none_or(|t| m.email_type == t)
            && unique.is_none_or(|u| m.unique_email_id == u)
    };

    let store = mc.read();
    let list = store.lists.get(list_id).ok_or(McError::NotFound)?;
    let lo = since.map_or(Unbounded, |t| Included((t, 0)));
    let hi = before.map_or(Unbounded, |t| Excluded((t, 0)));
    let member = |hash: &String| list.members.get(hash).filter(|m| keep(m));

    let (page, total): (Vec<&Member>, usize) = if sort_field == "last_changed" {
        let mut sig: Vec<(&String, &String)> = call
            .query
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "count" | "offset" | "fields" | "exclude_fields"))
            .collect();
        sig.sort();
        let sig = format!("{list_id}?{sig:?}");
        let hint = mc
            .hints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&sig)
            .filter(|h| h.version == list.version && h.next_offset == offset && offset > 0)
            .cloned();
        let (page, total, last) = match hint {
            Some(h) => {
                let (lo, hi) = if desc { (lo, Excluded(h.last_key)) } else { (Excluded(h.last_key), hi) };
                let mut last = None;
                let page: Vec<&Member> = keys_in(list, lo, hi, desc)
                    .filter_map(|(k, h)| member(h).map(|m| (k, m)))
                    .take(count)
                    .map(|(k, m)| {
                        last = Some(*k);
                        m
                    })
                    .collect();
                (page, h.total, last)
            }
            None => {
                let (mut page, mut last, mut total) = (Vec::new(), None, 0);
                let whole = since.is_none() && before.is_none() && !filtered;
                let by_status = since.is_none()
                    && before.is_none()
                    && status.is_some()
                    && since_opt.is_none()
                    && before_opt.is_none()
                    && unsub_since.is_none()
                    && !vip_only
                    && email_type.is_none()
                    && unique.is_none();
                for (k, h) in keys_in(list, lo, hi, desc) {
                    let Some(m) = member(h) else { continue };
                    if total >= offset && page.len() < count {
                        page.push(m);
                        last = Some(*k);
                    }
                    total += 1;
                    // With counters for the total, stop once the page is full.
                    if (whole || by_status) && page.len() == count {
                        break;
                    }
                }
                if whole {
                    total = list.members.len() - list.count(Status::Archived);
                } else if let (true, Some(s)) = (by_status, status) {
                    total = list.count(s);
                }
                (page, total, last)
            }
        };
        if let Some(last_key) = last {
            let mut hints = mc.hints.lock().unwrap_or_else(|e| e.into_inner());
            if hints.len() > 256 {
                hints.clear();
            }
            let next_offset = offset + page.len();
            hints.insert(sig, PageHint { version: list.version, next_offset, last_key, total });
        }
        (page, total)
    } else {
        let mut all: Vec<&Member> = keys_in(list, lo, hi, false).filter_map(|(_, h)| member(h)).collect();
        let key = |m: &Member| {
            let t = if sort_field == "timestamp_opt" { m.timestamp_opt } else { m.timestamp_signup };
            (t, m.seq)
        };
        all.sort_by_key(|m| key(m));
        if desc {
            all.reverse();
        }
        let total = all.len();
        (all.into_iter().skip(offset).take(count).collect(), total)
    };
    let members = page.iter().map(|m| m.view(list_id, &list.merge_fields)).collect();
    ok_serialized(call, &MemberPage { members, list_id, total_items: total })
}

/// Status counts used by tests and the state dump.
pub(crate) fn status_counts(list: &List) -> HashMap<&'static str, usize> {
    Status::ALL.iter().map(|s| (s.as_str(), list.count(*s))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_validation() {
        assert!(valid_email("ann@example.com"));
        assert!(!valid_email("ann@example"));
        assert!(!valid_email("ann example@x.com"));
        assert!(!valid_email("@x.com"));
    }

    #[test]
    fn hash_accepts_email_or_md5() {
        assert_eq!(resolve_hash("Ann@Example.com"), subscriber_hash("ann@example.com"));
        assert_eq!(resolve_hash("ABCDEF"), "abcdef");
    }
}
