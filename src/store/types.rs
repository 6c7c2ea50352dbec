//! What the store takes and gives: rows to write, entries read back,
//! filters, and its errors. No SQL here.

use std::sync::Arc;

use crate::ledger::{Event, ExpirationRecord, ItemKey, RefundRecord, State};
use crate::model::{Environment, NotificationType, Subtype};

pub use crate::config::DatabaseSettings;

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
    /// What this version does not know of its shape (a type, a subtype, a
    /// container: [`crate::model::novelty`]); kept for the checker.
    pub novelty: Option<String>,
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

row_struct! {
/// Where a backfill stands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
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
}

/// Why a genuine notification was kept aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineReason {
    /// The verifier's code: `BUNDLE_MISMATCH`, `ENVIRONMENT_MISMATCH`, ...
    pub code: String,
    pub message: String,
}

row_struct! {
/// A notification in quarantine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedNotification {
    pub id: i64,
    pub notification_uuid: String,
    pub received_at: i64,
    pub signed_payload: String,
    pub reason_code: String,
}
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
    #[error("the backup could not be written")]
    Backup(#[source] Arc<std::io::Error>),
}

impl StoreError {
    pub(crate) fn unavailable(e: sqlx::Error) -> StoreError {
        StoreError::Unavailable(Arc::new(e))
    }

    /// Whether another connection held the database (SQLite's BUSY or
    /// LOCKED, after the busy timeout): worth trying again.
    pub fn is_busy(&self) -> bool {
        match self {
            StoreError::Unavailable(error) => match error.as_ref() {
                sqlx::Error::Database(db)
                    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() =>
                {
                    db.code()
                        .and_then(|code| code.parse::<i32>().ok())
                        .is_some_and(|code| matches!(code & 0xff, 5 | 6))
                }
                // This process's own writes took the turn that long.
                sqlx::Error::PoolTimedOut => true,
                _ => false,
            },
            _ => false,
        }
    }

    /// This error and every cause under it, for logs and operators.
    pub fn chain(&self) -> String {
        crate::telemetry::chain(self)
    }
}

/// What `migrate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    pub backend: &'static str,
    /// The versions this call applied (another instance may have applied
    /// others at the same moment).
    pub applied: Vec<i64>,
    /// The newest version the database now has.
    pub version: Option<i64>,
}

impl Migrated {
    pub(super) fn from_versions(
        backend: &'static str,
        before: &[i64],
        after: Vec<i64>,
    ) -> Migrated {
        let version = after.iter().copied().max();
        Migrated {
            backend,
            applied: after.into_iter().filter(|v| !before.contains(v)).collect(),
            version,
        }
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
    /// Every item of the customer whose download of the app this is.
    AppTransactionId(String),
}

row_struct! {
/// A customer's withdrawn consent (RESCIND_CONSENT), by appTransactionId.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RescindedConsent {
    pub app_transaction_id: String,
    pub rescinded_date: i64,
    pub notification_uuid: String,
}
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
    /// CONSUMPTION_REQUEST: why the customer asked for a refund.
    pub consumption_request_reason: Option<String>,
    /// Apple's `data.status`, when it sent one.
    pub status: Option<i64>,
    /// Apple's delivery attempts, when a backfill read them.
    pub send_attempts: Option<serde_json::Value>,
}

row_struct! {
/// One of Apple's answers kept for a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceEntry {
    pub evidence_id: String,
    pub source: String,
    pub transaction_id: Option<String>,
    pub signed_date: i64,
    pub fetched_at: i64,
}
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

row_struct! {
/// A notificationUUID that arrived with differing content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub notification_uuid: String,
    pub original_transaction_id: Option<String>,
    pub bundle_id: Option<String>,
    pub environment: Option<String>,
    /// How many differing versions arrived after the first.
    pub versions: i64,
}
}

row_struct! {
/// A stored notification the ledger could not fold: its stored payload does
/// not read as a ledger event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnfoldedNotification {
    pub notification_uuid: String,
    pub original_transaction_id: Option<String>,
    pub bundle_id: Option<String>,
    pub environment: Option<String>,
    pub reason: String,
}
}

row_struct! {
/// A stored notification whose shape the version that stored it did not
/// know, with its payload, to judge again by this version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownShape {
    pub notification_uuid: String,
    pub original_transaction_id: Option<String>,
    pub bundle_id: Option<String>,
    pub environment: Option<String>,
    pub payload: String,
}
}

