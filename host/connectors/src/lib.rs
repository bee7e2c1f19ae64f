//! Connectors: one folder per vendor, each speaking that vendor's real REST
//! API with reqwest, behind `crmsync-core`'s traits ([`Connector`],
//! [`SalesforceApi`], [`MarketingApi`]). A connector knows no plugins and no
//! sync state; the engine knows no reqwest.
//!
//! # Layout
//! - [`http`]: what every connector shares on the wire — the HTTP client,
//!   retry with backoff and jitter, `Retry-After`, error classification.
//! - [`ratelimit`]: rate limiters shared by every connection to one account.
//! - [`salesforce`]: the Salesforce side, with its config section.
//! - one folder per marketing platform, each owning its config section, its
//!   `build`, and its entry in [`vendors::VENDORS`] — the one table that lists
//!   them. Adding a platform touches its folder and that table.
//!
//! Records cross the traits with fields named as the vendor's API names them;
//! the pseudo-fields every marketing connector understands are in
//! [`crmsync_core::connector::fields`].

pub mod http;
pub mod ratelimit;
pub mod salesforce;
pub mod vendors;

pub use crmsync_core::connector::{
    ApiUsage, Capabilities, Changes, Connector, ConnectorError, ConnectorLimits, Cursor, Deleted,
    MarketingApi, SalesforceApi, VendorError, Write, WriteKey, WriteResult, Written,
};
pub use vendors::{BuildContext, VENDORS, Vendor};
