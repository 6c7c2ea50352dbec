//! Webhook deliveries' statements, written once for every backend
//! (conventions in sql/mod.rs): the endpoints' cursors over the feed, the
//! deliveries, their claims and results.

use std::collections::{BTreeMap, HashSet};

use sqlx::{ColumnIndex, Database, Decode, QueryBuilder, Type};

use crate::store::deliveries::Claimed;
use crate::store::{
    DeliveryEntry, DeliveryOutcome, DeliveryResult, DeliveryRow, EndpointHealth, FeedEvent,
    NewDelivery,
};

use super::events::{feed_after, feed_order};
use super::ledger_tx::ROWS_PER_STATEMENT;
use super::{ArgExt as _, Conn, RowsAffected as _, Sql};

const FEED_EVENT: &str = "SELECT txid, id, event_id, kind, item_id, sequence, type AS event_type,
        occurred_at, CAST(data AS TEXT) AS data FROM entitlement_events";

/// An endpoint's page of the feed: after `($1, $2)`, occurred at or after
/// `$3`, at most `$4`.
pub(super) fn feed_page<C: Conn>() -> String {
    feed_after::<C>(FEED_EVENT, "AND occurred_at >= $3", "$4")
}

/// The feed's last event shown now: where an endpoint met for the first
/// time starts (at every start-up, in a write transaction; on SQLite
/// `ORDER BY txid DESC, id DESC` sorted every event to find it).
pub(super) fn feed_end<C: Conn>() -> String {
    format!(
        "SELECT txid, id FROM entitlement_events WHERE {} {} LIMIT 1",
        C::VISIBLE_EVENTS,
        feed_order::<C>(" DESC")
    )
}

const DELIVERY_ENTRY: &str = "SELECT endpoint, event_id, state, attempts, next_attempt_at,
        last_attempt_at, last_status, last_error, delivered_at FROM event_deliveries";

/// A row for an event sent before any row was written.
struct FreshRow<'a> {
    new: &'a NewDelivery,
    state: &'static str,
    attempts: i64,
    next_attempt_at: i64,
    attempted_at: Option<i64>,
    status: Option<i64>,
    error: Option<&'a str>,
}

