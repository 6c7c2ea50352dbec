//! Black-box tests of the service: each starts the real server on port 0 with
//! a fresh SQLite file and talks to it over HTTP; most of them again on a
//! fresh PostgreSQL database (`on_postgres!`).

// Tests may panic: that is how they fail.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

/// `on_postgres! { test, ... }` at the end of a module: those tests again,
/// each on a fresh PostgreSQL database (the server
/// `APPSTORE_LEDGER_TEST_POSTGRES` names), as `module::on_postgres::test`.
/// The tests are compiled once and called again: where a second test
/// target compiled every module a second time (13 of the build's 265
/// CPU-seconds here). Left out: what is about SQLite's files (faults,
/// limits), the process and HTTP alone (shutdown, config, connections,
/// https), and what runs on PostgreSQL by itself (postgres.rs,
/// instances.rs). Without a server each says `skipped:` and runs on SQLite
/// (in CI, where no test may skip, it fails).
macro_rules! on_postgres {
    ($($test:ident),* $(,)?) => {
        mod on_postgres {
            $(
                #[test]
                fn $test() {
                    // The backend is told by this thread's name, the test's
                    // (helpers::on_suite_backend).
                    super::$test()
                }
            )*
        }
    };
}

#[path = "../common/mod.rs"]
mod common;

mod helpers;
mod pg;

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
