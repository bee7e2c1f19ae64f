//! The Mailchimp sandbox over loopback HTTP: auth, member upsert by hash,
//! `since_last_changed` paging with the controllable clock, batch subscribe with
//! per-member errors, compliance state, the merge-field cap, the 10-connection
//! limit, `/batches` (results as a gzipped tar of JSON files), roles and
//! problem+json errors.

use std::time::Duration;

use chrono::{DateTime, Utc};
use crmsync_sandbox::common::{Fault, FaultRule, Vendor, VendorApi};
use crmsync_sandbox::mailchimp::store::subscriber_hash;
use crmsync_sandbox::{Sandbox, SandboxOptions};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

struct Mc {
    sb: Sandbox,
    http: reqwest::Client,
    base: String,
    key: String,
}

struct Reply {
    status: StatusCode,
    content_type: String,
    body: Value,
}

impl Mc {
    async fn start(seed: Option<Value>) -> Mc {
        let opts = SandboxOptions {
            rate_limits: false,
            seed: seed.map(|s| json!({ "mailchimp": s })),
            ..SandboxOptions::default()
        };
        let sb = Sandbox::start(opts).await.expect("sandbox starts");
        let base = format!("{}/3.0", sb.mailchimp_url());
        let key = sb.credentials.mailchimp_api_key.clone();
        Mc { sb, http: reqwest::Client::new(), base, key }
    }

    async fn call_as(&self, key: Option<&str>, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(key) = key {
            req = req.basic_auth("anystring", Some(key));
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request is answered");
        let status = resp.status();
        let content_type =
            resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let bytes = resp.bytes().await.expect("body");
        let body =
            if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("JSON body") };
        Reply { status, content_type, body }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call_as(Some(&self.key), method, path, body).await
    }

    async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    /// Downloads a batch's `response_body_url` (a gzipped tar, no auth) and
    /// unpacks it: every file's name and its results array, in archive order.
    async fn batch_results(&self, url: &str) -> Vec<(String, Vec<Value>)> {
        let resp = self.http.get(url).send().await.expect("results download");
        assert_eq!(resp.status(), StatusCode::OK);
        let content_type =
            resp.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
        assert_eq!(content_type.as_deref(), Some("application/x-gzip"));
        assert!(resp.headers().get("content-encoding").is_none(), "a .tar.gz file, not a gzip-encoded body");
        let bytes = resp.bytes().await.expect("archive bytes");
        assert_eq!(bytes[..2], [0x1f, 0x8b], "gzip magic");
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_ref()));
        let mut files = Vec::new();
        for entry in archive.entries().expect("a tar archive") {
            let mut entry = entry.expect("tar entry");
            assert_eq!(entry.header().entry_type(), tar::EntryType::Regular);
            let name = entry.path().expect("entry path").to_string_lossy().into_owned();
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text).expect("entry text");
            let results: Vec<Value> = serde_json::from_str(&text).expect("each file is a JSON array");
            files.push((name, results));
        }
        files
    }

    async fn new_list(&self) -> String {
        let r = self
            .call(
                Method::POST,
                "/lists",
                Some(json!({
                    "name": "Customers",
                    "contact": {"company": "Acme", "address1": "1 Main St", "city": "Atlanta",
                                "state": "GA", "zip": "30308", "country": "US"},
                    "permission_reminder": "You bought from us.",
                    "campaign_defaults": {"from_name": "Acme", "from_email": "news@acme.example",
                                          "subject": "", "language": "en"},
                    "email_type_option": false,
                })),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        r.body["id"].as_str().expect("list id").to_string()
    }

    fn set_clock(&self, t: &str) {
        self.sb.clock.set(t.parse::<DateTime<Utc>>().expect("time"));
    }
}

