//! Automations (`/automations`, `/contactAutomations`), campaigns
//! (`/campaigns`), contact activities (`/activities`) and tracking logs
//! (`/contacts/{id}/trackingLogs`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::ActiveCampaign;
use super::api::{AcError, AcResult, Base, Params, created, id_attr, ok, parse_body, parse_date, wrapped};
use super::contacts::path_id;
use super::render::View;
use super::store::{Activity, ContactAutomation};

type Ac = State<Arc<ActiveCampaign>>;

/// Whether `labels` holds `name`, case-insensitively.
fn has_label(labels: &[String], name: Option<&str>) -> bool {
    name.is_none_or(|n| labels.iter().any(|l| l.eq_ignore_ascii_case(n.trim())))
}

pub async fn list_automations(State(ac): Ac, base: Base, p: Params) -> AcResult {
    let (limit, offset) = p.page()?;
    let label = p.value("filters[label_name]");
    let name = p.value("filters[name]").map(str::to_lowercase);
    let s = ac.read();
    let view = View { s: &s, base: &base };
    let matching = s.automations.values().filter(|a| {
        has_label(&a.labels, label)
            && name.as_ref().is_none_or(|n| a.name.to_lowercase().contains(n.as_str()))
    });
    let total = matching.clone().count();
    let rows: Vec<Value> = matching.skip(offset).take(limit).map(|a| view.automation(a)).collect();
    let filtered = label.is_some() || name.is_some();
    ok(json!({
        "automations": rows,
        "meta": { "total": total.to_string(), "starts": [], "filtered": filtered, "smsLogs": [] },
    }))
}

/// `POST /contactAutomations` `{"contactAutomation": {"contact", "automation"}}`.
pub async fn add_to_automation(State(ac): Ac, base: Base, body: Bytes) -> AcResult {
    let body = parse_body(&body)?;
    let ca = wrapped(&body, "contactAutomation");
    let contact = id_attr(ca, "contact")
        .ok_or_else(|| AcError::missing("The contact attribute was not provided", "contact"))?;
    let automation = id_attr(ca, "automation")
        .ok_or_else(|| AcError::missing("The automation attribute was not provided", "automation"))?;
    let now = ac.now();
    let mut s = ac.write();
    s.contact(contact)?;
    let active = s.automations.get(&automation).map(|a| a.status == "1");
    match active {
        None => return Err(AcError::not_found("Series", automation)),
        Some(false) => return Err(AcError::Forbidden("Could not create SubscriberSeries".into())),
        Some(true) => {}
    }
    let id = s.ids.next("contactAutomation");
    s.contact_automations
        .insert(id, ContactAutomation { id, contact, automation, adddate: now, status: 1, remdate: None });
    if let Some(c) = s.contacts.get_mut(&contact) {
        c.automations.push(id);
    }
    if let Some(a) = s.automations.get_mut(&automation) {
        a.entered += 1;
    }
    s.add_activity(Activity {
        id: 0,
        contact,
        tstamp: now,
        reference_type: "AutomationEntered".into(),
        reference_id: automation,
        reference_action: "entered".into(),
        data: Value::Null,
    });
    let view = View { s: &s, base: &base };
    let c = s.contact(contact)?;
    let mut rendered = s.contact_automations.get(&id).map(|x| view.contact_automation(x)).unwrap_or_default();
    // The create answer has numeric startid/status, as AC's example shows.
    rendered["startid"] = json!(0);
    rendered["status"] = json!(1);
    created(json!({ "contacts": [view.contact(c)], "contactAutomation": rendered }))
}

pub async fn list_contact_automations(State(ac): Ac, base: Base, p: Params) -> AcResult {
    let (limit, offset) = p.page()?;
    let contact = p.num("filters[contact]")?;
    let series = p.num("filters[seriesid]")?;
    let s = ac.read();
    let view = View { s: &s, base: &base };
    let matching = s
        .contact_automations
        .values()
        .filter(|x| contact.is_none_or(|c| x.contact == c) && series.is_none_or(|a| x.automation == a));
    let total = matching.clone().count();
    let rows: Vec<Value> = matching.skip(offset).take(limit).map(|x| view.contact_automation(x)).collect();
    ok(json!({ "contactAutomations": rows, "meta": { "total": total.to_string(), "showcase_stats": [] } }))
}

pub async fn contact_automations_of(State(ac): Ac, base: Base, Path(raw): Path<String>) -> AcResult {
    let id = path_id(&raw, "Subscriber")?;
    let s = ac.read();
    let view = View { s: &s, base: &base };
    let rows: Vec<Value> = s
        .contact(id)?
        .automations
        .iter()
        .filter_map(|x| s.contact_automations.get(x))
        .map(|x| {
            let mut v = view.contact_automation(x);
            // This endpoint sends element counts as numbers.
            v["completedElements"] = json!(0);
            v["totalElements"] = json!(0);
            v["links"]["automationLogs"] =
                json!(base.link(&format!("contactAutomations/{}/automationLogs", x.id)));
            v
        })
        .collect();
    ok(json!({ "contactAutomations": rows }))
}

