//! Brevo writes: record fields to Brevo payloads (checked against the
//! attribute definitions; a missing attribute is created when its type can
//! be told from the value), `POST /contacts/batch` for updates by id (100 a
//! call; a refused batch changed nothing, and its contacts go one by one
//! through `PUT /contacts/{id}`, so each gets its own answer; an email change
//! always goes alone, since it must read the contact first),
//! `POST /contacts` + `updateEnabled` for email-keyed upserts (a 204 has no
//! id: `GET /contacts/{email}` reads it), `POST /contacts/import` +
//! `/processes/{id}` for many, and `DELETE /contacts/{id}`.
//!
//! Consent: `emailBlacklisted` is only ever sent as `true` (an `unsubscribe`
//! write). An email change by id carries `emailBlacklisted: true` when the
//! contact is blacklisted, since Brevo would otherwise resubscribe the new
//! address; an import never clears blacklisting.

use std::collections::{HashMap, HashSet};

use crmsync_sdk::types::{Record, Value};
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Map, Value as Json, json};

use super::attributes::{Attribute, PHONES};
use super::{BrevoConnector, PAGE_LIMIT, VENDOR, bad, id_of, parse_ts, urlencode};
use crate::{ConnectorError, VendorError, Write, WriteKey, WriteResult, Written};

/// Fields that are not attributes.
const EMAIL: &str = "email";
const UNSUBSCRIBE: &str = crmsync_core::connector::fields::UNSUBSCRIBE;

/// `local@domain.tld`, no spaces: checked before sending so one bad address
/// never fails an import.
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
#[derive(Debug)]
struct Contact {
    index: usize,
    id: Option<String>,
    email: Option<String>,
    attributes: Map<String, Json>,
    unsubscribe: bool,
}

/// Most contacts one `POST /contacts/batch` updates.
pub const BATCH_LIMIT: usize = 100;

impl Contact {
    /// Its numeric id when it can ride a `POST /contacts/batch`: an update
    /// by id that changes something but no email (an email change reads the
    /// contact first, see `write_one`).
    fn batch_id(&self) -> Option<u64> {
        if self.email.is_some() || (self.attributes.is_empty() && !self.unsubscribe) {
            return None;
        }
        self.id.as_deref()?.trim().parse().ok()
    }

    /// Its item of a `POST /contacts/batch`.
    fn batch_item(&self) -> Option<Json> {
        let mut item = json!({"id": self.batch_id()?});
        if !self.attributes.is_empty() {
            item["attributes"] = Json::Object(self.attributes.clone());
        }
        if self.unsubscribe {
            item["emailBlacklisted"] = json!(true);
        }
        Some(item)
    }

    /// Whether an attribute is cleared (`""`).
    fn clears(&self) -> bool {
        self.attributes.values().any(|v| v.as_str() == Some(""))
    }
}

/// The attribute names of a write that the account does not have.
fn unknown_names<'a>(writes: &'a [Write], attrs: &HashMap<String, Attribute>) -> Vec<(String, &'a Value)> {
    let mut out: Vec<(String, &Value)> = Vec::new();
    for w in writes {
        let Write::Upsert { record, .. } = w else { continue };
        for (name, value) in &record.fields {
            let upper = name.to_ascii_uppercase();
            if name == EMAIL || upper == "EMAIL" || name == UNSUBSCRIBE || is_identifier(&upper) {
                continue;
            }
            if attrs.contains_key(&upper) {
                continue;
            }
            match out.iter_mut().find(|(n, _)| *n == upper) {
                // Type the attribute by the first value that says its type.
                Some(slot) if slot.1.is_empty() => slot.1 = value,
                Some(_) => {}
                None => out.push((upper, value)),
            }
        }
    }
    out
}

/// Identifiers Brevo knows without a definition.
fn is_identifier(upper: &str) -> bool {
    PHONES.contains(&upper) || upper == "EXT_ID"
}

