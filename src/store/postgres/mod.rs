//! PostgreSQL: the schema (migrations/postgres/), its migration, which
//! several instances may run at once, and the store on it.

mod retry;
mod store;

pub(super) use retry::again;
pub(super) use store::PgStore;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;

use super::{Migrated, StoreError};

/// Our own advisory lock around a migration, so that what one instance
/// reports as applied is what it applied. (sqlx also locks while it runs.)
const MIGRATE_LOCK: i64 = 0x6170_7073_746f_7265; // "appstore"

/// `postgres://user:password@host:5432/dbname?sslmode=verify-full`, with
/// the options libpq's URLs have (`sslmode`, `sslrootcert`, ...).
pub(super) fn connect_options(url: &str) -> Result<PgConnectOptions, StoreError> {
    // Notices (the migrator's "already exists, skipping") say nothing an
    // operator must act on, and would land on a command's stderr; warnings
    // and errors still come. A URL's own `options` setting wins.
    PgConnectOptions::from_str(url)
        .map(|options| {
            let asked = options
                .get_options()
                .is_some_and(|o| o.contains("client_min_messages"));
            if asked {
                options
            } else {
                options.options([("client_min_messages", "warning")])
            }
        })
        .map_err(|e| StoreError::Open(std::sync::Arc::new(e)))
}

/// Applies what is missing of the schema; safe when several instances
/// start at once: one applies, the others wait and find nothing left.
pub(super) async fn migrate(url: &str, timeout: Duration) -> Result<Migrated, StoreError> {
    let options = connect_options(url)?;
    let mut connection = tokio::time::timeout(timeout, PgConnection::connect_with(&options))
        .await
        .map_err(|_| StoreError::TimedOut)?
        .map_err(|e| StoreError::Open(std::sync::Arc::new(e)))?;
    let migrated = migrate_on(&mut connection).await;
    let _ = connection.close().await;
    migrated
}

async fn migrate_on(connection: &mut PgConnection) -> Result<Migrated, StoreError> {
    let unavailable = StoreError::unavailable;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATE_LOCK)
        .execute(&mut *connection)
        .await
        .map_err(unavailable)?;
    let before = applied(connection).await.map_err(unavailable)?;
    let ran = crate::store::migrations::POSTGRES
        .run(&mut *connection)
        .await
        .map_err(|e| StoreError::Migration(std::sync::Arc::new(e)));
    let after = applied(connection).await.map_err(unavailable);
    // The lock ends with the session anyway; unlocking early lets the next
    // instance go on at once.
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATE_LOCK)
        .execute(&mut *connection)
        .await;
    ran?;
    Ok(Migrated::from_versions("postgres", &before, after?))
}

/// The versions applied so far (none before the first migration).
async fn applied(connection: &mut PgConnection) -> Result<Vec<i64>, sqlx::Error> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *connection)
        .await?;
    if !exists {
        return Ok(Vec::new());
    }
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(&mut *connection)
        .await
}
