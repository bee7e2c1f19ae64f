//! One sync pass, marketing → Salesforce:
//!
//! - a linked record that changed updates its Salesforce record (the link
//!   says which object and id), with only the changed fields;
//! - an unlinked one goes through the selector: `create-as` Lead or Contact
//!   creates it in Salesforce (keyed by email, so a replay updates instead of
//!   duplicating), links it, and tags it (`added-to-salesforce`) where the
//!   platform has tags; `skip` keeps the reason.
//!
//! A linked record changed on both sides since the last sync (the Salesforce
//! version differs from the link's base snapshot on a field the marketing
//! record also changed) goes to the resolver with the base and both
//! versions; fields marketing wins are written to Salesforce, fields
//! Salesforce wins stay and reach marketing on the next outbound pass.
//!
//! Echo suppression works in the marketing namespace: a record whose fields
//! equal the values last synced for its link (crmsync's own write coming
//! back, or an edit of a field no mapping uses) writes nothing.

use std::collections::{BTreeMap, HashMap};

use chrono::Utc;
use crmsync_core::connector::fields;
use crmsync_core::store::{EntryKind, RecordErrorEntry};
use crmsync_core::{
    Conflict, Context, Direction, Link, OutboxEntry, Record, Resolution, RuleFailure, Selection, Side, Value,
    Write, WriteKey,
};
use crmsync_sdk::convert::email_key;
use crmsync_sdk::types::Side as Winner;

use crate::diff;
use crate::identity;
use crate::outbox::{Flush, flush};
use crate::{Pass, PassReport, PlannedWrite, SyncError};

/// Runs a marketing → Salesforce pass over the connection's marketing
/// objects (people, then accounts when Salesforce Accounts sync).
pub async fn to_salesforce(pass: &Pass<'_>) -> Result<PassReport, SyncError> {
    let mut report = PassReport::default();
    if !pass.dry_run {
        flush(pass, &mut report, Flush::End).await?;
    }
    for object in pass.spec.marketing_objects() {
        if !object_pass(pass, object, &mut report).await? {
            break;
        }
    }
    if !pass.dry_run {
        flush(pass, &mut report, Flush::End).await?;
    }
    Ok(report)
}

/// Pages through one marketing object's changes; `false` when halted.
async fn object_pass(pass: &Pass<'_>, object: &str, report: &mut PassReport) -> Result<bool, SyncError> {
    let Pass { spec, store, marketing, dry_run, .. } = *pass;
    let mut cursor = store.cursor(&spec.name, Side::Marketing, object)?;
    loop {
        // The pass reads Salesforce (conflicts) and writes there: it waits while the budget is paused.
        if pass.halted(report) {
            return Ok(false);
        }
        let changes = marketing.fetch_changes(object, cursor.as_ref(), spec.page_size).await?;
        report.read += changes.records.len();
        pass.page_read(Direction::ToSalesforce, object, changes.records.len(), changes.remaining);
        let mut page = Page {
            pass,
            object,
            remote_object: spec.remote_object(object),
            report,
            entries: Vec::new(),
            planned: Vec::new(),
            agreed: Vec::new(),
        };
        page.plan(changes.records).await?;
        let Page { entries, planned, agreed, .. } = page;
        if dry_run {
            report.planned.extend(planned);
        } else {
            for link in &agreed {
                store.put_link(&spec.name, link)?;
            }
            let next = changes.next.as_ref().map(|c| (Side::Marketing, object, c));
            store.enqueue_and_advance(&spec.name, &entries, next)?;
            flush(pass, report, Flush::Page).await?;
        }
        pass.page_written(Direction::ToSalesforce, object, changes.remaining, report);
        match changes.next {
            Some(next) if changes.more && Some(&next) != cursor.as_ref() => cursor = Some(next),
            _ => return Ok(true),
        }
    }
}

/// One page of marketing changes being planned.
struct Page<'p, 'a> {
    pass: &'p Pass<'a>,
    object: &'p str,
    /// `None` for the people object.
    remote_object: Option<String>,
    report: &'p mut PassReport,
    entries: Vec<OutboxEntry>,
    planned: Vec<PlannedWrite>,
    /// Links whose marketing edit Salesforce already holds: nothing to
    /// write, but both snapshots move to the agreed values (else a later
    /// edit back to the old value would look like no edit).
    agreed: Vec<Link>,
}

/// Linked records by their Salesforce object.
type Linked = BTreeMap<String, Vec<(Record, Link)>>;

