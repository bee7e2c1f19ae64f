//! Salesforce connector against the sandbox.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use crmsync::connectors::SalesforceApi;
use crmsync::connectors::salesforce::SalesforceConnector;
use crmsync::connectors::{Connector, ConnectorError, Cursor, Write, WriteKey};
use crmsync_sdk::types::{Record, System, Value};
use rust_decimal::Decimal;
use serde_json::json;

use super::common::*;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("time").with_timezone(&Utc)
}

/// Sum of calls to endpoints containing `part`.
async fn sf_calls(base: &str, part: &str) -> u64 {
    calls(base).await.iter().filter(|(k, _)| k.contains(part)).map(|(_, v)| v).sum()
}

fn lead(last: &str, email: &str) -> Record {
    Record::new(System::Salesforce, "Lead")
        .with("LastName", last)
        .with("Company", "Acme")
        .with("Email", email)
}

fn new(rec: Record, key: &str) -> Write {
    Write::Upsert { key: WriteKey::New { idempotency_key: key.into() }, record: rec }
}

/// All changes from the start, page by page: (records, deleted, pages).
async fn drain(
    c: &SalesforceConnector,
    object: &str,
    mut since: Option<Cursor>,
    limit: usize,
) -> (Vec<Record>, Vec<crmsync::connectors::Deleted>, usize, Option<Cursor>) {
    let (mut recs, mut dels, mut pages) = (Vec::new(), Vec::new(), 0);
    loop {
        let ch = c.fetch_changes(object, since.as_ref(), limit).await.expect("changes");
        pages += 1;
        recs.extend(ch.records);
        dels.extend(ch.deleted);
        since = ch.next;
        if !ch.more {
            return (recs, dels, pages, since);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sf_session_expiry_refreshes_once_and_reads_limit_info() {
    let sb = sandbox(json!({"salesforce": {"generate": {"Lead": 3}}}), false).await;
    let base = sb.salesforce_url();
    let c = sf(&sb);
    assert_eq!(c.api_usage(), None);
    assert_eq!(c.get("Lead", &[]).await.expect("get").len(), 0);
    let (recs, ..) = drain(&c, "Lead", None, 2000).await;
    assert_eq!(recs.len(), 3);
    admin_post(&base, "expire-sessions", json!({})).await;
    let (recs, ..) = drain(&c, "Lead", None, 2000).await;
    assert_eq!(recs.len(), 3);
    assert_eq!(count(&base, "POST /services/oauth2/token").await, 2, "one login, one refresh");
    let statuses = statuses(&base).await;
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 1);
    let usage = c.api_usage().expect("Sforce-Limit-Info read");
    assert_eq!(usage.limit, 100_000);
    assert_eq!(usage.used, sb.salesforce.api_usage().0);
    // Wrong credentials: an Auth error with the vendor's message, no secret in it.
    let mut cfg = sf_config(&sb);
    cfg.auth = crmsync::connectors::salesforce::SalesforceAuth::Password {
        username: "nobody@example.com".into(),
        password: "s3cret-pw".into(),
    };
    let err = SalesforceConnector::new(cfg).expect("c").connect().await.expect_err("refused");
    assert!(matches!(err, ConnectorError::Auth { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("s3cret-pw"));
}

#[tokio::test(flavor = "multi_thread")]
async fn sf_pages_through_records_sharing_one_systemmodstamp() {
    let sb = sandbox(json!({}), false).await;
    sb.clock.set(t("2024-03-01T12:00:00Z"));
    admin_post(&sb.salesforce_url(), "seed", json!({"generate": {"Contact": 4500}})).await;
    let base = sb.salesforce_url();
    let c = sf(&sb);
    let (recs, dels, pages, cursor) = drain(&c, "Contact", None, 2000).await;
    let ids: BTreeSet<_> = recs.iter().filter_map(|r| r.id.clone()).collect();
    assert_eq!((ids.len(), dels.len(), pages), (4500, 0, 3));
    assert_eq!(sf_calls(&base, "/queryAll").await, 3, "one queryAll per page");
    // Nothing new: one cheap read; a later edit is seen, once.
    let (recs, _, pages, cursor) = drain(&c, "Contact", cursor, 2000).await;
    assert_eq!((recs.len(), pages), (0, 1));
    let id = ids.iter().next().expect("an id").clone();
    sb.clock.advance(std::time::Duration::from_millis(1));
    let w = vec![Write::Upsert {
        key: WriteKey::Id(id.clone()),
        record: Record::new(System::Salesforce, "Contact").with("Title", "CTO"),
    }];
    assert!(c.write("Contact", w).await.expect("write")[0].is_ok());
    let (recs, ..) = drain(&c, "Contact", cursor, 2000).await;
    assert_eq!(recs.iter().map(|r| r.id.clone().unwrap_or_default()).collect::<Vec<_>>(), vec![id]);
    assert_eq!(recs[0].get("Title"), Some(&Value::text("CTO")));
}

#[tokio::test(flavor = "multi_thread")]
async fn sf_deletes_merges_and_conversions_come_through() {
    let sb = sandbox(json!({"salesforce": {"generate": {"Lead": 4}}}), false).await;
    let c = sf(&sb);
    let (recs, _, _, cursor) = drain(&c, "Lead", None, 2000).await;
    let ids: Vec<String> = recs.iter().filter_map(|r| r.id.clone()).collect();
    let out = c.write("Lead", vec![Write::Delete { id: ids[0].clone() }]).await.expect("delete");
    assert!(out[0].is_ok());
    sb.salesforce.merge("Lead", &ids[1], &[ids[2].as_str()]).expect("merge");
    sb.salesforce.convert_lead(&ids[3], None, None).expect("convert");
    let (recs, dels, ..) = drain(&c, "Lead", cursor, 2000).await;
    let mut got: Vec<(String, Option<String>)> =
        dels.iter().map(|d| (d.id.clone(), d.merged_into.clone())).collect();
    got.sort();
    let mut want = vec![(ids[0].clone(), None), (ids[2].clone(), Some(ids[1].clone()))];
    want.sort();
    assert_eq!(got, want);
    assert!(recs.iter().any(|r| r.id.as_deref() == Some(ids[1].as_str())), "the master changed too");
    let converted = c.converted_leads(&ids).await.expect("converted");
    assert_eq!(converted.len(), 1);
    assert_eq!(converted[0].0, ids[3]);
    assert!(converted[0].1.starts_with("003"));
}

#[tokio::test(flavor = "multi_thread")]
async fn sf_find_by_email_reports_duplicates_and_never_merges() {
    let seed = json!({"salesforce": {"records": {"Lead": [
        {"LastName": "A", "Company": "X", "Email": "dup@example.com"},
        {"LastName": "B", "Company": "X", "Email": "DUP@example.com"},
        {"LastName": "C", "Company": "X", "Email": "one@example.com"}]}}});
    let sb = sandbox(seed, false).await;
    let c = sf(&sb);
    let found = c
        .find_by_email(
            "Lead",
            &[
                " Dup@Example.com ".into(),
                "one@example.com".into(),
                "none@example.com".into(),
                "o'hara@example.com".into(),
            ],
        )
        .await
        .expect("find");
    assert_eq!(found.get("dup@example.com").map(Vec::len), Some(2));
    assert_eq!(found.get("one@example.com").map(Vec::len), Some(1));
    assert_eq!(found.len(), 2);
    let writes = vec![
        Write::Upsert {
            key: WriteKey::Email("dup@example.com".into()),
            record: lead("Z", "dup@example.com"),
        },
        Write::Upsert {
            key: WriteKey::Email("one@example.com".into()),
            record: lead("C2", "one@example.com"),
        },
        Write::Upsert {
            key: WriteKey::Email("new@example.com".into()),
            record: lead("N", "new@example.com"),
        },
    ];
    let out = c.write("Lead", writes).await.expect("write");
    assert_eq!(out[0].as_ref().map_err(|e| e.code.as_str()), Err("DUPLICATE_EMAIL"));
    let one = out[1].as_ref().expect("update");
    assert!(!one.created);
    assert_eq!(Some(&one.id), found["one@example.com"].first());
    assert!(out[2].as_ref().expect("create").created);
}

#[tokio::test(flavor = "multi_thread")]
async fn sf_per_item_errors_in_http_200_leave_the_rest_written_and_values_typed() {
    let seed = json!({"salesforce": {"fields": {"Lead": [
        {"name": "Annual_Revenue__c", "type": "currency", "precision": 18, "scale": 2},
        {"name": "Interests__c", "type": "multipicklist", "values": ["A", "B", "C"], "restricted": true},
        {"name": "Since__c", "type": "date"},
        {"name": "Seen__c", "type": "datetime"},
        {"name": "Opted__c", "type": "boolean"}]}}});
    let sb = sandbox(seed, false).await;
    let base = sb.salesforce_url();
    let c = sf(&sb);
    let good = lead("Good", "good@example.com")
        .with("Annual_Revenue__c", "$1,234.50")
        .with("Interests__c", Value::TextList(vec!["A".into(), "C".into()]))
        .with("Since__c", "2024-02-29")
        .with("Seen__c", Value::DateTime(t("2024-05-06T07:08:09Z")))
        .with("Opted__c", "yes");
    let writes = vec![
        new(good, "k1"),
        new(lead("BadEmail", "not-an-email"), "k2"),
        new(lead("Long", "long@example.com").with("FirstName", "x".repeat(41)), "k3"),
        new(lead("Money", "money@example.com").with("Annual_Revenue__c", "lots"), "k4"),
        new(lead("Pick", "pick@example.com").with("Interests__c", Value::TextList(vec!["Z".into()])), "k5"),
        new(lead("Fine", "fine@example.com").with("Annual_Revenue__c", "1 234,50 €"), "k6"),
        new(lead("NoSuch", "x@example.com").with("Nope__c", "1"), "k7"),
    ];
    let out = c.write("Lead", writes).await.expect("write");
    let codes: Vec<&str> =
        out.iter().map(|r| r.as_ref().map_or_else(|e| e.code.as_str(), |_| "ok")).collect();
    assert_eq!(
        codes,
        [
            "ok",
            "INVALID_EMAIL_ADDRESS",
            "STRING_TOO_LONG",
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            "ok",
            "INVALID_FIELD"
        ]
    );
    assert!(out.iter().flatten().all(|w| w.created));
    assert!(out.iter().filter_map(|r| r.as_ref().err()).all(|e| !e.retryable));
    // Server-side failures came inside one HTTP 200.
    assert_eq!(count(&base, "POST /services/data/{version}/composite/sobjects").await, 1);
    assert_eq!(statuses(&base).await.last(), Some(&200));
    let id = out[0].as_ref().expect("ok").id.clone();
    let got = c.get("Lead", &[id]).await.expect("get");
    let r = &got[0];
    assert_eq!(r.get("Annual_Revenue__c"), Some(&Value::Decimal(Decimal::new(123450, 2))));
    assert_eq!(r.get("Interests__c"), Some(&Value::TextList(vec!["A".into(), "C".into()])));
    assert_eq!(
        r.get("Since__c"),
        Some(&Value::Date(chrono::NaiveDate::from_ymd_opt(2024, 2, 29).expect("d")))
    );
    assert_eq!(r.get("Seen__c"), Some(&Value::DateTime(t("2024-05-06T07:08:09Z"))));
    assert_eq!(r.get("Opted__c"), Some(&Value::Boolean(true)));
    assert_eq!(r.get("Email"), Some(&Value::text("good@example.com")));
}

#[tokio::test(flavor = "multi_thread")]
async fn sf_writes_spend_the_minimum_calls_and_bulk_above_threshold() {
    let sb = sandbox(json!({"salesforce": {"generate": {"Contact": 1000}}}), false).await;
    let base = sb.salesforce_url();
    let c = sf(&sb);
    let ids: Vec<String> =
        drain(&c, "Contact", None, 2000).await.0.into_iter().filter_map(|r| r.id).collect();
    assert_eq!(ids.len(), 1000);
    // 1,000 updates: 5 Collections calls of 200.
    let before = calls(&base).await.values().sum::<u64>();
    let writes: Vec<Write> = ids
        .iter()
        .map(|id| Write::Upsert {
            key: WriteKey::Id(id.clone()),
            record: Record::new(System::Salesforce, "Contact").with("Title", "VP"),
        })
        .collect();
    let out = c.write("Contact", writes).await.expect("write");
    assert!(out.iter().all(|r| r.as_ref().is_ok_and(|w| !w.created)));
    assert_eq!(calls(&base).await.values().sum::<u64>() - before, 5);
    // 2,500 creates (one bad): one Bulk API 2.0 job — create, upload, close,
    // poll, successful and failed results.
    let before = calls(&base).await.values().sum::<u64>();
    let mut writes: Vec<Write> = (0..2500)
        .map(|i| {
            new(
                Record::new(System::Salesforce, "Contact")
                    .with("LastName", format!("Bulk{i}"))
                    .with("Email", format!("bulk{i}@example.com")),
                &format!("b{i}"),
            )
        })
        .collect();
    writes[1234] = new(
        Record::new(System::Salesforce, "Contact").with("LastName", "Bad").with("Email", "bad@@x"),
        "bad",
    );
    let out = c.write("Contact", writes).await.expect("bulk write");
    assert_eq!(calls(&base).await.values().sum::<u64>() - before, 6);
    assert_eq!(sf_calls(&base, "POST /services/data/{version}/jobs/ingest").await, 1);
    assert_eq!(out.iter().filter(|r| r.is_ok()).count(), 2499);
    assert_eq!(out[1234].as_ref().map_err(|e| e.code.as_str()), Err("INVALID_EMAIL_ADDRESS"));
    let created: Vec<String> = out.iter().flatten().map(|w| w.id.clone()).collect();
    let got = c.get("Contact", &created[..3]).await.expect("get");
    let names: BTreeSet<_> = got.iter().filter_map(|r| r.text("LastName").map(String::from)).collect();
    assert_eq!(names, ["Bulk0", "Bulk1", "Bulk2"].into_iter().map(String::from).collect());
}

#[tokio::test(flavor = "multi_thread")]
async fn sf_transient_failures_are_retried_and_quota_is_not() {
    let sb = sandbox(json!({"salesforce": {"generate": {"Lead": 5}}}), false).await;
    let base = sb.salesforce_url();
    let c = sf(&sb);
    c.connect().await.expect("connect");
    let faults = json!([
        {"endpoint": "/queryAll", "times": 2, "fault": {"kind": "status", "status": 503}},
        {"endpoint": "/queryAll", "times": 1, "fault": {"kind": "timeout"}},
        {"endpoint": "/queryAll", "times": 1, "fault": {"kind": "status", "status": 500}},
        {"endpoint": "/queryAll", "times": 1, "fault": {"kind": "expire_session"}},
    ]);
    admin_post(&base, "faults", faults).await;
    let (recs, ..) = drain(&c, "Lead", None, 2000).await;
    assert_eq!(recs.len(), 5);
    admin_post(
        &base,
        "faults",
        json!({"endpoint": "/queryAll", "times": 1, "fault": {"kind": "status", "status": 403}}),
    )
    .await;
    let err = c.fetch_changes("Lead", None, 10).await.expect_err("quota");
    assert!(matches!(err, ConnectorError::QuotaExceeded { .. }) && !err.is_transient(), "{err:?}");
}
