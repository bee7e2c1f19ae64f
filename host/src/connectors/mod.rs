//! Connectors: one per vendor, each speaking that vendor's real REST API with
//! reqwest, behind one trait the engine depends on. The engine knows no reqwest;
//! a connector knows no plugins and no sync state.
//!
//! # Layout
//! - this module: the [`Connector`] trait and the types crossing it.
//! - `http`: what every connector shares — the HTTP client, retry with
//!   backoff and jitter, `Retry-After`, error classification.
//! - one folder per vendor (`salesforce/`, `activecampaign/`, …). Adding a
//!   vendor touches one folder plus the line that builds connectors from config.
//!
//! Records cross the trait as `crmsync_sdk::Record`s, with fields named as the
//! vendor's API names them (Salesforce API names; ActiveCampaign `email`,
//! `firstName`, custom fields by personalization tag, …). Pseudo-fields a
//! connector understands are documented in its module (e.g. ActiveCampaign
//! `account` = the account name to link the contact to, `tags` = tags to add).

pub mod activecampaign;
pub mod http;
pub mod ratelimit;
pub mod salesforce;
pub mod sandbox;
pub mod secret;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use crmsync_sdk::types::{Record, System};

/// An opaque position in a source's change stream, made and read only by the
/// connector that issued it (Salesforce: `SystemModstamp` + `Id`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Cursor(pub String);

/// One page of changes, oldest first.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    pub records: Vec<Record>,
    /// Records deleted (or merged away) since the cursor.
    pub deleted: Vec<Deleted>,
    /// Where the next page starts; the engine stores it once this page is
    /// durably queued.
    pub next: Option<Cursor>,
    /// Whether more changes are waiting after `next`.
    pub more: bool,
}

/// A record that is gone from its system.
#[derive(Debug, Clone, PartialEq)]
pub struct Deleted {
    pub object_type: String,
    pub id: String,
    /// Salesforce merges: the surviving record (`MasterRecordId`).
    pub merged_into: Option<String>,
    pub at: Option<DateTime<Utc>>,
}

/// How a write finds its target.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WriteKey {
    /// Update the record with this id.
    Id(String),
    /// Create, or update the one record with this email (idempotent: a replay
    /// after a crash updates instead of creating a duplicate).
    Email(String),
    /// Create, or update the one record with this name (ActiveCampaign
    /// accounts, whose names are unique): idempotent on replay.
    Name(String),
    /// Create a new record (Salesforce Lead/Contact creation from marketing).
    /// Connectors make creates idempotent where the API allows (external id).
    New { idempotency_key: String },
}

/// One write of a batch.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Write {
    Upsert { key: WriteKey, record: Record },
    Delete { id: String },
}

/// The outcome of one write.
pub type WriteResult = Result<Written, VendorError>;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Written {
    pub id: String,
    pub created: bool,
}

/// A per-record error the vendor reported (HTTP 200 with per-item failures
/// included), with the vendor's own code and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("{code}: {message}")]
pub struct VendorError {
    pub code: String,
    pub message: String,
    /// Worth retrying later (e.g. `UNABLE_TO_LOCK_ROW`), as opposed to a
    /// permanent rejection (e.g. `INVALID_EMAIL_ADDRESS`).
    pub retryable: bool,
}

/// A whole call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConnectorError {
    #[error("{vendor} is rate limiting; retry after {retry_after:?}")]
    RateLimited { vendor: &'static str, retry_after: Option<Duration> },
    #[error("{vendor} answered {status}: {message}")]
    Server { vendor: &'static str, status: u16, message: String },
    #[error("{vendor} did not answer in time")]
    Timeout { vendor: &'static str },
    #[error("cannot reach {vendor}: {message}")]
    Network { vendor: &'static str, message: String },
    #[error("{vendor} refused the credentials: {message}")]
    Auth { vendor: &'static str, message: String },
    #[error("{vendor} API allocation is spent: {message}")]
    QuotaExceeded { vendor: &'static str, message: String },
    #[error("{vendor} rejected the request ({status}): {message}")]
    Rejected { vendor: &'static str, status: u16, message: String },
    #[error("{vendor} sent a response crmsync cannot read: {message}")]
    BadResponse { vendor: &'static str, message: String },
}

impl ConnectorError {
    /// Whether the same call may succeed later. Exhaustive on purpose: a new
    /// variant must decide.
    pub fn is_transient(&self) -> bool {
        match self {
            ConnectorError::RateLimited { .. }
            | ConnectorError::Server { .. }
            | ConnectorError::Timeout { .. }
            | ConnectorError::Network { .. } => true,
            ConnectorError::Auth { .. }
            | ConnectorError::QuotaExceeded { .. }
            | ConnectorError::Rejected { .. }
            | ConnectorError::BadResponse { .. } => false,
        }
    }
}

/// Static facts the engine plans batches with.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectorLimits {
    /// Most records one write call takes (Salesforce Collections 200,
    /// ActiveCampaign bulk import 250, Mailchimp batch 500, …).
    pub max_write_batch: usize,
    /// Most records one change-read page returns.
    pub max_page: usize,
    /// Sustained requests per second the vendor allows, if it has a rate limit.
    pub requests_per_second: Option<f64>,
}

/// API usage the vendor reports (Salesforce `Sforce-Limit-Info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ApiUsage {
    pub used: u64,
    pub limit: u64,
}

/// One vendor's API, as the engine sees it.
#[async_trait]
pub trait Connector: Send + Sync {
    fn system(&self) -> System;

    fn limits(&self) -> ConnectorLimits;

    /// Records of `object` changed after `since` (all records when `None`),
    /// oldest first, at most `limit`, plus deletions in the same window.
    async fn fetch_changes(
        &self,
        object: &str,
        since: Option<&Cursor>,
        limit: usize,
    ) -> Result<Changes, ConnectorError>;

    /// The current version of these records (missing ones are left out).
    async fn get(&self, object: &str, ids: &[String]) -> Result<Vec<Record>, ConnectorError>;

    /// Ids of the records with these emails, keyed by the trimmed, lowercased
    /// email. Several ids for one email is a duplicate the engine reports.
    async fn find_by_email(
        &self,
        object: &str,
        emails: &[String],
    ) -> Result<BTreeMap<String, Vec<String>>, ConnectorError>;

    /// Writes a batch (at most `limits().max_write_batch`); one result per write, in order.
    async fn write(&self, object: &str, writes: Vec<Write>) -> Result<Vec<WriteResult>, ConnectorError>;

    /// Every id of `object`, paged by an opaque cursor (drift reconciliation).
    async fn list_ids(
        &self,
        object: &str,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<(Vec<String>, Option<Cursor>), ConnectorError>;

    /// The latest API usage the vendor reported, if it reports any.
    fn api_usage(&self) -> Option<ApiUsage> {
        None
    }

    /// Requests this connector has sent, retries included.
    fn calls(&self) -> u64;

    /// Which of these records carry `tag` (marketing systems with tags; the
    /// records come from one change page). Systems without tags: none.
    async fn tagged(
        &self,
        _object: &str,
        _tag: &str,
        _records: &[Record],
    ) -> Result<std::collections::HashSet<String>, ConnectorError> {
        Ok(Default::default())
    }
}
