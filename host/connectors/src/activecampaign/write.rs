//! ActiveCampaign writes: record fields to AC payloads (standard fields,
//! custom fields by perstag, `tags`, `account`), `PUT /contacts/{id}` for
//! updates by id, `/contact/sync` (concurrent, paced by the shared limiter)
//! for small batches and `/import/bulk_import` + `/import/info` for large
//! ones; tags and accounts are found or created and cached by name.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use crmsync_sdk::types::{Record, Value};
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Value as Json, json};

use super::{ActiveCampaignConnector, Field, IMPORT_LIMIT, PAGE_LIMIT, STANDARD, VENDOR, bad, id_text};
use crate::{ConnectorError, VendorError, Write, WriteKey, WriteResult, Written};

pub(super) fn record_error(code: &str, message: impl Into<String>) -> VendorError {
    VendorError { code: code.into(), message: message.into(), retryable: false }
}

/// A field value as AC stores it (multi-value fields as `||a||b||`).
pub(super) fn to_ac(kind: &str, v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::TextList(l) if matches!(kind, "checkbox" | "listbox") => format!("||{}||", l.join("||")),
        Value::TextList(l) => l.join(", "),
        Value::Boolean(b) if kind == "checkbox" => {
            if *b {
                "||Yes||".into()
            } else {
                String::new()
            }
        }
        Value::Date(d) => d.format("%Y-%m-%d").to_string(),
        Value::DateTime(t) if kind == "date" => t.date_naive().format("%Y-%m-%d").to_string(),
        Value::DateTime(t) => t.to_rfc3339_opts(SecondsFormat::Secs, true),
        other => other.to_string(),
    }
}

/// A stored AC value, typed by its field's kind.
pub(super) fn from_ac(kind: &str, raw: &str) -> Value {
    let raw_t = raw.trim();
    if raw_t.is_empty() {
        return Value::Null;
    }
    match kind {
        "checkbox" | "listbox" => Value::TextList(
            raw_t.split("||").map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect(),
        ),
        "date" => NaiveDate::parse_from_str(raw_t, "%Y-%m-%d").map_or_else(|_| Value::text(raw), Value::Date),
        "datetime" => DateTime::parse_from_rfc3339(raw_t)
            .map_or_else(|_| Value::text(raw), |t| Value::DateTime(t.with_timezone(&Utc))),
        _ => Value::text(raw),
    }
}

/// An AC id as the integer the reference declares.
fn int_id(id: &str) -> Result<u64, ConnectorError> {
    id.trim().parse().map_err(|_| bad(format!("{id:?} is not an ActiveCampaign id")))
}

/// AC's email syntax check (`local@domain.tld`, no spaces), done before
/// sending so one bad address never fails a whole import.
fn plausible_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else { return false };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !email.chars().any(char::is_whitespace)
}

/// One contact write, converted.
struct Contact {
    index: usize,
    id: Option<String>,
    email: Option<String>,
    standard: Vec<(&'static str, String)>,
    /// `(field id, value)`.
    fields: Vec<(String, String)>,
    tags: Vec<String>,
    account: Option<String>,
    /// Unsubscribe from every list the contact is on.
    unsubscribe: bool,
}

impl Contact {
    /// `{"contact": {...}}` for `/contact/sync` and `PUT /contacts/{id}`.
    fn body(&self) -> Json {
        let mut c = serde_json::Map::new();
        if let Some(e) = &self.email {
            c.insert("email".into(), json!(e));
        }
        for (k, v) in &self.standard {
            c.insert((*k).into(), json!(v));
        }
        let fv: Vec<Json> = self.fields.iter().map(|(f, v)| json!({"field": f, "value": v})).collect();
        if !fv.is_empty() {
            c.insert("fieldValues".into(), Json::Array(fv));
        }
        json!({ "contact": c })
    }