/// A linked record whose mapped fields differ from the link's snapshot.
struct Work {
    source: Record,
    link: Link,
    target: Record,
    changed: BTreeMap<String, Value>,
}

impl Page<'_, '_> {
    fn ctx(&self, target: Option<String>) -> Context<()> {
        self.pass.context(Direction::ToSalesforce, target)
    }

    async fn plan(&mut self, records: Vec<Record>) -> Result<(), SyncError> {
        let (mut linked, mut unlinked, mut lead_linked) = self.sort(records)?;
        // Accounts reach Salesforce through their link only: a new one joins
        // when a synced Salesforce Account or Contact names it.
        if self.remote_object.is_some() {
            unlinked.clear();
        }
        self.mark_flagged(&mut unlinked, &mut lead_linked).await?;
        let mut creates: BTreeMap<String, Vec<Record>> = BTreeMap::new();
        self.triage_lead_linked(lead_linked, &mut linked, &mut creates);
        self.select_creates(unlinked, &mut creates);
        for (sf_object, batch) in linked {
            self.plan_updates(&sf_object, batch).await?;
        }
        for (sf_object, records) in creates {
            self.plan_creates(&sf_object, records)?;
        }
        Ok(())
    }

    /// Linked records, unlinked ones, and people linked to a Lead (which may
    /// be sent again "as Contact").
    #[allow(clippy::type_complexity)]
    fn sort(
        &mut self,
        records: Vec<Record>,
    ) -> Result<(Linked, Vec<Record>, Vec<(Record, Link)>), SyncError> {
        let spec = self.pass.spec;
        let (mut linked, mut unlinked, mut lead_linked) = (Linked::new(), Vec::new(), Vec::new());
        for record in records {
            let id = record.id.clone().unwrap_or_default();
            match self.pass.store.link_by_remote(&spec.name, self.remote_object.as_deref(), &id)? {
                // Retired (its record merged into another linked one): reported once, never written.
                Some(link) if link.retired.is_some() => {
                    *self
                        .report
                        .skipped
                        .entry("merged in Salesforce; needs a decision".into())
                        .or_default() += 1
                }
                Some(link) if self.remote_object.is_none() && link.sf_object == "Lead" => {
                    lead_linked.push((record, link))
                }
                Some(link) if unchanged(&record, &link) => self.report.unchanged += 1,
                Some(link) => linked.entry(link.sf_object.clone()).or_default().push((record, link)),
                None => unlinked.push(record),
            }
        }
        Ok((linked, unlinked, lead_linked))
    }

    /// The flag tag is read for unlinked records and Lead-linked ones (one
    /// listing per page) and shown to the selector in their `tags` field.
    async fn mark_flagged(
        &mut self,
        unlinked: &mut [Record],
        lead_linked: &mut [(Record, Link)],
    ) -> Result<(), SyncError> {
        let Some(tag) = &self.pass.spec.flag_tag else { return Ok(()) };
        if unlinked.is_empty() && lead_linked.is_empty() {
            return Ok(());
        }
        let candidates: Vec<Record> =
            unlinked.iter().cloned().chain(lead_linked.iter().map(|(r, _)| r.clone())).collect();
        let tagged = self.pass.marketing.tagged(self.object, tag, &candidates).await?;
        for record in unlinked.iter_mut().chain(lead_linked.iter_mut().map(|(r, _)| r)) {
            if record.id.as_ref().is_some_and(|id| tagged.contains(id)) {
                record.set(fields::TAGS, Value::TextList(vec![tag.clone()]));
            }
        }
        Ok(())
    }

    /// Seed behaviour: a record linked to a Lead and flagged "as Contact"
    /// creates a Contact (the Lead is not converted) and links to it;
    /// otherwise it is an ordinary linked record.
    fn triage_lead_linked(
        &mut self,
        lead_linked: Vec<(Record, Link)>,
        linked: &mut Linked,
        creates: &mut BTreeMap<String, Vec<Record>>,
    ) {
        if lead_linked.is_empty() {
            return;
        }
        let records: Vec<Record> = lead_linked.iter().map(|(r, _)| r.clone()).collect();
        let verdicts = self.pass.rules.select(&self.ctx(None), &records);
        for ((record, link), verdict) in lead_linked.into_iter().zip(verdicts.results) {
            match verdict {
                Ok(Selection::CreateAs(o)) if o.object_type() == "Contact" => {
                    creates.entry("Contact".into()).or_default().push(record)
                }
                _ if unchanged(&record, &link) => self.report.unchanged += 1,
                _ => linked.entry(link.sf_object.clone()).or_default().push((record, link)),
            }
        }
    }

