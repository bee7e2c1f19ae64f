//! Marketing activity → Salesforce Task, a record's recent activities, and the
//! actions from a Salesforce record (SPEC §2.1), end to end: the `crmsync`
//! binary (and, for the lost-answer fault, the library) against the sandbox
//! over loopback, with a real sled directory.
//!
//! Every test first syncs Salesforce → ActiveCampaign, so the generated Leads
//! and Contacts are linked; a contact seeded only in ActiveCampaign stays
//! unlinked.

use std::collections::BTreeMap;

use crate::common::{Env, all_selection, crmsync};
use async_trait::async_trait;
use crmsync::config::Config;
use crmsync::connectors::salesforce::SalesforceConnector;
use crmsync::connectors::{Changes, Connector, ConnectorError, ConnectorLimits, Cursor, Write, WriteResult};
use crmsync::engine::activity::{self, TaskPass};
use crmsync::service::{Connection, Service};
use crmsync_sandbox::common::{Vendor, VendorApi};
use crmsync_sdk::types::{Record, System};
use serde_json::{Value, json};

const LEADS: usize = 4;

/// Leads and a Contact in Salesforce; in ActiveCampaign labelled and
/// unlabelled automations and campaigns, and a contact with no Salesforce record.
fn seed() -> Value {
    json!({
        "salesforce": {"generate": {"Lead": LEADS, "Contact": 1}},
        "activecampaign": {
            "contacts": [{"email": "stranger@example.com", "firstName": "Sam", "lastName": "Stranger"}],
            "automations": [
                {"id": 1, "name": "Welcome", "status": "1", "labels": ["Salesforce"]},
                {"id": 2, "name": "Internal", "status": "1", "labels": ["ops"]},
                {"id": 3, "name": "Paused", "status": "2", "labels": ["salesforce"]}
            ],
            "campaigns": [
                {"id": 1, "name": "June news", "type": "single", "status": "5", "labels": ["Salesforce"], "automation": 1},
                {"id": 2, "name": "Blast", "type": "single", "status": "5", "labels": ["SALESFORCE"]},
                {"id": 3, "name": "Secret", "type": "single", "status": "5", "labels": [], "automation": 1}
            ]
        }
    })
}

/// A sandbox, a config, and one run that links every Lead and Contact.
async fn linked_env() -> Env {
    let env = Env::start(seed(), all_selection(), json!({})).await;
    let run = crmsync(&env, &["run", "--once", "--json"]).await;
    let record: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|_| panic!("{run}"));
    assert_eq!(record["outbound"]["created"], LEADS + 1, "{record}");
    assert_eq!(record["activities"]["tasks"], 0, "no activity yet: {record}");
    env
}

fn sf_objects(env: &Env, object: &str) -> Vec<Value> {
    env.sandbox.salesforce.state()["objects"][object].as_array().cloned().unwrap_or_default()
}

/// The Salesforce id of the record with this email.
fn sf_id(env: &Env, object: &str, email: &str) -> String {
    sf_objects(env, object)
        .into_iter()
        .find(|r| r["Email"] == email)
        .and_then(|r| r["Id"].as_str().map(String::from))
        .unwrap_or_else(|| panic!("no {object} {email}"))
}

fn ac_contact_id(env: &Env, email: &str) -> u64 {
    crate::common::ac_contacts(env)
        .into_iter()
        .find(|c| c["email"] == email)
        .and_then(|c| c["id"].as_u64())
        .unwrap_or_else(|| panic!("no contact {email}"))
}

fn tasks(env: &Env) -> Vec<Value> {
    sf_objects(env, "Task")
}

/// Activity ids named by Task descriptions, with how many Tasks name each.
fn task_activity_counts(env: &Env) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for t in tasks(env) {
        let d = t["Description"].as_str().unwrap_or_default();
        let id = d
            .lines()
            .find_map(|l| l.strip_prefix("ActiveCampaign activity id: "))
            .unwrap_or_else(|| panic!("a Task without its activity id: {t}"));
        *out.entry(id.to_string()).or_default() += 1;
    }
    out
}

