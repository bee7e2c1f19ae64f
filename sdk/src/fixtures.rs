//! Plugin fixtures: records in, expected results out, one JSON object a line.
//! This is the one runner behind `crmsync plugin test`, `plugin validate`,
//! validation at install time and the native harness
//! ([`crate::testing::Harness::fixtures`]): each only says how to call the rule.
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
//!   `"sync"`, `{"create-as": "lead"}` or `{"skip": "reason"}` (an empty reason matches any skip);
//!   for any role `{"failed": "text"}`: the rule must fail (trap, panic), saying `text` (`""`: anything).
//! - `direction` (default `to-marketing`), `target`, `config` (default `{}`), `role` (default: the
//!   role under test), `name` (default: the line number).
//!
//! A line that is a bare record or conflict (no `input` key) is an input with no expectation: it
//! passes unless the rule fails on it (a trap, a timeout, a memory cap, a panic).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::types::{Conflict, Context, Direction, Record, RecordError, Resolution, Selection};

/// The three roles a plugin can play.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Selector,
    Mapper,
    Resolver,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Selector, Role::Mapper, Role::Resolver];

    /// The contract interface that plays this role.
    pub fn interface(self) -> &'static str {
        match self {
            Role::Selector => "selector",
            Role::Mapper => "mapper",
            Role::Resolver => "resolver",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.interface())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "selector" => Ok(Role::Selector),
            "mapper" => Ok(Role::Mapper),
            "resolver" => Ok(Role::Resolver),
            other => Err(format!("unknown role {other:?}: expected selector, mapper or resolver")),
        }
    }
}

/// How a runner calls the rule under test, one record or conflict at a time.
/// A rule's answer is `Ok`; `Err(message)` is the rule itself failing (a trap,
/// a panic, a timeout) — never a record error, which is an answer.
pub trait Rules {
    /// `Err(why)` when the rule does not play `role`.
    fn plays(&self, role: Role) -> Result<(), String>;

    fn select(&self, _ctx: &Context<String>, _record: Record) -> Result<Selection, String> {
        Err("does not play the selector role".into())
    }

    fn map(&self, _ctx: &Context<String>, _record: Record) -> Result<Result<Record, RecordError>, String> {
        Err("does not play the mapper role".into())
    }

    fn resolve(
        &self,
        _ctx: &Context<String>,
        _conflict: Conflict,
    ) -> Result<Result<Resolution, RecordError>, String> {
        Err("does not play the resolver role".into())
    }
}

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
    /// What the rule returned, as JSON (`{"ok": ..}`, `{"error": ..}`, a selection,
    /// or `{"failed": "message"}` when the rule itself failed).
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

/// Runs the cases against the rule in `role` (cases naming another role are
/// run in theirs). Each case is its own batch of one.
pub fn run(rules: &impl Rules, role: Role, cases: &[Case]) -> Vec<Outcome> {
    cases.iter().map(|case| run_case(rules, case.role.unwrap_or(role), case)).collect()
}

/// The one result a batch of one gave; an error when it gave none or several.
pub fn one<T>(mut results: Vec<T>) -> Result<T, String> {
    match (results.pop(), results.is_empty()) {
        (Some(result), true) => Ok(result),
        _ => Err("returned no result or several for one input".into()),
    }
}

/// The cases that failed, one line each (`name: why`); empty when all passed.
pub fn failures(outcomes: &[Outcome]) -> Vec<String> {
    outcomes
        .iter()
        .filter_map(|o| match &o.verdict {
            Some(Err(why)) => Some(format!("{}: {why}", o.name)),
            _ => None,
        })
        .collect()
}

fn run_case(rules: &impl Rules, role: Role, case: &Case) -> Outcome {
    let name = case.name.clone().unwrap_or_default();
    let bad_input = |e: serde_json::Error| Outcome {
        name: name.clone(),
        output: json!({ "failed": format!("the fixture's input is not a valid {}: {e}", input_kind(role)) }),
        verdict: Some(Err("bad fixture input".into())),
    };
    if let Err(e) = rules.plays(role) {
        return Outcome {
            name,
            output: json!({ "failed": e }),
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
    let answer = match role {
        Role::Mapper => match serde_json::from_value(case.input.clone()) {
            Ok(record) => rules.map(&ctx, record).map(result_json),
            Err(e) => return bad_input(e),
        },
        Role::Selector => match serde_json::from_value(case.input.clone()) {
            Ok(record) => rules.select(&ctx, record).map(|s| serde_json::to_value(s).unwrap_or(Json::Null)),
            Err(e) => return bad_input(e),
        },
        Role::Resolver => match serde_json::from_value(case.input.clone()) {
            Ok(conflict) => rules.resolve(&ctx, conflict).map(result_json),
            Err(e) => return bad_input(e),
        },
    };
    let output = answer.unwrap_or_else(|failed| json!({ "failed": failed }));
    let verdict = match &case.expect {
        Some(expect) => Some(check(role, expect, &output)),
        // A line with no expectation passes whatever it answers — unless the rule failed.
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

fn result_json<T: Serialize>(result: Result<T, RecordError>) -> Json {
    match result {
        Ok(value) => json!({ "ok": value }),
        Err(error) => json!({ "error": error }),
    }
}

/// Compares an output with an expectation.
fn check(role: Role, expect: &Json, output: &Json) -> Result<(), String> {
    if let (Some(Json::String(want)), Some(Json::String(got))) = (expect.get("failed"), output.get("failed"))
    {
        return if got.contains(want.as_str()) {
            Ok(())
        } else {
            Err(format!("expected a failure saying {want:?}, got {got:?}"))
        };
    }
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
            Role::Resolver => typed::<Resolution>(want).is_some_and(|w| Some(w) == typed(got)),
            _ => typed::<Record>(want).is_some_and(|w| Some(w) == typed(got)),
        };
        return if same { Ok(()) } else { Err(format!("expected {want}, got {got}")) };
    }
    if expect == output { Ok(()) } else { Err(format!("expected {expect}, got {output}")) }
}

fn typed<T: serde::de::DeserializeOwned + PartialEq>(json: &Json) -> Option<T> {
    serde_json::from_value(json.clone()).ok()
}
