//! Sync cases a customer would find in their data, end to end over loopback
//! with the `crmsync` binary: no edit lost when the two sides edit different
//! fields, no endless writes for values a vendor re-formats (checkboxes,
//! phones), every per-item failure on its own record, accounts shared by a
//! batch created once, one vendor's rules kept to that vendor, control
//! characters stripped.

use crmsync::connectors::{Connector, Write, WriteKey};
use crmsync_sandbox::common::{Vendor, VendorApi};
use crmsync_sdk::types::{Record, System, Value as V};
use serde_json::{Value, json};

use crate::common::{Env, ac_contacts, all_selection, crmsync, plugins_dir};

async fn run(env: &Env) -> Value {
    let out = crmsync(env, &["run", "--once", "--json"]).await;
    assert!(out.ok(), "{out}");
    serde_json::from_str(&out.stdout).unwrap_or_else(|_| panic!("{out}"))
}

/// Writes (updates, creates, write-backs) a run made on either side.
fn writes(run: &Value) -> u64 {
    let n = |side: &str, k: &str| run[side][k].as_u64().unwrap_or(0);
    n("outbound", "created") + n("outbound", "updated") + n("inbound", "created") + n("inbound", "updated")
}

/// The connection's rules with the mapper's config.
fn rules(mapper: Value) -> Value {
    let plugins = plugins_dir();
    json!({
        "selector": {"plugin": plugins.join("selection.wasm"), "config": all_selection()},
        "mapper": {"plugin": plugins.join("standard-mapping.wasm"), "config": mapper},
        "resolver": {"plugin": plugins.join("field-policy-resolver.wasm"), "config": {}},
    })
}

fn lead(env: &Env, email: &str) -> Value {
    let leads = env.sandbox.salesforce.state()["objects"]["Lead"].as_array().cloned().unwrap();
    leads.into_iter().find(|l| l["Email"] == email).unwrap_or_else(|| panic!("no Lead {email}"))
}

fn contact(env: &Env, email: &str) -> Value {
    ac_contacts(env).into_iter().find(|c| c["email"] == email).unwrap_or_else(|| panic!("no contact {email}"))
}

async fn edit_lead(env: &Env, email: &str, field: &str, value: V) {
    let (sf, _) = crate::common::connect(&env.sandbox, Default::default()).unwrap();
    let id = lead(env, email)["Id"].as_str().unwrap().to_string();
    let record = Record::new(System::Salesforce, "Lead").with(field, value);
    let out = sf.write("Lead", vec![Write::Upsert { key: WriteKey::Id(id), record }]).await.unwrap();
    assert!(out[0].is_ok(), "{out:?}");
}

