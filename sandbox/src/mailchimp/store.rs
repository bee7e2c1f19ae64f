//! The in-memory Mailchimp account: audiences (lists) with their members and
//! merge fields, campaigns, batch operations, and the keys that may call the API.
//!
//! Members are indexed by subscriber hash (the MD5 of the lowercased email, which
//! is also the email index) and by `(last_changed, change sequence)` so that
//! `since_last_changed` listing and paging cost O(log n + page), not a scan.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, SubsecRound, Utc};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// A member's status, as the API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Subscribed,
    Unsubscribed,
    Cleaned,
    Pending,
    Transactional,
    Archived,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Subscribed,
        Status::Unsubscribed,
        Status::Cleaned,
        Status::Pending,
        Status::Transactional,
        Status::Archived,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Subscribed => "subscribed",
            Status::Unsubscribed => "unsubscribed",
            Status::Cleaned => "cleaned",
            Status::Pending => "pending",
            Status::Transactional => "transactional",
            Status::Archived => "archived",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What a caller's user may do. Only managers and above may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Manager,
    Author,
    Viewer,
}

impl Role {
    pub fn can_write(self) -> bool {
        matches!(self, Role::Owner | Role::Admin | Role::Manager)
    }
}

/// MD5 of the lowercased email: the member's id in every member path.
pub fn subscriber_hash(email: &str) -> String {
    hex::encode(Md5::digest(email.trim().to_lowercase().as_bytes()))
}

/// A random lowercase hex id of `len` (≤ 32) characters.
pub fn random_id(len: usize) -> String {
    let mut id = uuid::Uuid::new_v4().simple().to_string();
    id.truncate(len);
    id
}

/// Mailchimp's timestamp format: `2015-09-16T19:33:18+00:00`.
pub fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

/// Empty timestamps are `""` in Mailchimp's responses, not null.
pub fn opt_ts(t: Option<DateTime<Utc>>) -> Value {
    Value::String(t.map(ts).unwrap_or_default())
}

/// Mailchimp keeps whole seconds.
pub fn secs(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(0)
}

/// Parses the date forms the API accepts: RFC 3339 / ISO 8601 with or without
/// an offset (UTC when absent), `YYYY-MM-DD HH:MM:SS`, or a bare date.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc());
        }
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// One event in a member's activity feed (seeded; Mailchimp records these when
/// campaigns are sent, opened or clicked).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Activity {
    /// `sent`, `open`, `click`, `bounce`, `unsub`, ...
    pub action: String,
    pub timestamp: DateTime<Utc>,
    #[serde(default)]
    pub campaign_id: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub bounce_type: Option<String>,
}

/// One audience member.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub hash: String,
    pub email: String,
    pub unique_email_id: String,
    pub contact_id: String,
    pub web_id: u64,
    pub email_type: String,
    pub status: Status,
    /// The status before the member was archived (decides compliance on re-add).
    pub prior_status: Option<Status>,
    pub unsubscribe_reason: Option<String>,
    pub merge_fields: Map<String, Value>,
    pub interests: Map<String, Value>,
    pub language: String,
    pub vip: bool,
    pub ip_signup: String,
    pub timestamp_signup: Option<DateTime<Utc>>,
    pub ip_opt: String,
    pub timestamp_opt: Option<DateTime<Utc>>,
    pub member_rating: u8,
    pub last_changed: DateTime<Utc>,
    /// Global change sequence: breaks `last_changed` ties in the change index.
    pub seq: u64,
    pub location: Option<(f64, f64)>,
    pub marketing_permissions: Vec<Value>,
    pub source: String,
    /// `(id, name, date_added)`.
    pub tags: Vec<(u64, String, DateTime<Utc>)>,
    pub activity: Vec<Activity>,
}

