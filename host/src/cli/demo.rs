//! `crmsync demo`: a real Salesforce → ActiveCampaign sync against the offline
//! vendor sandbox, started in-process.
//!
//! It seeds about 1,000 leads, contacts and accounts, installs the default
//! rules (`selection`, `standard-mapping`) into a fresh data directory, runs
//! the engine's pass with real HTTP over loopback, edits a few records and
//! syncs again, then prints what happened and the API calls per vendor.
//! Then it edits a contact in ActiveCampaign and syncs that back to its Lead.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use crmsync_sandbox::common::{Vendor, VendorApi};
use crmsync_sandbox::{Sandbox, SandboxOptions};
use crmsync_sdk::types::{Record, System};
use serde_json::json;

use crate::connectors::{Connector, Write, WriteKey};
use crate::engine::inbound::to_salesforce;
use crate::engine::store::EngineStore;
use crate::engine::sync::{ConnectionSpec, PassReport, WriteBack, to_marketing};
use crate::engine::{Pass, PluginRules};
use crate::plugins::registry::{Manifest, Registry};
use crate::plugins::{Limits, Role, Runtime, fixtures};
use crate::state::State;

use super::fail;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Where the built default plugins are (scripts/build-plugins.sh puts them there).
    #[arg(long, default_value = "target/plugins")]
    pub plugins: PathBuf,
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

