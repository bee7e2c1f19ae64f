//! Salesforce Accounts ⇄ ActiveCampaign accounts, end to end over loopback:
//! an Account becomes an AC account (name + mapped account fields), its
//! Contacts become that account's contacts, the account relation status and
//! the account id are written back, edits flow both ways by id (a rename
//! stays the same account), and two Accounts with one name are reported,
//! never merged.

use crate::common::{Env, crmsync};
use crmsync::connectors::{Connector, Write, WriteKey};
use crmsync_sandbox::common::VendorApi;
use crmsync_sdk::types::{Record, System, Value as V};
use serde_json::{Value, json};

fn selection() -> Value {
    json!({"objects": {"Account": {"mode": "all"}, "Lead": {"mode": "all"}, "Contact": {"mode": "all"}}})
}

async fn sync(env: &Env) -> Value {
    let out = crmsync(env, &["run", "--once", "--json"]).await;
    assert!(out.ok(), "{out}");
    serde_json::from_str(&out.stdout).unwrap_or_else(|_| panic!("{out}"))
}

/// Creates Salesforce records through the connector (real HTTP); their ids, in order.
async fn create(sf: &dyn Connector, object: &str, records: Vec<Record>) -> Vec<String> {
    let writes = records
        .into_iter()
        .enumerate()
        .map(|(i, record)| Write::Upsert { key: WriteKey::New { idempotency_key: format!("k{i}") }, record })
        .collect();
    sf.write(object, writes).await.unwrap().into_iter().map(|r| r.unwrap().id).collect()
}

fn sf_record(object: &str, fields: &[(&str, V)]) -> Record {
    let mut r = Record::new(System::Salesforce, object);
    for (k, v) in fields {
        r.set(*k, v.clone());
    }
    r
}

fn ac_state(env: &Env) -> Value {
    env.sandbox.activecampaign.state()
}

fn ac_account<'a>(state: &'a Value, name: &str) -> Option<&'a Value> {
    state["accounts"].as_array()?.iter().find(|a| a["name"] == name)
}

