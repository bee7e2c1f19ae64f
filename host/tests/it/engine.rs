//! Engine end to end: Salesforce → ActiveCampaign over loopback against the
//! sandbox, with the real connectors, the real default plugins (built by
//! `scripts/build-plugins.sh`) and a real sled directory.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crmsync::connectors::http::HttpOptions;
use crmsync::connectors::salesforce::SalesforceConnector;
use crmsync::connectors::vendors::activecampaign::ActiveCampaignConnector;
use crmsync::connectors::{Connector, Write, WriteKey};
use crmsync::core::{MarketingApi, Store};
use crmsync::engine::inbound::to_salesforce;
use crmsync::engine::outbound::to_marketing;
use crmsync::engine::{ConnectionSpec, Pass, PassReport, WriteBack};
use crmsync::plugins::PluginRules;
use crmsync::plugins::registry::{Manifest, Registry};
use crmsync::plugins::{Limits, Role, Runtime};
use crmsync::state::SledStore;
use crmsync::state::State;
use crmsync_sandbox::common::VendorApi;
use crmsync_sandbox::{Sandbox, SandboxOptions};
use crmsync_sdk::types::{Record, System};
use serde_json::{Value, json};

struct World {
    sandbox: Sandbox,
    sf: SalesforceConnector,
    ac: ActiveCampaignConnector,
    store: SledStore,
    rules: PluginRules,
    spec: ConnectionSpec,
    _dir: tempfile::TempDir,
}

fn plugin(name: &str) -> Vec<u8> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/plugins").join(format!("{name}.wasm"));
    std::fs::read(&path)
        .unwrap_or_else(|_| panic!("{} is missing: run scripts/build-plugins.sh", path.display()))
}

fn http() -> HttpOptions {
    HttpOptions {
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        max_retries: 6,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
        max_retry_after: Duration::from_secs(5),
        extra_ca: None,
    }
}

async fn world(mut seed: Value, selection: Value) -> World {
    let status_fields = json!([
        {"name": "AC_Sync_Status__c", "type": "string", "length": 255},
        {"name": "AC_Contact_Id__c", "type": "string", "length": 64}
    ]);
    seed["salesforce"]["fields"] = json!({"Lead": status_fields, "Contact": status_fields});
    let sandbox =
        Sandbox::start(SandboxOptions { seed: Some(seed), rate_limits: false, ..Default::default() })
            .await
            .expect("sandbox");
    let (sf, ac) = crate::common::connect(&sandbox, http()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = State::open(dir.path()).unwrap();
    let runtime = Runtime::new(Some(&state.cache_dir()), Limits::default()).unwrap();
    let registry = Arc::new(Registry::open(state.clone(), runtime).unwrap());
    for (name, role) in [
        ("standard-mapping", Role::Mapper),
        ("selection", Role::Selector),
        ("field-policy-resolver", Role::Resolver),
    ] {
        let manifest = Manifest { name: name.into(), version: "1.0.0".into(), ..Default::default() };
        registry.install(&plugin(name), &manifest).unwrap();
        registry.activate("c", role, &format!("{name}@1.0.0")).unwrap();
    }
    let configs = HashMap::from([
        (Role::Mapper, json!({"marketing": "activecampaign"}).to_string()),
        (Role::Selector, selection.to_string()),
        (
            Role::Resolver,
            json!({"default": "most-recent", "fields": {"LastName": "salesforce-wins"}}).to_string(),
        ),
    ]);
    let spec = ConnectionSpec {
        page_size: 200,
        write_back: Some(WriteBack::new("AC_Sync_Status__c", "AC_Contact_Id__c")),
        ..ConnectionSpec::new("c", ac.system(), &ac.capabilities())
    };
    World {
        sf,
        ac,
        store: state.store(),
        rules: PluginRules::new(registry, configs),
        spec,
        sandbox,
        _dir: dir,
    }
}

impl World {
    fn pass(&self) -> Pass<'_> {
        Pass::new(&self.spec, &self.store, &self.rules, &self.sf, &self.ac, "run")
    }

    async fn run(&self, dry_run: bool) -> PassReport {
        to_marketing(&Pass { dry_run, ..self.pass() }).await.expect("pass")
    }

    async fn run_inbound(&self) -> PassReport {
        to_salesforce(&self.pass()).await.expect("pass")
    }

    fn ac_contacts(&self) -> Vec<Value> {
        self.sandbox.activecampaign.state()["contacts"].as_array().cloned().unwrap_or_default()
    }

    fn ac_writes(&self) -> u64 {
        self.sandbox
            .activecampaign
            .state()
            .get("imports")
            .and_then(Value::as_array)
            .map_or(0, |i| i.len() as u64)
    }

    async fn edit_lead(&self, email: &str, field: &str, value: &str) {
        let ids = self.sf.find_by_email("Lead", &[email.to_string()]).await.unwrap();
        let id = ids[email][0].clone();
        let record = Record::new(System::Salesforce, "Lead").with(field, value);
        let out = self.sf.write("Lead", vec![Write::Upsert { key: WriteKey::Id(id), record }]).await.unwrap();
        assert!(out[0].is_ok(), "{out:?}");
    }
}

