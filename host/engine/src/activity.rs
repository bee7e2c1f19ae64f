//! Marketing activity and actions from a Salesforce record (SPEC §2.1), for
//! any marketing platform that declares the `activities` / `actions`
//! capabilities.
//!
//! # What it owns
//! - [`recent`]: a linked record's 20 most recent activities, newest first,
//!   each with its timestamp and the campaign or automation it is about.
//! - [`to_tasks`]: the activity pass of a cycle. One global listing of
//!   activities, oldest first, from a stored cursor; each activity of a
//!   linked person becomes one Salesforce Task (WhoId = the linked Lead/Contact).
//! - [`offered`], [`add_to_automation`], [`send_campaign`]: the actions.
//!   Only campaigns and automations labelled `Salesforce` (any case) are
//!   offered or accepted. A campaign is sent to one person by adding them to
//!   the automation the campaign belongs to; a one-off list campaign is
//!   refused with that reason.
//!
//! # No duplicate Tasks
//! Durability rules of [`to_tasks`]:
//! - Before a batch of Tasks is sent, each activity is stored as *pending*
//!   (one durable step). After the answer, one step turns every pending entry
//!   of the batch into *done* (success or permanent error) or drops it (a
//!   retryable per-record error: written again next time).
//! - An activity that is done is never written again; the listing re-reads
//!   the last [`OVERLAP`] before the cursor (activities are stamped to the
//!   second and may be recorded late), and done ones are skipped.
//! - The cursor moves only when everything read up to it is done or skipped.
//! - Pending entries at the start of a pass mean the last write's answer was
//!   lost (crash, timeout): the Tasks on those Leads/Contacts created since
//!   then are read back, and an activity whose Task is there (its id is in
//!   the Description) becomes done without a second write.
//!
//! Done entries older than [`KEEP_DONE`] before the cursor are forgotten: the
//! listing never reaches back that far.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use crmsync_core::activity::{Activity, ActivityKind, Automation, Campaign};
use crmsync_core::store::{ActivityDone, PendingActivity, RecordErrorEntry, StoreError};
use crmsync_core::{
    Connector, ConnectorError, Link, MarketingApi, Record, SalesforceApi, Side, Store, System, Value, Write,
    WriteKey,
};
use serde::{Deserialize, Serialize};

use crate::budget::{Budget, BudgetState};

/// Activities shown per record.
pub const RECENT: usize = 20;
/// The label a campaign or automation needs to be offered.
pub const LABEL: &str = "Salesforce";
/// The Salesforce object activities become.
pub const TASK: &str = "Task";
/// How far before the cursor each pass reads again.
pub const OVERLAP: Duration = Duration::minutes(5);
/// How long written activities are remembered behind the cursor.
pub const KEEP_DONE: Duration = Duration::days(7);

#[derive(Debug, thiserror::Error)]
pub enum ActivityError {
    #[error("connection {connection:?}: {vendor} has no {what}")]
    Unsupported { connection: String, vendor: &'static str, what: &'static str },
    #[error(
        "Salesforce record {record} is not linked to any {vendor} contact (it has not synced yet, or it does not sync)"
    )]
    NotLinked { record: String, vendor: &'static str },
    #[error("no {vendor} {kind} has the id or name {given:?}")]
    NotFound { vendor: &'static str, kind: &'static str, given: String },
    #[error(
        "{vendor} {kind} {name:?} (id {id}) is not labelled {LABEL}: only {kind}s labelled {LABEL} can be used from Salesforce"
    )]
    NotLabelled { vendor: &'static str, kind: &'static str, id: String, name: String },
    #[error(
        "{vendor} automation {name:?} (id {id}) is not active: {vendor} does not let contacts into it{detail}"
    )]
    Inactive { vendor: &'static str, id: String, name: String, detail: String },
    #[error(
        "campaign {name:?} (id {id}) is a one-off list campaign: {vendor}'s API cannot send a campaign to a single contact, only an automation can; put the campaign in an automation and send that"
    )]
    OneOff { vendor: &'static str, id: String, name: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Connector(#[from] ConnectorError),
}

