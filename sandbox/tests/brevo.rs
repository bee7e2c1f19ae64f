//! The Brevo sandbox over HTTP on loopback: auth, contact upserts, paging with
//! `modifiedSince`, attributes, batch updates, imports and processes, lists,
//! rate limits.

use chrono::{DateTime, Utc};
use crmsync_sandbox::{Sandbox, SandboxOptions};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

struct Api {
    sandbox: Sandbox,
    http: reqwest::Client,
    base: String,
    key: String,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Api {
    async fn start(rate_limits: bool) -> Api {
        let sandbox = Sandbox::start(SandboxOptions { rate_limits, ..SandboxOptions::default() })
            .await
            .expect("sandbox starts");
        let base = format!("{}/v3", sandbox.brevo_url());
        let key = sandbox.credentials.brevo_api_key.clone();
        Api { sandbox, http: reqwest::Client::new(), base, key }
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>, key: Option<&str>) -> Reply {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(key) = key {
            req = req.header("api-key", key);
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
        self.send(method, path, body, Some(&self.key.clone())).await
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

    /// Creates a contact and returns its id.
    async fn create(&self, body: Value) -> u64 {
        let r = self.post("/contacts", body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["id"].as_u64().expect("id")
    }

    async fn create_list(&self, name: &str) -> u64 {
        let r = self.post("/contacts/lists", json!({ "name": name, "folderId": 1 })).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["id"].as_u64().expect("list id")
    }

    fn at(&self, t: &str) -> DateTime<Utc> {
        let t = DateTime::parse_from_rfc3339(t).expect("timestamp").to_utc();
        self.sandbox.clock.set(t);
        t
    }
}

fn enc(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A").replace('@', "%40")
}

mod auth {
    use super::*;

    #[tokio::test]
    async fn a_missing_or_wrong_key_is_unauthorized() {
        let api = Api::start(false).await;
        for key in [None, Some("xkeysib-wrong")] {
            let r = api.send(Method::GET, "/contacts", None, key).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED);
            assert_eq!(r.body, json!({ "code": "unauthorized", "message": "Key not found" }));
        }
        let r = api.get("/account").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body["plan"][0]["creditsType"], "sendLimit");
        assert!(r.headers.contains_key("x-sib-ratelimit-limit"));
    }

    #[tokio::test]
    async fn unknown_routes_and_bad_json_get_brevo_errors() {
        let api = Api::start(false).await;
        let r = api.get("/nothing/here").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(r.body["code"], "document_not_found");
        let resp = api
            .http
            .post(format!("{}/contacts", api.base))
            .header("api-key", &api.key)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let body: Value = resp.json().await.expect("json");
        assert_eq!(body["code"], "bad_request");
        let r = api.post("/contacts", json!({ "email": "a@example.com", "listIds": "nope" })).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.body["code"], "invalid_parameter");
    }
}

mod contacts {
    use super::*;

