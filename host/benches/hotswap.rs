//! Hot swap under load (prints figures; fails only if a record is lost or
//! processed twice, or a batch that started after an activation ran on the
//! old version).
//!
//! A worker thread maps batches of 100 Lead records through the connection's
//! active mapper without pause, as the engine does (one `Registry::current`
//! per batch, then `Plugin::map`). Meanwhile the main thread uploads a new
//! version of `standard-mapping` (new bytes: the same component with a
//! distinct custom section, so it is compiled afresh, contract-checked and
//! validated against its own fixtures), activates it, and waits for the
//! worker's first batch on it. Per swap it records:
//!
//! - upload: `Registry::install` (compile + contract check + fixtures);
//! - activation → first batch: from the `activate` call to the start of the
//!   first batch that took the new version;
//! - upload → first batch: both together.
//!
//! Afterwards every record index must have been mapped exactly once.
//!
//! Run: `scripts/build-plugins.sh && cargo bench -p crmsync --bench hotswap`
//!
//! Environment (used by `scripts/bench.sh`):
//! - `CRMSYNC_BENCH_JSON=PATH` also writes the figures as JSON to PATH;
//! - `CRMSYNC_BENCH_QUICK=1` does fewer swaps (a smoke run for CI).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crmsync::plugins::registry::{Manifest, Registry};
use crmsync::plugins::{Limits, Role, Runtime, fixtures};
use crmsync::state::State;
use crmsync_sdk::types::{Context, Direction, Record, System};
use serde_json::json;

const BATCH: usize = 100;
const CONNECTION: &str = "bench";
/// Batches the worker runs on a version before the next swap.
const BATCHES_BETWEEN_SWAPS: usize = 20;

fn plugin_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/plugins").join(name)
}

