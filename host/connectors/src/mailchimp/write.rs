//! Mailchimp writes, one outcome per record.
//!
//! - Linked members (`WriteKey::Id`, the `contact_id`): `PATCH
//!   …/members/{contact_id}`, concurrently. An email change is a PATCH of
//!   `email_address`: the member moves to the new subscriber hash and keeps
//!   its `contact_id`, so no second member appears.
//! - Email-keyed members: `PUT …/members/{hash}` with `status_if_new` for a
//!   few; batch subscribe (`POST /lists/{id}`, ≤ 500, `update_existing:
//!   false`) from `batch_threshold` on, members that already exist going on
//!   through `PUT`; `POST /batches` from `batch_operations_from` on.
//! - Consent: `status` is sent only to unsubscribe. Existing members keep
//!   their status (`status_if_new` applies to new ones only), so nobody who
//!   unsubscribed, bounced (cleaned) or was archived is ever re-subscribed:
//!   an email-keyed write to an archived member is refused on its record,
//!   and "Member In Compliance State" is that record's error.
//! - Deletes follow `on_delete`: archive, delete permanently, or ignore.

use std::collections::{HashMap, HashSet};

use crmsync_sdk::types::{Record, Value};
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Map, Value as Json, json};

use super::{EMAIL, MailchimpConnector, MergeField, OnDelete, PAGE_LIMIT, Status, bad, subscriber_hash};
use crate::{ConnectorError, VendorError, Write, WriteKey, WriteResult, Written};

/// One member write, converted.
pub(super) struct Member {
    pub index: usize,
    /// The linked member's `contact_id`.
    pub id: Option<String>,
    pub email: Option<String>,
    pub merge: Map<String, Json>,
    pub unsubscribe: bool,
}

impl Member {
    /// The PATCH body: what changed, never a status but an unsubscribe.
    fn patch_body(&self) -> Json {
        let mut b = json!({});
        if let Some(e) = &self.email {
            b[EMAIL] = json!(e);
        }
        if !self.merge.is_empty() {
            b["merge_fields"] = Json::Object(self.merge.clone());
        }
        if self.unsubscribe {
            b["status"] = json!("unsubscribed");
        }
        b
    }

    /// The PUT body: `status_if_new` for a new member; `status` only to unsubscribe.
    pub(super) fn put_body(&self, status_if_new: Status) -> Json {
        let mut b = self.patch_body();
        b["status_if_new"] =
            json!(if self.unsubscribe { Status::Unsubscribed.as_str() } else { status_if_new.as_str() });
        b
    }

    /// One member of a batch subscribe (only members that are new).
    fn batch_body(&self, status_if_new: Status) -> Json {
        let mut b = self.patch_body();
        b["status"] =
            json!(if self.unsubscribe { Status::Unsubscribed.as_str() } else { status_if_new.as_str() });
        b
    }

    pub(super) fn hash(&self) -> String {
        subscriber_hash(self.email.as_deref().unwrap_or(""))
    }
}

/// Mailchimp's email check (`local@domain.tld`, no spaces), before sending.
fn plausible_email(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else { return false };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c == ',' || c == ';')
}

/// A value as the merge field of this type takes it.
fn to_mc(kind: &str, v: &Value) -> Json {
    match v {
        Value::Null => json!(""),
        Value::Number(n) if kind == "number" => json!(n),
        Value::Decimal(d) if kind == "number" => {
            d.to_string().parse::<f64>().map_or_else(|_| json!(d.to_string()), |f| json!(f))
        }
        Value::Date(d) => json!(d.format("%Y-%m-%d").to_string()),
        Value::DateTime(t) if matches!(kind, "date" | "birthday") => {
            json!(t.date_naive().format("%Y-%m-%d").to_string())
        }
        Value::TextList(l) => json!(l.join(", ")),
        Value::Text(s) => json!(s),
        other => json!(other.to_string()),
    }
}

/// A per-record rejection becomes that record's error; anything else fails the batch.
pub(super) fn to_record_error(e: ConnectorError) -> Result<WriteResult, ConnectorError> {
    crate::http::per_record(e, vendor_error)
}

