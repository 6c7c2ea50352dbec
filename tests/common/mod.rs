#![allow(dead_code)]

pub mod bench;
pub mod db;
pub mod payloads;
pub mod pki;

/// The variable under which a skip fails its test: `.ci/run` sets it, so
/// that CI cannot pass a test that did not run.
pub const REQUIRE_ALL: &str = "APPSTORE_LEDGER_REQUIRE_ALL";

/// Says that a test cannot run here and why (a server or a tool is
/// missing); the caller then returns. On a newcomer's machine the test
/// passes saying `skipped: why` on stderr (written directly: the harness
/// captures `eprintln!` of passing tests); where `APPSTORE_LEDGER_REQUIRE_ALL=1`
/// it fails, naming what was missing.
pub fn skip(why: &str) {
    if std::env::var(REQUIRE_ALL).is_ok_and(|v| v == "1") {
        panic!("skipped where every test must run ({REQUIRE_ALL}=1): {why}");
    }
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipped: {why}");
}
