//! The default rules, built from `plugins/` by `build.rs` and embedded in the
//! binary: `selection` (selector), `standard-mapping` (mapper) and
//! `field-policy-resolver` (resolver), each with its fixtures. A connection
//! whose config names no plugin file for a role starts on these; a plugin
//! file in the config overrides them, and later versions come through
//! `crmsync plugin activate` or the admin API.

use sha2::{Digest, Sha256};

use crmsync_runtime::registry::{Manifest, Registry};
use crmsync_runtime::{PluginId, Role, fixtures};

/// One embedded default rule.
pub struct DefaultRule {
    pub name: &'static str,
    pub role: Role,
    pub wasm: &'static [u8],
    pub fixtures: &'static str,
    /// Its config's JSON Schema, from its typed `Config` (kept current by its tests).
    pub schema: &'static str,
}

macro_rules! embedded {
    ($name:literal, $role:expr) => {
        DefaultRule {
            name: $name,
            role: $role,
            wasm: include_bytes!(concat!(env!("OUT_DIR"), "/", $name, ".wasm")),
            fixtures: include_str!(concat!(env!("OUT_DIR"), "/", $name, ".fixtures.jsonl")),
            schema: include_str!(concat!("../../plugins/", $name, "/config.schema.json")),
        }
    };
}

pub static DEFAULTS: [DefaultRule; 3] = [
    embedded!("selection", Role::Selector),
    embedded!("standard-mapping", Role::Mapper),
    embedded!("field-policy-resolver", Role::Resolver),
];

/// The default rule of a role.
pub fn for_role(role: Role) -> &'static DefaultRule {
    DEFAULTS.iter().find(|d| d.role == role).expect("a default rule for every role")
}

impl DefaultRule {
    /// `<crmsync version>+<first 8 hex of the component's SHA-256>`: a new
    /// build of a default rule is a new version, never a clash.
    pub fn version(&self) -> String {
        let sha = hex::encode(Sha256::digest(self.wasm));
        format!("{}+{}", env!("CARGO_PKG_VERSION"), &sha[..8])
    }

    /// Installs this rule (validated against its own fixtures) unless that
    /// version is installed already.
    pub fn install(&self, registry: &Registry) -> Result<PluginId, String> {
        let manifest = Manifest {
            name: self.name.into(),
            version: self.version(),
            roles: vec![self.role],
            fixtures: fixtures::parse(self.fixtures, None)?,
            config: None,
            schema: Some(
                serde_json::from_str(self.schema).map_err(|e| format!("{}'s schema: {e}", self.name))?,
            ),
        };
        registry.install(self.wasm, &manifest).map(|i| i.id).map_err(|e| e.to_string())
    }
}
