//! Statements written once for every backend. Each file holds a macro that
//! a backend module invokes with its connection type and the few words its
//! dialect says differently; see ledger_tx.rs for the conventions.

pub(super) mod appstore;
pub(super) mod console;
pub(super) mod copy;
pub(super) mod findings;
pub(super) mod leases;
pub(super) mod ledger_tx;
pub(super) mod read;
pub(super) mod users;
