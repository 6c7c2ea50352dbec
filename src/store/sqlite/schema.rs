//! How the SQLite file is opened, and its schema (migrations/sqlite/).

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::Connection;

use super::unavailable;
use crate::store::{Migrated, StoreError};

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
    crate::store::migrations::SQLITE
        .run(&mut connection)
        .await
        .map_err(|e| StoreError::Migration(std::sync::Arc::new(e)))?;
    let after = applied(&mut connection).await?;
    let _ = connection.close().await;
    Ok(Migrated::from_versions("sqlite", &before, after))
}

/// Copies the database at `url` into a new file at `to`, online: `VACUUM
/// INTO` reads one consistent snapshot (a WAL read transaction) while the
/// service goes on writing, and writes a compact, self-contained file (no
/// WAL beside it). The copy is made under `to` with `.partial` appended,
/// synced, then renamed, so that `to` is either absent or whole. The source
/// is neither created nor migrated: a backup before an upgrade must copy
/// the database as the old version left it. Returns the copy's size.
pub(in crate::store) async fn backup(
    url: &str,
    busy_timeout: Duration,
    to: &std::path::Path,
) -> Result<u64, StoreError> {
    let io = |e: std::io::Error| StoreError::Backup(std::sync::Arc::new(e));
    if to.exists() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} exists; a backup never overwrites a file", to.display()),
        )));
    }
    let mut partial = to.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    // A partial copy left by an interrupted run is nobody's backup.
    let _ = std::fs::remove_file(&partial);
    let options = connect_options(url, busy_timeout)?.create_if_missing(false);
    let mut connection = SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| StoreError::Open(std::sync::Arc::new(e)))?;
    let copied = sqlx::query("VACUUM INTO $1")
        .bind(partial.to_string_lossy().into_owned())
        .execute(&mut connection)
        .await
        .map_err(unavailable);
    let _ = connection.close().await;
    copied?;
    let file = std::fs::File::open(&partial).map_err(io)?;
    file.sync_all().map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    std::fs::rename(&partial, to).map_err(io)?;
    // The rename is durable once the folder holding it is synced.
    if let Some(folder) = to.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(folder)
            .and_then(|f| f.sync_all())
            .map_err(io)?;
    }
    Ok(size)
}
