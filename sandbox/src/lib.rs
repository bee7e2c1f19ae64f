//! The vendor sandbox: offline, in-memory implementations of the parts of the
//! Salesforce, ActiveCampaign, Mailchimp and Brevo APIs that crmsync uses, served
//! over HTTP on loopback — same paths, auth, payloads, status codes, error bodies,
//! paging, batch limits and rate limits as the real services.
//!
//! # Layout
//! - [`common`]: what every vendor server shares — the controllable clock, call
//!   counters and request log, fault injection, the rate-limit switch, and the
//!   admin API under `/__sandbox/` (not part of any vendor API).
//! - [`salesforce`], [`activecampaign`], [`mailchimp`], [`brevo`]: one module per
//!   vendor, each implementing [`common::VendorApi`].
//!
//! [`Sandbox::start`] runs all four, one loopback port each.
//!
//! This is its own crate (rather than `host/src/sandbox/`) so it builds and tests
//! without the plugin runtime, and so tests and benchmarks can start it in-process.

pub mod activecampaign;
pub mod brevo;
pub mod common;
pub mod mailchimp;
pub mod salesforce;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use common::{Clock, VendorApi, VendorCtx};

/// Credentials the sandbox accepts. They are fixed, public test values: the
/// sandbox guards nothing.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Credentials {
    pub salesforce_client_id: String,
    pub salesforce_client_secret: String,
    pub salesforce_username: String,
    pub salesforce_password: String,
    pub salesforce_refresh_token: String,
    pub activecampaign_api_token: String,
    pub mailchimp_api_key: String,
    pub brevo_api_key: String,
}

impl Default for Credentials {
    fn default() -> Self {
        Self {
            salesforce_client_id: "sandbox-client-id".into(),
            salesforce_client_secret: "sandbox-client-secret".into(),
            salesforce_username: "admin@sandbox.example".into(),
            salesforce_password: "sandbox-password".into(),
            salesforce_refresh_token: "sandbox-refresh-token".into(),
            activecampaign_api_token: "sandbox-ac-token".into(),
            mailchimp_api_key: "0123456789abcdef0123456789abcdef-us6".into(),
            brevo_api_key: "xkeysib-sandbox".into(),
        }
    }
}

/// How to start the sandbox.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// Address to bind; loopback unless told otherwise.
    pub ip: IpAddr,
    /// Fixed ports (salesforce, activecampaign, mailchimp, brevo); `None` picks free ones.
    pub ports: Option<[u16; 4]>,
    /// Enforce the vendors' real rate limits (can be switched at run time too).
    pub rate_limits: bool,
    /// Salesforce daily API request allocation.
    pub salesforce_daily_limit: u64,
    /// Lifetime of a Salesforce access token.
    pub salesforce_token_ttl: Duration,
    /// Optional seed data: `{"salesforce": {...}, "activecampaign": {...}, ...}`.
    pub seed: Option<serde_json::Value>,
    pub credentials: Credentials,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ports: None,
            rate_limits: true,
            salesforce_daily_limit: 100_000,
            salesforce_token_ttl: Duration::from_secs(2 * 3600),
            seed: None,
            credentials: Credentials::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("could not bind the {vendor} sandbox on {addr}: {source}")]
    Bind { vendor: &'static str, addr: SocketAddr, source: std::io::Error },
    #[error("bad seed for {vendor}: {message}")]
    Seed { vendor: &'static str, message: String },
}

/// A running sandbox: four HTTP servers sharing one clock.
pub struct Sandbox {
    pub clock: Clock,
    pub credentials: Credentials,
    servers: Vec<common::Server>,
    pub salesforce: Arc<salesforce::Salesforce>,
    pub activecampaign: Arc<activecampaign::ActiveCampaign>,
    pub mailchimp: Arc<mailchimp::Mailchimp>,
    pub brevo: Arc<brevo::Brevo>,
}

impl Sandbox {
    pub async fn start(opts: SandboxOptions) -> Result<Sandbox, SandboxError> {
        let clock = Clock::default();
        let ports = opts.ports.unwrap_or([0; 4]);
        let ctx = |vendor| VendorCtx::new(vendor, clock.clone(), opts.rate_limits);

        let sf_ctx = ctx(common::Vendor::Salesforce);
        let salesforce = Arc::new(salesforce::Salesforce::new(sf_ctx.clone(), &opts));
        let ac_ctx = ctx(common::Vendor::ActiveCampaign);
        let activecampaign = Arc::new(activecampaign::ActiveCampaign::new(ac_ctx.clone(), &opts));
        let mc_ctx = ctx(common::Vendor::Mailchimp);
        let mailchimp = Arc::new(mailchimp::Mailchimp::new(mc_ctx.clone(), &opts));
        let br_ctx = ctx(common::Vendor::Brevo);
        let brevo = Arc::new(brevo::Brevo::new(br_ctx.clone(), &opts));

        if let Some(seed) = &opts.seed {
            let apis: [&dyn VendorApi; 4] = [&*salesforce, &*activecampaign, &*mailchimp, &*brevo];
            for api in apis {
                if let Some(part) = seed.get(api.vendor().key()) {
                    api.seed(part.clone())
                        .map_err(|message| SandboxError::Seed { vendor: api.vendor().name(), message })?;
                }
            }
        }

        let mut servers = Vec::with_capacity(4);
        let entries: [(Arc<dyn VendorApi>, VendorCtx, u16); 4] = [
            (salesforce.clone(), sf_ctx, ports[0]),
            (activecampaign.clone(), ac_ctx, ports[1]),
            (mailchimp.clone(), mc_ctx, ports[2]),
            (brevo.clone(), br_ctx, ports[3]),
        ];
        for (api, ctx, port) in entries {
            servers.push(common::Server::start(api, ctx, SocketAddr::new(opts.ip, port)).await?);
        }
        Ok(Sandbox {
            clock,
            credentials: opts.credentials,
            servers,
            salesforce,
            activecampaign,
            mailchimp,
            brevo,
        })
    }

    fn server(&self, vendor: common::Vendor) -> &common::Server {
        self.servers.iter().find(|s| s.vendor == vendor).expect("every vendor has a server")
    }

    /// Base URL of one vendor's server, e.g. `http://127.0.0.1:41234`.
    pub fn base_url(&self, vendor: common::Vendor) -> String {
        format!("http://{}", self.server(vendor).addr)
    }

    pub fn salesforce_url(&self) -> String {
        self.base_url(common::Vendor::Salesforce)
    }
    pub fn activecampaign_url(&self) -> String {
        self.base_url(common::Vendor::ActiveCampaign)
    }
    pub fn mailchimp_url(&self) -> String {
        self.base_url(common::Vendor::Mailchimp)
    }
    pub fn brevo_url(&self) -> String {
        self.base_url(common::Vendor::Brevo)
    }

    /// The API key or token the sandbox accepts for a marketing vendor.
    pub fn api_key(&self, vendor: common::Vendor) -> Option<&str> {
        let c = &self.credentials;
        match vendor {
            common::Vendor::Salesforce => None,
            common::Vendor::ActiveCampaign => Some(&c.activecampaign_api_token),
            common::Vendor::Mailchimp => Some(&c.mailchimp_api_key),
            common::Vendor::Brevo => Some(&c.brevo_api_key),
        }
    }

    /// The admin context (counters, faults, rate-limit switch) of one vendor.
    pub fn ctx(&self, vendor: common::Vendor) -> &VendorCtx {
        &self.server(vendor).ctx
    }

    /// Stops every server and waits for them to finish.
    pub async fn shutdown(self) {
        for server in self.servers {
            server.shutdown().await;
        }
    }
}
