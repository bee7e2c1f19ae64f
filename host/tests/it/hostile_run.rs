//! A hostile rule on the real run path (issue: a rule that traps, panics or
//! only prints must not kill the run): `crmsync run --once` and `serve` with
//! the hostile test plugin as the connection's mapper. Each bad record gets
//! its error (plugin, version, role, the guest's message); the others sync;
//! what the guest prints reaches the log.

use crmsync_sandbox::common::VendorApi;
use serde_json::{Value, json};

use crate::common::{ADMIN_TOKEN, Env, Served, ac_contacts, all_selection, crmsync_with, plugins_dir};

fn seed() -> Value {
    let lead = |last: &str, email: &str| json!({"FirstName": "H", "LastName": last, "Company": "Acme", "Email": email});
    json!({"salesforce": {
        "generate": {"Lead": 3},
        "records": {"Lead": [
            lead("attack:panic", "panic@example.com"),
            lead("attack:print", "print@example.com"),
            lead("attack:alloc", "alloc@example.com"),
        ]}
    }})
}

async fn hostile_env() -> Env {
    let plugins = plugins_dir();
    let rules = json!({
        "selector": {"plugin": plugins.join("selection.wasm"), "config": all_selection()},
        "mapper": {"plugin": plugins.join("hostile.wasm")},
        "resolver": {"plugin": plugins.join("field-policy-resolver.wasm"), "config": {}},
    });
    Env::start(seed(), all_selection(), json!({"rules": rules})).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_or_printing_rule_fails_only_its_records_in_run_once() {
    let env = hostile_env().await;
    let run = crmsync_with(&env, &["run", "--once", "--json"], &[("RUST_LOG", "info")]).await;
    assert!(run.ok(), "{run}");
    let record: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|_| panic!("{run}"));
    assert_eq!(record["error"], Value::Null, "{record}");
    assert_eq!(record["outbound"]["created"], 4, "3 plain Leads and the printing one: {record}");
    assert_eq!(record["outbound"]["errors"], 2, "{record}");
    let emails: Vec<String> =
        ac_contacts(&env).iter().filter_map(|c| c["email"].as_str().map(String::from)).collect();
    assert!(emails.contains(&"print@example.com".to_string()), "{emails:?}");
    assert!(!emails.iter().any(|e| e == "panic@example.com" || e == "alloc@example.com"), "{emails:?}");
    assert!(run.stderr.contains("hostile plugin printing to stdout"), "guest output reaches the log:\n{run}");
    assert!(!run.stderr.contains("Cannot start a runtime"), "{run}");

    let status = crmsync_with(&env, &["status", "--json"], &[]).await;
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    let errors = status[0]["recent_errors"].as_array().cloned().unwrap_or_default();
    let panic = errors.iter().find(|e| e["message"].as_str().unwrap_or("").contains("panicked on purpose"));
    let panic = panic.unwrap_or_else(|| panic!("the panic is kept on its record: {errors:?}"));
    let message = panic["message"].as_str().unwrap();
    assert!(
        message.contains("hostile@") && message.contains("mapper"),
        "names plugin, version, role: {message}"
    );
    assert!(
        errors.iter().any(|e| e["message"].as_str().unwrap_or("").contains("memory limit")),
        "{errors:?}"
    );
    // The bad records' status says why, on the Salesforce record.
    let leads = env.sandbox.salesforce.state()["objects"]["Lead"].as_array().cloned().unwrap();
    let bad = leads.iter().find(|l| l["Email"] == "panic@example.com").unwrap();
    assert!(bad["AC_Sync_Status__c"].as_str().unwrap_or("").starts_with("Error:"), "{bad}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_serve_a_hostile_rule_neither_kills_the_worker_nor_hides_the_errors() {
    let env = hostile_env().await;
    let server = Served::start(&env).await;
    let http = reqwest::Client::new();
    for round in 0..2 {
        let url = format!("{}/connections/main/run?wait=true", server.base);
        let reply = http.post(&url).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
        assert_eq!(reply.status(), 200, "round {round}");
        let run: Value = reply.json().await.unwrap();
        assert_eq!(run["error"], Value::Null, "round {round}: {run}");
        if round == 0 {
            assert_eq!(run["outbound"]["errors"], 2, "{run}");
            // What the rule printed during this run is kept with its record.
            let log = run["plugin_log"].as_array().cloned().unwrap_or_default();
            let printed = log
                .iter()
                .find(|l| l["message"].as_str().unwrap_or("").contains("hostile plugin printing to stdout"));
            let printed = printed.unwrap_or_else(|| panic!("the run's plugin log: {run}"));
            assert!(printed["plugin"].as_str().unwrap().starts_with("hostile@"), "{printed}");
            assert_eq!(printed["level"], "output", "{printed}");
            let runs = server.get("/connections/main/runs?limit=1").await;
            assert_eq!(runs["runs"][0]["plugin_log"], run["plugin_log"], "stored with the run: {runs}");
        }
    }
    let errors = server.get("/connections/main/errors").await;
    let text = errors.to_string();
    assert!(text.contains("panicked on purpose"), "{text}");
    // Paged and filtered, newest first.
    let page = |query: &'static str| {
        let url = format!("{}/connections/main/errors{query}", server.base);
        async move { reqwest::Client::new().get(url).bearer_auth(ADMIN_TOKEN).send().await.unwrap() }
    };
    let total = errors["total"].as_u64().unwrap();
    assert!(total >= 2 && errors["errors"].as_array().unwrap().len() as u64 == total.min(100), "{errors}");
    let one: Value = page("?limit=1").await.json().await.unwrap();
    assert_eq!(
        (one["total"].as_u64(), one["errors"].as_array().map(Vec::len)),
        (Some(total), Some(1)),
        "{one}"
    );
    let second: Value = page("?limit=1&offset=1").await.json().await.unwrap();
    assert!(
        second["errors"][0]["at"].as_str() <= one["errors"][0]["at"].as_str(),
        "newest first: {one} {second}"
    );
    let none: Value = page("?code=no-such-code").await.json().await.unwrap();
    assert_eq!(none["total"], 0, "{none}");
    assert_eq!(page("?limit=5000").await.status(), 400);
    assert!(server.terminate().await.success());
}

