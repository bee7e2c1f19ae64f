//! Crash safety: the `crmsync` process is killed with SIGKILL at random
//! points of a 20,000-record sync (initial and incremental), restarted, and
//! killed again; the final state must equal an uninterrupted run's: every
//! contact once in ActiveCampaign, every update there, every status written
//! back, nothing left in the outbox.
//!
//! The kill points are drawn from a seeded generator (printed; set
//! `CRASH_SEED` to replay one) as numbers of vendor API calls after the
//! start, so a kill lands anywhere: mid-read, between the outbox and the
//! write, mid bulk job, between a write and its link.

use std::collections::BTreeMap;

use crate::common::{Env, all_selection, crmsync, marketing_vendor, people};
use crmsync::connectors::{Connector, Write, WriteKey};
use crmsync_sandbox::common::{Vendor, VendorApi};
use crmsync_sdk::types::{Record, System};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

const LEADS: usize = 12_000;
const CONTACTS: usize = 8_000;

fn calls(env: &Env) -> u64 {
    env.sandbox.ctx(Vendor::Salesforce).telemetry.total()
        + env.sandbox.ctx(marketing_vendor(env)).telemetry.total()
}

/// Starts `run --once` and kills it (SIGKILL) once the vendors have seen
/// `after` more calls; returns whether it was killed (false: it finished first).
async fn run_and_kill(env: &Env, after: u64) -> bool {
    let start = calls(env);
    let mut child = env.command(&["run", "--once"]).spawn().expect("crmsync starts");
    loop {
        tokio::select! {
            status = child.wait() => {
                let status = status.unwrap();
                assert!(status.success(), "an uninterrupted run must succeed: {status:?}");
                return false;
            }
            // Polls the sandbox's counter; the kill point is a call count, not a time.
            _ = tokio::time::sleep(std::time::Duration::from_millis(2)) => {
                if calls(env) >= start + after {
                    child.start_kill().unwrap();
                    let status = child.wait().await.unwrap();
                    assert!(!status.success());
                    return true;
                }
            }
        }
    }
}

/// Runs until a run completes, then once more to flush follow-ups.
async fn finish(env: &Env) {
    let out = crmsync(env, &["run", "--once"]).await;
    assert!(out.ok(), "{out}");
    let out = crmsync(env, &["run", "--once"]).await;
    assert!(out.ok(), "{out}");
}

/// Edits the LastName of every 40th Lead (300 records) through the Salesforce API.
async fn edit_leads(env: &Env, suffix: &str) {
    let (sf, _) = crate::common::connect(&env.sandbox, Default::default()).unwrap();
    let emails: Vec<String> =
        (0..LEADS).step_by(40).map(|i| format!("gen-lead-{}@example.com", i + 1)).collect();
    let ids = sf.find_by_email("Lead", &emails).await.unwrap();
    let writes: Vec<Write> = emails
        .iter()
        .map(|e| Write::Upsert {
            key: WriteKey::Id(ids[e][0].clone()),
            record: Record::new(System::Salesforce, "Lead").with("LastName", format!("{e}-{suffix}")),
        })
        .collect();
    for chunk in writes.chunks(200) {
        let results = sf.write("Lead", chunk.to_vec()).await.unwrap();
        assert!(results.iter().all(Result::is_ok));
    }
}

/// What the test compares: per email, the contact's synced fields and tags;
/// per Salesforce email, the written-back status and whether its contact id is right.
fn outcome(env: &Env) -> (BTreeMap<String, Value>, BTreeMap<String, (Value, bool)>) {
    let mut by_email = BTreeMap::new();
    let mut id_to_email = BTreeMap::new();
    for person in people(env) {
        id_to_email.insert(person.id, person.email.clone());
        let previous = by_email.insert(person.email.clone(), person.synced);
        let email = person.email;
        assert!(previous.is_none(), "{email} exists twice on the marketing platform");
    }
    let state = env.sandbox.salesforce.state();
    let mut statuses = BTreeMap::new();
    for object in ["Lead", "Contact"] {
        for r in state["objects"][object].as_array().unwrap() {
            let email = r["Email"].as_str().unwrap_or_default().to_lowercase();
            let id_ok = r["AC_Contact_Id__c"].as_str().and_then(|id| id_to_email.get(id)) == Some(&email);
            statuses.insert(email, (r["AC_Sync_Status__c"].clone(), id_ok));
        }
    }
    (by_email, statuses)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_points_the_sync_ends_as_if_never_interrupted() {
    crash("activecampaign").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_points_the_sync_ends_as_if_never_interrupted_with_brevo() {
    crash("brevo").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_points_the_sync_ends_as_if_never_interrupted_with_mailchimp() {
    crash("mailchimp").await;
}

async fn crash(vendor: &str) {
    let seed_value: u64 =
        std::env::var("CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    println!("CRASH_SEED={seed_value} ({vendor})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed_value);
    let seed = json!({"salesforce": {"generate": {"Lead": LEADS, "Contact": CONTACTS}}});

    // The reference: the same data, never interrupted.
    let reference = Env::start_vendor(vendor, seed.clone(), all_selection(), json!({}), false).await;
    // The kill points fall inside the first run: the second one (a full
    // re-read of the marketing side's day window) can cost more than the
    // first, so the total of both would put many points past the sync's end.
    let out = crmsync(&reference, &["run", "--once"]).await;
    assert!(out.ok(), "{out}");
    let full_run_calls = calls(&reference);
    finish(&reference).await;
    edit_leads(&reference, "edited").await;
    finish(&reference).await;
    let expected = outcome(&reference);
    assert_eq!(expected.0.len(), LEADS + CONTACTS);
    assert!(expected.1.values().all(|(status, id_ok)| status == "Synced successfully" && *id_ok));
    let edited = expected.0.get("gen-lead-1@example.com").unwrap();
    assert_eq!(edited["last"], "gen-lead-1@example.com-edited");

    let env = Env::start_vendor(vendor, seed, all_selection(), json!({}), false).await;
    // Kill the initial sync up to five times (each restart has less left to do,
    // so a run may finish before its kill point: then the sync is done).
    let mut initial_kills = 0;
    while initial_kills < 5 && run_and_kill(&env, rng.random_range(1..full_run_calls / 2)).await {
        initial_kills += 1;
    }
    finish(&env).await;
    edit_leads(&env, "edited").await;
    let mut incremental_kills = 0;
    while incremental_kills < 3 && run_and_kill(&env, rng.random_range(1..12)).await {
        incremental_kills += 1;
    }
    finish(&env).await;
    println!(
        "killed {initial_kills} times during the initial sync, {incremental_kills} during the incremental one"
    );
    assert!(initial_kills >= 1 && incremental_kills >= 1, "the test must interrupt both (seed {seed_value})");

    let got = outcome(&env);
    assert_eq!(got.0.len(), expected.0.len(), "contacts (seed {seed_value})");
    for (email, want) in &expected.0 {
        assert_eq!(got.0.get(email), Some(want), "{email} (seed {seed_value})");
    }
    let wrong: Vec<_> = expected
        .1
        .iter()
        .filter(|(email, want)| got.1.get(*email) != Some(*want))
        .map(|(email, want)| (email, want, got.1.get(email)))
        .take(5)
        .collect();
    assert!(wrong.is_empty(), "write-backs (seed {seed_value}): {wrong:?}");
    let status = crmsync(&env, &["status", "--json"]).await;
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status[0]["pending_writes"], 0, "{status}");
    assert_eq!(status[0]["links"], LEADS + CONTACTS, "{status}");
}
