//! `crmsync plugin preview FILE.wasm --connection C --role R [--records N]
//! [--config FILE] [--json]`: the shadow preview (see
//! [`crate::service::preview`]) — through the running service's admin API
//! when `serve` holds the data directory. Exit code 1 when the candidate
//! fails on a record the active version handles, so a script can gate the
//! activation on it: `crmsync plugin preview … && crmsync plugin activate …`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crmsync_runtime::Role;

use super::fail;
use super::service::{load, open, remote_form, runtime};
use crate::service::lease;
use crate::service::preview::PreviewReport;

#[derive(Debug, clap::Args)]
pub struct PreviewArgs {
    /// The candidate version (.wasm).
    pub file: PathBuf,
    #[arg(long)]
    pub connection: String,
    #[arg(long, value_parser = |s: &str| s.parse::<Role>())]
    pub role: Role,
    /// How many of the connection's most recent records to run on.
    #[arg(long, default_value_t = 200)]
    pub records: usize,
    /// The candidate's config (a JSON file); default: the role's current config.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Differences shown (the totals count them all).
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// The report as one JSON document.
    #[arg(long)]
    pub json: bool,
}

pub fn preview(config: &Path, data_dir: &Path, args: PreviewArgs) -> ExitCode {
    let result = (|| {
        let bytes = std::fs::read(&args.file).map_err(|e| format!("{}: {e}", args.file.display()))?;
        let candidate_config = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
                serde_json::from_str::<serde_json::Value>(&text)
                    .map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
                Some(text)
            }
            None => None,
        };
        let name = args.file.file_stem().and_then(|s| s.to_str()).unwrap_or("candidate").to_string();
        let rt = runtime()?;
        let _guard = rt.enter();
        if let Some(lease) = lease::holder(data_dir) {
            let cfg = load(config)?;
            let mut form = reqwest::multipart::Form::new()
                .part("component", reqwest::multipart::Part::bytes(bytes).file_name(format!("{name}.wasm")))
                .text("name", name)
                .text("version", "preview");
            if let Some(c) = candidate_config {
                form = form.text("config", c);
            }
            let path = format!(
                "/connections/{}/plugins/{}/preview?records={}",
                args.connection, args.role, args.records
            );
            return rt.block_on(remote_form(&cfg, &lease, reqwest::Method::POST, &path, Some(form)));
        }
        let service = open(config, data_dir)?;
        let conn = service.connection(&args.connection).map_err(|e| e.to_string())?.clone();
        let candidate =
            service.registry.runtime().load(&bytes, &name, "preview").map_err(|e| e.to_string())?;
        rt.block_on(service.preview(&conn, args.role, &candidate, candidate_config, args.records))
            .map_err(|e| e.to_string())
    })();
    let report: PreviewReport = match result {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if args.json {
        out!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        print(&report, args.limit);
    }
    if report.safe() { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

fn print(r: &PreviewReport, limit: usize) {
    out!(
        "preview: {} beside {} ({} of connection {}), {} recent records; nothing written",
        r.candidate,
        r.active,
        r.role,
        r.connection,
        r.records
    );
    out!(
        "  {} records change: {} new errors, {} fixed, {} with other output",
        r.changed,
        r.new_errors,
        r.fixed_errors,
        r.changed - r.new_errors - r.fixed_errors
    );
    if !r.fields.is_empty() {
        let fields: Vec<String> = r.fields.iter().map(|(f, n)| format!("{f} ({n})")).collect();
        out!("  fields touched: {}", fields.join(", "));
    }
    for d in r.differences.iter().take(limit) {
        let head = format!("  {} {} {}", d.kind, d.object, d.sf_id);
        match &d.error {
            Some(e) => out!("{head}: {}", e.lines().next().unwrap_or(e)),
            None => {
                out!("{head}");
                for f in &d.fields {
                    out!("      {}: {} → {}", f.field, f.active, f.candidate);
                }
            }
        }
    }
    if r.differences.len() > limit {
        out!("  ({} more not shown: --limit)", r.differences.len() - limit);
    }
}
