//! Object and field definitions: the standard Lead, Contact, Account and Task
//! fields, custom fields added by seed, and the describe JSON built from them.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{Value, json};

use super::model::Val;

/// The integration user every record is created by and owned by default.
pub const USER_ID: &str = "0055g00000SbxUsrAAA";
/// The sandbox org.
pub const ORG_ID: &str = "00D5g00000SbxOrgEAA";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Id,
    String,
    Email,
    Phone,
    Url,
    Textarea,
    Picklist,
    Multipicklist,
    Combobox,
    Reference,
    Boolean,
    Currency,
    Double,
    Percent,
    Int,
    Date,
    Datetime,
}

impl FieldType {
    /// The `type` describe reports.
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Id => "id",
            FieldType::String => "string",
            FieldType::Email => "email",
            FieldType::Phone => "phone",
            FieldType::Url => "url",
            FieldType::Textarea => "textarea",
            FieldType::Picklist => "picklist",
            FieldType::Multipicklist => "multipicklist",
            FieldType::Combobox => "combobox",
            FieldType::Reference => "reference",
            FieldType::Boolean => "boolean",
            FieldType::Currency => "currency",
            FieldType::Double => "double",
            FieldType::Percent => "percent",
            FieldType::Int => "int",
            FieldType::Date => "date",
            FieldType::Datetime => "datetime",
        }
    }

    fn soap_type(self) -> &'static str {
        match self {
            FieldType::Id | FieldType::Reference => "tns:ID",
            FieldType::Boolean => "xsd:boolean",
            FieldType::Currency | FieldType::Double | FieldType::Percent => "xsd:double",
            FieldType::Int => "xsd:int",
            FieldType::Date => "xsd:date",
            FieldType::Datetime => "xsd:dateTime",
            _ => "xsd:string",
        }
    }

    /// Text-like: compared case-insensitively, quoted in SOQL.
    pub fn is_text(self) -> bool {
        !matches!(
            self,
            FieldType::Boolean
                | FieldType::Currency
                | FieldType::Double
                | FieldType::Percent
                | FieldType::Int
                | FieldType::Date
                | FieldType::Datetime
        )
    }

    pub fn is_number(self) -> bool {
        matches!(self, FieldType::Currency | FieldType::Double | FieldType::Percent | FieldType::Int)
    }

    pub fn is_id(self) -> bool {
        matches!(self, FieldType::Id | FieldType::Reference)
    }

    fn parse(s: &str) -> Option<FieldType> {
        Some(match s.to_ascii_lowercase().as_str() {
            "string" | "text" => FieldType::String,
            "email" => FieldType::Email,
            "phone" => FieldType::Phone,
            "url" => FieldType::Url,
            "textarea" | "longtextarea" | "long_text_area" => FieldType::Textarea,
            "picklist" => FieldType::Picklist,
            "multipicklist" => FieldType::Multipicklist,
            "reference" | "lookup" => FieldType::Reference,
            "boolean" | "checkbox" => FieldType::Boolean,
            "currency" => FieldType::Currency,
            "double" | "number" => FieldType::Double,
            "percent" => FieldType::Percent,
            "int" | "integer" => FieldType::Int,
            "date" => FieldType::Date,
            "datetime" => FieldType::Datetime,
            _ => return None,
        })
    }
}

/// Where a field's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Kept in the record's value list.
    Stored,
    Id,
    IsDeleted,
    CreatedDate,
    LastModifiedDate,
    SystemModstamp,
    /// `FirstName LastName` (Lead and Contact `Name`).
    CompoundName,
    /// Always the integration user (`CreatedById`, `LastModifiedById`).
    User,
}

#[derive(Debug, Clone)]
pub struct FieldDef {
    pub name: String,
    pub label: String,
    pub ftype: FieldType,
    pub length: u32,
    pub precision: u32,
    pub scale: u32,
    pub nillable: bool,
    pub createable: bool,
    pub updateable: bool,
    pub external_id: bool,
    pub unique: bool,
    pub id_lookup: bool,
    pub picklist: Vec<String>,
    pub restricted: bool,
    pub default: Option<Val>,
    pub reference_to: Vec<String>,
    pub relationship_name: Option<String>,
    pub custom: bool,
    pub source: Source,
    /// A formula field: computed by Salesforce, never written.
    pub formula: Option<String>,
}

