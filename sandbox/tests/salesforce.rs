//! The Salesforce sandbox over HTTP on loopback: OAuth and session expiry, SOQL
//! filters and paging (with a `SystemModstamp` shared across a page boundary),
//! sObject Collections and Composite per-item results, validation errors, the
//! daily allocation, external-id upsert, describe, Bulk API 2.0 (with per-row
//! failures in `failedResults`), values longer than their field failing one
//! collection item or bulk row only, replication,
//! lead conversion and merge.

use std::time::Duration;

use chrono::{DateTime, Utc};
use crmsync_sandbox::common::VendorApi;
use crmsync_sandbox::{Sandbox, SandboxOptions};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const V: &str = "/services/data/v60.0";

struct Sf {
    sb: Sandbox,
    http: reqwest::Client,
    base: String,
    token: String,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    text: String,
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("valid time").with_timezone(&Utc)
}

impl Sf {
    async fn start(opts: SandboxOptions) -> Sf {
        let sb = Sandbox::start(opts).await.expect("sandbox starts");
        let base = sb.salesforce_url();
        let http = reqwest::Client::new();
        let creds = sb.credentials.clone();
        let r = http
            .post(format!("{base}/services/oauth2/token"))
            .form(&[
                ("grant_type", "refresh_token"),
                ("client_id", creds.salesforce_client_id.as_str()),
                ("client_secret", creds.salesforce_client_secret.as_str()),
                ("refresh_token", creds.salesforce_refresh_token.as_str()),
            ])
            .send()
            .await
            .expect("token call");
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.expect("token json");
        assert_eq!(body["instance_url"], json!(base));
        let token = body["access_token"].as_str().expect("token").to_string();
        Sf { sb, http, base, token }
    }

    async fn default() -> Sf {
        Sf::start(SandboxOptions { rate_limits: false, ..Default::default() }).await
    }

    fn seed(&self, v: Value) {
        self.sb.salesforce.seed(v).expect("seed accepted");
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let url = if path.starts_with("http") { path.to_string() } else { format!("{}{path}", self.base) };
        let mut rb = self.http.request(method, url).bearer_auth(&self.token);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.expect("request");
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer { status, headers, body, text }
    }

    async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None, &[]).await
    }

    async fn query(&self, soql: &str) -> Answer {
        let url =
            reqwest::Url::parse_with_params(&format!("{}{V}/query", self.base), &[("q", soql)]).expect("url");
        self.get(url.as_str()).await
    }

    async fn create(&self, object: &str, body: Value) -> Answer {
        self.call(Method::POST, &format!("{V}/sobjects/{object}"), Some(body), &[]).await
    }

    async fn shutdown(self) {
        self.sb.shutdown().await;
    }
}

fn error_code(a: &Answer) -> &str {
    a.body[0]["errorCode"].as_str().unwrap_or("")
}

#[tokio::test]
async fn oauth_sessions_expire_on_the_sandbox_clock() {
    let sf =
        Sf::start(SandboxOptions { salesforce_token_ttl: Duration::from_secs(600), ..Default::default() })
            .await;
    // Freeze the clock at "now" so the token minted by `start` ages with it.
    sf.sb.clock.set(Utc::now());
    let creds = sf.sb.credentials.clone();
    // Password grant; wrong secret and wrong refresh token fail like Salesforce.
    let token_url = format!("{}/services/oauth2/token", sf.base);
    let ok = sf
        .http
        .post(&token_url)
        .form(&[
            ("grant_type", "password"),
            ("client_id", creds.salesforce_client_id.as_str()),
            ("client_secret", creds.salesforce_client_secret.as_str()),
            ("username", creds.salesforce_username.as_str()),
            ("password", creds.salesforce_password.as_str()),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(ok.status(), StatusCode::OK);
    let body: Value = ok.json().await.expect("json");
    for key in ["access_token", "instance_url", "id", "token_type", "issued_at", "signature"] {
        assert!(body.get(key).is_some(), "missing {key}");
    }
    assert_eq!(body["token_type"], "Bearer");
    let bad = sf
        .http
        .post(&token_url)
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", creds.salesforce_client_id.as_str()),
            ("refresh_token", "nope"),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(bad.json::<Value>().await.expect("json")["error"], "invalid_grant");

    // No token / bad token: 401 INVALID_SESSION_ID.
    let r = sf.http.get(format!("{}{V}/limits", sf.base)).send().await.expect("call");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
    );

    // The token minted at start works, then expires once the clock passes the TTL.
    let fresh = sf.sb.salesforce.issue_token();
    let a = sf.get(&format!("{V}/limits")).await;
    assert_eq!(a.status, StatusCode::OK);
    sf.sb.clock.advance(Duration::from_secs(601));
    let a = sf.get(&format!("{V}/limits")).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&a), "INVALID_SESSION_ID");
    let r = sf.http.get(format!("{}{V}/limits", sf.base)).bearer_auth(&fresh).send().await.expect("call");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "a token issued before the jump expired too");

    // expire_sessions invalidates every token.
    let newer = sf.sb.salesforce.issue_token();
    let r = sf.http.get(format!("{}{V}/limits", sf.base)).bearer_auth(&newer).send().await.expect("call");
    assert_eq!(r.status(), StatusCode::OK);
    sf.http.post(format!("{}/__sandbox/expire-sessions", sf.base)).send().await.expect("admin");
    let r = sf.http.get(format!("{}{V}/limits", sf.base)).bearer_auth(&newer).send().await.expect("call");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // The versions list needs no session.
    let r = sf.http.get(format!("{}/services/data", sf.base)).send().await.expect("call");
    let versions: Value = r.json().await.expect("json");
    assert!(
        versions
            .as_array()
            .expect("list")
            .iter()
            .any(|v| v["version"] == "60.0" && v["label"] == "Spring '24")
    );
    sf.shutdown().await;
}

async fn create_leads(sf: &Sf, n: usize, prefix: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut i = 0;
    while i < n {
        let records: Vec<Value> = (i..(i + 200).min(n))
            .map(|k| json!({"attributes": {"type": "Lead"}, "LastName": format!("{prefix}{k}"), "Company": "Acme", "Email": format!("{prefix}{k}@example.com")}))
            .collect();
        let a = sf
            .call(
                Method::POST,
                &format!("{V}/composite/sobjects"),
                Some(json!({"allOrNone": true, "records": records})),
                &[],
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        for r in a.body.as_array().expect("results") {
            assert_eq!(r["success"], true, "{r}");
            ids.push(r["id"].as_str().expect("id").to_string());
        }
        i += 200;
    }
    ids
}

#[tokio::test]
async fn soql_paging_with_a_shared_modstamp_across_the_page_boundary() {
    let sf = Sf::default().await;
    let frozen = t("2024-05-01T10:00:00Z");
    sf.sb.clock.set(frozen);
    let ids = create_leads(&sf, 450, "page").await;
    assert_eq!(ids.len(), 450);

    // query + nextRecordsUrl with batchSize=200: 200 + 200 + 50, no duplicates.
    let url = reqwest::Url::parse_with_params(
        &format!("{}{V}/query", sf.base),
        &[("q", "SELECT Id, LastName, SystemModstamp FROM Lead WHERE SystemModstamp >= 2024-05-01T10:00:00Z ORDER BY SystemModstamp, Id")],
    )
    .expect("url");
    let mut a = sf.call(Method::GET, url.as_str(), None, &[("Sforce-Query-Options", "batchSize=200")]).await;
    let mut seen = Vec::new();
    let mut pages = Vec::new();
    loop {
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(a.body["totalSize"], 450);
        let records = a.body["records"].as_array().expect("records");
        pages.push(records.len());
        for r in records {
            assert_eq!(r["attributes"]["type"], "Lead");
            assert_eq!(r["SystemModstamp"], "2024-05-01T10:00:00.000+0000");
            seen.push(r["Id"].as_str().expect("id").to_string());
        }
        if a.body["done"] == true {
            assert!(a.body.get("nextRecordsUrl").is_none());
            break;
        }
        let next = a.body["nextRecordsUrl"].as_str().expect("next").to_string();
        assert!(next.starts_with("/services/data/v60.0/query/01g"), "{next}");
        a = sf.get(&next).await;
    }
    assert_eq!(pages, vec![200, 200, 50]);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 450);
    assert_eq!(seen, sorted, "ORDER BY SystemModstamp, Id is id order when stamps tie");

    // A timestamp-only cursor loses the rest of the tied page; the compound cursor does not.
    let a = sf.query("SELECT Id FROM Lead WHERE SystemModstamp > 2024-05-01T10:00:00Z ORDER BY SystemModstamp LIMIT 200").await;
    assert_eq!(a.body["totalSize"], 0, "every record shares the stamp");
    let mut cursor: Option<String> = None;
    let mut compound = Vec::new();
    for _ in 0..5 {
        let filter = match &cursor {
            None => "SystemModstamp >= 2024-05-01T10:00:00Z".to_string(),
            Some(id) => format!(
                "(SystemModstamp > 2024-05-01T10:00:00.000+0000 OR (SystemModstamp = 2024-05-01T10:00:00.000+0000 AND Id > '{id}'))"
            ),
        };
        let a = sf
            .query(&format!("SELECT Id FROM Lead WHERE {filter} ORDER BY SystemModstamp, Id LIMIT 200"))
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        let page: Vec<String> = a.body["records"]
            .as_array()
            .expect("records")
            .iter()
            .map(|r| r["Id"].as_str().unwrap_or("").to_string())
            .collect();
        if page.is_empty() {
            break;
        }
        cursor = page.last().cloned();
        compound.extend(page);
    }
    assert_eq!(compound, sorted);

    // queryAll via the SDK-style locator paging also works.
    let more = sf.query("SELECT COUNT() FROM Lead").await;
    assert_eq!(more.body, json!({"totalSize": 450, "done": true, "records": []}));
    let bad = sf.get(&format!("{V}/query/01gNOPE-200")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&bad), "INVALID_QUERY_LOCATOR");
    sf.shutdown().await;
}

