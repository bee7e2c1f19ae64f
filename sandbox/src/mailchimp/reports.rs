//! Read-only views: the account root (`GET /`, with the caller's role), `/ping`,
//! member activity feeds, campaigns and their email-activity reports. Campaigns
//! and activity come from the seed.

use serde_json::{Value, json};

use super::members::resolve;
use super::store::{Activity, Campaign, ts};
use super::{Call, Mailchimp, McError, Reply, ok};

pub(crate) fn ping() -> Reply {
    ok(json!({"health_status": "Everything's Chimpy!"}))
}

/// `GET /`: the account behind the key; `role` is the calling user's.
pub(crate) fn root(mc: &Mailchimp, call: &Call) -> Reply {
    let store = mc.read();
    let a = &store.account;
    ok(json!({
        "account_id": a.account_id,
        "login_id": "100000001",
        "account_name": a.account_name,
        "email": a.email,
        "first_name": a.first_name,
        "last_name": a.last_name,
        "username": a.email,
        "avatar_url": "",
        "role": serde_json::to_value(call.role).unwrap_or(Value::Null),
        "member_since": "2020-01-01T00:00:00+00:00",
        "pricing_plan_type": a.pricing_plan_type,
        "first_payment": "2020-01-01T00:00:00+00:00",
        "account_timezone": a.account_timezone,
        "account_industry": "Software",
        "contact": {
            "company": a.account_name, "addr1": "1 Sandbox Way", "addr2": "", "city": "Atlanta",
            "state": "GA", "zip": "30308", "country": "US",
        },
        "pro_enabled": a.premium,
        "last_login": ts(mc.now()),
        "total_subscribers": store.subscribed_total(),
        "industry_stats": {"open_rate": 0.0, "bounce_rate": 0.0, "click_rate": 0.0},
    }))
}

fn activity_item(a: &Activity, title: &str) -> Value {
    let mut v = json!({
        "activity_type": a.action,
        "created_at_timestamp": ts(a.timestamp),
    });
    if let Some(c) = &a.campaign_id {
        v["campaign_id"] = json!(c);
        v["campaign_title"] = json!(title);
    }
    match a.action.as_str() {
        "click" => v["link_clicked"] = json!(a.url.clone().unwrap_or_default()),
        "bounce" => {
            v["bounce_type"] = json!(a.bounce_type.clone().unwrap_or_else(|| "hard".into()));
            v["bounce_has_open_activity"] = json!(false);
        }
        "unsub" => {
            v["is_admin_unsubscribed"] = json!(false);
            v["unsubscribe_reason"] = json!("");
        }
        _ => {}
    }
    v
}

/// `GET /lists/{id}/members/{hash}/activity-feed`: newest first, filterable by
/// `activity_filters=open,click,...`.
pub(crate) fn activity_feed(mc: &Mailchimp, call: &Call, list_id: &str, key: &str) -> Reply {
    let (count, offset) = call.paging()?;
    let filters: Option<Vec<&str>> =
        call.q("activity_filters").map(|f| f.split(',').map(str::trim).collect());
    let store = mc.read();
    let list = store.lists.get(list_id).ok_or(McError::NotFound)?;
    let member = list.members.get(&resolve(list, key)).ok_or(McError::NotFound)?;
    let mut items: Vec<&Activity> = member
        .activity
        .iter()
        .filter(|a| filters.as_ref().is_none_or(|f| f.contains(&a.action.as_str())))
        .collect();
    items.sort_by_key(|a| std::cmp::Reverse(a.timestamp));
    let title = |a: &Activity| {
        a.campaign_id
            .as_ref()
            .and_then(|c| store.campaigns.get(c))
            .map(|c| c.title.clone())
            .unwrap_or_default()
    };
    let total = items.len();
    let activity: Vec<Value> =
        items.into_iter().skip(offset).take(count).map(|a| activity_item(a, &title(a))).collect();
    ok(json!({
        "activity": activity,
        "email_id": member.hash,
        "list_id": list_id,
        "total_items": total,
    }))
}

fn campaign_json(mc_store: &super::store::Store, c: &Campaign) -> Value {
    let list_name = mc_store
        .lists
        .get(&c.list_id)
        .map(|l| l.settings.get("name").and_then(Value::as_str).unwrap_or_default().to_string());
    c.to_json(list_name.as_deref())
}

