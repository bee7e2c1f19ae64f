//! The one wasmtime engine of the process, the compiled-artifact cache, the
//! epoch ticker that enforces call deadlines, and loading a component into a
//! checked [`Plugin`].

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine};

use super::plugin::Plugin;
use super::sandbox::Guest;
use super::{LoadError, PluginId, contract};

/// How often the epoch ticks; deadlines are whole ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Limits applied to every plugin call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock deadline for one call (one batch).
    pub call_timeout: Duration,
    /// Cap on a guest's linear memory.
    pub memory_bytes: usize,
    /// Cap on the size of one call's output (text and names, summed).
    pub output_bytes: usize,
    /// A warm instance is recycled after this many calls…
    pub recycle_after_calls: u64,
    /// …or once its memory has grown past this.
    pub recycle_above_memory: usize,
    /// Warm instances kept per plugin version.
    pub max_idle_instances: usize,
    /// While isolating bad records one by one, stop after this many records in a
    /// row hit the deadline (the rest get an error instead of waiting too).
    pub max_consecutive_timeouts: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            call_timeout: Duration::from_secs(2),
            memory_bytes: 256 << 20,
            output_bytes: 32 << 20,
            recycle_after_calls: 10_000,
            recycle_above_memory: 128 << 20,
            max_idle_instances: 4,
            max_consecutive_timeouts: 3,
        }
    }
}

/// The plugin runtime: one engine, one cache directory, one epoch ticker.
/// Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    cache_dir: Option<PathBuf>,
    limits: Limits,
    /// Key part that changes whenever compiled code would be incompatible.
    engine_key: String,
    ticker_stop: Arc<AtomicBool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

impl Runtime {
    /// A runtime caching compiled components under `cache_dir` (none: no cache).
    pub fn new(cache_dir: Option<&Path>, limits: Limits) -> Result<Runtime, LoadError> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        config.parallel_compilation(true);
        let engine = Engine::new(&config).map_err(|e| LoadError::Instantiate {
            name: "the wasmtime engine".into(),
            reason: e.to_string(),
        })?;
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = format!("{:016x}", hasher.finish());
        if let Some(dir) = cache_dir {
            std::fs::create_dir_all(dir)
                .map_err(|source| LoadError::Cache { path: dir.display().to_string(), source })?;
        }
        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_ticker(engine.weak(), ticker_stop.clone());
        Ok(Runtime {
            inner: Arc::new(Inner {
                engine,
                cache_dir: cache_dir.map(Path::to_path_buf),
                limits,
                engine_key,
                ticker_stop,
            }),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Loads a component from a file: see [`Runtime::load`].
    pub fn load_file(&self, path: &Path, name: &str, version: &str) -> Result<Plugin, LoadError> {
        let bytes = std::fs::read(path)
            .map_err(|source| LoadError::Read { path: path.display().to_string(), source })?;
        self.load(&bytes, name, version)
    }

    /// Compiles (or takes from the cache) a component, checks the contract
    /// version of every role it exports, links it with nothing but logging and
    /// an empty WASI, and pre-instantiates it. Blocking: a JavaScript or Python
    /// component takes seconds to compile the first time, so async callers run
    /// this on a blocking thread, never on the sync path.
    pub fn load(&self, bytes: &[u8], name: &str, version: &str) -> Result<Plugin, LoadError> {
        let sha256 = hex::encode(Sha256::digest(bytes));
        let id = PluginId { name: name.to_string(), version: version.to_string(), sha256 };
        let component = self.compile_cached(bytes, &id)?;
        let roles = contract::exported_roles(&self.inner.engine, &component, &id.to_string())?;
        let mut linker: Linker<Guest> = Linker::new(&self.inner.engine);
        let instantiate_err =
            |e: wasmtime::Error| LoadError::Instantiate { name: id.to_string(), reason: e.to_string() };
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(instantiate_err)?;
        super::bindings::crmsync::plugin::logging::add_to_linker::<_, wasmtime::component::HasSelf<Guest>>(
            &mut linker,
            |guest| guest,
        )
        .map_err(instantiate_err)?;
        // Imports nobody grants (a toolchain's surprise wasi:http, say) trap if
        // called instead of refusing the plugin. Only those: stubbing everything
        // first would shadow the real (empty) WASI implementations.
        let pre = match linker.instantiate_pre(&component) {
            Ok(pre) => pre,
            Err(_) => {
                linker.define_unknown_imports_as_traps(&component).map_err(instantiate_err)?;
                linker.instantiate_pre(&component).map_err(instantiate_err)?
            }
        };
        Plugin::new(self.clone(), id, component, pre, roles)
    }

    fn compile_cached(&self, bytes: &[u8], id: &PluginId) -> Result<Component, LoadError> {
        let not_a_component =
            |e: wasmtime::Error| LoadError::NotAComponent { name: id.to_string(), reason: format!("{e:#}") };
        let Some(dir) = &self.inner.cache_dir else {
            return Component::new(&self.inner.engine, bytes).map_err(not_a_component);
        };
        let path = dir.join(format!("{}-{}.cwasm", id.sha256, self.inner.engine_key));
        // Read into memory rather than mmap: a cache file replaced or truncated
        // while we run must not take the process down.
        if let Ok(cached) = std::fs::read(&path) {
            // SAFETY: the file was written by `Component::serialize` of an engine
            // with the same compatibility hash (part of the file name), into the
            // data directory only crmsync writes; wasmtime checks the header and
            // refuses artifacts from an incompatible engine.
            match unsafe { Component::deserialize(&self.inner.engine, &cached) } {
                Ok(component) => return Ok(component),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "dropping an unreadable cached artifact")
                }
            }
        }
        let component = Component::new(&self.inner.engine, bytes).map_err(not_a_component)?;
        let serialized = component.serialize().map_err(not_a_component)?;
        let cache_err = |source| LoadError::Cache { path: path.display().to_string(), source };
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, serialized).map_err(cache_err)?;
        std::fs::rename(&tmp, &path).map_err(cache_err)?;
        Ok(component)
    }

    /// Whether a compiled artifact for these bytes is cached.
    pub fn is_cached(&self, bytes: &[u8]) -> bool {
        let sha = hex::encode(Sha256::digest(bytes));
        self.inner
            .cache_dir
            .as_ref()
            .is_some_and(|d| d.join(format!("{sha}-{}.cwasm", self.inner.engine_key)).exists())
    }

    /// Deadline of one call, in epoch ticks.
    pub(crate) fn deadline_ticks(&self) -> u64 {
        let ticks = self.inner.limits.call_timeout.as_millis() / EPOCH_TICK.as_millis();
        (ticks as u64).max(1)
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the runtime is dropped.
fn spawn_ticker(engine: wasmtime::EngineWeak, stop: Arc<AtomicBool>) {
    std::thread::Builder::new()
        .name("crmsync-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                match engine.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => return,
                }
            }
        })
        .expect("spawning the epoch ticker thread");
}