#[tokio::test]
async fn soql_filters_relationships_and_errors() {
    let sf = Sf::default().await;
    sf.seed(json!({"fields": {"Contact": [
        {"name": "Interests__c", "type": "multipicklist", "values": ["Golf", "Tennis", "Chess"], "restricted": true},
        {"name": "Score__c", "type": "double", "precision": 10, "scale": 2}
    ]}}));
    sf.sb.clock.set(t("2024-06-01T00:00:00Z"));
    let acct = sf.create("Account", json!({"Name": "Globex"})).await;
    let acct_id = acct.body["id"].as_str().expect("id").to_string();
    let mut ids = Vec::new();
    for (i, (name, score, interests, optout)) in [
        ("Ann", 10.5, "Golf;Tennis", false),
        ("Bob", 20.0, "Chess", true),
        ("Cy", 30.0, "", false),
        ("Dee", 40.0, "Golf", false),
    ]
    .iter()
    .enumerate()
    {
        sf.sb.clock.advance(Duration::from_secs(60));
        let mut body = json!({"LastName": name, "Email": format!("{}@ex.com", name.to_lowercase()), "Score__c": score, "HasOptedOutOfEmail": optout, "Birthdate": format!("199{i}-01-15")});
        if !interests.is_empty() {
            body["Interests__c"] = json!(interests);
        }
        if i % 2 == 0 {
            body["AccountId"] = json!(acct_id);
        }
        let a = sf.create("Contact", body).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        ids.push(a.body["id"].as_str().expect("id").to_string());
    }
    let names = |a: &Answer| -> Vec<String> {
        a.body["records"]
            .as_array()
            .expect("records")
            .iter()
            .map(|r| r["LastName"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let cases = [
        (
            "SELECT LastName FROM Contact WHERE Score__c > 15 AND Score__c <= 40 ORDER BY Score__c DESC",
            vec!["Dee", "Cy", "Bob"],
        ),
        ("SELECT LastName FROM Contact WHERE HasOptedOutOfEmail = true", vec!["Bob"]),
        (
            "SELECT LastName FROM Contact WHERE Email LIKE 'a%' OR LastName IN ('Cy', 'dee') ORDER BY LastName",
            vec!["Ann", "Cy", "Dee"],
        ),
        (
            "SELECT LastName FROM Contact WHERE NOT (LastName = 'Ann') AND AccountId != null ORDER BY LastName",
            vec!["Cy"],
        ),
        (
            "SELECT LastName FROM Contact WHERE Interests__c INCLUDES ('Golf') ORDER BY LastName",
            vec!["Ann", "Dee"],
        ),
        ("SELECT LastName FROM Contact WHERE Birthdate < 1992-01-01 ORDER BY Birthdate", vec!["Ann", "Bob"]),
        (
            "SELECT LastName FROM Contact WHERE CreatedDate > 2024-06-01T00:02:30Z ORDER BY CreatedDate",
            vec!["Cy", "Dee"],
        ),
        (
            "SELECT LastName FROM Contact WHERE LastName NOT IN ('Ann','Bob') ORDER BY LastName DESC LIMIT 1",
            vec!["Dee"],
        ),
        ("SELECT LastName FROM Contact ORDER BY LastName LIMIT 2 OFFSET 1", vec!["Bob", "Cy"]),
        ("SELECT LastName FROM Contact WHERE Account.Name = 'Globex' ORDER BY LastName", vec!["Ann", "Cy"]),
        (
            "SELECT LastName FROM Contact WHERE CreatedDate = TODAY ORDER BY LastName",
            vec!["Ann", "Bob", "Cy", "Dee"],
        ),
    ];
    for (soql, want) in cases {
        let a = sf.query(soql).await;
        assert_eq!(a.status, StatusCode::OK, "{soql}: {}", a.text);
        assert_eq!(names(&a), want, "{soql}");
    }
    // Relationship fields nest like the real API.
    let a = sf.query(&format!("SELECT Id, Account.Name FROM Contact WHERE Id = '{}'", ids[0])).await;
    assert_eq!(a.body["records"][0]["Account"]["Name"], "Globex");
    assert_eq!(a.body["records"][0]["Account"]["attributes"]["type"], "Account");
    let a = sf.query(&format!("SELECT Id, Account.Name FROM Contact WHERE Id = '{}'", ids[1])).await;
    assert_eq!(a.body["records"][0]["Account"], Value::Null);

    // Deleted records only show in queryAll.
    let d = sf.call(Method::DELETE, &format!("{V}/sobjects/Contact/{}", ids[1]), None, &[]).await;
    assert_eq!(d.status, StatusCode::NO_CONTENT);
    let a = sf.query("SELECT COUNT() FROM Contact").await;
    assert_eq!(a.body["totalSize"], 3);
    let url = reqwest::Url::parse_with_params(
        &format!("{}{V}/queryAll", sf.base),
        &[("q", "SELECT Id, IsDeleted FROM Contact WHERE IsDeleted = true")],
    )
    .expect("url");
    let a = sf.get(url.as_str()).await;
    assert_eq!(a.body["totalSize"], 1);
    assert_eq!(a.body["records"][0]["Id"], json!(ids[1]));
    let again = sf.call(Method::DELETE, &format!("{V}/sobjects/Contact/{}", ids[1]), None, &[]).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&again), "ENTITY_IS_DELETED");

    // Errors: codes and Salesforce's positioned messages.
    let errors = [
        ("SELECT Nope FROM Contact", "INVALID_FIELD"),
        ("SELECT Id FROM Nope", "INVALID_TYPE"),
        ("SELECT Id FROM Contact WHERE", "MALFORMED_QUERY"),
        ("SELECT Id FROM Contact WHERE LastName = 'a' AND Email = 'b' OR Score__c = 1", "MALFORMED_QUERY"),
        ("SELECT Id FROM Contact WHERE CreatedDate > '2024-01-01'", "INVALID_FIELD"),
        ("SELECT Id FROM Contact WHERE Score__c = 'x'", "INVALID_FIELD"),
        ("SELECT Id FROM Contact WHERE Id = 'abc'", "INVALID_QUERY_FILTER_OPERATOR"),
        ("SELECT Id FROM Contact WHERE Description = 'x'", "INVALID_FIELD"),
    ];
    for (soql, code) in errors {
        let a = sf.query(soql).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{soql}");
        assert_eq!(error_code(&a), code, "{soql}: {}", a.text);
    }
    let a = sf.query("SELECT Nope FROM Contact").await;
    assert!(
        a.body[0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("ERROR at Row:1:Column:8\nNo such column 'Nope' on entity 'Contact'")
    );
    sf.shutdown().await;
}

#[tokio::test]
async fn collections_report_per_item_errors_and_all_or_none_rolls_back() {
    let sf = Sf::default().await;
    let records = json!([
        {"attributes": {"type": "Lead"}, "LastName": "Good", "Company": "Acme", "Email": "good@example.com"},
        {"attributes": {"type": "Lead"}, "Company": "Acme"},
        {"attributes": {"type": "Lead"}, "LastName": "Mail", "Company": "Acme", "Email": "not an email"},
        {"attributes": {"type": "Lead"}, "LastName": "x".repeat(81), "Company": "Acme"},
        {"attributes": {"type": "Lead"}, "LastName": "Status", "Company": "Acme", "Status": "Bogus"},
        {"LastName": "NoType"}
    ]);
    let a = sf
        .call(
            Method::POST,
            &format!("{V}/composite/sobjects"),
            Some(json!({"allOrNone": false, "records": records})),
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let r = a.body.as_array().expect("results");
    assert_eq!(r.len(), 6);
    assert_eq!(r[0]["success"], true);
    assert_eq!(r[0]["errors"], json!([]));
    let code = |i: usize| r[i]["errors"][0]["statusCode"].as_str().unwrap_or("").to_string();
    assert_eq!(code(1), "REQUIRED_FIELD_MISSING");
    assert_eq!(r[1]["errors"][0]["fields"], json!(["LastName"]));
    assert_eq!(r[1]["errors"][0]["message"], "Required fields are missing: [LastName]");
    assert_eq!(code(2), "INVALID_EMAIL_ADDRESS");
    assert_eq!(r[2]["errors"][0]["message"], "Email: invalid email address: not an email");
    assert_eq!(code(3), "STRING_TOO_LONG");
    assert_eq!(code(4), "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST");
    assert_eq!(code(5), "INVALID_TYPE");
    let count = sf.query("SELECT COUNT() FROM Lead").await;
    assert_eq!(count.body["totalSize"], 1);

    // allOrNone: nothing is saved, the good record reports the rollback.
    let records = json!([
        {"attributes": {"type": "Lead"}, "LastName": "A", "Company": "Acme"},
        {"attributes": {"type": "Lead"}, "Company": "Acme"}
    ]);
    let a = sf
        .call(
            Method::POST,
            &format!("{V}/composite/sobjects"),
            Some(json!({"allOrNone": true, "records": records})),
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body[0]["success"], false);
    assert_eq!(a.body[0]["errors"][0]["statusCode"], "ALL_OR_NONE_OPERATION_ROLLED_BACK");
    assert_eq!(a.body[1]["errors"][0]["statusCode"], "REQUIRED_FIELD_MISSING");
    let count = sf.query("SELECT COUNT() FROM Lead").await;
    assert_eq!(count.body["totalSize"], 1, "rolled back");

    // Update: per-item ids, unknown ids, and too many records.
    let good = r[0]["id"].as_str().expect("id").to_string();
    let a = sf
        .call(
            Method::PATCH,
            &format!("{V}/composite/sobjects"),
            Some(json!({"records": [
                {"attributes": {"type": "Lead"}, "id": good, "Title": "CTO"},
                {"attributes": {"type": "Lead"}, "id": "00Q5g00000ZZZZZ", "Title": "x"},
                {"attributes": {"type": "Lead"}, "Title": "no id"}
            ]})),
            &[],
        )
        .await;
    assert_eq!(a.body[0]["success"], true);
    assert_eq!(a.body[1]["errors"][0]["statusCode"], "INVALID_CROSS_REFERENCE_KEY");
    assert_eq!(a.body[2]["errors"][0]["statusCode"], "MISSING_ARGUMENT");
    let lead = sf.get(&format!("{V}/sobjects/Lead/{good}?fields=Title,Email")).await;
    assert_eq!(lead.body["Title"], "CTO");
    assert_eq!(lead.body["Email"], "good@example.com");
    assert!(lead.body.get("Company").is_none());

    let many: Vec<Value> = (0..201)
        .map(|i| json!({"attributes": {"type": "Lead"}, "LastName": format!("L{i}"), "Company": "C"}))
        .collect();
    let a =
        sf.call(Method::POST, &format!("{V}/composite/sobjects"), Some(json!({"records": many})), &[]).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&a), "EXCEEDED_ID_LIMIT");

    // An unknown field fails the whole request, like the real JSON parser.
    let a = sf
        .call(
            Method::POST,
            &format!("{V}/composite/sobjects"),
            Some(json!({"records": [{"attributes": {"type": "Lead"}, "Bogus__c": 1}]})),
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&a), "INVALID_FIELD");

    // Delete by ids, twice.
    let a = sf
        .call(Method::DELETE, &format!("{V}/composite/sobjects?ids={good},bad&allOrNone=false"), None, &[])
        .await;
    assert_eq!(a.body[0]["success"], true);
    assert_eq!(a.body[1]["errors"][0]["statusCode"], "MALFORMED_ID");
    let a = sf.call(Method::DELETE, &format!("{V}/composite/sobjects?ids={good}"), None, &[]).await;
    assert_eq!(a.body[0]["errors"][0]["statusCode"], "ENTITY_IS_DELETED");
    sf.shutdown().await;
}