impl FieldDef {
    fn new(name: &str, label: &str, ftype: FieldType, length: u32) -> FieldDef {
        FieldDef {
            formula: None,
            name: name.into(),
            label: label.into(),
            ftype,
            length,
            precision: 0,
            scale: 0,
            nillable: true,
            createable: true,
            updateable: true,
            external_id: false,
            unique: false,
            id_lookup: false,
            picklist: Vec::new(),
            restricted: false,
            default: None,
            reference_to: Vec::new(),
            relationship_name: None,
            custom: false,
            source: Source::Stored,
        }
    }
    fn required(mut self) -> Self {
        self.nillable = false;
        self
    }
    fn read_only(mut self) -> Self {
        self.createable = false;
        self.updateable = false;
        self
    }
    fn source(mut self, source: Source) -> Self {
        self.source = source;
        self.read_only()
    }
    fn picklist(mut self, values: &[&str], restricted: bool, default: Option<&str>) -> Self {
        self.picklist = values.iter().map(|v| v.to_string()).collect();
        self.restricted = restricted;
        if let Some(d) = default {
            self.default = Some(Val::str(d));
            self.nillable = false;
        }
        self
    }
    fn refs(mut self, to: &[&str], relationship: &str) -> Self {
        self.reference_to = to.iter().map(|v| v.to_string()).collect();
        self.relationship_name = Some(relationship.into());
        self
    }
    fn number(mut self, precision: u32, scale: u32) -> Self {
        self.precision = precision;
        self.scale = scale;
        self
    }
    fn id_lookup(mut self) -> Self {
        self.id_lookup = true;
        self
    }

    /// Long text areas cannot be filtered or sorted in SOQL.
    pub fn filterable(&self) -> bool {
        !(self.ftype == FieldType::Textarea && self.length > 255)
    }

    /// Kept in a value index (lookups, upsert matching, duplicate rule).
    pub fn indexed(&self) -> bool {
        self.source == Source::Stored && (self.external_id || self.unique || self.ftype == FieldType::Email)
    }

    pub fn describe(&self) -> Value {
        let picklist: Vec<Value> = self
            .picklist
            .iter()
            .map(|v| {
                json!({"active": true, "defaultValue": self.default.as_ref().and_then(Val::as_str) == Some(v.as_str()),
                       "label": v, "validFor": null, "value": v})
            })
            .collect();
        let length = if self.ftype.is_text() { self.length } else { 0 };
        json!({
            "name": self.name,
            "label": self.label,
            "type": self.ftype.name(),
            "soapType": self.ftype.soap_type(),
            "length": length,
            "byteLength": length * 3,
            "precision": self.precision,
            "scale": self.scale,
            "digits": if self.ftype == FieldType::Int { 9 } else { 0 },
            "nillable": self.nillable,
            "createable": self.createable,
            "updateable": self.updateable,
            "defaultedOnCreate": self.default.is_some() || self.ftype == FieldType::Boolean || !matches!(self.source, Source::Stored) || self.name == "OwnerId",
            "defaultValue": self.default.as_ref().map(|d| d.to_json(false)),
            "externalId": self.external_id,
            "unique": self.unique,
            "idLookup": self.id_lookup,
            "custom": self.custom,
            "calculated": self.source == Source::CompoundName || self.formula.is_some(),
            "calculatedFormula": self.formula,
            "nameField": self.name == "Name",
            "filterable": self.filterable(),
            "sortable": self.filterable() && self.ftype != FieldType::Multipicklist,
            "groupable": self.ftype.is_text() && self.filterable(),
            "caseSensitive": false,
            "picklistValues": picklist,
            "restrictedPicklist": self.restricted,
            "dependentPicklist": false,
            "referenceTo": self.reference_to,
            "relationshipName": self.relationship_name,
            "polymorphicForeignKey": self.reference_to.len() > 1,
            "cascadeDelete": false,
            "htmlFormatted": false,
            "encrypted": false,
            "autoNumber": false,
            "deprecatedAndHidden": false,
            "inlineHelpText": null,
        })
    }
}

