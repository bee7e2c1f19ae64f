//! ActiveCampaign accounts: object `account`.
//!
//! Fields: `name` (unique in an AC account, so it is the match key) and the
//! account custom fields, named by their label (`/accountCustomFieldMeta`,
//! loaded once). Writes: a name key finds or creates the account, then
//! `PUT /accounts/{id}` sets its name and custom fields; an id key updates it.
//! AC's account listing has no modification filter, so a change read lists
//! every account (pages of 100, plus one listing of all account field data) and the engine's echo suppression keeps what did not change from
//! costing a write; accounts are few next to contacts.

use std::collections::HashMap;
use std::sync::Arc;

use crmsync_sdk::types::{Record, System, Value};
use reqwest::Method;
use serde_json::{Value as Json, json};

use super::write::{from_ac, record_error, to_ac, to_record_error};
use super::{ActiveCampaignConnector, PAGE_LIMIT, bad, id_text, parse_ts};
use crate::{Changes, ConnectorError, Cursor, Write, WriteKey, WriteResult, Written};

/// An account custom field.
#[derive(Debug, Clone)]
pub(super) struct AccountField {
    id: String,
    label: String,
    kind: String,
}

/// Account custom fields by lower-cased label.
pub(super) type AccountFields = HashMap<String, AccountField>;

impl ActiveCampaignConnector {
    async fn account_fields(&self) -> Result<Arc<AccountFields>, ConnectorError> {
        let mut cache = self.account_fields.lock().await;
        if let Some(f) = cache.as_ref() {
            return Ok(f.clone());
        }
        let mut map = HashMap::new();
        let mut offset = 0;
        loop {
            let page = self
                .get_json(
                    "account_fields",
                    "accountCustomFieldMeta",
                    &[("limit", PAGE_LIMIT.to_string()), ("offset", offset.to_string())],
                )
                .await?;
            let rows =
                page.get("accountCustomFieldMeta").and_then(Json::as_array).cloned().unwrap_or_default();
            for f in &rows {
                let (Some(id), Some(label)) =
                    (id_text(f.get("id")), f.get("fieldLabel").and_then(Json::as_str))
                else {
                    continue;
                };
                let kind = f.get("fieldType").and_then(Json::as_str).unwrap_or("text").to_string();
                map.insert(
                    label.trim().to_lowercase(),
                    AccountField { id, label: label.trim().into(), kind },
                );
            }
            if rows.len() < PAGE_LIMIT {
                break;
            }
            offset += rows.len();
        }
        let fields = Arc::new(map);
        *cache = Some(fields.clone());
        Ok(fields)
    }

    /// Writes accounts one by one (AC has no batch account write).
    pub(super) async fn write_accounts(
        &self,
        writes: Vec<Write>,
    ) -> Result<Vec<WriteResult>, ConnectorError> {
        let fields = self.account_fields().await?;
        let mut results = Vec::with_capacity(writes.len());
        for w in writes {
            let result = match w {
                Write::Delete { id } => {
                    match self
                        .send_json("delete_account", Method::DELETE, &format!("accounts/{id}"), &json!({}))
                        .await
                    {
                        Ok(_) => Ok(Written { id, created: false }),
                        Err(e) => to_record_error(e)?,
                    }
                }
                Write::Upsert { key, record } => self.upsert_account(&key, &record, &fields).await?,
            };
            results.push(result);
        }
        Ok(results)
    }

    async fn upsert_account(
        &self,
        key: &WriteKey,
        record: &Record,
        fields: &AccountFields,
    ) -> Result<WriteResult, ConnectorError> {
        let mut body = serde_json::Map::new();
        let mut custom = Vec::new();
        for (name, value) in &record.fields {
            if name == "name" {
                match value.as_text().map(str::trim).filter(|n| !n.is_empty()) {
                    Some(n) => body.insert("name".into(), json!(n)),
                    None => {
                        return Ok(Err(record_error("field_missing", "The account name was not provided.")));
                    }
                };
                continue;
            }
            let Some(f) = fields.get(&name.trim().to_lowercase()) else {
                return Ok(Err(record_error(
                    "unknown_field",
                    format!("no ActiveCampaign account field labelled {name:?}"),
                )));
            };
            custom.push(json!({"customFieldId": f.id.parse::<u64>().unwrap_or(0), "fieldValue": to_ac(&f.kind, value)}));
        }
        if !custom.is_empty() {
            body.insert("fields".into(), Json::Array(custom));
        }
        let id = match key {
            WriteKey::Id(id) => id.clone(),
            WriteKey::Name(name) => match self.find_account(name).await? {
                Some(id) => id,
                // A new account: one create with every field.
                None => {
                    body.entry("name").or_insert_with(|| json!(name.trim()));
                    return match self.create_account(&json!({ "account": body })).await {
                        Ok(id) => Ok(Ok(Written { id, created: true })),
                        Err(e) => to_record_error(e),
                    };
                }
            },
            WriteKey::Email(_) | WriteKey::New { .. } => {
                return Ok(Err(record_error("invalid_key", "accounts are written by id or by name")));
            }
        };
        let created = false;
        if body.is_empty() {
            return Ok(Ok(Written { id, created }));
        }
        let reply = self
            .send_json("update_account", Method::PUT, &format!("accounts/{id}"), &json!({ "account": body }))
            .await;
        match reply {
            Ok(_) => {
                if let Some(name) = body.get("name").and_then(Json::as_str) {
                    self.accounts.lock().await.insert(name.to_lowercase(), id.clone());
                }
                Ok(Ok(Written { id, created }))
            }
            Err(e) => to_record_error(e),
        }
    }