fn convert(
    index: usize,
    key: &WriteKey,
    record: &Record,
    attrs: &HashMap<String, Attribute>,
) -> Result<Contact, VendorError> {
    let mut c = Contact { index, id: None, email: None, attributes: Map::new(), unsubscribe: false };
    let email = record
        .text(EMAIL)
        .or_else(|| record.text("EMAIL"))
        .map(|e| e.trim().to_lowercase())
        .filter(|e| !e.is_empty())
        .or_else(|| match key {
            WriteKey::Email(e) => Some(e.trim().to_lowercase()),
            _ => None,
        });
    match key {
        WriteKey::Id(id) => c.id = Some(id.clone()),
        WriteKey::Email(_) | WriteKey::New { .. } if email.is_none() => {
            return Err(VendorError::permanent("missing_parameter", "the contact has no email address"));
        }
        WriteKey::Name(_) => {
            return Err(VendorError::permanent("invalid_parameter", "Brevo contacts have no name key"));
        }
        _ => {}
    }
    if let Some(e) = &email
        && !plausible_email(e)
    {
        return Err(VendorError::permanent("invalid_parameter", "Invalid email address"));
    }
    c.email = email;
    for (name, value) in &record.fields {
        let upper = name.to_ascii_uppercase();
        if name == EMAIL || upper == "EMAIL" {
            continue;
        }
        if name == UNSUBSCRIBE {
            c.unsubscribe = value == &Value::Boolean(true);
            continue;
        }
        let json = match attrs.get(&upper) {
            Some(a) => a.write(value)?,
            None if is_identifier(&upper) => {
                Json::String(value.as_text().map(str::trim).unwrap_or_default().to_string())
            }
            None if value.is_empty() => continue,
            None => {
                return Err(VendorError::permanent(
                    "invalid_attribute",
                    format!(
                        "no Brevo contact attribute {upper}: create it in Brevo (a list needs a multiple-choice attribute with its options)"
                    ),
                ));
            }
        };
        c.attributes.insert(upper, json);
    }
    Ok(c)
}

/// A per-record rejection (400, 404, 422) becomes that record's error; anything
/// else fails the batch.
fn to_record_error(e: ConnectorError) -> Result<WriteResult, ConnectorError> {
    crate::http::per_record(e, |message| {
        let (code, text) = message.split_once(": ").unwrap_or(("invalid_parameter", message));
        VendorError::permanent(code, text)
    })
}

impl BrevoConnector {
    pub(super) async fn write_contacts(
        &self,
        writes: Vec<Write>,
    ) -> Result<Vec<WriteResult>, ConnectorError> {
        let mut results: Vec<Option<WriteResult>> = vec![None; writes.len()];
        let attrs = self.ensure_attributes(&writes).await?;
        let (mut singles, mut by_email, mut deletes) = (Vec::new(), Vec::new(), Vec::new());
        for (i, w) in writes.iter().enumerate() {
            match w {
                Write::Delete { id } => deletes.push((i, id.clone())),
                Write::Upsert { key, record } => match convert(i, key, record, &attrs) {
                    // An unsubscribe cannot ride an import (its blacklist flag is for every row).
                    Ok(c) if c.id.is_none() && !c.unsubscribe => by_email.push(c),
                    Ok(c) => singles.push(c),
                    Err(e) => results[i] = Some(Err(e)),
                },
            }
        }
        let list = if singles.iter().any(|c| c.id.is_none()) || !by_email.is_empty() {
            Some(self.list().await?)
        } else {
            None
        };
        if by_email.len() < self.cfg.import_threshold.max(1) {
            singles.append(&mut by_email);
        }
        let (mut batched, mut singles): (Vec<Contact>, Vec<Contact>) =
            singles.into_iter().partition(|c| c.batch_id().is_some());
        if batched.len() < 2 {
            singles.append(&mut batched);
        }
        while !batched.is_empty() {
            let chunk: Vec<Contact> = batched.drain(..batched.len().min(BATCH_LIMIT)).collect();
            match self.update_batch(&chunk).await {
                Ok(()) => {
                    for c in &chunk {
                        let id = c.id.clone().unwrap_or_default();
                        results[c.index] = Some(Ok(Written { id, created: false }));
                    }
                }
                // All or nothing: nothing changed, and one by one each
                // contact gets its own answer.
                Err(ConnectorError::Rejected { status: 400 | 404 | 422, message, .. }) => {
                    tracing::debug!(vendor = VENDOR, contacts = chunk.len(), %message, "a batch update was refused; its contacts go one by one");
                    singles.extend(chunk);
                }
                Err(e) => return Err(e),
            }
        }
        let n = self.cfg.concurrency.max(1);
        let singles = &singles;
        let done: Vec<(usize, Result<Written, ConnectorError>)> =
            futures_util::stream::iter(0..singles.len())
                .map(|k| async move { (singles[k].index, self.write_one(&singles[k], list).await) })
                .buffered(n)
                .collect()
                .await;
        for (i, r) in done {
            results[i] = Some(match r {
                Ok(w) => Ok(w),
                Err(e) => to_record_error(e)?,
            });
        }
        if let Some(list) = list {
            for chunk in by_email.chunks(super::WRITE_LIMIT) {
                self.import(chunk, list, &mut results).await?;
            }
        }
        let deleted: Vec<(usize, String, Result<(), ConnectorError>)> = futures_util::stream::iter(deletes)
            .map(|(i, id)| async move {
                let path = format!("contacts/{}", urlencode(&id));
                let r = self.call("delete_contact", Method::DELETE, &path, &[], None).await.map(|_| ());
                (i, id, r)
            })
            .buffered(n)
            .collect()
            .await;
        for (i, id, r) in deleted {
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
            .map(|r| r.unwrap_or_else(|| Err(VendorError::permanent("unknown", "no result"))))
            .collect())
    }

