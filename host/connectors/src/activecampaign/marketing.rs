//! ActiveCampaign marketing reads and actions: the activity feed
//! (`/activities`), campaigns (`/campaigns`), automations (`/automations`)
//! and adding a contact to an automation (`/contactAutomations`).
//!
//! # What it owns
//! - Activities as typed [`Activity`] values: one global listing read
//!   oldest first from a timestamp (`after` + `orders[tstamp]=ASC`, paged by
//!   `limit`/`offset`), or one contact's newest first.
//! - Campaigns and automations with their labels. AC documents no API field
//!   for labels; the account's `labels` array is read, `filters[label_name]`
//!   narrows the listing, and the label is checked again here so an account
//!   that ignores the filter still offers only labelled items.
//! - `POST /contactAutomations`; AC's 403 there (an inactive automation, or
//!   one the user may not use) becomes [`ConnectorError::Rejected`] with the
//!   reason, not a credentials error.
//!
//! AC's v3 API has no call that sends a campaign to one contact (API
//! reference §2.4); the service sends a campaign by adding the contact to the
//! automation the campaign belongs to.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value as Json, json};

use super::{ActiveCampaignConnector, PAGE_LIMIT, VENDOR, bad, id_text, parse_ts};
use crate::ConnectorError;
use crmsync_core::activity::{Activity, ActivityKind, Automation, Campaign, has_label};

/// AC's `reference_type` as the kind of activity it is.
fn kind_of(reference_type: &str) -> ActivityKind {
    match reference_type {
        "CampaignSend" => ActivityKind::CampaignSent,
        "CampaignOpen" => ActivityKind::CampaignOpened,
        "CampaignReply" => ActivityKind::CampaignReplied,
        "LinkClick" => ActivityKind::LinkClicked,
        "AutomationEntered" => ActivityKind::AutomationEntered,
        "AutomationCompleted" => ActivityKind::AutomationCompleted,
        "SiteTracking" => ActivityKind::SiteVisit,
        "EventTracking" => ActivityKind::Event,
        _ => ActivityKind::Other,
    }
}

