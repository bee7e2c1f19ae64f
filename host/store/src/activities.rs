//! The activity pass's state in the `activities` tree, per connection: the
//! cursor (`c`), activities whose Tasks are being written (`p`),
//! activities already written or refused for good (`d`, keyed by time so old
//! ones are forgotten by range), and every Task written (`t`, keyed by its
//! activity's time, kept until retention removes the Task).

use chrono::{DateTime, SecondsFormat, Utc};
use crmsync_core::store::{ActivityDone, PendingActivity, StoreError, StoreResult};

use crate::engine::tx_error;
use crate::{State, db_error, keys, trees};

/// The connection's part of the `activities` tree.
pub(crate) struct Log<'a> {
    tree: sled::Tree,
    connection: &'a str,
}

fn secs(at: DateTime<Utc>) -> [u8; 8] {
    (at.timestamp().max(0) as u64).to_be_bytes()
}

fn corrupt(why: impl ToString) -> StoreError {
    StoreError::Corrupt { tree: trees::ACTIVITIES, why: why.to_string() }
}

type Tx = sled::transaction::ConflictableTransactionError<StoreError>;

impl<'a> Log<'a> {
    pub(crate) fn open(state: &State, connection: &'a str) -> StoreResult<Log<'a>> {
        Ok(Log { tree: state.tree(trees::ACTIVITIES)?, connection })
    }

    fn key(&self, part: &str, tail: &[u8]) -> Vec<u8> {
        keys::activity(self.connection, part, tail)
    }

    fn task_key(&self, at: DateTime<Utc>, task: &str) -> Vec<u8> {
        let mut tail = secs(at).to_vec();
        tail.extend_from_slice(task.as_bytes());
        self.key("t", &tail)
    }

    /// Written Tasks whose activity is before `before`, oldest first.
    pub(crate) fn tasks_before(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<(DateTime<Utc>, String)>> {
        let prefix = self.key("t", b"").len();
        let (from, until) = (self.key("t", b""), self.key("t", &secs(before)));
        let mut out = Vec::new();
        for k in self.tree.range(from..until).keys().take(limit) {
            let k = k.map_err(db_error)?;
            let tail = &k[prefix..];
            let (at, id) = tail.split_at_checked(8).ok_or_else(|| corrupt("a short task key"))?;
            let at = i64::try_from(u64::from_be_bytes(at.try_into().map_err(corrupt)?)).map_err(corrupt)?;
            let at = DateTime::from_timestamp(at, 0).ok_or_else(|| corrupt("a task time out of range"))?;
            out.push((at, String::from_utf8_lossy(id).into_owned()));
        }
        Ok(out)
    }

    pub(crate) fn forget_tasks(&self, tasks: &[(DateTime<Utc>, String)]) -> StoreResult<()> {
        let mut b = sled::Batch::default();
        for (at, id) in tasks {
            b.remove(self.task_key(*at, id));
        }
        self.tree.apply_batch(b).map_err(db_error)?;
        self.tree.flush().map_err(db_error)?;
        Ok(())
    }

    fn done_key(&self, activity: &str, at: DateTime<Utc>) -> Vec<u8> {
        let mut tail = secs(at).to_vec();
        tail.extend_from_slice(activity.as_bytes());
        self.key("d", &tail)
    }

    pub(crate) fn cursor(&self) -> StoreResult<Option<DateTime<Utc>>> {
        self.tree
            .get(self.key("c", b""))
            .map_err(db_error)?
            .map(|v| {
                let text = String::from_utf8_lossy(&v).into_owned();
                DateTime::parse_from_rfc3339(&text).map(|t| t.with_timezone(&Utc)).map_err(corrupt)
            })
            .transpose()
    }

    pub(crate) fn is_done(&self, activity: &str, at: DateTime<Utc>) -> StoreResult<bool> {
        self.tree.contains_key(self.done_key(activity, at)).map_err(db_error)
    }

    pub(crate) fn pending(&self) -> StoreResult<Vec<PendingActivity>> {
        self.tree
            .scan_prefix(self.key("p", b""))
            .map(|kv| serde_json::from_slice(&kv.map_err(db_error)?.1).map_err(corrupt))
            .collect()
    }

    pub(crate) fn put_pending(&self, batch: &[PendingActivity]) -> StoreResult<()> {
        let mut b = sled::Batch::default();
        for p in batch {
            b.insert(self.key("p", p.activity.as_bytes()), serde_json::to_vec(p).map_err(corrupt)?);
        }
        self.tree.apply_batch(b).map_err(db_error)?;
        self.tree.flush().map_err(db_error)?;
        Ok(())
    }

    /// Drops the pending entries and stores how each settled one ended, in one transaction.
    pub(crate) fn settle(
        &self,
        pending: &[PendingActivity],
        done: &[(usize, ActivityDone)],
    ) -> StoreResult<()> {
        let mut encoded: Vec<(Vec<u8>, Vec<u8>)> = done
            .iter()
            .map(|(i, d)| {
                let p = &pending[*i];
                Ok((self.done_key(&p.activity, p.at), serde_json::to_vec(d).map_err(corrupt)?))
            })
            .collect::<StoreResult<_>>()?;
        for (i, d) in done {
            if let ActivityDone::Task(task) = d {
                encoded.push((self.task_key(pending[*i].at, task), task.as_bytes().to_vec()));
            }
        }
        self.tree
            .transaction(|t| {
                for p in pending {
                    t.remove(self.key("p", p.activity.as_bytes()))?;
                }
                for (k, v) in &encoded {
                    t.insert(k.as_slice(), v.as_slice())?;
                }
                Ok::<(), Tx>(())
            })
            .map_err(tx_error)?;
        self.tree.flush().map_err(db_error)?;
        Ok(())
    }

    /// Moves the cursor and forgets written activities before `forget_before`.
    pub(crate) fn advance(&self, to: DateTime<Utc>, forget_before: DateTime<Utc>) -> StoreResult<()> {
        let text = to.to_rfc3339_opts(SecondsFormat::Secs, true);
        self.tree.insert(self.key("c", b""), text.as_bytes()).map_err(db_error)?;
        let (from, until) = (self.key("d", b""), self.key("d", &secs(forget_before)));
        for k in self.tree.range(from..until).keys() {
            self.tree.remove(k.map_err(db_error)?).map_err(db_error)?;
        }
        self.tree.flush().map_err(db_error)?;
        Ok(())
    }
}
