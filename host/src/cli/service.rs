//! The service commands: `run --once [--dry-run]`, `status`, `connect test`
//! and `serve`. Each loads the config (`--config`), opens the data directory
//! and builds the connections through [`crate::service::Service`].

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::service::lease::{self, Lease};
use crate::service::{Connection, ConnectionStatus, Service, ServiceError, usage_text};
use crate::telemetry;
use crmsync_engine::ProgressSnapshot;
use crmsync_engine::cycle::{RunOptions, RunRecord};
use indicatif::{ProgressBar, ProgressStyle};

use super::fail;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// One cycle per connection, then exit — what `run` does; the flag is
    /// kept for scripts (`serve` runs cycles on their schedules).
    #[arg(long)]
    pub once: bool,
    /// Print the changes a run would write, per record and field, and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also reconcile: list every Salesforce id and sync the records polling missed.
    #[arg(long)]
    pub reconcile: bool,
    /// Only this connection (default: every configured one).
    #[arg(long)]
    pub connection: Option<String>,
    /// Print the run record as JSON (one document: an array of records when
    /// several connections run).
    #[arg(long)]
    pub json: bool,
    /// With `--dry-run`: how many planned writes to show per direction (the totals are always shown).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Draw no progress bar (one is drawn only when stderr is a terminal, never with `--json`).
    #[arg(long)]
    pub no_progress: bool,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum ConnectionCommand {
    /// Stops a connection's scheduled runs (kept across restarts).
    #[command(alias = "deactivate")]
    Pause { name: String },
    /// Starts a paused or draft connection's scheduled runs again.
    #[command(alias = "activate")]
    Resume { name: String },
}

