//! The black-box suite's ledger, query and checker tests again, each on a
//! fresh PostgreSQL database (on the server `APPSTORE_LEDGER_TEST_POSTGRES`
//! names); then what only several instances on one database can show.
//! Without a server each says `skipped:` and runs on SQLite.

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

#[path = "api/check.rs"]
mod check;
#[path = "api/effects.rs"]
mod effects;
#[allow(dead_code)]
#[path = "api/ledger.rs"]
mod ledger;
#[path = "api/rebuild.rs"]
mod rebuild;
#[path = "api/refunds.rs"]
mod refunds;
#[path = "api/subscriptions.rs"]
mod subscriptions;
#[path = "api/timeline.rs"]
mod timeline;
