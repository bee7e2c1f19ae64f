//! The native harness: run a plugin's rule logic as plain Rust, with the same
//! config parsing and batching the exported component uses, so rules can be
//! unit-tested (and benchmarked) without building WebAssembly.
//!
//! ```ignore
//! let out = crmsync_sdk::testing::Harness::new(r#"{"marketing": "activecampaign"}"#)
//!     .map(&MyMapper::default(), vec![lead]);
//! // The project's fixtures, run natively by the runner `crmsync plugin test` uses:
//! crmsync_sdk::testing::mapper_fixtures(&MyMapper::default(), "fixtures.jsonl");
//! ```

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use crate::fixtures::{self, Role, Rules, one};
use crate::types::*;
use crate::{Mapper, Resolver, Selector};

/// A call context for tests: connection `test`, run `test-run`, to-marketing.
#[derive(Debug, Clone)]
pub struct Harness {
    pub ctx: Context<String>,
}

impl Harness {
    /// A harness whose calls carry `config` (JSON text) as the plugin's config.
    pub fn new(config: &str) -> Self {
        Harness {
            ctx: Context {
                connection: "test".into(),
                direction: Direction::ToMarketing,
                run_id: "test-run".into(),
                target: None,
                config: config.into(),
            },
        }
    }

    /// Builder-style: sets the direction.
    pub fn direction(mut self, direction: Direction) -> Self {
        self.ctx.direction = direction;
        self
    }

    /// Builder-style: sets the target object type.
    pub fn target(mut self, target: &str) -> Self {
        self.ctx.target = Some(target.into());
        self
    }

    pub fn select<T: Selector>(&self, plugin: &T, records: &[Record]) -> Vec<Selection> {
        crate::run_select(plugin, self.ctx.clone(), records)
    }

    pub fn map<T: Mapper>(&self, plugin: &T, records: Vec<Record>) -> Vec<Result<Record, RecordError>> {
        crate::run_map(plugin, self.ctx.clone(), records)
    }

    pub fn resolve<T: Resolver>(
        &self,
        plugin: &T,
        conflicts: Vec<Conflict>,
    ) -> Vec<Result<Resolution, RecordError>> {
        crate::run_resolve(plugin, self.ctx.clone(), conflicts)
    }
}

/// The JSON Schema of a plugin's typed `Config` (derive `schemars::JsonSchema`
/// beside `Deserialize`), as pretty JSON: install it beside the component as
/// `<name>.schema.json` and crmsync checks every config against it at install
/// and activation.
pub fn config_schema<C: schemars::JsonSchema>() -> String {
    let schema = schemars::schema_for!(C);
    serde_json::to_string_pretty(&schema).expect("a schema is JSON") + "\n"
}

/// Checks the schema file at `path` is `C`'s schema; with `CRMSYNC_WRITE_SCHEMA`
/// set, writes it first (after a change to `C`).
pub fn assert_config_schema_current<C: schemars::JsonSchema>(path: &str) {
    let schema = config_schema::<C>();
    if std::env::var_os("CRMSYNC_WRITE_SCHEMA").is_some() {
        std::fs::write(path, &schema).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(committed == schema, "{path} is out of date: run the tests with CRMSYNC_WRITE_SCHEMA=1");
}

/// Runs a fixtures file against a selector natively; panics naming every case that fails.
pub fn selector_fixtures<T: Selector>(plugin: &T, path: impl AsRef<Path>) {
    assert_fixtures(&NativeSelector(plugin), Role::Selector, path.as_ref());
}

/// Runs a fixtures file against a mapper natively; panics naming every case that fails.
pub fn mapper_fixtures<T: Mapper>(plugin: &T, path: impl AsRef<Path>) {
    assert_fixtures(&NativeMapper(plugin), Role::Mapper, path.as_ref());
}

/// Runs a fixtures file against a resolver natively; panics naming every case that fails.
pub fn resolver_fixtures<T: Resolver>(plugin: &T, path: impl AsRef<Path>) {
    assert_fixtures(&NativeResolver(plugin), Role::Resolver, path.as_ref());
}

fn assert_fixtures(rules: &impl Rules, role: Role, path: &Path) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("fixtures {}: {e}", path.display()));
    let cases = fixtures::parse(&text, None).unwrap_or_else(|e| panic!("fixtures {}: {e}", path.display()));
    let outcomes = fixtures::run(rules, role, &cases);
    let failed = fixtures::failures(&outcomes);
    assert!(
        failed.is_empty(),
        "{} of {} fixtures failed:\n{}",
        failed.len(),
        outcomes.len(),
        failed.join("\n")
    );
}

/// A panic becomes the rule failing, as a trap does in the component.
fn guarded<T>(call: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(call)).map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
            .unwrap_or_else(|| "panicked".into())
    })
}

