//! Property: random edits on both sides, interleaved with syncs (each a
//! fresh `crmsync run --once` process, so every sync is also a restart),
//! converge — after a sync both sides hold the same values for every linked
//! record — and cause no ping-pong: each changed record costs at most one
//! write per side, and the sync after that writes nothing at all.
//!
//! The edit sequence is drawn from a seeded generator (printed; set
//! `CONVERGE_SEED` to replay it).

use std::collections::BTreeMap;

use crate::common::{Env, all_selection, crmsync, marketing_connector, marketing_vendor, person_fields};
use crmsync::connectors::{Connector, Write, WriteKey};
#[allow(unused_imports)]
use crmsync::core::MarketingApi;
use crmsync_sandbox::common::Vendor;
use crmsync_sdk::types::{Record, System};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

const LEADS: usize = 40;

/// Write calls a vendor has served so far (reads excluded).
fn writes(env: &Env, vendor: Vendor) -> u64 {
    env.sandbox
        .ctx(vendor)
        .telemetry
        .by_endpoint()
        .into_iter()
        .filter(|(endpoint, _)| {
            !endpoint.starts_with("GET ") && !endpoint.contains("oauth2") && !endpoint.contains("/query")
        })
        .map(|(_, n)| n)
        .sum()
}

async fn sync(env: &Env) -> Value {
    let out = crmsync(env, &["run", "--once", "--json"]).await;
    assert!(out.ok(), "{out}");
    serde_json::from_str(&out.stdout).unwrap()
}

