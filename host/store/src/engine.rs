//! [`SledStore`]: the engine's [`Store`] in sled. Links, cursors, the
//! outbox and per-record errors are here; the activity log and run records
//! in their own modules. Each method is one sled transaction, flushed where
//! the durability rules on [`Store`] need it.

use chrono::{DateTime, Utc};
use crmsync_core::store::{
    ActivityDone, Outcome, PendingActivity, RecordErrorEntry, StoreError, StoreResult,
};
use crmsync_core::{Cursor, Link, OutboxEntry, Side, Store};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use crate::{State, activities, db_error, decode, encode, keys, runs, trees};

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

/// The engine's [`Store`] in sled. Cheap to clone.
#[derive(Clone)]
pub struct SledStore {
    state: State,
}

impl SledStore {
    pub fn new(state: State) -> Self {
        SledStore { state }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    fn tree(&self, name: &'static str) -> StoreResult<sled::Tree> {
        self.state.tree(name)
    }

    fn link_trees(&self) -> StoreResult<(sled::Tree, sled::Tree, sled::Tree)> {
        Ok((self.tree(trees::LINKS)?, self.tree(trees::LINKS_BY_REMOTE)?, self.tree(trees::LINKS_BY_EMAIL)?))
    }

    fn next_ids(&self, n: usize) -> StoreResult<Vec<u64>> {
        (0..n).map(|_| self.state.db().generate_id().map_err(db_error)).collect()
    }

    fn link_at(&self, connection: &str, index: &'static str, key: &str) -> StoreResult<Option<Link>> {
        match self.tree(index)?.get(keys::link(connection, key)).map_err(db_error)? {
            Some(sf_id) => self.link_by_sf(connection, &String::from_utf8_lossy(&sf_id)),
            None => Ok(None),
        }
    }

    /// The outbox: its entries, and its status write-backs apart.
    fn outbox_trees(&self) -> StoreResult<(sled::Tree, sled::Tree)> {
        Ok((self.tree(trees::OUTBOX)?, self.tree(trees::OUTBOX_WRITE_BACKS)?))
    }

    fn outbox_entries(&self, tree: &'static str, connection: &str) -> StoreResult<Vec<(u64, OutboxEntry)>> {
        self.tree(tree)?
            .scan_prefix(keys::connection_prefix(connection))
            .map(|kv| {
                let (k, v) = kv.map_err(db_error)?;
                Ok((keys::outbox_seq(&k), decode(tree, &v)?))
            })
            .collect()
    }

    fn count(&self, tree: &'static str, connection: &str) -> StoreResult<usize> {
        Ok(self.tree(tree)?.scan_prefix(keys::connection_prefix(connection)).keys().count())
    }
}

impl Store for SledStore {
    fn link_by_sf(&self, connection: &str, sf_id: &str) -> StoreResult<Option<Link>> {
        let tree = self.tree(trees::LINKS)?;
        tree.get(keys::link(connection, sf_id))
            .map_err(db_error)?
            .map(|v| decode(trees::LINKS, &v))
            .transpose()
    }

    fn link_by_remote(
        &self,
        connection: &str,
        object: Option<&str>,
        remote_id: &str,
    ) -> StoreResult<Option<Link>> {
        self.link_at(connection, trees::LINKS_BY_REMOTE, &remote_key(object, remote_id))
    }

    fn link_by_email(&self, connection: &str, email: &str) -> StoreResult<Option<Link>> {
        self.link_at(connection, trees::LINKS_BY_EMAIL, email)
    }

    fn links(&self, connection: &str) -> StoreResult<Vec<Link>> {
        let tree = self.tree(trees::LINKS)?;
        tree.scan_prefix(keys::connection_prefix(connection))
            .map(|kv| decode(trees::LINKS, &kv.map_err(db_error)?.1))
            .collect()
    }

    /// Counted on the remote-id index (one small entry per link, kept with
    /// the link in one transaction), not on the links themselves: counting
    /// those pulled every link's snapshots through the page cache.
    fn count_links(&self, connection: &str) -> StoreResult<usize> {
        self.count(trees::LINKS_BY_REMOTE, connection)
    }