#[tokio::test]
async fn single_record_validation_and_duplicate_rule() {
    let sf = Sf::default().await;
    sf.seed(json!({"duplicate_rules": ["Contact"]}));
    let cases = [
        (json!({"FirstName": "x"}), "REQUIRED_FIELD_MISSING"),
        (json!({"LastName": "x", "Phone": "1".repeat(41)}), "STRING_TOO_LONG"),
        (json!({"LastName": "x", "Email": "a@b"}), "INVALID_EMAIL_ADDRESS"),
        (json!({"LastName": "x", "AccountId": "garbage"}), "MALFORMED_ID"),
        (json!({"LastName": "x", "AccountId": "0015g00000ZZZZZ"}), "INVALID_CROSS_REFERENCE_KEY"),
        (json!({"LastName": "x", "AccountId": "00Q5g00000ZZZZZ"}), "FIELD_INTEGRITY_EXCEPTION"),
        (json!({"LastName": "x", "CreatedDate": "2024-01-01T00:00:00Z"}), "INVALID_FIELD_FOR_INSERT_UPDATE"),
        (json!({"LastName": "x", "Nope__c": "y"}), "INVALID_FIELD"),
        (json!({"LastName": "x", "Birthdate": "tomorrow"}), "JSON_PARSER_ERROR"),
    ];
    for (body, code) in cases {
        let a = sf.create("Contact", body.clone()).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error_code(&a), code, "{body}: {}", a.text);
    }
    let a = sf.create("Contact", json!({"LastName": "x", "Phone": "1".repeat(41)})).await;
    assert_eq!(
        a.body[0]["message"],
        format!("Phone: data value too large: {} (max length=40)", "1".repeat(41))
    );
    assert_eq!(a.body[0]["fields"], json!(["Phone"]));

    let first = sf.create("Contact", json!({"LastName": "One", "Email": "Dup@Example.com"})).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let id = first.body["id"].as_str().expect("id").to_string();
    assert_eq!(id.len(), 18);
    assert!(id.starts_with("003"));
    let dup = sf.create("Contact", json!({"LastName": "Two", "Email": "dup@example.com"})).await;
    assert_eq!(dup.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&dup), "DUPLICATES_DETECTED");
    let allowed = sf
        .call(
            Method::POST,
            &format!("{V}/sobjects/Contact"),
            Some(json!({"LastName": "Two", "Email": "dup@example.com"})),
            &[("Sforce-Duplicate-Rule-Header", "allowSave=true")],
        )
        .await;
    assert_eq!(allowed.status, StatusCode::CREATED);

    // Read, update, 404s.
    let got = sf.get(&format!("{V}/sobjects/Contact/{id}")).await;
    assert_eq!(got.body["Email"], "dup@example.com", "Salesforce stores emails lower-cased");
    assert_eq!(got.body["Name"], "One");
    assert_eq!(got.body["attributes"]["url"], format!("{V}/sobjects/Contact/{id}"));
    let upd = sf
        .call(
            Method::PATCH,
            &format!("{V}/sobjects/Contact/{id}"),
            Some(json!({"FirstName": "Uno", "Email": null})),
            &[],
        )
        .await;
    assert_eq!(upd.status, StatusCode::NO_CONTENT);
    let got = sf.get(&format!("{V}/sobjects/Contact/{id}")).await;
    assert_eq!(got.body["Name"], "Uno One");
    assert_eq!(got.body["Email"], Value::Null);
    let clear_required = sf
        .call(Method::PATCH, &format!("{V}/sobjects/Contact/{id}"), Some(json!({"LastName": ""})), &[])
        .await;
    assert_eq!(error_code(&clear_required), "REQUIRED_FIELD_MISSING");
    let missing = sf.get(&format!("{V}/sobjects/Contact/0035g00000ZZZZZAAA")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&missing), "NOT_FOUND");
    let unknown = sf.get(&format!("{V}/sobjects/Widget__c/describe")).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    sf.shutdown().await;
}

