//! Plugin fixtures against a loaded component: the format and the runner are
//! the SDK's ([`crmsync_sdk::fixtures`]), shared with `plugin test`, install-time
//! validation and the SDK's native harness; this module only says how a
//! component is called — one record a batch, its failures as `failed`.

use crmsync_sdk::fixtures::{Rules, failures, one};
use crmsync_sdk::types::{Conflict, Context, Record, RecordError, Resolution, Selection};

pub use crmsync_sdk::fixtures::{Case, Outcome, parse};

use super::plugin::{FailureKind, Plugin, RecordFailure};
use super::{LoadError, Role};

/// Runs the cases against the plugin in `role` (cases naming another role are
/// run in theirs). Each case is its own batch of one.
pub fn run(plugin: &Plugin, role: Role, cases: &[Case]) -> Vec<Outcome> {
    crmsync_sdk::fixtures::run(plugin, role, cases)
}

impl Rules for Plugin {
    fn plays(&self, role: Role) -> Result<(), String> {
        self.require(role).map_err(|e| e.to_string())
    }

    fn select(&self, ctx: &Context<String>, record: Record) -> Result<Selection, String> {
        one(Plugin::select(self, ctx, &[record]))?.map_err(|f| f.to_string())
    }

    fn map(&self, ctx: &Context<String>, record: Record) -> Result<Result<Record, RecordError>, String> {
        answer(one(Plugin::map(self, ctx, &[record]))?)
    }

    fn resolve(
        &self,
        ctx: &Context<String>,
        conflict: Conflict,
    ) -> Result<Result<Resolution, RecordError>, String> {
        answer(one(Plugin::resolve(self, ctx, &[conflict]))?)
    }
}

/// A rejection is the rule's answer; any other failure is the rule failing.
fn answer<T>(result: Result<T, RecordFailure>) -> Result<Result<T, RecordError>, String> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(RecordFailure { kind: FailureKind::Rejected(e), .. }) => Ok(Err(e)),
        Err(failure) => Err(failure.to_string()),
    }
}

/// Runs a plugin's own fixtures; any failure refuses it. What the rule logs
/// or prints on them is not logged (a fixture may make it fail on purpose);
/// a failure's message carries the guest's output.
pub fn validate(plugin: &Plugin, role: Role, cases: &[Case]) -> Result<usize, LoadError> {
    let outcomes = tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || {
        run(plugin, role, cases)
    });
    let failed = failures(&outcomes);
    if failed.is_empty() {
        Ok(outcomes.len())
    } else {
        Err(LoadError::Fixtures {
            plugin: plugin.id().to_string(),
            summary: format!("{} of {} failed — {}", failed.len(), outcomes.len(), failed.join("; ")),
        })
    }
}
