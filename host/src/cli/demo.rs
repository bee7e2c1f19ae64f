//! `crmsync demo`: runs the default rules — `selection`, `standard-mapping`,
//! `field-policy-resolver` — through the real plugin runtime over sample
//! Salesforce records and prints what each rule decided.
//!
//! The sync engine has not landed yet, so this demo syncs nothing and says so.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use crmsync_sdk::types::{Conflict, Context, Direction, Record, Selection, System, Value};

use crate::plugins::{Limits, Plugin, Runtime};

use super::fail;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Where the built default plugins are (scripts/build-plugins.sh puts them there).
    #[arg(long, default_value = "target/plugins")]
    pub plugins: PathBuf,
}

pub fn run(data_dir: &Path, args: DemoArgs) -> ExitCode {
    let runtime = match Runtime::new(Some(&data_dir.join("cache")), Limits::default()) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let load = |name: &str| {
        let path = args.plugins.join(format!("{name}.wasm"));
        let started = Instant::now();
        let plugin = runtime
            .load_file(&path, name, "demo")
            .map_err(|e| format!("{e} (run scripts/build-plugins.sh first)"))?;
        println!(
            "  loaded {name:<22} {:>7.1} ms  roles: {:?}",
            started.elapsed().as_secs_f64() * 1e3,
            plugin.roles()
        );
        Ok::<Plugin, String>(plugin)
    };
    println!("crmsync demo — the rules runtime");
    println!("NOTE: the sync engine has not landed yet. This demo runs the default rules through the real");
    println!("WebAssembly runtime on sample records. Nothing is read from or written to any vendor.\n");
    let (selection, mapping, resolver) =
        match (load("selection"), load("standard-mapping"), load("field-policy-resolver")) {
            (Ok(s), Ok(m), Ok(r)) => (s, m, r),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return fail(e),
        };
    let saved = Utc::now() - Duration::days(7);
    let records = sample_records(saved);
    let ctx = |config: serde_json::Value| Context {
        connection: "demo".into(),
        direction: Direction::ToMarketing,
        run_id: "demo".into(),
        target: None,
        config: config.to_string(),
    };

    println!(
        "\n1. selection — Leads created since the setting was saved, Contacts flagged \"Pending next sync\""
    );
    let select_config = serde_json::json!({
        "objects": {
            "Lead": {"mode": "created-after", "since": saved},
            "Contact": {"mode": "flagged"}
        }
    });
    let verdicts = selection.select(&ctx(select_config), &records);
    let mut chosen = Vec::new();
    for (record, verdict) in records.iter().zip(verdicts) {
        let label = record.label();
        match verdict {
            Ok(Selection::Sync) => {
                println!("   sync  {label}");
                chosen.push(record.clone());
            }
            Ok(other) => println!("   skip  {label}: {}", describe(&other)),
            Err(e) => println!("   error {label}: {e}"),
        }
    }

    println!("\n2. standard-mapping — to ActiveCampaign, with a custom currency field");
    let map_config = serde_json::json!({
        "marketing": "activecampaign",
        "fields": [{"salesforce": "AnnualRevenue", "marketing": "REVENUE", "type": "currency"}]
    });
    let started = Instant::now();
    let mapped = mapping.map(&ctx(map_config), &chosen);
    let elapsed = started.elapsed();
    for (record, result) in chosen.iter().zip(&mapped) {
        match result {
            Ok(out) => println!("   ok    {} -> {} {}", record.label(), out.object_type, fields(out)),
            Err(e) => println!("   error {e}"),
        }
    }
    println!("   ({} records in one call, {:.0} µs)", chosen.len(), elapsed.as_secs_f64() * 1e6);

    println!("\n3. field-policy-resolver — a contact edited on both sides since the last sync");
    let conflict = Conflict {
        base: Some(
            Record::new(System::Salesforce, "Contact")
                .with("Phone", "+33 1 23 45 67 89")
                .with("Title", "CTO"),
        ),
        salesforce: Record::new(System::Salesforce, "Contact")
            .with_id("003000000000001AAA")
            .with("Phone", "+33 1 23 45 67 89")
            .with("Title", "Chief Technology Officer")
            .modified(saved + Duration::hours(2)),
        marketing: Record::new(System::ActiveCampaign, "contact")
            .with("Phone", "+33 6 00 00 00 00")
            .with("Title", "CTO & co-founder")
            .modified(saved + Duration::hours(3)),
    };
    let resolve_config =
        serde_json::json!({"default": "most-recent", "fields": {"Title": "salesforce-wins"}});
    match resolver.resolve(&ctx(resolve_config), &[conflict]).pop() {
        Some(Ok(resolution)) => {
            for (field, value) in &resolution.merged {
                println!(
                    "   {field:<6} = {:<28} (won by {:?})",
                    value.to_string(),
                    resolution.winners[field]
                );
            }
        }
        Some(Err(e)) => println!("   error {e}"),
        None => {}
    }
    println!(
        "\nNext: `scripts/test.sh` runs every test; `crmsync plugin test` runs a plugin on your own records;"
    );
    println!("`crmsync sandbox` starts the offline vendor APIs. See README.md.");
    ExitCode::SUCCESS
}