    #[tokio::test]
    async fn create_is_201_upsert_is_204_and_a_duplicate_is_400() {
        let api = Api::start(false).await;
        let id = api
            .create(
                json!({ "email": "Ann@Example.com", "attributes": { "FIRSTNAME": "Ann" }, "ext_id": "003A" }),
            )
            .await;

        let dup = api.post("/contacts", json!({ "email": "ann@example.com" })).await;
        assert_eq!(dup.status, StatusCode::BAD_REQUEST);
        assert_eq!(dup.body["code"], "duplicate_parameter");
        assert_eq!(dup.body["metadata"]["duplicate_identifiers"], json!(["email"]));

        let up = api
            .post(
                "/contacts",
                json!({ "email": "ann@example.com", "updateEnabled": true,
                        "attributes": { "LASTNAME": "Smith", "SMS": "+33612345678" } }),
            )
            .await;
        assert_eq!(up.status, StatusCode::NO_CONTENT);
        assert_eq!(up.body, Value::Null);

        for path in [
            format!("/contacts/{id}"),
            "/contacts/ann%40example.com".to_string(),
            "/contacts/003A?identifierType=ext_id".to_string(),
            "/contacts/%2B33612345678".to_string(),
            "/contacts/33612345678?identifierType=phone_id".to_string(),
        ] {
            let r = api.get(&path).await;
            assert_eq!(r.status, StatusCode::OK, "{path}");
            assert_eq!(r.body["id"], id);
            assert_eq!(r.body["email"], "ann@example.com");
            assert_eq!(
                r.body["attributes"],
                json!({ "FIRSTNAME": "Ann", "LASTNAME": "Smith", "SMS": "33612345678", "EXT_ID": "003A" })
            );
            assert_eq!(r.body["emailBlacklisted"], false);
            assert!(r.body["statistics"].is_object());
        }
        let missing = api.get("/contacts/nobody%40example.com").await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        assert_eq!(missing.body["code"], "document_not_found");

        // An SMS already used by Ann cannot go to another contact.
        let r = api
            .post(
                "/contacts",
                json!({ "email": "bob@example.com", "attributes": { "SMS": "0033612345678" } }),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.body["metadata"]["duplicate_identifiers"], json!(["SMS"]));
    }

    #[tokio::test]
    async fn update_change_email_blacklist_and_delete() {
        let api = Api::start(false).await;
        let id = api.create(json!({ "email": "c@example.com" })).await;
        let r = api
            .put(
                "/contacts/c%40example.com",
                json!({ "attributes": { "EMAIL": "new@example.com", "FIRSTNAME": "Cy" }, "emailBlacklisted": true }),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(api.get("/contacts/c%40example.com").await.status, StatusCode::NOT_FOUND);
        let r = api.get(&format!("/contacts/{id}")).await;
        assert_eq!(r.body["email"], "new@example.com");
        assert_eq!(r.body["emailBlacklisted"], true);
        assert_eq!(r.body["attributes"]["FIRSTNAME"], "Cy");

        // Changing a blocklisted contact's email resubscribes it (as Brevo documents).
        let r = api
            .put(&format!("/contacts/{id}"), json!({ "attributes": { "EMAIL": "newer@example.com" } }))
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(api.get(&format!("/contacts/{id}")).await.body["emailBlacklisted"], false);
        api.put(&format!("/contacts/{id}"), json!({ "attributes": { "EMAIL": "new@example.com" } })).await;

        let r = api.put("/contacts/nobody%40example.com", json!({ "attributes": {} })).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = api.put(&format!("/contacts/{id}?identifierType=bogus"), json!({})).await;
        assert_eq!(r.body["code"], "invalid_parameter");

        let r = api.call(Method::DELETE, &format!("/contacts/{id}"), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(api.get(&format!("/contacts/{id}")).await.status, StatusCode::NOT_FOUND);
        // The email is free again.
        api.create(json!({ "email": "new@example.com" })).await;
    }

    #[tokio::test]
    async fn sms_needs_a_country_code_and_some_identifier_is_required() {
        let api = Api::start(false).await;
        let r = api.post("/contacts", json!({ "attributes": { "SMS": "0612345678" } })).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.body["code"], "invalid_parameter");
        let id = api.create(json!({ "attributes": { "SMS": "+14155550100" } })).await;
        let r = api.get(&format!("/contacts/{id}")).await;
        assert_eq!(r.body.get("email"), None);
        assert_eq!(r.body["attributes"]["SMS"], "14155550100");
        let r = api.post("/contacts", json!({ "attributes": { "FIRSTNAME": "Nobody" } })).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.body["code"], "missing_parameter");
        let r = api.post("/contacts", json!({ "email": "not-an-email" })).await;
        assert_eq!(r.body["code"], "invalid_parameter");
    }