impl Member {
    pub fn new(email: &str, web_id: u64) -> Member {
        Member {
            hash: subscriber_hash(email),
            email: email.trim().to_string(),
            unique_email_id: random_id(10),
            contact_id: random_id(32),
            web_id,
            email_type: "html".into(),
            status: Status::Subscribed,
            prior_status: None,
            unsubscribe_reason: None,
            merge_fields: Map::new(),
            interests: Map::new(),
            language: String::new(),
            vip: false,
            ip_signup: String::new(),
            timestamp_signup: None,
            ip_opt: String::new(),
            timestamp_opt: None,
            member_rating: 2,
            last_changed: DateTime::UNIX_EPOCH,
            seq: 0,
            location: None,
            marketing_permissions: Vec::new(),
            source: "API - Generic".into(),
            tags: Vec::new(),
            activity: Vec::new(),
        }
    }

    /// The member as `GET /lists/{list_id}/members/{hash}` returns it.
    pub fn view<'a>(&'a self, list_id: &'a str, fields: &'a [MergeField]) -> MemberView<'a> {
        let full_name = ["FNAME", "LNAME"]
            .iter()
            .filter_map(|t| self.merge_fields.get(*t).and_then(Value::as_str))
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let (latitude, longitude) = self.location.unwrap_or((0.0, 0.0));
        MemberView {
            id: &self.hash,
            email_address: &self.email,
            unique_email_id: &self.unique_email_id,
            contact_id: &self.contact_id,
            full_name,
            web_id: self.web_id,
            email_type: &self.email_type,
            status: self.status.as_str(),
            unsubscribe_reason: self.unsubscribe_reason.as_deref(),
            consents_to_one_to_one_messaging: true,
            merge_fields: MergeValues { values: &self.merge_fields, fields },
            interests: &self.interests,
            stats: Stats { avg_open_rate: 0.0, avg_click_rate: 0.0 },
            ip_signup: &self.ip_signup,
            timestamp_signup: self.timestamp_signup.map(ts).unwrap_or_default(),
            ip_opt: &self.ip_opt,
            timestamp_opt: self.timestamp_opt.map(ts).unwrap_or_default(),
            member_rating: self.member_rating,
            last_changed: ts(self.last_changed),
            language: &self.language,
            vip: self.vip,
            email_client: "",
            location: LocationView {
                latitude,
                longitude,
                gmtoff: 0,
                dstoff: 0,
                country_code: "",
                timezone: "",
                region: "",
            },
            marketing_permissions: &self.marketing_permissions,
            source: &self.source,
            tags_count: self.tags.len(),
            tags: self.tags.iter().map(|(id, name, _)| TagView { id: *id, name }).collect(),
            list_id,
        }
    }

    /// [`Member::view`] as a JSON value.
    pub fn to_json(&self, list_id: &str, fields: &[MergeField]) -> Value {
        serde_json::to_value(self.view(list_id, fields)).unwrap_or(Value::Null)
    }
}

/// A member as the API shows it, serialized without building a `Value` tree.
#[derive(Serialize)]
pub struct MemberView<'a> {
    id: &'a str,
    email_address: &'a str,
    unique_email_id: &'a str,
    contact_id: &'a str,
    full_name: String,
    web_id: u64,
    email_type: &'a str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    unsubscribe_reason: Option<&'a str>,
    consents_to_one_to_one_messaging: bool,
    merge_fields: MergeValues<'a>,
    interests: &'a Map<String, Value>,
    stats: Stats,
    ip_signup: &'a str,
    /// `""` when unknown, as the real API sends it.
    timestamp_signup: String,
    ip_opt: &'a str,
    timestamp_opt: String,
    member_rating: u8,
    last_changed: String,
    language: &'a str,
    vip: bool,
    email_client: &'static str,
    location: LocationView,
    marketing_permissions: &'a [Value],
    source: &'a str,
    tags_count: usize,
    tags: Vec<TagView<'a>>,
    list_id: &'a str,
}

/// Every audience field, `""` when the member has no value for it.
struct MergeValues<'a> {
    values: &'a Map<String, Value>,
    fields: &'a [MergeField],
}

