//! In-memory fakes of everything the engine depends on, for engine tests:
//! [`MemStore`], [`FakeSalesforce`], [`FakeMarketing`] and [`FakeRules`].
//! Integration tests use the real connectors, store and plugins against the
//! sandbox; these exist so the engine's own logic is tested fast, with
//! paused time, and with failures injected exactly where a test wants them.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use crmsync_core::activity::{Activity, TaskRow};
use crmsync_core::connector::fields;
use crmsync_core::store::{ActivityDone, Outcome, PendingActivity, RecordErrorEntry, StoreResult};
use crmsync_core::{
    ApiUsage, Capabilities, Changes, Conflict, Connector, ConnectorError, ConnectorLimits, Context, Cursor,
    Deleted, Direction, Link, MarketingApi, OutboxEntry, Record, Resolution, RuleFailure, RuleOutput, Rules,
    SalesforceApi, SalesforceObject, Selection, Side, Store, System, Value, VendorError, Write, WriteKey,
    WriteResult, Written,
};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------------------
// Store

#[derive(Default)]
struct MemInner {
    links: BTreeMap<(String, String), Link>,
    cursors: BTreeMap<(String, Side, String), Cursor>,
    outbox: BTreeMap<(String, u64), OutboxEntry>,
    errors: BTreeMap<(String, String), RecordErrorEntry>,
    next_seq: u64,
    activity_cursor: BTreeMap<String, DateTime<Utc>>,
    activities_done: BTreeMap<(String, String), (DateTime<Utc>, ActivityDone)>,
    written_tasks: std::collections::BTreeSet<(String, DateTime<Utc>, String)>,
    activities_pending: BTreeMap<(String, String), PendingActivity>,
    runs: BTreeMap<(String, DateTime<Utc>), serde_json::Value>,
}

/// A [`Store`] in memory, with the same atomicity as the sled one (every
/// method holds one lock).
#[derive(Default)]
pub struct MemStore {
    inner: Mutex<MemInner>,
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }
}

fn remote_matches(link: &Link, object: Option<&str>, id: &str) -> bool {
    link.remote_id == id && link.remote_object.as_deref() == object
}

impl MemInner {
    fn put_link(&mut self, connection: &str, link: &Link) {
        // One remote record, one link.
        self.links.retain(|(c, sf), l| {
            !(c == connection
                && *sf != link.sf_id
                && remote_matches(l, link.remote_object.as_deref(), &link.remote_id))
        });
        self.links.insert((connection.into(), link.sf_id.clone()), link.clone());
    }
}

impl Store for MemStore {
    fn link_by_sf(&self, connection: &str, sf_id: &str) -> StoreResult<Option<Link>> {
        Ok(lock(&self.inner).links.get(&(connection.into(), sf_id.into())).cloned())
    }

    fn link_by_remote(
        &self,
        connection: &str,
        object: Option<&str>,
        remote_id: &str,
    ) -> StoreResult<Option<Link>> {
        let inner = lock(&self.inner);
        Ok(inner
            .links
            .iter()
            .find(|((c, _), l)| c == connection && remote_matches(l, object, remote_id))
            .map(|(_, l)| l.clone()))
    }

    fn link_by_email(&self, connection: &str, email: &str) -> StoreResult<Option<Link>> {
        let inner = lock(&self.inner);
        Ok(inner
            .links
            .iter()
            .find(|((c, _), l)| c == connection && l.email.as_deref() == Some(email))
            .map(|(_, l)| l.clone()))
    }

    fn links(&self, connection: &str) -> StoreResult<Vec<Link>> {
        Ok(lock(&self.inner)
            .links
            .iter()
            .filter(|((c, _), _)| c == connection)
            .map(|(_, l)| l.clone())
            .collect())
    }

    fn put_link(&self, connection: &str, link: &Link) -> StoreResult<()> {
        lock(&self.inner).put_link(connection, link);
        Ok(())
    }

