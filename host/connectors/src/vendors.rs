//! The one table of marketing platforms. Each entry comes from the vendor's
//! folder, which owns its config section (`[connections.NAME.<vendor>]`), the
//! checks of that section, and how a connector is built from it.
//!
//! The service and the config know vendors only through this table: a
//! connection's `marketing = "<name>"` picks the entry; its capabilities say
//! what the connection may ask of it (config validation refuses the rest,
//! naming the key).

use std::sync::Arc;

use crmsync_core::{Capabilities, ConfigError, MarketingApi};
use crmsync_sdk::types::{Record, Value};

use crate::http::HttpOptions;

/// What building a connector needs besides its config section.
#[derive(Debug, Clone, Default)]
pub struct BuildContext {
    /// The connection's HTTP timeouts and retries.
    pub http: HttpOptions,
}

/// Builds a platform's connector from its section (`key` names it in errors).
pub type Build =
    fn(section: &toml::Value, key: &str, ctx: &BuildContext) -> Result<Arc<dyn MarketingApi>, ConfigError>;

/// One marketing platform.
pub struct Vendor {
    /// The config name: `marketing = "<name>"`, and the key of its section.
    pub name: &'static str,
    /// How people name it.
    pub display: &'static str,
    /// What it has beyond people.
    pub capabilities: Capabilities,
    /// Every problem with its config section, each naming its key
    /// (`key` is the section's own key, e.g. `connections.acme.<name>`).
    pub check: fn(section: &toml::Value, key: &str) -> Vec<ConfigError>,
    /// The connector, from a checked section (secrets are read here).
    pub build: Build,
    /// The section that points it at the offline sandbox at `url`, its API
    /// key read from the file `key_file` (demo, tests, benchmarks).
    pub sandbox_section: fn(url: &str, key_file: &std::path::Path) -> toml::Value,
    /// What the sandbox must hold for that section to work (e.g. the
    /// audience it names), as a sandbox seed fragment merged into the
    /// demo's or a test's seed: `{"<sandbox vendor>": {...}}`, or `{}`.
    pub sandbox_seed: fn() -> serde_json::Value,
    /// The platform's own integration's schedules, the defaults of a
    /// connection that sets none: the audience job and the activity pass
    /// (as `schedule` strings; `None`: manual, and activities with every job).
    pub default_schedules: (Option<&'static str>, Option<&'static str>),
    /// The fields whose kind of value the platform fixes, whatever the
    /// account (names compared ignoring case): what `crmsync plugin test`
    /// checks a mapper's output against. Custom fields' kinds are the
    /// account's, checked when a write meets them.
    pub fixed_fields: &'static [(&'static str, FieldKind)],
}

/// The kind of value a platform takes in a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Text holding an email address.
    Email,
    Text,
    Boolean,
    /// A list of text values (or one text value).
    Tags,
}

impl FieldKind {
    /// Why `value` does not fit, if it does not (an empty value always fits).
    fn refuses(self, value: &Value) -> Option<&'static str> {
        match (self, value) {
            (_, Value::Null) => None,
            (FieldKind::Email, Value::Text(t)) if t.contains('@') && !t.trim().contains(' ') => None,
            (FieldKind::Email, Value::Text(_)) => Some("text that is an email address"),
            (FieldKind::Email, _) => Some("text (an email address)"),
            (FieldKind::Text, Value::Text(_)) => None,
            (FieldKind::Text, _) => Some("text"),
            (FieldKind::Boolean, Value::Boolean(_)) => None,
            (FieldKind::Boolean, _) => Some("a boolean (true or false)"),
            (FieldKind::Tags, Value::TextList(_) | Value::Text(_)) => None,
            (FieldKind::Tags, _) => Some("a list of text values"),
        }
    }
}

/// Each field of a mapped record that its target platform cannot take as
/// it is: `(field, why)`. Nothing for a record bound for Salesforce, whose
/// field types are the org's.
pub fn check_mapped(record: &Record) -> Vec<(String, String)> {
    let Some(vendor) = serde_json::to_value(record.system).ok().and_then(|s| s.as_str().and_then(vendor))
    else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    for (name, value) in &record.fields {
        let fixed = vendor.fixed_fields.iter().find(|(f, _)| f.eq_ignore_ascii_case(name));
        if let Some((_, kind)) = fixed
            && let Some(takes) = kind.refuses(value)
        {
            problems.push((
                name.clone(),
                format!("is {}; {} takes {takes} there", describe(value), vendor.display),
            ));
        }
    }
    problems
}

/// A value's kind and (short) content, for a message.
fn describe(value: &Value) -> String {
    let kind = match value {
        Value::Null => "empty",
        Value::Text(_) => "text",
        Value::Number(_) => "a number",
        Value::Boolean(_) => "a boolean",
        Value::Date(_) => "a date",
        Value::DateTime(_) => "a date-time",
        Value::Decimal(_) => "a decimal",
        Value::TextList(_) => "a text list",
    };
    let shown: String = value.to_string().chars().take(40).collect();
    format!("{kind} ({shown})")
}

/// For a vendor whose sandbox section needs nothing seeded.
pub fn no_sandbox_seed() -> serde_json::Value {
    serde_json::json!({})
}

// One folder per platform, declared here beside its table line.
#[path = "activecampaign/mod.rs"]
pub mod activecampaign;
#[path = "brevo/mod.rs"]
pub mod brevo;
#[path = "mailchimp/mod.rs"]
pub mod mailchimp;

/// Every marketing platform crmsync connects.
pub static VENDORS: &[Vendor] = &[activecampaign::VENDOR_ENTRY, brevo::VENDOR_ENTRY, mailchimp::VENDOR_ENTRY];

/// The platform named `name` in the config.
pub fn vendor(name: &str) -> Option<&'static Vendor> {
    VENDORS.iter().find(|v| v.name == name)
}

/// The names, for error messages: `a, b or c`.
pub fn names() -> String {
    let names: Vec<&str> = VENDORS.iter().map(|v| v.name).collect();
    match names.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// Reads a vendor section into its typed form, every problem keyed.
pub fn section<T: serde::de::DeserializeOwned>(section: &toml::Value, key: &str) -> Result<T, ConfigError> {
    section.clone().try_into::<T>().map_err(|e| {
        let message = e.to_string();
        // toml names the offending field in its message ("unknown field `x`").
        ConfigError::new(key, message.trim().to_string())
    })
}
