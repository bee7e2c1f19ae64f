//! The ActiveCampaign sandbox over HTTP on loopback: auth, contact CRUD and
//! sync dedupe, list filters/paging/`meta.total`, `filters[updated_after]` with
//! the sandbox clock, custom fields and values, tags, bulk import, accounts,
//! automations, campaigns, activities, the 5 req/s limit and AC's error bodies.

use std::time::Duration;

use chrono::{DateTime, Utc};
use crmsync_sandbox::common::VendorApi;
use crmsync_sandbox::{Sandbox, SandboxOptions};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

struct Api {
    sandbox: Sandbox,
    http: reqwest::Client,
    base: String,
    token: String,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Api {
    async fn start(rate_limits: bool) -> Api {
        Self::start_with(rate_limits, None).await
    }

    async fn start_with(rate_limits: bool, seed: Option<Value>) -> Api {
        let seed = seed.map(|s| json!({ "activecampaign": s }));
        let sandbox = Sandbox::start(SandboxOptions { rate_limits, seed, ..SandboxOptions::default() })
            .await
            .expect("sandbox starts");
        let base = format!("{}/api/3", sandbox.activecampaign_url());
        let token = sandbox.credentials.activecampaign_api_token.clone();
        Api { sandbox, http: reqwest::Client::new(), base, token }
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>, token: Option<&str>) -> Reply {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.header("Api-Token", token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request reaches the sandbox");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("JSON body") };
        Reply { status, headers, body }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let token = self.token.clone();
        self.send(method, path, body, Some(&token)).await
    }

    async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn put(&self, path: &str, body: Value) -> Reply {
        self.call(Method::PUT, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> Reply {
        self.call(Method::DELETE, path, None).await
    }

    async fn sync(&self, email: &str, first: &str) -> Reply {
        self.post("/contact/sync", json!({ "contact": { "email": email, "firstName": first } })).await
    }

    fn set_clock(&self, rfc3339: &str) -> DateTime<Utc> {
        let t: DateTime<Utc> = rfc3339.parse().expect("time");
        self.sandbox.clock.set(t);
        t
    }
}

fn id_of(v: &Value) -> u64 {
    v["id"].as_str().and_then(|s| s.parse().ok()).expect("string id")
}

#[tokio::test]
async fn missing_or_wrong_token_is_403_like_ac() {
    let api = Api::start(false).await;
    for token in [None, Some("wrong")] {
        let r = api.send(Method::GET, "/contacts", None, token).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(r.body, json!({ "message": "You are not authorized to access this resource" }));
    }
    assert_eq!(api.get("/contacts").await.status, StatusCode::OK);
}

#[tokio::test]
async fn contact_crud_with_ac_bodies() {
    let api = Api::start(false).await;
    api.set_clock("2024-03-01T12:00:00Z");
    let r = api
        .post("/contacts", json!({ "contact": { "email": "ann@acme.test", "firstName": "Ann", "lastName": "Lee", "phone": "555" } }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let id = id_of(&r.body["contact"]);
    assert_eq!(r.body["contact"]["cdate"], "2024-03-01T07:00:00-05:00", "account zone, -05:00");
    assert_eq!(r.body["contact"]["email"], "ann@acme.test");

    let dup = api.post("/contacts", json!({ "contact": { "email": "ANN@acme.test" } })).await;
    assert_eq!(dup.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        dup.body,
        json!({ "errors": [{ "title": "Email address already exists in the system", "detail": "", "code": "duplicate", "source": { "pointer": "/data/attributes/email" } }] })
    );

    let got = api.get(&format!("/contacts/{id}")).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body["contact"]["firstName"], "Ann");
    assert_eq!(got.body["contact"]["phone"], "555");

    api.sandbox.clock.advance(Duration::from_secs(90));
    let put = api.put(&format!("/contacts/{id}"), json!({ "contact": { "lastName": "Lim" } })).await;
    assert_eq!(put.status, StatusCode::OK);
    assert_eq!(put.body["contact"]["lastName"], "Lim");
    assert_eq!(put.body["contact"]["firstName"], "Ann", "PUT keeps what it does not set");
    assert_eq!(put.body["contact"]["udate"], "2024-03-01T07:01:30-05:00");

    assert_eq!(api.delete(&format!("/contacts/{id}")).await.body, json!({}));
    let gone = api.get(&format!("/contacts/{id}")).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.body, json!({ "message": format!("No Result found for Subscriber with id {id}") }));
    assert_eq!(api.delete(&format!("/contacts/{id}")).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn validation_errors_are_422_with_pointers() {
    let api = Api::start(false).await;
    let missing = api.post("/contact/sync", json!({ "contact": { "firstName": "No email" } })).await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(missing.body["errors"][0]["code"], "field_missing");
    assert_eq!(missing.body["errors"][0]["source"]["pointer"], "/data/attributes/email");
    let bad = api.post("/contacts", json!({ "contact": { "email": "not-an-email" } })).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.body["errors"][0]["code"], "email_invalid");
    let ct = api.post("/contactTags", json!({ "contactTag": { "tag": "1" } })).await;
    assert_eq!(ct.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        ct.body,
        json!({ "errors": [{ "status": 422, "title": "Missing attribute", "source": { "pointer": "/data/attributes/contact" } }] })
    );
    let garbage = api.call(Method::POST, "/contacts", None).await;
    assert_eq!(garbage.status, StatusCode::UNPROCESSABLE_ENTITY, "an empty body has no email");
    assert_eq!(api.sandbox.activecampaign.state()["counts"]["contacts"], 0);
}

#[tokio::test]
async fn sync_creates_then_updates_by_email_case_insensitively() {
    let api = Api::start(false).await;
    let first = api.sync("Bob@Example.com", "Bob").await;
    assert_eq!(first.status, StatusCode::CREATED);
    let second = api.sync("bob@example.COM", "Robert").await;
    assert_eq!(second.status, StatusCode::OK, "an update answers 200");
    assert_eq!(id_of(&first.body["contact"]), id_of(&second.body["contact"]));
    let state = api.sandbox.activecampaign.state();
    assert_eq!(state["contacts"].as_array().map(Vec::len), Some(1));
    assert_eq!(state["contacts"][0]["firstName"], "Robert");
    let found = api.get("/contacts?email=BOB@example.com").await;
    assert_eq!(found.body["meta"]["total"], "1");
}

#[tokio::test]
async fn list_pages_by_id_with_meta_total_and_limit_cap() {
    let api = Api::start_with(
        false,
        Some(json!({ "generate_contacts": { "count": 250, "prefix": "p", "domain": "x.io" } })),
    )
    .await;
    let page = api.get("/contacts?limit=500").await;
    assert_eq!(page.body["contacts"].as_array().map(Vec::len), Some(100), "limit is capped at 100");
    assert_eq!(page.body["meta"]["total"], "250");
    assert_eq!(
        api.get("/contacts").await.body["contacts"].as_array().map(Vec::len),
        Some(20),
        "default limit 20"
    );

    let mut seen = Vec::new();
    let mut last = 0;
    loop {
        let r = api.get(&format!("/contacts?orders[id]=ASC&id_greater={last}&limit=100")).await;
        let contacts = r.body["contacts"].as_array().cloned().unwrap_or_default();
        assert_eq!(r.body["meta"]["total"], (250 - seen.len()).to_string());
        if contacts.is_empty() {
            break;
        }
        for c in &contacts {
            let id = id_of(c);
            assert!(id > last);
            last = id;
            seen.push(id);
        }
    }
    assert_eq!(seen.len(), 250);

    let off = api.get("/contacts?offset=240&limit=100").await;
    assert_eq!(off.body["contacts"].as_array().map(Vec::len), Some(10));
    let desc = api.get("/contacts?orders[id]=DESC&limit=1").await;
    assert_eq!(id_of(&desc.body["contacts"][0]), 250);
    let by_email = api.get("/contacts?email=p7@x.io").await;
    assert_eq!(by_email.body["meta"]["total"], "1");
    assert_eq!(by_email.body["contacts"][0]["email"], "p7@x.io");
    let like = api.get("/contacts?email_like=p24").await;
    assert_eq!(like.body["meta"]["total"], "11", "p24 and p240..p249");
    let ids = api.get("/contacts?ids=3,5&ids[]=9").await;
    assert_eq!(ids.body["meta"]["total"], "3");
    assert_eq!(api.get("/contacts?id_greater=abc").await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn updated_after_follows_the_sandbox_clock() {
    let api = Api::start(false).await;
    api.set_clock("2024-05-01T10:00:00Z");
    for i in 0..3 {
        assert_eq!(api.sync(&format!("u{i}@x.io"), "A").await.status, StatusCode::CREATED);
    }
    api.sandbox.clock.advance(Duration::from_secs(3600));
    let changed = api.sync("u1@x.io", "B").await;
    assert_eq!(changed.body["contact"]["udate"], "2024-05-01T06:00:00-05:00");

    // The reference types the filter as a date: only the date counts, read as
    // the day's start in the account time zone (UTC-5 here); `orders[udate]`
    // is not a declared sort key, so the order stays by id.
    for after in ["2024-05-01", "2024-05-01 05:30:00", "2024-05-01T10:30:00Z"] {
        let r = api.get(&format!("/contacts?filters[updated_after]={after}&orders[udate]=DESC")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body["meta"]["total"], "3", "after {after}: the whole day");
        assert_eq!(r.body["contacts"][0]["email"], "u0@x.io", "by id, not by udate");
    }
    let next_day = api.get("/contacts?filters[updated_after]=2024-05-02").await;
    assert_eq!(next_day.body["meta"]["total"], "0");
    let before = api.get("/contacts?filters[updated_before]=2024-05-02").await;
    assert_eq!(before.body["meta"]["total"], "3");
    assert_eq!(api.get("/contacts?filters[updated_after]=soon").await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn custom_fields_and_field_values() {
    let api = Api::start(false).await;
    let f = api.post("/fields", json!({ "field": { "title": "Industry", "type": "text" } })).await;
    assert_eq!(f.status, StatusCode::CREATED);
    let field = id_of(&f.body["field"]);
    assert_eq!(f.body["field"]["perstag"], "INDUSTRY");
    let dup = api.post("/fields", json!({ "field": { "title": "industry", "type": "text" } })).await;
    assert_eq!(dup.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(dup.body["errors"][0]["code"], "duplicate");
    assert_eq!(api.get("/fields").await.body["meta"]["total"], "1");

    let s = api
        .post("/contact/sync", json!({ "contact": { "email": "f@x.io", "fieldValues": [{ "field": field.to_string(), "value": "Retail" }, { "field": "999", "value": "ignored" }] } }))
        .await;
    assert_eq!(s.status, StatusCode::CREATED);
    let contact = id_of(&s.body["contact"]);
    assert_eq!(s.body["fieldValues"].as_array().map(Vec::len), Some(1), "unknown fields are ignored");
    assert_eq!(s.body["fieldValues"][0]["value"], "Retail");

    let fv = api
        .post(
            "/fieldValues",
            json!({ "fieldValue": { "contact": contact, "field": field, "value": "Finance" } }),
        )
        .await;
    assert_eq!(fv.status, StatusCode::OK);
    assert_eq!(fv.body["fieldValue"]["contact"], json!(contact));
    let fv_id = id_of(&fv.body["fieldValue"]);
    assert_eq!(fv_id, id_of(&s.body["fieldValues"][0]), "same contact+field updates the value");
    let put =
        api.put(&format!("/fieldValues/{fv_id}"), json!({ "fieldValue": { "value": ["a", "b"] } })).await;
    assert_eq!(put.body["fieldValue"]["value"], "||a||b||");

    let of = api.get(&format!("/contacts/{contact}/fieldValues")).await;
    assert_eq!(of.body["fieldValues"][0]["value"], "||a||b||");
    let listed = api.get(&format!("/fieldValues?filters[fieldid]={field}")).await;
    assert_eq!(listed.body["meta"]["total"], "1");
    assert_eq!(
        api.sandbox.activecampaign.state()["contacts"][0]["fieldValues"][field.to_string()],
        "||a||b||"
    );
    let missing = api
        .post("/fieldValues", json!({ "fieldValue": { "contact": 999, "field": field, "value": "x" } }))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn tags_and_contact_tags() {
    let api = Api::start(false).await;
    let t = api
        .post(
            "/tags",
            json!({ "tag": { "tag": "created-from-salesforce", "tagType": "contact", "description": "" } }),
        )
        .await;
    assert_eq!(t.status, StatusCode::CREATED);
    let tag = id_of(&t.body["tag"]);
    assert_eq!(
        api.post("/tags", json!({ "tag": { "tag": "Created-From-Salesforce" } })).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    api.post("/tags", json!({ "tag": { "tag": "vip" } })).await;
    let search = api.get("/tags?search=salesforce").await;
    assert_eq!(search.body["meta"]["total"], "1");
    assert_eq!(search.body["tags"][0]["tag"], "created-from-salesforce");

    let contact = id_of(&api.sync("t@x.io", "T").await.body["contact"]);
    let ct = api
        .post(
            "/contactTags",
            json!({ "contactTag": { "contact": contact.to_string(), "tag": tag.to_string() } }),
        )
        .await;
    assert_eq!(ct.status, StatusCode::CREATED);
    assert_eq!(ct.body["contactTag"]["tag"], tag.to_string());
    let again = api.post("/contactTags", json!({ "contactTag": { "contact": contact, "tag": tag } })).await;
    assert_eq!(
        id_of(&again.body["contactTag"]),
        id_of(&ct.body["contactTag"]),
        "tagging twice is idempotent"
    );
    let of = api.get(&format!("/contacts/{contact}/contactTags")).await;
    assert_eq!(of.body["contactTags"].as_array().map(Vec::len), Some(1));
    assert_eq!(api.get(&format!("/contacts?tagid={tag}")).await.body["meta"]["total"], "1");
    let no_tag = api.post("/contactTags", json!({ "contactTag": { "contact": contact, "tag": 999 } })).await;
    assert_eq!(no_tag.status, StatusCode::NOT_FOUND);
    assert_eq!(no_tag.body["errors"][0]["detail"], "Tag not found");

    let ct_id = id_of(&ct.body["contactTag"]);
    assert_eq!(api.delete(&format!("/contactTags/{ct_id}")).await.status, StatusCode::OK);
    assert_eq!(api.get(&format!("/contacts?tagid={tag}")).await.body["meta"]["total"], "0");
    assert_eq!(api.delete(&format!("/contactTags/{ct_id}")).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bulk_import_queues_then_completes_on_poll_with_dedupe() {
    let api =
        Api::start_with(false, Some(json!({ "fields": [{ "id": 3, "title": "Plan", "type": "text" }] })))
            .await;
    api.set_clock("2024-06-01T00:00:00Z");
    let existing = id_of(&api.sync("Dup@x.io", "Old").await.body["contact"]);

    let too_many: Vec<Value> = (0..251).map(|i| json!({ "email": format!("m{i}@x.io") })).collect();
    let r = api.post("/import/bulk_import", json!({ "contacts": too_many })).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["success"], 0);
    let bad = api
        .post("/import/bulk_import", json!({ "contacts": [{ "email": "ok@x.io" }, { "email": "nope" }] }))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        bad.body["failureReasons"],
        json!([{ "contact": 1, "failureReason": "Field 'email' incorrect format" }])
    );

    let contacts = json!([
        { "email": "new1@x.io", "first_name": "N1", "tags": ["created-from-salesforce"], "fields": [{ "id": 3, "value": "Gold" }], "customer_acct_name": "Acme" },
        { "email": "dup@X.io", "first_name": "New", "subscribe": [{ "listid": 1 }] },
        { "email": "new1@x.io", "last_name": "Twice" },
    ]);
    let queued = api.post("/import/bulk_import", json!({ "contacts": contacts })).await;
    assert_eq!(queued.status, StatusCode::OK);
    assert_eq!(queued.body["success"], 1);
    assert_eq!(queued.body["queued_contacts"], 3);
    let batch = queued.body["batchId"].as_str().expect("batchId").to_string();
    assert_eq!(api.get("/contacts?email=new1@x.io").await.body["meta"]["total"], "0", "not applied yet");

    let info = api.get(&format!("/import/info?batchId={batch}")).await;
    assert_eq!(info.body["status"], "completed");
    let success: Vec<String> = serde_json::from_value(info.body["success"].clone()).expect("ids");
    assert_eq!(success.len(), 3);
    assert_eq!(success[1], existing.to_string(), "dedupe by email, case-insensitive");
    assert_eq!(success[0], success[2]);
    let state = api.sandbox.activecampaign.state();
    assert_eq!(state["counts"]["contacts"], 2);
    let new1 = state["contacts"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["email"] == "new1@x.io").cloned())
        .expect("new1");
    assert_eq!(new1["firstName"], "N1");
    assert_eq!(new1["lastName"], "Twice");
    assert_eq!(new1["tags"], json!(["created-from-salesforce"]));
    assert_eq!(new1["fieldValues"]["3"], "Gold");
    assert_eq!(state["accounts"][0]["name"], "Acme");
    let dup = state["contacts"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == existing).cloned())
        .expect("dup");
    assert_eq!(dup["firstName"], "New");
    assert_eq!(dup["lists"]["1"], 1);

    let missing = api.get("/import/info").await;
    assert_eq!(missing.body, json!({ "success": 0, "message": "'batchId' is a required field." }));
    let status = api.get("/import/bulk_import").await;
    assert_eq!(status.body["recentlyCompleted"][0]["batches"], "1");
}

#[tokio::test]
async fn queued_import_applies_once_the_clock_passes_its_delay() {
    let api = Api::start(false).await;
    api.set_clock("2024-06-01T00:00:00Z");
    let r = api.post("/import/bulk_import", json!({ "contacts": [{ "email": "later@x.io" }] })).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(api.get("/contacts?email=later@x.io").await.body["meta"]["total"], "0");
    api.sandbox.clock.advance(Duration::from_secs(5));
    assert_eq!(api.get("/contacts?email=later@x.io").await.body["meta"]["total"], "1");
}

/// On a paused runtime (tokio's clock is the bucket's "real time") with the
/// sandbox clock frozen, nothing refills the bucket: the counts are exact.
#[tokio::test(start_paused = true)]
async fn burst_over_five_per_second_gets_429_with_retry_after() {
    let mut api = Api::start(true).await;
    // No idle-pool timer, so the paused clock never jumps ahead on its own.
    api.http = reqwest::Client::builder().pool_idle_timeout(None).build().expect("client");
    api.set_clock("2024-01-01T00:00:00Z");
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let r = api.get("/contacts").await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(r.headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
            assert_eq!(r.body, json!({ "message": "Too Many Requests" }));
        }
        statuses.push(r.status);
    }
    assert!(statuses[..5].iter().all(|s| *s == StatusCode::OK), "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    // A second of real (here: tokio) time refills it too.
    tokio::time::advance(Duration::from_secs(1)).await;
    for _ in 0..5 {
        assert_eq!(api.get("/contacts").await.status, StatusCode::OK);
    }
    assert_eq!(api.get("/contacts").await.status, StatusCode::TOO_MANY_REQUESTS);
    // Advancing the sandbox clock refills the bucket.
    api.sandbox.clock.advance(Duration::from_secs(1));
    assert_eq!(api.get("/contacts").await.status, StatusCode::OK);
    let calls = api.sandbox.ctx(crmsync_sandbox::common::Vendor::ActiveCampaign).telemetry.by_endpoint();
    assert_eq!(calls.get("GET /api/3/contacts"), Some(&27));
    // Switched off at run time: no more 429s.
    api.sandbox.ctx(crmsync_sandbox::common::Vendor::ActiveCampaign).set_rate_limits(false);
    for _ in 0..20 {
        assert_eq!(api.get("/contacts").await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn accounts_and_account_contacts() {
    let api = Api::start(false).await;
    let meta = api
        .post(
            "/accountCustomFieldMeta",
            json!({ "accountCustomFieldMetum": { "fieldLabel": "Employees", "fieldType": "number" } }),
        )
        .await;
    assert_eq!(meta.status, StatusCode::OK);
    let field: u64 =
        meta.body["accountCustomFieldMetum"]["id"].as_str().and_then(|s| s.parse().ok()).expect("id");
    let a = api
        .post("/accounts", json!({ "account": { "name": "Acme", "accountUrl": "https://acme.test", "fields": [{ "customFieldId": field, "fieldValue": "500" }] } }))
        .await;
    assert_eq!(a.status, StatusCode::CREATED);
    let account = id_of(&a.body["account"]);
    assert_eq!(a.body["account"]["fields"][0]["fieldValue"], "500");
    let dup = api.post("/accounts", json!({ "account": { "name": "acme" } })).await;
    assert_eq!(dup.body["errors"][0]["code"], "duplicate");
    let no_name = api.post("/accounts", json!({ "account": {} })).await;
    assert_eq!(no_name.body["errors"][0]["code"], "field_missing");
    assert_eq!(no_name.body["errors"][0]["source"]["pointer"], "/data/attributes/name");

    let put = api.put(&format!("/accounts/{account}"), json!({ "account": { "name": "Acme Corp" } })).await;
    assert_eq!(put.body["account"]["name"], "Acme Corp");
    assert_eq!(api.get("/accounts?search=corp").await.body["meta"]["total"], "1");

    let contact = id_of(&api.sync("emp@acme.test", "E").await.body["contact"]);
    let link = api
        .post(
            "/accountContacts",
            json!({ "accountContact": { "contact": contact, "account": account, "jobTitle": "CTO" } }),
        )
        .await;
    assert_eq!(link.status, StatusCode::CREATED);
    assert_eq!(link.body["accountContact"]["account"], json!(account));
    let listed = api.get(&format!("/accountContacts?filters[contact]={contact}")).await;
    assert_eq!(listed.body["accountContacts"][0]["jobTitle"], "CTO");
    assert_eq!(
        api.get(&format!("/contacts/{contact}/accountContacts")).await.body["accountContacts"][0]["account"],
        account.to_string()
    );
    let data = api.get(&format!("/accountCustomFieldData?filters[customerAccountId]={account}")).await;
    assert_eq!(data.body["accountCustomFieldData"][0]["fieldValue"], "500");
    assert_eq!(
        api.get("/accounts/999").await.body,
        json!({ "message": "No Result found for Account with id 999" })
    );
}

#[tokio::test]
async fn automations_campaigns_labels_and_activities() {
    let seed = json!({
        "contacts": [{ "id": 5, "email": "act@x.io" }],
        "automations": [
            { "id": 2, "name": "Welcome", "labels": ["Salesforce"] },
            { "id": 3, "name": "Internal", "labels": [] },
            { "id": 4, "name": "Paused", "status": "2", "labels": ["salesforce"] }
        ],
        "campaigns": [
            { "id": 7, "name": "June", "labels": ["SALESFORCE"], "sdate": "2024-06-01T10:00:00Z", "status": "5" },
            { "id": 8, "name": "Other" }
        ],
        "activities": (0..25).map(|i| json!({ "contact": 5, "type": "open", "campaign": 7, "tstamp": 1_717_236_000 + i * 60 })).collect::<Vec<_>>(),
        "trackingLogs": [{ "email": "act@x.io", "type": "open", "tstamp": "2024-06-01T10:05:00Z", "campaign": 7 }]
    });
    let api = Api::start_with(false, Some(seed)).await;
    let autos = api.get("/automations?filters[label_name]=salesforce").await;
    assert_eq!(autos.body["meta"]["total"], "2");
    let camps = api.get("/campaigns?filters[label_name]=Salesforce").await;
    assert_eq!(camps.body["meta"]["total"], "1");
    assert_eq!(camps.body["campaigns"][0]["name"], "June");
    assert_eq!(camps.body["campaigns"][0]["sdate"], "2024-06-01T05:00:00-05:00");

    let acts = api.get("/activities?contact=5&orders[tstamp]=DESC").await;
    assert_eq!(acts.body["meta"]["total"], "25");
    assert_eq!(acts.body["activities"].as_array().map(Vec::len), Some(20), "the 20 most recent");
    assert_eq!(acts.body["activities"][0]["reference_type"], "CampaignOpen");
    let newest = DateTime::from_timestamp(1_717_236_000 + 24 * 60, 0)
        .expect("ts")
        .with_timezone(&chrono::FixedOffset::west_opt(5 * 3600).expect("tz"));
    assert_eq!(acts.body["activities"][0]["tstamp"], newest.format("%Y-%m-%dT%H:%M:%S%:z").to_string());

    let add = api
        .post("/contactAutomations", json!({ "contactAutomation": { "contact": "5", "automation": "2" } }))
        .await;
    assert_eq!(add.status, StatusCode::CREATED);
    assert_eq!(add.body["contactAutomation"]["automation"], "2");
    let paused = api
        .post("/contactAutomations", json!({ "contactAutomation": { "contact": 5, "automation": 4 } }))
        .await;
    assert_eq!(paused.status, StatusCode::FORBIDDEN);
    assert_eq!(paused.body, json!({ "message": "Could not create SubscriberSeries" }));
    assert_eq!(
        api.get("/contacts/5/contactAutomations").await.body["contactAutomations"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(api.get("/contacts?seriesid=2").await.body["meta"]["total"], "1");
    let acts = api.get("/activities?contact=5&limit=1").await;
    assert_eq!(acts.body["activities"][0]["reference_type"], "AutomationEntered");

    let logs = api.get("/contacts/5/trackingLogs").await;
    assert_eq!(logs.body["trackingLogs"][0]["type"], "open");
    assert_eq!(api.get("/contacts/6/trackingLogs").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn admin_seed_state_and_reset() {
    let api = Api::start(false).await;
    let admin = format!("{}/__sandbox", api.sandbox.activecampaign_url());
    let r = api
        .http
        .post(format!("{admin}/seed"))
        .json(&json!({ "contacts": [{ "email": "s@x.io" }] }))
        .send()
        .await
        .expect("seed");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let bad = api
        .http
        .post(format!("{admin}/seed"))
        .json(&json!({ "contacts": [{ "email": "bad" }] }))
        .send()
        .await
        .expect("seed");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let state: Value =
        api.http.get(format!("{admin}/state")).send().await.expect("state").json().await.expect("json");
    assert_eq!(state["contacts"][0]["email"], "s@x.io");
    api.http.post(format!("{admin}/reset")).send().await.expect("reset");
    assert_eq!(api.get("/contacts").await.body["meta"]["total"], "0");
}
