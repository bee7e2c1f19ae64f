//! The record store: one table per sObject type with its indexes (by id, by
//! `SystemModstamp`, by lower-cased value of email / external-id / unique
//! fields), the delete log, input conversion and validation the way Salesforce
//! validates, the write operations (create, update, upsert, delete, lead
//! conversion, merge) and an undo log for `allOrNone` rollbacks.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};

use super::error::{ItemError, SfError};
use super::model::{J, Record, SfId, Val, parse_datetime};
use super::schema::{FieldDef, FieldType, ObjectDef, Source, USER_ID, standard_objects};

/// Field changes of one write: `None` clears the field.
pub type Changes = Vec<(u16, Option<Val>)>;

/// How a write is made.
#[derive(Debug, Clone, Copy)]
pub struct WriteCtx {
    pub now: DateTime<Utc>,
    /// Seeds may set read-only and system fields (Id, CreatedDate, IsDeleted...).
    pub admin: bool,
    /// `Sforce-Duplicate-Rule-Header: allowSave=true`.
    pub allow_duplicates: bool,
}

#[derive(Debug, Default)]
pub struct Table {
    pub records: BTreeMap<SfId, Record>,
    /// `(SystemModstamp, Id)` of every record, deleted ones included.
    pub by_modstamp: BTreeSet<(DateTime<Utc>, SfId)>,
    /// Field → lower-cased value → ids of live (not deleted) records.
    pub indexes: HashMap<u16, HashMap<Box<str>, Vec<SfId>>>,
    /// `(deleted at, Id)` of records in the recycle bin.
    pub deleted_log: BTreeSet<(DateTime<Utc>, SfId)>,
    /// `(deleted at, Id)` of records removed for good (hard delete).
    pub purged_log: BTreeSet<(DateTime<Utc>, SfId)>,
}

struct Undo {
    obj: usize,
    id: SfId,
    prev: Option<Record>,
}

/// A point to roll back to (see [`Store::savepoint`]).
#[derive(Debug, Clone, Copy)]
pub struct Savepoint(usize);

/// Which records an upsert matched.
pub enum Match {
    None,
    One(SfId),
    Many(Vec<SfId>),
}

pub struct Store {
    pub schema: Vec<ObjectDef>,
    pub tables: Vec<Table>,
    seq: u64,
    /// Objects whose duplicate rule (same email) blocks saves.
    pub duplicate_rules: HashSet<usize>,
    tx_depth: usize,
    undo: Vec<Undo>,
}

impl Default for Store {
    fn default() -> Self {
        let schema = standard_objects();
        let tables = schema.iter().map(|_| Table::default()).collect();
        let mut store =
            Store { schema, tables, seq: 0, duplicate_rules: HashSet::new(), tx_depth: 0, undo: Vec::new() };
        for obj in 0..store.schema.len() {
            store.rebuild_indexes(obj);
        }
        store
    }
}

fn lower(v: &Val) -> Option<Box<str>> {
    v.as_str().map(|s| s.to_lowercase().into_boxed_str())
}

impl Store {
    /// Object index by name, case-insensitively.
    pub fn object(&self, name: &str) -> Option<usize> {
        self.schema.iter().position(|o| o.name.eq_ignore_ascii_case(name))
    }

    pub fn object_of_id(&self, id: &SfId) -> Option<usize> {
        self.schema.iter().position(|o| o.key_prefix == id.prefix())
    }

    pub fn record(&self, obj: usize, id: &SfId) -> Option<&Record> {
        self.tables[obj].records.get(id)
    }

    /// Adds or replaces a custom field and re-indexes the object.
    pub fn add_field(&mut self, obj: usize, field: FieldDef) {
        self.schema[obj].add_field(field);
        self.rebuild_indexes(obj);
    }

    fn rebuild_indexes(&mut self, obj: usize) {
        let indexed: Vec<u16> = (0..self.schema[obj].fields.len() as u16)
            .filter(|f| self.schema[obj].def(*f).indexed())
            .collect();
        let table = &mut self.tables[obj];
        table.indexes = indexed.iter().map(|f| (*f, HashMap::new())).collect();
        for rec in table.records.values().filter(|r| r.deleted.is_none()) {
            for f in &indexed {
                if let Some(key) = rec.get(*f).and_then(lower) {
                    table.indexes.entry(*f).or_default().entry(key).or_default().push(rec.id);
                }
            }
        }
    }

    /// Empties every table but keeps the schema and settings.
    pub fn clear(&mut self) {
        *self = Store::default();
    }

    pub fn next_id(&mut self, prefix: &str) -> SfId {
        self.seq += 1;
        SfId::mint(prefix, self.seq)
    }

    // ---- raw mutation: indexes, logs and undo ----

