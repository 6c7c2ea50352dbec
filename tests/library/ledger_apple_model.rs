//! The ledger where Apple's model moved on: several transactions for one
//! period (seats added mid-period), seat-based refunds, upgrades by offer,
//! and the grace window after an upgrade. Expected answers are Apple's
//! documented rules applied by hand to each scenario.

use appstore_ledger::ledger::{
    apply, fold, Effect, Event, EventData, ItemKey, RenewalFacts, State, Status, TransactionFacts,
};
use appstore_ledger::model::{NotificationType, ProductType, SubscriptionStatus, Subtype};

const DAY: i64 = 86_400_000;
const T0: i64 = 1_790_000_000_000;

fn transaction(id: &str, product: &str, purchase: i64, expires: i64) -> TransactionFacts {
    TransactionFacts {
        transaction_id: Some(id.into()),
        original_transaction_id: Some("s".into()),
        product_id: Some(product.into()),
        product_type: Some(ProductType::AutoRenewableSubscription),
        purchase_date: Some(purchase),
        expires_date: Some(expires),
        signed_date: Some(purchase),
        quantity: Some(1),
        ..TransactionFacts::default()
    }
}

/// A transaction of a period that several transactions represent.
fn seats(id: &str, purchase: i64, expires: i64, quantity: i64) -> TransactionFacts {
    TransactionFacts {
        quantity: Some(quantity),
        additional_transaction_reason: Some("SEAT_ADDITION".into()),
        ..transaction(id, "team", purchase, expires)
    }
}

fn revoked(mut t: TransactionFacts, at: i64) -> TransactionFacts {
    t.revocation_date = Some(at);
    t.revocation_reason = Some(appstore_ledger::model::RevocationReason::from_raw(0));
    t.signed_date = Some(at);
    t
}

fn event(
    uuid: &str,
    kind: &str,
    subtype: Option<&str>,
    signed: i64,
    status: Option<i64>,
    t: TransactionFacts,
    renewal: Option<RenewalFacts>,
) -> Event {
    Event {
        notification_uuid: uuid.into(),
        notification_type: NotificationType::from_raw(kind),
        subtype: subtype.map(Subtype::from_raw),
        signed_date: Some(signed),
        data: Some(EventData {
            bundle_id: Some("com.example.app".into()),
            environment: Some("Sandbox".into()),
            status: status.map(SubscriptionStatus::from_raw),
            signed_transaction_info: Some(t),
            signed_renewal_info: renewal,
            consumption_request_reason: None,
        }),
        reported_app_account_token: None,
        unclaim_info: None,
    }
}

/// The fold of `events` in every rotation of their order: the answers must
/// not depend on which arrived first.
fn states(events: &[Event]) -> Vec<(State, Vec<Effect>)> {
    let item = ItemKey::Subscription("s".into());
    (0..events.len())
        .map(|shift| {
            let mut order = events.to_vec();
            order.rotate_left(shift);
            fold(&item, order).unwrap()
        })
        .collect()
}

const ACTIVE: i64 = 1;
const GRACE: i64 = 4;

#[test]
fn seats_added_mid_period_share_it_and_their_refund_leaves_it_standing() {
    let item = ItemKey::Subscription("s".into());
    let end = T0 + 30 * DAY;
    // Five seats bought; five more added on day 10. Apple re-signs the first
    // transaction with additionalTransactionReason too.
    let first = TransactionFacts {
        quantity: Some(5),
        ..transaction("t1", "team", T0, end)
    };
    let added = seats("t2", T0 + 10 * DAY, end, 5);
    let events = [
        event(
            "1",
            "SUBSCRIBED",
            Some("INITIAL_BUY"),
            T0,
            Some(ACTIVE),
            first,
            None,
        ),
        event(
            "2",
            "DID_CHANGE_RENEWAL_PREF",
            Some("INCREASE_QUANTITY"),
            T0 + 10 * DAY,
            Some(ACTIVE),
            added.clone(),
            None,
        ),
        // The added seats refunded on day 12; the period's first
        // transaction stands, and Apple still says ACTIVE.
        event(
            "3",
            "REFUND",
            None,
            T0 + 12 * DAY,
            Some(ACTIVE),
            revoked(added, T0 + 12 * DAY),
            None,
        ),
    ];
    for (s, effects) in states(&events) {
        assert_eq!(s.status, Status::Active);
        for at in [T0, T0 + 11 * DAY, T0 + 13 * DAY, end - 1] {
            assert!(
                s.entitled_at(&item, at),
                "entitled at day {}",
                (at - T0) / DAY
            );
            assert_eq!(s.status_at(&item, at), Some(Status::Active));
        }
        assert!(!s.entitled_at(&item, end));
        assert_eq!(s.seats_at(&item, T0 + DAY), Some(5));
        assert_eq!(s.seats_at(&item, T0 + 11 * DAY), Some(10));
        assert_eq!(s.seats_at(&item, T0 + 13 * DAY), Some(5));
        assert_eq!(s.expires_at(&item, T0 + 13 * DAY), Some(end));
        assert_eq!(s.current_revocation_date(), None);
        let refunds: Vec<_> = effects
            .iter()
            .filter_map(|e| match e {
                Effect::Refund(r) => Some(r.transaction_id.as_deref()),
                _ => None,
            })
            .collect();
        assert_eq!(refunds, [Some("t2")]);
    }
}