fn seed() -> Value {
    json!({"salesforce": {
        "generate": {"Lead": 300, "Contact": 50},
        "records": {"Lead": [
            {"LastName": "Twin", "Company": "A", "Email": "twin@example.com"},
            {"LastName": "Twin", "Company": "B", "Email": "TWIN@example.com "},
            {"LastName": "NoMail", "Company": "C"}
        ]}
    }})
}

fn all() -> Value {
    json!({"objects": {"Lead": {"mode": "all"}, "Contact": {"mode": "all"}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salesforce_records_become_contacts_once_and_echoes_write_nothing() {
    let w = world(seed(), all()).await;
    let first = w.run(false).await;
    // Status write-backs change Salesforce records, so the pass reads some of
    // them again (echoes: unchanged, nothing written).
    assert!(first.read >= 353, "{first:?}");
    assert_eq!(first.created, 351, "{first:?}");
    assert_eq!(w.store.errors("c").unwrap().len(), 2, "one of the twins and the record without email");
    let contacts = w.ac_contacts();
    assert_eq!(contacts.len(), 351);
    let ada = contacts.iter().find(|c| c["email"] == "gen-lead-7@example.com").expect("contact");
    assert_eq!(ada["lastName"], "Lead7");
    assert!(ada["tags"].as_array().unwrap().iter().any(|t| t == "created-from-salesforce"), "{ada}");
    let errors = w.store.errors("c").unwrap();
    let codes: Vec<&str> = errors.iter().map(|e| e.code.as_str()).collect();
    assert!(codes.contains(&"duplicate-email") && codes.contains(&"missing-email"), "{codes:?}");
    assert_eq!(w.store.links("c").unwrap().len(), 351);
    // Write-back on the Salesforce records: the status, the contact id, or the error.
    assert_eq!(first.written_back, 353, "{first:?}");
    let link = w.store.link_by_email("c", "gen-lead-7@example.com").unwrap().unwrap();
    let lead = &w.sf.get("Lead", std::slice::from_ref(&link.sf_id)).await.unwrap()[0];
    assert_eq!(lead.text("AC_Sync_Status__c"), Some("Synced successfully"));
    assert_eq!(lead.text("AC_Contact_Id__c"), Some(link.remote_id.as_str()));
    let no_mail = w.store.errors("c").unwrap().into_iter().find(|e| e.code == "missing-email").unwrap();
    let lead = &w.sf.get("Lead", std::slice::from_ref(&no_mail.record)).await.unwrap()[0];
    assert!(lead.text("AC_Sync_Status__c").unwrap().contains("no email address"), "{lead:?}");

    // Nothing changed: nothing is written.
    let imports = w.ac_writes();
    // The write-backs come back as Salesforce changes: echoes, nothing is written anywhere.
    let second = w.run(false).await;
    assert_eq!((second.created, second.updated, second.written_back), (0, 0, 0), "{second:?}");
    assert_eq!(w.ac_writes(), imports);

    // An edit of a mapped field: one update, of that field.
    w.edit_lead("gen-lead-7@example.com", "LastName", "Lovelace").await;
    let dry = w.run(true).await;
    assert_eq!(dry.planned.len(), 1, "{dry:?}");
    assert_eq!(dry.planned[0].fields, vec![("lastName".into(), "Lead7".into(), "Lovelace".into())]);
    assert_eq!(
        w.ac_contacts().iter().find(|c| c["email"] == "gen-lead-7@example.com").unwrap()["lastName"],
        "Lead7"
    );
    let third = w.run(false).await;
    assert_eq!((third.created, third.updated, third.unchanged), (0, 1, 0), "{third:?}");
    let contacts = w.ac_contacts();
    assert_eq!(contacts.len(), 351, "an update, not a new contact");
    assert_eq!(
        contacts.iter().find(|c| c["email"] == "gen-lead-7@example.com").unwrap()["lastName"],
        "Lovelace"
    );

    // An edit of an unmapped field reads the record but writes nothing.
    w.edit_lead("gen-lead-8@example.com", "Status", "Working - Contacted").await;
    let fourth = w.run(false).await;
    assert_eq!((fourth.updated, fourth.created, fourth.written_back), (0, 0, 0), "{fourth:?}");
    assert!(fourth.read >= 1 && fourth.unchanged == fourth.read, "{fourth:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selection_decides_what_syncs() {
    let selection = json!({"objects": {"Lead": {"mode": "criteria", "rule": {"field": "Company", "op": "eq", "value": "Company 1"}}}});
    let w = world(json!({"salesforce": {"generate": {"Lead": 30, "Contact": 5}}}), selection).await;
    let report = w.run(false).await;
    assert_eq!(report.created, 1, "only the Lead of Company 1: {report:?}");
    assert_eq!(report.skipped.get("does not match the selection criteria"), Some(&29));
    assert_eq!(report.skipped.get("selection for Contact is not configured"), Some(&5));
    assert_eq!(w.ac_contacts().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linked_contacts_flow_back_and_flagged_contacts_are_created_in_salesforce() {
    let selection = json!({
        "objects": {"Lead": {"mode": "all"}, "Contact": {"mode": "all"}},
        "inbound": {"rule": {"field": "lastName", "op": "eq", "value": "Inbound"}, "create_as": "contact"}
    });
    let w = world(json!({"salesforce": {"generate": {"Lead": 20}}}), selection).await;
    assert_eq!(w.run(false).await.created, 20);
    // The contacts crmsync just created come back as changes: echoes, nothing written.
    let echo = w.run_inbound().await;
    assert_eq!((echo.read, echo.unchanged, echo.updated, echo.created), (20, 20, 0, 0), "{echo:?}");

    // An edit in ActiveCampaign flows back to the linked Lead, once.
    let remote = w
        .store
        .links("c")
        .unwrap()
        .into_iter()
        .find(|l| l.email.as_deref() == Some("gen-lead-3@example.com"))
        .unwrap();
    let edit = Record::new(System::ActiveCampaign, "contact").with("firstName", "Annabella");
    w.ac.write("contact", vec![Write::Upsert { key: WriteKey::Id(remote.remote_id.clone()), record: edit }])
        .await
        .unwrap();
    let back = w.run_inbound().await;
    assert_eq!((back.updated, back.created, back.errors), (1, 0, 0), "{back:?}");
    let lead = w.sf.get("Lead", std::slice::from_ref(&remote.sf_id)).await.unwrap();
    assert_eq!(lead[0].text("FirstName"), Some("Annabella"));
    // Its echo in Salesforce writes nothing to ActiveCampaign, and nothing bounces back.
    let out = w.run(false).await;
    assert_eq!((out.updated, out.created), (0, 0), "{out:?}");
    let again = w.run_inbound().await;
    assert_eq!((again.updated, again.created), (0, 0), "{again:?}");

    // A contact flagged by the inbound rule is created as a Salesforce Contact and tagged.
    let new = Record::new(System::ActiveCampaign, "contact")
        .with("email", "new.person@example.com")
        .with("firstName", "New")
        .with("lastName", "Inbound");
    let skipped = Record::new(System::ActiveCampaign, "contact")
        .with("email", "other@example.com")
        .with("lastName", "Other");
    w.ac.write(
        "contact",
        vec![
            Write::Upsert { key: WriteKey::Email("new.person@example.com".into()), record: new },
            Write::Upsert { key: WriteKey::Email("other@example.com".into()), record: skipped },
        ],
    )
    .await
    .unwrap();
    let created = w.run_inbound().await;
    assert_eq!(created.created, 1, "{created:?}");
    assert_eq!(created.skipped.values().sum::<usize>(), 1, "{created:?}");
    let ids = w.sf.find_by_email("Contact", &["new.person@example.com".into()]).await.unwrap();
    let contact_id = &ids["new.person@example.com"][0];
    let link = w.store.link_by_sf("c", contact_id).unwrap().expect("linked");
    assert_eq!(link.sf_object, "Contact");
    // The tag is written at the next flush.
    w.run_inbound().await;
    let tagged = w.ac_contacts().into_iter().find(|c| c["email"] == "new.person@example.com").unwrap();
    assert!(tagged["tags"].as_array().unwrap().iter().any(|t| t == "added-to-salesforce"), "{tagged}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_changed_on_both_sides_is_merged_by_the_resolver() {
    let w = world(json!({"salesforce": {"generate": {"Lead": 5}}}), all()).await;
    assert_eq!(w.run(false).await.created, 5);
    w.run_inbound().await;
    let link = w.store.link_by_email("c", "gen-lead-2@example.com").unwrap().unwrap();
    // Salesforce edits FirstName and LastName; two seconds later ActiveCampaign edits both too.
    let sf_edit =
        Record::new(System::Salesforce, "Lead").with("FirstName", "Sally").with("LastName", "Salesforce");
    w.sf.write("Lead", vec![Write::Upsert { key: WriteKey::Id(link.sf_id.clone()), record: sf_edit }])
        .await
        .unwrap();
    w.sandbox.clock.advance(Duration::from_secs(2));
    let ac_edit = Record::new(System::ActiveCampaign, "contact")
        .with("firstName", "Annie")
        .with("lastName", "Campaign");
    w.ac.write("contact", vec![Write::Upsert { key: WriteKey::Id(link.remote_id.clone()), record: ac_edit }])
        .await
        .unwrap();

    let back = w.run_inbound().await;
    assert_eq!(back.conflicts, 1, "{back:?}");
    let lead = &w.sf.get("Lead", std::slice::from_ref(&link.sf_id)).await.unwrap()[0];
    // FirstName: most recent (ActiveCampaign) wins; LastName: the field's policy is salesforce-wins.
    assert_eq!((lead.text("FirstName"), lead.text("LastName")), (Some("Annie"), Some("Salesforce")));
    // The outbound pass carries Salesforce's LastName to ActiveCampaign; nothing else moves.
    let out = w.run(false).await;
    assert_eq!(out.updated, 1, "{out:?}");
    let contact = w.ac_contacts().into_iter().find(|c| c["email"] == "gen-lead-2@example.com").unwrap();
    assert_eq!(
        (contact["firstName"].as_str(), contact["lastName"].as_str()),
        (Some("Annie"), Some("Salesforce"))
    );
    // Converged: no more writes either way.
    let (inbound, outbound) = (w.run_inbound().await, w.run(false).await);
    assert_eq!((inbound.updated, inbound.conflicts, outbound.updated), (0, 0, 0), "{inbound:?} {outbound:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_converted_lead_relinks_to_its_contact_instead_of_creating_another() {
    let w = world(json!({"salesforce": {"generate": {"Lead": 3}}}), all()).await;
    assert_eq!(w.run(false).await.created, 3);
    let link = w.store.link_by_email("c", "gen-lead-1@example.com").unwrap().unwrap();
    let converted = w.sandbox.salesforce.convert_lead(&link.sf_id, None, None).expect("convert");
    let report = w.run(false).await;
    assert_eq!((report.relinked, report.created), (1, 0), "{report:?}");
    assert_eq!(w.ac_contacts().len(), 3, "no second contact for the converted lead");
    let moved = w.store.link_by_sf("c", &converted.contact_id).unwrap().expect("the Contact holds the link");
    assert_eq!((moved.remote_id.as_str(), moved.sf_object.as_str()), (link.remote_id.as_str(), "Contact"));
    assert!(w.store.link_by_sf("c", &link.sf_id).unwrap().is_none());
}