impl Serialize for MergeValues<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let empty = Value::String(String::new());
        let mut map = s.serialize_map(Some(self.fields.len()))?;
        for f in self.fields {
            map.serialize_entry(&f.tag, self.values.get(&f.tag).unwrap_or(&empty))?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct Stats {
    avg_open_rate: f64,
    avg_click_rate: f64,
}

#[derive(Serialize)]
struct LocationView {
    latitude: f64,
    longitude: f64,
    gmtoff: i32,
    dstoff: i32,
    country_code: &'static str,
    timezone: &'static str,
    region: &'static str,
}

#[derive(Serialize)]
struct TagView<'a> {
    id: u64,
    name: &'a str,
}

/// One audience field definition.
#[derive(Debug, Clone)]
pub struct MergeField {
    pub merge_id: u64,
    pub tag: String,
    pub name: String,
    pub kind: String,
    pub required: bool,
    pub default_value: String,
    pub public: bool,
    pub display_order: i64,
    pub options: Value,
    pub help_text: String,
}

/// The merge-field types the API knows.
pub const MERGE_TYPES: [&str; 11] =
    ["text", "number", "address", "phone", "date", "url", "imageurl", "radio", "dropdown", "birthday", "zip"];

impl MergeField {
    /// The options Mailchimp fills in for a type when none are given.
    pub fn default_options(kind: &str) -> Value {
        match kind {
            "text" => json!({"size": 25}),
            "address" => json!({"default_country": 164}),
            "phone" => json!({"phone_format": "US"}),
            "date" => json!({"date_format": "MM/DD/YYYY"}),
            "birthday" => json!({"date_format": "MM/DD"}),
            "radio" | "dropdown" => json!({"choices": []}),
            _ => json!({}),
        }
    }

    pub fn to_json(&self, list_id: &str) -> Value {
        json!({
            "merge_id": self.merge_id,
            "tag": self.tag,
            "name": self.name,
            "type": self.kind,
            "required": self.required,
            "default_value": self.default_value,
            "public": self.public,
            "display_order": self.display_order,
            "options": self.options,
            "help_text": self.help_text,
            "list_id": list_id,
        })
    }
}

/// One audience.
#[derive(Debug)]
pub struct List {
    pub id: String,
    pub web_id: u64,
    pub date_created: DateTime<Utc>,
    /// The writable settings as given: name, contact, permission_reminder,
    /// campaign_defaults, email_type_option, double_optin, ...
    pub settings: Map<String, Value>,
    pub merge_fields: Vec<MergeField>,
    pub next_merge_id: u64,
    pub members: HashMap<String, Member>,
    /// `contact_id -> hash` (member paths accept either).
    pub by_contact: HashMap<String, String>,
    /// `(last_changed, seq) -> hash`, every member including archived ones.
    pub by_changed: BTreeMap<(DateTime<Utc>, u64), String>,
    /// Hashes of permanently deleted members (they cannot be re-added by API).
    pub forgotten: HashSet<String>,
    pub counts: [usize; 6],
    pub tag_ids: HashMap<String, u64>,
    /// Bumped on every member write; paging hints are valid for one version.
    pub version: u64,
    pub last_sub: Option<DateTime<Utc>>,
    pub last_unsub: Option<DateTime<Utc>>,
}

impl List {
    pub fn new(id: String, web_id: u64, now: DateTime<Utc>, settings: Map<String, Value>) -> List {
        let mut list = List {
            id,
            web_id,
            date_created: now,
            settings,
            merge_fields: Vec::new(),
            next_merge_id: 1,
            members: HashMap::new(),
            by_contact: HashMap::new(),
            by_changed: BTreeMap::new(),
            forgotten: HashSet::new(),
            counts: [0; 6],
            tag_ids: HashMap::new(),
            version: 0,
            last_sub: None,
            last_unsub: None,
        };
        // New audiences come with these fields (they can be edited or deleted).
        for (tag, name, kind) in [
            ("FNAME", "First Name", "text"),
            ("LNAME", "Last Name", "text"),
            ("ADDRESS", "Address", "address"),
            ("PHONE", "Phone Number", "phone"),
        ] {
            list.add_merge_field(tag.into(), name.into(), kind, false, None);
        }
        list
    }