    /// The attribute definitions, after creating those the writes name that
    /// the account lacks (typed by their values).
    async fn ensure_attributes(
        &self,
        writes: &[Write],
    ) -> Result<std::sync::Arc<HashMap<String, Attribute>>, ConnectorError> {
        let mut attrs = self.attributes(false).await?;
        if unknown_names(writes, &attrs).is_empty() {
            return Ok(attrs);
        }
        attrs = self.attributes(true).await?;
        let missing: Vec<(&'static str, Attribute)> = unknown_names(writes, &attrs)
            .into_iter()
            .filter_map(|(name, value)| Attribute::infer(&name, value))
            .collect();
        if missing.is_empty() {
            return Ok(attrs);
        }
        for (kind, a) in &missing {
            let path = format!("contacts/attributes/normal/{}", urlencode(&a.name));
            match self.call("create_attribute", Method::POST, &path, &[], Some(&json!({"type": kind}))).await
            {
                // Created meanwhile by another connection: fine.
                Ok(_) | Err(ConnectorError::Rejected { status: 400, .. }) => {}
                Err(e) => return Err(e),
            }
            tracing::info!(vendor = VENDOR, attribute = %a.name, kind, "created a Brevo contact attribute the mapping names");
        }
        self.attributes(true).await
    }

    /// `PUT /contacts/{id}` by Brevo's contact id.
    async fn update_by_id(&self, id: &str, body: &Json) -> Result<(), ConnectorError> {
        let path = format!("contacts/{}", urlencode(id));
        let query = [("identifierType", "contact_id".to_string())];
        self.call("update_contact", Method::PUT, &path, &query, Some(body)).await.map(|_| ())
    }

    /// `POST /contacts/batch` of ≤ [`BATCH_LIMIT`] updates by id (204).
    async fn update_batch(&self, chunk: &[Contact]) -> Result<(), ConnectorError> {
        let items: Vec<Json> = chunk.iter().filter_map(Contact::batch_item).collect();
        self.call("update_contacts", Method::POST, "contacts/batch", &[], Some(&json!({"contacts": items})))
            .await
            .map(|_| ())
    }

    /// One contact: an update by id, or an upsert by email.
    async fn write_one(&self, c: &Contact, list: Option<u64>) -> Result<Written, ConnectorError> {
        let Some(id) = &c.id else { return self.upsert(c, list).await };
        let mut body = json!({});
        let mut attributes = c.attributes.clone();
        if let Some(email) = &c.email {
            // An email change resubscribes in Brevo unless the blacklist is restated.
            let current = self.contact(id, "contact_id").await?.ok_or_else(|| ConnectorError::Rejected {
                vendor: VENDOR,
                status: 404,
                message: "document_not_found: Contact does not exist".into(),
            })?;
            let now = current.get("email").and_then(Json::as_str).unwrap_or("");
            if !now.eq_ignore_ascii_case(email) {
                attributes.insert("EMAIL".into(), json!(email));
                if current.get("emailBlacklisted").and_then(Json::as_bool) == Some(true) {
                    body["emailBlacklisted"] = json!(true);
                }
            }
        }
        if c.unsubscribe {
            body["emailBlacklisted"] = json!(true);
        }
        if attributes.is_empty() && body.as_object().is_some_and(|b| b.is_empty()) {
            return Ok(Written { id: id.clone(), created: false });
        }
        if !attributes.is_empty() {
            body["attributes"] = Json::Object(attributes);
        }
        self.update_by_id(id, &body).await?;
        Ok(Written { id: id.clone(), created: false })
    }

    /// `POST /contacts` with `updateEnabled`: 201 with the new id, or 204 for
    /// an update, whose id is then read back by email.
    async fn upsert(&self, c: &Contact, list: Option<u64>) -> Result<Written, ConnectorError> {
        let email = c.email.as_deref().ok_or_else(|| bad("an upsert without an email"))?;
        let mut body = json!({"email": email, "updateEnabled": true});
        let attributes: Map<String, Json> = c
            .attributes
            .iter()
            .filter(|(_, v)| v.as_str() != Some(""))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !attributes.is_empty() {
            body["attributes"] = Json::Object(attributes);
        }
        if let Some(list) = list {
            body["listIds"] = json!([list]);
        }
        if c.unsubscribe {
            body["emailBlacklisted"] = json!(true);
        }
        let reply = self.call("create_contact", Method::POST, "contacts", &[], Some(&body)).await?;
        if reply.status.as_u16() == 201 {
            let made: Json = reply.json(VENDOR)?;
            let id = id_of(&made).ok_or_else(|| bad("a contact created without an id"))?;
            return Ok(Written { id, created: true });
        }
        // 204: updated. Clearing attributes needs the update call (an upsert
        // ignores empty values on purpose: they would blank a new contact).
        let found = self
            .contact(email, "email_id")
            .await?
            .ok_or_else(|| bad("an updated contact that cannot be read back"))?;
        let id = id_of(&found).ok_or_else(|| bad("a contact without an id"))?;
        if c.clears() {
            let clears: Map<String, Json> = c
                .attributes
                .iter()
                .filter(|(_, v)| v.as_str() == Some(""))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            self.update_by_id(&id, &json!({"attributes": clears})).await?;
        }
        Ok(Written { id, created: false })
    }

    /// One import of ≤ [`super::WRITE_LIMIT`] contacts, polled to completion;
    /// the ids are then read from the list (newest first, from the moment
    /// the import was accepted, by Brevo's own clock).
    async fn import(
        &self,
        chunk: &[Contact],
        list: u64,
        results: &mut [Option<WriteResult>],
    ) -> Result<(), ConnectorError> {
        let rows: Vec<Json> = chunk
            .iter()
            .map(|c| {
                let mut row = json!({"email": c.email});
                if !c.attributes.is_empty() {
                    row["attributes"] = Json::Object(c.attributes.clone());
                }
                row
            })
            .collect();
        let body = json!({
            "jsonBody": rows,
            "listIds": [list],
            "updateExistingContacts": true,
            "emptyContactsAttributes": chunk.iter().any(Contact::clears),
            "disableNotification": true,
        });
        let reply = match self.call("import", Method::POST, "contacts/import", &[], Some(&body)).await {
            Ok(r) => r,
            Err(ConnectorError::Rejected { status: 400, message, .. }) => {
                for c in chunk {
                    results[c.index] = Some(Err(VendorError::permanent("import_refused", message.clone())));
                }
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let since = reply.date().map(|t| t - chrono::Duration::seconds(1));
        let queued: Json = reply.json(VENDOR)?;
        let pid = queued
            .get("processId")
            .and_then(Json::as_u64)
            .ok_or_else(|| bad("an import without processId"))?;
        loop {
            let p = self.get_json("process", &format!("processes/{pid}"), &[]).await?;
            match p.get("status").and_then(Json::as_str) {
                Some("completed") => break,
                Some("queued" | "in_process" | "processing") | None => {
                    tokio::time::sleep(self.cfg.import_poll).await
                }
                Some(other) => {
                    for c in chunk {
                        results[c.index] = Some(Err(VendorError {
                            code: "import_failed".into(),
                            message: format!("the Brevo import {pid} ended {other}"),
                            retryable: true,
                        }));
                    }
                    return Ok(());
                }
            }
        }
        let mut wanted: HashSet<&str> = chunk.iter().filter_map(|c| c.email.as_deref()).collect();
        let mut ids: HashMap<String, (String, bool)> = HashMap::new();
        let mut offset = 0;
        while !wanted.is_empty() {
            let (page, _) = self.list_page(since, offset, PAGE_LIMIT, true).await?;
            for c in &page {
                let Some(email) = c.get("email").and_then(Json::as_str).map(str::to_lowercase) else {
                    continue;
                };
                if wanted.remove(email.as_str()) {
                    let created = since.is_some_and(|s| {
                        c.get("createdAt").and_then(Json::as_str).and_then(parse_ts).is_some_and(|t| t >= s)
                    });
                    ids.insert(email, (id_of(c).ok_or_else(|| bad("a contact without an id"))?, created));
                }
            }
            offset += page.len();
            if page.len() < PAGE_LIMIT {
                break;
            }
        }
        for c in chunk {
            let found = c.email.as_deref().and_then(|e| ids.get(e));
            results[c.index] = Some(match found {
                Some((id, created)) => Ok(Written { id: id.clone(), created: *created }),
                None => Err(VendorError::permanent(
                    "import_invalid",
                    "Brevo's import refused this contact (see the import's invalid rows)",
                )),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crmsync_sdk::types::System;

    #[test]
    fn writes_convert_by_attribute_and_refuse_what_brevo_would_drop() {
        let attrs: HashMap<String, Attribute> = [
            json!({"name": "FIRSTNAME", "type": "text"}),
            json!({"name": "VIP", "type": "boolean"}),
            json!({"name": "SCORE", "category": "calculated", "type": "float"}),
        ]
        .iter()
        .filter_map(Attribute::parse)
        .map(|a| (a.name.clone(), a))
        .collect();
        let rec = Record::new(System::Brevo, "contact")
            .with("email", " Ann@Example.com ")
            .with("FIRSTNAME", "Ann")
            .with("vip", Value::Boolean(true))
            .with("SMS", "+33612345678")
            .with(UNSUBSCRIBE, Value::Boolean(true));
        let c = convert(0, &WriteKey::Email("ann@example.com".into()), &rec, &attrs).expect("converts");
        assert_eq!(c.email.as_deref(), Some("ann@example.com"));
        assert_eq!(c.attributes["VIP"], json!(true));
        assert_eq!(c.attributes["SMS"], json!("+33612345678"));
        assert!(c.unsubscribe);
        let computed = Record::new(System::Brevo, "contact").with("SCORE", Value::Number(1.0));
        assert!(convert(0, &WriteKey::Id("1".into()), &computed, &attrs).is_err());
        let unknown = Record::new(System::Brevo, "contact").with("NOPE", Value::TextList(vec!["a".into()]));
        assert_eq!(
            unknown_names(
                &[Write::Upsert { key: WriteKey::Id("1".into()), record: unknown.clone() }],
                &attrs
            )
            .len(),
            1
        );
        assert!(convert(0, &WriteKey::Id("1".into()), &unknown, &attrs).is_err());
        let bad_email = Record::new(System::Brevo, "contact").with("email", "not an email");
        assert!(convert(0, &WriteKey::Email("x".into()), &bad_email, &attrs).is_err());
    }
}
