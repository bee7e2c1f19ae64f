//! The engine's durable state, on top of [`crate::state::State`]: identity
//! links, change cursors, the outbox and per-record errors.
//!
//! Durability rules (each enforced by one method, in one sled transaction):
//! - A cursor advances only together with the outbox entries for what it
//!   covers ([`EngineStore::enqueue_and_advance`]): a crash before that
//!   transaction re-reads the same changes; after it, they are queued.
//! - An outbox entry is removed only together with the link update its
//!   successful write implies ([`EngineStore::complete`]): a crash between the
//!   API call and that transaction replays the write, which is idempotent
//!   (by id or by email), so it creates nothing twice.
//! - A link is indexed both ways (Salesforce id → link, remote id → Salesforce
//!   id) and both indexes change in the same transaction.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use crmsync_sdk::types::Value;
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use crate::connectors::{Cursor, Write, WriteKey};
use crate::state::{State, StateError, keys, trees};

/// Which side of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Salesforce,
    Marketing,
}

impl Side {
    pub fn key(self) -> &'static str {
        match self {
            Side::Salesforce => "sf",
            Side::Marketing => "mk",
        }
    }
}

/// A Salesforce record linked to a marketing record, with the values last
/// synced on each side: the base snapshot for conflicts and the reference for
/// echo suppression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    pub sf_id: String,
    pub sf_object: String,
    pub remote_id: String,
    /// The marketing object, when it is not the connection's people object
    /// (`account`); ids are unique per object only.
    #[serde(default)]
    pub remote_object: Option<String>,
    /// Trimmed, lowercased email (accounts: `account:` + lowercased name): a
    /// match hint, never the identity.
    pub email: Option<String>,
    /// Last synced values, Salesforce field names.
    pub sf_values: BTreeMap<String, Value>,
    /// Last synced values, marketing field names.
    pub marketing_values: BTreeMap<String, Value>,
    pub synced_at: DateTime<Utc>,
    /// The plugin version that last mapped this record (`name@version`).
    pub plugin: Option<String>,
}

/// A write waiting in the outbox, with what its success means for the link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// The side written to.
    pub target: Side,
    pub object: String,
    pub write: Write,
    /// The Salesforce record this write is about, when known.
    pub sf_id: Option<String>,
    pub sf_object: String,
    /// The marketing record this write is about, when known.
    pub remote_id: Option<String>,
    /// Its object when not the people object (see [`Link::remote_object`]).
    #[serde(default)]
    pub remote_object: Option<String>,
    pub email: Option<String>,
    /// The link's snapshots once the write succeeds.
    pub sf_values: BTreeMap<String, Value>,
    pub marketing_values: BTreeMap<String, Value>,
    pub plugin: Option<String>,
    /// A tag to add to the marketing record once this write succeeds.
    #[serde(default)]
    pub follow_up_tag: Option<String>,
    /// A status write-back on the Salesforce record: changes no link.
    #[serde(default)]
    pub write_back: bool,
    /// The record is gone from the other side: success removes the link.
    #[serde(default)]
    pub unlink: bool,
    /// The write was deferred and "Pending next sync" written back for it.
    #[serde(default)]
    pub pending_noted: bool,
    pub queued_at: DateTime<Utc>,
}

impl OutboxEntry {
    /// Creates and opt-outs: written before deferrable updates, and still
    /// written while the API budget is paused.
    pub fn is_priority(&self) -> bool {
        match &self.write {
            Write::Upsert { key: WriteKey::Email(_) | WriteKey::Name(_) | WriteKey::New { .. }, .. } => true,
            Write::Upsert { record, .. } => record.get("HasOptedOutOfEmail") == Some(&Value::Boolean(true)),
            Write::Delete { .. } => false,
        }
    }
}

