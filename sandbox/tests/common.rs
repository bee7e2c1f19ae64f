//! The machinery every vendor server shares, over real HTTP against
//! [`Sandbox::start`]: fault injection (latency, 5xx and 429 with each vendor's
//! own error body, timeouts, session expiry, `times`, `endpoint`), the
//! rate-limit switch of the admin API for each vendor, the controllable clock,
//! call counters and the request log, and seeding (admin endpoint and
//! `SandboxOptions.seed`).
//!
//! Timing is never measured on the wall clock: tests that need time run on a
//! paused tokio runtime (the test client keeps no idle-pool timer, so the only
//! timers are the ones under test), and order is read from the request log.

use std::time::Duration;

use crmsync_sandbox::common::Vendor;
use crmsync_sandbox::{Sandbox, SandboxError, SandboxOptions};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};

const SF: &str = "/services/data/v60.0";
const ALL: [Vendor; 4] = [Vendor::Salesforce, Vendor::ActiveCampaign, Vendor::Mailchimp, Vendor::Brevo];

struct H {
    sb: Sandbox,
    http: reqwest::Client,
    sf_token: String,
}

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

/// A client without idle-pool timers, so a paused runtime only sees the test's own.
fn client() -> reqwest::Client {
    reqwest::Client::builder().pool_idle_timeout(None).build().expect("client")
}

async fn reply(r: reqwest::Response) -> Reply {
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.expect("body");
    Reply { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::Null) }
}

impl H {
    async fn start(opts: SandboxOptions) -> H {
        let sb = Sandbox::start(opts).await.expect("sandbox starts");
        let http = client();
        let mut h = H { sb, http, sf_token: String::new() };
        h.sf_token = h.new_sf_token().await;
        h
    }

    async fn quiet() -> H {
        H::start(SandboxOptions { rate_limits: false, ..Default::default() }).await
    }

    async fn new_sf_token(&self) -> String {
        let c = &self.sb.credentials;
        let r = self
            .http
            .post(format!("{}/services/oauth2/token", self.sb.salesforce_url()))
            .form(&[
                ("grant_type", "refresh_token"),
                ("client_id", c.salesforce_client_id.as_str()),
                ("client_secret", c.salesforce_client_secret.as_str()),
                ("refresh_token", c.salesforce_refresh_token.as_str()),
            ])
            .send()
            .await
            .expect("token call");
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.expect("token JSON");
        body["access_token"].as_str().expect("access_token").to_string()
    }

    /// A vendor API request with that vendor's credentials; `path` is the full path.
    fn req(&self, vendor: Vendor, method: Method, path: &str) -> RequestBuilder {
        let url = format!("{}{path}", self.sb.base_url(vendor));
        let c = &self.sb.credentials;
        let rb = self.http.request(method, url);
        match vendor {
            Vendor::Salesforce => rb.bearer_auth(&self.sf_token),
            Vendor::ActiveCampaign => rb.header("Api-Token", &c.activecampaign_api_token),
            Vendor::Mailchimp => rb.basic_auth("anystring", Some(&c.mailchimp_api_key)),
            Vendor::Brevo => rb.header("api-key", &c.brevo_api_key),
        }
    }

    async fn call(&self, vendor: Vendor, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut rb = self.req(vendor, method, path);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        reply(rb.send().await.expect("answered")).await
    }

    async fn get(&self, vendor: Vendor, path: &str) -> Reply {
        self.call(vendor, Method::GET, path, None).await
    }

    /// `GET` of the vendor's cheapest authenticated endpoint.
    async fn probe(&self, vendor: Vendor) -> Reply {
        self.get(vendor, probe_path(vendor)).await
    }

    async fn admin(&self, vendor: Vendor, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut rb = self.http.request(method, format!("{}/__sandbox{path}", self.sb.base_url(vendor)));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        reply(rb.send().await.expect("admin answered")).await
    }

    async fn add_fault(&self, vendor: Vendor, rule: Value) {
        let r = self.admin(vendor, Method::POST, "/faults", Some(rule)).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "fault accepted: {:?}", r.body);
    }

    async fn calls(&self, vendor: Vendor) -> Value {
        self.admin(vendor, Method::GET, "/calls", None).await.body
    }

    async fn log(&self, vendor: Vendor) -> Vec<Value> {
        self.admin(vendor, Method::GET, "/log", None).await.body.as_array().expect("log is a list").clone()
    }
}

fn probe_path(vendor: Vendor) -> &'static str {
    match vendor {
        Vendor::Salesforce => "/services/data/v60.0/limits",
        Vendor::ActiveCampaign => "/api/3/contacts",
        Vendor::Mailchimp => "/3.0/ping",
        Vendor::Brevo => "/v3/account",
    }
}