trait Modified {
    fn modified(self, at: DateTime<Utc>) -> Self;
}

impl Modified for Record {
    fn modified(mut self, at: DateTime<Utc>) -> Self {
        self.modified_at = Some(at);
        self
    }
}

fn describe(selection: &Selection) -> String {
    match selection {
        Selection::Sync => "sync".into(),
        Selection::Skip(reason) => reason.clone(),
        Selection::CreateAs(o) => format!("create as {}", o.object_type()),
    }
}

fn fields(record: &Record) -> String {
    let parts: Vec<String> = record.fields.iter().map(|(k, v)| format!("{k}={}", v)).collect();
    parts.join(" ")
}

fn sample_records(saved: DateTime<Utc>) -> Vec<Record> {
    let lead = |id: &str, first: &str, last: &str, email: Value, company: &str, created: DateTime<Utc>| {
        Record::new(System::Salesforce, "Lead")
            .with_id(id)
            .with("FirstName", first)
            .with("LastName", last)
            .with("Email", email)
            .with("Company", company)
            .with("Phone", "+1 (415) 555-0100")
            .with("CreatedDate", created)
    };
    vec![
        lead(
            "00Q000000000001AAA",
            "Ada",
            "Lovelace",
            "ada@example.com".into(),
            "Analytical Engines",
            saved + Duration::days(1),
        )
        .with("AnnualRevenue", "$1,234,500.50"),
        lead(
            "00Q000000000002AAA",
            "Grace",
            "Hopper",
            "grace@example.com".into(),
            "Navy",
            saved - Duration::days(30),
        ),
        lead("00Q000000000003AAA", "Alan", "Turing", Value::Null, "Bletchley", saved + Duration::days(2)),
        lead(
            "00Q000000000004AAA",
            "Katherine",
            "Johnson",
            "katherine@example.com".into(),
            "NASA",
            saved + Duration::days(3),
        )
        .with("AnnualRevenue", "1 234,50 €"),
        lead(
            "00Q000000000005AAA",
            "Edsger",
            "Dijkstra",
            "edsger@example.com".into(),
            "TH Eindhoven",
            saved + Duration::days(4),
        )
        .with("AnnualRevenue", "lots"),
        Record::new(System::Salesforce, "Contact")
            .with_id("003000000000001AAA")
            .with("FirstName", "Barbara")
            .with("LastName", "Liskov")
            .with("Email", "barbara@example.com")
            .with("AC_Sync_Status__c", "Pending next sync"),
        Record::new(System::Salesforce, "Contact")
            .with_id("003000000000002AAA")
            .with("FirstName", "Donald")
            .with("LastName", "Knuth")
            .with("Email", "don@example.com")
            .with("AC_Sync_Status__c", "Synced successfully"),
    ]
}
