//! What the support console reads and writes on PostgreSQL (statements in
//! store/sql/console.rs).

use sqlx::PgConnection;

use super::retry::{in_transaction, unavailable};
use super::store::PgStore;
use crate::store::StoreError;

crate::store::sql::console::console!(PgConnection, PgStore);

impl PgStore {
    pub(in crate::store) async fn note_console_access(
        &self,
        entry: &AccessEntry,
    ) -> Result<(), StoreError> {
        in_transaction!(self, tx, { note_console_access(tx, entry).await })
    }

    pub(in crate::store) async fn add_rejections(
        &self,
        counts: &[(i64, String, i64)],
    ) -> Result<(), StoreError> {
        in_transaction!(self, tx, { add_rejections(tx, counts).await })
    }
}
