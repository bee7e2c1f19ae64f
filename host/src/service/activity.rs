//! Marketing activity and actions from a Salesforce record (SPEC §2.1).
//!
//! # What it owns
//! - [`recent`]: a linked record's 20 most recent ActiveCampaign activities,
//!   newest first, each with its timestamp and the campaign or automation it
//!   is about (`crmsync activities`, `GET …/records/{sf_id}/activities`).
//! - [`to_tasks`]: the activity pass of a cycle. One global listing of AC
//!   activities, oldest first, from a stored cursor; each activity of a linked
//!   contact becomes one Salesforce Task (WhoId = the linked Lead/Contact).
//! - [`offered`], [`add_to_automation`], [`send_campaign`]: the actions.
//!   Only campaigns and automations labelled `Salesforce` (any case) are
//!   offered or accepted. AC's v3 API cannot send a campaign to one contact:
//!   a campaign that belongs to an automation is sent by adding the contact to
//!   that automation; a one-off list campaign is refused with that reason.
//! - [`admin_routes`]: the admin API routes for all of the above.
//! - The `activities` sled tree ([`trees::ACTIVITIES`]): per connection, the
//!   cursor, the pending Task writes and the activities already written.
//!
//! # No duplicate Tasks
//! Durability rules of [`to_tasks`]:
//! - Before a batch of Tasks is sent, each activity is stored as *pending*
//!   (one transaction, flushed). After the answer, one transaction turns every
//!   pending entry of the batch into *done* (success or permanent error) or
//!   drops it (a retryable per-record error: written again next time).
//! - An activity that is done is never written again; the listing re-reads
//!   the last [`OVERLAP`] before the cursor (activities are stamped to the
//!   second and may be recorded late), and done ones are skipped.
//! - The cursor moves only when everything read up to it is done or skipped.
//! - Pending entries at the start of a pass mean the last write's answer was
//!   lost (crash, timeout): the Tasks on those Leads/Contacts created since
//!   then are read back, and an activity whose Task is there (its id is in
//!   the Description) becomes done without a second write.
//!
//! Done entries older than [`KEEP_DONE`] before the cursor are pruned: the
//! listing never reaches back that far.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::extract::{Path, State as AxumState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use crmsync_sdk::types::{Record, System, Value};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Connection, Service};
use crate::connectors::activecampaign::ActiveCampaignConnector;
use crate::connectors::activecampaign::marketing::{Activity, ActivityKind, Automation, Campaign};
use crate::connectors::salesforce::{COLLECTION_LIMIT, SalesforceConnector};
use crate::connectors::{Connector, ConnectorError, Write, WriteKey};
use crate::engine::budget::{Budget, BudgetState};
use crate::engine::store::{EngineStore, Link, RecordErrorEntry, Side};
use crate::state::{State, StateError, keys, trees};

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
/// Activities per listing page (AC's maximum).
const PAGE: usize = crate::connectors::activecampaign::PAGE_LIMIT;
/// The Description line that names the activity a Task was made from.
const MARKER: &str = "ActiveCampaign activity id: ";

#[derive(Debug, thiserror::Error)]
pub enum ActivityError {
    #[error("connection {0:?} has no ActiveCampaign account")]
    NoMarketing(String),
    #[error(
        "Salesforce record {0} is not linked to an ActiveCampaign contact (it has not synced yet, or it does not sync)"
    )]
    NotLinked(String),
    #[error("no ActiveCampaign {kind} has the id or name {given:?}")]
    NotFound { kind: &'static str, given: String },
    #[error(
        "ActiveCampaign {kind} {name:?} (id {id}) is not labelled {LABEL}: only {kind}s labelled {LABEL} can be used from Salesforce"
    )]
    NotLabelled { kind: &'static str, id: String, name: String },
    #[error(
        "ActiveCampaign automation {name:?} (id {id}) is not active: ActiveCampaign does not let contacts into it{detail}"
    )]
    Inactive { id: String, name: String, detail: String },
    #[error(
        "campaign {name:?} (id {id}) is a one-off list campaign: ActiveCampaign's API cannot send a campaign to a single contact, only an automation can; put the campaign in an automation and send that"
    )]
    OneOff { id: String, name: String },
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Connector(#[from] ConnectorError),
}

