//! The registry in sled: install (validated by contract check and fixtures),
//! activate, roll back, list, history, restart; hot swap under load; the
//! watched directory; the `crmsync plugin` commands.

use std::collections::HashSet;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crmsync::plugins::fixtures;
use crmsync::plugins::registry::{Manifest, Registry, RegistryError};
use crmsync::plugins::{PluginId, Role, watch};
use crmsync::state::State;
use crmsync_sdk::types::{Context, Direction, Record, System};

use super::{plugin_bytes, plugin_path, runtime};

fn open(dir: &std::path::Path) -> Registry {
    let state = State::open(dir).unwrap();
    Registry::open(state.clone(), runtime(&state.cache_dir())).unwrap()
}

fn manifest(name: &str, version: &str) -> Manifest {
    Manifest { name: name.into(), version: version.into(), ..Manifest::default() }
}

fn own_fixtures(plugin: &str) -> Vec<fixtures::Case> {
    let text =
        std::fs::read_to_string(plugin_path(plugin).with_file_name(format!("{plugin}.fixtures.jsonl")))
            .unwrap();
    fixtures::parse(&text, None).unwrap()
}

#[test]
fn install_validates_with_the_plugins_own_fixtures() {
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path());
    let installed = registry
        .install(
            &plugin_bytes("standard-mapping"),
            &Manifest { fixtures: own_fixtures("standard-mapping"), ..manifest("std", "1.0.0") },
        )
        .unwrap();
    assert_eq!(installed.fixtures_passed, own_fixtures("standard-mapping").len());
    assert_eq!(installed.roles.iter().copied().collect::<Vec<_>>(), vec![Role::Mapper]);

    // A fixture the plugin does not meet refuses the install.
    let bad = fixtures::parse(
        r#"{"config":{"marketing":"activecampaign"},"input":{"system":"salesforce","object":"Lead","fields":{"Email":"a@example.com"}},"expect":{"error":{"code":"nope"}}}"#,
        None,
    )
    .unwrap();
    let err = registry
        .install(&plugin_bytes("standard-mapping"), &Manifest { fixtures: bad, ..manifest("std", "1.0.1") })
        .unwrap_err();
    assert!(err.to_string().contains("failed its fixtures: 1 of 1 failed"), "{err}");
    let versions: Vec<String> = registry.list().unwrap().iter().map(|i| i.id.to_string()).collect();
    assert_eq!(versions, vec!["std@1.0.0"]);
}

#[test]
fn refusals_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path());
    let err = registry.install(&plugin_bytes("wrong-contract"), &manifest("w", "1")).unwrap_err();
    assert!(err.to_string().contains("crmsync:plugin@2.0.0"), "{err}");
    let err = registry
        .install(&plugin_bytes("selection"), &Manifest { roles: vec![Role::Mapper], ..manifest("sel", "1") })
        .unwrap_err();
    assert!(err.to_string().contains("does not export the mapper role"), "{err}");
    let err = registry.install(&plugin_bytes("selection"), &manifest("bad name!", "1")).unwrap_err();
    assert!(matches!(err, RegistryError::Invalid { what: "name", .. }), "{err}");
    registry.install(&plugin_bytes("selection"), &manifest("sel", "1")).unwrap();
    let err = registry.install(&plugin_bytes("standard-mapping"), &manifest("sel", "1")).unwrap_err();
    assert!(matches!(err, RegistryError::VersionTaken(_)), "{err}");
    let err = registry.activate("c", Role::Mapper, "sel@1").unwrap_err();
    assert!(err.to_string().contains("does not play the mapper role (it plays: selector)"), "{err}");
    let err = registry.activate("c", Role::Selector, "sel@9").unwrap_err();
    assert!(matches!(err, RegistryError::NotInstalled(_)), "{err}");
    let err = registry.rollback("c", Role::Selector).unwrap_err();
    assert!(matches!(err, RegistryError::NothingToRollBack { .. }), "{err}");
}

