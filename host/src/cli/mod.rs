//! The command line. `main` parses [`Cli`] and calls [`run`]; each command
//! group lives in its own module and returns an exit code.
//!
//! Exit codes: 0 success; 1 the command ran and found a failure (a fixture
//! expectation not met); 2 bad input or a refused plugin (the message says
//! what is wrong).

/// `println!` for a command's output: a reader that went away (`crmsync
/// status | head -1`) ends the command quietly instead of a panic.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::write_out(format_args!($($arg)*))
    };
}

pub mod activity;
pub mod config;
pub mod demo;
pub mod plugin;
pub mod preview;
pub mod sandbox;
pub mod scaffold;
pub mod service;
pub mod vendor;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::telemetry::{self, LogFormat};

#[derive(Debug, Parser)]
#[command(
    name = "crmsync",
    version,
    about = "Two-way sync between Salesforce and email-marketing platforms, with rules as WebAssembly plugins"
)]
pub struct Cli {
    /// Where crmsync keeps its state (sled database, installed plugins, compiled cache).
    #[arg(long, global = true, env = "CRMSYNC_DATA_DIR", default_value = ".crmsync")]
    pub data_dir: PathBuf,
    /// The service's config file (TOML). Given before the command
    /// (`crmsync --config x.toml run --once`); `plugin test --config` is the
    /// plugin's own config instead.
    #[arg(long, env = "CRMSYNC_CONFIG", default_value = "crmsync.toml")]
    pub config: PathBuf,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the demo: the default rules through the real plugin runtime.
    Demo(demo::DemoArgs),
    /// Develops, tests, installs and swaps plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Runs the offline vendor sandbox (Salesforce and every marketing platform).
    Sandbox(sandbox::SandboxArgs),
    /// Checks a config file, or prints a commented example.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Runs one sync cycle per connection (`--once`), or previews it (`--dry-run`).
    Run(service::RunArgs),
    /// Per connection: last and next run, counts, errors, API budget.
    Status(service::StatusArgs),
    /// Checks the configured credentials.
    #[command(subcommand)]
    Connect(service::ConnectCommand),
    /// Pauses or resumes a connection's scheduled runs.
    #[command(subcommand)]
    Connection(service::ConnectionCommand),
    /// Runs the schedules and the HTTP admin API until SIGTERM.
    Serve,
    /// A linked record's 20 most recent marketing activities.
    Activities(activity::ActivitiesArgs),
    /// Actions from a Salesforce record: send a campaign, add to an automation.
    #[command(subcommand)]
    Action(activity::ActionCommand),
    /// Prints a shell completion script: `crmsync completions bash > /etc/bash_completion.d/crmsync`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// A marketing platform's own commands, named by the platform:
    /// `crmsync <platform> add-field --connection C --type T --name N [--tag T] [--required]`.
    #[command(external_subcommand)]
    Vendor(Vec<String>),
}

pub fn run(cli: Cli) -> ExitCode {
    // A report's command logs warnings only; `plugin test` shows every line
    // the rule logs, whatever its level.
    let filter = match &cli.command {
        Command::Demo(_) => "warn",
        Command::Plugin(plugin::PluginCommand::Test { .. }) => "info,plugin=trace",
        _ => "info",
    };
    telemetry::init(cli.log_format, filter);
    // The state holds contacts' emails: every file crmsync creates is its
    // owner's only (0600, directories 0700) — but a scaffolded plugin's sources.
    #[cfg(unix)]
    if !matches!(cli.command, Command::Plugin(plugin::PluginCommand::New { .. })) {
        rustix::process::umask(rustix::fs::Mode::from_bits_truncate(0o077));
    }
    match cli.command {
        Command::Demo(args) => demo::run(&cli.data_dir, args),
        Command::Plugin(cmd) => plugin::run(&cli.config, &cli.data_dir, cmd),
        Command::Sandbox(args) => sandbox::run(args),
        Command::Config(cmd) => config::run(&cli.config, cmd),
        Command::Run(args) => service::run(&cli.config, &cli.data_dir, args),
        Command::Status(args) => service::status(&cli.config, &cli.data_dir, args),
        Command::Connect(cmd) => service::connect(&cli.config, &cli.data_dir, cmd),
        Command::Connection(cmd) => service::connection(&cli.config, &cli.data_dir, cmd),
        Command::Serve => service::serve(&cli.config, &cli.data_dir),
        Command::Activities(args) => activity::activities(&cli.config, &cli.data_dir, args),
        Command::Action(cmd) => activity::action(&cli.config, &cli.data_dir, cmd),
        Command::Vendor(args) => vendor::run(&cli.config, &cli.data_dir, args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "crmsync", &mut out);
            out!("{}", String::from_utf8_lossy(&out).trim_end());
            ExitCode::SUCCESS
        }
    }
}

/// Prints an error for the operator and returns exit code 2.
pub(crate) fn fail(message: impl std::fmt::Display) -> ExitCode {
    if telemetry::json() {
        tracing::error!("{message}");
    } else {
        eprintln!("error: {message}");
    }
    ExitCode::from(2)
}

/// Writes one line of output; a closed pipe ends the process quietly (exit
/// 0: what was asked for was read), any other failure with exit code 2.
pub(crate) fn write_out(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let written = stdout.write_fmt(line).and_then(|()| stdout.write_all(b"\n")).and_then(|()| stdout.flush());
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("error: cannot write the output: {e}");
            std::process::exit(2)
        }
    }
}
