//! appstore-ledger: receives App Store Server Notifications V2, proves each one
//! genuine, and keeps the truth about every customer's purchases.

pub mod appstore_api;
pub mod check;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod consumption;
pub mod finding;
pub mod http;
pub mod ingest;
pub mod jws;
pub mod lease;
pub mod ledger;
pub mod metrics;
pub mod model;
pub mod retention;
pub mod startup;
pub mod stop;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod webhooks;