fn seed_activities(env: &Env, activities: Value) {
    env.sandbox.activecampaign.seed(json!({"activities": activities})).expect("activities seeded");
}

async fn run_json(env: &Env) -> Value {
    let run = crmsync(env, &["run", "--once", "--json"]).await;
    assert!(run.ok(), "{run}");
    serde_json::from_str(&run.stdout).unwrap_or_else(|_| panic!("{run}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activities_become_tasks_once_and_unlinked_contacts_are_skipped() {
    let env = linked_env().await;
    let lead = "gen-lead-1@example.com";
    let contact = "gen-contact-0@example.com";
    seed_activities(
        &env,
        json!([
            {"email": lead, "type": "open", "tstamp": "2024-06-01T10:05:00Z", "campaign": 1},
            {"email": lead, "type": "click", "tstamp": "2024-06-01T10:06:00Z", "campaign": 1},
            {"email": lead, "type": "automation_entered", "tstamp": "2024-06-02T08:00:00Z", "automation": 1},
            {"email": contact, "type": "site", "tstamp": "2024-06-03T09:00:00Z"},
            {"email": "stranger@example.com", "type": "open", "tstamp": "2024-06-01T11:00:00Z", "campaign": 1}
        ]),
    );

    let first = run_json(&env).await;
    assert_eq!(first["activities"]["tasks"], 4, "{first}");
    assert_eq!(first["activities"]["unlinked"], 1, "{first}");
    assert_eq!(first["error"], Value::Null, "{first}");
    let all = tasks(&env);
    assert_eq!(all.len(), 4, "{all:?}");
    let lead_id = sf_id(&env, "Lead", lead);
    let opened = all
        .iter()
        .find(|t| t["Subject"] == "ActiveCampaign: Campaign opened — June news")
        .unwrap_or_else(|| panic!("{all:?}"));
    assert_eq!(opened["WhoId"], lead_id.as_str());
    assert_eq!(opened["ActivityDate"], "2024-06-01");
    assert_eq!(opened["Status"], "Completed");
    assert!(opened["Description"].as_str().unwrap().contains("2024-06-01T10:05:00Z"), "{opened}");
    let entered = all.iter().find(|t| t["Subject"] == "ActiveCampaign: Automation entered — Welcome");
    assert_eq!(entered.map(|t| &t["ActivityDate"]), Some(&json!("2024-06-02")), "{all:?}");
    let site = all.iter().find(|t| t["Subject"] == "ActiveCampaign: Site visit").expect("site visit Task");
    assert_eq!(site["WhoId"], sf_id(&env, "Contact", contact).as_str());
    assert!(
        all.iter().all(|t| t["WhoId"] == lead_id.as_str() || t["WhoId"] == site["WhoId"]),
        "nothing for the unlinked contact: {all:?}"
    );

    // Repeated runs write nothing more: the overlap re-read is recognised.
    let again = run_json(&env).await;
    assert_eq!(again["activities"]["tasks"], 0, "{again}");
    assert!(again["activities"]["already"].as_u64().unwrap() >= 1, "the last activity is re-read: {again}");
    assert_eq!(tasks(&env).len(), 4);

    // A newer activity: only it becomes a Task.
    seed_activities(
        &env,
        json!([{"email": lead, "type": "reply", "tstamp": "2024-06-04T12:00:00Z", "campaign": 1}]),
    );
    let next = run_json(&env).await;
    assert_eq!(next["activities"]["tasks"], 1, "{next}");
    let counts = task_activity_counts(&env);
    assert_eq!(counts.len(), 5, "{counts:?}");
    assert!(counts.values().all(|n| *n == 1), "one Task per activity: {counts:?}");

    // The switch turns the pass off.
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, format!("{text}\n[connections.main.activities]\ntasks = false\n")).unwrap();
    seed_activities(
        &env,
        json!([{"email": lead, "type": "open", "tstamp": "2024-06-05T12:00:00Z", "campaign": 1}]),
    );
    let off = run_json(&env).await;
    assert_eq!(off["activities"]["read"], 0, "{off}");
    assert_eq!(tasks(&env).len(), 5);
}

/// Writes through the real connector, then loses the answer (a crash or a
/// timeout after Salesforce saved the Tasks).
struct LosesAnswers<'a>(&'a SalesforceConnector);

