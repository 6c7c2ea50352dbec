//! The support console's users on SQLite (statements in store/sql/users.rs).

use sqlx::SqliteConnection;

use super::{unavailable, SqliteStore};
use crate::store::StoreError;

crate::store::sql::users::users!(SqliteConnection);

impl SqliteStore {
    pub(in crate::store) async fn add_console_user(
        &self,
        user: &ConsoleUser,
        password_hash: &str,
    ) -> Result<bool, StoreError> {
        self.in_own_transaction(async |tx| add_console_user(tx, user, password_hash).await)
            .await
    }

    pub(in crate::store) async fn remove_console_user(
        &self,
        name: &str,
    ) -> Result<bool, StoreError> {
        self.in_own_transaction(async |tx| remove_console_user(tx, name).await)
            .await
    }

    pub(in crate::store) async fn console_users(&self) -> Result<Vec<ConsoleUser>, StoreError> {
        console_users(&mut *self.read().await?)
            .await
            .map_err(unavailable)
    }
}