#[tokio::test]
async fn daily_allocation_is_enforced_and_reported() {
    let sf = Sf::default().await;
    sf.sb.clock.set(t("2024-07-01T08:00:00Z"));
    sf.seed(json!({"limits": {"daily_limit": 5, "used": 0}}));
    for n in 1..=4 {
        let a = sf.query("SELECT COUNT() FROM Lead").await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.headers["sforce-limit-info"], format!("api-usage={n}/5").as_str());
    }
    let limits = sf.get(&format!("{V}/limits")).await;
    assert_eq!(limits.body["DailyApiRequests"], json!({"Max": 5, "Remaining": 0}));
    let refused = sf.query("SELECT COUNT() FROM Lead").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        refused.body,
        json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
    );
    assert_eq!(refused.headers["sforce-limit-info"], "api-usage=5/5");
    // The versions list is free; a new day resets the allocation.
    let versions = sf.http.get(format!("{}/services/data", sf.base)).send().await.expect("call");
    assert_eq!(versions.status(), StatusCode::OK);
    sf.sb.clock.advance(Duration::from_secs(86_400));
    let a = sf.query("SELECT COUNT() FROM Lead").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers["sforce-limit-info"], "api-usage=1/5");
    // State reports usage for the sync engine's tests.
    let state = sf.sb.salesforce.state();
    assert_eq!(state["api_usage"], json!({"used": 1, "max": 5}));
    sf.shutdown().await;
}

#[tokio::test]
async fn upsert_by_external_id_single_and_collection() {
    let sf = Sf::default().await;
    sf.seed(json!({"fields": {
        "Contact": [{"name": "AC_Contact_Id__c", "type": "string", "length": 32, "externalId": true, "unique": true},
                    {"name": "Legacy_Id__c", "type": "string", "externalId": true}]
    }}));
    let path = format!("{V}/sobjects/Contact/AC_Contact_Id__c/ac-1");
    let a = sf
        .call(Method::PATCH, &path, Some(json!({"LastName": "Ext", "Email": "ext@example.com"})), &[])
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    assert_eq!(a.body["created"], true);
    let id = a.body["id"].as_str().expect("id").to_string();
    let a = sf.call(Method::PATCH, &path, Some(json!({"Title": "VP"})), &[]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, json!({"id": id, "success": true, "errors": [], "created": false}));
    let got = sf.get(&path).await;
    assert_eq!(got.body["Title"], "VP");
    assert_eq!(got.body["LastName"], "Ext");
    assert_eq!(got.body["AC_Contact_Id__c"], "ac-1");

    // Unique external id: a second record with the same value is refused.
    let dup = sf.create("Contact", json!({"LastName": "Dup", "AC_Contact_Id__c": "AC-1"})).await;
    assert_eq!(error_code(&dup), "DUPLICATE_VALUE");
    // Non-unique external id matching two records: 300 with both URLs.
    for n in ["A", "B"] {
        let a = sf.create("Contact", json!({"LastName": n, "Legacy_Id__c": "L-9"})).await;
        assert_eq!(a.status, StatusCode::CREATED);
    }
    let a = sf
        .call(
            Method::PATCH,
            &format!("{V}/sobjects/Contact/Legacy_Id__c/L-9"),
            Some(json!({"Title": "x"})),
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::MULTIPLE_CHOICES);
    assert_eq!(a.body.as_array().map(Vec::len), Some(2));
    let a = sf.call(Method::PATCH, &format!("{V}/sobjects/Contact/Phone/123"), Some(json!({})), &[]).await;
    assert_eq!(error_code(&a), "INVALID_FIELD");
    let a = sf.call(Method::PATCH, &format!("{V}/sobjects/Contact/Nope__c/1"), Some(json!({})), &[]).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);

    // Upsert by email (an idLookup field).
    let a = sf
        .call(
            Method::PATCH,
            &format!("{V}/sobjects/Contact/Email/ext%40example.com"),
            Some(json!({"Department": "R&D"})),
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["id"], json!(id));

    // Collections upsert: created / updated / duplicate key in one call / missing key.
    let a = sf
        .call(
            Method::PATCH,
            &format!("{V}/composite/sobjects/Contact/AC_Contact_Id__c"),
            Some(json!({"allOrNone": false, "records": [
                {"attributes": {"type": "Contact"}, "AC_Contact_Id__c": "ac-1", "Title": "CEO"},
                {"attributes": {"type": "Contact"}, "AC_Contact_Id__c": "ac-2", "LastName": "New"},
                {"attributes": {"type": "Contact"}, "AC_Contact_Id__c": "ac-3", "LastName": "Twice"},
                {"attributes": {"type": "Contact"}, "AC_Contact_Id__c": "AC-3", "LastName": "Twice"},
                {"attributes": {"type": "Contact"}, "LastName": "NoKey"},
                {"attributes": {"type": "Contact"}, "AC_Contact_Id__c": "ac-4"}
            ]})),
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let r = a.body.as_array().expect("results");
    assert_eq!(
        (r[0]["success"].clone(), r[0]["created"].clone(), r[0]["id"].clone()),
        (json!(true), json!(false), json!(id))
    );
    assert_eq!((r[1]["success"].clone(), r[1]["created"].clone()), (json!(true), json!(true)));
    assert_eq!(r[2]["errors"][0]["statusCode"], "DUPLICATE_EXTERNAL_ID");
    assert_eq!(r[3]["errors"][0]["statusCode"], "DUPLICATE_EXTERNAL_ID");
    assert_eq!(r[4]["errors"][0]["statusCode"], "MISSING_ARGUMENT");
    assert_eq!(r[5]["errors"][0]["statusCode"], "REQUIRED_FIELD_MISSING");
    let got = sf.get(&path).await;
    assert_eq!(got.body["Title"], "CEO");
    sf.shutdown().await;
}

