//! What a pass did, per record outcome, and what a dry run would write.

use std::collections::{BTreeMap, HashMap, HashSet};

/// What a pass did, per record outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PassReport {
    pub read: usize,
    /// Records linked for the first time: created on the marketing side, or
    /// matched there by email (bulk APIs do not say which).
    pub created: usize,
    pub updated: usize,
    /// Changes that wrote nothing: echoes of crmsync's writes, or edits of unmapped fields.
    pub unchanged: usize,
    /// Skipped by selection, with the reason and how many.
    pub skipped: BTreeMap<String, usize>,
    /// Records that failed: each counts once, though a pass that reads its
    /// own write-backs again meets a failing record twice.
    pub errors: usize,
    /// Records written with a warning (control characters removed, …).
    #[serde(default)]
    pub warnings: usize,
    /// Status write-backs made on Salesforce records.
    pub written_back: usize,
    /// Records changed on both sides, merged by the resolver.
    pub conflicts: usize,
    /// Links moved to a converted Lead's Contact or a merge's master.
    pub relinked: usize,
    /// Linked records deleted on one side: their counterparts handled by the
    /// delete policy, their links removed.
    pub deleted: usize,
    /// Writes left in the outbox for a later retry (transient failures).
    pub deferred: usize,
    /// The API budget paused Salesforce calls during the pass.
    pub budget_paused: bool,
    /// The pass stopped early (shutdown); what it read is queued, the rest waits.
    pub stopped: bool,
    /// Dry run: the writes that would be made, per record and field.
    #[serde(skip)]
    pub planned: Vec<PlannedWrite>,
    /// The records counted in `errors`, with what a failed Salesforce
    /// record held when it failed ([`crate::outbound::fingerprint`]).
    #[serde(skip)]
    pub failed_records: HashMap<String, Option<u64>>,
    /// The records counted in `warnings`.
    #[serde(skip)]
    pub warned_records: HashSet<String>,
}

impl PassReport {
    /// Counts a record's failure, once per record and pass.
    pub fn failed(&mut self, record: &str) {
        self.failed_with(record, None);
    }

    /// Counts a Salesforce record's failure, once per record and pass, and
    /// remembers what it held: read again unchanged in the same pass (the
    /// echo of its error write-back), it is not tried again.
    pub fn failed_with(&mut self, record: &str, fingerprint: Option<u64>) {
        match self.failed_records.get_mut(record) {
            Some(seen) => *seen = fingerprint.or(*seen),
            None => {
                self.failed_records.insert(record.to_string(), fingerprint);
                self.errors += 1;
            }
        }
    }

    /// The record failed in this pass holding exactly this.
    pub fn failed_unchanged(&self, record: &str, fingerprint: u64) -> bool {
        self.failed_records.get(record) == Some(&Some(fingerprint))
    }

    /// Counts a record's warning, once per record and pass.
    pub fn warned(&mut self, record: &str) {
        if self.warned_records.insert(record.to_string()) {
            self.warnings += 1;
        }
    }

    /// Adds another pass's counts to this one.
    pub fn add(&mut self, other: PassReport) {
        self.read += other.read;
        self.created += other.created;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        for (reason, n) in other.skipped {
            *self.skipped.entry(reason).or_default() += n;
        }
        self.errors += other.errors;
        self.warnings += other.warnings;
        self.written_back += other.written_back;
        self.conflicts += other.conflicts;
        self.relinked += other.relinked;
        self.deleted += other.deleted;
        self.deferred += other.deferred;
        self.budget_paused |= other.budget_paused;
        self.stopped |= other.stopped;
        self.planned.extend(other.planned);
        self.failed_records.extend(other.failed_records);
        self.warned_records.extend(other.warned_records);
    }
}

/// A write a dry run would make.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlannedWrite {
    pub sf_id: String,
    pub key: String,
    /// Field, old value, new value.
    pub fields: Vec<(String, String, String)>,
}
