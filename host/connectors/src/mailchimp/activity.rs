//! Campaign activity of the audience's members (sends, opens, clicks,
//! bounces), for the engine's activity → Salesforce Task pass and a record's
//! recent activity.
//!
//! Mailchimp has no account-wide activity feed. The listing is built from
//! the audience's sent campaigns (`GET /campaigns?list_id&status=sent`, those
//! sent from [`LOOKBACK`] before the cursor on) and each one's
//! `GET /reports/{id}/email-activity?since=`: every recipient is listed (a
//! *sent* activity at the campaign's send time) with its opens, clicks and
//! bounces. Recipients are named by subscriber hash; one member listing
//! (`fields=members.id,members.contact_id`) turns hashes into the contact
//! ids links hold. The whole listing is built once per `after` and served
//! by offset, oldest first, so the engine's paging is stable.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use crmsync_core::ConnectorError;
use crmsync_core::activity::{Activity, ActivityKind, Campaign};
use serde_json::Value as Json;

use super::{MailchimpConnector, PAGE_LIMIT, bad, fmt_ts, parse_ts};

/// How long before the cursor a campaign may have been sent and still get
/// new opens and clicks read.
pub const LOOKBACK: chrono::Duration = chrono::Duration::days(30);

/// The listing built for one `after`, served page by page.
pub(crate) type Listing = Option<(Option<DateTime<Utc>>, Arc<Vec<Activity>>)>;

fn kind(action: &str) -> ActivityKind {
    match action {
        "sent" => ActivityKind::CampaignSent,
        "open" => ActivityKind::CampaignOpened,
        "click" => ActivityKind::LinkClicked,
        _ => ActivityKind::Other,
    }
}

/// One activity; its id names the campaign, member, action, second and (for
/// a click) link, so the same event read twice has the same id.
fn activity(
    campaign: &str,
    hash: &str,
    contact: &str,
    action: &str,
    at: DateTime<Utc>,
    url: &str,
) -> Activity {
    let mut id = format!("{campaign}:{hash}:{action}:{}", at.timestamp());
    if !url.is_empty() {
        id.push(':');
        id.push_str(url);
    }
    Activity {
        id,
        contact: contact.to_string(),
        at,
        kind: kind(action),
        reference_type: action.to_string(),
        reference_id: campaign.to_string(),
    }
}

fn text<'a>(v: &'a Json, key: &str) -> &'a str {
    v.get(key).and_then(Json::as_str).unwrap_or_default()
}

