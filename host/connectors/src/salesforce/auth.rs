//! Salesforce OAuth: the refresh-token flow (production) or the password
//! grant (sandbox, developer orgs), one shared session per connector, and a
//! single-flight refresh when a call meets `INVALID_SESSION_ID`.

use std::sync::Arc;

use tokio::sync::Mutex;

use super::{SalesforceConnector, VENDOR};
use crate::ConnectorError;
use crmsync_core::Secret;

/// How the connector obtains access tokens.
#[derive(Debug, Clone)]
pub enum SalesforceAuth {
    /// `grant_type=refresh_token` (connected app, production).
    RefreshToken { refresh_token: Secret },
    /// `grant_type=password` (the sandbox; password may end with the security token).
    Password { username: String, password: Secret },
}

/// An access token and where to use it.
#[derive(Debug)]
pub struct Session {
    pub token: Secret,
    pub instance_url: String,
    generation: u64,
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    access_token: String,
    instance_url: String,
}

/// The current session; logins and refreshes happen one at a time.
#[derive(Default)]
pub struct Sessions {
    current: Mutex<Option<Arc<Session>>>,
}

impl Sessions {
    /// The current session, logging in first if there is none.
    pub async fn get(&self, sf: &SalesforceConnector) -> Result<Arc<Session>, ConnectorError> {
        let mut current = self.current.lock().await;
        if let Some(s) = current.as_ref() {
            return Ok(s.clone());
        }
        let s = Arc::new(login(sf, 1).await?);
        *current = Some(s.clone());
        Ok(s)
    }

    /// A new session to replace `stale`, unless another call already replaced it.
    pub async fn refresh(
        &self,
        sf: &SalesforceConnector,
        stale: &Session,
    ) -> Result<Arc<Session>, ConnectorError> {
        let mut current = self.current.lock().await;
        if let Some(s) = current.as_ref()
            && s.generation != stale.generation
        {
            return Ok(s.clone());
        }
        let s = Arc::new(login(sf, stale.generation + 1).await?);
        *current = Some(s.clone());
        Ok(s)
    }
}

async fn login(sf: &SalesforceConnector, generation: u64) -> Result<Session, ConnectorError> {
    let cfg = &sf.cfg;
    let url = format!("{}/services/oauth2/token", cfg.login_url.trim_end_matches('/'));
    let reply = sf
        .http
        .send("oauth_token", |c| {
            let mut form: Vec<(&str, &str)> = vec![("client_id", cfg.client_id.as_str())];
            if let Some(secret) = &cfg.client_secret {
                form.push(("client_secret", secret.expose()));
            }
            match &cfg.auth {
                SalesforceAuth::RefreshToken { refresh_token } => {
                    form.push(("grant_type", "refresh_token"));
                    form.push(("refresh_token", refresh_token.expose()));
                }
                SalesforceAuth::Password { username, password } => {
                    form.push(("grant_type", "password"));
                    form.push(("username", username.as_str()));
                    form.push(("password", password.expose()));
                }
            }
            c.post(url.as_str()).form(&form)
        })
        .await?;
    let t: TokenResponse = reply.json(VENDOR)?;
    tracing::debug!(vendor = VENDOR, generation, "logged in");
    Ok(Session {
        token: Secret::new(t.access_token),
        instance_url: t.instance_url.trim_end_matches('/').to_string(),
        generation,
    })
}
