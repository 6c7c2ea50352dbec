//! What the support console reads and writes on SQLite (statements in
//! store/sql/console.rs).

use sqlx::SqliteConnection;

use super::{unavailable, SqliteStore};
use crate::store::StoreError;

crate::store::sql::console::console!(SqliteConnection, SqliteStore);

impl SqliteStore {
    pub(in crate::store) async fn note_console_access(
        &self,
        entry: &AccessEntry,
    ) -> Result<(), StoreError> {
        self.in_own_transaction(async |tx| note_console_access(tx, entry).await)
            .await
    }

    pub(in crate::store) async fn add_rejections(
        &self,
        counts: &[(i64, String, i64)],
    ) -> Result<(), StoreError> {
        self.in_own_transaction(async |tx| add_rejections(tx, counts).await)
            .await
    }
}
