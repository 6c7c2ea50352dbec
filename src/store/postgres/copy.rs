//! `copy-store` on PostgreSQL (statements and reads in store/sql/copy.rs).

use sqlx::postgres::PgRow;
use sqlx::PgConnection;

use super::retry::{in_transaction, unavailable};
use super::store::PgStore;
use crate::store::StoreError;

crate::store::sql::copy::copy!(
    PgConnection,
    PgRow,
    PgStore,
    jsonb = "::jsonb",
    overriding = "OVERRIDING SYSTEM VALUE"
);

impl PgStore {
    pub(in crate::store) async fn copy_rows(
        &self,
        table: &CopyTable,
        rows: &[CopyRow],
    ) -> Result<u64, StoreError> {
        in_transaction!(self, tx, { copy_rows(tx, table, rows).await })
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