impl ActivityError {
    /// The admin API's answer status.
    fn status(&self) -> StatusCode {
        match self {
            ActivityError::NoMarketing(_) | ActivityError::NotLinked(_) | ActivityError::NotFound { .. } => {
                StatusCode::NOT_FOUND
            }
            ActivityError::NotLabelled { .. } => StatusCode::FORBIDDEN,
            ActivityError::Inactive { .. } => StatusCode::CONFLICT,
            ActivityError::OneOff { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ActivityError::State(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ActivityError::Connector(_) => StatusCode::BAD_GATEWAY,
        }
    }
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
    /// Activities of contacts with no link: skipped.
    pub unlinked: usize,
    /// Tasks Salesforce refused for good (kept as record errors).
    pub errors: usize,
    /// Tasks refused for now: written again by a later run.
    pub deferred: usize,
    /// Tasks of an interrupted write found in Salesforce instead of written again.
    pub recovered: usize,
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

fn ac(conn: &Connection) -> Result<&ActiveCampaignConnector, ActivityError> {
    conn.ac.as_deref().ok_or_else(|| ActivityError::NoMarketing(conn.name.clone()))
}

fn link_of(store: &EngineStore, conn: &Connection, record: &RecordRef) -> Result<Link, ActivityError> {
    let (found, shown) = match record {
        RecordRef::SalesforceId(id) => (store.link_by_sf(&conn.name, id.trim())?, id.clone()),
        RecordRef::Email(e) => (store.link_by_email(&conn.name, &e.trim().to_lowercase())?, e.clone()),
    };
    found.ok_or(ActivityError::NotLinked(shown))
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
        ac: &ActiveCampaignConnector,
        a: &Activity,
    ) -> Result<Option<String>, ConnectorError> {
        let map = if a.kind.about_campaign() {
            if self.campaigns.is_none() {
                let all = ac.campaigns(None).await?;
                self.campaigns = Some(all.into_iter().map(|c| (c.id, c.name)).collect());
            }
            self.campaigns.as_ref()
        } else if a.kind.about_automation() {
            if self.automations.is_none() {
                let all = ac.automations(None).await?;
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

    async fn view(
        &mut self,
        ac: &ActiveCampaignConnector,
        a: &Activity,
    ) -> Result<ActivityView, ConnectorError> {
        let about = self.about(ac, a).await?;
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
pub async fn recent(
    service: &Service,
    conn: &Connection,
    record: &RecordRef,
) -> Result<RecordActivities, ActivityError> {
    let ac = ac(conn)?;
    let link = link_of(&service.store, conn, record)?;
    let mut names = Names::default();
    let mut activities = Vec::new();
    for a in ac.recent_activities(&link.remote_id, RECENT).await? {
        activities.push(names.view(ac, &a).await?);
    }
    Ok(RecordActivities { sf_id: link.sf_id, sf_object: link.sf_object, contact: link.remote_id, activities })
}

// ---------------------------------------------------------------------------
// The activity pass

/// What one activity pass works with.
pub struct TaskPass<'a> {
    pub connection: &'a str,
    pub state: &'a State,
    pub store: &'a EngineStore,
    pub ac: &'a ActiveCampaignConnector,
    /// Reads Tasks back after an interrupted write.
    pub salesforce: &'a SalesforceConnector,
    /// Writes the Tasks (the same Salesforce connector in the service).
    pub writer: &'a dyn Connector,
    pub budget: Option<&'a Budget>,
    pub stop: Option<&'a AtomicBool>,
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
}

/// An activity sent as a Task and not yet settled.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    activity: String,
    at: DateTime<Utc>,
    who_id: String,
    queued_at: DateTime<Utc>,
}

/// How a written activity ended, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Done {
    Task(String),
    Refused(String),
}

/// The connection's part of the `activities` tree.
struct Log<'a> {
    tree: sled::Tree,
    connection: &'a str,
}

fn secs(at: DateTime<Utc>) -> [u8; 8] {
    (at.timestamp().max(0) as u64).to_be_bytes()
}

fn corrupt(why: impl ToString) -> StateError {
    StateError::Corrupt { tree: trees::ACTIVITIES, why: why.to_string() }
}

type Tx = sled::transaction::ConflictableTransactionError<StateError>;

impl<'a> Log<'a> {
    fn open(state: &State, connection: &'a str) -> Result<Log<'a>, StateError> {
        Ok(Log { tree: state.db().open_tree(trees::ACTIVITIES)?, connection })
    }

    fn key(&self, part: &str, tail: &[u8]) -> Vec<u8> {
        keys::activity(self.connection, part, tail)
    }

    fn done_key(&self, activity: &str, at: DateTime<Utc>) -> Vec<u8> {
        let mut tail = secs(at).to_vec();
        tail.extend_from_slice(activity.as_bytes());
        self.key("d", &tail)
    }

    fn cursor(&self) -> Result<Option<DateTime<Utc>>, StateError> {
        self.tree
            .get(self.key("c", b""))?
            .map(|v| {
                let text = String::from_utf8_lossy(&v).into_owned();
                DateTime::parse_from_rfc3339(&text).map(|t| t.with_timezone(&Utc)).map_err(corrupt)
            })
            .transpose()
    }

    fn is_done(&self, a: &Activity) -> Result<bool, StateError> {
        Ok(self.tree.contains_key(self.done_key(&a.id, a.at))?)
    }

    fn pending(&self) -> Result<Vec<Pending>, StateError> {
        self.tree
            .scan_prefix(self.key("p", b""))
            .map(|kv| serde_json::from_slice(&kv?.1).map_err(corrupt))
            .collect()
    }

    fn put_pending(&self, batch: &[Pending]) -> Result<(), StateError> {
        let mut b = sled::Batch::default();
        for p in batch {
            b.insert(self.key("p", p.activity.as_bytes()), serde_json::to_vec(p).map_err(corrupt)?);
        }
        self.tree.apply_batch(b)?;
        self.tree.flush()?;
        Ok(())
    }

    /// Drops the pending entries and stores how each settled one ended, in one transaction.
    fn settle(&self, pending: &[Pending], outcomes: &[(usize, Done)]) -> Result<(), StateError> {
        let encoded: Vec<(Vec<u8>, Vec<u8>)> = outcomes
            .iter()
            .map(|(i, d)| {
                let p = &pending[*i];
                Ok((self.done_key(&p.activity, p.at), serde_json::to_vec(d).map_err(corrupt)?))
            })
            .collect::<Result<_, StateError>>()?;
        self.tree
            .transaction(|t| {
                for p in pending {
                    t.remove(self.key("p", p.activity.as_bytes()))?;
                }
                for (k, v) in &encoded {
                    t.insert(k.as_slice(), v.as_slice())?;
                }
                Ok::<(), Tx>(())
            })
            .map_err(|e| match e {
                sled::transaction::TransactionError::Storage(e) => StateError::Db(e),
                sled::transaction::TransactionError::Abort(e) => e,
            })?;
        self.tree.flush()?;
        Ok(())
    }

    /// Moves the cursor and forgets written activities far behind it.
    fn advance(&self, to: DateTime<Utc>) -> Result<(), StateError> {
        let text = to.to_rfc3339_opts(SecondsFormat::Secs, true);
        self.tree.insert(self.key("c", b""), text.as_bytes())?;
        let (from, until) = (self.key("d", b""), self.key("d", &secs(to - KEEP_DONE)));
        for k in self.tree.range(from..until).keys() {
            self.tree.remove(k?)?;
        }
        self.tree.flush()?;
        Ok(())
    }
}

/// The Task an activity becomes.
fn task(a: &Activity, link: &Link, about: Option<&str>) -> Record {
    let label = a.kind.label();
    let subject = match about {
        Some(name) => format!("ActiveCampaign: {label} — {name}"),
        None => format!("ActiveCampaign: {label}"),
    };
    let at = a.at.to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut description = format!("{label} at {at} (ActiveCampaign {}).\n", a.reference_type);
    if let Some(name) = about {
        description.push_str(&format!("{name} (id {}).\n", a.reference_id));
    }
    description.push_str(&format!("ActiveCampaign contact id: {}\n{MARKER}{}", link.remote_id, a.id));
    Record::new(System::Salesforce, TASK)
        .with("WhoId", link.sf_id.as_str())
        .with("Subject", subject.chars().take(255).collect::<String>())
        .with("ActivityDate", Value::Date(a.at.date_naive()))
        .with("Status", "Completed")
        .with("Description", description)
}

/// The activity id a Task's Description names.
fn marked(description: &str) -> Option<&str> {
    description.lines().find_map(|l| l.trim().strip_prefix(MARKER)).map(str::trim)
}

/// Writes each new activity of a linked contact as a Task.
pub async fn to_tasks(p: &TaskPass<'_>) -> Result<ActivityReport, ActivityError> {
    let mut report = ActivityReport::default();
    let log = Log::open(p.state, p.connection)?;
    recover(p, &log, &mut report).await?;
    let cursor = log.cursor()?;
    let after = cursor.map(|c| c - OVERLAP);
    let mut names = Names::default();
    let mut offset = 0;
    // The newest activity read, and the oldest one left for a later run.
    let mut newest = cursor;
    let mut hold: Option<DateTime<Utc>> = None;
    let mut batch: Vec<(Pending, Record)> = Vec::new();
    loop {
        if p.halted(&mut report) {
            break;
        }
        let page = p.ac.activities_after(after, offset, PAGE).await?;
        offset += page.len();
        report.read += page.len();
        for a in &page {
            newest = newest.max(Some(a.at));
            if log.is_done(a)? {
                report.already += 1;
                continue;
            }
            let Some(link) = p.store.link_by_remote(p.connection, None, &a.contact)? else {
                report.unlinked += 1;
                continue;
            };
            let about = names.about(p.ac, a).await?;
            let pending = Pending {
                activity: a.id.clone(),
                at: a.at,
                who_id: link.sf_id.clone(),
                queued_at: Utc::now(),
            };
            batch.push((pending, task(a, &link, about.as_deref())));
            if batch.len() == COLLECTION_LIMIT {
                write(p, &log, std::mem::take(&mut batch), &mut hold, &mut report).await?;
            }
        }
        let last = page.len() < PAGE;
        if last || batch.is_empty() {
            if !batch.is_empty() {
                write(p, &log, std::mem::take(&mut batch), &mut hold, &mut report).await?;
            }
            // Everything read so far is settled: the cursor may move.
            if let Some(to) = newest.min(hold.or(newest))
                && Some(to) > cursor
            {
                log.advance(to)?;
            }
        }
        if last {
            break;
        }
    }
    // Halted with a batch in hand: it was never sent, and the cursor has not passed it.
    Ok(report)
}

/// Sends one batch (≤ 200) through Collections, with the pending entries around it.
async fn write(
    p: &TaskPass<'_>,
    log: &Log<'_>,
    batch: Vec<(Pending, Record)>,
    hold: &mut Option<DateTime<Utc>>,
    report: &mut ActivityReport,
) -> Result<(), ActivityError> {
    let (pending, records): (Vec<Pending>, Vec<Record>) = batch.into_iter().unzip();
    log.put_pending(&pending)?;
    let writes: Vec<Write> = pending
        .iter()
        .zip(records)
        .map(|(p, record)| Write::Upsert {
            key: WriteKey::New { idempotency_key: format!("ac-activity-{}", p.activity) },
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
                outcomes.push((i, Done::Task(written.id)));
            }
            Err(e) if e.retryable => {
                report.deferred += 1;
                *hold = Some(hold.map_or(pend.at, |h| h.min(pend.at)));
            }
            Err(e) => {
                report.errors += 1;
                p.store.put_error(
                    p.connection,
                    &RecordErrorEntry {
                        at: Utc::now(),
                        side: Side::Salesforce,
                        object: TASK.into(),
                        record: format!("ac-activity-{}", pend.activity),
                        code: e.code.clone(),
                        message: e.message.clone(),
                        plugin: None,
                    },
                )?;
                outcomes.push((i, Done::Refused(e.to_string())));
            }
        }
    }
    log.settle(&pending, &outcomes)?;
    Ok(())
}

/// Settles the pending entries an interrupted write left: a Task that is in
/// Salesforce makes its activity done; the others are dropped and written
/// when the listing reaches them again.
async fn recover(p: &TaskPass<'_>, log: &Log<'_>, report: &mut ActivityReport) -> Result<(), ActivityError> {
    let pending = log.pending()?;
    let Some(since) = pending.iter().map(|x| x.queued_at).min() else { return Ok(()) };
    let whos: Vec<String> =
        pending.iter().map(|x| x.who_id.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    // Salesforce's clock and ours may differ a little.
    let tasks = p.salesforce.tasks_of(&whos, since - Duration::hours(1)).await?;
    let found: BTreeMap<(&str, &str), &str> = tasks
        .iter()
        .filter_map(|t| Some(((t.who_id.as_str(), marked(&t.description)?), t.id.as_str())))
        .collect();
    let mut outcomes = Vec::new();
    for (i, x) in pending.iter().enumerate() {
        if let Some(id) = found.get(&(x.who_id.as_str(), x.activity.as_str())) {
            report.recovered += 1;
            outcomes.push((i, Done::Task(id.to_string())));
        }
    }
    tracing::info!(
        connection = p.connection,
        pending = pending.len(),
        found = outcomes.len(),
        "settled an interrupted Task write"
    );
    log.settle(&pending, &outcomes)?;
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
pub async fn offered(conn: &Connection) -> Result<Offered, ActivityError> {
    let ac = ac(conn)?;
    Ok(Offered {
        campaigns: ac.campaigns(Some(LABEL)).await?,
        automations: ac.automations(Some(LABEL)).await?,
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
    /// AC's id of the contact's entry in the automation.
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

async fn labelled_automation(ac: &ActiveCampaignConnector, given: &str) -> Result<Automation, ActivityError> {
    let offered = ac.automations(Some(LABEL)).await?;
    if let Some(a) = pick(&offered, given, |a| &a.id, |a| &a.name) {
        return Ok(a.clone());
    }
    let all = ac.automations(None).await?;
    Err(match pick(&all, given, |a| &a.id, |a| &a.name) {
        Some(a) => ActivityError::NotLabelled { kind: "automation", id: a.id.clone(), name: a.name.clone() },
        None => ActivityError::NotFound { kind: "automation", given: given.to_string() },
    })
}

async fn enter(
    ac: &ActiveCampaignConnector,
    link: &Link,
    automation: &Automation,
) -> Result<String, ActivityError> {
    let inactive = |detail: String| ActivityError::Inactive {
        id: automation.id.clone(),
        name: automation.name.clone(),
        detail,
    };
    if !automation.active {
        return Err(inactive(String::new()));
    }
    match ac.add_to_automation(&link.remote_id, &automation.id).await {
        Err(ConnectorError::Rejected { status: 403, message, .. }) => Err(inactive(format!(" ({message})"))),
        other => Ok(other?),
    }
}

/// Adds the record's contact to an automation labelled [`LABEL`].
pub async fn add_to_automation(
    service: &Service,
    conn: &Connection,
    record: &str,
    automation: &str,
) -> Result<ActionDone, ActivityError> {
    let ac = ac(conn)?;
    let link = link_of(&service.store, conn, &RecordRef::SalesforceId(record.to_string()))?;
    let automation = labelled_automation(ac, automation).await?;
    let entry = enter(ac, &link, &automation).await?;
    tracing::info!(connection = %conn.name, automation = %automation.id, "contact added to an automation");
    Ok(ActionDone {
        sf_id: link.sf_id,
        contact: link.remote_id,
        automation,
        campaign: None,
        contact_automation: entry,
    })
}

/// Sends a campaign labelled [`LABEL`] to the record's contact: by adding
/// the contact to the automation the campaign belongs to.
pub async fn send_campaign(
    service: &Service,
    conn: &Connection,
    record: &str,
    campaign: &str,
) -> Result<ActionDone, ActivityError> {
    let ac = ac(conn)?;
    let link = link_of(&service.store, conn, &RecordRef::SalesforceId(record.to_string()))?;
    let offered = ac.campaigns(Some(LABEL)).await?;
    let campaign = match pick(&offered, campaign, |c| &c.id, |c| &c.name) {
        Some(c) => c.clone(),
        None => {
            let all = ac.campaigns(None).await?;
            return Err(match pick(&all, campaign, |c| &c.id, |c| &c.name) {
                Some(c) => {
                    ActivityError::NotLabelled { kind: "campaign", id: c.id.clone(), name: c.name.clone() }
                }
                None => ActivityError::NotFound { kind: "campaign", given: campaign.to_string() },
            });
        }
    };
    let Some(automation_id) = &campaign.automation else {
        return Err(ActivityError::OneOff { id: campaign.id, name: campaign.name });
    };
    let all = ac.automations(None).await?;
    let automation = all
        .into_iter()
        .find(|a| &a.id == automation_id)
        .ok_or_else(|| ActivityError::NotFound { kind: "automation", given: automation_id.clone() })?;
    let entry = enter(ac, &link, &automation).await?;
    tracing::info!(connection = %conn.name, campaign = %campaign.id, automation = %automation.id, "campaign sent through its automation");
    Ok(ActionDone {
        sf_id: link.sf_id,
        contact: link.remote_id,
        automation,
        campaign: Some(campaign),
        contact_automation: entry,
    })
}

// ---------------------------------------------------------------------------
// Admin API

/// The admin API routes of this module (mounted behind the bearer check):
///
/// | method | path | |
/// |---|---|---|
/// | GET | `/connections/{name}/records/{sf_id}/activities` | the 20 most recent activities |
/// | GET | `/connections/{name}/actions` | campaigns and automations labelled Salesforce |
/// | POST | `/connections/{name}/records/{sf_id}/add-to-automation` | `{"automation": "id or name"}` |
/// | POST | `/connections/{name}/records/{sf_id}/send-campaign` | `{"campaign": "id or name"}` |
pub fn admin_routes<S: Clone + Send + Sync + 'static>(service: Arc<Service>) -> axum::Router<S> {
    axum::Router::new()
        .route("/connections/{name}/records/{sf_id}/activities", get(api_activities))
        .route("/connections/{name}/actions", get(api_offered))
        .route("/connections/{name}/records/{sf_id}/add-to-automation", post(api_add_to_automation))
        .route("/connections/{name}/records/{sf_id}/send-campaign", post(api_send_campaign))
        .with_state(service)
}

type Svc = AxumState<Arc<Service>>;

fn answer<T: Serialize>(result: Result<T, ActivityError>) -> Response {
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => (e.status(), Json(json!({"error": e.to_string()}))).into_response(),
    }
}

// A ready answer as the error, like the other admin handlers; its size does not matter here.
#[allow(clippy::result_large_err)]
fn connection<'s>(service: &'s Service, name: &str) -> Result<&'s Arc<Connection>, Response> {
    service
        .connection(name)
        .map_err(|e| (StatusCode::NOT_FOUND, Json(json!({"error": e.to_string()}))).into_response())
}

async fn api_activities(AxumState(s): Svc, Path((name, sf_id)): Path<(String, String)>) -> Response {
    match connection(&s, &name) {
        Ok(conn) => answer(recent(&s, conn, &RecordRef::SalesforceId(sf_id)).await),
        Err(r) => r,
    }
}

async fn api_offered(AxumState(s): Svc, Path(name): Path<String>) -> Response {
    match connection(&s, &name) {
        Ok(conn) => answer(offered(conn).await),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct AutomationBody {
    automation: String,
}

#[derive(Deserialize)]
struct CampaignBody {
    campaign: String,
}

async fn api_add_to_automation(
    AxumState(s): Svc,
    Path((name, sf_id)): Path<(String, String)>,
    Json(body): Json<AutomationBody>,
) -> Response {
    match connection(&s, &name) {
        Ok(conn) => answer(add_to_automation(&s, conn, &sf_id, &body.automation).await),
        Err(r) => r,
    }
}

async fn api_send_campaign(
    AxumState(s): Svc,
    Path((name, sf_id)): Path<(String, String)>,
    Json(body): Json<CampaignBody>,
) -> Response {
    match connection(&s, &name) {
        Ok(conn) => answer(send_campaign(&s, conn, &sf_id, &body.campaign).await),
        Err(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_names_its_activity_and_the_marker_reads_back() {
        let at = DateTime::parse_from_rfc3339("2024-06-01T10:05:00Z").unwrap().with_timezone(&Utc);
        let a = Activity {
            id: "12".into(),
            contact: "7".into(),
            at,
            kind: ActivityKind::CampaignOpened,
            reference_type: "CampaignOpen".into(),
            reference_id: "3".into(),
        };
        let link = Link {
            sf_id: "00Q1".into(),
            sf_object: "Lead".into(),
            remote_id: "7".into(),
            remote_object: None,
            email: None,
            sf_values: Default::default(),
            marketing_values: Default::default(),
            synced_at: at,
            plugin: None,
        };
        let t = task(&a, &link, Some("June news"));
        assert_eq!(t.text("WhoId"), Some("00Q1"));
        assert_eq!(t.text("Subject"), Some("ActiveCampaign: Campaign opened — June news"));
        assert_eq!(t.get("ActivityDate"), Some(&Value::Date(at.date_naive())));
        let d = t.text("Description").unwrap();
        assert!(d.contains("2024-06-01T10:05:00Z"), "{d}");
        assert_eq!(marked(d), Some("12"));
        assert_eq!(marked("ActiveCampaign activity id: 123\n"), Some("123"));
        assert_eq!(marked("no marker"), None);
    }
}
