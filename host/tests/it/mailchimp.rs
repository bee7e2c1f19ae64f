//! Mailchimp ⇄ Salesforce end to end over loopback (seed 003, issue 13): the
//! `crmsync` binary against the sandbox's Mailchimp, one audience per
//! connection. Connect (the key, its user's role), Leads and Contacts to
//! audience members with merge fields, batch subscribe with per-member
//! errors on their own records, email changes that move the member,
//! `since_last_changed` reads, edits and unsubscribes flowing back, consent
//! never undone, throttling retried, the delete policy, and the demo.

use crate::common::{Env, all_selection, crmsync, crmsync_with, merged};
use crmsync::connectors::vendors::mailchimp::{
    Auth, MailchimpConfig, MailchimpConnector, OnDelete, SANDBOX_AUDIENCE,
};
use crmsync::connectors::{Connector, Write, WriteKey};
use crmsync::core::{Record, Secret, System, Value as V};
use crmsync_sandbox::common::{Fault, FaultRule, Vendor, VendorApi};
use serde_json::{Value, json};

/// An env whose connection `main` syncs with the sandbox's Mailchimp
/// audience; `connection` adds keys (its `mailchimp` table to that section).
pub async fn mc_env(seed: Value, connection: Value) -> Env {
    mc_env_with(seed, connection, false).await
}

pub async fn mc_env_with(seed: Value, connection: Value, rate_limits: bool) -> Env {
    let connection = merged(json!({"marketing": "mailchimp"}), connection);
    Env::start_with(seed, all_selection(), connection, rate_limits).await
}

/// Seeds members into the sandbox audience.
fn audience(members: Value) -> Value {
    json!({"lists": [{"id": SANDBOX_AUDIENCE, "members": members}]})
}

pub async fn sync(env: &Env) -> Value {
    let out = crmsync(env, &["run", "--once", "--json"]).await;
    assert!(out.ok(), "{out}");
    serde_json::from_str(&out.stdout).unwrap_or_else(|_| panic!("{out}"))
}

/// The audience's members (archived ones included), as the API shows them.
pub fn members(env: &Env) -> Vec<Value> {
    let state = env.sandbox.mailchimp.state();
    let list = state["lists"].as_array().unwrap().iter().find(|l| l["id"] == SANDBOX_AUDIENCE).cloned();
    list.and_then(|l| l["members"].as_array().cloned()).unwrap_or_default()
}

fn member(env: &Env, email: &str) -> Option<Value> {
    members(env)
        .into_iter()
        .find(|m| m["email_address"].as_str().is_some_and(|e| e.eq_ignore_ascii_case(email)))
}

fn forgotten(env: &Env) -> Vec<Value> {
    let state = env.sandbox.mailchimp.state();
    let list = state["lists"].as_array().unwrap().iter().find(|l| l["id"] == SANDBOX_AUDIENCE).cloned();
    list.and_then(|l| l["forgotten"].as_array().cloned()).unwrap_or_default()
}

fn sf_records(env: &Env, object: &str) -> Vec<Value> {
    env.sandbox.salesforce.state()["objects"][object].as_array().cloned().unwrap_or_default()
}

fn lead(env: &Env, email: &str) -> Value {
    sf_records(env, "Lead")
        .into_iter()
        .find(|l| l["Email"] == email)
        .unwrap_or_else(|| panic!("no Lead {email}"))
}

fn lead_email(i: usize) -> String {
    format!("gen-lead-{i}@example.com")
}

/// A connector on the sandbox audience, for edits made "in Mailchimp".
pub fn connector(env: &Env, on_delete: OnDelete) -> MailchimpConnector {
    let key = env.sandbox.credentials.mailchimp_api_key.clone();
    let mut cfg =
        MailchimpConfig::new(env.sandbox.mailchimp_url(), Auth::ApiKey(Secret::new(key)), SANDBOX_AUDIENCE);
    cfg.on_delete = on_delete;
    MailchimpConnector::new(cfg).unwrap()
}

