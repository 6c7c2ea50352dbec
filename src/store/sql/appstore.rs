//! What the App Store Server API adds, written once for every backend
//! (conventions in ledger_tx.rs): Apple's delivery attempts, backfill runs,
//! and the lookups behind reconciliation.

macro_rules! appstore {
    ($conn:ty, jsonb = $jsonb:literal) => {
        use std::collections::HashSet;

        use $crate::store::{BackfillRequest, BackfillRun};

        pub(super) async fn note_send_attempts(
            tx: &mut $conn,
            notification_uuid: &str,
            send_attempts: &str,
            now: i64,
        ) -> Result<(), sqlx::Error> {
            sqlx::query(concat!(
                "INSERT INTO notification_send_attempts (notification_uuid, send_attempts, fetched_at)
                 VALUES ($1, $2", $jsonb, ", $3)
                 ON CONFLICT (notification_uuid) DO UPDATE SET
                     send_attempts = excluded.send_attempts, fetched_at = excluded.fetched_at",
            ))
            .bind(notification_uuid)
            .bind(send_attempts)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            Ok(())
        }

        pub(super) async fn backfill_run(
            tx: &mut $conn,
            request: &BackfillRequest,
            now: i64,
        ) -> Result<BackfillRun, sqlx::Error> {
            let unfinished = sqlx::query_as::<_, BackfillRun>(
                "SELECT id, end_date, pagination_token, fetched, stored, duplicates, rejected
                 FROM backfill_runs
                 WHERE bundle_id = $1 AND environment = $2 AND start_date = $3 AND until_given IS NOT DISTINCT FROM $4
                   AND only_failures = $5 AND finished_at IS NULL
                 ORDER BY id DESC LIMIT 1",
            )
            .bind(&request.bundle_id)
            .bind(&request.environment)
            .bind(request.start_date)
            .bind(request.until)
            .bind(request.only_failures)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(run) = unfinished {
                return Ok(run);
            }
            sqlx::query_as::<_, BackfillRun>(
                "INSERT INTO backfill_runs (bundle_id, environment, start_date, end_date, until_given,
                     only_failures, started_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 RETURNING id, end_date, pagination_token, fetched, stored, duplicates, rejected",
            )
            .bind(&request.bundle_id)
            .bind(&request.environment)
            .bind(request.start_date)
            .bind(request.until.unwrap_or(now))
            .bind(request.until)
            .bind(request.only_failures)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
        }

        pub(super) async fn backfill_progress(
            tx: &mut $conn,
            run: &BackfillRun,
            finished_at: Option<i64>,
        ) -> Result<(), sqlx::Error> {
            sqlx::query(
                "UPDATE backfill_runs SET pagination_token = $1, fetched = $2, stored = $3,
                     duplicates = $4, rejected = $5, finished_at = $6
                 WHERE id = $7",
            )
            .bind(&run.pagination_token)
            .bind(run.fetched)
            .bind(run.stored)
            .bind(run.duplicates)
            .bind(run.rejected)
            .bind(finished_at)
            .bind(run.id)
            .execute(&mut *tx)
            .await?;
            Ok(())
        }

        pub(super) async fn known_transaction_ids(
            conn: &mut $conn,
            ids: &[String],
        ) -> Result<HashSet<String>, sqlx::Error> {
            let mut known = HashSet::new();
            for id in ids {
                let found: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM notifications WHERE transaction_id = $1)
                         OR EXISTS (SELECT 1 FROM apple_evidence WHERE transaction_id = $1)",
                )
                .bind(id)
                .fetch_one(&mut *conn)
                .await?;
                if found {
                    known.insert(id.clone());
                }
            }
            Ok(known)
        }

        pub(super) async fn has_notification(
            conn: &mut $conn,
            notification_uuid: &str,
        ) -> Result<bool, sqlx::Error> {
            sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM notifications WHERE notification_uuid = $1)
                     OR EXISTS (SELECT 1 FROM quarantined_notifications WHERE notification_uuid = $1)",
            )
            .bind(notification_uuid)
            .fetch_one(&mut *conn)
            .await
        }
    };
}
pub(in crate::store) use appstore;
