//! Hostile plugins, built in this repository, are stopped or refused with a
//! clear error while the host keeps serving: infinite loop, memory bomb,
//! panic, oversized output, missing export, incompatible contract version,
//! attempts to open a file or a socket or read the environment or clock.

use crmsync::plugins::plugin::{CallFailure, FailureKind};
use crmsync::plugins::{LoadError, Role};
use crmsync_sdk::types::{Context, Direction, Record, System};

use super::{load, plugin_path, runtime};

fn ctx() -> Context<String> {
    Context {
        connection: "c".into(),
        direction: Direction::ToMarketing,
        run_id: "r".into(),
        target: None,
        config: "{}".into(),
    }
}

fn rec(id: &str, attack: Option<&str>) -> Record {
    let r = Record::new(System::Salesforce, "Lead").with_id(id).with("Email", "a@example.com");
    match attack {
        Some(a) => r.with("attack", a),
        None => r,
    }
}

fn failed(kind: &FailureKind) -> &CallFailure {
    match kind {
        FailureKind::Failed(f) => f,
        other => panic!("expected a plugin failure, got {other:?}"),
    }
}

/// A batch with one bad record in the middle: only that record fails, the
/// others are mapped, and the plugin keeps serving afterwards.
fn isolate(attack: &str) -> CallFailure {
    let dir = tempfile::tempdir().unwrap();
    let plugin = load(&runtime(dir.path()), "hostile");
    let out = plugin.map(&ctx(), &[rec("00Q1", None), rec("00Q2", Some(attack)), rec("00Q3", None)]);
    assert_eq!(out.len(), 3);
    assert_eq!(out[0].as_ref().unwrap().id.as_deref(), Some("00Q1"));
    assert_eq!(out[2].as_ref().unwrap().id.as_deref(), Some("00Q3"));
    let failure = out[1].as_ref().unwrap_err();
    assert_eq!((failure.plugin.name.as_str(), failure.plugin.version.as_str()), ("hostile", "test"));
    assert_eq!(failure.role, Role::Mapper);
    assert_eq!(failure.record.as_deref(), Some("00Q2"));
    let message = failure.to_string();
    assert!(message.contains("hostile@test (mapper)") && message.contains("00Q2"), "{message}");
    // Still serving.
    let again = plugin.map(&ctx(), &[rec("00Q4", None)]);
    assert!(again[0].is_ok());
    failed(&failure.kind).clone()
}

#[test]
fn an_infinite_loop_hits_the_deadline() {
    assert!(matches!(isolate("loop"), CallFailure::Deadline { timeout_ms: 300 }));
}

#[test]
fn a_memory_bomb_hits_the_memory_cap() {
    assert!(matches!(isolate("alloc"), CallFailure::Memory { limit_mib: 64 }));
}

#[test]
fn a_panic_is_a_trap_carrying_the_guest_message() {
    match isolate("panic") {
        CallFailure::Trap { message, output } => {
            assert!(
                output.contains("hostile plugin panicked on purpose"),
                "output: {output}\nmessage: {message}"
            );
        }
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[test]
fn an_oversized_output_is_refused() {
    match isolate("huge") {
        CallFailure::OutputTooLarge { size, limit } => {
            assert!(size > 8 << 20);
            assert_eq!(limit, 4 << 20);
        }
        other => panic!("expected the output cap, got {other:?}"),
    }
}

#[test]
fn files_sockets_environment_and_clock_are_not_granted() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = load(&runtime(dir.path()), "hostile");
    let out = plugin.map(
        &ctx(),
        &[
            rec("f", Some("open-file")),
            rec("s", Some("connect")),
            rec("e", Some("env")),
            rec("t", Some("clock")),
        ],
    );
    for (i, what) in ["open failed", "connect failed", "no environment"].iter().enumerate() {
        let failure = out[i].as_ref().unwrap_err();
        match &failure.kind {
            FailureKind::Rejected(e) => assert!(e.code == "denied" && e.message.contains(what), "{e}"),
            other => panic!("expected the guest to be denied, got {other:?}"),
        }
    }
    assert_eq!(out[3].as_ref().unwrap().text("clock"), Some("0"), "the wall clock is frozen at the epoch");
}

#[test]
fn a_trapped_instance_is_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = load(&runtime(dir.path()), "hostile");
    assert_eq!(plugin.idle_instances(), 1, "one warm instance after load");
    assert!(plugin.map(&ctx(), &[rec("a", Some("panic"))])[0].is_err());
    assert_eq!(plugin.idle_instances(), 0, "the trapped instance was dropped");
    assert!(plugin.map(&ctx(), &[rec("b", None)])[0].is_ok());
    assert_eq!(plugin.idle_instances(), 1, "a fresh instance served the next call");
}

#[test]
fn records_after_repeated_timeouts_are_not_run_instead_of_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = load(&runtime(dir.path()), "hostile");
    let batch: Vec<Record> = (0..6).map(|i| rec(&format!("r{i}"), Some("loop"))).collect();
    let out = plugin.map(&ctx(), &batch);
    let kinds: Vec<&CallFailure> = out.iter().map(|r| failed(&r.as_ref().unwrap_err().kind)).collect();
    assert!(kinds[..3].iter().all(|k| matches!(k, CallFailure::Deadline { .. })), "{kinds:?}");
    assert!(kinds[3..].iter().all(|k| matches!(k, CallFailure::NotRun(3))), "{kinds:?}");
}