fn sf_object(env: &Env, object: &str, id: &str) -> Value {
    env.sandbox.salesforce.record(object, id).unwrap_or_else(|| panic!("{object} {id}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_sync_both_ways_with_their_contacts_and_relation_status() {
    let seed = json!({"activecampaign": {"accountCustomFieldMeta": [
        {"fieldLabel": "Employees", "fieldType": "number"}
    ]}});
    let mapper = json!({"marketing": "activecampaign", "fields": [
        {"salesforce": "NumberOfEmployees", "marketing": "Employees", "type": "number", "objects": ["Account"]}
    ]});
    let plugins = crate::common::plugins_dir();
    let env = Env::start(
        seed,
        selection(),
        json!({
            "objects": ["Account", "Lead", "Contact"],
            "rules": {
                "selector": {"plugin": plugins.join("selection.wasm"), "config": selection()},
                "mapper": {"plugin": plugins.join("standard-mapping.wasm"), "config": mapper},
                "resolver": {"plugin": plugins.join("field-policy-resolver.wasm"), "config": {}},
            },
            "write_back": {
                "status_field": "AC_Sync_Status__c", "id_field": "AC_Contact_Id__c",
                "account_status_field": "AC_Relation_Status__c", "account_id_field": "AC_Account_Id__c",
            },
        }),
    )
    .await;
    let (sf, ac) = crate::common::connect(&env.sandbox, Default::default()).unwrap();
    let accounts = create(
        &sf,
        "Account",
        vec![
            sf_record("Account", &[("Name", V::text("Globex")), ("NumberOfEmployees", V::Number(250.0))]),
            sf_record("Account", &[("Name", V::text("Initech"))]),
        ],
    )
    .await;
    let person = |last: &str, account: Option<&str>| {
        let mut fields = vec![("LastName", V::text(last)), ("Email", V::text(format!("{last}@example.com")))];
        if let Some(a) = account {
            fields.push(("AccountId", V::text(a)));
        }
        sf_record("Contact", &fields)
    };
    create(
        &sf,
        "Contact",
        vec![
            person("hank", Some(&accounts[0])),
            person("marge", Some(&accounts[0])),
            person("milton", Some(&accounts[1])),
            person("loner", None),
        ],
    )
    .await;
    create(
        &sf,
        "Lead",
        vec![sf_record(
            "Lead",
            &[
                ("LastName", V::text("Wesker")),
                ("Company", V::text("Umbrella")),
                ("Email", V::text("aw@example.com")),
            ],
        )],
    )
    .await;

    let first = sync(&env).await;
    assert_eq!(first["outbound"]["errors"], 0, "{first}");
    assert_eq!(first["outbound"]["created"], 7, "2 accounts + 4 contacts + 1 lead: {first}");
    let state = ac_state(&env);
    let globex = ac_account(&state, "Globex").expect("Globex in ActiveCampaign").clone();
    let initech = ac_account(&state, "Initech").expect("Initech in ActiveCampaign").clone();
    assert!(ac_account(&state, "Umbrella").is_some(), "a Lead's Company becomes an account: {state}");
    assert_eq!(globex["fields"]["1"], "250", "mapped account field: {globex}");
    let account_of = |state: &Value, email: &str| {
        let c = state["contacts"].as_array().unwrap().iter().find(|c| c["email"] == email).cloned();
        c.unwrap_or_else(|| panic!("{email} in ActiveCampaign"))["account"].clone()
    };
    assert_eq!(account_of(&state, "hank@example.com"), globex["id"]);
    assert_eq!(account_of(&state, "marge@example.com"), globex["id"]);
    assert_eq!(account_of(&state, "milton@example.com"), initech["id"]);
    assert_eq!(account_of(&state, "loner@example.com"), Value::Null);
    for (id, ac_id) in [(&accounts[0], &globex["id"]), (&accounts[1], &initech["id"])] {
        let account = sf_object(&env, "Account", id);
        assert_eq!(account["AC_Relation_Status__c"], "Synced successfully", "{account}");
        assert_eq!(account["AC_Account_Id__c"].as_str(), ac_id.as_u64().map(|n| n.to_string()).as_deref());
    }

    // Nothing changed: nothing is written on either side.
    let idle = sync(&env).await;
    assert_eq!(
        (idle["outbound"]["updated"].as_u64(), idle["inbound"]["updated"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(idle["outbound"]["created"], 0, "{idle}");

    // Salesforce renames Globex: the same AC account is renamed, its contacts stay.
    let rename = sf_record("Account", &[("Name", V::text("Globex Corporation"))]);
    let key = WriteKey::Id(accounts[0].clone());
    sf.write("Account", vec![Write::Upsert { key, record: rename }]).await.unwrap()[0].as_ref().unwrap();
    // ActiveCampaign edits Initech's head count.
    let initech_id = initech["id"].as_u64().unwrap().to_string();
    let employees = Record::new(System::ActiveCampaign, "account").with("Employees", V::Number(99.0));
    let key = WriteKey::Id(initech_id.clone());
    ac.write("account", vec![Write::Upsert { key, record: employees }]).await.unwrap()[0].as_ref().unwrap();

    let edits = sync(&env).await;
    assert_eq!(edits["outbound"]["errors"], 0, "{edits}");
    let state = ac_state(&env);
    let renamed = ac_account(&state, "Globex Corporation").expect("renamed in ActiveCampaign");
    assert_eq!(renamed["id"], globex["id"], "a rename keeps the account");
    assert!(ac_account(&state, "Globex").is_none());
    assert_eq!(account_of(&state, "hank@example.com"), globex["id"]);
    assert_eq!(sf_object(&env, "Account", &accounts[1])["NumberOfEmployees"], 99, "AC → Salesforce");

    // The edits' echoes write nothing.
    let quiet = sync(&env).await;
    assert_eq!(
        (quiet["outbound"]["updated"].as_u64(), quiet["inbound"]["updated"].as_u64()),
        (Some(0), Some(0))
    );

    // A second Account named like a synced one is reported, not merged into it.
    let twin = create(&sf, "Account", vec![sf_record("Account", &[("Name", V::text("Initech"))])]).await;
    let run = sync(&env).await;
    assert_eq!(run["outbound"]["errors"], 1, "{run}");
    let twin = sf_object(&env, "Account", &twin[0]);
    let status = twin["AC_Relation_Status__c"].as_str().unwrap_or_default();
    assert!(status.starts_with("Error: duplicate-name"), "{twin}");
    let state = ac_state(&env);
    assert_eq!(state["accounts"].as_array().unwrap().iter().filter(|a| a["name"] == "Initech").count(), 1);
}
