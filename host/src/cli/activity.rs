//! `crmsync activities` (a linked record's recent marketing activities) and
//! `crmsync action …` (send a campaign to a record, add it to an automation,
//! list what is offered). The work is in [`crmsync_engine::activity`].
//!
//! Exit codes: 0 done; 1 the action or read was refused (unlinked record,
//! unlabelled or unknown campaign/automation, inactive automation, one-off
//! campaign, a vendor error); 2 bad input (config, unknown connection).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use super::fail;
use crate::config::Config;
use crate::service::{Connection, Service};
use crmsync_engine::activity::{self, ActionDone, ActivityError, RecordRef};

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["record", "email"]))]
pub struct ActivitiesArgs {
    /// The Salesforce Lead or Contact id.
    #[arg(long)]
    pub record: Option<String>,
    /// Or the linked record's email.
    #[arg(long)]
    pub email: Option<String>,
    /// The connection (needed when more than one is configured).
    #[arg(long)]
    pub connection: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum ActionCommand {
    /// Lists the campaigns and automations labelled Salesforce.
    List {
        #[arg(long)]
        connection: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Adds a linked record's contact to an automation labelled Salesforce.
    AddToAutomation {
        /// The Salesforce Lead or Contact id.
        #[arg(long)]
        record: String,
        /// The automation's id or name.
        #[arg(long)]
        automation: String,
        #[arg(long)]
        connection: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Sends a campaign labelled Salesforce to a linked record's contact
    /// (through the automation the campaign belongs to).
    SendCampaign {
        #[arg(long)]
        record: String,
        /// The campaign's id or name.
        #[arg(long)]
        campaign: String,
        #[arg(long)]
        connection: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// How a command ended.
enum Failure {
    /// Bad input: exit 2.
    Input(String),
    /// Refused or failed: exit 1.
    Refused(ActivityError),
}

impl From<ActivityError> for Failure {
    fn from(e: ActivityError) -> Self {
        Failure::Refused(e)
    }
}

fn finish(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input(e)) => fail(e),
        Err(Failure::Refused(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Runs `f` with the service and the chosen connection inside a runtime.
fn with_connection<F>(config: &Path, data_dir: &Path, connection: Option<&str>, f: F) -> ExitCode
where
    F: AsyncFnOnce(&Service, &Arc<Connection>) -> Result<(), Failure>,
{
    let result = (|| {
        let rt = tokio::runtime::Runtime::new()
            .map_err(|e| Failure::Input(format!("cannot start the async runtime: {e}")))?;
        let _guard = rt.enter();
        let config =
            Config::load(config).map_err(|e| Failure::Input(format!("config {}: {e}", config.display())))?;
        let service = Service::open(config, data_dir).map_err(|e| Failure::Input(e.to_string()))?;
        let conn = match connection {
            Some(name) => service.connection(name).map_err(|e| Failure::Input(e.to_string()))?.clone(),
            None if service.connections.len() == 1 => service
                .connections
                .values()
                .next()
                .cloned()
                .ok_or_else(|| Failure::Input("no connection".into()))?,
            None => {
                let names: Vec<&str> = service.connections.keys().map(String::as_str).collect();
                return Err(Failure::Input(format!(
                    "choose a connection with --connection ({})",
                    names.join(", ")
                )));
            }
        };
        rt.block_on(f(&service, &conn))
    })();
    finish(result)
}

fn print_json<T: serde::Serialize>(value: &T) {
    out!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

pub fn activities(config: &Path, data_dir: &Path, args: ActivitiesArgs) -> ExitCode {
    let record = match (args.record, args.email) {
        (Some(id), _) => RecordRef::SalesforceId(id),
        (None, Some(email)) => RecordRef::Email(email),
        (None, None) => return fail("give --record or --email"),
    };
    let json = args.json;
    with_connection(config, data_dir, args.connection.as_deref(), async move |service, conn| {
        let found = activity::recent(conn.marketing(&service.store), &record).await?;
        if json {
            print_json(&found);
            return Ok(());
        }
        out!(
            "{} {} ({} contact {}): {} most recent activities",
            found.sf_object,
            found.sf_id,
            conn.marketing.vendor(),
            found.contact,
            found.activities.len()
        );
        for a in &found.activities {
            out!("  {}  {}", a.at.format("%Y-%m-%d %H:%M:%S UTC"), a.summary);
        }
        Ok(())
    })
}

fn print_done(done: &ActionDone, json: bool) {
    if json {
        print_json(done);
        return;
    }
    match &done.campaign {
        Some(c) => out!(
            "campaign {:?} (id {}) sent to {} (contact {}) through automation {:?} (id {})",
            c.name,
            c.id,
            done.sf_id,
            done.contact,
            done.automation.name,
            done.automation.id
        ),
        None => out!(
            "{} (contact {}) added to automation {:?} (id {})",
            done.sf_id,
            done.contact,
            done.automation.name,
            done.automation.id
        ),
    }
}

pub fn action(config: &Path, data_dir: &Path, cmd: ActionCommand) -> ExitCode {
    match cmd {
        ActionCommand::List { connection, json } => {
            with_connection(config, data_dir, connection.as_deref(), async move |service, conn| {
                let offered = activity::offered(conn.marketing(&service.store)).await?;
                if json {
                    print_json(&offered);
                    return Ok(());
                }
                out!("campaigns labelled {}:", activity::LABEL);
                for c in &offered.campaigns {
                    let how = match &c.automation {
                        Some(a) => format!("sent through automation {a}"),
                        None => "one-off list campaign: cannot be sent to one contact".into(),
                    };
                    out!("  {}  {} ({how})", c.id, c.name);
                }
                out!("automations labelled {}:", activity::LABEL);
                for a in &offered.automations {
                    out!("  {}  {}{}", a.id, a.name, if a.active { "" } else { " (inactive)" });
                }
                Ok(())
            })
        }
        ActionCommand::AddToAutomation { record, automation, connection, json } => {
            with_connection(config, data_dir, connection.as_deref(), async move |service, conn| {
                let done =
                    activity::add_to_automation(conn.marketing(&service.store), &record, &automation).await?;
                print_done(&done, json);
                Ok(())
            })
        }
        ActionCommand::SendCampaign { record, campaign, connection, json } => {
            with_connection(config, data_dir, connection.as_deref(), async move |service, conn| {
                let done =
                    activity::send_campaign(conn.marketing(&service.store), &record, &campaign).await?;
                print_done(&done, json);
                Ok(())
            })
        }
    }
}
