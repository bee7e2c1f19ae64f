//! The sandbox over HTTPS (`SandboxOptions::tls`): every vendor port speaks TLS
//! with a certificate made at start; a client that trusts only the sandbox's CA
//! logs in to Salesforce and calls the other vendors, URLs in responses say
//! `https://`, the certificate is valid for `127.0.0.1`, `localhost` and `::1`
//! and nothing else, and a client without the CA is refused before any request
//! reaches a vendor.

use std::error::Error as _;
use std::net::SocketAddr;
use std::sync::Arc;

use crmsync_sandbox::common::Vendor;
use crmsync_sandbox::{Sandbox, SandboxOptions};
use reqwest::StatusCode;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::{Value, json};

async fn tls_sandbox() -> Sandbox {
    Sandbox::start(SandboxOptions { tls: true, rate_limits: false, ..Default::default() })
        .await
        .expect("TLS sandbox starts")
}

/// A client whose only trusted root is `ca_pem`.
fn client_trusting(ca_pem: &str) -> reqwest::ClientBuilder {
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("CA PEM parses");
    reqwest::Client::builder().tls_certs_only([ca])
}

/// The error and all its sources, one line.
fn chain(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn port(url: &str) -> u16 {
    url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("URL ends with a port")
}

#[tokio::test]
async fn https_salesforce_login_and_every_vendor_with_only_the_sandbox_ca_trusted() {
    let sb = tls_sandbox().await;
    assert!(sb.is_tls());
    for url in [sb.salesforce_url(), sb.activecampaign_url(), sb.mailchimp_url(), sb.brevo_url()] {
        assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    }
    let ca = sb.ca_pem().expect("a TLS sandbox has a CA").to_string();
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
    let http = client_trusting(&ca).build().expect("client");

    // Salesforce OAuth (refresh-token grant), then an API call on instance_url.
    let creds = sb.credentials.clone();
    let r = http
        .post(format!("{}/services/oauth2/token", sb.salesforce_url()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", creds.salesforce_client_id.as_str()),
            ("client_secret", creds.salesforce_client_secret.as_str()),
            ("refresh_token", creds.salesforce_refresh_token.as_str()),
        ])
        .send()
        .await
        .expect("token call over https");
    assert_eq!(r.status(), StatusCode::OK);
    let token: Value = r.json().await.expect("token JSON");
    assert_eq!(token["instance_url"], json!(sb.salesforce_url()), "instance_url names https");
    assert!(token["id"].as_str().unwrap_or("").starts_with(&sb.salesforce_url()), "{token}");
    let access = token["access_token"].as_str().expect("access token");
    let instance = token["instance_url"].as_str().expect("instance_url");
    let r = http
        .get(format!("{instance}/services/data/v60.0/query"))
        .query(&[("q", "SELECT COUNT() FROM Contact")])
        .bearer_auth(access)
        .send()
        .await
        .expect("query over https");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().contains_key("sforce-limit-info"));
    let body: Value = r.json().await.expect("query JSON");
    assert_eq!(body["totalSize"], 0);

    // ActiveCampaign: a contact sync; its links name the https base.
    let r = http
        .post(format!("{}/api/3/contact/sync", sb.activecampaign_url()))
        .header("Api-Token", &creds.activecampaign_api_token)
        .json(&json!({"contact": {"email": "ann@example.com", "firstName": "Ann"}}))
        .send()
        .await
        .expect("AC call over https");
    assert_eq!(r.status(), StatusCode::CREATED);
    let body: Value = r.json().await.expect("AC JSON");
    assert_eq!(body["contact"]["email"], "ann@example.com");
    let links = body["contact"]["links"].as_object().expect("contact links");
    assert!(!links.is_empty());
    let ac_base = format!("{}/api/3/", sb.activecampaign_url());
    for link in links.values() {
        assert!(link.as_str().unwrap_or("").starts_with(&ac_base), "{link}");
    }

    // Mailchimp and Brevo answer over https too.
    let r = http
        .get(format!("{}/3.0/ping", sb.mailchimp_url()))
        .basic_auth("any", Some(&creds.mailchimp_api_key))
        .send()
        .await
        .expect("Mailchimp call over https");
    assert_eq!(r.status(), StatusCode::OK);
    let r = http
        .get(format!("{}/v3/contacts", sb.brevo_url()))
        .header("api-key", &creds.brevo_api_key)
        .send()
        .await
        .expect("Brevo call over https");
    assert_eq!(r.status(), StatusCode::OK);

    // Each vendor counted exactly the calls made to it.
    assert_eq!(sb.ctx(Vendor::Salesforce).telemetry.total(), 2, "token and query");
    assert_eq!(sb.ctx(Vendor::ActiveCampaign).telemetry.total(), 1);
    assert_eq!(sb.ctx(Vendor::Mailchimp).telemetry.total(), 1);
    assert_eq!(sb.ctx(Vendor::Brevo).telemetry.total(), 1);
    sb.shutdown().await;
}