/// Edits a member "in Mailchimp" by its contact id.
async fn edit(mc: &MailchimpConnector, email: &str, field: &str, value: V) {
    let id = mc.find_by_email("member", &[email.to_string()]).await.unwrap()[email][0].clone();
    let record = Record::new(System::Mailchimp, "member").with(field, value);
    let out = mc.write("member", vec![Write::Upsert { key: WriteKey::Id(id), record }]).await.unwrap();
    out[0].as_ref().unwrap();
}

async fn recent_errors(env: &Env) -> Vec<Value> {
    let out = crmsync(env, &["status", "--json"]).await;
    let status: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|_| panic!("{out}"));
    status[0]["recent_errors"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_test_says_connected_or_names_a_wrong_key_or_a_user_below_manager() {
    let viewer = "0000000000000000000000000000beef-us6";
    let seed = json!({"mailchimp": {"api_keys": [{"key": viewer, "role": "viewer"}]}});
    let env = mc_env(seed, json!({"mailchimp": {"api_key": {"env": "MC_KEY"}}})).await;
    let good = env.sandbox.credentials.mailchimp_api_key.clone();
    let ok = crmsync_with(&env, &["connect", "test"], &[("MC_KEY", &good)]).await;
    assert!(ok.ok(), "{ok}");
    assert!(ok.stdout.contains("main: Mailchimp: Connected"), "{ok}");

    let wrong = "ffffffffffffffffffffffffffffffff-us6";
    let bad = crmsync_with(&env, &["connect", "test"], &[("MC_KEY", wrong)]).await;
    assert!(!bad.ok(), "{bad}");
    assert!(bad.stdout.contains("API Key Invalid"), "Mailchimp's own title: {bad}");
    assert!(!bad.stdout.contains(wrong) && !bad.stderr.contains(wrong), "the key never shows: {bad}");

    let low = crmsync_with(&env, &["connect", "test"], &[("MC_KEY", viewer)]).await;
    assert!(!low.ok(), "{low}");
    assert!(low.stdout.contains("viewer") && low.stdout.contains("manager rights"), "{low}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leads_and_contacts_become_members_with_merge_fields_linked_by_contact_id() {
    let seed = json!({"salesforce": {"generate": {"Lead": 3, "Contact": 2}}});
    let env = mc_env(seed, json!({})).await;
    let run = sync(&env).await;
    assert_eq!(
        (run["outbound"]["created"].as_u64(), run["outbound"]["errors"].as_u64()),
        (Some(5), Some(0)),
        "{run}"
    );
    let all = members(&env);
    assert_eq!(all.len(), 5, "{all:?}");
    let m = member(&env, &lead_email(1)).unwrap();
    assert_eq!(m["status"], "subscribed", "status_if_new");
    assert_eq!(m["merge_fields"]["FNAME"], "Gen1");
    assert_eq!(m["merge_fields"]["LNAME"], "Lead1");
    assert_eq!(m["merge_fields"]["COMPANY"], "Company 1");
    let c = member(&env, "gen-contact-0@example.com").unwrap();
    assert_eq!(c["merge_fields"]["LNAME"], "Contact0");
    assert_eq!(lead(&env, &lead_email(1))["AC_Contact_Id__c"], m["contact_id"], "linked by contact_id");

    let idle = sync(&env).await;
    assert_eq!(idle["outbound"]["updated"], 0, "{idle}");
    assert_eq!(idle["inbound"]["updated"], 0, "echoes are skipped: {idle}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_subscribe_errors_land_on_their_own_records_and_existing_members_keep_their_status() {
    let seed = json!({
        "salesforce": {"generate": {"Lead": 14}},
        "mailchimp": audience(json!([
            {"email_address": lead_email(3), "status": "subscribed"},
            {"email_address": lead_email(4), "status": "unsubscribed"},
            {"email_address": lead_email(5), "status": "subscribed"},
        ])),
    });
    let env = mc_env(seed, json!({"objects": ["Lead"]})).await;
    // Lead 5's address was permanently deleted: Mailchimp refuses it for good.
    let mc = connector(&env, OnDelete::Delete);
    let id = mc.find_by_email("member", &[lead_email(5)]).await.unwrap()[&lead_email(5)][0].clone();
    mc.write("member", vec![Write::Delete { id }]).await.unwrap()[0].as_ref().unwrap();

    let run = sync(&env).await;
    assert_eq!(run["outbound"]["errors"], 1, "{run}");
    let errors = recent_errors(&env).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["record"], lead(&env, &lead_email(5))["Id"], "{errors:?}");
    assert!(errors[0]["message"].as_str().unwrap().contains("permanently deleted"), "{errors:?}");
    assert_eq!(members(&env).len(), 13);
    assert_eq!(member(&env, &lead_email(4)).unwrap()["status"], "unsubscribed", "never re-subscribed");
    assert_eq!(member(&env, &lead_email(4)).unwrap()["merge_fields"]["LNAME"], "Lead4", "but updated");
    let log = env.sandbox.ctx(Vendor::Mailchimp).telemetry.log();
    let batches = log.iter().filter(|r| r.endpoint == "POST /3.0/lists/{list_id}").count();
    assert_eq!(batches, 1, "one batch subscribe for 14 members");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_change_moves_the_member_without_a_second_one() {
    let seed = json!({"salesforce": {"generate": {"Lead": 2}}});
    let env = mc_env(seed, json!({})).await;
    sync(&env).await;
    let before = member(&env, &lead_email(0)).unwrap();
    let (sf, _) = crate::common::connect(&env.sandbox, Default::default()).unwrap();
    let id = lead(&env, &lead_email(0))["Id"].as_str().unwrap().to_string();
    let edit = Record::new(System::Salesforce, "Lead").with("Email", "moved@example.com");
    sf.write("Lead", vec![Write::Upsert { key: WriteKey::Id(id), record: edit }]).await.unwrap()[0]
        .as_ref()
        .unwrap();
    let run = sync(&env).await;
    assert_eq!(run["outbound"]["errors"], 0, "{run}");
    let all = members(&env);
    assert_eq!(all.len(), 2, "moved, not added: {all:?}");
    let after = member(&env, "moved@example.com").expect("the member moved");
    assert_eq!(after["contact_id"], before["contact_id"], "the same person");
    assert!(member(&env, &lead_email(0)).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_edits_flow_back_through_since_last_changed_reads() {
    let seed = json!({"salesforce": {"generate": {"Lead": 3}}});
    let env = mc_env(seed, json!({})).await;
    sync(&env).await;
    sync(&env).await;
    let mc = connector(&env, OnDelete::Archive);
    edit(&mc, &lead_email(2), "FNAME", V::text("Augusta")).await;
    let run = sync(&env).await;
    assert_eq!(run["inbound"]["updated"], 1, "{run}");
    assert_eq!(lead(&env, &lead_email(2))["FirstName"], "Augusta");
    let log = env.sandbox.ctx(Vendor::Mailchimp).telemetry.log();
    let reads: Vec<_> = log.iter().filter(|r| r.endpoint == "GET /3.0/lists/{list_id}/members").collect();
    assert!(
        reads.iter().any(|r| r.query.as_deref().is_some_and(|q| q.contains("since_last_changed="))),
        "incremental reads ask for changes only: {reads:?}"
    );
    let idle = sync(&env).await;
    assert_eq!(
        (idle["inbound"]["updated"].as_u64(), idle["outbound"]["updated"].as_u64()),
        (Some(0), Some(0)),
        "{idle}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribes_reach_the_opt_out_field_and_nobody_is_ever_resubscribed() {
    let seed = json!({
        "salesforce": {"generate": {"Lead": 4}},
        "mailchimp": audience(json!([
            {"email_address": lead_email(2), "status": "cleaned"},
            {"email_address": lead_email(3), "status": "archived"},
        ])),
    });
    let env = mc_env(seed, json!({"objects": ["Lead"]})).await;
    let first = sync(&env).await;
    assert_eq!(member(&env, &lead_email(2)).unwrap()["status"], "cleaned", "{first}");
    assert_eq!(member(&env, &lead_email(3)).unwrap()["status"], "archived", "not brought back");
    let errors = recent_errors(&env).await;
    assert!(
        errors
            .iter()
            .any(|e| e["record"] == lead(&env, &lead_email(3))["Id"] && e["code"] == "archived-member"),
        "{errors:?}"
    );

    let mc = connector(&env, OnDelete::Archive);
    edit(&mc, &lead_email(0), "unsubscribe", V::Boolean(true)).await;
    assert_eq!(member(&env, &lead_email(0)).unwrap()["status"], "unsubscribed");
    sync(&env).await;
    assert_eq!(lead(&env, &lead_email(0))["HasOptedOutOfEmail"], true, "the unsubscribe flowed back");

    // A later Salesforce edit updates the member and leaves it unsubscribed.
    let (sf, _) = crate::common::connect(&env.sandbox, Default::default()).unwrap();
    let id = lead(&env, &lead_email(0))["Id"].as_str().unwrap().to_string();
    let edit = Record::new(System::Salesforce, "Lead").with("LastName", "Later");
    sf.write("Lead", vec![Write::Upsert { key: WriteKey::Id(id), record: edit }]).await.unwrap();
    sync(&env).await;
    let m = member(&env, &lead_email(0)).unwrap();
    assert_eq!(
        (m["status"].as_str(), m["merge_fields"]["LNAME"].as_str()),
        (Some("unsubscribed"), Some("Later"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compliance_state_answer_is_the_records_own_error() {
    let seed = json!({"salesforce": {"generate": {"Lead": 2}}});
    let env = mc_env(seed, json!({})).await;
    let detail = format!(
        "{} is in a compliance state due to unsubscribe, bounce, or compliance review and cannot be subscribed.",
        lead_email(1)
    );
    env.sandbox.ctx(Vendor::Mailchimp).add_fault(FaultRule {
        endpoint: Some(format!("PUT /3.0/lists/{SANDBOX_AUDIENCE}/members/")),
        times: Some(1),
        fault: Fault::Status {
            status: 400,
            retry_after_secs: None,
            body: Some(json!({"type": "https://mailchimp.com/developer/marketing/docs/errors/",
                "title": "Member In Compliance State", "status": 400, "detail": detail, "instance": "x"})),
        },
    });
    let run = sync(&env).await;
    assert_eq!(
        (run["outbound"]["created"].as_u64(), run["outbound"]["errors"].as_u64()),
        (Some(1), Some(1)),
        "{run}"
    );
    let errors = recent_errors(&env).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["code"], "member-in-compliance-state");
    assert!(errors[0]["message"].as_str().unwrap().contains("never re-subscribes"), "{errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_429_and_bare_403_are_retried_and_nine_connections_stay_under_the_limit() {
    let seed = json!({"salesforce": {"generate": {"Lead": 30}}});
    // Every member by its own PUT: 30 calls, at most 9 in flight.
    let conn = json!({"objects": ["Lead"], "mailchimp": {"batch_threshold": 100},
        "http": {"min_delay_ms": 10, "max_delay_ms": 50}});
    let env = mc_env_with(seed, conn, true).await;
    let ctx = env.sandbox.ctx(Vendor::Mailchimp);
    for status in [429, 403] {
        ctx.add_fault(FaultRule {
            endpoint: Some("PUT /3.0/lists/".into()),
            times: Some(2),
            fault: Fault::Status { status, retry_after_secs: None, body: None },
        });
    }
    // Injected latency keeps requests in flight long enough to overlap.
    ctx.add_fault(FaultRule {
        endpoint: Some("PUT /3.0/lists/".into()),
        times: None,
        fault: Fault::Latency { ms: 30 },
    });
    let run = sync(&env).await;
    assert_eq!(
        (run["outbound"]["created"].as_u64(), run["outbound"]["errors"].as_u64()),
        (Some(30), Some(0)),
        "{run}"
    );
    assert_eq!(members(&env).len(), 30);
    let log = ctx.telemetry.log();
    let count = |s: u16| log.iter().filter(|r| r.status == s).count();
    assert_eq!((count(429), count(403)), (2, 2), "only the injected ones: never over 10 connections");
    let status = crmsync(&env, &["connect", "test"]).await;
    assert!(status.stdout.contains("Connected"), "a throttled key is not a wrong key: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_salesforce_deletion_archives_deletes_or_leaves_the_member_by_policy() {
    for (policy, expect) in [("archive", Some("archived")), ("delete", None), ("ignore", Some("subscribed"))]
    {
        let seed = json!({"salesforce": {"generate": {"Lead": 2}}});
        let conn = json!({"objects": ["Lead"], "deletes": {"to_marketing": "delete"}, "mailchimp": {"on_delete": policy}});
        let env = mc_env(seed, conn).await;
        sync(&env).await;
        let (sf, _) = crate::common::connect(&env.sandbox, Default::default()).unwrap();
        let id = lead(&env, &lead_email(0))["Id"].as_str().unwrap().to_string();
        sf.write("Lead", vec![Write::Delete { id }]).await.unwrap()[0].as_ref().unwrap();
        let run = sync(&env).await;
        assert_eq!(run["outbound"]["errors"], 0, "{policy}: {run}");
        let status = member(&env, &lead_email(0)).map(|m| m["status"].as_str().unwrap().to_string());
        assert_eq!(status.as_deref(), expect, "{policy}");
        assert_eq!(forgotten(&env).len(), usize::from(policy == "delete"), "{policy}");
        assert_eq!(
            member(&env, &lead_email(1)).unwrap()["status"],
            "subscribed",
            "{policy}: the other stays"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_against_mailchimp() {
    let (_dir, stdout) = crate::common::demo(&["--marketing", "mailchimp"]).await;
    assert!(stdout.contains("Salesforce ⇄ Mailchimp"), "{stdout}");
    assert!(stdout.contains("created 952"), "{stdout}");
    assert!(stdout.contains("the Lead in Salesforce now has FirstName = \"Augusta\""), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_field_adds_merge_fields_up_to_the_cap_and_names_the_one_refused() {
    // 4 default fields, COMPANY and 74 more: 79 of the 80 allowed.
    let extra: Vec<Value> =
        (0..74).map(|i| json!({"tag": format!("F{i}"), "name": format!("Field {i}")})).collect();
    let seed = json!({"mailchimp": {"account": {"premium": true}, "lists": [{"id": SANDBOX_AUDIENCE, "merge_fields": extra}]}});
    let env = mc_env(seed, json!({})).await;
    let add = |name: &'static str, tag: &'static str| {
        let env = &env;
        async move {
            let args = [
                "mailchimp",
                "add-field",
                "--connection",
                "main",
                "--type",
                "text",
                "--name",
                name,
                "--tag",
                tag,
                "--required",
            ];
            crmsync(env, &args).await
        }
    };
    let ok = add("Region", "REGION").await;
    assert!(ok.ok() && ok.stdout.contains("REGION"), "{ok}");
    let state = env.sandbox.mailchimp.state();
    let list =
        state["lists"].as_array().unwrap().iter().find(|l| l["id"] == SANDBOX_AUDIENCE).cloned().unwrap();
    let region = list["merge_fields"].as_array().unwrap().iter().find(|f| f["tag"] == "REGION").cloned();
    assert_eq!(region.map(|f| f["required"].clone()), Some(json!(true)), "{list}");

    let refused = add("Extra", "EXTRA").await;
    assert!(!refused.ok(), "{refused}");
    assert!(
        refused.stderr.contains("\"Extra\"") && refused.stderr.contains("80"),
        "names the field and the cap: {refused}"
    );
    let wrong =
        crmsync(&env, &["mailchimp", "add-field", "--connection", "main", "--type", "colour", "--name", "X"])
            .await;
    assert!(!wrong.ok() && wrong.stderr.contains("not a Mailchimp merge-field type"), "{wrong}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_backfill_goes_through_batch_operations_and_reads_the_gzipped_results() {
    let seed = json!({
        "salesforce": {"generate": {"Lead": 25}},
        "mailchimp": audience(json!([{"email_address": lead_email(7), "status": "unsubscribed"}])),
    });
    let env = mc_env(seed, json!({"objects": ["Lead"], "mailchimp": {"batch_operations_from": 20}})).await;
    let mc = connector(&env, OnDelete::Delete);
    let id = mc.find_by_email("member", &[lead_email(7)]).await.unwrap()[&lead_email(7)][0].clone();
    mc.write("member", vec![Write::Delete { id }]).await.unwrap()[0].as_ref().unwrap();

    let run = sync(&env).await;
    assert_eq!(
        (run["outbound"]["created"].as_u64(), run["outbound"]["errors"].as_u64()),
        (Some(24), Some(1)),
        "{run}"
    );
    let errors = recent_errors(&env).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["record"], lead(&env, &lead_email(7))["Id"]);
    assert!(errors[0]["message"].as_str().unwrap().contains("Forgotten Email Not Subscribed"), "{errors:?}");
    assert_eq!(members(&env).len(), 24);
    let m = member(&env, &lead_email(3)).unwrap();
    assert_eq!(
        lead(&env, &lead_email(3))["AC_Contact_Id__c"],
        m["contact_id"],
        "linked from the batch results"
    );
    let endpoints = env.sandbox.ctx(Vendor::Mailchimp).telemetry.by_endpoint();
    assert_eq!(endpoints.get("POST /3.0/batches"), Some(&1), "{endpoints:?}");
    assert_eq!(endpoints.get("GET /batch-results/{archive}"), Some(&1), "{endpoints:?}");
    assert_eq!(endpoints.get("PUT /3.0/lists/{list_id}/members/{subscriber_hash}"), None, "{endpoints:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_not_in_salesforce_become_leads_only_when_the_selector_says_so() {
    let seed = json!({"mailchimp": audience(json!([
        {"email_address": "new.member@example.com", "status": "subscribed",
         "merge_fields": {"FNAME": "Nova", "LNAME": "Member", "COMPANY": "Chimp Co"}},
    ]))});
    // Off by default: the member stays a member.
    let off = mc_env(seed.clone(), json!({"objects": ["Lead"]})).await;
    let run = sync(&off).await;
    assert_eq!(run["inbound"]["created"], 0, "{run}");
    assert!(sf_records(&off, "Lead").is_empty());

    // On, through the selector rule: every member with an email becomes a Lead.
    let mut selection = all_selection();
    selection["inbound"] =
        json!({"create_as": "lead", "rule": {"field": "email_address", "op": "not-empty"}});
    let connection = json!({"marketing": "mailchimp", "objects": ["Lead"]});
    let on = Env::start_with(seed, selection, connection, false).await;
    let run = sync(&on).await;
    assert_eq!(run["inbound"]["created"], 1, "{run}");
    let l = lead(&on, "new.member@example.com");
    assert_eq!(
        (l["FirstName"].as_str(), l["LastName"].as_str(), l["Company"].as_str()),
        (Some("Nova"), Some("Member"), Some("Chimp Co"))
    );
    let again = sync(&on).await;
    assert_eq!(
        (again["inbound"]["created"].as_u64(), again["outbound"]["created"].as_u64()),
        (Some(0), Some(0)),
        "linked, no duplicate: {again}"
    );
    assert_eq!(members(&on).len(), 1);
}

/// Per audience, campaign activity (sends, opens, clicks) of linked members
/// becomes Salesforce Tasks, once each; recipients not in Salesforce are
/// counted as unlinked, never written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaign_activity_becomes_salesforce_tasks_once() {
    let member = |email: &str, activity: Value| json!({"email_address": email, "status": "subscribed", "activity": activity});
    let sent = |t: &str| json!({"action": "sent", "timestamp": t, "campaign_id": "c1"});
    let seed = json!({
        "salesforce": {"generate": {"Lead": 3}},
        "mailchimp": {
            "lists": [{"id": SANDBOX_AUDIENCE, "members": [
                member("gen-lead-0@example.com", json!([
                    sent("2024-06-01T10:00:00Z"),
                    {"action": "open", "timestamp": "2024-06-01T10:05:00Z", "campaign_id": "c1"},
                    {"action": "click", "timestamp": "2024-06-01T10:06:00Z", "campaign_id": "c1", "url": "https://example.com/a"}
                ])),
                member("gen-lead-1@example.com", json!([sent("2024-06-01T10:00:00Z")])),
                member("stranger@example.com", json!([
                    sent("2024-06-01T10:00:00Z"),
                    {"action": "open", "timestamp": "2024-06-01T11:00:00Z", "campaign_id": "c1"}
                ]))
            ]}],
            "campaigns": [{"id": "c1", "list_id": SANDBOX_AUDIENCE, "title": "June news", "status": "sent",
                           "send_time": "2024-06-01T10:00:00Z", "emails_sent": 3}]
        }
    });
    let env = mc_env(seed, json!({"objects": ["Lead"]})).await;
    let first = sync(&env).await;
    assert_eq!(first["activities"]["tasks"], 4, "{first}");
    assert_eq!(first["activities"]["unlinked"], 2, "{first}");
    let tasks = env.sandbox.salesforce.state()["objects"]["Task"].as_array().cloned().unwrap_or_default();
    let lead0 = env.sandbox.salesforce.state()["objects"]["Lead"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["Email"] == "gen-lead-0@example.com")
        .and_then(|l| l["Id"].as_str().map(String::from))
        .unwrap();
    let subjects: Vec<&str> =
        tasks.iter().filter(|t| t["WhoId"] == lead0.as_str()).filter_map(|t| t["Subject"].as_str()).collect();
    for s in [
        "Mailchimp: Campaign sent — June news",
        "Mailchimp: Campaign opened — June news",
        "Mailchimp: Link clicked — June news",
    ] {
        assert!(subjects.contains(&s), "{s} in {subjects:?}");
    }
    let opened = tasks.iter().find(|t| t["Subject"] == "Mailchimp: Campaign opened — June news").unwrap();
    assert_eq!(opened["ActivityDate"], "2024-06-01", "{opened}");

    // Again: the overlap re-read is recognised, nothing is written twice.
    let again = sync(&env).await;
    assert_eq!(again["activities"]["tasks"], 0, "{again}");
    let count = env.sandbox.salesforce.state()["objects"]["Task"].as_array().map_or(0, Vec::len);
    assert_eq!(count, 4);

    // Retention: activity Tasks older than 30 days go, and only those crmsync wrote.
    let (sf, _) = crate::common::connect(&env.sandbox, Default::default()).unwrap();
    let own =
        Record::new(System::Salesforce, "Task").with("Subject", "Call back").with("WhoId", lead0.as_str());
    let key = WriteKey::New { idempotency_key: "own-task".into() };
    assert!(sf.write("Task", vec![Write::Upsert { key, record: own }]).await.unwrap()[0].is_ok());
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, format!("{text}\n[connections.main.activities]\nretention_days = 30\n"))
        .unwrap();
    let kept = sync(&env).await;
    assert_eq!(kept["activities"]["removed"], 4, "{kept}");
    assert_eq!(kept["activities"]["tasks"], 0, "no Task written again: {kept}");
    let left = env.sandbox.salesforce.state()["objects"]["Task"].as_array().cloned().unwrap_or_default();
    let left: Vec<&Value> = left.iter().filter(|t| t["IsDeleted"] != true).collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["Subject"], "Call back");
    let idle = sync(&env).await;
    assert_eq!(
        (idle["activities"]["removed"].as_u64(), idle["activities"]["tasks"].as_u64()),
        (Some(0), Some(0)),
        "{idle}"
    );

    // Zero days is refused at load, naming the key.
    std::fs::write(&env.config, format!("{text}\n[connections.main.activities]\nretention_days = 0\n"))
        .unwrap();
    let refused = crmsync(&env, &["run", "--once"]).await;
    assert!(!refused.ok() && refused.stderr.contains("activities.retention_days"), "{refused}");
}

/// A large initial sync shows where it is — `/connections` and `/metrics`
/// while `serve` runs it — and, killed halfway, resumes from its cursor:
/// the next run reads only what was left, and every contact is one member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_initial_sync_shows_its_progress_and_resumes_where_it_was_killed() {
    let seed = json!({"salesforce": {"generate": {"Contact": 1000}}});
    let env = mc_env(seed, json!({"objects": ["Contact"], "page_size": 200})).await;
    let ctx = env.sandbox.ctx(Vendor::Mailchimp);
    // The first batch subscribe never answers: the cycle stays on its first page.
    ctx.add_fault(FaultRule {
        endpoint: Some("POST /3.0/lists/".into()),
        times: None,
        fault: Fault::Timeout,
    });
    let server = crate::common::Served::start(&env).await;
    let progress = server.run_until_progress("to-marketing").await;
    // Killed only once the page is in the outbox and the cursor past it.
    for _ in 0..600 {
        if server.get("/connections").await[0]["pending_writes"] == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        (progress["object"].as_str(), progress["read"].as_u64(), progress["total"].as_u64()),
        (Some("Contact"), Some(200), Some(1000)),
        "{progress}"
    );
    let metrics =
        server.call(reqwest::Method::GET, "/metrics", crate::common::ADMIN_TOKEN).await.text().await.unwrap();
    let labels = r#"{connection="main",direction="to-marketing",object="Contact"}"#;
    for line in [
        format!("crmsync_sync_progress_read_records{labels} 200"),
        format!("crmsync_sync_progress_total_records{labels} 1000"),
    ] {
        assert!(metrics.lines().any(|l| l == line), "no `{line}` in\n{metrics}");
    }

    server.kill().await;
    ctx.clear_faults();
    let out =
        crmsync_with(&env, &["--log-format", "json", "run", "--once", "--json"], &[("RUST_LOG", "info")])
            .await;
    assert!(out.ok(), "{out}");
    let run: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        (run["outbound"]["created"].as_u64(), run["outbound"]["errors"].as_u64()),
        (Some(800), Some(0)),
        "the killed run's page went out from the outbox: {run}"
    );
    // The first page the resumed run read was the second (200 new members);
    // from the start it would have been the first 200, linked by the outbox's flush.
    let first = out
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["fields"]["message"] == "progress" && l["fields"]["direction"] == "to-marketing")
        .unwrap_or_else(|| panic!("no progress line: {out}"));
    assert_eq!(
        (first["fields"]["read"].as_u64(), first["fields"]["created"].as_u64()),
        (Some(200), Some(200)),
        "resumed from the stored cursor: {first}"
    );
    let all = members(&env);
    let emails: std::collections::HashSet<&str> =
        all.iter().filter_map(|m| m["email_address"].as_str()).collect();
    assert_eq!((all.len(), emails.len()), (1000, 1000), "every contact once, none twice");
    let status: Value = serde_json::from_str(&crmsync(&env, &["status", "--json"]).await.stdout).unwrap();
    assert_eq!(status[0]["progress"], Value::Null, "no cycle runs: {status}");
}