/// A new rule version uploaded while `serve` runs: a hostile one (its own
/// fixture spins forever) and a wrong-contract one are refused and the
/// running version keeps serving; a good one is installed, activated and
/// used by the next run — no restart. The standard token may list, not upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_are_uploaded_validated_and_activated_through_the_admin_api() {
    use crate::common::STANDARD_TOKEN;
    use reqwest::multipart::{Form, Part};
    let env = Env::start(json!({"salesforce": {"generate": {"Lead": 4}}}), all_selection(), json!({})).await;
    let server = Served::start(&env).await;
    // A refused upload is answered before its body is read, and the server
    // then closes that connection: a new connection per request, so the
    // next upload never lands on a closed one.
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let plugins = plugins_dir();
    let form = |name: &str, file: &str, fixtures: Option<String>| {
        let bytes = std::fs::read(plugins.join(file)).unwrap();
        let mut form = Form::new()
            .text("name", name.to_string())
            .text("version", "2.0.0")
            .part("component", Part::bytes(bytes).file_name(file.to_string()))
            .text("activate", "main")
            .text("role", "mapper");
        if let Some(f) = fixtures {
            form = form.text("fixtures", f);
        }
        form
    };
    let upload = |form: Form, token: &'static str| {
        http.post(format!("{}/plugins", server.base)).bearer_auth(token).multipart(form).send()
    };
    let before = server.active_plugin("mapper").await;
    assert!(before.starts_with("standard-mapping@"), "{before}");

    // (A small form: the role is checked before the body is read, so a large
    // one could still be on its way when the 403 closes the connection.)
    let small = Form::new().text("name", "mapping").text("version", "2.0.0");
    let forbidden = upload(small, STANDARD_TOKEN).await.unwrap();
    assert_eq!(forbidden.status(), 403);

    let spins = r#"{"name":"spins","input":{"system":"salesforce","object":"Lead","id":"00Q1","fields":{"LastName":"attack:loop","Email":"a@example.com"}},"expect":{"ok":{"system":"activecampaign","object":"contact","fields":{}}}}"#;
    let hostile = upload(form("evil", "hostile.wasm", Some(spins.into())), ADMIN_TOKEN).await.unwrap();
    assert_eq!(hostile.status(), 422);
    let why: Value = hostile.json().await.unwrap();
    assert!(why["error"].as_str().is_some_and(|e| e.contains("spins")), "{why}");
    let wrong = upload(form("wrong", "wrong-contract.wasm", None), ADMIN_TOKEN).await.unwrap();
    assert_eq!(wrong.status(), 422, "{}", wrong.text().await.unwrap());
    assert_eq!(server.active_plugin("mapper").await, before, "the running version keeps serving");

    let fixtures = std::fs::read_to_string(plugins.join("standard-mapping.fixtures.jsonl")).unwrap();
    let good = upload(form("mapping", "standard-mapping.wasm", Some(fixtures)), ADMIN_TOKEN).await.unwrap();
    assert_eq!(good.status(), 201);
    let good: Value = good.json().await.unwrap();
    assert!(good["fixtures_passed"].as_u64().unwrap() > 10, "{good}");
    assert_eq!(
        good["active"]["plugin"].as_str().map(|p| p.starts_with("mapping@2.0.0")),
        Some(true),
        "{good}"
    );
    assert!(server.active_plugin("mapper").await.starts_with("mapping@2.0.0"));

    let run = server.run_and_wait().await;
    assert_eq!(
        (run["outbound"]["created"].as_u64(), run["outbound"]["errors"].as_u64()),
        (Some(4), Some(0)),
        "{run}"
    );
    assert_eq!(ac_contacts(&env).len(), 4);
    assert!(server.terminate().await.success());
}
