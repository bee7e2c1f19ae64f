//! Where a running cycle is, page by page: the engine writes a
//! [`Progress`], whoever shows it reads a [`ProgressSnapshot`] — the
//! terminal's progress bar (`run --once`), the admin API's `/connections`
//! and the `/metrics` gauges while `serve` runs a large initial sync.
//!
//! The total is what the vendor's listing says is left (Salesforce's
//! `totalSize`, a member listing's total) plus what the pass has read:
//! an estimate that grows if records change while the pass runs. Progress
//! is not state: a crash loses it, and the next run starts from the stored
//! cursor, counting only what is left.

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use crmsync_core::Direction;
use serde::{Deserialize, Serialize};

use crate::direction_name;

/// One connection's progress, shared between the running cycle and its readers.
#[derive(Debug, Default)]
pub struct Progress(Mutex<Option<ProgressSnapshot>>);

/// What a reader sees while a cycle runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressSnapshot {
    pub run_id: String,
    pub started_at: DateTime<Utc>,
    /// `to-salesforce` or `to-marketing`.
    pub direction: String,
    /// The object being paged (`Contact`, `member`, …).
    pub object: String,
    /// Records of this object read so far in this pass.
    pub read: u64,
    /// `read` plus what the vendor says is left; `None` when it does not say.
    pub total: Option<u64>,
    /// Records written (created or updated) and per-record errors so far in the pass.
    pub written: u64,
    pub errors: u64,
}

impl ProgressSnapshot {
    /// `read / total`, within 0..=1, when the total is known.
    pub fn ratio(&self) -> Option<f64> {
        self.total.map(|t| if t == 0 { 1.0 } else { (self.read as f64 / t as f64).min(1.0) })
    }
}

impl Progress {
    /// The cycle's position, if one runs.
    pub fn snapshot(&self) -> Option<ProgressSnapshot> {
        self.lock().clone()
    }

    /// A cycle starts: nothing read yet.
    pub(crate) fn start(&self, run_id: &str) {
        *self.lock() = Some(ProgressSnapshot {
            run_id: run_id.to_string(),
            started_at: Utc::now(),
            direction: String::new(),
            object: String::new(),
            read: 0,
            total: None,
            written: 0,
            errors: 0,
        });
    }

    /// A page of `object` was read: `read` records, `remaining` left after it.
    pub(crate) fn page(&self, direction: Direction, object: &str, read: u64, remaining: Option<u64>) {
        let mut slot = self.lock();
        let Some(p) = slot.as_mut() else { return };
        let direction = direction_name(direction);
        if p.direction != direction || p.object != object {
            p.direction = direction.to_string();
            p.object = object.to_string();
            p.read = 0;
        }
        p.read += read;
        p.total = remaining.map(|r| p.read + r);
    }

    /// The pass's running totals after a page was written.
    pub(crate) fn written(&self, written: u64, errors: u64) {
        if let Some(p) = self.lock().as_mut() {
            p.written = written;
            p.errors = errors;
        }
    }

    /// The cycle ended.
    pub(crate) fn finish(&self) {
        *self.lock() = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<ProgressSnapshot>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_object_restarts_the_count_and_the_total_is_read_plus_remaining() {
        let p = Progress::default();
        assert_eq!(p.snapshot(), None);
        p.start("r1");
        p.page(Direction::ToSalesforce, "member", 100, Some(150));
        p.written(98, 2);
        p.page(Direction::ToSalesforce, "member", 100, Some(50));
        let s = p.snapshot().unwrap();
        assert_eq!(
            (s.direction.as_str(), s.read, s.total, s.written, s.errors),
            ("to-salesforce", 200, Some(250), 98, 2)
        );
        assert_eq!(s.ratio(), Some(0.8));
        p.page(Direction::ToMarketing, "Contact", 10, None);
        let s = p.snapshot().unwrap();
        assert_eq!(
            (s.direction.as_str(), s.object.as_str(), s.read, s.total, s.ratio()),
            ("to-marketing", "Contact", 10, None, None)
        );
        p.finish();
        assert_eq!(p.snapshot(), None);
    }
}