#[tokio::test]
async fn describe_reports_types_lengths_and_picklists() {
    let sf = Sf::default().await;
    sf.seed(json!({"fields": {"Lead": [
        {"name": "AC_Sync_Status__c", "type": "picklist", "values": ["Synced successfully", "Pending next sync"]},
        {"name": "Annual_Revenue__c", "type": "currency", "precision": 18, "scale": 2},
        {"name": "Interests__c", "type": "multipicklist", "values": ["A", "B"], "restricted": true},
        {"name": "AC_Contact_Id__c", "type": "string", "length": 64, "externalId": true, "unique": true}
    ]}}));
    let a = sf.get(&format!("{V}/sobjects/Lead/describe")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["name"], "Lead");
    assert_eq!(a.body["keyPrefix"], "00Q");
    let fields = a.body["fields"].as_array().expect("fields");
    let field = |name: &str| {
        fields.iter().find(|f| f["name"] == name).cloned().unwrap_or_else(|| panic!("no field {name}"))
    };
    let expect = [
        ("Id", "id"),
        ("LastName", "string"),
        ("Email", "email"),
        ("Phone", "phone"),
        ("Status", "picklist"),
        ("AnnualRevenue", "currency"),
        ("IsConverted", "boolean"),
        ("ConvertedContactId", "reference"),
        ("ConvertedDate", "date"),
        ("SystemModstamp", "datetime"),
        ("Description", "textarea"),
        ("Annual_Revenue__c", "currency"),
        ("Interests__c", "multipicklist"),
        ("NumberOfEmployees", "int"),
    ];
    for (name, ty) in expect {
        assert_eq!(field(name)["type"], ty, "{name}");
    }
    assert_eq!(field("LastName")["length"], 80);
    assert_eq!(field("LastName")["nillable"], false);
    assert_eq!(field("Company")["nillable"], false);
    assert_eq!(field("Email")["length"], 80);
    assert_eq!(field("SystemModstamp")["createable"], false);
    assert_eq!(field("SystemModstamp")["updateable"], false);
    assert_eq!(field("Interests__c")["restrictedPicklist"], true);
    assert_eq!(field("Interests__c")["custom"], true);
    assert_eq!(field("Annual_Revenue__c")["scale"], 2);
    assert_eq!(field("AC_Contact_Id__c")["externalId"], true);
    assert_eq!(field("AC_Contact_Id__c")["length"], 64);
    let status_field = field("AC_Sync_Status__c");
    let values: Vec<&str> = status_field["picklistValues"]
        .as_array()
        .expect("values")
        .iter()
        .filter_map(|v| v["value"].as_str())
        .collect();
    assert_eq!(values, ["Synced successfully", "Pending next sync"]);
    assert_eq!(field("ConvertedContactId")["referenceTo"], json!(["Contact"]));
    // Restricted multipicklist and currency rounding are enforced on writes.
    let bad = sf.create("Lead", json!({"LastName": "x", "Company": "y", "Interests__c": "A;C"})).await;
    assert_eq!(error_code(&bad), "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST");
    let ok = sf
        .create(
            "Lead",
            json!({"LastName": "x", "Company": "y", "Interests__c": "B;A", "Annual_Revenue__c": "1234.567"}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text);
    let got = sf.get(&format!("{V}/sobjects/Lead/{}", ok.body["id"].as_str().unwrap_or(""))).await;
    assert_eq!(got.body["Annual_Revenue__c"], 1234.57);
    assert_eq!(got.body["Interests__c"], "B;A");
    assert_eq!(got.body["Status"], "Open - Not Contacted");
    let global = sf.get(&format!("{V}/sobjects")).await;
    let names: Vec<&str> =
        global.body["sobjects"].as_array().expect("list").iter().filter_map(|o| o["name"].as_str()).collect();
    assert_eq!(names, ["Lead", "Contact", "Account", "Task", "Case", "Organization"]);
    sf.shutdown().await;
}

#[tokio::test]
async fn composite_references_and_all_or_none() {
    let sf = Sf::default().await;
    let body = json!({"allOrNone": false, "compositeRequest": [
        {"method": "POST", "url": format!("{V}/sobjects/Account"), "referenceId": "acct", "body": {"Name": "Initech"}},
        {"method": "POST", "url": format!("{V}/sobjects/Contact"), "referenceId": "peter", "body": {"LastName": "Gibbons", "AccountId": "@{acct.id}"}},
        {"method": "GET", "url": format!("{V}/query?q=SELECT+Id,AccountId+FROM+Contact"), "referenceId": "q"},
        {"method": "PATCH", "url": format!("{V}/sobjects/Contact/@{{q.records[0].Id}}"), "referenceId": "upd", "body": {"Title": "Engineer"}},
        {"method": "POST", "url": format!("{V}/sobjects/Task"), "referenceId": "task", "body": {"Subject": "Call", "WhoId": "@{peter.id}", "ActivityDate": "2024-08-01"}}
    ]});
    let a = sf.call(Method::POST, &format!("{V}/composite"), Some(body), &[]).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let r = a.body["compositeResponse"].as_array().expect("responses");
    let statuses: Vec<u64> = r.iter().map(|x| x["httpStatusCode"].as_u64().unwrap_or(0)).collect();
    assert_eq!(statuses, [201, 201, 200, 204, 201], "{}", a.text);
    let acct = r[0]["body"]["id"].as_str().expect("id");
    assert!(r[0]["httpHeaders"]["Location"].as_str().unwrap_or("").ends_with(acct));
    assert_eq!(r[2]["body"]["records"][0]["AccountId"], json!(acct));
    let task = sf.get(&format!("{V}/sobjects/Task/{}", r[4]["body"]["id"].as_str().unwrap_or(""))).await;
    assert_eq!(task.body["WhoId"], r[1]["body"]["id"]);
    assert_eq!(task.body["Status"], "Not Started");

    // allOrNone: the second subrequest fails, the first is rolled back.
    let body = json!({"allOrNone": true, "compositeRequest": [
        {"method": "POST", "url": format!("{V}/sobjects/Account"), "referenceId": "a1", "body": {"Name": "Rolled Back"}},
        {"method": "POST", "url": format!("{V}/sobjects/Contact"), "referenceId": "c1", "body": {"FirstName": "NoLast"}},
        {"method": "POST", "url": format!("{V}/sobjects/Account"), "referenceId": "a2", "body": {"Name": "Never"}}
    ]});
    let a = sf.call(Method::POST, &format!("{V}/composite"), Some(body), &[]).await;
    let r = a.body["compositeResponse"].as_array().expect("responses");
    assert_eq!(r.len(), 3);
    assert_eq!(r[1]["body"][0]["errorCode"], "REQUIRED_FIELD_MISSING");
    assert_eq!(r[0]["body"][0]["errorCode"], "PROCESSING_HALTED");
    assert_eq!(r[2]["body"][0]["errorCode"], "PROCESSING_HALTED");
    let count = sf.query("SELECT COUNT() FROM Account").await;
    assert_eq!(count.body["totalSize"], 1);
    // More than 25 subrequests is refused; the composite counts as one API call.
    let subs: Vec<Value> = (0..26)
        .map(|i| json!({"method": "GET", "url": format!("{V}/limits"), "referenceId": format!("r{i}")}))
        .collect();
    let before = sf.sb.salesforce.api_usage().0;
    let a =
        sf.call(Method::POST, &format!("{V}/composite"), Some(json!({"compositeRequest": subs})), &[]).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(sf.sb.salesforce.api_usage().0, before + 1);
    sf.shutdown().await;
}

#[tokio::test]
async fn bulk_ingest_upsert_and_query_jobs() {
    let sf = Sf::default().await;
    sf.seed(json!({"fields": {"Contact": [{"name": "AC_Contact_Id__c", "type": "string", "externalId": true, "unique": true}]}}));
    sf.seed(json!({"records": {"Account": [{"Name": "Umbrella", "AccountNumber": "U-1"}]}}));
    let job = sf
        .call(
            Method::POST,
            &format!("{V}/jobs/ingest"),
            Some(json!({"object": "Contact", "operation": "upsert", "externalIdFieldName": "AC_Contact_Id__c", "contentType": "CSV", "lineEnding": "LF"})),
            &[],
        )
        .await;
    assert_eq!(job.status, StatusCode::OK, "{}", job.text);
    assert_eq!(job.body["state"], "Open");
    let id = job.body["id"].as_str().expect("job id").to_string();
    assert!(id.starts_with("750"));
    let csv = "AC_Contact_Id__c,LastName,Email,Birthdate\nb-1,One,one@example.com,1990-02-03\nb-2,Two,bad-email,\nb-3,Three,three@example.com,\n";
    let up = sf
        .http
        .put(format!("{}{V}/jobs/ingest/{id}/batches", sf.base))
        .bearer_auth(&sf.token)
        .header("Content-Type", "text/csv")
        .body(csv)
        .send()
        .await
        .expect("upload");
    assert_eq!(up.status(), StatusCode::CREATED);
    let closed = sf
        .call(Method::PATCH, &format!("{V}/jobs/ingest/{id}"), Some(json!({"state": "UploadComplete"})), &[])
        .await;
    assert_eq!(closed.body["state"], "UploadComplete");
    let info = sf.get(&format!("{V}/jobs/ingest/{id}")).await;
    assert_eq!(info.body["state"], "JobComplete");
    assert_eq!(info.body["numberRecordsProcessed"], 3);
    assert_eq!(info.body["numberRecordsFailed"], 1);
    let ok = sf.get(&format!("{V}/jobs/ingest/{id}/successfulResults")).await;
    let mut lines = ok.text.lines();
    assert_eq!(
        lines.next(),
        Some("\"sf__Id\",\"sf__Created\",\"AC_Contact_Id__c\",\"LastName\",\"Email\",\"Birthdate\"")
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 2);
    assert!(rows[0].contains("\"true\",\"b-1\",\"One\""), "{}", rows[0]);
    let failed = sf.get(&format!("{V}/jobs/ingest/{id}/failedResults")).await;
    assert!(
        failed.text.contains("INVALID_EMAIL_ADDRESS:Email: invalid email address: bad-email:Email --"),
        "{}",
        failed.text
    );
    let q = sf.query("SELECT LastName, Birthdate FROM Contact WHERE AC_Contact_Id__c = 'b-1'").await;
    assert_eq!(q.body["records"][0]["Birthdate"], "1990-02-03");

    // A second upsert updates (sf__Created false) and links the Account by its external id... via Id lookup.
    let job2 = sf
        .call(Method::POST, &format!("{V}/jobs/ingest"), Some(json!({"object": "Contact", "operation": "upsert", "externalIdFieldName": "AC_Contact_Id__c"})), &[])
        .await;
    let id2 = job2.body["id"].as_str().expect("id").to_string();
    let acct = sf.query("SELECT Id FROM Account").await;
    let acct_id = acct.body["records"][0]["Id"].as_str().expect("account").to_string();
    let csv = format!("AC_Contact_Id__c,Title,AccountId\nb-1,Boss,{acct_id}\n");
    sf.http
        .put(format!("{}{V}/jobs/ingest/{id2}/batches", sf.base))
        .bearer_auth(&sf.token)
        .body(csv)
        .send()
        .await
        .expect("upload");
    sf.call(Method::PATCH, &format!("{V}/jobs/ingest/{id2}"), Some(json!({"state": "UploadComplete"})), &[])
        .await;
    let ok = sf.get(&format!("{V}/jobs/ingest/{id2}/successfulResults")).await;
    assert!(ok.text.lines().nth(1).unwrap_or("").contains("\"false\",\"b-1\",\"Boss\""), "{}", ok.text);
    let q = sf.query("SELECT Title, Account.Name FROM Contact WHERE AC_Contact_Id__c = 'b-1'").await;
    assert_eq!(q.body["records"][0]["Title"], "Boss");
    assert_eq!(q.body["records"][0]["Account"]["Name"], "Umbrella");

    // A bad header fails the job; an unknown job is 404.
    let job3 = sf
        .call(
            Method::POST,
            &format!("{V}/jobs/ingest"),
            Some(json!({"object": "Lead", "operation": "insert"})),
            &[],
        )
        .await;
    let id3 = job3.body["id"].as_str().expect("id").to_string();
    sf.http
        .put(format!("{}{V}/jobs/ingest/{id3}/batches", sf.base))
        .bearer_auth(&sf.token)
        .body("Nope\nx\n")
        .send()
        .await
        .expect("upload");
    sf.call(Method::PATCH, &format!("{V}/jobs/ingest/{id3}"), Some(json!({"state": "UploadComplete"})), &[])
        .await;
    let info = sf.get(&format!("{V}/jobs/ingest/{id3}")).await;
    assert_eq!(info.body["state"], "Failed");
    assert_eq!(info.body["errorMessage"], "InvalidBatch : Field name not found : Nope");
    assert_eq!(sf.get(&format!("{V}/jobs/ingest/7505g00000NOPEAAA")).await.status, StatusCode::NOT_FOUND);
    let no_ext = sf
        .call(
            Method::POST,
            &format!("{V}/jobs/ingest"),
            Some(json!({"object": "Contact", "operation": "upsert"})),
            &[],
        )
        .await;
    assert_eq!(no_ext.status, StatusCode::BAD_REQUEST);

    // Query job with locator paging.
    sf.seed(json!({"generate": {"Lead": 5}}));
    let qj = sf
        .call(
            Method::POST,
            &format!("{V}/jobs/query"),
            Some(json!({"operation": "query", "query": "SELECT Id, Email FROM Lead ORDER BY Email"})),
            &[],
        )
        .await;
    assert_eq!(qj.status, StatusCode::OK, "{}", qj.text);
    let qid = qj.body["id"].as_str().expect("id").to_string();
    assert_eq!(sf.get(&format!("{V}/jobs/query/{qid}")).await.body["state"], "JobComplete");
    let mut emails = Vec::new();
    let mut locator = String::new();
    loop {
        let url = format!(
            "{V}/jobs/query/{qid}/results?maxRecords=2{}",
            if locator.is_empty() { String::new() } else { format!("&locator={locator}") }
        );
        let page = sf.get(&url).await;
        assert_eq!(page.status, StatusCode::OK);
        let mut lines = page.text.lines();
        assert_eq!(lines.next(), Some("\"Id\",\"Email\""));
        let rows: Vec<String> =
            lines.map(|l| l.split(',').nth(1).unwrap_or("").trim_matches('"').to_string()).collect();
        assert_eq!(page.headers["sforce-numberofrecords"], rows.len().to_string().as_str());
        emails.extend(rows);
        locator = page.headers["sforce-locator"].to_str().unwrap_or("null").to_string();
        if locator == "null" {
            break;
        }
    }
    assert_eq!(emails, (0..5).map(|i| format!("gen-lead-{i}@example.com")).collect::<Vec<_>>());
    sf.shutdown().await;
}

#[tokio::test]
async fn replication_conversion_and_merge() {
    let sf = Sf::default().await;
    sf.sb.clock.set(t("2024-09-10T09:00:00Z"));
    let lead = sf
        .create(
            "Lead",
            json!({"FirstName": "Lea", "LastName": "Convert", "Company": "Hooli", "Email": "lea@hooli.com"}),
        )
        .await;
    let lead_id = lead.body["id"].as_str().expect("id").to_string();
    let c1 = sf.create("Contact", json!({"LastName": "Keep", "Email": "k@x.com"})).await.body["id"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let c2 = sf.create("Contact", json!({"LastName": "Lose", "Email": "l@x.com"})).await.body["id"]
        .as_str()
        .unwrap_or("")
        .to_string();
    sf.sb.clock.advance(Duration::from_secs(600));

    // Convert via the sandbox-only Apex route.
    let conv = sf
        .call(
            Method::POST,
            "/services/apexrest/crmsync-sandbox/convert",
            Some(json!({"leadId": lead_id})),
            &[],
        )
        .await;
    assert_eq!(conv.status, StatusCode::OK, "{}", conv.text);
    let contact_id = conv.body["contactId"].as_str().expect("contact").to_string();
    let got = sf.get(&format!("{V}/sobjects/Lead/{lead_id}")).await;
    assert_eq!(got.body["IsConverted"], true);
    assert_eq!(got.body["ConvertedContactId"], json!(contact_id));
    assert_eq!(got.body["ConvertedAccountId"], conv.body["accountId"]);
    assert_eq!(got.body["Status"], "Closed - Converted");
    assert_eq!(got.body["SystemModstamp"], "2024-09-10T09:10:00.000+0000");
    let contact = sf.get(&format!("{V}/sobjects/Contact/{contact_id}")).await;
    assert_eq!(contact.body["Email"], "lea@hooli.com");
    assert_eq!(contact.body["AccountId"], conv.body["accountId"]);
    let edit = sf
        .call(Method::PATCH, &format!("{V}/sobjects/Lead/{lead_id}"), Some(json!({"Title": "x"})), &[])
        .await;
    assert_eq!(error_code(&edit), "CANNOT_UPDATE_CONVERTED_LEAD");

    // Merge in-process: the loser is deleted with MasterRecordId.
    sf.sb.salesforce.merge("Contact", &c1, &[c2.as_str()]).expect("merge");
    let url = reqwest::Url::parse_with_params(
        &format!("{}{V}/queryAll", sf.base),
        &[("q", format!("SELECT Id, IsDeleted, MasterRecordId FROM Contact WHERE Id = '{c2}'"))],
    )
    .expect("url");
    let a = sf.get(url.as_str()).await;
    assert_eq!(a.body["records"][0]["IsDeleted"], true);
    assert_eq!(a.body["records"][0]["MasterRecordId"], json!(c1));

    // getUpdated / getDeleted over the window.
    sf.sb.clock.advance(Duration::from_secs(600));
    let upd = sf
        .get(&format!(
            "{V}/sobjects/Contact/updated/?start=2024-09-10T09:05:00%2B00:00&end=2024-09-10T09:30:00%2B00:00"
        ))
        .await;
    assert_eq!(upd.status, StatusCode::OK, "{}", upd.text);
    let ids: Vec<&str> = upd.body["ids"].as_array().expect("ids").iter().filter_map(Value::as_str).collect();
    assert!(
        ids.contains(&contact_id.as_str()) && ids.contains(&c1.as_str()) && !ids.contains(&c2.as_str()),
        "{ids:?}"
    );
    assert_eq!(upd.body["latestDateCovered"], "2024-09-10T09:20:00.000+0000");
    let del = sf
        .get(&format!("{V}/sobjects/Contact/deleted/?start=2024-09-10T09:00:00Z&end=2024-09-10T09:30:00Z"))
        .await;
    assert_eq!(
        del.body["deletedRecords"],
        json!([{"id": c2, "deletedDate": "2024-09-10T09:10:00.000+0000"}])
    );
    let old = sf
        .get(&format!("{V}/sobjects/Contact/deleted/?start=2024-07-01T00:00:00Z&end=2024-09-10T09:30:00Z"))
        .await;
    assert_eq!(error_code(&old), "INVALID_REPLICATION_DATE");
    sf.shutdown().await;
}

#[tokio::test]
async fn injected_faults_use_salesforce_error_shapes() {
    let sf = Sf::default().await;
    let admin = format!("{}/__sandbox/faults", sf.base);
    let faults = json!([
        {"endpoint": "/query", "times": 1, "fault": {"kind": "status", "status": 503}},
        {"endpoint": "/limits", "times": 1, "fault": {"kind": "expire_session"}}
    ]);
    let r = sf.http.post(&admin).json(&faults).send().await.expect("admin");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let a = sf.query("SELECT Id FROM Lead").await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(&a), "SERVER_UNAVAILABLE");
    assert_eq!(sf.query("SELECT Id FROM Lead").await.status, StatusCode::OK, "the fault was used up");
    let a = sf.get(&format!("{V}/limits")).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&a), "INVALID_SESSION_ID");
    // The calls are counted per endpoint template.
    let calls: Value = sf
        .http
        .get(format!("{}/__sandbox/calls", sf.base))
        .send()
        .await
        .expect("calls")
        .json()
        .await
        .expect("json");
    assert_eq!(calls["by_endpoint"]["GET /services/data/{version}/query"], 2);
    sf.shutdown().await;
}

