//! Tracing setup: human-readable or JSON lines on stderr, filtered by
//! `RUST_LOG` (default `info`, `warn` for commands whose output is a report,
//! such as `demo`). Colours only on a terminal. Log lines never carry contact
//! data or secrets.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The log format, chosen with `--log-format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// Installs the global subscriber once; later calls do nothing. `default`
/// is the filter when `RUST_LOG` is not set.
pub fn init(format: LogFormat, default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
