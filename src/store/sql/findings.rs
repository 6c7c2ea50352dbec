//! The inconsistency checker's reads and writes, written once for every
//! backend (conventions in ledger_tx.rs): the ledger scan, conflicting
//! duplicates, unfolded notifications and the kept findings.

macro_rules! findings {
    ($conn:ty) => {
        use $crate::finding::Finding;
        use $crate::store::{
            Conflict, FindingEntry, FindingFilter, LedgerItem, UnfoldedNotification, UnknownShape,
        };

        use super::read::ledger_item;

        pub(super) async fn scan(
            conn: &mut $conn,
            after: Option<&(String, String)>,
            limit: i64,
        ) -> Result<Vec<LedgerItem>, sqlx::Error> {
            let (kind, id) = after.cloned().unwrap_or_default();
            let rows = sqlx::query(
                "SELECT kind, item_id, CAST(state AS TEXT) AS state FROM ledger_items WHERE (kind, item_id) > ($1, $2)
                 ORDER BY kind, item_id LIMIT $3",
            )
            .bind(kind)
            .bind(id)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?;
            rows.iter().map(ledger_item).collect()
        }

        pub(super) async fn conflicts(conn: &mut $conn) -> Result<Vec<Conflict>, sqlx::Error> {
            let rows = sqlx::query_as::<_, Conflict>(
                "SELECT c.notification_uuid, n.original_transaction_id, n.bundle_id, n.environment, count(*) AS versions
                 FROM notification_conflicts c JOIN notifications n ON n.notification_uuid = c.notification_uuid
                 GROUP BY c.notification_uuid, n.original_transaction_id, n.bundle_id, n.environment
                 ORDER BY c.notification_uuid",
            )
            .fetch_all(&mut *conn)
            .await?;
            Ok(rows)
        }

        pub(super) async fn unfolded(
            conn: &mut $conn,
        ) -> Result<Vec<UnfoldedNotification>, sqlx::Error> {
            let rows = sqlx::query_as::<_, UnfoldedNotification>(
                "SELECT u.notification_uuid, u.original_transaction_id, u.reason, n.bundle_id, n.environment
                 FROM unfolded_notifications u LEFT JOIN notifications n ON n.notification_uuid = u.notification_uuid
                 ORDER BY u.notification_uuid",
            )
            .fetch_all(&mut *conn)
            .await?;
            Ok(rows)
        }

        pub(super) async fn unknown_shapes(conn: &mut $conn) -> Result<Vec<UnknownShape>, sqlx::Error> {
            sqlx::query_as::<_, UnknownShape>(
                "SELECT u.notification_uuid, n.original_transaction_id, n.bundle_id, n.environment,
                        CAST(n.payload AS TEXT) AS payload
                 FROM unknown_shapes u JOIN notifications n ON n.notification_uuid = u.notification_uuid
                 ORDER BY u.notification_uuid",
            )
            .fetch_all(&mut *conn)
            .await
        }

        pub(super) async fn open_finding_keys(
            conn: &mut $conn,
            subject: Option<&str>,
        ) -> Result<Vec<(String, String)>, sqlx::Error> {
            sqlx::query_as(
                "SELECT kind, subject FROM findings
                 WHERE resolved_at IS NULL AND (CAST($1 AS TEXT) IS NULL OR subject = $1)",
            )
            .bind(subject)
            .fetch_all(&mut *conn)
            .await
        }

        pub(super) async fn resolve_findings(
            tx: &mut $conn,
            keys: &[(String, String)],
            now: i64,
            resolution: Option<&str>,
        ) -> Result<u64, sqlx::Error> {
            let mut resolved = 0;
            for (kind, subject) in keys {
                resolved += sqlx::query(
                    "UPDATE findings SET resolved_at = $1, resolution = $2
                     WHERE kind = $3 AND subject = $4 AND resolved_at IS NULL",
                )
                .bind(now)
                .bind(resolution)
                .bind(kind)
                .bind(subject)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            Ok(resolved)
        }

        pub(super) async fn attribute_resolution(
            tx: &mut $conn,
            subject: &str,
            since: i64,
            resolution: &str,
        ) -> Result<u64, sqlx::Error> {
            Ok(sqlx::query(
                "UPDATE findings SET resolution = $1
                 WHERE subject = $2 AND resolved_at >= $3 AND resolution IS NULL",
            )
            .bind(resolution)
            .bind(subject)
            .bind(since)
            .execute(&mut *tx)
            .await?
            .rows_affected())
        }

        /// Sees each finding again, opening those not open yet; returns how many
        /// were opened.
        pub(super) async fn upsert_findings(
            tx: &mut $conn,
            findings: &[Finding],
            now: i64,
        ) -> Result<u64, sqlx::Error> {
            let mut opened = 0;
            for f in findings {
                let updated = sqlx::query(
                    "UPDATE findings SET last_seen = $1, detail = $2, bundle_id = $3, environment = $4,
                         original_transaction_id = $5
                     WHERE kind = $6 AND subject = $7 AND resolved_at IS NULL",
                )
                .bind(now)
                .bind($crate::finding::clip(&f.detail, $crate::finding::MAX_DETAIL_CHARS))
                .bind(&f.bundle_id)
                .bind(&f.environment)
                .bind(&f.original_transaction_id)
                .bind(f.kind.code())
                .bind(&f.subject)
                .execute(&mut *tx)
                .await?;
                if updated.rows_affected() == 0 {
                    sqlx::query(
                        "INSERT INTO findings (kind, subject, original_transaction_id, bundle_id, environment, detail,
                             first_seen, last_seen)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
                    )
                    .bind(f.kind.code())
                    .bind(&f.subject)
                    .bind(&f.original_transaction_id)
                    .bind(&f.bundle_id)
                    .bind(&f.environment)
                    .bind($crate::finding::clip(&f.detail, $crate::finding::MAX_DETAIL_CHARS))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    opened += 1;
                }
            }
            Ok(opened)
        }

        pub(super) async fn findings(
            conn: &mut $conn,
            filter: &FindingFilter,
        ) -> Result<Vec<FindingEntry>, sqlx::Error> {
            let rows = sqlx::query_as::<_, FindingEntry>(
                "SELECT * FROM findings
                 WHERE (CAST($1 AS TEXT) IS NULL OR kind = $1) AND (CAST($2 AS TEXT) IS NULL OR bundle_id = $2)
                   AND (CAST($3 AS BOOLEAN) IS NULL OR $3 = (resolved_at IS NULL))
                   AND (CAST($5 AS TEXT) IS NULL OR original_transaction_id = $5)
                 ORDER BY first_seen DESC, id DESC LIMIT $4",
            )
            .bind(&filter.kind)
            .bind(&filter.bundle_id)
            .bind(filter.open)
            .bind(filter.limit)
            .bind(&filter.original_transaction_id)
            .fetch_all(&mut *conn)
            .await?;
            Ok(rows)
        }
    };
}
pub(in crate::store) use findings;
