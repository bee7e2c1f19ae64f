//! A loaded, checked plugin version and its batched calls.
//!
//! Each call takes a warm instance from the pool (or instantiates one), sets
//! the epoch deadline, calls the role's export once for the whole batch, and
//! checks the output: one result per input, within the output cap. An instance
//! goes back to the pool only if the call succeeded and it is under the
//! recycling thresholds; an instance that trapped is dropped.
//!
//! When a batch call fails (trap, deadline, memory, output cap, wrong result
//! count), the batch is retried record by record so that only the records that
//! cause the failure get it, each as a [`RecordFailure`] naming the plugin,
//! version, role and record.

// Per-record results carry a `RecordFailure` by value: it is data for the
// operator, kept per record, not an error propagated with `?`.
#![allow(clippy::result_large_err)]

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Mutex;

use crmsync_sdk::types::{Conflict, Context, Record, RecordError, Resolution, Selection};
use wasmtime::component::{Component, Instance, InstancePre};
use wasmtime::{Store, Trap};

use super::bindings::exports::crmsync::plugin::{mapper, resolver, selector};
use super::convert::{self, Weigh};
use super::runtime::Runtime;
use super::sandbox::{Guest, GuestLog, MEMORY_LIMIT_MESSAGE};
use super::{LoadError, PluginId, Role};

/// Why a whole call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallFailure {
    #[error("exceeded its {timeout_ms} ms deadline")]
    Deadline { timeout_ms: u128 },
    #[error("exceeded its memory limit of {limit_mib} MiB")]
    Memory { limit_mib: usize },
    #[error("returned {size} bytes, over the {limit} byte output limit")]
    OutputTooLarge { size: usize, limit: usize },
    #[error("trapped: {message}{}", if output.is_empty() { String::new() } else { format!("\nguest output:\n{output}") })]
    Trap { message: String, output: String },
    #[error("broke the contract: {0}")]
    Contract(String),
    #[error("could not start an instance: {0}")]
    Instantiate(String),
    #[error("was not run: the plugin hit its deadline on {0} records in a row")]
    NotRun(usize),
}

/// Why one record has no result.
#[derive(Debug, Clone, PartialEq)]
pub enum FailureKind {
    /// The plugin rejected the record (its own per-record error).
    Rejected(RecordError),
    /// The plugin failed while processing it.
    Failed(CallFailure),
}

/// A per-record failure, traceable to the plugin version and role.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordFailure {
    /// Shared, so a failure stays small however many a batch has.
    pub plugin: std::sync::Arc<PluginId>,
    pub role: Role,
    pub record: Option<String>,
    pub kind: FailureKind,
}

impl fmt::Display for RecordFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let record = self.record.as_deref().unwrap_or("(new record)");
        match &self.kind {
            FailureKind::Rejected(e) => {
                write!(f, "{} ({}) rejected record {record}: {e}", self.plugin, self.role)
            }
            FailureKind::Failed(e) => write!(f, "{} ({}) on record {record} {e}", self.plugin, self.role),
        }
    }
}

impl std::error::Error for RecordFailure {}

impl RecordFailure {
    /// The code to show the operator: the plugin's own, or `plugin-failed`.
    pub fn code(&self) -> &str {
        match &self.kind {
            FailureKind::Rejected(e) => &e.code,
            FailureKind::Failed(_) => "plugin-failed",
        }
    }
}

/// A warm instance.
struct Warm {
    store: Store<Guest>,
    instance: Instance,
    calls: u64,
}

/// The role exports, looked up once.
struct Exports {
    selector: Option<selector::GuestIndices>,
    mapper: Option<mapper::GuestIndices>,
    resolver: Option<resolver::GuestIndices>,
}

/// One loaded plugin version. Shared behind an `Arc`; calls may run
/// concurrently (each takes its own instance).
pub struct Plugin {
    runtime: Runtime,
    id: std::sync::Arc<PluginId>,
    component: Component,
    pre: InstancePre<Guest>,
    roles: BTreeSet<Role>,
    exports: Exports,
    pool: Mutex<Vec<Warm>>,
    /// The version's own config (JSON text), installed with it: it replaces
    /// the role's config from crmsync.toml, so a rollback restores both.
    config: Option<String>,
    /// What its instances logged and printed, per run, until taken.
    log: std::sync::Arc<GuestLog>,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin").field("id", &self.id).field("roles", &self.roles).finish()
    }
}

