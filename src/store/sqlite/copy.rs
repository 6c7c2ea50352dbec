//! `copy-store` on SQLite (statements and reads in store/sql/copy.rs).

use sqlx::sqlite::SqliteRow;
use sqlx::SqliteConnection;

use super::{unavailable, SqliteStore};
use crate::store::StoreError;

crate::store::sql::copy::copy!(
    SqliteConnection,
    SqliteRow,
    SqliteStore,
    jsonb = "",
    overriding = ""
);

impl SqliteStore {
    /// In a write transaction of its own, beside the webhook's writer.
    pub(in crate::store) async fn copy_rows(
        &self,
        table: &CopyTable,
        rows: &[CopyRow],
    ) -> Result<u64, StoreError> {
        self.in_own_transaction(async |tx| copy_rows(tx, table, rows).await)
            .await
    }

    /// Nothing to do: an INTEGER PRIMARY KEY continues after the largest id.
    pub(in crate::store) async fn finish_copy(&self, _table: &CopyTable) -> Result<(), StoreError> {
        Ok(())
    }
}
