//! Brevo ⇄ Salesforce end to end (seed 004): the `crmsync` binary with a
//! Brevo connection against the sandbox over loopback, and the connector
//! itself where a test needs its calls counted one by one.

use std::time::Duration;

use crmsync::connectors::vendors::brevo::{BrevoConfig, BrevoConnector, ListChoice};
use crmsync::connectors::{Connector, Write, WriteKey};
use crmsync::core::Secret;
use crmsync_sandbox::Sandbox;
use crmsync_sandbox::common::{Vendor, VendorApi};
use crmsync_sdk::types::{Record, System, Value as V};
use serde_json::{Value, json};

use crate::common::{Env, all_selection, crmsync, crmsync_with};

const LIST: &str = "Salesforce";

async fn start(seed: Value, connection: Value) -> Env {
    Env::start_vendor("brevo", seed, all_selection(), connection, false).await
}

async fn run(env: &Env) -> Value {
    let out = crmsync(env, &["run", "--once", "--json"]).await;
    assert!(out.ok(), "{out}");
    serde_json::from_str(&out.stdout).unwrap_or_else(|_| panic!("{out}"))
}

/// Writes (updates, creates) a run made on either side.
fn writes(run: &Value) -> u64 {
    let n = |side: &str, k: &str| run[side][k].as_u64().unwrap_or(0);
    n("outbound", "created") + n("outbound", "updated") + n("inbound", "created") + n("inbound", "updated")
}

fn state(env: &Env) -> Value {
    env.sandbox.brevo.state()
}

fn contacts(env: &Env) -> Vec<Value> {
    state(env)["contacts"].as_array().cloned().unwrap_or_default()
}

fn contact(env: &Env, email: &str) -> Value {
    contacts(env)
        .into_iter()
        .find(|c| c["email"] == email)
        .unwrap_or_else(|| panic!("no Brevo contact {email}"))
}

fn list(env: &Env) -> Value {
    let lists = state(env)["lists"].as_array().cloned().unwrap_or_default();
    lists.into_iter().find(|l| l["name"] == LIST).unwrap_or_else(|| panic!("no list {LIST}"))
}

fn sf(env: &Env, object: &str) -> Vec<Value> {
    env.sandbox.salesforce.state()["objects"][object].as_array().cloned().unwrap_or_default()
}

fn lead(env: &Env, email: &str) -> Value {
    sf(env, "Lead").into_iter().find(|l| l["Email"] == email).unwrap_or_else(|| panic!("no Lead {email}"))
}

fn calls(env: &Env) -> std::collections::BTreeMap<String, u64> {
    env.sandbox.ctx(Vendor::Brevo).telemetry.by_endpoint()
}

/// Calls that change something in Brevo.
fn brevo_writes(env: &Env) -> u64 {
    calls(env).iter().filter(|(e, _)| !e.starts_with("GET ")).map(|(_, n)| n).sum()
}

/// A connector on the sandbox, pacing off, fast polls.
fn connector(sandbox: &Sandbox, list: ListChoice) -> BrevoConnector {
    let mut cfg = BrevoConfig::new(Secret::new(sandbox.credentials.brevo_api_key.clone()), list);
    cfg.api_url = format!("{}/v3", sandbox.brevo_url());
    cfg.requests_per_second = None;
    cfg.import_poll = Duration::from_millis(10);
    cfg.http = crate::connectors::common::fast_http();
    BrevoConnector::new(cfg).expect("connector")
}

/// An edit made in Brevo, as a Brevo user would (the sandbox's own API).
async fn edit_in_brevo(env: &Env, id: &Value, body: Value) {
    let r = reqwest::Client::new()
        .put(format!("{}/v3/contacts/{id}", env.sandbox.brevo_url()))
        .header("api-key", &env.sandbox.credentials.brevo_api_key)
        .json(&body)
        .send()
        .await
        .expect("edit");
    assert!(r.status().is_success(), "{}", r.status());
}

async fn edit_lead(env: &Env, email: &str, field: &str, value: V) {
    let (sf, _) = crate::common::connect(&env.sandbox, Default::default()).unwrap();
    let id = lead(env, email)["Id"].as_str().unwrap().to_string();
    let record = Record::new(System::Salesforce, "Lead").with(field, value);
    let out = sf.write("Lead", vec![Write::Upsert { key: WriteKey::Id(id), record }]).await.unwrap();
    assert!(out[0].is_ok(), "{out:?}");
}

