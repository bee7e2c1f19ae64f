//! The plugin registry: installed versions, the active version per connection
//! and role, and the history of activations — in sled — plus the in-memory
//! hot-swap table the engine reads at the start of every batch.
//!
//! Installing validates first: the component must load (compiled and cached
//! now, so activation never compiles), export every role it claims for a
//! compatible contract version, and pass its own fixtures. Activation writes
//! the new active version to sled, then swaps one pointer: a batch that already
//! took the previous [`Plugin`] finishes on it; the next batch gets the new one.
//! The previous version stays installed, so rollback is another swap.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::fixtures::{self, Case};
use super::storage;
use super::{LoadError, Plugin, PluginId, Role, Runtime};
use crmsync_store::{State, StoreError};

/// What installing a plugin needs besides its bytes.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    /// The roles to validate it for; every role it exports when empty.
    pub roles: Vec<Role>,
    /// Its own fixtures; they must all pass.
    pub fixtures: Vec<Case>,
    /// The version's own config (a JSON object): used instead of the role's
    /// config in crmsync.toml whenever this version is active.
    pub config: Option<serde_json::Value>,
    /// The JSON Schema its config must satisfy (from the plugin's typed
    /// `Config`): checked at install and at every activation.
    pub schema: Option<serde_json::Value>,
}

/// An installed version, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    pub id: PluginId,
    pub roles: BTreeSet<Role>,
    pub fixtures_passed: usize,
    pub installed_at: DateTime<Utc>,
    /// The version's own config (JSON text), when it was installed with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// The JSON Schema its config must satisfy (JSON text), when it declared one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
}

/// One activation or rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activation {
    pub at: DateTime<Utc>,
    pub connection: String,
    pub role: Role,
    pub from: Option<String>,
    pub to: String,
    pub rollback: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    State(#[from] StoreError),
    #[error("invalid plugin {what} {value:?}: {why}")]
    Invalid { what: &'static str, value: String, why: &'static str },
    #[error("{0} is already installed with different content; give the new build a new version")]
    VersionTaken(String),
    #[error("{0} is not installed")]
    NotInstalled(String),
    #[error("{plugin} does not play the {role} role (it plays: {plays})")]
    WrongRole { plugin: String, role: Role, plays: String },
    #[error("no earlier version of the {role} for connection {connection} to roll back to")]
    NothingToRollBack { connection: String, role: Role },
    #[error("{0}: its config must be a JSON object")]
    BadConfig(String),
    #[error(
        "{key} is already installed with another config or config schema; give the new one a new version"
    )]
    ConfigTaken { key: String },
    #[error("{key}: its config schema is not a usable JSON Schema: {why}")]
    BadSchema { key: String, why: String },
    #[error("{plugin} cannot run with {source_of}: {errors}")]
    ConfigRefused { plugin: String, source_of: String, errors: String },
    #[error(
        "connection {connection} requires a preview with no new errors before a new {role} is activated, and {plugin} has none with the config it would run with: run `crmsync plugin preview <file>.wasm --connection {connection} --role {role}` (with `--config` for a version's own config), then activate it"
    )]
    PreviewRequired { plugin: String, connection: String, role: Role },
    #[error("cannot store the plugin file {path}: {source}")]
    Blob { path: String, source: std::io::Error },
}

type Table = HashMap<(String, Role), Arc<Plugin>>;

/// The registry. Cheap to share behind an `Arc`.
pub struct Registry {
    state: State,
    runtime: Runtime,
    active: ArcSwap<Table>,
    /// Loaded versions by `name@version`, so re-activation never reloads.
    loaded: Mutex<HashMap<String, Arc<Plugin>>>,
    /// Serialises activations so two never interleave their write and swap.
    activating: Mutex<()>,
    /// Each connection's role configs from crmsync.toml: what a version
    /// without its own config runs with, checked against its schema.
    role_configs: Mutex<HashMap<(String, Role), String>>,
    /// The connections whose new versions need a clean preview first.
    require_preview: Mutex<std::collections::HashSet<String>>,
}

