//! The Brevo account's data and its indexes.
//!
//! Contacts live in a `BTreeMap` by id (ids grow with creation, so id order is
//! creation order); unique identifiers (email, `EXT_ID`, `SMS`, `WHATSAPP`,
//! `LANDLINE_NUMBER`) are indexed in one `HashMap`, and `(modifiedAt, id)` in a
//! `BTreeSet`, so lookups, upserts and `modifiedSince` queries cost O(log n).
//! Every contact change bumps `generation`, which invalidates cached query results.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use super::attributes::{AttrOp, AttributeDef, Coerced, Source, coerce_attributes, normalize_email};
use super::error::ApiError;

/// Brevo's timestamp format: RFC 3339 with milliseconds.
pub fn fmt_ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, false)
}

/// A unique identifier kind other than the contact id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    Email,
    ExtId,
    Sms,
    Whatsapp,
    Landline,
}

impl IdKind {
    pub const ALL: [IdKind; 5] =
        [IdKind::Email, IdKind::ExtId, IdKind::Sms, IdKind::Whatsapp, IdKind::Landline];

    /// The attribute holding this identifier (email is a field of its own).
    pub fn attribute(self) -> Option<&'static str> {
        match self {
            IdKind::Email => None,
            IdKind::ExtId => Some("EXT_ID"),
            IdKind::Sms => Some("SMS"),
            IdKind::Whatsapp => Some("WHATSAPP"),
            IdKind::Landline => Some("LANDLINE_NUMBER"),
        }
    }

    /// How Brevo names the identifier in messages and `duplicate_identifiers`.
    pub fn label(self) -> &'static str {
        match self {
            IdKind::Email => "email",
            IdKind::ExtId => "ext_id",
            IdKind::Sms => "SMS",
            IdKind::Whatsapp => "WHATSAPP",
            IdKind::Landline => "LANDLINE_NUMBER",
        }
    }

    fn of_attribute(name: &str) -> Option<IdKind> {
        IdKind::ALL.into_iter().find(|k| k.attribute() == Some(name))
    }
}

/// How a request names one contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identifier {
    Id(u64),
    Key(IdKind, String),
}

#[derive(Debug, Clone)]
pub struct Contact {
    pub id: u64,
    pub email: Option<String>,
    pub email_blacklisted: bool,
    pub sms_blacklisted: bool,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
    /// Values by attribute name, identifiers (`SMS`, `EXT_ID`...) included.
    pub attributes: BTreeMap<String, Value>,
    pub list_ids: BTreeSet<u64>,
}

impl Contact {
    fn identifiers(&self) -> impl Iterator<Item = (IdKind, String)> + '_ {
        IdKind::ALL.into_iter().filter_map(|kind| {
            let value = match kind.attribute() {
                None => self.email.clone(),
                Some(attr) => self.attributes.get(attr).and_then(Value::as_str).map(str::to_string),
            };
            value.map(|v| (kind, v))
        })
    }

    pub fn view(&self, with_statistics: bool) -> ContactView<'_> {
        ContactView {
            email: self.email.as_deref(),
            id: self.id,
            email_blacklisted: self.email_blacklisted,
            sms_blacklisted: self.sms_blacklisted,
            created_at: fmt_ts(self.created_at),
            modified_at: fmt_ts(self.modified_at),
            attributes: &self.attributes,
            list_ids: &self.list_ids,
            statistics: with_statistics.then(|| Value::Object(Map::new())),
        }
    }
}

/// A contact as the API shows it (`getContactDetails`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<&'a str>,
    pub id: u64,
    pub email_blacklisted: bool,
    pub sms_blacklisted: bool,
    pub created_at: String,
    pub modified_at: String,
    pub attributes: &'a BTreeMap<String, Value>,
    pub list_ids: &'a BTreeSet<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statistics: Option<Value>,
}

/// What one create or update does to a contact. `None` fields stay as they are.
#[derive(Debug, Default, Clone)]
pub struct ContactChange {
    pub email: Option<String>,
    pub attrs: Vec<(String, AttrOp)>,
    pub email_blacklisted: Option<bool>,
    pub sms_blacklisted: Option<bool>,
    pub link: Vec<u64>,
    pub unlink: Vec<u64>,
}

impl ContactChange {
    pub fn from_coerced(coerced: Coerced) -> Self {
        Self { email: coerced.email, attrs: coerced.ops, ..Self::default() }
    }

