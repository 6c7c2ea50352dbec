//! The inconsistency checker: what Apple should have told us and did not.
//!
//! Each rule is a pure function of a ledger item's state, the moment of the
//! check and a tolerance. A finding names the subscription (or purchase, or
//! notification) and says what is missing; it disappears once the missing
//! notification arrives, because the state it is computed from changes, or
//! once Apple's own answer (reconciliation: Get All Subscription Statuses,
//! signed after the moment Apple should have spoken) is folded in: the silence
//! then counts from that answer, and a refunded period Apple confirmed after
//! its end is settled.
//!
//! | code | finding |
//! | --- | --- |
//! | `REFUND_WITHOUT_EXPIRATION` | the current period of an auto-renewable subscription was refunded or revoked, the refunded period's `expiresDate` passed more than the tolerance ago, and Apple said nothing since (no EXPIRED, no renewal, no status answer). Apple's next word after a refund comes when the refunded period ends, which for an annual plan can be months later; entitlement already ended at `revocationDate`. |
//! | `RENEWAL_OUTCOME_OVERDUE` | auto-renew on, `expiresDate` passed more than the tolerance ago, and neither DID_RENEW, DID_FAIL_TO_RENEW nor EXPIRED arrived for the next period |
//! | `EXPIRATION_OVERDUE` | auto-renew off, `expiresDate` passed more than the tolerance ago, and no EXPIRED arrived |
//! | `GRACE_PERIOD_OVERRUN` | in the billing grace period, `gracePeriodExpiresDate` passed more than the tolerance ago, and neither GRACE_PERIOD_EXPIRED, DID_RENEW nor EXPIRED arrived |
//! | `CONFLICTING_DUPLICATE` | the same notificationUUID arrived with different content (both kept; the first stays authoritative) |
//! | `IDENTITY_MISMATCH` | notifications of one subscription disagree on bundle id, environment or subscription group (not on appAccountToken, which Set App Account Token may change) |
//! | `UNFOLDED_NOTIFICATION` | a notification was stored (and acknowledged to Apple) but its stored payload does not read as a ledger event, so the ledger leaves it out; `rebuild` folds it once the cause is fixed |
//! | `APPLE_STATUS_DISAGREES` | a status Apple signed (a notification's `data.status`, or a Get All Subscription Statuses answer) disagrees with the ledger's own answer at its signedDate, computed from everything else it knows (types, transactions, renewal info): both answers and the notifications involved. Apple's status is kept and entitlement follows it; the ledger's model missed something, or a notification it needs is lost |
//! | `APP_ACCOUNT_TOKEN_MISMATCH` | a backend reported a transaction (POST /v1/transactions) for another appAccountToken than the one Apple signed into it: a sign of a replayed purchase |
//! | `UNKNOWN_NOTIFICATION_SHAPE` | a genuine notification for a configured app has a type, subtype or container this version does not know: it was stored (200) and folded as far as its known facts go; upgrade, then `rebuild` |
//! | `NON_RENEWING_DURATION_UNKNOWN` | a non-renewing subscription was bought whose product has no `duration` in `[[apps.products]]`: Apple signs no expiry for one, so it is entitled with no end until its length is configured. One finding per product |
//! | `CONSUMPTION_DEADLINE_MISSED` | Apple asked for consumption information (CONSUMPTION_REQUEST) and its 12 hours passed with no answer accepted (Apple kept failing, or, an hour past the deadline, no instance ran the consumption job), and Apple has not decided since. One per request; it goes once REFUND or REFUND_DECLINED arrives |
//! | `MISSING_REFUND_NOTIFICATION` | a transaction carries a revocation (seen in some other notification) but no REFUND or REVOKE for that transaction arrived, so the refund ledger lacks it |

mod runner;

use crate::ledger::{current_period_revoked, ItemKey, State, Status, MAX_REFUND_NOTICES};
use crate::model::AutoRenewStatus;

pub use crate::finding::{Finding, FindingKind, Tolerances};
pub use runner::{run, spawn_periodic, sync_findings, CheckReport, SyncSummary};