    fn relink(&self, connection: &str, from_sf: &str, to_sf: &str, to_object: &str) -> StoreResult<bool> {
        let mut inner = lock(&self.inner);
        let Some(mut link) = inner.links.remove(&(connection.into(), from_sf.into())) else {
            return Ok(false);
        };
        link.sf_id = to_sf.into();
        link.sf_object = to_object.into();
        inner.put_link(connection, &link);
        Ok(true)
    }

    fn unlink(&self, connection: &str, sf_id: &str) -> StoreResult<()> {
        lock(&self.inner).links.remove(&(connection.into(), sf_id.into()));
        Ok(())
    }

    fn cursor(&self, connection: &str, side: Side, object: &str) -> StoreResult<Option<Cursor>> {
        Ok(lock(&self.inner).cursors.get(&(connection.into(), side, object.into())).cloned())
    }

    fn enqueue_and_advance(
        &self,
        connection: &str,
        entries: &[OutboxEntry],
        cursor: Option<(Side, &str, &Cursor)>,
    ) -> StoreResult<Vec<u64>> {
        let mut inner = lock(&self.inner);
        let mut seqs = Vec::new();
        for entry in entries {
            inner.next_seq += 1;
            let seq = inner.next_seq;
            inner.outbox.insert((connection.into(), seq), entry.clone());
            seqs.push(seq);
        }
        if let Some((side, object, c)) = cursor {
            inner.cursors.insert((connection.into(), side, object.into()), c.clone());
        }
        Ok(seqs)
    }

    fn pending(&self, connection: &str) -> StoreResult<Vec<(u64, OutboxEntry)>> {
        let inner = lock(&self.inner);
        Ok(inner
            .outbox
            .iter()
            .filter(|((c, _), _)| c == connection)
            .map(|((_, s), e)| (*s, e.clone()))
            .collect())
    }

    fn settle(&self, connection: &str, outcomes: &[Outcome], follow_ups: &[OutboxEntry]) -> StoreResult<()> {
        let mut inner = lock(&self.inner);
        for outcome in outcomes {
            match outcome {
                Outcome::Done { seq, link } => {
                    inner.outbox.remove(&(connection.into(), *seq));
                    if let Some(link) = link {
                        inner.put_link(connection, link);
                        inner.errors.remove(&(connection.into(), link.sf_id.clone()));
                        inner.errors.remove(&(connection.into(), link.remote_id.clone()));
                    }
                }
                Outcome::Unlinked { seq, sf_id } => {
                    inner.outbox.remove(&(connection.into(), *seq));
                    inner.links.remove(&(connection.into(), sf_id.clone()));
                }
                Outcome::Failed { seq, error } => {
                    inner.outbox.remove(&(connection.into(), *seq));
                    inner.errors.insert((connection.into(), error.record.clone()), error.clone());
                }
            }
        }
        for entry in follow_ups {
            inner.next_seq += 1;
            let seq = inner.next_seq;
            inner.outbox.insert((connection.into(), seq), entry.clone());
        }
        Ok(())
    }

    fn defer(
        &self,
        connection: &str,
        deferred: &[(u64, OutboxEntry)],
        follow_ups: &[OutboxEntry],
    ) -> StoreResult<()> {
        let mut inner = lock(&self.inner);
        for (seq, entry) in deferred {
            inner.outbox.insert((connection.into(), *seq), entry.clone());
        }
        for entry in follow_ups {
            inner.next_seq += 1;
            let seq = inner.next_seq;
            inner.outbox.insert((connection.into(), seq), entry.clone());
        }
        Ok(())
    }

    fn put_error(&self, connection: &str, error: &RecordErrorEntry) -> StoreResult<()> {
        lock(&self.inner).errors.insert((connection.into(), error.record.clone()), error.clone());
        Ok(())
    }

    fn has_error(&self, connection: &str, record: &str) -> StoreResult<bool> {
        Ok(lock(&self.inner).errors.contains_key(&(connection.into(), record.into())))
    }

    fn clear_error(&self, connection: &str, record: &str) -> StoreResult<()> {
        lock(&self.inner).errors.remove(&(connection.into(), record.into()));
        Ok(())
    }

