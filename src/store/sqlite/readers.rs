//! The pool of read connections, replaced rather than repaired.
//!
//! SQLite keeps one view of a database's shared-memory index (`-shm`) for
//! all the connections of a process. When the first of them could open it
//! only read-only (the service started on read-only files), every later
//! connection shares that view, the writer's included, and writes keep
//! failing after the files become writable, until every connection has
//! closed. On such a failure the writer closes them all and tries again.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

const CLOSE_WAIT: Duration = Duration::from_secs(1);

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

    /// New readers for what comes next; waits (a little) for the old ones
    /// to close, since until they have, a new connection would share their
    /// read-only view.
    pub(super) async fn replace(&self) {
        let fresh = pool_options(self.max_connections, self.acquire_timeout)
            .connect_lazy_with(self.options.clone());
        let old = std::mem::replace(
            &mut *self.current.write().unwrap_or_else(PoisonError::into_inner),
            fresh,
        );
        // A long read may hold one; the writer does not wait for it long.
        if tokio::time::timeout(CLOSE_WAIT, old.close()).await.is_err() {
            tracing::debug!("old read connections still closing");
        }
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