    pub fn add_merge_field(
        &mut self,
        tag: String,
        name: String,
        kind: &str,
        required: bool,
        options: Option<Value>,
    ) -> &mut MergeField {
        let merge_id = self.next_merge_id;
        self.next_merge_id += 1;
        self.merge_fields.push(MergeField {
            merge_id,
            tag,
            name,
            kind: kind.to_string(),
            required,
            default_value: String::new(),
            public: false,
            display_order: merge_id as i64 + 1,
            options: options.unwrap_or_else(|| MergeField::default_options(kind)),
            help_text: String::new(),
        });
        let last = self.merge_fields.len() - 1;
        &mut self.merge_fields[last]
    }

    pub fn merge_field(&self, tag: &str) -> Option<&MergeField> {
        self.merge_fields.iter().find(|f| f.tag == tag)
    }

    pub fn tag_id(&mut self, name: &str, ids: &mut Ids) -> u64 {
        if let Some(id) = self.tag_ids.get(name) {
            return *id;
        }
        ids.tags += 1;
        self.tag_ids.insert(name.to_string(), ids.tags);
        ids.tags
    }

    /// Stores `member` (new or changed), keeping the indexes and counters right.
    pub fn put_member(&mut self, member: Member) {
        if let Some(old) = self.members.get(&member.hash) {
            self.by_changed.remove(&(old.last_changed, old.seq));
            self.counts[old.status.index()] -= 1;
        }
        self.by_changed.insert((member.last_changed, member.seq), member.hash.clone());
        self.by_contact.insert(member.contact_id.clone(), member.hash.clone());
        self.counts[member.status.index()] += 1;
        match member.status {
            Status::Subscribed => self.last_sub = Some(member.last_changed),
            Status::Unsubscribed => self.last_unsub = Some(member.last_changed),
            _ => {}
        }
        self.members.insert(member.hash.clone(), member);
        self.version += 1;
    }

    pub fn remove_member(&mut self, hash: &str) -> Option<Member> {
        let old = self.members.remove(hash)?;
        self.by_changed.remove(&(old.last_changed, old.seq));
        if self.by_contact.get(&old.contact_id).is_some_and(|h| h == hash) {
            self.by_contact.remove(&old.contact_id);
        }
        self.counts[old.status.index()] -= 1;
        self.version += 1;
        Some(old)
    }

    pub fn count(&self, status: Status) -> usize {
        self.counts[status.index()]
    }

    pub fn to_json(&self, campaign_count: usize) -> Value {
        let mut v = Value::Object(self.settings.clone());
        let total = self.members.len() - self.count(Status::Archived);
        let extra = json!({
            "id": self.id,
            "web_id": self.web_id,
            "date_created": ts(self.date_created),
            "list_rating": 0,
            "subscribe_url_short": format!("http://eepurl.com/{}", &self.id[..self.id.len().min(6)]),
            "subscribe_url_long": format!("https://sandbox.us6.list-manage.com/subscribe?u=sandbox&id={}", self.id),
            "beamer_address": format!("us6-sandbox-{}@inbound.mailchimp.com", self.id),
            "visibility": "prv",
            "has_welcome": false,
            "modules": [],
            "stats": {
                "member_count": self.count(Status::Subscribed),
                "total_contacts": total,
                "unsubscribe_count": self.count(Status::Unsubscribed),
                "cleaned_count": self.count(Status::Cleaned),
                "member_count_since_send": self.count(Status::Subscribed),
                "unsubscribe_count_since_send": self.count(Status::Unsubscribed),
                "cleaned_count_since_send": self.count(Status::Cleaned),
                "campaign_count": campaign_count,
                "campaign_last_sent": "",
                "merge_field_count": self.merge_fields.len(),
                "avg_sub_rate": 0,
                "avg_unsub_rate": 0,
                "target_sub_rate": 0,
                "open_rate": 0,
                "click_rate": 0,
                "last_sub_date": opt_ts(self.last_sub),
                "last_unsub_date": opt_ts(self.last_unsub),
            },
        });
        if let (Value::Object(base), Value::Object(extra)) = (&mut v, extra) {
            base.extend(extra);
            for (key, default) in [
                ("use_archive_bar", Value::Bool(false)),
                ("notify_on_subscribe", Value::String(String::new())),
                ("notify_on_unsubscribe", Value::String(String::new())),
                ("double_optin", Value::Bool(false)),
                ("marketing_permissions", Value::Bool(false)),
            ] {
                base.entry(key).or_insert(default);
            }
        }
        v
    }
}

