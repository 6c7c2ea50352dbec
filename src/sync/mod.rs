//! Asking Apple when it stays silent: backfill from Notification History,
//! reconciliation from subscription statuses and transaction history, and
//! an end-to-end check of the wiring. Everything Apple answers is verified
//! by the webhook's verifier and stored through the webhook's path.

mod api_check;
mod backfill;
mod consumption;
mod extend;
mod order;
mod reconcile;
mod refunds;
mod reported;
mod schedule;
mod token;

pub use api_check::{api_check, ApiCheckReport};
pub use backfill::{backfill, BackfillReport, BackfillWindow};
pub use consumption::{
    planned_answer, policies as consumption_policies, ConsumptionJob, ConsumptionRun,
};
pub use extend::{
    client_for, extend_renewal, extend_renewal_for_all, new_request_identifier,
    poll_mass_extension, Extended, Extension,
};
pub use order::{look_up_order, looks_like_order_id};
pub use reconcile::{reconcile, reconcile_open_findings, Reconciled};
pub use refunds::{refunds_backfill, RefundsReport};
pub use reported::{report, AppReport, ReportOutcome};
pub use schedule::{spawn_consumption, spawn_periodic};
pub use token::{set_app_account_token, TokenSet};

use crate::appstore_api;
use crate::jws::VerifyError;
use crate::store::StoreError;

/// What can stop a sync job.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Apple(#[from] appstore_api::Error),
    #[error("database: {}", .0.chain())]
    Store(#[from] StoreError),
    #[error("Apple's answer does not verify: {0}")]
    Verification(#[from] VerifyError),
    #[error("no [apps.api] configured for {bundle_id} in {environment}")]
    NotConfigured {
        bundle_id: String,
        environment: String,
    },
    #[error("subscription {0} is unknown here and in every configured app and environment")]
    UnknownSubscription(String),
    #[error("transaction {0} is unknown in every configured app and environment")]
    UnknownTransaction(String),
    #[error(transparent)]
    Receipt(#[from] crate::model::ReceiptError),
    #[error("the receipt lists no in-app purchase")]
    EmptyReceipt,
    #[error("a transaction id or a receipt is asked of Apple: configure [apps.api] first")]
    ApiNotConfigured,
    #[error("{0}")]
    InvalidExtension(String),
}

impl SyncError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            SyncError::Apple(e) => e.code(),
            SyncError::Store(_) => "DATABASE_UNAVAILABLE",
            SyncError::Verification(e) => e.code(),
            SyncError::NotConfigured { .. } => "API_NOT_CONFIGURED",
            SyncError::UnknownSubscription(_) => "UNKNOWN_SUBSCRIPTION",
            SyncError::UnknownTransaction(_) => "UNKNOWN_TRANSACTION",
            SyncError::Receipt(e) => e.code(),
            SyncError::EmptyReceipt => "EMPTY_RECEIPT",
            SyncError::ApiNotConfigured => "API_NOT_CONFIGURED",
            SyncError::InvalidExtension(_) => "INVALID_EXTENSION",
        }
    }
}
