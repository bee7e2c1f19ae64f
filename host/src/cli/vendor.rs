//! `crmsync <platform> <command> …`: what a marketing platform offers beyond
//! the sync, for a connection on that platform. The platform is any name of
//! the vendor table; today the one command is `add-field`, which adds a
//! custom field for people (e.g. an audience merge field) through
//! [`crmsync_core::MarketingApi::add_field`].

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use crmsync_connectors::vendors;

use super::fail;
use super::service::{open, runtime};

#[derive(Debug, Parser)]
#[command(no_binary_name = true)]
enum VendorCommand {
    /// Adds a custom field for people on the connection's platform.
    AddField {
        /// The connection (it must sync with this platform).
        #[arg(long)]
        connection: String,
        /// The platform's field type (e.g. text, number, date, phone).
        #[arg(long = "type")]
        kind: String,
        /// The field's name as people see it.
        #[arg(long)]
        name: String,
        /// The tag mappings use (the platform picks one when absent).
        #[arg(long)]
        tag: Option<String>,
        /// Whether every person must have a value.
        #[arg(long)]
        required: bool,
    },
}

/// `args[0]` is the platform, the rest its command.
pub fn run(config: &Path, data_dir: &Path, args: Vec<String>) -> ExitCode {
    let Some((platform, rest)) = args.split_first() else {
        return fail("no command given (see `crmsync --help`)");
    };
    let Some(vendor) = vendors::vendor(platform) else {
        return fail(format!(
            "unknown command {platform:?}: see `crmsync --help` (platforms: {})",
            vendors::names()
        ));
    };
    let command = match VendorCommand::try_parse_from(rest) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(2);
        }
    };
    let VendorCommand::AddField { connection, kind, name, tag, required } = command;
    let result = (|| {
        let rt = runtime()?;
        let _guard = rt.enter();
        let service = open(config, data_dir)?;
        let conn = service.connection(&connection).map_err(|e| e.to_string())?;
        if conn.config.marketing != vendor.name {
            return Err(format!(
                "connection {connection} syncs with {}, not {}",
                conn.config.marketing, vendor.display
            ));
        }
        let tag = rt
            .block_on(conn.marketing.add_field(&name, &kind, tag.as_deref(), required))
            .map_err(|e| e.to_string())?;
        out!("{connection}: {}: added field {name:?} ({kind}) as {tag}", vendor.display);
        Ok::<(), String>(())
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}
