//! Shared by the service-level tests: a sandbox on loopback, a data
//! directory and a TOML config pointing at both, and the `crmsync` binary run
//! against them with its secrets in environment variables.
#![allow(dead_code)]

use std::fmt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};

use std::time::Duration;

use crmsync::connectors::http::HttpOptions;
use crmsync::connectors::salesforce::{SalesforceAuth, SalesforceConfig, SalesforceConnector};
use crmsync::connectors::vendors::activecampaign::{ActiveCampaignConfig, ActiveCampaignConnector};
use crmsync::core::Secret;
use crmsync_sandbox::common::VendorApi;
use crmsync_sandbox::{Sandbox, SandboxOptions};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

/// A Salesforce connector (password grant) and an ActiveCampaign connector
/// (rate limiting left to the sandbox's own switch) for a running sandbox.
pub fn connect(
    sandbox: &Sandbox,
    http: HttpOptions,
) -> Result<(SalesforceConnector, ActiveCampaignConnector), crmsync::core::ConnectorError> {
    let c = &sandbox.credentials;
    let auth = SalesforceAuth::Password {
        username: c.salesforce_username.clone(),
        password: Secret::new(c.salesforce_password.clone()),
    };
    let mut sf = SalesforceConfig::new(sandbox.salesforce_url(), c.salesforce_client_id.clone(), auth);
    sf.client_secret = Some(Secret::new(c.salesforce_client_secret.clone()));
    sf.http = http.clone();
    sf.bulk_poll = Duration::from_millis(50);
    let mut ac = ActiveCampaignConfig::new(
        sandbox.activecampaign_url(),
        Secret::new(c.activecampaign_api_token.clone()),
    );
    ac.http = http;
    ac.requests_per_second = None;
    ac.import_poll = Duration::from_millis(20);
    Ok((SalesforceConnector::new(sf)?, ActiveCampaignConnector::new(ac)?))
}

pub const ADMIN_TOKEN: &str = "admin-token-for-tests";
/// The admin API's standard role (reads and record actions).
pub const STANDARD_TOKEN: &str = "standard-token-for-tests";

pub struct Env {
    pub sandbox: Sandbox,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub data: PathBuf,
    /// The vendor-table name of the connection's marketing platform.
    pub marketing: String,
}

/// `over` merged into `base`: tables key by key, lists appended, other values replaced.
pub fn merged(base: Value, over: Value) -> Value {
    match (base, over) {
        (Value::Object(mut a), Value::Object(b)) => {
            for (k, v) in b {
                let old = a.remove(&k).unwrap_or(Value::Null);
                a.insert(k, merged(old, v));
            }
            Value::Object(a)
        }
        (Value::Array(mut a), Value::Array(b)) => {
            a.extend(b);
            Value::Array(a)
        }
        (_, over) => over,
    }
}

/// Every Lead and Contact syncs.
pub fn all_selection() -> Value {
    json!({"objects": {"Lead": {"mode": "all"}, "Contact": {"mode": "all"}}})
}

pub fn plugins_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/plugins")
}

impl Env {
    /// A sandbox (rate limits off) seeded with `seed` plus the write-back
    /// fields, and a config whose connection `main` uses `selection`;
    /// `connection` adds or replaces keys of the connection table.
    pub async fn start(seed: Value, selection: Value, connection: Value) -> Env {
        Self::start_with(seed, selection, connection, false).await
    }

    pub async fn start_with(seed: Value, selection: Value, connection: Value, rate_limits: bool) -> Env {
        Self::start_opts(seed, selection, connection, rate_limits, false).await
    }

    /// With `tls`, the sandbox serves HTTPS with a certificate it generates;
    /// the config trusts it through `http.ca_file` (`ca.pem` in the env's dir).
    pub async fn start_opts(
        seed: Value,
        selection: Value,
        connection: Value,
        rate_limits: bool,
        tls: bool,
    ) -> Env {
        Self::start_full("activecampaign", seed, selection, connection, rate_limits, tls).await
    }

    /// [`Env::start_with`] for the marketing platform `vendor` (a vendor-table name).
    pub async fn start_vendor(
        vendor: &str,
        seed: Value,
        selection: Value,
        connection: Value,
        rate_limits: bool,
    ) -> Env {
        Self::start_full(vendor, seed, selection, connection, rate_limits, false).await
    }