#[test]
fn a_period_is_revoked_once_every_transaction_of_it_is() {
    let item = ItemKey::Subscription("s".into());
    let end = T0 + 30 * DAY;
    let first = seats("t1", T0, end, 5);
    let added = seats("t2", T0 + 10 * DAY, end, 3);
    // Without data.status: the types alone decide.
    let events = [
        event("1", "SUBSCRIBED", None, T0, None, first.clone(), None),
        event(
            "2",
            "DID_CHANGE_RENEWAL_PREF",
            Some("INCREASE_QUANTITY"),
            T0 + 10 * DAY,
            None,
            added.clone(),
            None,
        ),
        event(
            "3",
            "REFUND",
            None,
            T0 + 12 * DAY,
            None,
            revoked(added, T0 + 12 * DAY),
            None,
        ),
    ];
    for (s, _) in states(&events) {
        assert_eq!(s.status, Status::Active, "one of two refunded");
        assert!(s.entitled_at(&item, T0 + 13 * DAY));
    }
    let mut all = events.to_vec();
    all.push(event(
        "4",
        "REFUND",
        None,
        T0 + 14 * DAY,
        None,
        revoked(first, T0 + 14 * DAY),
        None,
    ));
    for (s, _) in states(&all) {
        assert_eq!(s.status, Status::Revoked, "both refunded");
        assert!(s.entitled_at(&item, T0 + 13 * DAY));
        assert!(!s.entitled_at(&item, T0 + 14 * DAY));
        assert_eq!(s.status_at(&item, T0 + 15 * DAY), Some(Status::Revoked));
        assert_eq!(s.seats_at(&item, T0 + 15 * DAY), Some(0));
    }
}

#[test]
fn a_seats_refund_revokes_seats_and_leaves_the_transaction() {
    let item = ItemKey::Subscription("s".into());
    let end = T0 + 30 * DAY;
    let bought = TransactionFacts {
        quantity: Some(8),
        ..transaction("t1", "team", T0, end)
    };
    let mut refunded = bought.clone();
    refunded.signed_date = Some(T0 + 5 * DAY);
    refunded.multi_seat_info = Some(serde_json::json!({
        "invitationManagement": "APPLE",
        "revokedSeatQuantity": 3,
    }));
    let events = [
        event(
            "1",
            "SUBSCRIBED",
            Some("INITIAL_BUY"),
            T0,
            None,
            bought,
            None,
        ),
        event(
            "2",
            "REFUND",
            Some("SEATS"),
            T0 + 5 * DAY,
            None,
            refunded,
            None,
        ),
    ];
    for (s, effects) in states(&events) {
        assert_eq!(s.status, Status::Active);
        assert!(s.entitled_at(&item, T0 + 6 * DAY));
        assert_eq!(s.seats_at(&item, T0 + DAY), Some(5), "as signed now");
        let refund = effects
            .iter()
            .find_map(|e| match e {
                Effect::Refund(r) => Some(r),
                _ => None,
            })
            .unwrap();
        assert_eq!(refund.subtype.as_deref(), Some("SEATS"));
        assert_eq!(refund.revoked_seat_quantity, Some(3));
        assert_eq!(refund.revocation_date, None);
    }
}

