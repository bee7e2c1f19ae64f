//! The `[connections.NAME.brevo]` config section, its checks, how the
//! connector is built from it, and the vendor table's entry.

use std::sync::Arc;
use std::time::Duration;

use crmsync_core::{Capabilities, ConfigError, MarketingApi, SecretRef};
use serde::Deserialize;

use super::{BrevoConfig, BrevoConnector, ListChoice};
use crate::vendors::{BuildContext, FieldKind, Vendor, section};

/// People and consent: Brevo contacts have no accounts, tags, activity feed
/// or actions crmsync uses.
pub const CAPABILITIES: Capabilities = Capabilities {
    people: "contact",
    accounts: None,
    tags: false,
    activities: false,
    actions: false,
    consent: true,
};

/// This platform's line in [`crate::VENDORS`].
pub const VENDOR_ENTRY: Vendor = Vendor {
    name: "brevo",
    display: "Brevo",
    capabilities: CAPABILITIES,
    check,
    build,
    sandbox_section,
    sandbox_seed: crate::vendors::no_sandbox_seed,
    default_schedules: (None, None),
    fixed_fields: &[
        ("email", FieldKind::Email),
        ("SMS", FieldKind::Text),
        ("WHATSAPP", FieldKind::Text),
        ("LANDLINE_NUMBER", FieldKind::Text),
        ("EXT_ID", FieldKind::Text),
        (crmsync_core::connector::fields::UNSUBSCRIBE, FieldKind::Boolean),
    ],
};

/// The API's address.
pub const DEFAULT_API_URL: &str = "https://api.brevo.com/v3";

/// ```toml
/// [connections.acme.brevo]
/// api_key = { env = "BREVO_API_KEY" }   # or { file = "/run/secrets/brevo" }
/// list_name = "Salesforce"              # found, or created; or list_id = 7 (must exist)
/// create_in_salesforce = false          # contacts created in Brevo become Leads only when true
/// requests_per_second = 10              # Brevo's contacts limit; 0 turns pacing off
/// monthly_tasks = 100000                # records written a month: warn at 80 %, pause at 100 %; 0: no quota
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    api_key: SecretRef,
    /// The API's base URL (a sandbox's, in tests and the demo).
    #[serde(default = "default_api_url")]
    api_url: String,
    list_id: Option<u64>,
    list_name: Option<String>,
    /// Contacts created in Brevo are copied to Salesforce only when this is on.
    #[serde(default)]
    create_in_salesforce: bool,
    /// The account's contacts rate limit; `0` turns client-side pacing off.
    #[serde(default = "default_rate")]
    requests_per_second: f64,
    /// Upserts of at least this many new contacts go through `/contacts/import`.
    #[serde(default = "default_import_threshold")]
    import_threshold: usize,
    /// Pause between `/processes/{id}` polls of an import.
    #[serde(default = "default_import_poll_ms")]
    import_poll_ms: u64,
    /// Records written a month (either side) before the connection pauses; `0`: no quota.
    #[serde(default = "default_monthly_tasks")]
    monthly_tasks: u64,
}

fn default_monthly_tasks() -> u64 {
    100_000
}

fn default_api_url() -> String {
    DEFAULT_API_URL.into()
}
fn default_rate() -> f64 {
    10.0
}
fn default_import_threshold() -> usize {
    50
}
fn default_import_poll_ms() -> u64 {
    1000
}

fn check(raw: &toml::Value, key: &str) -> Vec<ConfigError> {
    let s: Section = match section(raw, key) {
        Ok(s) => s,
        Err(e) => return vec![e],
    };
    let mut problems = Vec::new();
    problems.extend(crate::http::check_url(&s.api_url, &format!("{key}.api_url")).err());
    problems.extend(s.api_key.check(&format!("{key}.api_key")).err());
    if let Err(e) = list_choice(&s, key) {
        problems.push(e);
    }
    if s.requests_per_second.is_nan() || s.requests_per_second < 0.0 {
        problems.push(ConfigError::new(format!("{key}.requests_per_second"), "must be ≥ 0"));
    }
    if s.import_threshold == 0 {
        problems.push(ConfigError::new(format!("{key}.import_threshold"), "must be at least 1"));
    }
    problems
}

