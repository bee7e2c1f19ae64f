//! `crmsync config check [FILE|-]` and `crmsync config example`: a config is
//! checked whole — every problem at once, each naming its key — before
//! anything is installed or started, and a commented example that passes the
//! check is one command away.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::{Config, ConfigErrors};
use crate::service::Service;

use super::fail;

/// The commented example config (`config example`); `config check` passes it.
pub const EXAMPLE: &str = include_str!("example.toml");

#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Checks a config file and reports every problem, each with its key
    /// path; exit code 0 when the service would start with it, 2 when not.
    Check {
        /// The file to check (`-`: standard input); default the `--config` file.
        file: Option<PathBuf>,
        /// Check the form of each secret reference but do not read it, nor
        /// what needs it (the connectors' sections are then checked for form only).
        #[arg(long)]
        skip_secrets: bool,
    },
    /// Prints a commented config that passes `config check`.
    Example,
}

pub fn run(config: &Path, cmd: ConfigCommand) -> ExitCode {
    match cmd {
        ConfigCommand::Example => {
            out!("{}", EXAMPLE.trim_end());
            ExitCode::SUCCESS
        }
        ConfigCommand::Check { file, skip_secrets } => {
            let file = file.unwrap_or_else(|| config.to_path_buf());
            match check(&file, !skip_secrets) {
                Ok(summary) => {
                    out!("{summary}");
                    ExitCode::SUCCESS
                }
                Err(problems) => {
                    let n = problems.0.len();
                    let unset = problems.0.iter().any(|p| p.to_string().contains("is not set"));
                    let hint = if unset {
                        "\n(a secret is read where the service runs; --skip-secrets checks the rest without them)"
                    } else {
                        ""
                    };
                    fail(format!(
                        "{} has {n} problem{}:\n{}{hint}",
                        name(&file),
                        if n == 1 { "" } else { "s" },
                        indent(&problems.to_string())
                    ))
                }
            }
        }
    }
}

/// Everything `Service::open` would refuse, without opening the state.
fn check(file: &Path, secrets: bool) -> Result<String, ConfigErrors> {
    let read = |e: std::io::Error| crmsync_core::ConfigError::new(name(file), format!("cannot read: {e}"));
    let (text, base_dir) = if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(read)?;
        (text, std::env::current_dir().unwrap_or_default())
    } else {
        (
            std::fs::read_to_string(file).map_err(read)?,
            file.parent().map(Path::to_path_buf).unwrap_or_default(),
        )
    };
    let (mut config, mut problems) = Config::parse_partial(&text)?;
    config.base_dir = base_dir;
    // Building the connections resolves secrets and reads the sections
    // through: only worth it (and only new) once the form is right.
    let build = secrets && problems.is_empty();
    // The connectors' HTTP clients are built as they would be in a run.
    let rt = tokio::runtime::Runtime::new()
        .map_err(|e| crmsync_core::ConfigError::new("-", format!("cannot start the async runtime: {e}")))?;
    let _guard = rt.enter();
    problems.extend(Service::check(&config, build));
    if build {
        for (key, token) in config.service.tokens() {
            problems.extend(token.resolve(key).err());
        }
    }
    if !problems.is_empty() {
        return Err(ConfigErrors(problems));
    }
    let connections: Vec<String> = config
        .connections
        .iter()
        .map(|(name, c)| {
            let platform = c.vendor().map_or(c.marketing.as_str(), |v| v.display);
            format!("{name} (Salesforce ⇄ {platform}{})", if c.active { "" } else { ", draft" })
        })
        .collect();
    let secrets = if secrets { "" } else { "; secrets not read (--skip-secrets)" };
    Ok(format!(
        "{}: ok — {} connection(s): {}{secrets}",
        name(file),
        connections.len(),
        connections.join(", ")
    ))
}

fn name(file: &Path) -> String {
    if file == Path::new("-") { "standard input".into() } else { file.display().to_string() }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
}
