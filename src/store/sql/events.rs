//! The entitlement events' feed and retention, written once for every
//! backend (conventions in sql/mod.rs). Events are written by the fold
//! (ledger_tx.rs), in its transaction.

use sqlx::{ColumnIndex, Database, Decode, Type};

use crate::store::EventEntry;

use super::{ArgExt as _, Conn, Sql};

/// A page of `GET /v1/events`: after `($1, $2)`, of the types in `$3`, at
/// most `$4`.
fn events_after<C: Conn>() -> String {
    feed_after::<C>(
        "SELECT txid, id, CAST(data AS TEXT) AS data FROM entitlement_events",
        "AND ($3 = '' OR $3 LIKE '%,' || type || ',%')",
        "$4",
    )
}

/// Retention's removal of the events up to `($1, $2)` in the feed's order,
/// by seeking too: SQLite answered `txid < $1 OR (txid = $1 AND id <= $2)`
/// by reading every event, hourly, holding the write lock meanwhile.
fn prune_upto<C: Conn>() -> String {
    format!(
        "DELETE FROM entitlement_events WHERE {} <= {}",
        feed_key::<C>(),
        C::FEED_POSITION
    )
}

/// The feed's key as one value: its column, or a row of its columns.
fn feed_key<C: Conn>() -> String {
    match C::FEED_KEY {
        [column] => (*column).to_owned(),
        columns => format!("({})", columns.join(", ")),
    }
}

/// `ORDER BY` the feed's order, each column followed by `direction`
/// (`""`, or `" DESC"` for the reverse).
pub(super) fn feed_order<C: Conn>(direction: &str) -> String {
    let columns: Vec<String> = C::FEED_KEY
        .iter()
        .map(|column| format!("{column}{direction}"))
        .collect();
    format!("ORDER BY {}", columns.join(", "))
}

/// `select` from the feed: the events after the cursor `($1, $2)` that
/// `filter` (`AND ...`, parameters from `$3`) takes, in the feed's order, at
/// most `limit`. It reads from the cursor on: SQLite answered `txid > $1 OR
/// (txid = $1 AND id > $2)` by reading every event there was (by
/// `occurred_at`) and sorting them, for every page a consumer or an
/// endpoint's loop read.
pub(super) fn feed_after<C: Conn>(select: &str, filter: &str, limit: &str) -> String {
    format!(
        "{select} WHERE {} AND {} > {} {filter} {} LIMIT {limit}",
        C::VISIBLE_EVENTS,
        feed_key::<C>(),
        C::FEED_POSITION,
        feed_order::<C>("")
    )
}

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
        sqlx::query_as::<_, EventEntry>(sqlx::AssertSqlSafe(events_after::<C>()))
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
        let gone = sqlx::query(sqlx::AssertSqlSafe(prune_upto::<C>()))
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

#[cfg(test)]
mod tests {
    use sqlx::{Connection as _, SqliteConnection};

    use super::*;

    /// Each page of the feed (a consumer's, an endpoint's loop's) reads
    /// from its cursor on by index and sorts nothing, however many events
    /// the table holds; retention removes up to a position the same way,
    /// and the feed's end is found without sorting.
    /// PostgreSQL's plan is checked in tests/api/postgres.rs, at a size
    /// where its planner has a choice.
    #[tokio::test]
    async fn feed_pages_and_retention_seek_by_index_on_sqlite() {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        crate::store::migrations::SQLITE
            .run(&mut conn)
            .await
            .unwrap();
        use super::super::deliveries::{feed_end, feed_page};
        let seek = |range: &str| {
            vec![format!(
                "SEARCH entitlement_events USING INTEGER PRIMARY KEY (rowid{range}?)"
            )]
        };
        for (what, sql, expected) in [
            (
                "GET /v1/events",
                events_after::<SqliteConnection>(),
                seek(">"),
            ),
            (
                "an endpoint's fan-out",
                feed_page::<SqliteConnection>(),
                seek(">"),
            ),
            ("retention", prune_upto::<SqliteConnection>(), seek("<")),
            // The last row by rowid: a scan that stops at once, no sort.
            (
                "the feed's end",
                feed_end::<SqliteConnection>(),
                vec!["SCAN entitlement_events".to_owned()],
            ),
        ] {
            let plan: Vec<(i64, i64, i64, String)> =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
            let plan: Vec<String> = plan.into_iter().map(|(_, _, _, step)| step).collect();
            assert_eq!(plan, expected, "{what}");
        }
    }
}