    #[tokio::test]
    async fn modified_since_pages_follow_the_clock() {
        let api = Api::start(false).await;
        api.at("2024-03-01T10:00:00Z");
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(api.create(json!({ "email": format!("p{i}@example.com") })).await);
        }
        let t1 = api.at("2024-03-01T11:00:00.250Z");
        for id in [ids[1], ids[3]] {
            let r = api.put(&format!("/contacts/{id}"), json!({ "attributes": { "FIRSTNAME": "x" } })).await;
            assert_eq!(r.status, StatusCode::NO_CONTENT);
        }
        api.at("2024-03-01T12:00:00Z");
        api.put(&format!("/contacts/{}", ids[4]), json!({ "attributes": { "LASTNAME": "y" } })).await;

        let since = enc("2024-03-01T11:00:00.250+00:00");
        let r = api.get(&format!("/contacts?modifiedSince={since}&sort=asc")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body["count"], 3);
        let got: Vec<u64> =
            r.body["contacts"].as_array().unwrap().iter().map(|c| c["id"].as_u64().unwrap()).collect();
        assert_eq!(got, vec![ids[1], ids[3], ids[4]]);
        assert_eq!(r.body["contacts"][0]["modifiedAt"], "2024-03-01T11:00:00.250+00:00");
        assert_eq!(r.body["contacts"][0]["createdAt"], "2024-03-01T10:00:00.000+00:00");

        // A later instant in another offset excludes the first two.
        let since = enc("2024-03-01T13:30:00+02:00");
        let r = api.get(&format!("/contacts?modifiedSince={since}")).await;
        assert_eq!(r.body["count"], 1);
        assert_eq!(r.body["contacts"][0]["id"], ids[4]);

        // Paging: default order is newest first; count is the total.
        let mut seen = Vec::new();
        for offset in [0, 2, 4] {
            let r = api.get(&format!("/contacts?limit=2&offset={offset}")).await;
            assert_eq!(r.body["count"], 5);
            seen.extend(r.body["contacts"].as_array().unwrap().iter().map(|c| c["id"].as_u64().unwrap()));
        }
        let mut expected = ids.clone();
        expected.reverse();
        assert_eq!(seen, expected);
        assert!(t1 < api.sandbox.clock.now());

        let r = api.get(&format!("/contacts?ids={},{}&sort=asc", ids[4], ids[0])).await;
        assert_eq!(r.body["count"], 2);
        assert_eq!(r.body["contacts"][0]["id"], ids[0]);

