//! Plugin runtime benchmark (prints figures; asserts nothing about speed).
//!
//! - per-record cost of `standard-mapping` through WebAssembly (the real
//!   runtime, batches of 100) against the same logic called natively through
//!   the SDK harness, measured in one run so the ratio travels; both wall time
//!   and the calling thread's CPU time (the mapping runs on that thread);
//! - plugin load time cold (compile) against cached (deserialize), per default plugin.
//!
//! Run: `scripts/build-plugins.sh && cargo bench -p crmsync --bench plugins`
//!
//! Environment (used by `scripts/bench.sh`):
//! - `CRMSYNC_BENCH_JSON=PATH` also writes the figures as JSON to PATH;
//! - `CRMSYNC_BENCH_QUICK=1` measures fewer records, once (a smoke run for CI).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crmsync::plugins::{Limits, Runtime};
use crmsync_sdk::testing::Harness;
use crmsync_sdk::types::{Context, Direction, Record, System, Value};
use serde_json::json;

const BATCH: usize = 100;

/// How much to measure: the full benchmark, or the quick smoke run.
struct Settings {
    records: usize,
    runs: usize,
    load_repeats: usize,
}

impl Settings {
    fn from_env() -> Settings {
        if std::env::var("CRMSYNC_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0") {
            Settings { records: 2_000, runs: 1, load_repeats: 1 }
        } else {
            Settings { records: 20_000, runs: 7, load_repeats: 5 }
        }
    }
}

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

