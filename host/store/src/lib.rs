//! Durable state: one sled database under the data directory, plus
//! content-addressed plugin files beside it.
//!
//! Layout of the data directory (created 0700; everything in it is the
//! operator's data and holds contact emails):
//! - `db/` — sled. Trees are named in [`trees`]; keys are built in [`keys`].
//! - `plugins/<sha256>.wasm` — installed plugin components (the plugin
//!   runtime owns its own trees: it opens them through [`State::db`]).
//! - `cache/` — compiled plugin artifacts (safe to delete; rebuilt on load).
//!
//! A stored schema version is checked at open: a database written by an
//! incompatible crmsync is refused with a message instead of misread.
//!
//! [`SledStore`] implements the engine's [`Store`](crmsync_core::Store); the
//! durability rules it keeps are written on that trait.
//!
//! # Layout
//! - this module: [`State`] (open, schema, directories), the key builders.
//! - `engine`: links, cursors, the outbox and per-record errors.
//! - `activities`: the activity pass's cursor, pending and written activities.
//! - `runs`: one record per finished run.

mod activities;
mod engine;
mod runs;

use std::path::{Path, PathBuf};

pub use crmsync_core::store::StoreError;
pub use engine::SledStore;

/// The schema this build reads and writes. 2: outbox entries carry a kind.
pub const SCHEMA_VERSION: u32 = 2;

/// Tree names of the engine's state (the plugin runtime names its own).
pub mod trees {
    pub const META: &str = "meta";
    /// Salesforce id → link.
    pub const LINKS: &str = "links";
    /// Remote id → Salesforce id.
    pub const LINKS_BY_REMOTE: &str = "links_by_remote";
    /// Email (trimmed, lowercased) → Salesforce id.
    pub const LINKS_BY_EMAIL: &str = "links_by_email";
    pub const CURSORS: &str = "cursors";
    pub const OUTBOX: &str = "outbox";
    /// The outbox's status write-backs, kept apart so that the flush between
    /// pages does not read those a pass is gathering (same keys, one
    /// sequence shared with `outbox`).
    pub const OUTBOX_WRITE_BACKS: &str = "outbox_write_backs";
    pub const ERRORS: &str = "errors";
    /// One record per finished run.
    pub const RUNS: &str = "runs";
    /// Connection → schedule set through the admin API (replaces the config's).
    pub const SCHEDULES: &str = "schedules";
    /// Marketing activities → Salesforce Tasks: cursor, pending writes,
    /// activities already written.
    pub const ACTIVITIES: &str = "activities";
    /// `connection \0 YYYY-MM` → tasks (records written) that month.
    pub const TASKS: &str = "tasks";
    /// Connection → `active` / `draft`, set through the CLI or the admin API
    /// (replaces the config's `active`).
    pub const ACTIVATION: &str = "activation";
}

/// Key builders: every key the engine's state writes is made here.
pub mod keys {
    pub const SCHEMA: &[u8] = b"schema_version";

    /// `connection \0` — the prefix of every per-connection key.
    pub fn connection_prefix(connection: &str) -> Vec<u8> {
        format!("{connection}\0").into_bytes()
    }

    /// `connection \0 id` (links, by Salesforce id or by remote id).
    pub fn link(connection: &str, id: &str) -> Vec<u8> {
        format!("{connection}\0{id}").into_bytes()
    }

    /// `connection \0 side \0 object`
    pub fn cursor(connection: &str, side: &str, object: &str) -> Vec<u8> {
        format!("{connection}\0{side}\0{object}").into_bytes()
    }

    /// `connection \0` + big-endian sequence: the outbox in queue order.
    pub fn outbox(connection: &str, seq: u64) -> Vec<u8> {
        let mut key = connection_prefix(connection);
        key.extend_from_slice(&seq.to_be_bytes());
        key
    }

    /// The sequence number of an outbox key.
    pub fn outbox_seq(key: &[u8]) -> u64 {
        let tail: [u8; 8] = key[key.len().saturating_sub(8)..].try_into().unwrap_or([0; 8]);
        u64::from_be_bytes(tail)
    }

    /// `connection \0 record`
    pub fn record_error(connection: &str, record: &str) -> Vec<u8> {
        format!("{connection}\0{record}").into_bytes()
    }

    /// `connection \0` + big-endian start time in milliseconds: runs in time order.
    pub fn run(connection: &str, started_ms: i64) -> Vec<u8> {
        let mut key = connection_prefix(connection);
        key.extend_from_slice(&(started_ms.max(0) as u64).to_be_bytes());
        key
    }

    /// `connection \0 part \0 tail`: the activity tree's cursor (`c`),
    /// pending writes (`p`, tail = activity id) and written activities (`d`,
    /// tail = big-endian Unix seconds + activity id, so old ones prune by range).
    pub fn activity(connection: &str, part: &str, tail: &[u8]) -> Vec<u8> {
        let mut key = format!("{connection}\0{part}\0").into_bytes();
        key.extend_from_slice(tail);
        key
    }
}

/// A sled failure as the engine's store error.
pub fn db_error(e: sled::Error) -> StoreError {
    StoreError::Db(e.to_string())
}

