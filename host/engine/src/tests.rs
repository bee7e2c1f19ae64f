//! Engine tests on in-memory fakes ([`crate::testing`]): no sandbox, no
//! `.wasm`, no database. Time is paused: nothing here waits on a clock.

use chrono::Utc;
use crmsync_core::activity::{Activity, ActivityKind};
use crmsync_core::{Connector, ConnectorError, Store, Value, VendorError};

use crate::activity::{TaskPass, to_tasks};
use crate::budget::{Budget, BudgetConfig};
use crate::spec::{DeletePolicy, OnDelete, SYNCED, WriteBack};
use crate::testing::{FakeMarketing, FakeRules, FakeSalesforce, MemStore};
use crate::{ConnectionSpec, Pass, PassReport, inbound, outbound, reconcile};

const STATUS: &str = "Sync_Status__c";
const REMOTE_ID: &str = "Mk_Id__c";

struct World {
    sf: FakeSalesforce,
    mk: FakeMarketing,
    store: MemStore,
    rules: FakeRules,
    spec: ConnectionSpec,
    budget: Option<Budget>,
}

impl World {
    fn new() -> World {
        let mk = FakeMarketing::full();
        let mut spec = ConnectionSpec::for_marketing("c", &mk);
        spec.write_back = Some(WriteBack::new(STATUS, REMOTE_ID));
        spec.flag_tag = Some("salesforce".into());
        World {
            sf: FakeSalesforce::default(),
            mk,
            store: MemStore::new(),
            rules: FakeRules::default(),
            spec,
            budget: None,
        }
    }

    fn pass(&self) -> Pass<'_> {
        let mut pass = Pass::new(&self.spec, &self.store, &self.rules, &self.sf, &self.mk, "run-1");
        pass.budget = self.budget.as_ref();
        pass
    }

    async fn outbound(&self) -> PassReport {
        outbound::to_marketing(&self.pass()).await.expect("outbound pass")
    }

    async fn inbound(&self) -> PassReport {
        inbound::to_salesforce(&self.pass()).await.expect("inbound pass")
    }

    fn lead(&self, email: &str, last: &str) -> String {
        self.sf.edit("Lead", None, &[("Email", Value::text(email)), ("LastName", Value::text(last))])
    }

    fn contact_of(&self, sf_id: &str) -> crmsync_core::Record {
        let link = self.store.link_by_sf("c", sf_id).unwrap().expect("linked");
        self.mk.record("contact", &link.remote_id).expect("the contact exists")
    }
}

fn text(r: &crmsync_core::Record, f: &str) -> String {
    r.text(f).unwrap_or_default().to_string()
}

