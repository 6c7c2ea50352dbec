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
    AppleStatusDisagrees,
    AppAccountTokenMismatch,
    NonRenewingDurationUnknown,
    UnknownNotificationShape,
    ConsumptionDeadlineMissed,
}

impl FindingKind {
    pub const ALL: [FindingKind; 13] = [
        FindingKind::RefundWithoutExpiration,
        FindingKind::RenewalOutcomeOverdue,
        FindingKind::ExpirationOverdue,
        FindingKind::GracePeriodOverrun,
        FindingKind::ConflictingDuplicate,
        FindingKind::IdentityMismatch,
        FindingKind::MissingRefundNotification,
        FindingKind::UnfoldedNotification,
        FindingKind::AppleStatusDisagrees,
        FindingKind::AppAccountTokenMismatch,
        FindingKind::NonRenewingDurationUnknown,
        FindingKind::UnknownNotificationShape,
        FindingKind::ConsumptionDeadlineMissed,
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
            FindingKind::AppleStatusDisagrees => "APPLE_STATUS_DISAGREES",
            FindingKind::AppAccountTokenMismatch => "APP_ACCOUNT_TOKEN_MISMATCH",
            FindingKind::NonRenewingDurationUnknown => "NON_RENEWING_DURATION_UNKNOWN",
            FindingKind::UnknownNotificationShape => "UNKNOWN_NOTIFICATION_SHAPE",
            FindingKind::ConsumptionDeadlineMissed => "CONSUMPTION_DEADLINE_MISSED",
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

/// The most characters a finding's detail keeps: a few notes, each naming
/// values that came from outside (a token, a product id), must not grow a
/// finding, or the pages that show it, without bound.
pub const MAX_DETAIL_CHARS: usize = 4_000;

/// `text` cut to `max` characters, the cut said: `…(N more characters)`.
pub fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((at, _)) => {
            let kept = text.get(..at).unwrap_or_default();
            let more = text.chars().count().saturating_sub(max);
            format!("{kept}…({more} more characters)")
        }
    }
}

/// How long after the moment Apple should have spoken a silence becomes a
/// finding, in minutes, per rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tolerances {
    pub refund_without_expiration: i64,
    pub renewal_outcome_overdue: i64,
    pub expiration_overdue: i64,
    pub grace_period_overrun: i64,
    pub missing_refund_notification: i64,
}

impl Default for Tolerances {
    fn default() -> Self {
        Tolerances {
            refund_without_expiration: 24 * 60,
            renewal_outcome_overdue: 6 * 60,
            expiration_overdue: 6 * 60,
            grace_period_overrun: 6 * 60,
            missing_refund_notification: 24 * 60,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_keeps_short_text_and_says_what_it_cut() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("exactly10!", 10), "exactly10!");
        assert_eq!(clip("ééééé", 2), "éé…(3 more characters)");
        assert_eq!(clip(&"x".repeat(100_000), 3), "xxx…(99997 more characters)");
    }
}
