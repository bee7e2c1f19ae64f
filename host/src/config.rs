//! The service's configuration: one TOML file, read once at start.
//!
//! Secrets never appear in the file: each is a reference, `{ env = "NAME" }`
//! or `{ file = "path" }`, resolved when the connection is built, and held in
//! a [`Secret`] from then on. Every error names the key and what is wrong.
//!
//! ```toml
//! [service]
//! admin_addr = "127.0.0.1:8477"             # `serve`: the HTTP admin API (loopback by default)
//! admin_token = { env = "CRMSYNC_ADMIN_TOKEN" }
//!
//! [connections.acme]
//! marketing = "activecampaign"
//! objects = ["Account", "Lead", "Contact"]   # Accounts first: contacts then find their account
//! schedule = "every 4 hours"                # every 1|2|3|4|6|8|12 hours, "daily at 06:00", "manual"
//!
//! [connections.acme.deletes]               # per direction: ignore (default) | unsubscribe | delete
//! to_marketing = "unsubscribe"              # a deleted (or merged-away) Salesforce record's contact
//! to_salesforce = "ignore"                  # a deleted contact's Salesforce record (daily reconciliation)
//!
//! [connections.acme.salesforce]
//! login_url = "https://login.salesforce.com"
//! client_id = "3MVG9…"
//! client_secret = { env = "SF_CLIENT_SECRET" }
//! refresh_token = { env = "SF_REFRESH_TOKEN" }   # or username + password
//!
//! [connections.acme.activecampaign]
//! api_url = "https://acme.api-us1.com"
//! api_token = { file = "/run/secrets/ac-token" }
//!
//! [connections.acme.rules.mapper]
//! plugin = "plugins/standard-mapping.wasm"  # installed and activated if no version is active
//! config = { marketing = "activecampaign" }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, NaiveTime, TimeZone, Timelike, Utc};
use serde::Deserialize;

use crate::connectors::secret::Secret;

/// A config problem: the key it is about and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError { key: key.into(), message: message.into() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub service: ServiceConfig,
    #[serde(default)]
    pub connections: BTreeMap<String, ConnectionConfig>,
    /// Where the file was read from: relative plugin paths start there.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    #[serde(default = "default_admin_addr")]
    pub admin_addr: String,
    /// Bearer token of the admin API; without it the API refuses every call but `/health`.
    pub admin_token: Option<SecretRef>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig { admin_addr: default_admin_addr(), admin_token: None }
    }
}

fn default_admin_addr() -> String {
    "127.0.0.1:8477".into()
}

/// Where a secret comes from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum SecretRef {
    Env {
        env: String,
    },
    File {
        file: PathBuf,
    },
    /// A literal in the file: refused with a message saying where secrets go.
    Literal(String),
}

