//! Audiences (`/lists`, `/lists/{id}`) and their merge fields
//! (`/lists/{id}/merge-fields[/{merge_id}]`), with the plan's cap on fields:
//! 30 per audience, 80 on Premium (seed `account.premium` or `merge_field_limit`).

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::store::{List, MERGE_TYPES, MergeField, Status, random_id, subscriber_hash};
use super::{Call, Mailchimp, McError, Reply, no_content, ok};

/// Checks the fields `POST /lists` requires, reporting every missing one.
fn validate_list(body: &Map<String, Value>) -> Result<(), McError> {
    let mut errors = Vec::new();
    // Present and not null; only the name must also be non-blank.
    let mut need = |path: &str, v: Option<&Value>| {
        let blank = v.as_ref().is_none_or(|v| v.is_null())
            || (path == "name" && v.and_then(Value::as_str).is_some_and(|s| s.trim().is_empty()));
        if blank {
            errors.push((path.to_string(), "This value should not be blank.".to_string()));
        }
    };
    need("name", body.get("name"));
    need("permission_reminder", body.get("permission_reminder"));
    need("email_type_option", body.get("email_type_option"));
    let contact = body.get("contact");
    need("contact", contact);
    for key in ["company", "address1", "city", "country"] {
        if let Some(c) = contact {
            need(&format!("contact.{key}"), c.get(key));
        }
    }
    let defaults = body.get("campaign_defaults");
    need("campaign_defaults", defaults);
    for key in ["from_name", "from_email", "subject", "language"] {
        if let Some(d) = defaults {
            need(&format!("campaign_defaults.{key}"), d.get(key));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(McError::Invalid {
            detail: "The resource submitted could not be validated. For field-specific details, see the 'errors' array.".into(),
            errors,
        })
    }
}

/// The writable list settings kept from a create body.
const LIST_SETTINGS: [&str; 10] = [
    "name",
    "contact",
    "permission_reminder",
    "use_archive_bar",
    "campaign_defaults",
    "notify_on_subscribe",
    "notify_on_unsubscribe",
    "email_type_option",
    "double_optin",
    "marketing_permissions",
];

pub(crate) fn settings_from(body: &Map<String, Value>) -> Map<String, Value> {
    LIST_SETTINGS.iter().filter_map(|k| body.get(*k).map(|v| (k.to_string(), v.clone()))).collect()
}

pub(crate) fn create_list(mc: &Mailchimp, call: &Call) -> Reply {
    let body: Map<String, Value> = call.json()?;
    validate_list(&body)?;
    let now = mc.now();
    let mut store = mc.write();
    if store.lists.len() >= store.account.max_lists {
        return Err(McError::invalid(format!(
            "You have reached the maximum of {} audiences on your plan.",
            store.account.max_lists
        )));
    }
    let id = random_id(10);
    let web_id = store.ids.next_web_id();
    let list = List::new(id.clone(), web_id, now, settings_from(&body));
    let json = store.list_json(&list);
    store.list_order.push(id.clone());
    store.lists.insert(id, list);
    ok(json)
}

pub(crate) fn get_list(mc: &Mailchimp, id: &str) -> Reply {
    let store = mc.read();
    let list = store.lists.get(id).ok_or(McError::NotFound)?;
    ok(store.list_json(list))
}

pub(crate) fn delete_list(mc: &Mailchimp, id: &str) -> Reply {
    let mut store = mc.write();
    store.lists.remove(id).ok_or(McError::NotFound)?;
    store.list_order.retain(|l| l != id);
    no_content()
}

pub(crate) fn list_lists(mc: &Mailchimp, call: &Call) -> Reply {
    let (count, offset) = call.paging()?;
    let email_hash = call.q("email").map(subscriber_hash);
    let desc = call.q("sort_dir").is_some_and(|d| d.eq_ignore_ascii_case("DESC"));
    let since = call.q_time("since_date_created")?;
    let before = call.q_time("before_date_created")?;
    let store = mc.read();
    let mut lists: Vec<&List> = store
        .list_order
        .iter()
        .filter_map(|id| store.lists.get(id))
        .filter(|l| {
            email_hash.as_ref().is_none_or(|h| l.members.get(h).is_some_and(|m| m.status != Status::Archived))
                && since.is_none_or(|t| l.date_created >= t)
                && before.is_none_or(|t| l.date_created < t)
        })
        .collect();
    if desc {
        lists.reverse();
    }
    let total = lists.len();
    let page: Vec<Value> = lists.into_iter().skip(offset).take(count).map(|l| store.list_json(l)).collect();
    let max = store.account.max_lists;
    ok(json!({
        "lists": page,
        "total_items": total,
        "constraints": {
            "may_create": store.lists.len() < max,
            "max_instances": max,
            "current_total_instances": store.lists.len(),
        },
    }))
}

#[derive(Deserialize)]
struct MergeFieldBody {
    tag: Option<String>,
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    required: Option<bool>,
    default_value: Option<String>,
    public: Option<bool>,
    display_order: Option<i64>,
    options: Option<Map<String, Value>>,
    help_text: Option<String>,
}

fn bad_field(field: &str, message: &str) -> McError {
    McError::Invalid {
        detail: "The resource submitted could not be validated. For field-specific details, see the 'errors' array.".into(),
        errors: vec![(field.into(), message.into())],
    }
}

/// Merge tags: up to 10 uppercase letters, digits or underscores.
fn check_tag(list: &List, tag: &str, except: Option<u64>) -> Result<(), McError> {
    if tag.is_empty()
        || tag.len() > 10
        || !tag.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(bad_field(
            "tag",
            "Merge tags may have at most 10 characters: letters, digits and underscores.",
        ));
    }
    if list.merge_fields.iter().any(|f| f.tag == tag && Some(f.merge_id) != except) {
        return Err(McError::invalid(format!(
            "A Merge Field with the tag \"{tag}\" already exists for this list."
        )));
    }
    Ok(())
}

