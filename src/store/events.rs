//! The entitlement events' part of the store: the feed and retention
//! (statements in sql/events.rs).

use super::*;

row_struct! {
/// An entitlement event as the feed gives it: its place in the feed's
/// order and the event itself (JSON, as consumers receive it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventEntry {
    pub txid: i64,
    pub id: i64,
    pub data: String,
}
}

impl Store {
    /// Up to `limit` events after `after` in the feed's order, of the
    /// kinds in `types` (all when empty).
    pub async fn events_after(
        &self,
        after: (i64, i64),
        limit: i64,
        types: &[&str],
    ) -> Result<Vec<EventEntry>, StoreError> {
        let types = if types.is_empty() {
            String::new()
        } else {
            format!(",{},", types.join(","))
        };
        on_read!(self, |conn| Sql::events_after(conn, after, limit, &types)
            .await)
    }

    /// The events of `item`, by sequence.
    pub async fn events_of_item(&self, item: &ItemKey) -> Result<Vec<EventEntry>, StoreError> {
        on_read!(self, |conn| Sql::events_of_item(conn, item).await)
    }

    /// How far retention has removed events, in the feed's order.
    pub async fn events_pruned(&self) -> Result<Option<(i64, i64)>, StoreError> {
        on_read!(self, |conn| Sql::events_pruned(conn).await)
    }

    /// Removes the events that occurred before `before`; how many went.
    pub async fn prune_events(&self, before: i64) -> Result<u64, StoreError> {
        on_write!(self, |tx| Sql::prune_events(tx, before).await)
    }
}