    fn errors(&self, connection: &str) -> StoreResult<Vec<RecordErrorEntry>> {
        let inner = lock(&self.inner);
        Ok(inner.errors.iter().filter(|((c, _), _)| c == connection).map(|(_, e)| e.clone()).collect())
    }

    fn activity_cursor(&self, connection: &str) -> StoreResult<Option<DateTime<Utc>>> {
        Ok(lock(&self.inner).activity_cursor.get(connection).copied())
    }

    fn activity_done(&self, connection: &str, activity: &str, _at: DateTime<Utc>) -> StoreResult<bool> {
        Ok(lock(&self.inner).activities_done.contains_key(&(connection.into(), activity.into())))
    }

    fn activities_pending(&self, connection: &str) -> StoreResult<Vec<PendingActivity>> {
        let inner = lock(&self.inner);
        Ok(inner
            .activities_pending
            .iter()
            .filter(|((c, _), _)| c == connection)
            .map(|(_, p)| p.clone())
            .collect())
    }

    fn put_activities_pending(&self, connection: &str, batch: &[PendingActivity]) -> StoreResult<()> {
        let mut inner = lock(&self.inner);
        for p in batch {
            inner.activities_pending.insert((connection.into(), p.activity.clone()), p.clone());
        }
        Ok(())
    }

    fn settle_activities(
        &self,
        connection: &str,
        pending: &[PendingActivity],
        done: &[(usize, ActivityDone)],
    ) -> StoreResult<()> {
        let mut inner = lock(&self.inner);
        for p in pending {
            inner.activities_pending.remove(&(connection.into(), p.activity.clone()));
        }
        for (i, d) in done {
            let p = &pending[*i];
            inner.activities_done.insert((connection.into(), p.activity.clone()), (p.at, d.clone()));
            if let ActivityDone::Task(task) = d {
                inner.written_tasks.insert((connection.into(), p.at, task.clone()));
            }
        }
        Ok(())
    }

    fn written_tasks_before(
        &self,
        connection: &str,
        before: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<(DateTime<Utc>, String)>> {
        Ok(lock(&self.inner)
            .written_tasks
            .iter()
            .filter(|(c, at, _)| c == connection && *at < before)
            .take(limit)
            .map(|(_, at, id)| (*at, id.clone()))
            .collect())
    }

    fn forget_written_tasks(&self, connection: &str, tasks: &[(DateTime<Utc>, String)]) -> StoreResult<()> {
        let mut inner = lock(&self.inner);
        for (at, id) in tasks {
            inner.written_tasks.remove(&(connection.to_string(), *at, id.clone()));
        }
        Ok(())
    }

    fn advance_activities(
        &self,
        connection: &str,
        to: DateTime<Utc>,
        forget_before: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut inner = lock(&self.inner);
        inner.activity_cursor.insert(connection.into(), to);
        inner.activities_done.retain(|(c, _), (at, _)| c != connection || *at >= forget_before);
        Ok(())
    }

    fn put_run(&self, connection: &str, started: DateTime<Utc>, run: &serde_json::Value) -> StoreResult<()> {
        lock(&self.inner).runs.insert((connection.into(), started), run.clone());
        Ok(())
    }

    fn runs(&self, connection: &str, limit: usize) -> StoreResult<Vec<serde_json::Value>> {
        let inner = lock(&self.inner);
        Ok(inner
            .runs
            .iter()
            .rev()
            .filter(|((c, _), _)| c == connection)
            .take(limit)
            .map(|(_, r)| r.clone())
            .collect())
    }

    fn count_runs(&self, connection: &str) -> StoreResult<usize> {
        Ok(lock(&self.inner).runs.keys().filter(|(c, _)| c == connection).count())
    }
}

// ---------------------------------------------------------------------------
// A vendor in memory

/// Records of one in-memory vendor: per object, by id, each stamped with a
/// change sequence number that the change feed pages by.
#[derive(Default)]
struct Books {
    records: BTreeMap<String, BTreeMap<String, (u64, Record)>>,
    deleted: BTreeMap<String, Vec<(u64, Deleted)>>,
    seq: u64,
    ids: u64,
    tags: BTreeMap<String, HashSet<String>>,
    /// Transient whole-call failures still to inject, per call kind.
    faults: VecDeque<ConnectorError>,
    /// Per-record failures to answer for writes to records carrying this field value.
    refuse: Vec<(String, Value, VendorError)>,
}

/// What both fakes share: the records, the change feed, ids and faults.
struct Vendor {
    system: System,
    name: &'static str,
    email_field: &'static str,
    max_write_batch: usize,
    books: Mutex<Books>,
    calls: AtomicU64,
    write_calls: AtomicU64,
}

impl Vendor {
    fn new(system: System, name: &'static str, email_field: &'static str, max_write_batch: usize) -> Self {
        Vendor {
            system,
            name,
            email_field,
            max_write_batch,
            books: Mutex::default(),
            calls: AtomicU64::new(0),
            write_calls: AtomicU64::new(0),
        }
    }

