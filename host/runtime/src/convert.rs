//! Between the generated bindings and `crmsync_sdk::types`, the types the rest
//! of the host works with. What comes back from a guest is checked: a value the
//! contract does not allow (a 13th month, a decimal that is not one) becomes a
//! per-record error naming the field, never a panic or a silent default.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use crmsync_sdk::types::*;

use super::bindings::crmsync::plugin::types as wit;

pub fn context_to_wit(ctx: &Context<String>) -> wit::Context {
    wit::Context {
        connection: ctx.connection.clone(),
        direction: match ctx.direction {
            Direction::ToMarketing => wit::Direction::ToMarketing,
            Direction::ToSalesforce => wit::Direction::ToSalesforce,
        },
        run_id: ctx.run_id.clone(),
        target: ctx.target.clone(),
        config: ctx.config.clone(),
    }
}

fn system_to_wit(s: System) -> wit::System {
    match s {
        System::Salesforce => wit::System::Salesforce,
        System::ActiveCampaign => wit::System::Activecampaign,
        System::Mailchimp => wit::System::Mailchimp,
        System::Brevo => wit::System::Brevo,
    }
}

fn system_from_wit(s: wit::System) -> System {
    match s {
        wit::System::Salesforce => System::Salesforce,
        wit::System::Activecampaign => System::ActiveCampaign,
        wit::System::Mailchimp => System::Mailchimp,
        wit::System::Brevo => System::Brevo,
    }
}

fn datetime_to_wit(t: &DateTime<Utc>) -> wit::Datetime {
    wit::Datetime { seconds: t.timestamp(), nanoseconds: t.timestamp_subsec_nanos() }
}

fn datetime_from_wit(t: wit::Datetime) -> Result<DateTime<Utc>, String> {
    DateTime::from_timestamp(t.seconds, t.nanoseconds)
        .ok_or_else(|| format!("datetime {t:?} is out of range"))
}

fn value_to_wit(v: &Value) -> wit::Value {
    match v {
        Value::Null => wit::Value::Null,
        Value::Text(s) => wit::Value::Text(s.clone()),
        Value::Number(n) => wit::Value::Number(*n),
        Value::Boolean(b) => wit::Value::Boolean(*b),
        Value::Date(d) => {
            wit::Value::Date(wit::Date { year: d.year(), month: d.month() as u8, day: d.day() as u8 })
        }
        Value::DateTime(t) => wit::Value::Datetime(datetime_to_wit(t)),
        Value::Decimal(d) => wit::Value::Decimal(d.to_string()),
        Value::TextList(l) => wit::Value::TextList(l.clone()),
    }
}

fn value_from_wit(v: wit::Value) -> Result<Value, String> {
    Ok(match v {
        wit::Value::Null => Value::Null,
        wit::Value::Text(s) => Value::Text(s),
        wit::Value::Number(n) => Value::Number(n),
        wit::Value::Boolean(b) => Value::Boolean(b),
        wit::Value::Date(d) => Value::Date(
            NaiveDate::from_ymd_opt(d.year, d.month.into(), d.day.into())
                .ok_or_else(|| format!("{}-{}-{} is not a date", d.year, d.month, d.day))?,
        ),
        wit::Value::Datetime(t) => Value::DateTime(datetime_from_wit(t)?),
        wit::Value::Decimal(s) => Value::Decimal(s.parse().map_err(|_| format!("{s:?} is not a decimal"))?),
        wit::Value::TextList(l) => Value::TextList(l),
    })
}

pub fn record_to_wit(r: &Record) -> wit::SyncRecord {
    wit::SyncRecord {
        system: system_to_wit(r.system),
        object_type: r.object_type.clone(),
        id: r.id.clone(),
        fields: r
            .fields
            .iter()
            .map(|(name, v)| wit::Field { name: name.clone(), value: value_to_wit(v) })
            .collect(),
        modified_at: r.modified_at.as_ref().map(datetime_to_wit),
    }
}

