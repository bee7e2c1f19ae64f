//! The service's configuration: one TOML file, read once at start.
//!
//! Reading is two steps: each section is parsed on its own (so one broken
//! connection does not hide the others' problems), then one pure
//! [`Config::check`] pass reports every problem at once, each naming its key
//! (`connections.acme.schedule: …`). Nothing is installed or started before
//! the whole file passes.
//!
//! Secrets never appear in the file: each is a reference, `{ env = "NAME" }`
//! or `{ file = "path" }`, resolved when the connection is built, and held in
//! a [`Secret`](crmsync_core::Secret) from then on.
//!
//! The marketing platform is named by `marketing = "<vendor>"` and configured
//! in the section of that name, which the vendor's folder reads
//! ([`crmsync_connectors::VENDORS`]); this module never names a vendor.
//!
//! ```toml
//! [service]
//! admin_addr = "127.0.0.1:8477"             # `serve`: the HTTP admin API (loopback by default)
//! admin_token = { env = "CRMSYNC_ADMIN_TOKEN" }
//!
//! [connections.acme]
//! marketing = "<vendor>"                    # a name from the vendor table
//! objects = ["Account", "Lead", "Contact"]   # Accounts first: contacts then find their account
//! schedule = "every 4 hours"                # every 1|2|3|4|6|8|12 hours, "daily at 06:00", "manual"
//!
//! [connections.acme.salesforce]
//! login_url = "https://login.salesforce.com"
//! client_id = "3MVG9…"
//! client_secret = { env = "SF_CLIENT_SECRET" }
//! refresh_token = { env = "SF_REFRESH_TOKEN" }   # or username + password
//!
//! [connections.acme.<vendor>]               # the platform's own section
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, NaiveTime, TimeZone, Timelike, Utc};
use crmsync_connectors::salesforce::SalesforceSection;
use crmsync_connectors::vendors::{self, Vendor};
use crmsync_core::{ConfigError, SecretRef};
use crmsync_engine::{BudgetConfig, DeletePolicy};
use serde::Deserialize;

/// Every problem found in a config, each with its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

impl ConfigErrors {
    /// The first problem (most callers show all of them).
    pub fn first(&self) -> Option<&ConfigError> {
        self.0.first()
    }
}

/// How many connections may use one Salesforce org.
pub const MAX_CONNECTIONS_PER_ORG: usize = 5;

#[derive(Debug, Clone)]
pub struct Config {
    pub service: ServiceConfig,
    pub connections: BTreeMap<String, ConnectionConfig>,
    /// Where the file was read from: relative plugin paths start there.
    pub base_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    #[serde(default = "default_admin_addr")]
    pub admin_addr: String,
    /// Bearer token of the admin API's admin role (every route); without
    /// it the API refuses every call but `/health` and `/ready`.
    pub admin_token: Option<SecretRef>,
    /// Bearer token of the standard role: reads (status, runs, errors,
    /// records, activities, metrics) and record actions — no configuration.
    pub standard_token: Option<SecretRef>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig { admin_addr: default_admin_addr(), admin_token: None, standard_token: None }
    }
}

impl ServiceConfig {
    /// The configured admin API tokens, each with its key.
    pub fn tokens(&self) -> impl Iterator<Item = (&'static str, &SecretRef)> {
        [("service.admin_token", &self.admin_token), ("service.standard_token", &self.standard_token)]
            .into_iter()
            .filter_map(|(k, t)| Some((k, t.as_ref()?)))
    }
}

fn default_admin_addr() -> String {
    "127.0.0.1:8477".into()
}