impl Registry {
    /// Opens the registry and loads every active version (from the compiled
    /// cache: no compilation when nothing changed).
    pub fn open(state: State, runtime: Runtime) -> Result<Registry, RegistryError> {
        let registry = Registry {
            state,
            runtime,
            active: ArcSwap::from_pointee(Table::new()),
            loaded: Mutex::new(HashMap::new()),
            activating: Mutex::new(()),
            role_configs: Mutex::new(HashMap::new()),
            require_preview: Mutex::default(),
        };
        let mut table = Table::new();
        for ((connection, role), key) in storage::active(&registry.state)? {
            let plugin = registry.load(&key)?;
            table.insert((connection, role), plugin);
        }
        registry.active.store(Arc::new(table));
        Ok(registry)
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The active plugin for a connection and role: what a batch uses from
    /// start to end. Lock-free.
    pub fn current(&self, connection: &str, role: Role) -> Option<Arc<Plugin>> {
        self.active.load().get(&(connection.to_string(), role)).cloned()
    }

    /// Validates and installs a plugin version. Returns what was stored.
    pub fn install(&self, bytes: &[u8], manifest: &Manifest) -> Result<Installed, RegistryError> {
        check_name("name", &manifest.name)?;
        check_name("version", &manifest.version)?;
        let key = format!("{}@{}", manifest.name, manifest.version);
        let config = match &manifest.config {
            None => None,
            Some(v) if v.is_object() => Some(v.to_string()),
            Some(_) => return Err(RegistryError::BadConfig(key)),
        };
        let schema = match &manifest.schema {
            None => None,
            Some(schema) => {
                jsonschema::validator_for(schema)
                    .map_err(|e| RegistryError::BadSchema { key: key.clone(), why: e.to_string() })?;
                Some(schema.to_string())
            }
        };
        if let (Some(schema), Some(config)) = (&schema, &config) {
            check_config(schema, config).map_err(|errors| RegistryError::ConfigRefused {
                plugin: key.clone(),
                source_of: "its own config".into(),
                errors,
            })?;
        }
        let sha256 = hex::encode(Sha256::digest(bytes));
        if let Some(existing) = storage::version(&self.state, &key)? {
            if existing.id.sha256 != sha256 {
                return Err(RegistryError::VersionTaken(key));
            }
            if existing.config != config || existing.schema != schema {
                return Err(RegistryError::ConfigTaken { key });
            }
        }
        let plugin = self.runtime.load(bytes, &manifest.name, &manifest.version)?;
        let roles: Vec<Role> = if manifest.roles.is_empty() {
            plugin.roles().iter().copied().collect()
        } else {
            manifest.roles.clone()
        };
        for role in &roles {
            plugin.require(*role)?;
        }
        let mut passed = 0;
        for role in &roles {
            let cases: Vec<Case> =
                manifest.fixtures.iter().filter(|c| c.role.unwrap_or(*role) == *role).cloned().collect();
            passed += fixtures::validate(&plugin, *role, &cases)?;
        }
        let path = self.state.blob_path(&sha256);
        if !path.exists() {
            let blob_err = |source| RegistryError::Blob { path: path.display().to_string(), source };
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, bytes).map_err(blob_err)?;
            std::fs::rename(&tmp, &path).map_err(blob_err)?;
        }
        let installed = Installed {
            id: plugin.id().clone(),
            roles: plugin.roles().clone(),
            fixtures_passed: passed,
            installed_at: Utc::now(),
            config: config.clone(),
            schema,
        };
        storage::put_version(&self.state, &key, &installed)?;
        self.loaded.lock().expect("loaded lock").insert(key, Arc::new(plugin.with_config(config)));
        tracing::info!(plugin = %installed.id, roles = ?installed.roles, fixtures = passed, "plugin installed");
        Ok(installed)
    }

