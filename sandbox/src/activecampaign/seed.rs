//! The seed JSON (what `POST /__sandbox/seed` adds) and the state JSON (what
//! `GET /__sandbox/state` shows); both are documented in the module docs.

use chrono::{DateTime, FixedOffset};
use serde_json::{Map, Value, json};

use super::accounts::{insert_account, insert_field_meta};
use super::api::{id_attr, seed_ts, str_attr};
use super::contacts::insert_field;
use super::render::value_string;
use super::store::{Activity, Automation, Campaign, MAX_SEED_ID, Store, TrackingLog, valid_email};

fn items<'a>(data: &'a Value, key: &str) -> &'a [Value] {
    data.get(key).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn labels(v: &Value) -> Vec<String> {
    v.get("labels")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// An explicit id (bounded) or the next one of `kind`.
fn seed_id(s: &mut Store, v: &Value, kind: &'static str) -> Result<u64, String> {
    match id_attr(v, "id") {
        Some(id) if id == 0 || id > MAX_SEED_ID => {
            Err(format!("{kind} id {id} is out of range 1..={MAX_SEED_ID}"))
        }
        Some(id) => {
            s.ids.bump(kind, id);
            Ok(id)
        }
        None => Ok(s.ids.next(kind)),
    }
}

/// Adds seed data to the store.
pub fn seed(s: &mut Store, data: &Value, now: i64) -> Result<(), String> {
    if !data.is_object() {
        return Err("the ActiveCampaign seed must be a JSON object".into());
    }
    if let Some(off) = data.get("utc_offset").and_then(Value::as_str) {
        s.utc_offset = off.parse::<FixedOffset>().map_err(|e| format!("utc_offset {off:?}: {e}"))?;
    }
    let off = s.utc_offset;
    for f in items(data, "fields") {
        insert_field(s, f, id_attr(f, "id"), now).map_err(|e| format!("field: {e}"))?;
    }
    for t in items(data, "tags") {
        let name = str_attr(t, "tag").unwrap_or_default();
        let kind = str_attr(t, "tagType").unwrap_or_default();
        s.create_tag(&name, &kind, &str_attr(t, "description").unwrap_or_default(), now)
            .map_err(|e| format!("tag {name:?}: {e}"))?;
    }
    for m in items(data, "accountCustomFieldMeta") {
        insert_field_meta(s, m, now).map_err(|e| format!("accountCustomFieldMeta: {e}"))?;
    }
    for a in items(data, "accounts") {
        insert_account(s, a, now).map_err(|e| format!("account: {e}"))?;
    }
    for c in items(data, "contacts") {
        seed_contact(s, c, now)?;
    }
    if let Some(g) = data.get("generate_contacts") {
        let count = id_attr(g, "count").ok_or("generate_contacts.count is required")?;
        let prefix = str_attr(g, "prefix").unwrap_or_else(|| "contact".into());
        let domain = str_attr(g, "domain").unwrap_or_else(|| "example.com".into());
        for i in 0..count {
            let email = format!("{prefix}{i}@{domain}");
            if s.contact_by_email(&email).is_some() {
                continue;
            }
            let id = s.ids.next("contact");
            s.insert_contact(id, email, now, now);
            if let Some(c) = s.contacts.get_mut(&id) {
                c.first_name = format!("First{i}");
                c.last_name = format!("Last{i}");
            }
        }
    }
    for a in items(data, "automations") {
        let id = seed_id(s, a, "automation")?;
        s.automations.insert(
            id,
            Automation {
                id,
                name: str_attr(a, "name").unwrap_or_else(|| format!("Automation {id}")),
                status: str_attr(a, "status").unwrap_or_else(|| "1".into()),
                labels: labels(a),
                entered: id_attr(a, "entered").unwrap_or(0),
                exited: id_attr(a, "exited").unwrap_or(0),
                cdate: seed_ts(a.get("cdate"), off, now)?,
                mdate: seed_ts(a.get("mdate"), off, now)?,
            },
        );
    }
    for c in items(data, "campaigns") {
        let id = seed_id(s, c, "campaign")?;
        let opt_ts = |key: &str| -> Result<Option<i64>, String> {
            c.get(key).filter(|v| !v.is_null()).map(|v| seed_ts(Some(v), off, now)).transpose()
        };
        let sdate = opt_ts("sdate")?;
        s.campaigns.insert(
            id,
            Campaign {
                id,
                name: str_attr(c, "name").unwrap_or_else(|| format!("Campaign {id}")),
                kind: str_attr(c, "type").unwrap_or_else(|| "single".into()),
                status: str_attr(c, "status").unwrap_or_else(|| "0".into()),
                labels: labels(c),
                automation: id_attr(c, "automation"),
                cdate: seed_ts(c.get("cdate"), off, now)?,
                mdate: seed_ts(c.get("mdate"), off, now)?,
                sdate,
                ldate: opt_ts("ldate")?.or(sdate),
                send_amt: id_attr(c, "send_amt").unwrap_or(0),
                opens: id_attr(c, "opens").unwrap_or(0),
                linkclicks: id_attr(c, "linkclicks").unwrap_or(0),
            },
        );
    }
    for a in items(data, "activities") {
        let contact = seed_contact_ref(s, a)?;
        let kind = str_attr(a, "type").unwrap_or_else(|| "open".into());
        let (reference_type, action) = activity_kind(&kind)?;
        let reference_id = id_attr(a, "campaign")
            .or_else(|| id_attr(a, "automation"))
            .or_else(|| id_attr(a, "reference_id"))
            .unwrap_or(0);
        s.add_activity(Activity {
            id: 0,
            contact,
            tstamp: seed_ts(a.get("tstamp"), off, now)?,
            reference_type: reference_type.into(),
            reference_id,
            reference_action: str_attr(a, "reference_action").unwrap_or_else(|| action.into()),
            data: a.get("data").cloned().unwrap_or(Value::Null),
        });
    }
    for t in items(data, "trackingLogs") {
        let contact = seed_contact_ref(s, t)?;
        s.add_tracking_log(TrackingLog {
            id: 0,
            contact,
            kind: str_attr(t, "type").unwrap_or_else(|| "open".into()),
            tstamp: seed_ts(t.get("tstamp"), off, now)?,
            value: str_attr(t, "value").unwrap_or_default(),
            campaign: id_attr(t, "campaign"),
        });
    }
    Ok(())
}

/// Activity seed `type` → (AC `reference_type`, `reference_action`).
fn activity_kind(kind: &str) -> Result<(&'static str, &'static str), String> {
    Ok(match kind {
        "sent" | "send" => ("CampaignSend", "sent"),
        "open" => ("CampaignOpen", "open"),
        "reply" => ("CampaignReply", "reply"),
        "click" => ("LinkClick", "click"),
        "automation_entered" => ("AutomationEntered", "entered"),
        "automation_completed" => ("AutomationCompleted", "completed"),
        "site" => ("SiteTracking", "visit"),
        "event" => ("EventTracking", "event"),
        "email" => ("SubscriberEmail", ""),
        other => return Err(format!("unknown activity type {other:?}")),
    })
}

/// The contact an activity or tracking log names by `contact` id or `email`.
fn seed_contact_ref(s: &Store, v: &Value) -> Result<u64, String> {
    if let Some(id) = id_attr(v, "contact") {
        return s.contacts.contains_key(&id).then_some(id).ok_or_else(|| format!("no contact with id {id}"));
    }
    let email = str_attr(v, "email").ok_or("an activity needs `contact` or `email`")?;
    s.contact_by_email(&email).map(|c| c.id).ok_or_else(|| format!("no contact with email {email:?}"))
}

fn seed_contact(s: &mut Store, c: &Value, now: i64) -> Result<(), String> {
    let email = str_attr(c, "email").map(|e| e.trim().to_string()).unwrap_or_default();
    if !valid_email(&email) {
        return Err(format!("contact email {email:?} is not valid"));
    }
    if s.contact_by_email(&email).is_some() {
        return Err(format!("contact email {email:?} already exists"));
    }
    let off = s.utc_offset;
    let cdate = seed_ts(c.get("cdate"), off, now)?;
    let udate = seed_ts(c.get("udate"), off, cdate)?;
    let id = seed_id(s, c, "contact")?;
    if s.contacts.contains_key(&id) {
        return Err(format!("contact id {id} already exists"));
    }
    s.insert_contact(id, email, cdate, udate);
    if let Some(contact) = s.contacts.get_mut(&id) {
        contact.first_name = str_attr(c, "firstName").unwrap_or_default();
        contact.last_name = str_attr(c, "lastName").unwrap_or_default();
        contact.phone = str_attr(c, "phone").unwrap_or_default();
    }
    for fv in items(c, "fieldValues") {
        let field = id_attr(fv, "field").ok_or("fieldValues[].field is required")?;
        if !s.fields.contains_key(&field) {
            return Err(format!("contact {id}: no custom field {field}"));
        }
        s.set_field_value(id, field, value_string(fv.get("value").unwrap_or(&Value::Null)), udate);
    }
    for tag in items(c, "tags").iter().filter_map(Value::as_str) {
        let tag = s.ensure_tag(tag, cdate);
        s.add_contact_tag(id, tag, cdate).map_err(|e| e.to_string())?;
    }
    for l in items(c, "lists") {
        let list = id_attr(l, "list").ok_or("lists[].list is required")?;
        let status = id_attr(l, "status").unwrap_or(1).min(2) as u8;
        s.set_list_status(id, list, status, cdate);
    }
    if let Some(name) = str_attr(c, "account") {
        let account = match s.account_by_name(&name) {
            Some(a) => a.id,
            None => insert_account(s, &json!({ "name": name }), now).map_err(|e| e.to_string())?,
        };
        s.link_account(id, account, &str_attr(c, "jobTitle").unwrap_or_default(), now)
            .map_err(|e| e.to_string())?;
    }
    // Tags and field values above must not move the seeded udate.
    s.touch(id, udate);
    Ok(())
}

fn rfc(t: i64) -> Value {
    DateTime::from_timestamp(t, 0).map_or(Value::Null, |t| Value::String(t.to_rfc3339()))
}

fn opt_rfc(t: Option<i64>) -> Value {
    t.map_or(Value::Null, rfc)
}

/// The whole account as JSON for tests.
pub fn state(s: &Store) -> Value {
    let contacts: Vec<Value> = s
        .contacts
        .values()
        .map(|c| {
            let fields: Map<String, Value> = c
                .field_values
                .iter()
                .filter_map(|fv| s.field_values.get(fv))
                .map(|fv| (fv.field.to_string(), Value::String(fv.value.clone())))
                .collect();
            let tags: Vec<&str> = c
                .contact_tags
                .iter()
                .filter_map(|ct| s.contact_tags.get(ct))
                .filter_map(|ct| s.tags.get(&ct.tag))
                .map(|t| t.tag.as_str())
                .collect();
            let lists: Map<String, Value> =
                c.lists.iter().map(|m| (m.list.to_string(), json!(m.status))).collect();
            let account = c.account_contact.and_then(|x| s.account_contacts.get(&x)).map(|x| x.account);
            json!({
                "id": c.id, "email": c.email, "firstName": c.first_name, "lastName": c.last_name,
                "phone": c.phone, "cdate": rfc(c.cdate), "udate": rfc(c.udate),
                "fieldValues": fields, "tags": tags, "lists": lists, "account": account,
            })
        })
        .collect();
    let fields: Vec<Value> = s
        .fields
        .values()
        .map(|f| json!({"id": f.id, "title": f.title, "type": f.kind, "perstag": f.perstag}))
        .collect();
    let tags: Vec<Value> =
        s.tags.values().map(|t| json!({"id": t.id, "tag": t.tag, "tagType": t.tag_type})).collect();
    let accounts: Vec<Value> = s
        .accounts
        .values()
        .map(|a| {
            let fields: Map<String, Value> = s
                .account_field_data
                .values()
                .filter(|d| d.account == a.id)
                .map(|d| (d.field.to_string(), d.value.clone()))
                .collect();
            json!({"id": a.id, "name": a.name, "accountUrl": a.account_url, "created": rfc(a.created), "updated": rfc(a.updated), "fields": fields})
        })
        .collect();
    let account_contacts: Vec<Value> = s
        .account_contacts
        .values()
        .map(|x| json!({"id": x.id, "account": x.account, "contact": x.contact, "jobTitle": x.job_title}))
        .collect();
    let meta: Vec<Value> = s
        .account_field_meta
        .values()
        .map(|m| json!({"id": m.id, "fieldLabel": m.label, "fieldType": m.kind, "fieldOptions": m.options}))
        .collect();
    let automations: Vec<Value> = s
        .automations
        .values()
        .map(|a| json!({"id": a.id, "name": a.name, "status": a.status, "labels": a.labels, "entered": a.entered}))
        .collect();
    let contact_automations: Vec<Value> = s
        .contact_automations
        .values()
        .map(|x| json!({"id": x.id, "contact": x.contact, "automation": x.automation, "adddate": rfc(x.adddate), "status": x.status}))
        .collect();
    let campaigns: Vec<Value> = s
        .campaigns
        .values()
        .map(|c| json!({"id": c.id, "name": c.name, "type": c.kind, "status": c.status, "labels": c.labels, "sdate": opt_rfc(c.sdate)}))
        .collect();
    let activities: Vec<Value> = s
        .activities
        .values()
        .map(|a| json!({"id": a.id, "contact": a.contact, "tstamp": rfc(a.tstamp), "reference_type": a.reference_type, "reference_id": a.reference_id}))
        .collect();
    let tracking: Vec<Value> = s
        .tracking_logs
        .values()
        .map(|t| json!({"id": t.id, "contact": t.contact, "type": t.kind, "tstamp": rfc(t.tstamp), "campaign": t.campaign}))
        .collect();
    let mut imports: Vec<Value> = s
        .imports
        .values()
        .map(|i| {
            json!({
                "batchId": i.batch_id, "accepted": rfc(i.accepted),
                "status": if i.completed.is_some() { "completed" } else { "queued" },
                "queued": i.contacts.len(), "success": i.success, "failure": i.failure,
            })
        })
        .collect();
    imports.sort_by(|a, b| a["accepted"].as_str().cmp(&b["accepted"].as_str()));
    json!({
        "contacts": contacts,
        "fields": fields,
        "tags": tags,
        "accounts": accounts,
        "accountContacts": account_contacts,
        "accountCustomFieldMeta": meta,
        "automations": automations,
        "contactAutomations": contact_automations,
        "campaigns": campaigns,
        "activities": activities,
        "trackingLogs": tracking,
        "imports": imports,
        "counts": {
            "contacts": s.contacts.len(), "fieldValues": s.field_values.len(), "tags": s.tags.len(),
            "contactTags": s.contact_tags.len(), "accounts": s.accounts.len(), "imports": s.imports.len(),
            "pendingImports": s.pending_imports.len(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_link_everything_and_keep_udate() {
        let mut s = Store::default();
        let data = json!({
            "fields": [{"id": 4, "title": "Industry", "type": "text"}],
            "contacts": [{"id": 9, "email": "a@b.io", "udate": 1000, "cdate": 900,
                          "fieldValues": [{"field": 4, "value": "Retail"}], "tags": ["vip"], "account": "Acme"}],
            "automations": [{"name": "Welcome", "labels": ["Salesforce"]}],
            "activities": [{"email": "a@b.io", "type": "open", "tstamp": 1200, "campaign": 3}],
        });
        seed(&mut s, &data, 5000).expect("seed");
        let st = state(&s);
        assert_eq!(st["contacts"][0]["fieldValues"]["4"], "Retail");
        assert_eq!(st["contacts"][0]["tags"][0], "vip");
        assert_eq!(st["contacts"][0]["udate"], rfc(1000));
        assert_eq!(st["accounts"][0]["name"], "Acme");
        assert_eq!(st["activities"][0]["reference_type"], "CampaignOpen");
        assert!(seed(&mut s, &json!({"contacts": [{"email": "A@b.io"}]}), 1).is_err());
        assert!(seed(&mut s, &json!({"activities": [{"contact": 1, "type": "nope"}]}), 1).is_err());
    }
}