    /// One contact of a bulk import.
    fn import(&self) -> Json {
        let names = [("firstName", "first_name"), ("lastName", "last_name"), ("phone", "phone")];
        let mut c = json!({ "email": self.email });
        for (k, v) in &self.standard {
            if let Some((_, n)) = names.iter().find(|(a, _)| a == k) {
                c[*n] = json!(v);
            }
        }
        if !self.tags.is_empty() {
            c["tags"] = json!(self.tags);
        }
        if let Some(a) = &self.account {
            c["customer_acct_name"] = json!(a);
        }
        if !self.fields.is_empty() {
            c["fields"] = Json::Array(
                self.fields
                    .iter()
                    .map(|(f, v)| json!({"id": f.parse::<u64>().unwrap_or(0), "value": v}))
                    .collect(),
            );
        }
        c
    }
}

impl ActiveCampaignConnector {
    fn convert(
        index: usize,
        key: &WriteKey,
        record: &Record,
        fields: &HashMap<String, Field>,
    ) -> Result<Contact, VendorError> {
        let mut c = Contact {
            index,
            id: None,
            email: None,
            standard: Vec::new(),
            fields: Vec::new(),
            tags: Vec::new(),
            account: None,
            unsubscribe: false,
        };
        let email = record.text("email").map(str::trim).map(String::from).or_else(|| match key {
            WriteKey::Email(e) => Some(e.trim().to_string()),
            _ => None,
        });
        match key {
            WriteKey::Id(id) => c.id = Some(id.clone()),
            WriteKey::Email(_) | WriteKey::New { .. } if email.is_none() => {
                return Err(record_error("field_missing", "Contact Email Address is not provided."));
            }
            _ => {}
        }
        if let Some(e) = &email
            && !plausible_email(e)
        {
            return Err(record_error("email_invalid", "Contact Email Address is not valid."));
        }
        c.email = email;
        for (name, value) in &record.fields {
            match name.as_str() {
                "email" => {}
                "tags" => {
                    c.tags = match value {
                        Value::TextList(l) => l.clone(),
                        Value::Null => Vec::new(),
                        other => vec![other.to_string()],
                    };
                    c.tags.retain(|t| !t.trim().is_empty());
                }
                "account" => c.account = Some(value.to_string()).filter(|a| !a.trim().is_empty()),
                "unsubscribe" => c.unsubscribe = value == &Value::Boolean(true),
                n => match STANDARD.iter().find(|s| **s == n) {
                    Some(s) => c.standard.push((s, to_ac("text", value))),
                    None => {
                        let tag = n.trim_matches('%').to_ascii_uppercase();
                        let f = fields.get(&tag).ok_or_else(|| {
                            record_error(
                                "unknown_field",
                                format!("no ActiveCampaign custom field with personalization tag {n}"),
                            )
                        })?;
                        c.fields.push((f.id.clone(), to_ac(&f.kind, value)));
                    }
                },
            }
        }
        Ok(c)
    }

