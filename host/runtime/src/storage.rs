//! The registry's trees in the state database: installed versions, the
//! active version per connection and role, and the history of activations.
//! Keys are built here.

use crmsync_store::{State, StoreError, db_error};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Role;
use super::registry::{Activation, Installed};

pub const PLUGIN_VERSIONS: &str = "plugin_versions";
pub const PLUGIN_ACTIVE: &str = "plugin_active";
pub const PLUGIN_HISTORY: &str = "plugin_history";
pub const PLUGIN_PREVIEWS: &str = "plugin_previews";

/// `((connection, role), name@version)` for every active plugin.
pub type ActivePlugins = Vec<((String, Role), String)>;

/// `connection \0 role`
fn active_key(connection: &str, role: Role) -> Vec<u8> {
    format!("{connection}\0{role}").into_bytes()
}

/// `connection \0 role \0` — the prefix of that pair's history.
fn history_prefix(connection: &str, role: Role) -> Vec<u8> {
    format!("{connection}\0{role}\0").into_bytes()
}

/// History keys sort by a big-endian sequence number.
fn history_key(connection: &str, role: Role, seq: u64) -> Vec<u8> {
    let mut key = history_prefix(connection, role);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("registry values serialize")
}

fn decode<T: DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt { tree, why: e.to_string() })
}

pub fn version(state: &State, key: &str) -> Result<Option<Installed>, StoreError> {
    let tree = state.tree(PLUGIN_VERSIONS)?;
    tree.get(key).map_err(db_error)?.map(|v| decode(PLUGIN_VERSIONS, &v)).transpose()
}

pub fn put_version(state: &State, key: &str, installed: &Installed) -> Result<(), StoreError> {
    let tree = state.tree(PLUGIN_VERSIONS)?;
    tree.insert(key, encode(installed)).map_err(db_error)?;
    tree.flush().map_err(db_error)?;
    Ok(())
}

pub fn versions(state: &State) -> Result<Vec<Installed>, StoreError> {
    let tree = state.tree(PLUGIN_VERSIONS)?;
    tree.iter().map(|kv| decode(PLUGIN_VERSIONS, &kv.map_err(db_error)?.1)).collect()
}

/// Records an activation and the new active version in one transaction.
pub fn set_active(
    state: &State,
    connection: &str,
    role: Role,
    key: &str,
    activation: &Activation,
) -> Result<(), StoreError> {
    use sled::Transactional;
    let active = state.tree(PLUGIN_ACTIVE)?;
    let history = state.tree(PLUGIN_HISTORY)?;
    let seq = state.db().generate_id().map_err(db_error)?;
    (&active, &history)
        .transaction(|(a, h)| {
            a.insert(active_key(connection, role), key.as_bytes())?;
            h.insert(history_key(connection, role, seq), encode(activation))?;
            Ok::<(), sled::transaction::ConflictableTransactionError<()>>(())
        })
        .map_err(|e| match e {
            sled::transaction::TransactionError::Storage(e) => db_error(e),
            sled::transaction::TransactionError::Abort(()) => {
                StoreError::Corrupt { tree: PLUGIN_ACTIVE, why: "transaction aborted".into() }
            }
        })?;
    state.flush()
}

/// Every active plugin.
pub fn active(state: &State) -> Result<ActivePlugins, StoreError> {
    let tree = state.tree(PLUGIN_ACTIVE)?;
    let corrupt = |why: String| StoreError::Corrupt { tree: PLUGIN_ACTIVE, why };
    tree.iter()
        .map(|kv| {
            let (k, v) = kv.map_err(db_error)?;
            let k = String::from_utf8(k.to_vec()).map_err(|e| corrupt(e.to_string()))?;
            let (connection, role) = k.split_once('\0').ok_or_else(|| corrupt(format!("bad key {k:?}")))?;
            let role: Role = role.parse().map_err(corrupt)?;
            let v = String::from_utf8(v.to_vec()).map_err(|e| corrupt(e.to_string()))?;
            Ok(((connection.to_string(), role), v))
        })
        .collect()
}

/// `connection \0 role \0 component sha256 \0 sha256 of the config text`
/// (the config as canonical JSON: the same config written differently is the same).
fn preview_key(connection: &str, role: Role, sha256: &str, config: &str) -> Vec<u8> {
    use sha2::Digest;
    let canonical = serde_json::from_str::<serde_json::Value>(config)
        .map_or_else(|_| config.to_string(), |v| v.to_string());
    let config = hex::encode(sha2::Sha256::digest(canonical.as_bytes()));
    format!("{connection}\0{role}\0{sha256}\0{config}").into_bytes()
}

/// Records that a preview of a component with a config found no new errors.
pub fn put_clean_preview(
    state: &State,
    connection: &str,
    role: Role,
    sha256: &str,
    config: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    let tree = state.tree(PLUGIN_PREVIEWS)?;
    tree.insert(preview_key(connection, role, sha256, config), encode(&at)).map_err(db_error)?;
    tree.flush().map_err(db_error)?;
    Ok(())
}

/// When a preview of that component with that config last found no new errors.
pub fn clean_preview(
    state: &State,
    connection: &str,
    role: Role,
    sha256: &str,
    config: &str,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
    let tree = state.tree(PLUGIN_PREVIEWS)?;
    tree.get(preview_key(connection, role, sha256, config))
        .map_err(db_error)?
        .map(|v| decode(PLUGIN_PREVIEWS, &v))
        .transpose()
}

pub fn history(state: &State, connection: &str, role: Role) -> Result<Vec<Activation>, StoreError> {
    let tree = state.tree(PLUGIN_HISTORY)?;
    tree.scan_prefix(history_prefix(connection, role))
        .map(|kv| decode(PLUGIN_HISTORY, &kv.map_err(db_error)?.1))
        .collect()
}
