//! One record per finished run, in the `runs` tree, in time order per connection.

use chrono::{DateTime, Utc};
use crmsync_core::store::{StoreError, StoreResult};

use crate::{State, db_error, keys, trees};

pub(crate) fn put(
    state: &State,
    connection: &str,
    started: DateTime<Utc>,
    run: &serde_json::Value,
) -> StoreResult<()> {
    let key = keys::run(connection, started.timestamp_millis());
    let bytes =
        serde_json::to_vec(run).map_err(|e| StoreError::Corrupt { tree: trees::RUNS, why: e.to_string() })?;
    state.tree(trees::RUNS)?.insert(key, bytes).map_err(db_error)?;
    state.flush()
}

/// The connection's runs, newest first.
pub(crate) fn list(state: &State, connection: &str, limit: usize) -> StoreResult<Vec<serde_json::Value>> {
    state
        .tree(trees::RUNS)?
        .scan_prefix(keys::connection_prefix(connection))
        .rev()
        .take(limit)
        .map(|kv| {
            let (_, v) = kv.map_err(db_error)?;
            serde_json::from_slice(&v)
                .map_err(|e| StoreError::Corrupt { tree: trees::RUNS, why: e.to_string() })
        })
        .collect()
}