fn list_choice(s: &Section, key: &str) -> Result<ListChoice, ConfigError> {
    match (s.list_id, s.list_name.as_deref().map(str::trim)) {
        (Some(_), Some(_)) => {
            Err(ConfigError::new(format!("{key}.list_name"), "give list_id or list_name, not both"))
        }
        (Some(0), None) => Err(ConfigError::new(format!("{key}.list_id"), "Brevo list ids start at 1")),
        (Some(id), None) => Ok(ListChoice::Id(id)),
        (None, Some("")) => Err(ConfigError::new(format!("{key}.list_name"), "must not be empty")),
        (None, Some(name)) => Ok(ListChoice::Name(name.to_string())),
        (None, None) => Err(ConfigError::new(
            format!("{key}.list_id"),
            "choose the Brevo list contacts sync with: list_id = <an existing list's id> or list_name = \"…\" (found, or created)",
        )),
    }
}

fn build(raw: &toml::Value, key: &str, ctx: &BuildContext) -> Result<Arc<dyn MarketingApi>, ConfigError> {
    let s: Section = section(raw, key)?;
    let list = list_choice(&s, key)?;
    let mut cfg = BrevoConfig::new(s.api_key.resolve(&format!("{key}.api_key"))?, list);
    cfg.api_url = s.api_url.clone();
    cfg.create_in_salesforce = s.create_in_salesforce;
    cfg.requests_per_second = (s.requests_per_second > 0.0).then_some(s.requests_per_second);
    cfg.import_threshold = s.import_threshold;
    cfg.import_poll = Duration::from_millis(s.import_poll_ms);
    cfg.monthly_tasks = (s.monthly_tasks > 0).then_some(s.monthly_tasks);
    cfg.http = ctx.http.clone();
    let connector = BrevoConnector::new(cfg).map_err(|e| ConfigError::new(key, e.to_string()))?;
    Ok(Arc::new(connector))
}

fn sandbox_section(url: &str, key_file: &std::path::Path) -> toml::Value {
    let mut t = toml::Table::new();
    t.insert("api_url".into(), format!("{}/v3", url.trim_end_matches('/')).into());
    let mut key = toml::Table::new();
    key.insert("file".into(), key_file.display().to_string().into());
    t.insert("api_key".into(), key.into());
    t.insert("list_name".into(), "Salesforce".into());
    t.insert("requests_per_second".into(), 0.0.into());
    t.insert("import_poll_ms".into(), 20.into());
    toml::Value::Table(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> toml::Value {
        toml::from_str(text).expect("toml")
    }

    #[test]
    fn every_problem_names_its_key() {
        let keys = |text: &str| -> Vec<String> {
            check(&parse(text), "connections.a.brevo").into_iter().map(|e| e.key).collect()
        };
        assert_eq!(keys("api_key = { env = \"K\" }\nlist_id = 3"), Vec::<String>::new());
        assert_eq!(keys("api_key = { env = \"K\" }"), ["connections.a.brevo.list_id"]);
        assert_eq!(
            keys("api_key = { env = \"K\" }\nlist_id = 3\nlist_name = \"x\""),
            ["connections.a.brevo.list_name"]
        );
        assert_eq!(
            keys("api_key = \"xkeysib-literal\"\nlist_name = \"x\"\nrequests_per_second = -1"),
            ["connections.a.brevo.api_key", "connections.a.brevo.requests_per_second"]
        );
        let unknown = check(&parse("api_key = { env = \"K\" }\nlist_id = 3\nlsit = 1"), "k");
        assert!(unknown[0].message.contains("lsit"), "{unknown:?}");
        let literal = check(&parse("api_key = \"xkeysib-literal\"\nlist_id = 3"), "k");
        assert!(!format!("{literal:?}").contains("xkeysib-literal"));
    }
}