impl MailchimpConnector {
    /// Every page of a listing endpoint (`count`/`offset`), the items under `key`.
    async fn all_pages(
        &self,
        what: &'static str,
        path: &str,
        key: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<Json>, ConnectorError> {
        let mut out = Vec::new();
        loop {
            let mut q = query.to_vec();
            q.push(("count", PAGE_LIMIT.to_string()));
            q.push(("offset", out.len().to_string()));
            let page = self.get_json(what, path, &q).await?;
            let items = page
                .get(key)
                .and_then(Json::as_array)
                .ok_or_else(|| bad(format!("a {what} page without {key}")))?;
            out.extend(items.iter().cloned());
            if items.len() < PAGE_LIMIT {
                return Ok(out);
            }
        }
    }

    /// The audience's sent campaigns, sent at or after `since` when given.
    async fn sent_campaigns(&self, since: Option<DateTime<Utc>>) -> Result<Vec<Json>, ConnectorError> {
        let mut query = vec![("list_id", self.audience().to_string()), ("status", "sent".to_string())];
        if let Some(t) = since {
            query.push(("since_send_time", fmt_ts(t)));
        }
        self.all_pages("campaigns", "campaigns", "campaigns", &query).await
    }

    /// Subscriber hash → contact id, for the members of the audience.
    async fn contact_ids(&self) -> Result<HashMap<String, String>, ConnectorError> {
        let query = [("fields", "members.id,members.contact_id,total_items".to_string())];
        let members = self.all_pages("members", &self.list_path("/members"), "members", &query).await?;
        Ok(members.iter().map(|m| (text(m, "id").to_string(), text(m, "contact_id").to_string())).collect())
    }

    /// Every activity at or after `after`, oldest first.
    async fn build_listing(&self, after: Option<DateTime<Utc>>) -> Result<Vec<Activity>, ConnectorError> {
        let campaigns = self.sent_campaigns(after.map(|t| t - LOOKBACK)).await?;
        // (campaign, hash, action, at, url)
        let mut raw: Vec<(String, String, String, DateTime<Utc>, String)> = Vec::new();
        for c in &campaigns {
            let id = text(c, "id").to_string();
            let sent = c.get("send_time").and_then(Json::as_str).and_then(parse_ts);
            let mut query = vec![];
            if let Some(t) = after {
                query.push(("since", fmt_ts(t)));
            }
            let path = format!("reports/{id}/email-activity");
            for e in self.all_pages("email_activity", &path, "emails", &query).await? {
                let hash = text(&e, "email_id").to_string();
                if let Some(at) = sent.filter(|at| after.is_none_or(|t| *at >= t)) {
                    raw.push((id.clone(), hash.clone(), "sent".into(), at, String::new()));
                }
                for a in e.get("activity").and_then(Json::as_array).into_iter().flatten() {
                    let Some(at) = a.get("timestamp").and_then(Json::as_str).and_then(parse_ts) else {
                        continue;
                    };
                    raw.push((
                        id.clone(),
                        hash.clone(),
                        text(a, "action").to_string(),
                        at,
                        text(a, "url").to_string(),
                    ));
                }
            }
        }
        if raw.is_empty() {
            return Ok(Vec::new());
        }
        let contacts = self.contact_ids().await?;
        let mut out: Vec<Activity> = raw
            .iter()
            .map(|(campaign, hash, action, at, url)| {
                // A recipient no longer in the audience keeps its hash: unlinked.
                let contact = contacts.get(hash).map_or(hash.as_str(), String::as_str);
                activity(campaign, hash, contact, action, *at, url)
            })
            .collect();
        out.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
        Ok(out)
    }

    pub(crate) async fn activities_page(
        &self,
        after: Option<DateTime<Utc>>,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<Activity>, ConnectorError> {
        let mut cache = self.activities.lock().await;
        let listing = match cache.as_ref() {
            Some((for_after, listing)) if *for_after == after && offset > 0 => listing.clone(),
            _ => {
                let listing = Arc::new(self.build_listing(after).await?);
                *cache = Some((after, listing.clone()));
                listing
            }
        };
        Ok(listing.iter().skip(offset).take(limit).cloned().collect())
    }

    /// A member's most recent activities, newest first (`activity-feed`).
    pub(crate) async fn member_activities(
        &self,
        person: &str,
        limit: usize,
    ) -> Result<Vec<Activity>, ConnectorError> {
        let path = self.list_path(&format!("/members/{person}/activity-feed"));
        let page = self.get_json("activity_feed", &path, &[("count", limit.to_string())]).await?;
        let hash = text(&page, "email_id").to_string();
        let mut out: Vec<Activity> = page
            .get("activity")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(|a| {
                let at = a.get("created_at_timestamp").and_then(Json::as_str).and_then(parse_ts)?;
                let url = text(a, "link_clicked");
                Some(activity(text(a, "campaign_id"), &hash, person, text(a, "activity_type"), at, url))
            })
            .collect();
        out.sort_by(|a, b| (b.at, &b.id).cmp(&(a.at, &a.id)));
        out.truncate(limit);
        Ok(out)
    }

    /// The audience's campaigns by id and title (Mailchimp has no labels).
    pub(crate) async fn campaign_names(&self) -> Result<Vec<Campaign>, ConnectorError> {
        let query = [("list_id", self.audience().to_string())];
        let all = self.all_pages("campaigns", "campaigns", "campaigns", &query).await?;
        Ok(all
            .iter()
            .map(|c| {
                let settings = c.get("settings").cloned().unwrap_or_default();
                let title = Some(text(&settings, "title"))
                    .filter(|t| !t.is_empty())
                    .unwrap_or(text(&settings, "subject_line"));
                Campaign {
                    id: text(c, "id").to_string(),
                    name: title.to_string(),
                    labels: Vec::new(),
                    automation: None,
                }
            })
            .collect())
    }
}