        let r = api.get("/contacts?limit=1001").await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let r = api.get("/contacts?modifiedSince=yesterday").await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.body["code"], "invalid_parameter");
    }

    #[tokio::test]
    async fn batch_updates_all_or_nothing() {
        let api = Api::start(false).await;
        let a = api.create(json!({ "email": "a@example.com" })).await;
        let b = api.create(json!({ "email": "b@example.com" })).await;
        let r = api
            .post(
                "/contacts/batch",
                json!({ "contacts": [
                    { "email": "a@example.com", "attributes": { "FIRSTNAME": "A" } },
                    { "id": b, "attributes": { "FIRSTNAME": "B" }, "emailBlacklisted": true },
                ] }),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(api.get(&format!("/contacts/{a}")).await.body["attributes"]["FIRSTNAME"], "A");
        assert_eq!(api.get(&format!("/contacts/{b}")).await.body["emailBlacklisted"], true);

        let r = api
            .post(
                "/contacts/batch",
                json!({ "contacts": [
                    { "email": "a@example.com", "attributes": { "FIRSTNAME": "changed" } },
                    { "email": "ghost@example.com", "attributes": { "FIRSTNAME": "G" } },
                    { "id": 999, "attributes": { "FIRSTNAME": "G" } },
                ] }),
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(
            r.body,
            json!({ "code": "document_not_found", "message": "No contact found for indexes 1,2" })
        );
        assert_eq!(api.get(&format!("/contacts/{a}")).await.body["attributes"]["FIRSTNAME"], "A");

        let many: Vec<Value> = (0..101).map(|_| json!({ "id": a })).collect();
        let r = api.post("/contacts/batch", json!({ "contacts": many })).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
}

mod attributes {
    use super::*;

    #[tokio::test]
    async fn wrong_types_are_silently_ignored() {
        let api = Api::start(false).await;
        for (category, name, body) in [
            ("normal", "DOB", json!({ "type": "date" })),
            ("normal", "SCORE", json!({ "type": "float" })),
            ("normal", "VIP", json!({ "type": "boolean" })),
            (
                "category",
                "TIER",
                json!({ "enumeration": [{ "value": 1, "label": "Gold" }, { "value": 2, "label": "Silver" }] }),
            ),
        ] {
            let r = api.post(&format!("/contacts/attributes/{category}/{name}"), body).await;
            assert_eq!(r.status, StatusCode::CREATED, "{name}: {}", r.body);
        }
        let r = api.post("/contacts/attributes/normal/score", json!({ "type": "float" })).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let r = api.post("/contacts/attributes/transactional/FLAG", json!({ "type": "boolean" })).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);

        let listed = api.get("/contacts/attributes").await.body;
        let names: Vec<&str> =
            listed["attributes"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
        assert!(names.contains(&"DOB") && names.contains(&"TIER") && names.contains(&"FIRSTNAME"));

        let good = api
            .create(json!({ "email": "g@example.com",
                "attributes": { "DOB": "1990-05-17", "SCORE": 4.5, "VIP": true, "TIER": 2, "NOT_DEFINED": "x" } }))
            .await;
        let bad = api
            .create(json!({ "email": "b@example.com",
                "attributes": { "DOB": "17/05/1990", "SCORE": "high", "VIP": "maybe", "TIER": 7, "FIRSTNAME": "Bee" } }))
            .await;
        let g = api.get(&format!("/contacts/{good}")).await.body;
        assert_eq!(
            g["attributes"],
            json!({ "DOB": "1990-05-17", "SCORE": 4.5, "VIP": true, "TIER": "Silver" })
        );
        let b = api.get(&format!("/contacts/{bad}")).await.body;
        assert_eq!(b["attributes"], json!({ "FIRSTNAME": "Bee" }));

        let r = api.call(Method::DELETE, "/contacts/attributes/normal/SCORE", None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        let g = api.get(&format!("/contacts/{good}")).await.body;
        assert_eq!(g["attributes"].get("SCORE"), None);
        let r = api.call(Method::DELETE, "/contacts/attributes/normal/SCORE", None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }
}

mod imports {
    use super::*;

    async fn poll(api: &Api, pid: u64) -> String {
        let r = api.get(&format!("/processes/{pid}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["id"], pid);
        r.body["status"].as_str().unwrap().to_string()
    }

    #[tokio::test]
    async fn json_import_runs_on_a_later_poll_and_keeps_unsubscribes() {
        let api = Api::start(false).await;
        api.at("2024-05-01T00:00:00Z");
        let list = api.create_list("Imported").await;
        let unsub = api
            .create(json!({ "email": "gone@example.com", "emailBlacklisted": true, "attributes": { "FIRSTNAME": "Old", "LASTNAME": "Keep" } }))
            .await;
        let r = api
            .post(
                "/contacts/import",
                json!({
                    "jsonBody": [
                        { "email": "new1@example.com", "attributes": { "FIRSTNAME": "One", "SMS": "+33611111111" } },
                        { "email": "GONE@example.com", "attributes": { "firstname": "New", "LASTNAME": "" } },
                        { "email": "broken", "attributes": {} },
                        { "attributes": { "SMS": "0611" } }
                    ],
                    "listIds": [list],
                    "updateExistingContacts": true
                }),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        let pid = r.body["processId"].as_u64().unwrap();
        assert_eq!(api.get("/contacts/new1%40example.com").await.status, StatusCode::NOT_FOUND);

        assert_eq!(poll(&api, pid).await, "in_process");
        assert_eq!(api.get("/contacts/new1%40example.com").await.status, StatusCode::NOT_FOUND);
        assert_eq!(poll(&api, pid).await, "completed");
        let done = api.get(&format!("/processes/{pid}")).await.body;
        assert_eq!(done["name"], "IMPORTUSER");
        assert_eq!(done["status"], "completed");
        let report_url = done["info"]["import"]["invalid_emails"].as_str().expect("a report of invalid rows");
        let csv = api.http.get(report_url).send().await.expect("report").text().await.expect("csv");
        assert_eq!(csv, "EMAIL\nbroken\n");

        let one = api.get("/contacts/new1%40example.com").await.body;
        assert_eq!(one["attributes"], json!({ "FIRSTNAME": "One", "SMS": "33611111111" }));
        assert_eq!(one["listIds"], json!([list]));
        let gone = api.get(&format!("/contacts/{unsub}")).await.body;
        assert_eq!(gone["emailBlacklisted"], true, "an import must not clear an unsubscribe");
        assert_eq!(gone["attributes"], json!({ "FIRSTNAME": "New", "LASTNAME": "Keep" }));
        assert_eq!(gone["listIds"], json!([list]));

        let state = api.get_state().await;
        let report = &state["processes"][0]["report"];
        assert_eq!(report["created"], 1);
        assert_eq!(report["updated"], 1);
        assert_eq!(report["invalid_rows"], json!([2, 3]));
        assert_eq!(report["invalid_emails"], json!(["broken"]));

        let unknown = api.get("/processes/999").await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn csv_import_with_empty_values_erasing_and_new_list() {
        let api = Api::start(false).await;
        let id = api.create(json!({ "email": "ann@example.com", "attributes": { "FIRSTNAME": "Ann", "LASTNAME": "Old" } })).await;
        let r = api
            .post(
                "/contacts/import",
                json!({
                    "fileBody": "EMAIL;FIRSTNAME;LASTNAME\nann@example.com;Anna;\nbob@example.com;Bob;Builder",
                    "newList": { "listName": "From CSV", "folderId": 1 },
                    "emptyContactsAttributes": true
                }),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
        let pid = r.body["processId"].as_u64().unwrap();
        // Unpolled imports still run once enough sandbox time has passed.
        api.sandbox.clock.advance(std::time::Duration::from_secs(11));
        let ann = api.get(&format!("/contacts/{id}")).await.body;
        assert_eq!(ann["attributes"], json!({ "FIRSTNAME": "Anna" }));
        let lists = api.get("/contacts/lists").await.body;
        assert_eq!(lists["lists"][0]["name"], "From CSV");
        assert_eq!(lists["lists"][0]["uniqueSubscribers"], 2);
        assert_eq!(poll(&api, pid).await, "completed");
    }

    #[tokio::test]
    async fn import_requests_are_checked() {
        let api = Api::start(false).await;
        let list = api.create_list("L").await;
        let r = api.post("/contacts/import", json!({ "listIds": [list] })).await;
        assert_eq!(r.body["code"], "missing_parameter");
        let r = api.post("/contacts/import", json!({ "jsonBody": [{ "email": "a@example.com" }] })).await;
        assert_eq!(r.body["code"], "missing_parameter");
        let r = api.post("/contacts/import", json!({ "jsonBody": [], "listIds": [4242] })).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let big = "x".repeat(11 * 1024 * 1024);
        let r = api.post("/contacts/import", json!({ "fileBody": big, "listIds": [list] })).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.body["code"], "invalid_parameter");
    }
}

impl Api {
    async fn get_state(&self) -> Value {
        let url = format!("{}/__sandbox/state", self.sandbox.brevo_url());
        self.http.get(url).send().await.expect("state").json().await.expect("state JSON")
    }
}

mod lists {
    use super::*;

    #[tokio::test]
    async fn add_and_remove_members() {
        let api = Api::start(false).await;
        api.at("2024-06-01T00:00:00Z");
        let list = api.create_list("Members").await;
        let a = api.create(json!({ "email": "a@example.com" })).await;
        let b =
            api.create(json!({ "email": "b@example.com", "emailBlacklisted": true, "ext_id": "X-B" })).await;

        api.at("2024-06-02T00:00:00Z");
        let r = api
            .post(
                &format!("/contacts/lists/{list}/contacts/add"),
                json!({ "emails": ["a@example.com", "ghost@example.com"] }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        assert_eq!(
            r.body,
            json!({ "contacts": { "success": ["a@example.com"], "failure": ["ghost@example.com"] } })
        );
        let r = api.post(&format!("/contacts/lists/{list}/contacts/add"), json!({ "ids": [a] })).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.body["code"], "invalid_parameter");
        let r = api.post(&format!("/contacts/lists/{list}/contacts/add"), json!({ "extIds": ["X-B"] })).await;
        assert_eq!(r.body["contacts"]["success"], json!(["X-B"]));

        let r = api.get(&format!("/contacts/lists/{list}")).await.body;
        assert_eq!(
            (r["totalSubscribers"].as_u64(), r["totalBlacklisted"].as_u64(), r["uniqueSubscribers"].as_u64()),
            (Some(1), Some(1), Some(2))
        );
        let since = enc("2024-06-02T00:00:00Z");
        let r = api.get(&format!("/contacts/lists/{list}/contacts?modifiedSince={since}")).await.body;
        assert_eq!(r["count"], 2, "joining a list modifies the contact");
        assert_eq!(api.get(&format!("/contacts/{a}")).await.body["listIds"], json!([list]));

        let r =
            api.post(&format!("/contacts/lists/{list}/contacts/remove"), json!({ "ids": [a, 999] })).await;
        assert_eq!(r.status, StatusCode::CREATED);
        assert_eq!(r.body["contacts"], json!({ "success": [a], "failure": [999] }));
        assert_eq!(api.get(&format!("/contacts/{a}")).await.body["listIds"], json!([]));
        let r = api.post(&format!("/contacts/lists/{list}/contacts/remove"), json!({ "all": true })).await;
        assert_eq!(r.body["contacts"]["total"], 1);
        assert_eq!(api.get(&format!("/contacts/{b}")).await.body["listIds"], json!([]));

        assert_eq!(api.get("/contacts/lists/777").await.status, StatusCode::NOT_FOUND);
        let r = api.post("/contacts/lists/777/contacts/add", json!({ "ids": [a] })).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn folders_hold_lists() {
        let api = Api::start(false).await;
        let r = api.post("/contacts/folders", json!({ "name": "CRM" })).await;
        assert_eq!(r.status, StatusCode::CREATED);
        let folder = r.body["id"].as_u64().unwrap();
        let r = api.post("/contacts/lists", json!({ "name": "In CRM", "folderId": folder })).await;
        let list = r.body["id"].as_u64().unwrap();
        let r = api.get(&format!("/contacts/folders/{folder}/lists")).await.body;
        assert_eq!(r["count"], 1);
        assert_eq!(r["lists"][0]["id"], list);
        let r = api.get("/contacts/folders").await.body;
        assert_eq!(r["count"], 2);
        let r = api.post("/contacts/lists", json!({ "name": "Nowhere", "folderId": 999 })).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let r = api.call(Method::DELETE, &format!("/contacts/folders/{folder}"), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(api.get(&format!("/contacts/lists/{list}")).await.status, StatusCode::NOT_FOUND);
    }
}

mod rate_limits {
    use super::*;

    #[tokio::test]
    async fn a_burst_gets_429_with_headers() {
        let api = Api::start(true).await;
        api.at("2024-07-01T00:00:00.100Z");
        let mut statuses = Vec::new();
        for _ in 0..30 {
            let r = api.get("/contacts?limit=1").await;
            for h in ["x-sib-ratelimit-limit", "x-sib-ratelimit-remaining", "x-sib-ratelimit-reset"] {
                assert!(r.headers.contains_key(h), "{h} missing");
            }
            if r.status == StatusCode::TOO_MANY_REQUESTS {
                assert_eq!(r.body["code"], "too_many_requests");
                assert_eq!(r.headers["x-sib-ratelimit-remaining"], "0");
                assert!(r.headers.get("retry-after").is_none());
            }
            statuses.push(r.status);
        }
        let limited = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
        assert_eq!(limited, 20, "the clock is frozen: 10 pass, 20 are limited");
        assert!(statuses[..10].iter().all(|s| *s == StatusCode::OK));

        // Other endpoints count separately; the next second starts afresh.
        assert_eq!(api.get("/account").await.status, StatusCode::OK);
        api.sandbox.clock.advance(std::time::Duration::from_secs(1));
        let r = api.get("/contacts").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers["x-sib-ratelimit-limit"], "10");
        assert_eq!(r.headers["x-sib-ratelimit-remaining"], "9");
    }

    #[tokio::test]
    async fn limits_off_means_no_429() {
        let api = Api::start(false).await;
        api.at("2024-07-01T00:00:00Z");
        for _ in 0..15 {
            assert_eq!(api.get("/contacts").await.status, StatusCode::OK);
        }
    }
}

mod admin {
    use super::*;

    #[tokio::test]
    async fn seed_state_and_reset() {
        let api = Api::start(false).await;
        let seed = json!({
            "attributes": [{ "name": "COMPANY", "type": "text" }],
            "folders": [{ "id": 5, "name": "CRM" }],
            "lists": [{ "id": 7, "name": "Newsletter", "folderId": 5 }],
            "contacts": [{ "id": 42, "email": "s@example.com", "ext_id": "003S",
                           "attributes": { "COMPANY": "Acme" }, "listIds": [7], "emailBlacklisted": true,
                           "createdAt": "2024-01-01T00:00:00Z", "modifiedAt": "2024-01-02T00:00:00Z" }]
        });
        let url = format!("{}/__sandbox/seed", api.sandbox.brevo_url());
        let r = api.http.post(&url).json(&seed).send().await.expect("seed");
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let c = api.get("/contacts/003S?identifierType=ext_id").await.body;
        assert_eq!(c["id"], 42);
        assert_eq!(c["modifiedAt"], "2024-01-02T00:00:00.000+00:00");
        let next = api.create(json!({ "email": "n@example.com" })).await;
        assert_eq!(next, 43);
        let state = api.get_state().await;
        assert_eq!(state["contacts"].as_array().unwrap().len(), 2);
        assert_eq!(state["lists"][0]["contactIds"], json!([42]));
        assert_eq!(state["lists"][0]["totalBlacklisted"], 1);

        let bad = json!({ "contacts": [{ "email": "x@example.com", "attributes": { "NOPE": 1 } }] });
        let r = api.http.post(&url).json(&bad).send().await.expect("seed");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);

        let calls: Value = api
            .http
            .get(format!("{}/__sandbox/calls", api.sandbox.brevo_url()))
            .send()
            .await
            .expect("calls")
            .json()
            .await
            .expect("json");
        assert_eq!(calls["by_endpoint"]["GET /v3/contacts/{identifier}"], 1);
        assert_eq!(calls["by_endpoint"]["POST /v3/contacts"], 1);

        api.http.post(format!("{}/__sandbox/reset", api.sandbox.brevo_url())).send().await.expect("reset");
        let state = api.get_state().await;
        assert_eq!(state["contacts"], json!([]));
        assert_eq!(state["folders"].as_array().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn injected_faults_use_brevo_errors() {
        let api = Api::start(false).await;
        let url = format!("{}/__sandbox/faults", api.sandbox.brevo_url());
        let rule = json!({ "endpoint": "GET /v3/contacts", "times": 1, "fault": { "kind": "status", "status": 429 } });
        api.http.post(&url).json(&rule).send().await.expect("fault");
        let r = api.get("/contacts").await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.body["code"], "too_many_requests");
        assert_eq!(r.headers["x-sib-ratelimit-remaining"], "0");
        assert_eq!(api.get("/contacts").await.status, StatusCode::OK);
    }
}
