//! The web dashboard end to end in headless Chromium (`tests/browser/`,
//! Playwright driving Debian's `chromium`; `scripts/setup-browser.sh`
//! installs both): sign in with a token, look a record up and see its error,
//! roll a plugin back — refused with the standard token, done with the admin
//! one. Screenshots go to a temporary folder, or to `CRMSYNC_SCREENSHOTS`
//! (`docs/screenshots` to refresh the docs' pictures).

use std::path::PathBuf;

use crmsync_sandbox::common::VendorApi;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::common::{ADMIN_TOKEN, Env, STANDARD_TOKEN, Served, all_selection, plugins_dir};

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/browser")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_records_error_and_rolls_back_a_plugin_only_for_the_admin() {
    let browser = browser_dir();
    assert!(
        browser.join("node_modules/playwright-core").is_dir()
            && std::path::Path::new("/usr/bin/chromium").exists(),
        "the browser test needs Chromium and Playwright: run ./scripts/setup-browser.sh"
    );
    let plugins = plugins_dir();
    let lead = |last: &str, email: &str| json!({"FirstName": "H", "LastName": last, "Company": "Acme", "Email": email});
    let seed = json!({"salesforce": {
        "generate": {"Lead": 3},
        "records": {"Lead": [lead("attack:panic", "panic@example.com")]}
    }});
    let rules = json!({
        "selector": {"plugin": plugins.join("selection.wasm"), "config": all_selection()},
        "mapper": {"plugin": plugins.join("hostile.wasm")},
        "resolver": {"plugin": plugins.join("field-policy-resolver.wasm"), "config": {}},
    });
    let env = Env::start(seed, all_selection(), json!({"rules": rules})).await;
    let server = Served::start(&env).await;

    // One run with the hostile mapper: the panicking record gets its error.
    let run: Value = server
        .call(reqwest::Method::POST, "/connections/main/run?wait=true", ADMIN_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(run["outbound"]["errors"], 1, "{run}");
    let leads = env.sandbox.salesforce.state()["objects"]["Lead"].as_array().cloned().unwrap();
    let bad =
        leads.iter().find(|l| l["Email"] == "panic@example.com").unwrap()["Id"].as_str().unwrap().to_string();
    let hostile = server.active_plugin("mapper").await;
    assert!(hostile.starts_with("hostile@"), "{hostile}");

    // A second mapper version, so there is something to roll back.
    let form = Form::new()
        .text("name", "mapping")
        .text("version", "2.0.0")
        .part(
            "component",
            Part::bytes(std::fs::read(plugins.join("standard-mapping.wasm")).unwrap()).file_name("m.wasm"),
        )
        .text("fixtures", std::fs::read_to_string(plugins.join("standard-mapping.fixtures.jsonl")).unwrap())
        .text("activate", "main")
        .text("role", "mapper");
    let uploaded = reqwest::Client::new()
        .post(format!("{}/plugins", server.base))
        .bearer_auth(ADMIN_TOKEN)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 201, "{}", uploaded.text().await.unwrap());
    assert_eq!(server.active_plugin("mapper").await, "mapping@2.0.0");

    let kept = tempfile::tempdir().unwrap();
    let shots =
        std::env::var("CRMSYNC_SCREENSHOTS").map(PathBuf::from).unwrap_or_else(|_| kept.path().to_path_buf());
    std::fs::create_dir_all(&shots).unwrap();
    let out = tokio::process::Command::new("node")
        .arg(browser.join("dashboard.mjs"))
        .current_dir(&browser)
        .env("CRMSYNC_URL", &server.base)
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("STANDARD_TOKEN", STANDARD_TOKEN)
        .env("RECORD_ID", &bad)
        .env("RECORD_ERROR", "panicked on purpose")
        .env("ROLLED_BACK_TO", &hostile)
        .env("SCREENSHOTS", &shots)
        .output()
        .await
        .expect("node runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser steps failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("every step held"), "{stdout}");
    for shot in ["dashboard.png", "dashboard-refused.png", "dashboard-rolled-back.png"] {
        assert!(std::fs::metadata(shots.join(shot)).is_ok_and(|m| m.len() > 10_000), "{shot}");
    }
    // The server agrees: the standard token's click changed nothing, the admin's rolled back.
    assert_eq!(server.active_plugin("mapper").await, hostile);
    assert!(server.terminate().await.success());
}