fn assert_problem(r: &Reply, status: u16, title: &str) {
    assert_eq!(r.status.as_u16(), status, "{:?}", r.body);
    assert!(r.content_type.starts_with("application/problem+json"), "content type {}", r.content_type);
    assert_eq!(r.body["title"], title, "{:?}", r.body);
    assert_eq!(r.body["status"], status);
    assert_eq!(r.body["type"], "https://mailchimp.com/developer/marketing/docs/errors/");
    assert!(r.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    assert!(r.body["instance"].as_str().is_some_and(|d| !d.is_empty()));
}

#[tokio::test]
async fn auth_schemes_and_errors() {
    let mc = Mc::start(None).await;
    let ping = mc.get("/ping").await;
    assert_eq!(ping.status, StatusCode::OK);
    assert_eq!(ping.body["health_status"], "Everything's Chimpy!");

    assert_problem(&mc.call_as(None, Method::GET, "/ping", None).await, 401, "API Key Missing");
    let bad = mc.call_as(Some("ffffffffffffffffffffffffffffffff-us6"), Method::GET, "/ping", None).await;
    assert_problem(&bad, 401, "API Key Invalid");

    for scheme in ["apikey", "Bearer"] {
        let r = mc
            .http
            .get(format!("{}/ping", mc.base))
            .header("Authorization", format!("{scheme} {}", mc.key))
            .send()
            .await
            .expect("answered");
        assert_eq!(r.status(), StatusCode::OK, "{scheme}");
    }
    assert_problem(&mc.get("/lists/nope").await, 404, "Resource Not Found");
    assert_problem(&mc.get("/lists/nope/members/x").await, 404, "Resource Not Found");
    assert_problem(&mc.call(Method::PUT, "/ping", Some(json!({}))).await, 405, "Method Not Allowed");
    let root = mc.get("/").await;
    assert_eq!(root.body["role"], "owner");
    // Unauthenticated calls are counted like any other.
    let calls = mc.sb.ctx(Vendor::Mailchimp).telemetry.by_endpoint();
    assert_eq!(calls.get("GET /3.0/ping"), Some(&5));
}

#[tokio::test]
async fn upsert_by_hash_patch_archive_and_forget() {
    let mc = Mc::start(None).await;
    let list = mc.new_list().await;
    mc.set_clock("2024-03-01T10:00:00Z");
    let hash = subscriber_hash("Ann@Example.com");
    let put = mc
        .call(
            Method::PUT,
            &format!("/lists/{list}/members/{hash}"),
            Some(json!({"email_address": "Ann@Example.com", "status_if_new": "subscribed",
                        "merge_fields": {"FNAME": "Ann", "LNAME": "Lee"}})),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{:?}", put.body);
    assert_eq!(put.body["id"], hash.as_str());
    assert_eq!(put.body["status"], "subscribed");
    assert_eq!(put.body["last_changed"], "2024-03-01T10:00:00+00:00");
    assert_eq!(put.body["merge_fields"]["FNAME"], "Ann");
    assert_eq!(put.body["merge_fields"]["PHONE"], "", "every audience field is present");
    assert_eq!(put.body["full_name"], "Ann Lee");

    // The email in place of the hash reaches the same member; status_if_new is ignored now.
    mc.sb.clock.advance(Duration::from_secs(60));
    let again = mc
        .call(
            Method::PUT,
            &format!("/lists/{list}/members/ann@example.com"),
            Some(json!({"email_address": "ann@example.com", "status_if_new": "pending",
                        "merge_fields": {"FNAME": "Annie"}})),
        )
        .await;
    assert_eq!(again.body["status"], "subscribed");
    assert_eq!(again.body["merge_fields"]["FNAME"], "Annie");
    assert_eq!(again.body["merge_fields"]["LNAME"], "Lee");
    assert_eq!(again.body["last_changed"], "2024-03-01T10:01:00+00:00");

    // A no-op write leaves last_changed alone.
    mc.sb.clock.advance(Duration::from_secs(60));
    let same = mc
        .call(
            Method::PATCH,
            &format!("/lists/{list}/members/{hash}"),
            Some(json!({"merge_fields": {"FNAME": "Annie"}})),
        )
        .await;
    assert_eq!(same.body["last_changed"], "2024-03-01T10:01:00+00:00");

    let patch =
        mc.call(Method::PATCH, &format!("/lists/{list}/members/{hash}"), Some(json!({"vip": true}))).await;
    assert_eq!(patch.body["vip"], true);
    assert_eq!(patch.body["last_changed"], "2024-03-01T10:02:00+00:00");
    let missing = mc
        .call(
            Method::PATCH,
            &format!("/lists/{list}/members/{}", subscriber_hash("x@y.com")),
            Some(json!({"vip": true})),
        )
        .await;
    assert_problem(&missing, 404, "Resource Not Found");
    let mismatch = mc
        .call(
            Method::PUT,
            &format!("/lists/{list}/members/{}", subscriber_hash("x@y.com")),
            Some(json!({"email_address": "other@y.com", "status_if_new": "subscribed"})),
        )
        .await;
    assert_problem(&mismatch, 400, "Invalid Resource");
    let exists = mc
        .call(
            Method::POST,
            &format!("/lists/{list}/members"),
            Some(json!({"email_address": "ann@example.com", "status": "subscribed"})),
        )
        .await;
    assert_problem(&exists, 400, "Member Exists");

    let info = mc.get(&format!("/lists/{list}")).await;
    assert_eq!(info.body["stats"]["member_count"], 1);

    // DELETE archives: hidden from the default listing, shown with status=archived.
    let del = mc.call(Method::DELETE, &format!("/lists/{list}/members/{hash}"), None).await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert_eq!(mc.get(&format!("/lists/{list}/members/{hash}")).await.body["status"], "archived");
    assert_eq!(mc.get(&format!("/lists/{list}/members")).await.body["total_items"], 0);
    assert_eq!(mc.get(&format!("/lists/{list}/members?status=archived")).await.body["total_items"], 1);

    // delete-permanent forgets the address for good.
    let gone =
        mc.call(Method::POST, &format!("/lists/{list}/members/{hash}/actions/delete-permanent"), None).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    assert_problem(&mc.get(&format!("/lists/{list}/members/{hash}")).await, 404, "Resource Not Found");
    let readd = mc
        .call(
            Method::PUT,
            &format!("/lists/{list}/members/{hash}"),
            Some(json!({"email_address": "ann@example.com", "status_if_new": "subscribed"})),
        )
        .await;
    assert_problem(&readd, 400, "Forgotten Email Not Subscribed");
}

#[tokio::test]
async fn compliance_state_blocks_resubscribe() {
    let mc = Mc::start(None).await;
    let list = mc.new_list().await;
    let path = format!("/lists/{list}/members/{}", subscriber_hash("bo@example.com"));
    let unsub = mc
        .call(
            Method::PUT,
            &path,
            Some(json!({"email_address": "bo@example.com", "status_if_new": "unsubscribed"})),
        )
        .await;
    assert_eq!(unsub.body["status"], "unsubscribed");
    assert_eq!(unsub.body["unsubscribe_reason"], "N/A (Unsubscribed by an admin)");

    let put = mc
        .call(Method::PUT, &path, Some(json!({"email_address": "bo@example.com", "status_if_new": "subscribed", "status": "subscribed"})))
        .await;
    assert_problem(&put, 400, "Member In Compliance State");
    let patch = mc.call(Method::PATCH, &path, Some(json!({"status": "subscribed"}))).await;
    assert_problem(&patch, 400, "Member In Compliance State");
    assert_eq!(mc.get(&path).await.body["status"], "unsubscribed");

    // Pending (re-confirmation by email) is allowed.
    let pending = mc.call(Method::PATCH, &path, Some(json!({"status": "pending"}))).await;
    assert_eq!(pending.status, StatusCode::OK);
    assert_eq!(pending.body["status"], "pending");
}

#[tokio::test]
async fn since_last_changed_pages_with_the_clock() {
    let mc = Mc::start(None).await;
    let list = mc.new_list().await;
    mc.set_clock("2024-05-01T00:00:00Z");
    let members: Vec<Value> = (0..25)
        .map(|i| json!({"email_address": format!("p{i:02}@example.com"), "status": "subscribed"}))
        .collect();
    let r = mc.call(Method::POST, &format!("/lists/{list}"), Some(json!({"members": members}))).await;
    assert_eq!(r.body["total_created"], 25);

    mc.set_clock("2024-05-01T06:00:00Z");
    for i in [3, 7, 11, 19, 23] {
        let r = mc
            .call(
                Method::PATCH,
                &format!("/lists/{list}/members/p{i:02}@example.com"),
                Some(json!({"merge_fields": {"FNAME": format!("N{i}")}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }

    // All 25 by offset paging, no duplicates, total_items on every page.
    let mut seen = Vec::new();
    for offset in (0..30).step_by(10) {
        let page = mc.get(&format!("/lists/{list}/members?count=10&offset={offset}")).await;
        assert_eq!(page.body["total_items"], 25);
        for m in page.body["members"].as_array().expect("members") {
            seen.push(m["email_address"].as_str().expect("email").to_string());
        }
    }
    // DESC pages are the ASC order reversed (and resume correctly page to page).
    let mut desc = Vec::new();
    for offset in (0..30).step_by(10) {
        let page = mc.get(&format!("/lists/{list}/members?count=10&offset={offset}&sort_dir=DESC")).await;
        for m in page.body["members"].as_array().expect("members") {
            desc.push(m["email_address"].as_str().expect("email").to_string());
        }
    }
    desc.reverse();
    assert_eq!(desc, seen);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 25);

    // Only the 5 changed since 06:00, two per page, oldest change first.
    let mut changed = Vec::new();
    let mut offset = 0;
    loop {
        let page = mc
            .get(&format!(
                "/lists/{list}/members?since_last_changed=2024-05-01T06:00:00%2B00:00&count=2&offset={offset}&fields=members.email_address,members.last_changed,total_items"
            ))
            .await;
        assert_eq!(page.body["total_items"], 5);
        let items = page.body["members"].as_array().expect("members").clone();
        if items.is_empty() {
            break;
        }
        for m in &items {
            assert_eq!(m["last_changed"], "2024-05-01T06:00:00+00:00");
            assert!(m.get("status").is_none(), "fields= projects the members");
            changed.push(m["email_address"].as_str().expect("email").to_string());
        }
        offset += items.len();
    }
    assert_eq!(
        changed,
        ["p03@example.com", "p07@example.com", "p11@example.com", "p19@example.com", "p23@example.com"]
    );
    let later = mc.get(&format!("/lists/{list}/members?since_last_changed=2024-05-01T06:00:01Z")).await;
    assert_eq!(later.body["total_items"], 0);
    let before =
        mc.get(&format!("/lists/{list}/members?before_last_changed=2024-05-01T06:00:00Z&count=1000")).await;
    assert_eq!(before.body["total_items"], 20);
    let big = mc.get(&format!("/lists/{list}/members?count=5000")).await;
    assert_eq!(big.body["members"].as_array().map(Vec::len), Some(25));
}

#[tokio::test]
async fn batch_subscribe_reports_member_errors_with_200() {
    let mc = Mc::start(None).await;
    let list = mc.new_list().await;
    mc.call(
        Method::PUT,
        &format!("/lists/{list}/members/old@example.com"),
        Some(json!({"email_address": "old@example.com", "status_if_new": "subscribed"})),
    )
    .await;
    mc.call(
        Method::PUT,
        &format!("/lists/{list}/members/gone@example.com"),
        Some(json!({"email_address": "gone@example.com", "status_if_new": "unsubscribed"})),
    )
    .await;

    let body = json!({"members": [
        {"email_address": "new1@example.com", "status": "subscribed", "merge_fields": {"FNAME": "N"}},
        {"email_address": "not-an-email", "status": "subscribed"},
        {"email_address": "old@example.com", "status": "subscribed"},
        {"email_address": "new2@example.com", "status": "bogus"},
    ]});
    let r = mc.call(Method::POST, &format!("/lists/{list}"), Some(body)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["total_created"], 1);
    assert_eq!(r.body["total_updated"], 0);
    assert_eq!(r.body["error_count"], 3);
    let errors = r.body["errors"].as_array().expect("errors");
    assert_eq!(errors[0]["email_address"], "not-an-email");
    assert_eq!(errors[0]["error_code"], "ERROR_GENERIC");
    assert_eq!(errors[1]["email_address"], "old@example.com");
    assert_eq!(errors[1]["error_code"], "ERROR_CONTACT_EXISTS");
    assert_eq!(r.body["new_members"][0]["email_address"], "new1@example.com");

    let update = json!({"update_existing": true, "members": [
        {"email_address": "old@example.com", "status": "subscribed", "merge_fields": {"LNAME": "Old"}},
        {"email_address": "gone@example.com", "status": "subscribed"},
    ]});
    let r = mc.call(Method::POST, &format!("/lists/{list}"), Some(update)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["total_updated"], 1);
    assert_eq!(r.body["updated_members"][0]["merge_fields"]["LNAME"], "Old");
    assert_eq!(r.body["errors"][0]["email_address"], "gone@example.com");
    assert!(r.body["errors"][0]["error"].as_str().is_some_and(|e| e.contains("compliance state")));

    let too_many: Vec<Value> = (0..501)
        .map(|i| json!({"email_address": format!("m{i}@example.com"), "status": "subscribed"}))
        .collect();
    let r = mc.call(Method::POST, &format!("/lists/{list}"), Some(json!({"members": too_many}))).await;
    assert_problem(&r, 400, "Invalid Resource");
    let state = mc.sb.mailchimp.state();
    assert_eq!(state["lists"][0]["members"].as_array().map(Vec::len), Some(3));
}

#[tokio::test]
async fn merge_field_cap_and_validation() {
    let mc = Mc::start(None).await;
    let list = mc.new_list().await;
    let fields = mc.get(&format!("/lists/{list}/merge-fields?count=100")).await;
    assert_eq!(fields.body["total_items"], 4, "FNAME, LNAME, ADDRESS, PHONE");
    let r = mc
        .call(
            Method::POST,
            &format!("/lists/{list}/merge-fields"),
            Some(json!({"name": "Score", "type": "number", "tag": "SCORE", "required": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["tag"], "SCORE");
    let bad = mc
        .call(Method::PUT, &format!("/lists/{list}/members/v@example.com"), Some(json!({"email_address": "v@example.com", "status_if_new": "subscribed", "merge_fields": {"SCORE": "high"}})))
        .await;
    assert_problem(&bad, 400, "Invalid Resource");
    assert_eq!(bad.body["errors"][0]["field"], "SCORE");
    let missing = mc
        .call(
            Method::PUT,
            &format!("/lists/{list}/members/v@example.com"),
            Some(json!({"email_address": "v@example.com", "status_if_new": "subscribed"})),
        )
        .await;
    assert_eq!(missing.body["errors"][0]["message"], "Please enter a value");
    let fine = mc
        .call(
            Method::PUT,
            &format!("/lists/{list}/members/v@example.com?skip_merge_validation=true"),
            Some(json!({"email_address": "v@example.com", "status_if_new": "subscribed"})),
        )
        .await;
    assert_eq!(fine.status, StatusCode::OK);

    for i in 0..25 {
        let r = mc
            .call(
                Method::POST,
                &format!("/lists/{list}/merge-fields"),
                Some(json!({"name": format!("F{i}"), "type": "text"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "field {i}: {:?}", r.body);
    }
    let over = mc
        .call(
            Method::POST,
            &format!("/lists/{list}/merge-fields"),
            Some(json!({"name": "One too many", "type": "text"})),
        )
        .await;
    assert_problem(&over, 400, "Invalid Resource");
    assert!(over.body["detail"].as_str().is_some_and(|d| d.contains("maximum of 30")));

    // Premium accounts get 80.
    let premium =
        Mc::start(Some(json!({"account": {"premium": true}, "lists": [{"id": "prem000001"}]}))).await;
    for i in 0..76 {
        let r = premium
            .call(
                Method::POST,
                "/lists/prem000001/merge-fields",
                Some(json!({"name": format!("F{i}"), "type": "text"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "field {i}");
    }
    let over = premium
        .call(Method::POST, "/lists/prem000001/merge-fields", Some(json!({"name": "81st", "type": "text"})))
        .await;
    assert!(over.body["detail"].as_str().is_some_and(|d| d.contains("maximum of 80")));
}

/// On a paused runtime the injected latency is virtual time: every request of
/// a burst is in flight before any finishes, so the counts are exact.
#[tokio::test(start_paused = true)]
async fn more_than_ten_connections_get_429() {
    let mut mc = Mc::start(None).await;
    // No idle-pool timer, so the paused clock only jumps to the latency's end.
    mc.http = reqwest::Client::builder().pool_idle_timeout(None).build().expect("client");
    let ctx = mc.sb.ctx(Vendor::Mailchimp);
    ctx.add_fault(FaultRule {
        endpoint: Some("GET /3.0/ping".into()),
        times: None,
        fault: Fault::Latency { ms: 60_000 },
    });
    let burst = |n: usize| {
        let reqs: Vec<_> = (0..n)
            .map(|_| mc.http.get(format!("{}/ping", mc.base)).basic_auth("u", Some(&mc.key)).send())
            .collect();
        futures_join(reqs)
    };
    let statuses = burst(25).await;
    assert!(statuses.iter().all(|s| s.0 == 200), "limits off: all pass");

    ctx.set_rate_limits(true);
    let statuses = burst(25).await;
    let ok = statuses.iter().filter(|s| s.0 == 200).count();
    let limited: Vec<_> = statuses.iter().filter(|s| s.0 == 429).collect();
    assert_eq!(ok, 10, "10 in flight, the rest refused");
    assert_eq!(ok + limited.len(), 25);
    let body: Value = serde_json::from_str(&limited[0].1).expect("JSON");
    assert_eq!(body["title"], "Too Many Requests");
    assert_eq!(body["status"], 429);
    // Slots free up once the requests finish.
    assert_eq!(mc.get("/lists").await.status, StatusCode::OK);
}

/// Sends the requests concurrently; returns (status, body) each.
async fn futures_join(
    reqs: Vec<impl std::future::Future<Output = reqwest::Result<reqwest::Response>> + Send + 'static>,
) -> Vec<(u16, String)> {
    let handles: Vec<_> = reqs
        .into_iter()
        .map(|f| {
            tokio::spawn(async move {
                let r = f.await.expect("answered");
                let status = r.status().as_u16();
                (status, r.text().await.unwrap_or_default())
            })
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

#[tokio::test]
async fn batches_finish_on_a_later_poll() {
    let mc = Mc::start(None).await;
    let list = mc.new_list().await;
    let ops = json!({"operations": [
        {"method": "PUT", "path": format!("/lists/{list}/members/{}", subscriber_hash("b1@example.com")),
         "operation_id": "sf-1",
         "body": json!({"email_address": "b1@example.com", "status_if_new": "subscribed"}).to_string()},
        {"method": "PUT", "path": format!("/lists/{list}/members/{}", subscriber_hash("b2@example.com")),
         "operation_id": "sf-2", "body": "{not json"},
        {"method": "GET", "path": format!("/lists/{list}"), "operation_id": "read",
         "params": {"fields": "id,name"}},
    ]});
    let submitted = mc.call(Method::POST, "/batches", Some(ops)).await;
    assert_eq!(submitted.status, StatusCode::OK);
    assert_eq!(submitted.body["status"], "pending");
    assert_eq!(submitted.body["total_operations"], 3);
    let id = submitted.body["id"].as_str().expect("id").to_string();
    assert_eq!(mc.get(&format!("/lists/{list}")).await.body["stats"]["member_count"], 0);

    let first = mc.get(&format!("/batches/{id}")).await;
    assert_eq!(first.body["status"], "started");
    assert_eq!(first.body["response_body_url"], "");
    let done = mc.get(&format!("/batches/{id}")).await;
    assert_eq!(done.body["status"], "finished");
    assert_eq!(done.body["finished_operations"], 3);
    assert_eq!(done.body["errored_operations"], 1);
    assert_eq!(mc.get(&format!("/lists/{list}")).await.body["stats"]["member_count"], 1);

    let url = done.body["response_body_url"].as_str().expect("url");
    let results = Value::Array(mc.batch_results(url).await.into_iter().flat_map(|(_, r)| r).collect());
    assert_eq!(results[0]["operation_id"], "sf-1");
    assert_eq!(results[0]["status_code"], 200);
    let member: Value = serde_json::from_str(results[0]["response"].as_str().expect("string")).expect("JSON");
    assert_eq!(member["email_address"], "b1@example.com");
    assert_eq!(results[1]["status_code"], 400);
    let read: Value = serde_json::from_str(results[2]["response"].as_str().expect("string")).expect("JSON");
    assert_eq!(read, json!({"id": list, "name": "Customers"}));

    let listed = mc.get("/batches").await;
    assert_eq!(listed.body["total_items"], 1);
}

#[tokio::test]
async fn batch_results_are_a_gzipped_tar_of_json_files_with_per_operation_status() {
    let mc = Mc::start(None).await;
    let list = mc.new_list().await;
    let mut ops = vec![
        json!({"method": "PUT", "path": format!("/lists/{list}/members/{}", subscriber_hash("ok@example.com")),
               "operation_id": "sf-ok",
               "body": json!({"email_address": "ok@example.com", "status_if_new": "subscribed"}).to_string()}),
        json!({"method": "POST", "path": format!("/lists/{list}/members"), "operation_id": "sf-bad-email",
               "body": json!({"email_address": "not-an-email", "status": "subscribed"}).to_string()}),
    ];
    // Enough operations for more than one results file.
    ops.extend(
        (0..148).map(|i| json!({"method": "GET", "path": "/ping", "operation_id": format!("ping-{i}")})),
    );
    let submitted = mc.call(Method::POST, "/batches", Some(json!({"operations": ops}))).await;
    assert_eq!(submitted.status, StatusCode::OK);
    let id = submitted.body["id"].as_str().expect("id").to_string();
    mc.get(&format!("/batches/{id}")).await;
    let done = mc.get(&format!("/batches/{id}")).await;
    assert_eq!(done.body["status"], "finished");
    assert_eq!(done.body["total_operations"], 150);
    assert_eq!(done.body["errored_operations"], 1);
    let url = done.body["response_body_url"].as_str().expect("url").to_string();
    assert!(url.starts_with(&mc.sb.mailchimp_url()) && url.ends_with(".tar.gz"), "{url}");

    let files = mc.batch_results(&url).await;
    assert_eq!(files.len(), 2, "150 results over files of 100");
    for (name, results) in &files {
        assert!(name.ends_with(".json") && !name.contains('/'), "{name}");
        assert!(!results.is_empty());
    }
    let all: Vec<Value> = files.into_iter().flat_map(|(_, r)| r).collect();
    assert_eq!(all.len(), 150);
    let by_id = |op: &str| all.iter().find(|r| r["operation_id"] == op).cloned().expect(op);
    for r in &all {
        let keys: Vec<&String> = r.as_object().expect("object").keys().collect();
        assert_eq!(keys, ["operation_id", "response", "status_code"], "{r}");
        assert!(r["response"].is_string(), "response is a JSON string: {r}");
    }

    let ok = by_id("sf-ok");
    assert_eq!(ok["status_code"], 200);
    let member: Value = serde_json::from_str(ok["response"].as_str().expect("string")).expect("JSON");
    assert_eq!(member["email_address"], "ok@example.com");
    assert_eq!(member["status"], "subscribed");

    let bad = by_id("sf-bad-email");
    assert_eq!(bad["status_code"], 400);
    let problem: Value = serde_json::from_str(bad["response"].as_str().expect("string")).expect("JSON");
    assert_eq!(problem["status"], 400);
    assert_eq!(problem["title"], "Invalid Resource");
    assert!(problem["detail"].as_str().unwrap_or("").contains("not-an-email"), "{problem}");

    let ping = by_id("ping-147");
    assert_eq!(ping["status_code"], 200);
    assert_eq!(
        serde_json::from_str::<Value>(ping["response"].as_str().expect("string")).expect("JSON")["health_status"],
        "Everything's Chimpy!"
    );
    let members = mc.get(&format!("/lists/{list}/members")).await;
    assert_eq!(members.body["total_items"], 1, "only the valid member was added");

    // The same archive on every download; unknown or unfinished batches are 404.
    let again: Vec<Value> = mc.batch_results(&url).await.into_iter().flat_map(|(_, r)| r).collect();
    assert_eq!(again, all);
    let missing = mc.http.get(format!("{}/batch-results/nope.tar.gz", mc.sb.mailchimp_url())).send().await;
    assert_eq!(missing.expect("answered").status(), StatusCode::NOT_FOUND);
    let pending = mc
        .call(Method::POST, "/batches", Some(json!({"operations": [{"method": "GET", "path": "/ping"}]})))
        .await;
    let pending_id = pending.body["id"].as_str().expect("id");
    let early =
        mc.http.get(format!("{}/batch-results/{pending_id}.tar.gz", mc.sb.mailchimp_url())).send().await;
    assert_eq!(early.expect("answered").status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn viewers_cannot_write_and_activity_is_seedable() {
    let viewer = "abcdefabcdefabcdefabcdefabcdefab-us6";
    let seed = json!({
        "api_keys": [{"key": viewer, "role": "viewer"}],
        "lists": [{"id": "seeded0001", "name": "Seeded", "members": [
            {"email_address": "seen@example.com", "merge_fields": {"FNAME": "Seen"},
             "last_changed": "2024-01-01T00:00:00Z", "tags": ["vip"],
             "activity": [
                {"action": "sent", "timestamp": "2024-01-02T00:00:00Z", "campaign_id": "camp1"},
                {"action": "open", "timestamp": "2024-01-02T01:00:00Z", "campaign_id": "camp1"},
                {"action": "click", "timestamp": "2024-01-02T02:00:00Z", "campaign_id": "camp1", "url": "https://acme.example/x"}
             ]}
        ]}],
        "campaigns": [{"id": "camp1", "list_id": "seeded0001", "title": "January", "send_time": "2024-01-02T00:00:00Z", "emails_sent": 1}]
    });
    let mc = Mc::start(Some(seed)).await;
    let root = mc.call_as(Some(viewer), Method::GET, "/", None).await;
    assert_eq!(root.body["role"], "viewer");
    let read = mc.call_as(Some(viewer), Method::GET, "/lists/seeded0001/members", None).await;
    assert_eq!(read.body["members"][0]["tags"][0]["name"], "vip");
    let write = mc
        .call_as(
            Some(viewer),
            Method::PATCH,
            "/lists/seeded0001/members/seen@example.com",
            Some(json!({"vip": true})),
        )
        .await;
    assert_problem(&write, 403, "Forbidden");

    let feed = mc.get("/lists/seeded0001/members/seen@example.com/activity-feed").await;
    let types: Vec<&str> = feed.body["activity"]
        .as_array()
        .expect("activity")
        .iter()
        .filter_map(|a| a["activity_type"].as_str())
        .collect();
    assert_eq!(types, ["click", "open", "sent"]);
    assert_eq!(feed.body["activity"][0]["link_clicked"], "https://acme.example/x");
    assert_eq!(feed.body["activity"][0]["campaign_title"], "January");
    let opens =
        mc.get("/lists/seeded0001/members/seen@example.com/activity-feed?activity_filters=open").await;
    assert_eq!(opens.body["activity"].as_array().map(Vec::len), Some(1));

    let campaigns = mc.get("/campaigns").await;
    assert_eq!(campaigns.body["total_items"], 1);
    assert_eq!(campaigns.body["campaigns"][0]["recipients"]["list_name"], "Seeded");
    let report = mc.get("/reports/camp1/email-activity").await;
    assert_eq!(report.body["emails"][0]["email_address"], "seen@example.com");
    assert_eq!(report.body["emails"][0]["activity"].as_array().map(Vec::len), Some(2));
}
