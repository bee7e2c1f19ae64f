//! The default plugins through the real runtime: their fixture files cover
//! every default mapping, conversion, selection mode and merge policy,
//! including the failures; a fixture that is not met fails the test.

use crmsync::plugins::Role;
use crmsync::plugins::fixtures;
use crmsync_sdk::types::{Context, Direction, Record, System, Value};

use super::{load, runtime};

fn run_fixtures(name: &str, role: Role, at_least: usize) {
    let dir = tempfile::tempdir().unwrap();
    let plugin = load(&runtime(dir.path()), name);
    let text =
        std::fs::read_to_string(format!("{}/../plugins/{name}/fixtures.jsonl", env!("CARGO_MANIFEST_DIR")))
            .unwrap();
    let cases = fixtures::parse(&text, None).unwrap();
    assert!(cases.len() >= at_least, "{name} has only {} fixtures", cases.len());
    assert!(cases.iter().all(|c| c.expect.is_some()), "every fixture of {name} states what it expects");
    let outcomes = fixtures::run(&plugin, role, &cases);
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|o| o.failed())
        .map(|o| format!("{}: {:?} (output {})", o.name, o.verdict, o.output))
        .collect();
    assert!(failed.is_empty(), "{name} fixtures failed:\n{}", failed.join("\n"));
    // Failure cases are part of the set, not just successes.
    assert!(outcomes.iter().any(|o| o.output.get("error").is_some() || o.output.get("skip").is_some()));
}

#[test]
fn standard_mapping_fixtures_pass_through_the_runtime() {
    run_fixtures("standard-mapping", Role::Mapper, 40);
}

#[test]
fn selection_fixtures_pass_through_the_runtime() {
    run_fixtures("selection", Role::Selector, 20);
}

#[test]
fn field_policy_resolver_fixtures_pass_through_the_runtime() {
    run_fixtures("field-policy-resolver", Role::Resolver, 10);
}

#[test]
fn a_wrong_expectation_is_reported_as_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = load(&runtime(dir.path()), "standard-mapping");
    let case = r#"{"config":{"marketing":"activecampaign"},"input":{"system":"salesforce","object":"Lead","id":"00Q1","fields":{"Email":"a@example.com"}},"expect":{"error":{"code":"missing-email"}}}"#;
    let cases = fixtures::parse(case, None).unwrap();
    let outcomes = fixtures::run(&plugin, Role::Mapper, &cases);
    assert!(outcomes[0].failed(), "{:?}", outcomes[0]);
}

#[test]
fn a_batch_returns_one_result_per_record_in_order_and_typed_values_cross_intact() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = load(&runtime(dir.path()), "standard-mapping");
    let ctx = Context {
        connection: "c".into(),
        direction: Direction::ToMarketing,
        run_id: "r".into(),
        target: None,
        config: r#"{"marketing":"brevo","fields":[{"salesforce":"Revenue__c","marketing":"REV","type":"currency"},{"salesforce":"Since__c","marketing":"SINCE","type":"datetime"},{"salesforce":"Tags__c","marketing":"TAGS","type":"multipicklist"}]}"#.into(),
    };
    let records: Vec<Record> = (0..250)
        .map(|i| {
            let mut r = Record::new(System::Salesforce, "Contact").with_id(format!("003{i:015}"));
            if i % 50 != 7 {
                r.set("Email", format!("person{i}@example.com"));
            }
            r.with("Revenue__c", Value::Decimal(format!("{i}.25").parse().unwrap()))
                .with("Since__c", Value::DateTime("2026-01-02T03:04:05.123456789Z".parse().unwrap()))
                .with("Tags__c", "a;b")
        })
        .collect();
    let out = plugin.map(&ctx, &records);
    assert_eq!(out.len(), 250);
    for (i, result) in out.iter().enumerate() {
        if i % 50 == 7 {
            let failure = result.as_ref().unwrap_err();
            assert_eq!(failure.code(), "missing-email");
            assert_eq!(failure.record.as_deref(), Some(format!("003{i:015}").as_str()));
            assert_eq!(failure.plugin.name, "standard-mapping");
            continue;
        }
        let rec = result.as_ref().unwrap();
        assert_eq!(rec.text("email"), Some(format!("person{i}@example.com").as_str()));
        assert_eq!(rec.get("REV"), Some(&Value::Decimal(format!("{i}.25").parse().unwrap())));
        assert_eq!(
            rec.get("SINCE"),
            Some(&Value::DateTime("2026-01-02T03:04:05.123456789Z".parse().unwrap()))
        );
        assert_eq!(rec.get("TAGS"), Some(&Value::TextList(vec!["a".into(), "b".into()])));
    }
}
