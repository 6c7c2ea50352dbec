//! The support console's users on PostgreSQL (statements in
//! store/sql/users.rs).

use sqlx::PgConnection;

use super::store::{in_transaction, unavailable, PgStore};
use crate::store::StoreError;

crate::store::sql::users::users!(PgConnection);

impl PgStore {
    pub(in crate::store) async fn add_console_user(
        &self,
        user: &ConsoleUser,
        password_hash: &str,
    ) -> Result<bool, StoreError> {
        in_transaction!(self, tx, {
            add_console_user(tx, user, password_hash).await
        })
    }

    pub(in crate::store) async fn remove_console_user(
        &self,
        name: &str,
    ) -> Result<bool, StoreError> {
        in_transaction!(self, tx, { remove_console_user(tx, name).await })
    }

    pub(in crate::store) async fn console_users(&self) -> Result<Vec<ConsoleUser>, StoreError> {
        console_users(&mut *self.read().await?)
            .await
            .map_err(unavailable)
    }
}