    fn unindex(table: &mut Table, rec: &Record) {
        table.by_modstamp.remove(&(rec.modstamp, rec.id));
        if let Some(t) = rec.deleted {
            table.deleted_log.remove(&(t, rec.id));
            return;
        }
        for (f, index) in table.indexes.iter_mut() {
            if let Some(key) = rec.get(*f).and_then(lower)
                && let Some(ids) = index.get_mut(&key)
            {
                ids.retain(|i| *i != rec.id);
                if ids.is_empty() {
                    index.remove(&key);
                }
            }
        }
    }

    fn index(table: &mut Table, rec: &Record) {
        table.by_modstamp.insert((rec.modstamp, rec.id));
        if let Some(t) = rec.deleted {
            table.deleted_log.insert((t, rec.id));
            return;
        }
        for (f, index) in table.indexes.iter_mut() {
            if let Some(key) = rec.get(*f).and_then(lower) {
                index.entry(key).or_default().push(rec.id);
            }
        }
    }

    fn put_raw(&mut self, obj: usize, rec: Record) -> Option<Record> {
        let table = &mut self.tables[obj];
        let prev = table.records.remove(&rec.id);
        if let Some(p) = &prev {
            Self::unindex(table, p);
        }
        Self::index(table, &rec);
        table.records.insert(rec.id, rec);
        prev
    }

    fn remove_raw(&mut self, obj: usize, id: &SfId) -> Option<Record> {
        let table = &mut self.tables[obj];
        let prev = table.records.remove(id)?;
        Self::unindex(table, &prev);
        Some(prev)
    }

    /// Stores a record (new or replacing), remembering the old one for rollback.
    pub fn put(&mut self, obj: usize, rec: Record) {
        let id = rec.id;
        let prev = self.put_raw(obj, rec);
        if self.tx_depth > 0 {
            self.undo.push(Undo { obj, id, prev });
        }
    }

    /// Starts a (nested) transaction.
    pub fn savepoint(&mut self) -> Savepoint {
        self.tx_depth += 1;
        Savepoint(self.undo.len())
    }

    /// Ends a transaction, undoing its writes when `rollback` is set.
    pub fn release(&mut self, sp: Savepoint, rollback: bool) {
        if rollback {
            while self.undo.len() > sp.0 {
                let Some(u) = self.undo.pop() else { break };
                match u.prev {
                    Some(prev) => {
                        self.put_raw(u.obj, prev);
                    }
                    None => {
                        self.remove_raw(u.obj, &u.id);
                    }
                }
            }
        }
        self.tx_depth = self.tx_depth.saturating_sub(1);
        if self.tx_depth == 0 {
            self.undo.clear();
        }
    }

    // ---- reading ----