/// What the activity pass of one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityReport {
    /// Activities listed (the overlap re-read included).
    pub read: usize,
    /// Tasks created.
    pub tasks: usize,
    /// Activities already written as Tasks (the overlap, or a replay).
    pub already: usize,
    /// Activities of people with no link: skipped.
    pub unlinked: usize,
    /// Tasks Salesforce refused for good (kept as record errors).
    pub errors: usize,
    /// Tasks refused for now: written again by a later run.
    pub deferred: usize,
    /// Tasks of an interrupted write found in Salesforce instead of written again.
    pub recovered: usize,
    /// Old activity Tasks deleted by retention (only Tasks this pass wrote).
    pub removed: usize,
    pub budget_paused: bool,
    pub stopped: bool,
}

// ---------------------------------------------------------------------------
// Reading a record's activities

/// One activity as shown to the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActivityView {
    pub id: String,
    pub at: DateTime<Utc>,
    pub kind: ActivityKind,
    /// The campaign or automation's name, when the activity is about one.
    pub about: Option<String>,
    /// One line: what happened and to what.
    pub summary: String,
    pub reference_type: String,
}

/// A Salesforce record's recent activities.
#[derive(Debug, Clone, Serialize)]
pub struct RecordActivities {
    pub sf_id: String,
    pub sf_object: String,
    pub contact: String,
    pub activities: Vec<ActivityView>,
}

/// How the operator names a record.
#[derive(Debug, Clone)]
pub enum RecordRef {
    SalesforceId(String),
    Email(String),
}

/// A marketing connection the activity features work on.
#[derive(Clone, Copy)]
pub struct Marketing<'a> {
    pub connection: &'a str,
    pub store: &'a dyn Store,
    pub api: &'a dyn MarketingApi,
}

impl Marketing<'_> {
    fn require(&self, present: bool, what: &'static str) -> Result<(), ActivityError> {
        if present {
            return Ok(());
        }
        Err(ActivityError::Unsupported {
            connection: self.connection.into(),
            vendor: self.api.vendor(),
            what,
        })
    }

    fn link_of(&self, record: &RecordRef) -> Result<Link, ActivityError> {
        let (found, shown) = match record {
            RecordRef::SalesforceId(id) => (self.store.link_by_sf(self.connection, id.trim())?, id.clone()),
            RecordRef::Email(e) => {
                (self.store.link_by_email(self.connection, &e.trim().to_lowercase())?, e.clone())
            }
        };
        found.ok_or(ActivityError::NotLinked { record: shown, vendor: self.api.vendor() })
    }
}

/// Campaign and automation names by id, read once when first needed.
#[derive(Default)]
struct Names {
    campaigns: Option<HashMap<String, String>>,
    automations: Option<HashMap<String, String>>,
}

impl Names {
    async fn about(
        &mut self,
        api: &dyn MarketingApi,
        a: &Activity,
    ) -> Result<Option<String>, ConnectorError> {
        let map = if a.kind.about_campaign() {
            if self.campaigns.is_none() {
                let all = api.campaigns(None).await?;
                self.campaigns = Some(all.into_iter().map(|c| (c.id, c.name)).collect());
            }
            self.campaigns.as_ref()
        } else if a.kind.about_automation() {
            if self.automations.is_none() {
                let all = api.automations(None).await?;
                self.automations = Some(all.into_iter().map(|c| (c.id, c.name)).collect());
            }
            self.automations.as_ref()
        } else {
            return Ok(None);
        };
        let what = if a.kind.about_campaign() { "campaign" } else { "automation" };
        Ok(Some(
            map.and_then(|m| m.get(&a.reference_id).cloned())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| format!("{what} {}", a.reference_id)),
        ))
    }

    async fn view(&mut self, api: &dyn MarketingApi, a: &Activity) -> Result<ActivityView, ConnectorError> {
        let about = self.about(api, a).await?;
        let summary = match &about {
            Some(name) => format!("{}: {name}", a.kind.label()),
            None => a.kind.label().to_string(),
        };
        Ok(ActivityView {
            id: a.id.clone(),
            at: a.at,
            kind: a.kind,
            about,
            summary,
            reference_type: a.reference_type.clone(),
        })
    }
}