/// A seeded campaign (crmsync only reads them).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Campaign {
    #[serde(default)]
    pub id: String,
    #[serde(default = "default_campaign_type", rename = "type")]
    pub kind: String,
    #[serde(default = "default_campaign_status")]
    pub status: String,
    #[serde(default)]
    pub list_id: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub subject_line: String,
    #[serde(default)]
    pub from_name: String,
    #[serde(default)]
    pub reply_to: String,
    #[serde(default)]
    pub create_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub send_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub emails_sent: u64,
    #[serde(skip)]
    pub web_id: u64,
}

fn default_campaign_type() -> String {
    "regular".into()
}
fn default_campaign_status() -> String {
    "sent".into()
}

impl Campaign {
    pub fn to_json(&self, list_name: Option<&str>) -> Value {
        json!({
            "id": self.id,
            "web_id": self.web_id,
            "type": self.kind,
            "create_time": opt_ts(self.create_time),
            "archive_url": format!("http://eepurl.com/{}", self.id),
            "long_archive_url": format!("https://us6.campaign-archive.com/?u=sandbox&id={}", self.id),
            "status": self.status,
            "emails_sent": self.emails_sent,
            "send_time": opt_ts(self.send_time),
            "content_type": "template",
            "needs_block_refresh": false,
            "resendable": false,
            "recipients": {
                "list_id": self.list_id,
                "list_is_active": list_name.is_some(),
                "list_name": list_name.unwrap_or_default(),
                "segment_text": "",
                "recipient_count": self.emails_sent,
            },
            "settings": {
                "subject_line": self.subject_line,
                "preview_text": "",
                "title": self.title,
                "from_name": self.from_name,
                "reply_to": self.reply_to,
                "use_conversation": false,
                "to_name": "",
                "folder_id": "",
                "authenticate": true,
                "auto_footer": false,
                "inline_css": false,
                "auto_tweet": false,
                "fb_comments": false,
                "timewarp": false,
                "template_id": 0,
                "drag_and_drop": true,
            },
            "tracking": {"opens": true, "html_clicks": true, "text_clicks": false},
        })
    }
}

/// A batch's lifecycle, as `GET /batches/{id}` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchStatus {
    Pending,
    Started,
    /// Operations are being applied (by the poll that finishes the batch).
    Finalizing,
    Finished,
}

impl BatchStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BatchStatus::Pending => "pending",
            BatchStatus::Started => "started",
            BatchStatus::Finalizing => "finalizing",
            BatchStatus::Finished => "finished",
        }
    }
}

/// One operation of a `POST /batches` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Operation {
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub params: Option<Map<String, Value>>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub operation_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Batch {
    pub id: String,
    pub status: BatchStatus,
    pub operations: Vec<Operation>,
    pub role: Role,
    pub polls: u32,
    pub submitted_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub finished_operations: usize,
    pub errored_operations: usize,
    /// `[{status_code, operation_id, response}]` once finished.
    pub results: Option<Vec<Value>>,
    /// Where the results are served (set when finished).
    pub response_body_url: String,
}

