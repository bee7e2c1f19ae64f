//! The in-memory ActiveCampaign account: every record kind, the contact indexes
//! (by id, by lower-cased email, by `udate`) and the contact write and query
//! primitives the handlers share.
//!
//! Timestamps are Unix seconds: AC stores them at second precision and renders
//! them in the account's time zone (see [`Store::utc_offset`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;

use chrono::FixedOffset;
use serde_json::Value;

use super::api::AcError;

/// Highest explicit id a seed may use (keeps the id counter array small).
pub const MAX_SEED_ID: u64 = 50_000_000;

/// Counts of live ids, for O(log n) `meta.total` of id ranges. A Fenwick tree
/// whose capacity doubles as ids grow.
#[derive(Debug, Default)]
pub struct IdCounter {
    tree: Vec<i32>,
}

impl IdCounter {
    fn cap(&self) -> usize {
        self.tree.len().saturating_sub(1)
    }

    fn grow(&mut self, id: usize) {
        if self.tree.is_empty() {
            self.tree.push(0);
        }
        while self.cap() < id {
            let cap = self.cap();
            let total = self.prefix(cap as u64);
            let new_cap = (cap * 2).max(1);
            self.tree.resize(new_cap + 1, 0);
            // The new top node covers (0, new_cap]; every other new node covers
            // a range above the old capacity, which holds nothing yet.
            self.tree[new_cap] = i32::try_from(total).unwrap_or(i32::MAX);
        }
    }

    pub fn add(&mut self, id: u64, delta: i32) {
        let mut i = id as usize;
        if i == 0 {
            return;
        }
        self.grow(i);
        while i < self.tree.len() {
            self.tree[i] += delta;
            i += i & i.wrapping_neg();
        }
    }

    /// Live ids `<= id`.
    pub fn prefix(&self, id: u64) -> u64 {
        let mut i = (id as usize).min(self.cap());
        let mut sum = 0i64;
        while i > 0 {
            sum += i64::from(self.tree[i]);
            i -= i & i.wrapping_neg();
        }
        sum.max(0) as u64
    }
}

#[derive(Debug, Clone)]
pub struct Contact {
    pub id: u64,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub phone: String,
    pub cdate: i64,
    pub udate: i64,
    /// fieldValue ids.
    pub field_values: Vec<u64>,
    /// contactTag ids.
    pub contact_tags: Vec<u64>,
    pub lists: Vec<ListMembership>,
    /// accountContact id.
    pub account_contact: Option<u64>,
    /// contactAutomation ids.
    pub automations: Vec<u64>,
}

/// A contact's status on one list.
#[derive(Debug, Clone, Copy)]
pub struct ListMembership {
    pub list: u64,
    /// 1 subscribed, 2 unsubscribed.
    pub status: u8,
    pub sdate: i64,
    pub udate: i64,
}

#[derive(Debug, Clone)]
pub struct Field {
    pub id: u64,
    pub title: String,
    pub kind: String,
    pub descript: Option<String>,
    pub perstag: String,
    pub defval: Option<String>,
    pub isrequired: bool,
    pub visible: bool,
    pub ordernum: u64,
    pub cdate: i64,
    pub udate: i64,
}

#[derive(Debug, Clone)]
pub struct FieldValue {
    pub id: u64,
    pub contact: u64,
    pub field: u64,
    pub value: String,
    pub cdate: i64,
    pub udate: i64,
}

#[derive(Debug, Clone)]
pub struct Tag {
    pub id: u64,
    pub tag: String,
    pub tag_type: String,
    pub description: String,
    pub cdate: i64,
}

#[derive(Debug, Clone)]
pub struct ContactTag {
    pub id: u64,
    pub contact: u64,
    pub tag: u64,
    pub cdate: i64,
}

#[derive(Debug, Clone)]
pub struct Account {
    pub id: u64,
    pub name: String,
    pub account_url: Option<String>,
    pub owner: u64,
    pub created: i64,
    pub updated: i64,
}

#[derive(Debug, Clone)]
pub struct AccountContact {
    pub id: u64,
    pub account: u64,
    pub contact: u64,
    pub job_title: String,
    pub created: i64,
    pub updated: i64,
}

#[derive(Debug, Clone)]
pub struct AccountFieldMeta {
    pub id: u64,
    pub label: String,
    pub kind: String,
    pub options: Option<Vec<String>>,
    pub default: Value,
    pub default_currency: Option<String>,
    pub visible: bool,
    pub required: bool,
    pub display_order: u64,
    pub created: i64,
    pub updated: i64,
}

#[derive(Debug, Clone)]
pub struct AccountFieldDatum {
    pub id: u64,
    pub account: u64,
    pub field: u64,
    pub value: Value,
    pub currency: Option<String>,
    pub created: i64,
    pub updated: i64,
}