/// The record's [`RECENT`] most recent activities, newest first.
pub async fn recent(m: Marketing<'_>, record: &RecordRef) -> Result<RecordActivities, ActivityError> {
    m.require(m.api.capabilities().activities, "activity feed")?;
    let link = m.link_of(record)?;
    let mut names = Names::default();
    let mut activities = Vec::new();
    for a in m.api.recent_activities(&link.remote_id, RECENT).await? {
        activities.push(names.view(m.api, &a).await?);
    }
    Ok(RecordActivities { sf_id: link.sf_id, sf_object: link.sf_object, contact: link.remote_id, activities })
}

// ---------------------------------------------------------------------------
// The activity pass

/// What one activity pass works with.
pub struct TaskPass<'a> {
    pub connection: &'a str,
    pub store: &'a dyn Store,
    pub marketing: &'a dyn MarketingApi,
    /// Reads Tasks back after an interrupted write.
    pub salesforce: &'a dyn SalesforceApi,
    /// Writes the Tasks (the same Salesforce connector in the service).
    pub writer: &'a dyn Connector,
    pub budget: Option<&'a Budget>,
    pub stop: Option<&'a AtomicBool>,
    /// The org's time zone: a Task's date is the activity's date there.
    pub time_zone: chrono_tz::Tz,
}

impl TaskPass<'_> {
    fn halted(&self, report: &mut ActivityReport) -> bool {
        if self.stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            report.stopped = true;
        } else if self.budget.is_some_and(|b| b.check(self.salesforce.api_usage()) >= BudgetState::Paused) {
            report.budget_paused = true;
        } else {
            return false;
        }
        true
    }

    fn vendor(&self) -> &'static str {
        self.marketing.vendor()
    }

    /// The Description line that names the activity a Task was made from.
    fn marker(&self) -> String {
        format!("{} activity id: ", self.vendor())
    }

    /// The Task an activity becomes.
    fn task(&self, a: &Activity, link: &Link, about: Option<&str>) -> Record {
        let (vendor, label) = (self.vendor(), a.kind.label());
        let subject = match about {
            Some(name) => format!("{vendor}: {label} — {name}"),
            None => format!("{vendor}: {label}"),
        };
        let at = a.at.to_rfc3339_opts(SecondsFormat::Secs, true);
        let mut description = format!("{label} at {at} ({vendor} {}).\n", a.reference_type);
        if let Some(name) = about {
            description.push_str(&format!("{name} (id {}).\n", a.reference_id));
        }
        description.push_str(&format!("{vendor} contact id: {}\n{}{}", link.remote_id, self.marker(), a.id));
        Record::new(System::Salesforce, TASK)
            .with("WhoId", link.sf_id.as_str())
            .with("Subject", subject.chars().take(255).collect::<String>())
            .with("ActivityDate", Value::Date(a.at.with_timezone(&self.time_zone).date_naive()))
            .with("Status", "Completed")
            .with("Description", description)
    }

    fn idempotency_key(&self, activity: &str) -> String {
        format!("{}-activity-{activity}", self.vendor().to_ascii_lowercase())
    }
}

/// The activity id a Task's Description names, after `marker`.
fn marked<'d>(description: &'d str, marker: &str) -> Option<&'d str> {
    description.lines().find_map(|l| l.trim().strip_prefix(marker)).map(str::trim)
}

