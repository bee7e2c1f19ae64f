//! Shadow preview (`crmsync plugin preview`, `POST
//! /connections/{name}/plugins/{role}/preview`): a candidate mapper version
//! that maps one more field, run beside the active one on the connection's
//! recent records, reports exactly the records and the field it changes —
//! and nothing is written to either vendor or to the state.

use crmsync_sandbox::common::VendorApi;
use serde_json::{Value, json};

use crate::common::{Env, Served, all_selection, crmsync, crmsync_json, plugins_dir};

/// `crmsync plugin install WASM --name NAME --version 2.0.0 --role selector --config CONFIG [--activate main]`.
async fn install_selector(
    env: &Env,
    wasm: &std::path::Path,
    name: &str,
    config: &std::path::Path,
    activate: bool,
) -> crate::common::Output {
    let (wasm, config) = (wasm.to_str().unwrap(), config.to_str().unwrap());
    let mut args = vec![
        "plugin",
        "install",
        wasm,
        "--name",
        name,
        "--version",
        "2.0.0",
        "--role",
        "selector",
        "--config",
        config,
    ];
    if activate {
        args.extend(["--activate", "main"]);
    }
    crmsync(env, &args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preview_reports_exactly_the_records_and_fields_a_new_mapping_changes_and_writes_nothing() {
    let lead = |n: usize, title: Option<&str>| {
        json!({"FirstName": "P", "LastName": format!("Preview{n}"), "Company": "Acme",
               "Email": format!("preview-{n}@example.com"), "Title": title})
    };
    let leads: Vec<Value> =
        (0..6).map(|n| lead(n, [Some("CEO"), None, Some("CTO"), None, None, Some("Buyer")][n])).collect();
    let seed = json!({"salesforce": {"generate": {"Lead": 10}, "records": {"Lead": leads}}});
    let env = Env::start(seed, all_selection(), json!({})).await;
    assert!(crmsync(&env, &["run", "--once"]).await.ok());

    // The candidate: the same mapping code with one more field mapped.
    let candidate_config = env.dir.path().join("candidate.json");
    std::fs::write(
        &candidate_config,
        json!({"marketing": "activecampaign",
               "fields": [{"salesforce": "Title", "marketing": "TITLE", "type": "text"}]})
        .to_string(),
    )
    .unwrap();
    let wasm = plugins_dir().join("standard-mapping.wasm");
    let (wasm, config) = (wasm.to_str().unwrap(), candidate_config.to_str().unwrap());
    let args = ["plugin", "preview", wasm, "--connection", "main", "--role", "mapper", "--config", config];

    let salesforce_before = env.sandbox.salesforce.state();
    let marketing_before = env.sandbox.activecampaign.state();
    let status_before = crmsync(&env, &["status", "--json"]).await.stdout;

    let out = crmsync(&env, &[&args[..], &["--json"]].concat()).await;
    assert!(out.ok(), "{out}");
    let report: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|_| panic!("{out}"));
    assert_eq!(report["records"], 16, "every recent record: {report}");
    assert_eq!((report["changed"].as_u64(), report["new_errors"].as_u64()), (Some(3), Some(0)), "{report}");
    assert_eq!(report["fields"], json!({"TITLE": 3}), "{report}");
    assert!(report["active"].as_str().unwrap().starts_with("standard-mapping@"), "{report}");
    let ids = |state: &Value| -> Vec<String> {
        let mut ids: Vec<String> = state["objects"]["Lead"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["Title"].is_string())
            .map(|l| l["Id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    let mut changed: Vec<String> = report["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["sf_id"].as_str().unwrap().to_string())
        .collect();
    changed.sort();
    assert_eq!(changed, ids(&salesforce_before), "exactly the Leads with a Title");
    let first = &report["differences"][0];
    assert_eq!(first["kind"], "changed");
    assert_eq!(first["fields"].as_array().unwrap().len(), 1, "only TITLE: {first}");
    assert_eq!(first["fields"][0]["field"], "TITLE");
    assert_eq!(first["fields"][0]["active"], Value::Null);
    assert!(["CEO", "CTO", "Buyer"].contains(&first["fields"][0]["candidate"].as_str().unwrap()), "{first}");

    // Printed for a person: totals, the field, each record's change.
    let human = crmsync(&env, &args).await;
    assert!(human.ok(), "{human}");
    assert!(human.stdout.contains("3 records change: 0 new errors"), "{human}");
    assert!(human.stdout.contains("fields touched: TITLE (3)"), "{human}");
    assert!(human.stdout.contains("TITLE: null → \"CEO\""), "{human}");

    // Nothing written anywhere, nothing installed.
    assert_eq!(env.sandbox.salesforce.state()["objects"], salesforce_before["objects"]);
    assert_eq!(env.sandbox.activecampaign.state()["contacts"], marketing_before["contacts"]);
    assert_eq!(
        crmsync(&env, &["status", "--json"]).await.stdout,
        status_before,
        "no run stored, no link changed"
    );
    let list = crmsync(&env, &["plugin", "list"]).await;
    assert!(!list.stdout.contains("@preview"), "the candidate is not installed: {list}");

    // Beside a running service the same preview goes through its admin API.
    let server = Served::start(&env).await;
    let remote = crmsync(&env, &[&args[..], &["--json"]].concat()).await;
    assert!(remote.ok(), "{remote}");
    let remote: Value = serde_json::from_str(&remote.stdout).unwrap();
    assert_eq!(remote["fields"], report["fields"]);
    assert_eq!(remote["changed"], 3);
    // A candidate that breaks records: its errors are new errors, and the exit code says so.
    let broken = env.dir.path().join("broken.json");
    std::fs::write(&broken, json!({"marketing": "activecampaign", "fields": [{"salesforce": "Title", "marketing": "TITLE", "type": "number"}]}).to_string()).unwrap();
    let refused = crmsync(
        &env,
        &[
            "plugin",
            "preview",
            wasm,
            "--connection",
            "main",
            "--role",
            "mapper",
            "--config",
            broken.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(refused.code, Some(1), "{refused}");
    assert!(refused.stdout.contains("3 new errors"), "{refused}");
    assert!(server.terminate().await.success());
    assert_eq!(env.sandbox.activecampaign.state()["contacts"], marketing_before["contacts"]);
}

/// A plugin version's config travels with it: a new selector version
/// installed with its own config (Contacts only) replaces the role's config
/// from crmsync.toml while it is active; rolled back, the old version runs
/// with its old config (Leads and Contacts) — no TOML edit either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_restores_the_old_version_with_its_old_config() {
    let env = Env::start(
        json!({"salesforce": {"generate": {"Lead": 4, "Contact": 3}}}),
        all_selection(),
        json!({}),
    )
    .await;
    // The service installs and activates the configured selector (0.1.0, no config of its own).
    assert!(crmsync(&env, &["run", "--once", "--dry-run"]).await.ok());
    let v2 = env.dir.path().join("contacts-only.json");
    std::fs::write(&v2, json!({"objects": {"Contact": {"mode": "all"}}}).to_string()).unwrap();
    let wasm = plugins_dir().join("selection.wasm");
    let install = install_selector(&env, &wasm, "selection", &v2, true).await;
    assert!(install.ok(), "{install}");
    let run = crmsync_json(&env, &["run", "--once", "--json"]).await;
    assert_eq!(run["outbound"]["created"], 3, "2.0.0 with its own config: Contacts only: {run}");
    assert_eq!(run["outbound"]["skipped"]["selection for Lead is not configured"], 4, "{run}");
    assert_eq!(run["outbound"]["errors"], 0, "{run}");

    let back = crmsync(&env, &["plugin", "rollback", "--connection", "main", "--role", "selector"]).await;
    assert!(
        back.ok() && back.stdout.contains("is again the selector") && !back.stdout.contains("2.0.0"),
        "{back}"
    );
    // The old version's config is the role's in crmsync.toml (Leads and Contacts): the Leads sync now.
    let leads = env.sandbox.salesforce.state()["objects"]["Lead"].as_array().unwrap().len();
    assert_eq!(leads, 4);
    let edit = crmsync_json(&env, &["run", "--once", "--reconcile", "--json"]).await;
    assert_eq!(edit["error"], Value::Null, "{edit}");
    assert_eq!(crate::common::ac_contacts(&env).len(), 7, "the Leads synced after the rollback: {edit}");
    // The same config again under the same version is fine; another config needs a new version.
    let taken = install_selector(&env, &wasm, "selection", &env.config, false).await;
    assert_eq!(taken.code, Some(2), "{taken}");
}

/// The same with a new config key: the new selector version (built from the
/// Rust selector template) reads `exclude_domains`, a key the old selection
/// rule refuses (its config denies unknown fields). Active with its own config
/// it skips the excluded domain; rolled back, the old rule runs with its old
/// config — it never sees the new key — and the records sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_selector_version_with_a_new_config_key_rolls_back_to_the_old_config() {
    use crmsync::cli::scaffold::{Lang, scaffold};
    use crmsync_runtime::Role;
    let env = Env::start(json!({"salesforce": {"generate": {"Lead": 5}}}), all_selection(), json!({})).await;
    assert!(crmsync(&env, &["run", "--once", "--dry-run"]).await.ok(), "the configured selector is active");
    scaffold(Lang::Rust, Role::Selector, "domain-rules", env.dir.path()).unwrap();
    let project = env.dir.path().join("domain-rules");
    let repo = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let built = std::process::Command::new("bash")
        .arg("build.sh")
        .current_dir(&project)
        .env("CARGO_TARGET_DIR", repo.join("target/scaffolded"))
        .status()
        .unwrap();
    assert!(built.success(), "the Rust selector template builds");
    let config = env.dir.path().join("v2.json");
    std::fs::write(&config, json!({"exclude_domains": ["example.com"]}).to_string()).unwrap();
    let wasm = project.join("domain-rules.wasm");
    let install = install_selector(&env, &wasm, "domain-rules", &config, true).await;
    assert!(install.ok(), "{install}");
    let run = crmsync_json(&env, &["run", "--once", "--json"]).await;
    assert_eq!(run["outbound"]["created"], 0, "{run}");
    assert_eq!(run["outbound"]["skipped"]["example.com is excluded"], 5, "the new key at work: {run}");

    // Its schema (written by the template's `cargo test` from the typed
    // Config, picked up beside the .wasm) refuses a typo at install, naming it.
    assert!(project.join("domain-rules.schema.json").exists());
    let typo = env.dir.path().join("typo.json");
    std::fs::write(&typo, json!({"exclude_domain": ["example.com"]}).to_string()).unwrap();
    let refused = install_selector(&env, &wasm, "domain-rules-typo", &typo, false).await;
    assert_eq!(refused.code, Some(2), "{refused}");
    assert!(
        refused.stderr.contains("domain-rules-typo@2.0.0 cannot run with its own config")
            && refused.stderr.contains("exclude_domain"),
        "{refused}"
    );
    let listed = crmsync(&env, &["plugin", "list"]).await;
    assert!(!listed.stdout.contains("domain-rules-typo"), "nothing installed: {listed}");

    let back = crmsync(&env, &["plugin", "rollback", "--connection", "main", "--role", "selector"]).await;
    assert!(back.ok(), "{back}");
    let again = crmsync_json(&env, &["run", "--once", "--reconcile", "--json"]).await;
    assert_eq!(again["error"], Value::Null, "{again}");
    let skipped = again["outbound"]["skipped"].to_string();
    assert!(!skipped.contains("bad-config") && !skipped.contains("unknown field"), "the old config: {again}");
    assert_eq!(
        crate::common::ac_contacts(&env).len(),
        5,
        "the old rule with its old config syncs them: {again}"
    );
}

/// A role config in crmsync.toml that the active version's schema refuses
/// stops the start with the key and the violation — the records are never
/// skipped as `bad-config` — and activating a version whose schema refuses
/// the role's config is refused, changing nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_the_schema_refuses_is_an_error_at_start_and_activation() {
    let bad = json!({"objects": {"Lead": {"mode": "sometimes"}}});
    let env = Env::start(json!({"salesforce": {"generate": {"Lead": 3}}}), bad, json!({})).await;
    let run = crmsync(&env, &["run", "--once"]).await;
    assert_eq!(run.code, Some(2), "{run}");
    assert!(
        run.stderr.contains("connections.main.rules.selector.config") && run.stderr.contains("sometimes"),
        "{run}"
    );
    assert!(crate::common::ac_contacts(&env).is_empty(), "nothing synced");
    let check = crmsync(&env, &["config", "check"]).await;
    assert_eq!(check.code, Some(2), "found offline too: {check}");
    assert!(
        check.stdout.contains("connections.main.rules.selector.config")
            || check.stderr.contains("connections.main.rules.selector.config"),
        "{check}"
    );

    // A version whose schema wants a key the role's config in crmsync.toml
    // lacks (installed without a config of its own) cannot be activated.
    let env = Env::start(json!({"salesforce": {"generate": {"Lead": 3}}}), all_selection(), json!({})).await;
    assert!(crmsync(&env, &["run", "--once", "--dry-run"]).await.ok());
    let strict = env.dir.path().join("strict.schema.json");
    std::fs::write(
        &strict,
        json!({"type": "object", "required": ["objects", "region"], "properties": {"region": {"type": "string"}}})
            .to_string(),
    )
    .unwrap();
    let wasm = plugins_dir().join("selection.wasm");
    let installed = crmsync(
        &env,
        &[
            "plugin",
            "install",
            wasm.to_str().unwrap(),
            "--name",
            "regional",
            "--version",
            "1.0.0",
            "--role",
            "selector",
            "--schema",
            strict.to_str().unwrap(),
        ],
    )
    .await;
    assert!(installed.ok(), "no own config: the schema is checked at activation: {installed}");
    let activate = crmsync(
        &env,
        &["plugin", "activate", "regional@1.0.0", "--connection", "main", "--role", "selector"],
    )
    .await;
    assert_eq!(activate.code, Some(2), "{activate}");
    assert!(
        activate.stderr.contains("connections.main.rules.selector.config in crmsync.toml")
            && activate.stderr.contains("region"),
        "{activate}"
    );
    let listed = crmsync(&env, &["plugin", "list"]).await;
    let line = listed.stdout.lines().find(|l| l.starts_with("regional@1.0.0")).unwrap_or_default();
    assert!(!line.is_empty() && !line.contains("main/selector"), "installed, not active: {listed}");
}

/// With `rules.require_preview`, a new version replaces the running one only
/// after a preview of it found no new errors with the config it will run
/// with; the first version of a role and a rollback need none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activation_can_require_a_clean_preview_first() {
    let plugins = plugins_dir();
    let rules = json!({
        "require_preview": true,
        "selector": {"plugin": plugins.join("selection.wasm"), "config": all_selection()},
        "mapper": {"plugin": plugins.join("standard-mapping.wasm"), "config": {"marketing": "activecampaign"}},
        "resolver": {"plugin": plugins.join("field-policy-resolver.wasm"), "config": {}},
    });
    let env = Env::start(
        json!({"salesforce": {"generate": {"Lead": 4}}}),
        all_selection(),
        json!({"rules": rules}),
    )
    .await;
    assert!(crmsync(&env, &["run", "--once"]).await.ok(), "the first version of each role needs no preview");
    let own = env.dir.path().join("v2.json");
    // Written as a person would (spaces, a newline): the same config as the one installed.
    std::fs::write(
        &own,
        serde_json::to_string_pretty(
            &json!({"marketing": "activecampaign", "fields": [{"salesforce": "Title", "marketing": "TITLE", "type": "text"}]}),
        )
        .unwrap()
            + "\n",
    )
    .unwrap();
    let wasm = plugins.join("standard-mapping.wasm");
    let (wasm, own) = (wasm.to_str().unwrap(), own.to_str().unwrap());
    let install = crmsync(
        &env,
        &[
            "plugin",
            "install",
            wasm,
            "--name",
            "mapping",
            "--version",
            "2.0.0",
            "--role",
            "mapper",
            "--config",
            own,
            "--activate",
            "main",
        ],
    )
    .await;
    assert_eq!(install.code, Some(2), "{install}");
    assert!(install.stderr.contains("requires a preview with no new errors"), "{install}");
    let activate = ["plugin", "activate", "mapping@2.0.0", "--connection", "main", "--role", "mapper"];
    assert_eq!(crmsync(&env, &activate).await.code, Some(2), "still no preview");
    // A preview with another config does not count for this one.
    let other = crmsync(&env, &["plugin", "preview", wasm, "--connection", "main", "--role", "mapper"]).await;
    assert!(other.ok(), "{other}");
    assert_eq!(crmsync(&env, &activate).await.code, Some(2), "previewed with the active config only");
    let preview = crmsync(
        &env,
        &["plugin", "preview", wasm, "--connection", "main", "--role", "mapper", "--config", own],
    )
    .await;
    assert!(preview.ok() && preview.stdout.contains("0 new errors"), "{preview}");
    let now = crmsync(&env, &activate).await;
    assert!(now.ok(), "{now}");
    let back = crmsync(&env, &["plugin", "rollback", "--connection", "main", "--role", "mapper"]).await;
    assert!(back.ok(), "a rollback needs no preview: {back}");
}
