//! `copy-store` on SQLite (statements in store/sql/copy.rs).

use sqlx::sqlite::SqliteRow;
use sqlx::SqliteConnection;

use super::{unavailable, SqliteStore};
use crate::store::StoreError;

crate::store::sql::copy::copy!(SqliteConnection, SqliteRow, jsonb = "", overriding = "");

impl SqliteStore {
    pub(in crate::store) async fn copy_page(
        &self,
        table: &CopyTable,
        after: Option<&CopyKey>,
        limit: i64,
    ) -> Result<Vec<CopyRow>, StoreError> {
        copy_page(&mut *self.read().await?, table, after, limit)
            .await
            .map_err(unavailable)
    }

    /// In a write transaction of its own, beside the webhook's writer.
    pub(in crate::store) async fn copy_rows(
        &self,
        table: &CopyTable,
        rows: &[CopyRow],
    ) -> Result<u64, StoreError> {
        self.in_own_transaction(async |tx| copy_rows(tx, table, rows).await)
            .await
    }

    pub(in crate::store) async fn last_copied(
        &self,
        table: &CopyTable,
    ) -> Result<Option<CopyKey>, StoreError> {
        last_copied(&mut *self.read().await?, table)
            .await
            .map_err(unavailable)
    }

    pub(in crate::store) async fn table_rows(&self, table: &CopyTable) -> Result<i64, StoreError> {
        table_rows(&mut *self.read().await?, table)
            .await
            .map_err(unavailable)
    }

    /// Nothing to do: an INTEGER PRIMARY KEY continues after the largest id.
    pub(in crate::store) async fn finish_copy(&self, _table: &CopyTable) -> Result<(), StoreError> {
        Ok(())
    }
}
