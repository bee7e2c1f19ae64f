//! {{name}}: a crmsync selector plugin. Decides which Salesforce records sync
//! to the marketing platform: here, Leads and Contacts with an email, except
//! those whose `Email` domain is in the config's `exclude_domains`. Change
//! `select` to your rules and `fixtures.jsonl` to match.

use crmsync_sdk::prelude::*;
use serde::Deserialize;

#[derive(Default)]
pub struct Plugin;

/// Your config section (JSON), parsed: `{"exclude_domains": ["example.org"]}`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub exclude_domains: Vec<String>,
}

impl Selector for Plugin {
    type Config = Config;

    fn select(&self, ctx: &Context<Config>, record: &Record) -> Selection {
        if !matches!(record.object_type.as_str(), "Lead" | "Contact") {
            return Selection::Skip(format!("{} is not synced", record.object_type));
        }
        let Some(email) = record.text("Email").map(|e| e.trim().to_lowercase()).filter(|e| e.contains('@')) else {
            return Selection::Skip("no email address".into());
        };
        let domain = email.rsplit('@').next().unwrap_or_default();
        if ctx.config.exclude_domains.iter().any(|d| d.eq_ignore_ascii_case(domain)) {
            return Selection::Skip(format!("{domain} is excluded"));
        }
        Selection::Sync
    }
}

crmsync_sdk::export_selector!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use crmsync_sdk::testing::Harness;

    /// Writes {{name}}.schema.json from `Config`: `crmsync plugin install` ships
    /// it with the version, and every config is checked against it at install
    /// and activation.
    #[test]
    fn the_config_schema_is_written() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/{{name}}.schema.json");
        std::fs::write(path, crmsync_sdk::testing::config_schema::<Config>()).unwrap();
    }

    /// fixtures.jsonl, run natively by the runner `crmsync plugin test` uses.
    #[test]
    fn the_fixtures_pass() {
        crmsync_sdk::testing::selector_fixtures(&Plugin, concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures.jsonl"));
    }

    #[test]
    fn an_excluded_domain_is_skipped_with_its_reason() {
        let lead = Record::new(System::Salesforce, "Lead").with("Email", "a@Example.org");
        let out = Harness::new(r#"{"exclude_domains": ["example.org"]}"#).select(&Plugin, &[lead]);
        assert_eq!(out, vec![Selection::Skip("example.org is excluded".into())]);
    }
}