#[tokio::test(start_paused = true)]
async fn a_new_lead_becomes_one_tagged_contact_with_its_status_written_back_and_a_second_run_writes_nothing()
{
    let w = World::new();
    let lead = w.lead("Ada@Example.com ", "Lovelace");
    let report = w.outbound().await;
    // Read twice: the pass reads on past its own write-back (an echo, unchanged).
    assert_eq!((report.read, report.created, report.unchanged, report.errors), (2, 1, 1, 0), "{report:?}");
    let contact = w.contact_of(&lead);
    assert_eq!(text(&contact, "lastName"), "Lovelace");
    assert!(w.mk.tags_of(contact.id.as_deref().unwrap()).contains("created-from-salesforce"));
    let sf = w.sf.record("Lead", &lead).unwrap();
    assert_eq!(text(&sf, STATUS), SYNCED);
    assert_eq!(sf.text(REMOTE_ID), contact.id.as_deref());

    // The write-back comes back as a Salesforce change: an echo, nothing written.
    let before = (w.sf.calls(), w.mk.calls());
    let again = w.outbound().await;
    assert_eq!((again.created, again.updated, again.written_back), (0, 0, 0), "{again:?}");
    assert_eq!(w.mk.calls(), before.1, "no marketing call at all on an echo");
    assert_eq!(w.mk.all("contact").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn status_write_backs_are_gathered_over_the_pass_into_one_write_and_their_echoes_read_in_it() {
    let mut w = World::new();
    w.spec.page_size = 2;
    let leads: Vec<String> = (0..7).map(|i| w.lead(&format!("p{i}@example.com"), "Page")).collect();
    let report = w.outbound().await;
    assert_eq!((report.created, report.written_back, report.errors), (7, 7, 0), "{report:?}");
    // Four pages of marketing writes, one Salesforce write for every status.
    assert_eq!(w.sf.write_calls(), 1, "the write-backs of four pages go in one write");
    for lead in &leads {
        assert_eq!(text(&w.sf.record("Lead", lead).unwrap(), STATUS), SYNCED);
    }
    // The pass read its own write-backs back (echoes): the next one reads nothing.
    assert_eq!((report.read, report.unchanged), (14, 7), "{report:?}");
    let again = w.outbound().await;
    assert_eq!((again.read, again.written_back), (0, 0), "{again:?}");
    assert_eq!(w.sf.write_calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_unmapped_edit_writes_nothing_and_a_mapped_edit_sends_only_the_changed_field() {
    let w = World::new();
    let lead = w.lead("ada@example.com", "Lovelace");
    w.outbound().await;
    w.sf.edit("Lead", Some(&lead), &[("Rating", Value::text("Hot"))]);
    let report = w.outbound().await;
    assert_eq!((report.updated, report.unchanged), (0, 1), "{report:?}");

    w.sf.edit("Lead", Some(&lead), &[("LastName", Value::text("King"))]);
    let report = w.outbound().await;
    assert_eq!(report.updated, 1, "{report:?}");
    assert_eq!(text(&w.contact_of(&lead), "lastName"), "King");
}

#[tokio::test(start_paused = true)]
async fn two_unlinked_leads_with_one_email_are_reported_and_never_merged() {
    let w = World::new();
    let first = w.lead("same@example.com", "One");
    let second = w.lead("SAME@example.com", "Two");
    let report = w.outbound().await;
    assert_eq!((report.created, report.errors), (1, 1), "{report:?}");
    assert_eq!(w.mk.all("contact").len(), 1);
    assert_eq!(text(&w.contact_of(&first), "lastName"), "One");
    let errors = w.store.errors("c").unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!((errors[0].record.as_str(), errors[0].code.as_str()), (second.as_str(), "duplicate-email"));
    let status = text(&w.sf.record("Lead", &second).unwrap(), STATUS);
    assert!(status.starts_with("Error: duplicate-email"), "{status}");
}

#[tokio::test(start_paused = true)]
async fn one_record_the_mapper_refuses_does_not_block_the_others() {
    let mut w = World::new();
    w.rules.refuse_last_name = Some("Bad");
    for i in 0..5 {
        w.lead(&format!("p{i}@example.com"), if i == 2 { "Bad" } else { "Good" });
    }
    let report = w.outbound().await;
    assert_eq!((report.created, report.errors), (4, 1), "{report:?}");
    let errors = w.store.errors("c").unwrap();
    assert_eq!(errors[0].code, "refused");
    assert_eq!(errors[0].plugin.as_deref(), Some("fake-rules@1.0.0"));
}

#[tokio::test(start_paused = true)]
async fn a_marketing_edit_updates_the_linked_lead_and_does_not_bounce_back() {
    let w = World::new();
    let lead = w.lead("ada@example.com", "Lovelace");
    w.outbound().await;
    let contact = w.contact_of(&lead).id.unwrap();
    w.mk.edit("contact", Some(&contact), &[("lastName", Value::text("Byron"))]);
    let report = w.inbound().await;
    assert_eq!(report.updated, 1, "{report:?}");
    assert_eq!(text(&w.sf.record("Lead", &lead).unwrap(), "LastName"), "Byron");
    // Salesforce's change is crmsync's own write: nothing goes back to marketing.
    let writes_before = w.mk.calls();
    let out = w.outbound().await;
    assert_eq!((out.updated, out.created), (0, 0), "{out:?}");
    assert_eq!(w.mk.calls(), writes_before);
}

#[tokio::test(start_paused = true)]
async fn an_edit_back_to_the_old_value_after_both_sides_agreed_is_still_an_edit() {
    let w = World::new();
    let lead = w.lead("ada@example.com", "Lovelace");
    w.outbound().await;
    let contact = w.contact_of(&lead).id.unwrap();
    // Both sides make the same edit: nothing to write, but the base moves on.
    w.sf.edit("Lead", Some(&lead), &[("LastName", Value::text("Byron"))]);
    w.mk.edit("contact", Some(&contact), &[("lastName", Value::text("Byron"))]);
    let report = w.inbound().await;
    assert_eq!((report.updated, report.unchanged), (0, 1), "{report:?}");
    // Marketing edits it back: that is an edit Salesforce must get.
    w.mk.edit("contact", Some(&contact), &[("lastName", Value::text("Lovelace"))]);
    let report = w.inbound().await;
    assert_eq!(report.updated, 1, "{report:?}");
    assert_eq!(text(&w.sf.record("Lead", &lead).unwrap(), "LastName"), "Lovelace");
}

#[tokio::test(start_paused = true)]
async fn a_field_salesforce_always_wins_stays_when_both_sides_changed_it() {
    let mut w = World::new();
    w.rules.salesforce_wins = vec!["Phone"];
    let lead = w.sf.edit(
        "Lead",
        None,
        &[
            ("Email", Value::text("a@example.com")),
            ("LastName", Value::text("A")),
            ("Phone", Value::text("1")),
        ],
    );
    w.outbound().await;
    let contact = w.contact_of(&lead).id.unwrap();
    w.sf.edit("Lead", Some(&lead), &[("Phone", Value::text("2"))]);
    w.mk.edit("contact", Some(&contact), &[("phone", Value::text("3")), ("lastName", Value::text("B"))]);
    let report = w.inbound().await;
    assert_eq!(report.conflicts, 1, "{report:?}");
    let sf = w.sf.record("Lead", &lead).unwrap();
    assert_eq!((text(&sf, "Phone").as_str(), text(&sf, "LastName").as_str()), ("2", "B"));
    w.outbound().await;
    assert_eq!(text(&w.contact_of(&lead), "phone"), "2", "Salesforce's phone reaches marketing");
}

#[tokio::test(start_paused = true)]
async fn a_person_tagged_for_salesforce_becomes_a_lead_and_is_tagged_added_to_salesforce() {
    let w = World::new();
    let flagged = w.mk.edit(
        "contact",
        None,
        &[("email", Value::text("new@example.com")), ("lastName", Value::text("New"))],
    );
    w.mk.tag(&flagged, "salesforce");
    w.mk.edit("contact", None, &[("email", Value::text("other@example.com"))]);
    let report = w.inbound().await;
    assert_eq!(report.created, 1, "{report:?}");
    assert_eq!(report.skipped.values().sum::<usize>(), 1);
    let leads = w.sf.all("Lead");
    assert_eq!(leads.len(), 1);
    assert_eq!(text(&leads[0], "Company"), "[not provided]");
    assert!(w.mk.tags_of(&flagged).contains("added-to-salesforce"));
    // A replay (the same change read again) updates, never duplicates.
    let again = w.inbound().await;
    assert_eq!(again.created, 0);
    assert_eq!(w.sf.all("Lead").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_marketing_outage_keeps_writes_queued_says_pending_next_sync_then_synced() {
    let mut w = World::new();
    w.spec.objects = vec!["Lead".into()];
    let lead = w.lead("ada@example.com", "Lovelace");
    // Every marketing call of this pass meets the outage.
    let down = || ConnectorError::Server { vendor: "Acme Mail", status: 503, message: "down".into() };
    w.mk.fail_next((0..20).map(|_| down()));
    let report = w.outbound().await;
    w.mk.heal();
    assert_eq!(report.created, 0, "{report:?}");
    assert!(report.deferred >= 1, "{report:?}");
    assert_eq!(text(&w.sf.record("Lead", &lead).unwrap(), STATUS), "Pending next sync");
    assert_eq!(w.store.pending("c").unwrap().len(), 1, "the write waits in the outbox");

    let report = w.outbound().await;
    assert_eq!(report.created, 1, "{report:?}");
    assert_eq!(text(&w.sf.record("Lead", &lead).unwrap(), STATUS), SYNCED);
    assert!(w.store.pending("c").unwrap().is_empty());
    assert_eq!(w.mk.all("contact").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_per_item_failure_of_a_status_write_back_is_kept_under_its_own_record() {
    let w = World::new();
    let good = w.lead("good@example.com", "Good");
    let bad = w.lead("bad@example.com", "Bad");
    let contact_of_bad = w.mk.edit("contact", None, &[("email", Value::text("bad@example.com"))]);
    // Salesforce refuses the write-back that carries the bad record's contact id.
    w.sf.refuse(
        REMOTE_ID,
        Value::text(contact_of_bad.clone()),
        VendorError::permanent("STRING_TOO_LONG", "too long"),
    );
    let report = w.outbound().await;
    assert_eq!(report.created, 2, "{report:?}");
    let errors = w.store.errors("c").unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!((errors[0].record.as_str(), errors[0].code.as_str()), (bad.as_str(), "STRING_TOO_LONG"));
    assert_eq!(text(&w.sf.record("Lead", &good).unwrap(), STATUS), SYNCED);
}

#[tokio::test(start_paused = true)]
async fn a_paused_budget_stops_reads_and_resumes_below_the_resume_level() {
    let mut w = World::new();
    w.budget = Some(Budget::new(BudgetConfig { share: 0.5, ..Default::default() }));
    w.lead("ada@example.com", "Lovelace");
    w.sf.set_usage(480, 1000); // 96 % of the 500-call share
    let calls = w.sf.calls();
    let report = w.outbound().await;
    assert!(report.budget_paused, "{report:?}");
    assert_eq!(report.read, 0);
    assert_eq!(w.sf.calls(), calls, "no Salesforce call while paused");
    w.sf.set_usage(300, 1000);
    let report = w.outbound().await;
    assert!(!report.budget_paused);
    assert_eq!(report.created, 1);
}

#[tokio::test(start_paused = true)]
async fn a_deleted_lead_unsubscribes_its_contact_and_drops_the_link() {
    let mut w = World::new();
    w.spec.deletes = DeletePolicy { to_marketing: OnDelete::Unsubscribe, to_salesforce: OnDelete::Ignore };
    let lead = w.lead("ada@example.com", "Lovelace");
    w.outbound().await;
    let contact = w.contact_of(&lead).id.unwrap();
    w.sf.delete("Lead", &lead, None);
    let report = w.outbound().await;
    assert_eq!(report.deleted, 1, "{report:?}");
    assert_eq!(w.mk.record("contact", &contact).unwrap().get("unsubscribe"), Some(&Value::Boolean(true)));
    assert!(w.store.link_by_sf("c", &lead).unwrap().is_none());
}

#[tokio::test(start_paused = true)]
async fn reconciliation_syncs_a_record_the_cursor_passed_by() {
    let w = World::new();
    w.lead("a@example.com", "A");
    w.outbound().await;
    // A record whose change the feed never showed (restored, stamped in the past…).
    let missed = w.lead("b@example.com", "B");
    w.store
        .enqueue_and_advance(
            "c",
            &[],
            Some((crmsync_core::Side::Salesforce, "Lead", &crmsync_core::Cursor("999".into()))),
        )
        .unwrap();
    assert_eq!(w.outbound().await.created, 0, "the cursor is past it");
    let report = reconcile::reconcile(&w.pass()).await.unwrap();
    assert_eq!(report.created, 1, "{report:?}");
    assert!(w.store.link_by_sf("c", &missed).unwrap().is_some());
}

#[tokio::test(start_paused = true)]
async fn activities_of_linked_people_become_tasks_once() {
    let w = World::new();
    let lead = w.lead("ada@example.com", "Lovelace");
    w.outbound().await;
    let contact = w.contact_of(&lead).id.unwrap();
    for (i, person) in [(1, contact.as_str()), (2, "someone-unlinked")] {
        w.mk.add_activity(Activity {
            id: i.to_string(),
            contact: person.into(),
            at: Utc::now(),
            kind: ActivityKind::SiteVisit,
            reference_type: "Open".into(),
            reference_id: "0".into(),
        });
    }
    let pass = TaskPass {
        connection: "c",
        store: &w.store,
        marketing: &w.mk,
        salesforce: &w.sf,
        writer: &w.sf,
        budget: None,
        stop: None,
        time_zone: chrono_tz::UTC,
    };
    let report = to_tasks(&pass).await.unwrap();
    assert_eq!((report.tasks, report.unlinked), (1, 1), "{report:?}");
    let again = to_tasks(&pass).await.unwrap();
    assert_eq!((again.tasks, again.already), (0, 1), "{again:?}");
    let tasks = w.sf.all("Task");
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].text("WhoId"), Some(lead.as_str()));
    assert_eq!(tasks[0].text("Subject"), Some("Acme Mail: Site visit"));
}

#[tokio::test(start_paused = true)]
async fn a_lead_converted_into_a_linked_contact_is_retired_once_and_never_written_again() {
    let w = World::new();
    let lead = w.lead("lena@example.com", "Lead");
    let contact = w.sf.edit(
        "Contact",
        None,
        &[("Email", Value::text("kim@example.com")), ("LastName", Value::text("Kim"))],
    );
    w.outbound().await;
    let lead_contact = w.contact_of(&lead).id.unwrap();
    // Salesforce converts the Lead into the Contact that has a contact of its own.
    w.sf.edit(
        "Lead",
        Some(&lead),
        &[("IsConverted", Value::Boolean(true)), ("ConvertedContactId", Value::text(contact.clone()))],
    );
    w.mk.edit("contact", Some(&lead_contact), &[("lastName", Value::text("Edited"))]);
    let first = w.inbound().await;
    assert_eq!((first.updated, first.errors), (0, 1), "{first:?}");
    let errors = w.store.errors("c").unwrap();
    assert!(errors.iter().any(|e| e.code == "merge-needed" && e.record == lead_contact), "{errors:?}");
    assert!(!errors.iter().any(|e| e.code == "CANNOT_UPDATE_CONVERTED_LEAD"), "{errors:?}");
    w.outbound().await;
    // Later edits are skipped, not retried or reported again.
    w.mk.edit("contact", Some(&lead_contact), &[("lastName", Value::text("Again"))]);
    let later = w.inbound().await;
    assert_eq!((later.updated, later.errors), (0, 0), "{later:?}");
    assert_eq!(later.skipped.values().sum::<usize>(), 1, "{later:?}");
    assert_eq!(text(&w.sf.record("Contact", &contact).unwrap(), "LastName"), "Kim");
}

#[tokio::test(start_paused = true)]
async fn a_conversion_moves_the_link_its_edit_and_a_fresh_status_to_the_contact() {
    let w = World::new();
    let lead = w.lead("same@example.com", "Lead");
    w.outbound().await;
    // A Contact with the same email cannot sync: it waits with an error status.
    let contact = w.sf.edit(
        "Contact",
        None,
        &[("Email", Value::text("same@example.com")), ("LastName", Value::text("Con"))],
    );
    w.outbound().await;
    assert!(text(&w.sf.record("Contact", &contact).unwrap(), STATUS).starts_with("Error: duplicate-email"));
    let remote = w.contact_of(&lead).id.unwrap();
    // Converted into that Contact: the link follows it, the stale error goes.
    w.sf.edit(
        "Lead",
        Some(&lead),
        &[("IsConverted", Value::Boolean(true)), ("ConvertedContactId", Value::text(contact.clone()))],
    );
    w.mk.edit("contact", Some(&remote), &[("firstName", Value::text("Newname"))]);
    let inbound = w.inbound().await;
    assert_eq!(inbound.relinked, 1, "{inbound:?}");
    let c = w.sf.record("Contact", &contact).unwrap();
    assert_eq!(text(&c, "FirstName"), "Newname", "the edit went to the Contact");
    assert_eq!(text(&c, STATUS), SYNCED);
    assert_eq!(c.text(REMOTE_ID), Some(remote.as_str()));
    assert!(w.store.errors("c").unwrap().is_empty(), "{:?}", w.store.errors("c").unwrap());
}

#[tokio::test(start_paused = true)]
async fn a_task_is_dated_in_the_org_time_zone() {
    let w = World::new();
    let lead = w.lead("tz@example.com", "Zone");
    w.outbound().await;
    let contact = w.contact_of(&lead).id.unwrap();
    // 2024-06-01 23:30 in Chicago (UTC-5 in June) is 2024-06-02 04:30 UTC.
    let at = chrono::DateTime::parse_from_rfc3339("2024-06-01T23:30:00-05:00").unwrap().with_timezone(&Utc);
    w.mk.add_activity(Activity {
        id: "9".into(),
        contact,
        at,
        kind: ActivityKind::SiteVisit,
        reference_type: "Visit".into(),
        reference_id: "0".into(),
    });
    let pass = TaskPass {
        connection: "c",
        store: &w.store,
        marketing: &w.mk,
        salesforce: &w.sf,
        writer: &w.sf,
        budget: None,
        stop: None,
        time_zone: chrono_tz::America::Chicago,
    };
    to_tasks(&pass).await.unwrap();
    let task = &w.sf.all("Task")[0];
    assert_eq!(
        task.get("ActivityDate"),
        Some(&Value::Date(chrono::NaiveDate::from_ymd_opt(2024, 6, 1).unwrap()))
    );
}