/// A Mailchimp `Title: detail` message as a record error: the title, as a
/// code, and what it means for the record.
pub(super) fn vendor_error(message: &str) -> VendorError {
    let title = message.split_once(':').map_or(message, |(t, _)| t).trim();
    let code: String =
        title.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    let lower = message.to_lowercase();
    if lower.contains("compliance state") {
        return VendorError::permanent(
            "member-in-compliance-state",
            format!(
                "{message} — the member unsubscribed, bounced or is under compliance review; crmsync never re-subscribes it"
            ),
        );
    }
    VendorError {
        code: if code.is_empty() { "rejected".into() } else { code },
        message: message.to_string(),
        // "… has signed up to a lot of lists very recently": later, it goes through.
        retryable: lower.contains("very recently"),
    }
}

impl MailchimpConnector {
    fn convert(
        index: usize,
        key: &WriteKey,
        record: &Record,
        fields: &HashMap<String, MergeField>,
        audience: &str,
    ) -> Result<Member, VendorError> {
        let email = record.text(EMAIL).or_else(|| record.text("email")).map(str::trim).map(String::from);
        let email = email.filter(|e| !e.is_empty()).or_else(|| match key {
            WriteKey::Email(e) => Some(e.trim().to_string()),
            _ => None,
        });
        let id = match key {
            WriteKey::Id(id) => Some(id.clone()),
            WriteKey::Email(_) | WriteKey::New { .. } if email.is_none() => {
                return Err(VendorError::permanent("missing-email", "a member needs an email address"));
            }
            WriteKey::Email(_) | WriteKey::New { .. } => None,
            WriteKey::Name(_) => {
                return Err(VendorError::permanent(
                    "unsupported-key",
                    "Mailchimp members are not found by name",
                ));
            }
        };
        if let Some(e) = &email
            && !plausible_email(e)
        {
            return Err(VendorError::permanent(
                "invalid-email",
                format!("{e:?} is not an email address Mailchimp takes"),
            ));
        }
        let mut m = Member { index, id, email, merge: Map::new(), unsubscribe: false };
        for (name, value) in &record.fields {
            match name.as_str() {
                EMAIL | "email" => {}
                n if n == crmsync_core::connector::fields::UNSUBSCRIBE => {
                    m.unsubscribe = value == &Value::Boolean(true);
                }
                n => {
                    let tag = n.trim().to_ascii_uppercase();
                    let f = fields.get(&tag).ok_or_else(|| {
                        VendorError::permanent(
                            "unknown-merge-field",
                            format!(
                                "audience {audience} has no merge field {tag} (add it with `crmsync mailchimp add-field`)"
                            ),
                        )
                    })?;
                    m.merge.insert(tag, to_mc(&f.kind, value));
                }
            }
        }
        Ok(m)
    }