pub(crate) fn campaigns(mc: &Mailchimp, call: &Call) -> Reply {
    let (count, offset) = call.paging()?;
    let status = call.q("status");
    let kind = call.q("type");
    let list_id = call.q("list_id");
    let since_send = call.q_time("since_send_time")?;
    let before_send = call.q_time("before_send_time")?;
    let since_create = call.q_time("since_create_time")?;
    let before_create = call.q_time("before_create_time")?;
    let desc = call.q("sort_dir").is_some_and(|d| d.eq_ignore_ascii_case("DESC"));
    let by_send = call.q("sort_field") == Some("send_time");
    let store = mc.read();
    let mut all: Vec<&Campaign> = store
        .campaigns
        .values()
        .filter(|c| {
            status.is_none_or(|s| c.status == s)
                && kind.is_none_or(|k| c.kind == k)
                && list_id.is_none_or(|l| c.list_id == l)
                && since_send.is_none_or(|t| c.send_time.is_some_and(|s| s >= t))
                && before_send.is_none_or(|t| c.send_time.is_some_and(|s| s < t))
                && since_create.is_none_or(|t| c.create_time.is_some_and(|s| s >= t))
                && before_create.is_none_or(|t| c.create_time.is_some_and(|s| s < t))
        })
        .collect();
    all.sort_by_key(|c| (if by_send { c.send_time } else { c.create_time }, c.web_id));
    if desc {
        all.reverse();
    }
    let total = all.len();
    let page: Vec<Value> =
        all.into_iter().skip(offset).take(count).map(|c| campaign_json(&store, c)).collect();
    ok(json!({"campaigns": page, "total_items": total}))
}

pub(crate) fn campaign(mc: &Mailchimp, id: &str) -> Reply {
    let store = mc.read();
    let c = store.campaigns.get(id).ok_or(McError::NotFound)?;
    ok(campaign_json(&store, c))
}

/// `GET /reports/{campaign_id}/email-activity`: per recipient, the opens,
/// clicks and bounces of that campaign (`since` filters by time).
pub(crate) fn email_activity(mc: &Mailchimp, call: &Call, campaign_id: &str) -> Reply {
    let (count, offset) = call.paging()?;
    let since = call.q_time("since")?;
    let store = mc.read();
    let campaign = store.campaigns.get(campaign_id).ok_or(McError::NotFound)?;
    let Some(list) = store.lists.get(&campaign.list_id) else {
        return ok(json!({"emails": [], "campaign_id": campaign_id, "total_items": 0}));
    };
    let mut emails: Vec<(String, Value)> = list
        .members
        .values()
        .filter_map(|m| {
            let activity: Vec<Value> = m
                .activity
                .iter()
                .filter(|a| a.campaign_id.as_deref() == Some(campaign_id))
                .filter(|a| matches!(a.action.as_str(), "open" | "click" | "bounce"))
                .filter(|a| since.is_none_or(|t| a.timestamp >= t))
                .map(|a| {
                    let mut v = json!({
                        "action": a.action,
                        "timestamp": ts(a.timestamp),
                        "ip": a.ip.clone().unwrap_or_default(),
                    });
                    if a.action == "click" {
                        v["url"] = json!(a.url.clone().unwrap_or_default());
                    }
                    if a.action == "bounce" {
                        v["type"] = json!(a.bounce_type.clone().unwrap_or_else(|| "hard".into()));
                    }
                    v
                })
                .collect();
            let sent = m.activity.iter().any(|a| a.campaign_id.as_deref() == Some(campaign_id));
            sent.then(|| {
                (
                    m.hash.clone(),
                    json!({
                        "campaign_id": campaign_id,
                        "list_id": list.id,
                        "list_is_active": true,
                        "email_id": m.hash,
                        "email_address": m.email,
                        "activity": activity,
                    }),
                )
            })
        })
        .collect();
    emails.sort_by(|a, b| a.0.cmp(&b.0));
    let total = emails.len();
    let page: Vec<Value> = emails.into_iter().skip(offset).take(count).map(|(_, v)| v).collect();
    ok(json!({"emails": page, "campaign_id": campaign_id, "total_items": total}))
}