    /// Every account, from the offset the cursor holds, at most `limit`; the
    /// last page's cursor starts the next read over (no modification filter).
    pub(super) async fn fetch_accounts(
        &self,
        since: Option<&Cursor>,
        limit: usize,
    ) -> Result<Changes, ConnectorError> {
        let start: usize = match since {
            None => 0,
            Some(c) => c.0.parse().map_err(|_| bad(format!("not an account cursor: {}", c.0)))?,
        };
        let fields = self.account_fields().await?;
        let by_id: HashMap<&str, &AccountField> = fields.values().map(|f| (f.id.as_str(), f)).collect();
        let mut records = Vec::new();
        let mut offset = start;
        let more = loop {
            let page = self
                .get_json(
                    "accounts",
                    "accounts",
                    &[("limit", PAGE_LIMIT.to_string()), ("offset", offset.to_string())],
                )
                .await?;
            let rows = page.get("accounts").and_then(Json::as_array).cloned().unwrap_or_default();
            offset += rows.len();
            records.extend(rows.iter().map(account_record));
            let total = id_text(page.get("meta").and_then(|m| m.get("total")));
            let total: usize = total.and_then(|t| t.parse().ok()).unwrap_or(offset);
            if rows.len() < PAGE_LIMIT || offset >= total {
                break false;
            }
            if records.len() >= limit {
                break true;
            }
        };
        self.with_account_fields(&mut records, &by_id).await?;
        let next = if more { offset.to_string() } else { "0".to_string() };
        Ok(Changes { records, next: Some(Cursor(next)), more, ..Changes::default() })
    }

    /// Adds the custom field values of these accounts: one listing of every
    /// account's field data (pages of 100), not one call per account.
    async fn with_account_fields(
        &self,
        records: &mut [Record],
        by_id: &HashMap<&str, &AccountField>,
    ) -> Result<(), ConnectorError> {
        if by_id.is_empty() || records.is_empty() {
            return Ok(());
        }
        let index: HashMap<String, usize> =
            records.iter().enumerate().filter_map(|(i, r)| Some((r.id.clone()?, i))).collect();
        let mut offset = 0;
        loop {
            let data = self
                .get_json(
                    "account_field_data",
                    "accountCustomFieldData",
                    &[("limit", PAGE_LIMIT.to_string()), ("offset", offset.to_string())],
                )
                .await?;
            let rows =
                data.get("accountCustomFieldData").and_then(Json::as_array).cloned().unwrap_or_default();
            for d in &rows {
                let Some(&i) = id_text(d.get("accountId")).and_then(|a| index.get(&a)) else { continue };
                let Some(f) = id_text(d.get("customFieldId")).and_then(|id| by_id.get(id.as_str()).copied())
                else {
                    continue;
                };
                let raw = match d.get("fieldValue") {
                    Some(Json::String(s)) => s.clone(),
                    Some(Json::Null) | None => String::new(),
                    Some(other) => other.to_string(),
                };
                records[i].fields.insert(f.label.clone(), from_ac(&f.kind, &raw));
            }
            if rows.len() < PAGE_LIMIT {
                return Ok(());
            }
            offset += rows.len();
        }
    }

    /// These accounts as records (missing ones left out).
    pub(super) async fn get_accounts(&self, ids: &[String]) -> Result<Vec<Record>, ConnectorError> {
        let fields = self.account_fields().await?;
        let by_id: HashMap<&str, &AccountField> = fields.values().map(|f| (f.id.as_str(), f)).collect();
        let mut out = Vec::new();
        for id in ids {
            match self.get_json("account", &format!("accounts/{id}"), &[]).await {
                Ok(body) => out.push(account_record(body.get("account").unwrap_or(&Json::Null))),
                Err(ConnectorError::Rejected { status: 404, .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        self.with_account_fields(&mut out, &by_id).await?;
        Ok(out)
    }
}

/// An account JSON as a record (custom fields added by `with_account_fields`).
fn account_record(a: &Json) -> Record {
    let mut rec = Record::new(System::ActiveCampaign, "account");
    rec.id = id_text(a.get("id"));
    rec.modified_at = a.get("updatedTimestamp").and_then(Json::as_str).and_then(parse_ts);
    let name = a.get("name").and_then(Json::as_str).unwrap_or("").trim();
    rec.fields.insert("name".into(), if name.is_empty() { Value::Null } else { Value::text(name) });
    rec
}
