//! What the App Store Server API adds, written once for every backend
//! (conventions in sql/mod.rs): Apple's delivery attempts, backfill runs,
//! and the lookups behind reconciliation.

use crate::store::{BackfillRequest, BackfillRun};
use sqlx::{ColumnIndex, Database, Decode, Type};
use std::collections::HashSet;

use super::{ArgExt as _, Conn, JsonText, Sql};

impl<C> Sql<C>
where
    C: Conn,
    for<'r> i64: Decode<'r, C::Db> + Type<C::Db>,
    for<'r> bool: Decode<'r, C::Db> + Type<C::Db>,
    for<'r> String: Decode<'r, C::Db> + Type<C::Db>,
    for<'a> &'a str: ColumnIndex<<C::Db as Database>::Row>,
    usize: ColumnIndex<<C::Db as Database>::Row>,
{
    pub(in crate::store) async fn note_send_attempts(
        tx: &mut C,
        notification_uuid: &str,
        send_attempts: &str,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO notification_send_attempts (notification_uuid, send_attempts, fetched_at)
             VALUES ($1, $2, $3)
             ON CONFLICT (notification_uuid) DO UPDATE SET
                 send_attempts = excluded.send_attempts, fetched_at = excluded.fetched_at",
        )
        .arg(notification_uuid)
        .arg(JsonText(send_attempts))
        .arg(now)
        .execute(tx.ex())
        .await?;
        Ok(())
    }

    pub(in crate::store) async fn backfill_run(
        tx: &mut C,
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
        .arg(&request.bundle_id)
        .arg(&request.environment)
        .arg(request.start_date)
        .arg(request.until)
        .arg(request.only_failures)
        .fetch_optional(tx.ex())
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
        .arg(&request.bundle_id)
        .arg(&request.environment)
        .arg(request.start_date)
        .arg(request.until.unwrap_or(now))
        .arg(request.until)
        .arg(request.only_failures)
        .arg(now)
        .fetch_one(tx.ex())
        .await
    }

    pub(in crate::store) async fn backfill_progress(
        tx: &mut C,
        run: &BackfillRun,
        finished_at: Option<i64>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE backfill_runs SET pagination_token = $1, fetched = $2, stored = $3,
                 duplicates = $4, rejected = $5, finished_at = $6
             WHERE id = $7",
        )
        .arg(&run.pagination_token)
        .arg(run.fetched)
        .arg(run.stored)
        .arg(run.duplicates)
        .arg(run.rejected)
        .arg(finished_at)
        .arg(run.id)
        .execute(tx.ex())
        .await?;
        Ok(())
    }

    pub(in crate::store) async fn known_transaction_ids(
        conn: &mut C,
        ids: &[String],
    ) -> Result<HashSet<String>, sqlx::Error> {
        let mut known = HashSet::new();
        for id in ids {
            let found: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM notifications WHERE transaction_id = $1)
                     OR EXISTS (SELECT 1 FROM apple_evidence WHERE transaction_id = $1)",
            )
            .arg(id)
            .fetch_one(conn.ex())
            .await?;
            if found {
                known.insert(id.clone());
            }
        }
        Ok(known)
    }

    pub(in crate::store) async fn has_notification(
        conn: &mut C,
        notification_uuid: &str,
    ) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM notifications WHERE notification_uuid = $1)
                 OR EXISTS (SELECT 1 FROM quarantined_notifications WHERE notification_uuid = $1)",
        )
        .arg(notification_uuid)
        .fetch_one(conn.ex())
        .await
    }
}
