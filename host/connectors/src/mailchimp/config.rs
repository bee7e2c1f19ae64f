//! The `[connections.NAME.mailchimp]` config section, its checks, how the
//! connector is built from it, and the vendor table's entry.

use std::sync::Arc;
use std::time::Duration;

use crmsync_core::{Capabilities, ConfigError, MarketingApi, SecretRef};
use serde::Deserialize;

use super::{Auth, MailchimpConfig, MailchimpConnector, OnDelete, Status};
use crate::vendors::{BuildContext, FieldKind, Vendor, section};

/// Audience members, and unsubscribes both ways.
pub const CAPABILITIES: Capabilities = Capabilities {
    people: "member",
    accounts: None,
    tags: false,
    activities: true,
    actions: false,
    consent: true,
};

/// This platform's line in [`crate::VENDORS`].
pub const VENDOR_ENTRY: Vendor = Vendor {
    name: "mailchimp",
    display: "Mailchimp",
    capabilities: CAPABILITIES,
    check,
    build,
    sandbox_section,
    sandbox_seed,
    // Audience data hourly, campaign activity daily at midnight (org time).
    default_schedules: (Some("every 1 hour"), Some("daily at 00:00")),
    fixed_fields: &[
        (super::EMAIL, FieldKind::Email),
        ("email", FieldKind::Email),
        (crmsync_core::connector::fields::UNSUBSCRIBE, FieldKind::Boolean),
    ],
};

/// ```toml
/// [connections.acme.mailchimp]
/// api_key = { env = "MAILCHIMP_API_KEY" }   # "<key>-us21": the data centre is its suffix
/// # or: access_token = { file = "/run/secrets/mc-token" } with api_url = "https://us21.api.mailchimp.com"
/// audience = "a1b2c3d4e5"                    # the list id
/// status_if_new = "subscribed"               # or "pending", "unsubscribed", "transactional"
/// on_delete = "archive"                      # or "delete" (permanent), "ignore"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    api_key: Option<SecretRef>,
    access_token: Option<SecretRef>,
    /// The API's root (`/3.0` is added); default from the key's data centre.
    api_url: Option<String>,
    audience: String,
    #[serde(default = "default_status")]
    status_if_new: String,
    #[serde(default = "default_on_delete")]
    on_delete: String,
    /// Requests in flight at once per key (Mailchimp allows 10).
    #[serde(default = "default_concurrency")]
    max_connections: usize,
    /// Email-keyed writes of at least this many members go through batch subscribe.
    #[serde(default = "default_batch_threshold")]
    batch_threshold: usize,
    /// Members written per `POST /batches` operation set (large backfills); 0: never.
    #[serde(default)]
    batch_operations_from: usize,
    /// Pause between `GET /batches/{id}` polls.
    #[serde(default = "default_batch_poll_ms")]
    batch_poll_ms: u64,
}

fn default_status() -> String {
    "subscribed".into()
}
fn default_on_delete() -> String {
    "archive".into()
}
fn default_concurrency() -> usize {
    9
}
fn default_batch_threshold() -> usize {
    10
}
fn default_batch_poll_ms() -> u64 {
    2000
}

/// The data centre of an API key: the text after its last `-` (`…-us21` → `us21`).
pub fn data_centre(key: &str) -> Option<&str> {
    let (_, dc) = key.trim().rsplit_once('-')?;
    (!dc.is_empty() && dc.chars().all(|c| c.is_ascii_alphanumeric())).then_some(dc)
}

fn check(raw: &toml::Value, key: &str) -> Vec<ConfigError> {
    let s: Section = match section(raw, key) {
        Ok(s) => s,
        Err(e) => return vec![e],
    };
    let mut problems = Vec::new();
    match (&s.api_key, &s.access_token) {
        (Some(k), None) => problems.extend(k.check(&format!("{key}.api_key")).err()),
        (None, Some(t)) => {
            problems.extend(t.check(&format!("{key}.access_token")).err());
            if s.api_url.is_none() {
                problems.push(ConfigError::new(
                    format!("{key}.api_url"),
                    "required with access_token: the account's API root, e.g. \"https://us21.api.mailchimp.com\"",
                ));
            }
        }
        (Some(_), Some(_)) => {
            problems.push(ConfigError::new(key, "give api_key or access_token, not both"));
        }
        (None, None) => problems.push(ConfigError::new(
            format!("{key}.api_key"),
            "missing: give api_key (or access_token with api_url)",
        )),
    }
    if let Some(url) = &s.api_url {
        problems.extend(crate::http::check_url(url, &format!("{key}.api_url")).err());
    }
    if s.audience.trim().is_empty() {
        problems.push(ConfigError::new(format!("{key}.audience"), "must name the audience's list id"));
    }
    if Status::new_member(&s.status_if_new).is_none() {
        problems.push(ConfigError::new(
            format!("{key}.status_if_new"),
            format!("{:?} is not one of subscribed, pending, unsubscribed, transactional", s.status_if_new),
        ));
    }
    if OnDelete::parse(&s.on_delete).is_none() {
        problems.push(ConfigError::new(
            format!("{key}.on_delete"),
            format!("{:?} is not one of archive, delete, ignore", s.on_delete),
        ));
    }
    if !(1..=10).contains(&s.max_connections) {
        problems.push(ConfigError::new(
            format!("{key}.max_connections"),
            "must be 1 to 10 (Mailchimp allows 10 simultaneous connections per key)",
        ));
    }
    problems
}