/// How one outbox entry's write ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Written; the link it implies, if any.
    Done { seq: u64, link: Option<Link> },
    /// Written, and the link of this Salesforce id removed (its record is gone).
    Unlinked { seq: u64, sf_id: String },
    /// Refused for good: the error kept for the record.
    Failed { seq: u64, error: RecordErrorEntry },
}

/// A per-record error kept for the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordErrorEntry {
    pub at: DateTime<Utc>,
    pub side: Side,
    pub object: String,
    pub record: String,
    pub code: String,
    pub message: String,
    pub plugin: Option<String>,
}

type TxResult<T> = Result<T, ConflictableTransactionError<StateError>>;

/// The engine's view of the state store. Cheap to clone.
#[derive(Clone)]
pub struct EngineStore {
    state: State,
}

impl EngineStore {
    pub fn new(state: State) -> Self {
        EngineStore { state }
    }

    fn tree(&self, name: &'static str) -> Result<sled::Tree, StateError> {
        Ok(self.state.db().open_tree(name)?)
    }

    pub fn link_by_sf(&self, connection: &str, sf_id: &str) -> Result<Option<Link>, StateError> {
        let tree = self.tree(trees::LINKS)?;
        tree.get(keys::link(connection, sf_id))?.map(|v| decode(trees::LINKS, &v)).transpose()
    }

    pub fn link_by_remote(
        &self,
        connection: &str,
        object: Option<&str>,
        remote_id: &str,
    ) -> Result<Option<Link>, StateError> {
        let index = self.tree(trees::LINKS_BY_REMOTE)?;
        match index.get(keys::link(connection, &remote_key(object, remote_id)))? {
            Some(sf_id) => self.link_by_sf(connection, &String::from_utf8_lossy(&sf_id)),
            None => Ok(None),
        }
    }

    /// The link holding this email (trimmed, lowercased), if any.
    pub fn link_by_email(&self, connection: &str, email: &str) -> Result<Option<Link>, StateError> {
        let index = self.tree(trees::LINKS_BY_EMAIL)?;
        match index.get(keys::link(connection, email))? {
            Some(sf_id) => self.link_by_sf(connection, &String::from_utf8_lossy(&sf_id)),
            None => Ok(None),
        }
    }

    /// Every link of a connection.
    pub fn links(&self, connection: &str) -> Result<Vec<Link>, StateError> {
        let tree = self.tree(trees::LINKS)?;
        tree.scan_prefix(keys::connection_prefix(connection)).map(|kv| decode(trees::LINKS, &kv?.1)).collect()
    }

    /// Stores a link (replacing any previous one for the same Salesforce id).
    pub fn put_link(&self, connection: &str, link: &Link) -> Result<(), StateError> {
        let (links, remote, email) = self.link_trees()?;
        (&links, &remote, &email)
            .transaction(|(l, r, e)| put_link_tx((l, r, e), connection, link))
            .map_err(tx_error)
    }

    fn link_trees(&self) -> Result<(sled::Tree, sled::Tree, sled::Tree), StateError> {
        Ok((self.tree(trees::LINKS)?, self.tree(trees::LINKS_BY_REMOTE)?, self.tree(trees::LINKS_BY_EMAIL)?))
    }