#[test]
fn a_plugin_built_for_another_contract_major_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let err =
        runtime(dir.path()).load_file(&plugin_path("wrong-contract"), "wrong-contract", "1").unwrap_err();
    assert!(matches!(err, LoadError::IncompatibleContract { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("crmsync:plugin@2.0.0")
            && message.contains("1.0.0")
            && message.contains("another major version"),
        "{message}"
    );
}

#[test]
fn a_plugin_missing_the_role_export_is_refused_with_what_it_exports() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = load(&runtime(dir.path()), "selection");
    let err = plugin.require(Role::Mapper).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("does not export the mapper role"), "{message}");
    assert!(message.contains("crmsync:plugin/selector@1.0.0"), "{message}");
    // Calling the missing role fails every record cleanly instead of panicking.
    let out = plugin.map(&ctx(), &[rec("a", None)]);
    assert!(matches!(failed(&out[0].as_ref().unwrap_err().kind), CallFailure::Contract(_)));
}

#[test]
fn bytes_that_are_not_a_component_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = runtime(dir.path()).load(b"\0asm not really", "junk", "1").unwrap_err();
    assert!(matches!(err, LoadError::NotAComponent { .. }), "{err:?}");
    assert!(err.to_string().contains("junk@1 is not a valid WebAssembly component"), "{err}");
}

#[test]
fn warm_instances_are_recycled_after_the_configured_number_of_calls() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = crmsync::plugins::Runtime::new(
        Some(dir.path()),
        crmsync::plugins::Limits { recycle_after_calls: 2, ..Default::default() },
    )
    .unwrap();
    let plugin = load(&runtime, "hostile");
    assert!(plugin.map(&ctx(), &[rec("a", None)])[0].is_ok());
    assert_eq!(plugin.idle_instances(), 1, "1 call: kept");
    assert!(plugin.map(&ctx(), &[rec("b", None)])[0].is_ok());
    assert_eq!(plugin.idle_instances(), 0, "2 calls: recycled");
}

#[test]
fn the_compiled_artifact_is_cached_by_content_hash() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = super::plugin_bytes("standard-mapping");
    let first = runtime(dir.path());
    assert!(!first.is_cached(&bytes));
    first.load(&bytes, "standard-mapping", "1").unwrap();
    assert!(first.is_cached(&bytes));
    // A new runtime (a restart) loads from the cache.
    let second = runtime(dir.path());
    assert!(second.is_cached(&bytes));
    let plugin = second.load(&bytes, "standard-mapping", "1").unwrap();
    assert_eq!(plugin.roles().iter().copied().collect::<Vec<_>>(), vec![Role::Mapper]);
    // A corrupt cache entry is dropped and rebuilt, not trusted.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"garbage").unwrap();
    }
    assert!(runtime(dir.path()).load(&bytes, "standard-mapping", "1").is_ok());
}

#[test]
fn guest_log_lines_go_to_tracing_tagged_with_the_plugin() {
    #[derive(Clone, Default)]
    struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    let dir = tempfile::tempdir().unwrap();
    let plugin = load(&runtime(dir.path()), "hostile");
    tracing::subscriber::with_default(subscriber, || {
        assert!(plugin.map(&ctx(), &[rec("a", Some("log"))])[0].is_ok());
    });
    let logged = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let line =
        logged.lines().find(|l| l.contains("hello from the guest")).unwrap_or_else(|| panic!("{logged}"));
    assert!(
        line.contains("WARN") && line.contains("plugin=\"hostile\"") && line.contains("version=\"test\""),
        "{line}"
    );
}

/// What a plugin logs is kept for the run it logged in: the service puts it in
/// that run's record. Taken once, never another run's, and bounded.
#[test]
fn guest_log_lines_are_kept_per_run_and_bounded() {
    use crmsync::plugins::sandbox::KEPT_LOG_LINES;
    let dir = tempfile::tempdir().unwrap();
    let plugin = load(&runtime(dir.path()), "hostile");
    let in_run = |run: &str| Context { run_id: run.into(), ..ctx() };
    assert!(plugin.map(&in_run("r1"), &[rec("a", Some("log"))])[0].is_ok());
    assert!(
        plugin.map(&in_run("r2"), &[rec("b", Some("log")), rec("c", Some("log"))]).iter().all(Result::is_ok)
    );
    assert_eq!(plugin.take_log("r1"), vec![("warn", "hello from the guest".to_string())]);
    assert!(plugin.take_log("r1").is_empty(), "taken once");
    assert_eq!(plugin.take_log("r2").len(), 2, "the other run's lines stay its own");
    let many: Vec<Record> = (0..KEPT_LOG_LINES + 50).map(|i| rec(&format!("m{i}"), Some("log"))).collect();
    plugin.map(&in_run("r3"), &many);
    assert_eq!(plugin.take_log("r3").len(), KEPT_LOG_LINES, "the oldest lines go first");
}
