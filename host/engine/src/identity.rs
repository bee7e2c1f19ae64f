//! Identity transitions on the Salesforce side: a Lead converted into a
//! Contact, a record merged into another. A link follows its record to the
//! survivor when the survivor has no link of its own; then the survivor's
//! status is written back at once (its record's state changed: an old error
//! on it no longer holds). When the survivor is linked to another marketing
//! record, the two marketing records are never merged silently: the moved
//! link is *retired* — it stays, so its marketing record is neither written
//! to a converted Lead again nor taken for a new person — and the decision
//! is reported once on it.

use chrono::Utc;
use crmsync_core::store::RecordErrorEntry;
use crmsync_core::{Link, OutboxEntry, Side, Store};

use crate::outbox::write_back_entry;
use crate::spec::{ConnectionSpec, SYNCED};
use crate::{PassReport, SyncError};

/// What following a record to its survivor did.
pub(crate) enum Followed {
    /// The link moved to the survivor; the status write-back to queue.
    Moved(Option<Box<OutboxEntry>>),
    /// The survivor has a link of its own: the moved one is retired.
    Retired,
    /// Nothing was linked.
    Nothing,
}

/// Follows `from`'s link to `to` (of `to_object`): moves it, or retires it.
pub(crate) fn follow(
    spec: &ConnectionSpec,
    store: &dyn Store,
    from: &str,
    to: &str,
    to_object: &str,
    report: &mut PassReport,
) -> Result<Followed, SyncError> {
    let Some(link) = store.link_by_sf(&spec.name, from)? else { return Ok(Followed::Nothing) };
    if link.retired.is_some() {
        return Ok(Followed::Retired);
    }
    match store.link_by_sf(&spec.name, to)? {
        None => {
            store.relink(&spec.name, from, to, to_object)?;
            store.clear_error(&spec.name, to)?;
            report.relinked += 1;
            let status =
                write_back_entry(spec, to_object, to, SYNCED, Some(&link.remote_id), &Default::default());
            Ok(Followed::Moved(status.map(Box::new)))
        }
        Some(holder) => {
            retire(spec, store, link, to, &holder, report)?;
            Ok(Followed::Retired)
        }
    }
}

/// Keeps the link but stops it syncing, with the reason kept once on its
/// marketing record.
fn retire(
    spec: &ConnectionSpec,
    store: &dyn Store,
    mut link: Link,
    survivor: &str,
    holder: &Link,
    report: &mut PassReport,
) -> Result<(), SyncError> {
    let message = format!(
        "Salesforce {} {} now lives on as {survivor}, which is already linked to marketing record {}; \
         marketing record {} is no longer synced until the two are merged by hand (nothing was merged)",
        link.sf_object, link.sf_id, holder.remote_id, link.remote_id
    );
    tracing::warn!(connection = %spec.name, record = %link.sf_id, "a converted or merged record needs a decision");
    let error = RecordErrorEntry {
        at: Utc::now(),
        side: Side::Marketing,
        object: spec.marketing_object.clone(),
        record: link.remote_id.clone(),
        code: "merge-needed".into(),
        message: message.clone(),
        plugin: None,
    };
    store.put_error(&spec.name, &error)?;
    link.retired = Some(message);
    store.put_link(&spec.name, &link)?;
    report.errors += 1;
    Ok(())
}
