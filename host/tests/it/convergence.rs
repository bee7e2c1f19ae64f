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
