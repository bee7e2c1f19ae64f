//! What the engine asks of a vendor API. The engine knows no HTTP client; a
//! connector knows no plugins and no sync state.
//!
//! - [`Connector`]: what both sides share — change reads from an opaque
//!   cursor, reads by id and email, batched writes with one outcome per
//!   record, id listings, static limits.
//! - [`SalesforceApi`]: the Salesforce side — API usage for the budget, and
//!   reading back the Tasks an interrupted write may have created.
//! - [`MarketingApi`]: a marketing platform — the [`Capabilities`] it
//!   declares beyond people (tags, accounts, an activity feed, actions,
//!   consent), and the calls those capabilities unlock. The engine asks the
//!   connector what it can do; it never names a vendor.
//!
//! Records cross these traits as [`Record`]s with fields named as the vendor's
//! API names them. The pseudo-fields in [`fields`] mean the same on every
//! marketing connector that declares the matching capability.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use crmsync_sdk::types::{Record, System};

use crate::activity::{Activity, Automation, Campaign, TaskRow};

/// Write-only pseudo-fields a marketing connector understands.
pub mod fields {
    /// Text list of tags to add to the person (capability `tags`); missing
    /// tags are created. Tags are never removed by a write.
    pub const TAGS: &str = "tags";
    /// The name of the account to link the person to (capability `accounts`):
    /// found or created.
    pub const ACCOUNT: &str = "account";
    /// `true`: unsubscribe the person from every list or audience of the
    /// connection (capability `consent`). Nothing ever re-subscribes.
    pub const UNSUBSCRIBE: &str = "unsubscribe";
}

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
    /// How many changed records wait after this page, when the vendor's
    /// listing says (Salesforce's `totalSize`, a marketing listing's total):
    /// the total a progress bar shows. `None` when unknown.
    pub remaining: Option<u64>,
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
    /// Create, or update the one record with this name (accounts, whose names
    /// are unique on the marketing side): idempotent on replay.
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

impl VendorError {
    /// A permanent rejection.
    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        VendorError { code: code.into(), message: message.into(), retryable: false }
    }
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
    #[error("{vendor} cannot {what}")]
    Unsupported { vendor: &'static str, what: String },
    /// The TLS handshake failed: the certificate is not trusted, the host
    /// name does not match, … (not retried: it will not heal by itself).
    #[error("{vendor}: secure connection refused: {message}")]
    Tls { vendor: &'static str, message: String },
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
            | ConnectorError::BadResponse { .. }
            | ConnectorError::Unsupported { .. }
            | ConnectorError::Tls { .. } => false,
        }
    }
}

/// Static facts the engine plans batches with.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectorLimits {
    /// Most records one write call takes (Salesforce Collections 200,
    /// a marketing platform's bulk import, …).
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

/// One vendor's API, as the engine sees it: what both sides share.
#[async_trait]
pub trait Connector: Send + Sync {
    fn system(&self) -> System;

    /// The vendor's name for people (`Salesforce`, or the marketing platform's).
    fn vendor(&self) -> &'static str;

    fn limits(&self) -> ConnectorLimits;

    /// Proves the credentials with one cheap call (`crmsync connect test`).
    async fn connect(&self) -> Result<(), ConnectorError>;

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

    /// Requests this connector has sent, retries included.
    fn calls(&self) -> u64;

    /// The same requests by endpoint class (the name each call is sent
    /// under, e.g. `list contacts`), for metrics.
    fn calls_by_endpoint(&self) -> Vec<(&'static str, u64)> {
        vec![("all", self.calls())]
    }
}

/// The Salesforce side.
#[async_trait]
pub trait SalesforceApi: Connector {
    /// The latest API usage Salesforce reported, if any yet.
    fn api_usage(&self) -> Option<ApiUsage>;

    /// Reads the usage now with one cheap call (`/limits`): how a paused
    /// budget learns that the rolling window freed calls.
    async fn refresh_usage(&self) -> Result<Option<ApiUsage>, ConnectorError>;

    /// The org's default time zone (`Organization.TimeZoneSidKey`, an IANA
    /// name such as `America/Chicago`), if it can be read.
    async fn org_time_zone(&self) -> Result<Option<String>, ConnectorError>;

    /// The Contacts among `contact_ids` that a Case refers to (Salesforce
    /// refuses to delete those; a deletion on the marketing side leaves them).
    async fn with_cases(&self, contact_ids: &[String]) -> Result<HashSet<String>, ConnectorError>;

