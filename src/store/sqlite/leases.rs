//! Leases of the periodic jobs, in short transactions of their own.

use super::SqliteStore;
use crate::store::StoreError;

impl SqliteStore {
    /// Takes `job`'s lease until `expires_at` if it is free, lapsed at
    /// `now`, or already `holder`'s; true when `holder` has it.
    pub(in crate::store) async fn hold_lease(
        &self,
        job: &str,
        holder: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        self.in_own_transaction(async |tx| {
            let taken = sqlx::query(
                "INSERT INTO job_leases (job, holder, expires_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
                 WHERE job_leases.holder = excluded.holder OR job_leases.expires_at <= ?4",
            )
            .bind(job)
            .bind(holder)
            .bind(expires_at)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            Ok(taken.rows_affected() == 1)
        })
        .await
    }

    /// Gives `job`'s lease back, if `holder` has it.
    pub(in crate::store) async fn release_lease(
        &self,
        job: &str,
        holder: &str,
    ) -> Result<(), StoreError> {
        self.in_own_transaction(async |tx| {
            sqlx::query("DELETE FROM job_leases WHERE job = ?1 AND holder = ?2")
                .bind(job)
                .bind(holder)
                .execute(&mut *tx)
                .await
                .map(drop)
        })
        .await
    }
}