    /// The value of field `f` of `rec`, computed fields included; `None` is null.
    pub fn value<'a>(&self, obj: usize, rec: &'a Record, f: u16) -> Option<Cow<'a, Val>> {
        let def = self.schema[obj].def(f);
        match def.source {
            Source::Stored => match rec.get(f) {
                Some(v) => Some(Cow::Borrowed(v)),
                None if def.ftype == FieldType::Boolean => Some(Cow::Owned(Val::Bool(false))),
                None => None,
            },
            Source::Id => Some(Cow::Owned(Val::str(rec.id.as_str()))),
            Source::IsDeleted => Some(Cow::Owned(Val::Bool(rec.deleted.is_some()))),
            Source::CreatedDate => Some(Cow::Owned(Val::DateTime(rec.created))),
            Source::LastModifiedDate => Some(Cow::Owned(Val::DateTime(rec.modified))),
            Source::SystemModstamp => Some(Cow::Owned(Val::DateTime(rec.modstamp))),
            Source::User => Some(Cow::Owned(Val::str(USER_ID))),
            Source::CompoundName => {
                let o = &self.schema[obj];
                let part = |n: &str| o.field(n).and_then(|i| rec.get(i)).and_then(Val::as_str).unwrap_or("");
                let name = format!("{} {}", part("FirstName"), part("LastName")).trim().to_string();
                (!name.is_empty()).then(|| Cow::Owned(Val::str(name)))
            }
        }
    }

    pub fn value_json(&self, obj: usize, rec: &Record, f: u16) -> Value {
        let integer = self.schema[obj].def(f).ftype == FieldType::Int;
        self.value(obj, rec, f).map_or(Value::Null, |v| v.to_json(integer))
    }

    pub fn attributes(&self, obj: usize, id: &SfId, version: &str) -> J {
        let name = self.schema[obj].name;
        J::obj()
            .put("type", Value::from(name))
            .put("url", Value::from(format!("/services/data/{version}/sobjects/{name}/{id}")))
            .done()
    }

    /// A record as `GET /sobjects/{type}/{id}` returns it (all fields or `fields`).
    pub fn record_json(&self, obj: usize, rec: &Record, version: &str, fields: Option<&[u16]>) -> J {
        let mut out = J::obj().put("attributes", self.attributes(obj, &rec.id, version));
        let all: Vec<u16>;
        let fields = match fields {
            Some(f) => f,
            None => {
                all = (0..self.schema[obj].fields.len() as u16).collect();
                &all
            }
        };
        for f in fields {
            out.push(self.schema[obj].def(*f).name.clone(), self.value_json(obj, rec, *f));
        }
        out.done()
    }

    /// Live records whose `field` equals `value` (case-insensitively for text).
    pub fn find_by(&self, obj: usize, field: u16, value: &str) -> Vec<SfId> {
        let def = self.schema[obj].def(field);
        let table = &self.tables[obj];
        if def.source == Source::Id {
            return SfId::parse(value)
                .filter(|id| table.records.get(id).is_some_and(|r| r.deleted.is_none()))
                .into_iter()
                .collect();
        }
        if let Some(index) = table.indexes.get(&field) {
            return index.get(value.to_lowercase().as_str()).cloned().unwrap_or_default();
        }
        let wanted = value.to_lowercase();
        table
            .records
            .values()
            .filter(|r| r.deleted.is_none())
            .filter(|r| r.get(field).and_then(Val::as_str).is_some_and(|s| s.to_lowercase() == wanted))
            .map(|r| r.id)
            .collect()
    }

    // ---- input conversion ----

    /// Converts a JSON body into changes. Unknown fields and values of the
    /// wrong JSON type fail the whole request, as Salesforce's parser does.
    /// `attributes` is skipped; so are `skip` fields (e.g. `Id` on updates).
    pub fn changes_from_json(
        &self,
        obj: usize,
        body: &Map<String, Value>,
        skip: &[&str],
    ) -> Result<Changes, SfError> {
        let def = &self.schema[obj];
        let mut out = Vec::with_capacity(body.len());
        for (key, value) in body {
            if key == "attributes" || skip.iter().any(|s| s.eq_ignore_ascii_case(key)) {
                continue;
            }
            let f = def.field(key).ok_or_else(|| SfError::unknown_field(key, def.name))?;
            out.push((f, json_to_val(def.def(f), value)?));
        }
        Ok(out)
    }

    // ---- validation ----

    /// Checks and normalizes one value for field `f` of `obj`.
    fn check(&self, obj: usize, f: u16, v: Val) -> Result<Val, ItemError> {
        let def = self.schema[obj].def(f);
        let name = def.name.as_str();
        let label = def.label.as_str();
        match (def.ftype, v) {
            (FieldType::Reference, Val::Str(s)) => {
                let bad_type = || {
                    ItemError::new(
                        "MALFORMED_ID",
                        format!("{label}: id value of incorrect type: {s}"),
                        &[name],
                    )
                };
                let id = SfId::parse(&s).ok_or_else(bad_type)?;
                if def.reference_to.iter().any(|t| t == "User") {
                    return if id.prefix() == "005" {
                        Ok(Val::str(id.as_str()))
                    } else {
                        Err(ItemError::new(
                            "FIELD_INTEGRITY_EXCEPTION",
                            format!("{label}: id value of incorrect type: {s}"),
                            &[name],
                        ))
                    };
                }
                let target = self
                    .object_of_id(&id)
                    .filter(|t| def.reference_to.iter().any(|r| r == self.schema[*t].name));
                let Some(target) = target else {
                    return Err(ItemError::new(
                        "FIELD_INTEGRITY_EXCEPTION",
                        format!("{label}: id value of incorrect type: {s}"),
                        &[name],
                    ));
                };
                match self.tables[target].records.get(&id) {
                    Some(r) if r.deleted.is_none() => Ok(Val::str(id.as_str())),
                    Some(_) => Err(ItemError::new("ENTITY_IS_DELETED", "entity is deleted", &[name])),
                    None => Err(ItemError::new(
                        "INVALID_CROSS_REFERENCE_KEY",
                        "invalid cross reference id",
                        &[name],
                    )),
                }
            }
            (t, Val::Str(s)) if t.is_text() => {
                let mut s = s.to_string();
                if t == FieldType::Email {
                    s = s.trim().to_lowercase();
                    if !valid_email(&s) {
                        return Err(ItemError::new(
                            "INVALID_EMAIL_ADDRESS",
                            format!("{label}: invalid email address: {s}"),
                            &[name],
                        ));
                    }
                }
                if t == FieldType::Multipicklist {
                    let parts: Vec<&str> = s.split(';').map(str::trim).filter(|p| !p.is_empty()).collect();
                    if def.restricted
                        && let Some(bad) = parts.iter().find(|p| !def.picklist.iter().any(|v| v == *p))
                    {
                        return Err(ItemError::new(
                            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                            format!("{label}: bad value for restricted picklist field: {bad}"),
                            &[name],
                        ));
                    }
                    s = parts.join(";");
                }
                if t == FieldType::Picklist && def.restricted && !def.picklist.contains(&s) {
                    return Err(ItemError::new(
                        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                        format!("{label}: bad value for restricted picklist field: {s}"),
                        &[name],
                    ));
                }
                if def.length > 0 && s.chars().count() > def.length as usize {
                    return Err(ItemError::new(
                        "STRING_TOO_LONG",
                        format!("{label}: data value too large: {s} (max length={})", def.length),
                        &[name],
                    ));
                }
                Ok(Val::str(s))
            }
            (t, Val::Num(n)) if t.is_number() => {
                let factor = 10f64.powi(def.scale as i32);
                let n = (n * factor).round() / factor;
                if def.precision > 0 && n.abs() >= 10f64.powi(def.precision.saturating_sub(def.scale) as i32)
                {
                    return Err(ItemError::new(
                        "NUMBER_OUTSIDE_VALID_RANGE",
                        format!("{label}: value outside of valid range on numeric field: {n}"),
                        &[name],
                    ));
                }
                Ok(Val::Num(n))
            }
            (_, v) => Ok(v),
        }
    }

    fn field_names(&self, obj: usize, fields: &[u16]) -> Vec<String> {
        fields.iter().map(|f| self.schema[obj].def(*f).name.clone()).collect()
    }

    /// Applies `changes` to `rec`, collecting every validation error.
    fn apply(
        &self,
        obj: usize,
        rec: &mut Record,
        changes: Changes,
        w: &WriteCtx,
        errors: &mut Vec<ItemError>,
    ) {
        for (f, v) in changes {
            let def = self.schema[obj].def(f);
            match (def.source, v) {
                (Source::Stored, None) => rec.set(f, None),
                (Source::Stored, Some(v)) => match self.check(obj, f, v) {
                    Ok(v) => rec.set(f, Some(v)),
                    Err(e) => errors.push(e),
                },
                // System fields: only seeds get here (see the createable check).
                (Source::Id, Some(Val::Str(s))) => match SfId::parse(&s) {
                    Some(id) if id.prefix() == self.schema[obj].key_prefix => rec.id = id,
                    _ => errors.push(ItemError::new("MALFORMED_ID", format!("bad id {s}"), &["Id"])),
                },
                (Source::CreatedDate, Some(Val::DateTime(t))) => rec.created = t,
                (Source::LastModifiedDate, Some(Val::DateTime(t))) => rec.modified = t,
                (Source::SystemModstamp, Some(Val::DateTime(t))) => rec.modstamp = t,
                (Source::IsDeleted, Some(Val::Bool(b))) => rec.deleted = b.then_some(w.now),
                _ => {}
            }
        }
    }

    /// Required fields, unique fields and the duplicate rule.
    fn check_record(&self, obj: usize, rec: &Record, w: &WriteCtx, errors: &mut Vec<ItemError>) {
        let def = &self.schema[obj];
        let missing: Vec<u16> = (0..def.fields.len() as u16)
            .filter(|f| {
                let d = def.def(*f);
                d.source == Source::Stored
                    && !d.nillable
                    && d.ftype != FieldType::Boolean
                    && rec.get(*f).is_none()
            })
            .collect();
        if !missing.is_empty() {
            let names = self.field_names(obj, &missing);
            errors.push(ItemError {
                status_code: "REQUIRED_FIELD_MISSING".into(),
                message: format!("Required fields are missing: [{}]", names.join(", ")),
                fields: names,
            });
        }
        let table = &self.tables[obj];
        for (f, index) in &table.indexes {
            let d = def.def(*f);
            let Some(key) = rec.get(*f).and_then(lower) else { continue };
            let others: Vec<&SfId> =
                index.get(&key).map(|ids| ids.iter().filter(|i| **i != rec.id).collect()).unwrap_or_default();
            if let Some(other) = others.first() {
                if d.unique {
                    errors.push(ItemError::new(
                        "DUPLICATE_VALUE",
                        format!(
                            "duplicate value found: {} duplicates value on record with id: {other}",
                            d.name
                        ),
                        &[],
                    ));
                } else if d.ftype == FieldType::Email
                    && self.duplicate_rules.contains(&obj)
                    && !w.allow_duplicates
                {
                    errors.push(ItemError::new("DUPLICATES_DETECTED", "Use one of these records?", &[]));
                }
            }
        }
    }

    fn not_writable(&self, obj: usize, changes: &Changes, create: bool) -> Option<ItemError> {
        let def = &self.schema[obj];
        let bad: Vec<u16> = changes
            .iter()
            .map(|(f, _)| *f)
            .filter(|f| if create { !def.def(*f).createable } else { !def.def(*f).updateable })
            .collect();
        if bad.is_empty() {
            return None;
        }
        if create && bad.iter().any(|f| def.def(*f).source == Source::Id) {
            return Some(ItemError::new(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                "cannot specify Id in an insert call",
                &["Id"],
            ));
        }
        let names = self.field_names(obj, &bad);
        Some(ItemError {
            status_code: "INVALID_FIELD_FOR_INSERT_UPDATE".into(),
            message: format!(
                "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                names.join(", ")
            ),
            fields: names,
        })
    }

    // ---- writes ----

    pub fn create(&mut self, obj: usize, changes: Changes, w: &WriteCtx) -> Result<SfId, Vec<ItemError>> {
        if !w.admin
            && let Some(e) = self.not_writable(obj, &changes, true)
        {
            return Err(vec![e]);
        }
        let mut rec = Record {
            id: SfId::MIN,
            created: w.now,
            modified: w.now,
            modstamp: w.now,
            deleted: None,
            values: Vec::new(),
        };
        for (i, f) in self.schema[obj].fields.iter().enumerate() {
            if let Some(d) = &f.default {
                rec.set(i as u16, Some(d.clone()));
            }
        }
        if let Some(owner) = self.schema[obj].field("OwnerId") {
            rec.set(owner, Some(Val::str(USER_ID)));
        }
        let mut errors = Vec::new();
        self.apply(obj, &mut rec, changes, w, &mut errors);
        if rec.id == SfId::MIN {
            rec.id = self.next_id(self.schema[obj].key_prefix);
            while self.tables[obj].records.contains_key(&rec.id) {
                rec.id = self.next_id(self.schema[obj].key_prefix);
            }
        } else if self.tables[obj].records.contains_key(&rec.id) {
            errors.push(ItemError::new(
                "DUPLICATE_VALUE",
                format!("duplicate value found: Id duplicates value on record with id: {}", rec.id),
                &["Id"],
            ));
        }
        if let Some(t) = rec.deleted {
            rec.deleted = Some(t.max(rec.modstamp));
        }
        self.check_record(obj, &rec, w, &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        let id = rec.id;
        self.put(obj, rec);
        Ok(id)
    }

    /// The live record `id` of `obj`, or the error collections report.
    fn live(&self, obj: usize, id: &SfId) -> Result<&Record, ItemError> {
        match self.tables[obj].records.get(id) {
            Some(r) if r.deleted.is_none() => Ok(r),
            Some(_) => Err(ItemError::new("ENTITY_IS_DELETED", "entity is deleted", &[])),
            None => Err(ItemError::new("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", &[])),
        }
    }

    pub fn update(
        &mut self,
        obj: usize,
        id: SfId,
        changes: Changes,
        w: &WriteCtx,
    ) -> Result<(), Vec<ItemError>> {
        let mut rec = self.live(obj, &id).map_err(|e| vec![e])?.clone();
        if !w.admin {
            if let Some(e) = self.not_writable(obj, &changes, false) {
                return Err(vec![e]);
            }
            if let Some(conv) = self.schema[obj].field("IsConverted")
                && rec.get(conv) == Some(&Val::Bool(true))
            {
                return Err(vec![ItemError::new(
                    "CANNOT_UPDATE_CONVERTED_LEAD",
                    "cannot reference converted lead",
                    &[],
                )]);
            }
        }
        rec.modified = w.now;
        rec.modstamp = w.now;
        let mut errors = Vec::new();
        self.apply(obj, &mut rec, changes, w, &mut errors);
        rec.id = id;
        self.check_record(obj, &rec, w, &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        self.put(obj, rec);
        Ok(())
    }

    /// Which live records an external-id (or `Id`) upsert key matches.
    pub fn match_key(&self, obj: usize, field: u16, value: &str) -> Match {
        let ids = self.find_by(obj, field, value);
        match ids.len() {
            0 => Match::None,
            1 => Match::One(ids[0]),
            _ => Match::Many(ids),
        }
    }

    /// Upsert by `field` = `value`: `Ok((id, created))`.
    pub fn upsert(
        &mut self,
        obj: usize,
        field: u16,
        value: &str,
        mut changes: Changes,
        w: &WriteCtx,
    ) -> Result<(SfId, bool), Vec<ItemError>> {
        let def = self.schema[obj].def(field);
        let fname = def.name.clone();
        match self.match_key(obj, field, value) {
            Match::Many(ids) => Err(vec![ItemError::new(
                "DUPLICATE_EXTERNAL_ID",
                format!(
                    "{fname}: more than one record found for external id field: [{}]",
                    ids.iter().map(SfId::to_string).collect::<Vec<_>>().join(", ")
                ),
                &[fname.as_str()],
            )]),
            Match::One(id) => {
                changes.retain(|(f, _)| *f != field);
                self.update(obj, id, changes, w).map(|()| (id, false))
            }
            Match::None if def.source == Source::Id => {
                Err(vec![ItemError::new("NOT_FOUND", "The requested resource does not exist", &["Id"])])
            }
            Match::None => {
                changes.retain(|(f, _)| *f != field);
                changes.push((field, Some(Val::str(value))));
                self.create(obj, changes, w).map(|id| (id, true))
            }
        }
    }

    /// Moves a record to the recycle bin.
    pub fn delete(&mut self, obj: usize, id: SfId, now: DateTime<Utc>) -> Result<(), ItemError> {
        let mut rec = self.live(obj, &id)?.clone();
        self.deletable(obj, &id)?;
        rec.deleted = Some(now);
        rec.modstamp = now;
        self.put(obj, rec);
        Ok(())
    }

    /// Salesforce refuses to delete a Contact that a Case refers to
    /// (`DELETE_FAILED`, naming the cases).
    fn deletable(&self, obj: usize, id: &SfId) -> Result<(), ItemError> {
        let (Some(contact), Some(case)) = (self.object("Contact"), self.object("Case")) else {
            return Ok(());
        };
        let Some(field) = self.schema[case].field("ContactId") else { return Ok(()) };
        if obj != contact {
            return Ok(());
        }
        let cases = self.find_by(case, field, &id.to_string());
        if cases.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = cases.iter().map(ToString::to_string).collect();
        Err(ItemError::new(
            "DELETE_FAILED",
            format!(
                "Your attempt to delete {id} could not be completed because it is associated with the following cases.: {}",
                list.join(", ")
            ),
            &[],
        ))
    }

    /// Removes a record for good (Bulk `hardDelete`); it stays in the delete log.
    pub fn hard_delete(&mut self, obj: usize, id: SfId, now: DateTime<Utc>) -> Result<(), ItemError> {
        self.live(obj, &id)?;
        self.deletable(obj, &id)?;
        self.remove_raw(obj, &id);
        self.tables[obj].purged_log.insert((now, id));
        Ok(())
    }

    /// Converts a lead: creates (or reuses) an Account and a Contact, marks the
    /// lead converted. Returns `(account, contact)`.
    pub fn convert_lead(
        &mut self,
        lead: SfId,
        account: Option<SfId>,
        contact: Option<SfId>,
        w: &WriteCtx,
    ) -> Result<(SfId, SfId), ItemError> {
        let lead_obj = self.object("Lead").ok_or_else(|| ItemError::new("INVALID_TYPE", "no Lead", &[]))?;
        let contact_obj =
            self.object("Contact").ok_or_else(|| ItemError::new("INVALID_TYPE", "no Contact", &[]))?;
        let account_obj =
            self.object("Account").ok_or_else(|| ItemError::new("INVALID_TYPE", "no Account", &[]))?;
        let rec = self.live(lead_obj, &lead)?.clone();
        let lead_def = self.schema[lead_obj].clone();
        let get = |name: &str| lead_def.field(name).and_then(|f| rec.get(f)).cloned();
        if get("IsConverted") == Some(Val::Bool(true)) {
            return Err(ItemError::new(
                "CANNOT_UPDATE_CONVERTED_LEAD",
                "cannot reference converted lead",
                &[],
            ));
        }
        let sp = self.savepoint();
        let result = (|| {
            let account = match account {
                Some(a) => {
                    self.live(account_obj, &a)?;
                    a
                }
                None => {
                    let name = get("Company").unwrap_or_else(|| Val::str("Unknown"));
                    let f = self.schema[account_obj].field("Name").unwrap_or(0);
                    self.create(account_obj, vec![(f, Some(name))], w).map_err(first)?
                }
            };
            // Standard mapping plus every custom field both objects share.
            let mut changes: Changes = Vec::new();
            let cdef = self.schema[contact_obj].clone();
            let pairs = [
                ("FirstName", "FirstName"),
                ("LastName", "LastName"),
                ("Salutation", "Salutation"),
                ("Title", "Title"),
                ("Email", "Email"),
                ("Phone", "Phone"),
                ("MobilePhone", "MobilePhone"),
                ("LeadSource", "LeadSource"),
                ("HasOptedOutOfEmail", "HasOptedOutOfEmail"),
                ("Description", "Description"),
                ("Street", "MailingStreet"),
                ("City", "MailingCity"),
                ("State", "MailingState"),
                ("PostalCode", "MailingPostalCode"),
                ("Country", "MailingCountry"),
            ];
            for (from, to) in pairs {
                if let (Some(v), Some(f)) = (get(from), cdef.field(to)) {
                    changes.push((f, Some(v)));
                }
            }
            for lf in lead_def.fields.iter().filter(|f| f.custom) {
                if let (Some(v), Some(f)) = (get(&lf.name), cdef.field(&lf.name)) {
                    changes.push((f, Some(v)));
                }
            }
            let admin = WriteCtx { admin: true, allow_duplicates: true, ..*w };
            let contact = match contact {
                Some(c) => {
                    self.live(contact_obj, &c)?;
                    c
                }
                None => {
                    if let Some(f) = cdef.field("AccountId") {
                        changes.push((f, Some(Val::str(account.as_str()))));
                    }
                    self.create(contact_obj, changes, &admin).map_err(first)?
                }
            };
            let ldef = &self.schema[lead_obj];
            let mut lead_changes: Changes = vec![];
            for (name, v) in [
                ("IsConverted", Val::Bool(true)),
                ("ConvertedDate", Val::Date(w.now.date_naive())),
                ("ConvertedAccountId", Val::str(account.as_str())),
                ("ConvertedContactId", Val::str(contact.as_str())),
                ("Status", Val::str("Closed - Converted")),
            ] {
                if let Some(f) = ldef.field(name) {
                    lead_changes.push((f, Some(v)));
                }
            }
            self.update(lead_obj, lead, lead_changes, &admin).map_err(first)?;
            Ok((account, contact))
        })();
        self.release(sp, result.is_err());
        result
    }

    /// Merges `losers` into `master`: the losers go to the recycle bin with
    /// `MasterRecordId` set; Contacts of merged Accounts move to the master.
    pub fn merge(
        &mut self,
        obj: usize,
        master: SfId,
        losers: &[SfId],
        w: &WriteCtx,
    ) -> Result<(), ItemError> {
        if self.schema[obj].name == "Task" {
            return Err(ItemError::new("INVALID_TYPE", "Task records cannot be merged", &[]));
        }
        if losers.is_empty() || losers.len() > 2 {
            return Err(ItemError::new(
                "INVALID_ARGUMENT",
                "A merge request needs 1 or 2 records to merge",
                &[],
            ));
        }
        self.live(obj, &master)?;
        for l in losers {
            self.live(obj, l)?;
            if *l == master {
                return Err(ItemError::new("INVALID_ID_FIELD", "Cannot merge a record with itself", &[]));
            }
        }
        let master_field = self.schema[obj].field("MasterRecordId");
        for l in losers {
            let mut rec = self.live(obj, l)?.clone();
            if let Some(f) = master_field {
                rec.set(f, Some(Val::str(master.as_str())));
            }
            rec.deleted = Some(w.now);
            rec.modstamp = w.now;
            rec.modified = w.now;
            self.put(obj, rec);
        }
        if self.schema[obj].name == "Account"
            && let Some(contact_obj) = self.object("Contact")
            && let Some(acc_field) = self.schema[contact_obj].field("AccountId")
        {
            let moved: Vec<SfId> = self.tables[contact_obj]
                .records
                .values()
                .filter(|r| r.deleted.is_none())
                .filter(|r| {
                    r.get(acc_field)
                        .and_then(Val::as_str)
                        .and_then(SfId::parse)
                        .is_some_and(|a| losers.contains(&a))
                })
                .map(|r| r.id)
                .collect();
            for id in moved {
                if let Some(mut rec) = self.tables[contact_obj].records.get(&id).cloned() {
                    rec.set(acc_field, Some(Val::str(master.as_str())));
                    rec.modstamp = w.now;
                    rec.modified = w.now;
                    self.put(contact_obj, rec);
                }
            }
        }
        let mut rec = self.live(obj, &master)?.clone();
        rec.modstamp = w.now;
        rec.modified = w.now;
        self.put(obj, rec);
        Ok(())
    }
}

fn first(mut errors: Vec<ItemError>) -> ItemError {
    if errors.is_empty() {
        ItemError::new("UNKNOWN_EXCEPTION", "unknown error", &[])
    } else {
        errors.swap_remove(0)
    }
}

/// Salesforce's email syntax check (close enough: local@domain.tld).
pub fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else { return false };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    local_ok && domain_ok
}