/// Opens sled with 8 MiB log segments (sled's default is 512 KiB). Fewer
/// segments mean fewer segment frees and file truncations, and sled 0.34.7
/// can deadlock when a truncation is queued behind I/O tasks that wait for
/// the lock its caller holds (seen under the crash test's write load). A
/// database created with another segment size is opened with its own.
///
/// The page cache is bounded at [`CACHE_BYTES`]: sled's default (1 GiB) let a
/// backfill's resident memory grow with the number of links; what falls out
/// of the cache is read again from the OS's file cache.
fn open_db(path: &Path) -> Result<sled::Db, sled::Error> {
    // A fresh config each time: sled objects to one mutated after a clone.
    let config = || sled::Config::new().path(path).cache_capacity(CACHE_BYTES);
    match config().segment_size(8 << 20).open() {
        Err(sled::Error::Unsupported(why)) if why.contains("io buffer size") => config().open(),
        other => other,
    }
}

/// sled's page cache, in bytes.
pub const CACHE_BYTES: u64 = 16 << 20;

/// The state store. Cheap to clone.
#[derive(Clone)]
pub struct State {
    db: sled::Db,
    dir: PathBuf,
}

/// Creates a directory (and its parents) readable by its owner only.
fn private_dir(path: &Path) -> Result<(), StoreError> {
    let open = |e: std::io::Error| StoreError::Open { path: path.display().to_string(), why: e.to_string() };
    std::fs::create_dir_all(path).map_err(open)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(open)?;
    }
    Ok(())
}

impl State {
    pub fn open(dir: &Path) -> Result<State, StoreError> {
        private_dir(dir)?;
        for sub in ["plugins", "cache"] {
            private_dir(&dir.join(sub))?;
        }
        let db_path = dir.join("db");
        let db = open_db(&db_path)
            .map_err(|e| StoreError::Open { path: db_path.display().to_string(), why: e.to_string() })?;
        let meta = db.open_tree(trees::META).map_err(db_error)?;
        match meta.get(keys::SCHEMA).map_err(db_error)? {
            None => {
                meta.insert(keys::SCHEMA, &SCHEMA_VERSION.to_be_bytes()).map_err(db_error)?;
            }
            Some(v) => {
                let found = v.as_ref().try_into().map(u32::from_be_bytes).unwrap_or(0);
                if found != SCHEMA_VERSION {
                    return Err(StoreError::Open {
                        path: dir.display().to_string(),
                        why: format!(
                            "the state was written with schema version {found}, this crmsync reads version {SCHEMA_VERSION}"
                        ),
                    });
                }
            }
        }
        Ok(State { db, dir: dir.to_path_buf() })
    }

    /// The sled database, for modules that own their trees (the plugin registry).
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// A tree by name.
    pub fn tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        self.db.open_tree(name).map_err(db_error)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where compiled plugin artifacts are cached.
    pub fn cache_dir(&self) -> PathBuf {
        self.dir.join("cache")
    }

    /// Where an installed plugin's component is kept.
    pub fn blob_path(&self, sha256: &str) -> PathBuf {
        self.dir.join("plugins").join(format!("{sha256}.wasm"))
    }

    /// Flushes everything written so far to disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(db_error)?;
        Ok(())
    }

    /// The engine's store over this state.
    pub fn store(&self) -> SledStore {
        SledStore::new(self.clone())
    }

    /// The schedule set through the admin API for a connection, if any.
    pub fn schedule(&self, connection: &str) -> Result<Option<String>, StoreError> {
        let v = self.tree(trees::SCHEDULES)?.get(connection.as_bytes()).map_err(db_error)?;
        Ok(v.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Replaces the connection's schedule (kept across restarts).
    pub fn set_schedule(&self, connection: &str, schedule: &str) -> Result<(), StoreError> {
        self.tree(trees::SCHEDULES)?.insert(connection.as_bytes(), schedule.as_bytes()).map_err(db_error)?;
        self.flush()
    }
}

impl State {
    /// Tasks (records written) by a connection in `month` (`YYYY-MM`).
    pub fn tasks(&self, connection: &str, month: &str) -> Result<u64, StoreError> {
        let key = format!("{connection}\0{month}");
        let v = self.tree(trees::TASKS)?.get(key.as_bytes()).map_err(db_error)?;
        Ok(v.and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes)).unwrap_or(0))
    }

    /// Adds `n` tasks to the connection's count for `month`; the new total.
    pub fn add_tasks(&self, connection: &str, month: &str, n: u64) -> Result<u64, StoreError> {
        let key = format!("{connection}\0{month}");
        let tree = self.tree(trees::TASKS)?;
        let total = tree
            .update_and_fetch(key.as_bytes(), |old| {
                let before = old.and_then(|v| v.try_into().ok().map(u64::from_be_bytes)).unwrap_or(0);
                Some((before + n).to_be_bytes().to_vec())
            })
            .map_err(db_error)?
            .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(n);
        self.flush()?;
        Ok(total)
    }

    /// Whether the connection was activated (`true`) or saved as a draft
    /// (`false`) through the CLI or the admin API; `None`: as configured.
    pub fn activation(&self, connection: &str) -> Result<Option<bool>, StoreError> {
        let v = self.tree(trees::ACTIVATION)?.get(connection.as_bytes()).map_err(db_error)?;
        Ok(v.map(|v| v.as_ref() == b"active"))
    }

    pub fn set_activation(&self, connection: &str, active: bool) -> Result<(), StoreError> {
        let value: &[u8] = if active { b"active" } else { b"draft" };
        self.tree(trees::ACTIVATION)?.insert(connection.as_bytes(), value).map_err(db_error)?;
        self.flush()
    }
}

pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("state values serialize")
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    tree: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt { tree, why: e.to_string() })
}