#[test]
fn activate_and_rollback_are_kept_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    {
        let registry = open(dir.path());
        registry.install(&plugin_bytes("standard-mapping"), &manifest("rules", "1.0.0")).unwrap();
        registry.install(&plugin_bytes("hostile"), &manifest("rules", "2.0.0")).unwrap();
        registry.activate("east", Role::Mapper, "rules@1.0.0").unwrap();
        registry.activate("east", Role::Mapper, "rules@2.0.0").unwrap();
        registry.activate("west", Role::Mapper, "rules@1.0.0").unwrap();
        assert_eq!(registry.current("east", Role::Mapper).unwrap().id().version, "2.0.0");
        let back = registry.rollback("east", Role::Mapper).unwrap();
        assert_eq!(back.version, "1.0.0");
    }
    // Reopened: what was active is active again, loaded from the compiled cache.
    let registry = open(dir.path());
    assert_eq!(registry.current("east", Role::Mapper).unwrap().id().version, "1.0.0");
    assert_eq!(registry.current("west", Role::Mapper).unwrap().id().version, "1.0.0");
    assert!(registry.current("east", Role::Selector).is_none());
    let history: Vec<(Option<String>, String, bool)> = registry
        .history("east", Role::Mapper)
        .unwrap()
        .into_iter()
        .map(|a| (a.from, a.to, a.rollback))
        .collect();
    assert_eq!(
        history,
        vec![
            (None, "rules@1.0.0".into(), false),
            (Some("rules@1.0.0".into()), "rules@2.0.0".into(), false),
            (Some("rules@2.0.0".into()), "rules@1.0.0".into(), true),
        ]
    );
}

/// Batches keep flowing on one thread while another installs, activates and
/// rolls back versions. Every batch runs on exactly one version (the one it
/// took at its start), every record is processed exactly once, and each
/// result is traceable to its version.
#[test]
fn hot_swap_under_load_never_mixes_versions_loses_or_repeats_records() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Arc::new(open(dir.path()));
    registry.install(&plugin_bytes("standard-mapping"), &manifest("rules", "1.0.0")).unwrap();
    registry.activate("c", Role::Mapper, "rules@1.0.0").unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let batches_done = Arc::new(AtomicUsize::new(0));
    let worker = {
        let (registry, stop, batches_done) = (registry.clone(), stop.clone(), batches_done.clone());
        std::thread::spawn(move || {
            let ctx = Context {
                connection: "c".into(),
                direction: Direction::ToMarketing,
                run_id: "r".into(),
                target: None,
                config: r#"{"marketing":"activecampaign"}"#.into(),
            };
            let mut log: Vec<(PluginId, Vec<String>, Vec<System>)> = Vec::new();
            let mut next = 0usize;
            while !stop.load(Ordering::Acquire) || log.len() < 3 {
                let plugin = registry.current("c", Role::Mapper).expect("a mapper is active");
                let batch: Vec<Record> = (next..next + 50)
                    .map(|i| {
                        Record::new(System::Salesforce, "Contact")
                            .with_id(format!("r{i}"))
                            .with("Email", format!("p{i}@example.com"))
                    })
                    .collect();
                next += 50;
                let out = plugin.map(&ctx, &batch);
                let ids = batch.iter().map(|r| r.id.clone().unwrap()).collect();
                let systems = out.iter().map(|r| r.as_ref().expect("mapped").system).collect();
                log.push((plugin.id().clone(), ids, systems));
                batches_done.fetch_add(1, Ordering::Release);
            }
            log
        })
    };
    let wait_for_batches = |n: usize| {
        let target = batches_done.load(Ordering::Acquire) + n;
        while batches_done.load(Ordering::Acquire) < target {
            std::thread::yield_now();
        }
    };
    wait_for_batches(2);
    // Installing compiles and validates off the batch path.
    registry.install(&plugin_bytes("hostile"), &manifest("rules", "2.0.0")).unwrap();
    for _ in 0..5 {
        registry.activate("c", Role::Mapper, "rules@2.0.0").unwrap();
        wait_for_batches(2);
        registry.rollback("c", Role::Mapper).unwrap();
        wait_for_batches(2);
    }
    stop.store(true, Ordering::Release);
    let log = worker.join().unwrap();

    let mut seen = HashSet::new();
    let mut per_version = [0usize; 2];
    for (id, ids, systems) in &log {
        // standard-mapping maps to ActiveCampaign; the hostile build maps a record to itself.
        let expected = if id.version == "1.0.0" { System::ActiveCampaign } else { System::Salesforce };
        assert!(systems.iter().all(|s| *s == expected), "batch on {id} mixed versions: {systems:?}");
        per_version[usize::from(id.version == "2.0.0")] += 1;
        for rid in ids {
            assert!(seen.insert(rid.clone()), "record {rid} processed twice");
        }
    }
    assert_eq!(seen.len(), log.len() * 50, "no record lost");
    assert!(per_version[0] >= 5 && per_version[1] >= 5, "both versions served batches: {per_version:?}");
}