/// One sObject type.
#[derive(Debug, Clone)]
pub struct ObjectDef {
    pub name: &'static str,
    pub label: &'static str,
    pub label_plural: &'static str,
    pub key_prefix: &'static str,
    pub fields: Vec<FieldDef>,
    by_lower: HashMap<String, u16>,
    rel_by_lower: HashMap<String, u16>,
}

impl ObjectDef {
    fn new(
        name: &'static str,
        label: &'static str,
        label_plural: &'static str,
        key_prefix: &'static str,
        mut fields: Vec<FieldDef>,
    ) -> ObjectDef {
        let mut all = vec![
            FieldDef::new("Id", &format!("{label} ID"), FieldType::Id, 18).source(Source::Id).id_lookup(),
            FieldDef::new("IsDeleted", "Deleted", FieldType::Boolean, 0).source(Source::IsDeleted).required(),
        ];
        all.append(&mut fields);
        all.extend([
            FieldDef::new("OwnerId", "Owner ID", FieldType::Reference, 18)
                .refs(&["User"], "Owner")
                .required(),
            FieldDef::new("CreatedDate", "Created Date", FieldType::Datetime, 0).source(Source::CreatedDate),
            FieldDef::new("CreatedById", "Created By ID", FieldType::Reference, 18)
                .refs(&["User"], "CreatedBy")
                .source(Source::User),
            FieldDef::new("LastModifiedDate", "Last Modified Date", FieldType::Datetime, 0)
                .source(Source::LastModifiedDate),
            FieldDef::new("LastModifiedById", "Last Modified By ID", FieldType::Reference, 18)
                .refs(&["User"], "LastModifiedBy")
                .source(Source::User),
            FieldDef::new("SystemModstamp", "System Modstamp", FieldType::Datetime, 0)
                .source(Source::SystemModstamp),
        ]);
        if name != "Task" {
            all.push(
                FieldDef::new("MasterRecordId", "Master Record ID", FieldType::Reference, 18)
                    .refs(&[name], "MasterRecord")
                    .read_only(),
            );
        }
        let mut def = ObjectDef {
            name,
            label,
            label_plural,
            key_prefix,
            fields: all,
            by_lower: HashMap::new(),
            rel_by_lower: HashMap::new(),
        };
        def.reindex();
        def
    }

    fn reindex(&mut self) {
        self.by_lower.clear();
        self.rel_by_lower.clear();
        for (i, f) in self.fields.iter().enumerate() {
            self.by_lower.insert(f.name.to_ascii_lowercase(), i as u16);
            if let Some(rel) = &f.relationship_name {
                self.rel_by_lower.insert(rel.to_ascii_lowercase(), i as u16);
            }
        }
    }

    /// Field index by API name, case-insensitively.
    pub fn field(&self, name: &str) -> Option<u16> {
        self.by_lower.get(&name.to_ascii_lowercase()).copied()
    }

    pub fn field_named(&self, name: &str) -> Option<&FieldDef> {
        self.field(name).map(|i| &self.fields[i as usize])
    }

    /// The reference field behind a relationship name (`Account` → `AccountId`).
    pub fn relationship(&self, name: &str) -> Option<u16> {
        self.rel_by_lower.get(&name.to_ascii_lowercase()).copied()
    }

    pub fn def(&self, idx: u16) -> &FieldDef {
        &self.fields[idx as usize]
    }

    /// Adds (or replaces) a custom field.
    pub fn add_field(&mut self, field: FieldDef) {
        match self.field(&field.name) {
            Some(i) => self.fields[i as usize] = field,
            None => self.fields.push(field),
        }
        self.reindex();
    }