fn build(raw: &toml::Value, key: &str, ctx: &BuildContext) -> Result<Arc<dyn MarketingApi>, ConfigError> {
    let problems = check(raw, key);
    if let Some(first) = problems.into_iter().next() {
        return Err(first);
    }
    let s: Section = section(raw, key)?;
    let (auth, api_url) = match (&s.api_key, &s.access_token) {
        (Some(k), _) => {
            let secret = k.resolve(&format!("{key}.api_key"))?;
            let url = match &s.api_url {
                Some(u) => u.clone(),
                None => {
                    let dc = data_centre(secret.expose()).ok_or_else(|| {
                        ConfigError::new(
                            format!("{key}.api_key"),
                            "the key has no data-centre suffix (e.g. \"-us21\"); give api_url",
                        )
                    })?;
                    format!("https://{dc}.api.mailchimp.com")
                }
            };
            (Auth::ApiKey(secret), url)
        }
        (None, Some(t)) => {
            let url =
                s.api_url.clone().ok_or_else(|| ConfigError::new(format!("{key}.api_url"), "missing"))?;
            (Auth::Token(t.resolve(&format!("{key}.access_token"))?), url)
        }
        (None, None) => return Err(ConfigError::new(format!("{key}.api_key"), "missing")),
    };
    let mut cfg = MailchimpConfig::new(api_url, auth, s.audience.trim());
    cfg.status_if_new = Status::new_member(&s.status_if_new).unwrap_or(Status::Subscribed);
    cfg.on_delete = OnDelete::parse(&s.on_delete).unwrap_or(OnDelete::Archive);
    cfg.max_connections = s.max_connections;
    cfg.batch_threshold = s.batch_threshold.max(1);
    cfg.batch_operations_from = s.batch_operations_from;
    cfg.batch_poll = Duration::from_millis(s.batch_poll_ms);
    cfg.http = ctx.http.clone();
    let connector = MailchimpConnector::new(cfg).map_err(|e| ConfigError::new(key, e.to_string()))?;
    Ok(Arc::new(connector))
}

/// The audience the sandbox section points at (created by [`sandbox_seed`]).
pub const SANDBOX_AUDIENCE: &str = "sandboxaud";

fn sandbox_section(url: &str, key_file: &std::path::Path) -> toml::Value {
    let mut t = toml::Table::new();
    t.insert("api_url".into(), url.into());
    let mut key = toml::Table::new();
    key.insert("file".into(), key_file.display().to_string().into());
    t.insert("api_key".into(), key.into());
    t.insert("audience".into(), SANDBOX_AUDIENCE.into());
    t.insert("batch_poll_ms".into(), 20.into());
    toml::Value::Table(t)
}

/// An audience for the sandbox section, with the merge field the default
/// mapping writes for Leads (`COMPANY`) besides Mailchimp's defaults.
fn sandbox_seed() -> serde_json::Value {
    serde_json::json!({"mailchimp": {"lists": [{
        "id": SANDBOX_AUDIENCE,
        "name": "crmsync sandbox audience",
        "merge_fields": [{"tag": "COMPANY", "name": "Company", "type": "text"}],
    }]}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_integrations_own_schedules_are_the_defaults() {
        // Seed 003: audience data hourly, campaign activity daily at midnight.
        assert_eq!(VENDOR_ENTRY.default_schedules, (Some("every 1 hour"), Some("daily at 00:00")));
    }

    #[test]
    fn data_centre_is_the_suffix() {
        assert_eq!(data_centre("0123456789abcdef0123456789abcdef-us21"), Some("us21"));
        assert_eq!(data_centre("nodash"), None);
        assert_eq!(data_centre("abc-"), None);
        assert_eq!(data_centre("abc-us6/evil"), None);
    }

    #[test]
    fn every_problem_is_named_by_its_key() {
        let raw: toml::Value = toml::from_str(
            r#"audience = ""
status_if_new = "cleaned"
on_delete = "shred"
max_connections = 11
api_key = "literal-us6""#,
        )
        .unwrap();
        let keys: Vec<String> = check(&raw, "c.mailchimp").into_iter().map(|e| e.key).collect();
        for k in ["api_key", "audience", "status_if_new", "on_delete", "max_connections"] {
            assert!(keys.contains(&format!("c.mailchimp.{k}")), "{k} in {keys:?}");
        }
    }
}
