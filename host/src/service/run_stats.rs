//! What each connection's runs came to since the process started, kept in
//! memory for `/metrics` (a scrape reads it, never the state): runs by
//! outcome, a run-duration histogram, the last successful run, and the
//! stored counts (links, queued writes, errors) as of the last run.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use crmsync_engine::cycle::RunRecord;

/// Upper bounds (seconds) of the run-duration histogram's buckets; `+Inf` follows.
pub const DURATION_BUCKETS: [f64; 8] = [1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14_400.0];

#[derive(Debug, Default)]
pub struct RunStats(Mutex<RunCounts>);

/// A copy of the counts, as a scrape reads them.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RunCounts {
    /// Runs by [`RunRecord::outcome`].
    pub by_outcome: BTreeMap<&'static str, u64>,
    /// Runs per bucket of [`DURATION_BUCKETS`] (not cumulative), then `+Inf`.
    pub buckets: [u64; DURATION_BUCKETS.len() + 1],
    pub seconds: f64,
    pub last_success: Option<DateTime<Utc>>,
    /// What the state held when the last run ended (or the service started).
    pub stored: Option<Stored>,
}

/// Counts read from the state once per run, so a scrape does not.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Stored {
    pub links: usize,
    pub pending_writes: usize,
    pub errors: usize,
}

impl RunStats {
    /// A run ended (dry runs are not counted).
    pub fn record(&self, run: &RunRecord) {
        let seconds = (run.finished_at - run.started_at).num_milliseconds().max(0) as f64 / 1000.0;
        let mut c = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *c.by_outcome.entry(run.outcome()).or_default() += 1;
        let bucket = DURATION_BUCKETS.iter().position(|b| seconds <= *b).unwrap_or(DURATION_BUCKETS.len());
        c.buckets[bucket] += 1;
        c.seconds += seconds;
        if run.outcome() == "ok" {
            c.last_success = Some(run.finished_at);
        }
    }

    pub fn set_stored(&self, stored: Stored) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).stored = Some(stored);
    }

    pub fn counts(&self) -> RunCounts {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl RunCounts {
    pub fn total(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_counted_by_outcome_and_duration() {
        let stats = RunStats::default();
        let started = Utc::now();
        let mut run = RunRecord::failed("c", "r".into(), started, "boom".into());
        run.finished_at = started + chrono::Duration::seconds(3);
        stats.record(&run);
        run.error = None;
        run.finished_at = started + chrono::Duration::seconds(120);
        stats.record(&run);
        let c = stats.counts();
        assert_eq!(c.by_outcome, BTreeMap::from([("failed", 1), ("ok", 1)]));
        assert_eq!((c.buckets[1], c.buckets[4], c.total()), (1, 1, 2), "3 s ≤ 5 s, 120 s ≤ 300 s");
        assert_eq!(c.seconds, 123.0);
        assert_eq!(c.last_success, Some(run.finished_at));
    }
}
