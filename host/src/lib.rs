//! crmsync keeps Salesforce and email-marketing platforms (ActiveCampaign,
//! Mailchimp, Brevo) in two-way sync, with the rules — record selection, field
//! mapping, conflict resolution — as sandboxed WebAssembly components.
//!
//! # Layout
//! - [`connectors`]: one per vendor behind the [`connectors::Connector`] trait.
//! - [`engine`]: the sync engine: links, cursors, outbox (in progress).
//! - [`plugins`]: the plugin runtime (wasmtime, component model), contract
//!   checks, limits, fault isolation, the registry and hot swap.
//! - [`state`]: the sled store under the data directory: every key and tree.
//! - [`cli`]: the command line; one module per command group.
//! - [`telemetry`]: tracing setup (human or JSON logs).
//!
//! The vendor sandbox lives in its own crate, `crmsync-sandbox`.

pub mod cli;
pub mod config;
pub mod connectors;
pub mod engine;
pub mod plugins;
pub mod service;
pub mod state;
pub mod telemetry;
