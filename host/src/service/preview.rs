//! Shadow preview: a candidate plugin version run beside the active one on a
//! connection's most recent records, writing nothing, and what would change.
//!
//! The records are the connection's most recently synced Salesforce records
//! (read again from Salesforce, so the plugins see today's values), or —
//! before anything synced — the first records of each configured object.
//! Both versions get the same records, context and config (the candidate its
//! own config when one is given). Per record the report says whether the
//! output changes, and how: the fields whose mapped value differs (mapper),
//! the decision (selector), or an error only one version has. Nothing is
//! written to either vendor or to the state; the candidate is not installed.

use std::collections::{BTreeMap, BTreeSet};

use crmsync_core::{Connector, Context, Direction, Record, Selection, Store};
use crmsync_runtime::{Plugin, RecordFailure, Role};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Connection, Service, ServiceError};

/// What a preview found (read back by the CLI from the admin API too).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreviewReport {
    pub connection: String,
    pub role: Role,
    /// The active version, and the candidate.
    pub active: String,
    pub candidate: String,
    /// Records both versions ran on.
    pub records: usize,
    /// Records whose output changes (new and fixed errors included).
    pub changed: usize,
    /// Records the candidate fails on and the active version does not.
    pub new_errors: usize,
    /// Records the active version fails on and the candidate does not.
    pub fixed_errors: usize,
    /// Per field (mapper) or `selection` (selector): how many records it changes on.
    pub fields: BTreeMap<String, usize>,
    /// The records that change, in the order read.
    pub differences: Vec<RecordDifference>,
}

impl PreviewReport {
    /// No record the active version handles fails under the candidate.
    pub fn safe(&self) -> bool {
        self.new_errors == 0
    }
}

/// One record whose output changes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordDifference {
    pub object: String,
    pub sf_id: String,
    /// `changed`, `new-error` or `fixed`.
    pub kind: String,
    pub fields: Vec<FieldDifference>,
    /// The error the one failing version gave.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FieldDifference {
    pub field: String,
    pub active: Value,
    pub candidate: Value,
}

/// The most records one preview reads.
pub const MAX_RECORDS: usize = 2000;

impl Service {
    /// Runs `candidate` beside the role's active version on up to `limit` of
    /// the connection's most recent records. `config` is the candidate's
    /// config (JSON text); `None` gives it the role's current config.
    pub async fn preview(
        &self,
        conn: &Connection,
        role: Role,
        candidate: &Plugin,
        config: Option<String>,
        limit: usize,
    ) -> Result<PreviewReport, ServiceError> {
        if role == Role::Resolver {
            return Err(ServiceError::Other(
                "a preview runs selectors and mappers; a resolver's rules are checked by its fixtures (`crmsync plugin test`)".into(),
            ));
        }
        candidate.require(role).map_err(|e| ServiceError::Other(e.to_string()))?;
        let active = self.registry.current(&conn.name, role).ok_or_else(|| {
            ServiceError::Other(format!(
                "no {role} is active for connection {}: nothing to compare with",
                conn.name
            ))
        })?;
        let limit = limit.clamp(1, MAX_RECORDS);
        let records = self.recent_records(conn, limit).await?;
        let active_config = active.config().map_or_else(|| conn.rules.config(role), str::to_string);
        let mut report = PreviewReport {
            connection: conn.name.clone(),
            role,
            active: active.id().to_string(),
            candidate: candidate.id().to_string(),
            records: 0,
            changed: 0,
            new_errors: 0,
            fixed_errors: 0,
            fields: BTreeMap::new(),
            differences: Vec::new(),
        };
        for (object, batch) in records {
            let ctx = |config: String| Context {
                connection: conn.name.clone(),
                direction: Direction::ToMarketing,
                run_id: "preview".into(),
                target: Some(conn.spec.marketing_object_for(&object).to_string()),
                config,
            };
            let (before, after) =
                (ctx(active_config.clone()), ctx(config.clone().unwrap_or(active_config.clone())));
            let outputs: Vec<(Outcome, Outcome)> = match role {
                Role::Mapper => active
                    .map(&before, &batch)
                    .into_iter()
                    .zip(candidate.map(&after, &batch))
                    .map(|(a, b)| (Outcome::mapped(a), Outcome::mapped(b)))
                    .collect(),
                _ => active
                    .select(&before, &batch)
                    .into_iter()
                    .zip(candidate.select(&after, &batch))
                    .map(|(a, b)| (Outcome::selected(a), Outcome::selected(b)))
                    .collect(),
            };
            for (record, (a, b)) in batch.iter().zip(outputs) {
                report.records += 1;
                let sf_id = record.id.clone().unwrap_or_default();
                let difference = match (a, b) {
                    (Outcome::Ok(a), Outcome::Ok(b)) => {
                        let fields = differing(&a, &b);
                        if fields.is_empty() {
                            continue;
                        }
                        RecordDifference {
                            object: object.clone(),
                            sf_id,
                            kind: "changed".into(),
                            fields,
                            error: None,
                        }
                    }
                    (Outcome::Ok(_), Outcome::Failed(e)) => {
                        report.new_errors += 1;
                        RecordDifference {
                            object: object.clone(),
                            sf_id,
                            kind: "new-error".into(),
                            fields: vec![],
                            error: Some(e),
                        }
                    }
                    (Outcome::Failed(e), Outcome::Ok(_)) => {
                        report.fixed_errors += 1;
                        RecordDifference {
                            object: object.clone(),
                            sf_id,
                            kind: "fixed".into(),
                            fields: vec![],
                            error: Some(e),
                        }
                    }
                    (Outcome::Failed(_), Outcome::Failed(_)) => continue,
                };
                for f in &difference.fields {
                    *report.fields.entry(f.field.clone()).or_default() += 1;
                }
                report.changed += 1;
                report.differences.push(difference);
            }
        }
        if report.safe() {
            // What `rules.require_preview` asks for before this version may replace the active one.
            let ran_with = config.unwrap_or(active_config);
            self.registry
                .record_clean_preview(&conn.name, role, &candidate.id().sha256, &ran_with)
                .map_err(|e| ServiceError::Other(e.to_string()))?;
        }
        Ok(report)
    }

