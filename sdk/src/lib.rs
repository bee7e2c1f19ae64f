//! # crmsync-sdk: write crmsync rules in Rust
//!
//! A crmsync plugin is a WebAssembly component that plays one or more roles:
//!
//! - a [`Selector`] decides which records sync (sync, skip with a reason, or —
//!   for marketing-side records — create in Salesforce as a Lead or Contact);
//! - a [`Mapper`] turns a record of one system into a record of the other, or
//!   reports why it cannot ([`RecordError`]);
//! - a [`Resolver`] merges a linked record changed on both sides.
//!
//! Implement the trait for a type with a `Default`, then export it with one
//! macro: [`export_selector!`], [`export_mapper!`], [`export_resolver!`], or
//! [`export_rules!`] for all three. Build with
//! `cargo build --release --target wasm32-wasip2`.
//!
//! ```ignore
//! use crmsync_sdk::prelude::*;
//!
//! #[derive(Default)]
//! struct Upper;
//!
//! impl Mapper for Upper {
//!     type Config = NoConfig;
//!     fn map(&self, _ctx: &Context<NoConfig>, record: Record) -> Result<Record, RecordError> {
//!         let mut out = Record::new(System::ActiveCampaign, "contact");
//!         if let Some(name) = record.text("LastName") {
//!             out.set("lastName", name.to_uppercase());
//!         }
//!         Ok(out)
//!     }
//! }
//!
//! crmsync_sdk::export_mapper!(Upper);
//! ```
//!
//! Rule logic is plain Rust: test it natively with [`testing`], without
//! building WebAssembly.
//!
//! # Layout
//! - [`types`]: the contract's types (values, records, verdicts) and their JSON form.
//! - [`convert`]: typed value helpers (currency, dates, phones, emails, picklists).
//! - [`log`]: logging through the host.
//! - [`fixtures`]: the fixture format and its one runner (also the host's).
//! - [`testing`]: the native harness, which runs fixtures natively too.
//! - `__private`: the generated bindings and the glue the export macros use.
//!   Not part of the API.

pub mod convert;
pub mod fixtures;
pub mod log;
pub mod testing;
pub mod types;

pub use fixtures::Role;
pub use types::*;

/// The contract version this SDK builds plugins for.
pub const CONTRACT_VERSION: &str = "1.0.0";

/// Everything a plugin usually needs.
pub mod prelude {
    pub use crate::convert;
    pub use crate::types::*;
    pub use crate::{Mapper, Resolver, Selector};
    pub use chrono::{DateTime, NaiveDate, Utc};
    pub use rust_decimal::Decimal;
}

use serde::de::DeserializeOwned;

/// Decides which records sync.
pub trait Selector: Default + 'static {
    /// The plugin's config section, parsed from JSON. Use [`NoConfig`] for none.
    type Config: DeserializeOwned;

    /// The verdict for one record.
    fn select(&self, ctx: &Context<Self::Config>, record: &Record) -> Selection;

    /// The verdicts for a batch; by default [`Selector::select`] per record.
    fn select_batch(&self, ctx: &Context<Self::Config>, records: &[Record]) -> Vec<Selection> {
        records.iter().map(|r| self.select(ctx, r)).collect()
    }
}

/// Maps records of one system to records of the other.
pub trait Mapper: Default + 'static {
    type Config: DeserializeOwned;

    /// The target record for one source record, or why it cannot be mapped.
    fn map(&self, ctx: &Context<Self::Config>, record: Record) -> Result<Record, RecordError>;

    /// The results for a batch; by default [`Mapper::map`] per record.
    fn map_batch(
        &self,
        ctx: &Context<Self::Config>,
        records: Vec<Record>,
    ) -> Vec<Result<Record, RecordError>> {
        records.into_iter().map(|r| self.map(ctx, r)).collect()
    }
}

/// Merges linked records changed on both sides.
pub trait Resolver: Default + 'static {
    type Config: DeserializeOwned;

    fn resolve(&self, ctx: &Context<Self::Config>, conflict: Conflict) -> Result<Resolution, RecordError>;

    /// The results for a batch; by default [`Resolver::resolve`] per conflict.
    fn resolve_batch(
        &self,
        ctx: &Context<Self::Config>,
        conflicts: Vec<Conflict>,
    ) -> Vec<Result<Resolution, RecordError>> {
        conflicts.into_iter().map(|c| self.resolve(ctx, c)).collect()
    }
}

/// Parses the raw context's config for a plugin; the error is what every
/// record of the batch gets when the config is unusable.
pub fn parse_context<C: DeserializeOwned>(ctx: Context<String>) -> Result<Context<C>, RecordError> {
    let text = if ctx.config.trim().is_empty() { "{}" } else { ctx.config.as_str() };
    let config = serde_json::from_str(text).map_err(|e| {
        RecordError::new("bad-config", format!("the plugin's config is not valid for it: {e}"))
    })?;
    Ok(Context {
        connection: ctx.connection,
        direction: ctx.direction,
        run_id: ctx.run_id,
        target: ctx.target,
        config,
    })
}