const MINUTE: i64 = 60_000;

/// The open findings (kind code, subject) that `current` no longer has: the
/// ones to resolve.
pub fn vanished(open: &[(String, String)], current: &[Finding]) -> Vec<(String, String)> {
    let current: std::collections::HashSet<(&str, &str)> = current
        .iter()
        .map(|f| (f.kind.code(), f.subject.as_str()))
        .collect();
    open.iter()
        .filter(|(kind, subject)| !current.contains(&(kind.as_str(), subject.as_str())))
        .cloned()
        .collect()
}

/// The findings about one ledger item at `at` (milliseconds).
pub fn check_item(item: &ItemKey, state: &State, at: i64, tolerances: &Tolerances) -> Vec<Finding> {
    let finding = |kind, detail: String| Finding {
        kind,
        subject: item.id().to_owned(),
        original_transaction_id: state.original_transaction_id.clone(),
        bundle_id: state.bundle_id.clone(),
        environment: state.environment.clone(),
        detail,
    };
    let past = |moment: i64, tolerance_minutes: i64| {
        at > moment.saturating_add(tolerance_minutes.saturating_mul(MINUTE))
    };
    let mut findings = Vec::new();

    // What the state noted while folding: one finding per kind, its notes
    // joined.
    for (kind, preface, notes) in [
        (FindingKind::IdentityMismatch, "", &state.identity_conflicts),
        (
            FindingKind::AppleStatusDisagrees,
            "Apple's status was kept (entitlement follows it): ",
            &state.apple_status_disagreements,
        ),
        (
            FindingKind::AppAccountTokenMismatch,
            "a backend reported a purchase for another account than Apple signed it for (a replayed purchase?): ",
            &state.app_account_token_mismatches,
        ),
    ] {
        if !notes.is_empty() {
            findings.push(finding(kind, format!("{preface}{}", notes.join("; "))));
        }
    }
    if let Some(detail) = missing_refund_notices(state, |revoked| {
        past(revoked, tolerances.missing_refund_notification)
    }) {
        findings.push(finding(FindingKind::MissingRefundNotification, detail));
    }
    let ItemKey::Subscription(_) = item else {
        return findings;
    };

    let revoked = current_period_revoked(state);
    if let (true, Some(refunded)) = (revoked, state.last_refund_signed_date) {
        let expired_since = state
            .last_expired_signed_date
            .is_some_and(|e| e >= refunded);
        // Apple speaks again when the refunded period ends, not at once.
        let period_end = state
            .transaction_expires_date
            .map_or(refunded, |end| end.max(refunded));
        let settled_by_apple = state.apple_status_date.is_some_and(|s| s >= period_end);
        if !expired_since
            && !settled_by_apple
            && past(period_end, tolerances.refund_without_expiration)
        {
            findings.push(finding(
                FindingKind::RefundWithoutExpiration,
                format!(
                    "current period refunded (revocationDate {}, reported {refunded}); it ended at {period_end} and no EXPIRED followed. Not entitled since revocationDate",
                    state.revocation_date.unwrap_or(refunded)
                ),
            ));
        }
    }
    // Apple's status answer, signed after the moment it should have spoken,
    // is its word: the silence counts from that answer.
    let since = |moment: i64| state.apple_status_date.map_or(moment, |s| s.max(moment));
    if state.status == Status::Active && !revoked {
        if let Some(expires) = state.expires_date() {
            let from = since(expires);
            match state.auto_renew_status {
                Some(AutoRenewStatus::On) if past(from, tolerances.renewal_outcome_overdue) => {
                    findings.push(finding(
                        FindingKind::RenewalOutcomeOverdue,
                        format!("expiresDate {expires} passed with auto-renew on; no DID_RENEW, DID_FAIL_TO_RENEW or EXPIRED for the next period"),
                    ));
                }
                Some(AutoRenewStatus::Off) if past(from, tolerances.expiration_overdue) => {
                    findings.push(finding(
                        FindingKind::ExpirationOverdue,
                        format!("expiresDate {expires} passed with auto-renew off; no EXPIRED"),
                    ));
                }
                _ => {}
            }
        }
    }
    if state.status == Status::BillingGracePeriod {
        if let Some(grace) = state.grace_period_expires_date {
            if past(since(grace), tolerances.grace_period_overrun) {
                findings.push(finding(
                    FindingKind::GracePeriodOverrun,
                    format!("gracePeriodExpiresDate {grace} passed; no GRACE_PERIOD_EXPIRED, DID_RENEW or EXPIRED"),
                ));
            }
        }
    }
    findings
}