impl Plugin {
    pub(super) fn new(
        runtime: Runtime,
        id: PluginId,
        component: Component,
        pre: InstancePre<Guest>,
        roles: BTreeSet<Role>,
    ) -> Result<Plugin, LoadError> {
        let err =
            |e: wasmtime::Error| LoadError::Instantiate { name: id.to_string(), reason: format!("{e:#}") };
        let exports = Exports {
            selector: roles
                .contains(&Role::Selector)
                .then(|| selector::GuestIndices::new(&pre))
                .transpose()
                .map_err(err)?,
            mapper: roles
                .contains(&Role::Mapper)
                .then(|| mapper::GuestIndices::new(&pre))
                .transpose()
                .map_err(err)?,
            resolver: roles
                .contains(&Role::Resolver)
                .then(|| resolver::GuestIndices::new(&pre))
                .transpose()
                .map_err(err)?,
        };
        let id = std::sync::Arc::new(id);
        let plugin = Plugin {
            runtime,
            id,
            component,
            pre,
            roles,
            exports,
            pool: Mutex::new(Vec::new()),
            config: None,
            log: std::sync::Arc::default(),
        };
        // Instantiate once now so a component that cannot start (a failing
        // start function, a memory larger than the cap) is refused at load time.
        let warm = plugin
            .instantiate()
            .map_err(|e| LoadError::Instantiate { name: plugin.id.to_string(), reason: e.to_string() })?;
        plugin.pool.lock().expect("pool lock").push(warm);
        Ok(plugin)
    }

    pub fn id(&self) -> &PluginId {
        &self.id
    }

    pub fn roles(&self) -> &BTreeSet<Role> {
        &self.roles
    }

    /// With the version's own config (JSON text).
    pub fn with_config(mut self, config: Option<String>) -> Plugin {
        self.config = config;
        self
    }

    /// The version's own config, if it was installed with one.
    pub fn config(&self) -> Option<&str> {
        self.config.as_deref()
    }

    /// Checks the plugin plays `role`, with a message naming what it exports.
    pub fn require(&self, role: Role) -> Result<(), LoadError> {
        super::contract::require_role(
            &self.roles,
            role,
            &self.id.to_string(),
            self.runtime.engine(),
            &self.component,
        )
    }

    /// What it logged and printed during run `run_id` (at most the last
    /// [`KEPT_LOG_LINES`](crate::sandbox::KEPT_LOG_LINES) lines it wrote in
    /// any run), as `(level, message)`; taken once.
    pub fn take_log(&self, run_id: &str) -> Vec<(&'static str, String)> {
        self.log.take(run_id)
    }

    /// Idle warm instances right now (for tests and metrics).
    pub fn idle_instances(&self) -> usize {
        self.pool.lock().expect("pool lock").len()
    }

    /// Runs the selector over a batch.
    pub fn select(&self, ctx: &Context<String>, records: &[Record]) -> Vec<Result<Selection, RecordFailure>> {
        let wit_ctx = convert::context_to_wit(ctx);
        off_runtime(|| {
            self.isolated(
                Role::Selector,
                records,
                |r| r.id.clone(),
                |store, instance, batch| {
                    store.data_mut().run_id.clone_from(&ctx.run_id);
                    let indices = self.exports.selector.as_ref().ok_or_else(|| missing(Role::Selector))?;
                    let guest = indices.load(&mut *store, instance).map_err(classify_plain)?;
                    let input: Vec<_> = batch.iter().map(convert::record_to_wit).collect();
                    let out = guest.call_select(&mut *store, &wit_ctx, &input)?;
                    let weight = out.iter().map(Weigh::weight).sum();
                    Ok((out.into_iter().map(|s| Ok(convert::selection_from_wit(s))).collect(), weight))
                },
            )
        })
    }