#[derive(Debug, Clone)]
pub struct Automation {
    pub id: u64,
    pub name: String,
    /// "1" active, "2" inactive.
    pub status: String,
    pub labels: Vec<String>,
    pub entered: u64,
    pub exited: u64,
    pub cdate: i64,
    pub mdate: i64,
}

#[derive(Debug, Clone)]
pub struct ContactAutomation {
    pub id: u64,
    pub contact: u64,
    pub automation: u64,
    pub adddate: i64,
    /// "1" active in the automation, "2" completed.
    pub status: u8,
    pub remdate: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Campaign {
    pub id: u64,
    pub name: String,
    pub kind: String,
    pub status: String,
    pub labels: Vec<String>,
    pub automation: Option<u64>,
    pub cdate: i64,
    pub mdate: i64,
    pub sdate: Option<i64>,
    pub ldate: Option<i64>,
    pub send_amt: u64,
    pub opens: u64,
    pub linkclicks: u64,
}

/// One contact activity (campaign send/open/click/reply, automation
/// entered/completed, site or event tracking).
#[derive(Debug, Clone)]
pub struct Activity {
    pub id: u64,
    pub contact: u64,
    pub tstamp: i64,
    pub reference_type: String,
    pub reference_id: u64,
    pub reference_action: String,
    pub data: Value,
}

#[derive(Debug, Clone)]
pub struct TrackingLog {
    pub id: u64,
    pub contact: u64,
    pub kind: String,
    pub tstamp: i64,
    pub value: String,
    pub campaign: Option<u64>,
}

/// One contact of a bulk import, already validated.
#[derive(Debug, Clone, Default)]
pub struct ImportContact {
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub account_name: Option<String>,
    pub tags: Vec<String>,
    pub fields: Vec<(u64, String)>,
    pub subscribe: Vec<u64>,
    pub unsubscribe: Vec<u64>,
}

#[derive(Debug, Clone)]
pub struct Import {
    pub batch_id: String,
    pub accepted: i64,
    pub contacts: Vec<ImportContact>,
    pub completed: Option<i64>,
    pub success: Vec<String>,
    pub failure: Vec<String>,
}

/// What a contact write sets; `None` leaves a value unchanged.
#[derive(Debug, Clone, Default)]
pub struct ContactInput {
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub field_values: Vec<(u64, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OrderKey {
    #[default]
    Id,
    Udate,
    Cdate,
    Email,
    FirstName,
    LastName,
    Name,
}

/// Bounds on the `(udate, id)` index.
type UdateRange = (Bound<(i64, u64)>, Bound<(i64, u64)>);

/// `GET /contacts` filters, ordering and paging.
#[derive(Debug, Clone, Default)]
pub struct ContactQuery {
    pub email: Option<String>,
    pub email_like: Option<String>,
    pub search: Option<String>,
    pub ids: Option<Vec<u64>>,
    pub id_greater: Option<u64>,
    pub id_less: Option<u64>,
    pub exclude: Option<u64>,
    pub created_after: Option<i64>,
    pub created_before: Option<i64>,
    pub updated_after: Option<i64>,
    pub updated_before: Option<i64>,
    pub tagid: Option<u64>,
    pub listid: Option<u64>,
    pub status: Option<u8>,
    pub seriesid: Option<u64>,
    pub order: OrderKey,
    pub desc: bool,
    pub limit: usize,
    pub offset: usize,
}

impl ContactQuery {
    /// Whether any filter beyond the id bounds applies.
    fn has_filters_beyond_ids(&self) -> bool {
        self.email_like.is_some()
            || self.search.is_some()
            || self.exclude.is_some()
            || self.created_after.is_some()
            || self.created_before.is_some()
            || self.updated_after.is_some()
            || self.updated_before.is_some()
            || self.tagid.is_some()
            || self.listid.is_some()
            || self.status.is_some()
            || self.seriesid.is_some()
    }

    /// Whether the udate bounds are the only filters.
    fn only_udate_bounds(&self) -> bool {
        let mut only = self.clone();
        only.updated_after = None;
        only.updated_before = None;
        !only.has_filters_beyond_ids() && self.id_greater.is_none() && self.id_less.is_none()
    }

    fn id_range(&self) -> (Bound<u64>, Bound<u64>) {
        let lo = self.id_greater.map_or(Bound::Unbounded, Bound::Excluded);
        let hi = self.id_less.map_or(Bound::Unbounded, Bound::Excluded);
        (lo, hi)
    }

    fn udate_range(&self) -> UdateRange {
        let lo = self.updated_after.map_or(Bound::Unbounded, |t| Bound::Excluded((t, u64::MAX)));
        let hi = self.updated_before.map_or(Bound::Unbounded, |t| Bound::Excluded((t, 0)));
        (lo, hi)
    }
}

/// Sequential ids per record kind.
#[derive(Debug, Default)]
pub struct Ids {
    next: HashMap<&'static str, u64>,
}

impl Ids {
    pub fn next(&mut self, kind: &'static str) -> u64 {
        let n = self.next.entry(kind).or_insert(1);
        let id = *n;
        *n += 1;
        id
    }

    /// Makes sure later ids of `kind` are above `id` (explicit seed ids).
    pub fn bump(&mut self, kind: &'static str, id: u64) {
        let n = self.next.entry(kind).or_insert(1);
        *n = (*n).max(id + 1);
    }
}

#[derive(Debug)]
pub struct Store {
    /// The account time zone every AC timestamp is rendered in.
    pub utc_offset: FixedOffset,
    pub ids: Ids,
    pub contacts: BTreeMap<u64, Contact>,
    by_email: HashMap<String, u64>,
    by_udate: BTreeSet<(i64, u64)>,
    live_ids: IdCounter,
    pub fields: BTreeMap<u64, Field>,
    pub field_values: BTreeMap<u64, FieldValue>,
    pub tags: BTreeMap<u64, Tag>,
    tag_by_name: HashMap<String, u64>,
    pub contact_tags: BTreeMap<u64, ContactTag>,
    pub accounts: BTreeMap<u64, Account>,
    account_by_name: HashMap<String, u64>,
    pub account_contacts: BTreeMap<u64, AccountContact>,
    pub account_field_meta: BTreeMap<u64, AccountFieldMeta>,
    pub account_field_data: BTreeMap<u64, AccountFieldDatum>,
    pub automations: BTreeMap<u64, Automation>,
    pub contact_automations: BTreeMap<u64, ContactAutomation>,
    pub campaigns: BTreeMap<u64, Campaign>,
    pub activities: BTreeMap<u64, Activity>,
    pub tracking_logs: BTreeMap<u64, TrackingLog>,
    /// (contact, tstamp, id) of activities and of tracking logs, per contact in time order.
    pub activity_index: BTreeSet<(u64, i64, u64)>,
    pub tracking_index: BTreeSet<(u64, i64, u64)>,
    pub imports: HashMap<String, Import>,
    /// Batch ids of imports not yet applied, oldest first.
    pub pending_imports: VecDeque<String>,
}

impl Default for Store {
    fn default() -> Self {
        Self {
            utc_offset: default_offset(),
            ids: Ids::default(),
            contacts: BTreeMap::new(),
            by_email: HashMap::new(),
            by_udate: BTreeSet::new(),
            live_ids: IdCounter::default(),
            fields: BTreeMap::new(),
            field_values: BTreeMap::new(),
            tags: BTreeMap::new(),
            tag_by_name: HashMap::new(),
            contact_tags: BTreeMap::new(),
            accounts: BTreeMap::new(),
            account_by_name: HashMap::new(),
            account_contacts: BTreeMap::new(),
            account_field_meta: BTreeMap::new(),
            account_field_data: BTreeMap::new(),
            automations: BTreeMap::new(),
            contact_automations: BTreeMap::new(),
            campaigns: BTreeMap::new(),
            activities: BTreeMap::new(),
            tracking_logs: BTreeMap::new(),
            activity_index: BTreeSet::new(),
            tracking_index: BTreeSet::new(),
            imports: HashMap::new(),
            pending_imports: VecDeque::new(),
        }
    }
}

/// AC accounts default to US Central time; the sandbox uses a fixed -05:00.
pub fn default_offset() -> FixedOffset {
    FixedOffset::west_opt(5 * 3600).unwrap_or(FixedOffset::east_opt(0).expect("zero offset"))
}

/// A plausible email: `local@domain.tld`, no spaces.
pub fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !email.chars().any(char::is_whitespace)
}

impl Store {
    pub fn contact_by_email(&self, email: &str) -> Option<&Contact> {
        self.by_email.get(&email.trim().to_lowercase()).and_then(|id| self.contacts.get(id))
    }