/// `crmsync connection pause|resume NAME` (also `deactivate|activate`, the
/// words for a draft); through the admin API when `serve` holds the data dir.
pub fn connection(config: &Path, data_dir: &Path, cmd: ConnectionCommand) -> ExitCode {
    let (name, active) = match cmd {
        ConnectionCommand::Resume { name } => (name, true),
        ConnectionCommand::Pause { name } => (name, false),
    };
    let result = (|| {
        let rt = runtime()?;
        let _guard = rt.enter();
        if let Some(lease) = lease::holder(data_dir) {
            let config = load(config)?;
            let path = format!("/connections/{name}/{}", if active { "resume" } else { "pause" });
            let _: serde_json::Value = rt.block_on(remote(&config, &lease, reqwest::Method::POST, &path))?;
            out!("{name}: {}", if active { "running" } else { "paused" });
            return Ok(());
        }
        let service = open(config, data_dir)?;
        service.set_active(&name, active).map_err(|e| e.to_string())?;
        service.state.flush().map_err(|e| e.to_string())?;
        out!("{name}: {}", if active { "running" } else { "paused" });
        Ok::<(), String>(())
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum ConnectCommand {
    /// Checks each connection's credentials against both vendors.
    Test {
        #[arg(long)]
        connection: Option<String>,
    },
}

pub(crate) fn open(config: &Path, data_dir: &Path) -> Result<Service, String> {
    let config = load(config)?;
    if let Some(lease) = lease::holder(data_dir) {
        return Err(format!(
            "{} is held by {lease}: stop it first, or use its admin API (`status`, `run` and `connection pause|resume` go through it); if no such service runs, remove {}",
            data_dir.display(),
            data_dir.join("serve.json").display()
        ));
    }
    Service::open(config, data_dir).map_err(|e| e.to_string())
}

pub(crate) fn load(config: &Path) -> Result<Config, String> {
    Config::load(config).map_err(|e| format!("config {}:\n{e}", config.display()))
}

/// A call to the admin API of the `serve` that holds the data directory.
async fn remote<T: serde::de::DeserializeOwned>(
    config: &Config,
    lease: &Lease,
    method: reqwest::Method,
    path: &str,
) -> Result<T, String> {
    remote_form(config, lease, method, path, None).await
}

/// [`remote`] with a multipart form as the body.
pub(crate) async fn remote_form<T: serde::de::DeserializeOwned>(
    config: &Config,
    lease: &Lease,
    method: reqwest::Method,
    path: &str,
    form: Option<reqwest::multipart::Form>,
) -> Result<T, String> {
    let token = match &config.service.admin_token {
        Some(r) => r.resolve("service.admin_token").map_err(|e| e.to_string())?,
        None => {
            return Err(format!(
                "{lease} holds the data directory, and its admin API needs service.admin_token"
            ));
        }
    };
    let url = format!("{}{path}", lease.admin.trim_end_matches('/'));
    // Long enough for `run?wait=true` on a large sync.
    let client = crmsync_connectors::http::plain_client(std::time::Duration::from_secs(24 * 3600))?;
    let mut request = client.request(method, &url).bearer_auth(token.expose());
    if let Some(form) = form {
        request = request.multipart(form);
    }
    let reply = request.send().await.map_err(|e| {
        format!("{lease} holds the data directory, but its admin API did not answer: {}", e.without_url())
    })?;
    let status = reply.status();
    let body = reply.text().await.map_err(|e| format!("admin API {path}: {e}"))?;
    if !status.is_success() {
        return Err(format!("admin API {path}: {status}: {body}"));
    }
    serde_json::from_str(&body).map_err(|e| format!("admin API {path}: an answer crmsync cannot read ({e})"))
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the async runtime: {e}"))
}

pub fn run(config: &Path, data_dir: &Path, args: RunArgs) -> ExitCode {
    let result = (|| {
        let rt = runtime()?;
        // Built inside the runtime: connectors spawn nothing, but their clients need a reactor.
        let _guard = rt.enter();
        if let Some(lease) = lease::holder(data_dir).filter(|_| !args.dry_run) {
            let config = load(config)?;
            return rt.block_on(run_remote(&config, &lease, &args));
        }
        let service = open(config, data_dir)?;
        let names: Vec<String> = match &args.connection {
            Some(n) => vec![service.connection(n).map_err(|e| e.to_string())?.name.clone()],
            None => service.connections.keys().cloned().collect(),
        };
        let bar = !args.json && !args.no_progress && std::io::stderr().is_terminal();
        let mut failed = false;
        let mut records = Vec::new();
        for name in &names {
            if !service.is_active(name) {
                let note = format!(
                    "{name}: paused (or a draft), not run; `crmsync connection resume {name}` starts it"
                );
                // JSON mode keeps stdout one document.
                if args.json {
                    telemetry::notice(&note)
                } else {
                    out!("{note}")
                }
                continue;
            }
            let conn = service.connections[name].clone();
            let opts = RunOptions {
                dry_run: args.dry_run,
                force: true,
                outbound: true,
                reconcile: args.reconcile,
                activities: true,
                stop: None,
                progress: None,
            };
            let record = rt.block_on(run_cycle(&service, &conn, opts, bar)).map_err(|e| e.to_string())?;
            failed |= record.error.is_some();
            if !args.json {
                print_run(&record, args.limit);
            }
            records.push(record);
        }
        print_json_runs(&args, names.len(), &records);
        service.state.flush().map_err(|e| e.to_string())?;
        Ok::<bool, String>(failed)
    })();
    match result {
        Ok(false) => ExitCode::SUCCESS,
        Ok(true) => ExitCode::from(1),
        Err(e) => fail(e),
    }
}

/// `run --once` while `serve` holds the data directory: the service runs
/// each cycle now (its run-now) and answers with the run record.
async fn run_remote(config: &Config, lease: &Lease, args: &RunArgs) -> Result<bool, String> {
    if args.reconcile {
        return Err(format!(
            "{lease} holds the data directory and reconciles daily on its own; stop it to reconcile now"
        ));
    }
    let names: Vec<String> = match &args.connection {
        Some(n) => vec![n.clone()],
        None => config.connections.keys().cloned().collect(),
    };
    tracing::info!("{lease} holds the data directory: the cycles run there");
    let mut records = Vec::new();
    for name in &names {
        let record: RunRecord =
            remote(config, lease, reqwest::Method::POST, &format!("/connections/{name}/run?wait=true"))
                .await?;
        if !args.json {
            print_run(&record, args.limit);
        }
        records.push(record);
    }
    print_json_runs(args, names.len(), &records);
    Ok(records.iter().any(|r| r.error.is_some()))
}

/// `run --once --json`: one document, the run record or an array of them when several connections ran.
fn print_json_runs(args: &RunArgs, connections: usize, records: &[RunRecord]) {
    if !args.json {
        return;
    }
    let doc = match (connections, records) {
        (1, [record]) => serde_json::to_string_pretty(record),
        _ => serde_json::to_string_pretty(records),
    };
    out!("{}", doc.unwrap_or_default());
}

/// Runs one cycle; with `bar`, a progress bar on stderr follows it page by
/// page (log lines are written above it).
async fn run_cycle(
    service: &Service,
    conn: &Connection,
    opts: RunOptions<'_>,
    bar: bool,
) -> Result<RunRecord, ServiceError> {
    if !bar {
        return service.run(conn, opts).await;
    }
    let pb = ProgressBar::new_spinner();
    telemetry::show_bar(&pb);
    let follow = async {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            if let Some(p) = conn.progress.snapshot() {
                draw(&pb, &conn.name, &p);
            }
        }
    };
    let record = tokio::select! {
        record = service.run(conn, opts) => record,
        () = follow => unreachable!("the bar follows until the run ends"),
    };
    telemetry::hide_bar();
    record
}

/// The bar for a snapshot: a bar with an ETA when the vendor gave a total,
/// else a spinner with the count.
fn draw(pb: &ProgressBar, connection: &str, p: &ProgressSnapshot) {
    let template = match p.total {
        Some(total) => {
            pb.set_length(total);
            "{spinner} {msg} [{bar:30}] {human_pos}/{human_len} ({eta} left)"
        }
        None => "{spinner} {msg} {human_pos} read",
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_position(p.read);
    pb.set_message(bar_message(connection, p));
}

fn bar_message(connection: &str, p: &ProgressSnapshot) -> String {
    let direction = match p.direction.as_str() {
        "to-marketing" => "Salesforce → marketing",
        "to-salesforce" => "marketing → Salesforce",
        _ => return format!("{connection}: starting"),
    };
    format!("{connection}: {direction}, {}: written {}, errors {}", p.object, p.written, p.errors)
}

/// A run, for the operator; a dry run's planned writes up to `limit` per direction, with totals.
pub fn print_run(r: &RunRecord, limit: usize) {
    let took = (r.finished_at - r.started_at).num_milliseconds() as f64 / 1000.0;
    let what = if r.dry_run { "dry run" } else { "run" };
    out!("{} {what} {} — {took:.2} s, {}", r.connection, r.run_id, r.outcome());
    for (label, p) in [("Salesforce → marketing", &r.outbound), ("marketing → Salesforce", &r.inbound)] {
        out!(
            "  {label}: read {}, created {}, updated {}, unchanged {}, errors {}, conflicts {}, relinked {}, deferred {}",
            p.read,
            p.created,
            p.updated,
            p.unchanged,
            p.errors,
            p.conflicts,
            p.relinked,
            p.deferred
        );
        for (reason, n) in &p.skipped {
            out!("    skipped {n}: {reason}");
        }
        for w in p.planned.iter().take(limit) {
            for (field, old, new) in &w.fields {
                out!("    would write {} ({}): {field}: {old:?} → {new:?}", w.sf_id, w.key);
            }
        }
        if r.dry_run {
            let fields: usize = p.planned.iter().map(|w| w.fields.len()).sum();
            let more = p.planned.len().saturating_sub(limit);
            let hidden = if more > 0 { format!(" ({more} more not shown: --limit)") } else { String::new() };
            out!("    would write {} records, {fields} field changes{hidden}", p.planned.len());
        }
        if p.budget_paused {
            out!("    paused by the Salesforce API budget; the rest waits for the next run");
        }
    }
    let calls: Vec<String> = r.calls.iter().map(|(v, n)| format!("{v} {n}")).collect();
    out!("  API calls: {}; Salesforce daily usage {}", calls.join(", "), usage_text(r.api_used, r.api_limit));
    if let Some(e) = &r.error {
        out!("  FAILED: {e}");
    } else if r.outcome() == "stopped" {
        out!("  stopped before the end (shutdown); the next run goes on from there");
    }
}

pub fn status(config: &Path, data_dir: &Path, args: StatusArgs) -> ExitCode {
    let result = (|| {
        let rt = runtime()?;
        let _guard = rt.enter();
        let status: Vec<ConnectionStatus> = match lease::holder(data_dir) {
            Some(lease) => {
                let config = load(config)?;
                rt.block_on(remote(&config, &lease, reqwest::Method::GET, "/connections"))?
            }
            None => open(config, data_dir)?.status().map_err(|e| e.to_string())?,
        };
        if args.json {
            out!("{}", serde_json::to_string_pretty(&status).unwrap_or_default());
            return Ok(());
        }
        for s in status {
            out!("{} (Salesforce ⇄ {})", s.connection, s.marketing);
            out!(
                "  schedule: {}; next run: {}",
                s.schedule,
                s.next_run.map_or("on request".into(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            );
            match &s.last_run {
                Some(r) => {
                    out!(
                        "  last run: {} ({}), {} runs in all",
                        r.finished_at.format("%Y-%m-%d %H:%M:%S UTC"),
                        r.outcome(),
                        s.runs
                    );
                    out!(
                        "  last run counts: out created {} updated {} errors {}; in created {} updated {} errors {}",
                        r.outbound.created,
                        r.outbound.updated,
                        r.outbound.errors,
                        r.inbound.created,
                        r.inbound.updated,
                        r.inbound.errors
                    );
                    out!(
                        "  API budget: Salesforce {} (state {:?})",
                        usage_text(r.api_used, r.api_limit),
                        r.budget
                    );
                }
                None => out!("  last run: never"),
            }
            if !s.active {
                out!("  paused (or a draft): not run until `crmsync connection resume`");
            }
            if let Some(q) = &s.tasks {
                out!(
                    "  monthly tasks: {}/{} ({:.0} %, {}){}",
                    q.used,
                    q.limit,
                    q.used as f64 * 100.0 / q.limit.max(1) as f64,
                    q.month,
                    match q.state {
                        crate::service::QuotaState::Ok => String::new(),
                        crate::service::QuotaState::Warning => " — warning: 80 % used".into(),
                        crate::service::QuotaState::Paused =>
                            format!(" — paused until {}", q.resumes.format("%Y-%m-%d")),
                    }
                );
            }
            out!(
                "  linked records: {}; pending writes: {}; record errors: {}",
                s.links,
                s.pending_writes,
                s.errors
            );
            for e in &s.recent_errors {
                let line = format!(
                    "    {} {} {}: {} — {}",
                    e.at.format("%Y-%m-%d %H:%M"),
                    e.object,
                    e.record,
                    e.code,
                    e.message
                );
                out!("{}", fit(&line, 100));
            }
        }
        Ok::<(), String>(())
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

pub fn connect(config: &Path, data_dir: &Path, cmd: ConnectCommand) -> ExitCode {
    let ConnectCommand::Test { connection } = cmd;
    let result = (|| {
        let rt = runtime()?;
        let _guard = rt.enter();
        let service = open(config, data_dir)?;
        let mut all_ok = true;
        for (name, conn) in &service.connections {
            if connection.as_ref().is_some_and(|c| c != name) {
                continue;
            }
            for (vendor, outcome) in rt.block_on(service.connect_test(conn)) {
                match outcome {
                    Ok(()) => out!("{name}: {vendor}: Connected"),
                    Err(e) => {
                        all_ok = false;
                        out!("{name}: {vendor}: {e}");
                    }
                }
            }
        }
        Ok::<bool, String>(all_ok)
    })();
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => fail(e),
    }
}

pub fn serve(config: &Path, data_dir: &Path) -> ExitCode {
    let result = (|| {
        let rt = runtime()?;
        let _guard = rt.enter();
        let service = Arc::new(open(config, data_dir)?);
        let addr = service.config.service.admin_addr.clone();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind(&addr)
                .await
                .map_err(|e| format!("service.admin_addr: cannot listen on {addr}: {e}"))?;
            let admin = format!("http://{}", listener.local_addr().map(|a| a.to_string()).unwrap_or(addr));
            let n = service.connections.len();
            if telemetry::json() {
                tracing::info!(connections = n, admin = %admin, "crmsync serving; admin API on {admin}");
            } else {
                eprintln!("crmsync serving {n} connection(s); admin API on {admin}");
            }
            // Other commands on this data directory find the service through it.
            let _lease = lease::take(service.state.dir(), admin).map_err(|e| {
                format!("cannot write {}: {e}", service.state.dir().join("serve.json").display())
            })?;
            crate::service::serve::serve(service, listener, crate::service::serve::shutdown_signal())
                .await
                .map_err(|e| e.to_string())
        })
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// `line` cut to `width` characters (an ellipsis marks the cut): status
/// output fits a 100-column terminal; `--json` has every message whole.
fn fit(line: &str, width: usize) -> String {
    if line.chars().count() <= width {
        return line.to_string();
    }
    let mut cut: String = line.chars().take(width - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    #[test]
    fn fit_cuts_long_lines_with_an_ellipsis_and_keeps_short_ones() {
        assert_eq!(super::fit("short", 100), "short");
        let long = "é".repeat(150);
        let cut = super::fit(&long, 100);
        assert_eq!((cut.chars().count(), cut.ends_with('…')), (100, true));
    }
}