    /// Moves a link to another Salesforce id (a converted Lead's Contact, a
    /// merge's master), keeping its remote record and snapshots.
    pub fn relink(
        &self,
        connection: &str,
        from_sf: &str,
        to_sf: &str,
        to_object: &str,
    ) -> Result<bool, StateError> {
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

    /// Removes a link (its record is gone), from all three indexes at once.
    pub fn unlink(&self, connection: &str, sf_id: &str) -> Result<(), StateError> {
        let (links, remote, email) = self.link_trees()?;
        (&links, &remote, &email)
            .transaction(|(l, r, e)| remove_link_tx((l, r, e), connection, sf_id))
            .map_err(tx_error)
    }

    pub fn cursor(&self, connection: &str, side: Side, object: &str) -> Result<Option<Cursor>, StateError> {
        let tree = self.tree(trees::CURSORS)?;
        Ok(tree
            .get(keys::cursor(connection, side.key(), object))?
            .map(|v| Cursor(String::from_utf8_lossy(&v).into_owned())))
    }

    /// Queues writes and advances a cursor in one transaction; returns the
    /// outbox sequence numbers given to the entries.
    pub fn enqueue_and_advance(
        &self,
        connection: &str,
        entries: &[OutboxEntry],
        cursor: Option<(Side, &str, &Cursor)>,
    ) -> Result<Vec<u64>, StateError> {
        let seqs: Vec<u64> =
            entries.iter().map(|_| self.state.db().generate_id()).collect::<Result<_, _>>()?;
        let (outbox, cursors) = (self.tree(trees::OUTBOX)?, self.tree(trees::CURSORS)?);
        transact((&outbox, &cursors), |(o, c)| {
            for (seq, entry) in seqs.iter().zip(entries) {
                o.insert(keys::outbox(connection, *seq), encode(entry))?;
            }
            if let Some((side, object, cursor)) = cursor {
                c.insert(keys::cursor(connection, side.key(), object), cursor.0.as_bytes())?;
            }
            Ok(())
        })?;
        self.state.db().flush()?;
        Ok(seqs)
    }

    /// Outbox entries still to write, oldest first.
    pub fn pending(&self, connection: &str) -> Result<Vec<(u64, OutboxEntry)>, StateError> {
        let tree = self.tree(trees::OUTBOX)?;
        tree.scan_prefix(keys::connection_prefix(connection))
            .map(|kv| {
                let (k, v) = kv?;
                Ok((keys::outbox_seq(&k), decode(trees::OUTBOX, &v)?))
            })
            .collect()
    }

    /// Settles a written batch in one transaction: each outcome drops its
    /// outbox entry and stores what it implies (a success its link, clearing
    /// the record's errors; a permanent failure its error), and the
    /// follow-ups those outcomes call for (status write-backs, tags) are
    /// queued. A crash before this transaction replays the batch (idempotent);
    /// after it, nothing is lost — follow-ups included.
    pub fn settle(
        &self,
        connection: &str,
        outcomes: &[Outcome],
        follow_ups: &[OutboxEntry],
    ) -> Result<(), StateError> {
        if outcomes.is_empty() && follow_ups.is_empty() {
            return Ok(());
        }
        let seqs: Vec<u64> =
            follow_ups.iter().map(|_| self.state.db().generate_id()).collect::<Result<_, _>>()?;
        let (links, remote, email) = self.link_trees()?;
        let (outbox, errors) = (self.tree(trees::OUTBOX)?, self.tree(trees::ERRORS)?);
        (&outbox, &links, &remote, &email, &errors)
            .transaction(|(o, l, r, m, e)| {
                for outcome in outcomes {
                    match outcome {
                        Outcome::Done { seq, link } => {
                            o.remove(keys::outbox(connection, *seq))?;
                            if let Some(link) = link {
                                put_link_tx((l, r, m), connection, link)?;
                                e.remove(keys::record_error(connection, &link.sf_id))?;
                                e.remove(keys::record_error(connection, &link.remote_id))?;
                            }
                        }
                        Outcome::Unlinked { seq, sf_id } => {
                            o.remove(keys::outbox(connection, *seq))?;
                            remove_link_tx((l, r, m), connection, sf_id)?;
                        }
                        Outcome::Failed { seq, error } => {
                            o.remove(keys::outbox(connection, *seq))?;
                            e.insert(keys::record_error(connection, &error.record), encode(error))?;
                        }
                    }
                }
                for (seq, entry) in seqs.iter().zip(follow_ups) {
                    o.insert(keys::outbox(connection, *seq), encode(entry))?;
                }
                Ok(())
            })
            .map_err(tx_error)
    }

    /// Rewrites deferred outbox entries (same sequence numbers) and queues
    /// their follow-ups, in one transaction.
    pub fn defer(
        &self,
        connection: &str,
        deferred: &[(u64, OutboxEntry)],
        follow_ups: &[OutboxEntry],
    ) -> Result<(), StateError> {
        if deferred.is_empty() && follow_ups.is_empty() {
            return Ok(());
        }
        let seqs: Vec<u64> =
            follow_ups.iter().map(|_| self.state.db().generate_id()).collect::<Result<_, _>>()?;
        let outbox = self.tree(trees::OUTBOX)?;
        outbox
            .transaction(|o| {
                for (seq, entry) in
                    deferred.iter().map(|(s, e)| (*s, e)).chain(seqs.iter().copied().zip(follow_ups))
                {
                    o.insert(keys::outbox(connection, seq), encode(entry))?;
                }
                Ok(())
            })
            .map_err(tx_error)
    }

    /// Keeps a per-record error (a mapping or selection failure, say).
    pub fn put_error(&self, connection: &str, error: &RecordErrorEntry) -> Result<(), StateError> {
        self.tree(trees::ERRORS)?.insert(keys::record_error(connection, &error.record), encode(error))?;
        Ok(())
    }

    /// Whether a record has an error kept.
    pub fn has_error(&self, connection: &str, record: &str) -> Result<bool, StateError> {
        Ok(self.tree(trees::ERRORS)?.contains_key(keys::record_error(connection, record))?)
    }

    /// The errors of a connection, by record.
    pub fn errors(&self, connection: &str) -> Result<Vec<RecordErrorEntry>, StateError> {
        let tree = self.tree(trees::ERRORS)?;
        tree.scan_prefix(keys::connection_prefix(connection))
            .map(|kv| decode(trees::ERRORS, &kv?.1))
            .collect()
    }
}

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

/// The three trees a link lives in: by Salesforce id, by remote id, by email.
type LinkTrees<'a> = (&'a TransactionalTree, &'a TransactionalTree, &'a TransactionalTree);

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