async fn demo(data_dir: &Path, args: &DemoArgs) -> Result<(), String> {
    println!("crmsync demo — Salesforce → ActiveCampaign against the offline vendor sandbox\n");
    let seed = json!({"salesforce": {
        "fields": {
            "Lead": [{"name": "AC_Sync_Status__c", "type": "string", "length": 255}, {"name": "AC_Contact_Id__c", "type": "string", "length": 64}],
            "Contact": [{"name": "AC_Sync_Status__c", "type": "string", "length": 255}, {"name": "AC_Contact_Id__c", "type": "string", "length": 64}],
            "Account": [{"name": "AC_Relation_Status__c", "type": "string", "length": 255}, {"name": "AC_Account_Id__c", "type": "string", "length": 64}]
        },
        "generate": {"Lead": 600, "Contact": 350, "Account": 50},
        "records": {"Lead": [
            {"FirstName": "Ada", "LastName": "Lovelace", "Company": "Analytical Engines", "Email": "ada@example.com", "Phone": "+44 20 7946 0000"},
            {"FirstName": "Ada", "LastName": "Byron", "Company": "Analytical Engines", "Email": "ADA@example.com"},
            {"FirstName": "Alan", "LastName": "Turing", "Company": "Bletchley Park"},
            {"FirstName": "Grace", "LastName": "Hopper", "Company": "Navy", "Email": "grace@example.com", "Phone": "555"}
        ]}
    }});
    let sandbox =
        Sandbox::start(SandboxOptions { seed: Some(seed), rate_limits: false, ..Default::default() })
            .await
            .map_err(|e| e.to_string())?;
    println!(
        "sandbox: Salesforce {}  ActiveCampaign {}",
        sandbox.salesforce_url(),
        sandbox.activecampaign_url()
    );

    // A fresh data directory for each demo run.
    let dir = data_dir.join("demo");
    let _ = std::fs::remove_dir_all(&dir);
    let state = State::open(&dir).map_err(|e| e.to_string())?;
    let plugin_runtime =
        Runtime::new(Some(&state.cache_dir()), Limits::default()).map_err(|e| e.to_string())?;
    let registry = Arc::new(Registry::open(state.clone(), plugin_runtime).map_err(|e| e.to_string())?);
    for (name, role) in [("selection", Role::Selector), ("standard-mapping", Role::Mapper)] {
        let path = args.plugins.join(format!("{name}.wasm"));
        let bytes = std::fs::read(&path)
            .map_err(|e| format!("{}: {e} (run scripts/build-plugins.sh first)", path.display()))?;
        let fixtures_text =
            std::fs::read_to_string(args.plugins.join(format!("{name}.fixtures.jsonl"))).unwrap_or_default();
        let manifest = Manifest {
            name: name.into(),
            version: "1.0.0".into(),
            roles: vec![role],
            fixtures: fixtures::parse(&fixtures_text, None)?,
        };
        let installed = registry.install(&bytes, &manifest).map_err(|e| e.to_string())?;
        registry.activate("demo", role, &installed.id.to_string()).map_err(|e| e.to_string())?;
        println!(
            "rules:   {} installed ({} fixtures passed) and active as the {role}",
            installed.id, installed.fixtures_passed
        );
    }
    let rules = PluginRules::new(
        registry,
        HashMap::from([
            (
                Role::Selector,
                json!({"objects": {"Account": {"mode": "all"}, "Lead": {"mode": "all"}, "Contact": {"mode": "all"}}})
                    .to_string(),
            ),
            (Role::Mapper, json!({"marketing": "activecampaign"}).to_string()),
        ]),
    );
    let (salesforce, activecampaign) =
        crate::connectors::sandbox::connect(&sandbox, Default::default()).map_err(|e| e.to_string())?;
    let store = EngineStore::new(state);
    let spec = ConnectionSpec {
        objects: vec!["Account".into(), "Lead".into(), "Contact".into()],
        write_back: Some(WriteBack {
            account_status_field: Some("AC_Relation_Status__c".into()),
            account_id_field: Some("AC_Account_Id__c".into()),
            ..WriteBack::new("AC_Sync_Status__c", "AC_Contact_Id__c")
        }),
        ..ConnectionSpec::new("demo")
    };
    let pass = |run_id: &str| Pass::new(&spec, &store, &rules, &salesforce, &activecampaign, run_id);

    let started = Instant::now();
    let first = to_marketing(&pass("demo-1")).await.map_err(|e| e.to_string())?;
    print_report("1. initial sync", &first, started.elapsed());

    // Edit two leads in Salesforce: one mapped field, one unmapped field.
    let ids = salesforce
        .find_by_email("Lead", &["gen-lead-1@example.com".into(), "gen-lead-2@example.com".into()])
        .await
        .map_err(|e| e.to_string())?;
    let edit = |email: &str, field: &str, value: &str| Write::Upsert {
        key: WriteKey::Id(ids.get(email).and_then(|v| v.first()).cloned().unwrap_or_default()),
        record: Record::new(System::Salesforce, "Lead").with(field, value),
    };
    salesforce
        .write(
            "Lead",
            vec![
                edit("gen-lead-1@example.com", "LastName", "Lovelace-King"),
                edit("gen-lead-2@example.com", "Status", "Working - Contacted"),
            ],
        )
        .await
        .map_err(|e| e.to_string())?;
    println!("\nedited in Salesforce: one Lead's LastName (mapped), another's Status (not mapped)");
    let dry = to_marketing(&Pass { dry_run: true, ..pass("demo-dry") }).await.map_err(|e| e.to_string())?;
    println!("\n2. dry run — what the next sync would write:");
    for planned in &dry.planned {
        for (field, old, new) in &planned.fields {
            println!("   {} → {}: {field}: {old:?} → {new:?}", planned.sf_id, planned.key);
        }
    }
    let started = Instant::now();
    let second = to_marketing(&pass("demo-2")).await.map_err(|e| e.to_string())?;
    print_report("3. incremental sync", &second, started.elapsed());

    // Edit a contact in ActiveCampaign; the marketing → Salesforce pass carries it to its Lead.
    let ac_ids = activecampaign
        .find_by_email("contact", &["gen-lead-3@example.com".into()])
        .await
        .map_err(|e| e.to_string())?;
    let contact = ac_ids.get("gen-lead-3@example.com").and_then(|v| v.first()).cloned().unwrap_or_default();
    let edit = Record::new(System::ActiveCampaign, "contact").with("firstName", "Augusta");
    activecampaign
        .write("contact", vec![Write::Upsert { key: WriteKey::Id(contact), record: edit }])
        .await
        .map_err(|e| e.to_string())?;
    println!("\nedited in ActiveCampaign: gen-lead-3@example.com's firstName → \"Augusta\"");
    let started = Instant::now();
    let back = to_salesforce(&pass("demo-3")).await.map_err(|e| e.to_string())?;
    print_report("4. ActiveCampaign → Salesforce", &back, started.elapsed());
    let lead_ids = salesforce
        .find_by_email("Lead", &["gen-lead-3@example.com".into()])
        .await
        .map_err(|e| e.to_string())?;
    let lead = salesforce
        .get("Lead", lead_ids.get("gen-lead-3@example.com").map(Vec::as_slice).unwrap_or_default())
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "   the Lead in Salesforce now has FirstName = {:?}",
        lead.first().and_then(|l| l.text("FirstName")).unwrap_or("?")
    );

    println!("\nper-record errors kept for the operator:");
    for e in store.errors("demo").map_err(|e| e.to_string())?.iter().take(5) {
        println!("   {} {}: {} — {}", e.object, e.record, e.code, e.message);
    }
    println!("\nAPI calls per vendor (whole demo):");
    for vendor in [Vendor::Salesforce, Vendor::ActiveCampaign] {
        let telemetry = &sandbox.ctx(vendor).telemetry;
        let mut endpoints: Vec<(String, u64)> = telemetry.by_endpoint().into_iter().collect();
        endpoints.sort_by_key(|e| std::cmp::Reverse(e.1));
        let top: Vec<String> = endpoints.iter().take(4).map(|(e, n)| format!("{e} ×{n}")).collect();
        println!("   {:<15} {:>4} calls  ({})", vendor.name(), telemetry.total(), top.join(", "));
    }
    let ac_state = sandbox.activecampaign.state();
    let contacts = ac_state["contacts"].as_array().map_or(0, Vec::len);
    let accounts = ac_state["accounts"].as_array().map_or(0, Vec::len);
    println!(
        "\nActiveCampaign now holds {contacts} contacts and {accounts} accounts (Salesforce Accounts and Lead companies)."
    );
    println!(
        "For your own connections: write a crmsync.toml (see README.md), then `crmsync run --once --dry-run`,"
    );
    println!("`crmsync run --once`, `crmsync status`, `crmsync serve`.");
    println!(
        "Next: `scripts/test.sh` runs every test; `crmsync sandbox` serves these APIs for your own tools;"
    );
    println!("`crmsync plugin test` runs a rule on your own records. See README.md.");
    sandbox.shutdown().await;
    Ok(())
}

fn print_report(title: &str, r: &PassReport, took: std::time::Duration) {
    println!("\n{title} — {:.2} s", took.as_secs_f64());
    println!(
        "   read {}, created {}, updated {}, unchanged {}, errors {}",
        r.read, r.created, r.updated, r.unchanged, r.errors
    );
    for (reason, n) in &r.skipped {
        println!("   skipped {n}: {reason}");
    }
}