    /// Makes `name@version` the active `role` plugin of `connection`, from the next batch on.
    pub fn activate(&self, connection: &str, role: Role, key: &str) -> Result<PluginId, RegistryError> {
        self.switch(connection, role, key, false)
    }

    /// Re-activates the version that was active before the current one.
    pub fn rollback(&self, connection: &str, role: Role) -> Result<PluginId, RegistryError> {
        let current = self.current(connection, role).map(|p| p.id().to_string());
        let previous = storage::history(&self.state, connection, role)?
            .into_iter()
            .rev()
            .find(|a| Some(&a.to) == current.as_ref() && !a.rollback)
            .and_then(|a| a.from)
            .ok_or_else(|| RegistryError::NothingToRollBack { connection: connection.into(), role })?;
        self.switch(connection, role, &previous, true)
    }

    fn switch(
        &self,
        connection: &str,
        role: Role,
        key: &str,
        rollback: bool,
    ) -> Result<PluginId, RegistryError> {
        let plugin = self.load(key)?;
        if !plugin.roles().contains(&role) {
            return Err(RegistryError::WrongRole {
                plugin: key.into(),
                role,
                plays: plugin.roles().iter().map(Role::to_string).collect::<Vec<_>>().join(", "),
            });
        }
        self.check_config_of(connection, role, key, &plugin)?;
        // Replacing a running version (not going back to one) may need a clean preview.
        let required = self.require_preview.lock().expect("require preview lock").contains(connection);
        if required && !rollback && self.current(connection, role).is_some() {
            let (config, _) = self.effective_config(connection, role, &plugin);
            if storage::clean_preview(&self.state, connection, role, &plugin.id().sha256, &config)?.is_none()
            {
                return Err(RegistryError::PreviewRequired {
                    plugin: key.into(),
                    connection: connection.into(),
                    role,
                });
            }
        }
        let _guard = self.activating.lock().expect("activation lock");
        let from = self.current(connection, role).map(|p| p.id().to_string());
        let activation = Activation {
            at: Utc::now(),
            connection: connection.into(),
            role,
            from,
            to: key.into(),
            rollback,
        };
        storage::set_active(&self.state, connection, role, key, &activation)?;
        self.active.rcu(|table| {
            let mut next = Table::clone(table);
            next.insert((connection.to_string(), role), plugin.clone());
            next
        });
        tracing::info!(connection, %role, plugin = key, rollback, "plugin activated");
        Ok(plugin.id().clone())
    }

    /// A loaded installed version (loaded once, from the compiled cache).
    fn load(&self, key: &str) -> Result<Arc<Plugin>, RegistryError> {
        if let Some(plugin) = self.loaded.lock().expect("loaded lock").get(key) {
            return Ok(plugin.clone());
        }
        let installed =
            storage::version(&self.state, key)?.ok_or_else(|| RegistryError::NotInstalled(key.into()))?;
        let plugin = Arc::new(
            self.runtime
                .load_file(
                    &self.state.blob_path(&installed.id.sha256),
                    &installed.id.name,
                    &installed.id.version,
                )?
                .with_config(installed.config),
        );
        self.loaded.lock().expect("loaded lock").insert(key.into(), plugin.clone());
        Ok(plugin)
    }

    /// Sets the role configs of a connection from crmsync.toml (JSON text per
    /// role; a role without one runs with `{}`).
    pub fn set_role_configs(&self, connection: &str, configs: &HashMap<Role, String>) {
        let mut table = self.role_configs.lock().expect("role configs lock");
        for role in Role::ALL {
            match configs.get(&role) {
                Some(config) => table.insert((connection.to_string(), role), config.clone()),
                None => table.remove(&(connection.to_string(), role)),
            };
        }
    }