#[tokio::test]
async fn a_client_without_the_sandbox_ca_is_refused() {
    let sb = tls_sandbox().await;
    let other = tls_sandbox().await;
    let url = format!("{}/services/oauth2/token", sb.salesforce_url());
    let form = [("grant_type", "password")];

    // The platform's roots do not include the sandbox's CA.
    let platform = reqwest::Client::builder().build().expect("client");
    let e = platform.post(&url).form(&form).send().await.expect_err("untrusted certificate refused");
    assert!(e.is_connect(), "{}", chain(&e));
    assert!(chain(&e).contains("certificate"), "{}", chain(&e));

    // Nor does another sandbox's CA vouch for this one.
    let wrong = client_trusting(other.ca_pem().expect("CA")).build().expect("client");
    let e = wrong.post(&url).form(&form).send().await.expect_err("another CA refused");
    assert!(chain(&e).contains("certificate"), "{}", chain(&e));

    // Plain HTTP on a TLS port gets no answer.
    let plain = reqwest::Client::new();
    let e = plain
        .post(url.replacen("https://", "http://", 1))
        .form(&form)
        .send()
        .await
        .expect_err("plain HTTP refused");
    assert!(!e.is_status(), "{}", chain(&e));

    // None of it reached Salesforce; the right CA still gets in afterwards.
    assert_eq!(sb.ctx(Vendor::Salesforce).telemetry.log().len(), 0);
    let right = client_trusting(sb.ca_pem().expect("CA")).build().expect("client");
    let r = right.post(&url).form(&form).send().await.expect("trusted");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "reached the token endpoint (missing credentials)");
    sb.shutdown().await;
    other.shutdown().await;
}

#[tokio::test]
async fn the_certificate_is_valid_for_loopback_names_only() {
    let sb = tls_sandbox().await;
    let ca = sb.ca_pem().expect("CA").to_string();
    let port = port(&sb.mailchimp_url());
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let key = sb.credentials.mailchimp_api_key.clone();

    // `localhost` over a real connection (pinned to the sandbox's address).
    let http = client_trusting(&ca).resolve("localhost", addr).build().expect("client");
    let r = http
        .get(format!("https://localhost:{port}/3.0/ping"))
        .basic_auth("any", Some(&key))
        .send()
        .await
        .expect("localhost is a valid name");
    assert_eq!(r.status(), StatusCode::OK);

    // A name the certificate does not carry is refused, same address.
    let http = client_trusting(&ca).resolve("sandbox.example", addr).build().expect("client");
    let e = http
        .get(format!("https://sandbox.example:{port}/3.0/ping"))
        .send()
        .await
        .expect_err("a name outside the certificate");
    assert!(chain(&e).contains("certificate"), "{}", chain(&e));

    // Every name, checked against the served certificate by rustls' own
    // verifier (`::1` needs no IPv6 on the machine this way).
    let cert = sb.tls_cert().expect("certificate");
    let leaf = CertificateDer::from_pem_slice(cert.cert_pem().as_bytes()).expect("server cert PEM");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca.as_bytes()).expect("CA PEM")).expect("CA is a valid root");
    #[allow(deprecated)] // ring lacks post-quantum key exchange; irrelevant to a verifier
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider).build().expect("verifier");
    for name in ["127.0.0.1", "localhost", "::1"] {
        let server = ServerName::try_from(name).expect("server name");
        verifier
            .verify_server_cert(&leaf, &[], &server, &[], UnixTime::now())
            .unwrap_or_else(|e| panic!("{name} should be valid: {e}"));
    }
    for name in ["127.0.0.2", "example.com", "::2"] {
        let server = ServerName::try_from(name).expect("server name");
        assert!(verifier.verify_server_cert(&leaf, &[], &server, &[], UnixTime::now()).is_err(), "{name}");
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn write_ca_pem_writes_the_ca_and_plain_sandboxes_have_none() {
    let sb = tls_sandbox().await;
    let dir = std::env::temp_dir().join(format!("crmsync-sandbox-tls-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("ca.pem");
    sb.write_ca_pem(&path).expect("CA written");
    let written = std::fs::read_to_string(&path).expect("CA file");
    assert_eq!(written, sb.ca_pem().expect("CA"));
    // The file works as a root for a client.
    let http = client_trusting(&written).build().expect("client");
    let r = http
        .get(format!("{}/3.0/ping", sb.mailchimp_url()))
        .basic_auth("any", Some(&sb.credentials.mailchimp_api_key))
        .send()
        .await
        .expect("trusted through the written file");
    assert_eq!(r.status(), StatusCode::OK);
    std::fs::remove_dir_all(&dir).expect("cleanup");
    sb.shutdown().await;

    let plain = Sandbox::start(SandboxOptions::default()).await.expect("plain sandbox");
    assert!(!plain.is_tls());
    assert!(plain.ca_pem().is_none());
    assert!(plain.salesforce_url().starts_with("http://"));
    let e = plain.write_ca_pem(std::env::temp_dir().join("never-written.pem")).expect_err("no CA");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    plain.shutdown().await;
}