fn updated(run: &Value) -> (u64, u64) {
    (run["outbound"]["updated"].as_u64().unwrap(), run["inbound"]["updated"].as_u64().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_edits_on_both_sides_converge_without_ping_pong() {
    converges("activecampaign").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_edits_on_both_sides_converge_without_ping_pong_with_brevo() {
    converges("brevo").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_edits_on_both_sides_converge_without_ping_pong_with_mailchimp() {
    converges("mailchimp").await;
}

async fn converges(vendor: &str) {
    let seed_value: u64 =
        std::env::var("CONVERGE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    println!("CONVERGE_SEED={seed_value} ({vendor})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed_value);
    let seed = json!({"salesforce": {"generate": {"Lead": LEADS}}});
    let env = Env::start_vendor(vendor, seed, all_selection(), json!({}), false).await;
    let first = sync(&env).await;
    assert_eq!(first["outbound"]["created"], LEADS);
    let (sf, _) = crate::common::connect(&env.sandbox, Default::default()).unwrap();
    let ac = marketing_connector(&env);
    let (mk_email, mk_first, mk_last) = person_fields(&env);
    // Salesforce field and its marketing counterpart.
    let fields = [("FirstName", mk_first), ("LastName", mk_last)];
    let mk = marketing_vendor(&env);
    let people = ac.capabilities().people;
    let emails: Vec<String> = (0..LEADS).map(|i| format!("gen-lead-{i}@example.com")).collect();
    let sf_ids = sf.find_by_email("Lead", &emails).await.unwrap();
    let ac_ids = ac.find_by_email(people, &emails).await.unwrap();
    assert_eq!(
        ac_ids.len(),
        LEADS,
        "{:?}",
        emails.iter().filter(|e| !ac_ids.contains_key(*e)).collect::<Vec<_>>()
    );
    assert_eq!(sf_ids.len(), LEADS);

    for round in 0..6 {
        // Edit a few records: Salesforce, ActiveCampaign, or both (a conflict).
        let count = rng.random_range(1..=6);
        let edited: Vec<&String> = emails.choose_multiple(&mut rng, count).collect();
        for email in &edited {
            let (sf_field, ac_field) = *fields.choose(&mut rng).unwrap();
            let side = rng.random_range(0..3);
            let mut value = |who: &str| format!("{who}{round}x{}", rng.random_range(0..1000));
            if side != 1 {
                let record = Record::new(System::Salesforce, "Lead").with(sf_field, value("S"));
                let w = Write::Upsert { key: WriteKey::Id(sf_ids[*email][0].clone()), record };
                assert!(sf.write("Lead", vec![w]).await.unwrap()[0].is_ok());
            }
            if side != 0 {
                let record = Record::new(ac.system(), people).with(ac_field, value("A"));
                let w = Write::Upsert { key: WriteKey::Id(ac_ids[*email][0].clone()), record };
                assert!(ac.write(people, vec![w]).await.unwrap()[0].is_ok());
            }
        }
        let before = (writes(&env, Vendor::Salesforce), writes(&env, mk));
        let run = sync(&env).await;
        let (out, back) = updated(&run);
        let n = edited.len() as u64;
        assert!(
            out <= n && back <= n,
            "round {round}: {n} records edited, {out} written out and {back} back (seed {seed_value}): {run}"
        );

        // Converged: every mapped field equal on both sides.
        let sf_now =
            sf.get("Lead", &sf_ids.values().map(|v| v[0].clone()).collect::<Vec<_>>()).await.unwrap();
        let ac_now =
            ac.get(people, &ac_ids.values().map(|v| v[0].clone()).collect::<Vec<_>>()).await.unwrap();
        let values = |records: &[Record],
                      email: &str,
                      first: &str,
                      last: &str|
         -> BTreeMap<String, (String, String)> {
            let text = |r: &Record, k: &str| r.text(k).unwrap_or_default().to_string();
            records.iter().map(|r| (text(r, email).to_lowercase(), (text(r, first), text(r, last)))).collect()
        };
        let left = values(&sf_now, "Email", "FirstName", "LastName");
        let right = values(&ac_now, mk_email, mk_first, mk_last);
        assert_eq!(left, right, "round {round}: the sides differ (seed {seed_value})");

        // The next sync finds only echoes: nothing is written on either side.
        let writes_after_first = (writes(&env, Vendor::Salesforce), writes(&env, mk));
        let idle = sync(&env).await;
        assert_eq!(updated(&idle), (0, 0), "round {round}: ping-pong (seed {seed_value}): {idle}");
        let writes_after_idle = (writes(&env, Vendor::Salesforce), writes(&env, mk));
        assert_eq!(
            writes_after_idle, writes_after_first,
            "round {round}: an idle sync wrote (seed {seed_value})"
        );
        assert!(writes_after_first.0 >= before.0 && writes_after_first.1 >= before.1);
    }
}

/// A field of the typed property test: its Salesforce and ActiveCampaign
/// names, the mapping type, and how each side declares it.
struct Typed {
    sf: &'static str,
    ac: &'static str,
    kind: &'static str,
}

const TYPED: [Typed; 10] = [
    Typed { sf: "FirstName", ac: "firstName", kind: "text" },
    Typed { sf: "LastName", ac: "lastName", kind: "text" },
    Typed { sf: "Phone", ac: "phone", kind: "phone" },
    Typed { sf: "Opt_In__c", ac: "OPT_IN", kind: "boolean" },
    Typed { sf: "Rating__c", ac: "RATING", kind: "picklist" },
    Typed { sf: "Interests__c", ac: "INTERESTS", kind: "multipicklist" },
    Typed { sf: "Birth__c", ac: "BIRTH", kind: "date" },
    Typed { sf: "Seen__c", ac: "SEEN", kind: "datetime" },
    Typed { sf: "Revenue__c", ac: "REVENUE", kind: "currency" },
    Typed { sf: "Score__c", ac: "SCORE", kind: "number" },
];

const PICKS: [&str; 3] = ["Hot", "Warm", "Cold"];
const INTERESTS: [&str; 3] = ["A", "B", "C"];

/// A random value of `kind`, in the form one side's API takes it (phones in
/// several formats, multi-picklists as Salesforce text or a marketing list).
fn random_value(
    rng: &mut rand::rngs::StdRng,
    kind: &str,
    side: System,
    tag: &str,
) -> crmsync_sdk::types::Value {
    use crmsync_sdk::types::Value as V;
    match kind {
        "text" => V::text(format!("{tag}{}", rng.random_range(0..100_000))),
        "phone" => {
            let n = rng.random_range(0..10_000);
            let formats = [
                format!("+1 415 555 {n:04}"),
                format!("+1 (415) 555-{n:04}"),
                format!("+1-415-555-{n:04}"),
                format!("+1415555{n:04}"),
            ];
            V::text(formats.choose(rng).unwrap().clone())
        }
        "boolean" => V::Boolean(rng.random_bool(0.5)),
        "picklist" => V::text(*PICKS.choose(rng).unwrap()),
        "multipicklist" => {
            let count = rng.random_range(1..=3);
            let mut picked: Vec<String> =
                INTERESTS.choose_multiple(rng, count).map(|s| s.to_string()).collect();
            picked.sort();
            if side == System::Salesforce { V::text(picked.join(";")) } else { V::TextList(picked) }
        }
        "date" => V::Date(
            chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap()
                + chrono::Days::new(rng.random_range(0..3000)),
        ),
        "datetime" => V::DateTime(
            chrono::DateTime::from_timestamp(1_600_000_000 + rng.random_range(0..100_000_000), 0).unwrap(),
        ),
        "currency" => V::Decimal(rust_decimal::Decimal::new(rng.random_range(0..10_000_000), 2)),
        "number" => V::Number(f64::from(rng.random_range(0..4000)) / 4.0),
        other => unreachable!("{other}"),
    }
}

/// One comparable text for a value of `kind`, whichever side and form it
/// came in: the property compares meaning, not each API's spelling.
fn normal(kind: &str, value: Option<&crmsync_sdk::types::Value>) -> String {
    use crmsync_sdk::types::Value as V;
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return if kind == "boolean" { "false".into() } else { String::new() };
    };
    let text = value.to_string();
    match (kind, value) {
        ("phone", _) => text.chars().filter(char::is_ascii_digit).collect(),
        ("boolean", V::Boolean(b)) => b.to_string(),
        ("boolean", V::TextList(l)) => (!l.is_empty()).to_string(),
        ("boolean", _) => {
            matches!(text.trim().to_lowercase().as_str(), "true" | "yes" | "1" | "||yes||").to_string()
        }
        ("multipicklist", V::TextList(l)) => {
            let mut l = l.clone();
            l.sort();
            l.join(";")
        }
        ("multipicklist", _) => {
            let mut l: Vec<&str> =
                text.split([';', '|', ',']).map(str::trim).filter(|s| !s.is_empty()).collect();
            l.sort();
            l.join(";")
        }
        ("date", _) => text.chars().take(10).collect(),
        ("datetime", V::DateTime(t)) => t.timestamp().to_string(),
        ("datetime", _) => {
            chrono::DateTime::parse_from_rfc3339(&text).map(|t| t.timestamp().to_string()).unwrap_or(text)
        }
        ("currency" | "number", V::Number(n)) => format!("{n:.2}"),
        ("currency" | "number", _) => text.trim().parse::<f64>().map_or(text, |n| format!("{n:.2}")),
        _ => text.trim().to_string(),
    }
}

/// A value as the Salesforce seed takes it.
fn as_json(value: &crmsync_sdk::types::Value) -> Value {
    use crmsync_sdk::types::Value as V;
    match value {
        V::Boolean(b) => json!(b),
        V::Number(n) => json!(n),
        V::Decimal(d) => json!(d.to_string().parse::<f64>().unwrap()),
        V::DateTime(t) => json!(t.to_rfc3339()),
        other => json!(other.to_string()),
    }
}

/// What one record's edit in a round was, to check after the sync.
enum Case {
    /// Only one side edited this field: that value must be on both sides.
    OneSide { field: usize, expected: String },
    /// Both sides edited the same field: either value may win, both sides agree.
    SameField { field: usize, either: [String; 2] },
    /// The sides edited different fields: both edits survive.
    TwoFields { expected: [(usize, String); 2] },
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_fields_with_random_edits_on_both_sides_converge_over_200_cases() {
    let seed_value: u64 =
        std::env::var("CONVERGE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    println!("CONVERGE_SEED={seed_value}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed_value);
    const RECORDS: usize = 40;
    const ROUNDS: usize = 7; // at least 30 edited records a round: 210 cases or more

    let leads: Vec<Value> = (0..RECORDS)
        .map(|i| {
            let mut lead = json!({"LastName": format!("Typed{i}"), "Company": "Acme", "Email": format!("typed-{i}@example.com")});
            for f in &TYPED[2..] {
                if rng.random_bool(0.7) {
                    lead[f.sf] = as_json(&random_value(&mut rng, f.kind, System::Salesforce, "S"));
                }
            }
            lead
        })
        .collect();
    let seed = json!({
        "salesforce": {
            "fields": {"Lead": [
                {"name": "Opt_In__c", "type": "boolean"},
                {"name": "Rating__c", "type": "picklist", "values": PICKS},
                {"name": "Interests__c", "type": "multipicklist", "values": INTERESTS},
                {"name": "Birth__c", "type": "date"},
                {"name": "Seen__c", "type": "datetime"},
                {"name": "Revenue__c", "type": "currency", "precision": 18, "scale": 2},
                {"name": "Score__c", "type": "double", "precision": 18, "scale": 2}
            ]},
            "records": {"Lead": leads}
        },
        "activecampaign": {"fields": [
            {"title": "Opt in", "type": "checkbox", "perstag": "OPT_IN"},
            {"title": "Rating", "type": "dropdown", "perstag": "RATING"},
            {"title": "Interests", "type": "listbox", "perstag": "INTERESTS"},
            {"title": "Birth", "type": "date", "perstag": "BIRTH"},
            {"title": "Seen", "type": "datetime", "perstag": "SEEN"},
            {"title": "Revenue", "type": "text", "perstag": "REVENUE"},
            {"title": "Score", "type": "text", "perstag": "SCORE"}
        ]}
    });
    let custom: Vec<Value> = TYPED[3..]
        .iter()
        .map(|f| json!({"salesforce": f.sf, "marketing": f.ac, "type": f.kind, "objects": ["Lead"]}))
        .collect();
    let plugins = crate::common::plugins_dir();
    let rules = json!({
        "selector": {"plugin": plugins.join("selection.wasm"), "config": all_selection()},
        "mapper": {"plugin": plugins.join("standard-mapping.wasm"),
                   "config": {"marketing": "activecampaign", "fields": custom}},
        "resolver": {"plugin": plugins.join("field-policy-resolver.wasm"), "config": {}},
    });
    let env = Env::start(seed, all_selection(), json!({"objects": ["Lead"], "rules": rules})).await;
    let first = sync(&env).await;
    assert_eq!(first["outbound"]["created"], RECORDS, "{first}");
    assert_eq!(first["outbound"]["errors"], 0, "{first}");
    let (sf, ac) = crate::common::connect(&env.sandbox, Default::default()).unwrap();
    let emails: Vec<String> = (0..RECORDS).map(|i| format!("typed-{i}@example.com")).collect();
    let sf_ids = sf.find_by_email("Lead", &emails).await.unwrap();
    let ac_ids = ac.find_by_email("contact", &emails).await.unwrap();
    assert_eq!((sf_ids.len(), ac_ids.len()), (RECORDS, RECORDS));

    // Both sides, every typed field, keyed by email.
    let snapshot = async || {
        let sf_now =
            sf.get("Lead", &sf_ids.values().map(|v| v[0].clone()).collect::<Vec<_>>()).await.unwrap();
        let ac_now =
            ac.get("contact", &ac_ids.values().map(|v| v[0].clone()).collect::<Vec<_>>()).await.unwrap();
        let side = |records: &[Record], email: &str, name: fn(&Typed) -> &'static str| {
            records
                .iter()
                .map(|r| {
                    let key = r.text(email).unwrap_or_default().to_lowercase();
                    (key, TYPED.iter().map(|f| normal(f.kind, r.get(name(f)))).collect::<Vec<_>>())
                })
                .collect::<BTreeMap<String, Vec<String>>>()
        };
        (side(&sf_now, "Email", |f| f.sf), side(&ac_now, "email", |f| f.ac))
    };
    let (left, right) = snapshot().await;
    assert_eq!(left, right, "the first sync differs (seed {seed_value})");

    let mut cases = 0;
    // Every edit made, per record: what a failure prints.
    let mut history: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for round in 0..ROUNDS {
        let count = rng.random_range(30..=RECORDS);
        let edited: Vec<String> = emails.choose_multiple(&mut rng, count).cloned().collect();
        let mut expect: Vec<(String, Case)> = Vec::new();
        for email in &edited {
            let pattern = rng.random_range(0..4);
            let a = rng.random_range(0..TYPED.len());
            let b = (a + rng.random_range(1..TYPED.len())) % TYPED.len();
            let sf_value = random_value(&mut rng, TYPED[a].kind, System::Salesforce, &format!("S{round}x"));
            let ac_field = if pattern == 3 { b } else { a };
            let ac_value =
                random_value(&mut rng, TYPED[ac_field].kind, System::ActiveCampaign, &format!("A{round}x"));
            if pattern != 1 {
                let record = Record::new(System::Salesforce, "Lead").with(TYPED[a].sf, sf_value.clone());
                let w = Write::Upsert { key: WriteKey::Id(sf_ids[email][0].clone()), record };
                let out = sf.write("Lead", vec![w]).await.unwrap();
                assert!(out[0].is_ok(), "{out:?}");
            }
            if pattern != 0 {
                let record =
                    Record::new(System::ActiveCampaign, "contact").with(TYPED[ac_field].ac, ac_value.clone());
                let w = Write::Upsert { key: WriteKey::Id(ac_ids[email][0].clone()), record };
                let out = ac.write("contact", vec![w]).await.unwrap();
                assert!(out[0].is_ok(), "{out:?}");
            }
            let sf_norm = normal(TYPED[a].kind, Some(&sf_value));
            let ac_norm = normal(TYPED[ac_field].kind, Some(&ac_value));
            let case = match pattern {
                0 => Case::OneSide { field: a, expected: sf_norm },
                1 => Case::OneSide { field: a, expected: ac_norm },
                2 => Case::SameField { field: a, either: [sf_norm, ac_norm] },
                _ => Case::TwoFields { expected: [(a, sf_norm), (b, ac_norm)] },
            };
            let mut line = format!("round {round}: ");
            if pattern != 1 {
                line += &format!("Salesforce {}={sf_value:?} ", TYPED[a].sf);
            }
            if pattern != 0 {
                line += &format!("marketing {}={ac_value:?}", TYPED[ac_field].ac);
            }
            history.entry(email.clone()).or_default().push(line);
            expect.push((email.clone(), case));
        }
        cases += expect.len();
        if std::env::var("CONVERGE_TRACE").is_ok() {
            let dry = crmsync(&env, &["run", "--once", "--dry-run", "--json"]).await;
            let dry: Value = serde_json::from_str(&dry.stdout).unwrap();
            println!("round {round} dry run: {dry}");
        }
        let run = sync(&env).await;
        if std::env::var("CONVERGE_TRACE").is_ok() {
            println!("round {round}: {run}");
        }
        let (out, back) = updated(&run);
        let n = edited.len() as u64;
        assert!(
            out <= n && back <= n,
            "round {round}: {n} edited, {out} out and {back} back (seed {seed_value}): {run}"
        );
        assert_eq!(
            (run["outbound"]["errors"].as_u64(), run["inbound"]["errors"].as_u64()),
            (Some(0), Some(0)),
            "{run}"
        );

        let (left, right) = snapshot().await;
        let differ: Vec<String> = left
            .iter()
            .filter(|(email, values)| right.get(*email) != Some(values))
            .map(|(email, values)| {
                format!("{email}: {values:?} / {:?}; edits {:?}", right.get(email), history.get(email))
            })
            .collect();
        assert!(
            differ.is_empty(),
            "round {round}: the sides differ (seed {seed_value}):\n{}",
            differ.join("\n")
        );
        for (email, case) in &expect {
            let now = &left[email];
            let name = |i: usize| TYPED[i].sf;
            match case {
                Case::OneSide { field, expected } => {
                    assert_eq!(
                        &now[*field],
                        expected,
                        "round {round}: {email} lost its {} edit (seed {seed_value})",
                        name(*field)
                    )
                }
                Case::SameField { field, either } => assert!(
                    either.contains(&now[*field]),
                    "round {round}: {email} {} is {:?}, neither edit {either:?} (seed {seed_value})",
                    name(*field),
                    now[*field]
                ),
                Case::TwoFields { expected } => {
                    for (field, value) in expected {
                        assert_eq!(
                            &now[*field],
                            value,
                            "round {round}: {email} lost its {} edit (seed {seed_value})",
                            name(*field)
                        );
                    }
                }
            }
        }

        let before_idle = (writes(&env, Vendor::Salesforce), writes(&env, Vendor::ActiveCampaign));
        let idle = sync(&env).await;
        assert_eq!(updated(&idle), (0, 0), "round {round}: ping-pong (seed {seed_value}): {idle}");
        let after_idle = (writes(&env, Vendor::Salesforce), writes(&env, Vendor::ActiveCampaign));
        assert_eq!(after_idle, before_idle, "round {round}: an idle sync wrote (seed {seed_value})");
    }
    assert!(cases >= 200, "only {cases} generated cases");
    println!("{cases} cases converged over {ROUNDS} rounds");
}
