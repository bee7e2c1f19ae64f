//! ActiveCampaign connector against the sandbox.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use crmsync::connectors::vendors::activecampaign::ActiveCampaignConnector;
use crmsync::connectors::{Connector, Cursor, Write, WriteKey};
use crmsync_sdk::types::{Record, System, Value};
use serde_json::json;

use super::common::*;

fn contact(email: &str) -> Record {
    Record::new(System::ActiveCampaign, "contact").with("email", email).with("firstName", "Ann")
}

fn by_email(rec: Record) -> Write {
    let email = rec.text("email").unwrap_or_default().to_string();
    Write::Upsert { key: WriteKey::Email(email), record: rec }
}

async fn total(base: &str) -> u64 {
    calls(base).await.values().sum()
}

async fn drain(
    c: &ActiveCampaignConnector,
    mut since: Option<Cursor>,
    limit: usize,
) -> (Vec<Record>, usize, Option<Cursor>) {
    let (mut recs, mut pages) = (Vec::new(), 0);
    loop {
        let ch = c.fetch_changes("contact", since.as_ref(), limit).await.expect("changes");
        pages += 1;
        recs.extend(ch.records);
        since = ch.next;
        if !ch.more {
            return (recs, pages, since);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ac_small_batch_syncs_with_fields_tags_and_accounts() {
    let seed = json!({"activecampaign": {
        "fields": [{"title": "Industry", "type": "text", "perstag": "INDUSTRY"}, {"title": "Since", "type": "date", "perstag": "SINCE"}],
        "tags": [{"tag": "vip"}], "accounts": [{"name": "Acme"}],
        "contacts": [{"email": "old@example.com", "firstName": "Old"}]}});
    let sb = sandbox(seed, false).await;
    let base = sb.activecampaign_url();
    let c = ac(&sb);
    let writes = vec![
        by_email(
            contact("old@example.com")
                .with("INDUSTRY", "Retail")
                .with("tags", Value::TextList(vec!["vip".into(), "added-to-salesforce".into()]))
                .with("account", "Acme"),
        ),
        by_email(
            contact("new@example.com")
                .with("%SINCE%", Value::Date(chrono::NaiveDate::from_ymd_opt(2024, 1, 2).expect("d")))
                .with("account", "Globex"),
        ),
        by_email(contact("bad address@example")),
        by_email(contact("x@example.com").with("NOPE", "1")),
    ];
    let out = c.write("contact", writes).await.expect("write");
    assert!(!out[0].as_ref().expect("updated").created);
    assert!(out[1].as_ref().expect("created").created);
    assert_eq!(out[2].as_ref().map_err(|e| e.code.as_str()), Err("email_invalid"));
    assert_eq!(out[3].as_ref().map_err(|e| e.code.as_str()), Err("unknown_field"));
    let state = admin(&base, "state").await;
    let contacts = state["contacts"].as_array().expect("contacts");
    let old = contacts.iter().find(|c| c["email"] == "old@example.com").expect("old");
    let tags: BTreeSet<&str> =
        old["tags"].as_array().expect("tags").iter().filter_map(|t| t.as_str()).collect();
    assert_eq!(tags, ["added-to-salesforce", "vip"].into_iter().collect());
    assert_eq!(old["fieldValues"]["1"], "Retail");
    let accounts = state["accounts"].as_array().expect("accounts");
    assert_eq!(accounts.len(), 2, "Globex created, Acme reused");
    assert!(contacts.iter().all(|c| c["email"] == "x@example.com"
        || !c["account"].is_null()
        || c["email"] == "bad address@example"));
    // Read back typed.
    let id = out[1].as_ref().expect("id").id.clone();
    let got = c.get("contact", &[id]).await.expect("get");
    assert_eq!(
        got[0].get("SINCE"),
        Some(&Value::Date(chrono::NaiveDate::from_ymd_opt(2024, 1, 2).expect("d")))
    );
    // One email lookup per address; AC emails are unique.
    let found = c
        .find_by_email("contact", &["OLD@example.com".into(), "none@example.com".into()])
        .await
        .expect("find");
    assert_eq!(found.len(), 1);
    assert_eq!(found["old@example.com"].len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn ac_bulk_import_spends_the_minimum_calls() {
    let sb = sandbox(
        json!({"activecampaign": {"fields": [{"title": "Industry", "type": "text", "perstag": "INDUSTRY"}]}}),
        false,
    )
    .await;
    let base = sb.activecampaign_url();
    let c = ac(&sb);
    let writes: Vec<Write> = (0..1000)
        .map(|i| {
            by_email(
                contact(&format!("u{i}@example.com"))
                    .with("INDUSTRY", "Tech")
                    .with("tags", Value::TextList(vec!["created-from-salesforce".into()]))
                    .with("account", format!("Co {}", i % 7)),
            )
        })
        .collect();
    let out = c.write("contact", writes).await.expect("write");
    assert!(out.iter().all(|r| r.is_ok()));
    let ids: BTreeSet<_> = out.iter().flatten().map(|w| w.id.clone()).collect();
    assert_eq!(ids.len(), 1000);
    let by = calls(&base).await;
    assert_eq!(by.get("POST /api/3/import/bulk_import"), Some(&4));
    assert_eq!(by.get("GET /api/3/import/info"), Some(&4));
    assert_eq!(total(&base).await, 9, "4 imports, 4 polls, 1 field list");
    let state = admin(&base, "state").await;
    assert_eq!(state["accounts"].as_array().map(Vec::len), Some(7));
    let first = state["contacts"]
        .as_array()
        .expect("c")
        .iter()
        .find(|c| c["email"] == "u0@example.com")
        .cloned()
        .expect("u0");
    assert_eq!(first["tags"], json!(["created-from-salesforce"]));
    assert_eq!(first["fieldValues"]["1"], "Tech");
}

#[tokio::test(flavor = "multi_thread")]
async fn ac_change_reads_never_skip_equal_udates() {
    let sb = sandbox(json!({}), false).await;
    let t0 = DateTime::parse_from_rfc3339("2024-06-01T10:00:00Z").expect("t").with_timezone(&Utc);
    let contacts: Vec<_> = (0..250).map(|i| json!({"email": format!("s{i}@example.com"), "udate": if i < 20 { "2024-06-01T09:00:00Z" } else { "2024-06-01T10:00:00Z" }})).collect();
    sb.clock.set(t0);
    admin_post(&sb.activecampaign_url(), "seed", json!({"contacts": contacts})).await;
    let mut cfg = ac_config(&sb);
    cfg.read_field_values = false;
    let c = ActiveCampaignConnector::new(cfg).expect("c");
    let (recs, pages, cursor) = drain(&c, None, 100).await;
    let ids: BTreeSet<_> = recs.iter().filter_map(|r| r.id.clone()).collect();
    assert_eq!((ids.len(), recs.len()), (250, 250), "every contact exactly once in {pages} pages");
    // A later write (the clock moved on by a second) is read once.
    sb.clock.advance(std::time::Duration::from_secs(1));
    let out = c.write("contact", vec![by_email(contact("late@example.com"))]).await.expect("w");
    assert!(out[0].is_ok());
    let (recs, ..) = drain(&c, cursor, 100).await;
    // The cursor's last second (10:00:00) is read again — an edit within a
    // second can have any id — and the later write exactly once.
    let emails: Vec<&str> = recs.iter().filter_map(|r| r.text("email")).collect();
    assert_eq!(emails.iter().filter(|e| **e == "late@example.com").count(), 1, "{emails:?}");
    let again = |e: &&&str| {
        e.strip_prefix('s').and_then(|n| n.split('@').next()?.parse::<u32>().ok()).is_some_and(|n| n >= 20)
    };
    assert!(emails.iter().filter(|e| **e != "late@example.com").all(|e| again(&e)), "{emails:?}");
    let (all, ..) = {
        let mut ids = Vec::new();
        let mut after = None;
        loop {
            let (page, next) = c.list_ids("contact", after.as_ref(), 100).await.expect("ids");
            ids.extend(page);
            match next {
                Some(n) => after = Some(n),
                None => break (ids, ()),
            }
        }
    };
    assert_eq!(all.len(), 251);
}

#[tokio::test(flavor = "multi_thread")]
async fn ac_an_edit_behind_a_long_scan_is_read_by_the_next_one() {
    let sb = sandbox(json!({}), false).await;
    let t0 = DateTime::parse_from_rfc3339("2024-06-01T10:00:00Z").expect("t").with_timezone(&Utc);
    sb.clock.set(t0);
    let contacts: Vec<_> = (0..300)
        .map(|i| json!({"email": format!("s{i}@example.com"), "udate": "2024-06-01T09:00:00Z"}))
        .collect();
    admin_post(&sb.activecampaign_url(), "seed", json!({"contacts": contacts})).await;
    let mut cfg = ac_config(&sb);
    cfg.read_field_values = false;
    let c = ActiveCampaignConnector::new(cfg).expect("c");
    let (_, _, cursor) = drain(&c, None, 100).await;
    let id_of = |email: &'static str| {
        let c = &c;
        async move { c.find_by_email("contact", &[email.into()]).await.expect("find")[email][0].clone() }
    };
    let edit = |id: String| Write::Upsert {
        key: WriteKey::Id(id),
        record: Record::new(System::ActiveCampaign, "contact").with("firstName", "Edited"),
    };
    // A scan that takes an hour (as 1,000,000 contacts under AC's 5 requests
    // a second would): half an hour in, a contact it has passed is edited;
    // half an hour later, one it has not reached yet.
    sb.clock.advance(std::time::Duration::from_secs(60));
    let first = c.fetch_changes("contact", cursor.as_ref(), 100).await.expect("page");
    assert!(first.more);
    let (passed, ahead) = (id_of("s5@example.com").await, id_of("s250@example.com").await);
    sb.clock.advance(std::time::Duration::from_secs(30 * 60));
    assert!(c.write("contact", vec![edit(passed.clone())]).await.expect("w")[0].is_ok());
    sb.clock.advance(std::time::Duration::from_secs(30 * 60));
    assert!(c.write("contact", vec![edit(ahead.clone())]).await.expect("w")[0].is_ok());
    let (rest, _, cursor) = drain(&c, first.next, 100).await;
    let ids = |recs: &[Record]| recs.iter().filter_map(|r| r.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&rest), vec![ahead.clone()], "the scan meets the edit ahead of it");
    // The next scan keeps what changed since the last one began: both edits.
    sb.clock.advance(std::time::Duration::from_secs(60));
    let (next, ..) = drain(&c, cursor, 100).await;
    assert_eq!(ids(&next), vec![passed, ahead], "the edit behind the scan is not lost");
    assert!(next.iter().all(|r| r.text("firstName") == Some("Edited")));
}

#[tokio::test(flavor = "multi_thread")]
async fn ac_two_connections_share_one_rate_limit() {
    let sb = sandbox(json!({"activecampaign": {"contacts": [{"email": "a@example.com"}]}}), true).await;
    let base = sb.activecampaign_url();
    let mut cfg = ac_config(&sb);
    cfg.requests_per_second = Some(5.0);
    let (a, b) = (
        ActiveCampaignConnector::new(cfg.clone()).expect("a"),
        ActiveCampaignConnector::new(cfg).expect("b"),
    );
    async fn run(c: &ActiveCampaignConnector) {
        for _ in 0..8 {
            c.list_ids("contact", None, 10).await.expect("ids");
        }
    }
    tokio::join!(run(&a), run(&b));
    let statuses = statuses(&base).await;
    assert_eq!(statuses.len(), 16, "no retries were needed");
    assert!(statuses.iter().all(|s| *s == 200), "the sandbox never answered 429: {statuses:?}");
    let log = admin(&base, "log").await;
    let at: Vec<DateTime<Utc>> = log
        .as_array()
        .expect("log")
        .iter()
        .map(|e| {
            e["at"]
                .as_str()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .expect("at")
                .with_timezone(&Utc)
        })
        .collect();
    // A burst of 5, then the 11 others paced: the last came ≥ 2 s after the first.
    assert!(at[15] - at[0] >= chrono::Duration::milliseconds(2000), "{:?}", at[15] - at[0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn ac_honours_retry_after_and_survives_a_fault_storm() {
    let sb = sandbox(json!({}), false).await;
    let base = sb.activecampaign_url();
    let c = ac(&sb);
    admin_post(&base, "faults", json!({"endpoint": "GET /api/3/contacts", "times": 1, "fault": {"kind": "status", "status": 429, "retry_after_secs": 1}})).await;
    c.list_ids("contact", None, 10).await.expect("after 429");
    let log = admin(&base, "log").await;
    let entries = log.as_array().expect("log");
    let at = |i: usize| DateTime::parse_from_rfc3339(entries[i]["at"].as_str().expect("at")).expect("t");
    assert_eq!((entries[0]["status"].as_u64(), entries[1]["status"].as_u64()), (Some(429), Some(200)));
    assert!(at(1) - at(0) >= chrono::Duration::milliseconds(1000), "Retry-After waited out");
    let storm = json!([
        {"endpoint": "/contact/sync", "times": 3, "fault": {"kind": "status", "status": 500}},
        {"endpoint": "/contact/sync", "times": 2, "fault": {"kind": "timeout"}},
        {"endpoint": "/contact/sync", "times": 3, "fault": {"kind": "status", "status": 429, "retry_after_secs": 0}},
        {"endpoint": "/contact/sync", "times": 2, "fault": {"kind": "status", "status": 503}},
        {"endpoint": "/contact/sync", "times": 5, "fault": {"kind": "latency", "ms": 50}},
    ]);
    admin_post(&base, "faults", storm).await;
    let writes: Vec<Write> = (0..8).map(|i| by_email(contact(&format!("storm{i}@example.com")))).collect();
    let out = c.write("contact", writes).await.expect("storm write");
    assert!(out.iter().all(|r| r.as_ref().is_ok_and(|w| w.created)), "{out:?}");
    let state = admin(&base, "state").await;
    assert_eq!(state["contacts"].as_array().map(Vec::len), Some(8), "no duplicates from retries");
}