#[derive(Debug, Clone, Deserialize)]
pub struct ConnectionConfig {
    /// The marketing platform: a name from the vendor table.
    pub marketing: String,
    #[serde(default = "default_objects")]
    pub objects: Vec<String>,
    /// The audience job; unset: the platform's default (see [`Self::schedule`]).
    #[serde(rename = "schedule", default)]
    pub schedule_set: Option<Schedule>,
    #[serde(default = "default_page_size")]
    pub page_size: usize,
    /// Tag added to records created from Salesforce (platforms with tags;
    /// default `created-from-salesforce`, `""` for none).
    pub created_tag: Option<String>,
    /// Tag added to records pushed to Salesforce (default `added-to-salesforce`, `""` for none).
    pub pushed_tag: Option<String>,
    pub write_back: Option<WriteBackConfig>,
    /// Company written on a Lead created from a record that has none
    /// (Salesforce requires it); `""` leaves it to the mapping.
    #[serde(default = "default_lead_company")]
    pub lead_company: String,
    #[serde(default)]
    pub inbound: InboundConfig,
    /// What a deletion on one side does on the other: `ignore` (default),
    /// `unsubscribe` or `delete`, per direction.
    #[serde(default)]
    pub deletes: DeletePolicy,
    #[serde(default)]
    pub budget: BudgetConfig,
    #[serde(default)]
    pub http: HttpSection,
    pub salesforce: SalesforceSection,
    #[serde(default)]
    pub rules: RulesConfig,
    /// Marketing activities → Salesforce Tasks (platforms with an activity feed).
    #[serde(default)]
    pub activities: ActivitiesConfig,
    /// The time zone of the org's dates (an IANA name, `Europe/Paris`);
    /// default: the org's own setting, read from Salesforce.
    pub time_zone: Option<String>,
    /// The Salesforce checkbox that says a person opted out of email
    /// (default `HasOptedOutOfEmail` where the platform has consent; `""`:
    /// consent does not sync). An unsubscribe on either side sets the other;
    /// nothing ever re-subscribes.
    pub opt_out_field: Option<String>,
    /// `false` saves the connection as a draft: configured and checked,
    /// but not run until activated (`crmsync connection activate`, or the
    /// admin API).
    #[serde(default = "yes")]
    pub active: bool,
    /// The marketing platform's own section, and any key not known above.
    #[serde(flatten)]
    pub rest: BTreeMap<String, toml::Value>,
}

/// `activities = { tasks = true }`: write each new marketing activity of a
/// linked record as a Salesforce Task (on by default where the platform has
/// an activity feed).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivitiesConfig {
    pub tasks: Option<bool>,
    /// When the activity pass runs, if not with every job: e.g. "daily at
    /// 00:00", read in the org's time zone (or the connection's `time_zone`).
    pub schedule: Option<Schedule>,
    /// Activity Tasks (only those crmsync wrote) older than this many days
    /// are deleted from Salesforce; unset keeps them.
    pub retention_days: Option<u32>,
}

fn yes() -> bool {
    true
}

fn default_objects() -> Vec<String> {
    vec!["Lead".into(), "Contact".into()]
}
fn default_page_size() -> usize {
    2000
}
fn default_lead_company() -> String {
    "[not provided]".into()
}