impl SecretRef {
    /// Reads the secret; `key` names it in errors (never its value).
    pub fn resolve(&self, key: &str) -> Result<Secret, ConfigError> {
        match self {
            SecretRef::Env { env } => match std::env::var(env) {
                Ok(v) if !v.is_empty() => Ok(Secret::new(v)),
                _ => Err(ConfigError::new(key, format!("environment variable {env} is not set"))),
            },
            SecretRef::File { file } => match std::fs::read_to_string(file) {
                Ok(v) if !v.trim().is_empty() => Ok(Secret::new(v.trim().to_string())),
                Ok(_) => Err(ConfigError::new(key, format!("{} is empty", file.display()))),
                Err(e) => Err(ConfigError::new(key, format!("cannot read {}: {e}", file.display()))),
            },
            SecretRef::Literal(_) => Err(ConfigError::new(
                key,
                "secrets are not written in the config file; use { env = \"NAME\" } or { file = \"path\" }",
            )),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    /// `activecampaign` (Mailchimp and Brevo connectors are not built yet).
    pub marketing: String,
    #[serde(default = "default_objects")]
    pub objects: Vec<String>,
    #[serde(default)]
    pub schedule: Schedule,
    #[serde(default = "default_page_size")]
    pub page_size: usize,
    #[serde(default = "default_created_tag")]
    pub created_tag: Option<String>,
    #[serde(default = "default_pushed_tag")]
    pub pushed_tag: Option<String>,
    pub write_back: Option<WriteBackConfig>,
    /// Company written on a Lead created from a contact that has none
    /// (Salesforce requires it); `""` leaves it to the mapping.
    #[serde(default = "default_lead_company")]
    pub lead_company: String,
    #[serde(default)]
    pub inbound: InboundConfig,
    /// What a deletion on one side does on the other: `ignore` (default),
    /// `unsubscribe` or `delete`, per direction.
    #[serde(default)]
    pub deletes: crate::engine::sync::DeletePolicy,
    #[serde(default)]
    pub budget: BudgetConfig,
    #[serde(default)]
    pub http: HttpSection,
    pub salesforce: SalesforceSection,
    pub activecampaign: Option<ActiveCampaignSection>,
    #[serde(default)]
    pub rules: RulesConfig,
    /// Marketing activities → Salesforce Tasks (`service::activity`).
    #[serde(default)]
    pub activities: ActivitiesConfig,
}

/// `activities = { tasks = true }`: write each new ActiveCampaign activity of
/// a linked contact as a Salesforce Task (on by default).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivitiesConfig {
    #[serde(default = "default_tasks")]
    pub tasks: bool,
}

impl Default for ActivitiesConfig {
    fn default() -> Self {
        ActivitiesConfig { tasks: default_tasks() }
    }
}
fn default_tasks() -> bool {
    true
}

fn default_objects() -> Vec<String> {
    vec!["Lead".into(), "Contact".into()]
}
fn default_page_size() -> usize {
    2000
}
fn default_created_tag() -> Option<String> {
    Some("created-from-salesforce".into())
}
fn default_lead_company() -> String {
    "[not provided]".into()
}
fn default_pushed_tag() -> Option<String> {
    Some("added-to-salesforce".into())
}

/// Timeouts and retries of both connectors' HTTP calls.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// Deadline of one attempt.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Retries of a transient failure (429, 5xx, timeout) after the first attempt.
    #[serde(default = "default_max_retries")]
    pub max_retries: usize,
    /// First backoff step; doubled per retry up to `max_delay_ms`, with full jitter.
    #[serde(default = "default_min_delay_ms")]
    pub min_delay_ms: u64,
    #[serde(default = "default_max_delay_ms")]
    pub max_delay_ms: u64,
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            timeout_secs: default_timeout_secs(),
            max_retries: default_max_retries(),
            min_delay_ms: default_min_delay_ms(),
            max_delay_ms: default_max_delay_ms(),
        }
    }
}
fn default_timeout_secs() -> u64 {
    120
}
fn default_max_retries() -> usize {
    6
}
fn default_min_delay_ms() -> u64 {
    500
}
fn default_max_delay_ms() -> u64 {
    30_000
}

