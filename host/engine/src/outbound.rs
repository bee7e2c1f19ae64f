//! One sync pass, Salesforce → marketing, for each Salesforce object:
//!
//! ```text
//! fetch changes (cursor) → select → map → match identity → diff against the
//! last synced values → outbox (+ cursor, one store step) → write in batches
//! → links and errors
//! ```
//!
//! Echo suppression: a change whose mapped values equal what was last synced
//! for its link writes nothing — so crmsync's own writes coming back, and
//! edits of unmapped fields, cost no API call. Only changed fields are sent.
//! Identity: a linked record is written by its remote id; an unlinked one by
//! email (create-or-update, idempotent on replay), an account by name. Two
//! unlinked records with one email in a batch: the second is reported, never
//! merged.

use std::collections::{BTreeMap, HashMap};

use chrono::Utc;
use crmsync_core::connector::fields;
use crmsync_core::store::{EntryKind, RecordErrorEntry};
use crmsync_core::{
    Changes, Context, Direction, Link, OutboxEntry, Record, RuleFailure, Selection, Side, Store, System,
    Value, Write, WriteKey,
};
use crmsync_sdk::convert::email_key;

use crate::diff;
use crate::identity::{self, Followed};
use crate::outbox::{Flush, flush, status_text, write_back_entry};
use crate::spec::{ConnectionSpec, OnDelete};
use crate::{Pass, PassReport, PlannedWrite, SyncError};

/// Runs a Salesforce → marketing pass over every object of the connection.
///
/// Status write-backs are gathered and go at the pass's end. Each changes its
/// record's `SystemModstamp`, so the pass then reads on once from its cursor:
/// those records come back as unchanged echoes (an edit made meanwhile is
/// found there), and the next cycle starts past them. A pass that left writes
/// waiting in the outbox does not: its records are read again next pass.
pub async fn to_marketing(pass: &Pass<'_>) -> Result<PassReport, SyncError> {
    let mut report = PassReport::default();
    if !pass.dry_run {
        flush(pass, &mut report, Flush::End).await?;
    }
    for _round in 0..2 {
        let written_back = report.written_back;
        let mut halted = false;
        for object in &pass.spec.objects {
            if !object_pass(pass, object, &mut report).await? {
                halted = true;
                break;
            }
        }
        if pass.dry_run {
            break;
        }
        flush(pass, &mut report, Flush::End).await?;
        // After writes that must wait (an outage), the next pass reads them.
        if halted || report.written_back == written_back || report.deferred > 0 {
            break;
        }
    }
    Ok(report)
}

/// Pages through one object's changes; `false` when the pass was halted.
async fn object_pass(pass: &Pass<'_>, object: &str, report: &mut PassReport) -> Result<bool, SyncError> {
    let Pass { spec, store, salesforce, dry_run, .. } = *pass;
    let mut cursor = store.cursor(&spec.name, Side::Salesforce, object)?;
    loop {
        if pass.halted(report) {
            return Ok(false);
        }
        let mut changes = salesforce.fetch_changes(object, cursor.as_ref(), spec.page_size).await?;
        report.read += changes.records.len();
        pass.page_read(
            Direction::ToMarketing,
            object,
            changes.records.len() + changes.deleted.len(),
            changes.remaining,
        );
        let removals = if dry_run { Vec::new() } else { follow_identity(spec, store, &mut changes, report)? };
        let ctx = pass.context(Direction::ToMarketing, Some(spec.marketing_object_for(object).into()));
        let (mut entries, planned) = plan(pass, &ctx, object, std::mem::take(&mut changes.records), report)?;
        entries.extend(removals);
        if dry_run {
            report.planned.extend(planned);
        } else {
            let next = changes.next.as_ref().map(|c| (Side::Salesforce, object, c));
            store.enqueue_and_advance(&spec.name, &entries, next)?;
            flush(pass, report, Flush::Page).await?;
        }
        pass.page_written(Direction::ToMarketing, object, changes.remaining, report);
        // A dry run pages on from the cursor it was given, storing nothing.
        match changes.next {
            Some(next) if changes.more && Some(&next) != cursor.as_ref() => cursor = Some(next),
            _ => return Ok(true),
        }
    }
}