    /// The identifier values this change sets.
    pub fn identifiers(&self) -> Vec<(IdKind, String)> {
        let mut out: Vec<(IdKind, String)> = self.email.iter().map(|e| (IdKind::Email, e.clone())).collect();
        for (name, op) in &self.attrs {
            if let (Some(kind), AttrOp::Set(Value::String(v))) = (IdKind::of_attribute(name), op) {
                out.push((kind, v.clone()));
            }
        }
        out
    }
}

#[derive(Debug, Clone)]
pub struct List {
    pub id: u64,
    pub name: String,
    pub folder_id: u64,
    pub created_at: DateTime<Utc>,
    pub members: BTreeSet<u64>,
}

#[derive(Debug, Clone)]
pub struct Folder {
    pub id: u64,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessStatus {
    Queued,
    InProcess,
    Completed,
}

/// One row of an import, as given (attributes are checked when it runs).
#[derive(Debug, Clone)]
pub struct ImportRow {
    pub email: Option<String>,
    pub attributes: Map<String, Value>,
}

#[derive(Debug, Clone)]
pub struct ImportJob {
    pub rows: Vec<ImportRow>,
    pub list_ids: Vec<u64>,
    pub update_existing: bool,
    pub empty_clears: bool,
    pub email_blacklist: bool,
    pub sms_blacklist: bool,
}

/// What an import did, shown in the sandbox state.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    pub created: u64,
    pub updated: u64,
    /// Existing contacts left alone because `updateExistingContacts` was false.
    pub skipped: u64,
    /// Rows (0-based) without a usable identifier, with a malformed email or
    /// phone number, or whose identifiers belong to different contacts.
    pub invalid_rows: Vec<usize>,
    /// The emails given on those rows (Brevo's `invalid_emails` report).
    pub invalid_emails: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Process {
    pub id: u64,
    pub name: &'static str,
    pub status: ProcessStatus,
    pub created_at: DateTime<Utc>,
    pub job: Option<ImportJob>,
    pub report: Option<ImportReport>,
}

/// A `GET /contacts`-style query; the result is a list of ids in page order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactQuery {
    /// Only these contact ids (`ids`, at most 20).
    pub ids: Vec<u64>,
    /// Members of any of these lists (`listIds`, or the list of
    /// `/contacts/lists/{listId}/contacts`).
    pub lists: Vec<u64>,
    pub modified_since: Option<DateTime<Utc>>,
    pub created_since: Option<DateTime<Utc>>,
    /// `filter=equals(ATTR,value)`.
    pub equals: Option<(String, Value)>,
    pub descending: bool,
}

#[derive(Debug, Default)]
pub struct Store {
    pub contacts: BTreeMap<u64, Contact>,
    idents: HashMap<(IdKind, String), u64>,
    by_modified: BTreeSet<(DateTime<Utc>, u64)>,
    pub attributes: BTreeMap<String, AttributeDef>,
    /// Attribute names in creation order.
    pub attribute_order: Vec<String>,
    pub lists: BTreeMap<u64, List>,
    pub folders: BTreeMap<u64, Folder>,
    pub processes: BTreeMap<u64, Process>,
    /// Imports not yet run, oldest first.
    pub pending: VecDeque<u64>,
    next_contact: u64,
    next_list: u64,
    next_folder: u64,
    next_process: u64,
    /// Bumped by every contact change.
    pub generation: u64,
}

impl Store {
    /// A fresh account: the default attributes and the default folder.
    pub fn new() -> Self {
        let mut store =
            Store { next_contact: 1, next_list: 1, next_folder: 1, next_process: 1, ..Store::default() };
        for def in AttributeDef::defaults() {
            store.add_attribute(def);
        }
        store.add_folder(None, "Your First Folder".into());
        store
    }

    // ----- attributes -----

    pub fn add_attribute(&mut self, def: AttributeDef) {
        if !self.attributes.contains_key(&def.name) {
            self.attribute_order.push(def.name.clone());
        }
        self.attributes.insert(def.name.clone(), def);
    }

    /// Deletes an attribute and its values on every contact.
    pub fn remove_attribute(&mut self, name: &str) {
        self.attributes.remove(name);
        self.attribute_order.retain(|n| n != name);
        if IdKind::of_attribute(name).is_some() {
            return; // identifiers keep their values and index
        }
        for contact in self.contacts.values_mut() {
            contact.attributes.remove(name);
        }
        self.generation += 1;
    }

