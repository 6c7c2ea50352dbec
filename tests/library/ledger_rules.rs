//! Rules of the pure ledger that the scenario tests do not pin down: which
//! transaction a renewal-preference change may make current, the status of a
//! one-time purchase, and when `statusSince` moves.

use appstore_ledger::ledger::{fold, Event, EventData, ItemKey, State, Status, TransactionFacts};
use appstore_ledger::model::{NotificationType, ProductType, Subtype};

const DAY: i64 = 86_400_000;
const T0: i64 = 1_750_000_000_000;

fn transaction(id: &str, product: &str, purchase: i64, expires: i64) -> TransactionFacts {
    TransactionFacts {
        transaction_id: Some(id.into()),
        original_transaction_id: Some("s".into()),
        product_id: Some(product.into()),
        product_type: Some(ProductType::AutoRenewableSubscription),
        purchase_date: Some(purchase),
        expires_date: Some(expires),
        signed_date: Some(purchase),
        ..TransactionFacts::default()
    }
}

fn event(uuid: &str, kind: &str, subtype: Option<&str>, signed: i64, t: TransactionFacts) -> Event {
    Event {
        notification_uuid: uuid.into(),
        notification_type: NotificationType::from_raw(kind),
        subtype: subtype.map(Subtype::from_raw),
        signed_date: Some(signed),
        data: Some(EventData {
            bundle_id: Some("com.example.app".into()),
            environment: Some("Sandbox".into()),
            status: None,
            signed_transaction_info: Some(t),
            signed_renewal_info: None,
            consumption_request_reason: None,
        }),
        reported_app_account_token: None,
        unclaim_info: None,
    }
}

fn state(item: &ItemKey, events: Vec<Event>) -> State {
    fold(item, events).unwrap().0
}

#[test]
fn only_an_upgrade_makes_a_shorter_transaction_current() {
    let item = ItemKey::Subscription("s".into());
    let annual = transaction("t-annual", "annual", T0, T0 + 365 * DAY);
    // A change of product that ends sooner than the current period.
    let monthly = transaction("t-monthly", "monthly", T0 + DAY, T0 + 31 * DAY);
    let subscribed = event("1", "SUBSCRIBED", Some("INITIAL_BUY"), T0, annual);
    for (subtype, current) in [
        (Some("UPGRADE"), "t-monthly"),
        (Some("DOWNGRADE"), "t-annual"),
        (None, "t-annual"),
    ] {
        let change = event(
            "2",
            "DID_CHANGE_RENEWAL_PREF",
            subtype,
            T0 + DAY,
            monthly.clone(),
        );
        let s = state(&item, vec![subscribed.clone(), change]);
        assert_eq!(
            s.current_transaction_id.as_deref(),
            Some(current),
            "{subtype:?}"
        );
    }
    // An upgrade notification carrying the upgraded-away transaction does
    // not make it current.
    let mut away = monthly.clone();
    away.is_upgraded = Some(true);
    let change = event(
        "2",
        "DID_CHANGE_RENEWAL_PREF",
        Some("UPGRADE"),
        T0 + DAY,
        away,
    );
    let s = state(&item, vec![subscribed.clone(), change]);
    assert_eq!(s.current_transaction_id.as_deref(), Some("t-annual"));
    // Another type carrying the shorter transaction does not either.
    let other = event("2", "DID_RENEW", Some("UPGRADE"), T0 + DAY, monthly);
    let s = state(&item, vec![subscribed, other]);
    assert_eq!(s.current_transaction_id.as_deref(), Some("t-annual"));
}

#[test]
fn a_one_time_purchase_is_revoked_while_its_transaction_carries_a_revocation() {
    let item = ItemKey::Purchase("p".into());
    let purchase = TransactionFacts {
        transaction_id: Some("p".into()),
        original_transaction_id: Some("p".into()),
        product_type: Some(ProductType::NonConsumable),
        purchase_date: Some(T0),
        signed_date: Some(T0),
        ..TransactionFacts::default()
    };
    let mut refunded = purchase.clone();
    refunded.revocation_date = Some(T0 + DAY);
    let bought = event("1", "ONE_TIME_CHARGE", None, T0, purchase.clone());
    let refund = event("2", "REFUND", None, T0 + DAY, refunded);
    let reversed = event("3", "REFUND_REVERSED", None, T0 + 2 * DAY, purchase);
    assert_eq!(state(&item, vec![bought.clone()]).status, Status::Active);
    let s = state(&item, vec![bought.clone(), refund.clone()]);
    assert_eq!(s.status, Status::Revoked);
    assert!(!s.entitled_at(&item, T0 + 2 * DAY));
    assert!(s.entitled_at(&item, T0 + DAY - 1));
    let s = state(&item, vec![bought, refund, reversed]);
    assert_eq!(s.status, Status::Active);
    assert!(s.entitled_at(&item, T0 + 3 * DAY));
}

