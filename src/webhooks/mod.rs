//! Entitlement events delivered to `[[events.endpoints]]` as signed
//! webhooks, in the Standard Webhooks convention so that consumers check
//! them with an existing library: the signature ([`sign`]), when a failed
//! delivery is tried again ([`next_attempt`]), and the job that sends
//! ([`Deliverer`]).

mod deliver;
mod retry;
mod signature;
mod sink;

pub use deliver::{body, spawn_deliveries, Deliverer, Round};
pub use retry::{next_attempt, GIVE_UP_AFTER_MS, SCHEDULE_MS, THEN_EVERY_MS};
pub use signature::sign;

use crate::config::{takes, EventsSettings};
use crate::store::{Store, StoreError};

/// Queues again for the sink `name` every event since `since` that it
/// takes (by its `types` and `apps`), delivered ones too; how many, or
/// `None` when no sink is so named. For `events replay` and the console.
pub async fn replay(
    store: &Store,
    events: &EventsSettings,
    name: &str,
    since: i64,
) -> Result<Option<u64>, StoreError> {
    let Some((types, apps)) = events.filter(name) else {
        return Ok(None);
    };
    let wants = |e: &crate::store::FeedEvent| {
        takes(
            types.as_deref(),
            apps.as_deref(),
            &e.event_type,
            e.bundle_id().as_deref(),
        )
    };
    store.replay_events(name, since, wants).await.map(Some)
}