impl Batch {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "status": self.status.as_str(),
            "total_operations": self.operations.len(),
            "finished_operations": self.finished_operations,
            "errored_operations": self.errored_operations,
            "submitted_at": ts(self.submitted_at),
            "completed_at": opt_ts(self.completed_at),
            "response_body_url": self.response_body_url,
        })
    }
}

/// The account behind the API key, as `GET /` reports it (seedable).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    #[serde(default = "default_account_id")]
    pub account_id: String,
    #[serde(default = "default_account_name")]
    pub account_name: String,
    #[serde(default = "default_email")]
    pub email: String,
    #[serde(default = "default_first_name")]
    pub first_name: String,
    #[serde(default = "default_last_name")]
    pub last_name: String,
    #[serde(default = "default_role")]
    pub role: Role,
    #[serde(default = "default_plan")]
    pub pricing_plan_type: String,
    /// Premium accounts get 80 audience fields instead of 30.
    #[serde(default)]
    pub premium: bool,
    /// Overrides the merge-field cap the plan implies.
    #[serde(default)]
    pub merge_field_limit: Option<usize>,
    #[serde(default = "default_max_lists")]
    pub max_lists: usize,
    #[serde(default = "default_timezone")]
    pub account_timezone: String,
}

fn default_account_id() -> String {
    "8d3a3db4d97663a9074efcc16".into()
}
fn default_account_name() -> String {
    "crmsync sandbox".into()
}
fn default_email() -> String {
    "owner@sandbox.example".into()
}
fn default_first_name() -> String {
    "Sandbox".into()
}
fn default_last_name() -> String {
    "Owner".into()
}
fn default_role() -> Role {
    Role::Owner
}
fn default_plan() -> String {
    "monthly".into()
}
fn default_max_lists() -> usize {
    100
}
fn default_timezone() -> String {
    "UTC".into()
}

impl Default for Account {
    fn default() -> Self {
        serde_json::from_value(json!({})).unwrap_or_else(|_| unreachable!("every field has a default"))
    }
}

impl Account {
    pub fn merge_field_limit(&self) -> usize {
        self.merge_field_limit.unwrap_or(if self.premium { 80 } else { 30 })
    }
}

/// Everything the server holds, behind one lock.
#[derive(Debug)]
pub struct Store {
    pub account: Account,
    /// Keys and OAuth tokens beyond the main API key, with their users' roles.
    pub extra_keys: HashMap<String, Role>,
    /// Lists in creation order (ids are random, so a BTreeMap would shuffle them).
    pub lists: HashMap<String, List>,
    pub list_order: Vec<String>,
    pub campaigns: BTreeMap<String, Campaign>,
    pub batches: HashMap<String, Batch>,
    pub batch_order: Vec<String>,
    /// How many `GET /batches/{id}` polls finish a batch (0: done at submit).
    pub batch_polls_to_finish: u32,
    pub ids: Ids,
}

/// The global change sequence and id counters.
#[derive(Debug)]
pub struct Ids {
    pub seq: u64,
    pub web: u64,
    pub tags: u64,
}

impl Ids {
    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    pub fn next_web_id(&mut self) -> u64 {
        self.web += 1;
        self.web
    }
}

impl Default for Store {
    fn default() -> Self {
        Store {
            account: Account::default(),
            extra_keys: HashMap::new(),
            lists: HashMap::new(),
            list_order: Vec::new(),
            campaigns: BTreeMap::new(),
            batches: HashMap::new(),
            batch_order: Vec::new(),
            batch_polls_to_finish: 2,
            ids: Ids { seq: 0, web: 100_000, tags: 0 },
        }
    }
}

impl Store {
    pub fn campaign_count(&self, list_id: &str) -> usize {
        self.campaigns.values().filter(|c| c.list_id == list_id).count()
    }

    pub fn list_json(&self, list: &List) -> Value {
        list.to_json(self.campaign_count(&list.id))
    }

    pub fn subscribed_total(&self) -> usize {
        self.lists.values().map(|l| l.count(Status::Subscribed)).sum()
    }
}