/// Timeouts, retries and TLS trust of both connectors' HTTP calls.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// A PEM file of certificates to trust besides the built-in (webpki)
    /// roots, e.g. a corporate proxy's CA.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
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
            ca_file: None,
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
    /// The connectors' HTTP options; `key` is this section's key (errors name `ca_file`).
    pub fn options(&self, key: &str) -> Result<crmsync_connectors::http::HttpOptions, ConfigError> {
        let extra_ca = match &self.ca_file {
            Some(path) => Some(
                crmsync_connectors::http::ExtraCa::load(path)
                    .map_err(|m| ConfigError::new(format!("{key}.ca_file"), m))?,
            ),
            None => None,
        };
        Ok(crmsync_connectors::http::HttpOptions {
            timeout: Duration::from_secs(self.timeout_secs.max(1)),
            max_retries: self.max_retries,
            min_delay: Duration::from_millis(self.min_delay_ms),
            max_delay: Duration::from_millis(self.max_delay_ms.max(self.min_delay_ms)),
            extra_ca,
            ..Default::default()
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteBackConfig {
    /// On Leads and Contacts: "Synced successfully", "Pending next sync" or the error.
    pub status_field: String,
    /// On Leads and Contacts: the marketing record's id.
    pub id_field: String,
    /// On Accounts: the account relation status (same texts).
    #[serde(default)]
    pub account_status_field: Option<String>,
    /// On Accounts: the marketing account's id.
    #[serde(default)]
    pub account_id_field: Option<String>,
}

/// Marketing → Salesforce batching (seed defaults: 100 records or 10 minutes).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundConfig {
    /// A batch leaves as soon as this many records changed…
    #[serde(default = "default_batch_records")]
    pub batch_records: usize,
    /// …or when its oldest change has waited this long.
    #[serde(default = "default_batch_minutes")]
    pub batch_minutes: u64,
    /// How often `serve` reads marketing changes.
    #[serde(default = "default_poll_seconds")]
    pub poll_seconds: u64,
    /// The tag that flags a marketing record for Salesforce (platforms with
    /// tags): crmsync reads it for unlinked records and shows it to the
    /// selector in their `tags` field.
    #[serde(default)]
    pub flag_tag: Option<String>,
}

impl Default for InboundConfig {
    fn default() -> Self {
        InboundConfig {
            batch_records: default_batch_records(),
            batch_minutes: default_batch_minutes(),
            poll_seconds: default_poll_seconds(),
            flag_tag: None,
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

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    pub selector: Option<RuleConfig>,
    pub mapper: Option<RuleConfig>,
    pub resolver: Option<RuleConfig>,
    /// A new selector or mapper version replaces the running one only after
    /// a preview of it (`crmsync plugin preview`, or the admin API's) found
    /// no new errors on this connection, with the config it will run with.
    /// Rollbacks and the first version of a role are exempt.
    #[serde(default)]
    pub require_preview: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// A `.wasm` component installed and activated for the role when no
    /// version is active for the connection yet (later versions come through
    /// `crmsync plugin activate`, the admin API or the watched directory).
    /// Without it the default rule built into crmsync is used.
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
    /// [`Schedule::next_after`] with "daily at" read in `tz` (a time that
    /// does not exist that day, in a DST gap, moves to the next day).
    pub fn next_after_in(&self, now: DateTime<Utc>, tz: chrono_tz::Tz) -> Option<DateTime<Utc>> {
        let Schedule::DailyAt(time) = *self else { return self.next_after(now) };
        let today = now.with_timezone(&tz).date_naive();
        (0..3u64)
            .filter_map(|d| tz.from_local_datetime(&(today + chrono::Days::new(d)).and_time(time)).earliest())
            .map(|t| t.with_timezone(&Utc))
            .find(|t| *t > now)
    }

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

/// Deserializes `value` as `T`, the error naming the key path under `key`.
fn typed<T: serde::de::DeserializeOwned>(value: toml::Value, key: &str) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." || path.is_empty() { key.to_string() } else { format!("{key}.{path}") };
        ConfigError::new(at, e.into_inner().to_string().trim().to_string())
    })
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(path.display().to_string(), format!("cannot read: {e}")))?;
        let mut config = Config::parse(&text)?;
        config.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(config)
    }

    /// Parses and checks config text.
    pub fn parse(text: &str) -> Result<Config, ConfigErrors> {
        let (config, problems) = Config::parse_partial(text)?;
        if problems.is_empty() { Ok(config) } else { Err(ConfigErrors(problems)) }
    }

    /// Parses config text into what could be read (a connection that does
    /// not deserialize is left out) and every problem found; only a syntax
    /// error stops it.
    pub fn parse_partial(text: &str) -> Result<(Config, Vec<ConfigError>), ConfigErrors> {
        let mut root: toml::Table = text.parse::<toml::Table>().map_err(|e| {
            // A syntax error has no key path yet: name the line and the text
            // the parser stopped in (for a duplicate, the repeated key's line).
            let at = e
                .span()
                .map(|s| {
                    let start = s.start.min(text.len());
                    let line = text[..start].matches('\n').count() + 1;
                    let found = text.lines().nth(line - 1).unwrap_or_default().trim();
                    if found.is_empty() || found.len() > 80 {
                        format!("line {line}")
                    } else {
                        format!("line {line} ({found})")
                    }
                })
                .unwrap_or_else(|| "config".into());
            ConfigError::new(at, e.message().trim().to_string())
        })?;
        let mut problems = Vec::new();
        let service = match root.remove("service") {
            None => ServiceConfig::default(),
            Some(v) => typed(v, "service").unwrap_or_else(|e| {
                problems.push(e);
                ServiceConfig::default()
            }),
        };
        let mut connections = BTreeMap::new();
        match root.remove("connections") {
            Some(toml::Value::Table(t)) if !t.is_empty() => {
                for (name, value) in t {
                    match typed::<ConnectionConfig>(value, &format!("connections.{name}")) {
                        Ok(c) => {
                            connections.insert(name, c);
                        }
                        Err(e) => problems.push(e),
                    }
                }
            }
            Some(toml::Value::Table(_)) | None => {
                problems.push(ConfigError::new("connections", "no connection is configured"))
            }
            Some(_) => problems.push(ConfigError::new("connections", "must be a table of connections")),
        }
        for key in root.keys() {
            problems.push(ConfigError::new(key.clone(), "unknown key (expected service or connections)"));
        }
        let config = Config { service, connections, base_dir: PathBuf::new() };
        problems.extend(config.check());
        Ok((config, problems))
    }

    /// Every semantic problem, each naming its key.
    pub fn check(&self) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        for (key, token) in self.service.tokens() {
            problems.extend(token.check(key).err());
        }
        if self.service.admin_addr.parse::<std::net::SocketAddr>().is_err() {
            problems.push(ConfigError::new(
                "service.admin_addr",
                format!("{:?} is not an address (write it as 127.0.0.1:8477)", self.service.admin_addr),
            ));
        }
        for (name, c) in &self.connections {
            let key = format!("connections.{name}");
            if name.is_empty() || !name.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
            {
                problems
                    .push(ConfigError::new(&key, "a connection name uses letters, digits, '-' and '_' only"));
            }
            problems.extend(c.check(&key));
        }
        problems.extend(self.check_orgs());
        problems
    }

    /// One Salesforce org (the same login URL and user, or the same app
    /// with a refresh token) is connected at most
    /// [`MAX_CONNECTIONS_PER_ORG`] times; the connections share its API
    /// allocation, which each reads from Salesforce's own usage figure.
    fn check_orgs(&self) -> Vec<ConfigError> {
        let mut by_org: BTreeMap<(String, String, String), Vec<&str>> = BTreeMap::new();
        for (name, c) in &self.connections {
            let sf = &c.salesforce;
            let org = (
                sf.login_url.trim().trim_end_matches('/').to_ascii_lowercase(),
                sf.client_id.clone(),
                sf.username.clone().unwrap_or_default().to_ascii_lowercase(),
            );
            by_org.entry(org).or_default().push(name);
        }
        let mut problems = Vec::new();
        for names in by_org.values().filter(|n| n.len() > MAX_CONNECTIONS_PER_ORG) {
            for extra in &names[MAX_CONNECTIONS_PER_ORG..] {
                problems.push(ConfigError::new(
                    format!("connections.{extra}.salesforce"),
                    format!(
                        "this Salesforce org is connected {} times ({}); one org may be connected at most {MAX_CONNECTIONS_PER_ORG} times",
                        names.len(),
                        names.join(", ")
                    ),
                ));
            }
        }
        problems
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

    /// The marketing platform's table entry (checked at load).
    pub fn vendor(&self) -> Option<&'static Vendor> {
        vendors::vendor(&self.marketing)
    }

    /// The marketing platform's own section.
    pub fn vendor_section(&self) -> Option<&toml::Value> {
        self.rest.get(&self.marketing)
    }

    /// A tag setting: the default where the platform has tags, `""` for none.
    pub fn tag(&self, set: &Option<String>, default: &str) -> Option<String> {
        let tags = self.vendor().is_some_and(|v| v.capabilities.tags);
        match set.as_deref() {
            None => tags.then(|| default.to_string()),
            Some("") => None,
            Some(t) => Some(t.to_string()),
        }
    }

    /// When the audience job runs: as set, else the platform's own
    /// integration's schedule, else manual.
    pub fn schedule(&self) -> Schedule {
        let default = self.vendor().and_then(|v| v.default_schedules.0).and_then(|s| s.parse().ok());
        self.schedule_set.or(default).unwrap_or_default()
    }

    /// When the activity pass runs apart from the audience job: as set, else
    /// the platform's default; `None`: with every job.
    pub fn activity_schedule(&self) -> Option<Schedule> {
        let default = self.vendor().and_then(|v| v.default_schedules.1).and_then(|s| s.parse().ok());
        self.activities.schedule.or(default)
    }

    /// Whether marketing activities become Salesforce Tasks.
    pub fn activity_tasks(&self) -> bool {
        let feed = self.vendor().is_some_and(|v| v.capabilities.activities);
        feed && self.activities.tasks.unwrap_or(true)
    }

    fn check(&self, key: &str) -> Vec<ConfigError> {
        let k = |s: &str| format!("{key}.{s}");
        let mut problems = Vec::new();
        let Some(vendor) = self.vendor() else {
            problems.push(ConfigError::new(
                k("marketing"),
                format!(
                    "{:?} is not a marketing platform crmsync connects: use {}",
                    self.marketing,
                    vendors::names()
                ),
            ));
            return problems;
        };
        for extra in self.rest.keys().filter(|s| **s != self.marketing) {
            let why = if vendors::vendor(extra).is_some() {
                format!(
                    "this connection's marketing platform is {}; one connection syncs one platform",
                    self.marketing
                )
            } else {
                "unknown key".to_string()
            };
            problems.push(ConfigError::new(k(extra), why));
        }
        match self.vendor_section() {
            Some(section) => problems.extend((vendor.check)(section, &k(vendor.name))),
            None => problems
                .push(ConfigError::new(k(vendor.name), format!("missing: marketing is {}", vendor.name))),
        }
        problems.extend(self.salesforce.check(&k("salesforce")));
        problems.extend(self.check_capabilities(key, vendor));
        if self.objects.is_empty() {
            problems.push(ConfigError::new(k("objects"), "list at least one Salesforce object"));
        }
        if let Some(bad) = self.objects.iter().find(|o| !["Account", "Lead", "Contact"].contains(&o.as_str()))
        {
            problems
                .push(ConfigError::new(k("objects"), format!("{bad:?}: syncs Account, Lead and Contact")));
        }
        if !(1..=2000).contains(&self.page_size) {
            problems.push(ConfigError::new(k("page_size"), "must be between 1 and 2000"));
        }
        for (suffix, message) in self.budget.problems() {
            problems.push(ConfigError::new(k(suffix), message));
        }
        if self.inbound.batch_records == 0 {
            problems.push(ConfigError::new(k("inbound.batch_records"), "must be at least 1"));
        }
        if let Some(tz) = &self.time_zone
            && tz.parse::<chrono_tz::Tz>().is_err()
        {
            problems.push(ConfigError::new(
                k("time_zone"),
                format!("{tz:?} is not a time zone name (e.g. \"Europe/Paris\")"),
            ));
        }
        if self.activities.retention_days == Some(0) {
            problems.push(ConfigError::new(
                k("activities.retention_days"),
                "0 would delete every activity Task as soon as it is written: give a number of days, or leave it out to keep them",
            ));
        }
        problems.extend(self.http.options(&k("http")).err());
        problems
    }

    /// What the platform cannot do, refused by key.
    fn check_capabilities(&self, key: &str, vendor: &Vendor) -> Vec<ConfigError> {
        let caps = &vendor.capabilities;
        let mut problems = Vec::new();
        let cannot = |what: &str, k: &str| {
            ConfigError::new(format!("{key}.{k}"), format!("{} has no {what}", vendor.display))
        };
        if caps.accounts.is_none() && self.objects.iter().any(|o| o == "Account") {
            problems.push(cannot("accounts, so Account cannot sync", "objects"));
        }
        if !caps.tags {
            for (k, set) in [
                ("created_tag", &self.created_tag),
                ("pushed_tag", &self.pushed_tag),
                ("inbound.flag_tag", &self.inbound.flag_tag),
            ] {
                if set.as_deref().is_some_and(|t| !t.is_empty()) {
                    problems.push(cannot("tags", k));
                }
            }
        }
        if !caps.consent && self.opt_out_field.as_deref().is_some_and(|f| !f.is_empty()) {
            problems.push(cannot("unsubscribes to sync", "opt_out_field"));
        }
        if !caps.activities && self.activities.tasks == Some(true) {
            problems.push(cannot("activity feed", "activities.tasks"));
        }
        if !caps.activities && self.activities.schedule.is_some() {
            problems.push(cannot("activity feed", "activities.schedule"));
        }
        if !caps.activities && self.activities.retention_days.is_some() {
            problems.push(cannot("activity feed", "activities.retention_days"));
        }
        if let Some(w) = &self.write_back
            && caps.accounts.is_none()
            && (w.account_status_field.is_some() || w.account_id_field.is_some())
        {
            problems.push(cannot("accounts", "write_back"));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> String {
        let vendor = &vendors::VENDORS[0];
        let section = (vendor.sandbox_section)("http://127.0.0.1:2", Path::new("/run/secrets/m"));
        let mut acme = toml::Table::new();
        acme.insert(vendor.name.into(), section);
        let mut connections = toml::Table::new();
        connections.insert("acme".into(), acme.into());
        let mut root = toml::Table::new();
        root.insert("connections".into(), connections.into());
        format!(
            r#"
[connections.acme]
marketing = "{name}"
schedule = "every 4 hours"
[connections.acme.salesforce]
login_url = "http://127.0.0.1:1"
client_id = "id"
refresh_token = {{ env = "SF_TOKEN" }}
{section}"#,
            name = vendor.name,
            section = toml::to_string(&root).unwrap()
        )
    }

    #[test]
    fn minimal_config_gets_the_seed_defaults() {
        let c = Config::parse(&minimal()).unwrap();
        let acme = &c.connections["acme"];
        assert_eq!(acme.objects, ["Lead", "Contact"]);
        assert_eq!(acme.schedule(), Schedule::EveryHours(4));
        assert_eq!(acme.inbound.batch_records, 100);
        assert_eq!(acme.inbound_window(), Duration::from_secs(600));
        assert_eq!(c.service.admin_addr, "127.0.0.1:8477");
        let tags = acme.vendor().unwrap().capabilities.tags;
        assert_eq!(acme.tag(&acme.created_tag, "created-from-salesforce").is_some(), tags);
        let off =
            Config::parse(&minimal().replace(
                "[connections.acme.salesforce]",
                "created_tag = \"\"\n[connections.acme.salesforce]",
            ))
            .unwrap();
        let acme = &off.connections["acme"];
        assert_eq!(acme.tag(&acme.created_tag, "created-from-salesforce"), None);
    }

    #[test]
    fn every_problem_is_reported_at_once_each_naming_its_key() {
        let bad = minimal()
            .replace("every 4 hours", "every 5 hours")
            .replace("login_url = \"http://127.0.0.1:1\"", "login_url = \"login.salesforce.com\"")
            .replace("refresh_token = { env = \"SF_TOKEN\" }", "refresh_token = { evn = \"SF_TOKEN\" }");
        let e = Config::parse(&bad).unwrap_err();
        let keys: Vec<&str> = e.0.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"connections.acme.schedule"), "{e}");
        assert!(e.to_string().contains("every 1, 2, 3, 4, 6, 8 or 12 hours"), "{e}");
        // The schedule error stops that connection's parse; a second broken connection still reports.
        let two = format!(
            "{bad}\n[connections.other]\nmarketing = \"nope\"\n[connections.other.salesforce]\nlogin_url = \"x\"\nclient_id = \"i\"\nrefresh_token = {{ env = \"T\" }}\n"
        );
        let e = Config::parse(&two).unwrap_err();
        let keys: Vec<&str> = e.0.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"connections.other.marketing"), "{e}");
        let fixed = bad.replace("every 5 hours", "every 4 hours");
        let e = Config::parse(&fixed).unwrap_err();
        let keys: Vec<&str> = e.0.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"connections.acme.salesforce.login_url"), "{e}");
        assert!(keys.contains(&"connections.acme.salesforce.refresh_token"), "{e}");
        assert!(e.to_string().contains("found { evn }"), "{e}");
    }

    #[test]
    fn unknown_keys_and_unknown_platforms_name_themselves() {
        let e = Config::parse(&minimal().replace("schedule", "shedule")).unwrap_err();
        assert_eq!(e.0[0].key, "connections.acme.shedule", "{e}");
        let e = Config::parse(
            &minimal()
                .replace(&format!("marketing = \"{}\"", vendors::VENDORS[0].name), "marketing = \"hubspot\""),
        )
        .unwrap_err();
        assert_eq!(e.0[0].key, "connections.acme.marketing", "{e}");
        assert!(e.0[0].message.contains(vendors::VENDORS[0].name), "{e}");
    }

    #[test]
    fn one_salesforce_org_is_connected_at_most_five_times() {
        let one = minimal();
        let section = one.split_once("[connections.acme]").unwrap().1.to_string();
        let many = |n: usize| -> String {
            (0..n)
                .map(|i| {
                    format!(
                        "[connections.c{i}]{}",
                        section.replace("connections.acme", &format!("connections.c{i}"))
                    )
                })
                .collect()
        };
        assert!(Config::parse(&many(5)).is_ok());
        let e = Config::parse(&many(6)).unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        assert_eq!(e.0[0].key, "connections.c5.salesforce", "{e}");
        assert!(e.0[0].message.contains("at most 5 times"), "{e}");
    }

    #[test]
    fn literal_secrets_are_refused_without_echoing_them() {
        let bad = minimal().replace("refresh_token = { env = \"SF_TOKEN\" }", "refresh_token = \"hunter2\"");
        let e = Config::parse(&bad).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert_eq!(e.0[0].key, "connections.acme.salesforce.refresh_token", "{e}");
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

    #[test]
    fn daily_activity_runs_at_midnight_in_the_org_time_zone() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let midnight: Schedule = "daily at 00:00".parse().unwrap();
        let chicago: chrono_tz::Tz = "America/Chicago".parse().unwrap();
        // 03:00 UTC is 22:00 the day before in Chicago (CDT, -05:00): midnight there is 05:00 UTC.
        let now = at("2024-06-01T03:00:00Z");
        assert_eq!(midnight.next_after_in(now, chicago), Some(at("2024-06-01T05:00:00Z")));
        assert_eq!(
            midnight.next_after_in(at("2024-06-01T05:00:00Z"), chicago),
            Some(at("2024-06-02T05:00:00Z"))
        );
        // Winter: -06:00.
        assert_eq!(
            midnight.next_after_in(at("2024-12-01T12:00:00Z"), chicago),
            Some(at("2024-12-02T06:00:00Z"))
        );
        // Hours are on the UTC grid whatever the zone.
        assert_eq!(Schedule::EveryHours(4).next_after_in(now, chicago), Some(at("2024-06-01T04:00:00Z")));
        assert_eq!(Schedule::Manual.next_after_in(now, chicago), None);
        // The activity schedule is read from the config.
        let text = minimal().replace(
            "[connections.acme.salesforce]",
            "activities = { schedule = \"daily at 00:00\" }\n\n[connections.acme.salesforce]",
        );
        let config = Config::parse(&text).expect("parses");
        assert_eq!(config.connections["acme"].activities.schedule, Some(midnight));
    }

    #[test]
    fn a_connection_without_schedules_gets_its_platforms_own() {
        for vendor in vendors::VENDORS {
            let section = (vendor.sandbox_section)("http://127.0.0.1:2", Path::new("/run/secrets/m"));
            let mut news = toml::Table::new();
            news.insert(vendor.name.into(), section);
            let mut connections = toml::Table::new();
            connections.insert("news".into(), news.into());
            let mut root = toml::Table::new();
            root.insert("connections".into(), connections.into());
            let rest = toml::to_string(&root).unwrap();
            let text = |extra: &str| {
                format!(
                    "[connections.news]\nmarketing = \"{}\"\n{extra}\n[connections.news.salesforce]\n\
                     login_url = \"http://127.0.0.1:1\"\nclient_id = \"id\"\nrefresh_token = {{ env = \"SF_TOKEN\" }}\n{rest}",
                    vendor.name
                )
            };
            let parse =
                |s: Option<&str>| s.map(|s| s.parse::<Schedule>().expect("a default schedule parses"));
            let (job, activity) = vendor.default_schedules;
            let config = Config::parse(&text("")).expect("parses");
            let news = &config.connections["news"];
            assert_eq!(news.schedule(), parse(job).unwrap_or_default(), "{}", vendor.name);
            assert_eq!(news.activity_schedule(), parse(activity), "{}", vendor.name);
            if !vendor.capabilities.activities {
                continue;
            }
            // A connection's own settings win.
            let set = text("schedule = \"every 6 hours\"\nactivities = { schedule = \"daily at 02:00\" }");
            let config = Config::parse(&set).expect("parses");
            let news = &config.connections["news"];
            assert_eq!(news.schedule(), Schedule::EveryHours(6));
            assert_eq!(news.activity_schedule(), Some("daily at 02:00".parse().unwrap()));
        }
    }
}
