//! Storage: the only module with SQL.
//!
//! SQLite is the embedded default. PostgreSQL comes with its own issue; the
//! interface here is what both will offer.

mod fold;
mod sqlite;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::finding::Finding;
use crate::ledger::{Event, ExpirationRecord, ItemKey, RefundRecord, State};
use crate::model::{Environment, NotificationType, Subtype};

/// Where the database is and how to use it (`[database]` in the
/// configuration).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://PATH` (created and migrated on start) or `postgres://...`.
    pub url: String,
    pub max_connections: u32,
    /// How long a write waits for a lock held by another process before the
    /// notification is refused with 503 (and Apple retries).
    pub busy_timeout_ms: u64,
}

/// A verified notification, ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    pub notification_uuid: String,
    pub notification_type: NotificationType,
    pub subtype: Option<Subtype>,
    pub signed_date: Option<i64>,
    pub received_at: i64,
    pub environment: Option<Environment>,
    pub bundle_id: Option<String>,
    pub app_apple_id: Option<i64>,
    pub original_transaction_id: Option<String>,
    pub transaction_id: Option<String>,
    /// The JWS exactly as Apple sent it.
    pub signed_payload: String,
    /// The decoded notification as JSON, nested tokens decoded in place.
    pub payload: String,
    /// What the ledger folds: built from the verified notification, so the
    /// writer never parses `payload` again.
    pub event: Event,
}

/// Apple's answer to the App Store Server API, verified: kept as evidence
/// and folded into the ledger like a notification.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvidence {
    /// From the signed content, so that the same answer is kept once.
    pub evidence_id: String,
    /// One of [`crate::ledger::sources`].
    pub source: &'static str,
    pub original_transaction_id: Option<String>,
    pub transaction_id: Option<String>,
    pub signed_date: i64,
    pub fetched_at: i64,
    pub bundle_id: Option<String>,
    pub environment: Option<String>,
    /// The tokens as Apple sent them, as JSON.
    pub signed_data: String,
    /// What the ledger folds; its `notification_uuid` is `evidence_id`.
    pub event: Event,
}

/// A backfill request: an unfinished run of the same request continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillRequest {
    pub bundle_id: String,
    pub environment: String,
    pub start_date: i64,
    /// `None`: until the moment the run began.
    pub until: Option<i64>,
    pub only_failures: bool,
}

/// Where a backfill stands.
#[derive(Debug, Clone, PartialEq, Eq, Default, sqlx::FromRow)]
pub struct BackfillRun {
    pub id: i64,
    pub end_date: i64,
    /// The next page to ask for; `None` at the start.
    pub pagination_token: Option<String>,
    pub fetched: i64,
    pub stored: i64,
    pub duplicates: i64,
    pub rejected: i64,
}

/// Why a genuine notification was kept aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineReason {
    /// The verifier's code: `BUNDLE_MISMATCH`, `ENVIRONMENT_MISMATCH`, ...
    pub code: String,
    pub message: String,
}

/// A notification in quarantine.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct QuarantinedNotification {
    pub id: i64,
    pub notification_uuid: String,
    pub received_at: i64,
    pub signed_payload: String,
    pub reason_code: String,
}

/// What storing did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Written and durable.
    Stored,
    /// A notification with this `notificationUUID` was already there; nothing changed.
    Duplicate,
    /// Asked to quarantine a notification that is already among the accepted
    /// ones (released since, or accepted under an earlier configuration).
    AlreadyAccepted,
}

/// What went wrong with the database. The database's own error is kept as
/// the source (for logs, with [`StoreError::chain`]); clients see only a
/// stable code.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database did not answer or refused the write; nothing was written.
    #[error("the database is unavailable")]
    Unavailable(#[source] Arc<sqlx::Error>),
    /// The database did not answer within the caller's deadline.
    #[error("the database did not answer in time")]
    TimedOut,
    /// The store was closed, or its writer stopped.
    #[error("the store is closed")]
    Closed,
    #[error("the database could not be opened")]
    Open(#[source] Arc<sqlx::Error>),
    #[error("database.url: {0}")]
    UnsupportedUrl(String),
    #[error("the database schema could not be migrated")]
    Migration(#[source] Arc<sqlx::migrate::MigrateError>),
}

impl StoreError {
    pub(crate) fn unavailable(e: sqlx::Error) -> StoreError {
        StoreError::Unavailable(Arc::new(e))
    }

    /// This error and every cause under it, for logs and operators.
    pub fn chain(&self) -> String {
        crate::telemetry::chain(self)
    }
}

/// How far a rebuild went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rebuilt {
    /// Notifications read and folded.
    pub notifications: u64,
    /// False when it was stopped between two chunks; a rerun finishes it.
    pub complete: bool,
}

/// Counts of stored notifications, for operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub notifications: i64,
    pub quarantined: i64,
    pub ledger_items: i64,
}

/// What `/metrics` reports, kept current by every write: reading it costs
/// the same at any size.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Totals {
    pub notifications: i64,
    pub quarantined: i64,
    /// Open findings per kind code; kinds with none may be left out.
    pub open_findings: Vec<(String, i64)>,
}

/// A subscription or purchase with its ledger state.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerItem {
    pub item: ItemKey,
    pub state: State,
}