/// When Apple's next word about a subscription is due, so that support can
/// The transactions revoked (still, and longer ago than the tolerance, as
/// `overdue` says) that no REFUND or REVOKE reported: per transaction, so
/// that a lost refund of a later period after an earlier refund is found.
/// A state an older version folded lacks the notices: then only a
/// revocation with no refund notification at all is found, as before.
fn missing_refund_notices(state: &State, overdue: impl Fn(i64) -> bool) -> Option<String> {
    if !state.refund_notices_kept {
        let revoked = state.revocation_date?;
        return (state.last_refund_signed_date.is_none() && overdue(revoked)).then(|| {
            format!(
                "transaction {} carries revocationDate {revoked} but no REFUND or REVOKE arrived",
                state.current_transaction_id.as_deref().unwrap_or("?")
            )
        });
    }
    if state.refund_notices.len() >= MAX_REFUND_NOTICES {
        return None;
    }
    let missing: Vec<String> = state
        .timeline
        .periods
        .iter()
        .filter_map(|p| {
            let revocation = p.revocations.last().filter(|r| r.until.is_none())?;
            let notified = state
                .refund_notices
                .binary_search_by(|known| known.as_str().cmp(&p.transaction_id))
                .is_ok();
            (!notified && overdue(revocation.from)).then(|| {
                format!(
                    "transaction {} carries revocationDate {}",
                    p.transaction_id, revocation.from
                )
            })
        })
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "{} but no REFUND or REVOKE arrived for it",
            missing.join("; ")
        )
    })
}

/// answer "why no EXPIRED yet": the end of a refunded period, the renewal
/// outcome at `expiresDate`, the end of a billing grace period. None when
/// nothing more is expected (expired, revoked, or in billing retry, whose
/// end Apple does not announce).
pub fn next_expected_event_date(item: &ItemKey, state: &State) -> Option<i64> {
    let ItemKey::Subscription(_) = item else {
        return None;
    };
    if current_period_revoked(state) {
        let refunded = state.last_refund_signed_date?;
        if state
            .last_expired_signed_date
            .is_some_and(|e| e >= refunded)
        {
            return None;
        }
        let end = state.transaction_expires_date?;
        return match state.apple_status_date {
            Some(confirmed) if confirmed >= end => None,
            _ => Some(end),
        };
    }
    match state.status {
        Status::Active => state.expires_date(),
        Status::BillingGracePeriod => state.grace_period_expires_date,
        _ => None,
    }
}

/// How an answer from Apple settled a finding.
pub const CONFIRMED_BY_APPLE: &str = "CONFIRMED_BY_APPLE";
pub const CORRECTED_FROM_APPLE: &str = "CORRECTED_FROM_APPLE";

/// `CONFIRMED_BY_APPLE` when Apple's answer left what the ledger says about
/// entitlement as it was, `CORRECTED_FROM_APPLE` when it changed it.
pub fn resolution(before: Option<&State>, after: Option<&State>) -> &'static str {
    let answer = |s: &State| {
        (
            s.status,
            s.expires_date(),
            s.current_transaction_id.clone(),
            s.current_revocation_date(),
            s.auto_renew_status,
            s.grace_period_expires_date,
            s.product_id.clone(),
        )
    };
    if before.map(answer) == after.map(answer) {
        CONFIRMED_BY_APPLE
    } else {
        CORRECTED_FROM_APPLE
    }
}
