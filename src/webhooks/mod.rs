//! Entitlement events delivered to `[[events.endpoints]]` as signed
//! webhooks, in the Standard Webhooks convention so that consumers check
//! them with an existing library: the signature ([`sign`]), when a failed
//! delivery is tried again ([`next_attempt`]), and the job that sends
//! ([`Deliverer`]).

mod deliver;
mod retry;
mod signature;
mod sink;

pub use deliver::{body, spawn_deliveries, Deliverer};
pub use retry::{next_attempt, GIVE_UP_AFTER_MS, SCHEDULE_MS, THEN_EVERY_MS};
pub use signature::sign;
