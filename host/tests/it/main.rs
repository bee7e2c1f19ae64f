//! The host's integration tests, in one binary (one link of wasmtime, not
//! one per file): real HTTP over loopback against the in-process vendor
//! sandbox, real sled directories, real `.wasm` components built from source
//! in this repository, and the `crmsync` binary itself where a test drives it
//! as an operator would.
//!
//! - [`connectors`]: each connector against its vendor's sandbox.
//! - [`plugins`]: the plugin runtime with real components (contract, limits,
//!   hostile guests, registry and hot swap).
//! - [`engine`]: the engine with real connectors, plugins and state.
//! - [`service`], [`accounts`], [`deletes`], [`activity`]: the binary as an operator drives it.
//! - [`brevo`]: Brevo ⇄ Salesforce end to end (seed 004).
//! - [`crash`], [`faults`], [`convergence`]: SIGKILL at random points, fault
//!   storms, random two-sided edits.
//! - [`polyglot`]: the example rule in five languages.
//! - [`dashboard`]: the web dashboard in headless Chromium.
//! - [`preview`]: a candidate plugin version beside the active one, nothing written.

mod accounts;
mod activity;
mod brevo;
mod common;
mod connectors;
mod convergence;
mod correctness;
mod crash;
mod dashboard;
mod deletes;
mod engine;
mod faults;
mod hostile_run;
mod mailchimp;
mod plugins;
mod polyglot;
mod preview;
mod service;
