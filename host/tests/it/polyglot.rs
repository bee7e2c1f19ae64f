//! The example mapper plugin written in five languages (`examples/<lang>/`,
//! built by `scripts/build-examples.sh` into `target/examples/<lang>.wasm`),
//! run through the real runtime with its default limits:
//! - each passes the shared fixtures (`examples/fixtures.jsonl`);
//! - all five give identical outputs and errors (codes and fields), one record
//!   at a time and in one batch;
//! - a crash in any of them (a panic, a throw, an exception, an abort) reports
//!   plugin, version, role, record and the guest's own message.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use crmsync::plugins::fixtures::{self, Case};
use crmsync::plugins::plugin::{CallFailure, FailureKind};
use crmsync::plugins::{Limits, Plugin, Role, Runtime};
use crmsync_sdk::types::{Context, Direction, Record, System};
use serde_json::{Value as Json, json};

const LANGS: [&str; 5] = ["rust", "js", "python", "c", "go"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every example, loaded once (compiling JS and Python takes seconds; the
/// compiled artifacts are cached under target/examples/cache across runs).
fn plugins() -> &'static [(&'static str, Plugin)] {
    static PLUGINS: OnceLock<Vec<(&'static str, Plugin)>> = OnceLock::new();
    PLUGINS.get_or_init(|| {
        let dir = repo().join("target/examples");
        let runtime = Runtime::new(Some(&dir.join("cache")), Limits::default()).expect("runtime");
        LANGS
            .iter()
            .map(|&lang| {
                let path = dir.join(format!("{lang}.wasm"));
                assert!(path.exists(), "{} is missing: run scripts/build-examples.sh first", path.display());
                let plugin = runtime
                    .load_file(&path, &format!("lead-to-contact-{lang}"), "example")
                    .unwrap_or_else(|e| panic!("the {lang} example does not load: {e}"));
                plugin.require(Role::Mapper).unwrap_or_else(|e| panic!("{e}"));
                (lang, plugin)
            })
            .collect()
    })
}

fn plugin(lang: &str) -> &'static Plugin {
    &plugins().iter().find(|(l, _)| *l == lang).expect("a known language").1
}

fn cases() -> Vec<Case> {
    let text =
        std::fs::read_to_string(repo().join("examples/fixtures.jsonl")).expect("examples/fixtures.jsonl");
    let cases = fixtures::parse(&text, None).expect("the shared fixtures parse");
    assert!(cases.len() >= 30, "the shared fixtures lost cases: {}", cases.len());
    cases
}

/// What must be identical across languages: the whole record, or the error's
/// code and field (messages are each language's own).
fn comparable(output: &Json) -> Json {
    match output.get("error") {
        Some(e) => json!({ "error": { "code": e["code"], "field": e.get("field") } }),
        None => output.clone(),
    }
}

