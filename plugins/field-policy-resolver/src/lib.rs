//! `field-policy-resolver`: a three-way, field-level merge of a linked record
//! changed on both sides since the last sync.
//!
//! For each field: changed on one side only (against the base snapshot) → that
//! side's value; changed on both to the same value → that value; changed on
//! both to different values → the field's policy decides. Without a base
//! snapshot every differing field counts as changed on both sides.
//!
//! Config (JSON):
//! ```json
//! {"default": "most-recent", "fields": {"Email": "salesforce-wins", "Phone": "prefer-non-empty"}}
//! ```
//! Policies: `salesforce-wins`, `marketing-wins`, `most-recent` (the side whose
//! record was modified last; Salesforce on a tie or when unknown),
//! `prefer-non-empty` (the side that has a value; most-recent when both do).
//! The default policy is `most-recent`.

use std::collections::{BTreeMap, BTreeSet};

use crmsync_sdk::prelude::*;
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    SalesforceWins,
    MarketingWins,
    #[default]
    MostRecent,
    PreferNonEmpty,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub default: Policy,
    #[serde(default)]
    pub fields: BTreeMap<String, Policy>,
}

#[derive(Default)]
pub struct FieldPolicyResolver;

impl Resolver for FieldPolicyResolver {
    type Config = Config;

    fn resolve(&self, ctx: &Context<Config>, conflict: Conflict) -> Result<Resolution, RecordError> {
        let Conflict { base, salesforce, marketing } = conflict;
        let newer = match (salesforce.modified_at, marketing.modified_at) {
            (Some(sf), Some(mk)) if mk > sf => Side::Marketing,
            _ => Side::Salesforce,
        };
        let names: BTreeSet<&String> = salesforce.fields.keys().chain(marketing.fields.keys()).collect();
        let mut merged = BTreeMap::new();
        let mut winners = BTreeMap::new();
        for name in names {
            let sf = salesforce.get(name).unwrap_or(&Value::Null);
            let mk = marketing.get(name).unwrap_or(&Value::Null);
            let base_value = base.as_ref().map(|b| b.get(name).unwrap_or(&Value::Null));
            let changed = |v: &Value| base_value.is_none_or(|b| !same(b, v));
            let winner = if same(sf, mk) || !changed(mk) {
                Side::Salesforce
            } else if !changed(sf) {
                Side::Marketing
            } else {
                match ctx.config.fields.get(name.as_str()).copied().unwrap_or(ctx.config.default) {
                    Policy::SalesforceWins => Side::Salesforce,
                    Policy::MarketingWins => Side::Marketing,
                    Policy::MostRecent => newer,
                    Policy::PreferNonEmpty => match (sf.is_empty(), mk.is_empty()) {
                        (true, false) => Side::Marketing,
                        (false, true) => Side::Salesforce,
                        _ => newer,
                    },
                }
            };
            let value = if winner == Side::Salesforce { sf } else { mk };
            merged.insert(name.clone(), value.clone());
            winners.insert(name.clone(), winner);
        }
        Ok(Resolution { merged, winners })
    }
}

/// Equal values, with text compared after trimming (a trailing space added by
/// one system is not a change).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Text(x), Value::Text(y)) => x.trim() == y.trim(),
        (a, b) => a == b || (a.is_empty() && b.is_empty()),
    }
}

crmsync_sdk::export_resolver!(FieldPolicyResolver);

#[cfg(test)]
mod own_fixtures {
    /// The same fixtures the host validates the component with, run natively
    /// by the same runner.
    #[test]
    fn pass_natively() {
        crmsync_sdk::testing::resolver_fixtures(
            &super::FieldPolicyResolver,
            concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures.jsonl"),
        );
    }
}

#[cfg(test)]
mod config_schema {
    /// config.schema.json is the typed Config's schema (crmsync checks configs
    /// against it at install and activation); `CRMSYNC_WRITE_SCHEMA=1 cargo test`
    /// rewrites it after a change to Config.
    #[test]
    fn is_current() {
        crmsync_sdk::testing::assert_config_schema_current::<super::Config>(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config.schema.json"
        ));
    }
}