    pub fn describe(&self, version: &str) -> Value {
        let urls = self.urls(version);
        json!({
            "name": self.name,
            "label": self.label,
            "labelPlural": self.label_plural,
            "keyPrefix": self.key_prefix,
            "custom": false,
            "createable": true,
            "updateable": true,
            "deletable": true,
            "queryable": true,
            "searchable": true,
            "retrieveable": true,
            "undeletable": true,
            "mergeable": self.name != "Task",
            "replicateable": true,
            "triggerable": true,
            "layoutable": true,
            "feedEnabled": false,
            "activateable": false,
            "fields": self.fields.iter().map(FieldDef::describe).collect::<Vec<_>>(),
            "childRelationships": [],
            "recordTypeInfos": [],
            "supportedScopes": [{"label": format!("All {}", self.label_plural), "name": "everything"}],
            "urls": urls,
        })
    }

    pub fn basic(&self, version: &str) -> Value {
        json!({
            "name": self.name,
            "label": self.label,
            "labelPlural": self.label_plural,
            "keyPrefix": self.key_prefix,
            "custom": false,
            "createable": true,
            "updateable": true,
            "deletable": true,
            "queryable": true,
            "mergeable": self.name != "Task",
            "replicateable": true,
            "urls": self.urls(version),
        })
    }

    fn urls(&self, version: &str) -> Value {
        let base = format!("/services/data/{version}/sobjects/{}", self.name);
        json!({
            "sobject": base,
            "describe": format!("{base}/describe"),
            "rowTemplate": format!("{base}/{{ID}}"),
        })
    }
}

