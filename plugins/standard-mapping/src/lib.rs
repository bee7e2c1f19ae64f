//! `standard-mapping`: the vendors' default field mappings between Salesforce
//! Leads, Contacts and Accounts and ActiveCampaign contacts and accounts,
//! Mailchimp audience members and Brevo contacts, plus custom mappings from
//! config, with typed conversions both ways and the vendors' rules enforced as
//! per-record errors (never truncation, never a silent drop).
//!
//! Config (JSON):
//! ```json
//! {
//!   "marketing": "activecampaign",          // or "mailchimp", "brevo" (required)
//!   "defaults": true,                       // include the default mappings (default true)
//!   "inbound_object": "Lead",               // target when the host names none
//!   "fields": [                             // custom mappings, added or overriding
//!     {"salesforce": "Annual_Revenue__c", "marketing": "REVENUE", "type": "currency"},
//!     {"salesforce": "Rating", "marketing": "RATING", "type": "picklist",
//!      "values": {"Hot": "hot", "Cold": "cold"}, "objects": ["Lead"]},
//!     {"salesforce": "Interests__c", "marketing": "INTERESTS", "type": "multipicklist",
//!      "direction": "to-marketing"}
//!   ]
//! }
//! ```
//! Types: `text`, `email`, `phone`, `sms`, `currency`, `number`, `date`,
//! `datetime`, `boolean`, `picklist`, `multipicklist`.

use std::collections::BTreeMap;

use crmsync_sdk::convert;
use crmsync_sdk::prelude::*;
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Marketing {
    #[serde(rename = "activecampaign")]
    ActiveCampaign,
    Mailchimp,
    Brevo,
}

impl Marketing {
    fn system(self) -> System {
        match self {
            Marketing::ActiveCampaign => System::ActiveCampaign,
            Marketing::Mailchimp => System::Mailchimp,
            Marketing::Brevo => System::Brevo,
        }
    }

