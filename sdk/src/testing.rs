//! The native harness: run a plugin's rule logic as plain Rust, with the same
//! config parsing and batching the exported component uses, so rules can be
//! unit-tested (and benchmarked) without building WebAssembly.
//!
//! ```ignore
//! let out = crmsync_sdk::testing::Harness::new(r#"{"marketing": "activecampaign"}"#)
//!     .map(&MyMapper::default(), vec![lead]);
//! ```

use crate::types::*;
use crate::{Mapper, Resolver, Selector};

/// A call context for tests: connection `test`, run `test-run`, to-marketing.
#[derive(Debug, Clone)]
pub struct Harness {
    pub ctx: Context<String>,
}

impl Harness {
    /// A harness whose calls carry `config` (JSON text) as the plugin's config.
    pub fn new(config: &str) -> Self {
        Harness {
            ctx: Context {
                connection: "test".into(),
                direction: Direction::ToMarketing,
                run_id: "test-run".into(),
                target: None,
                config: config.into(),
            },
        }
    }

    /// Builder-style: sets the direction.
    pub fn direction(mut self, direction: Direction) -> Self {
        self.ctx.direction = direction;
        self
    }

    /// Builder-style: sets the target object type.
    pub fn target(mut self, target: &str) -> Self {
        self.ctx.target = Some(target.into());
        self
    }

    pub fn select<T: Selector>(&self, plugin: &T, records: &[Record]) -> Vec<Selection> {
        crate::run_select(plugin, self.ctx.clone(), records)
    }

    pub fn map<T: Mapper>(&self, plugin: &T, records: Vec<Record>) -> Vec<Result<Record, RecordError>> {
        crate::run_map(plugin, self.ctx.clone(), records)
    }

    pub fn resolve<T: Resolver>(
        &self,
        plugin: &T,
        conflicts: Vec<Conflict>,
    ) -> Vec<Result<Resolution, RecordError>> {
        crate::run_resolve(plugin, self.ctx.clone(), conflicts)
    }
}
