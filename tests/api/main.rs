//! Black-box tests of the service: each starts the real server on port 0 with
//! a fresh SQLite file and talks to it over HTTP.

#[path = "../common/mod.rs"]
mod common;

mod helpers;

mod check;
mod config;
mod crash;
mod health;
mod https;
mod ledger;
mod quarantine;
mod rebuild;
mod shutdown;
mod webhook;
