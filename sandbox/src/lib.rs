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
//! [`Sandbox::start`] runs all four, one loopback port each, over plain HTTP or,
//! with [`SandboxOptions::tls`], over HTTPS with a certificate made at start
//! ([`tls`]; a client trusts [`Sandbox::ca_pem`]).
//!
//! This is its own crate (rather than `host/src/sandbox/`) so it builds and tests
//! without the plugin runtime, and so tests and benchmarks can start it in-process.

pub mod activecampaign;
pub mod brevo;
pub mod common;
pub mod mailchimp;
pub mod salesforce;
pub mod tls;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
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
    /// Serve every vendor over HTTPS with a certificate generated at start,
    /// signed by a fresh CA ([`Sandbox::ca_pem`]) and valid for `127.0.0.1`,
    /// `localhost`, `::1` and the bind address. Off by default.
    pub tls: bool,
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
            tls: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("could not bind the {vendor} sandbox on {addr}: {source}")]
    Bind { vendor: &'static str, addr: SocketAddr, source: std::io::Error },
    #[error("bad seed for {vendor}: {message}")]
    Seed { vendor: &'static str, message: String },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// A running sandbox: four HTTP(S) servers sharing one clock.
pub struct Sandbox {
    pub clock: Clock,
    pub credentials: Credentials,
    servers: Vec<common::Server>,
    cert: Option<tls::SandboxCert>,
    pub salesforce: Arc<salesforce::Salesforce>,
    pub activecampaign: Arc<activecampaign::ActiveCampaign>,
    pub mailchimp: Arc<mailchimp::Mailchimp>,
    pub brevo: Arc<brevo::Brevo>,
}

impl Sandbox {
    pub async fn start(opts: SandboxOptions) -> Result<Sandbox, SandboxError> {
        let clock = Clock::default();
        let cert = if opts.tls { Some(tls::SandboxCert::generate(Some(opts.ip))?) } else { None };
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
            let addr = SocketAddr::new(opts.ip, port);
            servers.push(common::Server::start_with(api, ctx, addr, cert.as_ref()).await?);
        }
        Ok(Sandbox {
            clock,
            credentials: opts.credentials,
            servers,
            cert,
            salesforce,
            activecampaign,
            mailchimp,
            brevo,
        })
    }

    fn server(&self, vendor: common::Vendor) -> &common::Server {
        self.servers.iter().find(|s| s.vendor == vendor).expect("every vendor has a server")
    }

    /// Base URL of one vendor's server, e.g. `http://127.0.0.1:41234`
    /// (`https://` when the sandbox serves TLS).
    pub fn base_url(&self, vendor: common::Vendor) -> String {
        self.server(vendor).base_url()
    }

    /// Whether the sandbox serves HTTPS ([`SandboxOptions::tls`]).
    pub fn is_tls(&self) -> bool {
        self.cert.is_some()
    }

    /// The PEM of the CA that signed the sandbox's server certificate, for a
    /// client to trust as an extra root; `None` over plain HTTP.
    pub fn ca_pem(&self) -> Option<&str> {
        self.cert.as_ref().map(tls::SandboxCert::ca_pem)
    }

    /// The whole certificate material (CA, server certificate, names); `None`
    /// over plain HTTP.
    pub fn tls_cert(&self) -> Option<&tls::SandboxCert> {
        self.cert.as_ref()
    }

    /// Writes [`Sandbox::ca_pem`] to `path` (e.g. for `SSL_CERT_FILE`,
    /// `REQUESTS_CA_BUNDLE` or `curl --cacert`). Fails with
    /// [`std::io::ErrorKind::InvalidInput`] when the sandbox is not serving TLS.
    pub fn write_ca_pem(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        let pem = self.ca_pem().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "the sandbox is not serving TLS")
        })?;
        std::fs::write(path, pem)
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