fn labels_of(v: &Json) -> Vec<String> {
    v.get("labels")
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|l| match l {
                    Json::String(s) => Some(s.clone()),
                    // `{"name": ...}` objects, should an account send them so.
                    other => other.get("name").and_then(Json::as_str).map(String::from),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn activity(v: &Json) -> Result<Activity, ConnectorError> {
    let id = id_text(v.get("id")).ok_or_else(|| bad("an activity without an id"))?;
    let contact =
        id_text(v.get("subscriberid")).ok_or_else(|| bad(format!("activity {id} has no contact")))?;
    let at = v
        .get("tstamp")
        .and_then(Json::as_str)
        .and_then(parse_ts)
        .ok_or_else(|| bad(format!("activity {id} has no readable tstamp")))?;
    let reference_type = v.get("reference_type").and_then(Json::as_str).unwrap_or("").to_string();
    Ok(Activity {
        id,
        contact,
        at,
        kind: kind_of(&reference_type),
        reference_type,
        reference_id: id_text(v.get("reference_id")).unwrap_or_else(|| "0".into()),
    })
}

fn activities_of(page: &Json) -> Result<Vec<Activity>, ConnectorError> {
    let items = page.get("activities").and_then(Json::as_array).ok_or_else(|| bad("no activities list"))?;
    items.iter().map(activity).collect()
}

impl ActiveCampaignConnector {
    /// One page of every contact's activities after `after` (strictly; all
    /// when `None`), oldest first: `limit` (≤ 100) from `offset`.
    pub async fn activities_after(
        &self,
        after: Option<DateTime<Utc>>,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<Activity>, ConnectorError> {
        let mut query = vec![
            ("orders[tstamp]", "ASC".to_string()),
            ("limit", limit.clamp(1, PAGE_LIMIT).to_string()),
            ("offset", offset.to_string()),
        ];
        if let Some(t) = after {
            query.push(("after", t.to_rfc3339_opts(SecondsFormat::Secs, true)));
        }
        activities_of(&self.get_json("activities", "activities", &query).await?)
    }

    /// A contact's `limit` (≤ 100) most recent activities, newest first.
    pub async fn recent_activities(
        &self,
        contact: &str,
        limit: usize,
    ) -> Result<Vec<Activity>, ConnectorError> {
        let query = vec![
            ("contact", contact.to_string()),
            ("orders[tstamp]", "DESC".to_string()),
            ("limit", limit.clamp(1, PAGE_LIMIT).to_string()),
        ];
        let mut found = activities_of(&self.get_json("contact_activities", "activities", &query).await?)?;
        // Newest first whatever the account's default order; ties by id.
        found.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| num(&b.id).cmp(&num(&a.id))));
        found.truncate(limit);
        Ok(found)
    }

    /// Every item of a list endpoint, page by page.
    async fn list_all(
        &self,
        what: &'static str,
        path: &str,
        key: &str,
        filter: &[(&str, String)],
    ) -> Result<Vec<Json>, ConnectorError> {
        let mut out = Vec::new();
        loop {
            let mut query = filter.to_vec();
            query.push(("limit", PAGE_LIMIT.to_string()));
            query.push(("offset", out.len().to_string()));
            let page = self.get_json(what, path, &query).await?;
            let items =
                page.get(key).and_then(Json::as_array).ok_or_else(|| bad(format!("no {key} list")))?;
            let n = items.len();
            out.extend(items.iter().cloned());
            if n < PAGE_LIMIT {
                return Ok(out);
            }
        }
    }

    /// Campaigns, only those labelled `label` when given.
    pub async fn campaigns(&self, label: Option<&str>) -> Result<Vec<Campaign>, ConnectorError> {
        let filter: Vec<(&str, String)> =
            label.map(|l| vec![("filters[label_name]", l.to_string())]).unwrap_or_default();
        let all = self.list_all("campaigns", "campaigns", "campaigns", &filter).await?;
        let mut out = Vec::with_capacity(all.len());
        for c in &all {
            let id = id_text(c.get("id")).ok_or_else(|| bad("a campaign without an id"))?;
            let automation = id_text(c.get("automation"))
                .or_else(|| id_text(c.get("seriesid")))
                .filter(|a| !a.is_empty() && a != "0");
            let campaign = Campaign {
                name: c.get("name").and_then(Json::as_str).unwrap_or("").to_string(),
                labels: labels_of(c),
                automation,
                id,
            };
            if label.is_none_or(|l| has_label(&campaign.labels, l)) {
                out.push(campaign);
            }
        }
        Ok(out)
    }

    /// Automations, only those labelled `label` when given.
    pub async fn automations(&self, label: Option<&str>) -> Result<Vec<Automation>, ConnectorError> {
        let filter: Vec<(&str, String)> =
            label.map(|l| vec![("filters[label_name]", l.to_string())]).unwrap_or_default();
        let all = self.list_all("automations", "automations", "automations", &filter).await?;
        let mut out = Vec::with_capacity(all.len());
        for a in &all {
            let automation = Automation {
                id: id_text(a.get("id")).ok_or_else(|| bad("an automation without an id"))?,
                name: a.get("name").and_then(Json::as_str).unwrap_or("").to_string(),
                labels: labels_of(a),
                active: id_text(a.get("status")).as_deref() == Some("1"),
            };
            if label.is_none_or(|l| has_label(&automation.labels, l)) {
                out.push(automation);
            }
        }
        Ok(out)
    }

    /// Adds a contact to an automation; the id of the contact's entry.
    /// AC refuses an inactive automation with 403: that is a rejection with
    /// the reason, not a credentials problem.
    pub async fn add_to_automation(&self, contact: &str, automation: &str) -> Result<String, ConnectorError> {
        let body = json!({"contactAutomation": {"contact": contact, "automation": automation}});
        let reply = match self
            .send_json("add_to_automation", reqwest::Method::POST, "contactAutomations", &body)
            .await
        {
            Err(ConnectorError::Auth { message, .. }) => {
                return Err(ConnectorError::Rejected {
                    vendor: VENDOR,
                    status: 403,
                    message: format!(
                        "ActiveCampaign did not let the contact into automation {automation} (is it active?): {message}"
                    ),
                });
            }
            other => other?,
        };
        let answer: Json = reply.json(VENDOR)?;
        id_text(answer.pointer("/contactAutomation/id"))
            .ok_or_else(|| bad("the contactAutomation answer has no id"))
    }
}

/// An id as a number for ordering (non-numeric ids sort first).
fn num(id: &str) -> u64 {
    id.parse().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activities_and_labels_read_acs_json() {
        let a = activity(&json!({"id": "9", "subscriberid": "7", "tstamp": "2024-06-01T05:05:00-05:00",
            "reference_type": "CampaignOpen", "reference_id": "3"}))
        .unwrap();
        assert_eq!(a.kind, ActivityKind::CampaignOpened);
        assert_eq!(a.at.to_rfc3339(), "2024-06-01T10:05:00+00:00");
        assert!(activity(&json!({"id": "9", "subscriberid": "7"})).is_err(), "no tstamp is an error");
        let labels = labels_of(&json!({"labels": ["SalesForce", {"name": "x"}]}));
        assert!(has_label(&labels, "salesforce"));
        assert!(has_label(&labels, "X"));
        assert!(!has_label(&labels, "sales"));
    }
}