    pub fn contact(&self, id: u64) -> Result<&Contact, AcError> {
        self.contacts.get(&id).ok_or_else(|| AcError::not_found("Subscriber", id))
    }

    fn email_error(email: Option<&str>) -> Option<AcError> {
        match email.map(str::trim) {
            None | Some("") => Some(AcError::unprocessable(
                "Contact Email Address is not provided.",
                "field_missing",
                "email",
            )),
            Some(e) if !valid_email(e) => {
                Some(AcError::unprocessable("Contact Email Address is not valid.", "email_invalid", "email"))
            }
            Some(_) => None,
        }
    }

    /// `POST /contacts`: a new contact; its email must be new.
    pub fn create_contact(&mut self, input: ContactInput, now: i64) -> Result<u64, AcError> {
        if let Some(e) = Self::email_error(input.email.as_deref()) {
            return Err(e);
        }
        let email = input.email.as_deref().unwrap_or_default().trim().to_string();
        if self.by_email.contains_key(&email.to_lowercase()) {
            return Err(AcError::unprocessable(
                "Email address already exists in the system",
                "duplicate",
                "email",
            ));
        }
        let id = self.ids.next("contact");
        self.insert_contact(id, email, now, now);
        self.apply(id, input, now)?;
        Ok(id)
    }