/// Runs a selector over a batch, as the exported component does. A selection
/// has no error (contract 1.0), so a config the selector cannot use fails the
/// call — the host reports it as an error naming the plugin — rather than
/// skipping every record.
pub fn run_select<T: Selector>(plugin: &T, ctx: Context<String>, records: &[Record]) -> Vec<Selection> {
    match parse_context(ctx) {
        Ok(ctx) => plugin.select_batch(&ctx, records),
        Err(e) => panic!("{e}"),
    }
}

/// Runs a mapper over a batch, as the exported component does.
pub fn run_map<T: Mapper>(
    plugin: &T,
    ctx: Context<String>,
    records: Vec<Record>,
) -> Vec<Result<Record, RecordError>> {
    match parse_context(ctx) {
        Ok(ctx) => plugin.map_batch(&ctx, records),
        Err(e) => records.iter().map(|_| Err(e.clone())).collect(),
    }
}

/// Runs a resolver over a batch, as the exported component does.
pub fn run_resolve<T: Resolver>(
    plugin: &T,
    ctx: Context<String>,
    conflicts: Vec<Conflict>,
) -> Vec<Result<Resolution, RecordError>> {
    match parse_context(ctx) {
        Ok(ctx) => plugin.resolve_batch(&ctx, conflicts),
        Err(e) => conflicts.iter().map(|_| Err(e.clone())).collect(),
    }
}

#[doc(hidden)]
pub mod __private;

/// Exports a [`Selector`] as the component's `selector` role.
#[macro_export]
macro_rules! export_selector {
    ($plugin:ty) => {
        // Natively (tests, benchmarks) the rule logic is called through the
        // harness; only the wasm build exports the role.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            static PLUGIN: ::std::sync::OnceLock<$plugin> = ::std::sync::OnceLock::new();
            struct Export;
            impl $crate::__private::selector_world::exports::crmsync::plugin::selector::Guest for Export {
                fn select(
                    ctx: $crate::__private::wit::Context,
                    records: ::std::vec::Vec<$crate::__private::wit::SyncRecord>,
                ) -> ::std::vec::Vec<$crate::__private::wit::Selection> {
                    $crate::__private::select(PLUGIN.get_or_init(::std::default::Default::default), ctx, records)
                }
            }
            $crate::__private::selector_world::export!(Export with_types_in $crate::__private::selector_world);
        };
    };
}

/// Exports a [`Mapper`] as the component's `mapper` role.
#[macro_export]
macro_rules! export_mapper {
    ($plugin:ty) => {
        // Natively (tests, benchmarks) the rule logic is called through the
        // harness; only the wasm build exports the role.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            static PLUGIN: ::std::sync::OnceLock<$plugin> = ::std::sync::OnceLock::new();
            struct Export;
            impl $crate::__private::mapper_world::exports::crmsync::plugin::mapper::Guest for Export {
                fn map_records(
                    ctx: $crate::__private::wit::Context,
                    records: ::std::vec::Vec<$crate::__private::wit::SyncRecord>,
                ) -> ::std::vec::Vec<
                    ::std::result::Result<
                        $crate::__private::wit::SyncRecord,
                        $crate::__private::wit::RecordError,
                    >,
                > {
                    $crate::__private::map(PLUGIN.get_or_init(::std::default::Default::default), ctx, records)
                }
            }
    $crate::__private::mapper_world::export!(Export with_types_in $crate::__private::mapper_world);
        };
    };
}

/// Exports a [`Resolver`] as the component's `resolver` role.
#[macro_export]
macro_rules! export_resolver {
    ($plugin:ty) => {
        // Natively (tests, benchmarks) the rule logic is called through the
        // harness; only the wasm build exports the role.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            static PLUGIN: ::std::sync::OnceLock<$plugin> = ::std::sync::OnceLock::new();
            struct Export;
            impl $crate::__private::resolver_world::exports::crmsync::plugin::resolver::Guest for Export {
                fn resolve(
                    ctx: $crate::__private::wit::Context,
                    conflicts: ::std::vec::Vec<$crate::__private::wit::Conflict>,
                ) -> ::std::vec::Vec<
                    ::std::result::Result<$crate::__private::wit::Resolution, $crate::__private::wit::RecordError>,
                > {
                    $crate::__private::resolve(PLUGIN.get_or_init(::std::default::Default::default), ctx, conflicts)
                }
            }
            $crate::__private::resolver_world::export!(Export with_types_in $crate::__private::resolver_world);
        };
    };
}

/// Exports all three roles from one component (the contract's `rules` world):
/// the three single-role exports, merged into one component by the build.
#[macro_export]
macro_rules! export_rules {
    (selector = $selector:ty, mapper = $mapper:ty, resolver = $resolver:ty $(,)?) => {
        $crate::export_selector!($selector);
        $crate::export_mapper!($mapper);
        $crate::export_resolver!($resolver);
    };
}
