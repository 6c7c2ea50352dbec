//! How the SQLite file is opened, and its schema (migrations/sqlite/).

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::Connection;

use super::unavailable;
use crate::store::{Migrated, StoreError};

pub(super) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub(super) fn connect_options(
    url: &str,
    busy_timeout: Duration,
) -> Result<SqliteConnectOptions, StoreError> {
    Ok(SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::Open(std::sync::Arc::new(e)))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // In WAL mode, NORMAL survives a process crash but may lose the last
        // commits on power loss. An acknowledged notification must survive
        // both (Apple will not resend it), so every commit syncs the WAL.
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(busy_timeout)
        .foreign_keys(true))
}

/// Applies what is missing of the schema (creating the file if needed).
pub(in crate::store) async fn migrate(
    url: &str,
    busy_timeout: Duration,
) -> Result<Migrated, StoreError> {
    let mut connection = SqliteConnection::connect_with(&connect_options(url, busy_timeout)?)
        .await
        .map_err(|e| StoreError::Open(std::sync::Arc::new(e)))?;
    let applied = async |connection: &mut SqliteConnection| -> Result<Vec<i64>, StoreError> {
        let exists: bool = sqlx::query_scalar(
            "SELECT count(*) > 0 FROM sqlite_master WHERE name = '_sqlx_migrations'",
        )
        .fetch_one(&mut *connection)
        .await
        .map_err(unavailable)?;
        if !exists {
            return Ok(Vec::new());
        }
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&mut *connection)
            .await
            .map_err(unavailable)
    };
    let before = applied(&mut connection).await?;
    MIGRATOR
        .run(&mut connection)
        .await
        .map_err(|e| StoreError::Migration(std::sync::Arc::new(e)))?;
    let after = applied(&mut connection).await?;
    let _ = connection.close().await;
    Ok(Migrated::from_versions("sqlite", &before, after))
}
