//! crmsync keeps Salesforce and email-marketing platforms in two-way sync,
//! with the rules — record selection, field mapping, conflict resolution — as
//! sandboxed WebAssembly components. This crate is the service and its
//! command line; the work is done by the crates it puts together.
//!
//! # Layout
//! - [`config`]: the TOML config, checked in one pass that reports every problem.
//! - [`service`]: live connections over one state directory; runs, status,
//!   `serve` with its scheduler and admin API.
//! - [`cli`]: the command line; one module per command group.
//! - [`defaults`]: the default rules, built from `plugins/` and embedded.
//! - [`telemetry`]: tracing setup (human or JSON logs).
//!
//! The crates underneath, re-exported here under the names they had:
//! - [`core`] (`crmsync-core`): the types and traits everything agrees on.
//! - [`engine`] (`crmsync-engine`): the sync engine, on those traits only.
//! - [`state`] (`crmsync-store`): the sled store.
//! - [`plugins`] (`crmsync-runtime`): the wasmtime plugin runtime and registry.
//! - [`connectors`] (`crmsync-connectors`): one folder per vendor, and the vendor table.
//!
//! The vendor sandbox is its own crate, `crmsync-sandbox`.

pub mod cli;
pub mod config;
pub mod defaults;
pub mod service;
pub mod telemetry;

pub use crmsync_connectors as connectors;
pub use crmsync_core as core;
pub use crmsync_engine as engine;
pub use crmsync_runtime as plugins;
pub use crmsync_store as state;
