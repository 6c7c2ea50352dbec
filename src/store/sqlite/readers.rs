//! The pool of read connections, replaced rather than repaired.
//!
//! SQLite keeps one view of a database's shared-memory index (`-shm`) for
//! all the connections of a process. When the first of them could open it
//! only read-only (the service started on read-only files), every later
//! connection shares that view, the writer's included, and writes keep
//! failing after the files become writable, until every connection has
//! closed. The writer then asks for fresh readers.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

#[derive(Debug, Clone)]
pub(super) struct Readers {
    current: Arc<RwLock<SqlitePool>>,
    options: SqliteConnectOptions,
    max_connections: u32,
    acquire_timeout: Duration,
}

impl Readers {
    pub(super) async fn connect(
        options: SqliteConnectOptions,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Readers, sqlx::Error> {
        let pool = pool_options(max_connections, acquire_timeout)
            .connect_with(options.clone())
            .await?;
        Ok(Readers {
            current: Arc::new(RwLock::new(pool)),
            options,
            max_connections,
            acquire_timeout,
        })
    }

    /// The pool to read from now (a handle: cheap to clone).
    pub(super) fn pool(&self) -> SqlitePool {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// New readers for what comes next; the old ones close once the reads
    /// that hold them finish.
    pub(super) fn replace(&self) {
        let fresh = pool_options(self.max_connections, self.acquire_timeout)
            .connect_lazy_with(self.options.clone());
        let old = std::mem::replace(
            &mut *self.current.write().unwrap_or_else(PoisonError::into_inner),
            fresh,
        );
        tokio::spawn(async move { old.close().await });
    }

    pub(super) async fn close(&self) {
        self.pool().close().await;
    }
}

fn pool_options(max_connections: u32, acquire_timeout: Duration) -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
}