/// Writes each new activity of a linked person as a Task.
pub async fn to_tasks(p: &TaskPass<'_>) -> Result<ActivityReport, ActivityError> {
    let mut report = ActivityReport::default();
    recover(p, &mut report).await?;
    let cursor = p.store.activity_cursor(p.connection)?;
    let after = cursor.map(|c| c - OVERLAP);
    let page_size = p.marketing.limits().max_page.max(1);
    let batch_size = p.writer.limits().max_write_batch.max(1);
    let mut names = Names::default();
    let mut offset = 0;
    // The newest activity read, and the oldest one left for a later run.
    let mut newest = cursor;
    let mut hold: Option<DateTime<Utc>> = None;
    let mut batch: Vec<(PendingActivity, Record)> = Vec::new();
    while !p.halted(&mut report) {
        let page = p.marketing.activities_after(after, offset, page_size).await?;
        offset += page.len();
        report.read += page.len();
        for a in &page {
            newest = newest.max(Some(a.at));
            if p.store.activity_done(p.connection, &a.id, a.at)? {
                report.already += 1;
                continue;
            }
            let Some(link) =
                p.store.link_by_remote(p.connection, None, &a.contact)?.filter(|l| l.retired.is_none())
            else {
                report.unlinked += 1;
                continue;
            };
            let about = names.about(p.marketing, a).await?;
            let pending = PendingActivity {
                activity: a.id.clone(),
                at: a.at,
                who_id: link.sf_id.clone(),
                queued_at: Utc::now(),
            };
            batch.push((pending, p.task(a, &link, about.as_deref())));
            if batch.len() == batch_size {
                write(p, std::mem::take(&mut batch), &mut hold, &mut report).await?;
            }
        }
        let last = page.len() < page_size;
        if last || batch.is_empty() {
            if !batch.is_empty() {
                write(p, std::mem::take(&mut batch), &mut hold, &mut report).await?;
            }
            // Everything read so far is settled: the cursor may move.
            if let Some(to) = newest.min(hold.or(newest))
                && Some(to) > cursor
            {
                p.store.advance_activities(p.connection, to, to - KEEP_DONE)?;
            }
        }
        if last {
            break;
        }
    }
    // Halted with a batch in hand: it was never sent, and the cursor has not passed it.
    Ok(report)
}

/// Retention: the Tasks this pass wrote for activities older than `keep`
/// are deleted from Salesforce, oldest first, a batch at a time. Only Tasks
/// in the store's ledger of written Tasks are ever deleted; a Task already
/// gone is forgotten, one Salesforce refuses is kept for the next run.
pub async fn remove_old_tasks(
    p: &TaskPass<'_>,
    keep: Duration,
    report: &mut ActivityReport,
) -> Result<(), ActivityError> {
    let before = Utc::now() - keep;
    let batch = p.writer.limits().max_write_batch.max(1);
    while !p.halted(report) {
        let old = p.store.written_tasks_before(p.connection, before, batch)?;
        if old.is_empty() {
            break;
        }
        let writes = old.iter().map(|(_, id)| Write::Delete { id: id.clone() }).collect();
        let results = p.writer.write(TASK, writes).await?;
        let mut gone = Vec::new();
        for (task, result) in old.iter().zip(results) {
            match result {
                Ok(_) => {
                    report.removed += 1;
                    gone.push(task.clone());
                }
                Err(e) if matches!(e.code.as_str(), "ENTITY_IS_DELETED" | "NOT_FOUND") => {
                    gone.push(task.clone())
                }
                Err(e) => {
                    report.errors += 1;
                    tracing::warn!(connection = p.connection, task = %task.1, error = %e, "an old activity Task was not deleted");
                }
            }
        }
        if gone.is_empty() {
            break; // what is left waits for the next run
        }
        p.store.forget_written_tasks(p.connection, &gone)?;
    }
    Ok(())
}