/// Identity transitions: a converted Lead's link moves to its Contact, a
/// merged record's link to the surviving master — unless that record has a
/// link of its own, which is kept (two contacts are never merged silently);
/// then the loser counts as deleted. A deleted linked record's counterpart is
/// handled by the `to_marketing` delete policy: the writes returned go into
/// the page's outbox step. Converted Leads themselves no longer sync.
fn follow_identity(
    spec: &ConnectionSpec,
    store: &dyn Store,
    changes: &mut Changes,
    report: &mut PassReport,
) -> Result<Vec<OutboxEntry>, SyncError> {
    let mut entries = Vec::new();
    let mut deleted = 0;
    for gone in &changes.deleted {
        // A merge's loser follows its master, unless the master has a link
        // of its own: then the loser counts as deleted (its record is gone).
        if let Some(master) = &gone.merged_into
            && store.link_by_sf(&spec.name, master)?.is_none()
            && let Followed::Moved(status) =
                identity::follow(spec, store, &gone.id, master, &gone.object_type, report)?
        {
            entries.extend(status.map(|s| *s));
            continue;
        }
        if let Some(link) = store.link_by_sf(&spec.name, &gone.id)? {
            entries.extend(removal(spec, store, &link, spec.deletes.to_marketing, Side::Marketing)?);
            deleted += 1;
        }
    }
    let mut kept = Vec::with_capacity(changes.records.len());
    for record in std::mem::take(&mut changes.records) {
        let converted =
            record.object_type == "Lead" && record.get("IsConverted") == Some(&Value::Boolean(true));
        match (converted, record.id.as_deref(), record.text("ConvertedContactId")) {
            (true, Some(lead), Some(contact)) => {
                if let Followed::Moved(status) =
                    identity::follow(spec, store, lead, contact, "Contact", report)?
                {
                    entries.extend(status.map(|s| *s));
                }
            }
            (true, ..) => {}
            (false, ..) => kept.push(record),
        }
    }
    changes.records = kept;
    report.deleted += deleted;
    Ok(entries)
}

/// A linked record is gone from one side: what the policy does to the
/// counterpart on `target`. `Ignore` drops the link now; the others return
/// the write, whose success drops the link (a crash replays it).
pub(crate) fn removal(
    spec: &ConnectionSpec,
    store: &dyn Store,
    link: &Link,
    policy: OnDelete,
    target: Side,
) -> Result<Option<OutboxEntry>, SyncError> {
    let (object, id, system) = match target {
        Side::Marketing => (
            link.remote_object.clone().unwrap_or_else(|| spec.marketing_object.clone()),
            &link.remote_id,
            spec.marketing_system,
        ),
        Side::Salesforce => (link.sf_object.clone(), &link.sf_id, crmsync_core::System::Salesforce),
    };
    let write = match policy {
        OnDelete::Ignore => {
            store.unlink(&spec.name, &link.sf_id)?;
            return Ok(None);
        }
        OnDelete::Delete => Write::Delete { id: id.clone() },
        OnDelete::Unsubscribe => {
            let field = match target {
                Side::Marketing => fields::UNSUBSCRIBE,
                Side::Salesforce => spec.opt_out_field.as_deref().unwrap_or("HasOptedOutOfEmail"),
            };
            let record = Record::new(system, object.clone()).with(field, Value::Boolean(true));
            Write::Upsert { key: WriteKey::Id(id.clone()), record }
        }
    };
    Ok(Some(OutboxEntry::new(EntryKind::Removal, target, object, write).about(link)))
}

/// Selects, maps and diffs one page; returns the writes to queue and what a
/// dry run shows.
pub(crate) fn plan(
    pass: &Pass<'_>,
    ctx: &Context<()>,
    object: &str,
    records: Vec<Record>,
    report: &mut PassReport,
) -> Result<(Vec<OutboxEntry>, Vec<PlannedWrite>), SyncError> {
    let mut planner = Planner {
        spec: pass.spec,
        store: pass.store,
        object,
        report,
        entries: Vec::new(),
        planned: Vec::new(),
        in_batch: HashMap::new(),
    };
    // A record that failed earlier in this pass and comes back unchanged (the
    // echo of its error write-back) would fail the same way.
    let records: Vec<Record> = records
        .into_iter()
        .filter(|r| {
            let again = planner.report.failed_unchanged(
                r.id.as_deref().unwrap_or_default(),
                fingerprint(pass.spec, object, &r.fields),
            );
            planner.report.unchanged += usize::from(again);
            !again
        })
        .collect();
    let selected = planner.select(pass, ctx, records)?;
    let mapped = pass.rules.map(ctx, &selected);
    let mut links = Vec::with_capacity(selected.len());
    for source in &selected {
        links.push(pass.store.link_by_sf(&pass.spec.name, source.id.as_deref().unwrap_or_default())?);
    }
    let bases = diff::mapped_bases(
        pass.rules,
        ctx,
        &selected,
        &links,
        System::Salesforce,
        |l| &l.sf_values,
        &mapped.plugin,
    );
    let each = selected.iter().zip(mapped.results).zip(links.into_iter().zip(bases));
    for ((source, result), (link, base)) in each {
        match result {
            Ok(mut target) => {
                diff::sanitize(&mut target, source, planner.report);
                diff::opt_out_to_marketing(pass.spec, source, &mut target);
                planner.plan_one(source, target, link, base.as_ref(), &mapped.plugin)?
            }
            Err(failure) => {
                planner.reject(source, &failure.code, failure.to_string(), mapped.plugin.clone())?
            }
        }
    }
    Ok((planner.entries, planner.planned))
}

