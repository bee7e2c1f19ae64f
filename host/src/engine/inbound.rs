//! One sync pass, marketing → Salesforce:
//!
//! - a linked contact that changed updates its Salesforce record (the link
//!   says which object and id), with only the changed fields;
//! - an unlinked contact goes through the selector: `create-as` Lead or Contact
//!   creates it in Salesforce (keyed by email, so a replay updates instead of
//!   duplicating), links it, and tags the contact (`added-to-salesforce`);
//!   `skip` keeps the reason.
//!
//! A linked record changed on both sides since the last sync (the Salesforce
//! version differs from the link's base snapshot on a field the contact also
//! changed) goes to the resolver plugin with the base and both versions;
//! fields marketing wins are written to Salesforce, fields Salesforce wins stay
//! and reach marketing on the next outbound pass.
//!
//! Echo suppression works in the marketing namespace: a contact whose fields
//! equal the values last synced for its link (crmsync's own write coming back,
//! or an edit of a field no mapping uses) writes nothing.

use std::collections::{BTreeMap, HashMap};

use chrono::Utc;
use crmsync_sdk::convert::email_key;
use crmsync_sdk::types::{Conflict, Direction, Record, Selection, Side as Winner, Value};

use super::Pass;
use super::store::{EngineStore, Link, OutboxEntry, RecordErrorEntry, Side};
use super::sync::{ConnectionSpec, PassReport, PlannedWrite, SyncError, flush};
use crate::connectors::{Write, WriteKey};