/// Another authenticated GET of the vendor, which the probe's `endpoint` filter does not match.
fn other_path(vendor: Vendor) -> &'static str {
    match vendor {
        Vendor::Salesforce => "/services/data/v60.0/sobjects",
        Vendor::ActiveCampaign => "/api/3/tags",
        Vendor::Mailchimp => "/3.0/lists",
        Vendor::Brevo => "/v3/contacts",
    }
}

/// Asserts `r` is `status` in the vendor's own error shape; returns its message text.
fn assert_vendor_error(vendor: Vendor, r: &Reply, status: u16) -> String {
    assert_eq!(r.status.as_u16(), status, "{vendor:?}: {:?}", r.body);
    let ct = r.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    match vendor {
        // [{"message", "errorCode"}]
        Vendor::Salesforce => {
            assert!(ct.starts_with("application/json"), "{ct}");
            let e = &r.body[0];
            assert!(e["errorCode"].as_str().is_some_and(|c| !c.is_empty()), "{:?}", r.body);
            e["errorCode"].as_str().unwrap().to_string() + ": " + e["message"].as_str().expect("message")
        }
        // {"message"} (or {"errors": [...]} for 422)
        Vendor::ActiveCampaign => {
            assert!(ct.starts_with("application/json"), "{ct}");
            r.body["message"].as_str().expect("AC message").to_string()
        }
        // application/problem+json {type, title, status, detail, instance}
        Vendor::Mailchimp => {
            assert!(ct.starts_with("application/problem+json"), "{ct}");
            for k in ["type", "title", "detail", "instance"] {
                assert!(r.body[k].is_string(), "problem field {k}: {:?}", r.body);
            }
            assert_eq!(r.body["status"], status);
            r.body["title"].as_str().unwrap().to_string()
        }
        // {"code", "message"}
        Vendor::Brevo => {
            assert!(ct.starts_with("application/json"), "{ct}");
            assert!(r.body["code"].is_string() && r.body["message"].is_string(), "{:?}", r.body);
            r.body["code"].as_str().unwrap().to_string()
        }
    }
}

// ---------------------------------------------------------------- faults

#[tokio::test]
async fn status_5xx_faults_answer_with_each_vendors_error_body() {
    let h = H::quiet().await;
    for vendor in ALL {
        h.add_fault(vendor, json!({ "times": 1, "fault": { "kind": "status", "status": 503 } })).await;
        h.add_fault(vendor, json!({ "times": 1, "fault": { "kind": "status", "status": 500 } })).await;
        let first = assert_vendor_error(vendor, &h.probe(vendor).await, 503);
        let second = assert_vendor_error(vendor, &h.probe(vendor).await, 500);
        match vendor {
            Vendor::Salesforce => {
                assert!(first.starts_with("SERVER_UNAVAILABLE"), "{first}");
                assert!(second.starts_with("UNKNOWN_EXCEPTION"), "{second}");
            }
            Vendor::Mailchimp => {
                assert_eq!(first, "Service Unavailable");
                assert_eq!(second, "Internal Server Error");
            }
            _ => {}
        }
        // Rules apply in order and are used up: the next call is served normally.
        assert_eq!(h.probe(vendor).await.status, StatusCode::OK, "{vendor:?}");
    }
}

#[tokio::test]
async fn a_custom_fault_body_replaces_the_vendor_body() {
    let h = H::quiet().await;
    let body = json!({ "weird": true });
    h.add_fault(
        Vendor::Brevo,
        json!({ "times": 1, "fault": { "kind": "status", "status": 502, "body": body } }),
    )
    .await;
    let r = h.probe(Vendor::Brevo).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.body, body);
}

#[tokio::test]
async fn status_429_faults_carry_retry_after_and_the_vendor_body() {
    let h = H::quiet().await;
    for vendor in ALL {
        h.add_fault(
            vendor,
            json!({ "times": 1, "fault": { "kind": "status", "status": 429, "retry_after_secs": 7 } }),
        )
        .await;
        let r = h.probe(vendor).await;
        let text = assert_vendor_error(vendor, &r, 429);
        assert_eq!(r.headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("7"), "{vendor:?}");
        match vendor {
            Vendor::Salesforce => assert!(text.starts_with("REQUEST_LIMIT_EXCEEDED"), "{text}"),
            Vendor::ActiveCampaign => assert_eq!(r.body, json!({ "message": "Too Many Requests" })),
            Vendor::Mailchimp => assert_eq!(text, "Too Many Requests"),
            Vendor::Brevo => {
                assert_eq!(text, "too_many_requests");
                assert_eq!(r.headers["x-sib-ratelimit-remaining"], "0");
            }
        }
        assert_eq!(h.probe(vendor).await.status, StatusCode::OK, "{vendor:?}");
    }
}

