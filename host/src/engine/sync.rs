//! One sync pass, Salesforce → marketing, for one Salesforce object:
//!
//! ```text
//! fetch changes (cursor) → select → map → match identity → diff against the
//! last synced values → outbox (+ cursor, one transaction) → write in batches
//! → links and errors (one transaction per record)
//! ```
//!
//! Echo suppression: a change whose mapped values equal what was last synced
//! for its link writes nothing — so crmsync's own writes coming back, and
//! edits of unmapped fields, cost no API call. Only changed fields are sent.
//! Identity: a linked record is written by its remote id; an unlinked one by
//! email (create-or-update, idempotent on replay). Two unlinked records with
//! one email in a batch: the second is reported, never merged.

use std::collections::{BTreeMap, HashMap};

use chrono::Utc;
use crmsync_sdk::convert::email_key;
use crmsync_sdk::types::{Context, Direction, Record, Selection, Value};

use super::Pass;
use super::budget::BudgetState;
use super::store::{EngineStore, Link, OutboxEntry, Outcome, RecordErrorEntry, Side};
use crate::connectors::{Connector, ConnectorError, Write, WriteKey};
use crate::state::StateError;

/// What a connection syncs, for the engine.
#[derive(Debug, Clone)]
pub struct ConnectionSpec {
    pub name: String,
    /// Salesforce objects synced to marketing (Lead, Contact).
    pub objects: Vec<String>,
    /// The marketing object they become (`contact`, `member`).
    pub marketing_object: String,
    /// Records read per change page.
    pub page_size: usize,
    /// Tag added to contacts created from Salesforce, if any.
    pub created_tag: Option<String>,
    /// Tag added to marketing contacts pushed to Salesforce, if any.
    pub pushed_tag: Option<String>,
    /// Where to write the sync status and the marketing id on the Salesforce record.
    pub write_back: Option<WriteBack>,
    /// The tag that flags a marketing contact for creation in Salesforce (the
    /// selector's `inbound.tag`): the engine reads it for unlinked contacts.
    pub inbound_tag: Option<String>,
    /// Company for a Lead created from a contact without one (Salesforce
    /// requires it on Leads): `[not provided]` by default.
    pub lead_company: Option<String>,
    /// Marketing → Salesforce updates leave in batches of this many records…
    pub inbound_batch: usize,
    /// …or once the oldest has waited this long.
    pub inbound_window: std::time::Duration,
    /// What a deletion on one side does on the other.
    pub deletes: DeletePolicy,
}

/// What a linked record's deletion does to its counterpart (SPEC §3: per
/// direction). A Salesforce merge's loser counts as deleted when its master
/// already has a link of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDelete {
    /// Leave the counterpart as it is; only the link goes.
    #[default]
    Ignore,
    /// Unsubscribe the marketing contact from its lists / mark the Salesforce
    /// record `HasOptedOutOfEmail`.
    Unsubscribe,
    /// Delete the counterpart.
    Delete,
}

/// [`OnDelete`] per direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeletePolicy {
    /// A Salesforce record deleted (or merged away) → its marketing contact.
    #[serde(default)]
    pub to_marketing: OnDelete,
    /// A marketing contact deleted (found by reconciliation) → its Salesforce record.
    #[serde(default)]
    pub to_salesforce: OnDelete,
}

impl ConnectionSpec {
    /// A spec with the seed's defaults: Lead and Contact to `contact`, pages of
    /// 2,000, the seed's tags, inbound batches of 100 records or 10 minutes.
    pub fn new(name: impl Into<String>) -> Self {
        ConnectionSpec {
            name: name.into(),
            objects: vec!["Lead".into(), "Contact".into()],
            marketing_object: "contact".into(),
            page_size: 2000,
            created_tag: Some("created-from-salesforce".into()),
            pushed_tag: Some("added-to-salesforce".into()),
            write_back: None,
            inbound_tag: None,
            lead_company: Some("[not provided]".into()),
            inbound_batch: 100,
            inbound_window: std::time::Duration::from_secs(600),
            deletes: DeletePolicy::default(),
        }
    }
}

impl ConnectionSpec {
    /// The marketing object a Salesforce object syncs with: Accounts with
    /// `account`, people with the connection's people object.
    pub fn marketing_object_for(&self, sf_object: &str) -> &str {
        if sf_object == "Account" { ACCOUNT } else { &self.marketing_object }
    }

    /// The marketing object as links name it: `None` for the people object.
    pub fn remote_object(&self, marketing_object: &str) -> Option<String> {
        (marketing_object != self.marketing_object).then(|| marketing_object.to_string())
    }