    fn call(&self) -> Result<(), ConnectorError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        match lock(&self.books).faults.pop_front() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Creates or edits a record as a user of the vendor would: it shows in the change feed.
    fn edit(&self, object: &str, id: Option<&str>, fields: &[(&str, Value)]) -> String {
        let mut b = lock(&self.books);
        b.seq += 1;
        let seq = b.seq;
        let id = match id {
            Some(id) => id.to_string(),
            None => {
                b.ids += 1;
                format!("{}{:04}", &object[..1], b.ids)
            }
        };
        let system = self.system;
        let entry = b
            .records
            .entry(object.to_string())
            .or_default()
            .entry(id.clone())
            .or_insert_with(|| (seq, Record::new(system, object).with_id(id.clone())));
        entry.0 = seq;
        for (k, v) in fields {
            entry.1.set(*k, v.clone());
        }
        entry.1.modified_at = Some(Utc::now());
        id
    }

    fn remove(&self, object: &str, id: &str, merged_into: Option<&str>) {
        let mut b = lock(&self.books);
        b.seq += 1;
        let seq = b.seq;
        b.records.entry(object.to_string()).or_default().remove(id);
        let gone = Deleted {
            object_type: object.into(),
            id: id.into(),
            merged_into: merged_into.map(str::to_string),
            at: Some(Utc::now()),
        };
        b.deleted.entry(object.to_string()).or_default().push((seq, gone));
    }

    fn record(&self, object: &str, id: &str) -> Option<Record> {
        lock(&self.books).records.get(object)?.get(id).map(|(_, r)| r.clone())
    }

    fn all(&self, object: &str) -> Vec<Record> {
        lock(&self.books)
            .records
            .get(object)
            .map(|m| m.values().map(|(_, r)| r.clone()).collect())
            .unwrap_or_default()
    }

    fn fetch(&self, object: &str, since: Option<&Cursor>, limit: usize) -> Result<Changes, ConnectorError> {
        self.call()?;
        let after: u64 = since.and_then(|c| c.0.parse().ok()).unwrap_or(0);
        let b = lock(&self.books);
        let mut stamped: Vec<(u64, Option<Record>, Option<Deleted>)> = Vec::new();
        for (seq, r) in b.records.get(object).into_iter().flat_map(|m| m.values()) {
            if *seq > after {
                stamped.push((*seq, Some(r.clone()), None));
            }
        }
        for (seq, d) in b.deleted.get(object).into_iter().flatten() {
            if *seq > after {
                stamped.push((*seq, None, Some(d.clone())));
            }
        }
        stamped.sort_by_key(|(s, ..)| *s);
        let more = stamped.len() > limit;
        let remaining = Some(stamped.len().saturating_sub(limit) as u64);
        stamped.truncate(limit);
        let next = stamped.last().map(|(s, ..)| Cursor(s.to_string())).or_else(|| since.cloned());
        let mut changes = Changes { next, more, remaining, ..Changes::default() };
        for (_, r, d) in stamped {
            changes.records.extend(r);
            changes.deleted.extend(d);
        }
        Ok(changes)
    }

