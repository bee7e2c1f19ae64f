//! Plugin fixtures: records in, expected results out, one JSON object a line.
//!
//! ```json
//! {"name": "lead to marketing", "direction": "to-marketing", "config": {"marketing": "<vendor>"},
//!  "input": {"system": "salesforce", "object": "Lead", "fields": {"Email": "a@example.com"}},
//!  "expect": {"ok": {"system": "<vendor>", "object": "contact", "fields": {"email": "a@example.com"}}}}
//! ```
//!
//! - `input`: a record (selector, mapper) or a conflict `{base, salesforce, marketing}` (resolver).
//! - `expect` (optional): for a mapper or resolver `{"ok": ...}` or `{"error": {"code": .., "field": ..}}`
//!   (errors match on code and field; messages may differ between languages); for a selector
//!   `"sync"`, `{"create-as": "lead"}` or `{"skip": "reason"}` (an empty reason matches any skip).
//! - `direction` (default `to-marketing`), `target`, `config` (default `{}`), `role` (default: the
//!   role under test), `name` (default: the line number).
//!
//! A line that is a bare record or conflict (no `input` key) is an input with no expectation: it
//! passes unless the plugin fails on it (a trap, a timeout, a memory cap).
//! The same format serves validation before activation (the plugin's own fixtures must pass)
//! and `crmsync plugin test`.

use serde::Deserialize;
use serde_json::{Value as Json, json};

use crmsync_sdk::types::{Conflict, Context, Direction, Record, Selection};

use super::plugin::{FailureKind, Plugin, RecordFailure};
use super::{LoadError, Role};

/// One fixture case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub role: Option<Role>,
    #[serde(default = "to_marketing")]
    pub direction: Direction,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub config: Option<Json>,
    pub input: Json,
    #[serde(default)]
    pub expect: Option<Json>,
}

fn to_marketing() -> Direction {
    Direction::ToMarketing
}

/// The result of one case.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub name: String,
    /// What the plugin returned, as JSON (`{"ok": ..}`, `{"error": ..}`, a selection,
    /// or `{"failed": "message"}` when the plugin itself failed).
    pub output: Json,
    /// `None`: no expectation; `Some(Ok)`: met; `Some(Err(why))`: not met.
    pub verdict: Option<Result<(), String>>,
}

impl Outcome {
    pub fn failed(&self) -> bool {
        matches!(self.verdict, Some(Err(_)))
    }
}

/// Reads a JSONL fixture file's text. `base_config` applies to cases without
/// their own config. Blank lines and lines starting with `//` are skipped.
pub fn parse(text: &str, base_config: Option<&Json>) -> Result<Vec<Case>, String> {
    let mut cases = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        let json: Json = serde_json::from_str(line).map_err(|e| format!("line {}: not JSON: {e}", i + 1))?;
        let mut case: Case = if json.get("input").is_some() {
            serde_json::from_value(json).map_err(|e| format!("line {}: {e}", i + 1))?
        } else {
            Case {
                name: None,
                role: None,
                direction: Direction::ToMarketing,
                target: None,
                config: None,
                input: json,
                expect: None,
            }
        };
        if case.config.is_none() {
            case.config = base_config.cloned();
        }
        case.name.get_or_insert_with(|| format!("line {}", i + 1));
        cases.push(case);
    }
    Ok(cases)
}

/// Runs the cases against the plugin in `role` (cases naming another role are
/// run in theirs). Each case is its own batch of one.
pub fn run(plugin: &Plugin, role: Role, cases: &[Case]) -> Vec<Outcome> {
    cases.iter().map(|case| run_case(plugin, case.role.unwrap_or(role), case)).collect()
}

