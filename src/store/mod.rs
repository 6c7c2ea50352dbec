//! Storage: the only module with SQL.
//!
//! SQLite is the embedded default. PostgreSQL comes with its own issue; the
//! interface here is what both will offer.

mod sqlite;

use std::time::Duration;

use crate::config::DatabaseSettings;

/// A verified notification, ready to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
    pub notification_uuid: String,
    pub notification_type: String,
    pub subtype: Option<String>,
    pub signed_date: Option<i64>,
    pub received_at: i64,
    pub environment: Option<String>,
    pub bundle_id: Option<String>,
    pub app_apple_id: Option<i64>,
    pub original_transaction_id: Option<String>,
    pub transaction_id: Option<String>,
    /// The JWS exactly as Apple sent it.
    pub signed_payload: String,
    /// The decoded notification as JSON, nested tokens decoded in place.
    pub payload: String,
}

/// Why a genuine notification was kept aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineReason {
    /// The verifier's code: `BUNDLE_MISMATCH`, `ENVIRONMENT_MISMATCH`, ...
    pub code: String,
    pub message: String,
}

/// A notification in quarantine.
#[derive(Debug, Clone, PartialEq, Eq)]
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

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database did not answer or refused the write; nothing was written.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("the database could not be opened: {0}")]
    Open(String),
    #[error("the database schema could not be migrated: {0}")]
    Migration(String),
}

/// Counts of stored notifications, for operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub notifications: i64,
    pub quarantined: i64,
}

#[derive(Debug, Clone)]
pub struct Store {
    backend: sqlite::SqliteStore,
}

impl Store {
    /// Opens the database named by `settings.url`, creating and migrating it.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Store, StoreError> {
        if !settings.url.starts_with("sqlite:") {
            return Err(StoreError::Open(
                "database.url: only sqlite: is supported by this version".into(),
            ));
        }
        let backend = sqlite::SqliteStore::connect(
            &settings.url,
            settings.max_connections,
            Duration::from_millis(settings.busy_timeout_ms),
        )
        .await?;
        Ok(Store { backend })
    }

    /// Stores a notification durably, once: a repeat of its
    /// `notification_uuid` changes nothing.
    pub async fn record_notification(
        &self,
        notification: NewNotification,
    ) -> Result<Recorded, StoreError> {
        self.backend
            .write(sqlite::WriteOp::Record(notification))
            .await
    }

    /// Keeps a genuine notification aside, once per `notification_uuid`.
    pub async fn quarantine(
        &self,
        notification: NewNotification,
        reason: QuarantineReason,
    ) -> Result<Recorded, StoreError> {
        self.backend
            .write(sqlite::WriteOp::Quarantine(notification, reason))
            .await
    }

    /// Moves a quarantined notification into `notifications`, in one transaction.
    pub async fn release_quarantined(
        &self,
        quarantine_id: i64,
        notification: NewNotification,
    ) -> Result<Recorded, StoreError> {
        self.backend
            .write(sqlite::WriteOp::Release(quarantine_id, notification))
            .await
    }

    /// Quarantined notifications with an id above `after_id`, oldest first.
    pub async fn quarantined(
        &self,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<QuarantinedNotification>, StoreError> {
        self.backend.quarantined(after_id, limit).await
    }

    pub async fn counts(&self) -> Result<Counts, StoreError> {
        self.backend.counts().await
    }

    /// Answers only when the database does.
    pub async fn health(&self) -> Result<(), StoreError> {
        self.backend.health().await
    }

    /// Finishes pending writes and closes every connection.
    pub async fn close(&self) {
        self.backend.close().await
    }
}