    /// The marketing objects read for changes: people, and accounts when
    /// Salesforce Accounts sync.
    pub fn marketing_objects(&self) -> Vec<&str> {
        let mut objects = vec![self.marketing_object.as_str()];
        if self.objects.iter().any(|o| o == "Account") {
            objects.push(ACCOUNT);
        }
        objects
    }
}

/// The marketing object Salesforce Accounts sync with (ActiveCampaign accounts).
pub const ACCOUNT: &str = "account";

/// The Salesforce fields crmsync writes back after each outbound sync.
#[derive(Debug, Clone)]
pub struct WriteBack {
    /// "Synced successfully", "Pending next sync", or the error (e.g. `AC_Sync_Status__c`).
    pub status_field: String,
    /// The marketing record's id (e.g. `AC_Contact_Id__c`).
    pub id_field: String,
    /// On Accounts: the account relation status and the marketing account's id.
    pub account_status_field: Option<String>,
    pub account_id_field: Option<String>,
}

impl WriteBack {
    /// Status and id fields on Leads and Contacts only.
    pub fn new(status_field: impl Into<String>, id_field: impl Into<String>) -> Self {
        WriteBack {
            status_field: status_field.into(),
            id_field: id_field.into(),
            account_status_field: None,
            account_id_field: None,
        }
    }

    /// The (status, id) fields of a Salesforce object, if it has any.
    fn fields(&self, sf_object: &str) -> Option<(&str, Option<&str>)> {
        if sf_object == "Account" {
            let status = self.account_status_field.as_deref()?;
            Some((status, self.account_id_field.as_deref()))
        } else {
            Some((&self.status_field, Some(&self.id_field)))
        }
    }
}

/// The status text written back after a successful sync.
pub const SYNCED: &str = "Synced successfully";

/// The status text written back while a record's write waits for a retry.
pub const PENDING: &str = "Pending next sync";

/// A Salesforce update of the status (and id) fields, unless they already hold those values.
fn write_back_entry(
    spec: &ConnectionSpec,
    sf_object: &str,
    sf_id: &str,
    status: &str,
    remote_id: Option<&str>,
    current: &BTreeMap<String, Value>,
) -> Option<OutboxEntry> {
    let (status_field, id_field) = spec.write_back.as_ref()?.fields(sf_object)?;
    // A status field holds 255 characters: a longer message is shortened, visibly.
    let status: String = if status.chars().count() > 255 {
        status.chars().take(254).chain(std::iter::once('…')).collect()
    } else {
        status.to_string()
    };
    let mut record = Record::new(crmsync_sdk::types::System::Salesforce, sf_object.to_string());
    if current.get(status_field).and_then(Value::as_text) != Some(status.as_str()) {
        record.set(status_field, status);
    }
    if let (Some(id), Some(id_field)) = (remote_id, id_field)
        && current.get(id_field).and_then(Value::as_text) != Some(id)
    {
        record.set(id_field, id);
    }
    if record.fields.is_empty() {
        return None;
    }
    Some(OutboxEntry {
        target: Side::Salesforce,
        object: sf_object.to_string(),
        write: Write::Upsert { key: WriteKey::Id(sf_id.to_string()), record },
        sf_id: Some(sf_id.to_string()),
        sf_object: sf_object.to_string(),
        remote_id: None,
        remote_object: None,
        email: None,
        sf_values: BTreeMap::new(),
        marketing_values: BTreeMap::new(),
        plugin: None,
        follow_up_tag: None,
        write_back: true,
        unlink: false,
        pending_noted: false,
        queued_at: Utc::now(),
    })
}

/// What a pass did, per record outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PassReport {
    pub read: usize,
    /// Records linked for the first time: created on the marketing side, or
    /// matched there by email (bulk APIs do not say which).
    pub created: usize,
    pub updated: usize,
    /// Changes that wrote nothing: echoes of crmsync's writes, or edits of unmapped fields.
    pub unchanged: usize,
    /// Skipped by selection, with the reason and how many.
    pub skipped: BTreeMap<String, usize>,
    pub errors: usize,
    /// Status write-backs made on Salesforce records.
    pub written_back: usize,
    /// Records changed on both sides, merged by the resolver.
    pub conflicts: usize,
    /// Links moved to a converted Lead's Contact or a merge's master.
    pub relinked: usize,
    /// Linked records deleted on one side: their counterparts handled by the
    /// delete policy, their links removed.
    pub deleted: usize,
    /// Writes left in the outbox for a later retry (transient failures).
    pub deferred: usize,
    /// The API budget paused Salesforce calls during the pass.
    pub budget_paused: bool,
    /// The pass stopped early (shutdown); what it read is queued, the rest waits.
    pub stopped: bool,
    /// Dry run: the writes that would be made, per record and field.
    #[serde(skip)]
    pub planned: Vec<PlannedWrite>,
}

