//! `copy-store` on PostgreSQL (statements in store/sql/copy.rs).

use sqlx::postgres::PgRow;
use sqlx::PgConnection;

use super::store::{in_transaction, unavailable, PgStore};
use crate::store::StoreError;

crate::store::sql::copy::copy!(
    PgConnection,
    PgRow,
    jsonb = "::jsonb",
    overriding = "OVERRIDING SYSTEM VALUE"
);

impl PgStore {
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

    pub(in crate::store) async fn copy_rows(
        &self,
        table: &CopyTable,
        rows: &[CopyRow],
    ) -> Result<u64, StoreError> {
        in_transaction!(self, tx, { copy_rows(tx, table, rows).await })
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

    /// Moves an identity column's sequence past the copied ids: the next
    /// notification stored must not take one of theirs.
    pub(in crate::store) async fn finish_copy(&self, table: &CopyTable) -> Result<(), StoreError> {
        if !table.generated_key {
            return Ok(());
        }
        let (key, _) = table.key();
        let name = table.name;
        let sql = format!(
            "SELECT setval(pg_get_serial_sequence('{name}', '{key}'),
                           (SELECT COALESCE(max({key}), 0) + 1 FROM {name}), false)"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(self.pool())
            .await
            .map(drop)
            .map_err(unavailable)
    }
}
