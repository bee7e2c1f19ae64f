//! `crmsync-sandbox`: runs the four vendor sandboxes standalone (the same servers
//! `crmsync sandbox` runs) and prints one JSON line with their base URLs and
//! credentials, then serves until stdin closes or Ctrl-C.
//!
//! Options: `--seed FILE`, `--no-rate-limits`, `--port N` (Salesforce on N,
//! ActiveCampaign, Mailchimp and Brevo on the next three; free ports otherwise).
//!
//! Used by the Python conformance tests in `tests/python/`.

use std::io::Read;

use crmsync_sandbox::{Sandbox, SandboxOptions};

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    let mut opts = SandboxOptions::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--no-rate-limits" => opts.rate_limits = false,
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
    let sandbox = Sandbox::start(opts).await.unwrap_or_else(|e| fail(&e.to_string()));
    let info = serde_json::json!({
        "salesforce": sandbox.salesforce_url(),
        "activecampaign": sandbox.activecampaign_url(),
        "mailchimp": sandbox.mailchimp_url(),
        "brevo": sandbox.brevo_url(),
        "credentials": sandbox.credentials,
    });
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
}

fn fail(message: &str) -> ! {
    eprintln!("crmsync-sandbox: {message}");
    std::process::exit(2)
}