    /// Runs the mapper over a batch.
    pub fn map(&self, ctx: &Context<String>, records: &[Record]) -> Vec<Result<Record, RecordFailure>> {
        let wit_ctx = convert::context_to_wit(ctx);
        off_runtime(|| {
            self.isolated(
                Role::Mapper,
                records,
                |r| r.id.clone(),
                |store, instance, batch| {
                    store.data_mut().run_id.clone_from(&ctx.run_id);
                    let indices = self.exports.mapper.as_ref().ok_or_else(|| missing(Role::Mapper))?;
                    let guest = indices.load(&mut *store, instance).map_err(classify_plain)?;
                    let input: Vec<_> = batch.iter().map(convert::record_to_wit).collect();
                    let out = guest.call_map_records(&mut *store, &wit_ctx, &input)?;
                    let weight = out.iter().map(Weigh::weight).sum();
                    let results = out
                        .into_iter()
                        .map(|r| r.map_err(convert::error_from_wit).and_then(convert::record_from_wit))
                        .collect();
                    Ok((results, weight))
                },
            )
        })
    }

    /// Runs the resolver over a batch of conflicts.
    pub fn resolve(
        &self,
        ctx: &Context<String>,
        conflicts: &[Conflict],
    ) -> Vec<Result<Resolution, RecordFailure>> {
        let wit_ctx = convert::context_to_wit(ctx);
        off_runtime(|| {
            self.isolated(
                Role::Resolver,
                conflicts,
                |c| c.salesforce.id.clone(),
                |store, instance, batch| {
                    store.data_mut().run_id.clone_from(&ctx.run_id);
                    let indices = self.exports.resolver.as_ref().ok_or_else(|| missing(Role::Resolver))?;
                    let guest = indices.load(&mut *store, instance).map_err(classify_plain)?;
                    let input: Vec<_> = batch.iter().map(convert::conflict_to_wit).collect();
                    let out = guest.call_resolve(&mut *store, &wit_ctx, &input)?;
                    let weight = out.iter().map(Weigh::weight).sum();
                    let results = out
                        .into_iter()
                        .map(|r| r.map_err(convert::error_from_wit).and_then(convert::resolution_from_wit))
                        .collect();
                    Ok((results, weight))
                },
            )
        })
    }

    /// Calls once for the batch; on failure, once per record.
    fn isolated<I, O>(
        &self,
        role: Role,
        items: &[I],
        record_id: impl Fn(&I) -> Option<String>,
        invoke: impl Fn(&mut Store<Guest>, &Instance, &[I]) -> Invoked<O>,
    ) -> Vec<Result<O, RecordFailure>> {
        let fail = |item: &I, kind: FailureKind| RecordFailure {
            plugin: self.id.clone(),
            role,
            record: record_id(item),
            kind,
        };
        let finish = |results: Vec<Result<O, RecordError>>, batch: &[I]| -> Vec<Result<O, RecordFailure>> {
            results
                .into_iter()
                .zip(batch)
                .map(|(r, item)| r.map_err(|e| fail(item, FailureKind::Rejected(e))))
                .collect()
        };
        if items.is_empty() {
            return Vec::new();
        }
        let failure = match self.call(items, &invoke) {
            Ok(results) => return finish(results, items),
            Err(failure) => failure,
        };
        if items.len() == 1 {
            return vec![Err(fail(&items[0], FailureKind::Failed(failure)))];
        }
        tracing::warn!(
            plugin = %self.id, %role, records = items.len(), error = %failure,
            "plugin call failed; retrying record by record to isolate the bad records"
        );
        let mut out = Vec::with_capacity(items.len());
        let mut timeouts_in_a_row = 0;
        for item in items {
            let limit = self.runtime.limits().max_consecutive_timeouts;
            if timeouts_in_a_row >= limit {
                out.push(Err(fail(item, FailureKind::Failed(CallFailure::NotRun(limit)))));
                continue;
            }
            match self.call(std::slice::from_ref(item), &invoke) {
                Ok(results) => {
                    timeouts_in_a_row = 0;
                    out.extend(finish(results, std::slice::from_ref(item)));
                }
                Err(failure) => {
                    timeouts_in_a_row = if matches!(failure, CallFailure::Deadline { .. }) {
                        timeouts_in_a_row + 1
                    } else {
                        0
                    };
                    out.push(Err(fail(item, FailureKind::Failed(failure))));
                }
            }
        }
        out
    }

