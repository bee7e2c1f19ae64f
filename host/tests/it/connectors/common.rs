//! Shared test helpers: starting the sandbox, building connectors with fast
//! retry settings, and reading the sandbox admin API.

use std::collections::BTreeMap;
use std::time::Duration;

use crmsync::connectors::http::HttpOptions;
use crmsync::connectors::salesforce::{SalesforceAuth, SalesforceConfig, SalesforceConnector};
use crmsync::connectors::vendors::activecampaign::{ActiveCampaignConfig, ActiveCampaignConnector};
use crmsync::core::Secret;
use crmsync_sandbox::{Sandbox, SandboxOptions};
use serde_json::Value;

pub async fn sandbox(seed: Value, rate_limits: bool) -> Sandbox {
    Sandbox::start(SandboxOptions { seed: Some(seed), rate_limits, ..SandboxOptions::default() })
        .await
        .expect("sandbox starts")
}

/// Short timeouts and backoff, so fault tests run fast.
pub fn fast_http() -> HttpOptions {
    HttpOptions {
        timeout: Duration::from_millis(1500),
        connect_timeout: Duration::from_secs(2),
        max_retries: 6,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
        max_retry_after: Duration::from_secs(5),
        extra_ca: None,
    }
}

pub fn sf_config(sb: &Sandbox) -> SalesforceConfig {
    let c = &sb.credentials;
    let auth = SalesforceAuth::Password {
        username: c.salesforce_username.clone(),
        password: Secret::new(c.salesforce_password.clone()),
    };
    let mut cfg = SalesforceConfig::new(sb.salesforce_url(), c.salesforce_client_id.clone(), auth);
    cfg.client_secret = Some(Secret::new(c.salesforce_client_secret.clone()));
    cfg.http = fast_http();
    cfg.bulk_poll = Duration::from_millis(50);
    cfg
}

pub fn sf(sb: &Sandbox) -> SalesforceConnector {
    SalesforceConnector::new(sf_config(sb)).expect("connector")
}

pub fn ac_config(sb: &Sandbox) -> ActiveCampaignConfig {
    let mut cfg = ActiveCampaignConfig::new(
        sb.activecampaign_url(),
        Secret::new(sb.credentials.activecampaign_api_token.clone()),
    );
    cfg.http = fast_http();
    cfg.requests_per_second = None;
    cfg.import_poll = Duration::from_millis(50);
    cfg
}

pub fn ac(sb: &Sandbox) -> ActiveCampaignConnector {
    ActiveCampaignConnector::new(ac_config(sb)).expect("connector")
}

/// `GET /__sandbox/<path>` of one vendor server.
pub async fn admin(base: &str, path: &str) -> Value {
    reqwest::get(format!("{base}/__sandbox/{path}")).await.expect("admin").json().await.expect("json")
}

pub async fn admin_post(base: &str, path: &str, body: Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}/__sandbox/{path}"))
        .json(&body)
        .send()
        .await
        .expect("admin");
    assert!(r.status().is_success(), "admin {path}: {}", r.status());
}

/// Calls per endpoint template since the last reset.
pub async fn calls(base: &str) -> BTreeMap<String, u64> {
    let v = admin(base, "calls").await;
    serde_json::from_value(v["by_endpoint"].clone()).expect("by_endpoint")
}

/// Calls to one endpoint template, e.g. `POST /services/oauth2/token`.
pub async fn count(base: &str, endpoint: &str) -> u64 {
    calls(base).await.get(endpoint).copied().unwrap_or(0)
}

/// Statuses of logged requests, oldest first.
pub async fn statuses(base: &str) -> Vec<u64> {
    admin(base, "log")
        .await
        .as_array()
        .expect("log")
        .iter()
        .map(|e| e["status"].as_u64().unwrap_or(0))
        .collect()
}
