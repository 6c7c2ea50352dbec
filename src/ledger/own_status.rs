//! The ledger's own answer, beside Apple's: the status it gives from the
//! types, transactions and renewal info alone, never from `data.status`,
//! and every status Apple signs compared with it (`APPLE_STATUS_DISAGREES`).

use serde::{Deserialize, Serialize};

use super::event::Event;
use super::state::{note_once, State, Status, MAX_CONTRADICTIONS};
use super::timeline::StatusSpan;

/// The ledger's own status, from the notification that set it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnStatus {
    pub span: StatusSpan,
    /// What set it: `TYPE[/SUBTYPE] notificationUUID`.
    pub set_by: String,
}

/// What the renewal info says of billing when the type says nothing (a
/// status answer, a change of auto-renew during billing retry): in the
/// billing retry period, and in grace while `gracePeriodExpiresDate` is
/// ahead.
pub(super) fn status_from_renewal(s: &State, event: &Event, signed: i64) -> Option<Status> {
    let renewal = event.renewal()?;
    if renewal.is_in_billing_retry_period != Some(true) {
        return None;
    }
    Some(
        if s.grace_period_expires_date
            .is_some_and(|until| signed < until)
        {
            Status::BillingGracePeriod
        } else {
            Status::BillingRetry
        },
    )
}

/// The ledger's own answer at `at`, from everything it knows but Apple's
/// `data.status`: the end (billing retry, expiry, revocation) its types or
/// renewal info last said, unless a period bought since covers `at`
/// (an expiry even when the period was revoked before it); REVOKED while
/// every transaction of the period then is revoked;
/// ACTIVE while a period covers `at`; in grace within the window; else
/// EXPIRED.
pub fn own_status_at(s: &State, at: i64) -> Status {
    let covering = s.timeline.covering(at, s.renewal_date);
    let own = s.own_status.as_ref().map(|o| &o.span);
    let ended = own.filter(|span| {
        matches!(
            span.status,
            Status::BillingRetry | Status::Expired | Status::Revoked
        ) && covering.is_none_or(|p| p.purchase_date <= span.from)
    });
    // An EXPIRED after a refund is Apple's last word on a revoked period.
    if let Some(span) = ended.filter(|span| span.status == Status::Expired) {
        return span.status;
    }
    if s.timeline.revoked_at(at, s.renewal_date) {
        return Status::Revoked;
    }
    if let Some(span) = ended {
        return span.status;
    }
    if covering.is_some() {
        return Status::Active;
    }
    let in_grace = own
        .and_then(|span| span.grace)
        .is_some_and(|(from, until)| from <= at && at < until);
    if in_grace {
        Status::BillingGracePeriod
    } else {
        Status::Expired
    }
}

/// `TYPE[/SUBTYPE] notificationUUID`: the notification a note is about.
pub(super) fn describe(event: &Event) -> String {
    match &event.subtype {
        Some(subtype) => format!(
            "{}/{} {}",
            event.notification_type.as_str(),
            subtype.as_str(),
            event.notification_uuid
        ),
        None => format!(
            "{} {}",
            event.notification_type.as_str(),
            event.notification_uuid
        ),
    }
}

pub(super) fn note_disagreement(
    s: &mut State,
    event: &Event,
    signed: i64,
    apple: Status,
    own: Status,
) {
    let since = match &s.own_status {
        Some(o) => format!(" (since {} at {})", o.set_by, o.span.from),
        None => String::new(),
    };
    let note = format!(
        "{} signed {signed}: Apple's status {}, the ledger's {}{since}",
        describe(event),
        apple.as_str(),
        own.as_str(),
    );
    note_once(&mut s.apple_status_disagreements, note, MAX_CONTRADICTIONS);
}