    pub(super) async fn write_contacts(
        &self,
        writes: Vec<Write>,
    ) -> Result<Vec<WriteResult>, ConnectorError> {
        let mut results: Vec<Option<WriteResult>> = vec![None; writes.len()];
        let mut fields = self.fields(false).await?;
        let unknown = |fields: &HashMap<String, Field>| {
            writes.iter().any(|w| match w {
                Write::Upsert { record, .. } => record.fields.keys().any(|k| {
                    !STANDARD.contains(&k.as_str())
                        && k != "tags"
                        && k != "account"
                        && k != "unsubscribe"
                        && !fields.contains_key(&k.trim_matches('%').to_ascii_uppercase())
                }),
                Write::Delete { .. } => false,
            })
        };
        if unknown(&fields) {
            fields = self.fields(true).await?;
        }
        let (mut by_id, mut by_email, mut deletes) = (Vec::new(), Vec::new(), Vec::new());
        for (i, w) in writes.iter().enumerate() {
            match w {
                Write::Delete { id } => deletes.push((i, id.clone())),
                Write::Upsert { key, record } => match Self::convert(i, key, record, &fields) {
                    Ok(c) if c.id.is_some() => by_id.push(c),
                    Ok(c) => by_email.push(c),
                    Err(e) => results[i] = Some(Err(e)),
                },
            }
        }
        let n = self.cfg.concurrency.max(1);
        // Updates by id and small upserts: one call per contact, concurrently.
        let use_bulk = by_email.len() >= self.cfg.bulk_threshold.max(1);
        let singles: Vec<&Contact> =
            by_id.iter().chain(if use_bulk { [].iter() } else { by_email.iter() }).collect();
        // Their accounts first, once each and in turn: contacts written
        // concurrently must not race to create one account twice.
        let mut names: Vec<&str> = singles.iter().filter_map(|c| c.account.as_deref()).collect();
        names.sort_by_key(|n| n.trim().to_lowercase());
        names.dedup_by_key(|n| n.trim().to_lowercase());
        for name in names {
            // A failure here is reported on each contact of that account below.
            let _ = self.account_id(name).await;
        }
        let singles = &singles;
        let done: Vec<(usize, Result<Written, ConnectorError>)> =
            futures_util::stream::iter(0..singles.len())
                .map(|k| async move { (singles[k].index, self.write_one(singles[k]).await) })
                .buffered(n)
                .collect()
                .await;
        for (i, r) in done {
            results[i] = Some(match r {
                Ok(w) => Ok(w),
                Err(e) => to_record_error(e)?,
            });
        }
        if use_bulk {
            for chunk in by_email.chunks(IMPORT_LIMIT) {
                self.bulk_import(chunk, &mut results).await?;
            }
        }
        let deleted: Vec<(usize, Result<(), ConnectorError>)> = futures_util::stream::iter(deletes)
            .map(|(i, id)| async move {
                (
                    i,
                    self.send_json("delete_contact", Method::DELETE, &format!("contacts/{id}"), &Json::Null)
                        .await
                        .map(|_| ()),
                )
            })
            .buffered(n)
            .collect()
            .await;
        for ((i, r), id) in deleted.into_iter().zip(writes.iter().filter_map(|w| match w {
            Write::Delete { id } => Some(id.clone()),
            _ => None,
        })) {
            results[i] = Some(match r {
                // Already gone is what a delete wants.
                Ok(()) | Err(ConnectorError::Rejected { status: 404, .. }) => {
                    Ok(Written { id, created: false })
                }
                Err(e) => to_record_error(e)?,
            });
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(record_error("unknown", "no result"))))
            .collect())
    }

    /// `PUT /contacts/{id}` or `/contact/sync`, then tags and the account.
    async fn write_one(&self, c: &Contact) -> Result<Written, ConnectorError> {
        // A write that only adds tags, an account or an unsubscribe to a known
        // contact needs no contact update.
        let nothing = c.email.is_none() && c.standard.is_empty() && c.fields.is_empty();
        if let (true, Some(id)) = (nothing, &c.id) {
            self.follow_ups(c, id).await?;
            return Ok(Written { id: id.clone(), created: false });
        }
        let (reply, what) = match &c.id {
            Some(id) => (
                self.send_json("update_contact", Method::PUT, &format!("contacts/{id}"), &c.body()).await?,
                false,
            ),
            None => (self.send_json("contact_sync", Method::POST, "contact/sync", &c.body()).await?, true),
        };
        let created = what && reply.status.as_u16() == 201;
        let body: Json = reply.json(VENDOR)?;
        let id = id_text(body.get("contact").and_then(|c| c.get("id")))
            .ok_or_else(|| bad("contact write without an id"))?;
        self.follow_ups(c, &id).await?;
        Ok(Written { id, created })
    }

    /// Tags, the account and an unsubscribe, after the contact itself.
    async fn follow_ups(&self, c: &Contact, id: &str) -> Result<(), ConnectorError> {
        for tag in &c.tags {
            let tag_id = self.tag_id(tag).await?;
            self.send_json(
                "contact_tag",
                Method::POST,
                "contactTags",
                &json!({"contactTag": {"contact": id, "tag": tag_id}}),
            )
            .await?;
        }
        if let Some(name) = &c.account {
            let account = self.account_id(name).await?;
            // The reference types both ids as integers.
            let link = json!({"accountContact": {"contact": int_id(id)?, "account": int_id(&account)?}});
            match self.send_json("account_contact", Method::POST, "accountContacts", &link).await {
                // Already linked to this or another account: AC keeps one account per contact.
                Err(ConnectorError::Rejected { status: 422, .. }) | Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        if c.unsubscribe {
            self.unsubscribe_everywhere(id).await?;
        }
        Ok(())
    }

    /// Sets status 2 (unsubscribed) on every list the contact is subscribed to.
    async fn unsubscribe_everywhere(&self, id: &str) -> Result<(), ConnectorError> {
        let lists = self.get_json("contact_lists", &format!("contacts/{id}/contactLists"), &[]).await?;
        for m in lists.get("contactLists").and_then(Json::as_array).into_iter().flatten() {
            if id_text(m.get("status")).as_deref() != Some("1") {
                continue;
            }
            let Some(list) = id_text(m.get("list")) else { continue };
            let body = json!({"contactList": {"list": list, "contact": id, "status": 2}});
            self.send_json("contact_list", Method::POST, "contactLists", &body).await?;
        }
        Ok(())
    }

    /// The id of tag `name`, created if missing.
    pub(super) async fn tag_id(&self, name: &str) -> Result<String, ConnectorError> {
        let key = name.trim().to_lowercase();
        let mut cache = self.tags.lock().await;
        if let Some(id) = cache.get(&key) {
            return Ok(id.clone());
        }
        let found = self
            .get_json(
                "tags",
                "tags",
                &[("filters[search][eq]", name.trim().to_string()), ("limit", PAGE_LIMIT.to_string())],
            )
            .await?;
        let existing = found.get("tags").and_then(Json::as_array).into_iter().flatten().find(|t| {
            t.get("tag").and_then(Json::as_str).is_some_and(|n| n.trim().eq_ignore_ascii_case(name.trim()))
        });
        let id = match existing.and_then(|t| id_text(t.get("id"))) {
            Some(id) => id,
            None => {
                let body = json!({"tag": {"tag": name.trim(), "tagType": "contact", "description": ""}});
                let created: Json =
                    self.send_json("create_tag", Method::POST, "tags", &body).await?.json(VENDOR)?;
                id_text(created.get("tag").and_then(|t| t.get("id")))
                    .ok_or_else(|| bad("tag created without an id"))?
            }
        };
        cache.insert(key, id.clone());
        Ok(id)
    }

    /// The id of account `name`, created if missing.
    pub async fn account_id(&self, name: &str) -> Result<String, ConnectorError> {
        if let Some(id) = self.find_account(name).await? {
            return Ok(id);
        }
        let body = json!({"account": {"name": name.trim()}});
        match self.create_account(&body).await {
            // Created meanwhile by someone else (names are unique): use that one.
            Err(ConnectorError::Rejected { status: 422, message, .. }) if message.contains("duplicate") => {
                self.accounts.lock().await.remove(&name.trim().to_lowercase());
                match self.find_account(name).await? {
                    Some(id) => Ok(id),
                    None => Err(ConnectorError::Rejected { vendor: VENDOR, status: 422, message }),
                }
            }
            other => other,
        }
    }

    /// The id of account `name`, if it exists (cached by lower-cased name).
    pub(super) async fn find_account(&self, name: &str) -> Result<Option<String>, ConnectorError> {
        let key = name.trim().to_lowercase();
        if let Some(id) = self.accounts.lock().await.get(&key) {
            return Ok(Some(id.clone()));
        }
        let found = self
            .get_json(
                "accounts",
                "accounts",
                &[("search", name.trim().to_string()), ("limit", PAGE_LIMIT.to_string())],
            )
            .await?;
        let existing = found.get("accounts").and_then(Json::as_array).into_iter().flatten().find(|a| {
            a.get("name").and_then(Json::as_str).is_some_and(|n| n.trim().eq_ignore_ascii_case(name.trim()))
        });
        let id = existing.and_then(|a| id_text(a.get("id")));
        if let Some(id) = &id {
            self.accounts.lock().await.insert(key, id.clone());
        }
        Ok(id)
    }

    /// `POST /accounts` with `{"account": {...}}`; the new id, cached by name.
    pub(super) async fn create_account(&self, body: &Json) -> Result<String, ConnectorError> {
        let created: Json =
            self.send_json("create_account", Method::POST, "accounts", body).await?.json(VENDOR)?;
        let account = created.get("account");
        let id =
            id_text(account.and_then(|a| a.get("id"))).ok_or_else(|| bad("account created without an id"))?;
        if let Some(name) = account.and_then(|a| a.get("name")).and_then(Json::as_str) {
            self.accounts.lock().await.insert(name.trim().to_lowercase(), id.clone());
        }
        Ok(id)
    }

    /// One bulk import of ≤ 250 contacts, polled to completion.
    async fn bulk_import(
        &self,
        chunk: &[Contact],
        results: &mut [Option<WriteResult>],
    ) -> Result<(), ConnectorError> {
        // Emails were checked when converting, so AC's all-or-nothing
        // validation (400 `failureReasons`) only refuses a malformed batch.
        let batch: Vec<&Contact> = chunk.iter().collect();
        let body = json!({ "contacts": batch.iter().map(|c| c.import()).collect::<Vec<_>>() });
        let queued: Json =
            self.send_json("bulk_import", Method::POST, "import/bulk_import", &body).await?.json(VENDOR)?;
        let batch_id = queued
            .get("batchId")
            .and_then(Json::as_str)
            .map(String::from)
            .ok_or_else(|| bad("bulk import without batchId"))?;
        let info = loop {
            let info = self.get_json("import_info", "import/info", &[("batchId", batch_id.clone())]).await?;
            if info.get("status").and_then(Json::as_str) == Some("completed") {
                break info;
            }
            tokio::time::sleep(self.cfg.import_poll).await;
        };
        let list = |k: &str| -> Vec<String> {
            info.get(k)
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
                .filter_map(|v| id_text(Some(v)))
                .collect()
        };
        let failed: Vec<String> = list("failure").iter().map(|e| e.trim().to_lowercase()).collect();
        let mut ok_ids = list("success").into_iter();
        for c in &batch {
            let email = c.email.as_deref().unwrap_or("").trim().to_lowercase();
            results[c.index] = Some(if failed.contains(&email) {
                Err(record_error("import_failed", "ActiveCampaign could not import this contact"))
            } else {
                match ok_ids.next() {
                    Some(id) => Ok(Written { id, created: false }),
                    None => Err(record_error("import_unknown", "the import reported no id for this contact")),
                }
            });
        }
        Ok(())
    }
}

/// A per-record rejection (422, 404) becomes that record's error; anything
/// else fails the batch.
pub(super) fn to_record_error(e: ConnectorError) -> Result<WriteResult, ConnectorError> {
    match e {
        ConnectorError::Rejected { status: 400 | 404 | 422, message, .. } => {
            let (code, text) = message.split_once(": ").unwrap_or(("invalid", message.as_str()));
            Ok(Err(record_error(code, text)))
        }
        other => Err(other),
    }
}
