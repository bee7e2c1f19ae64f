//! The service end to end, as an operator drives it: the `crmsync` binary
//! with a TOML config against the sandbox over loopback — `run --once`
//! (and `--dry-run`), `status`, `connect test`, `serve` with its admin API and
//! SIGTERM, the API budget, and contacts flagged for Salesforce by tag.

use crate::common::{Env, ac_contacts, all_selection, crmsync};
use crmsync_sandbox::common::{Vendor, VendorApi};
use serde_json::{Value, json};

fn seed(leads: usize, contacts: usize) -> Value {
    json!({"salesforce": {"generate": {"Lead": leads, "Contact": contacts}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_previews_then_syncs_and_status_reports_it() {
    let env = Env::start(seed(30, 20), all_selection(), json!({})).await;

    let dry = crmsync(&env, &["run", "--once", "--dry-run"]).await;
    assert!(dry.ok(), "{dry}");
    assert!(dry.stdout.contains("would write"), "{dry}");
    assert!(dry.stdout.contains("create or update by email gen-lead-1@example.com"), "{dry}");
    assert_eq!(ac_contacts(&env).len(), 0, "a dry run writes nothing");
    assert!(dry.stdout.contains("would write 50 records"), "totals: {dry}");
    let limited = crmsync(&env, &["run", "--dry-run", "--limit", "3"]).await;
    let shown = limited
        .stdout
        .lines()
        .filter(|l| l.contains("would write 0") || l.contains("would write 00"))
        .count();
    assert!(
        shown > 0
            && limited.stdout.contains("would write 50 records")
            && limited.stdout.contains("(47 more not shown: --limit)"),
        "{limited}"
    );
    let ids: std::collections::HashSet<&str> = limited
        .stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("would write ")?.split_once(' ').map(|(id, _)| id))
        .filter(|id| id.starts_with("00"))
        .collect();
    assert_eq!(ids.len(), 3, "three records shown: {limited}");

    let run = crmsync(&env, &["run", "--once", "--json"]).await;
    assert!(run.ok(), "{run}");
    let record: Value = serde_json::from_str(&run.stdout).expect("one run record");
    assert_eq!(record["outbound"]["created"], 50, "{record}");
    assert_eq!(record["error"], Value::Null);
    assert!(record["calls"]["salesforce"].as_u64().unwrap() > 0);
    assert_eq!(ac_contacts(&env).len(), 50);
    let synced = env.sandbox.salesforce.state()["objects"]["Lead"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["AC_Sync_Status__c"] == "Synced successfully" && l["AC_Contact_Id__c"].is_string())
        .count();
    assert_eq!(synced, 30, "status and contact id written back on every Lead");
    // The state holds emails: its owner's only, every file and folder in it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut stack = vec![env.data.clone()];
        let mut files = 0;
        while let Some(dir) = stack.pop() {
            assert_eq!(
                std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
                0o700,
                "{}",
                dir.display()
            );
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    files += 1;
                    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
                    assert_eq!(mode & 0o077, 0, "{} is {mode:o}", path.display());
                }
            }
        }
        assert!(files > 0);
    }

    // A second run finds only its own echoes.
    let again = crmsync(&env, &["run", "--once", "--json"]).await;
    let again: Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(
        (again["outbound"]["created"].as_u64(), again["outbound"]["updated"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(again["inbound"]["updated"], 0, "{again}");

    let status = crmsync(&env, &["status", "--json"]).await;
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    let main = &status[0];
    assert_eq!(main["connection"], "main");
    assert_eq!(main["links"], 50);
    assert_eq!(main["runs"], 2);
    assert_eq!(main["pending_writes"], 0);
    assert_eq!(main["last_run"]["run_id"], again["run_id"]);
    assert!(main["last_run"]["api_used"].as_u64().unwrap() > 0, "API usage from Sforce-Limit-Info: {main}");
    let human = crmsync(&env, &["status"]).await;
    assert!(human.stdout.contains("linked records: 50"), "{human}");
    assert!(human.stdout.contains("API budget: Salesforce"), "{human}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_tagged_for_salesforce_are_created_there_and_tagged_back() {
    let mut seed = seed(0, 0);
    seed["activecampaign"] = json!({"contacts": [
        {"email": "flagged@example.com", "firstName": "Flo", "lastName": "Flagged", "tags": ["Salesforce"]},
        {"email": "plain@example.com", "firstName": "Pat", "lastName": "Plain", "tags": ["newsletter"]}
    ]});
    let mut selection = all_selection();
    selection["inbound"] = json!({"tag": "salesforce", "create_as": "lead"});
    let env = Env::start(seed, selection, json!({"inbound": {"flag_tag": "salesforce"}})).await;

    let run = crmsync(&env, &["run", "--once", "--json"]).await;
    let record: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|_| panic!("{run}"));
    assert_eq!(record["inbound"]["created"], 1, "{record}");
    assert_eq!(record["inbound"]["skipped"]["not tagged \"salesforce\" for Salesforce"], 1, "{record}");
    let leads = env.sandbox.salesforce.state()["objects"]["Lead"].as_array().cloned().unwrap_or_default();
    assert_eq!(leads.len(), 1);
    assert_eq!(leads[0]["Email"], "flagged@example.com");
    assert_eq!(leads[0]["LastName"], "Flagged");
    // The follow-up tag is written in the same run's flush rounds.
    let flagged = ac_contacts(&env).into_iter().find(|c| c["email"] == "flagged@example.com").unwrap();
    assert!(flagged["tags"].as_array().unwrap().iter().any(|t| t == "added-to-salesforce"), "{flagged}");

    // Running again creates nothing more (the contact is linked now).
    let again = crmsync(&env, &["run", "--once", "--json"]).await;
    let again: Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(again["inbound"]["created"], 0, "{again}");
    assert_eq!(env.sandbox.salesforce.state()["objects"]["Lead"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_and_bad_credentials_get_clear_errors_without_secrets() {
    let env = Env::start(seed(1, 0), all_selection(), json!({})).await;
    let ok = crmsync(&env, &["connect", "test"]).await;
    assert!(ok.ok(), "{ok}");
    assert_eq!(ok.stdout.matches(": Connected").count(), 2, "{ok}");

    // A wrong token: ActiveCampaign's own refusal, never the token itself.
    let wrong = "wrong-token-0123456789";
    let bad = crate::common::crmsync_with(&env, &["connect", "test"], &[("AC_TOKEN", wrong)]).await;
    assert_eq!(bad.code, Some(1), "{bad}");
    assert!(bad.stdout.contains("main: Salesforce: Connected"), "{bad}");
    assert!(bad.stdout.contains("ActiveCampaign refused the credentials"), "{bad}");
    assert!(!bad.to_string().contains(wrong), "the secret leaked: {bad}");
    let bad_sf = crate::common::crmsync_with(&env, &["run", "--once"], &[("SF_PASSWORD", wrong)]).await;
    assert!(!bad_sf.ok(), "{bad_sf}");
    assert!(bad_sf.to_string().contains("Salesforce refused the credentials"), "{bad_sf}");
    assert!(!bad_sf.to_string().contains(wrong), "the secret leaked: {bad_sf}");

    // A missing secret names its key.
    let unset = crate::common::crmsync_without(&env, &["status"], "AC_TOKEN").await;
    assert_eq!(unset.code, Some(2), "{unset}");
    assert!(
        unset
            .stderr
            .contains("connections.main.activecampaign.api_token: environment variable AC_TOKEN is not set"),
        "{unset}"
    );

    // A bad schedule names the allowed values.
    let text = std::fs::read_to_string(&env.config)
        .unwrap()
        .replace("schedule = \"manual\"", "schedule = \"every 5 hours\"");
    std::fs::write(&env.config, text).unwrap();
    let bad = crmsync(&env, &["status"]).await;
    assert_eq!(bad.code, Some(2), "{bad}");
    assert!(bad.stderr.contains("every 1, 2, 3, 4, 6, 8 or 12 hours"), "{bad}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_budget_pauses_deferrable_salesforce_calls_and_resumes() {
    // 9,600 of 10,000 calls spent today: past the 95 % pause level from the first answer.
    let mut seed = seed(40, 0);
    seed["salesforce"]["limits"] = json!({"daily_limit": 10000, "used": 9600});
    let env = Env::start(seed, all_selection(), json!({})).await;
    let run = crmsync(&env, &["run", "--once", "--json"]).await;
    let record: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|_| panic!("{run}"));
    assert_eq!(record["budget"], "paused", "{record}");
    assert_eq!(record["outbound"]["budget_paused"], true, "{record}");
    // The page already read still reached ActiveCampaign; the status write-backs
    // (deferrable Salesforce updates) wait in the outbox.
    assert_eq!(ac_contacts(&env).len(), 40);
    assert!(record["outbound"]["deferred"].as_u64().unwrap() >= 40, "{record}");
    let used = env.sandbox.salesforce.state()["api_usage"]["used"].as_u64().unwrap();
    assert!(used <= 10000, "never past the allocation: {used}");
    let status = crmsync(&env, &["status", "--json"]).await;
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status[0]["pending_writes"], 40, "{status}");

    // A new day (the vendor's window frees calls): the waiting writes go out.
    env.sandbox.salesforce.seed(json!({"limits": {"used": 0}})).unwrap();
    let resumed = crmsync(&env, &["run", "--once", "--json"]).await;
    let resumed: Value = serde_json::from_str(&resumed.stdout).unwrap();
    assert_eq!(resumed["budget"], "ok", "{resumed}");
    let written_back = resumed["inbound"]["written_back"].as_u64().unwrap()
        + resumed["outbound"]["written_back"].as_u64().unwrap();
    assert_eq!(written_back, 40, "{resumed}");
    let status = crmsync(&env, &["status", "--json"]).await;
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status[0]["pending_writes"], 0, "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_on_request_reports_metrics_and_stops_cleanly_on_sigterm() {
    let env = Env::start(seed(25, 0), all_selection(), json!({})).await;
    let server = crate::common::Served::start(&env).await;
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", server.base);

    assert_eq!(http.get(url("/health")).send().await.unwrap().status(), 200);
    assert_eq!(http.get(url("/connections")).send().await.unwrap().status(), 401);
    let wrong = http.get(url("/connections")).bearer_auth("nope").send().await.unwrap();
    assert_eq!(wrong.status(), 401);

    let run: Value = http
        .post(url("/connections/main/run?wait=true"))
        .bearer_auth(crate::common::ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(run["outbound"]["created"], 25, "{run}");
    assert_eq!(ac_contacts(&env).len(), 25);

    let schedule: Value = http
        .put(url("/connections/main/schedule"))
        .bearer_auth(crate::common::ADMIN_TOKEN)
        .json(&json!({"schedule": "every 2 hours"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(schedule["schedule"], "every 2 hours", "{schedule}");
    assert!(schedule["next_run"].is_string());
    let bad = http
        .put(url("/connections/main/schedule"))
        .bearer_auth(crate::common::ADMIN_TOKEN)
        .json(&json!({"schedule": "every 7 hours"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    let connections: Value = http
        .get(url("/connections"))
        .bearer_auth(crate::common::ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(connections[0]["schedule"], "every 2 hours");
    assert_eq!(connections[0]["links"], 25);
    let metrics = http
        .get(url("/metrics"))
        .bearer_auth(crate::common::ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("crmsync_links{connection=\"main\"} 25"), "{metrics}");
    assert!(
        metrics.contains(
            "crmsync_api_calls_total{connection=\"main\",vendor=\"salesforce\",endpoint=\"query\"}"
        ),
        "{metrics}"
    );
    for line in [
        "crmsync_runs_total{connection=\"main\",outcome=\"ok\"} 1",
        "crmsync_run_duration_seconds_bucket{connection=\"main\",le=\"+Inf\"} 1",
        "crmsync_run_duration_seconds_count{connection=\"main\"} 1",
        "# TYPE crmsync_run_duration_seconds histogram",
    ] {
        assert!(metrics.lines().any(|l| l == line), "no `{line}` in\n{metrics}");
    }
    assert!(metrics.contains("crmsync_last_success_timestamp_seconds{connection=\"main\"} 1"), "{metrics}");
    for name in
        ["crmsync_plugin_calls_total", "crmsync_plugin_records_total", "crmsync_plugin_call_seconds_total"]
    {
        assert!(
            metrics.contains(&format!("{name}{{connection=\"main\",role=\"mapper\"}}")),
            "{name}: {metrics}"
        );
    }
    assert!(
        metrics.contains("crmsync_plugin_failures_total{connection=\"main\",role=\"mapper\"} 0"),
        "{metrics}"
    );

    // A record by Salesforce id or by email: its link, the values last synced, the plugin that mapped it.
    let lead = env.sandbox.salesforce.state()["objects"]["Lead"][0].clone();
    let (id, email) = (lead["Id"].as_str().unwrap(), lead["Email"].as_str().unwrap());
    let by_id = server.get(&format!("/connections/main/records/{id}")).await;
    assert_eq!(by_id["link"]["sf_id"], id, "{by_id}");
    assert!(by_id["link"]["remote_id"].is_string(), "{by_id}");
    assert_eq!(by_id["link"]["sf_values"]["Email"], email, "{by_id}");
    assert_eq!(by_id["link"]["marketing_values"]["email"], email, "{by_id}");
    assert!(by_id["link"]["plugin"].as_str().unwrap().contains('@'), "which version mapped it: {by_id}");
    assert_eq!(by_id["errors"], json!([]));
    let by_email = server.get(&format!("/connections/main/records/{}", email.to_uppercase())).await;
    assert_eq!(by_email["link"]["sf_id"], id, "{by_email}");
    let unknown = server
        .call(
            reqwest::Method::GET,
            "/connections/main/records/nobody@example.com",
            crate::common::ADMIN_TOKEN,
        )
        .await;
    assert_eq!(unknown.status(), 404);

    // Runs, paged, with counts since start.
    let runs = server.get("/connections/main/runs?limit=1").await;
    assert_eq!((runs["total"].as_u64(), runs["runs"].as_array().map(Vec::len)), (Some(1), Some(1)), "{runs}");
    assert_eq!(runs["since_start"]["ok"], 1, "{runs}");
    let too_many =
        server.call(reqwest::Method::GET, "/connections/main/runs?limit=0", crate::common::ADMIN_TOKEN).await;
    assert_eq!(too_many.status(), 400);

    // Pause and resume.
    let paused =
        server.call(reqwest::Method::POST, "/connections/main/pause", crate::common::ADMIN_TOKEN).await;
    assert_eq!(paused.json::<Value>().await.unwrap()["paused"], true);
    assert_eq!(server.get("/connections").await[0]["active"], false);
    let metrics =
        server.call(reqwest::Method::GET, "/metrics", crate::common::ADMIN_TOKEN).await.text().await.unwrap();
    assert!(metrics.contains("crmsync_connection_active{connection=\"main\"} 0"), "{metrics}");
    let resumed =
        server.call(reqwest::Method::POST, "/connections/main/resume", crate::common::ADMIN_TOKEN).await;
    assert_eq!(resumed.json::<Value>().await.unwrap()["paused"], false);
    assert_eq!(server.get("/connections").await[0]["active"], true);

    let exit = server.terminate().await;
    assert!(exit.success(), "SIGTERM ends serve with success: {exit:?}");
    // The schedule set through the API survives the restart; the run was recorded.
    let status = crmsync(&env, &["status", "--json"]).await;
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status[0]["runs"], 1, "{status}");
    assert_eq!(status[0]["schedule"], "every 2 hours", "{status}");
    let _ = env.sandbox.ctx(Vendor::Salesforce);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_change_updates_the_same_contact_and_removing_the_connection_deletes_nothing() {
    use crmsync::connectors::{Connector, Write, WriteKey};
    use crmsync_sdk::types::{Record, System};
    let env = Env::start(seed(3, 0), all_selection(), json!({})).await;
    assert!(crmsync(&env, &["run", "--once"]).await.ok());
    let before: Vec<Value> = ac_contacts(&env);
    let old = before.iter().find(|c| c["email"] == "gen-lead-0@example.com").unwrap().clone();

    let (sf, _) = crate::common::connect(&env.sandbox, Default::default()).unwrap();
    let ids = sf.find_by_email("Lead", &["gen-lead-0@example.com".into()]).await.unwrap();
    let record = Record::new(System::Salesforce, "Lead").with("Email", "ada.new@example.com");
    let w = Write::Upsert { key: WriteKey::Id(ids["gen-lead-0@example.com"][0].clone()), record };
    assert!(sf.write("Lead", vec![w]).await.unwrap()[0].is_ok());
    let run = crmsync(&env, &["run", "--once", "--json"]).await;
    let run: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        (run["outbound"]["updated"].as_u64(), run["outbound"]["created"].as_u64()),
        (Some(1), Some(0)),
        "{run}"
    );
    let after = ac_contacts(&env);
    assert_eq!(after.len(), 3, "an email change is not a new person");
    let moved = after.iter().find(|c| c["id"] == old["id"]).unwrap();
    assert_eq!(moved["email"], "ada.new@example.com");

    // Removing the connection from the config: crmsync refuses to run without
    // one, and nothing already synced is deleted anywhere.
    std::fs::write(&env.config, "[service]\n").unwrap();
    let none = crmsync(&env, &["run", "--once"]).await;
    assert_eq!(none.code, Some(2), "{none}");
    assert!(none.stderr.contains("no connection is configured"), "{none}");
    assert_eq!(ac_contacts(&env).len(), 3);
    assert_eq!(env.sandbox.salesforce.state()["objects"]["Lead"].as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsubscribed_contact_stays_unsubscribed() {
    // ActiveCampaign already has this person, unsubscribed (status 2) from list 1;
    // Salesforce has them as a Lead. Syncing updates the contact, never its consent.
    let mut seed = seed(0, 0);
    seed["salesforce"]["records"] = json!({"Lead": [
        {"FirstName": "Opal", "LastName": "Optout", "Company": "Acme", "Email": "opal@example.com"}
    ]});
    seed["activecampaign"] = json!({"contacts": [
        {"email": "opal@example.com", "firstName": "O", "lists": [{"list": 1, "status": 2}]}
    ]});
    let env = Env::start(seed, all_selection(), json!({})).await;
    let run = crmsync(&env, &["run", "--once", "--json"]).await;
    assert!(run.ok(), "{run}");
    let contacts = ac_contacts(&env);
    assert_eq!(contacts.len(), 1, "matched by email, not created again");
    assert_eq!(contacts[0]["firstName"], "Opal");
    assert_eq!(contacts[0]["lists"]["1"], 2, "still unsubscribed: {}", contacts[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_repairs_what_polling_missed() {
    let env = Env::start(seed(20, 5), all_selection(), json!({})).await;
    assert!(crmsync(&env, &["run", "--once"]).await.ok());
    // A Lead stamped before the cursor (restored from the recycle bin, say): polling never sees it.
    env.sandbox
        .salesforce
        .seed(json!({"records": {"Lead": [{"LastName": "Late", "Company": "Acme",
            "Email": "late@example.com", "SystemModstamp": "2020-01-01T00:00:00Z"}]}}))
        .unwrap();
    let polled = crmsync(&env, &["run", "--once", "--json"]).await;
    let polled: Value = serde_json::from_str(&polled.stdout).unwrap();
    assert_eq!(polled["outbound"]["created"], 0, "{polled}");
    assert!(!ac_contacts(&env).iter().any(|c| c["email"] == "late@example.com"));

    let repaired = crmsync(&env, &["run", "--once", "--reconcile", "--json"]).await;
    let repaired: Value = serde_json::from_str(&repaired.stdout).unwrap();
    assert_eq!(repaired["outbound"]["created"], 1, "{repaired}");
    assert!(ac_contacts(&env).iter().any(|c| c["email"] == "late@example.com"));
    // Nothing left to repair: another reconciliation writes nothing.
    let again = crmsync(&env, &["run", "--once", "--reconcile", "--json"]).await;
    let again: Value = serde_json::from_str(&again.stdout).unwrap();
    let writes = (again["outbound"]["created"].as_u64(), again["outbound"]["updated"].as_u64());
    assert_eq!(writes, (Some(0), Some(0)), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flagged_selection_syncs_records_marked_pending_next_sync_and_clears_the_flag() {
    // The seed's "flagged" mode: any Salesforce automation sets the status field
    // to "Pending next sync"; the next run syncs exactly those and writes
    // "Synced successfully" over the flag.
    let mut seed = seed(0, 0);
    seed["salesforce"]["records"] = json!({"Lead": [
        {"LastName": "Flagged", "Company": "Acme", "Email": "flagged@example.com", "AC_Sync_Status__c": "Pending next sync"},
        {"LastName": "Quiet", "Company": "Acme", "Email": "quiet@example.com"}
    ]});
    let flagged = json!({"mode": "flagged", "field": "AC_Sync_Status__c", "value": "Pending next sync"});
    let env = Env::start(seed, json!({"objects": {"Lead": flagged}}), json!({})).await;
    let status_of = |env: &Env, email: &str| {
        let leads = env.sandbox.salesforce.state()["objects"]["Lead"].as_array().cloned().unwrap();
        leads.into_iter().find(|l| l["Email"] == email).unwrap()["AC_Sync_Status__c"].clone()
    };

    let run = crmsync(&env, &["run", "--once", "--json"]).await;
    let run: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|_| panic!("{run}"));
    assert_eq!(run["outbound"]["created"], 1, "{run}");
    let emails: Vec<Value> = ac_contacts(&env).iter().map(|c| c["email"].clone()).collect();
    assert_eq!(emails, [json!("flagged@example.com")]);
    assert_eq!(status_of(&env, "flagged@example.com"), "Synced successfully");
    assert_eq!(status_of(&env, "quiet@example.com"), Value::Null);

    // An automation flags the other Lead: the next run takes it, and only it.
    let (sf, _) = crate::common::connect(&env.sandbox, Default::default()).unwrap();
    let quiet = sf.find_by_email("Lead", &["quiet@example.com".into()]).await.unwrap()["quiet@example.com"]
        [0]
    .clone();
    let flag = crmsync_sdk::types::Record::new(crmsync_sdk::types::System::Salesforce, "Lead")
        .with("AC_Sync_Status__c", "Pending next sync");
    let write =
        crmsync::connectors::Write::Upsert { key: crmsync::connectors::WriteKey::Id(quiet), record: flag };
    use crmsync::connectors::Connector;
    sf.write("Lead", vec![write]).await.unwrap()[0].as_ref().unwrap();
    let run = crmsync(&env, &["run", "--once", "--json"]).await;
    let run: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|_| panic!("{run}"));
    assert_eq!(
        (run["outbound"]["created"].as_u64(), run["outbound"]["updated"].as_u64()),
        (Some(1), Some(0)),
        "{run}"
    );
    assert_eq!(ac_contacts(&env).len(), 2);
    assert_eq!(status_of(&env, "quiet@example.com"), "Synced successfully");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_waiting_on_an_activecampaign_outage_say_pending_next_sync_until_they_sync() {
    use crmsync_sandbox::common::{Fault, FaultRule, Vendor};
    let env = Env::start(
        seed(5, 0),
        all_selection(),
        json!({"http": {"max_retries": 1, "min_delay_ms": 1, "max_delay_ms": 5}}),
    )
    .await;
    let statuses = |env: &Env| -> Vec<Value> {
        let leads = env.sandbox.salesforce.state()["objects"]["Lead"].as_array().cloned().unwrap();
        leads.iter().map(|l| l["AC_Sync_Status__c"].clone()).collect()
    };
    for endpoint in ["contact/sync", "import/bulk_import"] {
        env.sandbox.ctx(Vendor::ActiveCampaign).add_fault(FaultRule {
            endpoint: Some(endpoint.into()),
            times: None,
            fault: Fault::Status { status: 503, retry_after_secs: None, body: None },
        });
    }

    let run = crmsync(&env, &["run", "--once", "--json"]).await;
    let run: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|_| panic!("{run}"));
    assert_eq!(run["outbound"]["created"], 0, "{run}");
    assert!(run["outbound"]["deferred"].as_u64().unwrap() >= 5, "{run}");
    assert_eq!(statuses(&env), vec![json!("Pending next sync"); 5]);
    let sf_calls = env.sandbox.salesforce.state()["api_usage"]["used"].as_u64().unwrap();
    // Still down: the note is not written again.
    let again = crmsync(&env, &["run", "--once", "--json"]).await;
    let again: Value = serde_json::from_str(&again.stdout).unwrap_or_else(|_| panic!("{again}"));
    assert_eq!(again["outbound"]["written_back"], 0, "{again}");
    assert!(env.sandbox.salesforce.state()["api_usage"]["used"].as_u64().unwrap() > sf_calls);

    env.sandbox.ctx(Vendor::ActiveCampaign).clear_faults();
    let healed = crmsync(&env, &["run", "--once", "--json"]).await;
    let healed: Value = serde_json::from_str(&healed.stdout).unwrap_or_else(|_| panic!("{healed}"));
    // The queued writes go at the start of the cycle; each record once in ActiveCampaign.
    let created =
        healed["inbound"]["created"].as_u64().unwrap() + healed["outbound"]["created"].as_u64().unwrap();
    assert!(created >= 5, "{healed}");
    assert_eq!(ac_contacts(&env).len(), 5);
    assert_eq!(statuses(&env), vec![json!("Synced successfully"); 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lead_linked_contact_sent_back_as_contact_creates_a_contact_and_leaves_the_lead() {
    // Seed behaviour (documented): the Lead is not converted; a new Contact is
    // created and the ActiveCampaign contact follows it from then on.
    let mut seed = seed(0, 0);
    seed["salesforce"]["records"] = json!({"Lead": [{"FirstName": "Lena", "LastName": "Lead", "Company": "Acme", "Email": "lena@example.com"}]});
    let mut selection = all_selection();
    selection["inbound"] = json!({"tag": "salesforce", "create_as": "contact"});
    let env = Env::start(seed, selection, json!({"inbound": {"flag_tag": "salesforce"}})).await;
    let first = crmsync(&env, &["run", "--once", "--json"]).await;
    assert!(first.ok(), "{first}");
    let objects = |env: &Env, object: &str| -> Vec<Value> {
        env.sandbox.salesforce.state()["objects"][object].as_array().cloned().unwrap_or_default()
    };
    assert!(objects(&env, "Contact").is_empty());

    use crmsync::connectors::{Connector, Write, WriteKey};
    let (_, ac) = crate::common::connect(&env.sandbox, Default::default()).unwrap();
    let id = ac.find_by_email("contact", &["lena@example.com".into()]).await.unwrap()["lena@example.com"][0]
        .clone();
    let flag = crmsync_sdk::types::Record::new(crmsync_sdk::types::System::ActiveCampaign, "contact")
        .with("firstName", "Lena Marie")
        .with("tags", crmsync_sdk::types::Value::TextList(vec!["salesforce".into()]));
    ac.write("contact", vec![Write::Upsert { key: WriteKey::Id(id.clone()), record: flag }]).await.unwrap()
        [0]
    .as_ref()
    .unwrap();

    let run = crmsync(&env, &["run", "--once", "--json"]).await;
    let run: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|_| panic!("{run}"));
    assert_eq!(run["inbound"]["created"], 1, "{run}");
    let contacts = objects(&env, "Contact");
    assert_eq!(contacts.len(), 1, "a new Contact");
    assert_eq!(contacts[0]["Email"], "lena@example.com");
    assert_eq!(contacts[0]["FirstName"], "Lena Marie");
    let leads = objects(&env, "Lead");
    assert_eq!(leads.len(), 1);
    assert_eq!(leads[0]["IsConverted"], false, "the Lead is not converted");
    assert_eq!(ac_contacts(&env).len(), 1, "still one contact");

    // From now on the contact syncs with the Contact, not the Lead.
    let edit = crmsync_sdk::types::Record::new(crmsync_sdk::types::System::ActiveCampaign, "contact")
        .with("lastName", "Contact-Side");
    ac.write("contact", vec![Write::Upsert { key: WriteKey::Id(id), record: edit }]).await.unwrap()[0]
        .as_ref()
        .unwrap();
    let run = crmsync(&env, &["run", "--once", "--json"]).await;
    assert!(run.ok(), "{run}");
    assert_eq!(objects(&env, "Contact")[0]["LastName"], "Contact-Side");
    assert_eq!(objects(&env, "Lead")[0]["LastName"], "Lead");
    let status = crmsync(&env, &["status", "--json"]).await;
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status[0]["links"], 1, "one contact, one link");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_from_an_empty_directory_with_the_binary_alone() {
    // No plugin files, no config, no data directory: the default rules are built in.
    let (dir, stdout) = crate::common::demo(&[]).await;
    assert!(stdout.contains("(built into crmsync)"), "{stdout}");
    let sandbox = stdout.lines().find(|l| l.starts_with("sandbox:")).unwrap_or_default();
    assert_eq!(sandbox.matches("http://127.0.0.1:").count(), 2, "both vendors' addresses: {stdout}");
    assert!(stdout.contains("created 1002"), "{stdout}");
    assert!(stdout.contains("the Lead in Salesforce now has FirstName = \"Augusta\""), "{stdout}");
    assert!(dir.path().join(".crmsync/demo/state/db").exists(), "state under the working directory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_cycle_runs_over_https_trusting_only_the_configured_ca() {
    let env = Env::start_opts(seed(3, 2), all_selection(), json!({}), false, true).await;
    assert!(env.sandbox.salesforce_url().starts_with("https://"), "{}", env.sandbox.salesforce_url());
    let test = crmsync(&env, &["connect", "test"]).await;
    assert!(test.ok(), "{test}\n{}", std::fs::read_to_string(&env.config).unwrap());
    assert_eq!(test.stdout.matches("Connected").count(), 2, "{test}");
    let run = crmsync(&env, &["run", "--once", "--json"]).await;
    let record: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|_| panic!("{run}"));
    assert_eq!(record["outbound"]["created"], 5, "{record}");
    assert_eq!(ac_contacts(&env).len(), 5);
    // Written back over HTTPS too.
    let leads = env.sandbox.salesforce.state()["objects"]["Lead"].as_array().cloned().unwrap();
    assert!(leads.iter().all(|l| l["AC_Sync_Status__c"] == "Synced successfully"), "{leads:?}");

    // Without the sandbox's CA the same config is refused at the handshake,
    // saying so, and not retried for minutes.
    let config = std::fs::read_to_string(&env.config).unwrap();
    let untrusting: String = config.lines().filter(|l| !l.contains("ca_file")).collect::<Vec<_>>().join("\n");
    std::fs::write(&env.config, untrusting).unwrap();
    let refused = crmsync(&env, &["connect", "test"]).await;
    assert_eq!(refused.code, Some(1), "{refused}");
    assert!(refused.stdout.contains("secure connection refused"), "{refused}");
    assert!(refused.stdout.to_lowercase().contains("certificate"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_without_a_scheme_and_an_unreadable_ca_file_are_refused_at_load_naming_the_key() {
    let env =
        Env::start(seed(1, 0), all_selection(), json!({"http": {"ca_file": "/nonexistent/ca.pem"}})).await;
    let text = std::fs::read_to_string(&env.config).unwrap();
    let url = env.sandbox.salesforce_url();
    std::fs::write(&env.config, text.replace(&url, url.trim_start_matches("http://"))).unwrap();
    let out = crmsync(&env, &["run", "--once"]).await;
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("connections.main.salesforce.login_url"), "{out}");
    assert!(out.stderr.contains("with its scheme"), "{out}");
    assert!(out.stderr.contains("connections.main.http.ca_file: cannot read /nonexistent/ca.pem"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_test_as_the_readme_writes_it_needs_no_service_config() {
    // A crmsync.toml in the directory (not valid for this purpose) must not be read.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("crmsync.toml"), "not toml at all {{").unwrap();
    let lead = json!({"system": "salesforce", "object": "Lead", "id": "00Q1", "fields": {"Email": "a@example.com", "LastName": "A"}});
    std::fs::write(dir.path().join("r.jsonl"), format!("{lead}\n")).unwrap();
    std::fs::write(dir.path().join("c.json"), json!({"marketing": "activecampaign"}).to_string()).unwrap();
    let plugin = crate::common::plugins_dir().join("standard-mapping.wasm");
    let run = |extra: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_crmsync"));
        cmd.current_dir(dir.path()).arg("plugin").arg("test").arg(&plugin);
        cmd.args(["--role", "mapper", "--input", "r.jsonl"]).args(extra).env_remove("CRMSYNC_CONFIG");
        cmd.output().unwrap()
    };
    let bare = run(&[]);
    assert!(bare.status.success(), "{}", String::from_utf8_lossy(&bare.stderr));
    let with_config = run(&["--config", "c.json"]);
    let out = String::from_utf8_lossy(&with_config.stdout);
    assert!(with_config.status.success(), "{out}{}", String::from_utf8_lossy(&with_config.stderr));
    assert!(out.contains("a@example.com"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_serve_a_paused_budget_rechecks_usage_and_resumes_when_it_falls() {
    let mut seed = seed(30, 0);
    seed["salesforce"]["limits"] = json!({"daily_limit": 10000, "used": 9600});
    let env = Env::start(seed, all_selection(), json!({})).await;
    let server = crate::common::Served::start(&env).await;
    let http = reqwest::Client::new();
    let run_now = || async {
        let reply = http
            .post(format!("{}/connections/main/run?wait=true", server.base))
            .bearer_auth(crate::common::ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        reply.json::<Value>().await.unwrap()
    };
    let paused = run_now().await;
    assert_eq!(paused["budget"], "paused", "{paused}");
    let again = run_now().await;
    assert_eq!(again["budget"], "paused", "still 96 %: {again}");
    // The rolling window frees calls: usage falls to 70 %, below the resume level.
    env.sandbox.salesforce.seed(json!({"limits": {"used": 7000}})).unwrap();
    let resumed = run_now().await;
    assert_eq!(resumed["budget"], "ok", "the paused service learned that usage fell: {resumed}");
    assert_eq!(resumed["api_used"].as_u64().map(|u| u < 9500), Some(true), "{resumed}");
    let written_back = resumed["inbound"]["written_back"].as_u64().unwrap()
        + resumed["outbound"]["written_back"].as_u64().unwrap();
    assert_eq!(written_back, 30, "the deferred status write-backs went out: {resumed}");
    assert!(server.terminate().await.success());
}

/// `crmsync ARGS` in `dir` with only `vars` set of the secrets, `stdin` piped in.
async fn crmsync_in(
    dir: &std::path::Path,
    args: &[&str],
    vars: &[(&str, &str)],
    stdin: &str,
) -> crate::common::Output {
    use tokio::io::AsyncWriteExt;
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_crmsync"));
    cmd.args(args).current_dir(dir).env("RUST_LOG", "warn").env_remove("CRMSYNC_CONFIG");
    for var in ["SF_CLIENT_SECRET", "SF_REFRESH_TOKEN", "AC_API_TOKEN", "MAILCHIMP_API_KEY", "BREVO_API_KEY"]
    {
        cmd.env_remove(var);
    }
    cmd.envs(vars.iter().copied());
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("crmsync runs");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    crate::common::Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_example_passes_config_check_and_each_problem_is_named_by_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let example = crmsync_in(dir.path(), &["config", "example"], &[], "").await;
    assert!(example.ok() && example.stdout.contains("[connections."), "{example}");

    // Without the secrets: the form is checked, and what is missing is named.
    let piped =
        crmsync_in(dir.path(), &["config", "check", "-", "--skip-secrets"], &[], &example.stdout).await;
    assert!(piped.ok() && piped.stdout.contains("ok — 3 connection(s)"), "{piped}");
    assert!(piped.stdout.contains("(Salesforce ⇄ Brevo"), "platforms by their names: {piped}");
    std::fs::write(dir.path().join("crmsync.toml"), &example.stdout).unwrap();
    let unset = crmsync_in(dir.path(), &["config", "check"], &[], "").await;
    assert_eq!(unset.code, Some(2), "{unset}");
    assert!(
        unset.stderr.contains(
            "connections.acme.salesforce.refresh_token: environment variable SF_REFRESH_TOKEN is not set"
        ),
        "{unset}"
    );
    let secrets = [
        ("SF_CLIENT_SECRET", "s"),
        ("SF_REFRESH_TOKEN", "r"),
        ("AC_API_TOKEN", "a"),
        ("MAILCHIMP_API_KEY", "0123456789abcdef0123456789abcdef-us6"),
        ("BREVO_API_KEY", "b"),
        ("CRMSYNC_ADMIN_TOKEN", "t"),
        ("CRMSYNC_STANDARD_TOKEN", "u"),
    ];
    let full = crmsync_in(dir.path(), &["config", "check"], &secrets, "").await;
    assert!(full.ok(), "{full}");

    // Every problem at once, each with its key path, nothing started.
    let broken = r#"
[service]
admin_token = "literal-token"

[connections.acme]
marketing = "activecampaign"
page_size = 0

[connections.acme.salesforce]
login_url = "login.salesforce.com"
client_id = "x"
refresh_token = { envv = "SF_REFRESH_TOKEN" }

[connections.acme.activecampaign]
api_url = "https://acme.api-us1.com"
api_token = { env = "AC_API_TOKEN" }

[connections.acme.rules.selector]
plugin = "plugins/missing.wasm"

[connections.news]
marketing = "mailchimpp"

[connections.news.salesforce]
login_url = "https://login.salesforce.com"
client_id = "x"
refresh_token = { env = "SF_REFRESH_TOKEN" }
"#;
    let out = crmsync_in(dir.path(), &["config", "check", "-"], &secrets, broken).await;
    assert_eq!(out.code, Some(2), "{out}");
    for key in [
        "service.admin_token: secrets are not written in the config file",
        "connections.acme.page_size: must be between 1 and 2000",
        "connections.acme.salesforce.login_url: \"login.salesforce.com\" is not a URL",
        "connections.acme.salesforce.refresh_token: a secret is written { env = \"NAME\" } or { file = \"path\" }; found { envv }",
        "connections.acme.rules.selector.plugin:",
        "connections.news.marketing: \"mailchimpp\" is not a marketing platform",
    ] {
        assert!(out.stderr.contains(key), "no `{key}` in\n{out}");
    }
    assert!(out.stderr.contains("has 6 problems"), "{out}");
    assert!(!dir.path().join(".crmsync").exists(), "a check opens no state");

    let duplicate = "[connections.a]\nmarketing = \"brevo\"\n[connections.a]\nobjects = []\n";
    let out = crmsync_in(dir.path(), &["config", "check", "-"], &[], duplicate).await;
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("line 3 ([connections.a]): duplicate key"), "{out}");
}

/// Two connections run in one invocation: `--json` prints one document (an
/// array of run records), a draft's note goes to stderr, and a reader that
/// went away (`| head -1`) ends the output quietly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_json_is_one_document_across_connections_and_a_closed_pipe_ends_quietly() {
    let env = Env::start(seed(5, 5), all_selection(), json!({})).await;
    let text = std::fs::read_to_string(&env.config).unwrap();
    let mut config: toml::Table = text.parse().unwrap();
    let main = config["connections"]["main"].clone();
    let connections = config["connections"].as_table_mut().unwrap();
    connections.insert("second".into(), main.clone());
    let mut draft = main.as_table().unwrap().clone();
    draft.insert("active".into(), false.into());
    connections.insert("third".into(), draft.into());
    std::fs::write(&env.config, toml::to_string(&config).unwrap()).unwrap();

    let out = crmsync(&env, &["run", "--once", "--json"]).await;
    assert!(out.ok(), "{out}");
    let runs: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out}"));
    let names: Vec<&str> = runs.as_array().unwrap().iter().filter_map(|r| r["connection"].as_str()).collect();
    assert_eq!(names, ["main", "second"], "{out}");
    assert!(out.stderr.contains("third: paused (or a draft), not run"), "{out}");

    // `run` is one cycle; `--once` may be left out.
    let one = crmsync(&env, &["run", "--json", "--connection", "main"]).await;
    let record: Value = serde_json::from_str(&one.stdout).unwrap_or_else(|e| panic!("{e}: {one}"));
    assert_eq!(record["connection"], "main", "one connection, one record: {one}");
    let status = crmsync(&env, &["status"]).await;
    assert!(status.ok() && status.stdout.contains("third"), "{status}");
    let wide: Vec<&str> = status.stdout.lines().filter(|l| l.chars().count() > 100).collect();
    assert!(wide.is_empty(), "status fits 100 columns: {wide:?}");

    // `crmsync status | head -1`: the reader is gone before the first write.
    let mut status = env.command(&["status"]).spawn().unwrap();
    drop(status.stdout.take());
    let exit = status.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&exit.stderr);
    assert_eq!(exit.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// SIGTERM in the middle of a run: the batch in hand finishes, and the run
/// is recorded — and shown by `status` — as stopped, not as ok.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_by_sigterm_says_stopped() {
    use crmsync_sandbox::common::{Fault, FaultRule};
    let seed = json!({"salesforce": {"generate": {"Contact": 600}}});
    let env = crate::mailchimp::mc_env(seed, json!({"objects": ["Contact"], "page_size": 200})).await;
    let ctx = env.sandbox.ctx(Vendor::Mailchimp);
    // Writes take long enough for SIGTERM to land while the first is in hand.
    ctx.add_fault(FaultRule {
        endpoint: Some("POST /3.0/lists/".into()),
        times: None,
        fault: Fault::Latency { ms: 1500 },
    });
    let server = crate::common::Served::start(&env).await;
    server.run_until_progress("to-marketing").await;
    assert!(server.terminate().await.success());

    let status = crmsync(&env, &["status"]).await;
    assert!(status.stdout.contains("(stopped)"), "{status}");
    let json: Value = serde_json::from_str(&crmsync(&env, &["status", "--json"]).await.stdout).unwrap();
    let last = &json[0]["last_run"];
    assert_eq!((last["outbound"]["stopped"].as_bool(), last["error"].as_str()), (Some(true), None), "{json}");
    assert_eq!(last["outbound"]["created"], 200, "the batch in hand was finished: {json}");
}

/// While `serve` holds the data directory, `status` and `run --once` go
/// through its admin API; other commands say who holds it, not "lock".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_works_beside_a_running_service() {
    let env = Env::start(seed(10, 5), all_selection(), json!({})).await;
    let server = crate::common::Served::start(&env).await;

    let run = crmsync(&env, &["run", "--once", "--json"]).await;
    assert!(run.ok(), "{run}");
    let record: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run}"));
    assert_eq!(record["outbound"]["created"], 15, "{record}");
    assert_eq!(ac_contacts(&env).len(), 15);

    let status = crmsync(&env, &["status", "--json"]).await;
    assert!(status.ok(), "{status}");
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(
        (status[0]["connection"].as_str(), status[0]["links"].as_u64()),
        (Some("main"), Some(15)),
        "{status}"
    );
    let human = crmsync(&env, &["status"]).await;
    assert!(human.ok() && human.stdout.contains("last run:") && human.stdout.contains("(ok)"), "{human}");

    // Pause and resume go through the admin API too.
    let paused = crmsync(&env, &["connection", "pause", "main"]).await;
    assert!(paused.ok() && paused.stdout.contains("main: paused"), "{paused}");
    assert_eq!(server.get("/connections").await[0]["active"], false);
    let resumed = crmsync(&env, &["connection", "resume", "main"]).await;
    assert!(resumed.ok() && resumed.stdout.contains("main: running"), "{resumed}");
    assert_eq!(server.get("/connections").await[0]["active"], true);

    let held = crmsync(&env, &["connect", "test"]).await;
    assert_eq!(held.code, Some(2), "{held}");
    assert!(held.stderr.contains("is held by crmsync serve (pid") && !held.stderr.contains("lock"), "{held}");

    // The admin API takes the scheme in any case; a 401 says how to authenticate.
    let http = reqwest::Client::new();
    let lower = http
        .get(format!("{}/connections", server.base))
        .header("authorization", format!("bearer {}", crate::common::ADMIN_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(lower.status(), 200);
    let refused = http.get(format!("{}/connections", server.base)).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()["www-authenticate"], "Bearer realm=\"crmsync\"");

    assert!(server.terminate().await.success());
    assert!(!env.data.join("serve.json").exists(), "serve leaves no lease behind");
    let after = crmsync(&env, &["status", "--json"]).await;
    assert!(after.ok(), "the state is the CLI's again: {after}");
    // A lease left by a crash whose pid is now another program's is ignored.
    let stale = json!({"pid": std::process::id(), "admin": "http://127.0.0.1:9"});
    std::fs::write(env.data.join("serve.json"), stale.to_string()).unwrap();
    let after = crmsync(&env, &["status", "--json"]).await;
    assert!(after.ok(), "a stale lease is ignored: {after}");
}

/// `--log-format json`: a full sync (and a failing command) writes JSON
/// lines only to stderr — at debug level too — and none carries a secret
/// or an email address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_json_lines_only_and_carry_no_secret_or_email() {
    let env = Env::start(seed(20, 10), all_selection(), json!({})).await;
    let vars = [("RUST_LOG", "debug")];
    let run =
        crate::common::crmsync_with(&env, &["--log-format", "json", "run", "--once", "--json"], &vars).await;
    assert!(run.ok(), "{run}");
    let failing =
        crate::common::crmsync_with(&env, &["--log-format", "json", "connection", "activate", "nope"], &vars)
            .await;
    assert_eq!(failing.code, Some(2), "{failing}");
    let mut lines = 0;
    for line in run.stderr.lines().chain(failing.stderr.lines()) {
        let parsed: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(parsed["level"].is_string(), "{line}");
        assert!(!line.contains("@example.com"), "an email in a log line: {line}");
        for (var, secret) in env.secrets() {
            assert!(!line.contains(&secret), "{var}'s value in a log line: {line}");
        }
        lines += 1;
    }
    assert!(lines > 10, "the run logged: {run}");
    assert!(failing.stderr.contains("no connection named"), "{failing}");
}

/// Every admin API route against no token, a wrong token, the standard
/// token and the admin token: 401 (saying how to authenticate), 401, 403 on
/// the routes that change configuration, and through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_checks_its_role() {
    use crate::common::{ADMIN_TOKEN, STANDARD_TOKEN};
    let env = Env::start(seed(3, 2), all_selection(), json!({})).await;
    let server = crate::common::Served::start(&env).await;
    let http = reqwest::Client::new();
    // The routes come from the service's own OpenAPI document, so a new
    // route is tested here the day it is added.
    let doc: Value =
        http.get(format!("{}/openapi.json", server.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut routes = Vec::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let path = template
                .replace("{name}", "main")
                .replace("{sf_id}", "00Q000000000001AAA")
                .replace("{record}", "00Q000000000001AAA")
                .replace("{role}", "mapper");
            let body = match (method.as_str(), template.as_str()) {
                (_, t) if t.ends_with("add-to-automation") => Some(json!({"automation": "x"})),
                (_, t) if t.ends_with("send-campaign") => Some(json!({"campaign": "x"})),
                (_, t) if t.ends_with("/plugins/{role}/activate") => Some(json!({"plugin": "nope@9.9.9"})),
                ("put", t) if t.ends_with("/schedule") => Some(json!({"schedule": "manual"})),
                ("post", "/plugins") => Some(json!({"not": "a form"})),
                _ => None,
            };
            let role = op["x-crmsync-role"].as_str().unwrap().to_string();
            routes.push((method.to_uppercase().parse::<reqwest::Method>().unwrap(), path, body, role));
        }
    }
    assert!(routes.len() >= 24, "every route is in the document: {}", routes.len());
    let call = |method: &reqwest::Method, path: &str, body: &Option<Value>, token: Option<&str>| {
        let mut req = http.request(method.clone(), format!("{}{path}", server.base));
        if let Some(b) = body {
            req = req.json(b);
        }
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    for (method, path, body, role) in &routes {
        let none = call(method, path, body, None).await.unwrap();
        if role == "none" {
            assert_eq!(none.status(), 200, "{method} {path} is open");
            continue;
        }
        assert_eq!(none.status(), 401, "{method} {path} without a token");
        assert_eq!(none.headers()["www-authenticate"], "Bearer realm=\"crmsync\"", "{method} {path}");
        assert_eq!(
            none.headers()["content-type"],
            "application/json",
            "{method} {path}: error bodies are JSON"
        );
        let wrong = call(method, path, body, Some("not-the-token")).await.unwrap();
        assert_eq!(wrong.status(), 401, "{method} {path} with a wrong token");
        let standard = call(method, path, body, Some(STANDARD_TOKEN)).await.unwrap().status();
        match role.as_str() {
            "admin" => {
                assert_eq!(standard, 403, "{method} {path}: the standard token changes no configuration")
            }
            "standard" => assert!(
                standard != 401 && standard != 403,
                "{method} {path} with the standard token: {standard}"
            ),
            other => panic!("{method} {path}: unknown role {other}"),
        }
    }
    for (method, path, body, role) in &routes {
        let admin = call(method, path, body, Some(ADMIN_TOKEN)).await.unwrap().status();
        assert!(admin != 401 && admin != 403, "{method} {path} ({role}) with the admin token: {admin}");
    }
    let ready: Value = http.get(format!("{}/ready", server.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    // The access log names each request by its route pattern, never by the
    // path it was called with (a record lookup's path may hold an email).
    let log = server.log();
    let access: Vec<&String> = log.iter().filter(|l| l.contains("admin API request")).collect();
    assert!(
        access.iter().any(|l| l.contains("/connections/{name}/records/{record}") && l.contains("status=")),
        "{access:#?}"
    );
    assert!(
        !log.iter().any(|l| l.contains(ADMIN_TOKEN) || l.contains(STANDARD_TOKEN)),
        "no token in the log"
    );
    assert!(!access.iter().any(|l| l.contains("00Q000000000001AAA")), "patterns, not paths: {access:#?}");
    assert!(server.terminate().await.success());
}

/// The admin API's dry run: what the cycle would write, with totals, and
/// nothing written on either side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_previews_a_cycle_with_totals_and_writes_nothing() {
    let env = Env::start(seed(30, 0), all_selection(), json!({})).await;
    let server = crate::common::Served::start(&env).await;
    let preview: Value = server
        .call(reqwest::Method::POST, "/connections/main/dry-run?limit=5", crate::common::ADMIN_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(preview["dry_run"], true, "{preview}");
    assert_eq!(preview["planned_total"]["outbound"]["records"], 30, "{preview}");
    assert_eq!(preview["outbound"]["planned"].as_array().map(Vec::len), Some(5), "{preview}");
    assert_eq!(ac_contacts(&env).len(), 0, "a dry run writes nothing");
    assert!(server.terminate().await.success());
    let status: Value = serde_json::from_str(&crmsync(&env, &["status", "--json"]).await.stdout).unwrap();
    assert_eq!(status[0]["runs"], 0, "a dry run is not stored: {status}");
}

/// Shell completions for bash, zsh and fish name the commands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_completions_name_the_commands() {
    let env = Env::start(seed(0, 0), all_selection(), json!({})).await;
    for (shell, marker) in
        [("bash", "_crmsync()"), ("zsh", "#compdef crmsync"), ("fish", "complete -c crmsync")]
    {
        let out = crmsync(&env, &["completions", shell]).await;
        assert!(out.ok() && out.stdout.contains(marker), "{shell}: {out}");
        assert!(out.stdout.contains("serve") && out.stdout.contains("dry-run"), "{shell}: {out}");
    }
}
