//! `crmsync-sandbox`: runs the four vendor sandboxes standalone (the same servers
//! `crmsync sandbox` runs) and prints one JSON line with their base URLs and
//! credentials, then serves until stdin closes or Ctrl-C.
//!
//! Options: `--seed FILE`, `--no-rate-limits`, `--port N` (Salesforce on N,
//! ActiveCampaign, Mailchimp and Brevo on the next three; free ports otherwise),
//! `--tls` (serve HTTPS with a certificate made at start; the CA that signed it
//! is written to a file named in the JSON line as `ca_file` and on stderr),
//! `--ca-file PATH` (where `--tls` writes the CA; a file in the temporary
//! directory, removed at exit, by default).
//!
//! Used by the Python conformance tests in `tests/python/`.

use std::io::Read;
use std::path::PathBuf;

use crmsync_sandbox::{Sandbox, SandboxOptions};

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    let mut opts = SandboxOptions::default();
    let mut ca_file: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--no-rate-limits" => opts.rate_limits = false,
            "--tls" => opts.tls = true,
            "--ca-file" => {
                ca_file = Some(args.next().unwrap_or_else(|| fail("--ca-file needs a path")).into());
            }
            "--port" => {
                let first: u16 = args
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_else(|| fail("--port needs a port number"));
                let Some(last) = first.checked_add(3) else { fail("--port must leave room for four ports") };
                opts.ports = Some([first, first + 1, first + 2, last]);
            }
            "--seed" => {
                let path = args.next().unwrap_or_else(|| fail("--seed needs a file"));
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| fail(&format!("cannot read seed {path}: {e}")));
                opts.seed = Some(
                    serde_json::from_str(&text)
                        .unwrap_or_else(|e| fail(&format!("seed {path} is not JSON: {e}"))),
                );
            }
            other => fail(&format!("unknown argument {other}")),
        }
    }
    if ca_file.is_some() && !opts.tls {
        fail("--ca-file needs --tls");
    }
    let sandbox = Sandbox::start(opts).await.unwrap_or_else(|e| fail(&e.to_string()));
    let mut info = serde_json::json!({
        "salesforce": sandbox.salesforce_url(),
        "activecampaign": sandbox.activecampaign_url(),
        "mailchimp": sandbox.mailchimp_url(),
        "brevo": sandbox.brevo_url(),
        "credentials": sandbox.credentials,
    });
    // The CA file we made ourselves (not one the caller named) goes at exit.
    let mut remove_at_exit = None;
    if sandbox.is_tls() {
        let path = match ca_file {
            Some(path) => path,
            None => {
                let path =
                    std::env::temp_dir().join(format!("crmsync-sandbox-{}-ca.pem", std::process::id()));
                remove_at_exit = Some(path.clone());
                path
            }
        };
        if let Err(e) = sandbox.write_ca_pem(&path) {
            fail(&format!("cannot write the CA certificate to {}: {e}", path.display()));
        }
        eprintln!("crmsync-sandbox: serving HTTPS; trust the CA certificate written to {}", path.display());
        info["ca_file"] = serde_json::json!(path);
    }
    println!("{info}");
    // Serve until stdin closes (the parent test process exits) or Ctrl-C.
    let stdin_closed = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    });
    tokio::select! {
        _ = stdin_closed => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    sandbox.shutdown().await;
    if let Some(path) = remove_at_exit {
        let _ = std::fs::remove_file(path);
    }
}

fn fail(message: &str) -> ! {
    eprintln!("crmsync-sandbox: {message}");
    std::process::exit(2)
}
