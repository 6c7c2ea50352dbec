//! The entitlement events' feed and retention, written once for every
//! backend (conventions in sql/mod.rs). Events are written by the fold
//! (ledger_tx.rs), in its transaction.

use sqlx::{ColumnIndex, Database, Decode, Type};

use crate::store::EventEntry;

use super::{ArgExt as _, Conn, Sql};

impl<C> Sql<C>
where
    C: Conn,
    for<'r> i64: Decode<'r, C::Db> + Type<C::Db>,
    for<'r> String: Decode<'r, C::Db> + Type<C::Db>,
    for<'a> &'a str: ColumnIndex<<C::Db as Database>::Row>,
    usize: ColumnIndex<<C::Db as Database>::Row>,
{
    /// Up to `limit` events after `(txid, id)` in the feed's order, of the
    /// kinds in `types` (`,A,B,`; empty for every kind).
    pub(in crate::store) async fn events_after(
        conn: &mut C,
        after: (i64, i64),
        limit: i64,
        types: &str,
    ) -> Result<Vec<EventEntry>, sqlx::Error> {
        let sql = format!(
            "SELECT txid, id, CAST(data AS TEXT) AS data FROM entitlement_events
             WHERE {} AND (txid > $1 OR (txid = $1 AND id > $2))
               AND ($3 = '' OR $3 LIKE '%,' || type || ',%')
             ORDER BY txid, id LIMIT $4",
            C::VISIBLE_EVENTS
        );
        sqlx::query_as::<_, EventEntry>(sqlx::AssertSqlSafe(sql))
            .arg(after.0)
            .arg(after.1)
            .arg(types)
            .arg(limit)
            .fetch_all(conn.ex())
            .await
    }

    pub(in crate::store) async fn events_of_item(
        conn: &mut C,
        item: &crate::ledger::ItemKey,
    ) -> Result<Vec<EventEntry>, sqlx::Error> {
        sqlx::query_as::<_, EventEntry>(
            "SELECT txid, id, CAST(data AS TEXT) AS data FROM entitlement_events
             WHERE kind = $1 AND item_id = $2 ORDER BY sequence",
        )
        .arg(item.kind())
        .arg(item.id())
        .fetch_all(conn.ex())
        .await
    }

    /// The last `(txid, id)` retention removed, if any.
    pub(in crate::store) async fn events_pruned(
        conn: &mut C,
    ) -> Result<Option<(i64, i64)>, sqlx::Error> {
        sqlx::query_as("SELECT txid, id FROM events_pruned WHERE one = 1")
            .fetch_optional(conn.ex())
            .await
    }

    /// Removes the events that occurred before `before`, with every event
    /// before them in the feed's order, and keeps how far it went; how many
    /// went.
    pub(in crate::store) async fn prune_events(
        tx: &mut C,
        before: i64,
    ) -> Result<u64, sqlx::Error> {
        let last: Option<(i64, i64)> = sqlx::query_as(
            "SELECT txid, id FROM entitlement_events WHERE occurred_at < $1
             ORDER BY txid DESC, id DESC LIMIT 1",
        )
        .arg(before)
        .fetch_optional(tx.ex())
        .await?;
        let Some((txid, id)) = last else {
            return Ok(0);
        };
        // Deliveries of events retention removes go with them.
        sqlx::query("DELETE FROM event_deliveries WHERE created_at < $1")
            .arg(before)
            .execute(tx.ex())
            .await?;
        let gone = sqlx::query(
            "DELETE FROM entitlement_events WHERE txid < $1 OR (txid = $1 AND id <= $2)",
        )
        .arg(txid)
        .arg(id)
        .execute(tx.ex())
        .await?;
        sqlx::query(
            "INSERT INTO events_pruned (one, txid, id) VALUES (1, $1, $2)
             ON CONFLICT (one) DO UPDATE SET txid = excluded.txid, id = excluded.id",
        )
        .arg(txid)
        .arg(id)
        .execute(tx.ex())
        .await?;
        Ok(super::RowsAffected::rows_affected(&gone))
    }
}
