//! Deletes per direction (SPEC §3), end to end over loopback: a Salesforce
//! record deleted — or merged away when its master has a contact of its own —
//! deletes or unsubscribes its ActiveCampaign contact, or only drops the link
//! (`ignore`); a contact deleted in ActiveCampaign is found by reconciliation
//! and deletes, opts out or leaves its Salesforce record; an implausible number
//! of missing contacts is refused, not applied.

use crate::common::{Env, ac_contacts, all_selection, crmsync};
use crmsync::connectors::{Connector, Write};
use serde_json::{Value, json};

async fn sync(env: &Env, args: &[&str]) -> Value {
    let mut all = vec!["run", "--once", "--json"];
    all.extend(args);
    let out = crmsync(env, &all).await;
    assert!(out.ok(), "{out}");
    serde_json::from_str(&out.stdout).unwrap_or_else(|_| panic!("{out}"))
}

fn emails(env: &Env) -> Vec<String> {
    let mut e: Vec<String> =
        ac_contacts(env).iter().map(|c| c["email"].as_str().unwrap().to_string()).collect();
    e.sort();
    e
}

fn lead_email(i: usize) -> String {
    format!("gen-lead-{i}@example.com")
}

async fn lead_ids(sf: &dyn Connector, n: usize) -> Vec<String> {
    let emails: Vec<String> = (0..n).map(lead_email).collect();
    let found = sf.find_by_email("Lead", &emails).await.unwrap();
    emails.iter().map(|e| found[e][0].clone()).collect()
}

async fn links(env: &Env) -> u64 {
    let out = crmsync(env, &["status", "--json"]).await;
    let status: Value = serde_json::from_str(&out.stdout).unwrap();
    status[0]["links"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salesforce_deletes_and_merges_delete_the_contacts_when_the_policy_says_delete() {
    let seed = json!({"salesforce": {"generate": {"Lead": 4}}});
    let env = Env::start(seed, all_selection(), json!({"deletes": {"to_marketing": "delete"}})).await;
    assert_eq!(sync(&env, &[]).await["outbound"]["created"], 4);
    let (sf, _) = crate::common::connect(&env.sandbox, Default::default()).unwrap();
    let ids = lead_ids(&sf, 4).await;

    sf.write("Lead", vec![Write::Delete { id: ids[0].clone() }]).await.unwrap()[0].as_ref().unwrap();
    // Lead 2 merges into Lead 1: both have contacts, so Lead 2's goes like a deletion.
    env.sandbox.salesforce.merge("Lead", &ids[1], &[&ids[2]]).unwrap();

    let run = sync(&env, &[]).await;
    assert_eq!(run["outbound"]["deleted"], 2, "{run}");
    let status = crmsync(&env, &["status", "--json"]).await;
    assert_eq!(run["outbound"]["errors"], 0, "{run}\n{}", status.stdout);
    assert_eq!(emails(&env), [lead_email(1), lead_email(3)]);
    assert_eq!(links(&env).await, 2, "no dangling link");

    let again = sync(&env, &[]).await;
    assert_eq!(again["outbound"]["deleted"], 0, "handled once: {again}");
    assert_eq!(emails(&env).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_keeps_the_contact_but_opts_it_out_and_ignore_only_drops_the_link() {
    let seed = json!({
        "salesforce": {"generate": {"Lead": 3}},
        "activecampaign": {"contacts": (0..3).map(|i| json!({
            "email": lead_email(i), "lastName": "Seeded", "lists": [{"list": 1, "status": 1}]
        })).collect::<Vec<_>>()},
    });
    let env = Env::start(
        seed,
        all_selection(),
        json!({"deletes": {"to_marketing": "unsubscribe", "to_salesforce": "ignore"}}),
    )
    .await;
    sync(&env, &[]).await;
    assert_eq!(links(&env).await, 3);
    let (sf, ac) = crate::common::connect(&env.sandbox, Default::default()).unwrap();
    let ids = lead_ids(&sf, 3).await;
    sf.write("Lead", vec![Write::Delete { id: ids[0].clone() }]).await.unwrap()[0].as_ref().unwrap();

    let run = sync(&env, &[]).await;
    assert_eq!(run["outbound"]["deleted"], 1, "{run}");
    let contacts = ac_contacts(&env);
    let gone = contacts.iter().find(|c| c["email"] == lead_email(0).as_str()).expect("the contact stays");
    assert_eq!(gone["lists"]["1"], 2, "unsubscribed from its list: {gone}");
    let other = contacts.iter().find(|c| c["email"] == lead_email(1).as_str()).unwrap();
    assert_eq!(other["lists"]["1"], 1, "the others stay subscribed");
    assert_eq!(links(&env).await, 2);

    // A contact deleted in ActiveCampaign, with `to_salesforce = "ignore"`:
    // reconciliation drops the link and leaves the Lead.
    let ac_id = ac.find_by_email("contact", &[lead_email(1)]).await.unwrap()[&lead_email(1)][0].clone();
    ac.write("contact", vec![Write::Delete { id: ac_id }]).await.unwrap()[0].as_ref().unwrap();
    let run = sync(&env, &["--reconcile"]).await;
    assert_eq!(run["outbound"]["deleted"], 1, "{run}");
    assert_eq!(links(&env).await, 1);
    let lead = env.sandbox.salesforce.record("Lead", &ids[1]).unwrap();
    assert_eq!(lead["IsDeleted"], false, "{lead}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_deleted_in_activecampaign_deletes_its_lead_but_a_mass_disappearance_is_refused() {
    let seed = json!({"salesforce": {"generate": {"Lead": 30}}});
    let env = Env::start(seed, all_selection(), json!({"deletes": {"to_salesforce": "delete"}})).await;
    sync(&env, &[]).await;
    let (sf, ac) = crate::common::connect(&env.sandbox, Default::default()).unwrap();
    let ids = lead_ids(&sf, 30).await;
    let contact_id = |i: usize| {
        let email = lead_email(i);
        let ac = &ac;
        async move { ac.find_by_email("contact", std::slice::from_ref(&email)).await.unwrap()[&email][0].clone() }
    };
    let first = contact_id(0).await;
    ac.write("contact", vec![Write::Delete { id: first }]).await.unwrap()[0].as_ref().unwrap();

    // Polling alone cannot see a deletion; reconciliation does.
    assert_eq!(sync(&env, &[]).await["outbound"]["deleted"], 0);
    let run = sync(&env, &["--reconcile"]).await;
    assert_eq!(run["outbound"]["deleted"], 1, "{run}");
    assert!(env.sandbox.salesforce.record("Lead", &ids[0]).is_none_or(|l| l["IsDeleted"] == true));
    assert_eq!(links(&env).await, 29);

    // 12 of the 29 remaining contacts vanish at once: refused, reported, nothing deleted.
    let mut writes = Vec::new();
    for i in 1..13 {
        writes.push(Write::Delete { id: contact_id(i).await });
    }
    ac.write("contact", writes).await.unwrap();
    let run = sync(&env, &["--reconcile"]).await;
    assert_eq!(run["outbound"]["deleted"], 0, "{run}");
    assert_eq!(links(&env).await, 29);
    for id in &ids[1..13] {
        assert_eq!(env.sandbox.salesforce.record("Lead", id).unwrap()["IsDeleted"], false);
    }
    let status = crmsync(&env, &["status", "--json"]).await;
    assert!(status.stdout.contains("implausible-deletes"), "{status}");
}