#[test]
fn status_since_is_when_the_status_last_changed() {
    let item = ItemKey::Subscription("s".into());
    let t1 = transaction("t1", "monthly", T0, T0 + 30 * DAY);
    let t2 = transaction("t2", "monthly", T0 + 30 * DAY, T0 + 60 * DAY);
    let subscribed = event("1", "SUBSCRIBED", None, T0, t1.clone());
    let renewed = event("2", "DID_RENEW", None, T0 + 30 * DAY, t2.clone());
    let s = state(&item, vec![subscribed.clone(), renewed.clone()]);
    assert_eq!((s.status, s.status_since), (Status::Active, T0));

    let expired = event("3", "EXPIRED", Some("VOLUNTARY"), T0 + 60 * DAY, t2.clone());
    let later = event("4", "DID_CHANGE_RENEWAL_STATUS", None, T0 + 70 * DAY, t2);
    let s = state(&item, vec![subscribed, renewed, expired, later]);
    assert_eq!((s.status, s.status_since), (Status::Expired, T0 + 60 * DAY));
}

#[test]
fn the_current_period_is_the_latest_one_whatever_arrives_last() {
    let item = ItemKey::Subscription("s".into());
    let t1 = transaction("t1", "monthly", T0, T0 + 30 * DAY);
    let t2 = transaction("t2", "monthly", T0 + 30 * DAY, T0 + 60 * DAY);
    let subscribed = event("1", "SUBSCRIBED", None, T0, t1.clone());
    let renewed = event("2", "DID_RENEW", None, T0 + 30 * DAY, t2);
    // Signed after the renewal, but about the first period.
    let mut refunded = t1;
    refunded.revocation_date = Some(T0 + 31 * DAY);
    let old_refund = event("3", "REFUND", None, T0 + 31 * DAY, refunded);
    let s = state(&item, vec![subscribed, renewed, old_refund]);
    assert_eq!(s.current_transaction_id.as_deref(), Some("t2"));
    assert_eq!(s.transaction_expires_date, Some(T0 + 60 * DAY));
    assert_eq!(s.current_revocation_date(), None);

    // Two transactions ending at the same moment: the one bought later is
    // current, in whichever order they are signed.
    let early = transaction("early", "monthly", T0, T0 + 30 * DAY);
    let late = transaction("late", "monthly", T0 + DAY, T0 + 30 * DAY);
    for (first, second) in [(early.clone(), late.clone()), (late, early)] {
        let s = state(
            &item,
            vec![
                event("1", "SUBSCRIBED", None, T0, first),
                event("2", "DID_RENEW", None, T0 + 2 * DAY, second),
            ],
        );
        assert_eq!(s.current_transaction_id.as_deref(), Some("late"));
    }
}

/// The status a notification implies when Apple sent no `data.status` (older
/// notifications), type by type, from an active subscription and from one in
/// billing retry: "unchanged" types must leave either as it was.
#[test]
fn without_data_status_the_type_decides_the_status() {
    use Status::{Active, BillingGracePeriod, BillingRetry, Expired, Revoked};
    let item = ItemKey::Subscription("s".into());
    let t1 = transaction("t1", "monthly", T0, T0 + 30 * DAY);
    let mut refunded = t1.clone();
    refunded.revocation_date = Some(T0 + 5 * DAY);
    let upgraded = transaction("t-pro", "pro", T0 + 5 * DAY, T0 + 35 * DAY);
    let cases: &[(&str, Option<&str>, &TransactionFacts, Status, Status)] = &[
        // type, subtype, transaction, from ACTIVE, from BILLING_RETRY
        ("SUBSCRIBED", Some("RESUBSCRIBE"), &t1, Active, Active),
        ("DID_RENEW", None, &t1, Active, Active),
        ("DID_RENEW", Some("BILLING_RECOVERY"), &t1, Active, Active),
        ("RENEWAL_EXTENDED", None, &t1, Active, Active),
        ("REFUND_REVERSED", None, &t1, Active, Active),
        ("OFFER_REDEEMED", None, &t1, Active, Active),
        (
            "DID_CHANGE_RENEWAL_PREF",
            Some("UPGRADE"),
            &upgraded,
            Active,
            Active,
        ),
        (
            "DID_CHANGE_RENEWAL_PREF",
            Some("DOWNGRADE"),
            &t1,
            Active,
            BillingRetry,
        ),
        ("DID_CHANGE_RENEWAL_PREF", None, &t1, Active, BillingRetry),
        (
            "DID_FAIL_TO_RENEW",
            Some("GRACE_PERIOD"),
            &t1,
            BillingGracePeriod,
            BillingGracePeriod,
        ),
        ("DID_FAIL_TO_RENEW", None, &t1, BillingRetry, BillingRetry),
        (
            "GRACE_PERIOD_EXPIRED",
            None,
            &t1,
            BillingRetry,
            BillingRetry,
        ),
        ("EXPIRED", Some("VOLUNTARY"), &t1, Expired, Expired),
        ("REVOKE", None, &refunded, Revoked, Revoked),
        ("REFUND", None, &refunded, Revoked, Revoked),
        ("REFUND_DECLINED", None, &t1, Active, BillingRetry),
        ("CONSUMPTION_REQUEST", None, &t1, Active, BillingRetry),
        ("PRICE_INCREASE", Some("PENDING"), &t1, Active, BillingRetry),
        (
            "DID_CHANGE_RENEWAL_STATUS",
            Some("AUTO_RENEW_DISABLED"),
            &t1,
            Active,
            BillingRetry,
        ),
        (
            "RENEWAL_EXTENSION",
            Some("FAILURE"),
            &t1,
            Active,
            BillingRetry,
        ),
    ];
    for &(kind, subtype, t, from_active, from_retry) in cases {
        for (before, expected) in [
            (event("0", "SUBSCRIBED", None, T0, t1.clone()), from_active),
            (
                event("0", "DID_FAIL_TO_RENEW", None, T0, t1.clone()),
                from_retry,
            ),
        ] {
            let e = event("1", kind, subtype, T0 + 5 * DAY, t.clone());
            let s = state(&item, vec![before.clone(), e]);
            assert_eq!(
                s.status,
                expected,
                "{kind} {subtype:?} after {}",
                before.notification_type.as_str()
            );
        }
    }

    // A refund of a period that a later renewal replaced ends nothing.
    let t2 = transaction("t2", "monthly", T0 + 30 * DAY, T0 + 60 * DAY);
    let s = state(
        &item,
        vec![
            event("0", "SUBSCRIBED", None, T0, t1.clone()),
            event("1", "DID_RENEW", None, T0 + 30 * DAY, t2),
            event("2", "REFUND", None, T0 + 31 * DAY, refunded),
        ],
    );
    assert_eq!(s.status, Active);
}