row_struct! {
/// A kept finding.
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FindingFilter {
    pub kind: Option<String>,
    pub bundle_id: Option<String>,
    /// Some(true): only open; Some(false): only resolved.
    pub open: Option<bool>,
    pub limit: i64,
    /// Only those about this subscription (or purchase).
    pub original_transaction_id: Option<String>,
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
    pub environment: Option<String>,
    /// Apple's `revocationReason` (0 or 1).
    pub revocation_reason: Option<i64>,
    /// Some(true): only those reversed since; Some(false): only those standing.
    pub reversed: Option<bool>,
}

/// How a row of `refunds` or `expirations` reads back, on any backend: the
/// ledger's records are pure (no sqlx in the ledger), and the columns are
/// the same on every backend.
impl<'r, R> sqlx::FromRow<'r, R> for RefundEntry
where
    R: sqlx::Row,
    &'r str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(RefundEntry {
            refund: crate::ledger::RefundRecord {
                notification_uuid: row.try_get("notification_uuid")?,
                notification_type: row.try_get("notification_type")?,
                transaction_id: row.try_get("transaction_id")?,
                original_transaction_id: row.try_get("original_transaction_id")?,
                product_id: row.try_get("product_id")?,
                bundle_id: row.try_get("bundle_id")?,
                environment: row.try_get("environment")?,
                revocation_date: row.try_get("revocation_date")?,
                revocation_reason: row.try_get("revocation_reason")?,
                revocation_type: row.try_get("revocation_type")?,
                revocation_percentage: row.try_get("revocation_percentage")?,
                price: row.try_get("price")?,
                currency: row.try_get("currency")?,
                signed_date: row.try_get("signed_date")?,
                subtype: row.try_get("subtype")?,
                revoked_seat_quantity: row.try_get("revoked_seat_quantity")?,
                source: match row.try_get::<String, _>("source")?.as_str() {
                    crate::ledger::REFUND_FROM_APPLE_API => crate::ledger::REFUND_FROM_APPLE_API,
                    _ => crate::ledger::REFUND_FROM_NOTIFICATION,
                },
            },
            refund_date: row.try_get("refund_date")?,
            reversed_at: row.try_get("reversed_at")?,
            reversed_by: row.try_get("reversed_by")?,
        })
    }
}

impl<'r, R> sqlx::FromRow<'r, R> for crate::ledger::ExpirationRecord
where
    R: sqlx::Row,
    &'r str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(crate::ledger::ExpirationRecord {
            notification_uuid: row.try_get("notification_uuid")?,
            subtype: row.try_get("subtype")?,
            transaction_id: row.try_get("transaction_id")?,
            original_transaction_id: row.try_get("original_transaction_id")?,
            product_id: row.try_get("product_id")?,
            bundle_id: row.try_get("bundle_id")?,
            environment: row.try_get("environment")?,
            expires_date: row.try_get("expires_date")?,
            signed_date: row.try_get("signed_date")?,
        })
    }
}

/// A user of the support console (the password's hash stays in the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleUser {
    pub name: String,
    /// `support` or `admin`.
    pub role: String,
    /// Milliseconds.
    pub created_at: i64,
}

/// A signed-in console user, as a request finds its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    pub user_name: String,
    /// `support` or `admin`.
    pub role: String,
    /// What every form that changes something must carry.
    pub csrf_token: String,
}

row_struct! {
/// A console page someone opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessEntry {
    /// Given by the store (0 before).
    pub id: i64,
    /// Milliseconds.
    pub at: i64,
    pub user_name: String,
    /// Which page: `timeline`, `payload`, `search`, `refunds`, ...
    pub page: String,
    /// What was asked for: an id, a token, the filters.
    pub subject: String,
}
}

row_struct! {
/// A stored notification or Apple answer of one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// notificationUUID or evidence id.
    pub id: String,
    /// Received or fetched, milliseconds.
    pub arrived_at: i64,
    pub payload: String,
}
}

row_struct! {
/// A stored payload, decoded, as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPayload {
    /// `notification`, `quarantined`, or the Apple answer's source.
    pub source: String,
    pub original_transaction_id: Option<String>,
    /// When it reached us (received or fetched), milliseconds.
    pub arrived_at: i64,
    pub payload: String,
}
}

/// A backfill run as the delivery health page shows it: bundle id,
/// environment, start and end of the range asked about, fetched, stored
/// (what we had lacked), duplicates, rejected, started, finished.
pub type BackfillSummary = (
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    Option<i64>,
);

/// How deliveries have fared: what the console's delivery health page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryHealth {
    pub since: i64,
    /// (start of the hour, bundle id, environment, notifications received).
    pub received: Vec<(i64, Option<String>, Option<String>, i64)>,
    /// (bundle id, environment, last received at, notifications in all).
    pub last_received: Vec<(Option<String>, Option<String>, i64, i64)>,
    /// (start of the hour, code, deliveries refused).
    pub rejections: Vec<(i64, String, i64)>,
    /// (reason code, how many, last received at).
    pub quarantined: Vec<(String, i64, i64)>,
    /// The newest backfill runs.
    pub backfills: Vec<BackfillSummary>,
}
