//! Which contract versions this host accepts, and the check that reads a
//! component's exports before anything runs.
//!
//! Policy: the host implements `crmsync:plugin@1.0.0`. It accepts a plugin
//! built for any `1.x.y` with `x.y` no newer than what it implements (an older
//! minor's interfaces are a subset of a newer one's), and refuses a plugin
//! built for another major — or for a newer minor, whose additions this host
//! cannot serve — with a message naming both versions.

use std::collections::BTreeSet;

use semver::Version;
use wasmtime::Engine;
use wasmtime::component::Component;

use super::{LoadError, Role};

/// The contract version this host implements.
pub const CONTRACT_VERSION: &str = "1.0.0";

const PACKAGE: &str = "crmsync:plugin/";

/// The roles a component exports, after checking each export's contract version.
pub fn exported_roles(
    engine: &Engine,
    component: &Component,
    name: &str,
) -> Result<BTreeSet<Role>, LoadError> {
    let exports: Vec<String> =
        component.component_type().exports(engine).map(|(n, _)| n.to_string()).collect();
    let host = Version::parse(CONTRACT_VERSION).expect("the host's contract version is valid semver");
    let mut roles = BTreeSet::new();
    for export in &exports {
        let Some(rest) = export.strip_prefix(PACKAGE) else { continue };
        let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
        let Some(role) = Role::ALL.into_iter().find(|r| r.interface() == interface) else { continue };
        let found = Version::parse(version).map_err(|_| LoadError::IncompatibleContract {
            name: name.to_string(),
            found: if version.is_empty() { "(unversioned)".into() } else { version.to_string() },
            advice: format!("which is not a contract version (this host supports {})", supported()),
        })?;
        if let Some(advice) = incompatible(&host, &found) {
            return Err(LoadError::IncompatibleContract {
                name: name.to_string(),
                found: found.to_string(),
                advice,
            });
        }
        roles.insert(role);
    }
    if roles.is_empty() {
        return Err(LoadError::NoRoles { name: name.to_string(), found: list(&exports) });
    }
    Ok(roles)
}

/// Checks a component plays `role`.
pub fn require_role(
    roles: &BTreeSet<Role>,
    role: Role,
    name: &str,
    engine: &Engine,
    component: &Component,
) -> Result<(), LoadError> {
    if roles.contains(&role) {
        return Ok(());
    }
    let exports: Vec<String> =
        component.component_type().exports(engine).map(|(n, _)| n.to_string()).collect();
    Err(LoadError::MissingExport {
        name: name.to_string(),
        role,
        supported: CONTRACT_VERSION,
        found: list(&exports),
    })
}

#[cfg(test)]
fn compatible(host: &Version, plugin: &Version) -> bool {
    incompatible(host, plugin).is_none()
}

/// Why a plugin built for contract `plugin` cannot run on this host, and
/// what to do about it; `None` when it can.
fn incompatible(host: &Version, plugin: &Version) -> Option<String> {
    let supported = format!("this host supports {}.0.0 up to {host}", host.major);
    if plugin.major != host.major {
        Some(format!(
            "another major version: {supported}; rebuild it with an SDK for contract {}.x",
            host.major
        ))
    } else if plugin.minor > host.minor {
        Some(format!(
            "newer than this host ({supported}): upgrade crmsync, or rebuild it with an SDK for contract {host} or older"
        ))
    } else if !plugin.pre.is_empty() {
        Some(format!("a pre-release ({supported}): rebuild it with a released SDK"))
    } else {
        None
    }
}

fn supported() -> String {
    format!("1.0.0 up to {CONTRACT_VERSION}")
}

fn list(exports: &[String]) -> String {
    if exports.is_empty() { "nothing".into() } else { exports.join(", ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_major_and_not_newer_is_compatible() {
        let host = Version::parse("1.2.0").unwrap();
        assert!(compatible(&host, &Version::parse("1.0.0").unwrap()));
        assert!(compatible(&host, &Version::parse("1.2.0").unwrap()));
        assert!(compatible(&host, &Version::parse("1.2.7").unwrap()));
        assert!(!compatible(&host, &Version::parse("1.3.0").unwrap()));
        assert!(!compatible(&host, &Version::parse("2.0.0").unwrap()));
        assert!(!compatible(&host, &Version::parse("0.9.0").unwrap()));
        assert!(!compatible(&host, &Version::parse("1.0.0-rc1").unwrap()));
    }

    #[test]
    fn a_newer_minor_and_another_major_are_refused_with_different_advice() {
        let host = Version::parse("1.2.0").unwrap();
        let newer = incompatible(&host, &Version::parse("1.3.0").unwrap()).unwrap();
        assert!(newer.starts_with("newer than this host") && newer.contains("upgrade crmsync"), "{newer}");
        let major = incompatible(&host, &Version::parse("2.0.0").unwrap()).unwrap();
        assert!(major.starts_with("another major version") && major.contains("contract 1.x"), "{major}");
        assert!(!major.contains("upgrade crmsync"), "{major}");
    }
}
