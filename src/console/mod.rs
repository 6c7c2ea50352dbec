//! The support console's domain: who may open it (users, roles, password
//! hashes) and how a customer's story is told (timeline).

pub mod timeline;
pub mod users;