    /// One call on a warm instance, with the deadline and the output checks.
    fn call<I, O>(
        &self,
        batch: &[I],
        invoke: &impl Fn(&mut Store<Guest>, &Instance, &[I]) -> Invoked<O>,
    ) -> Result<Vec<Result<O, RecordError>>, CallFailure> {
        let mut warm = match self.pool.lock().expect("pool lock").pop() {
            Some(warm) => warm,
            None => self.instantiate()?,
        };
        warm.store.set_epoch_deadline(self.runtime.deadline_ticks());
        let result = invoke(&mut warm.store, &warm.instance, batch);
        warm.calls += 1;
        warm.store.data_mut().forward_output();
        let (results, weight) = match result {
            Ok(out) => out,
            Err(CallError::Wasm(e)) => return Err(self.classify(e, &warm)),
            Err(CallError::Failure(f)) => return Err(f),
        };
        let limit = self.runtime.limits().output_bytes;
        if weight > limit {
            return Err(CallFailure::OutputTooLarge { size: weight, limit });
        }
        if results.len() != batch.len() {
            return Err(CallFailure::Contract(format!(
                "returned {} results for {} inputs",
                results.len(),
                batch.len()
            )));
        }
        self.recycle(warm);
        Ok(results)
    }

    fn instantiate(&self) -> Result<Warm, CallFailure> {
        let limits = self.runtime.limits();
        let mut store = Store::new(
            self.runtime.engine(),
            Guest::new(PluginId::clone(&self.id), limits.memory_bytes, self.log.clone()),
        );
        store.limiter(|guest| &mut guest.limiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(self.runtime.deadline_ticks());
        let instance =
            self.pre.instantiate(&mut store).map_err(|e| CallFailure::Instantiate(format!("{e:#}")))?;
        Ok(Warm { store, instance, calls: 0 })
    }

    /// Returns a healthy instance to the pool unless it is due for recycling.
    fn recycle(&self, warm: Warm) {
        let limits = self.runtime.limits();
        if warm.calls >= limits.recycle_after_calls
            || warm.store.data().limiter.peak_memory > limits.recycle_above_memory
        {
            tracing::debug!(plugin = %self.id, calls = warm.calls, "recycling a warm instance");
            return;
        }
        let mut pool = self.pool.lock().expect("pool lock");
        if pool.len() < limits.max_idle_instances {
            pool.push(warm);
        }
    }

    fn classify(&self, e: wasmtime::Error, warm: &Warm) -> CallFailure {
        let limits = self.runtime.limits();
        if matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
            return CallFailure::Deadline { timeout_ms: limits.call_timeout.as_millis() };
        }
        let message = format!("{e:#}");
        if message.contains(MEMORY_LIMIT_MESSAGE) {
            return CallFailure::Memory { limit_mib: limits.memory_bytes >> 20 };
        }
        CallFailure::Trap { message, output: warm.store.data().output_tail() }
    }
}

/// Runs `f` off any tokio runtime, on a thread of its own when called from
/// inside one: wasmtime-wasi's synchronous WASI (a guest printing to its
/// stdout, say) blocks on a runtime of its own, which panics inside another
/// runtime's task. Outside a runtime (`plugin test`) it runs in place.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    // The caller's subscriber goes along (a validation runs its fixtures quietly).
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    std::thread::scope(|scope| {
        match scope.spawn(move || tracing::dispatcher::with_default(&dispatch, f)).join() {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// What an `invoke` closure returns: the results and their weight in bytes.
type Invoked<O> = Result<(Vec<Result<O, RecordError>>, usize), CallError>;

/// What an `invoke` closure can fail with.
enum CallError {
    Wasm(wasmtime::Error),
    Failure(CallFailure),
}

impl From<wasmtime::Error> for CallError {
    fn from(e: wasmtime::Error) -> Self {
        CallError::Wasm(e)
    }
}

fn classify_plain(e: wasmtime::Error) -> CallError {
    CallError::Failure(CallFailure::Contract(format!("{e:#}")))
}

fn missing(role: Role) -> CallError {
    CallError::Failure(CallFailure::Contract(format!("the plugin does not export the {role} role")))
}