    /// Inserts an empty contact with this id and email (both new).
    pub fn insert_contact(&mut self, id: u64, email: String, cdate: i64, udate: i64) {
        self.by_email.insert(email.to_lowercase(), id);
        self.by_udate.insert((udate, id));
        self.live_ids.add(id, 1);
        self.contacts.insert(
            id,
            Contact {
                id,
                email,
                first_name: String::new(),
                last_name: String::new(),
                phone: String::new(),
                cdate,
                udate,
                field_values: Vec::new(),
                contact_tags: Vec::new(),
                lists: Vec::new(),
                account_contact: None,
                automations: Vec::new(),
            },
        );
    }

    /// `PUT /contacts/{id}`: changes what the input sets.
    pub fn update_contact(&mut self, id: u64, input: ContactInput, now: i64) -> Result<(), AcError> {
        self.contact(id)?;
        if input.email.is_some()
            && let Some(e) = Self::email_error(input.email.as_deref())
        {
            return Err(e);
        }
        self.apply(id, input, now)
    }

    /// `POST /contact/sync`: creates or updates by email (case-insensitive).
    /// Returns the id and whether the contact was created.
    pub fn sync_contact(&mut self, input: ContactInput, now: i64) -> Result<(u64, bool), AcError> {
        if let Some(e) = Self::email_error(input.email.as_deref()) {
            return Err(e);
        }
        let email = input.email.as_deref().unwrap_or_default();
        match self.contact_by_email(email).map(|c| c.id) {
            Some(id) => {
                self.apply(id, input, now)?;
                Ok((id, false))
            }
            None => Ok((self.create_contact(input, now)?, true)),
        }
    }

    /// Applies an input to an existing contact and moves its `udate`.
    fn apply(&mut self, id: u64, input: ContactInput, now: i64) -> Result<(), AcError> {
        if let Some(email) = input.email.as_deref().map(str::trim) {
            let lower = email.to_lowercase();
            match self.by_email.get(&lower) {
                Some(&other) if other != id => {
                    return Err(AcError::unprocessable(
                        "Email address already exists in the system",
                        "duplicate",
                        "email",
                    ));
                }
                _ => {}
            }
            let old = self.contact(id)?.email.to_lowercase();
            if old != lower {
                self.by_email.remove(&old);
                self.by_email.insert(lower, id);
            }
        }
        let contact = self.contacts.get_mut(&id).ok_or_else(|| AcError::not_found("Subscriber", id))?;
        if let Some(email) = input.email {
            contact.email = email.trim().to_string();
        }
        if let Some(v) = input.first_name {
            contact.first_name = v;
        }
        if let Some(v) = input.last_name {
            contact.last_name = v;
        }
        if let Some(v) = input.phone {
            contact.phone = v;
        }
        for (field, value) in input.field_values {
            self.set_field_value(id, field, value, now);
        }
        self.touch(id, now);
        Ok(())
    }

    /// Moves a contact's `udate` to `now`, keeping the index in step.
    pub fn touch(&mut self, id: u64, now: i64) {
        if let Some(c) = self.contacts.get_mut(&id)
            && c.udate != now
        {
            self.by_udate.remove(&(c.udate, id));
            self.by_udate.insert((now, id));
            c.udate = now;
        }
    }

    /// Sets one custom field value of a contact (creating the fieldValue if
    /// new). Unknown fields are ignored, as AC does. Returns the fieldValue id.
    pub fn set_field_value(&mut self, contact: u64, field: u64, value: String, now: i64) -> Option<u64> {
        if !self.fields.contains_key(&field) {
            return None;
        }
        let c = self.contacts.get_mut(&contact)?;
        let existing = c
            .field_values
            .iter()
            .copied()
            .find(|fv| self.field_values.get(fv).is_some_and(|v| v.field == field));
        match existing {
            Some(fv) => {
                if let Some(v) = self.field_values.get_mut(&fv)
                    && v.value != value
                {
                    v.value = value;
                    v.udate = now;
                }
                Some(fv)
            }
            None => {
                let id = self.ids.next("fieldValue");
                c.field_values.push(id);
                self.field_values
                    .insert(id, FieldValue { id, contact, field, value, cdate: now, udate: now });
                Some(id)
            }
        }
    }

    /// Deletes a contact and everything hanging off it.
    pub fn delete_contact(&mut self, id: u64) -> Result<(), AcError> {
        let c = self.contacts.remove(&id).ok_or_else(|| AcError::not_found("contact", id))?;
        self.by_email.remove(&c.email.to_lowercase());
        self.by_udate.remove(&(c.udate, id));
        self.live_ids.add(id, -1);
        for fv in c.field_values {
            self.field_values.remove(&fv);
        }
        for ct in c.contact_tags {
            self.contact_tags.remove(&ct);
        }
        if let Some(ac) = c.account_contact {
            self.account_contacts.remove(&ac);
        }
        for ca in c.automations {
            self.contact_automations.remove(&ca);
        }
        let acts: Vec<(u64, i64, u64)> =
            self.activity_index.range((id, i64::MIN, 0)..=(id, i64::MAX, u64::MAX)).copied().collect();
        for key in acts {
            self.activity_index.remove(&key);
            self.activities.remove(&key.2);
        }
        let logs: Vec<(u64, i64, u64)> =
            self.tracking_index.range((id, i64::MIN, 0)..=(id, i64::MAX, u64::MAX)).copied().collect();
        for key in logs {
            self.tracking_index.remove(&key);
            self.tracking_logs.remove(&key.2);
        }
        Ok(())
    }

