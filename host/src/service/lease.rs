//! Who holds a data directory. `serve` keeps the state open for as long as
//! it runs (sled locks it), so it leaves `serve.json` beside the state — its
//! pid and admin API address — and removes it when it stops. A command that
//! finds the file, and that process alive, talks to the running service
//! through its admin API (`status`, `run --once`) or says plainly who holds
//! the directory, instead of failing on the lock.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const FILE: &str = "serve.json";

/// The running service that holds a data directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lease {
    pub pid: u32,
    /// The admin API's base URL (`http://127.0.0.1:8477`).
    pub admin: String,
}

/// Removes the lease file when `serve` ends (a crash leaves it; its pid is then gone).
pub struct LeaseGuard(PathBuf);

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Written by `serve` once it listens.
pub fn take(data_dir: &Path, admin: String) -> std::io::Result<LeaseGuard> {
    let path = data_dir.join(FILE);
    let lease = Lease { pid: std::process::id(), admin };
    std::fs::write(&path, serde_json::to_vec(&lease).unwrap_or_default())?;
    Ok(LeaseGuard(path))
}

/// The live service holding `data_dir`, if any.
pub fn holder(data_dir: &Path) -> Option<Lease> {
    let lease: Lease = serde_json::from_slice(&std::fs::read(data_dir.join(FILE)).ok()?).ok()?;
    (lease.pid != std::process::id() && alive(lease.pid)).then_some(lease)
}

/// Whether `pid` is a running crmsync (after a crash the pid may be another program's).
#[cfg(target_os = "linux")]
fn alive(pid: u32) -> bool {
    let ours = std::env::current_exe().ok().and_then(|p| p.file_name().map(|n| n.to_os_string()));
    match (std::fs::read(Path::new("/proc").join(pid.to_string()).join("cmdline")), ours) {
        (Ok(cmdline), Some(ours)) => {
            let program = cmdline.split(|b| *b == 0).next().unwrap_or_default();
            Path::new(std::str::from_utf8(program).unwrap_or_default()).file_name() == Some(ours.as_os_str())
        }
        (Ok(_), None) => true,
        (Err(_), _) => false,
    }
}

#[cfg(not(target_os = "linux"))]
fn alive(_pid: u32) -> bool {
    true
}

impl std::fmt::Display for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "crmsync serve (pid {}, admin API at {})", self.pid, self.admin)
    }
}
