//! The sync engine: change detection with cursors, identity links, echo
//! suppression, three-way conflicts, the durable outbox, batching, the API
//! budget, marketing activities → Salesforce Tasks, and a connection's whole
//! cycle. It depends on `crmsync-core`'s traits only — a Salesforce
//! connector, a marketing connector, the rules and the store — never on an
//! HTTP client, a database or a WebAssembly runtime.
//!
//! # Layout
//! - [`spec`]: what a connection syncs ([`ConnectionSpec`]), for the engine.
//! - [`outbound`]: a Salesforce → marketing pass: select, map, match, diff, outbox.
//! - [`inbound`]: a marketing → Salesforce pass: updates of linked records
//!   (through the resolver when both sides changed), creates as Lead or Contact.
//! - [`reconcile`]: drift reconciliation on both sides.
//! - [`outbox`]: writing what the outbox holds, in the largest batches each API
//!   takes, and settling each outcome with its follow-ups.
//! - [`budget`]: the share of Salesforce's daily API allocation a connection may spend.
//! - [`activity`]: marketing activities → Salesforce Tasks, a record's recent
//!   activities, and the actions (add to an automation, send a campaign).
//! - [`cycle`]: one run of a connection — the passes in order, and its [`RunRecord`].
//! - [`report`]: what a pass did ([`PassReport`]).
//! - [`progress`]: where a running cycle is, for progress bars, status and metrics.
//! - [`testing`] (feature `testing`): in-memory connectors, rules and store.

pub mod activity;
pub mod budget;
pub mod cycle;
mod diff;
mod identity;
pub mod inbound;
pub mod outbound;
pub mod outbox;
pub mod progress;
pub mod reconcile;
pub mod report;
pub mod spec;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, Ordering};

use crmsync_core::store::StoreError;
use crmsync_core::{ConnectorError, Context, Direction, MarketingApi, Rules, SalesforceApi, Store};

pub use budget::{Budget, BudgetConfig, BudgetState};
pub use cycle::{RunOptions, RunRecord};
pub use progress::{Progress, ProgressSnapshot};
pub use report::{PassReport, PlannedWrite};
pub use spec::{ConnectionSpec, DeletePolicy, OnDelete, WriteBack};

/// A pass failed as a whole (per-record failures are kept per record).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Connector(#[from] ConnectorError),
}

/// Everything one pass works with: the connection, its state, its rules and
/// both connectors, plus how this run behaves.
pub struct Pass<'a> {
    pub spec: &'a ConnectionSpec,
    pub store: &'a dyn Store,
    pub rules: &'a dyn Rules,
    pub salesforce: &'a dyn SalesforceApi,
    pub marketing: &'a dyn MarketingApi,
    pub run_id: String,
    /// Read and plan only: nothing is written, no cursor moves.
    pub dry_run: bool,
    /// The Salesforce API budget; none means unlimited.
    pub budget: Option<&'a Budget>,
    /// Set on shutdown: the pass ends after the page in hand is queued and flushed.
    pub stop: Option<&'a AtomicBool>,
    /// Send marketing → Salesforce batches now, whatever their size or age.
    pub force: bool,
    /// Where readers follow the pass page by page; none when nobody watches.
    pub progress: Option<&'a Progress>,
}

impl<'a> Pass<'a> {
    /// A pass that writes, forces batches out, and has no budget or stop flag.
    pub fn new(
        spec: &'a ConnectionSpec,
        store: &'a dyn Store,
        rules: &'a dyn Rules,
        salesforce: &'a dyn SalesforceApi,
        marketing: &'a dyn MarketingApi,
        run_id: impl Into<String>,
    ) -> Self {
        Pass {
            spec,
            store,
            rules,
            salesforce,
            marketing,
            run_id: run_id.into(),
            dry_run: false,
            budget: None,
            stop: None,
            force: true,
            progress: None,
        }
    }

    pub fn budget_state(&self) -> BudgetState {
        self.budget.map_or(BudgetState::Ok, |b| b.check(self.salesforce.api_usage()))
    }

    pub fn stopping(&self) -> bool {
        self.stop.is_some_and(|s| s.load(Ordering::Relaxed))
    }

    /// Whether a pass must end before its next page: shutdown, or a budget
    /// too spent for Salesforce reads. Says which in the report.
    pub fn halted(&self, report: &mut PassReport) -> bool {
        if self.stopping() {
            report.stopped = true;
        } else if self.budget_state() >= BudgetState::Paused {
            report.budget_paused = true;
        } else {
            return false;
        }
        true
    }

    /// A page of `object` was read: `read` records, `remaining` after it as
    /// the vendor says. Readers see it while the page is being written.
    pub(crate) fn page_read(&self, direction: Direction, object: &str, read: usize, remaining: Option<u64>) {
        if let Some(p) = self.progress {
            p.page(direction, object, read as u64, remaining);
        }
    }

    /// A page of `object` was written: the pass's totals so far (and what the
    /// vendor said is left), to readers and as one `progress` log line.
    pub(crate) fn page_written(
        &self,
        direction: Direction,
        object: &str,
        remaining: Option<u64>,
        report: &PassReport,
    ) {
        if let Some(p) = self.progress {
            p.written((report.created + report.updated) as u64, report.errors as u64);
        }
        tracing::info!(
            direction = direction_name(direction),
            object = %object,
            read = report.read,
            remaining,
            created = report.created,
            updated = report.updated,
            errors = report.errors,
            "progress"
        );
    }

    /// The context rules get in this pass.
    pub fn context(&self, direction: Direction, target: Option<String>) -> Context<()> {
        Context {
            connection: self.spec.name.clone(),
            direction,
            run_id: self.run_id.clone(),
            target,
            config: (),
        }
    }
}

/// The direction's name, for logs and keys.
pub fn direction_name(direction: Direction) -> &'static str {
    match direction {
        Direction::ToMarketing => "to-marketing",
        Direction::ToSalesforce => "to-salesforce",
    }
}
