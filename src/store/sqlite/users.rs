//! The support console's users, sessions and failed sign-ins on SQLite
//! (statements and reads in store/sql/users.rs).

use sqlx::SqliteConnection;

use super::{unavailable, SqliteStore};
use crate::store::StoreError;

crate::store::sql::users::users!(SqliteConnection, SqliteStore);

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

    pub(in crate::store) async fn create_console_session(
        &self,
        token_sha256: &str,
        user_name: &str,
        csrf_token: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.in_own_transaction(async |tx| {
            create_console_session(tx, token_sha256, user_name, csrf_token, now).await
        })
        .await
    }

    pub(in crate::store) async fn console_session(
        &self,
        token_sha256: &str,
        idle_since: i64,
        created_since: i64,
        now: i64,
    ) -> Result<Option<ConsoleSession>, StoreError> {
        self.in_own_transaction(async |tx| {
            console_session(tx, token_sha256, idle_since, created_since, now).await
        })
        .await
    }

    pub(in crate::store) async fn delete_console_session(
        &self,
        token_sha256: &str,
    ) -> Result<(), StoreError> {
        self.in_own_transaction(async |tx| delete_console_session(tx, token_sha256).await)
            .await
    }

    pub(in crate::store) async fn reserve_login_attempt(
        &self,
        user_key: &str,
        address: &str,
        now: i64,
        since: i64,
        allowed: i64,
    ) -> Result<Option<i64>, StoreError> {
        // BEGIN IMMEDIATE: the one writer reserves one attempt at a time.
        self.in_own_transaction(async |tx| {
            reserve_login_attempt(tx, user_key, address, now, since, allowed).await
        })
        .await
    }

    pub(in crate::store) async fn forget_login_attempt(&self, id: i64) -> Result<(), StoreError> {
        self.in_own_transaction(async |tx| forget_login_attempt(tx, id).await)
            .await
    }

    pub(in crate::store) async fn console_secret(
        &self,
        name: &str,
        fresh: &str,
    ) -> Result<String, StoreError> {
        self.in_own_transaction(async |tx| console_secret(tx, name, fresh).await)
            .await
    }
}
