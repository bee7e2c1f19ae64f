//! `selection`: the seeds' record-selection modes, per Salesforce object, and
//! the inbound rule deciding which marketing contacts are created in Salesforce.
//!
//! Config (JSON):
//! ```json
//! {
//!   "objects": {
//!     "Lead":    {"mode": "created-after", "since": "2026-11-01T00:00:00Z"},
//!     "Contact": {"mode": "flagged", "field": "AC_Sync_Status__c", "value": "Pending next sync"},
//!     "Account": {"mode": "all"}
//!   },
//!   "inbound": {"tag": "salesforce", "create_as": "lead"}
//! }
//! ```
//! Outbound modes: `none`; `all`; `created-after` (the record's `CreatedDate`
//! is after `since`, the moment the setting was saved); `flagged` (the field —
//! default `AC_Sync_Status__c` — holds `value`, default "Pending next sync");
//! `criteria` with a `rule`: `{"all": [..]}`, `{"any": [..]}`, `{"not": rule}`
//! or a comparison `{"field": "LeadSource", "op": "eq", "value": "Web"}` with
//! ops `eq`, `ne`, `lt`, `le`, `gt`, `ge`, `contains`, `starts-with`, `in`,
//! `empty`, `not-empty`. An object missing from `objects` is not synced.
//!
//! Inbound (marketing → Salesforce, for records not yet linked): a record is
//! created as `create_as` when it carries `tag` in its `tags` field, or, with
//! a `rule`, when the rule matches; otherwise it is skipped with the reason.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crmsync_sdk::convert;
use crmsync_sdk::prelude::*;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub objects: BTreeMap<String, Mode>,
    #[serde(default)]
    pub inbound: Option<Inbound>,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(tag = "mode", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Mode {
    None,
    All,
    CreatedAfter {
        since: DateTime<Utc>,
    },
    Flagged {
        #[serde(default = "status_field")]
        field: String,
        #[serde(default = "pending")]
        value: String,
    },
    Criteria {
        rule: Rule,
    },
}

fn status_field() -> String {
    "AC_Sync_Status__c".into()
}

fn pending() -> String {
    "Pending next sync".into()
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Inbound {
    #[serde(default)]
    pub tag: Option<String>,
    #[serde(default)]
    pub rule: Option<Rule>,
    #[serde(default = "lead_object")]
    pub create_as: SalesforceObject,
}

fn lead_object() -> SalesforceObject {
    SalesforceObject::Lead
}

/// A selection rule: comparisons combined with all / any / not.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Rule {
    All { all: Vec<Rule> },
    Any { any: Vec<Rule> },
    Not { not: Box<Rule> },
    Compare(Comparison),
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Comparison {
    pub field: String,
    pub op: Op,
    #[serde(default)]
    pub value: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
    StartsWith,
    In,
    Empty,
    NotEmpty,
}

impl Rule {
    pub fn matches(&self, record: &Record) -> bool {
        match self {
            Rule::All { all } => all.iter().all(|r| r.matches(record)),
            Rule::Any { any } => any.iter().any(|r| r.matches(record)),
            Rule::Not { not } => !not.matches(record),
            Rule::Compare(c) => c.matches(record),
        }
    }
}

impl Comparison {
    fn matches(&self, record: &Record) -> bool {
        let value = record.get(&self.field).unwrap_or(&Value::Null);
        match self.op {
            Op::Empty => value.is_empty(),
            Op::NotEmpty => !value.is_empty(),
            Op::Eq => compare(value, &self.value) == Some(Ordering::Equal),
            Op::Ne => compare(value, &self.value) != Some(Ordering::Equal),
            Op::Lt => compare(value, &self.value) == Some(Ordering::Less),
            Op::Le => matches!(compare(value, &self.value), Some(Ordering::Less | Ordering::Equal)),
            Op::Gt => compare(value, &self.value) == Some(Ordering::Greater),
            Op::Ge => matches!(compare(value, &self.value), Some(Ordering::Greater | Ordering::Equal)),
            Op::Contains => match value {
                Value::TextList(items) => items.iter().any(|i| Some(i.as_str()) == self.value.as_str()),
                other => self
                    .value
                    .as_str()
                    .is_some_and(|needle| other.to_string().to_lowercase().contains(&needle.to_lowercase())),
            },
            Op::StartsWith => self
                .value
                .as_str()
                .is_some_and(|prefix| value.to_string().to_lowercase().starts_with(&prefix.to_lowercase())),
            Op::In => self
                .value
                .as_array()
                .is_some_and(|options| options.iter().any(|o| compare(value, o) == Some(Ordering::Equal))),
        }
    }
}

/// Compares a record value with a config value, by the record value's type.
/// `None` when they cannot be compared (a different type, or null).
fn compare(value: &Value, wanted: &serde_json::Value) -> Option<Ordering> {
    use serde_json::Value as J;
    match (value, wanted) {
        (Value::Null, J::Null) => Some(Ordering::Equal),
        (Value::Null, _) | (_, J::Null) => None,
        (Value::Text(t), J::String(w)) => Some(t.trim().to_lowercase().cmp(&w.trim().to_lowercase())),
        (Value::Number(n), J::Number(w)) => n.partial_cmp(&w.as_f64()?),
        (Value::Decimal(d), J::Number(w)) => d.partial_cmp(&w.to_string().parse::<Decimal>().ok()?),
        (Value::Decimal(d), J::String(w)) => d.partial_cmp(&convert::parse_currency(w).ok()?),
        (Value::Boolean(b), J::Bool(w)) => Some(b.cmp(w)),
        (Value::Date(d), J::String(w)) => Some(d.cmp(&convert::parse_date(w).ok()?)),
        (Value::DateTime(t), J::String(w)) => Some(t.cmp(&convert::parse_datetime(w).ok()?)),
        (Value::Text(t), J::Number(w)) => t.trim().parse::<f64>().ok()?.partial_cmp(&w.as_f64()?),
        _ => None,
    }
}

#[derive(Default)]
pub struct Selection;

impl Selector for Selection {
    type Config = Config;

    fn select(&self, ctx: &Context<Config>, record: &Record) -> crmsync_sdk::Selection {
        use crmsync_sdk::Selection as Verdict;
        if record.system.is_marketing() {
            return inbound(ctx.config.inbound.as_ref(), record);
        }
        let Some(mode) = ctx.config.objects.get(&record.object_type) else {
            return Verdict::Skip(format!("selection for {} is not configured", record.object_type));
        };
        match mode {
            Mode::None => Verdict::Skip(format!("selection for {} is set to none", record.object_type)),
            Mode::All => Verdict::Sync,
            Mode::CreatedAfter { since } => match record.get("CreatedDate") {
                Some(Value::DateTime(created)) if created > since => Verdict::Sync,
                Some(Value::DateTime(_)) => Verdict::Skip(format!(
                    "created before {}, when syncing new records was switched on",
                    convert::format_datetime(since)
                )),
                _ => Verdict::Skip("the record has no CreatedDate".into()),
            },
            Mode::Flagged { field, value } => {
                if record.text(field).is_some_and(|v| v == value) {
                    Verdict::Sync
                } else {
                    Verdict::Skip(format!("not flagged: {field} is not \"{value}\""))
                }
            }
            Mode::Criteria { rule } => {
                if rule.matches(record) {
                    Verdict::Sync
                } else {
                    Verdict::Skip("does not match the selection criteria".into())
                }
            }
        }
    }
}

fn inbound(config: Option<&Inbound>, record: &Record) -> crmsync_sdk::Selection {
    use crmsync_sdk::Selection as Verdict;
    let Some(config) = config else {
        return Verdict::Skip("creating Salesforce records from the marketing side is off".into());
    };
    let tagged = config.tag.as_deref().is_some_and(|tag| match record.get("tags") {
        Some(Value::TextList(tags)) => tags.iter().any(|t| t.eq_ignore_ascii_case(tag)),
        _ => false,
    });
    let ruled = config.rule.as_ref().is_some_and(|r| r.matches(record));
    if tagged || ruled {
        return Verdict::CreateAs(config.create_as);
    }
    match (&config.tag, &config.rule) {
        (Some(tag), None) => Verdict::Skip(format!("not tagged \"{tag}\" for Salesforce")),
        _ => Verdict::Skip("not flagged for Salesforce".into()),
    }
}

crmsync_sdk::export_selector!(Selection);

#[cfg(test)]
mod own_fixtures {
    /// The same fixtures the host validates the component with, run natively
    /// by the same runner.
    #[test]
    fn pass_natively() {
        crmsync_sdk::testing::selector_fixtures(
            &super::Selection,
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
