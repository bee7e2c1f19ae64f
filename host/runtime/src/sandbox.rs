//! What a guest gets: nothing but logging. WASI is linked (so ordinary
//! toolchains' components load) but backed by an empty context — no preopened
//! directories, no environment, no arguments, no network, no name lookup — and
//! clocks frozen at the Unix epoch. Standard output and error are captured
//! (capped) and attached to trap reports. Memory, instances and tables are
//! capped by [`Limiter`], which fails with a readable reason.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::PluginId;
use super::bindings::crmsync::plugin::logging;

/// How much guest stdout/stderr is kept per instance.
const OUTPUT_CAPTURE: usize = 64 * 1024;
/// Most lines of guest output forwarded to the log per call.
const MAX_FORWARDED_LINES: usize = 50;
/// Longest guest log line passed on.
const MAX_LOG_LINE: usize = 4 * 1024;
/// Most log lines a plugin version keeps for the runs' records, across runs:
/// the oldest go first.
pub const KEPT_LOG_LINES: usize = 200;

/// A plugin version's recent log lines (what it logged and printed), each
/// tagged with its run, until the service takes them into the run's record.
#[derive(Debug, Default)]
pub struct GuestLog {
    lines: Mutex<VecDeque<(String, &'static str, String)>>,
}

impl GuestLog {
    fn push(&self, run_id: &str, level: &'static str, message: String) {
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() == KEPT_LOG_LINES {
            lines.pop_front();
        }
        lines.push_back((run_id.to_string(), level, message));
    }

    /// Takes the lines of one run, oldest first, as `(level, message)`.
    pub fn take(&self, run_id: &str) -> Vec<(&'static str, String)> {
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        let (taken, kept): (VecDeque<_>, VecDeque<_>) = lines.drain(..).partition(|(r, ..)| r == run_id);
        *lines = kept;
        taken.into_iter().map(|(_, level, message)| (level, message)).collect()
    }
}

/// The per-store state of one guest instance.
pub struct Guest {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limiter: Limiter,
    pub plugin: PluginId,
    stderr: MemoryOutputPipe,
    /// How much of the captured output went to the log already.
    forwarded: usize,
    /// Where its lines are kept for the run's record.
    log: Arc<GuestLog>,
    /// The run the current call belongs to.
    pub run_id: String,
}

impl Guest {
    pub fn new(plugin: PluginId, memory_limit: usize, log: Arc<GuestLog>) -> Self {
        let stderr = MemoryOutputPipe::new(OUTPUT_CAPTURE);
        let wasi = WasiCtxBuilder::new()
            .stdout(stderr.clone())
            .stderr(stderr.clone())
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            .allow_ip_name_lookup(false)
            .allow_tcp(false)
            .allow_udp(false)
            .build();
        Guest {
            wasi,
            table: ResourceTable::new(),
            limiter: Limiter { memory_limit, peak_memory: 0 },
            plugin,
            stderr,
            forwarded: 0,
            log,
            run_id: String::new(),
        }
    }

    /// Passes what the guest printed since the last call to the log, line by
    /// line (capped), tagged with the plugin: a guest's `print` is its log.
    pub fn forward_output(&mut self) {
        let bytes = self.stderr.contents();
        if bytes.len() <= self.forwarded {
            return;
        }
        let text = String::from_utf8_lossy(&bytes[self.forwarded..]).into_owned();
        self.forwarded = bytes.len();
        let (plugin, version) = (&self.plugin.name, &self.plugin.version);
        for line in text.lines().filter(|l| !l.trim().is_empty()).take(MAX_FORWARDED_LINES) {
            let line: String = line.chars().take(MAX_LOG_LINE).collect();
            tracing::info!(target: "plugin", plugin, version, stream = "output", "{line}");
            self.log.push(&self.run_id, "output", line);
        }
    }

    /// The last lines the guest wrote to stdout/stderr (panic messages land here).
    pub fn output_tail(&self) -> String {
        let bytes = self.stderr.contents();
        let text = String::from_utf8_lossy(&bytes);
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

impl WasiView for Guest {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl logging::Host for Guest {
    fn log(&mut self, level: logging::Level, message: String) {
        let mut message = message;
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let plugin = &self.plugin.name;
        let version = &self.plugin.version;
        match level {
            logging::Level::Trace => tracing::trace!(target: "plugin", plugin, version, "{message}"),
            logging::Level::Debug => tracing::debug!(target: "plugin", plugin, version, "{message}"),
            logging::Level::Info => tracing::info!(target: "plugin", plugin, version, "{message}"),
            logging::Level::Warn => tracing::warn!(target: "plugin", plugin, version, "{message}"),
            logging::Level::Error => tracing::error!(target: "plugin", plugin, version, "{message}"),
        }
        let level = match level {
            logging::Level::Trace => "trace",
            logging::Level::Debug => "debug",
            logging::Level::Info => "info",
            logging::Level::Warn => "warn",
            logging::Level::Error => "error",
        };
        self.log.push(&self.run_id, level, message);
    }
}

/// Caps a guest's memory; refuses growth with a reason the trap report shows.
pub struct Limiter {
    pub memory_limit: usize,
    /// The largest linear memory the guest has asked for, in bytes.
    pub peak_memory: usize,
}

/// The message a memory-limit trap carries; [`super::plugin`] recognises it.
pub const MEMORY_LIMIT_MESSAGE: &str = "plugin memory limit exceeded";

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            return Err(wasmtime::format_err!(
                "{MEMORY_LIMIT_MESSAGE}: wanted {} MiB, the limit is {} MiB",
                desired >> 20,
                self.memory_limit >> 20
            ));
        }
        self.peak_memory = self.peak_memory.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > 1_000_000 {
            return Err(wasmtime::format_err!("plugin table limit exceeded: wanted {desired} elements"));
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        64
    }
    fn tables(&self) -> usize {
        64
    }
    fn memories(&self) -> usize {
        16
    }
}

/// A clock stopped at the Unix epoch: guests get no wall clock and no
/// elapsed time.
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    /// 1, not 0: Go's runtime refuses to start on a monotonic clock that reads
    /// zero ("nanotime returning zero"). It still never advances.
    fn now(&self) -> u64 {
        1
    }
}