impl HttpSection {
    pub fn options(&self) -> crate::connectors::http::HttpOptions {
        crate::connectors::http::HttpOptions {
            timeout: Duration::from_secs(self.timeout_secs.max(1)),
            max_retries: self.max_retries,
            min_delay: Duration::from_millis(self.min_delay_ms),
            max_delay: Duration::from_millis(self.max_delay_ms.max(self.min_delay_ms)),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteBackConfig {
    /// On Leads and Contacts: "Synced successfully", "Pending next sync" or the error.
    pub status_field: String,
    /// On Leads and Contacts: the marketing contact's id.
    pub id_field: String,
    /// On Accounts: the account relation status (same texts).
    #[serde(default)]
    pub account_status_field: Option<String>,
    /// On Accounts: the marketing account's id.
    #[serde(default)]
    pub account_id_field: Option<String>,
}

/// Marketing → Salesforce batching (seed defaults: 100 contacts or 10 minutes).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundConfig {
    /// A batch leaves as soon as this many contacts changed…
    #[serde(default = "default_batch_records")]
    pub batch_records: usize,
    /// …or when its oldest change has waited this long.
    #[serde(default = "default_batch_minutes")]
    pub batch_minutes: u64,
    /// How often `serve` reads marketing changes.
    #[serde(default = "default_poll_seconds")]
    pub poll_seconds: u64,
}

impl Default for InboundConfig {
    fn default() -> Self {
        InboundConfig {
            batch_records: default_batch_records(),
            batch_minutes: default_batch_minutes(),
            poll_seconds: default_poll_seconds(),
        }
    }
}
fn default_batch_records() -> usize {
    100
}
fn default_batch_minutes() -> u64 {
    10
}
fn default_poll_seconds() -> u64 {
    60
}

/// The share of Salesforce's daily API allocation this connection may use.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// Fraction of the org's daily allocation (0 < share ≤ 1).
    #[serde(default = "one")]
    pub share: f64,
    #[serde(default = "warn_at")]
    pub warn: f64,
    #[serde(default = "pause_at")]
    pub pause: f64,
    #[serde(default = "resume_at")]
    pub resume: f64,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig { share: one(), warn: warn_at(), pause: pause_at(), resume: resume_at() }
    }
}
fn one() -> f64 {
    1.0
}
fn warn_at() -> f64 {
    0.80
}
fn pause_at() -> f64 {
    0.95
}
fn resume_at() -> f64 {
    0.75
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesforceSection {
    pub login_url: String,
    pub client_id: String,
    pub client_secret: Option<SecretRef>,
    pub refresh_token: Option<SecretRef>,
    pub username: Option<String>,
    pub password: Option<SecretRef>,
    #[serde(default = "default_bulk_threshold")]
    pub bulk_threshold: usize,
    /// Pause between Bulk API 2.0 job status polls.
    #[serde(default = "default_bulk_poll_ms")]
    pub bulk_poll_ms: u64,
}
fn default_bulk_poll_ms() -> u64 {
    2000
}
fn default_bulk_threshold() -> usize {
    2000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActiveCampaignSection {
    pub api_url: String,
    pub api_token: SecretRef,
    /// The account's rate limit; `0` turns client-side pacing off (the sandbox with limits off).
    #[serde(default = "default_ac_rate")]
    pub requests_per_second: f64,
    /// Pause between `/import/info` polls of a bulk import.
    #[serde(default = "default_import_poll_ms")]
    pub import_poll_ms: u64,
}
fn default_import_poll_ms() -> u64 {
    1000
}
fn default_ac_rate() -> f64 {
    5.0
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    pub selector: Option<RuleConfig>,
    pub mapper: Option<RuleConfig>,
    pub resolver: Option<RuleConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// A `.wasm` component installed and activated for the role when no
    /// version is active for the connection yet (later versions come through
    /// `crmsync plugin activate`, the admin API or the watched directory).
    pub plugin: Option<PathBuf>,
    /// The plugin's own config section, passed to it as JSON.
    #[serde(default)]
    pub config: Option<toml::Value>,
}

/// When Salesforce → marketing runs (seed: every 1, 2, 3, 4, 6, 8 or 12
/// hours, or once a day at a chosen hour).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Schedule {
    /// Only when asked (`run --once`, the admin API's run-now).
    #[default]
    Manual,
    EveryHours(u32),
    DailyAt(NaiveTime),
}

impl Schedule {
    /// The first run time strictly after `now` (UTC), `None` for manual.
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match *self {
            Schedule::Manual => None,
            Schedule::EveryHours(h) => {
                // Aligned to the hour grid from midnight, like the vendor's jobs.
                let midnight = now.date_naive().and_hms_opt(0, 0, 0)?;
                let mut at = Utc.from_utc_datetime(&midnight);
                while at <= now {
                    at += chrono::Duration::hours(i64::from(h));
                }
                Some(at)
            }
            Schedule::DailyAt(time) => {
                let today = Utc.from_utc_datetime(&now.date_naive().and_time(time));
                Some(if today > now { today } else { today + chrono::Duration::days(1) })
            }
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Manual => f.write_str("manual"),
            Schedule::EveryHours(1) => f.write_str("every 1 hour"),
            Schedule::EveryHours(h) => write!(f, "every {h} hours"),
            Schedule::DailyAt(t) => write!(f, "daily at {:02}:{:02}", t.hour(), t.minute()),
        }
    }
}

