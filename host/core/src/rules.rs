//! What the engine asks of the rules for one connection: one call per batch,
//! one result per input, in order. The plugin runtime implements [`Rules`]
//! with WebAssembly components; engine tests implement it in plain Rust.

use std::fmt;

use crmsync_sdk::types::{Conflict, Context, Record, Resolution, Selection};

/// A line a rule logged (or printed) during a run, kept with the run's record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RuleLogLine {
    /// `name@version` of the plugin that wrote it.
    pub plugin: String,
    /// `trace`, `debug`, `info`, `warn`, `error`, or `output` for what it printed.
    pub level: String,
    pub message: String,
}

/// One batch's results from a rule, and the rule version that produced them.
#[derive(Debug)]
pub struct RuleOutput<T> {
    /// `name@version`; `None` when no rule is active for the role.
    pub plugin: Option<String>,
    pub results: Vec<Result<T, RuleFailure>>,
}

/// A rule failed on one record: refused it, trapped, or hit a limit. The
/// message names the plugin, its version, the role and the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleFailure {
    pub code: String,
    pub message: String,
}

impl RuleFailure {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        RuleFailure { code: code.into(), message: message.into() }
    }
}

impl fmt::Display for RuleFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RuleFailure {}

/// The rules of one connection.
pub trait Rules: Send + Sync {
    fn select(&self, ctx: &Context<()>, records: &[Record]) -> RuleOutput<Selection>;
    fn map(&self, ctx: &Context<()>, records: &[Record]) -> RuleOutput<Record>;
    fn resolve(&self, ctx: &Context<()>, conflicts: &[Conflict]) -> RuleOutput<Resolution>;
}