    fn put_link(&self, connection: &str, link: &Link) -> StoreResult<()> {
        let (links, remote, email) = self.link_trees()?;
        (&links, &remote, &email)
            .transaction(|(l, r, e)| put_link_tx((l, r, e), connection, link))
            .map_err(tx_error)
    }

    fn relink(&self, connection: &str, from_sf: &str, to_sf: &str, to_object: &str) -> StoreResult<bool> {
        let Some(mut link) = self.link_by_sf(connection, from_sf)? else { return Ok(false) };
        let (links, remote, email) = self.link_trees()?;
        link.sf_id = to_sf.to_string();
        link.sf_object = to_object.to_string();
        (&links, &remote, &email)
            .transaction(|(l, r, e)| {
                l.remove(keys::link(connection, from_sf))?;
                put_link_tx((l, r, e), connection, &link)
            })
            .map_err(tx_error)?;
        Ok(true)
    }

    fn unlink(&self, connection: &str, sf_id: &str) -> StoreResult<()> {
        let (links, remote, email) = self.link_trees()?;
        (&links, &remote, &email)
            .transaction(|(l, r, e)| remove_link_tx((l, r, e), connection, sf_id))
            .map_err(tx_error)
    }

    fn cursor(&self, connection: &str, side: Side, object: &str) -> StoreResult<Option<Cursor>> {
        let tree = self.tree(trees::CURSORS)?;
        Ok(tree
            .get(keys::cursor(connection, side.key(), object))
            .map_err(db_error)?
            .map(|v| Cursor(String::from_utf8_lossy(&v).into_owned())))
    }

    fn enqueue_and_advance(
        &self,
        connection: &str,
        entries: &[OutboxEntry],
        cursor: Option<(Side, &str, &Cursor)>,
    ) -> StoreResult<Vec<u64>> {
        let seqs = self.next_ids(entries.len())?;
        let (outbox, write_backs) = self.outbox_trees()?;
        let cursors = self.tree(trees::CURSORS)?;
        (&outbox, &write_backs, &cursors)
            .transaction(|(o, w, c)| {
                for (seq, entry) in seqs.iter().zip(entries) {
                    let tree = if entry.is_write_back() { w } else { o };
                    tree.insert(keys::outbox(connection, *seq), encode(entry))?;
                }
                if let Some((side, object, cursor)) = cursor {
                    c.insert(keys::cursor(connection, side.key(), object), cursor.0.as_bytes())?;
                }
                Ok(())
            })
            .map_err(tx_error)?;
        self.state.flush()?;
        Ok(seqs)
    }

    fn pending(&self, connection: &str) -> StoreResult<Vec<(u64, OutboxEntry)>> {
        let mut all = self.outbox_entries(trees::OUTBOX, connection)?;
        all.extend(self.outbox_entries(trees::OUTBOX_WRITE_BACKS, connection)?);
        all.sort_by_key(|(seq, _)| *seq);
        Ok(all)
    }

    fn count_pending(&self, connection: &str) -> StoreResult<usize> {
        Ok(self.count(trees::OUTBOX, connection)? + self.count(trees::OUTBOX_WRITE_BACKS, connection)?)
    }

    /// Write-backs queued by an earlier version sit in `outbox`: they are
    /// returned with the others, which is only slower.
    fn pending_besides_write_backs(&self, connection: &str) -> StoreResult<(Vec<(u64, OutboxEntry)>, usize)> {
        let others = self.outbox_entries(trees::OUTBOX, connection)?;
        Ok((others, self.count(trees::OUTBOX_WRITE_BACKS, connection)?))
    }

