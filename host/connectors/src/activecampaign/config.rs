//! The `[connections.NAME.activecampaign]` config section, its checks, how
//! the connector is built from it, and the vendor table's entry.

use std::sync::Arc;
use std::time::Duration;

use crmsync_core::{Capabilities, ConfigError, MarketingApi, SecretRef};
use serde::Deserialize;

use super::{ActiveCampaignConfig, ActiveCampaignConnector};
use crate::vendors::{BuildContext, FieldKind, Vendor, section};

/// What the connector can do beyond contacts.
pub const CAPABILITIES: Capabilities = Capabilities {
    people: "contact",
    accounts: Some("account"),
    tags: true,
    activities: true,
    actions: true,
    consent: true,
};

/// This platform's line in [`crate::VENDORS`].
pub const VENDOR_ENTRY: Vendor = Vendor {
    name: "activecampaign",
    display: "ActiveCampaign",
    capabilities: CAPABILITIES,
    check,
    build,
    sandbox_section,
    sandbox_seed: crate::vendors::no_sandbox_seed,
    default_schedules: (None, None),
    fixed_fields: &[
        ("email", FieldKind::Email),
        ("firstName", FieldKind::Text),
        ("lastName", FieldKind::Text),
        ("phone", FieldKind::Text),
        (crmsync_core::connector::fields::TAGS, FieldKind::Tags),
        (crmsync_core::connector::fields::ACCOUNT, FieldKind::Text),
        (crmsync_core::connector::fields::UNSUBSCRIBE, FieldKind::Boolean),
    ],
};

/// ```toml
/// [connections.acme.activecampaign]
/// api_url = "https://acme.api-us1.com"
/// api_token = { file = "/run/secrets/ac-token" }
/// requests_per_second = 5     # the account's limit; 0 turns pacing off
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    api_url: String,
    api_token: SecretRef,
    /// The account's rate limit; `0` turns client-side pacing off (the sandbox with limits off).
    #[serde(default = "default_rate")]
    requests_per_second: f64,
    /// Pause between `/import/info` polls of a bulk import.
    #[serde(default = "default_import_poll_ms")]
    import_poll_ms: u64,
}

fn default_rate() -> f64 {
    5.0
}
fn default_import_poll_ms() -> u64 {
    1000
}

fn check(raw: &toml::Value, key: &str) -> Vec<ConfigError> {
    let s: Section = match section(raw, key) {
        Ok(s) => s,
        Err(e) => return vec![e],
    };
    let mut problems = Vec::new();
    problems.extend(crate::http::check_url(&s.api_url, &format!("{key}.api_url")).err());
    problems.extend(s.api_token.check(&format!("{key}.api_token")).err());
    if s.requests_per_second.is_nan() || s.requests_per_second < 0.0 {
        problems.push(ConfigError::new(format!("{key}.requests_per_second"), "must be ≥ 0"));
    }
    problems
}

fn build(raw: &toml::Value, key: &str, ctx: &BuildContext) -> Result<Arc<dyn MarketingApi>, ConfigError> {
    let s: Section = section(raw, key)?;
    let mut cfg =
        ActiveCampaignConfig::new(s.api_url.clone(), s.api_token.resolve(&format!("{key}.api_token"))?);
    cfg.requests_per_second = (s.requests_per_second > 0.0).then_some(s.requests_per_second);
    cfg.import_poll = Duration::from_millis(s.import_poll_ms);
    cfg.http = ctx.http.clone();
    let connector = ActiveCampaignConnector::new(cfg).map_err(|e| ConfigError::new(key, e.to_string()))?;
    Ok(Arc::new(connector))
}

fn sandbox_section(url: &str, key_file: &std::path::Path) -> toml::Value {
    let mut t = toml::Table::new();
    t.insert("api_url".into(), url.into());
    let mut token = toml::Table::new();
    token.insert("file".into(), key_file.display().to_string().into());
    t.insert("api_token".into(), token.into());
    t.insert("requests_per_second".into(), 0.0.into());
    t.insert("import_poll_ms".into(), 20.into());
    toml::Value::Table(t)
}
