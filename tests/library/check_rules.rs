//! The checker's rules as pure functions of a ledger state: each fires only
//! once its moment plus its tolerance has passed (not at that instant), and
//! not for a subscription whose period has not ended.

use appstore_ledger::check::{check_item, FindingKind, Tolerances};
use appstore_ledger::ledger::{ItemKey, State, Status};
use appstore_ledger::model::AutoRenewStatus;

const MINUTE: i64 = 60_000;
const EXPIRES: i64 = 1_750_000_000_000;

fn item() -> ItemKey {
    ItemKey::Subscription("s".into())
}

fn active(auto_renew: AutoRenewStatus) -> State {
    State {
        original_transaction_id: Some("s".into()),
        status: Status::Active,
        status_since: EXPIRES - 30 * 1440 * MINUTE,
        transaction_expires_date: Some(EXPIRES),
        auto_renew_status: Some(auto_renew),
        ..State::default()
    }
}

fn kinds(state: &State, at: i64) -> Vec<FindingKind> {
    check_item(&item(), state, at, &Tolerances::default())
        .into_iter()
        .map(|f| f.kind)
        .collect()
}

#[test]
fn each_rule_waits_for_its_whole_tolerance() {
    let t = Tolerances::default();
    let on = active(AutoRenewStatus::On);
    let due = EXPIRES + t.renewal_outcome_overdue * MINUTE;
    assert_eq!(kinds(&on, due), []);
    assert_eq!(kinds(&on, due + 1), [FindingKind::RenewalOutcomeOverdue]);

    let off = active(AutoRenewStatus::Off);
    let due = EXPIRES + t.expiration_overdue * MINUTE;
    assert_eq!(kinds(&off, due), []);
    assert_eq!(kinds(&off, due + 1), [FindingKind::ExpirationOverdue]);

    let grace = State {
        status: Status::BillingGracePeriod,
        grace_period_expires_date: Some(EXPIRES + 6 * 1440 * MINUTE),
        ..active(AutoRenewStatus::On)
    };
    let due = EXPIRES + 6 * 1440 * MINUTE + t.grace_period_overrun * MINUTE;
    assert_eq!(kinds(&grace, due), []);
    assert_eq!(kinds(&grace, due + 1), [FindingKind::GracePeriodOverrun]);

    let refunded = EXPIRES - 10 * 1440 * MINUTE;
    let revoked = State {
        status: Status::Revoked,
        revocation_date: Some(refunded - MINUTE),
        last_refund_signed_date: Some(refunded),
        ..active(AutoRenewStatus::Off)
    };
    // Apple's next word after a refund comes when the refunded period ends.
    assert_eq!(
        kinds(
            &revoked,
            refunded + t.refund_without_expiration * MINUTE + 1
        ),
        []
    );
    let due = EXPIRES + t.refund_without_expiration * MINUTE;
    assert_eq!(kinds(&revoked, due), []);
    assert_eq!(
        kinds(&revoked, due + 1),
        [FindingKind::RefundWithoutExpiration]
    );
    // An EXPIRED after the refund is Apple's follow-up.
    let followed = State {
        last_expired_signed_date: Some(refunded + MINUTE),
        ..revoked.clone()
    };
    assert_eq!(kinds(&followed, due + 1), []);

    let unreported = State {
        last_refund_signed_date: None,
        ..revoked
    };
    let due = refunded - MINUTE + t.missing_refund_notification * MINUTE;
    assert!(!kinds(&unreported, due).contains(&FindingKind::MissingRefundNotification));
    assert!(kinds(&unreported, due + 1).contains(&FindingKind::MissingRefundNotification));
}

#[test]
fn a_period_that_has_not_ended_gives_no_finding() {
    for auto_renew in [AutoRenewStatus::On, AutoRenewStatus::Off] {
        let state = active(auto_renew);
        for at in [EXPIRES - 1440 * MINUTE, EXPIRES, EXPIRES + MINUTE] {
            assert_eq!(kinds(&state, at), [], "{auto_renew:?} at {at}");
        }
    }
}

#[test]
fn tolerances_are_per_rule() {
    let tolerances = Tolerances {
        expiration_overdue: 0,
        ..Tolerances::default()
    };
    let off = active(AutoRenewStatus::Off);
    let found = check_item(&item(), &off, EXPIRES + 1, &tolerances);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, FindingKind::ExpirationOverdue);
    assert_eq!(found[0].subject, "s");
    // The other rules keep their own.
    let on = active(AutoRenewStatus::On);
    assert_eq!(check_item(&item(), &on, EXPIRES + 1, &tolerances), []);
}

