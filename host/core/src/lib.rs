//! crmsync's core: the types and traits every other crate agrees on, and
//! nothing else — no I/O, no HTTP client, no database, no WebAssembly.
//!
//! # Layout
//! - [`connector`]: what the engine asks of a vendor API — the [`Connector`]
//!   both sides share, the Salesforce side ([`SalesforceApi`]) and a marketing
//!   platform ([`MarketingApi`]) with the [`Capabilities`] it declares.
//! - [`activity`]: marketing activities and actions (campaigns, automations)
//!   as the engine sees them.
//! - [`rules`]: what the engine asks of the rules (selector, mapper,
//!   resolver): [`Rules`].
//! - [`store`]: the engine's durable state — links, cursors, the outbox,
//!   per-record errors, the activity log, run records — behind [`Store`].
//! - [`secret`]: credentials that never print, and where config says to read them.
//!
//! The record and value types are the plugin contract's
//! ([`crmsync_sdk::types`]), re-exported here.

pub mod activity;
pub mod connector;
pub mod rules;
pub mod secret;
pub mod store;

pub use connector::{
    ApiUsage, Capabilities, Changes, Connector, ConnectorError, ConnectorLimits, Cursor, Deleted,
    MarketingApi, SalesforceApi, VendorError, Write, WriteKey, WriteResult, Written,
};
pub use crmsync_sdk::types::{
    Conflict, Context, Direction, Record, Resolution, SalesforceObject, Selection, System, Value,
};
pub use rules::{RuleFailure, RuleLogLine, RuleOutput, Rules};
pub use secret::{ConfigError, Secret, SecretRef};
pub use store::{Link, OutboxEntry, Side, Store, StoreError};
