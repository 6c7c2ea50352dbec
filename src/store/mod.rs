//! Storage: the only module with SQL.
//!
//! SQLite is the embedded default; PostgreSQL serves several instances on
//! one database. [`Store`] is the interface both offer, its types in
//! types.rs; the fold (fold.rs) is written once above both.

pub mod copy;
mod fold;
mod postgres;
mod sql;
mod sqlite;
mod types;

pub use types::*;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::clock::SharedClock;
use crate::finding::Finding;
use crate::ledger::ItemKey;

/// The database behind a [`Store`]: the one place that names the backends.
/// Static dispatch: each call is a match, not a virtual call.
#[derive(Debug, Clone)]
enum Backend {
    // Boxed: SQLite's connect options are large, and a Store is cloned often.
    Sqlite(Box<sqlite::SqliteStore>),
    Postgres(postgres::PgStore),
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres:") || url.starts_with("postgresql:")
}

/// Drops the writes whose requester gave up (its request already answered
/// 503, so Apple will retry): none may be committed behind its back. For
/// the backends' writers, before a batch enters its transaction.
fn drop_abandoned<T, R>(batch: &mut Vec<(T, tokio::sync::oneshot::Sender<R>)>) {
    batch.retain(|(_, reply)| {
        let gone = reply.is_closed();
        if gone {
            tracing::info!("a write whose requester gave up was dropped before its transaction");
        }
        !gone
    });
}

/// Calls the same method on whichever backend this store has.
macro_rules! on_backend {
    ($store:expr, $b:ident => $call:expr) => {
        match &$store.backend {
            Backend::Sqlite($b) => $call,
            Backend::Postgres($b) => $call,
        }
    };
}

// After the macro, which the console's part of the store uses.
mod console;