    // ----- folders and lists -----

    pub fn add_folder(&mut self, id: Option<u64>, name: String) -> u64 {
        let id = id.unwrap_or(self.next_folder);
        self.next_folder = self.next_folder.max(id + 1);
        self.folders.insert(id, Folder { id, name });
        id
    }

    pub fn add_list(&mut self, id: Option<u64>, name: String, folder_id: u64, now: DateTime<Utc>) -> u64 {
        let id = id.unwrap_or(self.next_list);
        self.next_list = self.next_list.max(id + 1);
        self.lists.insert(id, List { id, name, folder_id, created_at: now, members: BTreeSet::new() });
        id
    }

    /// Deletes a list and its memberships.
    pub fn remove_list(&mut self, id: u64) -> bool {
        let Some(list) = self.lists.remove(&id) else { return false };
        for member in list.members {
            if let Some(c) = self.contacts.get_mut(&member) {
                c.list_ids.remove(&id);
            }
        }
        self.generation += 1;
        true
    }

    /// `(totalSubscribers, totalBlacklisted)` of a list: members that are and are
    /// not email-blacklisted.
    pub fn list_counts(&self, list: &List) -> (u64, u64) {
        let blacklisted = list
            .members
            .iter()
            .filter(|id| self.contacts.get(id).is_some_and(|c| c.email_blacklisted))
            .count() as u64;
        (list.members.len() as u64 - blacklisted, blacklisted)
    }

    pub fn check_lists(&self, ids: &[u64]) -> Result<(), ApiError> {
        match ids.iter().find(|id| !self.lists.contains_key(id)) {
            Some(id) => Err(ApiError::invalid(format!("List ID {id} does not exist"))),
            None => Ok(()),
        }
    }

    // ----- processes -----

    pub fn add_process(&mut self, name: &'static str, now: DateTime<Utc>, job: Option<ImportJob>) -> u64 {
        let id = self.next_process;
        self.next_process += 1;
        let status = if job.is_some() { ProcessStatus::Queued } else { ProcessStatus::Completed };
        if job.is_some() {
            self.pending.push_back(id);
        }
        self.processes.insert(id, Process { id, name, status, created_at: now, job, report: None });
        id
    }

    /// The newest queued import that has waited `autorun` of sandbox time.
    pub fn due_import(&self, now: DateTime<Utc>, autorun: chrono::Duration) -> Option<u64> {
        self.pending
            .iter()
            .take_while(|pid| self.processes.get(pid).is_some_and(|p| p.created_at + autorun <= now))
            .last()
            .copied()
    }

    /// Runs every queued import up to and including `upto`, oldest first.
    pub fn run_imports_through(&mut self, upto: u64, now: DateTime<Utc>) {
        while let Some(&next) = self.pending.front() {
            if next > upto {
                break;
            }
            self.pending.pop_front();
            self.run_import(next, now);
        }
    }

    fn run_import(&mut self, pid: u64, now: DateTime<Utc>) {
        let Some(job) = self.processes.get_mut(&pid).and_then(|p| p.job.take()) else { return };
        let mut report = ImportReport::default();
        // Lists may have been deleted since the import was accepted.
        let lists: Vec<u64> = job.list_ids.iter().copied().filter(|l| self.lists.contains_key(l)).collect();
        for (index, row) in job.rows.into_iter().enumerate() {
            let invalid = |report: &mut ImportReport| {
                report.invalid_rows.push(index);
                report.invalid_emails.extend(row.email.clone());
            };
            let source = Source::Import { empty_clears: job.empty_clears };
            let Ok(coerced) = coerce_attributes(&self.attributes, &row.attributes, source) else {
                invalid(&mut report);
                continue;
            };
            let mut change = ContactChange::from_coerced(coerced);
            match row.email.as_deref().map(normalize_email) {
                Some(Ok(email)) => change.email = Some(email),
                Some(Err(_)) => {
                    invalid(&mut report);
                    continue;
                }
                None => {}
            }
            change.link = lists.clone();
            if job.email_blacklist {
                change.email_blacklisted = Some(true);
            }
            if job.sms_blacklist {
                change.sms_blacklisted = Some(true);
            }
            let outcome = match self.matching(&change).as_slice() {
                [] => self.create(change, now).map(|_| &mut report.created),
                [id] if job.update_existing => self.update(*id, change, now).map(|_| &mut report.updated),
                [id] => {
                    let lists_only = ContactChange { link: change.link, ..ContactChange::default() };
                    self.update(*id, lists_only, now).map(|_| &mut report.skipped)
                }
                _ => Err(ApiError::invalid("identifiers belong to different contacts")),
            };
            match outcome {
                Ok(counter) => *counter += 1,
                Err(_) => invalid(&mut report),
            }
        }
        if let Some(process) = self.processes.get_mut(&pid) {
            process.status = ProcessStatus::Completed;
            process.report = Some(report);
        }
    }