/// One page's planning state.
struct Planner<'p> {
    spec: &'p ConnectionSpec,
    store: &'p dyn Store,
    object: &'p str,
    report: &'p mut PassReport,
    entries: Vec<OutboxEntry>,
    planned: Vec<PlannedWrite>,
    /// Match keys seen in this page → the Salesforce id that had it first.
    in_batch: HashMap<String, String>,
}

impl Planner<'_> {
    fn error(&self, record: &str, code: &str, message: String, plugin: Option<String>) -> RecordErrorEntry {
        RecordErrorEntry {
            at: Utc::now(),
            side: Side::Salesforce,
            object: self.object.to_string(),
            record: record.to_string(),
            code: code.to_string(),
            message,
            plugin,
        }
    }

    /// The records the selector lets through; its failures are kept per record.
    fn select(
        &mut self,
        pass: &Pass<'_>,
        ctx: &Context<()>,
        records: Vec<Record>,
    ) -> Result<Vec<Record>, SyncError> {
        let selection = pass.rules.select(ctx, &records);
        let mut selected = Vec::with_capacity(records.len());
        for (record, verdict) in records.into_iter().zip(selection.results) {
            match verdict {
                Ok(Selection::Sync) | Ok(Selection::CreateAs(_)) => selected.push(record),
                Ok(Selection::Skip(reason)) => *self.report.skipped.entry(reason).or_default() += 1,
                Err(RuleFailure { code, message }) => {
                    let id = record.id.clone().unwrap_or_default();
                    self.report.failed_with(&id, Some(fingerprint(self.spec, self.object, &record.fields)));
                    let error = self.error(&id, &code, message, selection.plugin.clone());
                    self.store.put_error(&self.spec.name, &error)?;
                }
            }
        }
        Ok(selected)
    }

    /// A record that cannot sync: its error is kept, and written back on it.
    fn reject(
        &mut self,
        source: &Record,
        code: &str,
        message: String,
        plugin: Option<String>,
    ) -> Result<(), SyncError> {
        let sf_id = source.id.as_deref().unwrap_or_default();
        self.report.failed_with(sf_id, Some(fingerprint(self.spec, self.object, &source.fields)));
        let entry = self.error(sf_id, code, message, plugin);
        self.store.put_error(&self.spec.name, &entry)?;
        let status = status_text(&entry);
        self.entries.extend(write_back_entry(self.spec, self.object, sf_id, &status, None, &source.fields));
        Ok(())
    }

    /// Diffs one mapped record against its link and queues the write.
    fn plan_one(
        &mut self,
        source: &Record,
        target: Record,
        link: Option<Link>,
        base: Option<&BTreeMap<String, Value>>,
        plugin: &Option<String>,
    ) -> Result<(), SyncError> {
        let (spec, object) = (self.spec, self.object);
        let sf_id = source.id.clone().unwrap_or_default();
        let matched = match_key(object, &target);
        let email = matched.as_ref().map(|(key, _)| key.clone());
        let previous = link.as_ref().map(|l| &l.marketing_values);
        let changed = match previous {
            Some(previous) => diff::changed_fields(&target, base, previous),
            None => target.fields.clone(),
        };
        if link.is_some() && changed.is_empty() {
            self.report.unchanged += 1;
            return Ok(());
        }
        let Some(key) = self.write_key(source, &link, matched, plugin)? else { return Ok(()) };
        let mut fields = if link.is_some() { changed } else { target.fields.clone() };
        if link.is_none()
            && !spec.is_account_object(spec.marketing_object_for(object))
            && let Some(tag) = &spec.created_tag
        {
            fields.insert(fields::TAGS.into(), Value::TextList(vec![tag.clone()]));
        }
        self.planned.push(planned_write(&sf_id, &key, &fields, previous));
        let mut marketing_values = previous.cloned().unwrap_or_default();
        marketing_values.extend(target.fields.clone());
        let record = Record { fields, ..target };
        let marketing_object = spec.marketing_object_for(object);
        let write = Write::Upsert { key, record };
        let entry =
            OutboxEntry::new(EntryKind::Sync { then_tag: None }, Side::Marketing, marketing_object, write)
                .salesforce(object, Some(sf_id))
                .remote(spec.remote_object(marketing_object), link.as_ref().map(|l| l.remote_id.clone()))
                .email(email)
                .snapshots(source.fields.clone(), marketing_values)
                .plugin(plugin.clone());
        self.entries.push(entry);
        Ok(())
    }

    /// How the write finds its target: the link's id, else the match key —
    /// unless another record of this page or another link holds that key
    /// (reported, never merged), or there is none (reported).
    fn write_key(
        &mut self,
        source: &Record,
        link: &Option<Link>,
        matched: Option<(String, WriteKey)>,
        plugin: &Option<String>,
    ) -> Result<Option<WriteKey>, SyncError> {
        let sf_id = source.id.clone().unwrap_or_default();
        let account = self.object == "Account";
        let (index, key) = match (link, matched) {
            (Some(link), _) => return Ok(Some(WriteKey::Id(link.remote_id.clone()))),
            (None, Some(found)) => found,
            (None, None) => {
                let (code, message) = if account {
                    ("missing-name", "the account has no name, so it cannot sync")
                } else {
                    ("missing-email", "the record has no email address, so it cannot sync")
                };
                self.reject(source, code, message.to_string(), plugin.clone())?;
                return Ok(None);
            }
        };
        let first = match self.in_batch.insert(index.clone(), sf_id.clone()) {
            Some(other) => Some(other),
            None => {
                self.store.link_by_email(&self.spec.name, &index)?.map(|l| l.sf_id).filter(|h| *h != sf_id)
            }
        };
        let Some(first) = first else { return Ok(Some(key)) };
        let (code, message) = if account {
            let m = format!(
                "Salesforce accounts {first} and {sf_id} share one name: {sf_id} is not synced (accounts are never merged)"
            );
            ("duplicate-name", m)
        } else {
            let m = format!(
                "Salesforce records {first} and {sf_id} share one email: {sf_id} is not synced (records are never merged)"
            );
            ("duplicate-email", m)
        };
        self.reject(source, code, message, None)?;
        Ok(None)
    }
}

