//! The `crmsync` binary: parses the command line and hands it to [`crmsync::cli`].

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = crmsync::cli::Cli::parse();
    crmsync::cli::run(cli)
}
