//! {{name}}: a crmsync resolver plugin. When a record changed on both sides
//! since the last sync, decides each field's value: a field changed on one
//! side only takes that side; changed on both, the side in the config's
//! `prefer` wins (default: the most recent edit). Change `resolve` to your
//! rules and `fixtures.jsonl` to match.

use std::collections::{BTreeMap, BTreeSet};

use crmsync_sdk::prelude::*;
use serde::Deserialize;

#[derive(Default)]
pub struct Plugin;

/// Your config section (JSON), parsed: `{"prefer": {"Phone": "salesforce"}}`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub prefer: BTreeMap<String, Side>,
}

impl Resolver for Plugin {
    type Config = Config;

    fn resolve(&self, ctx: &Context<Config>, conflict: Conflict) -> Result<Resolution, RecordError> {
        let (sf, mk) = (&conflict.salesforce, &conflict.marketing);
        let newer = match (sf.modified_at, mk.modified_at) {
            (Some(s), Some(m)) if m > s => Side::Marketing,
            _ => Side::Salesforce,
        };
        let names: BTreeSet<&String> = sf.fields.keys().chain(mk.fields.keys()).collect();
        let mut out = Resolution { merged: BTreeMap::new(), winners: BTreeMap::new() };
        for name in names {
            let base = conflict.base.as_ref().and_then(|b| b.get(name));
            let (s, m) = (sf.get(name), mk.get(name));
            let winner = match (s != base, m != base) {
                (true, false) => Side::Salesforce,
                (false, true) => Side::Marketing,
                _ => ctx.config.prefer.get(name.as_str()).copied().unwrap_or(newer),
            };
            let value = match winner {
                Side::Salesforce => s,
                Side::Marketing => m,
            };
            out.merged.insert(name.clone(), value.cloned().unwrap_or(Value::Null));
            out.winners.insert(name.clone(), winner);
        }
        Ok(out)
    }
}

crmsync_sdk::export_resolver!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

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
        crmsync_sdk::testing::resolver_fixtures(&Plugin, concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures.jsonl"));
    }
}
