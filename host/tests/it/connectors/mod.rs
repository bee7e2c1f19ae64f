//! Connector tests: real HTTP over loopback against the in-process vendor
//! sandbox (no mocks). Call counts come from the sandbox's `/__sandbox/calls`.

mod activecampaign;
pub(crate) mod common;
mod salesforce;
