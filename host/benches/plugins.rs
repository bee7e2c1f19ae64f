//! Plugin runtime benchmark (prints figures; asserts nothing about speed).
//!
//! - per-record cost of `standard-mapping` through WebAssembly (the real
//!   runtime, batches of 100) against the same logic called natively through
//!   the SDK harness, measured in one run so the ratio travels;
//! - plugin load time cold (compile) against cached (deserialize), per default plugin.
//!
//! Run: `scripts/build-plugins.sh && cargo bench -p crmsync --bench plugins`

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crmsync::plugins::{Limits, Runtime};
use crmsync_sdk::testing::Harness;
use crmsync_sdk::types::{Context, Direction, Record, System, Value};

const RECORDS: usize = 20_000;
const BATCH: usize = 100;
const RUNS: usize = 7;

const CONFIG: &str = r#"{"marketing":"activecampaign","fields":[
  {"salesforce":"AnnualRevenue","marketing":"REVENUE","type":"currency"},
  {"salesforce":"Rating","marketing":"RATING","type":"picklist","values":{"Hot":"hot","Warm":"warm","Cold":"cold"},"objects":["Lead"]},
  {"salesforce":"Interests__c","marketing":"INTERESTS","type":"multipicklist"}]}"#;

fn plugin_path(name: &str) -> PathBuf {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/plugins").join(format!("{name}.wasm"));
    assert!(path.exists(), "{} is missing: run scripts/build-plugins.sh first", path.display());
    path
}

fn records() -> Vec<Record> {
    (0..RECORDS)
        .map(|i| {
            Record::new(System::Salesforce, "Lead")
                .with_id(format!("00Q{i:015}"))
                .with("FirstName", "Ada")
                .with("LastName", format!("Lovelace {i}"))
                .with("Email", format!("ada.{i}@example.com"))
                .with("Phone", "+44 20 7946 0000")
                .with("Company", "Analytical Engines")
                .with("AnnualRevenue", Value::Text(format!("${},{:03}.50", i % 1000 + 1, i % 1000)))
                .with("Rating", ["Hot", "Warm", "Cold"][i % 3])
                .with("Interests__c", "Golf;Sailing")
        })
        .collect()
}

fn median(mut xs: Vec<f64>) -> (f64, f64, f64) {
    xs.sort_by(f64::total_cmp);
    (xs[xs.len() / 2], xs[0], xs[xs.len() - 1])
}

fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

fn main() {
    let cache = tempfile::tempdir().expect("temp dir");
    let runtime = Runtime::new(Some(cache.path()), Limits::default()).expect("runtime");
    let plugin =
        runtime.load_file(&plugin_path("standard-mapping"), "standard-mapping", "bench").expect("load");
    let records = records();
    let ctx = Context {
        connection: "bench".into(),
        direction: Direction::ToMarketing,
        run_id: "bench".into(),
        target: None,
        config: CONFIG.into(),
    };
    let harness = Harness::new(CONFIG);
    let native = standard_mapping::StandardMapping;

    // Warm up both paths and check they agree.
    let wasm_out = plugin.map(&ctx, &records[..BATCH]);
    let native_out = harness.map(&native, records[..BATCH].to_vec());
    for (w, n) in wasm_out.iter().zip(&native_out) {
        assert_eq!(w.as_ref().ok(), n.as_ref().ok(), "WASM and native disagree");
    }

    // The boundary alone: a mapper that returns each record unchanged.
    let identity = runtime.load_file(&plugin_path("hostile"), "identity", "bench").expect("load");
    let mut boundary = Vec::new();
    let (mut wasm, mut nat, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let (_, w) = time(|| {
            for chunk in records.chunks(BATCH) {
                std::hint::black_box(plugin.map(&ctx, chunk));
            }
        });
        let (_, n) = time(|| {
            for chunk in records.chunks(BATCH) {
                std::hint::black_box(harness.map(&native, chunk.to_vec()));
            }
        });
        let (_, b) = time(|| {
            for chunk in records.chunks(BATCH) {
                std::hint::black_box(identity.map(&ctx, chunk));
            }
        });
        let per = |d: Duration| d.as_secs_f64() * 1e6 / RECORDS as f64;
        boundary.push(per(b));
        wasm.push(per(w));
        nat.push(per(n));
        ratio.push(w.as_secs_f64() / n.as_secs_f64());
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!(
        "plugin runtime benchmark — {RECORDS} Lead records, batches of {BATCH}, {RUNS} runs, {cores} cores"
    );
    println!("\nstandard-mapping, per record (median [min–max])");
    let (m, lo, hi) = median(wasm);
    println!("  through WebAssembly   {m:7.2} µs  [{lo:.2}–{hi:.2}]");
    let (m, lo, hi) = median(nat);
    println!("  native (SDK harness)  {m:7.2} µs  [{lo:.2}–{hi:.2}]");
    let (m, lo, hi) = median(boundary);
    println!(
        "  boundary only         {m:7.2} µs  [{lo:.2}–{hi:.2}]   (identity mapper: conversions and copies in and out)"
    );
    let (m, lo, hi) = median(ratio);
    println!("  WASM / native         {m:7.2} ×   [{lo:.2}–{hi:.2}]   (target ≤ 1.5 ×)");

    println!(
        "\nload time, cold (compile + check + instantiate) vs cached (deserialize + check + instantiate)"
    );
    for name in ["standard-mapping", "selection", "field-policy-resolver"] {
        let bytes = std::fs::read(plugin_path(name)).expect("read plugin");
        let (mut cold, mut warm) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("temp dir");
            let rt = Runtime::new(Some(dir.path()), Limits::default()).expect("runtime");
            let (_, c) = time(|| rt.load(&bytes, name, "bench").expect("load"));
            let rt = Runtime::new(Some(dir.path()), Limits::default()).expect("runtime");
            let (_, w) = time(|| rt.load(&bytes, name, "bench").expect("load"));
            cold.push(c.as_secs_f64() * 1e3);
            warm.push(w.as_secs_f64() * 1e3);
        }
        let (c, clo, chi) = median(cold);
        let (w, wlo, whi) = median(warm);
        println!(
            "  {name:<22} {:>7} KiB  cold {c:7.1} ms [{clo:.1}–{chi:.1}]  cached {w:6.2} ms [{wlo:.2}–{whi:.2}]  ({:.0} × faster)",
            bytes.len() / 1024,
            c / w
        );
    }
}