/// Entitlement is a half-open span: from the first purchase (included) to
/// the end of the period or the grace period (excluded).
#[test]
fn entitlement_starts_at_purchase_and_ends_before_expiry() {
    let item = ItemKey::Subscription("s".into());
    let mut t1 = transaction("t1", "monthly", T0, T0 + 30 * DAY);
    t1.original_purchase_date = Some(T0);
    let s = state(&item, vec![event("1", "SUBSCRIBED", None, T0, t1.clone())]);
    assert!(!s.entitled_at(&item, T0 - 1));
    assert!(s.entitled_at(&item, T0));
    assert!(s.entitled_at(&item, T0 + 30 * DAY - 1));
    assert!(!s.entitled_at(&item, T0 + 30 * DAY));

    // Billing failed at the period's end, with six days of grace.
    let mut failed = event(
        "2",
        "DID_FAIL_TO_RENEW",
        Some("GRACE_PERIOD"),
        T0 + 30 * DAY,
        t1.clone(),
    );
    failed.data.as_mut().unwrap().signed_renewal_info =
        Some(appstore_ledger::ledger::RenewalFacts {
            original_transaction_id: Some("s".into()),
            grace_period_expires_date: Some(T0 + 36 * DAY),
            signed_date: Some(T0 + 30 * DAY),
            ..Default::default()
        });
    let grace = state(
        &item,
        vec![event("1", "SUBSCRIBED", None, T0, t1.clone()), failed],
    );
    assert_eq!(grace.status, Status::BillingGracePeriod);
    assert!(grace.entitled_at(&item, T0 + 30 * DAY));
    assert!(grace.entitled_at(&item, T0 + 36 * DAY - 1));
    assert!(!grace.entitled_at(&item, T0 + 36 * DAY));
    // Before the purchase, never; the grace answers for its own days only.
    assert!(!grace.entitled_at(&item, T0 - 1));
}

/// A refund of the current transaction does not end access when the renewal
/// info already shows a later period (whose transaction we have not seen).
#[test]
fn a_refunded_transaction_is_not_the_current_period_once_a_later_renewal_is_known() {
    let item = ItemKey::Subscription("s".into());
    let mut t1 = transaction("t1", "monthly", T0, T0 + 30 * DAY);
    t1.revocation_date = Some(T0 + 40 * DAY);
    let mut refund = event("1", "REFUND", None, T0 + 40 * DAY, t1.clone());
    let renewal = |renewal_date| appstore_ledger::ledger::RenewalFacts {
        original_transaction_id: Some("s".into()),
        renewal_date: Some(renewal_date),
        signed_date: Some(T0 + 40 * DAY),
        ..Default::default()
    };
    let data = refund.data.as_mut().unwrap();
    data.signed_renewal_info = Some(renewal(T0 + 60 * DAY));
    let s = state(&item, vec![refund.clone()]);
    assert_eq!(s.current_revocation_date(), None);
    assert_eq!(s.status, Status::Active);
    assert!(s.entitled_at(&item, T0 + 45 * DAY));

    // With no later period known, the same refund ends access.
    refund.data.as_mut().unwrap().signed_renewal_info = Some(renewal(T0 + 30 * DAY));
    let s = state(&item, vec![refund]);
    assert_eq!(s.current_revocation_date(), Some(T0 + 40 * DAY));
    assert_eq!(s.status, Status::Revoked);
}
