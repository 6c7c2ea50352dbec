//! What the inconsistency checker finds, as the checker reports it and the
//! store keeps it: one type for both. Below both, so that the store need not
//! depend on the checker.

/// The kinds of finding, with their stable codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FindingKind {
    RefundWithoutExpiration,
    RenewalOutcomeOverdue,
    ExpirationOverdue,
    GracePeriodOverrun,
    ConflictingDuplicate,
    IdentityMismatch,
    MissingRefundNotification,
    UnfoldedNotification,
    StatusContradictsType,
    AppAccountTokenMismatch,
}

impl FindingKind {
    pub const ALL: [FindingKind; 10] = [
        FindingKind::RefundWithoutExpiration,
        FindingKind::RenewalOutcomeOverdue,
        FindingKind::ExpirationOverdue,
        FindingKind::GracePeriodOverrun,
        FindingKind::ConflictingDuplicate,
        FindingKind::IdentityMismatch,
        FindingKind::MissingRefundNotification,
        FindingKind::UnfoldedNotification,
        FindingKind::StatusContradictsType,
        FindingKind::AppAccountTokenMismatch,
    ];

    pub fn code(self) -> &'static str {
        match self {
            FindingKind::RefundWithoutExpiration => "REFUND_WITHOUT_EXPIRATION",
            FindingKind::RenewalOutcomeOverdue => "RENEWAL_OUTCOME_OVERDUE",
            FindingKind::ExpirationOverdue => "EXPIRATION_OVERDUE",
            FindingKind::GracePeriodOverrun => "GRACE_PERIOD_OVERRUN",
            FindingKind::ConflictingDuplicate => "CONFLICTING_DUPLICATE",
            FindingKind::IdentityMismatch => "IDENTITY_MISMATCH",
            FindingKind::MissingRefundNotification => "MISSING_REFUND_NOTIFICATION",
            FindingKind::UnfoldedNotification => "UNFOLDED_NOTIFICATION",
            FindingKind::StatusContradictsType => "STATUS_CONTRADICTS_TYPE",
            FindingKind::AppAccountTokenMismatch => "APP_ACCOUNT_TOKEN_MISMATCH",
        }
    }

    pub fn from_code(code: &str) -> Option<FindingKind> {
        FindingKind::ALL.into_iter().find(|k| k.code() == code)
    }
}

/// One open finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub kind: FindingKind,
    /// What it is about: an originalTransactionId (subscriptions), a
    /// transactionId (purchases) or a notificationUUID (conflicts).
    pub subject: String,
    pub original_transaction_id: Option<String>,
    pub bundle_id: Option<String>,
    pub environment: Option<String>,
    pub detail: String,
}
