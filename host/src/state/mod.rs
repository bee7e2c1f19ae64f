//! Durable state: one sled database under the data directory, plus
//! content-addressed plugin files beside it.
//!
//! Layout of the data directory:
//! - `db/` — sled. Trees are named in [`trees`]; keys are built in [`keys`].
//! - `plugins/<sha256>.wasm` — installed plugin components.
//! - `cache/` — compiled plugin artifacts (safe to delete; rebuilt on load).
//!
//! A stored schema version is checked at open: a database written by an
//! incompatible crmsync is refused with a message instead of misread.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::plugins::Role;
use crate::plugins::registry::{Activation, Installed};

/// The schema this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// Tree names.
pub mod trees {
    pub const META: &str = "meta";
    pub const PLUGIN_VERSIONS: &str = "plugin_versions";
    pub const PLUGIN_ACTIVE: &str = "plugin_active";
    pub const PLUGIN_HISTORY: &str = "plugin_history";
    /// Salesforce id → link (engine).
    pub const LINKS: &str = "links";
    /// Remote id → Salesforce id (engine).
    pub const LINKS_BY_REMOTE: &str = "links_by_remote";
    /// Email (trimmed, lowercased) → Salesforce id (engine).
    pub const LINKS_BY_EMAIL: &str = "links_by_email";
    pub const CURSORS: &str = "cursors";
    pub const OUTBOX: &str = "outbox";
    pub const ERRORS: &str = "errors";
    /// One record per finished run (service).
    pub const RUNS: &str = "runs";
    /// Connection → schedule set through the admin API (replaces the config's).
    pub const SCHEDULES: &str = "schedules";
    /// ActiveCampaign activities → Salesforce Tasks: cursor, pending writes,
    /// activities already written (`service::activity`).
    pub const ACTIVITIES: &str = "activities";
}

/// Key builders: every key the store writes is made here.
pub mod keys {
    use crate::plugins::Role;

    pub const SCHEMA: &[u8] = b"schema_version";

    /// `connection \0 role`
    pub fn active(connection: &str, role: Role) -> Vec<u8> {
        format!("{connection}\0{role}").into_bytes()
    }

    /// `connection \0 role \0` — the prefix of that pair's history.
    pub fn history_prefix(connection: &str, role: Role) -> Vec<u8> {
        format!("{connection}\0{role}\0").into_bytes()
    }

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