/// A seeded custom text field of length 10 and an external id, for the
/// per-item length tests.
fn seed_nickname(sf: &Sf) {
    sf.seed(json!({"fields": {"Contact": [
        {"name": "Nickname__c", "type": "string", "length": 10},
        {"name": "Ext_Id__c", "type": "string", "length": 20, "externalId": true, "unique": true}
    ]}}));
}

const TEN: &str = "éèêëàâäôöû"; // 10 characters, 20 bytes: the limit counts characters
const ELEVEN: &str = "abcdefghijk";

fn item_error(item: &Value) -> (&str, &str, Value) {
    let e = &item["errors"][0];
    (e["statusCode"].as_str().unwrap_or(""), e["message"].as_str().unwrap_or(""), e["fields"].clone())
}

#[tokio::test]
async fn collections_fail_only_the_item_whose_value_is_longer_than_its_field() {
    let sf = Sf::default().await;
    seed_nickname(&sf);
    // The limit a client reads from describe is the one enforced.
    let d = sf.get(&format!("{V}/sobjects/Contact/describe")).await;
    let nick =
        d.body["fields"].as_array().expect("fields").iter().find(|f| f["name"] == "Nickname__c").cloned();
    assert_eq!(nick.expect("Nickname__c described")["length"], 10);

    // Create, allOrNone=false: 200, the middle item alone fails.
    let a = sf
        .call(
            Method::POST,
            &format!("{V}/composite/sobjects"),
            Some(json!({"allOrNone": false, "records": [
                {"attributes": {"type": "Contact"}, "LastName": "A", "Nickname__c": TEN},
                {"attributes": {"type": "Contact"}, "LastName": "B", "Nickname__c": ELEVEN},
                {"attributes": {"type": "Contact"}, "LastName": "C", "Nickname__c": "c"}
            ]})),
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let r = a.body.as_array().expect("results").clone();
    assert_eq!(r.len(), 3);
    assert_eq!((r[0]["success"].clone(), r[2]["success"].clone()), (json!(true), json!(true)));
    assert_eq!(r[1]["success"], false);
    assert!(r[1].get("id").is_none_or(Value::is_null), "a failed create has no id: {}", r[1]);
    assert_eq!(
        item_error(&r[1]),
        (
            "STRING_TOO_LONG",
            "Nickname: data value too large: abcdefghijk (max length=10)",
            json!(["Nickname__c"])
        )
    );
    let q = sf.query("SELECT LastName, Nickname__c FROM Contact ORDER BY LastName").await;
    assert_eq!(q.body["totalSize"], 2);
    assert_eq!(q.body["records"][0]["Nickname__c"], TEN);
    let (a_id, c_id) =
        (r[0]["id"].as_str().expect("id").to_string(), r[2]["id"].as_str().expect("id").to_string());

    // Update: the too-long change fails that record only and leaves it as it was.
    let a = sf
        .call(
            Method::PATCH,
            &format!("{V}/composite/sobjects"),
            Some(json!({"allOrNone": false, "records": [
                {"attributes": {"type": "Contact"}, "id": a_id, "Nickname__c": ELEVEN},
                {"attributes": {"type": "Contact"}, "id": c_id, "Nickname__c": "cc"}
            ]})),
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body[0]["success"], false);
    assert_eq!(a.body[0]["id"], json!(a_id));
    assert_eq!(item_error(&a.body[0]).0, "STRING_TOO_LONG");
    assert_eq!(a.body[1]["success"], true);
    let got = sf.get(&format!("{V}/sobjects/Contact/{a_id}?fields=Nickname__c")).await;
    assert_eq!(got.body["Nickname__c"], TEN, "unchanged");
    let got = sf.get(&format!("{V}/sobjects/Contact/{c_id}?fields=Nickname__c")).await;
    assert_eq!(got.body["Nickname__c"], "cc");

    // Upsert by external id: the too-long item (value or key) fails alone.
    let a = sf
        .call(
            Method::PATCH,
            &format!("{V}/composite/sobjects/Contact/Ext_Id__c"),
            Some(json!({"allOrNone": false, "records": [
                {"attributes": {"type": "Contact"}, "Ext_Id__c": "x-1", "LastName": "D", "Nickname__c": ELEVEN},
                {"attributes": {"type": "Contact"}, "Ext_Id__c": "x-2", "LastName": "E"},
                {"attributes": {"type": "Contact"}, "Ext_Id__c": "k".repeat(21), "LastName": "F"}
            ]})),
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body[0]["success"], false);
    assert_eq!(item_error(&a.body[0]).0, "STRING_TOO_LONG");
    assert_eq!(item_error(&a.body[0]).2, json!(["Nickname__c"]));
    assert_eq!(a.body[1]["success"], true);
    assert_eq!(a.body[1]["created"], true);
    assert_eq!(a.body[2]["success"], false);
    assert_eq!(item_error(&a.body[2]).0, "STRING_TOO_LONG");
    assert_eq!(item_error(&a.body[2]).2, json!(["Ext_Id__c"]));
    assert_eq!(sf.query("SELECT COUNT() FROM Contact").await.body["totalSize"], 3);

    // allOrNone=true: one too-long value rolls back the whole call.
    let a = sf
        .call(
            Method::POST,
            &format!("{V}/composite/sobjects"),
            Some(json!({"allOrNone": true, "records": [
                {"attributes": {"type": "Contact"}, "LastName": "G"},
                {"attributes": {"type": "Contact"}, "LastName": "H", "Nickname__c": ELEVEN}
            ]})),
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(item_error(&a.body[0]).0, "ALL_OR_NONE_OPERATION_ROLLED_BACK");
    assert_eq!(item_error(&a.body[1]).0, "STRING_TOO_LONG");
    assert_eq!(sf.query("SELECT COUNT() FROM Contact").await.body["totalSize"], 3, "nothing saved");
    sf.shutdown().await;
}

/// Runs one Bulk API 2.0 ingest job to completion; answers the final job info.
async fn run_ingest(sf: &Sf, job: Value, csv: &str) -> (String, Value) {
    let created = sf.call(Method::POST, &format!("{V}/jobs/ingest"), Some(job), &[]).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    let id = created.body["id"].as_str().expect("job id").to_string();
    let up = sf
        .http
        .put(format!("{}{V}/jobs/ingest/{id}/batches", sf.base))
        .bearer_auth(&sf.token)
        .header("Content-Type", "text/csv")
        .body(csv.to_string())
        .send()
        .await
        .expect("upload");
    assert_eq!(up.status(), StatusCode::CREATED);
    let closed = sf
        .call(Method::PATCH, &format!("{V}/jobs/ingest/{id}"), Some(json!({"state": "UploadComplete"})), &[])
        .await;
    assert_eq!(closed.status, StatusCode::OK, "{}", closed.text);
    let info = sf.get(&format!("{V}/jobs/ingest/{id}")).await;
    (id, info.body)
}

/// A results CSV as (header, rows).
fn parse_csv(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().expect("header").iter().map(str::to_string).collect();
    let rows = reader.records().map(|r| r.expect("row").iter().map(str::to_string).collect()).collect();
    (header, rows)
}

#[tokio::test]
async fn bulk_ingest_reports_too_long_values_in_failed_results_and_completes() {
    let sf = Sf::default().await;
    seed_nickname(&sf);
    let csv = format!("LastName,Nickname__c\nA,{TEN}\nB,{ELEVEN}\nC,c\n");
    let (id, info) =
        run_ingest(&sf, json!({"object": "Contact", "operation": "insert", "lineEnding": "LF"}), &csv).await;
    assert_eq!(info["state"], "JobComplete", "a bad row does not fail the job: {info}");
    assert_eq!(info["numberRecordsProcessed"], 3);
    assert_eq!(info["numberRecordsFailed"], 1);
    assert!(info["errorMessage"].is_null() || info.get("errorMessage").is_none(), "{info}");

    let failed = sf.get(&format!("{V}/jobs/ingest/{id}/failedResults")).await;
    assert_eq!(failed.status, StatusCode::OK);
    let (header, rows) = parse_csv(&failed.text);
    assert_eq!(header, ["sf__Id", "sf__Error", "LastName", "Nickname__c"]);
    assert_eq!(rows.len(), 1, "{}", failed.text);
    assert_eq!(rows[0][0], "", "a failed insert has no id");
    assert_eq!(
        rows[0][1],
        "STRING_TOO_LONG:Nickname: data value too large: abcdefghijk (max length=10):Nickname__c --"
    );
    assert_eq!(rows[0][2..], ["B", ELEVEN]);

    let ok = sf.get(&format!("{V}/jobs/ingest/{id}/successfulResults")).await;
    let (header, rows) = parse_csv(&ok.text);
    assert_eq!(header, ["sf__Id", "sf__Created", "LastName", "Nickname__c"]);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][1..], ["true", "A", TEN]);
    assert_eq!(rows[1][1..], ["true", "C", "c"]);
    assert_eq!(sf.query("SELECT COUNT() FROM Contact").await.body["totalSize"], 2);

    // An update job: the failed row keeps its id, the record keeps its value.
    let (a_id, c_id) = (rows[0][0].clone(), rows[1][0].clone());
    let csv = format!("Id,Nickname__c\n{a_id},{ELEVEN}\n{c_id},cc\n");
    let (id, info) = run_ingest(&sf, json!({"object": "Contact", "operation": "update"}), &csv).await;
    assert_eq!(info["state"], "JobComplete");
    assert_eq!(info["numberRecordsFailed"], 1);
    let failed = sf.get(&format!("{V}/jobs/ingest/{id}/failedResults")).await;
    let (_, rows) = parse_csv(&failed.text);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][0], a_id);
    assert!(rows[0][1].starts_with("STRING_TOO_LONG:"), "{}", rows[0][1]);
    let got = sf.get(&format!("{V}/sobjects/Contact/{a_id}?fields=Nickname__c")).await;
    assert_eq!(got.body["Nickname__c"], TEN);
    let got = sf.get(&format!("{V}/sobjects/Contact/{c_id}?fields=Nickname__c")).await;
    assert_eq!(got.body["Nickname__c"], "cc");

    // A row with more or fewer cells than the header fails alone too, and is
    // listed in failedResults with its cells under the header's columns.
    let csv = "LastName,Nickname__c\nP,p,extra\nQ\nR,r\n";
    let (id, info) = run_ingest(&sf, json!({"object": "Contact", "operation": "insert"}), csv).await;
    assert_eq!(info["state"], "JobComplete");
    assert_eq!(info["numberRecordsProcessed"], 3);
    assert_eq!(info["numberRecordsFailed"], 2);
    let failed = sf.get(&format!("{V}/jobs/ingest/{id}/failedResults")).await;
    let (header, rows) = parse_csv(&failed.text);
    assert_eq!(header, ["sf__Id", "sf__Error", "LastName", "Nickname__c"]);
    assert_eq!(rows.len(), 2, "every failed row is listed: {}", failed.text);
    assert_eq!(rows[0][2..], ["P", "p"]);
    assert_eq!(rows[1][2..], ["Q", ""]);
    for row in &rows {
        assert!(row[1].starts_with("INVALID_FIELD:") && row[1].ends_with(" --"), "{}", row[1]);
    }
    let ok = sf.get(&format!("{V}/jobs/ingest/{id}/successfulResults")).await;
    assert_eq!(parse_csv(&ok.text).1.len(), 1);
    sf.shutdown().await;
}