/// Latency delays the matching call only: on a paused clock, the delayed call
/// takes (virtual) time and a call made after it is answered — and logged — first.
#[tokio::test(start_paused = true)]
async fn latency_delays_only_the_matching_call() {
    let h = H::quiet().await;
    for vendor in ALL {
        h.add_fault(
            vendor,
            json!({ "endpoint": format!("GET {}", probe_path(vendor)), "times": 1,
                    "fault": { "kind": "latency", "ms": 60_000 } }),
        )
        .await;
        let started = tokio::time::Instant::now();
        let slow = h.req(vendor, Method::GET, probe_path(vendor)).send();
        let slow = tokio::spawn(async move {
            let r = slow.await.expect("answered");
            (r.status(), started.elapsed())
        });
        tokio::task::yield_now().await;
        let fast = h.get(vendor, other_path(vendor)).await;
        assert_eq!(fast.status, StatusCode::OK, "{vendor:?}: {:?}", fast.body);
        let (status, took) = slow.await.expect("task");
        assert_eq!(status, StatusCode::OK, "{vendor:?}: a delayed call is then served normally");
        assert!(took >= Duration::from_secs(60), "{vendor:?}: took {took:?}");

        let log = h.log(vendor).await;
        let paths: Vec<&str> = log.iter().rev().take(2).map(|e| e["path"].as_str().unwrap()).collect();
        assert_eq!(
            paths,
            [probe_path(vendor), other_path(vendor)],
            "{vendor:?}: the fast call finished first"
        );

        // Used up: the same call is not delayed again.
        let again = tokio::time::Instant::now();
        assert_eq!(h.probe(vendor).await.status, StatusCode::OK);
        assert!(again.elapsed() < Duration::from_secs(60), "{vendor:?}");
    }
}

/// The timeout fault never answers, so the client's own timeout fires; a
/// shutdown releases the held request instead of waiting for it.
#[tokio::test(start_paused = true)]
async fn timeout_fault_makes_the_clients_timeout_fire() {
    let h = H::quiet().await;
    for vendor in ALL {
        h.add_fault(
            vendor,
            json!({ "endpoint": probe_path(vendor), "times": 1, "fault": { "kind": "timeout" } }),
        )
        .await;
        let started = tokio::time::Instant::now();
        let err = h
            .req(vendor, Method::GET, probe_path(vendor))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .expect_err("the client gives up");
        assert!(err.is_timeout(), "{vendor:?}: {err}");
        let took = started.elapsed();
        assert!(took >= Duration::from_secs(5) && took < Duration::from_secs(3600), "{took:?}");
        // The rule was used once; the next call is answered.
        let r = h.req(vendor, Method::GET, probe_path(vendor)).timeout(Duration::from_secs(5)).send().await;
        assert_eq!(r.expect("answered").status(), StatusCode::OK, "{vendor:?}");
    }
    // One more held request, then shut down: the server does not wait the hour out.
    h.add_fault(Vendor::Brevo, json!({ "fault": { "kind": "timeout" } })).await;
    let held = tokio::spawn(h.req(Vendor::Brevo, Method::GET, "/v3/account").send());
    tokio::task::yield_now().await;
    let before = tokio::time::Instant::now();
    h.sb.shutdown().await;
    assert!(before.elapsed() < Duration::from_secs(3600), "shutdown released the held request");
    let r = held.await.expect("task");
    assert!(r.is_err() || r.is_ok_and(|r| r.status() == StatusCode::GATEWAY_TIMEOUT));
}

#[tokio::test]
async fn timeout_fault_in_real_time_with_a_short_client_timeout() {
    let h = H::quiet().await;
    h.add_fault(Vendor::Mailchimp, json!({ "times": 1, "fault": { "kind": "timeout" } })).await;
    let err = h
        .req(Vendor::Mailchimp, Method::GET, "/3.0/ping")
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .expect_err("times out");
    assert!(err.is_timeout(), "{err}");
    assert_eq!(h.probe(Vendor::Mailchimp).await.status, StatusCode::OK);
    // The shutdown must not wait for the held request (an hour); bound it generously.
    tokio::time::timeout(Duration::from_secs(60), h.sb.shutdown()).await.expect("shutdown completes");
}