    /// The marketing object a Salesforce object maps to.
    fn object_for(self, sf_object: &str) -> Option<&'static str> {
        match (self, sf_object) {
            (Marketing::ActiveCampaign, "Lead" | "Contact") => Some("contact"),
            (Marketing::ActiveCampaign, "Account") => Some("account"),
            (Marketing::Mailchimp, "Lead" | "Contact") => Some("member"),
            (Marketing::Brevo, "Lead" | "Contact") => Some("contact"),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Text,
    Email,
    Phone,
    Sms,
    Currency,
    Number,
    Date,
    Datetime,
    Boolean,
    Picklist,
    Multipicklist,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Flow {
    #[default]
    Both,
    ToMarketing,
    ToSalesforce,
}

/// One field mapping.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldMap {
    pub salesforce: String,
    pub marketing: String,
    #[serde(rename = "type", default = "text_kind")]
    pub kind: Kind,
    /// The Salesforce objects it applies to; Lead and Contact when absent.
    #[serde(default = "person_objects")]
    pub objects: Vec<String>,
    #[serde(default)]
    pub direction: Flow,
    /// Picklist values, Salesforce → marketing. When given, a value outside it
    /// is a per-record error.
    #[serde(default)]
    pub values: BTreeMap<String, String>,
    /// Salesforce's length limit, checked going to Salesforce.
    #[serde(default)]
    pub max_length: Option<usize>,
    /// Must be non-empty going to Salesforce.
    #[serde(default)]
    pub required: bool,
}

fn text_kind() -> Kind {
    Kind::Text
}

fn person_objects() -> Vec<String> {
    vec!["Lead".into(), "Contact".into()]
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub marketing: Marketing,
    #[serde(default = "yes")]
    pub defaults: bool,
    #[serde(default = "lead")]
    pub inbound_object: String,
    #[serde(default)]
    pub fields: Vec<FieldMap>,
}

fn yes() -> bool {
    true
}

fn lead() -> String {
    "Lead".into()
}

fn map(
    sf: &str,
    mk: &str,
    kind: Kind,
    objects: &[&str],
    max_length: Option<usize>,
    required: bool,
) -> FieldMap {
    FieldMap {
        salesforce: sf.into(),
        marketing: mk.into(),
        kind,
        objects: objects.iter().map(|o| o.to_string()).collect(),
        direction: Flow::Both,
        values: BTreeMap::new(),
        max_length,
        required,
    }
}

/// The seeds' default mappings for one marketing platform. Salesforce's field
/// lengths: FirstName 40, LastName 80, Company 255, Email 80, Phone 40.
pub fn default_fields(marketing: Marketing) -> Vec<FieldMap> {
    const PEOPLE: &[&str] = &["Lead", "Contact"];
    const LEAD: &[&str] = &["Lead"];
    let (email, first, last, phone, phone_kind, company) = match marketing {
        Marketing::ActiveCampaign => ("email", "firstName", "lastName", "phone", Kind::Phone, "account"),
        Marketing::Mailchimp => ("email_address", "FNAME", "LNAME", "PHONE", Kind::Phone, "COMPANY"),
        Marketing::Brevo => ("email", "FIRSTNAME", "LASTNAME", "SMS", Kind::Sms, "COMPANY"),
    };
    let mut fields = vec![
        map("Email", email, Kind::Email, PEOPLE, Some(80), true),
        map("FirstName", first, Kind::Text, PEOPLE, Some(40), false),
        map("LastName", last, Kind::Text, PEOPLE, Some(80), true),
        map("Phone", phone, phone_kind, PEOPLE, Some(40), false),
        map("Company", company, Kind::Text, LEAD, Some(255), true),
    ];
    if marketing == Marketing::ActiveCampaign {
        fields.push(map("Name", "name", Kind::Text, &["Account"], Some(255), true));
        // A Contact joins its Account's ActiveCampaign account (read with the
        // Contact as `Account.Name`; the link is made from Salesforce only).
        fields.push(FieldMap {
            direction: Flow::ToMarketing,
            ..map("Account.Name", "account", Kind::Text, &["Contact"], None, false)
        });
    }
    fields
}

impl Config {
    /// Defaults, then custom mappings; a custom mapping replaces a default one
    /// for the same Salesforce field.
    pub fn mappings(&self) -> Vec<FieldMap> {
        let mut out = if self.defaults { default_fields(self.marketing) } else { Vec::new() };
        for custom in &self.fields {
            out.retain(|m| m.salesforce != custom.salesforce);
            out.push(custom.clone());
        }
        out
    }
}

#[derive(Default)]
pub struct StandardMapping;

impl Mapper for StandardMapping {
    type Config = Config;

    fn map(&self, ctx: &Context<Config>, record: Record) -> Result<Record, RecordError> {
        self.map_batch(ctx, vec![record])
            .pop()
            .unwrap_or_else(|| Err(RecordError::new("internal", "no result")))
    }