    fn find(&self, object: &str, email: &str) -> Option<String> {
        let b = lock(&self.books);
        b.records.get(object)?.iter().find_map(|(id, (_, r))| {
            (r.text(self.email_field).map(|e| e.trim().to_lowercase()).as_deref() == Some(email))
                .then(|| id.clone())
        })
    }

    fn write(&self, object: &str, writes: Vec<Write>) -> Result<Vec<WriteResult>, ConnectorError> {
        self.write_calls.fetch_add(1, Ordering::Relaxed);
        self.call()?;
        Ok(writes.into_iter().map(|w| self.write_one(object, w)).collect())
    }

    fn write_one(&self, object: &str, write: Write) -> WriteResult {
        let (key, mut record) = match write {
            Write::Delete { id } => {
                self.remove(object, &id, None);
                return Ok(Written { id, created: false });
            }
            Write::Upsert { key, record } => (key, record),
        };
        let refused = lock(&self.books)
            .refuse
            .iter()
            .find_map(|(f, v, e)| (record.get(f) == Some(v)).then(|| e.clone()));
        if let Some(e) = refused {
            return Err(e);
        }
        let existing = match &key {
            WriteKey::Id(id) => {
                let Some(current) = self.record(object, id) else {
                    return Err(VendorError::permanent("NOT_FOUND", format!("no {object} {id}")));
                };
                if current.get("IsConverted") == Some(&Value::Boolean(true)) {
                    return Err(VendorError::permanent(
                        "CANNOT_UPDATE_CONVERTED_LEAD",
                        "cannot reference converted lead",
                    ));
                }
                Some(id.clone())
            }
            WriteKey::Email(email) => self.find(object, email),
            WriteKey::Name(name) => self.find(object, &name.to_lowercase()),
            WriteKey::New { .. } => None,
        };
        let tags = record.fields.remove(fields::TAGS);
        let fields: Vec<(String, Value)> = record.fields.into_iter().collect();
        let borrowed: Vec<(&str, Value)> = fields.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let id = self.edit(object, existing.as_deref(), &borrowed);
        if let Some(Value::TextList(tags)) = tags {
            lock(&self.books).tags.entry(id.clone()).or_default().extend(tags);
        }
        Ok(Written { id, created: existing.is_none() })
    }
}

macro_rules! connector_for {
    ($ty:ty) => {
        #[async_trait]
        impl Connector for $ty {
            fn system(&self) -> System {
                self.v.system
            }
            fn vendor(&self) -> &'static str {
                self.v.name
            }
            fn limits(&self) -> ConnectorLimits {
                ConnectorLimits {
                    max_write_batch: self.v.max_write_batch,
                    max_page: 100,
                    requests_per_second: None,
                }
            }
            async fn connect(&self) -> Result<(), ConnectorError> {
                self.v.call()
            }
            async fn fetch_changes(
                &self,
                object: &str,
                since: Option<&Cursor>,
                limit: usize,
            ) -> Result<Changes, ConnectorError> {
                self.v.fetch(object, since, limit)
            }
            async fn get(&self, object: &str, ids: &[String]) -> Result<Vec<Record>, ConnectorError> {
                self.v.call()?;
                Ok(ids.iter().filter_map(|id| self.v.record(object, id)).collect())
            }
            async fn find_by_email(
                &self,
                object: &str,
                emails: &[String],
            ) -> Result<BTreeMap<String, Vec<String>>, ConnectorError> {
                self.v.call()?;
                Ok(emails
                    .iter()
                    .filter_map(|e| Some((e.clone(), vec![self.v.find(object, &e.trim().to_lowercase())?])))
                    .collect())
            }
            async fn write(
                &self,
                object: &str,
                writes: Vec<Write>,
            ) -> Result<Vec<WriteResult>, ConnectorError> {
                self.v.write(object, writes)
            }
            async fn list_ids(
                &self,
                object: &str,
                after: Option<&Cursor>,
                limit: usize,
            ) -> Result<(Vec<String>, Option<Cursor>), ConnectorError> {
                self.v.call()?;
                let all: Vec<String> = self.v.all(object).into_iter().filter_map(|r| r.id).collect();
                let start =
                    after.map_or(0, |c| all.iter().position(|id| *id == c.0).map_or(all.len(), |p| p + 1));
                let page: Vec<String> = all.iter().skip(start).take(limit).cloned().collect();
                let next = (start + page.len() < all.len())
                    .then(|| page.last().map(|id| Cursor(id.clone())))
                    .flatten();
                Ok((page, next))
            }
            fn calls(&self) -> u64 {
                self.v.calls.load(Ordering::Relaxed)
            }
        }

        impl $ty {
            /// How many `write` calls it has answered (or failed).
            pub fn write_calls(&self) -> u64 {
                self.v.write_calls.load(Ordering::Relaxed)
            }

            /// Creates or edits a record as a user would; returns its id.
            pub fn edit(&self, object: &str, id: Option<&str>, fields: &[(&str, Value)]) -> String {
                self.v.edit(object, id, fields)
            }
            /// Deletes a record as a user would (`merged_into`: a merge's survivor).
            pub fn delete(&self, object: &str, id: &str, merged_into: Option<&str>) {
                self.v.remove(object, id, merged_into)
            }
            pub fn record(&self, object: &str, id: &str) -> Option<Record> {
                self.v.record(object, id)
            }
            pub fn all(&self, object: &str) -> Vec<Record> {
                self.v.all(object)
            }
            /// The outage is over: calls no longer fail.
            pub fn heal(&self) {
                lock(&self.v.books).faults.clear();
            }
            /// The next calls fail with these errors, one each.
            pub fn fail_next(&self, errors: impl IntoIterator<Item = ConnectorError>) {
                lock(&self.v.books).faults.extend(errors);
            }
            /// Writes of records whose `field` holds `value` are refused with `error`.
            pub fn refuse(&self, field: &str, value: Value, error: VendorError) {
                lock(&self.v.books).refuse.push((field.into(), value, error));
            }
        }
    };
}

