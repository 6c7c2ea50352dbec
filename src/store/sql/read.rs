//! The queries behind the API, written once for every backend (conventions
//! in ledger_tx.rs; `json_array` is the function that makes a JSON array):
//! ledger items, history, refunds, expirations, and a snapshot of the
//! derived tables.

macro_rules! read {
    ($conn:ty, $row:ty, json_array = $json_array:literal) => {
        use std::collections::BTreeMap;

        use sqlx::Row;

        use $crate::ledger::{ExpirationRecord, ItemKey};
        use $crate::store::{
            Counts, EvidenceEntry, HistoryEntry, ItemQuery, LedgerItem, QuarantinedNotification,
            RefundEntry, RefundFilter, RescindedConsent, SubscriptionHistory,
        };

        fn item_from(kind: &str, id: String) -> ItemKey {
            if kind == "purchase" {
                ItemKey::Purchase(id)
            } else {
                ItemKey::Subscription(id)
            }
        }

        pub(super) fn ledger_item(row: &$row) -> Result<LedgerItem, sqlx::Error> {
            let kind: String = row.try_get("kind")?;
            let state: String = row.try_get("state")?;
            Ok(LedgerItem {
                item: item_from(&kind, row.try_get("item_id")?),
                state: serde_json::from_str(&state).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            })
        }

        pub(super) async fn items_where(
            conn: &mut $conn,
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
            let rows = sqlx::query(sql).bind(value).fetch_all(&mut *conn).await?;
            rows.iter().map(ledger_item).collect()
        }

        /// The withdrawn consents among these customers' (appTransactionIds).
        pub(super) async fn rescinded_consents(
            conn: &mut $conn,
            app_transaction_ids: &[String],
        ) -> Result<Vec<RescindedConsent>, sqlx::Error> {
            let mut found = Vec::new();
            for id in app_transaction_ids {
                let consent: Option<RescindedConsent> = sqlx::query_as(
                    "SELECT app_transaction_id, rescinded_date, notification_uuid FROM consents WHERE app_transaction_id = $1",
                )
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
                found.extend(consent);
            }
            Ok(found)
        }

        pub(super) async fn item_payloads_known_at(
            conn: &mut $conn,
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
                .bind(item.id())
                .bind(known_at)
                .fetch_all(&mut *conn)
                .await
        }

        pub(super) async fn history(
            conn: &mut $conn,
            original_transaction_id: &str,
        ) -> Result<Vec<HistoryEntry>, sqlx::Error> {
            let rows = sqlx::query(
                "SELECT n.notification_uuid, notification_type, subtype, signed_date, received_at, transaction_id,
                     CAST(payload AS TEXT) AS payload, CAST(a.send_attempts AS TEXT) AS send_attempts
                 FROM notifications n LEFT JOIN notification_send_attempts a USING (notification_uuid)
                 WHERE original_transaction_id = $1 ORDER BY signed_date, n.notification_uuid",
            )
            .bind(original_transaction_id)
            .fetch_all(&mut *conn)
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

        pub(super) async fn evidence(
            conn: &mut $conn,
            original_transaction_id: &str,
        ) -> Result<Vec<EvidenceEntry>, sqlx::Error> {
            sqlx::query_as(
                "SELECT evidence_id, source, transaction_id, signed_date, fetched_at FROM apple_evidence
                 WHERE original_transaction_id = $1 ORDER BY signed_date, evidence_id",
            )
            .bind(original_transaction_id)
            .fetch_all(&mut *conn)
            .await
        }

        pub(super) async fn refunds(
            conn: &mut $conn,
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
            .bind(&filter.bundle_id)
            .bind(&filter.product_id)
            .bind(filter.from)
            .bind(filter.to)
            .bind(cursor_date)
            .bind(cursor_uuid)
            .bind(&filter.original_transaction_id)
            .bind(filter.limit)
            .bind(&filter.environment)
            .bind(filter.revocation_reason)
            .bind(filter.reversed)
            .fetch_all(&mut *conn)
            .await?;
            Ok(rows)
        }

        pub(super) async fn expirations(
            conn: &mut $conn,
            original_transaction_id: &str,
        ) -> Result<Vec<ExpirationRecord>, sqlx::Error> {
            let rows = sqlx::query_as::<_, ExpirationRecord>(
                "SELECT * FROM expirations WHERE original_transaction_id = $1 ORDER BY signed_date, notification_uuid",
            )
            .bind(original_transaction_id)
            .fetch_all(&mut *conn)
            .await?;
            Ok(rows)
        }

        /// A snapshot of every derived table, for checking that rebuild equals
        /// incremental application.
        pub(super) async fn snapshot(
            conn: &mut $conn,
        ) -> Result<BTreeMap<String, Vec<String>>, sqlx::Error> {
            let mut out = BTreeMap::new();
            for (table, sql) in [
                ("ledger_items", "SELECT kind || '|' || item_id || '|' || CAST(state AS TEXT) FROM ledger_items ORDER BY kind, item_id"),
                (
                    "refunds",
                    concat!("SELECT CAST(", $json_array, "(notification_uuid, kind, item_id, notification_type, transaction_id,
                         original_transaction_id, product_id, bundle_id, environment, revocation_date, revocation_reason,
                         revocation_type, revocation_percentage, price, currency, signed_date, refund_date, reversed_at,
                         reversed_by, subtype, revoked_seat_quantity) AS TEXT) FROM refunds ORDER BY notification_uuid"),
                ),
                (
                    "expirations",
                    concat!("SELECT CAST(", $json_array, "(notification_uuid, kind, item_id, subtype, transaction_id, original_transaction_id,
                         product_id, bundle_id, environment, expires_date, signed_date) AS TEXT) FROM expirations ORDER BY notification_uuid"),
                ),
            ] {
                let rows: Vec<String> = sqlx::query_scalar(sql).fetch_all(&mut *conn).await?;
                out.insert(table.to_owned(), rows);
            }
            Ok(out)
        }

        /// Everything the history of one subscription shows. The caller
        /// runs it in one read transaction: one snapshot, so a refund
        /// committed in between cannot appear in one list and not another.
        pub(super) async fn subscription_history(
            conn: &mut $conn,
            original_transaction_id: &str,
        ) -> Result<SubscriptionHistory, sqlx::Error> {
            let notifications = history(&mut *conn, original_transaction_id).await?;
            let expirations = expirations(&mut *conn, original_transaction_id).await?;
            let refunds = refunds(
                &mut *conn,
                &RefundFilter {
                    original_transaction_id: Some(original_transaction_id.to_owned()),
                    limit: i64::MAX,
                    ..RefundFilter::default()
                },
            )
            .await?;
            let evidence = evidence(&mut *conn, original_transaction_id).await?;
            Ok(SubscriptionHistory {
                notifications,
                refunds,
                expirations,
                evidence,
            })
        }

        pub(super) async fn quarantined(
            conn: &mut $conn,
            after_id: i64,
            limit: i64,
        ) -> Result<Vec<QuarantinedNotification>, sqlx::Error> {
            sqlx::query_as::<_, QuarantinedNotification>(
                "SELECT id, notification_uuid, received_at, signed_payload, reason_code
                 FROM quarantined_notifications WHERE id > $1 ORDER BY id LIMIT $2",
            )
            .bind(after_id)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await
        }

        pub(super) async fn counts(conn: &mut $conn) -> Result<Counts, sqlx::Error> {
            let row = sqlx::query(
                "SELECT (SELECT count(*) FROM notifications) AS notifications,
                        (SELECT count(*) FROM quarantined_notifications) AS quarantined,
                        (SELECT count(*) FROM ledger_items) AS ledger_items",
            )
            .fetch_one(&mut *conn)
            .await?;
            Ok(Counts {
                notifications: row.try_get("notifications")?,
                quarantined: row.try_get("quarantined")?,
                ledger_items: row.try_get("ledger_items")?,
            })
        }

        $crate::store::types::records_from_row!($row);
    };
}
pub(in crate::store) use read;