#[tokio::test]
async fn expire_session_fault_gives_invalid_session_id_until_a_new_token() {
    let mut h = H::quiet().await;
    let sf = Vendor::Salesforce;
    assert_eq!(h.get(sf, &format!("{SF}/limits")).await.status, StatusCode::OK);
    h.add_fault(sf, json!({ "endpoint": "/query", "times": 1, "fault": { "kind": "expire_session" } })).await;
    // A call the rule does not match keeps working.
    assert_eq!(h.get(sf, &format!("{SF}/limits")).await.status, StatusCode::OK);
    let r = h.get(sf, &format!("{SF}/query?q=SELECT+Id+FROM+Lead")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.body,
        json!([{ "message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID" }])
    );
    // The session is really gone, not just this call failed.
    let r = h.get(sf, &format!("{SF}/limits")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body[0]["errorCode"], "INVALID_SESSION_ID");
    // A fresh token works.
    h.sf_token = h.new_sf_token().await;
    let r = h.get(sf, &format!("{SF}/query?q=SELECT+Id+FROM+Lead")).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["totalSize"], 0);

    // The admin endpoint does the same at once.
    let r = h.admin(sf, Method::POST, "/expire-sessions", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(h.get(sf, &format!("{SF}/limits")).await.status, StatusCode::UNAUTHORIZED);
    h.sf_token = h.new_sf_token().await;
    assert_eq!(h.get(sf, &format!("{SF}/limits")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn times_n_affects_exactly_the_next_n_matching_calls() {
    let h = H::quiet().await;
    for vendor in ALL {
        h.add_fault(
            vendor,
            json!({ "endpoint": probe_path(vendor), "times": 3, "fault": { "kind": "status", "status": 500 } }),
        )
        .await;
        // A call the rule does not match does not use up its times.
        assert_eq!(h.get(vendor, other_path(vendor)).await.status, StatusCode::OK, "{vendor:?}");
        let mut statuses = Vec::new();
        for _ in 0..6 {
            statuses.push(h.probe(vendor).await.status.as_u16());
        }
        assert_eq!(statuses, [500, 500, 500, 200, 200, 200], "{vendor:?}");
        let logged: Vec<u64> =
            h.log(vendor).await.iter().rev().take(6).rev().map(|e| e["status"].as_u64().unwrap()).collect();
        assert_eq!(logged, [500, 500, 500, 200, 200, 200], "{vendor:?}: faulted calls are logged too");
    }
}

#[tokio::test]
async fn endpoint_filter_matches_method_and_path_text_only() {
    let h = H::quiet().await;
    let br = Vendor::Brevo;
    // Unlimited rule, POST only.
    h.add_fault(br, json!({ "endpoint": "POST /v3/contacts", "fault": { "kind": "status", "status": 503 } }))
        .await;
    for _ in 0..3 {
        assert_eq!(h.get(br, "/v3/contacts").await.status, StatusCode::OK, "GET is not matched");
        let r = h.call(br, Method::POST, "/v3/contacts", Some(json!({ "email": "a@example.com" }))).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "POST is matched every time");
    }
    // `/v3/contacts` is a prefix of `/v3/contacts/batch`: text matching hits it too.
    let r = h.call(br, Method::POST, "/v3/contacts/batch", Some(json!({ "contacts": [] }))).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(h.get(br, "/v3/account").await.status, StatusCode::OK);
    // Another vendor's rules are its own.
    assert_eq!(h.probe(Vendor::ActiveCampaign).await.status, StatusCode::OK);
    // DELETE /faults removes every rule.
    assert_eq!(h.admin(br, Method::DELETE, "/faults", None).await.status, StatusCode::NO_CONTENT);
    let r = h.call(br, Method::POST, "/v3/contacts", Some(json!({ "email": "a@example.com" }))).await;
    assert_eq!(r.status, StatusCode::CREATED);

    // A path filter on a templated route matches the concrete path.
    let ac = Vendor::ActiveCampaign;
    let id = h
        .call(ac, Method::POST, "/api/3/contact/sync", Some(json!({ "contact": { "email": "x@y.io" } })))
        .await;
    let id = id.body["contact"]["id"].as_str().expect("id").to_string();
    h.add_fault(
        ac,
        json!({ "endpoint": format!("/contacts/{id}"), "times": 1, "fault": { "kind": "status", "status": 502 } }),
    )
    .await;
    assert_eq!(h.get(ac, "/api/3/contacts/999").await.status, StatusCode::NOT_FOUND);
    assert_eq!(h.get(ac, &format!("/api/3/contacts/{id}")).await.status, StatusCode::BAD_GATEWAY);
    assert_eq!(h.get(ac, &format!("/api/3/contacts/{id}")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn faults_are_not_applied_to_the_admin_api_and_bad_rules_are_refused() {
    let h = H::quiet().await;
    let mc = Vendor::Mailchimp;
    h.add_fault(mc, json!({ "fault": { "kind": "status", "status": 500 } })).await;
    assert_eq!(h.admin(mc, Method::GET, "/calls", None).await.status, StatusCode::OK);
    assert_eq!(h.admin(mc, Method::GET, "/state", None).await.status, StatusCode::OK);
    assert_eq!(h.probe(mc).await.status, StatusCode::INTERNAL_SERVER_ERROR);
    let r = h.admin(mc, Method::POST, "/faults", Some(json!({ "fault": { "kind": "explode" } }))).await;
    assert!(r.status.is_client_error(), "{}", r.status);
    // Reset clears the faults along with the state.
    assert_eq!(h.admin(mc, Method::POST, "/reset", None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(h.probe(mc).await.status, StatusCode::OK);
}

// ---------------------------------------------------------------- rate limits

async fn set_limits(h: &H, vendor: Vendor, on: bool) {
    let r = h.admin(vendor, Method::POST, "/rate-limits", Some(json!({ "enabled": on }))).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(h.sb.ctx(vendor).rate_limits(), on);
}

/// ActiveCampaign: 5 per second. On a paused runtime with a frozen sandbox clock
/// the bucket never refills by itself, so the counts are exact.
#[tokio::test(start_paused = true)]
async fn activecampaign_rate_limit_switch() {
    let h = H::start(SandboxOptions::default()).await;
    let ac = Vendor::ActiveCampaign;
    h.sb.clock.set(chrono::Utc::now());
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let r = h.probe(ac).await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(r.headers["retry-after"], "1");
            assert_eq!(r.body, json!({ "message": "Too Many Requests" }));
        }
        statuses.push(r.status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
    set_limits(&h, ac, false).await;
    for _ in 0..20 {
        assert_eq!(h.probe(ac).await.status, StatusCode::OK);
    }
    set_limits(&h, ac, true).await;
    assert_eq!(h.probe(ac).await.status, StatusCode::TOO_MANY_REQUESTS, "still empty");
    // The sandbox clock refills it: one second, five calls.
    h.admin(ac, Method::POST, "/clock", Some(json!({ "advance_secs": 1 }))).await;
    let ok = futures_count(&h, ac, 8).await;
    assert_eq!(ok, 5);
}

async fn futures_count(h: &H, vendor: Vendor, n: usize) -> usize {
    let mut ok = 0;
    for _ in 0..n {
        if h.probe(vendor).await.status == StatusCode::OK {
            ok += 1;
        }
    }
    ok
}

/// Brevo: 10 per second per family, in whole seconds of the sandbox clock.
#[tokio::test]
async fn brevo_rate_limit_switch() {
    let h = H::start(SandboxOptions::default()).await;
    let br = Vendor::Brevo;
    h.sb.clock.set(chrono::DateTime::parse_from_rfc3339("2024-07-01T00:00:00Z").unwrap().to_utc());
    assert_eq!(futures_count(&h, br, 12).await, 10);
    let r = h.probe(br).await;
    assert_vendor_error(br, &r, 429);
    assert_eq!(r.headers["x-sib-ratelimit-remaining"], "0");
    set_limits(&h, br, false).await;
    assert_eq!(futures_count(&h, br, 12).await, 12, "off: no 429 (the headers still count)");
    set_limits(&h, br, true).await;
    assert_eq!(h.probe(br).await.status, StatusCode::TOO_MANY_REQUESTS);
    h.admin(br, Method::POST, "/clock", Some(json!({ "advance_secs": 1 }))).await;
    assert_eq!(futures_count(&h, br, 12).await, 10);
}

/// Mailchimp: at most 10 requests in flight per key. Eleven held by a latency
/// fault on a paused runtime: exactly one is refused while limits are on.
#[tokio::test(start_paused = true)]
async fn mailchimp_rate_limit_switch() {
    let h = H::start(SandboxOptions::default()).await;
    let mc = Vendor::Mailchimp;
    h.add_fault(mc, json!({ "endpoint": "GET /3.0/ping", "fault": { "kind": "latency", "ms": 10_000 } }))
        .await;
    let burst = |n: usize| {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let send = h.req(mc, Method::GET, "/3.0/ping").send();
                tokio::spawn(async move { reply(send.await.expect("answered")).await })
            })
            .collect();
        async move {
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.expect("task"));
            }
            out
        }
    };
    let replies = burst(11).await;
    let limited: Vec<_> = replies.iter().filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS).collect();
    assert_eq!(limited.len(), 1, "10 in flight, the 11th refused");
    assert_vendor_error(mc, limited[0], 429);
    assert!(limited[0].body["detail"].as_str().unwrap().contains("simultaneous connections"));

    set_limits(&h, mc, false).await;
    let replies = burst(11).await;
    assert!(replies.iter().all(|r| r.status == StatusCode::OK), "off: all served");
}

/// Salesforce has no per-second limit: the switch is accepted and changes
/// nothing, and the daily allocation is a quota that applies either way.
#[tokio::test]
async fn salesforce_rate_limit_switch_leaves_the_allocation_alone() {
    let h = H::start(SandboxOptions { salesforce_daily_limit: 3, ..Default::default() }).await;
    let sf = Vendor::Salesforce;
    set_limits(&h, sf, false).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(h.probe(sf).await);
    }
    assert_eq!(statuses.iter().map(|r| r.status.as_u16()).collect::<Vec<_>>(), [200, 200, 200, 403]);
    assert_eq!(statuses[2].headers["sforce-limit-info"], "api-usage=3/3");
    assert_eq!(statuses[3].body[0]["errorCode"], "REQUEST_LIMIT_EXCEEDED");
    set_limits(&h, sf, true).await;
    assert_eq!(h.probe(sf).await.status, StatusCode::FORBIDDEN);
}

// ---------------------------------------------------------------- clock

#[tokio::test]
async fn the_clock_sets_the_timestamps_every_vendor_returns() {
    let h = H::quiet().await;
    let r =
        h.admin(Vendor::Brevo, Method::POST, "/clock", Some(json!({ "set": "2030-01-02T03:04:05Z" }))).await;
    assert_eq!(r.body["now"], "2030-01-02T03:04:05Z");
    // Salesforce sessions age on this clock: years later, the start's token has expired.
    let mut h = h;
    assert_eq!(h.probe(Vendor::Salesforce).await.status, StatusCode::UNAUTHORIZED);
    h.sf_token = h.new_sf_token().await;

    // One clock for all four servers, whichever port set it.
    let sf = h
        .call(
            Vendor::Salesforce,
            Method::POST,
            &format!("{SF}/sobjects/Lead"),
            Some(json!({ "LastName": "L", "Company": "C" })),
        )
        .await;
    assert_eq!(sf.status, StatusCode::CREATED, "{:?}", sf.body);
    let lead = format!("{SF}/sobjects/Lead/{}", sf.body["id"].as_str().unwrap());
    let got = h.get(Vendor::Salesforce, &lead).await.body;
    assert_eq!(got["CreatedDate"], "2030-01-02T03:04:05.000+0000");
    assert_eq!(got["SystemModstamp"], "2030-01-02T03:04:05.000+0000");

    let ac = h
        .call(
            Vendor::ActiveCampaign,
            Method::POST,
            "/api/3/contact/sync",
            Some(json!({ "contact": { "email": "c@x.io" } })),
        )
        .await;
    assert_eq!(ac.body["contact"]["cdate"], "2030-01-01T22:04:05-05:00");

    let mc_member = "/3.0/lists/a1b2c3d4e5/members/c@x.io";
    let mc = h
        .call(
            Vendor::Mailchimp,
            Method::PUT,
            mc_member,
            Some(json!({ "email_address": "c@x.io", "status_if_new": "subscribed" })),
        )
        .await;
    assert_eq!(mc.status, StatusCode::NOT_FOUND, "no list yet");
    let seeded = h
        .admin(
            Vendor::Mailchimp,
            Method::POST,
            "/seed",
            Some(json!({ "lists": [{ "id": "a1b2c3d4e5", "name": "Audience" }] })),
        )
        .await;
    assert_eq!(seeded.status, StatusCode::NO_CONTENT, "{:?}", seeded.body);
    let mc = h
        .call(
            Vendor::Mailchimp,
            Method::PUT,
            mc_member,
            Some(json!({ "email_address": "c@x.io", "status_if_new": "subscribed" })),
        )
        .await;
    assert_eq!(mc.status, StatusCode::OK, "{:?}", mc.body);
    assert_eq!(mc.body["last_changed"], "2030-01-02T03:04:05+00:00");

    let br = h.call(Vendor::Brevo, Method::POST, "/v3/contacts", Some(json!({ "email": "c@x.io" }))).await;
    let br_path = format!("/v3/contacts/{}", br.body["id"]);
    assert_eq!(h.get(Vendor::Brevo, &br_path).await.body["createdAt"], "2030-01-02T03:04:05.000+00:00");

    // Advance an hour (the clock stays frozen) and change each record.
    let r = h.admin(Vendor::Salesforce, Method::POST, "/clock", Some(json!({ "advance_secs": 3600 }))).await;
    assert_eq!(r.body["now"], "2030-01-02T04:04:05Z");
    assert_eq!(h.sb.clock.now().to_rfc3339(), "2030-01-02T04:04:05+00:00");
    h.call(Vendor::Salesforce, Method::PATCH, &lead, Some(json!({ "Title": "CEO" }))).await;
    let got = h.get(Vendor::Salesforce, &lead).await.body;
    assert_eq!(got["CreatedDate"], "2030-01-02T03:04:05.000+0000");
    assert_eq!(got["SystemModstamp"], "2030-01-02T04:04:05.000+0000");
    let ac = h
        .call(
            Vendor::ActiveCampaign,
            Method::POST,
            "/api/3/contact/sync",
            Some(json!({ "contact": { "email": "c@x.io", "firstName": "C" } })),
        )
        .await;
    assert_eq!(ac.body["contact"]["udate"], "2030-01-01T23:04:05-05:00");
    let mc = h
        .call(Vendor::Mailchimp, Method::PATCH, mc_member, Some(json!({ "merge_fields": { "FNAME": "C" } })))
        .await;
    assert_eq!(mc.body["last_changed"], "2030-01-02T04:04:05+00:00");
    h.call(Vendor::Brevo, Method::PUT, &br_path, Some(json!({ "attributes": { "FIRSTNAME": "C" } }))).await;
    assert_eq!(h.get(Vendor::Brevo, &br_path).await.body["modifiedAt"], "2030-01-02T04:04:05.000+00:00");

    // The request log is stamped with the sandbox clock too.
    let log = h.log(Vendor::Brevo).await;
    assert_eq!(log.last().unwrap()["at"], "2030-01-02T04:04:05Z");

    // Back to real time.
    let r = h.admin(Vendor::Mailchimp, Method::POST, "/clock", Some(json!({ "real": true }))).await;
    let now: chrono::DateTime<chrono::Utc> = r.body["now"].as_str().unwrap().parse().unwrap();
    assert!((chrono::Utc::now() - now).num_seconds().abs() < 3600);
}

// ---------------------------------------------------------------- counters and log

#[tokio::test]
async fn calls_are_counted_per_endpoint_template_and_reset() {
    let h = H::quiet().await;
    let ac = Vendor::ActiveCampaign;
    let mut ids = Vec::new();
    for email in ["a@x.io", "b@x.io"] {
        let r = h
            .call(ac, Method::POST, "/api/3/contact/sync", Some(json!({ "contact": { "email": email } })))
            .await;
        ids.push(r.body["contact"]["id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        h.get(ac, &format!("/api/3/contacts/{id}")).await;
    }
    h.get(ac, "/api/3/contacts/424242").await;
    h.get(ac, "/api/3/contacts?limit=1").await;
    // Admin calls are not counted.
    h.admin(ac, Method::GET, "/state", None).await;

    let calls = h.calls(ac).await;
    assert_eq!(
        calls,
        json!({ "total": 6, "by_endpoint": {
            "POST /api/3/contact/sync": 2,
            "GET /api/3/contacts/{id}": 3,
            "GET /api/3/contacts": 1,
        } })
    );
    let log = h.log(ac).await;
    assert_eq!(log.len(), 6);
    let last = &log[5];
    assert_eq!(last["method"], "GET");
    assert_eq!(last["path"], "/api/3/contacts");
    assert_eq!(last["query"], "limit=1");
    assert_eq!(last["endpoint"], "GET /api/3/contacts");
    assert_eq!(last["status"], 200);
    assert_eq!(log[4]["status"], 404);
    assert_eq!(log[4]["endpoint"], "GET /api/3/contacts/{id}");
    // In-process view agrees.
    assert_eq!(h.sb.ctx(ac).telemetry.total(), 6);

    // Each vendor counts its own calls, by its own templates.
    h.get(Vendor::Mailchimp, "/3.0/lists/nope/members/x").await;
    h.get(Vendor::Brevo, "/v3/contacts/a%40x.io").await;
    h.get(Vendor::Salesforce, &format!("{SF}/sobjects/Lead/00Q000000000000AAA")).await;
    assert_eq!(
        h.calls(Vendor::Mailchimp).await["by_endpoint"]["GET /3.0/lists/{list_id}/members/{subscriber_hash}"],
        1
    );
    assert_eq!(h.calls(Vendor::Brevo).await["by_endpoint"]["GET /v3/contacts/{identifier}"], 1);
    // Salesforce's token call (made by the harness) is an API call too.
    let sf_calls = h.calls(Vendor::Salesforce).await;
    assert_eq!(
        sf_calls,
        json!({ "total": 2, "by_endpoint": {
            "POST /services/oauth2/token": 1,
            "GET /services/data/{version}/sobjects/{sobject}/{id}": 1,
        } })
    );
    assert_eq!(h.calls(ac).await["total"], 6);

    // Reset empties counters, log and state.
    assert_eq!(h.admin(ac, Method::POST, "/reset", None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(h.calls(ac).await, json!({ "total": 0, "by_endpoint": {} }));
    assert!(h.log(ac).await.is_empty());
    assert_eq!(h.get(ac, "/api/3/contacts").await.body["meta"]["total"], "0");
    // Other vendors are untouched.
    assert_eq!(h.calls(Vendor::Brevo).await["total"], 1);
}

// ---------------------------------------------------------------- seed

#[tokio::test]
async fn the_seed_endpoint_rejects_bad_seeds_with_a_clear_message() {
    let h = H::quiet().await;
    // Not JSON at all.
    for vendor in ALL {
        let r = h
            .http
            .post(format!("{}/__sandbox/seed", h.sb.base_url(vendor)))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .expect("answered");
        let r = reply(r).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{vendor:?}");
        let msg = r.body["error"].as_str().expect("error message");
        assert!(msg.contains("not JSON") && msg.contains(vendor.name()), "{vendor:?}: {msg}");
    }
    // JSON, but not a valid seed for the vendor: the message names what is wrong.
    let bad = [
        (
            Vendor::Salesforce,
            json!({ "fields": { "Lead": [{ "name": "X__c", "type": "colour" }] } }),
            "colour",
        ),
        (Vendor::ActiveCampaign, json!({ "contacts": [{ "firstName": "no email" }] }), "email"),
        (
            Vendor::Mailchimp,
            json!({ "lists": [{ "id": "l1", "members": [{ "status": "subscribed" }] }] }),
            "email",
        ),
        (
            Vendor::Brevo,
            json!({ "contacts": [{ "email": "x@example.com", "attributes": { "NOPE": 1 } }] }),
            "NOPE",
        ),
    ];
    for (vendor, seed, needle) in bad {
        let r = h.admin(vendor, Method::POST, "/seed", Some(seed)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{vendor:?}: {:?}", r.body);
        let msg = r.body["error"].as_str().expect("error message");
        assert!(msg.contains(needle), "{vendor:?}: {msg}");
        assert!(msg.starts_with(&format!("bad {} seed: ", vendor.name())), "{msg}");
    }
    // A seed that is not an object at all.
    for vendor in ALL {
        let r = h.admin(vendor, Method::POST, "/seed", Some(json!([1, 2]))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{vendor:?}: {:?}", r.body);
        assert!(r.body["error"].as_str().is_some_and(|m| !m.is_empty()));
    }
}

fn start_seed() -> Value {
    json!({
        "salesforce": { "fields": { "Contact": [{ "name": "AC_Contact_Id__c", "type": "string", "length": 64, "externalId": true }] } },
        "activecampaign": { "contacts": [{ "id": 7, "email": "ann@acme.test", "firstName": "Ann" }] },
        "mailchimp": { "lists": [{ "id": "a1b2c3d4e5", "name": "Audience",
                                   "members": [{ "email_address": "ann@example.com", "status": "subscribed" }] }] },
        "brevo": { "contacts": [{ "id": 42, "email": "ann@example.com" }] },
    })
}

#[tokio::test]
async fn sandbox_options_seed_is_applied_at_start() {
    let h =
        H::start(SandboxOptions { rate_limits: false, seed: Some(start_seed()), ..Default::default() }).await;
    let desc = h.get(Vendor::Salesforce, &format!("{SF}/sobjects/Contact/describe")).await.body;
    let field = desc["fields"].as_array().unwrap().iter().find(|f| f["name"] == "AC_Contact_Id__c").cloned();
    assert_eq!(field.expect("seeded custom field")["externalId"], true);
    assert_eq!(h.get(Vendor::ActiveCampaign, "/api/3/contacts/7").await.body["contact"]["firstName"], "Ann");
    let m = h.get(Vendor::Mailchimp, "/3.0/lists/a1b2c3d4e5/members/ann@example.com").await;
    assert_eq!(m.body["status"], "subscribed", "{:?}", m.body);
    assert_eq!(h.get(Vendor::Brevo, "/v3/contacts/42").await.body["email"], "ann@example.com");
    // Seeding is not a vendor call: only the GETs above (and Salesforce's token call).
    for vendor in ALL {
        let calls = h.calls(vendor).await;
        let expected = if vendor == Vendor::Salesforce { 2 } else { 1 };
        assert_eq!(calls["total"], expected, "{vendor:?}: {calls}");
    }
}

#[tokio::test]
async fn a_bad_start_seed_fails_start_naming_the_vendor() {
    let mut seed = start_seed();
    seed["mailchimp"] = json!({ "lists": "not a list" });
    let err = Sandbox::start(SandboxOptions { seed: Some(seed), ..Default::default() })
        .await
        .err()
        .expect("start fails");
    assert!(matches!(err, SandboxError::Seed { vendor: "Mailchimp", .. }), "{err}");
    assert!(err.to_string().starts_with("bad seed for Mailchimp: "), "{err}");
}