#[async_trait]
impl Connector for LosesAnswers<'_> {
    fn system(&self) -> System {
        self.0.system()
    }
    fn vendor(&self) -> &'static str {
        self.0.vendor()
    }
    async fn connect(&self) -> Result<(), ConnectorError> {
        self.0.connect().await
    }
    fn limits(&self) -> ConnectorLimits {
        self.0.limits()
    }
    async fn fetch_changes(&self, o: &str, s: Option<&Cursor>, l: usize) -> Result<Changes, ConnectorError> {
        self.0.fetch_changes(o, s, l).await
    }
    async fn get(&self, o: &str, ids: &[String]) -> Result<Vec<Record>, ConnectorError> {
        self.0.get(o, ids).await
    }
    async fn find_by_email(
        &self,
        o: &str,
        e: &[String],
    ) -> Result<BTreeMap<String, Vec<String>>, ConnectorError> {
        self.0.find_by_email(o, e).await
    }
    async fn write(&self, o: &str, w: Vec<Write>) -> Result<Vec<WriteResult>, ConnectorError> {
        self.0.write(o, w).await?;
        Err(ConnectorError::Timeout { vendor: "Salesforce" })
    }
    async fn list_ids(
        &self,
        o: &str,
        a: Option<&Cursor>,
        l: usize,
    ) -> Result<(Vec<String>, Option<Cursor>), ConnectorError> {
        self.0.list_ids(o, a, l).await
    }
    fn calls(&self) -> u64 {
        self.0.calls()
    }
}

fn pass<'a>(service: &'a Service, conn: &'a Connection, writer: &'a dyn Connector) -> TaskPass<'a> {
    TaskPass {
        connection: &conn.name,
        store: &service.store,
        marketing: conn.marketing.as_ref(),
        salesforce: conn.salesforce.as_ref(),
        writer,
        budget: None,
        stop: None,
        time_zone: chrono_tz::UTC,
    }
}