fn parser_error(def: &FieldDef, kind: &str, v: &Value) -> SfError {
    SfError::json_parser(format!(
        "Cannot deserialize instance of {} from {kind} value {} or request may be missing a required field at [line:1, column:1]",
        def.ftype.name(),
        match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    ))
}

/// A JSON body value for field `def`.
pub fn json_to_val(def: &FieldDef, v: &Value) -> Result<Option<Val>, SfError> {
    let t = def.ftype;
    Ok(match v {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::Array(_) => return Err(parser_error(def, "START_ARRAY", v)),
        Value::Object(_) => return Err(parser_error(def, "START_OBJECT", v)),
        Value::String(s) if t.is_text() => Some(Val::str(s.as_str())),
        Value::Number(n) if t.is_text() => Some(Val::str(n.to_string())),
        Value::Bool(b) if t.is_text() => Some(Val::str(b.to_string())),
        Value::Bool(b) if t == FieldType::Boolean => Some(Val::Bool(*b)),
        Value::String(s) if t == FieldType::Boolean => match s.to_ascii_lowercase().as_str() {
            "true" => Some(Val::Bool(true)),
            "false" => Some(Val::Bool(false)),
            _ => return Err(parser_error(def, "VALUE_STRING", v)),
        },
        Value::Number(n) if t.is_number() => Some(Val::Num(n.as_f64().unwrap_or(0.0))),
        Value::String(s) if t.is_number() => match s.trim().parse::<f64>() {
            Ok(n) if n.is_finite() => Some(Val::Num(n)),
            _ => return Err(parser_error(def, "VALUE_STRING", v)),
        },
        Value::String(s) if t == FieldType::Date => match parse_date(s) {
            Some(d) => Some(Val::Date(d)),
            None => return Err(parser_error(def, "VALUE_STRING", v)),
        },
        Value::String(s) if t == FieldType::Datetime => match parse_datetime(s) {
            Some(d) => Some(Val::DateTime(d)),
            None => return Err(parser_error(def, "VALUE_STRING", v)),
        },
        Value::Number(_) => return Err(parser_error(def, "VALUE_NUMBER_INT", v)),
        Value::Bool(_) => return Err(parser_error(def, "VALUE_TRUE", v)),
        Value::String(_) => return Err(parser_error(def, "VALUE_STRING", v)),
    })
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().or_else(|| parse_datetime(s).map(|t| t.date_naive()))
}