impl<C> Sql<C>
where
    C: Conn,
    for<'r> i64: Decode<'r, C::Db> + Type<C::Db>,
    for<'r> String: Decode<'r, C::Db> + Type<C::Db>,
    for<'a> &'a str: ColumnIndex<<C::Db as Database>::Row>,
    usize: ColumnIndex<<C::Db as Database>::Row>,
{
    pub(in crate::store) async fn endpoint_cursor(
        conn: &mut C,
        endpoint: &str,
    ) -> Result<Option<(i64, i64)>, sqlx::Error> {
        sqlx::query_as("SELECT cursor_txid, cursor_id FROM event_endpoints WHERE name = $1")
            .arg(endpoint)
            .fetch_optional(conn.ex())
            .await
    }

    /// Opens an endpoint at the feed's end (once).
    pub(in crate::store) async fn open_endpoint(
        tx: &mut C,
        endpoint: &str,
    ) -> Result<(), sqlx::Error> {
        let end: Option<(i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(feed_end::<C>()))
            .fetch_optional(tx.ex())
            .await?;
        let (txid, id) = end.unwrap_or((0, 0));
        sqlx::query(
            "INSERT INTO event_endpoints (name, cursor_txid, cursor_id) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING",
        )
        .arg(endpoint)
        .arg(txid)
        .arg(id)
        .execute(tx.ex())
        .await
        .map(drop)
    }

    /// Up to `limit` events after `after` in the feed's order that
    /// occurred at or after `since`.
    pub(in crate::store) async fn feed_page(
        conn: &mut C,
        after: (i64, i64),
        since: i64,
        limit: i64,
    ) -> Result<Vec<FeedEvent>, sqlx::Error> {
        sqlx::query_as::<_, FeedEvent>(sqlx::AssertSqlSafe(feed_page::<C>()))
            .arg(after.0)
            .arg(after.1)
            .arg(since)
            .arg(limit)
            .fetch_all(conn.ex())
            .await
    }

    /// New deliveries, due now (an event already delivered there stays
    /// as it is).
    pub(in crate::store) async fn insert_deliveries(
        tx: &mut C,
        endpoint: &str,
        deliveries: &[&NewDelivery],
        now: i64,
    ) -> Result<(), sqlx::Error> {
        Self::put_deliveries(tx, endpoint, deliveries, now, "DO NOTHING").await
    }

    /// Deliveries due now, as `conflict` says for events already there.
    async fn put_deliveries(
        tx: &mut C,
        endpoint: &str,
        deliveries: &[&NewDelivery],
        now: i64,
        conflict: &str,
    ) -> Result<(), sqlx::Error> {
        for batch in deliveries.chunks(ROWS_PER_STATEMENT) {
            let mut query = QueryBuilder::new(
                "INSERT INTO event_deliveries (endpoint, event_id, item_key, sequence, state,
                     attempts, created_at, next_attempt_at) ",
            );
            query.push_values(batch, |mut row, d| {
                row.arg(endpoint)
                    .arg(d.event_id.as_str())
                    .arg(d.item_key.as_str())
                    .arg(d.sequence)
                    .arg("PENDING")
                    .arg(0i64)
                    .arg(now)
                    .arg(now);
            });
            query.push(" ON CONFLICT (endpoint, event_id) ");
            query.push(conflict);
            query.build().execute(tx.ex()).await?;
        }
        Ok(())
    }

    /// Takes the endpoint's next page of the feed, the one after `cursor`,
    /// for the round `claim` until `until`: unless another round holds it
    /// (its lease not lapsed) or has moved the cursor since. Whether the
    /// endpoint is disabled, when taken.
    pub(in crate::store) async fn take_fan_out(
        tx: &mut C,
        endpoint: &str,
        cursor: (i64, i64),
        claim: &str,
        now: i64,
        until: i64,
    ) -> Result<Option<bool>, sqlx::Error> {
        let taken: Option<(Option<i64>,)> = sqlx::query_as(
            "UPDATE event_endpoints SET fan_out_by = $2, fan_out_until = $3
             WHERE name = $1 AND cursor_txid = $4 AND cursor_id = $5
               AND (fan_out_until IS NULL OR fan_out_until <= $6)
             RETURNING disabled_at",
        )
        .arg(endpoint)
        .arg(claim)
        .arg(until)
        .arg(cursor.0)
        .arg(cursor.1)
        .arg(now)
        .fetch_optional(tx.ex())
        .await?;
        Ok(taken.map(|(disabled_at,)| disabled_at.is_some()))
    }

    /// Moves the endpoint's cursor to `to` and lets its page go, if the
    /// round `claim` still holds it: a round whose lease lapsed leaves the
    /// page to the round that took it over, which sends it again.
    pub(in crate::store) async fn end_fan_out(
        tx: &mut C,
        endpoint: &str,
        claim: &str,
        to: (i64, i64),
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE event_endpoints SET cursor_txid = $3, cursor_id = $4,
                 fan_out_by = NULL, fan_out_until = NULL
             WHERE name = $1 AND fan_out_by = $2",
        )
        .arg(endpoint)
        .arg(claim)
        .arg(to.0)
        .arg(to.1)
        .execute(tx.ex())
        .await
        .map(drop)
    }

    /// Which of these items have a delivery to the endpoint still to make:
    /// their next event waits for it.
    pub(in crate::store) async fn items_pending(
        tx: &mut C,
        endpoint: &str,
        item_keys: &[&str],
    ) -> Result<HashSet<String>, sqlx::Error> {
        let mut pending = HashSet::new();
        for batch in item_keys.chunks(ROWS_PER_STATEMENT) {
            let mut query = QueryBuilder::new(
                "SELECT DISTINCT item_key FROM event_deliveries
                 WHERE state = 'PENDING' AND endpoint = ",
            );
            (&mut query).arg(endpoint);
            query.push(" AND item_key IN (");
            let mut keys = query.separated(", ");
            for key in batch {
                keys.arg(*key);
            }
            query.push(")");
            let found: Vec<(String,)> = query.build_query_as().fetch_all(tx.ex()).await?;
            pending.extend(found.into_iter().map(|(key,)| key));
        }
        Ok(pending)
    }

    /// Delivers events again: pending at once, attempts counted afresh.
    pub(in crate::store) async fn send_again(
        tx: &mut C,
        endpoint: &str,
        deliveries: &[&NewDelivery],
        now: i64,
    ) -> Result<(), sqlx::Error> {
        Self::put_deliveries(
            tx,
            endpoint,
            deliveries,
            now,
            "DO UPDATE SET state = 'PENDING', attempts = 0,
                 created_at = excluded.created_at, next_attempt_at = excluded.next_attempt_at,
                 first_attempt_at = NULL, claimed_by = NULL, claimed_until = NULL",
        )
        .await
    }

    pub(in crate::store) async fn deliveries_due(
        conn: &mut C,
        endpoint: &str,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let due: Option<i64> = sqlx::query_scalar(
            "SELECT d.id FROM event_deliveries d
             WHERE d.endpoint = $1 AND d.state = 'PENDING' AND d.next_attempt_at <= $2
               AND (d.claimed_until IS NULL OR d.claimed_until <= $2)
               AND NOT EXISTS (SELECT 1 FROM event_endpoints p
                               WHERE p.name = $1 AND p.disabled_at IS NOT NULL)
             LIMIT 1",
        )
        .arg(endpoint)
        .arg(now)
        .fetch_optional(conn.ex())
        .await?;
        Ok(due.is_some())
    }

    /// Claims due deliveries: the first undelivered of each item, none
    /// held by another instance (on PostgreSQL, rows another claim is
    /// taking right now are skipped rather than waited for). The rows
    /// claimed, by id; the events they deliver are read apart, where the
    /// caller does not hold them already (a JOIN here was as dear as the
    /// fan-out's inserts).
    pub(in crate::store) async fn claim_deliveries(
        tx: &mut C,
        endpoint: &str,
        claim: &str,
        now: i64,
        until: i64,
        limit: i64,
    ) -> Result<Vec<Claimed>, sqlx::Error> {
        let sql = format!(
            "UPDATE event_deliveries SET claimed_by = $1, claimed_until = $2
             WHERE id IN (
                 SELECT d.id FROM event_deliveries d
                 WHERE d.endpoint = $3 AND d.state = 'PENDING' AND d.next_attempt_at <= $4
                   AND (d.claimed_until IS NULL OR d.claimed_until <= $4)
                   AND NOT EXISTS (SELECT 1 FROM event_deliveries e
                                   WHERE e.endpoint = d.endpoint AND e.item_key = d.item_key
                                     AND e.state = 'PENDING' AND e.sequence < d.sequence)
                   AND NOT EXISTS (SELECT 1 FROM event_endpoints p
                                   WHERE p.name = $3 AND p.disabled_at IS NOT NULL)
                 ORDER BY d.next_attempt_at, d.id
                 LIMIT $5 {})
             RETURNING id, event_id, attempts, created_at, first_attempt_at",
            C::SKIP_LOCKED
        );
        let mut claimed: Vec<Claimed> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .arg(claim)
            .arg(until)
            .arg(endpoint)
            .arg(now)
            .arg(limit)
            .fetch_all(tx.ex())
            .await?;
        claimed.sort_by_key(|c| c.id);
        Ok(claimed)
    }

    /// The feed's events with these ids.
    pub(in crate::store) async fn feed_events(
        conn: &mut C,
        event_ids: &[&str],
    ) -> Result<Vec<FeedEvent>, sqlx::Error> {
        let mut found = Vec::with_capacity(event_ids.len());
        for batch in event_ids.chunks(ROWS_PER_STATEMENT) {
            let mut query = QueryBuilder::new(FEED_EVENT);
            query.push(" WHERE event_id IN (");
            let mut ids = query.separated(", ");
            for id in batch {
                ids.arg(*id);
            }
            query.push(")");
            found.extend(
                query
                    .build_query_as::<FeedEvent>()
                    .fetch_all(conn.ex())
                    .await?,
            );
        }
        Ok(found)
    }

    /// Keeps what came of a round's attempts: claimed rows are updated (a
    /// row another claim took over meanwhile keeps its own), events sent
    /// before any row was written get one now, made `created_at`, with
    /// their outcome; and the endpoint's health.
    pub(in crate::store) async fn finish_deliveries(
        tx: &mut C,
        endpoint: &str,
        claim: &str,
        results: &[DeliveryResult],
        created_at: i64,
    ) -> Result<(), sqlx::Error> {
        let mut delivered_at = None;
        let mut failed_at = None;
        // The common case, delivered, in one statement per status (per
        // batch, a statement or two), the unsent released together, new
        // rows inserted together; the rest one by one.
        let mut delivered: BTreeMap<Option<i64>, Vec<(i64, i64)>> = BTreeMap::new();
        let mut unsent = Vec::new();
        let mut fresh: Vec<FreshRow<'_>> = Vec::new();
        for r in results {
            match &r.outcome {
                DeliveryOutcome::Delivered { .. } => delivered_at = delivered_at.max(Some(r.at)),
                DeliveryOutcome::Retry { .. } | DeliveryOutcome::Failed { .. } => {
                    failed_at = Some(failed_at.map_or(r.at, |f: i64| f.min(r.at)));
                }
                DeliveryOutcome::Gone | DeliveryOutcome::Unsent => {}
            }
            // Claimed rows on the common paths are kept together, below.
            match (&r.row, &r.outcome) {
                (DeliveryRow::Claimed(id), DeliveryOutcome::Unsent) => {
                    unsent.push(*id);
                    continue;
                }
                (DeliveryRow::Claimed(id), DeliveryOutcome::Delivered { status }) => {
                    delivered.entry(*status).or_default().push((*id, r.at));
                    continue;
                }
                _ => {}
            }
            let (state, status, error, next) = match &r.outcome {
                DeliveryOutcome::Unsent => ("PENDING", None, None, created_at),
                DeliveryOutcome::Delivered { status } => ("DELIVERED", *status, None, r.at),
                DeliveryOutcome::Retry {
                    status,
                    error,
                    next_attempt_at,
                } => ("PENDING", *status, Some(error.as_str()), *next_attempt_at),
                DeliveryOutcome::Failed { status, error } => {
                    ("FAILED", *status, Some(error.as_str()), r.at)
                }
                DeliveryOutcome::Gone => {
                    sqlx::query(
                        "UPDATE event_endpoints SET disabled_at = $2,
                             disabled_why = 'the endpoint answered 410 Gone'
                         WHERE name = $1 AND disabled_at IS NULL",
                    )
                    .arg(endpoint)
                    .arg(r.at)
                    .execute(tx.ex())
                    .await?;
                    (
                        "PENDING",
                        Some(410),
                        Some("410 Gone: endpoint disabled"),
                        r.at,
                    )
                }
            };
            let id = match &r.row {
                DeliveryRow::Claimed(id) => *id,
                DeliveryRow::Fresh(new) => {
                    // Unsent, it was not attempted: no attempt counted.
                    let attempted = r.outcome != DeliveryOutcome::Unsent;
                    fresh.push(FreshRow {
                        new,
                        state,
                        attempts: i64::from(attempted),
                        next_attempt_at: next,
                        attempted_at: attempted.then_some(r.at),
                        status,
                        error,
                    });
                    continue;
                }
            };
            sqlx::query(
                "UPDATE event_deliveries SET state = $1, attempts = attempts + 1,
                     first_attempt_at = coalesce(first_attempt_at, $2), last_attempt_at = $2,
                     last_status = $3, last_error = $4, next_attempt_at = $5, delivered_at = NULL,
                     claimed_by = NULL, claimed_until = NULL
                 WHERE id = $6 AND claimed_by = $7",
            )
            .arg(state)
            .arg(r.at)
            .arg(status)
            .arg(error)
            .arg(next)
            .arg(id)
            .arg(claim)
            .execute(tx.ex())
            .await?;
        }
        Self::insert_fresh(tx, endpoint, &fresh, created_at).await?;
        for chunk in unsent.chunks(ROWS_PER_STATEMENT) {
            // Integers only are written into the statement.
            let ids = chunk
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "UPDATE event_deliveries SET claimed_by = NULL, claimed_until = NULL
                 WHERE id IN ({ids}) AND claimed_by = $1"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .arg(claim)
                .execute(tx.ex())
                .await?;
        }
        if let Some(at) = delivered_at {
            for (status, ids) in &delivered {
                for chunk in ids.chunks(ROWS_PER_STATEMENT) {
                    // Integers only are written into the statement: the
                    // ids, each one's moment, and the status (ours or
                    // HTTP's). VALUES names its columns column1, column2 on
                    // both SQLite and PostgreSQL.
                    let rows = chunk
                        .iter()
                        .map(|(id, at)| format!("({id}, {at})"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let status = status.map_or_else(|| "NULL".to_owned(), |s| s.to_string());
                    let sql = format!(
                        "UPDATE event_deliveries SET state = 'DELIVERED', attempts = attempts + 1,
                             first_attempt_at = coalesce(first_attempt_at, v.column2),
                             last_attempt_at = v.column2, last_status = {status}, last_error = NULL,
                             delivered_at = v.column2, claimed_by = NULL, claimed_until = NULL
                         FROM (VALUES {rows}) AS v
                         WHERE event_deliveries.id = v.column1 AND event_deliveries.claimed_by = $1"
                    );
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .arg(claim)
                        .execute(tx.ex())
                        .await?;
                }
            }
            sqlx::query(
                "UPDATE event_endpoints SET last_success_at = $2, failing_since = NULL
                 WHERE name = $1 AND (last_success_at IS NULL OR last_success_at <= $2)",
            )
            .arg(endpoint)
            .arg(at)
            .execute(tx.ex())
            .await?;
        }
        if let Some(at) = failed_at.filter(|_| delivered_at.is_none()) {
            sqlx::query(
                "UPDATE event_endpoints SET failing_since = coalesce(failing_since, $2)
                 WHERE name = $1",
            )
            .arg(endpoint)
            .arg(at)
            .execute(tx.ex())
            .await?;
        }
        Ok(())
    }

    /// Rows for events sent before any row was written, each as its
    /// attempt left it (an event already there, kept by a round that took
    /// the page over, stays as it is).
    async fn insert_fresh(
        tx: &mut C,
        endpoint: &str,
        rows: &[FreshRow<'_>],
        created_at: i64,
    ) -> Result<(), sqlx::Error> {
        for batch in rows.chunks(ROWS_PER_STATEMENT / 2) {
            let mut query = QueryBuilder::new(
                "INSERT INTO event_deliveries (endpoint, event_id, item_key, sequence, state,
                     attempts, created_at, next_attempt_at, first_attempt_at, last_attempt_at,
                     last_status, last_error, delivered_at) ",
            );
            query.push_values(batch, |mut row, r| {
                let delivered_at = r.attempted_at.filter(|_| r.state == "DELIVERED");
                row.arg(endpoint)
                    .arg(r.new.event_id.as_str())
                    .arg(r.new.item_key.as_str())
                    .arg(r.new.sequence)
                    .arg(r.state)
                    .arg(r.attempts)
                    .arg(created_at)
                    .arg(r.next_attempt_at)
                    .arg(r.attempted_at)
                    .arg(r.attempted_at)
                    .arg(r.status)
                    .arg(r.error)
                    .arg(delivered_at);
            });
            query.push(" ON CONFLICT (endpoint, event_id) DO NOTHING");
            query.build().execute(tx.ex()).await?;
        }
        Ok(())
    }

    pub(in crate::store) async fn endpoints_health(
        conn: &mut C,
    ) -> Result<Vec<EndpointHealth>, sqlx::Error> {
        sqlx::query_as(
            "SELECT p.name, p.disabled_at, p.disabled_why, p.last_success_at, p.failing_since,
                 (SELECT count(*) FROM event_deliveries d
                  WHERE d.endpoint = p.name AND d.state = 'PENDING') AS pending,
                 (SELECT min(d.created_at) FROM event_deliveries d
                  WHERE d.endpoint = p.name AND d.state = 'PENDING') AS oldest_pending,
                 (SELECT count(*) FROM event_deliveries d
                  WHERE d.endpoint = p.name AND d.state = 'FAILED') AS failed
             FROM event_endpoints p ORDER BY p.name",
        )
        .fetch_all(conn.ex())
        .await
    }

    pub(in crate::store) async fn enable_endpoint(
        tx: &mut C,
        endpoint: &str,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE event_endpoints SET disabled_at = NULL, disabled_why = NULL WHERE name = $1",
        )
        .arg(endpoint)
        .execute(tx.ex())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    pub(in crate::store) async fn deliveries_of(
        conn: &mut C,
        event_ids: &[String],
    ) -> Result<Vec<DeliveryEntry>, sqlx::Error> {
        // Through the (endpoint, event_id) key: a seek for each endpoint.
        let sql = format!(
            "{DELIVERY_ENTRY} WHERE endpoint IN (SELECT name FROM event_endpoints)
               AND event_id = $1 ORDER BY endpoint"
        );
        let mut found = Vec::new();
        for id in event_ids {
            let rows: Vec<DeliveryEntry> = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .arg(id.as_str())
                .fetch_all(conn.ex())
                .await?;
            found.extend(rows);
        }
        Ok(found)
    }
}