/// Salesforce in memory: objects by name, `Email` as the email field.
pub struct FakeSalesforce {
    v: Vendor,
    usage: Mutex<Option<ApiUsage>>,
    /// What `refresh_usage` reads: the vendor's real usage now.
    actual: Mutex<Option<ApiUsage>>,
    /// The org's time zone.
    pub time_zone: Mutex<Option<String>>,
}

impl Default for FakeSalesforce {
    fn default() -> Self {
        FakeSalesforce {
            v: Vendor::new(System::Salesforce, "Salesforce", "Email", 200),
            usage: Mutex::default(),
            actual: Mutex::default(),
            time_zone: Mutex::default(),
        }
    }
}

connector_for!(FakeSalesforce);

impl FakeSalesforce {
    /// The usage the last response reported.
    pub fn set_usage(&self, used: u64, limit: u64) {
        *lock(&self.usage) = Some(ApiUsage { used, limit });
        *lock(&self.actual) = Some(ApiUsage { used, limit });
    }

    /// The vendor's usage changes without any response reporting it (the
    /// rolling window freed calls).
    pub fn set_actual_usage(&self, used: u64, limit: u64) {
        *lock(&self.actual) = Some(ApiUsage { used, limit });
    }
}

#[async_trait]
impl SalesforceApi for FakeSalesforce {
    fn api_usage(&self) -> Option<ApiUsage> {
        *lock(&self.usage)
    }

    async fn refresh_usage(&self) -> Result<Option<ApiUsage>, ConnectorError> {
        self.v.call()?;
        let now = *lock(&self.actual);
        *lock(&self.usage) = now;
        Ok(now)
    }

    async fn org_time_zone(&self) -> Result<Option<String>, ConnectorError> {
        Ok(lock(&self.time_zone).clone())
    }

    async fn with_cases(&self, contact_ids: &[String]) -> Result<HashSet<String>, ConnectorError> {
        self.v.call()?;
        Ok(self
            .all("Case")
            .into_iter()
            .filter_map(|c| c.text("ContactId").map(String::from))
            .filter(|id| contact_ids.contains(id))
            .collect())
    }