    fn settle(&self, connection: &str, outcomes: &[Outcome], follow_ups: &[OutboxEntry]) -> StoreResult<()> {
        if outcomes.is_empty() && follow_ups.is_empty() {
            return Ok(());
        }
        let seqs = self.next_ids(follow_ups.len())?;
        let (links, remote, email) = self.link_trees()?;
        let (outbox, write_backs) = self.outbox_trees()?;
        let errors = self.tree(trees::ERRORS)?;
        (&outbox, &write_backs, &links, &remote, &email, &errors)
            .transaction(|(o, w, l, r, m, e)| {
                let remove = |seq: u64| -> TxResult<()> {
                    o.remove(keys::outbox(connection, seq))?;
                    w.remove(keys::outbox(connection, seq))?;
                    Ok(())
                };
                for outcome in outcomes {
                    match outcome {
                        Outcome::Done { seq, link } => {
                            remove(*seq)?;
                            if let Some(link) = link {
                                put_link_tx((l, r, m), connection, link)?;
                                e.remove(keys::record_error(connection, &link.sf_id))?;
                                e.remove(keys::record_error(connection, &link.remote_id))?;
                            }
                        }
                        Outcome::Unlinked { seq, sf_id } => {
                            remove(*seq)?;
                            remove_link_tx((l, r, m), connection, sf_id)?;
                        }
                        Outcome::Failed { seq, error } => {
                            remove(*seq)?;
                            e.insert(keys::record_error(connection, &error.record), encode(error))?;
                        }
                    }
                }
                for (seq, entry) in seqs.iter().zip(follow_ups) {
                    let tree = if entry.is_write_back() { w } else { o };
                    tree.insert(keys::outbox(connection, *seq), encode(entry))?;
                }
                Ok(())
            })
            .map_err(tx_error)
    }

    fn defer(
        &self,
        connection: &str,
        deferred: &[(u64, OutboxEntry)],
        follow_ups: &[OutboxEntry],
    ) -> StoreResult<()> {
        if deferred.is_empty() && follow_ups.is_empty() {
            return Ok(());
        }
        let seqs = self.next_ids(follow_ups.len())?;
        let (outbox, write_backs) = self.outbox_trees()?;
        (&outbox, &write_backs)
            .transaction(|(o, w)| {
                for (seq, entry) in
                    deferred.iter().map(|(s, e)| (*s, e)).chain(seqs.iter().copied().zip(follow_ups))
                {
                    // A write-back deferred where an earlier version queued it stays there.
                    let key = keys::outbox(connection, seq);
                    let tree = if entry.is_write_back() && o.get(&key)?.is_none() { w } else { o };
                    tree.insert(key, encode(entry))?;
                }
                Ok(())
            })
            .map_err(tx_error)
    }

    fn put_error(&self, connection: &str, error: &RecordErrorEntry) -> StoreResult<()> {
        self.tree(trees::ERRORS)?
            .insert(keys::record_error(connection, &error.record), encode(error))
            .map_err(db_error)?;
        Ok(())
    }

    fn has_error(&self, connection: &str, record: &str) -> StoreResult<bool> {
        self.tree(trees::ERRORS)?.contains_key(keys::record_error(connection, record)).map_err(db_error)
    }

    fn clear_error(&self, connection: &str, record: &str) -> StoreResult<()> {
        self.tree(trees::ERRORS)?.remove(keys::record_error(connection, record)).map_err(db_error)?;
        Ok(())
    }

    fn errors(&self, connection: &str) -> StoreResult<Vec<RecordErrorEntry>> {
        let tree = self.tree(trees::ERRORS)?;
        tree.scan_prefix(keys::connection_prefix(connection))
            .map(|kv| decode(trees::ERRORS, &kv.map_err(db_error)?.1))
            .collect()
    }

    fn count_errors(&self, connection: &str) -> StoreResult<usize> {
        self.count(trees::ERRORS, connection)
    }

    fn activity_cursor(&self, connection: &str) -> StoreResult<Option<DateTime<Utc>>> {
        activities::Log::open(&self.state, connection)?.cursor()
    }

    fn activity_done(&self, connection: &str, activity: &str, at: DateTime<Utc>) -> StoreResult<bool> {
        activities::Log::open(&self.state, connection)?.is_done(activity, at)
    }

    fn activities_pending(&self, connection: &str) -> StoreResult<Vec<PendingActivity>> {
        activities::Log::open(&self.state, connection)?.pending()
    }

    fn put_activities_pending(&self, connection: &str, batch: &[PendingActivity]) -> StoreResult<()> {
        activities::Log::open(&self.state, connection)?.put_pending(batch)
    }

