//! The generated bindings and the glue between them and [`crate::types`].
//! Nothing here is part of the SDK's API: the export macros use it.

#![allow(missing_docs)]

/// The contract's shared `types` and `logging` interfaces, generated once and
/// reused by every role world below.
pub mod base {
    wit_bindgen::generate!({
        path: "../wit/since_v1.0.0",
        inline: "package crmsync:sdk; world base { import crmsync:plugin/types@1.0.0; import crmsync:plugin/logging@1.0.0; }",
        world: "crmsync:sdk/base",
        generate_all,
    });
}

macro_rules! role_world {
    ($module:ident, $world:literal, $path:literal $(,)?) => {
        pub mod $module {
            wit_bindgen::generate!({
                path: "../wit/since_v1.0.0",
                world: $world,
                with: {
                    "crmsync:plugin/types@1.0.0": crate::__private::base::crmsync::plugin::types,
                    "crmsync:plugin/logging@1.0.0": crate::__private::base::crmsync::plugin::logging,
                },
                pub_export_macro: true,
                export_macro_name: "export",
                default_bindings_module: $path,
            });
        }
    };
}

role_world!(selector_world, "selector-plugin", "crmsync_sdk::__private::selector_world",);
role_world!(mapper_world, "mapper-plugin", "crmsync_sdk::__private::mapper_world",);
role_world!(resolver_world, "resolver-plugin", "crmsync_sdk::__private::resolver_world",);

/// The contract's generated types.
pub use base::crmsync::plugin::types as wit;

use chrono::{DateTime, NaiveDate, Utc};

use crate::types::*;

pub fn select<T: crate::Selector>(
    plugin: &T,
    ctx: wit::Context,
    records: Vec<wit::SyncRecord>,
) -> Vec<wit::Selection> {
    let records: Vec<Record> = records.into_iter().map(record_from_wit).collect();
    crate::run_select(plugin, context_from_wit(ctx), &records).into_iter().map(selection_to_wit).collect()
}

pub fn map<T: crate::Mapper>(
    plugin: &T,
    ctx: wit::Context,
    records: Vec<wit::SyncRecord>,
) -> Vec<Result<wit::SyncRecord, wit::RecordError>> {
    let records = records.into_iter().map(record_from_wit).collect();
    crate::run_map(plugin, context_from_wit(ctx), records)
        .into_iter()
        .map(|r| r.map(record_to_wit).map_err(error_to_wit))
        .collect()
}

pub fn resolve<T: crate::Resolver>(
    plugin: &T,
    ctx: wit::Context,
    conflicts: Vec<wit::Conflict>,
) -> Vec<Result<wit::Resolution, wit::RecordError>> {
    let conflicts = conflicts
        .into_iter()
        .map(|c| Conflict {
            base: c.base.map(record_from_wit),
            salesforce: record_from_wit(c.salesforce),
            marketing: record_from_wit(c.marketing),
        })
        .collect();
    crate::run_resolve(plugin, context_from_wit(ctx), conflicts)
        .into_iter()
        .map(|r| r.map(resolution_to_wit).map_err(error_to_wit))
        .collect()
}