fn transact(
    trees: (&sled::Tree, &sled::Tree),
    f: impl Fn((&TransactionalTree, &TransactionalTree)) -> TxResult<()>,
) -> Result<(), StateError> {
    trees.transaction(|(a, b)| f((a, b))).map_err(tx_error)
}

fn tx_error(e: TransactionError<StateError>) -> StateError {
    match e {
        TransactionError::Storage(e) => StateError::Db(e),
        TransactionError::Abort(e) => e,
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("state values serialize")
}

fn decode<T: serde::de::DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> Result<T, StateError> {
    serde_json::from_slice(bytes).map_err(|e| StateError::Corrupt { tree, why: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::WriteKey;
    use crmsync_sdk::types::{Record, System};

    fn store(dir: &std::path::Path) -> EngineStore {
        EngineStore::new(State::open(dir).unwrap())
    }

    fn link(sf: &str, remote: &str) -> Link {
        Link {
            sf_id: sf.into(),
            sf_object: "Lead".into(),
            remote_id: remote.into(),
            remote_object: None,
            email: Some("a@example.com".into()),
            sf_values: [("LastName".to_string(), Value::text("L"))].into(),
            marketing_values: [("lastName".to_string(), Value::text("L"))].into(),
            synced_at: Utc::now(),
            plugin: Some("standard-mapping@1".into()),
        }
    }

    fn entry(email: &str) -> OutboxEntry {
        OutboxEntry {
            target: Side::Marketing,
            object: "contact".into(),
            write: Write::Upsert {
                key: WriteKey::Email(email.into()),
                record: Record::new(System::ActiveCampaign, "contact").with("email", email),
            },
            sf_id: Some("00Q1".into()),
            sf_object: "Lead".into(),
            remote_id: None,
            remote_object: None,
            email: Some(email.into()),
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