    fn settle_activities(
        &self,
        connection: &str,
        pending: &[PendingActivity],
        done: &[(usize, ActivityDone)],
    ) -> StoreResult<()> {
        activities::Log::open(&self.state, connection)?.settle(pending, done)
    }

    fn advance_activities(
        &self,
        connection: &str,
        to: DateTime<Utc>,
        forget_before: DateTime<Utc>,
    ) -> StoreResult<()> {
        activities::Log::open(&self.state, connection)?.advance(to, forget_before)
    }

    fn written_tasks_before(
        &self,
        connection: &str,
        before: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<(DateTime<Utc>, String)>> {
        activities::Log::open(&self.state, connection)?.tasks_before(before, limit)
    }

    fn forget_written_tasks(&self, connection: &str, tasks: &[(DateTime<Utc>, String)]) -> StoreResult<()> {
        activities::Log::open(&self.state, connection)?.forget_tasks(tasks)
    }

    fn put_run(&self, connection: &str, started: DateTime<Utc>, run: &serde_json::Value) -> StoreResult<()> {
        runs::put(&self.state, connection, started, run)
    }

    fn runs(&self, connection: &str, limit: usize) -> StoreResult<Vec<serde_json::Value>> {
        runs::list(&self.state, connection, limit)
    }

    fn count_runs(&self, connection: &str) -> StoreResult<usize> {
        self.count(trees::RUNS, connection)
    }
}

/// The three trees a link lives in: by Salesforce id, by remote id, by email.
type LinkTrees<'a> = (&'a TransactionalTree, &'a TransactionalTree, &'a TransactionalTree);

fn remove_link_tx(
    (links, by_remote, by_email): LinkTrees<'_>,
    connection: &str,
    sf_id: &str,
) -> TxResult<()> {
    if let Some(old) = links.remove(keys::link(connection, sf_id))? {
        let old: Link = decode(trees::LINKS, &old).map_err(ConflictableTransactionError::Abort)?;
        by_remote
            .remove(keys::link(connection, &remote_key(old.remote_object.as_deref(), &old.remote_id)))?;
        if let Some(email) = old.email {
            by_email.remove(keys::link(connection, &email))?;
        }
    }
    Ok(())
}

/// The remote index key: the bare id for the people object, `object \0 id`
/// for any other (an account and a contact may share an id).
fn remote_key(object: Option<&str>, id: &str) -> String {
    match object {
        None => id.to_string(),
        Some(object) => format!("{object}\0{id}"),
    }
}

fn put_link_tx((links, by_remote, by_email): LinkTrees<'_>, connection: &str, link: &Link) -> TxResult<()> {
    if let Some(old) = links.insert(keys::link(connection, &link.sf_id), encode(link))? {
        let old: Link = decode(trees::LINKS, &old).map_err(ConflictableTransactionError::Abort)?;
        let old_key = remote_key(old.remote_object.as_deref(), &old.remote_id);
        if old_key != remote_key(link.remote_object.as_deref(), &link.remote_id) {
            by_remote.remove(keys::link(connection, &old_key))?;
        }
        if let Some(email) = old.email.filter(|e| Some(e) != link.email.as_ref()) {
            by_email.remove(keys::link(connection, &email))?;
        }
    }
    // One remote record, one link: a link it had with another Salesforce
    // record (a Lead it was sent from again as a Contact) goes.
    let remote = keys::link(connection, &remote_key(link.remote_object.as_deref(), &link.remote_id));
    if let Some(previous) = by_remote.insert(remote, link.sf_id.as_bytes())?
        && previous.as_ref() != link.sf_id.as_bytes()
        && let Some(stale) = links.remove(keys::link(connection, &String::from_utf8_lossy(&previous)))?
    {
        let stale: Link = decode(trees::LINKS, &stale).map_err(ConflictableTransactionError::Abort)?;
        if let Some(email) = stale.email.filter(|e| Some(e) != link.email.as_ref()) {
            by_email.remove(keys::link(connection, &email))?;
        }
    }
    if let Some(email) = &link.email {
        by_email.insert(keys::link(connection, email), link.sf_id.as_bytes())?;
    }
    Ok(())
}

pub(crate) fn tx_error(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Storage(e) => db_error(e),
        TransactionError::Abort(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crmsync_core::store::EntryKind;
    use crmsync_core::{Record, System, Value, Write, WriteKey};

    fn store(dir: &std::path::Path) -> SledStore {
        SledStore::new(State::open(dir).unwrap())
    }

    fn link(sf: &str, remote: &str) -> Link {
        Link {
            sf_id: sf.into(),
            sf_object: "Lead".into(),
            remote_id: remote.into(),
            remote_object: None,
            email: Some("a@example.com".into()),
            sf_values: BTreeMap::from([("LastName".to_string(), Value::text("L"))]),
            marketing_values: BTreeMap::from([("lastName".to_string(), Value::text("L"))]),
            synced_at: Utc::now(),
            plugin: Some("standard-mapping@1".into()),
            retired: None,
        }
    }

    fn entry(email: &str) -> OutboxEntry {
        let write = Write::Upsert {
            key: WriteKey::Email(email.into()),
            record: Record::new(System::Salesforce, "contact").with("email", email),
        };
        OutboxEntry::new(EntryKind::Sync { then_tag: None }, Side::Marketing, "contact", write)
            .salesforce("Lead", Some("00Q1".into()))
            .email(Some(email.into()))
    }

    #[test]
    fn links_are_found_both_ways_and_relinked_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        s.put_link("c", &link("00Q1", "7")).unwrap();
        assert_eq!(s.link_by_remote("c", None, "7").unwrap().unwrap().sf_id, "00Q1");
        assert!(s.link_by_sf("other", "00Q1").unwrap().is_none(), "connections are separate");
        // The Lead is converted: the link follows the Contact.
        assert!(s.relink("c", "00Q1", "0031", "Contact").unwrap());
        assert!(s.link_by_sf("c", "00Q1").unwrap().is_none());
        let moved = s.link_by_remote("c", None, "7").unwrap().unwrap();
        assert_eq!((moved.sf_id.as_str(), moved.sf_object.as_str()), ("0031", "Contact"));
        // Re-linking the Salesforce record to another remote drops the old index entry.
        s.put_link("c", &link("0031", "8")).unwrap();
        assert!(s.link_by_remote("c", None, "7").unwrap().is_none());
        assert_eq!(s.links("c").unwrap().len(), 1);
        assert_eq!(s.link_by_email("c", "a@example.com").unwrap().unwrap().remote_id, "8");
        // An account may share the contact's id: each object has its own index.
        let account = Link {
            sf_object: "Account".into(),
            remote_object: Some("account".into()),
            email: Some("account:acme".into()),
            ..link("0011", "8")
        };
        s.put_link("c", &account).unwrap();
        assert_eq!(s.link_by_remote("c", None, "8").unwrap().unwrap().sf_id, "0031");
        assert_eq!(s.link_by_remote("c", Some("account"), "8").unwrap().unwrap().sf_id, "0011");
    }

    #[test]
    fn the_cursor_advances_only_with_its_outbox_entries_and_both_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = store(dir.path());
            assert!(s.cursor("c", Side::Salesforce, "Lead").unwrap().is_none());
            let seqs = s
                .enqueue_and_advance(
                    "c",
                    &[entry("a@example.com"), entry("b@example.com")],
                    Some((Side::Salesforce, "Lead", &Cursor("t1|00Q2".into()))),
                )
                .unwrap();
            assert_eq!(seqs.len(), 2);
            assert!(seqs[0] < seqs[1]);
        }
        let s = store(dir.path());
        assert_eq!(s.cursor("c", Side::Salesforce, "Lead").unwrap(), Some(Cursor("t1|00Q2".into())));
        let pending = s.pending("c").unwrap();
        assert_eq!(pending.len(), 2);
        assert_eq!(pending[0].1.email.as_deref(), Some("a@example.com"));
        // Completing one stores its link and removes only that entry.
        s.settle("c", &[Outcome::Done { seq: pending[0].0, link: Some(link("00Q1", "7")) }], &[]).unwrap();
        let pending = s.pending("c").unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].1.email.as_deref(), Some("b@example.com"));
        assert!(s.link_by_remote("c", None, "7").unwrap().is_some());
    }

    #[test]
    fn write_backs_wait_apart_and_come_back_with_the_rest_in_order_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let write_back = |id: &str| {
            let record = Record::new(System::Salesforce, "Lead").with("Status__c", "Synced successfully");
            let write = Write::Upsert { key: WriteKey::Id(id.into()), record };
            OutboxEntry::new(EntryKind::WriteBack, Side::Salesforce, "Lead", write)
                .salesforce("Lead", Some(id.into()))
        };
        {
            let s = store(dir.path());
            let seqs = s.enqueue_and_advance("c", &[entry("a@example.com")], None).unwrap();
            // The sync settles and queues its write-back; a second sync and write-back follow.
            s.settle("c", &[Outcome::Done { seq: seqs[0], link: None }], &[write_back("00Q1")]).unwrap();
            s.enqueue_and_advance("c", &[entry("b@example.com"), write_back("00Q2")], None).unwrap();
        }
        let s = store(dir.path());
        let pending = s.pending("c").unwrap();
        let kinds: Vec<bool> = pending.iter().map(|(_, e)| e.is_write_back()).collect();
        assert_eq!(kinds, [true, false, true], "all of them, oldest first");
        assert!(pending.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(s.count_pending("c").unwrap(), 3);
        // Between pages, the write-backs are counted, not read.
        let (others, gathered) = s.pending_besides_write_backs("c").unwrap();
        assert_eq!((others.len(), gathered), (1, 2));
        assert_eq!(others[0].1.email.as_deref(), Some("b@example.com"));
        // A write-back settles out of its own tree; a deferred one stays there.
        s.settle("c", &[Outcome::Done { seq: pending[0].0, link: None }], &[]).unwrap();
        s.defer("c", &[pending[2].clone()], &[]).unwrap();
        assert_eq!(s.pending_besides_write_backs("c").unwrap().1, 1);
        assert_eq!(s.count_pending("c").unwrap(), 2);
    }

    #[test]
    fn a_failed_write_leaves_the_outbox_and_keeps_its_error_until_a_success() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let seqs = s.enqueue_and_advance("c", &[entry("a@example.com")], None).unwrap();
        let error = RecordErrorEntry {
            at: Utc::now(),
            side: Side::Marketing,
            object: "contact".into(),
            record: "00Q1".into(),
            code: "email_invalid".into(),
            message: "Email address is invalid".into(),
            plugin: None,
        };
        s.settle("c", &[Outcome::Failed { seq: seqs[0], error: error.clone() }], &[]).unwrap();
        assert!(s.pending("c").unwrap().is_empty());
        assert_eq!(s.errors("c").unwrap(), vec![error]);
        let seqs = s.enqueue_and_advance("c", &[entry("a@example.com")], None).unwrap();
        s.settle("c", &[Outcome::Done { seq: seqs[0], link: Some(link("00Q1", "7")) }], &[]).unwrap();
        assert!(s.errors("c").unwrap().is_empty(), "a later success clears the error");
    }
}

#[cfg(test)]
mod more_tests {
    use super::*;

    #[test]
    fn the_data_directory_is_private_and_a_foreign_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let state = State::open(&data).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700);
        }
        state.tree(trees::META).unwrap().insert(keys::SCHEMA, &1u32.to_be_bytes()).unwrap();
        drop(state);
        let e = State::open(&data).err().expect("refused");
        assert!(e.to_string().contains("schema version 1"), "{e}");
    }

    #[test]
    fn runs_and_counts_come_back_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::new(State::open(dir.path()).unwrap());
        let t0 = Utc::now();
        for i in 0..3 {
            s.put_run("c", t0 + chrono::Duration::seconds(i), &serde_json::json!({"n": i})).unwrap();
        }
        s.put_run("d", t0, &serde_json::json!({"n": 9})).unwrap();
        let runs = s.runs("c", 2).unwrap();
        assert_eq!(runs, vec![serde_json::json!({"n": 2}), serde_json::json!({"n": 1})]);
        assert_eq!(s.count_runs("c").unwrap(), 3);
    }
}