    /// Unlinked records through the selector: `create-as` goes to `creates`.
    fn select_creates(&mut self, unlinked: Vec<Record>, creates: &mut BTreeMap<String, Vec<Record>>) {
        let verdicts = self.pass.rules.select(&self.ctx(None), &unlinked);
        for (record, verdict) in unlinked.into_iter().zip(verdicts.results) {
            let reason = match verdict {
                Ok(Selection::CreateAs(o)) => {
                    creates.entry(o.object_type().to_string()).or_default().push(record);
                    continue;
                }
                Ok(Selection::Skip(reason)) => reason,
                Ok(Selection::Sync) => "not flagged for Salesforce".into(),
                Err(e) => e.to_string(),
            };
            *self.report.skipped.entry(reason).or_default() += 1;
        }
    }

    /// Linked records of one Salesforce object: map, diff, resolve conflicts, queue.
    async fn plan_updates(&mut self, sf_object: &str, batch: Vec<(Record, Link)>) -> Result<(), SyncError> {
        let records: Vec<Record> = batch.iter().map(|(r, _)| r.clone()).collect();
        let ctx = self.ctx(Some(sf_object.to_string()));
        let mapped = self.pass.rules.map(&ctx, &records);
        let links: Vec<Option<Link>> = batch.iter().map(|(_, l)| Some(l.clone())).collect();
        let system = self.pass.spec.marketing_system;
        let bases = diff::mapped_bases(
            self.pass.rules,
            &ctx,
            &records,
            &links,
            system,
            |l| &l.marketing_values,
            &mapped.plugin,
        );
        let mut work = Vec::new();
        for (((source, link), result), base) in batch.into_iter().zip(mapped.results).zip(bases) {
            let target = match result {
                Ok(mut t) => {
                    diff::sanitize(&mut t, &source, self.report);
                    diff::opt_out_to_salesforce(self.pass.spec, &source, &mut t);
                    t
                }
                Err(failure) => {
                    self.rule_failed(&source, &failure, &mapped.plugin)?;
                    continue;
                }
            };
            // Only what marketing changed (normalised) may be written to Salesforce.
            let changed = diff::changed_fields(&target, base.as_ref(), &link.sf_values);
            if changed.is_empty() {
                self.report.unchanged += 1;
                continue;
            }
            work.push(Work { source, link, target, changed });
        }
        let now = self.current(sf_object, &work).await?;
        let (work, moved) = self.follow_conversions(work, &now)?;
        let (conflicted, resolved) = self.resolve(sf_object, &work, &now);
        let mut resolution: HashMap<usize, _> = conflicted.into_iter().zip(resolved.results).collect();
        for (i, w) in work.into_iter().enumerate() {
            let outcome = resolution.remove(&i);
            self.queue_update(sf_object, w, outcome, &now, &mapped.plugin, &resolved.plugin)?;
        }
        // Edits of records whose Lead became a Contact go to the Contact now.
        if !moved.is_empty() {
            Box::pin(self.plan_updates("Contact", moved)).await?;
        }
        Ok(())
    }

    /// Linked Leads that were converted since the link was made: their
    /// records' edits are not written to the converted Lead (Salesforce
    /// refuses that forever). The link follows the Contact, and the edit goes
    /// there (returned as moved); or the link is retired when the Contact has
    /// a link of its own.
    #[allow(clippy::type_complexity)]
    fn follow_conversions(
        &mut self,
        work: Vec<Work>,
        now: &HashMap<String, Record>,
    ) -> Result<(Vec<Work>, Vec<(Record, Link)>), SyncError> {
        let mut kept = Vec::with_capacity(work.len());
        let mut moved = Vec::new();
        for w in work {
            let converted =
                now.get(&w.link.sf_id).filter(|r| r.get("IsConverted") == Some(&Value::Boolean(true)));
            let Some(contact) = converted.and_then(|r| r.text("ConvertedContactId")) else {
                kept.push(w);
                continue;
            };
            let (spec, store) = (self.pass.spec, self.pass.store);
            if let identity::Followed::Moved(status) =
                identity::follow(spec, store, &w.link.sf_id, contact, "Contact", self.report)?
            {
                self.entries.extend(status.map(|s| *s));
                if let Some(link) = store.link_by_sf(&spec.name, contact)? {
                    moved.push((w.source, link));
                }
            }
        }
        Ok((kept, moved))
    }