/// A CSV cell (Bulk API) for field `def`: empty keeps the field, `#N/A` clears it.
pub fn text_to_val(def: &FieldDef, s: &str) -> Result<Option<Val>, ItemError> {
    let bad = || {
        ItemError::new(
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
            format!("{}: value not of required type: {s}", def.label),
            &[def.name.as_str()],
        )
    };
    let t = def.ftype;
    Ok(Some(match t {
        _ if t.is_text() => Val::str(s),
        FieldType::Boolean => match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Val::Bool(true),
            "false" | "0" | "no" => Val::Bool(false),
            _ => return Err(bad()),
        },
        FieldType::Date => Val::Date(parse_date(s).ok_or_else(bad)?),
        FieldType::Datetime => Val::DateTime(parse_datetime(s).ok_or_else(bad)?),
        _ => Val::Num(s.trim().parse::<f64>().ok().filter(|n| n.is_finite()).ok_or_else(bad)?),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> WriteCtx {
        WriteCtx { now: Utc::now(), admin: false, allow_duplicates: false }
    }

    #[test]
    fn create_validates_like_salesforce() {
        let mut s = Store::default();
        let lead = s.object("lead").unwrap_or(0);
        let body = serde_json::json!({"FirstName": "Ada", "Email": "not-an-email"});
        let changes =
            s.changes_from_json(lead, body.as_object().expect("object"), &[]).expect("known fields");
        let errs = s.create(lead, changes, &ctx()).expect_err("invalid");
        let codes: Vec<&str> = errs.iter().map(|e| e.status_code.as_str()).collect();
        assert_eq!(codes, ["INVALID_EMAIL_ADDRESS", "REQUIRED_FIELD_MISSING"]);
        assert_eq!(errs[1].fields, ["LastName", "Company"]);
    }

    #[test]
    fn rollback_restores_indexes() {
        let mut s = Store::default();
        let contact = s.object("Contact").unwrap_or(0);
        let email = s.schema[contact].field("Email").unwrap_or(0);
        let last = s.schema[contact].field("LastName").unwrap_or(0);
        let sp = s.savepoint();
        let id = s
            .create(contact, vec![(last, Some(Val::str("X"))), (email, Some(Val::str("A@B.com")))], &ctx())
            .expect("created");
        assert_eq!(s.find_by(contact, email, "a@b.com"), vec![id]);
        s.release(sp, true);
        assert!(s.find_by(contact, email, "a@b.com").is_empty());
        assert!(s.tables[contact].by_modstamp.is_empty());
    }

    #[test]
    fn email_check() {
        assert!(valid_email("a.b+c@example.co.uk"));
        assert!(!valid_email("a@b"));
        assert!(!valid_email("a b@c.com"));
        assert!(!valid_email("@c.com"));
    }
}
