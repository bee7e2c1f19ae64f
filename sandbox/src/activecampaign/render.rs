//! JSON renderings of stored records, in the shapes AC's responses use (ids as
//! strings, timestamps in the account zone, `links` to sub-resources).

use md5::{Digest, Md5};
use serde_json::{Value, json};

use super::api::{Base, fmt_ts, fmt_utc};
use super::store::{
    Account, AccountContact, AccountFieldDatum, AccountFieldMeta, Activity, Automation, Campaign, Contact,
    ContactAutomation, ContactTag, Field, FieldValue, ListMembership, Store, Tag, TrackingLog,
};

/// The sub-resources every contact links to.
const CONTACT_LINKS: [&str; 16] = [
    "bounceLogs",
    "contactAutomations",
    "contactData",
    "contactGoals",
    "contactLists",
    "contactLogs",
    "contactTags",
    "contactDeals",
    "deals",
    "fieldValues",
    "geoIps",
    "notes",
    "organization",
    "plusAppend",
    "trackingLogs",
    "scoreValues",
];

/// Renders records of one store for one request (the base URL of links).
pub struct View<'a> {
    pub s: &'a Store,
    pub base: &'a Base,
}

impl View<'_> {
    pub fn ts(&self, t: i64) -> String {
        fmt_ts(t, self.s.utc_offset)
    }

    fn opt_ts(&self, t: Option<i64>) -> Value {
        t.map_or(Value::Null, |t| Value::String(self.ts(t)))
    }

    pub fn contact(&self, c: &Contact) -> Value {
        let id = c.id;
        let links: serde_json::Map<String, Value> = CONTACT_LINKS
            .iter()
            .map(|l| ((*l).to_string(), Value::String(self.base.link(&format!("contacts/{id}/{l}")))))
            .collect();
        let orgid = c
            .account_contact
            .and_then(|ac| self.s.account_contacts.get(&ac))
            .map_or("0".to_string(), |ac| ac.account.to_string());
        let mut hasher = Md5::new();
        hasher.update(format!("{id}:{}", c.email.to_lowercase()).as_bytes());
        json!({
            "cdate": self.ts(c.cdate),
            "email": c.email,
            "phone": c.phone,
            "firstName": c.first_name,
            "lastName": c.last_name,
            "orgid": orgid,
            "orgname": "",
            "segmentio_id": "",
            "bounced_hard": "0",
            "bounced_soft": "0",
            "bounced_date": "0000-00-00",
            "ip": "0",
            "ua": "",
            "hash": hex::encode(hasher.finalize()),
            "socialdata_lastcheck": "0000-00-00 00:00:00",
            "email_local": "",
            "email_domain": "",
            "sentcnt": "0",
            "rating_tstamp": "0000-00-00",
            "gravatar": "0",
            "deleted": "0",
            "anonymized": "0",
            "udate": self.ts(c.udate),
            "deleted_at": "0000-00-00 00:00:00",
            "created_utc_timestamp": fmt_utc(c.cdate),
            "updated_utc_timestamp": fmt_utc(c.udate),
            "email_empty": c.email.is_empty(),
            "links": links,
            "id": id.to_string(),
            "organization": Value::Null,
        })
    }

    pub fn field_value(&self, v: &FieldValue) -> Value {
        json!({
            "contact": v.contact.to_string(),
            "field": v.field.to_string(),
            "value": v.value,
            "cdate": self.ts(v.cdate),
            "udate": self.ts(v.udate),
            "links": {
                "owner": self.base.link(&format!("fieldValues/{}/owner", v.id)),
                "field": self.base.link(&format!("fieldValues/{}/field", v.id)),
            },
            "id": v.id.to_string(),
            "owner": v.contact.to_string(),
        })
    }

    /// A contact's field values, in id order.
    pub fn field_values_of(&self, c: &Contact) -> Vec<Value> {
        c.field_values
            .iter()
            .filter_map(|id| self.s.field_values.get(id))
            .map(|v| self.field_value(v))
            .collect()
    }

    pub fn field(&self, f: &Field) -> Value {
        json!({
            "title": f.title,
            "descript": f.descript,
            "type": f.kind,
            "isrequired": if f.isrequired { "1" } else { "0" },
            "perstag": f.perstag,
            "defval": f.defval,
            "show_in_list": "0",
            "rows": "0",
            "cols": "0",
            "visible": if f.visible { "1" } else { "0" },
            "service": "",
            "ordernum": f.ordernum.to_string(),
            "cdate": self.ts(f.cdate),
            "udate": self.ts(f.udate),
            "options": [],
            "relations": [],
            "links": {
                "options": self.base.link(&format!("fields/{}/options", f.id)),
                "relations": self.base.link(&format!("fields/{}/relations", f.id)),
            },
            "id": f.id.to_string(),
        })
    }

    pub fn tag(&self, t: &Tag) -> Value {
        json!({
            "tagType": t.tag_type,
            "tag": t.tag,
            "description": t.description,
            "cdate": self.ts(t.cdate),
            "links": { "contactGoalTags": self.base.link(&format!("tags/{}/contactGoalTags", t.id)) },
            "id": t.id.to_string(),
        })
    }

    pub fn contact_tag(&self, ct: &ContactTag) -> Value {
        json!({
            "contact": ct.contact.to_string(),
            "tag": ct.tag.to_string(),
            "cdate": self.ts(ct.cdate),
            "created_timestamp": fmt_utc(ct.cdate),
            "updated_timestamp": fmt_utc(ct.cdate),
            "links": {
                "tag": self.base.link(&format!("contactTags/{}/tag", ct.id)),
                "contact": self.base.link(&format!("contactTags/{}/contact", ct.id)),
            },
            "id": ct.id.to_string(),
        })
    }

    pub fn contact_list(&self, c: &Contact, m: &ListMembership) -> Value {
        let id = contact_list_id(c.id, m.list);
        let link = |l: &str| self.base.link(&format!("contactLists/{id}/{l}"));
        json!({
            "contact": c.id.to_string(),
            "list": m.list.to_string(),
            "form": Value::Null,
            "seriesid": "0",
            "sdate": self.ts(m.sdate),
            "udate": self.ts(m.udate),
            "status": m.status.to_string(),
            "responder": "1",
            "sync": "0",
            "unsubreason": Value::Null,
            "campaign": Value::Null,
            "message": Value::Null,
            "first_name": c.first_name,
            "last_name": c.last_name,
            "ip4Sub": "0",
            "sourceid": "0",
            "autosyncLog": Value::Null,
            "ip4_last": "0",
            "ip4Unsub": "0",
            "created_timestamp": fmt_utc(m.sdate),
            "updated_timestamp": fmt_utc(m.udate),
            "created_by": Value::Null,
            "updated_by": Value::Null,
            "unsubscribeAutomation": Value::Null,
            "links": {
                "automation": link("automation"),
                "list": link("list"),
                "contact": link("contact"),
                "form": link("form"),
                "autosyncLog": link("autosyncLog"),
                "campaign": link("campaign"),
                "unsubscribeAutomation": link("unsubscribeAutomation"),
                "message": link("message"),
            },
            "id": id.to_string(),
            "automation": Value::Null,
        })
    }

    pub fn contact_automation(&self, ca: &ContactAutomation) -> Value {
        let id = ca.id;
        let completed = ca.status == 2;
        json!({
            "contact": ca.contact.to_string(),
            "seriesid": ca.automation.to_string(),
            "startid": "0",
            "status": ca.status.to_string(),
            "batchid": Value::Null,
            "adddate": self.ts(ca.adddate),
            "remdate": self.opt_ts(ca.remdate),
            "timespan": ca.remdate.map_or(Value::Null, |r| Value::String((r - ca.adddate).to_string())),
            "lastblock": "0",
            "lastlogid": "0",
            "lastdate": self.ts(ca.remdate.unwrap_or(ca.adddate)),
            "completedElements": "0",
            "totalElements": "0",
            "completed": i32::from(completed),
            "completeValue": if completed { 100 } else { 0 },
            "links": {
                "automation": self.base.link(&format!("contactAutomations/{id}/automation")),
                "contact": self.base.link(&format!("contactAutomations/{id}/contact")),
                "contactGoals": self.base.link(&format!("contactAutomations/{id}/contactGoals")),
            },
            "id": id.to_string(),
            "automation": ca.automation.to_string(),
        })
    }

    pub fn account(&self, a: &Account) -> Value {
        json!({
            "name": a.name,
            "accountUrl": a.account_url,
            "owner": a.owner.to_string(),
            "createdTimestamp": self.ts(a.created),
            "updatedTimestamp": self.ts(a.updated),
            "links": [],
            "id": a.id.to_string(),
        })
    }

    /// `fields` of an account: its custom field data.
    pub fn account_fields(&self, account: u64) -> Vec<Value> {
        self.s
            .account_field_data
            .values()
            .filter(|d| d.account == account)
            .map(|d| {
                let mut v = json!({
                    "customFieldId": d.field,
                    "fieldValue": value_string(&d.value),
                    "accountId": d.account.to_string(),
                });
                if let Some(c) = &d.currency {
                    v["fieldCurrency"] = json!(c);
                }
                v
            })
            .collect()
    }

    pub fn account_contact(&self, ac: &AccountContact) -> Value {
        json!({
            "account": ac.account.to_string(),
            "contact": ac.contact.to_string(),
            "jobTitle": ac.job_title,
            "createdTimestamp": self.ts(ac.created),
            "updatedTimestamp": self.ts(ac.updated),
            "links": {
                "account": self.base.link(&format!("accountContacts/{}/account", ac.id)),
                "contact": self.base.link(&format!("accountContacts/{}/contact", ac.id)),
            },
            "id": ac.id.to_string(),
        })
    }

    pub fn account_field_meta(&self, m: &AccountFieldMeta) -> Value {
        json!({
            "id": m.id.to_string(),
            "fieldLabel": m.label,
            "fieldType": m.kind,
            "fieldOptions": m.options,
            "fieldDefault": m.default,
            "fieldDefaultCurrency": m.default_currency,
            "isFormVisible": i32::from(m.visible),
            "isRequired": i32::from(m.required),
            "displayOrder": m.display_order,
            "personalization": "",
            "knownFieldId": Value::Null,
            "hideFieldFlag": 0,
            "createdTimestamp": fmt_utc(m.created),
            "updatedTimestamp": fmt_utc(m.updated),
            "links": {
                "accountCustomFieldData": self.base.link(&format!("accountCustomFieldMeta/{}/accountCustomFieldData", m.id)),
            },
        })
    }

    pub fn account_field_datum(&self, d: &AccountFieldDatum) -> Value {
        let mut v = json!({
            "id": d.id.to_string(),
            "accountCustomFieldMetumId": d.field,
            "accountId": d.account,
            "customFieldId": d.field,
            "createdTimestamp": fmt_utc(d.created),
            "updatedTimestamp": fmt_utc(d.updated),
            "fieldValue": value_string(&d.value),
            "links": {
                "account": self.base.link(&format!("accountCustomFieldData/{}/account", d.id)),
                "accountCustomFieldMetum": self.base.link(&format!("accountCustomFieldData/{}/accountCustomFieldMetum", d.id)),
            },
        });
        if let Some(c) = &d.currency {
            v["fieldCurrency"] = json!(c);
        }
        v
    }

    pub fn automation(&self, a: &Automation) -> Value {
        let id = a.id;
        let link = |l: &str| self.base.link(&format!("automations/{id}/{l}"));
        json!({
            "name": a.name,
            "cdate": self.ts(a.cdate),
            "mdate": self.ts(a.mdate),
            "userid": "1",
            "status": a.status,
            "entered": a.entered.to_string(),
            "exited": a.exited.to_string(),
            "hidden": "0",
            "defaultscreenshot": "",
            "screenshot": "",
            "labels": a.labels,
            "links": {
                "campaigns": link("campaigns"),
                "contactGoals": link("contactGoals"),
                "contactAutomations": link("contactAutomations"),
                "blocks": link("blocks"),
                "goals": link("goals"),
                "sms": link("sms"),
                "sitemessages": link("sitemessages"),
            },
            "id": id.to_string(),
        })
    }

    pub fn campaign(&self, c: &Campaign) -> Value {
        let id = c.id;
        let link = |l: &str| self.base.link(&format!("campaigns/{id}/{l}"));
        let mut v = json!({
            "type": c.kind,
            "userid": "1",
            "segmentid": "0",
            "bounceid": "-1",
            "realcid": "0",
            "sendid": "0",
            "threadid": "0",
            "seriesid": c.automation.unwrap_or(0).to_string(),
            "formid": "0",
            "basetemplateid": "",
            "basemessageid": "0",
            "addressid": "0",
            "source": "web",
            "name": c.name,
            "cdate": self.ts(c.cdate),
            "mdate": self.ts(c.mdate),
            "sdate": self.opt_ts(c.sdate),
            "ldate": self.opt_ts(c.ldate),
            "status": c.status,
            "public": "1",
            "tracklinks": "all",
            "trackreads": "1",
            "labels": c.labels,
            "links": {
                "user": link("user"),
                "automation": link("automation"),
                "campaignMessage": link("campaignMessage"),
                "campaignMessages": link("campaignMessages"),
                "links": link("links"),
                "campaignLists": link("campaignLists"),
            },
            "id": id.to_string(),
            "user": "1",
            "automation": c.automation.map(|a| a.to_string()),
        });
        let counters = [
            ("send_amt", c.send_amt),
            ("total_amt", c.send_amt),
            ("opens", c.opens),
            ("uniqueopens", c.opens),
            ("linkclicks", c.linkclicks),
            ("uniquelinkclicks", c.linkclicks),
            ("subscriberclicks", c.linkclicks),
            ("forwards", 0),
            ("uniqueforwards", 0),
            ("hardbounces", 0),
            ("softbounces", 0),
            ("unsubscribes", 0),
            ("unsubreasons", 0),
            ("updates", 0),
            ("socialshares", 0),
            ("replies", 0),
            ("uniquereplies", 0),
        ];
        for (key, n) in counters {
            v[key] = Value::String(n.to_string());
        }
        v
    }

    pub fn activity(&self, a: &Activity) -> Value {
        json!({
            "tstamp": self.ts(a.tstamp),
            "subscriberid": a.contact.to_string(),
            "reference_type": a.reference_type,
            "reference_id": a.reference_id.to_string(),
            "reference_action": a.reference_action,
            "jsonData": if a.data.is_null() { Value::Null } else { Value::String(a.data.to_string()) },
            "userid": "0",
            "permission": "",
            "referenceModelName": reference_model(&a.reference_type),
            "notes": [],
            "recipients": [],
            "reference": { "type": reference_model(&a.reference_type), "id": a.reference_id.to_string() },
            "user": Value::Null,
            "id": a.id.to_string(),
        })
    }

    pub fn tracking_log(&self, t: &TrackingLog) -> Value {
        json!({
            "subscriberid": t.contact.to_string(),
            "type": t.kind,
            "tstamp": self.ts(t.tstamp),
            "value": t.value,
            "campaignid": t.campaign.unwrap_or(0).to_string(),
            "links": {},
            "id": t.id.to_string(),
        })
    }
}

/// The synthetic id of a contact's list membership.
pub fn contact_list_id(contact: u64, list: u64) -> u64 {
    contact.saturating_mul(10_000).saturating_add(list)
}

/// A stored JSON value as AC's string form (arrays become `||a||b||`).
pub fn value_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(value_string).collect();
            format!("||{}||", parts.join("||"))
        }
        other => other.to_string(),
    }
}

fn reference_model(reference_type: &str) -> &'static str {
    match reference_type {
        "CampaignSend" | "CampaignOpen" | "CampaignReply" | "LinkClick" => "campaign",
        "AutomationEntered" | "AutomationCompleted" => "automation",
        "SiteTracking" => "site-tracking",
        "EventTracking" => "event-tracking",
        "SubscriberEmail" => "contact-email",
        _ => "contact",
    }
}