/// The standard objects the sandbox knows.
pub fn standard_objects() -> Vec<ObjectDef> {
    use FieldType as T;
    let s = |n: &str, l: &str, len| FieldDef::new(n, l, T::String, len);
    let lead_status =
        ["Open - Not Contacted", "Working - Contacted", "Closed - Converted", "Closed - Not Converted"];
    let lead_source = ["Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other"];
    let industry = [
        "Agriculture",
        "Apparel",
        "Banking",
        "Biotechnology",
        "Chemicals",
        "Communications",
        "Construction",
        "Consulting",
        "Education",
        "Electronics",
        "Energy",
        "Engineering",
        "Entertainment",
        "Environmental",
        "Finance",
        "Food & Beverage",
        "Government",
        "Healthcare",
        "Hospitality",
        "Insurance",
        "Machinery",
        "Manufacturing",
        "Media",
        "Not For Profit",
        "Recreation",
        "Retail",
        "Shipping",
        "Technology",
        "Telecommunications",
        "Transportation",
        "Utilities",
        "Other",
    ];
    let salutation = ["Mr.", "Ms.", "Mrs.", "Dr.", "Prof.", "Mx."];
    let person = || {
        vec![
            s("LastName", "Last Name", 80).required(),
            s("FirstName", "First Name", 40),
            FieldDef::new("Salutation", "Salutation", T::Picklist, 40).picklist(&salutation, false, None),
            s("Name", "Full Name", 121).source(Source::CompoundName),
            s("Title", "Title", 128),
            FieldDef::new("Email", "Email", T::Email, 80).id_lookup(),
            FieldDef::new("Phone", "Phone", T::Phone, 40),
            FieldDef::new("MobilePhone", "Mobile Phone", T::Phone, 40),
            FieldDef::new("LeadSource", "Lead Source", T::Picklist, 255).picklist(&lead_source, false, None),
            FieldDef::new("HasOptedOutOfEmail", "Email Opt Out", T::Boolean, 0).required(),
            FieldDef::new("Description", "Description", T::Textarea, 32000),
            s("EmailBouncedReason", "Email Bounced Reason", 255),
            FieldDef::new("EmailBouncedDate", "Email Bounced Date", T::Datetime, 0),
            FieldDef::new("LastActivityDate", "Last Activity", T::Date, 0).read_only(),
        ]
    };
    let address = |prefix: &str, label: &str| {
        vec![
            FieldDef::new(&format!("{prefix}Street"), &format!("{label} Street"), T::Textarea, 255),
            s(&format!("{prefix}City"), &format!("{label} City"), 40),
            s(&format!("{prefix}State"), &format!("{label} State/Province"), 80),
            s(&format!("{prefix}PostalCode"), &format!("{label} Zip/Postal Code"), 20),
            s(&format!("{prefix}Country"), &format!("{label} Country"), 80),
        ]
    };

    let mut lead = person();
    lead.extend([
        s("Company", "Company", 255).required(),
        FieldDef::new("Status", "Lead Status", T::Picklist, 255).picklist(
            &lead_status,
            true,
            Some("Open - Not Contacted"),
        ),
        FieldDef::new("Industry", "Industry", T::Picklist, 255).picklist(&industry, false, None),
        FieldDef::new("Rating", "Rating", T::Picklist, 255).picklist(&["Hot", "Warm", "Cold"], false, None),
        FieldDef::new("AnnualRevenue", "Annual Revenue", T::Currency, 0).number(18, 0),
        FieldDef::new("NumberOfEmployees", "Employees", T::Int, 0).number(8, 0),
        FieldDef::new("Website", "Website", T::Url, 255),
        FieldDef::new("IsConverted", "Converted", T::Boolean, 0).required().read_only(),
        FieldDef::new("ConvertedDate", "Converted Date", T::Date, 0).read_only(),
        FieldDef::new("ConvertedAccountId", "Converted Account ID", T::Reference, 18)
            .refs(&["Account"], "ConvertedAccount")
            .read_only(),
        FieldDef::new("ConvertedContactId", "Converted Contact ID", T::Reference, 18)
            .refs(&["Contact"], "ConvertedContact")
            .read_only(),
        FieldDef::new("IsUnreadByOwner", "Unread By Owner", T::Boolean, 0).required(),
    ]);
    lead.extend(address("", "Lead"));

    let mut contact = person();
    contact.extend([
        FieldDef::new("AccountId", "Account ID", T::Reference, 18).refs(&["Account"], "Account"),
        s("Department", "Department", 80),
        FieldDef::new("Birthdate", "Birthdate", T::Date, 0),
        FieldDef::new("DoNotCall", "Do Not Call", T::Boolean, 0).required(),
    ]);
    contact.extend(address("Mailing", "Mailing"));

    let mut account = vec![
        s("Name", "Account Name", 255).required(),
        FieldDef::new("Type", "Account Type", T::Picklist, 255).picklist(
            &[
                "Prospect",
                "Customer - Direct",
                "Customer - Channel",
                "Channel Partner / Reseller",
                "Installation Partner",
                "Technology Partner",
                "Other",
            ],
            false,
            None,
        ),
        FieldDef::new("Industry", "Industry", T::Picklist, 255).picklist(&industry, false, None),
        FieldDef::new("Phone", "Account Phone", T::Phone, 40),
        FieldDef::new("Fax", "Account Fax", T::Phone, 40),
        FieldDef::new("Website", "Website", T::Url, 255),
        s("AccountNumber", "Account Number", 40),
        FieldDef::new("AnnualRevenue", "Annual Revenue", T::Currency, 0).number(18, 0),
        FieldDef::new("NumberOfEmployees", "Employees", T::Int, 0).number(8, 0),
        FieldDef::new("Description", "Account Description", T::Textarea, 32000),
    ];
    account.extend(address("Billing", "Billing"));

    let task = vec![
        FieldDef::new("Subject", "Subject", T::Combobox, 255),
        FieldDef::new("WhoId", "Name ID", T::Reference, 18).refs(&["Contact", "Lead"], "Who"),
        FieldDef::new("WhatId", "Related To ID", T::Reference, 18).refs(&["Account"], "What"),
        FieldDef::new("ActivityDate", "Due Date Only", T::Date, 0),
        FieldDef::new("Status", "Status", T::Picklist, 255).picklist(
            &["Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred"],
            true,
            Some("Not Started"),
        ),
        FieldDef::new("Priority", "Priority", T::Picklist, 40).picklist(
            &["High", "Normal", "Low"],
            true,
            Some("Normal"),
        ),
        FieldDef::new("Type", "Type", T::Picklist, 40).picklist(
            &["Call", "Email", "Meeting", "Other"],
            false,
            None,
        ),
        FieldDef::new("TaskSubtype", "Task Subtype", T::Picklist, 40).picklist(
            &["Task", "Email", "Call"],
            false,
            None,
        ),
        FieldDef::new("Description", "Comments", T::Textarea, 32000),
    ];

    // Support cases: a Contact a Case refers to cannot be deleted.
    let case = vec![
        FieldDef::new("Subject", "Subject", T::String, 255),
        FieldDef::new("Status", "Status", T::Picklist, 40).picklist(
            &["New", "Working", "Escalated", "Closed"],
            true,
            Some("New"),
        ),
        FieldDef::new("ContactId", "Contact ID", T::Reference, 18).refs(&["Contact"], "Contact"),
        FieldDef::new("AccountId", "Account ID", T::Reference, 18).refs(&["Account"], "Account"),
    ];

    // The org's own settings: what an integration reads its time zone from.
    let organization = vec![
        FieldDef::new("Name", "Name", T::String, 80),
        FieldDef::new("TimeZoneSidKey", "Default Time Zone", T::String, 40),
    ];

    vec![
        ObjectDef::new("Lead", "Lead", "Leads", "00Q", lead),
        ObjectDef::new("Contact", "Contact", "Contacts", "003", contact),
        ObjectDef::new("Account", "Account", "Accounts", "001", account),
        ObjectDef::new("Task", "Task", "Tasks", "00T", task),
        ObjectDef::new("Case", "Case", "Cases", "500", case),
        ObjectDef::new("Organization", "Organization", "Organizations", "00D", organization),
    ]
}