    pub async fn start_full(
        vendor: &str,
        mut seed: Value,
        selection: Value,
        connection: Value,
        rate_limits: bool,
        tls: bool,
    ) -> Env {
        let status_fields = json!([
            {"name": "AC_Sync_Status__c", "type": "string", "length": 255},
            {"name": "AC_Contact_Id__c", "type": "string", "length": 64}
        ]);
        let account_fields = json!([
            {"name": "AC_Relation_Status__c", "type": "string", "length": 255},
            {"name": "AC_Account_Id__c", "type": "string", "length": 64}
        ]);
        // The write-back fields, unless the seed defines them itself; the seed's own fields stay.
        for (object, extra) in
            [("Lead", &status_fields), ("Contact", &status_fields), ("Account", &account_fields)]
        {
            let fields = &mut seed["salesforce"]["fields"][object];
            if !fields.is_array() {
                *fields = json!([]);
            }
            let list = fields.as_array_mut().expect("an array");
            for f in extra.as_array().expect("an array") {
                if !list.iter().any(|g| g["name"] == f["name"]) {
                    list.push(f.clone());
                }
            }
        }
        // `connection.marketing`, when given, names the platform instead.
        let marketing = connection.get("marketing").and_then(Value::as_str).unwrap_or(vendor).to_string();
        let table = crmsync::connectors::vendors::vendor(&marketing).expect("a vendor of the table");
        let seed = merged((table.sandbox_seed)(), seed);
        let sandbox =
            Sandbox::start(SandboxOptions { seed: Some(seed), rate_limits, tls, ..Default::default() })
                .await
                .expect("sandbox");
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        if tls {
            sandbox.write_ca_pem(&ca).expect("the sandbox's CA");
        }
        let plugins = plugins_dir();
        for name in ["selection", "standard-mapping", "field-policy-resolver"] {
            assert!(
                plugins.join(format!("{name}.wasm")).exists(),
                "{name}.wasm is missing: run scripts/build-plugins.sh"
            );
        }
        let c = &sandbox.credentials;
        let mut main = json!({
            "marketing": marketing,
            "schedule": "manual",
            "page_size": 2000,
            "write_back": {"status_field": "AC_Sync_Status__c", "id_field": "AC_Contact_Id__c"},
            "salesforce": {
                "login_url": sandbox.salesforce_url(),
                "client_id": c.salesforce_client_id,
                "client_secret": {"env": "SF_CLIENT_SECRET"},
                "username": c.salesforce_username,
                "password": {"env": "SF_PASSWORD"},
                "bulk_poll_ms": 20,
            },
            "rules": {
                "selector": {"plugin": plugins.join("selection.wasm"), "config": selection},
                "mapper": {"plugin": plugins.join("standard-mapping.wasm"), "config": {"marketing": marketing}},
                "resolver": {"plugin": plugins.join("field-policy-resolver.wasm"), "config": {}},
            },
        });
        // The platform's section: keys in environment variables for the
        // platforms tests pass wrong keys to, else the vendor table's own
        // sandbox section (its key in a file).
        let mut section = match marketing.as_str() {
            "activecampaign" => json!({
                "api_url": sandbox.activecampaign_url(),
                "api_token": {"env": "AC_TOKEN"},
                "requests_per_second": if rate_limits { 5.0 } else { 0.0 },
                "import_poll_ms": 20,
            }),
            "brevo" => json!({
                "api_url": format!("{}/v3", sandbox.brevo_url()),
                "api_key": {"env": "BREVO_KEY"},
                "list_name": "Salesforce",
                "requests_per_second": if rate_limits { 10.0 } else { 0.0 },
                "import_poll_ms": 20,
            }),
            _ => {
                let sandbox_vendor =
                    crmsync_sandbox::common::Vendor::from_key(&marketing).expect("a sandbox vendor");
                let key_file = dir.path().join("marketing-key");
                std::fs::write(&key_file, sandbox.api_key(sandbox_vendor).expect("a key")).unwrap();
                let section = (table.sandbox_section)(&sandbox.base_url(sandbox_vendor), &key_file);
                serde_json::to_value(section).expect("a section as JSON")
            }
        };
        let mut connection = connection;
        // Keys given under the platform's name replace the section's, key by key.
        if let Some(Value::Object(extra)) = connection.as_object_mut().and_then(|c| c.remove(&marketing)) {
            for (k, v) in extra {
                section[k] = v;
            }
        }
        main[marketing.as_str()] = section;
        if tls {
            main["http"] = json!({"ca_file": ca});
        }
        for (k, v) in connection.as_object().cloned().unwrap_or_default() {
            main[k] = v;
        }
        // A null removes a key (of the connection or of the platform's section).
        if let Some(m) = main.as_object_mut() {
            m.retain(|_, v| !v.is_null());
            if let Some(Value::Object(section)) = m.get_mut(&marketing) {
                section.retain(|_, v| !v.is_null());
            }
        }
        let config = json!({
            "service": {"admin_addr": "127.0.0.1:0", "admin_token": {"env": "CRMSYNC_ADMIN_TOKEN"},
                "standard_token": {"env": "CRMSYNC_STANDARD_TOKEN"}},
            "connections": {"main": main},
        });
        let path = dir.path().join("crmsync.toml");
        std::fs::write(&path, toml::to_string(&config).expect("config as TOML")).unwrap();
        let data = dir.path().join("data");
        Env { sandbox, config: path, data, dir, marketing }
    }