    async fn tasks_of(
        &self,
        who_ids: &[String],
        since: DateTime<Utc>,
    ) -> Result<Vec<TaskRow>, ConnectorError> {
        self.v.call()?;
        Ok(self
            .all("Task")
            .into_iter()
            .filter(|t| t.modified_at.is_some_and(|m| m >= since))
            .filter(|t| t.text("WhoId").is_some_and(|w| who_ids.iter().any(|x| x == w)))
            .map(|t| TaskRow {
                id: t.id.clone().unwrap_or_default(),
                who_id: t.text("WhoId").unwrap_or_default().into(),
                description: t.text("Description").unwrap_or_default().into(),
            })
            .collect())
    }
}

/// A marketing platform in memory: people are `contact` with `email`,
/// accounts are `account` with `name`; tags and activities as declared.
pub struct FakeMarketing {
    v: Vendor,
    caps: Capabilities,
    activities: Mutex<Vec<Activity>>,
}

impl FakeMarketing {
    /// A platform with these capabilities (people object `contact`).
    pub fn new(caps: Capabilities) -> Self {
        FakeMarketing {
            v: Vendor::new(System::ActiveCampaign, "Acme Mail", "email", 250),
            caps,
            activities: Mutex::default(),
        }
    }

    /// Every capability: accounts, tags, activities, actions, consent.
    pub fn full() -> Self {
        Self::new(Capabilities {
            people: "contact",
            accounts: Some("account"),
            tags: true,
            activities: true,
            actions: true,
            consent: true,
        })
    }

    /// The tags a person carries.
    pub fn tags_of(&self, id: &str) -> HashSet<String> {
        lock(&self.v.books).tags.get(id).cloned().unwrap_or_default()
    }

    /// Tags a person as a user would (shows in the change feed).
    pub fn tag(&self, id: &str, tag: &str) {
        lock(&self.v.books).tags.entry(id.into()).or_default().insert(tag.into());
        self.v.edit("contact", Some(id), &[]);
    }

    pub fn add_activity(&self, activity: Activity) {
        lock(&self.activities).push(activity);
    }
}

connector_for!(FakeMarketing);

#[async_trait]
impl MarketingApi for FakeMarketing {
    fn capabilities(&self) -> Capabilities {
        self.caps.clone()
    }

    async fn tagged(
        &self,
        _object: &str,
        tag: &str,
        records: &[Record],
    ) -> Result<HashSet<String>, ConnectorError> {
        if !self.caps.tags {
            return Err(self.unsupported("read tags"));
        }
        self.v.call()?;
        let books = lock(&self.v.books);
        Ok(records
            .iter()
            .filter_map(|r| r.id.clone())
            .filter(|id| books.tags.get(id).is_some_and(|t| t.contains(tag)))
            .collect())
    }

    async fn activities_after(
        &self,
        after: Option<DateTime<Utc>>,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<Activity>, ConnectorError> {
        self.v.call()?;
        let mut all: Vec<Activity> =
            lock(&self.activities).iter().filter(|a| after.is_none_or(|t| a.at > t)).cloned().collect();
        all.sort_by_key(|a| (a.at, a.id.clone()));
        Ok(all.into_iter().skip(offset).take(limit).collect())
    }

    async fn recent_activities(&self, person: &str, limit: usize) -> Result<Vec<Activity>, ConnectorError> {
        self.v.call()?;
        let mut mine: Vec<Activity> =
            lock(&self.activities).iter().filter(|a| a.contact == person).cloned().collect();
        mine.sort_by_key(|a| std::cmp::Reverse(a.at));
        mine.truncate(limit);
        Ok(mine)
    }

    async fn campaigns(
        &self,
        _label: Option<&str>,
    ) -> Result<Vec<crmsync_core::activity::Campaign>, ConnectorError> {
        Ok(Vec::new())
    }

    async fn automations(
        &self,
        _label: Option<&str>,
    ) -> Result<Vec<crmsync_core::activity::Automation>, ConnectorError> {
        Ok(Vec::new())
    }
}

// ---------------------------------------------------------------------------
// Rules

/// Rules in plain Rust: every Salesforce record syncs; marketing people
/// tagged `salesforce` are created as Leads; fields map by a fixed table;
/// conflicts go to the newer side, field by field, with per-field overrides.
pub struct FakeRules {
    /// (Salesforce field, marketing field).
    pub fields: Vec<(&'static str, &'static str)>,
    /// Fields Salesforce always wins.
    pub salesforce_wins: Vec<&'static str>,
    /// Records whose Salesforce `LastName` is this fail mapping.
    pub refuse_last_name: Option<&'static str>,
}

impl Default for FakeRules {
    fn default() -> Self {
        FakeRules {
            fields: vec![
                ("Email", "email"),
                ("FirstName", "firstName"),
                ("LastName", "lastName"),
                ("Phone", "phone"),
                ("Name", "name"),
            ],
            salesforce_wins: Vec::new(),
            refuse_last_name: None,
        }
    }
}

impl FakeRules {
    fn plugin() -> Option<String> {
        Some("fake-rules@1.0.0".into())
    }