/// Fields that change without an edit of the record's own: its stamps.
const STAMPS: [&str; 3] = ["SystemModstamp", "LastModifiedDate", "LastModifiedById"];

/// What a Salesforce record holds, but for its stamps and crmsync's own
/// write-back fields: equal before and after crmsync writes its status back.
pub(crate) fn fingerprint(spec: &ConnectionSpec, object: &str, fields: &BTreeMap<String, Value>) -> u64 {
    use std::hash::{Hash, Hasher};
    let written = spec.write_back.as_ref().and_then(|w| w.fields(object));
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for (name, value) in fields {
        let ours = written.is_some_and(|(status, id)| name == status || Some(name.as_str()) == id);
        if ours || STAMPS.contains(&name.as_str()) {
            continue;
        }
        name.hash(&mut hasher);
        value.to_string().hash(&mut hasher);
    }
    hasher.finish()
}

/// What a dry run shows for one write.
fn planned_write(
    sf_id: &str,
    key: &WriteKey,
    fields: &BTreeMap<String, Value>,
    previous: Option<&BTreeMap<String, Value>>,
) -> PlannedWrite {
    PlannedWrite {
        sf_id: sf_id.to_string(),
        key: match key {
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
    }
}

/// How an unlinked record is found on the marketing side: `(index key, write
/// key)` — people by email (trimmed, lowercased), accounts by name (unique on
/// the marketing side; the index key is `account:` + the lowercased name).
fn match_key(sf_object: &str, record: &Record) -> Option<(String, WriteKey)> {
    if sf_object == "Account" {
        let name = record.text("name").map(str::trim).filter(|n| !n.is_empty())?;
        return Some((format!("account:{}", name.to_lowercase()), WriteKey::Name(name.to_string())));
    }
    let email = ["email", "email_address", "Email"].iter().find_map(|f| record.text(f))?;
    let key = email_key(email);
    Some((key.clone(), WriteKey::Email(key)))
}