#[test]
fn the_findings_to_resolve_are_the_open_ones_no_longer_found() {
    use appstore_ledger::check::{vanished, Finding};
    let record = |kind: &str, subject: &str| Finding {
        kind: FindingKind::from_code(kind).unwrap(),
        subject: subject.into(),
        original_transaction_id: None,
        bundle_id: None,
        environment: None,
        detail: String::new(),
    };
    let key = |kind: &str, subject: &str| (kind.to_owned(), subject.to_owned());
    let open = [
        key("EXPIRATION_OVERDUE", "a"),
        key("EXPIRATION_OVERDUE", "b"),
        key("IDENTITY_MISMATCH", "a"),
    ];
    let current = [
        record("EXPIRATION_OVERDUE", "a"),
        record("IDENTITY_MISMATCH", "b"),
    ];
    assert_eq!(
        vanished(&open, &current),
        [
            key("EXPIRATION_OVERDUE", "b"),
            key("IDENTITY_MISMATCH", "a")
        ]
    );
    assert_eq!(vanished(&open, &[]), open);
    assert_eq!(vanished(&[], &current), []);
}

/// Apple's status answer, signed after the moment Apple should have spoken,
/// is its word: a refunded period it confirmed after its end is settled, and
/// other silences count again from the answer.
#[test]
fn apple_s_status_answer_settles_or_restarts_the_silence() {
    let t = Tolerances::default();
    let refunded = EXPIRES - 200 * 1440 * MINUTE;
    let revoked = State {
        status: Status::Revoked,
        revocation_date: Some(refunded),
        last_refund_signed_date: Some(refunded),
        ..active(AutoRenewStatus::Off)
    };
    let late = EXPIRES + 10 * 1440 * MINUTE;
    assert_eq!(
        kinds(&revoked, late),
        [FindingKind::RefundWithoutExpiration]
    );
    let confirmed_before_the_end = State {
        apple_status_date: Some(EXPIRES - MINUTE),
        ..revoked.clone()
    };
    assert_eq!(
        kinds(&confirmed_before_the_end, late),
        [FindingKind::RefundWithoutExpiration]
    );
    let confirmed = State {
        apple_status_date: Some(EXPIRES),
        ..revoked
    };
    assert_eq!(kinds(&confirmed, late), []);

    let on = State {
        apple_status_date: Some(late),
        ..active(AutoRenewStatus::On)
    };
    let due = late + t.renewal_outcome_overdue * MINUTE;
    assert_eq!(kinds(&on, due), []);
    assert_eq!(kinds(&on, due + 1), [FindingKind::RenewalOutcomeOverdue]);
}

#[test]
fn the_next_expected_event_date_says_when_apple_speaks_next() {
    use appstore_ledger::check::next_expected_event_date;
    let on = active(AutoRenewStatus::On);
    assert_eq!(next_expected_event_date(&item(), &on), Some(EXPIRES));
    let refunded = State {
        status: Status::Revoked,
        revocation_date: Some(EXPIRES - 100),
        last_refund_signed_date: Some(EXPIRES - 100),
        ..on.clone()
    };
    assert_eq!(next_expected_event_date(&item(), &refunded), Some(EXPIRES));
    let expired = State {
        last_expired_signed_date: Some(EXPIRES),
        ..refunded.clone()
    };
    assert_eq!(next_expected_event_date(&item(), &expired), None);
    let grace = State {
        status: Status::BillingGracePeriod,
        grace_period_expires_date: Some(EXPIRES + 5),
        ..on.clone()
    };
    assert_eq!(next_expected_event_date(&item(), &grace), Some(EXPIRES + 5));
    let over = State {
        status: Status::Expired,
        ..on
    };
    assert_eq!(next_expected_event_date(&item(), &over), None);
    assert_eq!(
        next_expected_event_date(&ItemKey::Purchase("p".into()), &refunded),
        None
    );
}

#[test]
fn a_resolution_says_whether_apple_changed_the_answer() {
    use appstore_ledger::check::{resolution, CONFIRMED_BY_APPLE, CORRECTED_FROM_APPLE};
    let before = active(AutoRenewStatus::On);
    let confirmed = State {
        apple_status_date: Some(EXPIRES),
        last_signed_date: EXPIRES,
        ..before.clone()
    };
    assert_eq!(
        resolution(Some(&before), Some(&confirmed)),
        CONFIRMED_BY_APPLE
    );
    let renewed = State {
        transaction_expires_date: Some(EXPIRES + 30 * 1440 * MINUTE),
        ..before.clone()
    };
    assert_eq!(
        resolution(Some(&before), Some(&renewed)),
        CORRECTED_FROM_APPLE
    );
    assert_eq!(resolution(None, Some(&before)), CORRECTED_FROM_APPLE);
}
