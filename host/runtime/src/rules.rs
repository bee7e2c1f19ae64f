//! [`PluginRules`]: the engine's [`Rules`] served by the plugins active in
//! the registry, each with its config section. A batch takes the active
//! plugin once, so it runs on one version from start to end even if another
//! is activated meanwhile.

use std::collections::HashMap;
use std::sync::Arc;

use crmsync_core::{Conflict, Context, Record, Resolution, RuleFailure, RuleOutput, Rules, Selection};

use super::registry::Registry;
use super::{Plugin, RecordFailure, Role};

pub struct PluginRules {
    registry: Arc<Registry>,
    /// Per role, the plugin's config section as JSON text.
    configs: HashMap<Role, String>,
}

impl PluginRules {
    pub fn new(registry: Arc<Registry>, configs: HashMap<Role, String>) -> Self {
        PluginRules { registry, configs }
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
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
            config: self.configs.get(&role).cloned().unwrap_or_else(|| "{}".into()),
        };
        let results = call(&plugin, &ctx).into_iter().map(|r| r.map_err(failure)).collect();
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
