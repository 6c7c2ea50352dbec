//! The library's parts, tested in process (the black-box suite is
//! tests/api/): one test target, where each file was one before. Every
//! target links the whole crate and its dependencies, and CI builds them
//! all: one link here instead of seventeen.

// Tests may panic: that is how they fail.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

#[path = "../common/mod.rs"]
mod common;

mod apple_status_model;
mod architecture;
mod chain;
mod check_rules;
mod cli_verify;
mod config_example;
mod conformance;
mod error_codes;
mod ledger_apple_model;
mod ledger_properties;
mod ledger_rules;
mod models;
mod nested_kinds;
mod notification;
mod properties;
mod store_contract;
mod timeline_properties;
