//! Black-box tests of the service: each starts the real server on port 0 with
//! a fresh SQLite file and talks to it over HTTP.

// Tests may panic: that is how they fail.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

#[path = "../common/mod.rs"]
mod common;

mod helpers;
mod pg;

/// This suite runs on SQLite; tests/api_postgres.rs runs it on PostgreSQL.
pub const POSTGRES: bool = false;

mod apple_model;
mod appstore;
mod backup;
mod browser;
mod check;
mod config;
mod connections;
mod console;
mod console_pages;
mod crash;
mod crash_events;
mod deliveries;
mod effects;
mod events;
mod fake_apple;
mod faults;
mod hardening;
mod health;
mod https;
mod instances;
mod jetstream;
mod leases;
mod ledger;
mod limits;
mod postgres;
mod quarantine;
mod rebuild;
mod receiver;
mod refunds;
mod shutdown;
mod subscriptions;
mod timeline;
mod users;
mod webhook;
mod xcode;