pub async fn retrieve_contact_automation(State(ac): Ac, base: Base, Path(raw): Path<String>) -> AcResult {
    let id = path_id(&raw, "SubscriberSeries")?;
    let s = ac.read();
    let x = s.contact_automations.get(&id).ok_or_else(|| AcError::not_found("SubscriberSeries", id))?;
    ok(json!({ "contactAutomation": View { s: &s, base: &base }.contact_automation(x) }))
}

pub async fn remove_from_automation(State(ac): Ac, Path(raw): Path<String>) -> AcResult {
    let id = path_id(&raw, "SubscriberSeries")?;
    let mut s = ac.write();
    let x = s.contact_automations.remove(&id).ok_or_else(|| AcError::not_found("SubscriberSeries", id))?;
    if let Some(c) = s.contacts.get_mut(&x.contact) {
        c.automations.retain(|a| *a != id);
    }
    if let Some(a) = s.automations.get_mut(&x.automation) {
        a.exited += 1;
    }
    ok(json!({}))
}

pub async fn list_campaigns(State(ac): Ac, base: Base, p: Params) -> AcResult {
    let (limit, offset) = p.page()?;
    let label = p.value("filters[label_name]");
    let series = p.num("filters[seriesid]")?;
    let s = ac.read();
    let view = View { s: &s, base: &base };
    let mut matching: Vec<_> = s
        .campaigns
        .values()
        .filter(|c| has_label(&c.labels, label) && series.is_none_or(|a| c.automation == Some(a)))
        .collect();
    match p.order(&["sdate", "ldate"]) {
        Some(("sdate", desc)) => {
            matching.sort_by_key(|c| (c.sdate, c.id));
            if desc {
                matching.reverse();
            }
        }
        Some((_, desc)) => {
            matching.sort_by_key(|c| (c.ldate, c.id));
            if desc {
                matching.reverse();
            }
        }
        None => {}
    }
    let total = matching.len();
    let rows: Vec<Value> = matching.into_iter().skip(offset).take(limit).map(|c| view.campaign(c)).collect();
    ok(json!({ "campaigns": rows, "meta": { "total": total.to_string() } }))
}

pub async fn retrieve_campaign(State(ac): Ac, base: Base, Path(raw): Path<String>) -> AcResult {
    let id = path_id(&raw, "Campaign")?;
    let s = ac.read();
    let c = s.campaigns.get(&id).ok_or_else(|| AcError::not_found("Campaign", id))?;
    ok(json!({ "campaign": View { s: &s, base: &base }.campaign(c) }))
}

/// `GET /activities?contact=&after=&orders[tstamp]=` — newest first unless
/// `orders[tstamp]=ASC`.
pub async fn list_activities(State(ac): Ac, base: Base, p: Params) -> AcResult {
    let (limit, offset) = p.page()?;
    let contact = p.num("contact")?;
    let s = ac.read();
    let after = match p.value("after") {
        None => None,
        Some(v) => Some(
            parse_date(v, s.utc_offset).ok_or_else(|| AcError::bad_request("after must be a date-time"))?,
        ),
    };
    let asc = p.order(&["tstamp"]).is_some_and(|(_, desc)| !desc);
    let view = View { s: &s, base: &base };
    let keys: Vec<(u64, i64, u64)> = match contact {
        Some(c) => s
            .activity_index
            .range((c, after.map_or(i64::MIN, |a| a + 1), 0)..=(c, i64::MAX, u64::MAX))
            .copied()
            .collect(),
        None => {
            let mut all: Vec<_> =
                s.activity_index.iter().filter(|k| after.is_none_or(|a| k.1 > a)).copied().collect();
            all.sort_by_key(|k| (k.1, k.2));
            all
        }
    };
    let total = keys.len();
    let ordered: Box<dyn Iterator<Item = &(u64, i64, u64)>> =
        if asc { Box::new(keys.iter()) } else { Box::new(keys.iter().rev()) };
    let rows: Vec<Value> = ordered
        .skip(offset)
        .take(limit)
        .filter_map(|k| s.activities.get(&k.2))
        .map(|a| view.activity(a))
        .collect();
    ok(json!({ "activities": rows, "meta": { "total": total.to_string() } }))
}

/// `GET /contacts/{id}/trackingLogs`, newest first.
pub async fn tracking_logs_of(State(ac): Ac, base: Base, Path(raw): Path<String>, p: Params) -> AcResult {
    let id = path_id(&raw, "Subscriber")?;
    let (limit, offset) = p.page()?;
    let s = ac.read();
    s.contact(id)?;
    let view = View { s: &s, base: &base };
    let keys: Vec<_> = s.tracking_index.range((id, i64::MIN, 0)..=(id, i64::MAX, u64::MAX)).collect();
    let total = keys.len();
    let rows: Vec<Value> = keys
        .into_iter()
        .rev()
        .skip(offset)
        .take(limit)
        .filter_map(|k| s.tracking_logs.get(&k.2))
        .map(|t| view.tracking_log(t))
        .collect();
    ok(json!({ "trackingLogs": rows, "meta": { "total": total.to_string() } }))
}
