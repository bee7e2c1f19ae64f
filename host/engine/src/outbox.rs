//! Writing what the outbox holds: per side and object, in the largest batch
//! each API takes, and settling each batch's outcomes — links, errors, and
//! the follow-ups they call for (status write-backs, tags) — in one store
//! step ([`Store::settle`](crmsync_core::Store::settle)).
//!
//! - A whole call that fails transiently leaves its entries queued; the
//!   Salesforce records of marketing writes that wait get "Pending next
//!   sync" written back once.
//! - A per-record failure is kept under that record's own id (the Salesforce
//!   id for outbound writes and write-backs, the marketing id for inbound
//!   ones) and written back as the record's status.
//! - Marketing-originated Salesforce writes wait for a full batch or for
//!   their oldest to reach the window; under a paused budget only creates and
//!   opt-outs go, and only as many as the share has calls left for.
//! - Status write-backs are gathered over a pass (up to
//!   [`WRITE_BACK_GATHER`]) and go at its end as one large write, which the
//!   Salesforce connector sends as one Bulk API 2.0 job.

use std::collections::BTreeMap;

use chrono::Utc;
use crmsync_core::connector::fields;
use crmsync_core::store::{EntryKind, Outcome, RecordErrorEntry};
use crmsync_core::{Connector, Link, OutboxEntry, Record, Side, Value, Write, WriteKey, WriteResult};

use crate::budget::BudgetState;
use crate::spec::{ConnectionSpec, PENDING, SYNCED};
use crate::{Pass, PassReport, SyncError};

/// How much of the outbox a flush writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// After a page: status write-backs wait until [`WRITE_BACK_GATHER`] of
    /// them are queued, so a pass writes them back in a few Bulk jobs
    /// rather than one per page.
    Page,
    /// At a pass's start and end: everything that is due.
    End,
}

/// How many status write-backs a pass gathers before writing them back
/// mid-pass (one Bulk API 2.0 job: four calls, whatever its size). They
/// wait in the outbox, so a crash loses none; bounded so that a backfill's
/// memory and the outbox reads stay small.
pub const WRITE_BACK_GATHER: usize = 20_000;

/// Writes what the outbox holds, per side and object, in batches of the
/// largest size each API allows.
pub async fn flush(pass: &Pass<'_>, report: &mut PassReport, until: Flush) -> Result<(), SyncError> {
    let Pass { spec, store, salesforce, marketing, .. } = *pass;
    // Successes may queue follow-ups (status write-backs, tags): flush those too,
    // a bounded number of rounds; what stays (transient failures, write-backs
    // being gathered) waits for a later flush.
    for _ in 0..3 {
        // Between pages, the write-backs being gathered are counted, not read.
        let pending = match until {
            Flush::End => store.pending(&spec.name)?,
            Flush::Page => match store.pending_besides_write_backs(&spec.name)? {
                (others, gathered) if gathered < WRITE_BACK_GATHER => others,
                _ => store.pending(&spec.name)?,
            },
        };
        if pending.is_empty() {
            break;
        }
        let mut wrote = false;
        let mut groups: BTreeMap<(Side, String), Vec<(u64, OutboxEntry)>> = BTreeMap::new();
        for (seq, entry) in pending {
            groups.entry((entry.target, entry.object.clone())).or_default().push((seq, entry));
        }
        for ((side, object), mut pending) in groups {
            let (connector, batch): (&dyn Connector, usize) = match side {
                Side::Salesforce => {
                    pending = salesforce_due(pass, pending, until, report);
                    // Salesforce takes large groups at once: its connector switches to Bulk API 2.0.
                    (salesforce, pending.len())
                }
                Side::Marketing => (marketing, marketing.limits().max_write_batch),
            };
            for chunk in pending.chunks(batch.max(1)) {
                write_chunk(pass, connector, &object, chunk, report).await?;
                wrote = true;
            }
        }
        if !wrote {
            break;
        }
    }
    Ok(())
}