fn records(n: usize) -> Vec<Record> {
    (0..n)
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

/// (median, min, max)
fn median(mut xs: Vec<f64>) -> (f64, f64, f64) {
    xs.sort_by(f64::total_cmp);
    (xs[xs.len() / 2], xs[0], xs[xs.len() - 1])
}

fn stats(xs: &[f64]) -> serde_json::Value {
    let (m, lo, hi) = median(xs.to_vec());
    json!({"median": m, "min": lo, "max": hi, "runs": xs})
}

/// CPU time of the calling thread (Linux `CLOCK_THREAD_CPUTIME_ID`), through
/// the C library std already links; no extra crate for one call.
#[cfg(target_os = "linux")]
fn thread_cpu() -> Duration {
    #[repr(C)]
    struct Timespec {
        tv_sec: i64,
        tv_nsec: i64,
    }
    unsafe extern "C" {
        fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut ts = Timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(not(target_os = "linux"))]
fn thread_cpu() -> Duration {
    Duration::ZERO
}

/// Wall time and thread CPU time of `f`.
fn time<T>(f: impl FnOnce() -> T) -> (T, Duration, Duration) {
    let (start, cpu) = (Instant::now(), thread_cpu());
    let out = f();
    (out, start.elapsed(), thread_cpu() - cpu)
}

fn main() {
    let settings = Settings::from_env();
    let n = settings.records;
    let cache = tempfile::tempdir().expect("temp dir");
    let runtime = Runtime::new(Some(cache.path()), Limits::default()).expect("runtime");
    let plugin =
        runtime.load_file(&plugin_path("standard-mapping"), "standard-mapping", "bench").expect("load");
    let records = records(n);
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
    let per = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    let (mut wasm, mut nat, mut boundary) = (Vec::new(), Vec::new(), Vec::new());
    let (mut wasm_cpu, mut nat_cpu) = (Vec::new(), Vec::new());
    let (mut ratio, mut ratio_cpu) = (Vec::new(), Vec::new());
    for _ in 0..settings.runs {
        let (mapped, w, wc) = time(|| {
            let mut ok = 0;
            for chunk in records.chunks(BATCH) {
                ok += std::hint::black_box(plugin.map(&ctx, chunk)).iter().filter(|r| r.is_ok()).count();
            }
            ok
        });
        assert_eq!(mapped, n, "every record maps through WebAssembly");
        let (mapped, nt, nc) = time(|| {
            let mut ok = 0;
            for chunk in records.chunks(BATCH) {
                ok += std::hint::black_box(harness.map(&native, chunk.to_vec()))
                    .iter()
                    .filter(|r| r.is_ok())
                    .count();
            }
            ok
        });
        assert_eq!(mapped, n, "every record maps natively");
        let (_, b, _) = time(|| {
            for chunk in records.chunks(BATCH) {
                std::hint::black_box(identity.map(&ctx, chunk));
            }
        });
        boundary.push(per(b));
        wasm.push(per(w));
        nat.push(per(nt));
        wasm_cpu.push(per(wc));
        nat_cpu.push(per(nc));
        ratio.push(w.as_secs_f64() / nt.as_secs_f64());
        ratio_cpu.push(wc.as_secs_f64() / nc.as_secs_f64());
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let runs = settings.runs;
    println!("plugin runtime benchmark — {n} Lead records, batches of {BATCH}, {runs} runs, {cores} cores");
    println!("\nstandard-mapping, per record (median [min–max])");
    let show = |label: &str, xs: &[f64], unit: &str, note: &str| {
        let (m, lo, hi) = median(xs.to_vec());
        println!("  {label:<26}{m:7.2} {unit} [{lo:.2}–{hi:.2}]{note}");
    };
    show("through WebAssembly", &wasm, "µs", "");
    show("native (SDK harness)", &nat, "µs", "");
    show("boundary only", &boundary, "µs", "   (identity mapper: conversions and copies in and out)");
    show("WASM, thread CPU", &wasm_cpu, "µs", "");
    show("native, thread CPU", &nat_cpu, "µs", "");
    show("WASM / native (wall)", &ratio, "× ", "");
    show("WASM / native (CPU)", &ratio_cpu, "× ", "   (target ≤ 1.5 ×)");

    println!(
        "\nload time, cold (compile + check + instantiate) vs cached (deserialize + check + instantiate)"
    );
    let mut loads = serde_json::Map::new();
    for name in ["standard-mapping", "selection", "field-policy-resolver"] {
        let bytes = std::fs::read(plugin_path(name)).expect("read plugin");
        let (mut cold, mut warm) = (Vec::new(), Vec::new());
        for _ in 0..settings.load_repeats {
            let dir = tempfile::tempdir().expect("temp dir");
            let rt = Runtime::new(Some(dir.path()), Limits::default()).expect("runtime");
            let (_, c, _) = time(|| rt.load(&bytes, name, "bench").expect("load"));
            let rt = Runtime::new(Some(dir.path()), Limits::default()).expect("runtime");
            let (_, w, _) = time(|| rt.load(&bytes, name, "bench").expect("load"));
            cold.push(c.as_secs_f64() * 1e3);
            warm.push(w.as_secs_f64() * 1e3);
        }
        loads.insert(
            name.to_string(),
            json!({"size_bytes": bytes.len(), "cold_ms": stats(&cold), "cached_ms": stats(&warm)}),
        );
        let (c, clo, chi) = median(cold);
        let (w, wlo, whi) = median(warm);
        println!(
            "  {name:<22} {:>7} KiB  cold {c:7.1} ms [{clo:.1}–{chi:.1}]  cached {w:6.2} ms [{wlo:.2}–{whi:.2}]  ({:.0} × faster)",
            bytes.len() / 1024,
            c / w
        );
    }

    if let Some(path) = std::env::var_os("CRMSYNC_BENCH_JSON") {
        let out = json!({
            "bench": "plugins",
            "records": n,
            "batch": BATCH,
            "runs": runs,
            "cores": cores,
            "mapping_us_per_record": {
                "wasm_wall": stats(&wasm),
                "native_wall": stats(&nat),
                "boundary_wall": stats(&boundary),
                "wasm_cpu": stats(&wasm_cpu),
                "native_cpu": stats(&nat_cpu),
            },
            "ratio_wall": stats(&ratio),
            "ratio_cpu": stats(&ratio_cpu),
            "load": loads,
        });
        let text = serde_json::to_string_pretty(&out).expect("JSON");
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {path:?}: {e}"));
    }
}