#[test]
fn a_file_dropped_in_the_watched_directory_is_validated_then_activated() {
    let data = tempfile::tempdir().unwrap();
    let drop_dir = tempfile::tempdir().unwrap();
    let staging = tempfile::tempdir().unwrap();
    let registry = Arc::new(open(data.path()));
    let (tx, rx) = std::sync::mpsc::channel();
    let _watcher =
        watch::watch(drop_dir.path(), registry.clone(), vec!["default".into()], move |path, result| {
            let _ = tx
                .send((path.to_path_buf(), result.as_ref().map(|a| a.plugin.clone()).map_err(Clone::clone)));
        })
        .unwrap();
    // Copy atomically: write elsewhere, then move into the watched directory.
    let place = |from: std::path::PathBuf, name: &str| {
        let staged = staging.path().join(name);
        std::fs::copy(from, &staged).unwrap();
        std::fs::rename(&staged, drop_dir.path().join(name)).unwrap();
    };
    std::fs::write(drop_dir.path().join("std.toml"), "version = \"3.1.0\"\nroles = [\"mapper\"]\n").unwrap();
    place(
        plugin_path("standard-mapping").with_file_name("standard-mapping.fixtures.jsonl"),
        "std.fixtures.jsonl",
    );
    place(plugin_path("standard-mapping"), "std.wasm");
    let (path, result) = rx.recv_timeout(Duration::from_secs(120)).expect("the watcher reports");
    assert!(path.ends_with("std.wasm"));
    let id = result.expect("installed and activated");
    assert_eq!((id.name.as_str(), id.version.as_str()), ("std", "3.1.0"));
    assert_eq!(registry.current("default", Role::Mapper).unwrap().id(), &id);

    // A plugin for an unsupported contract is refused and changes nothing.
    place(plugin_path("wrong-contract"), "future.wasm");
    let (path, result) = rx.recv_timeout(Duration::from_secs(120)).expect("the watcher reports");
    assert!(path.ends_with("future.wasm"));
    assert!(result.unwrap_err().contains("crmsync:plugin@2.0.0"));
    assert_eq!(registry.current("default", Role::Mapper).unwrap().id(), &id);
}

fn crmsync() -> Command {
    Command::new(env!("CARGO_BIN_EXE_crmsync"))
}

/// `plugin test` checks a mapper's output against the kinds of value the
/// target platform fixes: a phone as a number and `unsubscribe` as text are
/// failures naming plugin, version, record and field — not a "missing-email"
/// or a silently dropped opt-out in a real run.
#[test]
fn plugin_test_checks_a_mappers_output_types_against_the_platform() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases.jsonl");
    std::fs::write(
        &cases,
        concat!(
            r#"{"system":"salesforce","object":"Lead","id":"00QTYPES","fields":{"Email":"a@example.com","LastName":"L","NumberOfEmployees":42,"HasOptedOutOfEmail":true}}"#, "\n",
            r#"{"system":"salesforce","object":"Lead","id":"00QFINE","fields":{"Email":"b@example.com","LastName":"M"}}"#, "\n",
        ),
    )
    .unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"marketing":"activecampaign","fields":[
            {"salesforce":"NumberOfEmployees","marketing":"phone","type":"number"},
            {"salesforce":"HasOptedOutOfEmail","marketing":"unsubscribe","type":"text"}]}"#,
    )
    .unwrap();
    let out = crmsync()
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["plugin", "test"])
        .arg(plugin_path("standard-mapping"))
        .args(["--role", "mapper", "--input"])
        .arg(&cases)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let line = stdout.lines().find(|l| l.contains("00QTYPES")).unwrap_or_default();
    assert!(line.contains("FAIL: standard-mapping@dev (mapper) on record 00QTYPES"), "{stdout}");
    assert!(line.contains("field phone is a number (42); ActiveCampaign takes text there"), "{stdout}");
    assert!(line.contains("field unsubscribe is text"), "{stdout}");
    let fine = stdout.lines().find(|l| l.contains("00QFINE") || l.starts_with("line 2")).unwrap_or_default();
    assert!(!fine.is_empty() && !fine.contains("FAIL"), "the well-typed record is fine: {stdout}");
    assert!(stdout.contains("0 passed, 1 failed"), "{stdout}");
}

