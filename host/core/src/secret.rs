//! Credentials and where they come from.
//!
//! - [`Secret`]: a credential (token, password, API key) that never shows in
//!   `Debug`, `Display`, errors or logs. Read it only where it goes on the wire.
//! - [`SecretRef`]: where the config says to read one — `{ env = "NAME" }` or
//!   `{ file = "path" }`; a literal in the file is refused.
//! - [`ConfigError`]: a config problem, naming its key.

use std::fmt;
use std::path::PathBuf;

/// A credential whose `Debug` and `Display` print `**REDACTED**`.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place it is sent.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("**REDACTED**")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("**REDACTED**")
    }
}

/// A config problem: the key it is about and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError { key: key.into(), message: message.into() }
    }
}

/// Where a secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    File(PathBuf),
    /// A literal in the file: refused with a message saying where secrets go
    /// (its value is dropped at once and never shown).
    Literal,
    /// Neither form: what was found instead (key names only).
    Malformed(String),
}

const FORMS: &str = "a secret is written { env = \"NAME\" } or { file = \"path\" }";

impl<'de> serde::Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(#[allow(dead_code)] String),
            Table(std::collections::BTreeMap<String, serde_json::Value>),
            Other(#[allow(dead_code)] serde_json::Value),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::Text(_) => SecretRef::Literal,
            Raw::Table(t) => match (t.len(), t.get("env"), t.get("file")) {
                (1, Some(serde_json::Value::String(v)), None) => SecretRef::Env(v.clone()),
                (1, None, Some(serde_json::Value::String(p))) => SecretRef::File(PathBuf::from(p)),
                _ => {
                    let keys: Vec<&str> = t.keys().map(String::as_str).collect();
                    SecretRef::Malformed(format!("found {{ {} }}", keys.join(", ")))
                }
            },
            Raw::Other(_) => SecretRef::Malformed("found a value that is neither text nor a table".into()),
        })
    }
}

impl SecretRef {
    pub fn env(name: impl Into<String>) -> Self {
        SecretRef::Env(name.into())
    }

    /// Checks the reference's form without reading it.
    pub fn check(&self, key: &str) -> Result<(), ConfigError> {
        match self {
            SecretRef::Env(_) | SecretRef::File(_) => Ok(()),
            SecretRef::Literal => {
                Err(ConfigError::new(key, format!("secrets are not written in the config file; {FORMS}")))
            }
            SecretRef::Malformed(found) => Err(ConfigError::new(key, format!("{FORMS}; {found}"))),
        }
    }

    /// Reads the secret; `key` names it in errors (never its value).
    pub fn resolve(&self, key: &str) -> Result<Secret, ConfigError> {
        self.check(key)?;
        match self {
            SecretRef::Env(env) => match std::env::var(env) {
                Ok(v) if !v.is_empty() => Ok(Secret::new(v)),
                _ => Err(ConfigError::new(key, format!("environment variable {env} is not set"))),
            },
            SecretRef::File(file) => match std::fs::read_to_string(file) {
                Ok(v) if !v.trim().is_empty() => Ok(Secret::new(v.trim().to_string())),
                Ok(_) => Err(ConfigError::new(key, format!("{} is empty", file.display()))),
                Err(e) => Err(ConfigError::new(key, format!("cannot read {}: {e}", file.display()))),
            },
            SecretRef::Literal | SecretRef::Malformed(_) => unreachable!("refused by check"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_itself() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "**REDACTED** **REDACTED**");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn literal_and_malformed_references_are_refused_without_echoing_them() {
        let parse = |json: &str| serde_json::from_str::<SecretRef>(json).unwrap();
        let e = parse(r#""hunter2""#).resolve("connections.acme.salesforce.password").unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
        assert!(e.to_string().contains("env"), "{e}");
        let e = parse(r#"{"evn": "X"}"#).resolve("k").unwrap_err();
        assert_eq!(e.key, "k");
        assert!(e.message.contains("found { evn }"), "{e}");
        assert_eq!(parse(r#"{"env": "X"}"#), SecretRef::Env("X".into()));
        let e = SecretRef::env("CRMSYNC_TEST_SURELY_UNSET").resolve("k").unwrap_err();
        assert_eq!(e.to_string(), "k: environment variable CRMSYNC_TEST_SURELY_UNSET is not set");
    }
}
