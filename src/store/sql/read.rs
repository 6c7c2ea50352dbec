//! The queries behind the API, written once for every backend (conventions
//! in ledger_tx.rs; `json_array` is the function that makes a JSON array):
//! ledger items, history, refunds, expirations, and a snapshot of the
//! derived tables.

use std::collections::BTreeMap;

use sqlx::{ColumnIndex, Database, Decode, Row, Type};

use crate::ledger::{ExpirationRecord, ItemKey};
use crate::store::{
    Counts, EvidenceEntry, HistoryEntry, ItemQuery, LedgerItem, QuarantinedNotification,
    RefundEntry, RefundFilter, RescindedConsent, SubscriptionHistory, Totals,
};

use super::{ArgExt as _, Conn, Sql};

pub(super) fn item_from(kind: &str, id: String) -> ItemKey {
    if kind == "purchase" {
        ItemKey::Purchase(id)
    } else {
        ItemKey::Subscription(id)
    }
}

impl<C> Sql<C>
where
    C: Conn,
    for<'r> i64: Decode<'r, C::Db> + Type<C::Db>,
    for<'r> String: Decode<'r, C::Db> + Type<C::Db>,
    for<'a> &'a str: ColumnIndex<<C::Db as Database>::Row>,
    usize: ColumnIndex<<C::Db as Database>::Row>,
{
    pub(in crate::store) fn ledger_item(
        row: &<C::Db as Database>::Row,
    ) -> Result<LedgerItem, sqlx::Error> {
        let kind: String = row.try_get("kind")?;
        let state: String = row.try_get("state")?;
        Ok(LedgerItem {
            item: item_from(&kind, row.try_get("item_id")?),
            state: serde_json::from_str(&state).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        })
    }

    pub(in crate::store) async fn items_where(
        conn: &mut C,
        query: &ItemQuery,
    ) -> Result<Vec<LedgerItem>, sqlx::Error> {
        let (sql, value) = match query {
            ItemQuery::Subscription(id) => (
                "SELECT kind, item_id, CAST(state AS TEXT) AS state FROM ledger_items WHERE kind = 'subscription' AND item_id = $1",
                id,
            ),
            ItemQuery::Purchase(id) => (
                "SELECT kind, item_id, CAST(state AS TEXT) AS state FROM ledger_items WHERE kind = 'purchase' AND item_id = $1",
                id,
            ),
            ItemQuery::AppAccountToken(token) => (
                "SELECT kind, item_id, CAST(state AS TEXT) AS state FROM ledger_items
                 WHERE app_account_token = $1
                    OR (kind, item_id) IN (SELECT kind, item_id FROM item_tokens WHERE app_account_token = $1)
                 ORDER BY kind, item_id",
                token,
            ),
            ItemQuery::OriginalTransactionId(id) => (
                "SELECT kind, item_id, CAST(state AS TEXT) AS state FROM ledger_items WHERE original_transaction_id = $1",
                id,
            ),
            ItemQuery::AppTransactionId(id) => (
                "SELECT kind, item_id, CAST(state AS TEXT) AS state FROM ledger_items
                 WHERE app_transaction_id = $1 ORDER BY kind, item_id",
                id,
            ),
            ItemQuery::TransactionId(id) => (
                "SELECT kind, item_id, CAST(state AS TEXT) AS state FROM ledger_items WHERE original_transaction_id IN
                     (SELECT original_transaction_id FROM notifications WHERE transaction_id = $1)",
                id,
            ),
        };
        let rows = sqlx::query(sql).arg(value).fetch_all(conn.ex()).await?;
        rows.iter().map(Self::ledger_item).collect()
    }

    /// The withdrawn consents among these customers' (appTransactionIds).
    pub(in crate::store) async fn rescinded_consents(
        conn: &mut C,
        app_transaction_ids: &[String],
    ) -> Result<Vec<RescindedConsent>, sqlx::Error> {
        let mut found = Vec::new();
        for id in app_transaction_ids {
            let consent: Option<RescindedConsent> = sqlx::query_as(
                "SELECT app_transaction_id, rescinded_date, notification_uuid FROM consents WHERE app_transaction_id = $1",
            )
            .arg(id)
            .fetch_optional(conn.ex())
            .await?;
            found.extend(consent);
        }
        Ok(found)
    }

    pub(in crate::store) async fn item_payloads_known_at(
        conn: &mut C,
        item: &ItemKey,
        known_at: i64,
    ) -> Result<Vec<String>, sqlx::Error> {
        let sql = match item {
            ItemKey::Subscription(_) => {
                "SELECT CAST(payload AS TEXT) FROM notifications WHERE original_transaction_id = $1 AND received_at <= $2
                 UNION ALL
                 SELECT CAST(payload AS TEXT) FROM apple_evidence WHERE original_transaction_id = $1 AND fetched_at <= $2"
            }
            ItemKey::Purchase(_) => {
                "SELECT CAST(payload AS TEXT) FROM notifications WHERE transaction_id = $1 AND received_at <= $2
                 UNION ALL
                 SELECT CAST(payload AS TEXT) FROM apple_evidence WHERE transaction_id = $1 AND fetched_at <= $2"
            }
        };
        sqlx::query_scalar(sql)
            .arg(item.id())
            .arg(known_at)
            .fetch_all(conn.ex())
            .await
    }

    pub(in crate::store) async fn history(
        conn: &mut C,
        original_transaction_id: &str,
    ) -> Result<Vec<HistoryEntry>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT n.notification_uuid, notification_type, subtype, signed_date, received_at, transaction_id,
                 CAST(payload AS TEXT) AS payload, CAST(a.send_attempts AS TEXT) AS send_attempts
             FROM notifications n LEFT JOIN notification_send_attempts a USING (notification_uuid)
             WHERE original_transaction_id = $1 ORDER BY signed_date, n.notification_uuid",
        )
        .arg(original_transaction_id)
        .fetch_all(conn.ex())
        .await?;
        rows.iter()
            .map(|row| {
                let payload: String = row.try_get("payload")?;
                let mut payload = serde_json::from_str::<serde_json::Value>(&payload).ok();
                let mut take = |pointer: &str| {
                    payload
                        .as_mut()
                        .and_then(|p| p.pointer_mut(pointer))
                        .map(serde_json::Value::take)
                };
                let transaction = take("/data/signedTransactionInfo");
                let consumption_request_reason = take("/data/consumptionRequestReason")
                    .and_then(|r| r.as_str().map(str::to_owned));
                let status = take("/data/status").and_then(|s| s.as_i64());
                Ok(HistoryEntry {
                    notification_uuid: row.try_get("notification_uuid")?,
                    notification_type: row.try_get("notification_type")?,
                    subtype: row.try_get("subtype")?,
                    signed_date: row.try_get("signed_date")?,
                    received_at: row.try_get("received_at")?,
                    transaction_id: row.try_get("transaction_id")?,
                    transaction,
                    consumption_request_reason,
                    status,
                    send_attempts: row
                        .try_get::<Option<String>, _>("send_attempts")?
                        .and_then(|a| serde_json::from_str(&a).ok()),
                })
            })
            .collect()
    }

    pub(in crate::store) async fn evidence(
        conn: &mut C,
        original_transaction_id: &str,
    ) -> Result<Vec<EvidenceEntry>, sqlx::Error> {
        sqlx::query_as(
            "SELECT evidence_id, source, transaction_id, signed_date, fetched_at FROM apple_evidence
             WHERE original_transaction_id = $1 ORDER BY signed_date, evidence_id",
        )
        .arg(original_transaction_id)
        .fetch_all(conn.ex())
        .await
    }

    pub(in crate::store) async fn refunds(
        conn: &mut C,
        filter: &RefundFilter,
    ) -> Result<Vec<RefundEntry>, sqlx::Error> {
        // Newest first, cursor-paginated on (refund_date, notification_uuid).
        let (cursor_date, cursor_uuid) = filter.cursor.clone().unwrap_or((i64::MAX, String::new()));
        let rows = sqlx::query_as::<_, RefundEntry>(
            "SELECT * FROM refunds
             WHERE (CAST($1 AS TEXT) IS NULL OR bundle_id = $1)
               AND (CAST($2 AS TEXT) IS NULL OR product_id = $2)
               AND (CAST($3 AS BIGINT) IS NULL OR refund_date >= $3)
               AND (CAST($4 AS BIGINT) IS NULL OR refund_date < $4)
               AND (refund_date < $5 OR (refund_date = $5 AND ($6 = '' OR notification_uuid < $6)))
               AND (CAST($7 AS TEXT) IS NULL OR original_transaction_id = $7)
               AND (CAST($9 AS TEXT) IS NULL OR environment = $9)
               AND (CAST($10 AS BIGINT) IS NULL OR revocation_reason = $10)
               AND (CAST($11 AS BOOLEAN) IS NULL OR (reversed_at IS NOT NULL) = $11)
             ORDER BY refund_date DESC, notification_uuid DESC
             LIMIT $8",
        )
        .arg(&filter.bundle_id)
        .arg(&filter.product_id)
        .arg(filter.from)
        .arg(filter.to)
        .arg(cursor_date)
        .arg(cursor_uuid)
        .arg(&filter.original_transaction_id)
        .arg(filter.limit)
        .arg(&filter.environment)
        .arg(filter.revocation_reason)
        .arg(filter.reversed)
        .fetch_all(conn.ex())
        .await?;
        Ok(rows)
    }

    pub(in crate::store) async fn expirations(
        conn: &mut C,
        original_transaction_id: &str,
    ) -> Result<Vec<ExpirationRecord>, sqlx::Error> {
        let rows = sqlx::query_as::<_, ExpirationRecord>(
            "SELECT * FROM expirations WHERE original_transaction_id = $1 ORDER BY signed_date, notification_uuid",
        )
        .arg(original_transaction_id)
        .fetch_all(conn.ex())
        .await?;
        Ok(rows)
    }

    /// A snapshot of every derived table, for checking that rebuild equals
    /// incremental application.
    pub(in crate::store) async fn snapshot(
        conn: &mut C,
    ) -> Result<BTreeMap<String, Vec<String>>, sqlx::Error> {
        let mut out = BTreeMap::new();
        for (table, sql) in [
            ("ledger_items", "SELECT kind || '|' || item_id || '|' || CAST(state AS TEXT) FROM ledger_items ORDER BY kind, item_id".to_owned()),
            (
                "refunds",
                format!("SELECT CAST({}(notification_uuid, kind, item_id, notification_type, transaction_id,
                     original_transaction_id, product_id, bundle_id, environment, revocation_date, revocation_reason,
                     revocation_type, revocation_percentage, price, currency, signed_date, refund_date, reversed_at,
                     reversed_by, subtype, revoked_seat_quantity, source) AS TEXT) FROM refunds ORDER BY notification_uuid", C::JSON_ARRAY),
            ),
            (
                "expirations",
                format!("SELECT CAST({}(notification_uuid, kind, item_id, subtype, transaction_id, original_transaction_id,
                     product_id, bundle_id, environment, expires_date, signed_date) AS TEXT) FROM expirations ORDER BY notification_uuid", C::JSON_ARRAY),
            ),
        ] {
            let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_all(conn.ex())
                .await?;
            out.insert(table.to_owned(), rows);
        }
        Ok(out)
    }

    /// Everything the history of one subscription shows. The caller
    /// runs it in one read transaction: one snapshot, so a refund
    /// committed in between cannot appear in one list and not another.
    pub(in crate::store) async fn subscription_history(
        conn: &mut C,
        original_transaction_id: &str,
    ) -> Result<SubscriptionHistory, sqlx::Error> {
        let notifications = Self::history(&mut *conn, original_transaction_id).await?;
        let expirations = Self::expirations(&mut *conn, original_transaction_id).await?;
        let refunds = Self::refunds(
            &mut *conn,
            &RefundFilter {
                original_transaction_id: Some(original_transaction_id.to_owned()),
                limit: i64::MAX,
                ..RefundFilter::default()
            },
        )
        .await?;
        let evidence = Self::evidence(&mut *conn, original_transaction_id).await?;
        Ok(SubscriptionHistory {
            notifications,
            refunds,
            expirations,
            evidence,
        })
    }

    pub(in crate::store) async fn quarantined(
        conn: &mut C,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<QuarantinedNotification>, sqlx::Error> {
        sqlx::query_as::<_, QuarantinedNotification>(
            "SELECT id, notification_uuid, received_at, signed_payload, reason_code
             FROM quarantined_notifications WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .arg(after_id)
        .arg(limit)
        .fetch_all(conn.ex())
        .await
    }

    /// Answers when the database does.
    pub(in crate::store) async fn ping(conn: &mut C) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1 FROM notifications LIMIT 1")
            .fetch_optional(conn.ex())
            .await
            .map(drop)
    }

    /// The notifications a rebuild folds.
    pub(in crate::store) async fn folded_notifications(conn: &mut C) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT count(*) FROM notifications WHERE original_transaction_id IS NOT NULL",
        )
        .fetch_one(conn.ex())
        .await
    }

    /// The kept totals (summed over PostgreSQL's shards; one row each on
    /// SQLite) and the open findings by kind, without counting any table.
    /// The caller reads them in one snapshot, so that they belong together.
    pub(in crate::store) async fn totals(conn: &mut C) -> Result<Totals, sqlx::Error> {
        let named: Vec<(String, i64)> =
            sqlx::query_as("SELECT name, CAST(sum(value) AS BIGINT) FROM totals GROUP BY name")
                .fetch_all(conn.ex())
                .await?;
        let open_findings = sqlx::query_as(
            "SELECT kind, CAST(sum(open) AS BIGINT) FROM open_findings GROUP BY kind
             HAVING sum(open) > 0 ORDER BY kind",
        )
        .fetch_all(conn.ex())
        .await?;
        let total = |name: &str| {
            named
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0, |(_, value)| *value)
        };
        Ok(Totals {
            notifications: total("notifications"),
            quarantined: total("quarantined_notifications"),
            open_findings,
        })
    }

    pub(in crate::store) async fn counts(conn: &mut C) -> Result<Counts, sqlx::Error> {
        let row = sqlx::query(
            "SELECT (SELECT count(*) FROM notifications) AS notifications,
                    (SELECT count(*) FROM quarantined_notifications) AS quarantined,
                    (SELECT count(*) FROM ledger_items) AS ledger_items",
        )
        .fetch_one(conn.ex())
        .await?;
        Ok(Counts {
            notifications: row.try_get("notifications")?,
            quarantined: row.try_get("quarantined")?,
            ledger_items: row.try_get("ledger_items")?,
        })
    }
}