impl PassReport {
    /// Adds another pass's counts to this one.
    pub fn add(&mut self, other: PassReport) {
        self.read += other.read;
        self.created += other.created;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        for (reason, n) in other.skipped {
            *self.skipped.entry(reason).or_default() += n;
        }
        self.errors += other.errors;
        self.written_back += other.written_back;
        self.conflicts += other.conflicts;
        self.relinked += other.relinked;
        self.deleted += other.deleted;
        self.deferred += other.deferred;
        self.budget_paused |= other.budget_paused;
        self.stopped |= other.stopped;
        self.planned.extend(other.planned);
    }
}

/// A write a dry run would make.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlannedWrite {
    pub sf_id: String,
    pub key: String,
    /// Field, old value, new value.
    pub fields: Vec<(String, String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Connector(#[from] ConnectorError),
}

/// Runs a Salesforce → marketing pass over every object of the connection.
pub async fn to_marketing(pass: &Pass<'_>) -> Result<PassReport, SyncError> {
    let Pass { spec, store, salesforce, dry_run, .. } = *pass;
    let mut report = PassReport::default();
    if !dry_run {
        flush(pass, &mut report).await?;
    }
    for object in &spec.objects {
        let mut cursor = store.cursor(&spec.name, Side::Salesforce, object)?;
        loop {
            if pass.halted(&mut report) {
                return Ok(report);
            }
            let mut changes = salesforce.fetch_changes(object, cursor.as_ref(), spec.page_size).await?;
            report.read += changes.records.len();
            let removals =
                if dry_run { Vec::new() } else { follow_identity(spec, store, &mut changes, &mut report)? };
            let ctx = pass.context(Direction::ToMarketing, Some(spec.marketing_object_for(object).into()));
            let (mut entries, planned) = plan(pass, &ctx, object, changes.records, &mut report)?;
            entries.extend(removals);
            if dry_run {
                report.planned.extend(planned);
            } else {
                let next = changes.next.as_ref().map(|c| (Side::Salesforce, object.as_str(), c));
                store.enqueue_and_advance(&spec.name, &entries, next)?;
                flush(pass, &mut report).await?;
                tracing::info!(
                    object = %object,
                    read = report.read,
                    created = report.created,
                    updated = report.updated,
                    errors = report.errors,
                    "progress"
                );
            }
            // A dry run pages on from the cursor it was given, storing nothing.
            match changes.next {
                Some(next) if changes.more && Some(&next) != cursor.as_ref() => cursor = Some(next),
                _ => break,
            }
        }
    }
    Ok(report)
}

/// Drift reconciliation, Salesforce side: lists every id of each object
/// (pages of 2,000) and syncs the records polling never saw — no link and no
/// error kept (a record restored from the recycle bin, a change stamped before
/// the cursor, a lost write) — through the same select/map/outbox path.
/// `report.read` counts the records fetched for repair.
pub async fn reconcile(pass: &Pass<'_>) -> Result<PassReport, SyncError> {
    let Pass { spec, store, salesforce, dry_run, .. } = *pass;
    let mut report = PassReport::default();
    for object in &spec.objects {
        let mut after = None;
        loop {
            if pass.halted(&mut report) {
                return Ok(report);
            }
            let (ids, next) = salesforce.list_ids(object, after.as_ref(), 2000).await?;
            let mut missing = Vec::new();
            for id in ids {
                if store.link_by_sf(&spec.name, &id)?.is_none() && !store.has_error(&spec.name, &id)? {
                    missing.push(id);
                }
            }
            if !missing.is_empty() {
                let records: Vec<Record> = salesforce
                    .get(object, &missing)
                    .await?
                    .into_iter()
                    .filter(|r| r.get("IsConverted") != Some(&Value::Boolean(true)))
                    .collect();
                report.read += records.len();
                let ctx =
                    pass.context(Direction::ToMarketing, Some(spec.marketing_object_for(object).into()));
                let (entries, planned) = plan(pass, &ctx, object, records, &mut report)?;
                if dry_run {
                    report.planned.extend(planned);
                } else {
                    store.enqueue_and_advance(&spec.name, &entries, None)?;
                    flush(pass, &mut report).await?;
                }
            }
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
    }
    if !dry_run {
        marketing_gone(pass, &mut report).await?;
    }
    Ok(report)
}

/// Drift reconciliation, marketing side: lists every contact id and finds the
/// links whose contact is gone (a deletion the change feed never reports);
/// each goes through the `to_salesforce` delete policy. A listing that misses
/// more than a tenth of the links (and more than 10) is refused as
/// implausible — a wrong account or a vendor glitch must never delete
/// Salesforce records — and reported as an error instead.
async fn marketing_gone(pass: &Pass<'_>, report: &mut PassReport) -> Result<(), SyncError> {
    let Pass { spec, store, marketing, .. } = *pass;
    let mut present = std::collections::HashSet::new();
    let mut after = None;
    loop {
        if pass.halted(report) {
            return Ok(());
        }
        let (ids, next) = marketing.list_ids(&spec.marketing_object, after.as_ref(), 100).await?;
        present.extend(ids);
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let links: Vec<Link> =
        store.links(&spec.name)?.into_iter().filter(|l| l.remote_object.is_none()).collect();
    let gone: Vec<&Link> = links.iter().filter(|l| !present.contains(&l.remote_id)).collect();
    if gone.len() > (links.len() / 10).max(10) {
        report.errors += 1;
        let message = format!(
            "{} of {} linked contacts are missing from the marketing platform's listing: that many deletions \
             looks like a wrong account or a vendor fault, so the delete policy was not applied",
            gone.len(),
            links.len()
        );
        tracing::error!(connection = %spec.name, "{message}");
        let error = RecordErrorEntry {
            at: Utc::now(),
            side: Side::Marketing,
            object: spec.marketing_object.clone(),
            record: "(reconciliation)".into(),
            code: "implausible-deletes".into(),
            message,
            plugin: None,
        };
        store.put_error(&spec.name, &error)?;
        return Ok(());
    }
    let mut entries = Vec::new();
    for link in gone {
        entries.extend(removal(spec, store, link, spec.deletes.to_salesforce, Side::Salesforce)?);
        report.deleted += 1;
    }
    store.enqueue_and_advance(&spec.name, &entries, None)?;
    flush(pass, report).await
}

/// Identity transitions: a converted Lead's link moves to its Contact, a
/// merged record's link to the surviving master — unless that record has a
/// link of its own, which is kept (two contacts are never merged silently);
/// then the loser counts as deleted. A deleted linked record's counterpart is
/// handled by the `to_marketing` delete policy: the writes returned go into
/// the page's outbox transaction. Converted Leads themselves no longer sync.
fn follow_identity(
    spec: &ConnectionSpec,
    store: &EngineStore,
    changes: &mut crate::connectors::Changes,
    report: &mut PassReport,
) -> Result<Vec<OutboxEntry>, SyncError> {
    let mut relink = |from: &str, to: &str, object: &str| -> Result<bool, SyncError> {
        let moved =
            store.link_by_sf(&spec.name, to)?.is_none() && store.relink(&spec.name, from, to, object)?;
        if moved {
            report.relinked += 1;
        }
        Ok(moved)
    };
    let mut removals = Vec::new();
    for gone in &changes.deleted {
        if let Some(master) = &gone.merged_into
            && relink(&gone.id, master, &gone.object_type)?
        {
            continue;
        }
        if let Some(link) = store.link_by_sf(&spec.name, &gone.id)? {
            removals.extend(removal(spec, store, &link, spec.deletes.to_marketing, Side::Marketing)?);
            report.deleted += 1;
        }
    }
    let mut kept = Vec::with_capacity(changes.records.len());
    for record in std::mem::take(&mut changes.records) {
        let converted =
            record.object_type == "Lead" && record.get("IsConverted") == Some(&Value::Boolean(true));
        match (converted, record.id.as_deref(), record.text("ConvertedContactId")) {
            (true, Some(lead), Some(contact)) => {
                relink(lead, contact, "Contact")?;
            }
            (true, ..) => {}
            (false, ..) => kept.push(record),
        }
    }
    changes.records = kept;
    Ok(removals)
}

/// A linked record is gone from one side: what the policy does to the
/// counterpart on `target`. `Ignore` drops the link now; the others return
/// the write, whose success drops the link (a crash replays it).
pub(crate) fn removal(
    spec: &ConnectionSpec,
    store: &EngineStore,
    link: &Link,
    policy: OnDelete,
    target: Side,
) -> Result<Option<OutboxEntry>, SyncError> {
    let (object, id) = match target {
        Side::Marketing => {
            (link.remote_object.clone().unwrap_or_else(|| spec.marketing_object.clone()), &link.remote_id)
        }
        Side::Salesforce => (link.sf_object.clone(), &link.sf_id),
    };
    let write = match policy {
        OnDelete::Ignore => {
            store.unlink(&spec.name, &link.sf_id)?;
            return Ok(None);
        }
        OnDelete::Delete => Write::Delete { id: id.clone() },
        OnDelete::Unsubscribe => {
            let (system, field) = match target {
                Side::Marketing => (crmsync_sdk::types::System::ActiveCampaign, "unsubscribe"),
                Side::Salesforce => (crmsync_sdk::types::System::Salesforce, "HasOptedOutOfEmail"),
            };
            let record = Record::new(system, object.clone()).with(field, Value::Boolean(true));
            Write::Upsert { key: WriteKey::Id(id.clone()), record }
        }
    };
    Ok(Some(OutboxEntry {
        target,
        object,
        write,
        sf_id: Some(link.sf_id.clone()),
        sf_object: link.sf_object.clone(),
        remote_id: Some(link.remote_id.clone()),
        remote_object: link.remote_object.clone(),
        email: link.email.clone(),
        sf_values: BTreeMap::new(),
        marketing_values: BTreeMap::new(),
        plugin: None,
        follow_up_tag: None,
        write_back: false,
        unlink: true,
        pending_noted: false,
        queued_at: Utc::now(),
    }))
}

/// Selects, maps and diffs one page; returns the writes to queue.
fn plan(
    Pass { spec, store, rules, .. }: &Pass<'_>,
    ctx: &Context<()>,
    object: &str,
    records: Vec<Record>,
    report: &mut PassReport,
) -> Result<(Vec<OutboxEntry>, Vec<PlannedWrite>), SyncError> {
    let error = |record: &str, code: &str, message: String, plugin: Option<String>| RecordErrorEntry {
        at: Utc::now(),
        side: Side::Salesforce,
        object: object.to_string(),
        record: record.to_string(),
        code: code.to_string(),
        message,
        plugin,
    };
    let selection = rules.select(ctx, &records);
    let mut selected = Vec::with_capacity(records.len());
    for (record, verdict) in records.into_iter().zip(selection.results) {
        let id = record.id.clone().unwrap_or_default();
        match verdict {
            Ok(Selection::Sync) | Ok(Selection::CreateAs(_)) => selected.push(record),
            Ok(Selection::Skip(reason)) => *report.skipped.entry(reason).or_default() += 1,
            Err(failure) => {
                report.errors += 1;
                store.put_error(
                    &spec.name,
                    &error(&id, failure.code(), failure.to_string(), selection.plugin.clone()),
                )?;
            }
        }
    }
    let mapped = rules.map(ctx, &selected);
    let mut entries = Vec::new();
    let mut planned = Vec::new();
    let mut emails_in_batch: HashMap<String, String> = HashMap::new();
    // A record that cannot sync: its error is kept, and written back on it.
    let mut reject =
        |entries: &mut Vec<OutboxEntry>, source: &Record, code: &str, message: String, plugin| {
            let sf_id = source.id.as_deref().unwrap_or_default();
            report.errors += 1;
            let entry = error(sf_id, code, message, plugin);
            store.put_error(&spec.name, &entry)?;
            entries.extend(write_back_entry(spec, object, sf_id, &status_text(&entry), None, &source.fields));
            Ok::<(), SyncError>(())
        };
    let shared_name = |first: &str, sf_id: &str| {
        format!(
            "Salesforce accounts {first} and {sf_id} share one name: {sf_id} is not synced (accounts are never merged)"
        )
    };
    let shared_email = |first: &str, sf_id: &str| {
        format!(
            "Salesforce records {first} and {sf_id} share one email: {sf_id} is not synced (records are never merged)"
        )
    };
    for (source, result) in selected.iter().zip(mapped.results) {
        let sf_id = source.id.clone().unwrap_or_default();
        let target = match result {
            Ok(target) => target,
            Err(failure) => {
                reject(&mut entries, source, failure.code(), failure.to_string(), mapped.plugin.clone())?;
                continue;
            }
        };
        let matched = match_key(object, &target);
        let email = matched.as_ref().map(|(key, _)| key.clone());
        let link = store.link_by_sf(&spec.name, &sf_id)?;
        let previous = link.as_ref().map(|l| &l.marketing_values);
        let changed: BTreeMap<String, Value> = target
            .fields
            .iter()
            .filter(|(name, value)| previous.is_none_or(|p| p.get(*name) != Some(value)))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        if link.is_some() && changed.is_empty() {
            report.unchanged += 1;
            continue;
        }
        let key = match (&link, matched) {
            (Some(link), _) => WriteKey::Id(link.remote_id.clone()),
            (None, Some((index, key))) => {
                let first = match emails_in_batch.insert(index.clone(), sf_id.clone()) {
                    Some(other) => Some(other),
                    None => store.link_by_email(&spec.name, &index)?.map(|l| l.sf_id).filter(|h| *h != sf_id),
                };
                if let Some(first) = first {
                    let (code, message) = if object == "Account" {
                        ("duplicate-name", shared_name(&first, &sf_id))
                    } else {
                        ("duplicate-email", shared_email(&first, &sf_id))
                    };
                    reject(&mut entries, source, code, message, None)?;
                    continue;
                }
                key
            }
            (None, None) if object == "Account" => {
                let message = "the account has no name, so it cannot sync".to_string();
                reject(&mut entries, source, "missing-name", message, mapped.plugin.clone())?;
                continue;
            }
            (None, None) => {
                let message = "the record has no email address, so it cannot sync".to_string();
                reject(&mut entries, source, "missing-email", message, mapped.plugin.clone())?;
                continue;
            }
        };
        let mut fields = if link.is_some() { changed } else { target.fields.clone() };
        if link.is_none()
            && object != "Account"
            && let Some(tag) = &spec.created_tag
        {
            fields.insert("tags".into(), Value::TextList(vec![tag.clone()]));
        }
        planned.push(PlannedWrite {
            sf_id: sf_id.clone(),
            key: match &key {
                WriteKey::Id(id) => format!("update {id}"),
                WriteKey::Email(email) => format!("create or update by email {email}"),
                WriteKey::Name(name) => format!("create or update by name {name}"),
                WriteKey::New { .. } => "create".into(),
            },
            fields: fields
                .iter()
                .map(|(name, new)| {
                    let old = previous.and_then(|p| p.get(name)).map(Value::to_string).unwrap_or_default();
                    (name.clone(), old, new.to_string())
                })
                .collect(),
        });
        let mut marketing_values = previous.cloned().unwrap_or_default();
        marketing_values.extend(target.fields.clone());
        let record = Record { fields, ..target };
        let marketing_object = spec.marketing_object_for(object);
        entries.push(OutboxEntry {
            target: Side::Marketing,
            object: marketing_object.to_string(),
            write: Write::Upsert { key, record },
            sf_id: Some(sf_id),
            sf_object: object.to_string(),
            remote_id: link.as_ref().map(|l| l.remote_id.clone()),
            remote_object: spec.remote_object(marketing_object),
            email,
            sf_values: source.fields.clone(),
            marketing_values,
            plugin: mapped.plugin.clone(),
            follow_up_tag: None,
            write_back: false,
            unlink: false,
            pending_noted: false,
            queued_at: Utc::now(),
        });
    }
    Ok((entries, planned))
}

/// Writes what the outbox holds, per side and object, in batches of the
/// largest size each API allows.
pub async fn flush(pass: &Pass<'_>, report: &mut PassReport) -> Result<(), SyncError> {
    let Pass { spec, store, salesforce, marketing, .. } = *pass;
    // Successes may queue follow-ups (status write-backs, tags): flush those too,
    // a bounded number of rounds; what stays (transient failures) waits for the next pass.
    for _ in 0..3 {
        let pending = store.pending(&spec.name)?;
        if pending.is_empty() {
            break;
        }
        let mut groups: BTreeMap<(bool, String), Vec<(u64, OutboxEntry)>> = BTreeMap::new();
        for (seq, entry) in pending {
            groups
                .entry((entry.target == Side::Salesforce, entry.object.clone()))
                .or_default()
                .push((seq, entry));
        }
        for ((to_salesforce, object), mut pending) in groups {
            let connector = if to_salesforce { salesforce } else { marketing };
            if to_salesforce {
                pending = salesforce_due(pass, pending, report);
                if pending.is_empty() {
                    continue;
                }
            }
            // Salesforce takes large groups at once: its connector switches to Bulk API 2.0.
            let batch = if to_salesforce { pending.len() } else { connector.limits().max_write_batch.max(1) };
            for chunk in pending.chunks(batch.max(1)) {
                write_chunk(pass, connector, &object, chunk, report).await?;
            }
        }
    }
    Ok(())
}

/// The Salesforce writes that may go now, creates and opt-outs first:
/// marketing-originated updates wait for a full batch (`inbound_batch`
/// records) or for their oldest to reach `inbound_window`, unless the pass
/// forces them; under a paused budget only priority writes go, and only as
/// many as the share has calls left for.
fn salesforce_due(
    pass: &Pass<'_>,
    mut pending: Vec<(u64, OutboxEntry)>,
    report: &mut PassReport,
) -> Vec<(u64, OutboxEntry)> {
    let spec = pass.spec;
    pending.sort_by_key(|(seq, e)| (!e.is_priority(), *seq));
    let inbound: Vec<&OutboxEntry> = pending.iter().map(|(_, e)| e).filter(|e| !e.write_back).collect();
    let window = chrono::Duration::from_std(spec.inbound_window).unwrap_or(chrono::Duration::MAX);
    let batch_due = pass.force
        || inbound.len() >= spec.inbound_batch
        || inbound.iter().any(|e| Utc::now() - e.queued_at >= window);
    if !batch_due {
        pending.retain(|(_, e)| e.write_back);
    }
    match pass.budget_state() {
        BudgetState::Ok | BudgetState::Warn => {}
        BudgetState::Paused => {
            let left = pass.salesforce.api_usage().zip(pass.budget).map_or(0, |(u, b)| b.remaining(u));
            // Each write of a priority batch costs at most one call per 200 records.
            let affordable = (left as usize).saturating_mul(crate::connectors::salesforce::COLLECTION_LIMIT);
            let before = pending.len();
            pending.retain(|(_, e)| e.is_priority());
            pending.truncate(affordable);
            report.budget_paused = true;
            report.deferred += before - pending.len();
        }
        BudgetState::Spent => {
            report.budget_paused = true;
            report.deferred += pending.len();
            pending.clear();
        }
    }
    pending
}

async fn write_chunk(
    pass: &Pass<'_>,
    connector: &dyn Connector,
    object: &str,
    chunk: &[(u64, OutboxEntry)],
    report: &mut PassReport,
) -> Result<(), SyncError> {
    let Pass { spec, store, .. } = *pass;
    let writes: Vec<Write> = chunk.iter().map(|(_, e)| e.write.clone()).collect();
    let results = match connector.write(object, writes).await {
        Ok(results) => results,
        // A whole call failed: everything stays queued for the next flush.
        Err(e) if e.is_transient() => {
            report.deferred += chunk.len();
            tracing::warn!(connection = %spec.name, error = %e, "write deferred");
            let (deferred, notes) = note_pending(spec, chunk.iter());
            store.defer(&spec.name, &deferred, &notes)?;
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let mut follow_ups = Vec::new();
    let mut deferred = Vec::new();
    let mut outcomes = Vec::with_capacity(chunk.len());
    for ((seq, entry), result) in chunk.iter().zip(results) {
        let to_salesforce = entry.target == Side::Salesforce;
        match result {
            Ok(_) if entry.write_back => {
                report.written_back += 1;
                outcomes.push(Outcome::Done { seq: *seq, link: None });
            }
            Ok(_) if entry.unlink => {
                outcomes
                    .push(Outcome::Unlinked { seq: *seq, sf_id: entry.sf_id.clone().unwrap_or_default() });
            }
            Ok(written) => {
                let (sf_id, remote_id) = if to_salesforce {
                    (Some(written.id.clone()), entry.remote_id.clone())
                } else {
                    (entry.sf_id.clone(), Some(written.id.clone()))
                };
                let was_linked =
                    if to_salesforce { entry.sf_id.is_some() } else { entry.remote_id.is_some() };
                if was_linked {
                    report.updated += 1;
                } else {
                    report.created += 1;
                }
                let link = sf_id.zip(remote_id.clone()).map(|(sf_id, remote_id)| Link {
                    sf_id,
                    sf_object: entry.sf_object.clone(),
                    remote_id,
                    remote_object: entry.remote_object.clone(),
                    email: entry.email.clone(),
                    sf_values: entry.sf_values.clone(),
                    marketing_values: entry.marketing_values.clone(),
                    synced_at: Utc::now(),
                    plugin: entry.plugin.clone(),
                });
                outcomes.push(Outcome::Done { seq: *seq, link });
                if let (Some(tag), Some(remote_id)) = (&entry.follow_up_tag, &remote_id) {
                    follow_ups.push(tag_entry(spec, remote_id, tag));
                }
                if let (false, Some(sf_id)) = (to_salesforce, &entry.sf_id) {
                    // After a "Pending next sync" note the stored status is stale: write it.
                    let mut current = entry.sf_values.clone();
                    if entry.pending_noted
                        && let Some((status_field, _)) =
                            spec.write_back.as_ref().and_then(|w| w.fields(&entry.sf_object))
                    {
                        current.remove(status_field);
                    }
                    follow_ups.extend(write_back_entry(
                        spec,
                        &entry.sf_object,
                        sf_id,
                        SYNCED,
                        remote_id.as_deref(),
                        &current,
                    ));
                }
            }
            // A record already gone is what a removal wants.
            Err(e) if entry.unlink && ["ENTITY_IS_DELETED", "NOT_FOUND"].contains(&e.code.as_str()) => {
                outcomes
                    .push(Outcome::Unlinked { seq: *seq, sf_id: entry.sf_id.clone().unwrap_or_default() });
            }
            Err(e) if e.retryable => {
                report.deferred += 1;
                deferred.push((*seq, entry.clone()));
            }
            Err(e) => {
                report.errors += 1;
                let record = if to_salesforce { entry.remote_id.clone() } else { entry.sf_id.clone() };
                let error = RecordErrorEntry {
                    at: Utc::now(),
                    side: entry.target,
                    object: entry.object.clone(),
                    record: record.unwrap_or_default(),
                    code: e.code.clone(),
                    message: e.message.clone(),
                    plugin: entry.plugin.clone(),
                };
                if let (false, Some(sf_id)) = (to_salesforce, &entry.sf_id) {
                    follow_ups.extend(write_back_entry(
                        spec,
                        &entry.sf_object,
                        sf_id,
                        &status_text(&error),
                        None,
                        &entry.sf_values,
                    ));
                }
                outcomes.push(Outcome::Failed { seq: *seq, error });
            }
        }
    }
    // Outcomes and their follow-ups (written at the next flush round) in one transaction.
    store.settle(&spec.name, &outcomes, &follow_ups)?;
    let (deferred, notes) = note_pending(spec, deferred.iter());
    store.defer(&spec.name, &deferred, &notes)?;
    Ok(())
}

/// Marketing writes that must wait (the vendor failed transiently): each
/// Salesforce record gets "Pending next sync" written back once, and its
/// entry remembers it, so the eventual success writes "Synced successfully".
/// Returns the updated entries and the write-backs to queue.
fn note_pending<'a>(
    spec: &ConnectionSpec,
    chunk: impl Iterator<Item = &'a (u64, OutboxEntry)>,
) -> (Vec<(u64, OutboxEntry)>, Vec<OutboxEntry>) {
    let mut deferred = Vec::new();
    let mut notes = Vec::new();
    for (seq, entry) in chunk {
        if entry.target != Side::Marketing || entry.write_back || entry.unlink || entry.pending_noted {
            continue;
        }
        let Some(sf_id) = &entry.sf_id else { continue };
        if let Some(note) = write_back_entry(spec, &entry.sf_object, sf_id, PENDING, None, &entry.sf_values) {
            notes.push(note);
            deferred.push((*seq, OutboxEntry { pending_noted: true, ..entry.clone() }));
        }
    }
    (deferred, notes)
}

/// A marketing-side write that only adds a tag (e.g. `added-to-salesforce`).
fn tag_entry(spec: &ConnectionSpec, remote_id: &str, tag: &str) -> OutboxEntry {
    let record = Record::new(crmsync_sdk::types::System::ActiveCampaign, spec.marketing_object.clone())
        .with("tags", Value::TextList(vec![tag.to_string()]));
    OutboxEntry {
        target: Side::Marketing,
        object: spec.marketing_object.clone(),
        write: Write::Upsert { key: WriteKey::Id(remote_id.to_string()), record },
        sf_id: None,
        sf_object: String::new(),
        remote_id: Some(remote_id.to_string()),
        remote_object: None,
        email: None,
        sf_values: BTreeMap::new(),
        marketing_values: BTreeMap::new(),
        plugin: None,
        follow_up_tag: None,
        write_back: false,
        unlink: false,
        pending_noted: false,
        queued_at: Utc::now(),
    }
}

/// The status text for an error: its code and message.
fn status_text(error: &RecordErrorEntry) -> String {
    format!("Error: {}: {}", error.code, error.message)
}

/// How an unlinked record is found on the marketing side: `(index key, write
/// key)` — people by email (trimmed, lowercased), accounts by name (unique in
/// ActiveCampaign; the index key is `account:` + the lowercased name).
fn match_key(sf_object: &str, record: &Record) -> Option<(String, WriteKey)> {
    if sf_object == "Account" {
        let name = record.text("name").map(str::trim).filter(|n| !n.is_empty())?;
        return Some((format!("account:{}", name.to_lowercase()), WriteKey::Name(name.to_string())));
    }
    let email = ["email", "email_address", "Email"].iter().find_map(|f| record.text(f))?;
    let key = email_key(email);
    Some((key.clone(), WriteKey::Email(key)))
}