    pub fn tag_by_name(&self, name: &str) -> Option<&Tag> {
        self.tag_by_name.get(&name.trim().to_lowercase()).and_then(|id| self.tags.get(id))
    }

    /// Creates a tag; the name must be new (case-insensitive).
    pub fn create_tag(
        &mut self,
        name: &str,
        tag_type: &str,
        description: &str,
        now: i64,
    ) -> Result<u64, AcError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(AcError::unprocessable("Tag name is required", "field_missing", "tag"));
        }
        if self.tag_by_name(name).is_some() {
            return Err(AcError::unprocessable("Duplicate tag name", "duplicate", "tag"));
        }
        let id = self.ids.next("tag");
        self.insert_tag(id, name, tag_type, description, now);
        Ok(id)
    }

    pub fn insert_tag(&mut self, id: u64, name: &str, tag_type: &str, description: &str, now: i64) {
        self.tag_by_name.insert(name.to_lowercase(), id);
        self.tags.insert(
            id,
            Tag {
                id,
                tag: name.to_string(),
                tag_type: if tag_type.is_empty() { "contact".into() } else { tag_type.into() },
                description: description.to_string(),
                cdate: now,
            },
        );
    }

    /// The tag with this name, created if missing.
    pub fn ensure_tag(&mut self, name: &str, now: i64) -> u64 {
        match self.tag_by_name(name) {
            Some(t) => t.id,
            None => {
                let id = self.ids.next("tag");
                self.insert_tag(id, name.trim(), "contact", "", now);
                id
            }
        }
    }

    /// Tags a contact; tagging twice returns the existing contactTag.
    pub fn add_contact_tag(&mut self, contact: u64, tag: u64, now: i64) -> Result<u64, AcError> {
        let Some(c) = self.contacts.get(&contact) else {
            return Err(AcError::json(
                404,
                serde_json::json!({"errors": [{"status": 404, "title": "Not Found", "detail": "Contact not found"}]}),
            ));
        };
        if !self.tags.contains_key(&tag) {
            return Err(AcError::json(
                404,
                serde_json::json!({"errors": [{"status": 404, "title": "Not Found", "detail": "Tag not found"}]}),
            ));
        }
        if let Some(&existing) =
            c.contact_tags.iter().find(|ct| self.contact_tags.get(ct).is_some_and(|x| x.tag == tag))
        {
            return Ok(existing);
        }
        let id = self.ids.next("contactTag");
        self.contact_tags.insert(id, ContactTag { id, contact, tag, cdate: now });
        if let Some(c) = self.contacts.get_mut(&contact) {
            c.contact_tags.push(id);
        }
        self.touch(contact, now);
        Ok(id)
    }

    pub fn remove_contact_tag(&mut self, id: u64, now: i64) -> Result<(), AcError> {
        let ct = self.contact_tags.remove(&id).ok_or_else(|| AcError::not_found("ContactTag", id))?;
        if let Some(c) = self.contacts.get_mut(&ct.contact) {
            c.contact_tags.retain(|x| *x != id);
        }
        self.touch(ct.contact, now);
        Ok(())
    }

    pub fn set_list_status(&mut self, contact: u64, list: u64, status: u8, now: i64) {
        if let Some(c) = self.contacts.get_mut(&contact) {
            match c.lists.iter_mut().find(|m| m.list == list) {
                Some(m) => {
                    m.status = status;
                    m.udate = now;
                }
                None => c.lists.push(ListMembership { list, status, sdate: now, udate: now }),
            }
            // A subscription change is an update of the contact (its `udate`).
            self.touch(contact, now);
        }
    }

    pub fn account_by_name(&self, name: &str) -> Option<&Account> {
        self.account_by_name.get(&name.trim().to_lowercase()).and_then(|id| self.accounts.get(id))
    }

    /// Adds an account (its name must be new).
    pub fn insert_account(&mut self, account: Account) {
        self.account_by_name.insert(account.name.to_lowercase(), account.id);
        self.accounts.insert(account.id, account);
    }

    pub fn rename_account(&mut self, id: u64, name: &str) {
        if let Some(a) = self.accounts.get_mut(&id) {
            self.account_by_name.remove(&a.name.to_lowercase());
            a.name = name.trim().to_string();
            self.account_by_name.insert(a.name.to_lowercase(), id);
        }
    }