impl std::str::FromStr for Schedule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let words: Vec<&str> = s.split_whitespace().collect();
        let allowed = "every 1, 2, 3, 4, 6, 8 or 12 hours, \"daily at HH:MM\" (UTC), or \"manual\"";
        match words.as_slice() {
            ["manual"] | ["off"] => Ok(Schedule::Manual),
            ["every", n, "hour" | "hours"] => match n.parse::<u32>() {
                Ok(h @ (1 | 2 | 3 | 4 | 6 | 8 | 12)) => Ok(Schedule::EveryHours(h)),
                _ => Err(format!("{s:?}: the interval must be {allowed}")),
            },
            ["daily", "at", time] => NaiveTime::parse_from_str(time, "%H:%M")
                .map(Schedule::DailyAt)
                .map_err(|_| format!("{s:?}: the time must be HH:MM, e.g. \"daily at 06:00\"")),
            _ => Err(format!("{s:?} is not a schedule: use {allowed}")),
        }
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(path.display().to_string(), format!("cannot read: {e}")))?;
        let mut config = Config::parse(&text)?;
        config.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(config)
    }

    /// Parses and checks config text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let message = e.message().to_string();
            let at = e
                .span()
                .map(|s| {
                    let line = text[..s.start.min(text.len())].lines().count().max(1);
                    format!("line {line}")
                })
                .unwrap_or_else(|| "config".into());
            ConfigError::new(at, message)
        })?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.connections.is_empty() {
            return Err(ConfigError::new("connections", "no connection is configured"));
        }
        for (name, c) in &self.connections {
            let key = |k: &str| format!("connections.{name}.{k}");
            if name.is_empty() || !name.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
            {
                return Err(ConfigError::new(
                    format!("connections.{name}"),
                    "a connection name uses letters, digits, '-' and '_' only",
                ));
            }
            match c.marketing.as_str() {
                "activecampaign" if c.activecampaign.is_none() => {
                    return Err(ConfigError::new(
                        key("activecampaign"),
                        "missing: marketing is activecampaign",
                    ));
                }
                "activecampaign" => {}
                "mailchimp" | "brevo" => {
                    return Err(ConfigError::new(
                        key("marketing"),
                        format!("{}: this connector is not built yet (activecampaign is)", c.marketing),
                    ));
                }
                other => {
                    return Err(ConfigError::new(
                        key("marketing"),
                        format!("{other:?} is not a marketing platform: use activecampaign"),
                    ));
                }
            }
            if c.objects.is_empty() {
                return Err(ConfigError::new(key("objects"), "list at least one Salesforce object"));
            }
            if let Some(bad) =
                c.objects.iter().find(|o| !["Account", "Lead", "Contact"].contains(&o.as_str()))
            {
                return Err(ConfigError::new(
                    key("objects"),
                    format!("{bad:?}: syncs Account, Lead and Contact"),
                ));
            }
            if !(1..=2000).contains(&c.page_size) {
                return Err(ConfigError::new(key("page_size"), "must be between 1 and 2000"));
            }
            let b = &c.budget;
            if !(b.share > 0.0 && b.share <= 1.0) {
                return Err(ConfigError::new(key("budget.share"), "must be above 0 and at most 1"));
            }
            if !(0.0 < b.resume && b.resume < b.pause && b.warn <= b.pause && b.pause <= 1.0) {
                return Err(ConfigError::new(key("budget"), "needs 0 < resume < pause ≤ 1 and warn ≤ pause"));
            }
            if c.inbound.batch_records == 0 {
                return Err(ConfigError::new(key("inbound.batch_records"), "must be at least 1"));
            }
            let sf = &c.salesforce;
            match (&sf.refresh_token, &sf.username, &sf.password) {
                (Some(_), None, None) | (None, Some(_), Some(_)) => {}
                _ => {
                    return Err(ConfigError::new(
                        key("salesforce"),
                        "set refresh_token, or username and password (not both)",
                    ));
                }
            }
            if let Some(ac) = &c.activecampaign
                && ac.requests_per_second < 0.0
            {
                return Err(ConfigError::new(key("activecampaign.requests_per_second"), "must be ≥ 0"));
            }
        }
        Ok(())
    }

    /// Resolves a plugin path relative to the config file.
    pub fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() { p.to_path_buf() } else { self.base_dir.join(p) }
    }
}

