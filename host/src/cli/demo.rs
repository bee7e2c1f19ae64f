//! `crmsync demo`: a real sync between Salesforce and a marketing platform
//! against the offline vendor sandbox, started in-process. Works from any
//! directory with the binary alone: the default rules are built in.
//!
//! It seeds about 1,000 leads, contacts and accounts, writes a config for one
//! connection into the demo's data directory (secrets in files beside it),
//! and runs the service's own cycle over loopback HTTP: an initial sync, a
//! dry run of an edit, an incremental sync where an unmapped edit writes
//! nothing, and an edit on the marketing side flowing back to its Lead. It
//! prints what happened and the API calls per vendor.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use crmsync_connectors::vendors::{self, Vendor};
use crmsync_core::{Connector, Direction, Record, System, Write, WriteKey};
use crmsync_engine::PassReport;
use crmsync_engine::cycle::{RunOptions, RunRecord};
use crmsync_sandbox::common::Vendor as SandboxVendor;
use crmsync_sandbox::{Sandbox, SandboxOptions};
use serde_json::json;

use super::fail;
use crate::config::Config;
use crate::service::{Connection, Service};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The marketing platform to sync with (default: the first in the vendor table).
    #[arg(long)]
    pub marketing: Option<String>,
}

pub fn run(data_dir: &Path, args: DemoArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(e),
    };
    match runtime.block_on(demo(data_dir, &args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

const STATUS: &str = "Marketing_Sync_Status__c";
const REMOTE_ID: &str = "Marketing_Id__c";
const ACCOUNT_STATUS: &str = "Marketing_Relation_Status__c";
const ACCOUNT_ID: &str = "Marketing_Account_Id__c";

fn seed() -> serde_json::Value {
    let person = json!([{"name": STATUS, "type": "string", "length": 255}, {"name": REMOTE_ID, "type": "string", "length": 64}]);
    let account = json!([{"name": ACCOUNT_STATUS, "type": "string", "length": 255}, {"name": ACCOUNT_ID, "type": "string", "length": 64}]);
    json!({"salesforce": {
        "fields": {"Lead": person, "Contact": person, "Account": account},
        "generate": {"Lead": 600, "Contact": 350, "Account": 50},
        "records": {"Lead": [
            {"FirstName": "Ada", "LastName": "Lovelace", "Company": "Analytical Engines", "Email": "ada@example.com", "Phone": "+44 20 7946 0000"},
            {"FirstName": "Ada", "LastName": "Byron", "Company": "Analytical Engines", "Email": "ADA@example.com"},
            {"FirstName": "Alan", "LastName": "Turing", "Company": "Bletchley Park"},
            {"FirstName": "Grace", "LastName": "Hopper", "Company": "Navy", "Email": "grace@example.com", "Phone": "555"}
        ]}
    }})
}

/// The demo connection's config: the sandbox's URLs, secrets in files.
fn config(sandbox: &Sandbox, vendor: &Vendor, dir: &Path) -> Result<Config, String> {
    let write = |name: &str, value: &str| -> Result<String, String> {
        let path = dir.join(name);
        std::fs::write(&path, value).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path.display().to_string())
    };
    let sandbox_vendor = SandboxVendor::from_key(vendor.name)
        .ok_or_else(|| format!("the sandbox has no {}", vendor.display))?;
    let key = sandbox
        .api_key(sandbox_vendor)
        .ok_or_else(|| format!("the sandbox has no key for {}", vendor.display))?;
    let key_file = dir.join("marketing-key");
    write("marketing-key", key)?;
    let c = &sandbox.credentials;
    let caps = &vendor.capabilities;
    let mut objects = vec!["Lead", "Contact"];
    let mut write_back = json!({"status_field": STATUS, "id_field": REMOTE_ID});
    if caps.accounts.is_some() {
        objects.insert(0, "Account");
        write_back["account_status_field"] = json!(ACCOUNT_STATUS);
        write_back["account_id_field"] = json!(ACCOUNT_ID);
    }
    let section = (vendor.sandbox_section)(&sandbox.base_url(sandbox_vendor), &key_file);
    let connection = json!({
        "marketing": vendor.name,
        "objects": objects,
        "write_back": write_back,
        "salesforce": {
            "login_url": sandbox.salesforce_url(),
            "client_id": c.salesforce_client_id,
            "client_secret": {"file": write("sf-client-secret", &c.salesforce_client_secret)?},
            "username": c.salesforce_username,
            "password": {"file": write("sf-password", &c.salesforce_password)?},
            "bulk_poll_ms": 50,
        },
    });
    let mut table: toml::Table = toml::Table::try_from(connection).map_err(|e| e.to_string())?;
    table.insert(vendor.name.to_string(), section);
    let mut connections = toml::Table::new();
    connections.insert("demo".into(), table.into());
    let mut root = toml::Table::new();
    root.insert("connections".into(), connections.into());
    let text = toml::to_string(&root).map_err(|e| e.to_string())?;
    let path = dir.join("crmsync.toml");
    std::fs::write(&path, &text).map_err(|e| format!("{}: {e}", path.display()))?;
    Config::load(&path).map_err(|e| format!("the demo's config:\n{e}"))
}

async fn demo(data_dir: &Path, args: &DemoArgs) -> Result<(), String> {
    let vendor = match &args.marketing {
        Some(name) => {
            vendors::vendor(name).ok_or_else(|| format!("--marketing {name}: use {}", vendors::names()))?
        }
        None => &vendors::VENDORS[0],
    };
    out!("crmsync demo — Salesforce ⇄ {} against the offline vendor sandbox\n", vendor.display);
    // Whatever the vendor's sandbox section needs (e.g. its audience) is seeded too.
    let mut seed = seed();
    if let (Some(all), serde_json::Value::Object(extra)) = (seed.as_object_mut(), (vendor.sandbox_seed)()) {
        all.extend(extra);
    }
    let sandbox =
        Sandbox::start(SandboxOptions { seed: Some(seed), rate_limits: false, ..Default::default() })
            .await
            .map_err(|e| e.to_string())?;
    // A fresh data directory for each demo run.
    let dir = data_dir.join("demo");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let config = config(&sandbox, vendor, &dir)?;
    let service = Service::open(config, &dir.join("state")).map_err(|e| e.to_string())?;
    let conn = service.connection("demo").map_err(|e| e.to_string())?.clone();
    let marketing_url = SandboxVendor::from_key(vendor.name).map(|v| sandbox.base_url(v)).unwrap_or_default();
    out!("sandbox: Salesforce {}  {} {marketing_url}", sandbox.salesforce_url(), conn.marketing.vendor());
    for (role, plugin) in service.registry.active().map_err(|e| e.to_string())? {
        out!("rules:   {plugin} active as the {} (built into crmsync)", role.1);
    }
    let cycle = |dry_run: bool| RunOptions {
        dry_run,
        force: true,
        outbound: true,
        activities: true,
        ..Default::default()
    };

    let first = timed(&service, &conn, cycle(false)).await?;
    print_report("1. initial sync, Salesforce → marketing", &first.0.outbound, first.1);

    edit_leads(&conn).await?;
    out!("\nedited in Salesforce: one Lead's LastName (mapped), another's Status (not mapped)");
    let dry = service.run(&conn, cycle(true)).await.map_err(|e| e.to_string())?;
    out!("\n2. dry run — what the next sync would write:");
    for planned in &dry.outbound.planned {
        for (field, old, new) in &planned.fields {
            out!("   {} → {}: {field}: {old:?} → {new:?}", planned.sf_id, planned.key);
        }
    }
    let second = timed(&service, &conn, cycle(false)).await?;
    print_report("3. incremental sync", &second.0.outbound, second.1);

    let email = "gen-lead-3@example.com";
    edit_marketing(&conn, email, "Augusta").await?;
    out!("\nedited in {}: {email}'s first name → \"Augusta\"", vendor.display);
    let back = timed(&service, &conn, cycle(false)).await?;
    print_report(&format!("4. {} → Salesforce", vendor.display), &back.0.inbound, back.1);
    let lead = lead_by_email(&conn, email).await?;
    out!(
        "   the Lead in Salesforce now has FirstName = {:?}",
        lead.as_ref().and_then(|l| l.text("FirstName")).unwrap_or("?")
    );

    out!("\nper-record errors kept for the operator:");
    for e in crmsync_core::Store::errors(&service.store, "demo").map_err(|e| e.to_string())?.iter().take(5) {
        out!("   {} {}: {} — {}", e.object, e.record, e.code, e.message);
    }
    print_calls(&sandbox, vendor);
    out!("\nFor your own connections: write a crmsync.toml (see README.md), then");
    out!("`crmsync run --once --dry-run`, `crmsync run --once`, `crmsync status`, `crmsync serve`.");
    sandbox.shutdown().await;
    Ok(())
}

async fn timed(
    service: &Service,
    conn: &Connection,
    opts: RunOptions<'_>,
) -> Result<(RunRecord, std::time::Duration), String> {
    let started = Instant::now();
    let record = service.run(conn, opts).await.map_err(|e| e.to_string())?;
    if let Some(e) = &record.error {
        return Err(format!("the run failed: {e}"));
    }
    Ok((record, started.elapsed()))
}

/// One Lead's LastName (mapped) and another's Status (not mapped).
async fn edit_leads(conn: &Connection) -> Result<(), String> {
    let ids = conn
        .salesforce
        .find_by_email("Lead", &["gen-lead-1@example.com".into(), "gen-lead-2@example.com".into()])
        .await
        .map_err(|e| e.to_string())?;
    let edit = |email: &str, field: &str, value: &str| Write::Upsert {
        key: WriteKey::Id(ids.get(email).and_then(|v| v.first()).cloned().unwrap_or_default()),
        record: Record::new(System::Salesforce, "Lead").with(field, value),
    };
    let writes = vec![
        edit("gen-lead-1@example.com", "LastName", "Lovelace-King"),
        edit("gen-lead-2@example.com", "Status", "Working - Contacted"),
    ];
    conn.salesforce.write("Lead", writes).await.map_err(|e| e.to_string())?;
    Ok(())
}

/// Sets a person's first name on the marketing side, under whatever field
/// name the connection's mapping gives Salesforce's `FirstName` there.
async fn edit_marketing(conn: &Connection, email: &str, first_name: &str) -> Result<(), String> {
    let people = &conn.spec.marketing_object;
    let found = conn.marketing.find_by_email(people, &[email.into()]).await.map_err(|e| e.to_string())?;
    let id =
        found.get(email).and_then(|v| v.first()).cloned().ok_or_else(|| format!("{email} was not synced"))?;
    let ctx = crmsync_core::Context {
        connection: conn.name.clone(),
        direction: Direction::ToMarketing,
        run_id: "demo-edit".into(),
        target: Some(people.clone()),
        config: (),
    };
    let probe = Record::new(System::Salesforce, "Lead")
        .with("Email", email)
        .with("FirstName", first_name)
        .with("LastName", "x");
    let mapped = crmsync_core::Rules::map(&conn.rules, &ctx, &[probe]).results.pop().and_then(Result::ok);
    let mapped = mapped.ok_or("the mapping refused the edit")?;
    let field = mapped
        .fields
        .iter()
        .find(|(_, v)| v.as_text() == Some(first_name))
        .map(|(k, _)| k.clone())
        .ok_or("the mapping has no first-name field")?;
    let edit = Record::new(conn.marketing.system(), people.clone()).with(field, first_name);
    conn.marketing
        .write(people, vec![Write::Upsert { key: WriteKey::Id(id), record: edit }])
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

async fn lead_by_email(conn: &Connection, email: &str) -> Result<Option<Record>, String> {
    let ids = conn.salesforce.find_by_email("Lead", &[email.into()]).await.map_err(|e| e.to_string())?;
    let leads = conn
        .salesforce
        .get("Lead", ids.get(email).map(Vec::as_slice).unwrap_or_default())
        .await
        .map_err(|e| e.to_string())?;
    Ok(leads.into_iter().next())
}

fn print_calls(sandbox: &Sandbox, vendor: &Vendor) {
    out!("\nAPI calls per vendor (whole demo):");
    let marketing = SandboxVendor::from_key(vendor.name).unwrap_or(SandboxVendor::Salesforce);
    for v in [SandboxVendor::Salesforce, marketing] {
        let telemetry = &sandbox.ctx(v).telemetry;
        let mut endpoints: Vec<(String, u64)> = telemetry.by_endpoint().into_iter().collect();
        endpoints.sort_by_key(|e| std::cmp::Reverse(e.1));
        let top: Vec<String> = endpoints.iter().take(4).map(|(e, n)| format!("{e} ×{n}")).collect();
        out!("   {:<15} {:>4} calls  ({})", v.name(), telemetry.total(), top.join(", "));
    }
}

fn print_report(title: &str, r: &PassReport, took: std::time::Duration) {
    out!("\n{title} — {:.2} s", took.as_secs_f64());
    out!(
        "   read {}, created {}, updated {}, unchanged {}, errors {}",
        r.read,
        r.created,
        r.updated,
        r.unchanged,
        r.errors
    );
    for (reason, n) in &r.skipped {
        out!("   skipped {n}: {reason}");
    }
}
