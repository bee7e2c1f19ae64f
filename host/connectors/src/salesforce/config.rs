//! The `[connections.NAME.salesforce]` config section, its checks, and how
//! the connector is built from it.
//!
//! ```toml
//! [connections.acme.salesforce]
//! login_url = "https://login.salesforce.com"
//! client_id = "3MVG9…"
//! client_secret = { env = "SF_CLIENT_SECRET" }
//! refresh_token = { env = "SF_REFRESH_TOKEN" }   # or username + password
//! ```

use std::time::Duration;

use crmsync_core::{ConfigError, SecretRef};
use serde::Deserialize;

use super::{SalesforceAuth, SalesforceConfig, SalesforceConnector};
use crate::http::HttpOptions;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesforceSection {
    pub login_url: String,
    pub client_id: String,
    pub client_secret: Option<SecretRef>,
    pub refresh_token: Option<SecretRef>,
    pub username: Option<String>,
    pub password: Option<SecretRef>,
    /// A group of at least this many writes of one kind goes through Bulk API 2.0.
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

impl SalesforceSection {
    /// Every problem, each naming its key (`key` is the section's key).
    pub fn check(&self, key: &str) -> Vec<ConfigError> {
        let k = |s: &str| format!("{key}.{s}");
        let mut problems = Vec::new();
        problems.extend(crate::http::check_url(&self.login_url, &k("login_url")).err());
        match (&self.refresh_token, &self.username, &self.password) {
            (Some(token), None, None) => problems.extend(token.check(&k("refresh_token")).err()),
            (None, Some(_), Some(password)) => problems.extend(password.check(&k("password")).err()),
            _ => {
                problems.push(ConfigError::new(key, "set refresh_token, or username and password (not both)"))
            }
        }
        if let Some(secret) = &self.client_secret {
            problems.extend(secret.check(&k("client_secret")).err());
        }
        if self.client_id.trim().is_empty() {
            problems.push(ConfigError::new(k("client_id"), "is empty"));
        }
        problems
    }

    /// The connector (secrets are read here).
    pub fn build(&self, key: &str, http: HttpOptions) -> Result<SalesforceConnector, ConfigError> {
        let k = |s: &str| format!("{key}.{s}");
        let auth = match (&self.refresh_token, &self.username, &self.password) {
            (Some(token), _, _) => {
                SalesforceAuth::RefreshToken { refresh_token: token.resolve(&k("refresh_token"))? }
            }
            (None, Some(username), Some(password)) => SalesforceAuth::Password {
                username: username.clone(),
                password: password.resolve(&k("password"))?,
            },
            _ => return Err(ConfigError::new(key, "set refresh_token, or username and password")),
        };
        let mut cfg = SalesforceConfig::new(self.login_url.clone(), self.client_id.clone(), auth);
        cfg.client_secret =
            self.client_secret.as_ref().map(|s| s.resolve(&k("client_secret"))).transpose()?;
        cfg.bulk_threshold = self.bulk_threshold;
        cfg.bulk_poll = Duration::from_millis(self.bulk_poll_ms);
        cfg.http = http;
        SalesforceConnector::new(cfg).map_err(|e| ConfigError::new(key, e.to_string()))
    }
}
