//! The support console's domain: who may open it (users, roles, password
//! hashes) and how a customer's story is told (timeline).

// Values from outside (dates, prices, counts Apple signed or a request
// sent) pass through here: arithmetic is checked or saturating, so that no
// value can overflow into a panic or a wrapped answer; an exception says
// why it cannot overflow.
#![warn(clippy::arithmetic_side_effects)]

pub mod timeline;
pub mod users;
