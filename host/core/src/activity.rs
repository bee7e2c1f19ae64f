//! Marketing activities and actions, as the engine sees them: what happened
//! to a person (a campaign opened, a link clicked, an automation entered…),
//! and the campaigns and automations a Salesforce record can be sent to.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// One entry of a person's activity feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Activity {
    pub id: String,
    /// The marketing person (contact, member) it happened to.
    pub contact: String,
    pub at: DateTime<Utc>,
    pub kind: ActivityKind,
    /// The vendor's own name for the kind (e.g. `CampaignOpen`).
    pub reference_type: String,
    /// The campaign or automation the activity is about (`"0"` when none).
    pub reference_id: String,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivityKind {
    CampaignSent,
    CampaignOpened,
    CampaignReplied,
    LinkClicked,
    AutomationEntered,
    AutomationCompleted,
    SiteVisit,
    Event,
    Other,
}

impl ActivityKind {
    /// Whether the reference is a campaign (else an automation, or nothing).
    pub fn about_campaign(self) -> bool {
        matches!(
            self,
            ActivityKind::CampaignSent
                | ActivityKind::CampaignOpened
                | ActivityKind::CampaignReplied
                | ActivityKind::LinkClicked
        )
    }

    pub fn about_automation(self) -> bool {
        matches!(self, ActivityKind::AutomationEntered | ActivityKind::AutomationCompleted)
    }

    /// A short phrase for a Task subject or a listing.
    pub fn label(self) -> &'static str {
        match self {
            ActivityKind::CampaignSent => "Campaign sent",
            ActivityKind::CampaignOpened => "Campaign opened",
            ActivityKind::CampaignReplied => "Campaign replied",
            ActivityKind::LinkClicked => "Link clicked",
            ActivityKind::AutomationEntered => "Automation entered",
            ActivityKind::AutomationCompleted => "Automation completed",
            ActivityKind::SiteVisit => "Site visit",
            ActivityKind::Event => "Event tracked",
            ActivityKind::Other => "Activity",
        }
    }
}

/// A campaign, with its labels and the automation it belongs to, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Campaign {
    pub id: String,
    pub name: String,
    pub labels: Vec<String>,
    /// The automation (series) the campaign is part of; `None` for a one-off
    /// list campaign.
    pub automation: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Automation {
    pub id: String,
    pub name: String,
    pub labels: Vec<String>,
    /// Contacts can be added.
    pub active: bool,
}

/// Whether `labels` holds `label`, case-insensitively.
pub fn has_label(labels: &[String], label: &str) -> bool {
    labels.iter().any(|l| l.trim().eq_ignore_ascii_case(label.trim()))
}

/// A Salesforce Task as the activity pass reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRow {
    pub id: String,
    pub who_id: String,
    pub description: String,
}