/// How to find ledger items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemQuery {
    Subscription(String),
    /// A one-time purchase, by its transactionId.
    Purchase(String),
    AppAccountToken(String),
    OriginalTransactionId(String),
    TransactionId(String),
}

/// Everything the history of one subscription shows.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionHistory {
    pub notifications: Vec<HistoryEntry>,
    pub refunds: Vec<RefundEntry>,
    pub expirations: Vec<ExpirationRecord>,
    /// Apple's answers to reconciliation, folded like notifications.
    pub evidence: Vec<EvidenceEntry>,
}

/// One notification of a subscription's history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    pub notification_uuid: String,
    pub notification_type: String,
    pub subtype: Option<String>,
    pub signed_date: Option<i64>,
    pub received_at: i64,
    pub transaction_id: Option<String>,
    /// The decoded transaction the notification carried.
    pub transaction: Option<serde_json::Value>,
    /// Apple's delivery attempts, when a backfill read them.
    pub send_attempts: Option<serde_json::Value>,
}

/// One of Apple's answers kept for a subscription.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EvidenceEntry {
    pub evidence_id: String,
    pub source: String,
    pub transaction_id: Option<String>,
    pub signed_date: i64,
    pub fetched_at: i64,
}

/// A row of the refund ledger: the refund as the ledger recorded it, and
/// what the store adds (its place in the ledger, its reversal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundEntry {
    pub refund: RefundRecord,
    /// `revocationDate`, or the notification's signedDate without one: the
    /// order of the ledger.
    pub refund_date: i64,
    pub reversed_at: Option<i64>,
    pub reversed_by: Option<String>,
}

/// A notificationUUID that arrived with differing content.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Conflict {
    pub notification_uuid: String,
    pub original_transaction_id: Option<String>,
    pub bundle_id: Option<String>,
    pub environment: Option<String>,
    /// How many differing versions arrived after the first.
    pub versions: i64,
}

/// A stored notification the ledger could not fold: its stored payload does
/// not read as a ledger event.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UnfoldedNotification {
    pub notification_uuid: String,
    pub original_transaction_id: Option<String>,
    pub bundle_id: Option<String>,
    pub environment: Option<String>,
    pub reason: String,
}

/// A kept finding.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FindingEntry {
    pub kind: String,
    pub subject: String,
    pub original_transaction_id: Option<String>,
    pub bundle_id: Option<String>,
    pub environment: Option<String>,
    pub detail: String,
    pub first_seen: i64,
    pub last_seen: i64,
    pub resolved_at: Option<i64>,
    /// `CONFIRMED_BY_APPLE` or `CORRECTED_FROM_APPLE` when Apple's answer
    /// settled it; none when a notification did.
    pub resolution: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FindingFilter {
    pub kind: Option<String>,
    pub bundle_id: Option<String>,
    /// Some(true): only open; Some(false): only resolved.
    pub open: Option<bool>,
    pub limit: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RefundFilter {
    pub original_transaction_id: Option<String>,
    pub bundle_id: Option<String>,
    pub product_id: Option<String>,
    /// refund_date >= from (milliseconds)
    pub from: Option<i64>,
    /// refund_date < to (milliseconds)
    pub to: Option<i64>,
    pub limit: i64,
    /// Continue after this (refund_date, notification_uuid).
    pub cursor: Option<(i64, String)>,
}

/// The database behind a [`Store`]: the one place that names the backends.
/// Static dispatch: each call is a match, not a virtual call.
#[derive(Debug, Clone)]
enum Backend {
    Sqlite(sqlite::SqliteStore),
}

/// Calls the same method on whichever backend this store has.
macro_rules! on_backend {
    ($store:expr, $b:ident => $call:expr) => {
        match &$store.backend {
            Backend::Sqlite($b) => $call,
        }
    };
}

#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
}

impl Store {
    /// Opens the database named by `settings.url`, creating and migrating it.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Store, StoreError> {
        if !settings.url.starts_with("sqlite:") {
            return Err(StoreError::UnsupportedUrl(
                "only sqlite: is supported by this version".into(),
            ));
        }
        let backend = sqlite::SqliteStore::connect(
            &settings.url,
            settings.max_connections,
            Duration::from_millis(settings.busy_timeout_ms),
        )
        .await?;
        Ok(Store {
            backend: Backend::Sqlite(backend),
        })
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
    /// transaction: a bulk load to be followed by [`Store::rebuild`].
    pub async fn import_notifications(
        &self,
        notifications: &[NewNotification],
    ) -> Result<u64, StoreError> {
        on_backend!(self, b => b.import(notifications).await)
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

    /// Stored and quarantined notifications and open findings, without
    /// counting any table.
    pub async fn totals(&self) -> Result<Totals, StoreError> {
        on_backend!(self, b => b.totals().await)
    }

    pub async fn counts(&self) -> Result<Counts, StoreError> {
        on_backend!(self, b => b.counts().await)
    }

    /// Answers only when the database does.
    pub async fn health(&self) -> Result<(), StoreError> {
        on_backend!(self, b => b.health().await)
    }

    /// Finishes pending writes and closes every connection.
    pub async fn close(&self) {
        on_backend!(self, b => b.close().await)
    }
}
