//! Plugin runtime integration tests: real components built from source in this
//! repository (`scripts/build-plugins.sh` puts them in `target/plugins/`), the
//! real wasmtime runtime, real sled directories.

mod contract;
mod hostile;
mod registry;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crmsync::plugins::{Limits, Plugin, Runtime};

/// The repository's `target/plugins/NAME.wasm`.
pub fn plugin_path(name: &str) -> PathBuf {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/plugins").join(format!("{name}.wasm"));
    assert!(path.exists(), "{} is missing: run scripts/build-plugins.sh first", path.display());
    path
}

pub fn plugin_bytes(name: &str) -> Vec<u8> {
    std::fs::read(plugin_path(name)).expect("read plugin")
}

/// A runtime with its own cache directory and short limits for tests.
pub fn runtime(cache: &std::path::Path) -> Runtime {
    Runtime::new(
        Some(cache),
        Limits {
            call_timeout: Duration::from_millis(300),
            memory_bytes: 64 << 20,
            output_bytes: 4 << 20,
            ..Limits::default()
        },
    )
    .expect("runtime")
}

pub fn load(runtime: &Runtime, name: &str) -> Arc<Plugin> {
    Arc::new(runtime.load_file(&plugin_path(name), name, "test").expect("load plugin"))
}