#[test]
fn every_language_passes_the_shared_fixtures() {
    let cases = cases();
    let mut failures = Vec::new();
    for (lang, plugin) in plugins() {
        for outcome in fixtures::run(plugin, Role::Mapper, &cases) {
            match outcome.verdict {
                Some(Ok(())) => {}
                Some(Err(why)) => failures.push(format!("{lang}: {}: {why}", outcome.name)),
                None => failures.push(format!("{lang}: {}: the case has no expectation", outcome.name)),
            }
        }
    }
    assert!(failures.is_empty(), "{} fixture failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn all_languages_give_identical_outputs_and_errors() {
    let cases = cases();
    let results: BTreeMap<&str, Vec<(String, Json)>> = plugins()
        .iter()
        .map(|(lang, plugin)| {
            let out = fixtures::run(plugin, Role::Mapper, &cases)
                .into_iter()
                .map(|o| (o.name, comparable(&o.output)))
                .collect();
            (*lang, out)
        })
        .collect();
    let reference = &results["rust"];
    let errors = reference.iter().filter(|(_, out)| out.get("error").is_some()).count();
    assert!(
        errors >= 10 && errors < reference.len(),
        "the fixtures must cover both outcomes ({errors} errors)"
    );
    let mut differences = Vec::new();
    for (lang, outputs) in &results {
        for ((name, want), (_, got)) in reference.iter().zip(outputs) {
            if want != got {
                differences.push(format!("{name}:\n  rust: {want}\n  {lang}: {got}"));
            }
        }
    }
    assert!(differences.is_empty(), "the languages disagree:\n{}", differences.join("\n"));
}

#[test]
fn a_batch_gives_each_record_the_same_result_as_alone() {
    let cases: Vec<Case> = cases().into_iter().filter(|c| c.direction == Direction::ToMarketing).collect();
    let records: Vec<Record> =
        cases.iter().map(|c| serde_json::from_value(c.input.clone()).expect("a record")).collect();
    for (lang, plugin) in plugins() {
        let alone: Vec<Json> =
            fixtures::run(plugin, Role::Mapper, &cases).iter().map(|o| comparable(&o.output)).collect();
        let batch = plugin.map(&ctx(), &records);
        assert_eq!(batch.len(), records.len(), "{lang}: one result per record");
        for ((case, result), want) in cases.iter().zip(&batch).zip(&alone) {
            let got = match result {
                Ok(record) => json!({ "ok": record }),
                Err(failure) => match &failure.kind {
                    FailureKind::Rejected(e) => comparable(&json!({ "error": e })),
                    FailureKind::Failed(f) => {
                        panic!("{lang}: {} failed in a batch: {f}", case.name.as_deref().unwrap_or(""))
                    }
                },
            };
            assert_eq!(&got, want, "{lang}: {}", case.name.as_deref().unwrap_or(""));
        }
    }
}

fn ctx() -> Context<String> {
    Context {
        connection: "polyglot".into(),
        direction: Direction::ToMarketing,
        run_id: "polyglot".into(),
        target: None,
        config: "{}".into(),
    }
}

fn lead(id: &str) -> Record {
    Record::new(System::Salesforce, "Lead")
        .with_id(id)
        .with("LastName", "Doe")
        .with("Email", "jo@example.com")
}

/// Maps [good, crash, good]: the crash fails its record only, and its report
/// names plugin, version, role, record and carries the guest's message.
fn crash_report(lang: &str) -> String {
    let out =
        plugin(lang).map(&ctx(), &[lead("00QOK1"), lead("00QCRASH").with("Crash__c", true), lead("00QOK2")]);
    assert!(out[0].is_ok() && out[2].is_ok(), "{lang}: the other records still map: {out:?}");
    let failure = out[1].as_ref().expect_err("the crash record fails");
    assert!(
        matches!(failure.kind, FailureKind::Failed(CallFailure::Trap { .. })),
        "{lang}: expected a trap, got {:?}",
        failure.kind
    );
    let report = failure.to_string();
    for part in [
        format!("lead-to-contact-{lang}@example"),
        "(mapper)".to_string(),
        "record 00QCRASH".to_string(),
        "deliberate crash (Crash__c is set)".to_string(),
    ] {
        assert!(report.contains(&part), "{lang}: the report lacks {part:?}:\n{report}");
    }
    report
}

#[test]
fn a_rust_panic_reports_the_guest_message() {
    let report = crash_report("rust");
    assert!(report.contains("panicked at"), "{report}");
}

#[test]
fn a_javascript_throw_reports_the_guest_message() {
    crash_report("js");
}

#[test]
fn a_python_exception_reports_the_guest_message_and_traceback() {
    let report = crash_report("python");
    assert!(report.contains("Traceback") && report.contains("RuntimeError"), "{report}");
}

#[test]
fn a_c_abort_reports_the_guest_message() {
    crash_report("c");
}

#[test]
fn a_go_panic_reports_the_guest_message_and_goroutine_trace() {
    let report = crash_report("go");
    assert!(report.contains("panic: lead-to-contact") && report.contains("goroutine"), "{report}");
}

/// Thousands of records on warm instances: garbage collectors run and memory
/// grows (the Go runtime once handed the WASI adapter's memory page to its
/// heap here), and every result must stay right.
#[test]
fn thousands_of_records_keep_mapping_right_in_every_language() {
    let records: Vec<Record> = (0..50)
        .map(|i| {
            lead(&format!("00Q{i:05}"))
                .with("FirstName", format!("  first{i}   NAME "))
                .with("AnnualRevenue__c", format!("${i},{:03}.5", i * 7 % 1000))
                .with("Interests__c", vec![format!("Tag{}", i % 3), "golf".to_string()])
        })
        .collect();
    for (lang, plugin) in plugins() {
        for round in 0..120 {
            let out = plugin.map(&ctx(), &records);
            for (i, result) in out.iter().enumerate() {
                let record = result.as_ref().unwrap_or_else(|e| panic!("{lang}, round {round}: {e}"));
                assert_eq!(record.text("firstName"), Some(format!("First{i} Name").as_str()), "{lang}");
                let want = format!("{i}{:03}.50", i * 7 % 1000).trim_start_matches('0').to_string();
                let want = if want.starts_with('.') { format!("0{want}") } else { want };
                assert_eq!(record.get("revenue").map(ToString::to_string), Some(want), "{lang}");
            }
        }
    }
}

/// `crmsync plugin new` for every language gives a project whose build script
/// builds a component that passes the project's own fixtures.
#[test]
fn every_template_scaffolds_a_project_that_builds_and_passes_its_fixtures() {
    use crmsync::cli::scaffold::{Lang, scaffold};
    let dir = tempfile::tempdir().expect("a temporary directory");
    let runtime = Runtime::new(Some(&dir.path().join("cache")), Limits::default()).expect("runtime");
    let env = repo().join("scripts/polyglot-env.sh");
    let mut pairs = vec![];
    for lang in [Lang::Go, Lang::C, Lang::Python, Lang::Js, Lang::Rust] {
        pairs.extend([Role::Selector, Role::Mapper, Role::Resolver].map(|role| (lang, role)));
    }
    for (lang, role) in pairs {
        let name = format!("tpl-{}-{role}", format!("{lang:?}").to_lowercase());
        scaffold(lang, role, &name, dir.path()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let project = dir.path().join(&name);
        // Rust: the generated project is a workspace of its own; share one
        // target directory across runs so its dependencies build once.
        let status = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!("source '{}' && ./build.sh", env.display()))
            .current_dir(&project)
            .env("CARGO_TARGET_DIR", repo().join("target/scaffolded"))
            .status()
            .expect("bash runs");
        assert!(status.success(), "{name}: build.sh failed ({status}); run scripts/setup-polyglot.sh first");
        let plugin = runtime
            .load_file(&project.join(format!("{name}.wasm")), &name, "template")
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let text = std::fs::read_to_string(project.join("fixtures.jsonl")).expect("fixtures");
        let cases = fixtures::parse(&text, None).expect("the template's fixtures parse");
        assert!(cases.len() >= 3, "{name}: its fixtures");
        for outcome in fixtures::run(&plugin, role, &cases) {
            assert!(
                matches!(outcome.verdict, Some(Ok(()))),
                "{name}: {}: {:?}",
                outcome.name,
                outcome.verdict
            );
        }
        // Its config schema (written by the Rust build from the typed Config,
        // shipped with the others) accepts every fixture's config but the
        // ones the rule must fail on.
        let schema = std::fs::read_to_string(project.join(format!("{name}.schema.json")))
            .unwrap_or_else(|e| panic!("{name}: its config schema: {e}"));
        for case in &cases {
            let config = case.config.clone().unwrap_or_else(|| serde_json::json!({})).to_string();
            let must_fail = case.expect.as_ref().is_some_and(|e| e.get("failed").is_some());
            let checked = crmsync::plugins::registry::check_config(&schema, &config);
            assert_eq!(
                checked.is_err(),
                must_fail,
                "{name}: {:?} with config {config}: {checked:?}",
                case.name
            );
        }
    }
}