fn only(role: Role, plays: Role) -> Result<(), String> {
    if role == plays { Ok(()) } else { Err(format!("the harness was given a {plays}, not a {role}")) }
}

struct NativeSelector<'a, T>(&'a T);
struct NativeMapper<'a, T>(&'a T);
struct NativeResolver<'a, T>(&'a T);

impl<T: Selector> Rules for NativeSelector<'_, T> {
    fn plays(&self, role: Role) -> Result<(), String> {
        only(role, Role::Selector)
    }

    fn select(&self, ctx: &Context<String>, record: Record) -> Result<Selection, String> {
        one(guarded(|| crate::run_select(self.0, ctx.clone(), &[record]))?)
    }
}

impl<T: Mapper> Rules for NativeMapper<'_, T> {
    fn plays(&self, role: Role) -> Result<(), String> {
        only(role, Role::Mapper)
    }

    fn map(&self, ctx: &Context<String>, record: Record) -> Result<Result<Record, RecordError>, String> {
        one(guarded(|| crate::run_map(self.0, ctx.clone(), vec![record]))?)
    }
}

impl<T: Resolver> Rules for NativeResolver<'_, T> {
    fn plays(&self, role: Role) -> Result<(), String> {
        only(role, Role::Resolver)
    }

    fn resolve(
        &self,
        ctx: &Context<String>,
        conflict: Conflict,
    ) -> Result<Result<Resolution, RecordError>, String> {
        one(guarded(|| crate::run_resolve(self.0, ctx.clone(), vec![conflict]))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct NeedsEmail;

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Config {
        #[serde(default)]
        panic_on: Option<String>,
    }

    impl Selector for NeedsEmail {
        type Config = Config;
        fn select(&self, ctx: &Context<Config>, record: &Record) -> Selection {
            let email = record.text("Email").unwrap_or_default();
            if ctx.config.panic_on.as_deref() == Some(email) {
                panic!("deliberate: {email}");
            }
            if email.is_empty() { Selection::Skip("no email".into()) } else { Selection::Sync }
        }
    }

    const CASES: &str = r#"
{"name": "sync", "input": {"system": "salesforce", "object": "Lead", "fields": {"Email": "a@x.io"}}, "expect": "sync"}
{"name": "any skip", "input": {"system": "salesforce", "object": "Lead", "fields": {}}, "expect": {"skip": ""}}
{"name": "wrong reason", "input": {"system": "salesforce", "object": "Lead", "fields": {}}, "expect": {"skip": "other"}}
{"name": "wrong verdict", "input": {"system": "salesforce", "object": "Lead", "fields": {"Email": "a@x.io"}}, "expect": {"skip": ""}}
{"name": "panics", "config": {"panic_on": "p@x.io"}, "input": {"system": "salesforce", "object": "Lead", "fields": {"Email": "p@x.io"}}}
{"name": "bad config", "config": {"nope": 1}, "input": {"system": "salesforce", "object": "Lead", "fields": {"Email": "a@x.io"}}, "expect": "sync"}
{"system": "salesforce", "object": "Lead", "fields": {"Email": "bare@x.io"}}
"#;

    #[test]
    fn the_native_runner_gives_the_verdicts_the_host_gives() {
        let cases = fixtures::parse(CASES, None).unwrap();
        let outcomes = fixtures::run(&NativeSelector(&NeedsEmail), Role::Selector, &cases);
        let verdicts: Vec<(&str, Option<bool>)> =
            outcomes.iter().map(|o| (o.name.as_str(), o.verdict.as_ref().map(Result::is_ok))).collect();
        assert_eq!(
            verdicts,
            [
                ("sync", Some(true)),
                ("any skip", Some(true)),
                ("wrong reason", Some(false)),
                ("wrong verdict", Some(false)),
                // A panic with no expectation is a failure, with its message kept.
                ("panics", Some(false)),
                // A config the selector cannot use fails the call; it is never a skip.
                ("bad config", Some(false)),
                ("line 8", None),
            ]
        );
        assert!(
            outcomes[4].output["failed"].as_str().unwrap().contains("deliberate: p@x.io"),
            "{:?}",
            outcomes[4]
        );
        let bad = outcomes[5].output["failed"].as_str().unwrap();
        assert!(bad.starts_with("bad-config") && bad.contains("nope"), "{bad}");
        assert_eq!(fixtures::failures(&outcomes).len(), 4);
        // A mapper given to the runner as a selector is refused per case, not silently passed.
        let refused = fixtures::run(&NativeMapper(&Upper), Role::Selector, &cases[..1]);
        assert!(refused[0].failed(), "{:?}", refused[0]);
    }

    #[derive(Default)]
    struct Upper;

    impl Mapper for Upper {
        type Config = NoConfig;
        fn map(&self, _ctx: &Context<NoConfig>, record: Record) -> Result<Record, RecordError> {
            Ok(record)
        }
    }
}