#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
    batch_sizes: WriteBatchSizes,
    /// What tells the time for everything that uses this store: the
    /// system's, unless a test gives its own ([`Store::with_clock`]).
    clock: SharedClock,
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
            let backend = postgres::PgStore::connect(
                &settings.url,
                settings.max_connections,
                Duration::from_millis(settings.busy_timeout_ms),
                batch_sizes.clone(),
            )
            .await?;
            return Ok(Store {
                backend: Backend::Postgres(backend),
                batch_sizes,
                clock: crate::clock::system(),
            });
        }
        if !settings.url.starts_with("sqlite:") {
            return Err(StoreError::UnsupportedUrl(
                "must start with sqlite: or postgres:".into(),
            ));
        }
        let backend = sqlite::SqliteStore::connect(
            &settings.url,
            settings.max_connections,
            Duration::from_millis(settings.busy_timeout_ms),
            create,
            batch_sizes.clone(),
        )
        .await?;
        Ok(Store {
            backend: Backend::Sqlite(Box::new(backend)),
            batch_sizes,
            clock: crate::clock::system(),
        })
    }

    /// This store, telling the time by `clock`.
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
        on_backend!(self, b => b.record_notification(notification).await)
    }

    /// Keeps a genuine notification aside, once per `notification_uuid`.
    pub async fn quarantine(
        &self,
        notification: NewNotification,
        reason: QuarantineReason,
    ) -> Result<Recorded, StoreError> {
        on_backend!(self, b => b.quarantine(notification, reason).await)
    }

    /// Moves a quarantined notification into `notifications`, in one transaction.
    pub async fn release_quarantined(
        &self,
        quarantine_id: i64,
        notification: NewNotification,
    ) -> Result<Recorded, StoreError> {
        on_backend!(self, b => b.release(quarantine_id, notification).await)
    }

    /// Quarantined notifications with an id above `after_id`, oldest first.
    pub async fn quarantined(
        &self,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<QuarantinedNotification>, StoreError> {
        on_backend!(self, b => b.quarantined(after_id, limit).await)
    }

    /// Keeps Apple's answers and folds each new one into the ledger, in one
    /// transaction; returns how many were new.
    pub async fn record_evidence(&self, evidence: &[NewEvidence]) -> Result<u64, StoreError> {
        on_backend!(self, b => b.record_evidence(evidence).await)
    }

    /// Keeps Apple's delivery attempts of a notification (Notification History).
    pub async fn note_send_attempts(
        &self,
        notification_uuid: &str,
        send_attempts: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        on_backend!(self, b => b.note_send_attempts(notification_uuid, send_attempts, now).await)
    }

    /// The unfinished run of `request`, or a new one ending at `now` when
    /// the request names no end.
    pub async fn backfill_run(
        &self,
        request: &BackfillRequest,
        now: i64,
    ) -> Result<BackfillRun, StoreError> {
        on_backend!(self, b => b.backfill_run(request, now).await)
    }

    /// Records a page read: the next token and the counts so far.
    pub async fn backfill_progress(
        &self,
        run: &BackfillRun,
        finished_at: Option<i64>,
    ) -> Result<(), StoreError> {
        on_backend!(self, b => b.backfill_progress(run, finished_at).await)
    }

    /// Which of these transaction ids a notification or evidence brought.
    pub async fn known_transaction_ids(
        &self,
        ids: &[String],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        on_backend!(self, b => b.known_transaction_ids(ids).await)
    }

    /// Whether a notification with this UUID is stored (accepted or quarantined).
    pub async fn has_notification(&self, notification_uuid: &str) -> Result<bool, StoreError> {
        on_backend!(self, b => b.has_notification(notification_uuid).await)
    }

    /// The stored payloads of an item (notifications and Apple's answers)
    /// that had reached us by `known_at` (`receivedAt`, `fetchedAt`): what
    /// the ledger knew then.
    pub async fn item_payloads_known_at(
        &self,
        item: &ItemKey,
        known_at: i64,
    ) -> Result<Vec<String>, StoreError> {
        on_backend!(self, b => b.item_payloads_known_at(item, known_at).await)
    }

    /// Ledger items matching `query`.
    pub async fn ledger_items(&self, query: &ItemQuery) -> Result<Vec<LedgerItem>, StoreError> {
        on_backend!(self, b => b.ledger_items(query).await)
    }

    /// The withdrawn consents (RESCIND_CONSENT) among these customers, by
    /// appTransactionId.
    pub async fn rescinded_consents(
        &self,
        app_transaction_ids: &[String],
    ) -> Result<Vec<RescindedConsent>, StoreError> {
        on_backend!(self, b => b.rescinded_consents(app_transaction_ids).await)
    }

    /// A subscription's notifications in signedDate order, its refunds
    /// (newest first) and its expirations, from one snapshot.
    pub async fn history(
        &self,
        original_transaction_id: &str,
    ) -> Result<SubscriptionHistory, StoreError> {
        on_backend!(self, b => b.history(original_transaction_id).await)
    }

    /// The refund ledger, newest first.
    pub async fn refunds(&self, filter: &RefundFilter) -> Result<Vec<RefundEntry>, StoreError> {
        on_backend!(self, b => b.refunds(filter).await)
    }

    /// Recomputes every ledger item from the stored notifications, a chunk of
    /// subscriptions per transaction so that an interrupted rebuild leaves
    /// every item consistent and a rerun finishes the job. `progress` gets the
    /// notifications folded so far and the total.
    pub async fn rebuild(
        &self,
        progress: impl FnMut(u64, u64),
        stop: &crate::stop::Stop,
    ) -> Result<Rebuilt, StoreError> {
        on_backend!(self, b => b.rebuild(progress, stop).await)
    }

    /// Every derived row, in a stable order (to compare rebuild and incremental).
    pub async fn ledger_snapshot(&self) -> Result<BTreeMap<String, Vec<String>>, StoreError> {
        on_backend!(self, b => b.snapshot().await)
    }

    /// Stores notifications without folding them into the ledger, in one
    /// transaction: a bulk load to be followed by [`Store::rebuild`] (until
    /// then, a notification received for an item with no state folds alone).
    pub async fn import_notifications(
        &self,
        notifications: &[NewNotification],
    ) -> Result<u64, StoreError> {
        on_backend!(self, b => b.import(notifications).await)
    }

    /// Up to `limit` rows of a copied table after `after`, in key order
    /// (see [`copy`]).
    pub async fn copy_page(
        &self,
        table: &copy::CopyTable,
        after: Option<&copy::CopyKey>,
        limit: i64,
    ) -> Result<Vec<copy::CopyRow>, StoreError> {
        on_backend!(self, b => b.copy_page(table, after, limit).await)
    }

    /// Inserts copied rows, with their keys, in one transaction; a row
    /// already there stays as it is. Returns how many were new.
    pub async fn copy_rows(
        &self,
        table: &copy::CopyTable,
        rows: &[copy::CopyRow],
    ) -> Result<u64, StoreError> {
        on_backend!(self, b => b.copy_rows(table, rows).await)
    }

    /// The largest key of a copied table: where a copy continues.
    pub async fn last_copied(
        &self,
        table: &copy::CopyTable,
    ) -> Result<Option<copy::CopyKey>, StoreError> {
        on_backend!(self, b => b.last_copied(table).await)
    }

    /// How many rows a copied table holds (counted).
    pub async fn table_rows(&self, table: &copy::CopyTable) -> Result<u64, StoreError> {
        let rows = on_backend!(self, b => b.table_rows(table).await)?;
        Ok(u64::try_from(rows).unwrap_or(0))
    }

    /// After a table was copied in: generated keys continue after its ids.
    pub async fn finish_copy(&self, table: &copy::CopyTable) -> Result<(), StoreError> {
        on_backend!(self, b => b.finish_copy(table).await)
    }

    /// Ledger items in (kind, item_id) order, after the given one.
    pub async fn scan_ledger(
        &self,
        after: Option<&(String, String)>,
        limit: i64,
    ) -> Result<Vec<LedgerItem>, StoreError> {
        on_backend!(self, b => b.scan_ledger(after, limit).await)
    }

    /// Notifications that arrived again with different content.
    pub async fn conflicts(&self) -> Result<Vec<Conflict>, StoreError> {
        on_backend!(self, b => b.conflicts().await)
    }

    /// Stored notifications whose shape was new to the version that stored
    /// them (a type, a subtype, a container), with their payloads.
    pub async fn unknown_shapes(&self) -> Result<Vec<UnknownShape>, StoreError> {
        on_backend!(self, b => b.unknown_shapes().await)
    }

    /// Stored notifications that could not be folded into the ledger.
    pub async fn unfolded(&self) -> Result<Vec<UnfoldedNotification>, StoreError> {
        on_backend!(self, b => b.unfolded().await)
    }

    /// The (kind code, subject) of every open finding, or of those about
    /// `subject`.
    pub async fn open_finding_keys(
        &self,
        subject: Option<&str>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        on_backend!(self, b => b.open_finding_keys(subject).await)
    }

    /// Marks these open findings resolved at `now`, in one transaction;
    /// returns how many were. Callers pass small batches, so that the write
    /// lock is never held long.
    pub async fn resolve_findings(
        &self,
        keys: &[(String, String)],
        now: i64,
        resolution: Option<&str>,
    ) -> Result<u64, StoreError> {
        on_backend!(self, b => b.resolve_findings(keys, now, resolution).await)
    }

    /// Says how findings about `subject` resolved since `since` (and not yet
    /// attributed) were settled: a periodic check may have resolved them
    /// between Apple's answer being folded and the reconciler's own resolve.
    pub async fn attribute_resolution(
        &self,
        subject: &str,
        since: i64,
        resolution: &str,
    ) -> Result<u64, StoreError> {
        on_backend!(self, b => b.attribute_resolution(subject, since, resolution).await)
    }

    /// Sees these findings again at `now`, opening the new ones, in one
    /// transaction; returns how many were opened.
    pub async fn upsert_findings(&self, records: &[Finding], now: i64) -> Result<u64, StoreError> {
        on_backend!(self, b => b.upsert_findings(records, now).await)
    }

    pub async fn findings(&self, filter: &FindingFilter) -> Result<Vec<FindingEntry>, StoreError> {
        on_backend!(self, b => b.findings(filter).await)
    }

    /// Takes `job`'s lease until `expires_at` if it is free, lapsed at `now`
    /// or already `holder`'s; true when `holder` has it. See the job lease (`lease.rs`), above the store.
    pub async fn hold_lease(
        &self,
        job: &str,
        holder: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        on_backend!(self, b => b.hold_lease(job, holder, now, expires_at).await)
    }

    /// Gives `job`'s lease back, if `holder` has it.
    pub async fn release_lease(&self, job: &str, holder: &str) -> Result<(), StoreError> {
        on_backend!(self, b => b.release_lease(job, holder).await)
    }
}
