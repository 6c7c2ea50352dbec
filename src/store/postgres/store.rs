//! The store on PostgreSQL. Unlike SQLite there is no single writer: every
//! instance writes notifications in batches on a few connections (the batch
//! writer, store/writer.rs), items are locked for their read-modify-write
//! (the dialect's `lock_item`), and a serialization failure or a deadlock is
//! retried before the request is answered 503.

use std::time::Duration;

use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::Connection;

use super::connect_options;
use super::retry::{again, unavailable};
use crate::store::writer::{Batches, WriteOp, Writers};
use crate::store::{Recorded, StoreError, WriteBatchSizes};

/// Notifications per transaction at most: a batch holds its items' locks
/// until it commits, and a retry redoes all of it.
const MAX_BATCH: usize = 64;

#[derive(Debug, Clone)]
pub(in crate::store) struct PgStore {
    pool: PgPool,
    writer_pool: PgPool,
}

impl PgStore {
    /// `busy_timeout`: how long a notification's write waits for a lock
    /// held elsewhere before it is refused (503, and Apple retries).
    pub(in crate::store) async fn connect(
        url: &str,
        max_connections: u32,
        busy_timeout: Duration,
        batch_sizes: WriteBatchSizes,
    ) -> Result<(PgStore, Writers), StoreError> {
        let timeout = busy_timeout.max(Duration::from_secs(5));
        super::migrate(url, timeout).await?;
        let open = |e| StoreError::Open(std::sync::Arc::new(e));
        // Half the connections write notifications, the rest answer queries
        // and run jobs (whose locks may be waited for as long as they take).
        let writers = (max_connections / 2).max(1);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.saturating_sub(writers).max(1))
            .acquire_timeout(timeout)
            .connect_with(connect_options(url)?)
            .await
            .map_err(open)?;
        let lock_timeout = format!("{}ms", busy_timeout.as_millis().max(1));
        let writer_pool = PgPoolOptions::new()
            .max_connections(writers)
            .acquire_timeout(timeout)
            .connect_with(connect_options(url)?.options([("lock_timeout", lock_timeout)]))
            .await
            .map_err(open)?;
        let batches = (0..writers)
            .map(|_| PgBatches {
                pool: writer_pool.clone(),
            })
            .collect();
        let writers = Writers::start(batches, MAX_BATCH, batch_sizes);
        Ok((PgStore { pool, writer_pool }, writers))
    }

    /// Runs `work` on a connection of the pool.
    pub(in crate::store) async fn read<T>(
        &self,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, StoreError> {
        let mut connection = self.pool.acquire().await.map_err(unavailable)?;
        work(&mut connection).await.map_err(unavailable)
    }

    /// Runs `work` in one snapshot (REPEATABLE READ).
    pub(in crate::store) async fn read_snapshot<T>(
        &self,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, StoreError> {
        let mut connection = self.pool.acquire().await.map_err(unavailable)?;
        let mut tx = connection
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(unavailable)?;
        let out = work(&mut tx).await.map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(out)
    }

    /// Runs `work` in one transaction. A write is run again when it met a
    /// concurrent one ([`again`]): by the store's `on_write!`,
    /// since a closure that borrows the connection anew at each call cannot
    /// yet give a `Send` future for every borrow.
    pub(in crate::store) async fn write_once<T>(
        &self,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let value = work(&mut tx).await?;
        tx.commit().await?;
        Ok(value)
    }

    pub(in crate::store) async fn close(&self) {
        self.writer_pool.close().await;
        self.pool.close().await;
    }
}

/// A batch writer's side of PostgreSQL: a connection of the writers' pool
/// for each batch.
struct PgBatches {
    pool: PgPool,
}

impl Batches for PgBatches {
    /// The batch in one transaction, again when it met a concurrent one.
    async fn write(&mut self, ops: &[&WriteOp]) -> Result<Vec<Recorded>, sqlx::Error> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match try_batch(&self.pool, ops).await {
                Err(error) if again(&error, attempt) => {}
                done => return done,
            }
        }
    }

    /// Every batch would fail now (the database is unreachable, shut down,
    /// out of resources, or waiting on a lock), unless the error is one a
    /// statement raised about the data it was given (a value it cannot
    /// hold, a constraint, a trigger that refuses it, a row over a limit),
    /// which writing each notification alone pins to one of them.
    fn systemic(error: &sqlx::Error) -> bool {
        match error {
            sqlx::Error::Database(db) => !matches!(
                db.code().as_deref().and_then(|code| code.get(..2)),
                // triggered action, data, integrity, triggered data change,
                // SQL routine, external routine, external routine invocation,
                // check option, program limit, PL/pgSQL (RAISE).
                Some("09" | "22" | "23" | "27" | "2F" | "38" | "39" | "44" | "54" | "P0")
            ),
            _ => true,
        }
    }

    /// Nothing to mend: a dropped transaction rolls back and its
    /// connection goes back to the pool, which replaces a broken one.
    async fn mend(&mut self, _: Option<&sqlx::Error>) -> bool {
        false
    }

    /// Nothing to close here: the writers share one pool, which
    /// [`PgStore::close`] closes once every writer has stopped (a writer that
    /// closed it first would fail another's batch still under way).
    async fn close(&mut self) {}
}

async fn try_batch(pool: &PgPool, ops: &[&WriteOp]) -> Result<Vec<Recorded>, sqlx::Error> {
    let mut connection = pool.acquire().await?;
    let mut tx = connection.begin().await?;
    let results = crate::store::writer::apply_all(&mut *tx, ops).await?;
    tx.commit().await?;
    Ok(results)
}
