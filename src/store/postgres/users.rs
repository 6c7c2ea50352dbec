//! The support console's users, sessions and failed sign-ins on PostgreSQL
//! (statements and reads in store/sql/users.rs).

use sqlx::PgConnection;

use super::retry::{in_transaction, unavailable};
use super::store::PgStore;
use crate::store::StoreError;

crate::store::sql::users::users!(PgConnection, PgStore);

/// Advisory lock classes (the first key of the two-key form) for sign-in
/// reservations: one per user name, one per address.
const LOGIN_USER_LOCK: i32 = 0x6c67_6e75; // "lgnu"
const LOGIN_ADDRESS_LOCK: i32 = 0x6c67_6e61; // "lgna"

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

    pub(in crate::store) async fn create_console_session(
        &self,
        token_sha256: &str,
        user_name: &str,
        csrf_token: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        in_transaction!(self, tx, {
            create_console_session(tx, token_sha256, user_name, csrf_token, now).await
        })
    }

    pub(in crate::store) async fn console_session(
        &self,
        token_sha256: &str,
        idle_since: i64,
        created_since: i64,
        now: i64,
    ) -> Result<Option<ConsoleSession>, StoreError> {
        in_transaction!(self, tx, {
            console_session(tx, token_sha256, idle_since, created_since, now).await
        })
    }

    pub(in crate::store) async fn delete_console_session(
        &self,
        token_sha256: &str,
    ) -> Result<(), StoreError> {
        in_transaction!(self, tx, { delete_console_session(tx, token_sha256).await })
    }

    pub(in crate::store) async fn reserve_login_attempt(
        &self,
        user_key: &str,
        address: &str,
        now: i64,
        since: i64,
        allowed: i64,
    ) -> Result<Option<i64>, StoreError> {
        in_transaction!(self, tx, {
            // Attempts for one user name, or from one address, reserve one
            // after another on every instance: user locks first, then the
            // address's, so two sign-ins never wait on each other in a cycle.
            sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
                .bind(LOGIN_USER_LOCK)
                .bind(user_key)
                .execute(&mut *tx)
                .await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
                .bind(LOGIN_ADDRESS_LOCK)
                .bind(address)
                .execute(&mut *tx)
                .await?;
            reserve_login_attempt(tx, user_key, address, now, since, allowed).await
        })
    }

    pub(in crate::store) async fn forget_login_attempt(&self, id: i64) -> Result<(), StoreError> {
        in_transaction!(self, tx, { forget_login_attempt(tx, id).await })
    }

    pub(in crate::store) async fn console_secret(
        &self,
        name: &str,
        fresh: &str,
    ) -> Result<String, StoreError> {
        in_transaction!(self, tx, { console_secret(tx, name, fresh).await })
    }
}
