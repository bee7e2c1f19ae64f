//! The plugin runtime: loads WebAssembly components that implement the
//! `crmsync:plugin` contract (`wit/`), checks them, runs them under limits,
//! isolates faults, and swaps versions atomically.
//!
//! # Layout
//! - [`runtime`]: the one wasmtime [`Engine`](wasmtime::Engine), the on-disk
//!   compiled-artifact cache, the epoch ticker, and [`Runtime::load`].
//! - [`plugin`]: a loaded, checked plugin version ([`Plugin`]), its warm
//!   instance pool, the batched calls with per-record fault isolation.
//! - [`contract`]: which contract versions this host accepts and the export
//!   check that refuses anything else by name.
//! - [`sandbox`]: what a guest gets — nothing but logging: WASI with no files,
//!   network, environment or clock; memory, time and output caps.
//! - [`convert`]: between the generated bindings and `crmsync_sdk::types`.
//! - [`fixtures`]: the JSONL fixture format and runner (validation before
//!   activation, `crmsync plugin test`).
//! - [`registry`]: versions, active version per connection and role, history
//!   (sled), and the hot-swap table the engine reads at each batch.
//! - [`watch`]: the watched plugin directory.
//! - [`rules`]: [`PluginRules`], the engine's `Rules` served by the active plugins.
//! - `storage`: the registry's trees in the state database.
//!
//! Guarantees: nothing is compiled on the sync path (compilation happens at
//! install/activation time and is cached by content hash); a trap or a hit
//! limit fails only the call, and the batch is retried record by record so
//! every record gets its own result; a trapped instance is never reused.

pub mod contract;
pub mod convert;
pub mod fixtures;
pub mod plugin;
pub mod registry;
pub mod rules;
pub mod runtime;
pub mod sandbox;
mod storage;
pub mod watch;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit/since_v1.0.0",
        world: "rules",
    });
}

use std::fmt;

use serde::{Deserialize, Serialize};

pub use plugin::{CallFailure, Plugin, RecordFailure};
pub use rules::PluginRules;
pub use runtime::{Limits, Runtime};
pub use storage::ActivePlugins;

/// The three roles a plugin can play (the SDK's, so fixtures name them the same way).
pub use crmsync_sdk::Role;

/// Names one plugin version: what every processed record is traced to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PluginId {
    pub name: String,
    pub version: String,
    /// SHA-256 of the component's bytes, hex.
    pub sha256: String,
}

impl fmt::Display for PluginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

/// Why a plugin could not be loaded, checked or validated.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read plugin {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{name} is not a valid WebAssembly component: {reason}")]
    NotAComponent { name: String, reason: String },
    #[error(
        "{name} does not export the {role} role (interface crmsync:plugin/{role}@{supported}); it exports: {found}"
    )]
    MissingExport { name: String, role: Role, supported: &'static str, found: String },
    #[error("{name} was built for contract crmsync:plugin@{found}, {advice}")]
    IncompatibleContract { name: String, found: String, advice: String },
    #[error("{name} exports no crmsync role (selector, mapper or resolver); it exports: {found}")]
    NoRoles { name: String, found: String },
    #[error("{name} could not be instantiated: {reason}")]
    Instantiate { name: String, reason: String },
    #[error("compiled-artifact cache at {path}: {source}")]
    Cache { path: String, source: std::io::Error },
    #[error("{plugin} failed its fixtures: {summary}")]
    Fixtures { plugin: String, summary: String },
}
