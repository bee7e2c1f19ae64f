//! The example mapper plugin in five languages through the real runtime:
//! build time, size, cold compile, cached load, and per-record call time.
//! Not a test: it prints a table and asserts nothing about speed.
//!
//!     scripts/setup-polyglot.sh && scripts/build-examples.sh
//!     cargo bench -p crmsync --bench polyglot
//!
//! - build: wall time of `examples/<lang>/build.sh`, from
//!   target/examples/build-times.json (written by scripts/build-examples.sh);
//! - compile (cold): `Component::new` (Cranelift) of the .wasm;
//! - load (cached): `Runtime::load` with the compiled artifact already cached
//!   (deserialize, check the contract, link, instantiate once);
//! - per record: `Plugin::map` on batches of 100 records on warm instances,
//!   after a warm-up, total time divided by the records mapped.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crmsync::plugins::{Limits, Runtime};
use crmsync_sdk::types::{Context, Direction, Record, System, Value};
use wasmtime::component::Component;

const LANGS: [&str; 5] = ["rust", "js", "python", "c", "go"];
const BATCH: usize = 100;
const BATCHES: usize = 50;
const WARMUP_BATCHES: usize = 5;

fn lead(i: usize) -> Record {
    Record::new(System::Salesforce, "Lead")
        .with_id(format!("00Q{i:012}"))
        .with("FirstName", format!("  ada   MARIE{i} "))
        .with("LastName", "lovelace-BYRON")
        .with("Email", format!(" Ada{i}@Example.COM "))
        .with("Phone", "+44 (20) 7946-0000")
        .with("AnnualRevenue__c", format!("${},{:03}.5", i % 1000, i % 997))
        .with("LeadSource", if i.is_multiple_of(2) { "Web" } else { "Billboard" })
        .with("Interests__c", Value::TextList(vec!["Math".into(), " engines ".into(), "math".into()]))
        .with("Birthdate", chrono::NaiveDate::from_ymd_opt(1815, 12, 10).expect("a date"))
        .with("HasOptedOutOfEmail", i.is_multiple_of(3))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = repo.join("target/examples");
    let build_times: serde_json::Value = std::fs::read_to_string(dir.join("build-times.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let ctx = Context {
        connection: "bench".into(),
        direction: Direction::ToMarketing,
        run_id: "bench".into(),
        target: None,
        config: "{}".into(),
    };
    let records: Vec<Record> = (0..BATCH).map(lead).collect();
    println!(
        "polyglot example plugin (lead-to-contact), batches of {BATCH}, {} records timed per language",
        BATCH * BATCHES
    );
    println!(
        "{:<8} {:>9} {:>12} {:>16} {:>14} {:>12} {:>12}",
        "language", "build", "size", "compile (cold)", "load (cached)", "per record", "records/s"
    );
    for lang in LANGS {
        let path = dir.join(format!("{lang}.wasm"));
        let Ok(bytes) = std::fs::read(&path) else {
            println!("{lang:<8} missing: run scripts/build-examples.sh first");
            continue;
        };
        let build = build_times
            .get(lang)
            .and_then(serde_json::Value::as_f64)
            .map_or("-".into(), |s| format!("{s:.1} s"));
        let cache = tempfile::tempdir().expect("a temporary cache directory");

        // Cold: compile with Cranelift (what the first load of a new version costs).
        let runtime = Runtime::new(Some(cache.path()), Limits::default()).expect("runtime");
        let start = Instant::now();
        let component = Component::new(runtime.engine(), &bytes).expect("compiles");
        let compile = start.elapsed();
        drop(component);
        runtime.load(&bytes, lang, "bench").expect("loads (and fills the cache)");

        // Cached: a fresh runtime on the same cache directory.
        let runtime = Runtime::new(Some(cache.path()), Limits::default()).expect("runtime");
        let start = Instant::now();
        let plugin = runtime.load(&bytes, lang, "bench").expect("loads from the cache");
        let load = start.elapsed();

        for _ in 0..WARMUP_BATCHES {
            plugin.map(&ctx, &records);
        }
        let start = Instant::now();
        let mut failed = 0;
        for _ in 0..BATCHES {
            failed += plugin.map(&ctx, &records).iter().filter(|r| r.is_err()).count();
        }
        let per_record = start.elapsed() / (BATCH * BATCHES) as u32;
        println!(
            "{lang:<8} {build:>9} {:>9.2} MB {:>16} {:>14} {:>9.2} µs {:>12.0}{}",
            bytes.len() as f64 / 1e6,
            ms(compile),
            ms(load),
            per_record.as_secs_f64() * 1e6,
            1.0 / per_record.as_secs_f64(),
            if failed > 0 { format!("  ({failed} records failed!)") } else { String::new() },
        );
    }
}