    /// Up to `limit` Salesforce records, by object: those synced last, read
    /// again; before any sync, the first of each configured object.
    async fn recent_records(
        &self,
        conn: &Connection,
        limit: usize,
    ) -> Result<Vec<(String, Vec<Record>)>, ServiceError> {
        let mut links = self.store.links(&conn.name)?;
        links.retain(|l| l.retired.is_none() && l.remote_object.is_none());
        links.sort_by_key(|l| std::cmp::Reverse(l.synced_at));
        links.truncate(limit);
        let mut by_object: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for link in links {
            by_object.entry(link.sf_object).or_default().push(link.sf_id);
        }
        let mut out = Vec::new();
        if by_object.is_empty() {
            let per_object = limit.div_ceil(conn.spec.objects.len().max(1));
            for object in &conn.spec.objects {
                let changes = conn.salesforce.fetch_changes(object, None, per_object).await?;
                out.push((object.clone(), changes.records));
            }
            return Ok(out);
        }
        for (object, ids) in by_object {
            let records = conn.salesforce.get(&object, &ids).await?;
            out.push((object, records));
        }
        Ok(out)
    }
}

/// One version's result for one record.
enum Outcome {
    /// The output as fields: a mapper's record (with its object), a selector's decision.
    Ok(BTreeMap<String, Value>),
    Failed(String),
}

impl Outcome {
    fn mapped(r: Result<Record, RecordFailure>) -> Outcome {
        match r {
            Ok(record) => {
                let mut fields: BTreeMap<String, Value> = record
                    .fields
                    .into_iter()
                    .map(|(k, v)| (k, serde_json::to_value(v).unwrap_or(Value::Null)))
                    .collect();
                fields.insert("(object)".into(), Value::String(record.object_type));
                Outcome::Ok(fields)
            }
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }

    fn selected(r: Result<Selection, RecordFailure>) -> Outcome {
        match r {
            Ok(s) => Outcome::Ok(BTreeMap::from([(
                "selection".to_string(),
                serde_json::to_value(&s).unwrap_or(Value::Null),
            )])),
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }
}

/// The fields whose value differs; a field one side leaves out is `null` there.
fn differing(a: &BTreeMap<String, Value>, b: &BTreeMap<String, Value>) -> Vec<FieldDifference> {
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    names
        .into_iter()
        .filter_map(|name| {
            let (x, y) = (a.get(name).unwrap_or(&Value::Null), b.get(name).unwrap_or(&Value::Null));
            (x != y).then(|| FieldDifference { field: name.clone(), active: x.clone(), candidate: y.clone() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_field_left_out_equals_null_and_only_differences_are_kept() {
        let a = BTreeMap::from([("email".to_string(), json!("a@x")), ("phone".to_string(), Value::Null)]);
        let b = BTreeMap::from([("email".to_string(), json!("a@x")), ("title".to_string(), json!("CEO"))]);
        let d = differing(&a, &b);
        assert_eq!(d.len(), 1, "phone null = phone absent");
        assert_eq!(
            (d[0].field.as_str(), &d[0].active, &d[0].candidate),
            ("title", &Value::Null, &json!("CEO"))
        );
    }
}