    fn map_batch(&self, ctx: &Context<Config>, records: Vec<Record>) -> Vec<Result<Record, RecordError>> {
        let mappings = ctx.config.mappings();
        records
            .into_iter()
            .map(|record| match ctx.direction {
                Direction::ToMarketing => to_marketing(&ctx.config, &mappings, record),
                Direction::ToSalesforce => {
                    let target = ctx.target.as_deref().unwrap_or(&ctx.config.inbound_object);
                    to_salesforce(&ctx.config, &mappings, target, record)
                }
            })
            .collect()
    }
}

fn to_marketing(config: &Config, mappings: &[FieldMap], record: Record) -> Result<Record, RecordError> {
    if record.system != System::Salesforce {
        return Err(RecordError::new(
            "wrong-direction",
            format!("expected a Salesforce record going to marketing, got a {:?} record", record.system),
        ));
    }
    let object = config.marketing.object_for(&record.object_type).ok_or_else(|| {
        RecordError::new(
            "unsupported-object",
            format!("{:?} has no counterpart for Salesforce {}", config.marketing, record.object_type),
        )
    })?;
    let mut out = Record::new(config.marketing.system(), object);
    for m in mappings.iter().filter(|m| applies(m, &record.object_type, Flow::ToMarketing)) {
        let Some(value) = record.get(&m.salesforce) else { continue };
        if value.is_empty() && m.kind == Kind::Boolean {
            out.set(&m.marketing, Value::Boolean(false));
            continue;
        }
        if value.is_empty() {
            if m.kind == Kind::Email {
                return Err(missing_email());
            }
            // An emptied phone is not pushed to Brevo (seed rule); elsewhere the
            // field is cleared.
            if config.marketing == Marketing::Brevo && matches!(m.kind, Kind::Phone | Kind::Sms) {
                continue;
            }
            out.set(&m.marketing, Value::Null);
            continue;
        }
        let converted = match outbound(config.marketing, m, value) {
            Ok(v) => v,
            // A vendor's own validation rule (Brevo's phone rules) drops the
            // field with a warning; the rest of the record still syncs.
            Err(e) if !m.required && vendor_rule(config.marketing, m.kind) => {
                let id = record.id.as_deref().unwrap_or("(new)");
                crmsync_sdk::log::warn(&format!(
                    "{} {id}: {} not sent to {}: {}",
                    record.object_type,
                    m.salesforce,
                    config.marketing.system_name(),
                    e.message
                ));
                continue;
            }
            Err(e) => return Err(e.on(m.salesforce.clone())),
        };
        out.set(&m.marketing, converted);
    }
    if record.object_type != "Account" && out.text(email_field(config.marketing)).is_none() {
        return Err(missing_email());
    }
    Ok(out)
}

fn email_field(marketing: Marketing) -> &'static str {
    match marketing {
        Marketing::Mailchimp => "email_address",
        Marketing::ActiveCampaign | Marketing::Brevo => "email",
    }
}

fn missing_email() -> RecordError {
    RecordError::new("missing-email", "the record has no email address, so it cannot sync").on("Email")
}

fn to_salesforce(
    config: &Config,
    mappings: &[FieldMap],
    target: &str,
    record: Record,
) -> Result<Record, RecordError> {
    if record.system != config.marketing.system() {
        return Err(RecordError::new(
            "wrong-direction",
            format!(
                "expected a {:?} record going to Salesforce, got a {:?} record",
                config.marketing, record.system
            ),
        ));
    }
    if config.marketing.object_for(target) != Some(record.object_type.as_str()) {
        return Err(RecordError::new(
            "unsupported-object",
            format!(
                "a {} {} cannot become a Salesforce {target}",
                config.marketing.system_name(),
                record.object_type
            ),
        ));
    }
    let mut out = Record::new(System::Salesforce, target);
    for m in mappings.iter().filter(|m| applies(m, target, Flow::ToSalesforce)) {
        let Some(value) = record.get(&m.marketing) else { continue };
        // A checkbox has no "unset": an empty one (AC writes false as "") is false.
        if value.is_empty() && m.kind == Kind::Boolean {
            out.set(&m.salesforce, Value::Boolean(false));
            continue;
        }
        if value.is_empty() {
            if m.required {
                return Err(RecordError::new(
                    "missing-required",
                    format!(
                        "{} is required on a Salesforce {target} but {} is empty",
                        m.salesforce, m.marketing
                    ),
                )
                .on(m.salesforce.clone()));
            }
            out.set(&m.salesforce, Value::Null);
            continue;
        }
        let converted = inbound(m, value).map_err(|e| e.on(m.salesforce.clone()))?;
        if let (Some(max), Value::Text(text)) = (m.max_length, &converted) {
            convert::check_length(&m.salesforce, text, max)?;
        }
        out.set(&m.salesforce, converted);
    }
    Ok(out)
}

impl Marketing {
    fn system_name(self) -> &'static str {
        match self {
            Marketing::ActiveCampaign => "ActiveCampaign",
            Marketing::Mailchimp => "Mailchimp",
            Marketing::Brevo => "Brevo",
        }
    }
}

fn applies(m: &FieldMap, sf_object: &str, flow: Flow) -> bool {
    (m.direction == Flow::Both || m.direction == flow) && m.objects.iter().any(|o| o == sf_object)
}

/// Whether a conversion failure of this kind is the platform's own
/// validation rule (not a type that cannot convert): Brevo requires phones of
/// 6 to 16 digits and SMS numbers with a country code.
fn vendor_rule(marketing: Marketing, kind: Kind) -> bool {
    marketing == Marketing::Brevo && matches!(kind, Kind::Phone | Kind::Sms)
}

