//! Drift reconciliation (`run --once --reconcile`, and the first outbound
//! job of each day under `serve`): what polling can miss, found by listing
//! ids on both sides.
//!
//! - Salesforce side: every id of each object (pages of 2,000); the records
//!   with neither a link nor a kept error — restored from the recycle bin,
//!   stamped before the cursor, a lost write — go through the same
//!   select/map/outbox path as changes.
//! - Marketing side: every person id; links whose person is gone (a deletion
//!   the change feed never reports) go through the `to_salesforce` delete
//!   policy — unless so many are missing at once that it looks like a wrong
//!   account or a vendor fault, which is refused and reported. A Contact a
//!   Salesforce Case refers to is never removed (Salesforce refuses that
//!   deletion): its link is retired with a warning.

use std::collections::HashSet;

use chrono::Utc;
use crmsync_core::store::RecordErrorEntry;
use crmsync_core::{Direction, Link, Record, Side, Value};

use crate::outbound::{plan, removal};
use crate::outbox::{Flush, flush};
use crate::spec::OnDelete;
use crate::{Pass, PassReport, SyncError};

/// Both sides; `report.read` counts the records fetched for repair.
pub async fn reconcile(pass: &Pass<'_>) -> Result<PassReport, SyncError> {
    let mut report = PassReport::default();
    for object in &pass.spec.objects {
        if !salesforce_missing(pass, object, &mut report).await? {
            return Ok(report);
        }
    }
    if !pass.dry_run {
        marketing_gone(pass, &mut report).await?;
    }
    Ok(report)
}

/// Syncs the records of `object` polling never saw; `false` when halted.
async fn salesforce_missing(
    pass: &Pass<'_>,
    object: &str,
    report: &mut PassReport,
) -> Result<bool, SyncError> {
    let Pass { spec, store, salesforce, dry_run, .. } = *pass;
    let mut after = None;
    loop {
        if pass.halted(report) {
            return Ok(false);
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
            let ctx = pass.context(Direction::ToMarketing, Some(spec.marketing_object_for(object).into()));
            let (entries, planned) = plan(pass, &ctx, object, records, report)?;
            if dry_run {
                report.planned.extend(planned);
            } else {
                store.enqueue_and_advance(&spec.name, &entries, None)?;
                flush(pass, report, Flush::Page).await?;
            }
        }
        match next {
            Some(n) => after = Some(n),
            None => return Ok(true),
        }
    }
}

/// Lists every person id and applies the `to_salesforce` delete policy to
/// the links whose person is gone. A listing that misses more than a tenth
/// of the links (and more than 10) is refused as implausible and reported.
async fn marketing_gone(pass: &Pass<'_>, report: &mut PassReport) -> Result<(), SyncError> {
    let Pass { spec, store, marketing, .. } = *pass;
    let mut present = HashSet::new();
    let mut after = None;
    loop {
        if pass.halted(report) {
            return Ok(());
        }
        let page = marketing.limits().max_page;
        let (ids, next) = marketing.list_ids(&spec.marketing_object, after.as_ref(), page).await?;
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
            "{} of {} linked records are missing from the marketing platform's listing: that many deletions \
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
    // A Contact a Case refers to keeps its Salesforce record whatever the
    // policy (Salesforce would refuse its deletion): the link is retired.
    let policy = spec.deletes.to_salesforce;
    let contacts: Vec<String> =
        gone.iter().filter(|l| l.sf_object == "Contact").map(|l| l.sf_id.clone()).collect();
    let with_cases = if policy == OnDelete::Ignore || contacts.is_empty() {
        HashSet::new()
    } else {
        pass.salesforce.with_cases(&contacts).await?
    };
    let mut entries = Vec::new();
    for link in gone {
        if with_cases.contains(&link.sf_id) {
            // Kept on the record, so reconciliation does not create its
            // person again; its next Salesforce edit syncs it as new.
            let message =
                "deleted on the marketing platform; not propagated: a Salesforce Case refers to this Contact";
            report.warnings += 1;
            tracing::warn!(connection = %spec.name, record = %link.sf_id, "{message}");
            entries.extend(removal(spec, store, link, OnDelete::Ignore, Side::Salesforce)?);
            store.put_error(
                &spec.name,
                &RecordErrorEntry {
                    at: Utc::now(),
                    side: Side::Salesforce,
                    object: link.sf_object.clone(),
                    record: link.sf_id.clone(),
                    code: "kept-for-case".into(),
                    message: message.into(),
                    plugin: None,
                },
            )?;
            continue;
        }
        entries.extend(removal(spec, store, link, policy, Side::Salesforce)?);
        report.deleted += 1;
    }
    store.enqueue_and_advance(&spec.name, &entries, None)?;
    flush(pass, report, Flush::End).await
}