#[tokio::test]
async fn limits_and_the_limit_header_read_one_counter() {
    let sf = Sf::default().await;
    sf.sb.clock.set(t("2024-07-01T08:00:00Z"));
    sf.seed(json!({"limits": {"daily_limit": 100, "used": 40}}));
    // `GET /limits` counts as a call, and its body and header agree on the result.
    let check = |a: &Answer, used: u64| {
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(a.headers["sforce-limit-info"], format!("api-usage={used}/100").as_str());
        assert_eq!(a.body["DailyApiRequests"], json!({"Max": 100, "Remaining": 100 - used}));
    };
    check(&sf.get(&format!("{V}/limits")).await, 41);
    let q = sf.query("SELECT COUNT() FROM Lead").await;
    assert_eq!(q.headers["sforce-limit-info"], "api-usage=42/100");
    // A composite call with two subrequests counts once.
    let subs = json!([
        {"method": "GET", "url": format!("{V}/query?q=SELECT+Id+FROM+Lead"), "referenceId": "a"},
        {"method": "GET", "url": format!("{V}/query?q=SELECT+Id+FROM+Contact"), "referenceId": "b"}
    ]);
    let c =
        sf.call(Method::POST, &format!("{V}/composite"), Some(json!({"compositeRequest": subs})), &[]).await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.text);
    assert_eq!(c.headers["sforce-limit-info"], "api-usage=43/100");
    check(&sf.get(&format!("{V}/limits")).await, 44);
    // Usage set from outside shows in both; spent, /limits itself is refused.
    sf.sb.salesforce.set_api_usage(98, None);
    check(&sf.get(&format!("{V}/limits")).await, 99);
    check(&sf.get(&format!("{V}/limits")).await, 100);
    let refused = sf.get(&format!("{V}/limits")).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.headers["sforce-limit-info"], "api-usage=100/100");
    assert_eq!(error_code(&refused), "REQUEST_LIMIT_EXCEEDED");
    assert_eq!(sf.sb.salesforce.api_usage(), (100, 100));
    // A new UTC day on the sandbox clock resets both.
    sf.sb.clock.set(t("2024-07-02T00:00:00Z"));
    check(&sf.get(&format!("{V}/limits")).await, 1);
    sf.shutdown().await;
}
