//! Leases of the periodic jobs (see lease.rs, above the store), written once for every
//! backend (conventions in sql/mod.rs); each runs them in a short
//! transaction of its own.

use super::{ArgExt as _, Conn, RowsAffected as _, Sql};

impl<C: Conn> Sql<C> {
    /// Takes `job`'s lease until `expires_at` if it is free, lapsed at
    /// `now`, or already `holder`'s; true when `holder` has it.
    pub(in crate::store) async fn hold_lease(
        conn: &mut C,
        job: &str,
        holder: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<bool, sqlx::Error> {
        let taken = sqlx::query(
            "INSERT INTO job_leases (job, holder, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
             WHERE job_leases.holder = excluded.holder OR job_leases.expires_at <= $4",
        )
        .arg(job)
        .arg(holder)
        .arg(expires_at)
        .arg(now)
        .execute(conn.ex())
        .await?;
        Ok(taken.rows_affected() == 1)
    }

    /// Gives `job`'s lease back, if `holder` has it.
    pub(in crate::store) async fn release_lease(
        conn: &mut C,
        job: &str,
        holder: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM job_leases WHERE job = $1 AND holder = $2")
            .arg(job)
            .arg(holder)
            .execute(conn.ex())
            .await
            .map(drop)
    }
}