/// Sends one batch of Tasks, with the pending entries around it.
async fn write(
    p: &TaskPass<'_>,
    batch: Vec<(PendingActivity, Record)>,
    hold: &mut Option<DateTime<Utc>>,
    report: &mut ActivityReport,
) -> Result<(), ActivityError> {
    let (pending, records): (Vec<PendingActivity>, Vec<Record>) = batch.into_iter().unzip();
    p.store.put_activities_pending(p.connection, &pending)?;
    let writes: Vec<Write> = pending
        .iter()
        .zip(records)
        .map(|(x, record)| Write::Upsert {
            key: WriteKey::New { idempotency_key: p.idempotency_key(&x.activity) },
            record,
        })
        .collect();
    // On an error the pending entries stay: the next pass finds what was written.
    let results = p.writer.write(TASK, writes).await?;
    if results.len() != pending.len() {
        return Err(ConnectorError::BadResponse {
            vendor: "Salesforce",
            message: format!("{} results for {} Tasks", results.len(), pending.len()),
        }
        .into());
    }
    let mut outcomes = Vec::new();
    for (i, (pend, result)) in pending.iter().zip(results).enumerate() {
        match result {
            Ok(written) => {
                report.tasks += 1;
                outcomes.push((i, ActivityDone::Task(written.id)));
            }
            Err(e) if e.retryable => {
                report.deferred += 1;
                *hold = Some(hold.map_or(pend.at, |h| h.min(pend.at)));
            }
            Err(e) => {
                report.errors += 1;
                let error = RecordErrorEntry {
                    at: Utc::now(),
                    side: Side::Salesforce,
                    object: TASK.into(),
                    record: p.idempotency_key(&pend.activity),
                    code: e.code.clone(),
                    message: e.message.clone(),
                    plugin: None,
                };
                p.store.put_error(p.connection, &error)?;
                outcomes.push((i, ActivityDone::Refused(e.to_string())));
            }
        }
    }
    p.store.settle_activities(p.connection, &pending, &outcomes)?;
    Ok(())
}

/// Settles the pending entries an interrupted write left: a Task that is in
/// Salesforce makes its activity done; the others are dropped and written
/// when the listing reaches them again.
async fn recover(p: &TaskPass<'_>, report: &mut ActivityReport) -> Result<(), ActivityError> {
    let pending = p.store.activities_pending(p.connection)?;
    let Some(since) = pending.iter().map(|x| x.queued_at).min() else { return Ok(()) };
    let whos: Vec<String> =
        pending.iter().map(|x| x.who_id.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    // Salesforce's clock and ours may differ a little.
    let tasks = p.salesforce.tasks_of(&whos, since - Duration::hours(1)).await?;
    let marker = p.marker();
    let found: BTreeMap<(&str, &str), &str> = tasks
        .iter()
        .filter_map(|t| Some(((t.who_id.as_str(), marked(&t.description, &marker)?), t.id.as_str())))
        .collect();
    let mut outcomes = Vec::new();
    for (i, x) in pending.iter().enumerate() {
        if let Some(id) = found.get(&(x.who_id.as_str(), x.activity.as_str())) {
            report.recovered += 1;
            outcomes.push((i, ActivityDone::Task(id.to_string())));
        }
    }
    tracing::info!(
        connection = p.connection,
        pending = pending.len(),
        found = outcomes.len(),
        "settled an interrupted Task write"
    );
    p.store.settle_activities(p.connection, &pending, &outcomes)?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Actions

/// What a Salesforce record may be sent to.
#[derive(Debug, Clone, Serialize)]
pub struct Offered {
    pub campaigns: Vec<Campaign>,
    pub automations: Vec<Automation>,
}

/// The campaigns and automations labelled [`LABEL`].
pub async fn offered(m: Marketing<'_>) -> Result<Offered, ActivityError> {
    m.require(m.api.capabilities().actions, "campaigns or automations")?;
    Ok(Offered {
        campaigns: m.api.campaigns(Some(LABEL)).await?,
        automations: m.api.automations(Some(LABEL)).await?,
    })
}

/// A done action.
#[derive(Debug, Clone, Serialize)]
pub struct ActionDone {
    pub sf_id: String,
    pub contact: String,
    pub automation: Automation,
    /// The campaign sent, for `send-campaign`.
    pub campaign: Option<Campaign>,
    /// The platform's id of the person's entry in the automation.
    pub contact_automation: String,
}

/// `given` is an id or a name (any case).
fn pick<'x, T>(
    items: &'x [T],
    given: &str,
    id: impl Fn(&T) -> &str,
    name: impl Fn(&T) -> &str,
) -> Option<&'x T> {
    let given = given.trim();
    items
        .iter()
        .find(|x| id(x) == given)
        .or_else(|| items.iter().find(|x| name(x).trim().eq_ignore_ascii_case(given)))
}

