//! appstore-ledger: receives App Store Server Notifications V2, proves each one
//! genuine, and keeps the truth about every customer's purchases.

pub mod cli;
pub mod jws;
pub mod model;