fn merge_options(kind: &str, given: Option<Map<String, Value>>) -> Value {
    let mut options = MergeField::default_options(kind);
    if let (Value::Object(base), Some(given)) = (&mut options, given) {
        base.extend(given);
    }
    options
}

pub(crate) fn list_merge_fields(mc: &Mailchimp, call: &Call, list_id: &str) -> Reply {
    let (count, offset) = call.paging()?;
    let kind = call.q("type");
    let required = call.q_bool("required")?;
    let store = mc.read();
    let list = store.lists.get(list_id).ok_or(McError::NotFound)?;
    let all: Vec<&MergeField> = list
        .merge_fields
        .iter()
        .filter(|f| kind.is_none_or(|k| f.kind == k) && required.is_none_or(|r| f.required == r))
        .collect();
    let page: Vec<Value> = all.iter().skip(offset).take(count).map(|f| f.to_json(list_id)).collect();
    ok(json!({"merge_fields": page, "list_id": list_id, "total_items": all.len()}))
}

pub(crate) fn create_merge_field(mc: &Mailchimp, call: &Call, list_id: &str) -> Reply {
    let body: MergeFieldBody = call.json()?;
    let name = body
        .name
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| bad_field("name", "This value should not be blank."))?;
    let kind = body.kind.ok_or_else(|| bad_field("type", "This value should not be blank."))?;
    if !MERGE_TYPES.contains(&kind.as_str()) {
        return Err(bad_field("type", "Value is not one of the allowed values."));
    }
    let mut store = mc.write();
    let limit = store.account.merge_field_limit();
    let list = store.lists.get_mut(list_id).ok_or(McError::NotFound)?;
    if list.merge_fields.len() >= limit {
        return Err(McError::invalid(format!(
            "This audience already has the maximum of {limit} merge fields (audience fields) its plan allows."
        )));
    }
    let tag = match body.tag.map(|t| t.trim().to_uppercase()).filter(|t| !t.is_empty()) {
        Some(tag) => tag,
        None => format!("MMERGE{}", list.next_merge_id),
    };
    check_tag(list, &tag, None)?;
    let options = merge_options(&kind, body.options);
    let field = list.add_merge_field(tag, name, &kind, body.required.unwrap_or(false), Some(options));
    if let Some(v) = body.default_value {
        field.default_value = v;
    }
    if let Some(v) = body.public {
        field.public = v;
    }
    if let Some(v) = body.display_order {
        field.display_order = v;
    }
    if let Some(v) = body.help_text {
        field.help_text = v;
    }
    let json = field.to_json(list_id);
    list.version += 1;
    ok(json)
}

fn merge_id(mid: &str) -> Result<u64, McError> {
    mid.parse().map_err(|_| McError::NotFound)
}

pub(crate) fn get_merge_field(mc: &Mailchimp, list_id: &str, mid: &str) -> Reply {
    let id = merge_id(mid)?;
    let store = mc.read();
    let list = store.lists.get(list_id).ok_or(McError::NotFound)?;
    let field = list.merge_fields.iter().find(|f| f.merge_id == id).ok_or(McError::NotFound)?;
    ok(field.to_json(list_id))
}

pub(crate) fn patch_merge_field(mc: &Mailchimp, call: &Call, list_id: &str, mid: &str) -> Reply {
    let id = merge_id(mid)?;
    let body: MergeFieldBody = call.json()?;
    let mut store = mc.write();
    let list = store.lists.get_mut(list_id).ok_or(McError::NotFound)?;
    let idx = list.merge_fields.iter().position(|f| f.merge_id == id).ok_or(McError::NotFound)?;
    if let Some(kind) = &body.kind
        && *kind != list.merge_fields[idx].kind
    {
        return Err(bad_field("type", "The type of a merge field cannot be changed."));
    }
    if let Some(tag) = body.tag.map(|t| t.trim().to_uppercase()) {
        check_tag(list, &tag, Some(id))?;
        let old = std::mem::replace(&mut list.merge_fields[idx].tag, tag.clone());
        if old != tag {
            for m in list.members.values_mut() {
                if let Some(v) = m.merge_fields.remove(&old) {
                    m.merge_fields.insert(tag.clone(), v);
                }
            }
        }
    }
    let field = &mut list.merge_fields[idx];
    if let Some(v) = body.name.filter(|n| !n.trim().is_empty()) {
        field.name = v;
    }
    if let Some(v) = body.required {
        field.required = v;
    }
    if let Some(v) = body.default_value {
        field.default_value = v;
    }
    if let Some(v) = body.public {
        field.public = v;
    }
    if let Some(v) = body.display_order {
        field.display_order = v;
    }
    if let Some(v) = body.help_text {
        field.help_text = v;
    }
    if let Some(given) = body.options {
        field.options = merge_options(&field.kind.clone(), Some(given));
    }
    let json = field.to_json(list_id);
    list.version += 1;
    ok(json)
}

/// Deleting a field deletes its data: members stop showing the tag.
pub(crate) fn delete_merge_field(mc: &Mailchimp, list_id: &str, mid: &str) -> Reply {
    let id = merge_id(mid)?;
    let mut store = mc.write();
    let list = store.lists.get_mut(list_id).ok_or(McError::NotFound)?;
    let idx = list.merge_fields.iter().position(|f| f.merge_id == id).ok_or(McError::NotFound)?;
    let field = list.merge_fields.remove(idx);
    for m in list.members.values_mut() {
        m.merge_fields.remove(&field.tag);
    }
    list.version += 1;
    no_content()
}
