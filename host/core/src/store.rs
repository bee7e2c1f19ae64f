//! The engine's durable state, behind [`Store`]: identity links, change
//! cursors, the outbox, per-record errors, the activity log and run records.
//! The sled store implements it for the service; engine tests use an
//! in-memory one.
//!
//! Durability rules every implementation keeps (each method is one atomic,
//! durable step):
//! - A cursor advances only together with the outbox entries for what it
//!   covers ([`Store::enqueue_and_advance`]): a crash before that step
//!   re-reads the same changes; after it, they are queued.
//! - An outbox entry is removed only together with what its outcome implies
//!   ([`Store::settle`]): the link, the record's error, and the follow-ups
//!   (status write-backs, tags). A crash between the API call and that step
//!   replays the write, which is idempotent (by id, email or name), so it
//!   creates nothing twice.
//! - A link is indexed by Salesforce id, by remote id (per marketing object)
//!   and by email, and all three change together. One remote record has one
//!   link.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use crmsync_sdk::types::Value;
use serde::{Deserialize, Serialize};

use crate::connector::{Cursor, Write, WriteKey};

/// Which side of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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
    /// (accounts); ids are unique per object only.
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
    /// Set when the Salesforce record was converted or merged into one that
    /// has a link of its own: the link no longer syncs, and this says why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired: Option<String>,
}

/// What an outbox entry is, and so what its success means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryKind {
    /// A record synced to the other side: success stores the link with the
    /// entry's snapshots, then adds `then_tag` to the marketing record.
    Sync { then_tag: Option<String> },
    /// A status (and id) write-back on the Salesforce record: changes no link.
    WriteBack,
    /// A tag added to a marketing record: changes no link.
    Tag,
    /// The counterpart of a record deleted on the other side: success removes
    /// the link.
    Removal,
}

/// A write waiting in the outbox, with what its success means for the link.
/// Built with [`OutboxEntry::new`] and the builder methods.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub kind: EntryKind,
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
    pub remote_object: Option<String>,
    pub email: Option<String>,
    /// The link's snapshots once the write succeeds.
    pub sf_values: BTreeMap<String, Value>,
    pub marketing_values: BTreeMap<String, Value>,
    pub plugin: Option<String>,
    /// The write was deferred and "Pending next sync" written back for it.
    pub pending_noted: bool,
    pub queued_at: DateTime<Utc>,
}

impl OutboxEntry {
    /// A write of `kind` to `object` on `target`, about no record yet.
    pub fn new(kind: EntryKind, target: Side, object: impl Into<String>, write: Write) -> Self {
        OutboxEntry {
            kind,
            target,
            object: object.into(),
            write,
            sf_id: None,
            sf_object: String::new(),
            remote_id: None,
            remote_object: None,
            email: None,
            sf_values: BTreeMap::new(),
            marketing_values: BTreeMap::new(),
            plugin: None,
            pending_noted: false,
            queued_at: Utc::now(),
        }
    }

    /// The Salesforce record it is about.
    pub fn salesforce(mut self, sf_object: impl Into<String>, sf_id: Option<String>) -> Self {
        self.sf_object = sf_object.into();
        self.sf_id = sf_id;
        self
    }

    /// The marketing record it is about (`object` `None`: the people object).
    pub fn remote(mut self, object: Option<String>, id: Option<String>) -> Self {
        self.remote_object = object;
        self.remote_id = id;
        self
    }

    /// Everything a link knows, from the link.
    pub fn about(self, link: &Link) -> Self {
        self.salesforce(link.sf_object.clone(), Some(link.sf_id.clone()))
            .remote(link.remote_object.clone(), Some(link.remote_id.clone()))
            .email(link.email.clone())
    }

    pub fn email(mut self, email: Option<String>) -> Self {
        self.email = email;
        self
    }

    /// The link's snapshots once the write succeeds.
    pub fn snapshots(
        mut self,
        sf_values: BTreeMap<String, Value>,
        marketing_values: BTreeMap<String, Value>,
    ) -> Self {
        self.sf_values = sf_values;
        self.marketing_values = marketing_values;
        self
    }

    pub fn plugin(mut self, plugin: Option<String>) -> Self {
        self.plugin = plugin;
        self
    }

    pub fn is_write_back(&self) -> bool {
        self.kind == EntryKind::WriteBack
    }

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

/// An activity sent as a Task and not yet settled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingActivity {
    pub activity: String,
    pub at: DateTime<Utc>,
    pub who_id: String,
    pub queued_at: DateTime<Utc>,
}

/// How a written activity ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActivityDone {
    Task(String),
    Refused(String),
}