fn person(first: &str, last: &str, email: &str) -> Value {
    json!({"FirstName": first, "LastName": last, "Company": "Acme", "Email": email})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brevo_connect_test_says_connected_or_brevos_own_refusal() {
    let env = start(json!({}), json!({})).await;
    let ok = crmsync(&env, &["connect", "test"]).await;
    assert!(ok.ok(), "{ok}");
    assert!(ok.stdout.contains("main: Brevo: Connected"), "{ok}");
    let wrong = "xkeysib-wrong-0123456789";
    let bad = crmsync_with(&env, &["connect", "test"], &[("BREVO_KEY", wrong)]).await;
    assert_eq!(bad.code, Some(1), "{bad}");
    assert!(bad.stdout.contains("main: Salesforce: Connected"), "{bad}");
    assert!(bad.stdout.contains("Brevo refused the credentials: unauthorized: Key not found"), "{bad}");
    assert!(!bad.to_string().contains(wrong), "the key leaked: {bad}");
    // A list id that does not exist is named.
    let missing = Env::start_vendor(
        "brevo",
        json!({}),
        all_selection(),
        json!({"brevo": {"list_name": null, "list_id": 99}}),
        false,
    )
    .await;
    let out = crmsync(&missing, &["connect", "test"]).await;
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stdout.contains("list 99 does not exist"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leads_and_contacts_join_the_list_with_their_attributes_and_an_idle_run_writes_nothing() {
    let seed = json!({"salesforce": {"generate": {"Lead": 12, "Contact": 8}, "records": {"Lead": [
        {"FirstName": "Ada", "LastName": "Lovelace", "Company": "Analytical Engines", "Email": "ada@example.com", "Phone": "+44 20 7946 0000"}
    ]}}});
    let env = start(seed, json!({})).await;
    let first = run(&env).await;
    assert_eq!(first["outbound"]["created"], 21, "{first}");
    assert_eq!(first["outbound"]["errors"], 0, "{first}");
    let list = list(&env);
    assert_eq!(list["contactIds"].as_array().map(Vec::len), Some(21), "every person on the list: {list}");
    let ada = contact(&env, "ada@example.com");
    assert_eq!(ada["attributes"]["FIRSTNAME"], "Ada", "{ada}");
    assert_eq!(ada["attributes"]["LASTNAME"], "Lovelace", "{ada}");
    assert_eq!(ada["attributes"]["COMPANY"], "Analytical Engines", "the attribute was created: {ada}");
    assert!(ada["attributes"]["SMS"].as_str().is_some_and(|s| s.ends_with("2079460000")), "{ada}");
    // The Brevo id is written back on the Lead.
    assert_eq!(lead(&env, "ada@example.com")["AC_Contact_Id__c"], ada["id"].to_string().as_str());
    let before = brevo_writes(&env);
    for _ in 0..2 {
        let idle = run(&env).await;
        assert_eq!(writes(&idle), 0, "{idle}");
        assert_eq!(idle["outbound"]["errors"], 0, "{idle}");
    }
    assert_eq!(brevo_writes(&env), before, "an idle run sends Brevo nothing: {:?}", calls(&env));
    let reads = calls(&env);
    assert!(
        env.sandbox.ctx(Vendor::Brevo).telemetry.log().iter().any(|e| e.endpoint == "GET /v3/contacts"
            && e.query.as_deref().is_some_and(|q| q.contains("modifiedSince"))),
        "incremental reads use modifiedSince: {reads:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_answered_204_still_links_the_brevo_id() {
    let seed = json!({
        "salesforce": {"records": {"Lead": [person("Bea", "Known", "bea@example.com")]}},
        "brevo": {"contacts": [{"id": 4242, "email": "bea@example.com", "attributes": {"FIRSTNAME": "B"}}]}
    });
    let env = start(seed, json!({})).await;
    let out = run(&env).await;
    assert_eq!(out["outbound"]["errors"], 0, "{out}");
    assert_eq!(lead(&env, "bea@example.com")["AC_Contact_Id__c"], "4242", "read back by email");
    let bea = contact(&env, "bea@example.com");
    assert_eq!(bea["attributes"]["FIRSTNAME"], "Bea");
    assert_eq!(contacts(&env).len(), 1, "no duplicate");
    let c = calls(&env);
    assert_eq!(c.get("POST /v3/contacts"), Some(&1), "{c:?}");
    assert!(c.get("GET /v3/contacts/{identifier}").is_some_and(|n| *n >= 1), "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_goes_through_imports_and_links_every_id() {
    let seed = json!({
        "salesforce": {"generate": {"Lead": 1500}},
        "brevo": {"contacts": [{"id": 7, "email": "gen-lead-3@example.com"}]}
    });
    let env = start(seed, json!({})).await;
    let out = run(&env).await;
    assert_eq!(out["outbound"]["errors"], 0, "{out}");
    assert_eq!(contacts(&env).len(), 1500);
    let c = calls(&env);
    assert_eq!(c.get("POST /v3/contacts/import"), Some(&2), "two imports of ≤ 1000: {c:?}");
    assert_eq!(c.get("POST /v3/contacts"), None, "{c:?}");
    let linked = sf(&env, "Lead").iter().filter(|l| l["AC_Contact_Id__c"].is_string()).count();
    assert_eq!(linked, 1500);
    assert_eq!(
        lead(&env, "gen-lead-3@example.com")["AC_Contact_Id__c"],
        "7",
        "the existing contact kept its id"
    );
    let total: u64 = c.values().sum();
    assert!(total < 40, "a backfill costs a few calls per thousand: {c:?}");
    let idle = run(&env).await;
    assert_eq!(writes(&idle), 0, "{idle}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brevo_edits_flow_back_and_blacklisted_contacts_opt_out_and_stay_blacklisted() {
    let seed = json!({"salesforce": {"records": {"Lead": [
        person("Ann", "Consent", "ann@example.com"), person("Bob", "Consent", "bob@example.com")
    ]}}});
    let env = start(seed, json!({})).await;
    run(&env).await;
    let ann = contact(&env, "ann@example.com");
    edit_in_brevo(&env, &ann["id"], json!({"attributes": {"FIRSTNAME": "Annie"}})).await;
    let bob = contact(&env, "bob@example.com");
    edit_in_brevo(&env, &bob["id"], json!({"emailBlacklisted": true})).await;
    let back = run(&env).await;
    assert_eq!(lead(&env, "ann@example.com")["FirstName"], "Annie", "{back}");
    assert_eq!(lead(&env, "bob@example.com")["HasOptedOutOfEmail"], true, "{back}");
    let idle = run(&env).await;
    assert_eq!(writes(&idle), 0, "{idle}");

    // Salesforce clears the opt-out and edits Bob: Brevo keeps him blacklisted.
    edit_lead(&env, "bob@example.com", "HasOptedOutOfEmail", V::Boolean(false)).await;
    edit_lead(&env, "bob@example.com", "FirstName", V::text("Robert")).await;
    run(&env).await;
    let bob = contact(&env, "bob@example.com");
    assert_eq!(bob["attributes"]["FIRSTNAME"], "Robert");
    assert_eq!(bob["emailBlacklisted"], true, "never re-enabled: {bob}");
    // Even an email change (which Brevo treats as a resubscription) keeps the blacklist.
    edit_lead(&env, "bob@example.com", "Email", V::text("robert@example.com")).await;
    run(&env).await;
    let robert = contact(&env, "robert@example.com");
    assert_eq!(robert["id"], bob["id"]);
    assert_eq!(robert["emailBlacklisted"], true, "{robert}");
    let idle = run(&env).await;
    assert_eq!(writes(&idle), 0, "{idle}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_created_in_brevo_reach_salesforce_only_when_the_connection_opts_in() {
    let seed = json!({"brevo": {
        "lists": [{"id": 5, "name": LIST}],
        "contacts": [{"email": "made-in-brevo@example.com", "listIds": [5],
                      "attributes": {"FIRSTNAME": "Made", "LASTNAME": "InBrevo"}}]
    }});
    let env = start(seed.clone(), json!({})).await;
    let out = run(&env).await;
    assert_eq!(out["inbound"]["created"], 0, "{out}");
    assert!(sf(&env, "Lead").is_empty());

    let section = |create: bool| {
        json!({"brevo": {"api_url": format!("{}/v3", env.sandbox.brevo_url()), "api_key": {"env": "BREVO_KEY"},
            "list_name": LIST, "create_in_salesforce": create, "import_poll_ms": 20, "requests_per_second": 0}})
    };
    let text = std::fs::read_to_string(&env.config).unwrap();
    let mut config: toml::Table = text.parse().unwrap();
    config["connections"]["main"]["brevo"] = toml::Value::try_from(&section(true)["brevo"]).unwrap();
    std::fs::write(&env.config, toml::to_string(&config).unwrap()).unwrap();
    // The whole list is read again from the start of a fresh connection's state.
    std::fs::remove_dir_all(&env.data).unwrap();
    let out = run(&env).await;
    assert_eq!(out["inbound"]["created"], 1, "{out}");
    let made = lead(&env, "made-in-brevo@example.com");
    assert_eq!(made["LastName"], "InBrevo", "{made}");

    // Opted out, a selector rule that creates is a contradiction named at load.
    config["connections"]["main"]["brevo"] = toml::Value::try_from(&section(false)["brevo"]).unwrap();
    let selector = config["connections"]["main"]["rules"]["selector"]["config"].as_table_mut().unwrap();
    selector.insert("inbound".into(), toml::Value::try_from(json!({"rule": {"all": []}})).unwrap());
    std::fs::write(&env.config, toml::to_string(&config).unwrap()).unwrap();
    let refused = crmsync(&env, &["status"]).await;
    assert_eq!(refused.code, Some(2), "{refused}");
    assert!(refused.stderr.contains("connections.main.brevo.create_in_salesforce"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_waits_for_the_rate_limit_reset_and_pacing_keeps_under_the_limit() {
    let sandbox = crate::connectors::common::sandbox(json!({}), true).await;
    let base = sandbox.brevo_url();
    let c = connector(&sandbox, ListChoice::Name(LIST.into()));
    c.connect().await.expect("connects");
    crate::connectors::common::admin_post(
        &base,
        "faults",
        json!({"endpoint": "GET /v3/contacts", "times": 1, "fault": {"kind": "status", "status": 429}}),
    )
    .await;
    c.list_ids("contact", None, 10).await.expect("after a 429");
    let log = crate::connectors::common::admin(&base, "log").await;
    let entries: Vec<&Value> =
        log.as_array().unwrap().iter().filter(|e| e["path"] == "/v3/contacts").collect();
    let at = |e: &Value| chrono::DateTime::parse_from_rfc3339(e["at"].as_str().unwrap()).unwrap();
    assert_eq!((entries[0]["status"].as_u64(), entries[1]["status"].as_u64()), (Some(429), Some(200)));
    assert!(
        at(entries[1]) - at(entries[0]) >= chrono::Duration::milliseconds(900),
        "x-sib-ratelimit-reset waited out"
    );

    // Paced at 10/s, 35 calls meet no 429.
    let mut cfg = BrevoConfig::new(
        Secret::new(sandbox.credentials.brevo_api_key.clone()),
        ListChoice::Name(LIST.into()),
    );
    cfg.api_url = format!("{base}/v3");
    cfg.requests_per_second = Some(10.0);
    let paced = BrevoConnector::new(cfg).expect("connector");
    crate::connectors::common::admin_post(&base, "reset", json!({})).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..35 {
        paced.list_ids("contact", None, 10).await.expect("ids");
    }
    let statuses = crate::connectors::common::statuses(&base).await;
    assert!(statuses.iter().all(|s| *s < 300), "no 429: {statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_by_id_go_a_hundred_a_batch_and_a_refused_batch_goes_one_by_one() {
    let seeded: Vec<Value> = (1..=250)
        .map(|i| json!({"id": i, "email": format!("p{i}@example.com"), "attributes": {"FIRSTNAME": "Old"}}))
        .collect();
    let sandbox = crate::connectors::common::sandbox(json!({"brevo": {"contacts": seeded}}), false).await;
    let c = connector(&sandbox, ListChoice::Name(LIST.into()));
    let update = |id: u64, first: &str| Write::Upsert {
        key: WriteKey::Id(id.to_string()),
        record: Record::new(System::Brevo, "contact").with("FIRSTNAME", first),
    };
    // 250 updates, the 150th of a contact Brevo does not have; one email change.
    let mut writes: Vec<Write> =
        (1..=250).map(|i| update(if i == 150 { 9_999 } else { i }, &format!("New{i}"))).collect();
    writes.push(Write::Upsert {
        key: WriteKey::Id("7".into()),
        record: Record::new(System::Brevo, "contact").with("email", "seven@example.com"),
    });
    let out = c.write("contact", writes).await.expect("write");
    for (i, r) in out.iter().enumerate().take(250) {
        let i = i as u64 + 1;
        match r {
            Ok(w) => assert!(i != 150 && w.id == i.to_string() && !w.created, "{i}: {w:?}"),
            Err(e) => assert!(i == 150 && e.message.contains("not"), "{i}: {e:?}"),
        }
    }
    assert!(out[250].is_ok(), "{:?}", out[250]);
    let state = sandbox.brevo.state();
    let by_id = |id: u64| {
        state["contacts"].as_array().unwrap().iter().find(|c| c["id"] == id).cloned().expect("contact")
    };
    for i in [1, 100, 101, 149, 151, 200, 201, 250] {
        assert_eq!(by_id(i)["attributes"]["FIRSTNAME"], format!("New{i}"), "{i}");
    }
    assert_eq!(by_id(7)["email"], "seven@example.com");
    let calls = sandbox.ctx(Vendor::Brevo).telemetry.by_endpoint();
    // Batches of 100, 100 and 50; the second is refused (404 for its unknown
    // contact) and its 100 go one by one, beside the email change.
    assert_eq!(calls.get("POST /v3/contacts/batch"), Some(&3), "{calls:?}");
    assert_eq!(calls.get("PUT /v3/contacts/{identifier}"), Some(&101), "{calls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_behind_a_long_change_scan_is_read_by_the_next_one() {
    let t0 =
        chrono::DateTime::parse_from_rfc3339("2024-06-01T10:00:00Z").expect("t").with_timezone(&chrono::Utc);
    let seeded: Vec<Value> = (1..=2500)
        .map(|i| {
            json!({"id": i, "email": format!("p{i}@example.com"), "listIds": [7],
                   "createdAt": "2024-06-01T08:00:00Z", "modifiedAt": "2024-06-01T09:00:00Z"})
        })
        .collect();
    let sandbox = crate::connectors::common::sandbox(
        json!({"brevo": {"lists": [{"id": 7, "name": LIST}], "contacts": seeded}}),
        false,
    )
    .await;
    sandbox.clock.set(t0);
    let c = connector(&sandbox, ListChoice::Id(7));
    let drain = |mut since: Option<crmsync::connectors::Cursor>| {
        let c = &c;
        async move {
            let mut ids = Vec::new();
            loop {
                let ch = c.fetch_changes("contact", since.as_ref(), 1000).await.expect("changes");
                ids.extend(ch.records.iter().filter_map(|r| r.id.clone()));
                since = ch.next;
                if !ch.more {
                    return (ids, since);
                }
            }
        }
    };
    let (all, cursor) = drain(None).await;
    assert_eq!(all.len(), 2500);
    let edit = |id: &str, first: &str| Write::Upsert {
        key: WriteKey::Id(id.into()),
        record: Record::new(System::Brevo, "contact").with("FIRSTNAME", first),
    };
    // Every contact edited, so the next scan spans pages; it takes an hour:
    // half an hour in, a contact it has passed is edited again; half an hour
    // later, one it has not reached yet.
    sandbox.clock.advance(Duration::from_secs(60));
    let all: Vec<Write> = (1..=2500).map(|i| edit(&i.to_string(), "Edited")).collect();
    assert!(c.write("contact", all).await.expect("w").iter().all(|r| r.is_ok()));
    sandbox.clock.advance(Duration::from_secs(60));
    let page = c.fetch_changes("contact", cursor.as_ref(), 1000).await.expect("page");
    assert!(page.more, "a scan of 2,500 edits spans pages");
    sandbox.clock.advance(Duration::from_secs(30 * 60));
    assert!(c.write("contact", vec![edit("5", "Again")]).await.expect("w")[0].is_ok(), "behind the scan");
    sandbox.clock.advance(Duration::from_secs(30 * 60));
    assert!(c.write("contact", vec![edit("2400", "Again")]).await.expect("w")[0].is_ok(), "ahead of it");
    let (rest, cursor) = drain(page.next).await;
    assert!(rest.contains(&"2400".to_string()) && !rest.contains(&"5".to_string()), "{}", rest.len());
    sandbox.clock.advance(Duration::from_secs(60));
    let (next, _) = drain(cursor).await;
    assert_eq!(next, vec!["5".to_string(), "2400".to_string()], "the edit behind the scan is not lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attribute_type_round_trips_through_the_connector() {
    let sandbox = crate::connectors::common::sandbox(
        json!({"brevo": {"attributes": [
            {"name": "VIP", "type": "boolean"},
            {"name": "SCORE", "type": "float"},
            {"name": "BIRTHDAY", "type": "date"},
            {"name": "TIER", "category": "category", "enumeration": [{"value": 1, "label": "Gold"}, {"value": 2, "label": "Silver"}]},
            {"name": "TOPICS", "type": "multiple-choice", "multiCategoryOptions": ["news", "offers"]}
        ]}}),
        false,
    )
    .await;
    let c = connector(&sandbox, ListChoice::Name(LIST.into()));
    let date = chrono::NaiveDate::from_ymd_opt(1990, 9, 25).unwrap();
    let rec = Record::new(System::Brevo, "contact")
        .with("email", "typed@example.com")
        .with("FIRSTNAME", "Ty")
        .with("VIP", V::Boolean(true))
        .with("SCORE", V::Number(12.5))
        .with("BIRTHDAY", V::Date(date))
        .with("TIER", "Silver")
        .with("TOPICS", V::TextList(vec!["news".into(), "offers".into()]))
        .with("NEWATTR", "made by crmsync");
    let out = c
        .write(
            "contact",
            vec![Write::Upsert { key: WriteKey::Email("typed@example.com".into()), record: rec.clone() }],
        )
        .await
        .expect("write");
    let id = out[0].as_ref().expect("written").id.clone();
    let got = c.get("contact", std::slice::from_ref(&id)).await.expect("get").pop().expect("one");
    for (k, v) in &rec.fields {
        assert_eq!(got.get(k), Some(v), "{k}");
    }
    // What Brevo would drop silently is that record's error, the others go on.
    let bad = |field: &str, v: V| Write::Upsert {
        key: WriteKey::Email("typed@example.com".into()),
        record: Record::new(System::Brevo, "contact").with("email", "typed@example.com").with(field, v),
    };
    let out = c
        .write(
            "contact",
            vec![
                bad("TIER", V::text("Platinum")),
                bad("BIRTHDAY", V::text("25/09/1990")),
                bad("FIRSTNAME", V::text("Tyler")),
            ],
        )
        .await
        .expect("write");
    assert!(out[0].as_ref().is_err_and(|e| e.message.contains("Platinum")), "{out:?}");
    assert!(out[1].is_err(), "{out:?}");
    assert_eq!(out[2].as_ref().map(|w| w.id.clone()).ok(), Some(id), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_against_brevo() {
    let (_dir, stdout) = crate::common::demo(&["--marketing", "brevo"]).await;
    assert!(stdout.contains("Salesforce ⇄ Brevo"), "{stdout}");
    assert!(stdout.contains("the Lead in Salesforce now has FirstName = \"Augusta\""), "{stdout}");
}

/// The inbound errors kept for the operator, as `status --json` lists them.
async fn recent_errors(env: &Env) -> String {
    let status = crmsync(env, &["status", "--json"]).await;
    assert!(status.ok(), "{status}");
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    status[0]["recent_errors"].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_rules_on_phones_names_and_first_names_hold() {
    let mut short = person("Sam", "Short", "short@example.com");
    short["Phone"] = json!("555");
    let mut ann = person("Ann", "Phone", "ann@example.com");
    ann["Phone"] = json!("+33 6 12 34 56 78");
    let seed =
        json!({"salesforce": {"records": {"Lead": [ann, short, person("Lia", "Long", "lia@example.com")]}}});
    let env = start(seed, json!({})).await;
    let first = run(&env).await;
    assert_eq!(
        (first["outbound"]["created"].as_u64(), first["outbound"]["errors"].as_u64()),
        (Some(3), Some(0)),
        "{first}"
    );
    // A phone needs 6 to 16 digits: the short one is not sent, the rest of the Lead is.
    let s = contact(&env, "short@example.com");
    assert_eq!(
        (s["attributes"]["SMS"].clone(), s["attributes"]["LASTNAME"].clone()),
        (Value::Null, json!("Short")),
        "{s}"
    );
    assert_eq!(contact(&env, "ann@example.com")["attributes"]["SMS"], "33612345678");

    // An emptied phone in Salesforce is not pushed: Brevo keeps the number.
    edit_lead(&env, "ann@example.com", "Phone", V::Null).await;
    edit_lead(&env, "ann@example.com", "FirstName", V::text("Anne")).await;
    run(&env).await;
    let a = contact(&env, "ann@example.com");
    assert_eq!(
        (a["attributes"]["FIRSTNAME"].as_str(), a["attributes"]["SMS"].as_str()),
        (Some("Anne"), Some("33612345678")),
        "{a}"
    );

    // A Brevo edit flows back only with Name and Company non-empty; a first
    // name over 40 characters is the record's error, never truncated.
    let lia = contact(&env, "lia@example.com");
    edit_in_brevo(&env, &lia["id"], json!({"attributes": {"FIRSTNAME": "L".repeat(41)}})).await;
    let sam = contact(&env, "short@example.com");
    edit_in_brevo(&env, &sam["id"], json!({"attributes": {"LASTNAME": "", "FIRSTNAME": "Samuel"}})).await;
    let back = run(&env).await;
    assert_eq!(back["inbound"]["errors"], 2, "{back}");
    assert_eq!(lead(&env, "lia@example.com")["FirstName"], "Lia", "not truncated, not written");
    let sam_lead = lead(&env, "short@example.com");
    assert_eq!(
        (sam_lead["FirstName"].as_str(), sam_lead["LastName"].as_str()),
        (Some("Sam"), Some("Short")),
        "{sam_lead}"
    );
    let errors = recent_errors(&env).await;
    assert!(errors.contains("FirstName"), "{errors}");
    assert!(errors.contains("LastName is required"), "{errors}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapping_that_sends_neither_email_nor_sms_is_refused_at_load() {
    let plugins = crate::common::plugins_dir();
    let rules = |fields: Value| {
        json!({
            "selector": {"plugin": plugins.join("selection.wasm"), "config": all_selection()},
            "mapper": {"plugin": plugins.join("standard-mapping.wasm"),
                       "config": {"marketing": "brevo", "defaults": false, "fields": fields}},
            "resolver": {"plugin": plugins.join("field-policy-resolver.wasm"), "config": {}},
        })
    };
    let names_only = json!([{"salesforce": "FirstName", "marketing": "FIRSTNAME"}, {"salesforce": "LastName", "marketing": "LASTNAME"}]);
    let env = start(json!({}), json!({"rules": rules(names_only)})).await;
    let out = crmsync(&env, &["status"]).await;
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("connections.main.rules.mapper.config.fields"), "{out}");
    assert!(out.stderr.contains("must send email or SMS"), "{out}");
    let sms_only = json!([{"salesforce": "MobilePhone", "marketing": "SMS", "type": "sms"}]);
    let env = start(json!({}), json!({"rules": rules(sms_only)})).await;
    let out = crmsync(&env, &["status"]).await;
    assert!(out.ok(), "{out}");
}

/// Sets keys of the connection's table in the config file (`brevo.x` for the Brevo section).
fn set_config(env: &Env, entries: &[(&str, toml::Value)]) {
    let mut config: toml::Table = std::fs::read_to_string(&env.config).unwrap().parse().unwrap();
    let main = config["connections"]["main"].as_table_mut().unwrap();
    for (key, value) in entries {
        match key.split_once('.') {
            Some((section, k)) => {
                main[section].as_table_mut().unwrap().insert(k.to_string(), value.clone());
            }
            None => {
                main.insert(key.to_string(), value.clone());
            }
        }
    }
    std::fs::write(&env.config, toml::to_string(&config).unwrap()).unwrap();
}

async fn status(env: &Env) -> Value {
    let out = crmsync(env, &["status", "--json"]).await;
    assert!(out.ok(), "{out}");
    serde_json::from_str::<Value>(&out.stdout).unwrap()[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draft_waits_for_activation_and_the_monthly_task_quota_warns_then_pauses() {
    let seed = json!({"salesforce": {"generate": {"Lead": 8}}});
    let env = start(seed, json!({"active": false})).await;
    set_config(&env, &[("brevo.monthly_tasks", toml::Value::Integer(10))]);
    let draft = crmsync(&env, &["run", "--once"]).await;
    assert!(draft.ok(), "{draft}");
    assert!(draft.stdout.contains("main: paused (or a draft), not run"), "{draft}");
    assert!(contacts(&env).is_empty());
    assert_eq!(status(&env).await["active"], false);

    let on = crmsync(&env, &["connection", "activate", "main"]).await;
    assert!(on.ok(), "{on}");
    let first = run(&env).await;
    assert_eq!(first["outbound"]["created"], 8, "{first}");
    let s = status(&env).await;
    assert_eq!(
        (s["active"].clone(), s["tasks"]["used"].clone(), s["tasks"]["state"].clone()),
        (json!(true), json!(8), json!("warning")),
        "{s}"
    );
    let human = crmsync(&env, &["status"]).await;
    assert!(human.stdout.contains("monthly tasks: 8/10 (80 %"), "{human}");
    assert!(human.stdout.contains("warning: 80 % used"), "{human}");

    for i in 1..=3 {
        edit_lead(&env, &format!("gen-lead-{i}@example.com"), "FirstName", V::text("Edited")).await;
    }
    let spent = run(&env).await;
    assert_eq!(spent["outbound"]["updated"], 3, "{spent}");
    assert_eq!(status(&env).await["tasks"]["state"], "paused");

    // Paused: nothing is written until next month.
    edit_lead(&env, "gen-lead-4@example.com", "FirstName", V::text("Waits")).await;
    let before = brevo_writes(&env);
    let paused = crmsync(&env, &["run", "--once", "--json"]).await;
    assert_eq!(paused.code, Some(1), "{paused}");
    assert!(paused.stdout.contains("paused: this month's task quota is spent (11/10 tasks)"), "{paused}");
    assert_eq!(brevo_writes(&env), before);
    assert_ne!(contact(&env, "gen-lead-4@example.com")["attributes"]["FIRSTNAME"], "Waits");

    // A higher quota resumes at once; a draft again stops running.
    set_config(&env, &[("brevo.monthly_tasks", toml::Value::Integer(100_000))]);
    let resumed = run(&env).await;
    assert_eq!(resumed["outbound"]["updated"], 1, "{resumed}");
    assert_eq!(contact(&env, "gen-lead-4@example.com")["attributes"]["FIRSTNAME"], "Waits");
    let off = crmsync(&env, &["connection", "deactivate", "main"]).await;
    assert!(off.ok(), "{off}");
    assert_eq!(status(&env).await["active"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_formula_field_cannot_be_mapped_to_be_written() {
    let seed = json!({"salesforce": {
        "fields": {"Lead": [{"name": "Score__c", "type": "double", "formula": "NumberOfEmployees * 2"}]},
        "records": {"Lead": [person("Fay", "Formula", "fay@example.com")]}
    }});
    let plugins = crate::common::plugins_dir();
    let rules = |direction: &str| {
        json!({
            "selector": {"plugin": plugins.join("selection.wasm"), "config": all_selection()},
            "mapper": {"plugin": plugins.join("standard-mapping.wasm"), "config": {"marketing": "brevo", "fields": [
                {"salesforce": "Score__c", "marketing": "SCORE", "type": "number", "objects": ["Lead"], "direction": direction}
            ]}},
            "resolver": {"plugin": plugins.join("field-policy-resolver.wasm"), "config": {}},
        })
    };
    let env = start(seed.clone(), json!({"rules": rules("both")})).await;
    let out = crmsync(&env, &["run", "--once"]).await;
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stdout.contains("connections.main.rules.mapper.config.fields[0].salesforce"), "{out}");
    assert!(out.stdout.contains("Lead.Score__c is a formula field"), "{out}");
    assert!(contacts(&env).is_empty(), "nothing synced");
    let env = start(seed, json!({"rules": rules("to-marketing")})).await;
    let ok = run(&env).await;
    assert_eq!(ok["outbound"]["created"], 1, "read one way, a formula field is fine: {ok}");
}

/// Seed rule: deleting in Brevo a contact tied to a Salesforce Case is not
/// propagated (Salesforce would refuse that deletion anyway); the others
/// follow the `to_salesforce` policy. Deletions are found by reconciliation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_brevo_deletion_of_a_contact_with_a_salesforce_case_is_not_propagated() {
    let seed = json!({"salesforce": {"generate": {"Contact": 3}}});
    let env = start(seed, json!({"objects": ["Contact"], "deletes": {"to_salesforce": "delete"}})).await;
    assert_eq!(run(&env).await["outbound"]["created"], 3);
    let (sf, _) = crate::common::connect(&env.sandbox, Default::default()).unwrap();
    let emails: Vec<String> = (0..3).map(|i| format!("gen-contact-{i}@example.com")).collect();
    let ids = sf.find_by_email("Contact", &emails).await.unwrap();
    let id = |i: usize| ids[&emails[i]][0].clone();
    let case =
        Record::new(System::Salesforce, "Case").with("Subject", "Broken widget").with("ContactId", id(0));
    let made = sf
        .write(
            "Case",
            vec![Write::Upsert { key: WriteKey::New { idempotency_key: "case-1".into() }, record: case }],
        )
        .await
        .unwrap();
    assert!(made[0].is_ok(), "{made:?}");
    // As in Salesforce, a Contact with a Case cannot be deleted.
    let refused = sf.write("Contact", vec![Write::Delete { id: id(0) }]).await.unwrap();
    assert!(format!("{refused:?}").contains("DELETE_FAILED"), "{refused:?}");

    // Contacts 0 (with a Case) and 1 are deleted in Brevo.
    let brevo = crate::common::marketing_connector(&env);
    let gone: Vec<Write> =
        [0, 1].iter().map(|&i| Write::Delete { id: contact(&env, &emails[i])["id"].to_string() }).collect();
    let deleted = brevo.write("contact", gone).await.unwrap();
    assert!(deleted.iter().all(Result::is_ok), "{deleted:?}");

    let out = crmsync(&env, &["run", "--once", "--reconcile", "--json"]).await;
    assert!(out.ok(), "{out}");
    let record: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(record["outbound"]["deleted"], 1, "{record}");
    assert_eq!(record["outbound"]["errors"], 0, "{record}");
    let live =
        |i: usize| env.sandbox.salesforce.record("Contact", &id(i)).is_some_and(|c| c["IsDeleted"] == false);
    assert!(live(0), "the Contact with a Case stays");
    assert!(!live(1), "the other deletion is propagated");
    assert!(live(2));
    // Its link is retired: the next reconciliation neither deletes it nor reports it again.
    let again = crmsync(&env, &["run", "--once", "--reconcile", "--json"]).await;
    let again: Value = serde_json::from_str(&again.stdout).unwrap_or_else(|_| panic!("{again}"));
    assert_eq!(again["outbound"]["deleted"], 0, "{again}");
    assert!(live(0));
    let status = crmsync(&env, &["status", "--json"]).await;
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status[0]["links"], 1, "{status}");
    assert!(status.to_string().contains("kept-for-case"), "the record says why: {status}");
}