    // ----- contacts -----

    pub fn lookup(&self, identifier: &Identifier) -> Option<u64> {
        match identifier {
            Identifier::Id(id) => self.contacts.contains_key(id).then_some(*id),
            Identifier::Key(kind, value) => self.idents.get(&(*kind, value.clone())).copied(),
        }
    }

    /// The distinct existing contacts that the identifiers of `change` name.
    pub fn matching(&self, change: &ContactChange) -> Vec<u64> {
        let mut ids: Vec<u64> =
            change.identifiers().into_iter().filter_map(|key| self.idents.get(&key).copied()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The identifiers of `change` that already belong to another contact than `id`.
    pub fn taken_identifiers(&self, id: Option<u64>, change: &ContactChange) -> Vec<&'static str> {
        change
            .identifiers()
            .into_iter()
            .filter(|key| self.idents.get(key).is_some_and(|owner| Some(*owner) != id))
            .map(|(kind, _)| kind.label())
            .collect()
    }

    /// Brevo's 400 `duplicate_parameter` for identifiers owned by another contact.
    pub fn duplicate_error(verb: &str, taken: &[&'static str]) -> ApiError {
        let names = taken.join(" and ");
        let be = if taken.len() > 1 { "are" } else { "is" };
        ApiError::duplicate(
            format!("Unable to {verb} contact, {names} {be} already associated with another Contact"),
            taken,
        )
    }

    /// Creates a contact; it needs an email, an `EXT_ID` or a phone identifier.
    pub fn create(&mut self, change: ContactChange, now: DateTime<Utc>) -> Result<u64, ApiError> {
        self.create_as(None, change, now, now)
    }

    /// Creates a contact with a chosen id and timestamps (seeding).
    pub fn create_as(
        &mut self,
        id: Option<u64>,
        change: ContactChange,
        created: DateTime<Utc>,
        modified: DateTime<Utc>,
    ) -> Result<u64, ApiError> {
        if id.is_some_and(|id| id == 0 || self.contacts.contains_key(&id)) {
            return Err(ApiError::invalid("contact id is already used"));
        }
        if change.identifiers().is_empty() {
            return Err(ApiError::missing("Contact should have email, ext_id or SMS"));
        }
        let taken = self.taken_identifiers(None, &change);
        if !taken.is_empty() {
            return Err(Self::duplicate_error("create", &taken));
        }
        self.check_lists(&change.link)?;
        let id = id.unwrap_or(self.next_contact);
        self.insert(Contact {
            id,
            email: None,
            email_blacklisted: false,
            sms_blacklisted: false,
            created_at: created.trunc_subsecs(3),
            modified_at: created.trunc_subsecs(3),
            attributes: BTreeMap::new(),
            list_ids: BTreeSet::new(),
        });
        self.apply(id, change, modified);
        Ok(id)
    }

    /// Inserts a contact as given (seeding); its id must be free.
    pub fn insert(&mut self, contact: Contact) {
        let id = contact.id;
        self.next_contact = self.next_contact.max(id + 1);
        for key in contact.identifiers() {
            self.idents.insert(key, id);
        }
        for list in &contact.list_ids {
            if let Some(l) = self.lists.get_mut(list) {
                l.members.insert(id);
            }
        }
        self.by_modified.insert((contact.modified_at, id));
        self.contacts.insert(id, contact);
        self.generation += 1;
    }

    /// Updates a contact after checking identifiers and lists.
    pub fn update(&mut self, id: u64, change: ContactChange, now: DateTime<Utc>) -> Result<(), ApiError> {
        if !self.contacts.contains_key(&id) {
            return Err(ApiError::not_found("Contact does not exist"));
        }
        let taken = self.taken_identifiers(Some(id), &change);
        if !taken.is_empty() {
            return Err(Self::duplicate_error("update", &taken));
        }
        self.check_lists(&change.link)?;
        self.check_lists(&change.unlink)?;
        self.apply(id, change, now);
        Ok(())
    }

    /// Applies a checked change and keeps every index in step.
    fn apply(&mut self, id: u64, change: ContactChange, now: DateTime<Utc>) {
        let Some(contact) = self.contacts.get_mut(&id) else { return };
        let before: Vec<(IdKind, String)> = contact.identifiers().collect();
        self.by_modified.remove(&(contact.modified_at, id));
        if let Some(email) = change.email {
            contact.email = Some(email);
        }
        for (name, op) in change.attrs {
            match op {
                AttrOp::Set(v) => contact.attributes.insert(name, v),
                AttrOp::Clear => contact.attributes.remove(&name),
            };
        }
        if let Some(b) = change.email_blacklisted {
            contact.email_blacklisted = b;
        }
        if let Some(b) = change.sms_blacklisted {
            contact.sms_blacklisted = b;
        }
        for list in change.link {
            contact.list_ids.insert(list);
            if let Some(l) = self.lists.get_mut(&list) {
                l.members.insert(id);
            }
        }
        for list in change.unlink {
            contact.list_ids.remove(&list);
            if let Some(l) = self.lists.get_mut(&list) {
                l.members.remove(&id);
            }
        }
        contact.modified_at = now.trunc_subsecs(3).max(contact.created_at);
        self.by_modified.insert((contact.modified_at, id));
        let after: Vec<(IdKind, String)> = contact.identifiers().collect();
        for key in before.iter().filter(|k| !after.contains(k)) {
            self.idents.remove(key);
        }
        for key in after {
            self.idents.insert(key, id);
        }
        self.generation += 1;
    }

    pub fn delete(&mut self, id: u64) -> bool {
        let Some(contact) = self.contacts.remove(&id) else { return false };
        for key in contact.identifiers() {
            self.idents.remove(&key);
        }
        self.by_modified.remove(&(contact.modified_at, id));
        for list in &contact.list_ids {
            if let Some(l) = self.lists.get_mut(list) {
                l.members.remove(&id);
            }
        }
        self.generation += 1;
        true
    }

    /// The ids a query matches, in page order.
    pub fn query(&self, q: &ContactQuery) -> Vec<u64> {
        let mut ids: Vec<u64> = if !q.ids.is_empty() {
            let set: BTreeSet<u64> =
                q.ids.iter().copied().filter(|id| self.contacts.contains_key(id)).collect();
            set.into_iter().collect()
        } else if let Some(since) = q.modified_since {
            let mut ids: Vec<u64> = self.by_modified.range((since, 0)..).map(|(_, id)| *id).collect();
            ids.sort_unstable();
            ids
        } else if let [list] = q.lists.as_slice() {
            self.lists.get(list).map(|l| l.members.iter().copied().collect()).unwrap_or_default()
        } else if !q.lists.is_empty() {
            let set: BTreeSet<u64> = q
                .lists
                .iter()
                .filter_map(|l| self.lists.get(l))
                .flat_map(|l| l.members.iter().copied())
                .collect();
            set.into_iter().collect()
        } else {
            self.contacts.keys().copied().collect()
        };
        let by_ids = !q.ids.is_empty();
        let needs_filter = by_ids
            || q.modified_since.is_some() && !q.lists.is_empty()
            || q.created_since.is_some()
            || q.equals.is_some();
        if needs_filter {
            ids.retain(|id| {
                let Some(c) = self.contacts.get(id) else { return false };
                (q.lists.is_empty() || q.lists.iter().any(|l| c.list_ids.contains(l)))
                    && (!by_ids || q.modified_since.is_none_or(|t| c.modified_at >= t))
                    && q.created_since.is_none_or(|t| c.created_at >= t)
                    && q.equals.as_ref().is_none_or(|(name, want)| attribute_equals(c, name, want))
            });
        }
        if q.descending {
            ids.reverse();
        }
        ids
    }
}

/// `equals(NAME, value)`: compares the stored value, numbers and text loosely.
fn attribute_equals(contact: &Contact, name: &str, want: &Value) -> bool {
    let have = if name == "EMAIL" {
        contact.email.clone().map(Value::String)
    } else {
        contact.attributes.get(name).cloned()
    };
    match (have, want) {
        (Some(Value::String(h)), Value::String(w)) => h.eq_ignore_ascii_case(w),
        (Some(Value::Number(h)), Value::Number(w)) => h.as_f64() == w.as_f64(),
        (Some(h), w) => &h == w,
        (None, _) => false,
    }
}