    /// The Salesforce version of the records about to be updated.
    async fn current(&self, sf_object: &str, work: &[Work]) -> Result<HashMap<String, Record>, SyncError> {
        let ids: Vec<String> = work.iter().map(|w| w.link.sf_id.clone()).collect();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let found = self.pass.salesforce.get(sf_object, &ids).await?;
        Ok(found.into_iter().filter_map(|r| Some((r.id.clone()?, r))).collect())
    }

    /// Records changed on both sides since the last sync go to the resolver:
    /// which (by index into `work`), and its answers.
    fn resolve(
        &self,
        sf_object: &str,
        work: &[Work],
        now: &HashMap<String, Record>,
    ) -> (Vec<usize>, crmsync_core::RuleOutput<Resolution>) {
        let mut conflicts = Vec::new();
        let mut conflicted = Vec::new();
        for (i, w) in work.iter().enumerate() {
            let Some(sf) = now.get(&w.link.sf_id) else { continue };
            if conflicting(w, sf).is_empty() {
                continue;
            }
            let only = |fields: &BTreeMap<String, Value>| -> BTreeMap<String, Value> {
                w.target.fields.keys().filter_map(|k| Some((k.clone(), fields.get(k)?.clone()))).collect()
            };
            conflicts.push(Conflict {
                base: Some(Record { fields: only(&w.link.sf_values), modified_at: None, ..sf.clone() }),
                salesforce: Record { fields: only(&sf.fields), ..sf.clone() },
                marketing: Record { modified_at: w.source.modified_at, ..w.target.clone() },
            });
            conflicted.push(i);
        }
        let resolved = self.pass.rules.resolve(&self.ctx(Some(sf_object.to_string())), &conflicts);
        (conflicted, resolved)
    }

    /// Queues one linked record's Salesforce update, after its resolution if it had a conflict.
    fn queue_update(
        &mut self,
        sf_object: &str,
        w: Work,
        resolution: Option<Result<Resolution, RuleFailure>>,
        now: &HashMap<String, Record>,
        mapper: &Option<String>,
        resolver: &Option<String>,
    ) -> Result<(), SyncError> {
        let sf = now.get(&w.link.sf_id);
        let contested = sf.map(|sf| conflicting(&w, sf)).unwrap_or_default();
        let Work { source, link, target, mut changed } = w;
        if let Some(result) = resolution {
            let merged = match result {
                Ok(merged) => merged,
                Err(failure) => return self.rule_failed(&source, &failure, resolver),
            };
            self.report.conflicts += 1;
            // Per field: only the fields both sides changed are the
            // resolver's; a field changed on one side keeps that side's value.
            // Fields Salesforce won stay as they are there; their snapshot
            // keeps the base, so the outbound pass carries them to marketing.
            for k in &contested {
                match (merged.winners.get(k), merged.merged.get(k)) {
                    (Some(Winner::Marketing), Some(v)) => {
                        changed.insert(k.clone(), v.clone());
                    }
                    _ => {
                        changed.remove(k);
                    }
                }
            }
        }
        // Salesforce holds every changed field once this is done: written
        // now, or there already (nothing to write for those).
        let mut sf_values = link.sf_values.clone();
        sf_values.extend(changed.clone());
        let mut marketing_values = link.marketing_values.clone();
        marketing_values.extend(source.fields.clone());
        if let Some(sf) = sf {
            changed.retain(|k, v| !diff::same(sf.get(k), Some(v)));
        }
        if changed.is_empty() {
            self.report.unchanged += 1;
            self.agreed.push(Link { sf_values, marketing_values, ..link });
            return Ok(());
        }
        self.planned.push(planned(&link.sf_id, "update", &changed, &link.sf_values));
        let write = Write::Upsert {
            key: WriteKey::Id(link.sf_id.clone()),
            record: Record { fields: changed, ..target },
        };
        let entry = OutboxEntry::new(EntryKind::Sync { then_tag: None }, Side::Salesforce, sf_object, write)
            .about(&link)
            .remote(self.remote_object.clone(), Some(link.remote_id.clone()))
            .snapshots(sf_values, marketing_values)
            .plugin(mapper.clone());
        self.entries.push(entry);
        Ok(())
    }