    /// Removes an account, its contact links and its custom field data.
    pub fn remove_account(&mut self, id: u64) -> Result<(), AcError> {
        let a = self.accounts.remove(&id).ok_or_else(|| AcError::not_found("Account", id))?;
        self.account_by_name.remove(&a.name.to_lowercase());
        let links: Vec<u64> =
            self.account_contacts.values().filter(|x| x.account == id).map(|x| x.id).collect();
        for link in links {
            self.unlink_account(link)?;
        }
        self.account_field_data.retain(|_, d| d.account != id);
        Ok(())
    }

    /// Links a contact to an account (a contact has at most one account).
    pub fn link_account(
        &mut self,
        contact: u64,
        account: u64,
        job_title: &str,
        now: i64,
    ) -> Result<u64, AcError> {
        self.contact(contact)?;
        if !self.accounts.contains_key(&account) {
            return Err(AcError::not_found("Account", account));
        }
        if let Some(existing) = self.contacts.get(&contact).and_then(|c| c.account_contact) {
            if self.account_contacts.get(&existing).is_some_and(|ac| ac.account == account) {
                return Ok(existing);
            }
            return Err(AcError::unprocessable(
                "The contact is already associated with an account",
                "duplicate",
                "contact",
            ));
        }
        let id = self.ids.next("accountContact");
        self.account_contacts.insert(
            id,
            AccountContact {
                id,
                account,
                contact,
                job_title: job_title.to_string(),
                created: now,
                updated: now,
            },
        );
        if let Some(c) = self.contacts.get_mut(&contact) {
            c.account_contact = Some(id);
        }
        Ok(id)
    }

    pub fn unlink_account(&mut self, id: u64) -> Result<(), AcError> {
        let ac = self.account_contacts.remove(&id).ok_or_else(|| AcError::not_found("AccountContact", id))?;
        if let Some(c) = self.contacts.get_mut(&ac.contact) {
            c.account_contact = None;
        }
        Ok(())
    }

    /// Records an activity of a contact; returns its id.
    pub fn add_activity(&mut self, mut a: Activity) -> u64 {
        a.id = self.ids.next("activity");
        self.activity_index.insert((a.contact, a.tstamp, a.id));
        let id = a.id;
        self.activities.insert(id, a);
        id
    }

    pub fn add_tracking_log(&mut self, mut t: TrackingLog) -> u64 {
        t.id = self.ids.next("trackingLog");
        self.tracking_index.insert((t.contact, t.tstamp, t.id));
        let id = t.id;
        self.tracking_logs.insert(id, t);
        id
    }

    /// Runs a contact query: the page and `meta.total`.
    pub fn query_contacts(&self, q: &ContactQuery) -> (u64, Vec<&Contact>) {
        // Point lookups first.
        if q.email.is_some() || q.ids.is_some() {
            let mut found: Vec<&Contact> = match (&q.email, &q.ids) {
                (Some(email), _) => self.contact_by_email(email).into_iter().collect(),
                (None, Some(ids)) => ids.iter().filter_map(|id| self.contacts.get(id)).collect(),
                (None, None) => Vec::new(),
            };
            found.retain(|c| self.matches(q, c) && in_ids(q, c.id));
            return self.sorted_page(q, found);
        }
        match q.order {
            OrderKey::Id => {
                let range = self.contacts.range(q.id_range()).map(|(_, c)| c);
                let total =
                    if q.has_filters_beyond_ids() { self.count_filtered(q) } else { self.count_ids(q) };
                let filtered = |c: &&Contact| self.matches(q, c);
                let page: Vec<&Contact> = if q.desc {
                    range.rev().filter(filtered).skip(q.offset).take(q.limit).collect()
                } else {
                    range.filter(filtered).skip(q.offset).take(q.limit).collect()
                };
                (total, page)
            }
            OrderKey::Udate => {
                let range = self
                    .by_udate
                    .range(q.udate_range())
                    .filter_map(|(_, id)| self.contacts.get(id))
                    .filter(|c| in_ids(q, c.id) && self.matches(q, c));
                let total = self.count_filtered(q);
                let page = if q.desc {
                    let all: Vec<&Contact> = range.collect();
                    all.into_iter().rev().skip(q.offset).take(q.limit).collect()
                } else {
                    range.skip(q.offset).take(q.limit).collect()
                };
                (total, page)
            }
            _ => {
                let all: Vec<&Contact> = self
                    .contacts
                    .range(q.id_range())
                    .map(|(_, c)| c)
                    .filter(|c| self.matches(q, c))
                    .collect();
                self.sorted_page(q, all)
            }
        }
    }

    fn count_ids(&self, q: &ContactQuery) -> u64 {
        let lo = q.id_greater.map_or(0, |v| self.live_ids.prefix(v));
        let hi = match q.id_less {
            Some(0) => 0,
            Some(v) => self.live_ids.prefix(v - 1),
            None => self.contacts.len() as u64,
        };
        hi.saturating_sub(lo)
    }

