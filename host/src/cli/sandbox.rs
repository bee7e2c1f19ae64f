//! `crmsync sandbox`: runs the vendor sandboxes on loopback (Salesforce and
//! every marketing platform) and prints their base URLs and credentials,
//! until Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;

use crmsync_sandbox::common::Vendor;
use crmsync_sandbox::{Sandbox, SandboxOptions};

#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// Seed data (JSON): {"salesforce": {...}, "<vendor>": {...}, ...} (see docs/SANDBOX.md).
    #[arg(long)]
    pub seed: Option<PathBuf>,
    /// Turn the vendors' rate limits off.
    #[arg(long)]
    pub no_rate_limits: bool,
    /// First port: Salesforce on it, the marketing platforms on the next ones.
    /// Free ports are picked when absent.
    #[arg(long)]
    pub port: Option<u16>,
    /// Serve HTTPS with a certificate generated at start; its CA is written
    /// to --ca-file (default `sandbox-ca.pem`) for the config's `http.ca_file`.
    #[arg(long)]
    pub tls: bool,
    #[arg(long, default_value = "sandbox-ca.pem")]
    pub ca_file: PathBuf,
}

pub fn run(args: SandboxArgs) -> ExitCode {
    let mut opts =
        SandboxOptions { rate_limits: !args.no_rate_limits, tls: args.tls, ..SandboxOptions::default() };
    if let Some(path) = &args.seed {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => return super::fail(format!("cannot read the seed {}: {e}", path.display())),
        };
        match serde_json::from_str(&text) {
            Ok(seed) => opts.seed = Some(seed),
            Err(e) => return super::fail(format!("the seed {} is not JSON: {e}", path.display())),
        }
    }
    if let Some(p) = args.port {
        if p == 0 {
            return super::fail("--port 0: leave --port out and free ports are picked");
        }
        let Some(last) = p.checked_add(3) else {
            return super::fail("--port must leave room for four ports");
        };
        opts.ports = Some([p, p + 1, p + 2, last]);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return super::fail(format!("cannot start the async runtime: {e}")),
    };
    runtime.block_on(async move {
        let sandbox = match Sandbox::start(opts).await {
            Ok(s) => s,
            Err(e) => return super::fail(e),
        };
        if args.tls {
            if let Err(e) = sandbox.write_ca_pem(&args.ca_file) {
                return super::fail(format!("cannot write the CA to {}: {e}", args.ca_file.display()));
            }
            out!(
                "HTTPS: trust {} (http = {{ ca_file = \"{}\" }})",
                args.ca_file.display(),
                args.ca_file.display()
            );
        }
        let c = &sandbox.credentials;
        out!("crmsync vendor sandbox (offline; admin API under /__sandbox/ on each port)");
        out!(
            "  Salesforce      {}   client_id={} client_secret={} username={} password={} refresh_token={}",
            sandbox.salesforce_url(),
            c.salesforce_client_id,
            c.salesforce_client_secret,
            c.salesforce_username,
            c.salesforce_password,
            c.salesforce_refresh_token
        );
        for vendor in Vendor::ALL {
            if let Some(key) = sandbox.api_key(vendor) {
                out!("  {:<15} {}   API key: {key}", vendor.name(), sandbox.base_url(vendor));
            }
        }
        out!("Ctrl-C stops it.");
        let _ = tokio::signal::ctrl_c().await;
        sandbox.shutdown().await;
        ExitCode::SUCCESS
    })
}
