//! Storage: the only module with SQL.
//!
//! SQLite is the embedded default; PostgreSQL serves several instances on
//! one database. [`Store`] is the interface both offer, its types in
//! types.rs; the fold (fold.rs) is written once above both.

#[macro_use]
mod rows;

mod batch;
pub mod copy;
mod fold;
mod fold_tx;
mod migrations;
mod outbox;
mod postgres;
mod sql;
mod sqlite;
mod types;
mod writer;

pub use types::*;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::SharedClock;
use crate::ledger::ItemKey;
use fold_tx::LedgerTx as _;
use sql::{Conn as _, Sql};
use writer::WriteOp;

/// The database behind a [`Store`]: the one place that names the backends.
/// Each offers three primitives (`read`, `read_snapshot` and a write
/// transaction, which `on_write!` runs again on PostgreSQL after a
/// serialization failure or a deadlock); the statements, written once in
/// sql/, run on either's connection. Static dispatch: each call is a
/// match, not a virtual call.
#[derive(Debug, Clone)]
enum Backend {
    // Boxed: SQLite's connect options are large, and a Store is cloned often.
    Sqlite(Box<sqlite::SqliteStore>),
    Postgres(postgres::PgStore),
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres:") || url.starts_with("postgresql:")
}

/// Runs `$body` on a connection `$conn` of the store's read pool, on
/// whichever backend the store has: `$body` is written once and calls the
/// shared statements (`Sql::...(conn, ..).await`), which take either
/// backend's connection. Errors become [`StoreError`]s.
macro_rules! on_read {
    ($store:expr, |$conn:ident| $body:expr) => {
        match &$store.backend {
            Backend::Sqlite(b) => b.read(async |$conn| $body).await,
            Backend::Postgres(b) => b.read(async |$conn| $body).await,
        }
    };
}

/// As [`on_read!`], in one read transaction: every statement sees one
/// snapshot.
macro_rules! on_snapshot {
    ($store:expr, |$conn:ident| $body:expr) => {
        match &$store.backend {
            Backend::Sqlite(b) => b.read_snapshot(async |$conn| $body).await,
            Backend::Postgres(b) => b.read_snapshot(async |$conn| $body).await,
        }
    };
}

/// On PostgreSQL, `$body` in one write transaction `$tx`, run again when it
/// met a concurrent one (so `$body` may run more than once).
macro_rules! pg_write {
    ($b:expr, |$tx:ident| $body:expr) => {{
        let mut attempt = 0;
        loop {
            attempt += 1;
            match $b.write_once(async |$tx| $body).await {
                Err(error) if postgres::again(&error, attempt) => {}
                done => break done.map_err(StoreError::unavailable),
            }
        }
    }};
}

/// As [`on_read!`], in one write transaction `$tx`; on PostgreSQL run again
/// when it met a concurrent one, so `$body` may run more than once.
macro_rules! on_write {
    ($store:expr, |$tx:ident| $body:expr) => {
        match &$store.backend {
            Backend::Sqlite(b) => b.write(async |$tx| $body).await,
            Backend::Postgres(b) => pg_write!(b, |$tx| $body),
        }
    };
}

/// As [`on_write!`], for bookkeeping a crash may lose without harm: the
/// commit does not wait for the disk (SQLite: WAL without fsync, made
/// durable by the next full commit; PostgreSQL: synchronous_commit off).
macro_rules! on_write_relaxed {
    ($store:expr, |$tx:ident| $body:expr) => {
        match &$store.backend {
            Backend::Sqlite(b) => b.write_relaxed(async |$tx| $body).await,
            Backend::Postgres(b) => pg_write!(b, |$tx| {
                $tx.relax_commit().await?;
                $body
            }),
        }
    };
}

// After the macros, which they use.
mod checker;
mod console;
mod consumption;
mod deliveries;
mod events;
mod retell;

pub use consumption::{
    ConsumptionFilter, ConsumptionProgress, ConsumptionRequestEntry, NewConsumptionFacts,
};
pub use deliveries::{
    bundle_id_of, Delivery, DeliveryEntry, DeliveryOutcome, DeliveryResult, DeliveryRow,
    EndpointHealth, FanOut, FeedEvent, NewDelivery, Taken,
};
pub use events::EventEntry;
pub use retell::CAUSE_TIME;

#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
    /// The batch writer's tasks, which store every notification.
    writers: writer::Writers,
    batch_sizes: WriteBatchSizes,
    /// What tells the time for everything that uses this store: the
    /// system's, unless a test gives its own ([`Store::with_clock`]).
    clock: SharedClock,
    /// How long non-renewing products last, for the answers folds tell
    /// ([`Store::with_products`]); none configured until then.
    products: Arc<crate::ledger::Products>,
}