async fn labelled_automation(api: &dyn MarketingApi, given: &str) -> Result<Automation, ActivityError> {
    let vendor = api.vendor();
    let offered = api.automations(Some(LABEL)).await?;
    if let Some(a) = pick(&offered, given, |a| &a.id, |a| &a.name) {
        return Ok(a.clone());
    }
    let all = api.automations(None).await?;
    Err(match pick(&all, given, |a| &a.id, |a| &a.name) {
        Some(a) => {
            ActivityError::NotLabelled { vendor, kind: "automation", id: a.id.clone(), name: a.name.clone() }
        }
        None => ActivityError::NotFound { vendor, kind: "automation", given: given.to_string() },
    })
}

async fn enter(
    api: &dyn MarketingApi,
    link: &Link,
    automation: &Automation,
) -> Result<String, ActivityError> {
    let inactive = |detail: String| ActivityError::Inactive {
        vendor: api.vendor(),
        id: automation.id.clone(),
        name: automation.name.clone(),
        detail,
    };
    if !automation.active {
        return Err(inactive(String::new()));
    }
    match api.add_to_automation(&link.remote_id, &automation.id).await {
        Err(ConnectorError::Rejected { status: 403, message, .. }) => Err(inactive(format!(" ({message})"))),
        other => Ok(other?),
    }
}

/// Adds the record's person to an automation labelled [`LABEL`].
pub async fn add_to_automation(
    m: Marketing<'_>,
    record: &str,
    automation: &str,
) -> Result<ActionDone, ActivityError> {
    m.require(m.api.capabilities().actions, "automations")?;
    let link = m.link_of(&RecordRef::SalesforceId(record.to_string()))?;
    let automation = labelled_automation(m.api, automation).await?;
    let entry = enter(m.api, &link, &automation).await?;
    tracing::info!(connection = %m.connection, automation = %automation.id, "contact added to an automation");
    Ok(ActionDone {
        sf_id: link.sf_id,
        contact: link.remote_id,
        automation,
        campaign: None,
        contact_automation: entry,
    })
}

/// Sends a campaign labelled [`LABEL`] to the record's person: by adding
/// them to the automation the campaign belongs to.
pub async fn send_campaign(
    m: Marketing<'_>,
    record: &str,
    campaign: &str,
) -> Result<ActionDone, ActivityError> {
    m.require(m.api.capabilities().actions, "campaigns")?;
    let vendor = m.api.vendor();
    let link = m.link_of(&RecordRef::SalesforceId(record.to_string()))?;
    let offered = m.api.campaigns(Some(LABEL)).await?;
    let campaign = match pick(&offered, campaign, |c| &c.id, |c| &c.name) {
        Some(c) => c.clone(),
        None => {
            let all = m.api.campaigns(None).await?;
            return Err(match pick(&all, campaign, |c| &c.id, |c| &c.name) {
                Some(c) => ActivityError::NotLabelled {
                    vendor,
                    kind: "campaign",
                    id: c.id.clone(),
                    name: c.name.clone(),
                },
                None => ActivityError::NotFound { vendor, kind: "campaign", given: campaign.to_string() },
            });
        }
    };
    let Some(automation_id) = &campaign.automation else {
        return Err(ActivityError::OneOff { vendor, id: campaign.id, name: campaign.name });
    };
    let all = m.api.automations(None).await?;
    let automation = all.into_iter().find(|a| &a.id == automation_id).ok_or_else(|| {
        ActivityError::NotFound { vendor, kind: "automation", given: automation_id.clone() }
    })?;
    let entry = enter(m.api, &link, &automation).await?;
    tracing::info!(connection = %m.connection, campaign = %campaign.id, automation = %automation.id, "campaign sent through its automation");
    Ok(ActionDone {
        sf_id: link.sf_id,
        contact: link.remote_id,
        automation,
        campaign: Some(campaign),
        contact_automation: entry,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_reads_back_the_activity_id() {
        assert_eq!(marked("x\nAcme activity id: 123\n", "Acme activity id: "), Some("123"));
        assert_eq!(marked("no marker", "Acme activity id: "), None);
    }
}