/// A record a guest returned; an invalid value is an error naming its field.
pub fn record_from_wit(r: wit::SyncRecord) -> Result<Record, RecordError> {
    let mut fields = std::collections::BTreeMap::new();
    for f in r.fields {
        let value = value_from_wit(f.value).map_err(|why| {
            RecordError::new("invalid-output", format!("the plugin returned {why}")).on(&f.name)
        })?;
        if fields.insert(f.name.clone(), value).is_some() {
            return Err(RecordError::new("invalid-output", "the plugin returned the field twice").on(f.name));
        }
    }
    let modified_at = r
        .modified_at
        .map(datetime_from_wit)
        .transpose()
        .map_err(|why| RecordError::new("invalid-output", format!("the plugin returned {why}")))?;
    Ok(Record {
        system: system_from_wit(r.system),
        object_type: r.object_type,
        id: r.id,
        fields,
        modified_at,
    })
}

pub fn conflict_to_wit(c: &Conflict) -> wit::Conflict {
    wit::Conflict {
        base: c.base.as_ref().map(record_to_wit),
        salesforce: record_to_wit(&c.salesforce),
        marketing: record_to_wit(&c.marketing),
    }
}

pub fn error_from_wit(e: wit::RecordError) -> RecordError {
    RecordError { code: e.code, message: e.message, field: e.field }
}

pub fn selection_from_wit(s: wit::Selection) -> Selection {
    match s {
        wit::Selection::Sync => Selection::Sync,
        wit::Selection::Skip(reason) => Selection::Skip(reason),
        wit::Selection::CreateAs(wit::SalesforceObject::Lead) => Selection::CreateAs(SalesforceObject::Lead),
        wit::Selection::CreateAs(wit::SalesforceObject::Contact) => {
            Selection::CreateAs(SalesforceObject::Contact)
        }
    }
}

pub fn resolution_from_wit(r: wit::Resolution) -> Result<Resolution, RecordError> {
    let mut merged = std::collections::BTreeMap::new();
    for f in r.merged {
        let value = value_from_wit(f.value).map_err(|why| {
            RecordError::new("invalid-output", format!("the plugin returned {why}")).on(&f.name)
        })?;
        merged.insert(f.name, value);
    }
    let winners = r
        .winners
        .into_iter()
        .map(|w| {
            let side = match w.winner {
                wit::Side::Salesforce => Side::Salesforce,
                wit::Side::Marketing => Side::Marketing,
            };
            (w.field, side)
        })
        .collect();
    Ok(Resolution { merged, winners })
}

/// Approximate bytes of what a guest returned, for the output cap.
pub trait Weigh {
    fn weight(&self) -> usize;
}

impl Weigh for wit::Value {
    fn weight(&self) -> usize {
        8 + match self {
            wit::Value::Text(s) | wit::Value::Decimal(s) => s.len(),
            wit::Value::TextList(l) => l.iter().map(|s| s.len() + 8).sum(),
            _ => 0,
        }
    }
}

impl Weigh for wit::SyncRecord {
    fn weight(&self) -> usize {
        self.object_type.len()
            + self.id.as_ref().map_or(0, String::len)
            + self.fields.iter().map(|f| f.name.len() + f.value.weight()).sum::<usize>()
    }
}

impl Weigh for wit::RecordError {
    fn weight(&self) -> usize {
        self.code.len() + self.message.len() + self.field.as_ref().map_or(0, String::len)
    }
}

impl Weigh for wit::Selection {
    fn weight(&self) -> usize {
        match self {
            wit::Selection::Skip(reason) => reason.len() + 8,
            _ => 8,
        }
    }
}

impl Weigh for wit::Resolution {
    fn weight(&self) -> usize {
        self.merged.iter().map(|f| f.name.len() + f.value.weight()).sum::<usize>()
            + self.winners.iter().map(|w| w.field.len() + 8).sum::<usize>()
    }
}

impl<T: Weigh, E: Weigh> Weigh for Result<T, E> {
    fn weight(&self) -> usize {
        match self {
            Ok(t) => t.weight(),
            Err(e) => e.weight(),
        }
    }
}
