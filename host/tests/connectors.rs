//! Connector tests: real HTTP over loopback against the in-process vendor
//! sandbox (no mocks). Call counts come from the sandbox's `/__sandbox/calls`.

#[path = "connectors/activecampaign.rs"]
mod activecampaign;
#[path = "connectors/common.rs"]
mod common;
#[path = "connectors/salesforce.rs"]
mod salesforce;