    /// Whether activating a new version for `connection` needs a clean
    /// preview of it first (`rules.require_preview` in crmsync.toml).
    pub fn set_require_preview(&self, connection: &str, required: bool) {
        let mut set = self.require_preview.lock().expect("require preview lock");
        if required {
            set.insert(connection.to_string());
        } else {
            set.remove(connection);
        }
    }

    /// Records a preview of the component `sha256` with `config` (JSON text,
    /// the config it ran with) that found no new errors.
    pub fn record_clean_preview(
        &self,
        connection: &str,
        role: Role,
        sha256: &str,
        config: &str,
    ) -> Result<(), RegistryError> {
        Ok(storage::put_clean_preview(&self.state, connection, role, sha256, config, Utc::now())?)
    }

    /// The config a version runs with on a connection — its own, else the
    /// role's in crmsync.toml — and where it comes from.
    fn effective_config(&self, connection: &str, role: Role, plugin: &Plugin) -> (String, String) {
        match plugin.config() {
            Some(own) => (own.to_string(), "its own config".to_string()),
            None => (
                self.role_configs
                    .lock()
                    .expect("role configs lock")
                    .get(&(connection.to_string(), role))
                    .cloned()
                    .unwrap_or_else(|| "{}".into()),
                format!("connections.{connection}.rules.{role}.config in crmsync.toml"),
            ),
        }
    }

    /// Checks the active version of a role runs with a config its schema
    /// accepts (at start and after crmsync.toml changes).
    pub fn check_active(&self, connection: &str, role: Role) -> Result<(), RegistryError> {
        match self.current(connection, role) {
            Some(plugin) => self.check_config_of(connection, role, &plugin.id().to_string(), &plugin),
            None => Ok(()),
        }
    }

    /// The config `key` would run with on `connection` — its own, else the
    /// role's in crmsync.toml — against its schema, if it declared one.
    fn check_config_of(
        &self,
        connection: &str,
        role: Role,
        key: &str,
        plugin: &Plugin,
    ) -> Result<(), RegistryError> {
        let Some(schema) = storage::version(&self.state, key)?.and_then(|i| i.schema) else { return Ok(()) };
        let (config, source_of) = self.effective_config(connection, role, plugin);
        check_config(&schema, &config).map_err(|errors| RegistryError::ConfigRefused {
            plugin: key.to_string(),
            source_of,
            errors,
        })
    }

    /// Every installed version.
    pub fn list(&self) -> Result<Vec<Installed>, RegistryError> {
        Ok(storage::versions(&self.state)?)
    }

    /// The active version per connection and role.
    pub fn active(&self) -> Result<storage::ActivePlugins, RegistryError> {
        Ok(storage::active(&self.state)?)
    }

    /// Activations for a connection and role, oldest first.
    pub fn history(&self, connection: &str, role: Role) -> Result<Vec<Activation>, RegistryError> {
        Ok(storage::history(&self.state, connection, role)?)
    }
}

/// Checks a config (JSON text) against a schema (JSON text); the violations,
/// each with where it is, when it does not satisfy it.
pub fn check_config(schema: &str, config: &str) -> Result<(), String> {
    let schema: serde_json::Value = serde_json::from_str(schema).map_err(|e| format!("the schema: {e}"))?;
    let config: serde_json::Value = serde_json::from_str(config).map_err(|e| format!("not JSON: {e}"))?;
    let validator = jsonschema::validator_for(&schema).map_err(|e| format!("the schema: {e}"))?;
    let errors: Vec<String> = validator
        .iter_errors(&config)
        .take(5)
        .map(|e| {
            let at = e.instance_path().to_string();
            format!("at {}: {e}", if at.is_empty() { "/" } else { at.as_str() })
        })
        .collect();
    if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
}

fn check_name(what: &'static str, value: &str) -> Result<(), RegistryError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'));
    if ok {
        Ok(())
    } else {
        Err(RegistryError::Invalid {
            what,
            value: value.into(),
            why: "use 1 to 64 letters, digits, '-', '_', '.' or '+'",
        })
    }
}