    /// Counts matches, walking whichever index range is smaller.
    fn count_filtered(&self, q: &ContactQuery) -> u64 {
        if q.only_udate_bounds() {
            return self.count_udate_range(q);
        }
        let by_id = self.count_ids(q);
        let by_udate_bounded = q.updated_after.is_some() || q.updated_before.is_some();
        if by_udate_bounded {
            // Walk the udate range when it is the smaller one (incremental reads).
            let mut n = 0u64;
            let mut walked = 0u64;
            for (_, id) in self.by_udate.range(q.udate_range()) {
                walked += 1;
                if walked > by_id {
                    break;
                }
                if let Some(c) = self.contacts.get(id)
                    && in_ids(q, c.id)
                    && self.matches(q, c)
                {
                    n += 1;
                }
            }
            if walked <= by_id {
                return n;
            }
        }
        self.contacts.range(q.id_range()).filter(|(_, c)| self.matches(q, c)).count() as u64
    }

    /// Contacts with `udate` inside the query's bounds, walking at most half
    /// the index: the inside when it is small (incremental reads), else the
    /// outside (full reads from an old date).
    fn count_udate_range(&self, q: &ContactQuery) -> u64 {
        let len = self.by_udate.len() as u64;
        let half = len / 2;
        let mut inside = 0u64;
        for _ in self.by_udate.range(q.udate_range()) {
            inside += 1;
            if inside > half {
                break;
            }
        }
        if inside <= half {
            return inside;
        }
        let below = q.updated_after.map_or(0, |t| self.by_udate.range(..=(t, u64::MAX)).count() as u64);
        let above = q.updated_before.map_or(0, |t| self.by_udate.range((t, 0)..).count() as u64);
        len.saturating_sub(below + above)
    }

    fn sorted_page<'a>(&'a self, q: &ContactQuery, mut all: Vec<&'a Contact>) -> (u64, Vec<&'a Contact>) {
        let total = all.len() as u64;
        match q.order {
            OrderKey::Id => all.sort_by_key(|c| c.id),
            OrderKey::Udate => all.sort_by_key(|c| (c.udate, c.id)),
            OrderKey::Cdate => all.sort_by_key(|c| (c.cdate, c.id)),
            OrderKey::Email => {
                all.sort_by(|a, b| a.email.to_lowercase().cmp(&b.email.to_lowercase()).then(a.id.cmp(&b.id)))
            }
            OrderKey::FirstName => all.sort_by(|a, b| a.first_name.cmp(&b.first_name).then(a.id.cmp(&b.id))),
            OrderKey::LastName => all.sort_by(|a, b| a.last_name.cmp(&b.last_name).then(a.id.cmp(&b.id))),
            OrderKey::Name => all.sort_by(|a, b| {
                (a.first_name.as_str(), a.last_name.as_str(), a.id).cmp(&(
                    b.first_name.as_str(),
                    b.last_name.as_str(),
                    b.id,
                ))
            }),
        }
        if q.desc {
            all.reverse();
        }
        (total, all.into_iter().skip(q.offset).take(q.limit).collect())
    }

    /// Every filter except the id bounds (and the point lookups).
    fn matches(&self, q: &ContactQuery, c: &Contact) -> bool {
        if q.exclude == Some(c.id) {
            return false;
        }
        if q.updated_after.is_some_and(|t| c.udate <= t) || q.updated_before.is_some_and(|t| c.udate >= t) {
            return false;
        }
        if q.created_after.is_some_and(|t| c.cdate <= t) || q.created_before.is_some_and(|t| c.cdate >= t) {
            return false;
        }
        if let Some(like) = &q.email_like
            && !c.email.to_lowercase().contains(&like.to_lowercase())
        {
            return false;
        }
        if let Some(s) = &q.search {
            let s = s.to_lowercase();
            let hit = [&c.email, &c.first_name, &c.last_name, &c.phone]
                .iter()
                .any(|v| v.to_lowercase().contains(&s))
                || format!("{} {}", c.first_name, c.last_name).to_lowercase().contains(&s);
            if !hit {
                return false;
            }
        }
        if let Some(tag) = q.tagid
            && !c.contact_tags.iter().any(|ct| self.contact_tags.get(ct).is_some_and(|x| x.tag == tag))
        {
            return false;
        }
        if let Some(list) = q.listid {
            let status = q.status;
            if !c.lists.iter().any(|m| m.list == list && status.is_none_or(|st| st == m.status)) {
                return false;
            }
        } else if let Some(status) = q.status
            && !c.lists.iter().any(|m| m.status == status)
        {
            return false;
        }
        if let Some(series) = q.seriesid
            && !c
                .automations
                .iter()
                .any(|ca| self.contact_automations.get(ca).is_some_and(|x| x.automation == series))
        {
            return false;
        }
        true
    }

    /// Applies one queued bulk import: dedupes by email like `/contact/sync`.
    pub fn apply_import(&mut self, batch_id: &str, now: i64) {
        let Some(import) = self.imports.get_mut(batch_id) else {
            return;
        };
        if import.completed.is_some() {
            return;
        }
        let contacts = std::mem::take(&mut import.contacts);
        let mut success = Vec::with_capacity(contacts.len());
        let mut failure = Vec::new();
        for ic in contacts {
            let input = ContactInput {
                email: Some(ic.email.clone()),
                first_name: ic.first_name.clone(),
                last_name: ic.last_name.clone(),
                phone: ic.phone.clone(),
                field_values: ic.fields.clone(),
            };
            let id = match self.sync_contact(input, now) {
                Ok((id, _)) => id,
                Err(_) => {
                    failure.push(ic.email);
                    continue;
                }
            };
            for name in &ic.tags {
                let tag = self.ensure_tag(name, now);
                let _ = self.add_contact_tag(id, tag, now);
            }
            for list in &ic.subscribe {
                self.set_list_status(id, *list, 1, now);
            }
            for list in &ic.unsubscribe {
                self.set_list_status(id, *list, 2, now);
            }
            if let Some(name) = ic.account_name.as_deref().filter(|n| !n.trim().is_empty()) {
                let account = match self.account_by_name(name) {
                    Some(a) => a.id,
                    None => {
                        let aid = self.ids.next("account");
                        self.insert_account(Account {
                            id: aid,
                            name: name.trim().into(),
                            account_url: None,
                            owner: 1,
                            created: now,
                            updated: now,
                        });
                        aid
                    }
                };
                let _ = self.link_account(id, account, "", now);
            }
            success.push(id.to_string());
        }
        if let Some(import) = self.imports.get_mut(batch_id) {
            import.completed = Some(now);
            import.success = success;
            import.failure = failure;
        }
        self.pending_imports.retain(|b| b != batch_id);
    }

    /// Applies queued imports accepted at or before `cutoff`.
    pub fn apply_due_imports(&mut self, cutoff: i64, now: i64) {
        while let Some(batch) = self.pending_imports.front().cloned() {
            let due = self.imports.get(&batch).is_none_or(|i| i.accepted <= cutoff);
            if !due {
                break;
            }
            self.apply_import(&batch, now);
            self.pending_imports.retain(|b| *b != batch);
        }
    }
}

