//! The support console: who may open it (users, roles, password hashes).

pub mod users;