    /// History keys sort by a big-endian sequence number.
    pub fn history(connection: &str, role: Role, seq: u64) -> Vec<u8> {
        let mut key = history_prefix(connection, role);
        key.extend_from_slice(&seq.to_be_bytes());
        key
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot open the state database in {path}: {source}")]
    Open { path: String, source: sled::Error },
    #[error("state database error: {0}")]
    Db(#[from] sled::Error),
    #[error("cannot create {path}: {source}")]
    Dir { path: String, source: std::io::Error },
    #[error(
        "the state in {path} was written with schema version {found}, this crmsync reads version {SCHEMA_VERSION}"
    )]
    Schema { path: String, found: u32 },
    #[error("corrupt entry in {tree}: {why}")]
    Corrupt { tree: &'static str, why: String },
}

/// Opens sled with 8 MiB log segments (sled's default is 512 KiB). Fewer
/// segments mean fewer segment frees and file truncations, and sled 0.34.7
/// can deadlock when a truncation is queued behind I/O tasks that wait for
/// the lock its caller holds (seen under the crash test's write load). A
/// database created with another segment size is opened with its own.
fn open_db(path: &Path) -> Result<sled::Db, sled::Error> {
    match sled::Config::new().path(path).segment_size(8 << 20).open() {
        Err(sled::Error::Unsupported(why)) if why.contains("io buffer size") => sled::open(path),
        other => other,
    }
}

/// `((connection, role), name@version)` for every active plugin.
pub type ActivePlugins = Vec<((String, Role), String)>;

/// The state store. Cheap to clone.
#[derive(Clone)]
pub struct State {
    db: sled::Db,
    dir: PathBuf,
}

impl State {
    pub fn open(dir: &Path) -> Result<State, StateError> {
        for sub in ["plugins", "cache"] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path)
                .map_err(|source| StateError::Dir { path: path.display().to_string(), source })?;
        }
        let db_path = dir.join("db");
        let db = open_db(&db_path)
            .map_err(|source| StateError::Open { path: db_path.display().to_string(), source })?;
        let meta = db.open_tree(trees::META)?;
        match meta.get(keys::SCHEMA)? {
            None => {
                meta.insert(keys::SCHEMA, &SCHEMA_VERSION.to_be_bytes())?;
            }
            Some(v) => {
                let found = v.as_ref().try_into().map(u32::from_be_bytes).unwrap_or(0);
                if found != SCHEMA_VERSION {
                    return Err(StateError::Schema { path: dir.display().to_string(), found });
                }
            }
        }
        Ok(State { db, dir: dir.to_path_buf() })
    }

    /// The sled database, for modules that own their trees (see [`trees`]).
    pub fn db(&self) -> &sled::Db {
        &self.db
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
    pub fn flush(&self) -> Result<(), StateError> {
        self.db.flush()?;
        Ok(())
    }

    pub fn plugin_version(&self, key: &str) -> Result<Option<Installed>, StateError> {
        let tree = self.db.open_tree(trees::PLUGIN_VERSIONS)?;
        tree.get(key)?.map(|v| decode(trees::PLUGIN_VERSIONS, &v)).transpose()
    }

    pub fn put_plugin_version(&self, key: &str, installed: &Installed) -> Result<(), StateError> {
        let tree = self.db.open_tree(trees::PLUGIN_VERSIONS)?;
        tree.insert(key, encode(installed))?;
        tree.flush()?;
        Ok(())
    }

    pub fn plugin_versions(&self) -> Result<Vec<Installed>, StateError> {
        let tree = self.db.open_tree(trees::PLUGIN_VERSIONS)?;
        tree.iter().map(|kv| decode(trees::PLUGIN_VERSIONS, &kv?.1)).collect()
    }

    /// Records an activation and the new active version in one transaction.
    pub fn set_plugin_active(
        &self,
        connection: &str,
        role: Role,
        key: &str,
        activation: &Activation,
    ) -> Result<(), StateError> {
        use sled::Transactional;
        let active = self.db.open_tree(trees::PLUGIN_ACTIVE)?;
        let history = self.db.open_tree(trees::PLUGIN_HISTORY)?;
        let seq = self.db.generate_id()?;
        (&active, &history)
            .transaction(|(a, h)| {
                a.insert(keys::active(connection, role), key.as_bytes())?;
                h.insert(keys::history(connection, role, seq), encode(activation))?;
                Ok::<(), sled::transaction::ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                sled::transaction::TransactionError::Storage(e) => StateError::Db(e),
                sled::transaction::TransactionError::Abort(()) => {
                    StateError::Corrupt { tree: trees::PLUGIN_ACTIVE, why: "transaction aborted".into() }
                }
            })?;
        self.db.flush()?;
        Ok(())
    }

    /// `((connection, role), name@version)` for every active plugin.
    pub fn plugin_active(&self) -> Result<ActivePlugins, StateError> {
        let tree = self.db.open_tree(trees::PLUGIN_ACTIVE)?;
        let corrupt = |why: String| StateError::Corrupt { tree: trees::PLUGIN_ACTIVE, why };
        tree.iter()
            .map(|kv| {
                let (k, v) = kv?;
                let k = String::from_utf8(k.to_vec()).map_err(|e| corrupt(e.to_string()))?;
                let (connection, role) =
                    k.split_once('\0').ok_or_else(|| corrupt(format!("bad key {k:?}")))?;
                let role: Role = role.parse().map_err(corrupt)?;
                let v = String::from_utf8(v.to_vec()).map_err(|e| corrupt(e.to_string()))?;
                Ok(((connection.to_string(), role), v))
            })
            .collect()
    }

    pub fn plugin_history(&self, connection: &str, role: Role) -> Result<Vec<Activation>, StateError> {
        let tree = self.db.open_tree(trees::PLUGIN_HISTORY)?;
        tree.scan_prefix(keys::history_prefix(connection, role))
            .map(|kv| decode(trees::PLUGIN_HISTORY, &kv?.1))
            .collect()
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("state values serialize")
}

fn decode<T: DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> Result<T, StateError> {
    serde_json::from_slice(bytes).map_err(|e| StateError::Corrupt { tree, why: e.to_string() })
}