/// A custom field as seeds describe it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CustomFieldSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub ftype: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub length: Option<u32>,
    #[serde(default)]
    pub precision: Option<u32>,
    #[serde(default)]
    pub scale: Option<u32>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub external_id: bool,
    #[serde(default)]
    pub unique: bool,
    #[serde(default, alias = "picklistValues")]
    pub values: Vec<String>,
    #[serde(default, alias = "restrictedPicklist")]
    pub restricted: bool,
    #[serde(default)]
    pub default: Option<Value>,
    #[serde(default)]
    pub reference_to: Option<String>,
    /// A formula field (`calculated` in describe; read-only).
    #[serde(default)]
    pub formula: Option<String>,
}

impl CustomFieldSpec {
    pub fn into_field(self) -> Result<FieldDef, String> {
        if !self.name.ends_with("__c") || self.name.len() <= 3 {
            return Err(format!("custom field {} must end with __c", self.name));
        }
        let ftype =
            FieldType::parse(&self.ftype).ok_or_else(|| format!("unknown field type {}", self.ftype))?;
        let default_len = match ftype {
            FieldType::Textarea => 32768,
            FieldType::Email => 80,
            FieldType::Phone => 40,
            FieldType::Multipicklist => 4099,
            FieldType::Reference => 18,
            t if t.is_text() => 255,
            _ => 0,
        };
        let label = self.label.unwrap_or_else(|| self.name.trim_end_matches("__c").replace('_', " "));
        let mut f = FieldDef::new(&self.name, &label, ftype, self.length.unwrap_or(default_len));
        f.custom = true;
        f.nillable = !self.required && ftype != FieldType::Boolean;
        f.external_id = self.external_id;
        f.unique = self.unique;
        f.id_lookup = self.external_id || self.unique;
        f.picklist = self.values;
        f.restricted = self.restricted;
        if ftype.is_number() {
            f.precision = self.precision.unwrap_or(18);
            f.scale = self.scale.unwrap_or(if ftype == FieldType::Int { 0 } else { 2 });
            if f.scale > f.precision || f.precision > 18 {
                return Err(format!("{}: need scale <= precision <= 18", f.name));
            }
        }
        if let Some(target) = self.reference_to {
            let rel = format!("{}__r", self.name.trim_end_matches("__c"));
            f = f.refs(&[target.as_str()], &rel);
        } else if ftype == FieldType::Reference {
            return Err(format!("reference field {} needs referenceTo", f.name));
        }
        if let Some(formula) = self.formula {
            f.formula = Some(formula);
            f.createable = false;
            f.updateable = false;
        }
        f.default = match self.default {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(Val::Bool(b)),
            Some(Value::Number(n)) => n.as_f64().map(Val::Num),
            Some(Value::String(s)) => Some(Val::str(s)),
            Some(other) => return Err(format!("unsupported default {other}")),
        };
        Ok(f)
    }
}
