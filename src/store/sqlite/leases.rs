//! Leases of the periodic jobs, in short transactions of their own
//! (statements in store/sql/leases.rs).

use sqlx::SqliteConnection;

use super::SqliteStore;
use crate::store::StoreError;

crate::store::sql::leases::leases!(SqliteConnection);

impl SqliteStore {
    pub(in crate::store) async fn hold_lease(
        &self,
        job: &str,
        holder: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        self.in_own_transaction(async |tx| hold_lease(tx, job, holder, now, expires_at).await)
            .await
    }

    pub(in crate::store) async fn release_lease(
        &self,
        job: &str,
        holder: &str,
    ) -> Result<(), StoreError> {
        self.in_own_transaction(async |tx| release_lease(tx, job, holder).await)
            .await
    }
}