/// The env's config with its secrets read from files (no process-wide
/// environment changes inside the test binary).
fn in_process_config(env: &Env) -> Config {
    fn files(v: &mut toml::Value, dir: &std::path::Path, secrets: &[(&str, String)]) {
        match v {
            toml::Value::Table(t) => {
                if let Some(name) = t.get("env").and_then(|e| e.as_str()).map(String::from) {
                    let value = &secrets.iter().find(|(k, _)| *k == name).expect("a known secret").1;
                    let path = dir.join(format!("{name}.secret"));
                    std::fs::write(&path, value).unwrap();
                    t.clear();
                    t.insert("file".into(), toml::Value::String(path.display().to_string()));
                } else {
                    t.iter_mut().for_each(|(_, v)| files(v, dir, secrets));
                }
            }
            toml::Value::Array(a) => a.iter_mut().for_each(|v| files(v, dir, secrets)),
            _ => {}
        }
    }
    let mut v: toml::Value = toml::from_str(&std::fs::read_to_string(&env.config).unwrap()).unwrap();
    files(&mut v, env.dir.path(), &env.secrets());
    Config::parse(&toml::to_string(&v).unwrap()).expect("config")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_after_the_tasks_were_saved_writes_no_duplicate() {
    let env = linked_env().await;
    let activities: Vec<Value> = (0..5)
        .map(|i| {
            json!({"email": format!("gen-lead-{}@example.com", i % LEADS), "type": "open",
                        "tstamp": 1_717_236_000 + i * 60, "campaign": 1})
        })
        .collect();
    seed_activities(&env, Value::Array(activities));
    {
        let service = Service::open(in_process_config(&env), &env.data).expect("service");
        let conn = service.connection("main").unwrap().clone();
        let lost = activity::to_tasks(&pass(&service, &conn, &LosesAnswers(conn.salesforce.as_ref()))).await;
        assert!(lost.is_err(), "the write's answer was lost: {lost:?}");
        assert_eq!(tasks(&env).len(), 5, "Salesforce saved the Tasks");

        let next = activity::to_tasks(&pass(&service, &conn, conn.salesforce.as_ref()))
            .await
            .expect("the next pass");
        assert_eq!((next.recovered, next.tasks), (5, 0), "{next:?}");
        assert_eq!(tasks(&env).len(), 5, "no Task written twice");
        let again =
            activity::to_tasks(&pass(&service, &conn, conn.salesforce.as_ref())).await.expect("a third pass");
        assert_eq!((again.recovered, again.tasks), (0, 0), "{again:?}");
        service.state.flush().unwrap();
    }
    // The binary, on the same state, agrees.
    let run = run_json(&env).await;
    assert_eq!(run["activities"]["tasks"], 0, "{run}");
    let counts = task_activity_counts(&env);
    assert_eq!((counts.len(), counts.values().max().copied()), (5, Some(1)), "{counts:?}");
}

fn calls(env: &Env) -> u64 {
    env.sandbox.ctx(Vendor::Salesforce).telemetry.total()
        + env.sandbox.ctx(Vendor::ActiveCampaign).telemetry.total()
}

/// Starts `run --once` and SIGKILLs it once the vendors have seen `after`
/// more calls; whether it was killed (false: it finished first).
async fn run_and_kill(env: &Env, after: u64) -> bool {
    let start = calls(env);
    let mut child = env.command(&["run", "--once"]).spawn().expect("crmsync starts");
    loop {
        tokio::select! {
            status = child.wait() => {
                assert!(status.unwrap().success(), "an uninterrupted run must succeed");
                return false;
            }
            // Polls the sandbox's counter: the kill point is a call count, not a time.
            _ = tokio::time::sleep(std::time::Duration::from_millis(1)) => {
                if calls(env) >= start.saturating_add(after) {
                    child.start_kill().unwrap();
                    assert!(!child.wait().await.unwrap().success());
                    return true;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_killed_at_any_call_never_duplicate_a_task() {
    let env = linked_env().await;
    // 900 activities: 9 listing pages and 5 Task batches per full pass.
    let activities: Vec<Value> = (0..900)
        .map(|i| {
            json!({"email": format!("gen-lead-{}@example.com", i % LEADS),
                        "type": if i % 2 == 0 { "open" } else { "click" },
                        "tstamp": 1_717_236_000 + i * 7, "campaign": 1})
        })
        .collect();
    // Kill points spread over the activity pass: after an idle cycle's calls
    // (its activity listing included), 9 listing pages and 5 Task batches.
    let idle = {
        let before = calls(&env);
        let _ = run_and_kill(&env, u64::MAX).await;
        calls(&env) - before
    };
    seed_activities(&env, Value::Array(activities));
    let mut killed = 0;
    for after in [1, 2, 3, 4, 6, 8, 10, 12, 14] {
        killed += usize::from(run_and_kill(&env, idle + after).await);
        let counts = task_activity_counts(&env);
        assert!(
            counts.values().all(|n| *n == 1),
            "a Task written twice after a kill at +{after}: {counts:?}"
        );
    }
    eprintln!("idle cycle: {idle} calls; {killed} runs killed");
    assert!(killed >= 3, "most runs were killed mid-way ({killed})");
    let done = run_json(&env).await;
    assert_eq!(done["error"], Value::Null, "{done}");
    let counts = task_activity_counts(&env);
    assert_eq!(counts.len(), 900, "every activity has its Task");
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
    assert_eq!(run_json(&env).await["activities"]["tasks"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_shows_its_20_most_recent_activities_newest_first() {
    let env = linked_env().await;
    let lead = "gen-lead-2@example.com";
    let activities: Vec<Value> = (0..25)
        .map(|i| json!({"email": lead, "type": if i % 3 == 0 { "automation_completed" } else { "open" },
                        "tstamp": 1_717_236_000 + i * 3600, "campaign": 1, "automation": 1}))
        .chain([json!({"email": "gen-lead-3@example.com", "type": "open", "tstamp": 1_900_000_000, "campaign": 1})])
        .collect();
    seed_activities(&env, Value::Array(activities));
    let id = sf_id(&env, "Lead", lead);

    let out = crmsync(&env, &["activities", "--record", &id, "--json"]).await;
    assert!(out.ok(), "{out}");
    let shown: Value = serde_json::from_str(&out.stdout).unwrap();
    let list = shown["activities"].as_array().unwrap();
    assert_eq!(list.len(), 20, "{shown}");
    let times: Vec<&str> = list.iter().map(|a| a["at"].as_str().unwrap()).collect();
    assert_eq!(times[0], "2024-06-02T10:00:00Z", "the newest (the 25th) first: {times:?}");
    assert!(times.windows(2).all(|w| w[0] > w[1]), "newest first: {times:?}");
    assert_eq!(times[19], "2024-06-01T15:00:00Z", "the 20th newest last: {times:?}");
    assert_eq!(list[0]["summary"], "Automation completed: Welcome", "{shown}");
    assert_eq!(list[1]["summary"], "Campaign opened: June news", "{shown}");
    assert_eq!(shown["contact"], ac_contact_id(&env, lead).to_string());

    // By email, in text.
    let text = crmsync(&env, &["activities", "--email", "GEN-LEAD-2@example.com"]).await;
    assert!(text.ok(), "{text}");
    assert!(text.stdout.contains("20 most recent activities"), "{text}");
    assert!(text.stdout.contains("2024-06-02 10:00:00 UTC  Automation completed: Welcome"), "{text}");

    // An unlinked record: a clear refusal, exit 1.
    let none = crmsync(&env, &["activities", "--record", "00Q000000000000AAA"]).await;
    assert_eq!(none.code, Some(1), "{none}");
    assert!(none.stderr.contains("00Q000000000000AAA is not linked to any ActiveCampaign contact"), "{none}");

    // The admin API answers the same, behind the bearer token.
    let server = crate::common::Served::start(&env).await;
    let http = reqwest::Client::new();
    let url = format!("{}/connections/main/records/{id}/activities", server.base);
    assert_eq!(http.get(&url).send().await.unwrap().status(), 401);
    let api: Value =
        http.get(&url).bearer_auth(crate::common::ADMIN_TOKEN).send().await.unwrap().json().await.unwrap();
    assert_eq!(api["activities"], shown["activities"], "{api}");
    let missing = http
        .get(format!("{}/connections/main/records/00Q000000000000AAA/activities", server.base))
        .bearer_auth(crate::common::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert!(server.terminate().await.success());
}

fn entered(env: &Env, contact: u64, automation: u64) -> bool {
    env.sandbox.activecampaign.state()["contactAutomations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["contact"] == contact && x["automation"] == automation)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_accept_only_labelled_campaigns_and_active_automations() {
    let env = linked_env().await;
    let (one, two) = ("gen-lead-1@example.com", "gen-lead-2@example.com");
    let (lead1, lead2) = (sf_id(&env, "Lead", one), sf_id(&env, "Lead", two));
    let (c1, c2) = (ac_contact_id(&env, one), ac_contact_id(&env, two));

    let list = crmsync(&env, &["action", "list", "--json"]).await;
    assert!(list.ok(), "{list}");
    let offered: Value = serde_json::from_str(&list.stdout).unwrap();
    let ids = |k: &str| -> Vec<String> {
        offered[k].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(ids("campaigns"), ["1", "2"], "{offered}");
    assert_eq!(ids("automations"), ["1", "3"], "{offered}");

    // A labelled automation, by name (any case).
    let add =
        crmsync(&env, &["action", "add-to-automation", "--record", &lead1, "--automation", "welcome"]).await;
    assert!(add.ok(), "{add}");
    assert!(entered(&env, c1, 1), "the contact is in the automation");

    let refused = |out: &crate::common::Output, why: &str| {
        assert_eq!(out.code, Some(1), "{out}");
        assert!(out.stderr.contains(why), "{out}");
    };
    let unlabelled =
        crmsync(&env, &["action", "add-to-automation", "--record", &lead1, "--automation", "2"]).await;
    refused(&unlabelled, "\"Internal\" (id 2) is not labelled Salesforce");
    assert!(!entered(&env, c1, 2));
    let inactive =
        crmsync(&env, &["action", "add-to-automation", "--record", &lead1, "--automation", "3"]).await;
    refused(&inactive, "\"Paused\" (id 3) is not active");
    let unknown =
        crmsync(&env, &["action", "add-to-automation", "--record", &lead1, "--automation", "Nope"]).await;
    refused(&unknown, "no ActiveCampaign automation has the id or name \"Nope\"");
    let unlinked = crmsync(
        &env,
        &["action", "add-to-automation", "--record", "00Q000000000000AAA", "--automation", "1"],
    )
    .await;
    refused(&unlinked, "00Q000000000000AAA is not linked to any ActiveCampaign contact");

    // A campaign in an automation is sent through it.
    assert!(!entered(&env, c2, 1));
    let send =
        crmsync(&env, &["action", "send-campaign", "--record", &lead2, "--campaign", "June news"]).await;
    assert!(send.ok(), "{send}");
    assert!(send.stdout.contains("through automation \"Welcome\""), "{send}");
    assert!(entered(&env, c2, 1), "sent through its automation");
    let one_off = crmsync(&env, &["action", "send-campaign", "--record", &lead2, "--campaign", "2"]).await;
    refused(
        &one_off,
        "one-off list campaign: ActiveCampaign's API cannot send a campaign to a single contact",
    );
    let secret =
        crmsync(&env, &["action", "send-campaign", "--record", &lead2, "--campaign", "Secret"]).await;
    refused(&secret, "campaign \"Secret\" (id 3) is not labelled Salesforce");

    // The admin API: the same actions and refusals.
    let lead3 = sf_id(&env, "Lead", "gen-lead-3@example.com");
    let c3 = ac_contact_id(&env, "gen-lead-3@example.com");
    let server = crate::common::Served::start(&env).await;
    let http = reqwest::Client::new();
    let post = |path: String, body: Value| {
        http.post(format!("{}/connections/main/records/{path}", server.base))
            .bearer_auth(crate::common::ADMIN_TOKEN)
            .json(&body)
            .send()
    };
    let ok = post(format!("{lead3}/send-campaign"), json!({"campaign": "1"})).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(entered(&env, c3, 1));
    let no = post(format!("{lead3}/add-to-automation"), json!({"automation": "Internal"})).await.unwrap();
    assert_eq!(no.status(), 403);
    let body: Value = no.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("not labelled Salesforce"), "{body}");
    let one_off = post(format!("{lead3}/send-campaign"), json!({"campaign": "Blast"})).await.unwrap();
    assert_eq!(one_off.status(), 422);
    let actions: Value = http
        .get(format!("{}/connections/main/actions", server.base))
        .bearer_auth(crate::common::ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(actions, offered);
    assert!(server.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_is_dated_in_the_org_time_zone_or_the_configured_one() {
    let mut seed = seed();
    seed["salesforce"]["records"] =
        json!({"Organization": [{"Name": "Acme", "TimeZoneSidKey": "America/Chicago"}]});
    // 2024-06-01T23:30-05:00: still June 1st in Chicago, June 2nd in UTC.
    let late = json!([{"email": "gen-lead-0@example.com", "type": "open", "tstamp": "2024-06-01T23:30:00-05:00", "campaign": 1}]);
    let env = Env::start(seed.clone(), all_selection(), json!({})).await;
    run_json(&env).await;
    seed_activities(&env, late.clone());
    let run = run_json(&env).await;
    assert_eq!(run["activities"]["tasks"], 1, "{run}");
    assert_eq!(tasks(&env)[0]["ActivityDate"], "2024-06-01", "{:?}", tasks(&env));

    // The config's time zone wins over the org's.
    let env = Env::start(seed, all_selection(), json!({"time_zone": "Asia/Tokyo"})).await;
    run_json(&env).await;
    seed_activities(&env, late);
    run_json(&env).await;
    assert_eq!(tasks(&env)[0]["ActivityDate"], "2024-06-02", "{:?}", tasks(&env));
}