/// A Salesforce value as the marketing platform should get it. Typed values
/// stay typed (the connector writes them in the vendor's format). Phones are
/// tidied for every platform; only Brevo has a digit-count rule.
fn outbound(marketing: Marketing, m: &FieldMap, value: &Value) -> Result<Value, RecordError> {
    Ok(match m.kind {
        Kind::Text => Value::Text(value.to_string()),
        Kind::Email => Value::Text(convert::normalize_email(&value.to_string())?),
        Kind::Phone if marketing == Marketing::Brevo => {
            Value::Text(convert::normalize_phone(&value.to_string())?)
        }
        Kind::Phone => Value::Text(convert::tidy_phone(&value.to_string())),
        Kind::Sms => Value::Text(convert::sms_number(&value.to_string())?),
        Kind::Currency => Value::Decimal(decimal(value)?),
        Kind::Number => Value::Number(number(value)?),
        Kind::Date => Value::Date(date(value)?),
        Kind::Datetime => Value::DateTime(datetime(value)?),
        Kind::Boolean => Value::Boolean(boolean(value)?),
        Kind::Picklist => Value::Text(pick(m, &value.to_string(), true)?),
        Kind::Multipicklist => {
            Value::TextList(list(value).iter().map(|v| pick(m, v, true)).collect::<Result<_, _>>()?)
        }
    })
}

/// A marketing value as Salesforce should get it.
fn inbound(m: &FieldMap, value: &Value) -> Result<Value, RecordError> {
    Ok(match m.kind {
        Kind::Text => Value::Text(value.to_string()),
        Kind::Email => Value::Text(convert::normalize_email(&value.to_string())?),
        Kind::Phone | Kind::Sms => Value::Text(convert::tidy_phone(&value.to_string())),
        Kind::Currency => Value::Decimal(decimal(value)?),
        Kind::Number => Value::Number(number(value)?),
        Kind::Date => Value::Date(date(value)?),
        Kind::Datetime => Value::DateTime(datetime(value)?),
        Kind::Boolean => Value::Boolean(boolean(value)?),
        Kind::Picklist => Value::Text(pick(m, &value.to_string(), false)?),
        Kind::Multipicklist => Value::Text(convert::join_multipicklist(
            &list(value).iter().map(|v| pick(m, v, false)).collect::<Result<Vec<_>, _>>()?,
        )),
    })
}

fn decimal(value: &Value) -> Result<Decimal, RecordError> {
    match value {
        Value::Decimal(d) => Ok(*d),
        Value::Number(n) => Decimal::try_from(*n)
            .map_err(|_| RecordError::new("invalid-currency", format!("{n} cannot be an exact amount"))),
        Value::Text(t) => convert::parse_currency(t),
        other => Err(wrong_kind("an amount", other)),
    }
}

fn number(value: &Value) -> Result<f64, RecordError> {
    match value {
        Value::Number(n) => Ok(*n),
        Value::Decimal(d) => d.to_string().parse().map_err(|_| wrong_kind("a number", value)),
        Value::Text(t) => convert::parse_currency(t)
            .ok()
            .and_then(|d| d.to_string().parse().ok())
            .ok_or_else(|| RecordError::new("invalid-number", format!("{t:?} is not a number"))),
        other => Err(wrong_kind("a number", other)),
    }
}

fn date(value: &Value) -> Result<NaiveDate, RecordError> {
    match value {
        Value::Date(d) => Ok(*d),
        Value::Text(t) => convert::parse_date(t),
        // A date-time is not silently cut to a date: the day depends on the zone.
        other => Err(wrong_kind("a date (YYYY-MM-DD)", other)),
    }
}

fn datetime(value: &Value) -> Result<DateTime<Utc>, RecordError> {
    match value {
        Value::DateTime(t) => Ok(*t),
        Value::Text(t) => convert::parse_datetime(t),
        other => Err(wrong_kind("a date-time", other)),
    }
}

