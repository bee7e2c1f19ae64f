//! The sync engine (in progress): change detection with cursors, identity
//! links, echo suppression, three-way conflicts, the durable outbox, batching,
//! retries and the API budget. It depends on the [`crate::connectors::Connector`]
//! trait and on [`Rules`], never on reqwest or wasmtime.
//!
//! # Layout
//! - [`store`]: links, cursors, the outbox and per-record errors in sled, with
//!   the durability rules each method enforces.
//! - [`sync`]: a Salesforce → marketing pass: select, map, diff, outbox, write;
//!   and the outbox flush both passes share.
//! - [`inbound`]: a marketing → Salesforce pass: updates of linked records,
//!   creates as Lead or Contact through the selector.
//! - [`Rules`]: what the engine asks of the plugins, and [`PluginRules`], its
//!   implementation on the plugin registry.

// Per-record results carry a `RecordFailure` by value: it is data for the
// operator, kept per record, not an error propagated with `?`.
#![allow(clippy::result_large_err)]

pub mod budget;
pub mod inbound;
pub mod store;
pub mod sync;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use budget::{Budget, BudgetState};
use store::EngineStore;
use sync::ConnectionSpec;

use crmsync_sdk::types::{Conflict, Context, Direction, Record, Resolution, Selection};

use crate::connectors::Connector;
use crate::plugins::registry::Registry;
use crate::plugins::{RecordFailure, Role};

/// Everything one pass works with: the connection, its state, its rules and
/// both connectors, plus how this run behaves.
pub struct Pass<'a> {
    pub spec: &'a ConnectionSpec,
    pub store: &'a EngineStore,
    pub rules: &'a dyn Rules,
    pub salesforce: &'a dyn Connector,
    pub marketing: &'a dyn Connector,
    pub run_id: String,
    /// Read and plan only: nothing is written, no cursor moves.
    pub dry_run: bool,
    /// The Salesforce API budget; none means unlimited.
    pub budget: Option<&'a Budget>,
    /// Set on shutdown: the pass ends after the page in hand is queued and flushed.
    pub stop: Option<&'a AtomicBool>,
    /// Send marketing → Salesforce batches now, whatever their size or age.
    pub force: bool,
}

impl<'a> Pass<'a> {
    /// A pass that writes, forces batches out, and has no budget or stop flag.
    pub fn new(
        spec: &'a ConnectionSpec,
        store: &'a EngineStore,
        rules: &'a dyn Rules,
        salesforce: &'a dyn Connector,
        marketing: &'a dyn Connector,
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
    pub fn halted(&self, report: &mut sync::PassReport) -> bool {
        if self.stopping() {
            report.stopped = true;
        } else if self.budget_state() >= BudgetState::Paused {
            report.budget_paused = true;
        } else {
            return false;
        }
        true
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

/// One batch's results from a rule, and the plugin version that produced them.
#[derive(Debug)]
pub struct RuleOutput<T> {
    /// `name@version`; `None` when no plugin is active for the role.
    pub plugin: Option<String>,
    pub results: Vec<Result<T, RecordFailure>>,
}

/// What the engine asks of the rules for one connection. One call per batch;
/// one result per input, in order.
pub trait Rules: Send + Sync {
    fn select(&self, ctx: &Context<()>, records: &[Record]) -> RuleOutput<Selection>;
    fn map(&self, ctx: &Context<()>, records: &[Record]) -> RuleOutput<Record>;
    fn resolve(&self, ctx: &Context<()>, conflicts: &[Conflict]) -> RuleOutput<Resolution>;
}

/// [`Rules`] served by the plugins active in the registry, each with its
/// config section. A batch takes the active plugin once, so it runs on one
/// version from start to end even if another is activated meanwhile.
pub struct PluginRules {
    registry: Arc<Registry>,
    /// Per role, the plugin's config section as JSON text.
    configs: HashMap<Role, String>,
}

impl PluginRules {
    pub fn new(registry: Arc<Registry>, configs: HashMap<Role, String>) -> Self {
        PluginRules { registry, configs }
    }

    fn run<T>(
        &self,
        role: Role,
        ctx: &Context<()>,
        len: usize,
        call: impl FnOnce(&crate::plugins::Plugin, &Context<String>) -> Vec<Result<T, RecordFailure>>,
        missing: impl Fn() -> Result<T, RecordFailure>,
    ) -> RuleOutput<T> {
        let Some(plugin) = self.registry.current(&ctx.connection, role) else {
            return RuleOutput { plugin: None, results: (0..len).map(|_| missing()).collect() };
        };
        let ctx = Context {
            connection: ctx.connection.clone(),
            direction: ctx.direction,
            run_id: ctx.run_id.clone(),
            target: ctx.target.clone(),
            config: self.configs.get(&role).cloned().unwrap_or_else(|| "{}".into()),
        };
        RuleOutput { plugin: Some(plugin.id().to_string()), results: call(&plugin, &ctx) }
    }
}

impl Rules for PluginRules {
    /// Without a selector every record is selected.
    fn select(&self, ctx: &Context<()>, records: &[Record]) -> RuleOutput<Selection> {
        self.run(Role::Selector, ctx, records.len(), |p, c| p.select(c, records), || Ok(Selection::Sync))
    }

    /// Without a mapper nothing can be written: each record says so.
    fn map(&self, ctx: &Context<()>, records: &[Record]) -> RuleOutput<Record> {
        self.run(
            Role::Mapper,
            ctx,
            records.len(),
            |p, c| p.map(c, records),
            || Err(no_plugin(Role::Mapper, ctx)),
        )
    }

    fn resolve(&self, ctx: &Context<()>, conflicts: &[Conflict]) -> RuleOutput<Resolution> {
        self.run(
            Role::Resolver,
            ctx,
            conflicts.len(),
            |p, c| p.resolve(c, conflicts),
            || Err(no_plugin(Role::Resolver, ctx)),
        )
    }
}

fn no_plugin(role: Role, ctx: &Context<()>) -> RecordFailure {
    RecordFailure {
        plugin: std::sync::Arc::new(crate::plugins::PluginId {
            name: "(none)".into(),
            version: "-".into(),
            sha256: String::new(),
        }),
        role,
        record: None,
        kind: crate::plugins::plugin::FailureKind::Rejected(crmsync_sdk::RecordError::new(
            "no-plugin",
            format!("no {role} plugin is active for connection {}", ctx.connection),
        )),
    }
}

/// The direction's name, for logs and keys.
pub fn direction_name(direction: Direction) -> &'static str {
    match direction {
        Direction::ToMarketing => "to-marketing",
        Direction::ToSalesforce => "to-salesforce",
    }
}
