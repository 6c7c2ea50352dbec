//! The black-box suite again, each test on a fresh PostgreSQL database (on
//! the server `APPSTORE_LEDGER_TEST_POSTGRES` names): the webhook,
//! quarantine, health, ledger, queries, checker, rebuild and the App Store
//! Server API, kill -9 under load, and the periodic jobs' lease between two
//! instances. Left out: what is about SQLite's files (faults, limits), the
//! process and HTTP alone (shutdown, config, connections, https), and what
//! runs on PostgreSQL by itself (postgres.rs, instances.rs). Without a server each
//! test says `skipped:` and runs on SQLite.

// Tests may panic: that is how they fail.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

#[path = "common/mod.rs"]
mod common;

// The helpers serve the whole suite; this part of it leaves some unused.
#[allow(dead_code, unused_imports)]
#[path = "api/helpers.rs"]
mod helpers;
#[allow(dead_code)]
#[path = "api/pg.rs"]
mod pg;

/// Every TestApp here runs on PostgreSQL.
pub const POSTGRES: bool = true;

#[path = "api/apple_model.rs"]
mod apple_model;
#[path = "api/appstore/mod.rs"]
mod appstore;
#[path = "api/check.rs"]
mod check;
#[path = "api/console.rs"]
mod console;
#[path = "api/console_pages.rs"]
mod console_pages;
#[path = "api/crash.rs"]
mod crash;
#[path = "api/crash_events.rs"]
mod crash_events;
#[path = "api/deliveries.rs"]
mod deliveries;
#[path = "api/effects.rs"]
mod effects;
#[path = "api/events.rs"]
mod events;
#[allow(dead_code)]
#[path = "api/fake_apple.rs"]
mod fake_apple;
#[path = "api/hardening.rs"]
mod hardening;
#[path = "api/health.rs"]
mod health;
#[path = "api/jetstream.rs"]
mod jetstream;
#[allow(dead_code)]
#[path = "api/leases.rs"]
mod leases;
#[path = "api/ledger.rs"]
mod ledger;
#[path = "api/quarantine.rs"]
mod quarantine;
#[path = "api/rebuild.rs"]
mod rebuild;
#[allow(dead_code)]
#[path = "api/receiver.rs"]
mod receiver;
#[path = "api/refunds.rs"]
mod refunds;
#[path = "api/subscriptions.rs"]
mod subscriptions;
#[path = "api/timeline.rs"]
mod timeline;
#[path = "api/users.rs"]
mod users;
#[path = "api/webhook.rs"]
mod webhook;
#[path = "api/xcode.rs"]
mod xcode;