    pub(super) async fn write_members(&self, writes: Vec<Write>) -> Result<Vec<WriteResult>, ConnectorError> {
        let mut results: Vec<Option<WriteResult>> = vec![None; writes.len()];
        let mut fields = self.merge_fields(false).await?;
        let unknown = |fields: &HashMap<String, MergeField>| {
            writes.iter().any(|w| match w {
                Write::Upsert { record, .. } => record.fields.keys().any(|k| {
                    !matches!(k.as_str(), EMAIL | "email" | crmsync_core::connector::fields::UNSUBSCRIBE)
                        && !fields.contains_key(&k.trim().to_ascii_uppercase())
                }),
                Write::Delete { .. } => false,
            })
        };
        if unknown(&fields) {
            fields = self.merge_fields(true).await?;
        }
        let (mut linked, mut by_email, mut deletes) = (Vec::new(), Vec::new(), Vec::new());
        for (i, w) in writes.iter().enumerate() {
            match w {
                Write::Delete { id } => deletes.push((i, id.clone())),
                Write::Upsert { key, record } => {
                    match Self::convert(i, key, record, &fields, &self.cfg.audience) {
                        Ok(m) if m.id.is_some() => linked.push(m),
                        Ok(m) => by_email.push(m),
                        Err(e) => results[i] = Some(Err(e)),
                    }
                }
            }
        }
        let n = self.cfg.max_connections.max(1);
        let linked = &linked;
        let patched: Vec<(usize, Result<Written, ConnectorError>)> =
            futures_util::stream::iter(0..linked.len())
                .map(|k| async move { (linked[k].index, self.patch(&linked[k]).await) })
                .buffered(n)
                .collect()
                .await;
        for (i, r) in patched {
            results[i] = Some(match r {
                Ok(w) => Ok(w),
                Err(e) => to_record_error(e)?,
            });
        }
        if !by_email.is_empty() {
            self.write_by_email(by_email, &mut results).await?;
        }
        for (i, id) in deletes {
            results[i] = Some(self.delete(&id).await.or_else(to_record_error)?);
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(VendorError::permanent("unknown", "no result"))))
            .collect())
    }

    /// `PATCH …/members/{contact_id}`.
    async fn patch(&self, m: &Member) -> Result<Written, ConnectorError> {
        let id = m.id.as_deref().unwrap_or_default();
        let reply = self
            .send_json(
                "patch_member",
                Method::PATCH,
                &self.list_path(&format!("/members/{id}")),
                &[],
                Some(&m.patch_body()),
            )
            .await?;
        Ok(Written { id: contact_id(&reply.json(super::VENDOR)?)?, created: false })
    }

    /// `PUT …/members/{hash}` with `status_if_new`.
    async fn put(&self, m: &Member) -> Result<Written, ConnectorError> {
        let body = m.put_body(self.cfg.status_if_new);
        let path = self.list_path(&format!("/members/{}", m.hash()));
        let reply = self.send_json("put_member", Method::PUT, &path, &[], Some(&body)).await?;
        Ok(Written { id: contact_id(&reply.json(super::VENDOR)?)?, created: false })
    }

    /// PUT each member, concurrently, into `results`.
    async fn put_each(
        &self,
        members: &[&Member],
        results: &mut [Option<WriteResult>],
    ) -> Result<(), ConnectorError> {
        let done: Vec<(usize, Result<Written, ConnectorError>)> =
            futures_util::stream::iter(0..members.len())
                .map(|k| async move { (members[k].index, self.put(members[k]).await) })
                .buffered(self.cfg.max_connections.max(1))
                .collect()
                .await;
        for (i, r) in done {
            results[i] = Some(match r {
                Ok(w) => Ok(w),
                Err(e) => to_record_error(e)?,
            });
        }
        Ok(())
    }

    /// Email-keyed members: archived ones refused, the rest PUT, batch
    /// subscribed or sent as batch operations by number.
    async fn write_by_email(
        &self,
        members: Vec<Member>,
        results: &mut [Option<WriteResult>],
    ) -> Result<(), ConnectorError> {
        let archived = self.archived_hashes().await?;
        let mut live = Vec::new();
        for m in members {
            if archived.contains(&m.hash()) {
                results[m.index] = Some(Err(VendorError::permanent(
                    "archived-member",
                    "this email's member is archived in the audience; crmsync does not bring archived members back (restore it in Mailchimp to sync it)",
                )));
            } else {
                live.push(m);
            }
        }
        let big = self.cfg.batch_operations_from;
        if big > 0 && live.len() >= big {
            return self.batch_operations(&live, results).await;
        }
        // Batch subscribe takes no transactional members.
        if live.len() < self.cfg.batch_threshold || self.cfg.status_if_new == Status::Transactional {
            let all: Vec<&Member> = live.iter().collect();
            return self.put_each(&all, results).await;
        }
        for chunk in live.chunks(super::BATCH_LIMIT) {
            let existing = self.batch_subscribe(chunk, results).await?;
            self.put_each(&existing, results).await?;
        }
        Ok(())
    }

    /// Hashes of the audience's archived members.
    async fn archived_hashes(&self) -> Result<HashSet<String>, ConnectorError> {
        let mut out = HashSet::new();
        let mut offset = 0;
        loop {
            let page = self
                .get_json(
                    "archived_members",
                    &self.list_path("/members"),
                    &[
                        ("status", "archived".into()),
                        ("fields", "members.id,total_items".into()),
                        ("count", PAGE_LIMIT.to_string()),
                        ("offset", offset.to_string()),
                    ],
                )
                .await?;
            let items = page.get("members").and_then(Json::as_array).cloned().unwrap_or_default();
            out.extend(
                items.iter().filter_map(|m| m.get("id").and_then(Json::as_str)).map(str::to_lowercase),
            );
            offset += items.len();
            if items.len() < PAGE_LIMIT {
                return Ok(out);
            }
        }
    }

    /// One batch subscribe of new members; the members that already exist
    /// are returned (to be PUT: their status is never sent).
    async fn batch_subscribe<'a>(
        &self,
        chunk: &'a [Member],
        results: &mut [Option<WriteResult>],
    ) -> Result<Vec<&'a Member>, ConnectorError> {
        let body = json!({
            "members": chunk.iter().map(|m| m.batch_body(self.cfg.status_if_new)).collect::<Vec<_>>(),
            "update_existing": false,
        });
        let reply = self
            .send_json("batch_subscribe", Method::POST, &self.list_path(""), &[], Some(&body))
            .await?
            .json::<Json>(super::VENDOR)?;
        let mut ok: HashMap<String, (String, bool)> = HashMap::new();
        for (key, created) in [("new_members", true), ("updated_members", false)] {
            for m in reply.get(key).and_then(Json::as_array).into_iter().flatten() {
                if let (Some(e), Ok(id)) = (m.get(EMAIL).and_then(Json::as_str), contact_id(m)) {
                    ok.insert(e.trim().to_lowercase(), (id, created));
                }
            }
        }
        let mut failed: HashMap<String, (String, String)> = HashMap::new();
        for e in reply.get("errors").and_then(Json::as_array).into_iter().flatten() {
            let email = e.get(EMAIL).and_then(Json::as_str).unwrap_or("").trim().to_lowercase();
            let code = e.get("error_code").and_then(Json::as_str).unwrap_or("ERROR_GENERIC").to_string();
            let text = e.get("error").and_then(Json::as_str).unwrap_or("rejected").to_string();
            failed.insert(email, (code, text));
        }
        let mut existing = Vec::new();
        for m in chunk {
            let email = m.email.as_deref().unwrap_or("").trim().to_lowercase();
            results[m.index] = Some(match (ok.remove(&email), failed.remove(&email)) {
                (Some((id, created)), _) => Ok(Written { id, created }),
                (None, Some((code, _))) if code == "ERROR_CONTACT_EXISTS" => {
                    existing.push(m);
                    continue;
                }
                (None, Some((code, text))) => {
                    let mut e = vendor_error(&text);
                    if e.code == "rejected" || !text.contains(':') {
                        e.code = code.to_lowercase().replace('_', "-");
                    }
                    Err(e)
                }
                (None, None) => Err(VendorError::permanent(
                    "no-result",
                    "the batch subscribe reported nothing for this member",
                )),
            });
        }
        Ok(existing)
    }

    /// A deletion by `on_delete`; a member already gone is deleted.
    async fn delete(&self, id: &str) -> Result<WriteResult, ConnectorError> {
        let path = self.list_path(&format!("/members/{id}"));
        let sent = match self.cfg.on_delete {
            OnDelete::Ignore => Ok(()),
            OnDelete::Archive => {
                self.send_json("archive_member", Method::DELETE, &path, &[], None).await.map(|_| ())
            }
            OnDelete::Delete => self
                .send_json(
                    "delete_member",
                    Method::POST,
                    &format!("{path}/actions/delete-permanent"),
                    &[],
                    None,
                )
                .await
                .map(|_| ()),
        };
        match sent {
            Ok(()) | Err(ConnectorError::Rejected { status: 404, .. }) => {
                Ok(Ok(Written { id: id.to_string(), created: false }))
            }
            Err(e) => Err(e),
        }
    }
}

/// The `contact_id` of a member answer.
pub(super) fn contact_id(m: &Json) -> Result<String, ConnectorError> {
    m.get("contact_id")
        .and_then(Json::as_str)
        .map(String::from)
        .ok_or_else(|| bad("a member answer without contact_id"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compliance_state_says_so() {
        let e = vendor_error("Member In Compliance State: ann@x.com is in a compliance state");
        assert_eq!(e.code, "member-in-compliance-state");
        assert!(e.message.contains("never re-subscribes"), "{}", e.message);
        let e = vendor_error("Invalid Resource: ann@x.com has signed up to a lot of lists very recently");
        assert_eq!((e.code.as_str(), e.retryable), ("invalid-resource", true));
    }

    #[test]
    fn status_goes_out_only_to_unsubscribe() {
        let mut m = Member {
            index: 0,
            id: None,
            email: Some("a@b.co".into()),
            merge: Map::new(),
            unsubscribe: false,
        };
        assert!(m.patch_body().get("status").is_none());
        assert_eq!(m.put_body(Status::Pending)["status_if_new"], "pending");
        assert!(m.put_body(Status::Pending).get("status").is_none());
        m.unsubscribe = true;
        assert_eq!(m.patch_body()["status"], "unsubscribed");
    }
}