impl ConnectionConfig {
    /// The inbound batching window.
    pub fn inbound_window(&self) -> Duration {
        Duration::from_secs(self.inbound.batch_minutes * 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[connections.acme]
marketing = "activecampaign"
schedule = "every 4 hours"
[connections.acme.salesforce]
login_url = "http://127.0.0.1:1"
client_id = "id"
refresh_token = { env = "SF_TOKEN" }
[connections.acme.activecampaign]
api_url = "http://127.0.0.1:2"
api_token = { file = "/run/secrets/ac" }
"#;

    #[test]
    fn minimal_config_gets_the_seed_defaults() {
        let c = Config::parse(MINIMAL).unwrap();
        let acme = &c.connections["acme"];
        assert_eq!(acme.objects, ["Lead", "Contact"]);
        assert_eq!(acme.schedule, Schedule::EveryHours(4));
        assert_eq!(acme.inbound.batch_records, 100);
        assert_eq!(acme.inbound_window(), Duration::from_secs(600));
        assert_eq!(acme.created_tag.as_deref(), Some("created-from-salesforce"));
        assert_eq!(c.service.admin_addr, "127.0.0.1:8477");
        assert!(acme.activities.tasks, "activities become Tasks by default");
        let off = Config::parse(&format!("{MINIMAL}[connections.acme.activities]\ntasks = false\n")).unwrap();
        assert!(!off.connections["acme"].activities.tasks);
    }

    #[test]
    fn errors_name_the_key() {
        let bad = MINIMAL.replace("every 4 hours", "every 5 hours");
        let e = Config::parse(&bad).unwrap_err();
        assert!(e.message.contains("every 1, 2, 3, 4, 6, 8 or 12 hours"), "{e}");
        let bad = MINIMAL.replace("marketing = \"activecampaign\"", "marketing = \"hubspot\"");
        assert_eq!(Config::parse(&bad).unwrap_err().key, "connections.acme.marketing");
        let bad = MINIMAL
            .replace("refresh_token = { env = \"SF_TOKEN\" }", "refresh_token = \"abc\"\nusername = \"u\"");
        assert_eq!(Config::parse(&bad).unwrap_err().key, "connections.acme.salesforce");
        let bad = MINIMAL.replace("schedule", "shedule");
        let e = Config::parse(&bad).unwrap_err();
        assert!(e.message.contains("shedule"), "{e}");
        assert!(e.key.starts_with("line "), "{e}");
    }

    #[test]
    fn literal_secrets_are_refused_without_echoing_them() {
        let e =
            SecretRef::Literal("hunter2".into()).resolve("connections.acme.salesforce.password").unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
        assert!(e.to_string().contains("env"));
        let e = SecretRef::Env { env: "CRMSYNC_TEST_SURELY_UNSET".into() }.resolve("k").unwrap_err();
        assert_eq!(e.to_string(), "k: environment variable CRMSYNC_TEST_SURELY_UNSET is not set");
    }

    #[test]
    fn schedules_follow_the_seed() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let now = at("2026-11-23T05:30:00Z");
        assert_eq!(Schedule::EveryHours(4).next_after(now), Some(at("2026-11-23T08:00:00Z")));
        assert_eq!(
            Schedule::EveryHours(12).next_after(at("2026-11-23T12:00:00Z")),
            Some(at("2026-11-24T00:00:00Z"))
        );
        let daily: Schedule = "daily at 06:00".parse().unwrap();
        assert_eq!(daily.next_after(now), Some(at("2026-11-23T06:00:00Z")));
        assert_eq!(daily.next_after(at("2026-11-23T06:00:00Z")), Some(at("2026-11-24T06:00:00Z")));
        assert_eq!(Schedule::Manual.next_after(now), None);
        assert_eq!(daily.to_string(), "daily at 06:00");
        assert!("every 5 hours".parse::<Schedule>().is_err());
        assert!("daily at 25:00".parse::<Schedule>().is_err());
    }
}