/// Runs a marketing → Salesforce pass over the connection's marketing
/// objects (people, then accounts when Salesforce Accounts sync).
pub async fn to_salesforce(pass: &Pass<'_>) -> Result<PassReport, SyncError> {
    let Pass { spec, store, rules, salesforce, marketing, dry_run, .. } = *pass;
    let mut report = PassReport::default();
    if !dry_run {
        flush(pass, &mut report).await?;
    }
    for object in spec.marketing_objects() {
        let remote_object = spec.remote_object(object);
        let mut cursor = store.cursor(&spec.name, Side::Marketing, object)?;
        loop {
            // The pass reads Salesforce (conflicts) and writes there: it waits while the budget is paused.
            if pass.halted(&mut report) {
                return Ok(report);
            }
            let changes = marketing.fetch_changes(object, cursor.as_ref(), spec.page_size).await?;
            report.read += changes.records.len();
            let ctx = |target: Option<String>| pass.context(Direction::ToSalesforce, target);
            // Linked records by their Salesforce object; unlinked ones to the selector.
            let mut linked: BTreeMap<String, Vec<(Record, Link)>> = BTreeMap::new();
            let mut unlinked = Vec::new();
            // Contacts linked to a Lead may be sent again "as Contact" (below).
            let mut lead_linked = Vec::new();
            for record in changes.records {
                let id = record.id.clone().unwrap_or_default();
                match store.link_by_remote(&spec.name, remote_object.as_deref(), &id)? {
                    Some(link) if remote_object.is_none() && link.sf_object == "Lead" => {
                        lead_linked.push((record, link))
                    }
                    Some(link) if unchanged(&record, &link) => report.unchanged += 1,
                    Some(link) => linked.entry(link.sf_object.clone()).or_default().push((record, link)),
                    None => unlinked.push(record),
                }
            }
            // Accounts reach Salesforce through their link only: a new one
            // joins when a synced Salesforce Account or Contact names it.
            if remote_object.is_some() {
                unlinked.clear();
            }
            // The flag tag is read for unlinked contacts and Lead-linked ones
            // (one listing per page).
            if let Some(tag) = &spec.inbound_tag
                && !(unlinked.is_empty() && lead_linked.is_empty())
            {
                let candidates: Vec<Record> =
                    unlinked.iter().cloned().chain(lead_linked.iter().map(|(r, _)| r.clone())).collect();
                let tagged = marketing.tagged(object, tag, &candidates).await?;
                let records = unlinked.iter_mut().chain(lead_linked.iter_mut().map(|(r, _)| r));
                for record in records {
                    if record.id.as_ref().is_some_and(|id| tagged.contains(id)) {
                        record.set("tags", Value::TextList(vec![tag.clone()]));
                    }
                }
            }
            let mut creates: BTreeMap<String, Vec<Record>> = BTreeMap::new();
            // Seed behaviour: a contact linked to a Lead and flagged "as Contact"
            // creates a Contact (the Lead is not converted) and links to it;
            // otherwise it is an ordinary linked contact.
            if !lead_linked.is_empty() {
                let records: Vec<Record> = lead_linked.iter().map(|(r, _)| r.clone()).collect();
                let verdicts = rules.select(&ctx(None), &records);
                for ((record, link), verdict) in lead_linked.into_iter().zip(verdicts.results) {
                    match verdict {
                        Ok(Selection::CreateAs(o)) if o.object_type() == "Contact" => {
                            creates.entry("Contact".into()).or_default().push(record)
                        }
                        _ if unchanged(&record, &link) => report.unchanged += 1,
                        _ => linked.entry(link.sf_object.clone()).or_default().push((record, link)),
                    }
                }
            }
            let verdicts = rules.select(&ctx(None), &unlinked);
            for (record, verdict) in unlinked.into_iter().zip(verdicts.results) {
                match verdict {
                    Ok(Selection::CreateAs(o)) => {
                        creates.entry(o.object_type().to_string()).or_default().push(record)
                    }
                    Ok(Selection::Sync | Selection::Skip(_)) | Err(_) => {
                        let reason = match verdict {
                            Ok(Selection::Skip(reason)) => reason,
                            Ok(_) => "not flagged for Salesforce".into(),
                            Err(e) => e.to_string(),
                        };
                        *report.skipped.entry(reason).or_default() += 1;
                    }
                }
            }
            let mut entries = Vec::new();
            let mut planned = Vec::new();
            for (sf_object, batch) in linked {
                let records: Vec<Record> = batch.iter().map(|(r, _)| r.clone()).collect();
                let mapped = rules.map(&ctx(Some(sf_object.clone())), &records);
                let mut work = Vec::new();
                for ((source, link), result) in batch.into_iter().zip(mapped.results) {
                    let target = match result {
                        Ok(t) => t,
                        Err(failure) => {
                            rule_failed(store, spec, &mut report, &source, &failure, &mapped.plugin)?;
                            continue;
                        }
                    };
                    let changed: BTreeMap<String, Value> = target
                        .fields
                        .iter()
                        .filter(|(k, v)| link.sf_values.get(*k) != Some(v))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    if changed.is_empty() {
                        report.unchanged += 1;
                        continue;
                    }
                    work.push((source, link, target, changed));
                }
                // Records changed on both sides since the last sync go to the resolver.
                let ids: Vec<String> = work.iter().map(|(_, link, _, _)| link.sf_id.clone()).collect();
                let now: HashMap<String, Record> = if ids.is_empty() {
                    HashMap::new()
                } else {
                    salesforce
                        .get(&sf_object, &ids)
                        .await?
                        .into_iter()
                        .filter_map(|r| Some((r.id.clone()?, r)))
                        .collect()
                };
                let mut conflicts = Vec::new();
                let mut conflicted = Vec::new();
                for (i, (source, link, target, changed)) in work.iter().enumerate() {
                    let Some(sf) = now.get(&link.sf_id) else { continue };
                    let both = changed
                        .keys()
                        .any(|k| sf.get(k) != link.sf_values.get(k) && sf.get(k) != target.get(k));
                    if !both {
                        continue;
                    }
                    let only = |fields: &BTreeMap<String, Value>| -> BTreeMap<String, Value> {
                        target
                            .fields
                            .keys()
                            .filter_map(|k| Some((k.clone(), fields.get(k)?.clone())))
                            .collect()
                    };
                    conflicts.push(Conflict {
                        base: Some(Record { fields: only(&link.sf_values), modified_at: None, ..sf.clone() }),
                        salesforce: Record { fields: only(&sf.fields), ..sf.clone() },
                        marketing: Record { modified_at: source.modified_at, ..target.clone() },
                    });
                    conflicted.push(i);
                }
                let resolved = rules.resolve(&ctx(Some(sf_object.clone())), &conflicts);
                let mut resolution: HashMap<usize, _> =
                    conflicted.into_iter().zip(resolved.results).collect();
                for (i, (source, link, target, mut changed)) in work.into_iter().enumerate() {
                    let mut sf_values = link.sf_values.clone();
                    if let Some(result) = resolution.remove(&i) {
                        let merged = match result {
                            Ok(merged) => merged,
                            Err(failure) => {
                                rule_failed(store, spec, &mut report, &source, &failure, &resolved.plugin)?;
                                continue;
                            }
                        };
                        report.conflicts += 1;
                        let sf = &now[&link.sf_id];
                        // Fields Salesforce won stay as they are there (the next outbound
                        // pass carries them to marketing); fields marketing won are written.
                        changed = merged
                            .merged
                            .into_iter()
                            .filter(|(k, v)| {
                                merged.winners.get(k) == Some(&Winner::Marketing) && sf.get(k) != Some(v)
                            })
                            .collect();
                        for (k, winner) in &merged.winners {
                            if let (Winner::Salesforce, Some(v)) = (winner, sf.get(k)) {
                                sf_values.insert(k.clone(), v.clone());
                            }
                        }
                        if changed.is_empty() {
                            report.unchanged += 1;
                            continue;
                        }
                    }
                    planned.push(plan(&link.sf_id, "update", &changed, &link.sf_values));
                    sf_values.extend(changed.clone());
                    let mut marketing_values = link.marketing_values.clone();
                    marketing_values.extend(source.fields.clone());
                    entries.push(OutboxEntry {
                        target: Side::Salesforce,
                        object: sf_object.clone(),
                        write: Write::Upsert {
                            key: WriteKey::Id(link.sf_id.clone()),
                            record: Record { fields: changed, ..target },
                        },
                        sf_id: Some(link.sf_id.clone()),
                        sf_object: sf_object.clone(),
                        remote_id: Some(link.remote_id.clone()),
                        remote_object: remote_object.clone(),
                        email: link.email.clone(),
                        sf_values,
                        marketing_values,
                        plugin: mapped.plugin.clone(),
                        follow_up_tag: None,
                        write_back: false,
                        unlink: false,
                        pending_noted: false,
                        queued_at: Utc::now(),
                    });
                }
            }
            for (sf_object, records) in creates {
                let mapped = rules.map(&ctx(Some(sf_object.clone())), &records);
                for (source, result) in records.into_iter().zip(mapped.results) {
                    let mut target = match result {
                        Ok(t) => t,
                        Err(failure) => {
                            rule_failed(store, spec, &mut report, &source, &failure, &mapped.plugin)?;
                            continue;
                        }
                    };
                    let Some(email) = target.text("Email").map(email_key) else {
                        report.errors += 1;
                        let message =
                            "the contact has no email address, so it cannot be created in Salesforce"
                                .to_string();
                        store.put_error(
                            &spec.name,
                            &error(&source, "missing-email", message, &mapped.plugin),
                        )?;
                        continue;
                    };
                    if let Some(holder) = store.link_by_email(&spec.name, &email)?
                        && holder.remote_id != source.id.clone().unwrap_or_default()
                    {
                        report.errors += 1;
                        let message = format!(
                            "Salesforce record {} already holds this email and is linked to another contact; nothing is merged",
                            holder.sf_id
                        );
                        store.put_error(&spec.name, &error(&source, "duplicate-email", message, &None))?;
                        continue;
                    }
                    if let Some(company) = &spec.lead_company
                        && sf_object == "Lead"
                        && target.get("Company").is_none_or(Value::is_empty)
                    {
                        target.set("Company", company.clone());
                    }
                    planned.push(plan(
                        "(new)",
                        &format!("create {sf_object}"),
                        &target.fields,
                        &BTreeMap::new(),
                    ));
                    entries.push(OutboxEntry {
                        target: Side::Salesforce,
                        object: sf_object.clone(),
                        write: Write::Upsert { key: WriteKey::Email(email.clone()), record: target.clone() },
                        sf_id: None,
                        sf_object: sf_object.clone(),
                        remote_id: source.id.clone(),
                        remote_object: None,
                        email: Some(email),
                        sf_values: target.fields.clone(),
                        marketing_values: source.fields.clone(),
                        plugin: mapped.plugin.clone(),
                        follow_up_tag: spec.pushed_tag.clone(),
                        write_back: false,
                        unlink: false,
                        pending_noted: false,
                        queued_at: Utc::now(),
                    });
                }
            }
            if dry_run {
                report.planned.extend(planned);
            } else {
                let next = changes.next.as_ref().map(|c| (Side::Marketing, object, c));
                store.enqueue_and_advance(&spec.name, &entries, next)?;
                flush(pass, &mut report).await?;
            }
            match changes.next {
                Some(next) if changes.more && Some(&next) != cursor.as_ref() => cursor = Some(next),
                _ => break,
            }
        }
    }
    Ok(report)
}

/// Whether a marketing record only repeats the values last synced: every field
/// the link knows has the same value (fields no mapping uses are ignored).
fn unchanged(record: &Record, link: &Link) -> bool {
    !link.marketing_values.is_empty()
        && link.marketing_values.iter().all(|(k, v)| match record.get(k) {
            Some(now) => now == v || (now.is_empty() && v.is_empty()),
            None => true,
        })
}

/// A rule (mapper, resolver) failed on a record: count it and keep the error.
fn rule_failed(
    store: &EngineStore,
    spec: &ConnectionSpec,
    report: &mut PassReport,
    record: &Record,
    failure: &crate::plugins::RecordFailure,
    plugin: &Option<String>,
) -> Result<(), SyncError> {
    report.errors += 1;
    store.put_error(&spec.name, &error(record, failure.code(), failure.to_string(), plugin))?;
    Ok(())
}

fn error(record: &Record, code: &str, message: String, plugin: &Option<String>) -> RecordErrorEntry {
    RecordErrorEntry {
        at: Utc::now(),
        side: Side::Marketing,
        object: record.object_type.clone(),
        record: record.id.clone().unwrap_or_default(),
        code: code.to_string(),
        message,
        plugin: plugin.clone(),
    }
}

fn plan(
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