#[test]
fn plugin_test_command_prints_results_and_fails_on_unmet_expectations() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases.jsonl");
    std::fs::write(
        &cases,
        concat!(
            r#"{"system":"salesforce","object":"Lead","id":"00Q1","fields":{"Email":"a@example.com","LastName":"L"}}"#, "\n",
            r#"{"name":"no email","input":{"system":"salesforce","object":"Lead","id":"00Q2","fields":{}},"expect":{"error":{"code":"missing-email"}}}"#, "\n",
        ),
    )
    .unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(&config, r#"{"marketing":"mailchimp"}"#).unwrap();
    let data = dir.path().join("data");
    let run = |cases: &std::path::Path| {
        crmsync()
            .arg("--data-dir")
            .arg(&data)
            .args(["plugin", "test"])
            .arg(plugin_path("standard-mapping"))
            .args(["--role", "mapper", "--input"])
            .arg(cases)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap()
    };
    let out = run(&cases);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(r#""LNAME":"L""#) && stdout.contains("1 passed, 0 failed"), "{stdout}");

    std::fs::write(
        &cases,
        r#"{"input":{"system":"salesforce","object":"Lead","id":"00Q2","fields":{}},"expect":{"ok":{"system":"mailchimp","object":"member","fields":{}}}}"#,
    )
    .unwrap();
    let out = run(&cases);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL"));

    let out = crmsync()
        .arg("--data-dir")
        .arg(&data)
        .args(["plugin", "validate"])
        .arg(plugin_path("wrong-contract"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("crmsync:plugin@2.0.0"));
}

/// A fixture line with no expectation still fails when the plugin traps on
/// it, and the trap is shown as lines, not one escaped string.
#[test]
fn plugin_test_fails_a_trap_without_an_expectation_and_shows_it_readably() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases.jsonl");
    std::fs::write(
        &cases,
        concat!(
            r#"{"system":"salesforce","object":"Lead","id":"00Q1","fields":{"Email":"a@example.com","LastName":"fine"}}"#, "\n",
            r#"{"system":"salesforce","object":"Lead","id":"00Q2","fields":{"Email":"b@example.com","LastName":"attack:panic"}}"#, "\n",
        ),
    )
    .unwrap();
    let out = crmsync()
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["plugin", "test"])
        .arg(plugin_path("hostile"))
        .args(["--role", "mapper", "--input"])
        .arg(&cases)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("line 2\tFAIL: the plugin failed:") && stdout.contains("0 passed, 1 failed"),
        "{stdout}"
    );
    assert!(!stdout.contains("\\n"), "no escaped newlines: {stdout}");
    assert!(
        stdout.lines().any(|l| l.trim() == "hostile plugin panicked on purpose"),
        "the trap as lines: {stdout}"
    );
}

#[test]
fn plugin_install_activate_rollback_and_list_commands() {
    let dir = tempfile::tempdir().unwrap();
    let cmd = |args: &[&str]| {
        let out = crmsync().arg("--data-dir").arg(dir.path()).arg("plugin").args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let std_path = plugin_path("standard-mapping");
    let std_path = std_path.to_str().unwrap();
    // Its schema (standard-mapping.schema.json beside it) wants `marketing`:
    // with no crmsync.toml the role's config is `{}`, which it refuses.
    let (code, _, err) =
        cmd(&["install", std_path, "--name", "std", "--version", "1.0.0", "--activate", "main"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("std@1.0.0 cannot run with connections.main.rules.mapper.config")
            && err.contains("marketing"),
        "{err}"
    );
    let own = dir.path().join("std.json");
    std::fs::write(&own, r#"{"marketing": "activecampaign"}"#).unwrap();
    let (code, out, err) = cmd(&[
        "install",
        std_path,
        "--name",
        "std",
        "--version",
        "1.0.1",
        "--config",
        own.to_str().unwrap(),
        "--activate",
        "main",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("installed std@1.0.1 (mapper;") && out.contains("fixtures passed"), "{out}");
    let hostile = plugin_path("hostile");
    let (code, _, err) = cmd(&["install", hostile.to_str().unwrap(), "--name", "std", "--version", "2.0.0"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, out, _) = cmd(&["activate", "std@2.0.0", "--connection", "main", "--role", "mapper"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("std@2.0.0 is now the mapper of connection main"), "{out}");
    let (_, out, _) = cmd(&["list"]);
    assert!(out.lines().any(|l| l.starts_with("std@2.0.0") && l.contains("main/mapper")), "{out}");
    let (code, out, _) = cmd(&["rollback", "--connection", "main", "--role", "mapper"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("std@1.0.1 is again the mapper"), "{out}");
    let (code, _, err) = cmd(&["activate", "std@9.9.9", "--connection", "main", "--role", "mapper"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("std@9.9.9 is not installed"), "{err}");
}