fn boolean(value: &Value) -> Result<bool, RecordError> {
    match value {
        Value::Boolean(b) => Ok(*b),
        Value::Text(t) => convert::parse_bool(t),
        // A checkbox field read back as its checked options (`||Yes||`).
        Value::TextList(l) if l.is_empty() => Ok(false),
        Value::TextList(l) if l.len() == 1 => convert::parse_bool(&l[0]),
        Value::Number(n) if *n == 0.0 || *n == 1.0 => Ok(*n == 1.0),
        other => Err(wrong_kind("yes or no", other)),
    }
}

/// A multi-select value as a list: Salesforce `a;b`, ActiveCampaign `||a||b||`,
/// a comma list, or a list value.
fn list(value: &Value) -> Vec<String> {
    match value {
        Value::TextList(l) => l.clone(),
        other => {
            let text = other.to_string();
            let sep = if text.contains("||") {
                "||"
            } else if text.contains(';') {
                ";"
            } else {
                ","
            };
            text.split(sep).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
        }
    }
}

/// Translates one picklist value; `outbound` goes Salesforce → marketing.
fn pick(m: &FieldMap, value: &str, outbound: bool) -> Result<String, RecordError> {
    if m.values.is_empty() {
        return Ok(value.to_string());
    }
    let found = if outbound {
        m.values.get(value).cloned()
    } else {
        m.values.iter().find(|(_, mk)| mk.as_str() == value).map(|(sf, _)| sf.clone())
    };
    found.ok_or_else(|| {
        RecordError::new(
            "unknown-picklist-value",
            format!("{value:?} is not one of the mapped picklist values"),
        )
    })
}

fn wrong_kind(expected: &str, got: &Value) -> RecordError {
    RecordError::new("wrong-type", format!("expected {expected}, got a {} value", got.kind()))
}

crmsync_sdk::export_mapper!(StandardMapping);

#[cfg(test)]
mod tests {
    use super::*;
    use crmsync_sdk::testing::Harness;

    fn lead() -> Record {
        Record::new(System::Salesforce, "Lead")
            .with_id("00Q000000000001AAA")
            .with("FirstName", "Ada")
            .with("LastName", "Lovelace")
            .with("Email", "ada@example.com")
            .with("Phone", "+44 20 7946 0000")
            .with("Company", "Analytical Engines")
    }

    #[test]
    fn default_lead_mapping_to_activecampaign() {
        let out = Harness::new(r#"{"marketing":"activecampaign"}"#).map(&StandardMapping, vec![lead()]);
        let rec = out[0].as_ref().unwrap();
        assert_eq!(rec.object_type, "contact");
        assert_eq!(rec.text("firstName"), Some("Ada"));
        assert_eq!(rec.text("account"), Some("Analytical Engines"));
        assert_eq!(rec.text("phone"), Some("+442079460000"));
    }

    #[test]
    fn long_first_name_going_to_salesforce_is_an_error_not_a_truncation() {
        let contact = Record::new(System::Brevo, "contact")
            .with("email", "x@example.com")
            .with("FIRSTNAME", "A".repeat(41))
            .with("LASTNAME", "B")
            .with("COMPANY", "C");
        let out = Harness::new(r#"{"marketing":"brevo"}"#)
            .direction(Direction::ToSalesforce)
            .target("Lead")
            .map(&StandardMapping, vec![contact]);
        let err = out[0].as_ref().unwrap_err();
        assert_eq!((err.code.as_str(), err.field.as_deref()), ("too-long", Some("FirstName")));
    }
}

#[cfg(test)]
mod own_fixtures {
    /// The same fixtures the host validates the component with, run natively
    /// by the same runner.
    #[test]
    fn pass_natively() {
        crmsync_sdk::testing::mapper_fixtures(
            &super::StandardMapping,
            concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures.jsonl"),
        );
    }
}

#[cfg(test)]
mod config_schema {
    /// config.schema.json is the typed Config's schema (crmsync checks configs
    /// against it at install and activation); `CRMSYNC_WRITE_SCHEMA=1 cargo test`
    /// rewrites it after a change to Config.
    #[test]
    fn is_current() {
        crmsync_sdk::testing::assert_config_schema_current::<super::Config>(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config.schema.json"
        ));
    }
}
