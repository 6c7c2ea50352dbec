//! SQLite: WAL, fully synchronous commits, a pool of readers, and one
//! writer task that commits concurrent notifications together.
//!
//! SQLite allows one writer at a time and every durable commit costs an
//! fsync. Rather than let request tasks queue on the write lock, one task
//! (the batch writer, store/writer.rs) owns a write connection and commits
//! every notification waiting at that moment in one transaction: one fsync
//! acknowledges them all. Other writes (jobs, the console) take the write
//! lock for one short transaction each on a connection of their own.

use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::Connection;

mod readers;
mod schema;

use schema::connect_options;
pub(super) use schema::{backup, migrate};

use super::writer::{Batches, WriteOp, Writers};
use super::{Recorded, StoreError, WriteBatchSizes};

/// The most notifications committed together.
const MAX_BATCH: usize = 256;

#[derive(Debug, Clone)]
pub(super) struct SqliteStore {
    readers: readers::Readers,
    options: SqliteConnectOptions,
    gate: WriteGate,
}

/// This process's turn at SQLite's write lock, taken before BEGIN
/// IMMEDIATE by the batch writer and every other write, first come first
/// served. Without it, a job's write competing with a busy batch writer
/// polls the lock with SQLite's busy handler, sleeping longer each time,
/// and may lose to the writer's next batch again and again (seen: 2.4 s
/// for a webhook delivery's claim under ingest load). Other processes
/// still meet the lock itself, and the busy timeout.
#[derive(Debug, Clone)]
struct WriteGate {
    turn: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// As long as the busy timeout: then the write fails as busy.
    wait: Duration,
}

impl WriteGate {
    async fn enter(&self) -> Result<tokio::sync::MutexGuard<'_, ()>, sqlx::Error> {
        tokio::time::timeout(self.wait, self.turn.lock())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)
    }
}

fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::unavailable(e)
}

impl SqliteStore {
    /// Opens the database at `url` (its file created only when `create`),
    /// migrates it, and starts its writer.
    pub(super) async fn connect(
        url: &str,
        max_connections: u32,
        busy_timeout: Duration,
        create: bool,
        batch_sizes: WriteBatchSizes,
    ) -> Result<(SqliteStore, Writers), StoreError> {
        let options = connect_options(url, busy_timeout)?.create_if_missing(create);
        let readers = readers::Readers::connect(
            options.clone(),
            max_connections,
            busy_timeout.max(Duration::from_secs(1)),
        )
        .await
        .map_err(|e| StoreError::Open(std::sync::Arc::new(e)))?;
        crate::store::migrations::SQLITE
            .run(&readers.pool())
            .await
            .map_err(|e| StoreError::Migration(std::sync::Arc::new(e)))?;
        let gate = WriteGate {
            turn: std::sync::Arc::default(),
            wait: busy_timeout,
        };
        let writer = SqliteBatches {
            connection: None,
            options: options.clone(),
            readers: readers.clone(),
            gate: gate.clone(),
        };
        let writers = Writers::start(vec![writer], MAX_BATCH, batch_sizes);
        Ok((
            SqliteStore {
                readers,
                options,
                gate,
            },
            writers,
        ))
    }

    /// Runs `work` on a connection of the read pool.
    pub(super) async fn read<T>(
        &self,
        work: impl AsyncFnOnce(&mut SqliteConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, StoreError> {
        let mut connection = self.readers.pool().acquire().await.map_err(unavailable)?;
        work(&mut connection).await.map_err(unavailable)
    }

    /// Runs `work` in one read transaction: one snapshot of the database.
    pub(super) async fn read_snapshot<T>(
        &self,
        work: impl AsyncFnOnce(&mut SqliteConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, StoreError> {
        let mut connection = self.readers.pool().acquire().await.map_err(unavailable)?;
        let mut tx = connection.begin().await.map_err(unavailable)?;
        let out = work(&mut tx).await.map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(out)
    }

    /// Runs `work` in one write transaction on a connection of its own,
    /// outside the pool and the writer: the writer waits for this one
    /// transaction at most, never for a queue of them.
    pub(super) async fn write<T>(
        &self,
        work: impl AsyncFnOnce(&mut SqliteConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, StoreError> {
        self.write_on(&self.options, work).await
    }

    /// As [`SqliteStore::write`], committing without waiting for the disk
    /// (synchronous NORMAL in WAL: a process crash loses nothing, power loss
    /// what the next full commit has not yet made durable).
    pub(super) async fn write_relaxed<T>(
        &self,
        work: impl AsyncFnOnce(&mut SqliteConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, StoreError> {
        let options = self
            .options
            .clone()
            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal);
        self.write_on(&options, work).await
    }

    async fn write_on<T>(
        &self,
        options: &SqliteConnectOptions,
        work: impl AsyncFnOnce(&mut SqliteConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, StoreError> {
        let mut connection = SqliteConnection::connect_with(options)
            .await
            .map_err(unavailable)?;
        let turn = self.gate.enter().await.map_err(unavailable)?;
        // IMMEDIATE takes the write lock now, so a lock held elsewhere fails
        // the transaction before anything is written (after the busy timeout).
        let mut tx = connection
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unavailable)?;
        let out = work(&mut tx).await.map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        drop(turn);
        let _ = connection.close().await;
        Ok(out)
    }

    pub(super) async fn close(&self) {
        self.readers.close().await;
    }
}

/// The batch writer's side of SQLite: its own connection, opened again
/// after a failure, since it may be broken.
struct SqliteBatches {
    connection: Option<SqliteConnection>,
    options: SqliteConnectOptions,
    readers: readers::Readers,
    gate: WriteGate,
}

impl Batches for SqliteBatches {
    async fn write(&mut self, ops: &[&WriteOp]) -> Result<Vec<Recorded>, sqlx::Error> {
        let connection = match &mut self.connection {
            Some(connection) => connection,
            None => self
                .connection
                .insert(SqliteConnection::connect_with(&self.options).await?),
        };
        let _turn = self.gate.enter().await?;
        // IMMEDIATE takes the write lock now, so a lock held elsewhere fails
        // the batch before anything is written (after the busy timeout).
        let mut tx = connection.begin_with("BEGIN IMMEDIATE").await?;
        let results = super::writer::apply_all(&mut *tx, ops).await?;
        tx.commit().await?;
        Ok(results)
    }

    fn systemic(error: &sqlx::Error) -> bool {
        match error {
            // SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_IOERR,
            // SQLITE_FULL, SQLITE_CANTOPEN
            sqlx::Error::Database(_) => {
                matches!(primary_code(error), Some(5 | 6 | 8 | 10 | 13 | 14))
            }
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Configuration(_) => true,
            _ => false,
        }
    }

    /// The connection may be broken (or hold a transaction that was
    /// abandoned): a fresh one next time. SQLITE_READONLY may mean the files
    /// are writable again but this process still sees them read-only: then
    /// every connection starts over, and the batch is worth trying again.
    async fn mend(&mut self, failure: Option<&sqlx::Error>) -> bool {
        if let Some(connection) = self.connection.take() {
            let _ = connection.close().await;
        }
        let read_only = failure.is_some_and(|error| primary_code(error) == Some(8));
        if read_only {
            self.readers.replace().await;
        }
        read_only
    }

    async fn close(&mut self) {
        if let Some(connection) = self.connection.take() {
            let _ = connection.close().await;
        }
    }
}

/// SQLite's primary result code (the low byte of an extended one).
fn primary_code(error: &sqlx::Error) -> Option<i32> {
    match error {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .map(|code| code & 0xff),
        _ => None,
    }
}