fn in_ids(q: &ContactQuery, id: u64) -> bool {
    q.id_greater.is_none_or(|g| id > g) && q.id_less.is_none_or(|l| id < l)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(email: &str) -> ContactInput {
        ContactInput { email: Some(email.into()), ..Default::default() }
    }

    #[test]
    fn id_counter_counts_ranges_while_growing() {
        let mut c = IdCounter::default();
        for id in 1..=1000 {
            c.add(id, 1);
        }
        c.add(500, -1);
        assert_eq!(c.prefix(1000), 999);
        assert_eq!(c.prefix(499), 499);
        assert_eq!(c.prefix(500), 499);
        assert_eq!(c.prefix(5000), 999);
        c.add(70_000, 1);
        assert_eq!(c.prefix(100_000) - c.prefix(1000), 1);
    }

    #[test]
    fn sync_dedupes_case_insensitively() {
        let mut s = Store::default();
        let (a, created) = s.sync_contact(input("Ann@Example.com"), 10).expect("sync");
        assert!(created);
        let (b, created) = s.sync_contact(input("ann@example.COM"), 20).expect("sync");
        assert!(!created);
        assert_eq!(a, b);
        assert_eq!(s.contacts.len(), 1);
        assert_eq!(s.contacts[&a].udate, 20);
    }

    #[test]
    fn query_totals_use_indexes_and_agree_with_a_scan() {
        let mut s = Store::default();
        for i in 0..300 {
            s.create_contact(input(&format!("c{i}@x.io")), i).expect("create");
        }
        s.delete_contact(7).expect("delete");
        let q = ContactQuery { id_greater: Some(100), limit: 20, ..Default::default() };
        let (total, page) = s.query_contacts(&q);
        assert_eq!(total, 200);
        assert_eq!(page.first().map(|c| c.id), Some(101));
        let q = ContactQuery {
            updated_after: Some(249),
            order: OrderKey::Udate,
            limit: 100,
            ..Default::default()
        };
        let (total, page) = s.query_contacts(&q);
        assert_eq!(total, 50);
        assert_eq!(page.len(), 50);
        let q = ContactQuery {
            updated_after: Some(249),
            id_greater: Some(280),
            limit: 100,
            ..Default::default()
        };
        assert_eq!(s.query_contacts(&q).0, 20);
        let q = ContactQuery { updated_after: Some(10), updated_before: Some(290), ..Default::default() };
        assert_eq!(s.query_contacts(&q).0, 279, "udate 11..=289, counted from the outside");
        let q = ContactQuery { id_less: Some(11), limit: 100, ..Default::default() };
        assert_eq!(s.query_contacts(&q).0, 9);
    }
}
