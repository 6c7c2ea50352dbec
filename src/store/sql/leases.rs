//! Leases of the periodic jobs (see lease.rs, above the store), written once for every
//! backend (conventions in ledger_tx.rs); each runs them in a short
//! transaction of its own.

macro_rules! leases {
    ($conn:ty) => {
        /// Takes `job`'s lease until `expires_at` if it is free, lapsed at
        /// `now`, or already `holder`'s; true when `holder` has it.
        pub(super) async fn hold_lease(
            conn: &mut $conn,
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
            .bind(job)
            .bind(holder)
            .bind(expires_at)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            Ok(taken.rows_affected() == 1)
        }

        /// Gives `job`'s lease back, if `holder` has it.
        pub(super) async fn release_lease(
            conn: &mut $conn,
            job: &str,
            holder: &str,
        ) -> Result<(), sqlx::Error> {
            sqlx::query("DELETE FROM job_leases WHERE job = $1 AND holder = $2")
                .bind(job)
                .bind(holder)
                .execute(&mut *conn)
                .await
                .map(drop)
        }
    };
}
pub(in crate::store) use leases;