/// A yearly plan; on day 100 an offer upgrades it to a monthly premium
/// plan, whose first period ends on day 130 and fails to renew into a
/// grace period of 16 days. Without `offer`, the upgrade's notification
/// was lost. Returns the events, the premium period's end and grace's end.
fn upgraded_then_failed(offer: bool) -> (Vec<Event>, i64, i64) {
    let yearly = transaction("t1", "basic.yearly", T0, T0 + 365 * DAY);
    let premium_end = T0 + 130 * DAY;
    let premium = transaction("t2", "premium.monthly", T0 + 100 * DAY, premium_end);
    let grace_until = premium_end + 16 * DAY;
    let renewal = RenewalFacts {
        original_transaction_id: Some("s".into()),
        auto_renew_product_id: Some("premium.monthly".into()),
        grace_period_expires_date: Some(grace_until),
        is_in_billing_retry_period: Some(true),
        renewal_date: Some(premium_end),
        signed_date: Some(premium_end),
        ..RenewalFacts::default()
    };
    let mut events = vec![event(
        "1",
        "SUBSCRIBED",
        Some("INITIAL_BUY"),
        T0,
        Some(ACTIVE),
        yearly,
        None,
    )];
    if offer {
        events.push(event(
            "2",
            "OFFER_REDEEMED",
            Some("UPGRADE"),
            T0 + 100 * DAY,
            Some(ACTIVE),
            premium.clone(),
            None,
        ));
    }
    events.push(event(
        "3",
        "DID_FAIL_TO_RENEW",
        Some("GRACE_PERIOD"),
        premium_end,
        Some(GRACE),
        premium,
        Some(renewal),
    ));
    (events, premium_end, grace_until)
}

#[test]
fn an_offer_upgrade_takes_effect_at_once_and_grace_counts_from_its_period() {
    let item = ItemKey::Subscription("s".into());
    let (events, premium_end, grace_until) = upgraded_then_failed(true);
    for (s, _) in states(&events) {
        assert_eq!(s.product_id.as_deref(), Some("premium.monthly"));
        assert_eq!(s.current_transaction_id.as_deref(), Some("t2"));
        assert_eq!(s.expires_date(), Some(premium_end));
        assert_eq!(s.status, Status::BillingGracePeriod);
        let in_grace = premium_end + DAY;
        assert!(s.entitled_at(&item, in_grace));
        assert_eq!(
            s.status_at(&item, in_grace),
            Some(Status::BillingGracePeriod)
        );
        assert!(!s.entitled_at(&item, grace_until));
        assert_eq!(s.product_at(&item, T0 + 101 * DAY), Some("premium.monthly"));
        assert_eq!(s.product_at(&item, T0 + 99 * DAY), Some("basic.yearly"));
    }
}

#[test]
fn grace_counts_from_the_failed_period_even_when_the_upgrade_was_never_received() {
    let item = ItemKey::Subscription("s".into());
    let (events, premium_end, grace_until) = upgraded_then_failed(false);
    for (s, _) in states(&events) {
        assert!(s.entitled_at(&item, premium_end + DAY));
        assert!(!s.entitled_at(&item, grace_until));
    }
}

/// A state folded by a version that kept no status of its own cannot be
/// compared with Apple's word: after an upgrade, the next notification on
/// top of it raises nothing until `rebuild` folds it again; folded afresh,
/// the same history is compared.
#[test]
fn a_state_from_before_the_ledger_kept_its_own_status_is_not_compared() {
    let item = ItemKey::Subscription("s".into());
    let t1 = transaction("t1", "monthly", T0, T0 + 30 * DAY);
    let subscribed = event("e1", "SUBSCRIBED", None, T0, Some(ACTIVE), t1.clone(), None);
    // Apple calls a paid, running period billing retry: a disagreement.
    let odd = event(
        "e2",
        "DID_CHANGE_RENEWAL_STATUS",
        Some("AUTO_RENEW_DISABLED"),
        T0 + DAY,
        Some(3),
        t1,
        None,
    );
    let fresh = fold(&item, vec![subscribed.clone(), odd.clone()])
        .unwrap()
        .0;
    assert_eq!(fresh.apple_status_disagreements.len(), 1, "{fresh:?}");

    // The same first notification, folded by the version before: its
    // state as stored then, without what this version adds.
    let (old, _) = apply(None, &item, &subscribed);
    let mut stored = serde_json::to_value(&old).unwrap();
    let fields = stored.as_object_mut().unwrap();
    fields.remove("ownStatus");
    fields.remove("ownStatusKept");
    let old: State = serde_json::from_value(stored).unwrap();
    let (upgraded, _) = apply(Some(old), &item, &odd);
    assert!(
        upgraded.apple_status_disagreements.is_empty(),
        "{:?}",
        upgraded.apple_status_disagreements
    );
}