/// The component with one more custom section: other bytes (another hash, a
/// fresh compile), the same behaviour.
fn variant(component: &[u8], tag: &str) -> Vec<u8> {
    fn leb128(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"crmsync-bench";
    let mut content = Vec::new();
    leb128(name.len(), &mut content);
    content.extend_from_slice(name);
    content.extend_from_slice(tag.as_bytes());
    let mut out = component.to_vec();
    out.push(0); // custom section
    leb128(content.len(), &mut out);
    out.extend_from_slice(&content);
    out
}

fn lead(i: usize) -> Record {
    Record::new(System::Salesforce, "Lead")
        .with_id(format!("00Q{i:015}"))
        .with("FirstName", "Ada")
        .with("LastName", format!("Lovelace {i}"))
        .with("Email", format!("ada.{i}@example.com"))
        .with("Phone", "+44 20 7946 0000")
        .with("Company", "Analytical Engines")
}

/// One batch the worker ran.
struct Batch {
    version: String,
    first: usize,
    len: usize,
    mapped: usize,
    start: Instant,
}

fn stats(xs: &[f64]) -> serde_json::Value {
    let mut s = xs.to_vec();
    s.sort_by(f64::total_cmp);
    json!({"median": s[s.len() / 2], "min": s[0], "max": s[s.len() - 1], "runs": xs})
}

fn main() {
    let quick = std::env::var("CRMSYNC_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let swaps = if quick { 3 } else { 10 };
    let wasm = plugin_path("standard-mapping.wasm");
    assert!(wasm.exists(), "{} is missing: run scripts/build-plugins.sh first", wasm.display());
    let bytes = std::fs::read(&wasm).expect("read plugin");
    let fixture_text =
        std::fs::read_to_string(plugin_path("standard-mapping.fixtures.jsonl")).expect("read fixtures");
    let cases = fixtures::parse(&fixture_text, None).expect("fixtures parse");

    let dir = tempfile::tempdir().expect("temp dir");
    let state = State::open(dir.path()).expect("state");
    let runtime = Runtime::new(Some(&state.cache_dir()), Limits::default()).expect("runtime");
    let registry = Arc::new(Registry::open(state.clone(), runtime).expect("registry"));
    let manifest = |version: String| Manifest {
        name: "rules".into(),
        version,
        roles: vec![Role::Mapper],
        fixtures: cases.clone(),
        config: None,
        schema: None,
    };
    registry.install(&variant(&bytes, "0"), &manifest("1.0.0".into())).expect("install v1.0.0");
    registry.activate(CONNECTION, Role::Mapper, "rules@1.0.0").expect("activate");

    let log: Arc<Mutex<Vec<Batch>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let (registry, log, stop) = (registry.clone(), log.clone(), stop.clone());
        std::thread::spawn(move || {
            let ctx = Context {
                connection: CONNECTION.into(),
                direction: Direction::ToMarketing,
                run_id: "bench".into(),
                target: None,
                config: r#"{"marketing":"activecampaign"}"#.into(),
            };
            let mut next = 0usize;
            while !stop.load(Ordering::Acquire) {
                let batch: Vec<Record> = (next..next + BATCH).map(lead).collect();
                // As the engine: the active version is taken once, at the batch's start.
                let start = Instant::now();
                let plugin = registry.current(CONNECTION, Role::Mapper).expect("a mapper is active");
                let out = plugin.map(&ctx, &batch);
                let mapped = out
                    .iter()
                    .filter(|r| r.as_ref().is_ok_and(|r| r.system == System::ActiveCampaign))
                    .count();
                log.lock().expect("log").push(Batch {
                    version: plugin.id().version.clone(),
                    first: next,
                    len: batch.len(),
                    mapped,
                    start,
                });
                next += BATCH;
            }
        })
    };
    let batches = || log.lock().expect("log").len();
    let wait_for = |pred: &dyn Fn(&[Batch]) -> bool| loop {
        if pred(&log.lock().expect("log")) {
            return;
        }
        std::thread::sleep(Duration::from_micros(200));
    };
    let warm = batches() + BATCHES_BETWEEN_SWAPS;
    wait_for(&|l| l.len() >= warm);

    let (mut upload_ms, mut act_ms, mut total_ms, mut per_swap) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut activations: Vec<(String, Instant)> = Vec::new();
    for i in 1..=swaps {
        let version = format!("1.{i}.0");
        let new_bytes = variant(&bytes, &i.to_string());
        let t_upload = Instant::now();
        registry.install(&new_bytes, &manifest(version.clone())).expect("install");
        let t_activate = Instant::now();
        registry.activate(CONNECTION, Role::Mapper, &format!("rules@{version}")).expect("activate");
        let t_active = Instant::now();
        activations.push((version.clone(), t_active));
        wait_for(&|l| l.iter().rev().any(|b| b.version == version));
        let first_start = {
            let l = log.lock().expect("log");
            l.iter().find(|b| b.version == version).map(|b| b.start).expect("a batch on the new version")
        };
        let up = (t_activate - t_upload).as_secs_f64() * 1e3;
        let act = first_start.saturating_duration_since(t_activate).as_secs_f64() * 1e3;
        let total = first_start.saturating_duration_since(t_upload).as_secs_f64() * 1e3;
        upload_ms.push(up);
        act_ms.push(act);
        total_ms.push(total);
        per_swap.push(json!({"version": version, "upload_ms": up, "activation_to_first_batch_ms": act, "upload_to_first_batch_ms": total}));
        let more = batches() + BATCHES_BETWEEN_SWAPS;
        wait_for(&|l| l.len() >= more);
    }
    stop.store(true, Ordering::Release);
    worker.join().expect("worker");
    let log = Arc::try_unwrap(log).ok().expect("worker done").into_inner().expect("log");

    // Every record index exactly once, every record mapped.
    let end = log.iter().map(|b| b.first + b.len).max().unwrap_or(0);
    let mut seen = vec![0u32; end];
    for b in &log {
        for n in &mut seen[b.first..b.first + b.len] {
            *n += 1;
        }
    }
    let lost = seen.iter().filter(|&&n| n == 0).count() + log.iter().map(|b| b.len - b.mapped).sum::<usize>();
    let duplicated = seen.iter().filter(|&&n| n > 1).count();
    // A batch that started after an activation returned must run on that version (or a later one).
    let mut stale = 0;
    for b in &log {
        if let Some((version, _)) = activations.iter().rev().find(|(_, at)| *at <= b.start)
            && &b.version != version
        {
            stale += 1;
        }
    }
    let records = log.iter().map(|b| b.len).sum::<usize>();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);

    let show = |label: &str, xs: &[f64]| {
        let mut s = xs.to_vec();
        s.sort_by(f64::total_cmp);
        println!("  {label:<34}{:9.3} ms [{:.3}–{:.3}]", s[s.len() / 2], s[0], s[s.len() - 1]);
    };
    println!(
        "hot swap under load — {swaps} swaps of standard-mapping (new bytes each), batches of {BATCH}, {cores} cores"
    );
    println!("  (median [min–max])");
    show("upload (compile, check, fixtures)", &upload_ms);
    show("activation → first batch on it", &act_ms);
    show("upload → first batch on it", &total_ms);
    println!(
        "  batches {}, records {records}: lost {lost}, processed twice {duplicated}, batches on a replaced version {stale}",
        log.len()
    );

    if let Some(path) = std::env::var_os("CRMSYNC_BENCH_JSON") {
        let out = json!({
            "bench": "hotswap",
            "swaps": swaps,
            "batch": BATCH,
            "cores": cores,
            "upload_ms": stats(&upload_ms),
            "activation_to_first_batch_ms": stats(&act_ms),
            "upload_to_first_batch_ms": stats(&total_ms),
            "batches": log.len(),
            "records": records,
            "records_lost": lost,
            "records_duplicated": duplicated,
            "batches_on_replaced_version": stale,
            "per_swap": per_swap,
        });
        let text = serde_json::to_string_pretty(&out).expect("JSON");
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {path:?}: {e}"));
    }
    if lost > 0 || duplicated > 0 || stale > 0 {
        eprintln!("hot swap: records lost {lost}, processed twice {duplicated}, stale batches {stale}");
        std::process::exit(1);
    }
}