/// How many notifications each committed write transaction held, by the
/// writers of one Store: what shows that notifications arriving together
/// share a commit (`appstore_ledger_write_batch_size` in /metrics).
pub type WriteBatchSizes = prometheus_client::metrics::histogram::Histogram;

fn write_batch_sizes() -> WriteBatchSizes {
    // A batch holds 1 to 256 notifications on SQLite, to 64 on PostgreSQL.
    WriteBatchSizes::new([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0])
}

impl Store {
    /// Opens the database named by `settings.url`, creating and migrating it.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Store, StoreError> {
        Store::open(settings, true).await
    }

    /// Opens a database that must exist already (for SQLite: its file),
    /// migrating it: a source to copy from, never created by a typo.
    pub async fn connect_existing(settings: &DatabaseSettings) -> Result<Store, StoreError> {
        Store::open(settings, false).await
    }

    async fn open(settings: &DatabaseSettings, create: bool) -> Result<Store, StoreError> {
        let batch_sizes = write_batch_sizes();
        if is_postgres(&settings.url) {
            let (backend, writers) = postgres::PgStore::connect(
                &settings.url,
                settings.max_connections,
                Duration::from_millis(settings.busy_timeout_ms),
                batch_sizes.clone(),
            )
            .await?;
            return Ok(Store {
                backend: Backend::Postgres(backend),
                writers,
                batch_sizes,
                clock: crate::clock::system(),
                products: Arc::default(),
            });
        }
        if !settings.url.starts_with("sqlite:") {
            return Err(StoreError::UnsupportedUrl(
                "must start with sqlite: or postgres:".into(),
            ));
        }
        let (backend, writers) = sqlite::SqliteStore::connect(
            &settings.url,
            settings.max_connections,
            Duration::from_millis(settings.busy_timeout_ms),
            create,
            batch_sizes.clone(),
        )
        .await?;
        Ok(Store {
            backend: Backend::Sqlite(Box::new(backend)),
            writers,
            batch_sizes,
            clock: crate::clock::system(),
            products: Arc::default(),
        })
    }

    /// This store, telling the time by `clock`.
    /// Folds tell answers with these products' durations (`[[apps.products]]`).
    pub fn with_products(mut self, products: Arc<crate::ledger::Products>) -> Store {
        self.products = products;
        self
    }

    pub fn with_clock(mut self, clock: SharedClock) -> Store {
        self.clock = clock;
        self
    }

    /// The clock of this store and of everything that uses it.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Now, by [`Store::clock`], in milliseconds.
    pub fn now(&self) -> i64 {
        self.clock.now().as_millis()
    }

    /// The sizes of the write transactions committed so far (see
    /// [`WriteBatchSizes`]); a handle, for /metrics.
    pub fn write_batch_sizes(&self) -> WriteBatchSizes {
        self.batch_sizes.clone()
    }

    /// Applies what is missing of the schema to the database `settings.url`
    /// names, and says what it did: for teams that migrate as a deploy step
    /// (`serve` also migrates when it starts).
    pub async fn migrate(settings: &DatabaseSettings) -> Result<Migrated, StoreError> {
        let timeout = Duration::from_millis(settings.busy_timeout_ms).max(Duration::from_secs(5));
        if is_postgres(&settings.url) {
            postgres::migrate(&settings.url, timeout).await
        } else if settings.url.starts_with("sqlite:") {
            sqlite::migrate(
                &settings.url,
                Duration::from_millis(settings.busy_timeout_ms),
            )
            .await
        } else {
            Err(StoreError::UnsupportedUrl(
                "must start with sqlite: or postgres:".into(),
            ))
        }
    }

    /// Copies a SQLite database to a new file at `to` while it is in use
    /// (see `sqlite::backup`); returns the copy's size in bytes. PostgreSQL
    /// is backed up with its own tools (`pg_dump`).
    pub async fn backup(settings: &DatabaseSettings, to: &Path) -> Result<u64, StoreError> {
        if is_postgres(&settings.url) {
            return Err(StoreError::UnsupportedUrl(
                "backup copies a SQLite database; back up PostgreSQL with pg_dump (see the README)"
                    .into(),
            ));
        }
        if !settings.url.starts_with("sqlite:") {
            return Err(StoreError::UnsupportedUrl(
                "must start with sqlite: or postgres:".into(),
            ));
        }
        sqlite::backup(
            &settings.url,
            Duration::from_millis(settings.busy_timeout_ms),
            to,
        )
        .await
    }

    /// Stores a notification durably, once: a repeat of its
    /// `notification_uuid` changes nothing.
    pub async fn record_notification(
        &self,
        notification: NewNotification,
    ) -> Result<Recorded, StoreError> {
        self.writers
            .write(WriteOp::Record(notification, Arc::clone(&self.products)))
            .await
    }

    /// Keeps a genuine notification aside, once per `notification_uuid`.
    pub async fn quarantine(
        &self,
        notification: NewNotification,
        reason: QuarantineReason,
    ) -> Result<Recorded, StoreError> {
        self.writers
            .write(WriteOp::Quarantine(notification, reason))
            .await
    }

    /// Moves a quarantined notification into `notifications`, in one transaction.
    pub async fn release_quarantined(
        &self,
        quarantine_id: i64,
        notification: NewNotification,
    ) -> Result<Recorded, StoreError> {
        self.writers
            .write(WriteOp::Release(
                quarantine_id,
                notification,
                Arc::clone(&self.products),
            ))
            .await
    }

    /// Quarantined notifications with an id above `after_id`, oldest first.
    pub async fn quarantined(
        &self,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<QuarantinedNotification>, StoreError> {
        on_read!(self, |conn| Sql::quarantined(conn, after_id, limit).await)
    }

    /// Keeps Apple's answers and folds each new one into the ledger, in one
    /// transaction; returns how many were new.
    pub async fn record_evidence(&self, evidence: &[NewEvidence]) -> Result<u64, StoreError> {
        on_write!(self, |tx| {
            let mut stored = 0;
            for e in evidence {
                stored += u64::from(fold::record_evidence(tx, e, &self.products).await?);
            }
            Ok(stored)
        })
    }

    /// Keeps Apple's delivery attempts of a notification (Notification History).
    pub async fn note_send_attempts(
        &self,
        notification_uuid: &str,
        send_attempts: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        on_write!(self, |tx| {
            Sql::note_send_attempts(tx, notification_uuid, send_attempts, now).await
        })
    }

    /// The unfinished run of `request`, or a new one ending at `now` when
    /// the request names no end.
    pub async fn backfill_run(
        &self,
        request: &BackfillRequest,
        now: i64,
    ) -> Result<BackfillRun, StoreError> {
        on_write!(self, |tx| Sql::backfill_run(tx, request, now).await)
    }

    /// Records a page read: the next token and the counts so far.
    pub async fn backfill_progress(
        &self,
        run: &BackfillRun,
        finished_at: Option<i64>,
    ) -> Result<(), StoreError> {
        on_write!(self, |tx| {
            Sql::backfill_progress(tx, run, finished_at).await
        })
    }

    /// Which of these transaction ids a notification or evidence brought.
    pub async fn known_transaction_ids(
        &self,
        ids: &[String],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        on_read!(self, |conn| Sql::known_transaction_ids(conn, ids).await)
    }

    /// Whether a notification with this UUID is stored (accepted or quarantined).
    pub async fn has_notification(&self, notification_uuid: &str) -> Result<bool, StoreError> {
        on_read!(self, |conn| {
            Sql::has_notification(conn, notification_uuid).await
        })
    }

    /// The stored payloads of an item (notifications and Apple's answers)
    /// that had reached us by `known_at` (`receivedAt`, `fetchedAt`): what
    /// the ledger knew then.
    pub async fn item_payloads_known_at(
        &self,
        item: &ItemKey,
        known_at: i64,
    ) -> Result<Vec<String>, StoreError> {
        on_read!(self, |conn| {
            Sql::item_payloads_known_at(conn, item, known_at).await
        })
    }

    /// Ledger items matching `query`.
    pub async fn ledger_items(&self, query: &ItemQuery) -> Result<Vec<LedgerItem>, StoreError> {
        on_read!(self, |conn| Sql::items_where(conn, query).await)
    }

    /// The withdrawn consents (RESCIND_CONSENT) among these customers, by
    /// appTransactionId.
    pub async fn rescinded_consents(
        &self,
        app_transaction_ids: &[String],
    ) -> Result<Vec<RescindedConsent>, StoreError> {
        on_read!(self, |conn| {
            Sql::rescinded_consents(conn, app_transaction_ids).await
        })
    }

    /// A subscription's notifications in signedDate order, its refunds
    /// (newest first) and its expirations, from one snapshot (so that a
    /// refund committed in between cannot appear in one list and not
    /// another).
    pub async fn history(
        &self,
        original_transaction_id: &str,
    ) -> Result<SubscriptionHistory, StoreError> {
        on_snapshot!(self, |conn| {
            Sql::subscription_history(conn, original_transaction_id).await
        })
    }

    /// The refund ledger, newest first.
    pub async fn refunds(&self, filter: &RefundFilter) -> Result<Vec<RefundEntry>, StoreError> {
        on_read!(self, |conn| Sql::refunds(conn, filter).await)
    }

    /// Recomputes every ledger item from the stored notifications, a chunk of
    /// subscriptions per transaction so that an interrupted rebuild leaves
    /// every item consistent and a rerun finishes the job. Each chunk holds
    /// new notifications back while it reads and writes (the write lock on
    /// SQLite, a SHARE lock on PostgreSQL), so that no writer folds into an
    /// item the chunk is rewriting. `progress` gets the notifications folded
    /// so far and the total.
    /// Rebuilds the ledger chunk by chunk; see [`REBUILD_BUSY_WAIT`].
    pub async fn rebuild(
        &self,
        mut progress: impl FnMut(u64, u64),
        stop: &crate::stop::Stop,
    ) -> Result<Rebuilt, StoreError> {
        let total = on_read!(self, |conn| Sql::folded_notifications(conn).await)?;
        let total = u64::try_from(total).unwrap_or(0);
        let mut after = String::new();
        let mut done = 0u64;
        let complete = loop {
            if stop.is_cancelled() {
                break false;
            }
            // Since the chunk first found the database busy: each try waits
            // out the busy timeout too, so time is what bounds the tries.
            let (mut busy_since, mut attempt) = (None, 0u32);
            let (last, folded) = loop {
                let chunk = on_write!(self, |tx| {
                    tx.lock_for_rebuild().await?;
                    let telling = fold::Telling {
                        products: &self.products,
                        at: self.now(),
                        cause: "rebuild",
                    };
                    fold::rebuild_chunk(tx, &after, REBUILD_CHUNK, &telling).await
                });
                // Beside a busy service a chunk may wait longer for SQLite's
                // write lock than the busy timeout: it is tried again, for a
                // while, rather than failing the rebuild.
                match chunk {
                    Err(error)
                        if error.is_busy()
                            && busy_since
                                .get_or_insert_with(tokio::time::Instant::now)
                                .elapsed()
                                < REBUILD_BUSY_WAIT =>
                    {
                        let pause = Duration::from_millis(100)
                            .saturating_mul(2u32.saturating_pow(attempt.min(5)))
                            .min(Duration::from_secs(2));
                        attempt = attempt.saturating_add(1);
                        tokio::select! {
                            _ = tokio::time::sleep(pause) => {}
                            _ = stop.cancelled() => {}
                        }
                        if stop.is_cancelled() {
                            return Ok(Rebuilt {
                                notifications: done,
                                complete: false,
                            });
                        }
                    }
                    chunk => break chunk?,
                }
            };
            done += folded;
            progress(done, total);
            match last {
                Some(last) => after = last,
                None => break true,
            }
        };
        Ok(Rebuilt {
            notifications: done,
            complete,
        })
    }

    /// Every derived row, in a stable order (to compare rebuild and incremental).
    pub async fn ledger_snapshot(&self) -> Result<BTreeMap<String, Vec<String>>, StoreError> {
        on_read!(self, |conn| Sql::snapshot(conn).await)
    }

    /// Stores notifications without folding them into the ledger, in one
    /// transaction: a bulk load to be followed by [`Store::rebuild`] (until
    /// then, a notification received for an item with no state folds alone).
    pub async fn import_notifications(
        &self,
        notifications: &[NewNotification],
    ) -> Result<u64, StoreError> {
        on_write!(self, |tx| {
            let mut stored = 0;
            for n in notifications {
                if tx.insert_notification(n, None).await? == Recorded::Stored {
                    stored += 1;
                }
            }
            Ok(stored)
        })
    }

    /// Stored and quarantined notifications and open findings, without
    /// counting any table, from one snapshot.
    pub async fn totals(&self) -> Result<Totals, StoreError> {
        on_snapshot!(self, |conn| Sql::totals(conn).await)
    }

    pub async fn counts(&self) -> Result<Counts, StoreError> {
        on_read!(self, |conn| Sql::counts(conn).await)
    }

    /// Healthy means a notification could be stored now: the database
    /// answers a read, and the writer commits a row larger than a
    /// notification.
    pub async fn health(&self) -> Result<(), StoreError> {
        on_read!(self, |conn| Sql::ping(conn).await)?;
        self.writers
            .write(WriteOp::Probe(self.now()))
            .await
            .map(drop)
    }

    /// Answers the writes already queued, then closes every connection.
    pub async fn close(&self) {
        self.writers.close().await;
        match &self.backend {
            Backend::Sqlite(b) => b.close().await,
            Backend::Postgres(b) => b.close().await,
        }
    }
}

/// Subscriptions per rebuild transaction: each holds the write lock (on
/// PostgreSQL, new notifications) for one chunk only.
const REBUILD_CHUNK: i64 = 2_000;
/// How long a rebuild chunk waits, in all, for a write lock held elsewhere
/// (SQLite's busy service) before the rebuild fails.
pub const REBUILD_BUSY_WAIT: Duration = Duration::from_secs(120);
