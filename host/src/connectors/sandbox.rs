//! Connectors pointed at the offline vendor sandbox (`crmsync-sandbox`), with
//! its credentials: what the demo, tests and benchmarks use.

use std::time::Duration;

use crmsync_sandbox::Sandbox;

use super::ConnectorError;
use super::activecampaign::{ActiveCampaignConfig, ActiveCampaignConnector};
use super::http::HttpOptions;
use super::salesforce::{SalesforceAuth, SalesforceConfig, SalesforceConnector};
use super::secret::Secret;

/// A Salesforce connector (password grant) and an ActiveCampaign connector
/// (rate limiting left to the sandbox's own switch) for a running sandbox.
pub fn connect(
    sandbox: &Sandbox,
    http: HttpOptions,
) -> Result<(SalesforceConnector, ActiveCampaignConnector), ConnectorError> {
    let c = &sandbox.credentials;
    let auth = SalesforceAuth::Password {
        username: c.salesforce_username.clone(),
        password: Secret::new(c.salesforce_password.clone()),
    };
    let mut sf = SalesforceConfig::new(sandbox.salesforce_url(), c.salesforce_client_id.clone(), auth);
    sf.client_secret = Some(Secret::new(c.salesforce_client_secret.clone()));
    sf.http = http.clone();
    sf.bulk_poll = Duration::from_millis(50);
    let mut ac = ActiveCampaignConfig::new(
        sandbox.activecampaign_url(),
        Secret::new(c.activecampaign_api_token.clone()),
    );
    ac.http = http;
    ac.requests_per_second = None;
    ac.import_poll = Duration::from_millis(20);
    Ok((SalesforceConnector::new(sf)?, ActiveCampaignConnector::new(ac)?))
}