    /// Records the selector sent to Salesforce as `sf_object`: map and queue creates.
    fn plan_creates(&mut self, sf_object: &str, records: Vec<Record>) -> Result<(), SyncError> {
        let spec = self.pass.spec;
        let mapped = self.pass.rules.map(&self.ctx(Some(sf_object.to_string())), &records);
        for (source, result) in records.into_iter().zip(mapped.results) {
            let mut target = match result {
                Ok(mut t) => {
                    diff::sanitize(&mut t, &source, self.report);
                    diff::opt_out_to_salesforce(self.pass.spec, &source, &mut t);
                    t
                }
                Err(failure) => {
                    self.rule_failed(&source, &failure, &mapped.plugin)?;
                    continue;
                }
            };
            let Some(email) = self.create_email(&source, &target, &mapped.plugin)? else { continue };
            if let Some(company) = &spec.lead_company
                && sf_object == "Lead"
                && target.get("Company").is_none_or(Value::is_empty)
            {
                target.set("Company", company.clone());
            }
            self.planned.push(planned(
                "(new)",
                &format!("create {sf_object}"),
                &target.fields,
                &BTreeMap::new(),
            ));
            let write = Write::Upsert { key: WriteKey::Email(email.clone()), record: target.clone() };
            let kind = EntryKind::Sync { then_tag: spec.pushed_tag.clone() };
            let entry = OutboxEntry::new(kind, Side::Salesforce, sf_object, write)
                .salesforce(sf_object, None)
                .remote(None, source.id.clone())
                .email(Some(email))
                .snapshots(target.fields.clone(), source.fields.clone())
                .plugin(mapped.plugin.clone());
            self.entries.push(entry);
        }
        Ok(())
    }

    /// The email a Salesforce create is keyed by, unless it is missing or
    /// another link holds it (both kept as the record's error).
    fn create_email(
        &mut self,
        source: &Record,
        target: &Record,
        plugin: &Option<String>,
    ) -> Result<Option<String>, SyncError> {
        let name = &self.pass.spec.name;
        let Some(email) = target.text("Email").map(email_key) else {
            let message = "the contact has no email address, so it cannot be created in Salesforce";
            self.keep_error(source, "missing-email", message.to_string(), plugin)?;
            return Ok(None);
        };
        if let Some(holder) = self.pass.store.link_by_email(name, &email)?
            && holder.remote_id != source.id.clone().unwrap_or_default()
        {
            let message = format!(
                "Salesforce record {} already holds this email and is linked to another contact; nothing is merged",
                holder.sf_id
            );
            self.keep_error(source, "duplicate-email", message, &None)?;
            return Ok(None);
        }
        Ok(Some(email))
    }

    /// A rule (mapper, resolver) failed on a record: count it and keep the error.
    fn rule_failed(
        &mut self,
        record: &Record,
        failure: &RuleFailure,
        plugin: &Option<String>,
    ) -> Result<(), SyncError> {
        self.keep_error(record, &failure.code, failure.to_string(), plugin)
    }

    fn keep_error(
        &mut self,
        record: &Record,
        code: &str,
        message: String,
        plugin: &Option<String>,
    ) -> Result<(), SyncError> {
        self.report.errors += 1;
        let error = RecordErrorEntry {
            at: Utc::now(),
            side: Side::Marketing,
            object: record.object_type.clone(),
            record: record.id.clone().unwrap_or_default(),
            code: code.to_string(),
            message,
            plugin: plugin.clone(),
        };
        self.pass.store.put_error(&self.pass.spec.name, &error)?;
        Ok(())
    }
}

/// The fields both sides changed since the last sync, to different values.
fn conflicting(w: &Work, sf: &Record) -> Vec<String> {
    w.changed
        .iter()
        .filter(|(k, v)| {
            !diff::same(sf.get(k), w.link.sf_values.get(k.as_str())) && !diff::same(sf.get(k), Some(v))
        })
        .map(|(k, _)| k.clone())
        .collect()
}

/// Whether a marketing record only repeats the values last synced: every
/// field equals the snapshot's (empties alike), and a field the snapshot
/// lacks is empty. A cheap first look; what passes it is diffed on mapped,
/// normalised values, where fields no mapping uses drop out.
fn unchanged(record: &Record, link: &Link) -> bool {
    !link.marketing_values.is_empty()
        && record.fields.iter().all(|(k, now)| diff::same(link.marketing_values.get(k), Some(now)))
}

fn planned(
    sf_id: &str,
    key: &str,
    fields: &BTreeMap<String, Value>,
    before: &BTreeMap<String, Value>,
) -> PlannedWrite {
    PlannedWrite {
        sf_id: sf_id.to_string(),
        key: key.to_string(),
        fields: fields
            .iter()
            .map(|(k, v)| (k.clone(), before.get(k).map(Value::to_string).unwrap_or_default(), v.to_string()))
            .collect(),
    }
}