async fn edit_contact(env: &Env, email: &str, field: &str, value: V) {
    let (_, ac) = crate::common::connect(&env.sandbox, Default::default()).unwrap();
    let id = contact(env, email)["id"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| contact(env, email)["id"].to_string());
    let record = Record::new(System::ActiveCampaign, "contact").with(field, value);
    let out = ac.write("contact", vec![Write::Upsert { key: WriteKey::Id(id), record }]).await.unwrap();
    assert!(out[0].is_ok(), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_of_different_fields_on_the_two_sides_both_survive() {
    let seed = json!({"salesforce": {"records": {"Lead": [
        {"FirstName": "Ona", "LastName": "One", "Company": "Acme", "Email": "one@example.com", "Phone": "+1 415 555 0100"}
    ]}}});
    let env = Env::start(seed, all_selection(), json!({})).await;
    run(&env).await;
    assert_eq!(contact(&env, "one@example.com")["phone"], "+14155550100");

    // An edit on the marketing side only rewrites nothing else in Salesforce.
    edit_contact(&env, "one@example.com", "firstName", V::text("Onaa")).await;
    run(&env).await;
    let l = lead(&env, "one@example.com");
    assert_eq!(
        (l["FirstName"].as_str(), l["Phone"].as_str()),
        (Some("Onaa"), Some("+1 415 555 0100")),
        "{l}"
    );

    // Salesforce edits the phone; a little later the marketing side edits the last name.
    edit_lead(&env, "one@example.com", "Phone", V::text("+1 415 555 0177")).await;
    edit_contact(&env, "one@example.com", "lastName", V::text("OneAC")).await;
    let both = run(&env).await;
    assert_eq!(both["inbound"]["conflicts"], 0, "different fields are no conflict: {both}");
    let l = lead(&env, "one@example.com");
    assert_eq!(
        (l["LastName"].as_str(), l["Phone"].as_str()),
        (Some("OneAC"), Some("+1 415 555 0177")),
        "{l}"
    );
    let c = contact(&env, "one@example.com");
    assert_eq!((c["lastName"].as_str(), c["phone"].as_str()), (Some("OneAC"), Some("+14155550177")), "{c}");
    let idle = run(&env).await;
    assert_eq!(writes(&idle), 0, "converged: {idle}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkbox_round_trips_and_an_idle_run_writes_nothing() {
    let seed = json!({
        "salesforce": {
            "fields": {"Contact": [{"name": "Opt_In__c", "type": "boolean"}]},
            "records": {"Contact": [
                {"FirstName": "Yes", "LastName": "Box", "Email": "yes@example.com", "Opt_In__c": true},
                {"FirstName": "No", "LastName": "Box", "Email": "no@example.com", "Opt_In__c": false}
            ]}
        },
        "activecampaign": {"fields": [{"title": "Opt in", "type": "checkbox", "perstag": "OPT_IN"}]}
    });
    let mapper = json!({"marketing": "activecampaign", "fields": [
        {"salesforce": "Opt_In__c", "marketing": "OPT_IN", "type": "boolean", "objects": ["Contact"]}
    ]});
    let env =
        Env::start(seed, all_selection(), json!({"objects": ["Contact"], "rules": rules(mapper)})).await;
    let first = run(&env).await;
    assert_eq!(
        (first["outbound"]["created"].as_u64(), first["outbound"]["errors"].as_u64()),
        (Some(2), Some(0)),
        "{first}"
    );
    for _ in 0..2 {
        let idle = run(&env).await;
        assert_eq!(writes(&idle), 0, "{idle}");
        assert_eq!(idle["outbound"]["errors"], 0, "{idle}");
        assert_eq!(idle["inbound"]["errors"], 0, "{idle}");
    }
    let puts = env.sandbox.ctx(Vendor::ActiveCampaign).telemetry.by_endpoint();
    assert_eq!(puts.get("PUT /api/3/contacts/{id}"), None, "no contact update at all: {puts:?}");
    let contacts = env.sandbox.salesforce.state()["objects"]["Contact"].as_array().cloned().unwrap();
    let yes = contacts.iter().find(|c| c["Email"] == "yes@example.com").unwrap();
    assert_eq!(yes["Opt_In__c"], true, "{yes}");
    let status = crmsync(&env, &["status", "--json"]).await;
    assert!(status.stdout.contains("\"errors\": 0"), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_item_failures_of_status_write_backs_are_kept_under_their_own_records() {
    // Contact ids of 2 characters do not fit a 1-character id field: those
    // write-backs fail item by item inside HTTP 200 Collections answers.
    let seed = json!({"salesforce": {
        "fields": {"Lead": [
            {"name": "AC_Sync_Status__c", "type": "string", "length": 255},
            {"name": "AC_Contact_Id__c", "type": "string", "length": 1}
        ]},
        "generate": {"Lead": 12}
    }});
    let env = Env::start(seed, all_selection(), json!({"objects": ["Lead"]})).await;
    let record = run(&env).await;
    assert_eq!(record["outbound"]["created"], 12, "{record}");
    let status = crmsync(&env, &["status", "--json"]).await;
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    let errors = status[0]["recent_errors"].as_array().cloned().unwrap();
    assert_eq!(errors.len(), 3, "ids 10, 11, 12 do not fit: {errors:?}");
    let leads: Vec<String> = env.sandbox.salesforce.state()["objects"]["Lead"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["Id"].as_str().map(String::from))
        .collect();
    for e in &errors {
        assert_eq!(e["code"], "STRING_TOO_LONG", "{e}");
        let id = e["record"].as_str().unwrap();
        assert!(leads.iter().any(|l| l == id), "kept under a real Lead id, not {id:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leads_of_one_company_in_one_batch_share_one_account_created_once() {
    let lead = |n: u32| json!({"FirstName": "S", "LastName": format!("Same{n}"), "Company": "SameCo", "Email": format!("same{n}@example.com")});
    let seed = json!({"salesforce": {"records": {"Lead": [lead(1), lead(2), lead(3)]}}});
    let env = Env::start(seed, all_selection(), json!({"objects": ["Lead"]})).await;
    let record = run(&env).await;
    assert_eq!(
        (record["outbound"]["created"].as_u64(), record["outbound"]["errors"].as_u64()),
        (Some(3), Some(0)),
        "{record}"
    );
    let state = env.sandbox.activecampaign.state();
    let accounts = state["accounts"].as_array().cloned().unwrap();
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    assert_eq!(state["accountContacts"].as_array().map(Vec::len), Some(3), "{state}");
    for n in 1..=3 {
        let l = lead_status(&env, &format!("same{n}@example.com"));
        assert_eq!(l, "Synced successfully");
    }
}

fn lead_status(env: &Env, email: &str) -> String {
    lead(env, email)["AC_Sync_Status__c"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_phone_reaches_activecampaign_and_control_characters_are_stripped() {
    let seed = json!({"salesforce": {"records": {"Lead": [
        {"LastName": "Short", "Company": "Acme", "Email": "short@example.com", "Phone": "12345"},
        {"LastName": "Lo\u{0}ve\u{7}", "Company": "Acme", "Email": "nul@example.com"}
    ]}}});
    let env = Env::start(seed, all_selection(), json!({"objects": ["Lead"]})).await;
    let record = run(&env).await;
    assert_eq!(
        (record["outbound"]["created"].as_u64(), record["outbound"]["errors"].as_u64()),
        (Some(2), Some(0)),
        "{record}"
    );
    assert_eq!(record["outbound"]["warnings"], 1, "{record}");
    assert_eq!(
        contact(&env, "short@example.com")["phone"],
        "12345",
        "Brevo's 6-16 digit rule is not ActiveCampaign's"
    );
    assert_eq!(contact(&env, "nul@example.com")["lastName"], "Love");
    let idle = run(&env).await;
    assert_eq!(writes(&idle), 0, "the stripped name does not bounce back: {idle}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bringing_contacts_with_custom_fields_into_salesforce_reads_field_values_in_pages() {
    let contacts: Vec<Value> = (0..200)
        .map(|i| {
            json!({"email": format!("in{i}@example.com"), "firstName": "In", "lastName": format!("Bound{i}"),
                   "tags": ["salesforce"], "fieldValues": [{"field": 1, "value": format!("Trade {}", i % 5)}]})
        })
        .collect();
    let seed = json!({
        "salesforce": {"fields": {"Lead": [{"name": "Industry__c", "type": "string", "length": 80}]}},
        "activecampaign": {"fields": [{"id": 1, "title": "Industry", "type": "text", "perstag": "INDUSTRY"}], "contacts": contacts}
    });
    let mut selection = all_selection();
    selection["inbound"] = json!({"tag": "salesforce", "create_as": "lead"});
    let mapper = json!({"marketing": "activecampaign", "fields": [
        {"salesforce": "Industry__c", "marketing": "INDUSTRY", "type": "text", "objects": ["Lead"]}
    ]});
    let mut rules = rules(mapper);
    rules["selector"]["config"] = selection.clone();
    let env =
        Env::start(seed, selection, json!({"inbound": {"flag_tag": "salesforce"}, "rules": rules})).await;
    let before = env.sandbox.ctx(Vendor::ActiveCampaign).telemetry.total();
    let record = run(&env).await;
    assert_eq!(record["inbound"]["created"], 200, "{record}");
    let leads = env.sandbox.salesforce.state()["objects"]["Lead"].as_array().cloned().unwrap();
    assert!(
        leads.iter().all(|l| l["Industry__c"].as_str().is_some_and(|v| v.starts_with("Trade "))),
        "{:?}",
        &leads[..2]
    );
    let calls = env.sandbox.ctx(Vendor::ActiveCampaign).telemetry.total() - before;
    let by = env.sandbox.ctx(Vendor::ActiveCampaign).telemetry.by_endpoint();
    // The `added-to-salesforce` tag costs one call per contact (AC has no bulk tag call);
    // everything else is a handful of pages.
    assert!(calls <= 200 + 40, "{calls} calls: {by:?}");
    assert_eq!(by.get("GET /api/3/contacts/{id}/fieldValues"), None, "no per-contact field reads: {by:?}");
}

fn list_status(env: &Env, email: &str) -> Value {
    contact(env, email)["lists"]["1"].clone()
}

fn opted_out(env: &Env, email: &str) -> Value {
    lead(env, email)["HasOptedOutOfEmail"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribes_flow_both_ways_and_nothing_ever_resubscribes() {
    let person = |first: &str, email: &str| json!({"FirstName": first, "LastName": "Consent", "Company": "Acme", "Email": email});
    let on_list = |email: &str| json!({"email": email, "lists": [{"list": 1, "status": 1}]});
    let seed = json!({
        "salesforce": {"records": {"Lead": [person("Ann", "ann@example.com"), person("Bob", "bob@example.com")]}},
        "activecampaign": {"contacts": [on_list("ann@example.com"), on_list("bob@example.com")]}
    });
    let env = Env::start(seed, all_selection(), json!({})).await;
    run(&env).await;
    assert_eq!(
        (list_status(&env, "ann@example.com"), opted_out(&env, "ann@example.com")),
        (json!(1), json!(false))
    );

    // Ann unsubscribes in the marketing platform; Bob opts out in Salesforce.
    edit_contact(&env, "ann@example.com", "unsubscribe", V::Boolean(true)).await;
    edit_lead(&env, "bob@example.com", "HasOptedOutOfEmail", V::Boolean(true)).await;
    let flowed = run(&env).await;
    assert_eq!(opted_out(&env, "ann@example.com"), json!(true), "{flowed}");
    assert_eq!(list_status(&env, "bob@example.com"), json!(2), "{flowed}");
    let idle = run(&env).await;
    assert_eq!(writes(&idle), 0, "consent converged: {idle}");

    // Clearing the opt-out in Salesforce is no re-opt-in: Ann stays unsubscribed.
    edit_lead(&env, "ann@example.com", "HasOptedOutOfEmail", V::Boolean(false)).await;
    edit_lead(&env, "ann@example.com", "FirstName", V::text("Anne")).await;
    let cleared = run(&env).await;
    assert_eq!(contact(&env, "ann@example.com")["firstName"], "Anne", "{cleared}");
    assert_eq!(list_status(&env, "ann@example.com"), json!(2), "never re-subscribed: {cleared}");
    let idle = run(&env).await;
    assert_eq!(writes(&idle), 0, "{idle}");
    assert_eq!(list_status(&env, "bob@example.com"), json!(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_sync_can_be_turned_off_per_connection() {
    let seed = json!({
        "salesforce": {"records": {"Lead": [
            {"FirstName": "Cy", "LastName": "Consent", "Company": "Acme", "Email": "cy@example.com"}
        ]}},
        "activecampaign": {"contacts": [{"email": "cy@example.com", "lists": [{"list": 1, "status": 1}]}]}
    });
    let env = Env::start(seed, all_selection(), json!({"opt_out_field": ""})).await;
    run(&env).await;
    edit_lead(&env, "cy@example.com", "HasOptedOutOfEmail", V::Boolean(true)).await;
    edit_lead(&env, "cy@example.com", "FirstName", V::text("Cyd")).await;
    let out = run(&env).await;
    assert_eq!(contact(&env, "cy@example.com")["firstName"], "Cyd", "{out}");
    assert_eq!(list_status(&env, "cy@example.com"), json!(1), "consent sync off: {out}");
}