/// The Salesforce writes that may go now, creates and opt-outs first:
/// marketing-originated updates wait for a full batch (`inbound_batch`
/// records) or for their oldest to reach `inbound_window`, unless the pass
/// forces them; under a paused budget only priority writes go, and only as
/// many as the share has calls left for. After a page, status write-backs
/// wait to be gathered ([`Flush::Page`]).
fn salesforce_due(
    pass: &Pass<'_>,
    mut pending: Vec<(u64, OutboxEntry)>,
    until: Flush,
    report: &mut PassReport,
) -> Vec<(u64, OutboxEntry)> {
    let spec = pass.spec;
    pending.sort_by_key(|(seq, e)| (!e.is_priority(), *seq));
    let inbound: Vec<&OutboxEntry> = pending.iter().map(|(_, e)| e).filter(|e| !e.is_write_back()).collect();
    let window = chrono::Duration::from_std(spec.inbound_window).unwrap_or(chrono::Duration::MAX);
    let batch_due = pass.force
        || inbound.len() >= spec.inbound_batch
        || inbound.iter().any(|e| Utc::now() - e.queued_at >= window);
    if !batch_due {
        pending.retain(|(_, e)| e.is_write_back());
    }
    if until == Flush::Page && pending.iter().filter(|(_, e)| e.is_write_back()).count() < WRITE_BACK_GATHER {
        pending.retain(|(_, e)| !e.is_write_back());
    }
    match pass.budget_state() {
        BudgetState::Ok | BudgetState::Warn => {}
        BudgetState::Paused => {
            let left = pass.salesforce.api_usage().zip(pass.budget).map_or(0, |(u, b)| b.remaining(u));
            // Each write of a priority batch costs at most one call per batch of the API's size.
            let per_call = pass.salesforce.limits().max_write_batch.max(1);
            let affordable = (left as usize).saturating_mul(per_call);
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
    if chunk.is_empty() {
        return Ok(());
    }
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
    let mut settled = Settlement::default();
    for ((seq, entry), result) in chunk.iter().zip(results) {
        settled.add(spec, *seq, entry, result, report);
    }
    // Outcomes and their follow-ups (written at the next flush round) in one step.
    store.settle(&spec.name, &settled.outcomes, &settled.follow_ups)?;
    let (deferred, notes) = note_pending(spec, settled.deferred.iter());
    store.defer(&spec.name, &deferred, &notes)?;
    Ok(())
}

/// One batch's outcomes, the follow-ups they call for, and the entries left
/// for a retry.
#[derive(Default)]
struct Settlement {
    outcomes: Vec<Outcome>,
    follow_ups: Vec<OutboxEntry>,
    deferred: Vec<(u64, OutboxEntry)>,
}

impl Settlement {
    fn add(
        &mut self,
        spec: &ConnectionSpec,
        seq: u64,
        entry: &OutboxEntry,
        result: WriteResult,
        report: &mut PassReport,
    ) {
        let removal = entry.kind == EntryKind::Removal;
        match result {
            Ok(_) if matches!(entry.kind, EntryKind::WriteBack | EntryKind::Tag) => {
                report.written_back += usize::from(entry.is_write_back());
                self.outcomes.push(Outcome::Done { seq, link: None });
            }
            Ok(_) if removal => self.unlinked(seq, entry),
            Ok(written) => self.synced(spec, seq, entry, written.id, report),
            // A record already gone is what a removal wants.
            Err(e) if removal && ["ENTITY_IS_DELETED", "NOT_FOUND"].contains(&e.code.as_str()) => {
                self.unlinked(seq, entry)
            }
            Err(e) if e.retryable => {
                report.deferred += 1;
                self.deferred.push((seq, entry.clone()));
            }
            Err(e) => {
                let outbound = entry.target == Side::Marketing && entry.sf_id.is_some();
                let seen =
                    outbound.then(|| crate::outbound::fingerprint(spec, &entry.sf_object, &entry.sf_values));
                report.failed_with(&error_record(entry), seen);
                let error = RecordErrorEntry {
                    at: Utc::now(),
                    side: entry.target,
                    object: entry.object.clone(),
                    record: error_record(entry),
                    code: e.code.clone(),
                    message: e.message.clone(),
                    plugin: entry.plugin.clone(),
                };
                if let (Side::Marketing, Some(sf_id)) = (entry.target, &entry.sf_id) {
                    let status = status_text(&error);
                    self.follow_ups.extend(write_back_entry(
                        spec,
                        &entry.sf_object,
                        sf_id,
                        &status,
                        None,
                        &entry.sf_values,
                    ));
                }
                self.outcomes.push(Outcome::Failed { seq, error });
            }
        }
    }

    fn unlinked(&mut self, seq: u64, entry: &OutboxEntry) {
        self.outcomes.push(Outcome::Unlinked { seq, sf_id: entry.sf_id.clone().unwrap_or_default() });
    }

    /// A sync write succeeded: the link it implies, its tag, and the status
    /// written back on the Salesforce record.
    fn synced(
        &mut self,
        spec: &ConnectionSpec,
        seq: u64,
        entry: &OutboxEntry,
        id: String,
        report: &mut PassReport,
    ) {
        let to_salesforce = entry.target == Side::Salesforce;
        let (sf_id, remote_id) =
            if to_salesforce { (Some(id), entry.remote_id.clone()) } else { (entry.sf_id.clone(), Some(id)) };
        let was_linked = if to_salesforce { entry.sf_id.is_some() } else { entry.remote_id.is_some() };
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
            retired: None,
        });
        self.outcomes.push(Outcome::Done { seq, link });
        if let (EntryKind::Sync { then_tag: Some(tag) }, Some(remote_id)) = (&entry.kind, &remote_id) {
            self.follow_ups.push(tag_entry(spec, remote_id, tag));
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
            self.follow_ups.extend(write_back_entry(
                spec,
                &entry.sf_object,
                sf_id,
                SYNCED,
                remote_id.as_deref(),
                &current,
            ));
        }
    }
}