/// A failure of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the state in {path}: {why}")]
    Open { path: String, why: String },
    #[error("state database error: {0}")]
    Db(String),
    #[error("corrupt entry in {tree}: {why}")]
    Corrupt { tree: &'static str, why: String },
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The engine's durable state. Every method is one durable step.
pub trait Store: Send + Sync {
    fn link_by_sf(&self, connection: &str, sf_id: &str) -> StoreResult<Option<Link>>;
    fn link_by_remote(
        &self,
        connection: &str,
        object: Option<&str>,
        remote_id: &str,
    ) -> StoreResult<Option<Link>>;
    /// The link holding this email (trimmed, lowercased), if any.
    fn link_by_email(&self, connection: &str, email: &str) -> StoreResult<Option<Link>>;
    /// Every link of a connection.
    fn links(&self, connection: &str) -> StoreResult<Vec<Link>>;
    fn count_links(&self, connection: &str) -> StoreResult<usize> {
        Ok(self.links(connection)?.len())
    }
    /// Stores a link (replacing any previous one for the same Salesforce id).
    fn put_link(&self, connection: &str, link: &Link) -> StoreResult<()>;
    /// Moves a link to another Salesforce id (a converted Lead's Contact, a
    /// merge's master), keeping its remote record and snapshots.
    fn relink(&self, connection: &str, from_sf: &str, to_sf: &str, to_object: &str) -> StoreResult<bool>;
    /// Removes a link (its record is gone), from every index at once.
    fn unlink(&self, connection: &str, sf_id: &str) -> StoreResult<()>;

    fn cursor(&self, connection: &str, side: Side, object: &str) -> StoreResult<Option<Cursor>>;
    /// Queues writes and advances a cursor in one step; returns the outbox
    /// sequence numbers given to the entries.
    fn enqueue_and_advance(
        &self,
        connection: &str,
        entries: &[OutboxEntry],
        cursor: Option<(Side, &str, &Cursor)>,
    ) -> StoreResult<Vec<u64>>;
    /// Outbox entries still to write, oldest first.
    fn pending(&self, connection: &str) -> StoreResult<Vec<(u64, OutboxEntry)>>;
    fn count_pending(&self, connection: &str) -> StoreResult<usize> {
        Ok(self.pending(connection)?.len())
    }
    /// The pending entries other than status write-backs, oldest first, and
    /// how many write-backs wait: what a flush between pages needs, without
    /// reading the write-backs a pass gathers.
    fn pending_besides_write_backs(&self, connection: &str) -> StoreResult<(Vec<(u64, OutboxEntry)>, usize)> {
        let (write_backs, others): (Vec<_>, Vec<_>) =
            self.pending(connection)?.into_iter().partition(|(_, e)| e.is_write_back());
        Ok((others, write_backs.len()))
    }
    /// Settles a written batch in one step: each outcome drops its entry and
    /// stores what it implies, and the follow-ups are queued.
    fn settle(&self, connection: &str, outcomes: &[Outcome], follow_ups: &[OutboxEntry]) -> StoreResult<()>;
    /// Rewrites deferred entries (same sequence numbers) and queues their
    /// follow-ups, in one step.
    fn defer(
        &self,
        connection: &str,
        deferred: &[(u64, OutboxEntry)],
        follow_ups: &[OutboxEntry],
    ) -> StoreResult<()>;

    /// Keeps a per-record error (a mapping or selection failure, say).
    fn put_error(&self, connection: &str, error: &RecordErrorEntry) -> StoreResult<()>;
    fn has_error(&self, connection: &str, record: &str) -> StoreResult<bool>;
    /// Drops a record's kept error (its state changed).
    fn clear_error(&self, connection: &str, record: &str) -> StoreResult<()>;
    /// The errors of a connection, by record.
    fn errors(&self, connection: &str) -> StoreResult<Vec<RecordErrorEntry>>;
    fn count_errors(&self, connection: &str) -> StoreResult<usize> {
        Ok(self.errors(connection)?.len())
    }

    /// The activity pass's cursor.
    fn activity_cursor(&self, connection: &str) -> StoreResult<Option<DateTime<Utc>>>;
    /// Whether this activity was written (or refused for good) already.
    fn activity_done(&self, connection: &str, activity: &str, at: DateTime<Utc>) -> StoreResult<bool>;
    fn activities_pending(&self, connection: &str) -> StoreResult<Vec<PendingActivity>>;
    /// Stores activities as pending before their Tasks are sent (durable).
    fn put_activities_pending(&self, connection: &str, batch: &[PendingActivity]) -> StoreResult<()>;
    /// Drops these pending entries and stores how the settled ones (by
    /// index into `pending`) ended, in one step.
    fn settle_activities(
        &self,
        connection: &str,
        pending: &[PendingActivity],
        done: &[(usize, ActivityDone)],
    ) -> StoreResult<()>;
    /// Moves the activity cursor and forgets written activities before `forget_before`.
    fn advance_activities(
        &self,
        connection: &str,
        to: DateTime<Utc>,
        forget_before: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// Tasks the activity pass wrote for activities that happened before
    /// `before`, oldest first, at most `limit`: what retention removes.
    /// Every written Task is kept here until forgotten, so only Tasks
    /// crmsync wrote are ever listed.
    fn written_tasks_before(
        &self,
        connection: &str,
        before: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<(DateTime<Utc>, String)>>;
    /// Forgets written Tasks (removed from Salesforce, or gone there).
    fn forget_written_tasks(&self, connection: &str, tasks: &[(DateTime<Utc>, String)]) -> StoreResult<()>;

    /// Stores one finished run (its JSON form), keyed by its start.
    fn put_run(&self, connection: &str, started: DateTime<Utc>, run: &serde_json::Value) -> StoreResult<()>;
    /// The connection's runs, newest first.
    fn runs(&self, connection: &str, limit: usize) -> StoreResult<Vec<serde_json::Value>>;
    fn count_runs(&self, connection: &str) -> StoreResult<usize>;
}
