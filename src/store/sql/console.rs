//! What the support console reads beyond the query API (the access log,
//! delivery health, a stored payload) and the little it writes, once for
//! every backend (conventions in sql/mod.rs).

use crate::ledger::ItemKey;
use crate::store::{AccessEntry, DeliveryHealth, StoredEvent, StoredPayload};
use sqlx::{ColumnIndex, Database, Decode, Type};

use super::{ArgExt as _, Conn, Sql};

impl<C> Sql<C>
where
    C: Conn,
    for<'r> i64: Decode<'r, C::Db> + Type<C::Db>,
    for<'r> String: Decode<'r, C::Db> + Type<C::Db>,
    for<'a> &'a str: ColumnIndex<<C::Db as Database>::Row>,
    usize: ColumnIndex<<C::Db as Database>::Row>,
{
    /// An item's stored notifications and Apple's answers about it, in
    /// no order (the ledger orders them): a customer's timeline.
    pub(in crate::store) async fn item_events(
        conn: &mut C,
        item: &ItemKey,
    ) -> Result<Vec<StoredEvent>, sqlx::Error> {
        let sql = match item {
            ItemKey::Subscription(_) => {
                "SELECT notification_uuid AS id, received_at AS arrived_at, CAST(payload AS TEXT) AS payload
                 FROM notifications WHERE original_transaction_id = $1
                 UNION ALL
                 SELECT evidence_id, fetched_at, CAST(payload AS TEXT)
                 FROM apple_evidence WHERE original_transaction_id = $1"
            }
            ItemKey::Purchase(_) => {
                "SELECT notification_uuid AS id, received_at AS arrived_at, CAST(payload AS TEXT) AS payload
                 FROM notifications WHERE transaction_id = $1
                 UNION ALL
                 SELECT evidence_id, fetched_at, CAST(payload AS TEXT)
                 FROM apple_evidence WHERE transaction_id = $1"
            }
        };
        sqlx::query_as(sql)
            .arg(item.id())
            .fetch_all(conn.ex())
            .await
    }

    pub(in crate::store) async fn note_console_access(
        conn: &mut C,
        entry: &AccessEntry,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO console_access_log (at, user_name, page, subject) VALUES ($1, $2, $3, $4)",
        )
        .arg(entry.at)
        .arg(&entry.user_name)
        .arg(&entry.page)
        .arg(&entry.subject)
        .execute(conn.ex())
        .await
        .map(drop)
    }

    /// Adds to the hourly counts of refused deliveries.
    pub(in crate::store) async fn add_rejections(
        conn: &mut C,
        counts: &[(i64, String, i64)],
    ) -> Result<(), sqlx::Error> {
        for (hour, code, count) in counts {
            sqlx::query(
                "INSERT INTO delivery_rejections (hour, code, count) VALUES ($1, $2, $3)
                 ON CONFLICT (hour, code) DO UPDATE SET count = delivery_rejections.count + excluded.count",
            )
            .arg(hour)
            .arg(code)
            .arg(count)
            .execute(conn.ex())
            .await?;
        }
        Ok(())
    }

    /// The newest entries first, those with an id below `before`, of
    /// one user or all.
    pub(in crate::store) async fn console_access_log(
        conn: &mut C,
        user_name: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AccessEntry>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, at, CAST(user_name AS TEXT) AS user_name, CAST(page AS TEXT) AS page,
                    CAST(subject AS TEXT) AS subject
             FROM console_access_log
             WHERE (CAST($1 AS TEXT) IS NULL OR user_name = $1) AND id < $2
             ORDER BY id DESC LIMIT $3",
        )
        .arg(user_name)
        .arg(before.unwrap_or(i64::MAX))
        .arg(limit)
        .fetch_all(conn.ex())
        .await
    }

    /// A notification's or an Apple answer's decoded payload, by its
    /// notificationUUID or evidence id.
    pub(in crate::store) async fn stored_payload(
        conn: &mut C,
        id: &str,
    ) -> Result<Option<StoredPayload>, sqlx::Error> {
        sqlx::query_as(
            "SELECT 'notification' AS source, CAST(original_transaction_id AS TEXT) AS original_transaction_id,
                    received_at AS arrived_at, CAST(payload AS TEXT) AS payload
             FROM notifications WHERE notification_uuid = $1
             UNION ALL
             SELECT CAST(source AS TEXT), CAST(original_transaction_id AS TEXT), fetched_at, CAST(payload AS TEXT)
             FROM apple_evidence WHERE evidence_id = $1
             UNION ALL
             SELECT 'quarantined', CAST(original_transaction_id AS TEXT), received_at, CAST(payload AS TEXT)
             FROM quarantined_notifications WHERE notification_uuid = $1
             LIMIT 1",
        )
        .arg(id)
        .fetch_optional(conn.ex())
        .await
    }

    /// What reached us since `since`, per hour, app and environment; what
    /// was refused; what is quarantined; what backfill recovered.
    pub(in crate::store) async fn delivery_health(
        conn: &mut C,
        since: i64,
    ) -> Result<DeliveryHealth, sqlx::Error> {
        let received = sqlx::query_as(
            "SELECT hour, NULLIF(CAST(bundle_id AS TEXT), ''), NULLIF(CAST(environment AS TEXT), ''),
                    CAST(sum(count) AS BIGINT)
             FROM notification_hours WHERE hour >= $1
             GROUP BY hour, bundle_id, environment
             ORDER BY 1, 2, 3",
        )
        .arg(since - since.rem_euclid(3_600_000))
        .fetch_all(conn.ex())
        .await?;
        let last_received = sqlx::query_as(
            "SELECT NULLIF(CAST(bundle_id AS TEXT), ''), NULLIF(CAST(environment AS TEXT), ''),
                    max(last_received_at), CAST(sum(count) AS BIGINT)
             FROM notification_hours GROUP BY bundle_id, environment ORDER BY 1, 2",
        )
        .fetch_all(conn.ex())
        .await?;
        let rejections = sqlx::query_as(
            "SELECT hour, CAST(code AS TEXT), count FROM delivery_rejections WHERE hour >= $1
             ORDER BY hour, code",
        )
        .arg(since - since.rem_euclid(3_600_000))
        .fetch_all(conn.ex())
        .await?;
        let quarantined = sqlx::query_as(
            "SELECT CAST(reason_code AS TEXT), count(*), max(received_at) FROM quarantined_notifications
             GROUP BY reason_code ORDER BY 1",
        )
        .fetch_all(conn.ex())
        .await?;
        let backfills = sqlx::query_as(
            "SELECT CAST(bundle_id AS TEXT), CAST(environment AS TEXT), start_date, end_date, fetched, stored,
                    duplicates, rejected, started_at, finished_at
             FROM backfill_runs ORDER BY started_at DESC, id DESC LIMIT 20",
        )
        .fetch_all(conn.ex())
        .await?;
        Ok(DeliveryHealth {
            since,
            received,
            last_received,
            rejections,
            quarantined,
            backfills,
        })
    }
}
