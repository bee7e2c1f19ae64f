//! [`PluginRules`]: the engine's [`Rules`] served by the plugins active in
//! the registry, each with its config section. A batch takes the active
//! plugin once, so it runs on one version from start to end even if another
//! is activated meanwhile.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crmsync_core::{
    Conflict, Context, Record, Resolution, RuleFailure, RuleLogLine, RuleOutput, Rules, Selection,
};

use super::plugin::FailureKind;
use super::registry::Registry;
use super::{Plugin, RecordFailure, Role};

pub struct PluginRules {
    registry: Arc<Registry>,
    /// Per role, the plugin's config section as JSON text.
    configs: HashMap<Role, String>,
    /// Per role, what its calls came to since start (metrics).
    stats: Mutex<BTreeMap<Role, RoleStats>>,
}

/// A role's plugin calls since start.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RoleStats {
    /// Calls (one per batch).
    pub calls: u64,
    pub records: u64,
    /// Time spent in the calls.
    pub seconds: f64,
    /// Records the plugin failed on (trap, deadline, memory, contract); a
    /// rejection by the rule itself is not a failure of the plugin.
    pub failures: u64,
}

impl PluginRules {
    pub fn new(registry: Arc<Registry>, configs: HashMap<Role, String>) -> Self {
        PluginRules { registry, configs, stats: Mutex::default() }
    }

    /// The role's config section (JSON text; `{}` when it has none).
    pub fn config(&self, role: Role) -> String {
        self.configs.get(&role).cloned().unwrap_or_else(|| "{}".into())
    }

    /// Each role's calls since start.
    pub fn stats(&self) -> Vec<(Role, RoleStats)> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(r, s)| (*r, *s)).collect()
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// What the connection's active plugins logged and printed during run
    /// `run_id` (bounded per plugin version), for the run's record.
    pub fn take_log(&self, connection: &str, run_id: &str) -> Vec<RuleLogLine> {
        let mut lines = Vec::new();
        for role in Role::ALL {
            if let Some(plugin) = self.registry.current(connection, role) {
                lines.extend(plugin.take_log(run_id).into_iter().map(|(level, message)| RuleLogLine {
                    plugin: plugin.id().to_string(),
                    level: level.to_string(),
                    message,
                }));
            }
        }
        lines
    }

    fn run<T>(
        &self,
        role: Role,
        ctx: &Context<()>,
        len: usize,
        call: impl FnOnce(&Plugin, &Context<String>) -> Vec<Result<T, RecordFailure>>,
        missing: impl Fn() -> Result<T, RuleFailure>,
    ) -> RuleOutput<T> {
        let Some(plugin) = self.registry.current(&ctx.connection, role) else {
            return RuleOutput { plugin: None, results: (0..len).map(|_| missing()).collect() };
        };
        let ctx = Context {
            connection: ctx.connection.clone(),
            direction: ctx.direction,
            run_id: ctx.run_id.clone(),
            target: ctx.target.clone(),
            // The version's own config when it was installed with one: a
            // rollback then brings back the old version with its old config.
            config: plugin.config().map_or_else(|| self.config(role), str::to_string),
        };
        let started = Instant::now();
        let results = call(&plugin, &ctx);
        let seconds = started.elapsed().as_secs_f64();
        let failures = results
            .iter()
            .filter(|r| matches!(r, Err(f) if matches!(f.kind, FailureKind::Failed(_))))
            .count();
        {
            let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
            let s = stats.entry(role).or_default();
            s.calls += 1;
            s.records += len as u64;
            s.seconds += seconds;
            s.failures += failures as u64;
        }
        let results = results.into_iter().map(|r| r.map_err(failure)).collect();
        RuleOutput { plugin: Some(plugin.id().to_string()), results }
    }
}

/// A plugin's per-record failure as the engine keeps it: the code, and a
/// message naming plugin, version, role and record.
fn failure(f: RecordFailure) -> RuleFailure {
    RuleFailure::new(f.code(), f.to_string())
}

fn no_plugin(role: Role, ctx: &Context<()>) -> RuleFailure {
    RuleFailure::new("no-plugin", format!("no {role} plugin is active for connection {}", ctx.connection))
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