    pub fn secrets(&self) -> Vec<(&'static str, String)> {
        let c = &self.sandbox.credentials;
        vec![
            ("SF_CLIENT_SECRET", c.salesforce_client_secret.clone()),
            ("SF_PASSWORD", c.salesforce_password.clone()),
            ("AC_TOKEN", c.activecampaign_api_token.clone()),
            ("BREVO_KEY", c.brevo_api_key.clone()),
            ("CRMSYNC_ADMIN_TOKEN", ADMIN_TOKEN.to_string()),
            ("CRMSYNC_STANDARD_TOKEN", STANDARD_TOKEN.to_string()),
        ]
    }

    /// The `crmsync` command with this env's config, data directory and secrets.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_crmsync"));
        cmd.arg("--config").arg(&self.config).arg("--data-dir").arg(&self.data).args(args);
        cmd.env("RUST_LOG", "warn");
        for (k, v) in self.secrets() {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        cmd
    }
}

/// A finished command.
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exit {:?}\n--- stdout\n{}\n--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

async fn output(mut cmd: tokio::process::Command) -> Output {
    let out = cmd.output().await.expect("crmsync runs");
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub async fn crmsync(env: &Env, args: &[&str]) -> Output {
    output(env.command(args)).await
}

/// `crmsync ARGS` that must print one JSON document: the document.
pub async fn crmsync_json(env: &Env, args: &[&str]) -> Value {
    let out = crmsync(env, args).await;
    serde_json::from_str(&out.stdout).unwrap_or_else(|_| panic!("not one JSON document: {out}"))
}

/// With some environment variables replaced.
pub async fn crmsync_with(env: &Env, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut cmd = env.command(args);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    output(cmd).await
}

/// With one environment variable unset.
pub async fn crmsync_without(env: &Env, args: &[&str], var: &str) -> Output {
    let mut cmd = env.command(args);
    cmd.env_remove(var);
    output(cmd).await
}

/// The sandbox vendor of the env's marketing platform.
pub fn marketing_vendor(env: &Env) -> crmsync_sandbox::common::Vendor {
    crmsync_sandbox::common::Vendor::from_key(&env.marketing).expect("a sandbox vendor")
}

/// A person on the env's marketing platform as its sandbox holds them.
pub struct Person {
    pub id: String,
    /// Lowercased.
    pub email: String,
    /// What the sync writes, under one set of names for every platform:
    /// `first`, `last`, `phone`, and the platform's membership (AC `tags`,
    /// Brevo `lists`, Mailchimp `status`).
    pub synced: Value,
}

/// The people on the env's marketing platform (Mailchimp: the audience's
/// members not archived).
pub fn people(env: &Env) -> Vec<Person> {
    let text = |v: &Value| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
    let person = |id: &Value, email: &Value, synced: Value| Person {
        id: text(id),
        email: email.as_str().unwrap_or_default().to_lowercase(),
        synced,
    };
    match env.marketing.as_str() {
        "mailchimp" => env.sandbox.mailchimp.state()["lists"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|l| l["members"].as_array().cloned().unwrap_or_default())
            .filter(|m| m["status"] != "archived")
            .map(|m| {
                let f = &m["merge_fields"];
                let synced = json!({"first": f["FNAME"], "last": f["LNAME"], "phone": f["PHONE"], "status": m["status"]});
                person(&m["contact_id"], &m["email_address"], synced)
            })
            .collect(),
        "brevo" => contacts(env.sandbox.brevo.state())
            .iter()
            .map(|c| {
                let a = &c["attributes"];
                let synced = json!({"first": a["FIRSTNAME"], "last": a["LASTNAME"], "phone": a["SMS"], "lists": c["listIds"]});
                person(&c["id"], &c["email"], synced)
            })
            .collect(),
        _ => ac_contacts(env)
            .iter()
            .map(|c| {
                let mut tags: Vec<String> =
                    c["tags"].as_array().into_iter().flatten().filter_map(|t| t.as_str().map(str::to_string)).collect();
                tags.sort();
                let synced = json!({"first": c["firstName"], "last": c["lastName"], "phone": c["phone"], "tags": tags});
                person(&c["id"], &c["email"], synced)
            })
            .collect(),
    }
}

fn contacts(state: Value) -> Vec<Value> {
    state["contacts"].as_array().cloned().unwrap_or_default()
}

/// The env's marketing connector, built from the vendor table as the
/// service builds it (its sandbox section, the key in a file).
pub fn marketing_connector(env: &Env) -> std::sync::Arc<dyn crmsync::core::MarketingApi> {
    let vendor = crmsync::connectors::vendors::vendor(&env.marketing).expect("a vendor");
    let sandbox_vendor = marketing_vendor(env);
    let key_file = env.dir.path().join("marketing-key");
    std::fs::write(&key_file, env.sandbox.api_key(sandbox_vendor).expect("a key")).unwrap();
    let section = (vendor.sandbox_section)(&env.sandbox.base_url(sandbox_vendor), &key_file);
    (vendor.build)(&section, "test", &Default::default()).expect("the connector builds")
}

/// A person's email, first and last name fields on the env's marketing
/// platform, as its connector's records name them.
pub fn person_fields(env: &Env) -> (&'static str, &'static str, &'static str) {
    match env.marketing.as_str() {
        "brevo" => ("email", "FIRSTNAME", "LASTNAME"),
        "mailchimp" => ("email_address", "FNAME", "LNAME"),
        _ => ("email", "firstName", "lastName"),
    }
}

pub fn ac_contacts(env: &Env) -> Vec<Value> {
    contacts(env.sandbox.activecampaign.state())
}

/// A running `crmsync serve`.
pub struct Served {
    child: tokio::process::Child,
    pub base: String,
    /// What `serve` wrote to stderr (its log) so far.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Served {
    /// A call to the admin API with `token`.
    pub async fn call(&self, method: reqwest::Method, path: &str, token: &str) -> reqwest::Response {
        let url = format!("{}{path}", self.base);
        reqwest::Client::new()
            .request(method, url)
            .bearer_auth(token)
            .send()
            .await
            .expect("admin API answers")
    }

    /// `POST /connections/main/run?wait=true` with the admin token: the run record.
    pub async fn run_and_wait(&self) -> Value {
        let reply = self.call(reqwest::Method::POST, "/connections/main/run?wait=true", ADMIN_TOKEN).await;
        reply.json().await.expect("a run record")
    }

    /// The version active for connection `main` and `role` (`GET /plugins`, standard token).
    pub async fn active_plugin(&self, role: &str) -> String {
        let list: Value =
            self.call(reqwest::Method::GET, "/plugins", STANDARD_TOKEN).await.json().await.expect("JSON");
        list["active"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["connection"] == "main" && a["role"] == role)
            .and_then(|a| a["plugin"].as_str())
            .unwrap_or_default()
            .to_string()
    }

    /// `GET path` with the admin token, as JSON.
    pub async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, ADMIN_TOKEN).await.json().await.expect("a JSON answer")
    }

    /// Queues a run now (`POST /connections/main/run`) and waits until its
    /// progress reaches `direction`; the progress then.
    pub async fn run_until_progress(&self, direction: &str) -> Value {
        let queued = self.call(reqwest::Method::POST, "/connections/main/run", ADMIN_TOKEN).await;
        assert_eq!(queued.status(), 202);
        let mut progress = Value::Null;
        for _ in 0..600 {
            progress = self.get("/connections").await[0]["progress"].clone();
            if progress["direction"] == direction {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        progress
    }

    pub async fn start(env: &Env) -> Served {
        // Warnings, and the admin API's access log.
        let mut child = env
            .command(&["serve"])
            .env("RUST_LOG", "warn,crmsync::access=info")
            .spawn()
            .expect("serve starts");
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let base = loop {
            let line = lines.next_line().await.unwrap().expect("serve printed its address before exiting");
            if let Some(addr) = line.split("admin API on ").nth(1) {
                break addr.trim().to_string();
            }
        };
        // Keep draining stderr so the child never blocks on a full pipe.
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                kept.lock().unwrap().push(line);
            }
        });
        Served { child, base, log }
    }

    /// The log lines `serve` wrote so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// SIGKILL: the process dies wherever it is.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("serve is killed");
    }

    /// SIGTERM, then the exit status.
    pub async fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().expect("running");
        let sent = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status().unwrap();
        assert!(sent.success());
        self.child.wait().await.unwrap()
    }
}

/// `crmsync demo ARGS` from an empty directory, without the config or data
/// directory variables; the directory (kept) and stdout, once it succeeded.
pub async fn demo(args: &[&str]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_crmsync"))
        .arg("demo")
        .args(args)
        .current_dir(dir.path())
        .env_remove("CRMSYNC_DATA_DIR")
        .env_remove("CRMSYNC_CONFIG")
        .output()
        .await
        .expect("crmsync runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(!stderr.contains(" ERROR "), "a demo that works logs no error:\n{stderr}");
    (dir, stdout)
}
