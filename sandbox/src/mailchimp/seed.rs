//! The seed (`POST /__sandbox/seed`) and state (`GET /__sandbox/state`) JSON;
//! both shapes are documented in the module docs of [`super`].

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::Mailchimp;
use super::lists::settings_from;
use super::store::{
    Account, Activity, Campaign, List, MERGE_TYPES, Member, MergeField, Role, Status, random_id,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Seed {
    #[serde(default)]
    account: Option<Map<String, Value>>,
    #[serde(default)]
    api_keys: Vec<SeedKey>,
    #[serde(default)]
    batch_polls_to_finish: Option<u32>,
    #[serde(default)]
    lists: Vec<Map<String, Value>>,
    #[serde(default)]
    campaigns: Vec<Campaign>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedKey {
    key: String,
    #[serde(default = "owner")]
    role: Role,
}

fn owner() -> Role {
    Role::Owner
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedMergeField {
    tag: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(rename = "type", default = "text")]
    kind: String,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    options: Option<Map<String, Value>>,
    #[serde(default)]
    default_value: Option<String>,
}

fn text() -> String {
    "text".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedMember {
    email_address: String,
    #[serde(default)]
    status: Option<Status>,
    #[serde(default)]
    merge_fields: Map<String, Value>,
    #[serde(default)]
    interests: Map<String, Value>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    last_changed: Option<DateTime<Utc>>,
    #[serde(default)]
    timestamp_opt: Option<DateTime<Utc>>,
    #[serde(default)]
    timestamp_signup: Option<DateTime<Utc>>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    vip: bool,
    #[serde(default)]
    email_type: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    activity: Vec<Activity>,
}

fn default_settings(name: &str) -> Map<String, Value> {
    let v = json!({
        "name": name,
        "contact": {
            "company": "crmsync sandbox", "address1": "1 Sandbox Way", "address2": "",
            "city": "Atlanta", "state": "GA", "zip": "30308", "country": "US", "phone": "",
        },
        "permission_reminder": "You signed up on our website.",
        "campaign_defaults": {
            "from_name": "crmsync", "from_email": "news@sandbox.example",
            "subject": "", "language": "en",
        },
        "email_type_option": false,
    });
    match v {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

pub(crate) fn seed(mc: &Mailchimp, data: Value) -> Result<(), String> {
    let seed: Seed = serde_json::from_value(data).map_err(|e| e.to_string())?;
    let now = mc.now();
    let mut store = mc.write();
    let store = &mut *store;
    if let Some(changes) = seed.account {
        let mut account = serde_json::to_value(&store.account).map_err(|e| e.to_string())?;
        if let Value::Object(map) = &mut account {
            map.extend(changes);
        }
        store.account = serde_json::from_value::<Account>(account).map_err(|e| format!("account: {e}"))?;
    }
    for key in seed.api_keys {
        store.extra_keys.insert(key.key, key.role);
    }
    if let Some(n) = seed.batch_polls_to_finish {
        store.batch_polls_to_finish = n;
    }
    for mut raw in seed.lists {
        let id =
            raw.remove("id").and_then(|v| v.as_str().map(str::to_string)).unwrap_or_else(|| random_id(10));
        let fields: Vec<SeedMergeField> = match raw.remove("merge_fields") {
            Some(v) => serde_json::from_value(v).map_err(|e| format!("list {id}: merge_fields: {e}"))?,
            None => Vec::new(),
        };
        let members: Vec<SeedMember> = match raw.remove("members") {
            Some(v) => serde_json::from_value(v).map_err(|e| format!("list {id}: members: {e}"))?,
            None => Vec::new(),
        };
        let created = match raw.remove("date_created") {
            Some(v) => serde_json::from_value(v).map_err(|e| format!("list {id}: date_created: {e}"))?,
            None => now,
        };
        if !store.lists.contains_key(&id) {
            let name = raw.get("name").and_then(Value::as_str).unwrap_or("Sandbox Audience").to_string();
            let mut settings = default_settings(&name);
            settings.extend(settings_from(&raw));
            let web_id = store.ids.next_web_id();
            store.list_order.push(id.clone());
            store.lists.insert(id.clone(), List::new(id.clone(), web_id, created, settings));
        }
        let Some(list) = store.lists.get_mut(&id) else { continue };
        for f in fields {
            if !MERGE_TYPES.contains(&f.kind.as_str()) {
                return Err(format!("list {id}: merge field {}: unknown type {}", f.tag, f.kind));
            }
            let mut options = MergeField::default_options(&f.kind);
            if let (Value::Object(base), Some(given)) = (&mut options, f.options) {
                base.extend(given);
            }
            let name = f.name.unwrap_or_else(|| f.tag.clone());
            let field = match list.merge_fields.iter().position(|m| m.tag == f.tag) {
                Some(i) => {
                    let field = &mut list.merge_fields[i];
                    field.name = name;
                    field.kind = f.kind;
                    field.required = f.required;
                    field.options = options;
                    field
                }
                None => list.add_merge_field(f.tag, name, &f.kind, f.required, Some(options)),
            };
            if let Some(v) = f.default_value {
                field.default_value = v;
            }
        }
        for sm in members {
            if !sm.email_address.contains('@') {
                return Err(format!("list {id}: member {:?} has no valid email_address", sm.email_address));
            }
            if let Some(tag) = sm.merge_fields.keys().find(|t| list.merge_field(t).is_none()) {
                return Err(format!(
                    "list {id}: member {}: merge field {tag} is not defined on the list",
                    sm.email_address
                ));
            }
            let web_id = store.ids.next_web_id();
            let mut m = match list.members.get(&super::store::subscriber_hash(&sm.email_address)) {
                Some(existing) => existing.clone(),
                None => Member::new(&sm.email_address, web_id),
            };
            let status = sm.status.unwrap_or(Status::Subscribed);
            m.status = status;
            m.prior_status = (status == Status::Archived).then_some(Status::Subscribed);
            m.unsubscribe_reason =
                (status == Status::Unsubscribed).then(|| "N/A (Unsubscribed by an admin)".to_string());
            m.merge_fields.extend(sm.merge_fields);
            m.interests.extend(sm.interests);
            for tag in sm.tags {
                if !m.tags.iter().any(|(_, n, _)| *n == tag) {
                    let tid = list.tag_id(&tag, &mut store.ids);
                    m.tags.push((tid, tag, now));
                }
            }
            m.last_changed = super::store::secs(sm.last_changed.unwrap_or(now));
            m.timestamp_opt = sm.timestamp_opt.or(m.timestamp_opt);
            m.timestamp_signup = sm.timestamp_signup.or(m.timestamp_signup);
            if let Some(l) = sm.language {
                m.language = l;
            }
            m.vip = sm.vip;
            if let Some(t) = sm.email_type {
                m.email_type = t;
            }
            if let Some(s) = sm.source {
                m.source = s;
            }
            m.activity.extend(sm.activity);
            m.seq = store.ids.next_seq();
            list.put_member(m);
        }
    }
    for mut c in seed.campaigns {
        if c.id.is_empty() {
            c.id = random_id(10);
        }
        c.web_id = store.ids.next_web_id();
        if c.create_time.is_none() {
            c.create_time = Some(now);
        }
        store.campaigns.insert(c.id.clone(), c);
    }
    Ok(())
}

pub(crate) fn state(mc: &Mailchimp) -> Value {
    let store = mc.read();
    let lists: Vec<Value> = store
        .list_order
        .iter()
        .filter_map(|id| store.lists.get(id))
        .map(|list| {
            let mut v = store.list_json(list);
            v["merge_fields"] = list.merge_fields.iter().map(|f| f.to_json(&list.id)).collect();
            v["members"] = list
                .by_changed
                .values()
                .filter_map(|h| list.members.get(h))
                .map(|m| {
                    let mut j = m.to_json(&list.id, &list.merge_fields);
                    j["activity"] = serde_json::to_value(&m.activity).unwrap_or(Value::Null);
                    j
                })
                .collect();
            let mut forgotten: Vec<&String> = list.forgotten.iter().collect();
            forgotten.sort();
            v["forgotten"] = json!(forgotten);
            v["status_counts"] = json!(super::members::status_counts(list));
            v
        })
        .collect();
    let campaigns: Vec<&Campaign> = store.campaigns.values().collect();
    let batches: Vec<Value> =
        store.batch_order.iter().filter_map(|id| store.batches.get(id)).map(|b| b.to_json()).collect();
    json!({
        "account": store.account,
        "lists": lists,
        "campaigns": campaigns,
        "batches": batches,
        "batch_polls_to_finish": store.batch_polls_to_finish,
    })
}