    /// Tasks whose `WhoId` is one of `who_ids`, created at or after `since`.
    async fn tasks_of(
        &self,
        who_ids: &[String],
        since: DateTime<Utc>,
    ) -> Result<Vec<TaskRow>, ConnectorError>;
}

/// What a marketing platform has beyond people, declared by its connector.
/// Config validation refuses, naming the key, what a vendor cannot do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// The object Salesforce Leads and Contacts become (`contact`, `member`).
    pub people: &'static str,
    /// The object Salesforce Accounts become, if the platform has accounts.
    pub accounts: Option<&'static str>,
    /// Tags: the [`fields::TAGS`] pseudo-field adds them; [`MarketingApi::tagged`] reads them.
    pub tags: bool,
    /// An activity feed: [`MarketingApi::activities_after`] and [`MarketingApi::recent_activities`].
    pub activities: bool,
    /// Campaigns and automations a Salesforce record can be sent to.
    pub actions: bool,
    /// Unsubscribes through the [`fields::UNSUBSCRIBE`] pseudo-field.
    pub consent: bool,
}

impl Capabilities {
    /// People only: no accounts, tags, activities or actions.
    pub fn people(object: &'static str) -> Self {
        Capabilities {
            people: object,
            accounts: None,
            tags: false,
            activities: false,
            actions: false,
            consent: false,
        }
    }
}

/// A marketing platform.
#[async_trait]
pub trait MarketingApi: Connector {
    fn capabilities(&self) -> Capabilities;

    /// Which of these records (from one change page) carry `tag`.
    async fn tagged(
        &self,
        _object: &str,
        _tag: &str,
        _records: &[Record],
    ) -> Result<HashSet<String>, ConnectorError> {
        Err(self.unsupported("read tags"))
    }

    /// Activities of every person after `after` (everything when `None`),
    /// oldest first, paged by offset.
    async fn activities_after(
        &self,
        _after: Option<DateTime<Utc>>,
        _offset: usize,
        _limit: usize,
    ) -> Result<Vec<Activity>, ConnectorError> {
        Err(self.unsupported("list activities"))
    }

    /// One person's newest activities, newest first.
    async fn recent_activities(&self, _person: &str, _limit: usize) -> Result<Vec<Activity>, ConnectorError> {
        Err(self.unsupported("list activities"))
    }

    /// Campaigns, only those carrying `label` (any case) when given.
    async fn campaigns(&self, _label: Option<&str>) -> Result<Vec<Campaign>, ConnectorError> {
        Err(self.unsupported("list campaigns"))
    }

    /// Automations, only those carrying `label` (any case) when given.
    async fn automations(&self, _label: Option<&str>) -> Result<Vec<Automation>, ConnectorError> {
        Err(self.unsupported("list automations"))
    }

    /// Adds a person to an automation; the vendor's id of that entry.
    async fn add_to_automation(&self, _person: &str, _automation: &str) -> Result<String, ConnectorError> {
        Err(self.unsupported("add a contact to an automation"))
    }

    /// Adds a custom field for people (`crmsync <vendor> add-field`): its
    /// name, the platform's own type name, an optional tag (the name the
    /// API and mappings use) and whether it is required; the tag it got.
    async fn add_field(
        &self,
        _name: &str,
        _kind: &str,
        _tag: Option<&str>,
        _required: bool,
    ) -> Result<String, ConnectorError> {
        Err(self.unsupported("add a field"))
    }

    /// Whether people created on the platform (not linked to Salesforce)
    /// may become Salesforce records, where the platform's own settings
    /// decide it: `Some(false)` keeps them out, `Some(true)` lets the
    /// default selector create them as Leads; `None` leaves it to the
    /// selector's `inbound` rule alone.
    fn creates_in_salesforce(&self) -> Option<bool> {
        None
    }

    /// The fields that identify a person on this platform, as its records
    /// name them: a mapping must send at least one of them (refused at
    /// load otherwise). Empty: no such rule.
    fn identifier_fields(&self) -> &'static [&'static str] {
        &[]
    }

    /// The platform's monthly quota of tasks (records a connection writes,
    /// on either side), if it has one: 80 % warns, 100 % pauses the
    /// connection until the month ends.
    fn monthly_tasks(&self) -> Option<u64> {
        None
    }

    /// The error for a capability this platform lacks.
    fn unsupported(&self, what: &str) -> ConnectorError {
        ConnectorError::Unsupported { vendor: self.vendor(), what: what.to_string() }
    }
}