fn run_case(plugin: &Plugin, role: Role, case: &Case) -> Outcome {
    let name = case.name.clone().unwrap_or_default();
    let bad_input = |e: serde_json::Error| Outcome {
        name: name.clone(),
        output: json!({ "failed": format!("the fixture's input is not a valid {}: {e}", input_kind(role)) }),
        verdict: Some(Err("bad fixture input".into())),
    };
    if let Err(e) = plugin.require(role) {
        return Outcome {
            name,
            output: json!({ "failed": e.to_string() }),
            verdict: Some(Err("the plugin does not play this role".into())),
        };
    }
    let ctx = Context {
        connection: "fixtures".into(),
        direction: case.direction,
        run_id: "fixtures".into(),
        target: case.target.clone(),
        config: case.config.as_ref().map_or_else(|| "{}".into(), Json::to_string),
    };
    let output = match role {
        Role::Mapper => {
            let record: Record = match serde_json::from_value(case.input.clone()) {
                Ok(r) => r,
                Err(e) => return bad_input(e),
            };
            plugin.map(&ctx, &[record]).pop().map(result_json).unwrap_or(Json::Null)
        }
        Role::Selector => {
            let record: Record = match serde_json::from_value(case.input.clone()) {
                Ok(r) => r,
                Err(e) => return bad_input(e),
            };
            match plugin.select(&ctx, &[record]).pop() {
                Some(Ok(selection)) => serde_json::to_value(selection).unwrap_or(Json::Null),
                Some(Err(failure)) => failure_json(&failure),
                None => Json::Null,
            }
        }
        Role::Resolver => {
            let conflict: Conflict = match serde_json::from_value(case.input.clone()) {
                Ok(c) => c,
                Err(e) => return bad_input(e),
            };
            plugin.resolve(&ctx, &[conflict]).pop().map(result_json).unwrap_or(Json::Null)
        }
    };
    let verdict = match &case.expect {
        Some(expect) => Some(check(role, expect, &output)),
        // A line with no expectation passes whatever it answers — unless the plugin failed.
        None => output
            .get("failed")
            .map(|f| Err(format!("the plugin failed: {}", f.as_str().unwrap_or_default()))),
    };
    Outcome { name, output, verdict }
}

fn input_kind(role: Role) -> &'static str {
    match role {
        Role::Selector | Role::Mapper => "record",
        Role::Resolver => "conflict",
    }
}

fn result_json<T: serde::Serialize>(result: Result<T, RecordFailure>) -> Json {
    match result {
        Ok(value) => json!({ "ok": value }),
        Err(failure) => failure_json(&failure),
    }
}

fn failure_json(failure: &RecordFailure) -> Json {
    match &failure.kind {
        FailureKind::Rejected(e) => json!({ "error": e }),
        FailureKind::Failed(_) => json!({ "failed": failure.to_string() }),
    }
}

/// Compares an output with an expectation.
fn check(role: Role, expect: &Json, output: &Json) -> Result<(), String> {
    if let (Some(want), Some(got)) = (expect.get("error"), output.get("error")) {
        for key in ["code", "field"] {
            if want.get(key).is_some() && want.get(key) != got.get(key) {
                return Err(format!(
                    "expected error {key} {}, got {}",
                    want[key],
                    got.get(key).unwrap_or(&Json::Null)
                ));
            }
        }
        return Ok(());
    }
    if role == Role::Selector
        && let (Some(Json::String(want)), Ok(Selection::Skip(_))) =
            (expect.get("skip"), serde_json::from_value::<Selection>(output.clone()))
        && (want.is_empty() || Some(want.as_str()) == output.get("skip").and_then(Json::as_str))
    {
        return Ok(());
    }
    if let (Some(want), Some(got)) = (expect.get("ok"), output.get("ok")) {
        // Compare through the typed form so {"$decimal": "1.50"} equals {"$decimal": "1.5"}.
        let same = match role {
            Role::Resolver => {
                typed::<crmsync_sdk::Resolution>(want) == typed(got)
                    && typed::<crmsync_sdk::Resolution>(want).is_some()
            }
            _ => typed::<Record>(want) == typed(got) && typed::<Record>(want).is_some(),
        };
        return if same { Ok(()) } else { Err(format!("expected {want}, got {got}")) };
    }
    if expect == output { Ok(()) } else { Err(format!("expected {expect}, got {output}")) }
}

fn typed<T: serde::de::DeserializeOwned + PartialEq>(json: &Json) -> Option<T> {
    serde_json::from_value(json.clone()).ok()
}

/// Runs a plugin's own fixtures; any failure refuses it.
pub fn validate(plugin: &Plugin, role: Role, cases: &[Case]) -> Result<usize, LoadError> {
    let outcomes = run(plugin, role, cases);
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|o| match &o.verdict {
            Some(Err(why)) => Some(format!("{}: {why}", o.name)),
            _ => None,
        })
        .collect();
    if failed.is_empty() {
        Ok(outcomes.len())
    } else {
        Err(LoadError::Fixtures {
            plugin: plugin.id().to_string(),
            summary: format!("{} of {} failed — {}", failed.len(), outcomes.len(), failed.join("; ")),
        })
    }
}