    fn map_one(&self, ctx: &Context<()>, r: &Record) -> Result<Record, RuleFailure> {
        if let (Some(bad), Some(last)) = (self.refuse_last_name, r.text("LastName"))
            && bad == last
        {
            return Err(RuleFailure::new(
                "refused",
                format!("fake-rules@1.0.0 mapper: {} refused", r.label()),
            ));
        }
        let to_marketing = ctx.direction == Direction::ToMarketing;
        let target = ctx.target.clone().unwrap_or_default();
        let (system, names): (System, Vec<(&str, &str)>) = if to_marketing {
            (System::ActiveCampaign, self.fields.clone())
        } else {
            (System::Salesforce, self.fields.iter().map(|(s, m)| (*m, *s)).collect())
        };
        let mut out = Record::new(system, target);
        for (from, to) in names {
            if let Some(v) = r.get(from) {
                out.set(to, v.clone());
            }
        }
        Ok(out)
    }
}

impl Rules for FakeRules {
    fn select(&self, ctx: &Context<()>, records: &[Record]) -> RuleOutput<Selection> {
        let results = records
            .iter()
            .map(|r| {
                Ok(match ctx.direction {
                    Direction::ToMarketing => Selection::Sync,
                    Direction::ToSalesforce => match r.get(fields::TAGS) {
                        Some(Value::TextList(t)) if t.iter().any(|t| t == "salesforce") => {
                            Selection::CreateAs(SalesforceObject::Lead)
                        }
                        _ => Selection::Skip("not tagged salesforce".into()),
                    },
                })
            })
            .collect();
        RuleOutput { plugin: Self::plugin(), results }
    }

    fn map(&self, ctx: &Context<()>, records: &[Record]) -> RuleOutput<Record> {
        RuleOutput { plugin: Self::plugin(), results: records.iter().map(|r| self.map_one(ctx, r)).collect() }
    }

    fn resolve(&self, _ctx: &Context<()>, conflicts: &[Conflict]) -> RuleOutput<Resolution> {
        let results = conflicts
            .iter()
            .map(|c| {
                let mut merged = BTreeMap::new();
                let mut winners = BTreeMap::new();
                let marketing_newer = c.marketing.modified_at >= c.salesforce.modified_at;
                for (k, v) in &c.marketing.fields {
                    let sf_value = c.salesforce.get(k);
                    let base = c.base.as_ref().and_then(|b| b.get(k));
                    let sf_changed = sf_value != base;
                    let mk_changed = Some(v) != base;
                    let marketing = !self.salesforce_wins.contains(&k.as_str())
                        && (!sf_changed || (mk_changed && marketing_newer));
                    let (value, side) = if marketing {
                        (v.clone(), crmsync_sdk::types::Side::Marketing)
                    } else {
                        (sf_value.cloned().unwrap_or(Value::Null), crmsync_sdk::types::Side::Salesforce)
                    };
                    merged.insert(k.clone(), value);
                    winners.insert(k.clone(), side);
                }
                Ok(Resolution { merged, winners })
            })
            .collect();
        RuleOutput { plugin: Self::plugin(), results }
    }
}
