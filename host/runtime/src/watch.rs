//! The watched plugin directory: drop `name.wasm` (and optionally `name.toml`
//! and `name.fixtures.jsonl`) into it and the plugin is validated, installed
//! and activated without a restart. A file that fails validation is reported
//! and nothing changes.
//!
//! `name.toml` (all keys optional):
//! ```toml
//! name = "my-mapping"            # default: the file stem
//! version = "1.2.0"              # default: "sha-" + 12 hex digits of the content hash
//! roles = ["mapper"]             # default: every role the component exports
//! fixtures = "cases.jsonl"       # default: name.fixtures.jsonl beside it, if present
//! activate = ["default"]         # connections; default: those the watcher was given
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;

use notify::{EventKind, RecursiveMode, Watcher};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::fixtures;
use super::registry::{Manifest, Registry};
use super::{PluginId, Role};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileManifest {
    name: Option<String>,
    version: Option<String>,
    #[serde(default)]
    roles: Vec<Role>,
    fixtures: Option<PathBuf>,
    activate: Option<Vec<String>>,
    /// The version's own config (a table).
    config: Option<serde_json::Value>,
    /// Its config schema's file; `<stem>.schema.json` beside it by default.
    schema: Option<PathBuf>,
}

/// What happened to one dropped file.
#[derive(Debug)]
pub struct Applied {
    pub plugin: PluginId,
    pub activated: Vec<(String, Role)>,
}

/// Validates, installs and activates one `.wasm` file of the watched directory.
pub fn apply(registry: &Registry, wasm: &Path, default_connections: &[String]) -> Result<Applied, String> {
    let (installed, roles, activate) = install(registry, wasm)?;
    let key = installed.id.to_string();
    let connections = activate.unwrap_or_else(|| default_connections.to_vec());
    let mut activated = Vec::new();
    for connection in &connections {
        for role in &roles {
            registry.activate(connection, *role, &key).map_err(|e| e.to_string())?;
            activated.push((connection.clone(), *role));
        }
    }
    Ok(Applied { plugin: installed.id, activated })
}

/// Validates and installs one `.wasm` file (with its `name.toml` and
/// fixtures beside it, if any) without activating it.
pub fn install_file(registry: &Registry, wasm: &Path) -> Result<PluginId, String> {
    install(registry, wasm).map(|(installed, ..)| installed.id)
}

/// The installed version, the roles it is meant for, and the connections its manifest names.
type InstalledFile = (super::registry::Installed, Vec<Role>, Option<Vec<String>>);

fn install(registry: &Registry, wasm: &Path) -> Result<InstalledFile, String> {
    let stem = wasm.file_stem().and_then(|s| s.to_str()).ok_or("the file name is not UTF-8")?;
    let dir = wasm.parent().unwrap_or(Path::new("."));
    let manifest_path = dir.join(format!("{stem}.toml"));
    let file_manifest: FileManifest = match std::fs::read_to_string(&manifest_path) {
        Ok(text) => toml::from_str(&text).map_err(|e| format!("{}: {e}", manifest_path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileManifest::default(),
        Err(e) => return Err(format!("{}: {e}", manifest_path.display())),
    };
    let bytes = std::fs::read(wasm).map_err(|e| format!("{}: {e}", wasm.display()))?;
    let fixtures_path = match &file_manifest.fixtures {
        Some(p) => Some(dir.join(p)),
        None => Some(dir.join(format!("{stem}.fixtures.jsonl"))).filter(|p| p.exists()),
    };
    let cases = match fixtures_path {
        Some(p) => {
            let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            fixtures::parse(&text, None).map_err(|e| format!("{}: {e}", p.display()))?
        }
        None => Vec::new(),
    };
    let manifest = Manifest {
        name: file_manifest.name.unwrap_or_else(|| stem.to_string()),
        version: file_manifest
            .version
            .unwrap_or_else(|| format!("sha-{}", &hex::encode(Sha256::digest(&bytes))[..12])),
        roles: file_manifest.roles,
        fixtures: cases,
        config: file_manifest.config,
        schema: schema_beside(wasm, file_manifest.schema.map(|p| dir.join(p)).as_deref())?,
    };
    let installed = registry.install(&bytes, &manifest).map_err(|e| e.to_string())?;
    let roles: Vec<Role> = if manifest.roles.is_empty() {
        installed.roles.iter().copied().collect()
    } else {
        manifest.roles.clone()
    };
    Ok((installed, roles, file_manifest.activate))
}

/// A component's config schema: `explicit`, else `<stem>.schema.json` beside
/// it when there is one.
pub fn schema_beside(wasm: &Path, explicit: Option<&Path>) -> Result<Option<serde_json::Value>, String> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            let stem = wasm.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            let beside = wasm.with_file_name(format!("{stem}.schema.json"));
            if !beside.exists() {
                return Ok(None);
            }
            beside
        }
    };
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map(Some).map_err(|e| format!("{}: not JSON: {e}", path.display()))
}

/// A running directory watcher; dropping it stops watching.
pub struct DirWatcher {
    _watcher: notify::RecommendedWatcher,
}

/// Applies every `.wasm` already in `dir`, then watches it for new and changed
/// files on a background thread. `on_result` hears about each file.
pub fn watch(
    dir: &Path,
    registry: Arc<Registry>,
    default_connections: Vec<String>,
    on_result: impl Fn(&Path, &Result<Applied, String>) + Send + 'static,
) -> Result<DirWatcher, String> {
    let (tx, rx) = mpsc::channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && matches!(event.kind, EventKind::Create(_) | EventKind::Modify(_))
        {
            for path in event.paths {
                let _ = tx.send(path);
            }
        }
    })
    .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    watcher
        .watch(dir, RecursiveMode::NonRecursive)
        .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    let existing: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    std::thread::Builder::new()
        .name("crmsync-plugin-watch".into())
        .spawn(move || {
            // What was last applied per plugin (component, manifest and fixtures
            // together): editors and copies fire several events per change.
            let mut seen: HashMap<PathBuf, Vec<u8>> = HashMap::new();
            let mut handle = |path: PathBuf| {
                let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return };
                let stem = match name {
                    n if n.ends_with(".fixtures.jsonl") => n.trim_end_matches(".fixtures.jsonl"),
                    n if n.ends_with(".wasm") => n.trim_end_matches(".wasm"),
                    n if n.ends_with(".toml") => n.trim_end_matches(".toml"),
                    _ => return,
                };
                let wasm = path.with_file_name(format!("{stem}.wasm"));
                let Ok(bytes) = std::fs::read(&wasm) else { return };
                let mut digest = Sha256::new();
                digest.update(&bytes);
                for extra in [format!("{stem}.toml"), format!("{stem}.fixtures.jsonl")] {
                    digest.update(std::fs::read(path.with_file_name(extra)).unwrap_or_default());
                }
                let digest = digest.finalize().to_vec();
                if seen.get(&wasm) == Some(&digest) {
                    return;
                }
                let result = apply(&registry, &wasm, &default_connections);
                if result.is_ok() {
                    seen.insert(wasm.clone(), digest);
                }
                on_result(&wasm, &result);
            };
            for path in existing {
                handle(path);
            }
            for path in rx {
                handle(path);
            }
        })
        .map_err(|e| format!("cannot start the watcher thread: {e}"))?;
    Ok(DirWatcher { _watcher: watcher })
}