fn context_from_wit(ctx: wit::Context) -> Context<String> {
    Context {
        connection: ctx.connection,
        direction: match ctx.direction {
            wit::Direction::ToMarketing => Direction::ToMarketing,
            wit::Direction::ToSalesforce => Direction::ToSalesforce,
        },
        run_id: ctx.run_id,
        target: ctx.target,
        config: ctx.config,
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

fn system_to_wit(s: System) -> wit::System {
    match s {
        System::Salesforce => wit::System::Salesforce,
        System::ActiveCampaign => wit::System::Activecampaign,
        System::Mailchimp => wit::System::Mailchimp,
        System::Brevo => wit::System::Brevo,
    }
}

fn datetime_from_wit(t: wit::Datetime) -> DateTime<Utc> {
    DateTime::from_timestamp(t.seconds, t.nanoseconds).unwrap_or_default()
}

fn datetime_to_wit(t: DateTime<Utc>) -> wit::Datetime {
    wit::Datetime { seconds: t.timestamp(), nanoseconds: t.timestamp_subsec_nanos() }
}

fn value_from_wit(v: wit::Value) -> Value {
    match v {
        wit::Value::Null => Value::Null,
        wit::Value::Text(s) => Value::Text(s),
        wit::Value::Number(n) => Value::Number(n),
        wit::Value::Boolean(b) => Value::Boolean(b),
        wit::Value::Date(d) => NaiveDate::from_ymd_opt(d.year, d.month.into(), d.day.into())
            .map(Value::Date)
            .unwrap_or(Value::Null),
        wit::Value::Datetime(t) => Value::DateTime(datetime_from_wit(t)),
        // The host only sends canonical decimals; keep anything else as text
        // rather than lose it.
        wit::Value::Decimal(s) => s.parse().map(Value::Decimal).unwrap_or(Value::Text(s)),
        wit::Value::TextList(l) => Value::TextList(l),
    }
}

fn value_to_wit(v: Value) -> wit::Value {
    use chrono::Datelike;
    match v {
        Value::Null => wit::Value::Null,
        Value::Text(s) => wit::Value::Text(s),
        Value::Number(n) => wit::Value::Number(n),
        Value::Boolean(b) => wit::Value::Boolean(b),
        Value::Date(d) => {
            wit::Value::Date(wit::Date { year: d.year(), month: d.month() as u8, day: d.day() as u8 })
        }
        Value::DateTime(t) => wit::Value::Datetime(datetime_to_wit(t)),
        Value::Decimal(d) => wit::Value::Decimal(d.to_string()),
        Value::TextList(l) => wit::Value::TextList(l),
    }
}

fn record_from_wit(r: wit::SyncRecord) -> Record {
    Record {
        system: system_from_wit(r.system),
        object_type: r.object_type,
        id: r.id,
        fields: r.fields.into_iter().map(|f| (f.name, value_from_wit(f.value))).collect(),
        modified_at: r.modified_at.map(datetime_from_wit),
    }
}

fn record_to_wit(r: Record) -> wit::SyncRecord {
    wit::SyncRecord {
        system: system_to_wit(r.system),
        object_type: r.object_type,
        id: r.id,
        fields: r.fields.into_iter().map(|(name, v)| wit::Field { name, value: value_to_wit(v) }).collect(),
        modified_at: r.modified_at.map(datetime_to_wit),
    }
}

fn error_to_wit(e: RecordError) -> wit::RecordError {
    wit::RecordError { code: e.code, message: e.message, field: e.field }
}

fn selection_to_wit(s: Selection) -> wit::Selection {
    match s {
        Selection::Sync => wit::Selection::Sync,
        Selection::Skip(reason) => wit::Selection::Skip(reason),
        Selection::CreateAs(SalesforceObject::Lead) => wit::Selection::CreateAs(wit::SalesforceObject::Lead),
        Selection::CreateAs(SalesforceObject::Contact) => {
            wit::Selection::CreateAs(wit::SalesforceObject::Contact)
        }
    }
}

fn resolution_to_wit(r: Resolution) -> wit::Resolution {
    wit::Resolution {
        merged: r.merged.into_iter().map(|(name, v)| wit::Field { name, value: value_to_wit(v) }).collect(),
        winners: r
            .winners
            .into_iter()
            .map(|(field, side)| wit::FieldWinner {
                field,
                winner: match side {
                    Side::Salesforce => wit::Side::Salesforce,
                    Side::Marketing => wit::Side::Marketing,
                },
            })
            .collect(),
    }
}

/// Writes a log line through the host (on wasm) or to stderr (natively).
pub fn log(level: crate::log::Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    {
        use base::crmsync::plugin::logging as host;
        let level = match level {
            crate::log::Level::Trace => host::Level::Trace,
            crate::log::Level::Debug => host::Level::Debug,
            crate::log::Level::Info => host::Level::Info,
            crate::log::Level::Warn => host::Level::Warn,
            crate::log::Level::Error => host::Level::Error,
        };
        host::log(level, message);
    }
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message}");
}