/// The record a failed write's error is kept under: the Salesforce record
/// for outbound writes and status write-backs, the marketing record for
/// writes coming from marketing.
fn error_record(entry: &OutboxEntry) -> String {
    let (first, second) = match (entry.target, &entry.kind) {
        (Side::Salesforce, EntryKind::Sync { .. }) => (&entry.remote_id, &entry.sf_id),
        _ => (&entry.sf_id, &entry.remote_id),
    };
    first.clone().or_else(|| second.clone()).unwrap_or_default()
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
        let sync = matches!(entry.kind, EntryKind::Sync { .. });
        if entry.target != Side::Marketing || !sync || entry.pending_noted {
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

/// A Salesforce update of the status (and id) fields, unless they already hold those values.
pub(crate) fn write_back_entry(
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
    let mut record = Record::new(crmsync_core::System::Salesforce, sf_object.to_string());
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
    let write = Write::Upsert { key: WriteKey::Id(sf_id.to_string()), record };
    Some(
        OutboxEntry::new(EntryKind::WriteBack, Side::Salesforce, sf_object, write)
            .salesforce(sf_object, Some(sf_id.to_string())),
    )
}

/// A marketing-side write that only adds a tag (e.g. `added-to-salesforce`).
fn tag_entry(spec: &ConnectionSpec, remote_id: &str, tag: &str) -> OutboxEntry {
    let record = Record::new(spec.marketing_system, spec.marketing_object.clone())
        .with(fields::TAGS, Value::TextList(vec![tag.to_string()]));
    let write = Write::Upsert { key: WriteKey::Id(remote_id.to_string()), record };
    OutboxEntry::new(EntryKind::Tag, Side::Marketing, spec.marketing_object.clone(), write)
        .remote(None, Some(remote_id.to_string()))
}

/// The status text for an error: its code and message.
pub(crate) fn status_text(error: &RecordErrorEntry) -> String {
    format!("Error: {}: {}", error.code, error.message)
}
