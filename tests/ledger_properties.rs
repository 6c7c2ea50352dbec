//! The ledger is a function of the set of notifications: any arrival order,
//! any duplicates, incremental or folded at once, the same state and records.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::strategy::ValueTree;

use appstore_ledger::ledger::{
    apply, can_apply_after, fold, Effect, Event, EventData, ExpirationRecord, ItemKey,
    RefundRecord, RenewalFacts, State, TransactionFacts,
};
use appstore_ledger::model::{
    AutoRenewStatus, NotificationType, ProductType, RevocationReason, SubscriptionStatus, Subtype,
};

const DAY: i64 = 86_400_000;
const OTID: &str = "1000";

fn types() -> impl Strategy<Value = (NotificationType, Option<Subtype>)> {
    use NotificationType as T;
    prop_oneof![
        Just((T::Subscribed, Some(Subtype::InitialBuy))),
        Just((T::Subscribed, Some(Subtype::Resubscribe))),
        Just((T::DidRenew, None)),
        Just((T::DidRenew, Some(Subtype::BillingRecovery))),
        Just((T::DidFailToRenew, None)),
        Just((T::DidFailToRenew, Some(Subtype::GracePeriod))),
        Just((T::GracePeriodExpired, None)),
        Just((T::Expired, Some(Subtype::Voluntary))),
        Just((T::Expired, Some(Subtype::BillingRetry))),
        Just((T::DidChangeRenewalStatus, Some(Subtype::AutoRenewDisabled))),
        Just((T::DidChangeRenewalPref, Some(Subtype::Upgrade))),
        Just((T::OfferRedeemed, None)),
        Just((T::PriceIncrease, Some(Subtype::Pending))),
        Just((T::RenewalExtended, None)),
        Just((T::Refund, None)),
        Just((T::RefundDeclined, None)),
        Just((T::RefundReversed, None)),
        Just((T::Revoke, None)),
        Just((T::ConsumptionRequest, None)),
    ]
}

prop_compose! {
    fn event(index: usize)(
        (notification_type, subtype) in types(),
        period in 0i64..4,
        signed_offset in 0i64..(40 * DAY),
        revoked in any::<bool>(),
        upgraded in prop::bool::weighted(0.1),
        with_status in any::<bool>(),
        status in 1i64..6,
        auto_renew in any::<bool>(),
        grace in any::<bool>(),
        renewal_date_offset in prop::option::of(0i64..5),
        same_second in prop::bool::weighted(0.2),
    ) -> Event {
        let purchase = 1_700_000_000_000 + period * 30 * DAY;
        let signed = if same_second { 1_700_000_000_000 } else { purchase + signed_offset };
        let refund_like = matches!(notification_type, NotificationType::Refund | NotificationType::Revoke);
        let transaction = TransactionFacts {
            transaction_id: Some(format!("t{period}")),
            original_transaction_id: Some(OTID.into()),
            product_id: Some(if upgraded { "pro".into() } else { "basic".into() }),
            subscription_group_identifier: Some("g".into()),
            product_type: Some(ProductType::AutoRenewableSubscription),
            purchase_date: Some(purchase),
            original_purchase_date: Some(1_700_000_000_000),
            expires_date: Some(purchase + 30 * DAY),
            signed_date: Some(signed),
            revocation_date: (revoked || refund_like).then_some(signed - 1000),
            revocation_reason: (revoked || refund_like).then_some(RevocationReason::RefundedDueToIssue),
            revocation_type: None,
            revocation_percentage: None,
            is_upgraded: Some(upgraded && period == 0),
            app_account_token: Some("token".into()),
            in_app_ownership_type: None,
            price: Some(9990),
            currency: Some("USD".into()),
        };
        let renewal = RenewalFacts {
            original_transaction_id: Some(OTID.into()),
            auto_renew_product_id: Some("basic".into()),
            auto_renew_status: Some(if auto_renew { AutoRenewStatus::On } else { AutoRenewStatus::Off }),
            expiration_intent: None,
            grace_period_expires_date: grace.then_some(purchase + 36 * DAY),
            is_in_billing_retry_period: None,
            renewal_date: renewal_date_offset.map(|p| 1_700_000_000_000 + p * 30 * DAY),
            signed_date: Some(signed),
            app_account_token: None,
        };
        Event {
            notification_uuid: format!("n{index:03}"),
            notification_type,
            subtype,
            signed_date: Some(signed),
            data: Some(EventData {
                bundle_id: Some("com.example.app".into()),
                environment: Some("Sandbox".into()),
                status: with_status.then_some(SubscriptionStatus::from_raw(status)),
                signed_transaction_info: Some(transaction),
                signed_renewal_info: Some(renewal),
            }),
        }
    }
}

fn events() -> impl Strategy<Value = Vec<Event>> {
    (1usize..24).prop_flat_map(|n| (0..n).map(event).collect::<Vec<_>>())
}

/// The records a store would hold after these effects.
#[derive(Debug, Default, PartialEq)]
struct Records {
    refunds: BTreeMap<String, (RefundRecord, Option<(i64, String)>)>,
    expirations: BTreeMap<String, ExpirationRecord>,
}

impl Records {
    fn apply(&mut self, effects: &[Effect]) {
        for effect in effects {
            match effect {
                Effect::Refund(r) => {
                    self.refunds
                        .insert(r.notification_uuid.clone(), (r.clone(), None));
                }
                Effect::RefundReversed {
                    transaction_id,
                    reversed_at,
                    reversed_by,
                } => {
                    for (refund, reversed) in self.refunds.values_mut() {
                        if refund.transaction_id.as_ref() == Some(transaction_id)
                            && reversed.is_none()
                            && refund.signed_date <= *reversed_at
                        {
                            *reversed = Some((*reversed_at, reversed_by.clone()));
                        }
                    }
                }
                Effect::Expiration(e) => {
                    self.expirations
                        .insert(e.notification_uuid.clone(), e.clone());
                }
            }
        }
    }
}

fn folded(events: &[Event]) -> Option<(State, Records)> {
    let item = ItemKey::Subscription(OTID.into());
    fold(&item, events.to_vec()).map(|(state, effects)| {
        let mut records = Records::default();
        records.apply(&effects);
        (state, records)
    })
}

/// What the service does: apply on top when the event sorts last, fold
/// everything received so far again when it does not; skip repeats.
fn incremental(arrivals: &[Event]) -> Option<(State, Records)> {
    let item = ItemKey::Subscription(OTID.into());
    let mut received: Vec<Event> = Vec::new();
    let mut current: Option<(State, Records)> = None;
    for event in arrivals {
        if received
            .iter()
            .any(|e| e.notification_uuid == event.notification_uuid)
        {
            continue;
        }
        received.push(event.clone());
        current = match current.take() {
            Some((state, mut records)) if can_apply_after(&state, event) => {
                let (state, effects) = apply(Some(state), &item, event);
                records.apply(&effects);
                Some((state, records))
            }
            _ => folded(&received),
        };
    }
    current
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn any_order_and_any_duplicates_give_the_same_state(
        events in events(),
        seed in any::<u64>(),
        duplicates in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let mut arrivals = events.clone();
        for d in &duplicates {
            arrivals.push(d.get(&events).clone());
        }
        shuffle(&mut arrivals, seed);
        let expected = folded(&events);
        prop_assert_eq!(&folded(&arrivals), &expected);
        prop_assert_eq!(&incremental(&arrivals), &expected);
    }
}

fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let j = (seed >> 33) as usize % (i + 1);
        items.swap(i, j);
    }
}

#[test]
fn a_late_older_expired_does_not_roll_back_a_renewal() {
    let item = ItemKey::Subscription(OTID.into());
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut renew = event(0).new_tree(&mut runner).unwrap().current();
    let mut expired = renew.clone();
    renew.notification_type = NotificationType::DidRenew;
    renew.subtype = None;
    renew.notification_uuid = "renew".into();
    renew.signed_date = Some(2_000);
    expired.notification_type = NotificationType::Expired;
    expired.subtype = Some(Subtype::BillingRetry);
    expired.notification_uuid = "expired".into();
    expired.signed_date = Some(1_000);
    for e in [&mut renew, &mut expired] {
        let data = e.data.as_mut().unwrap();
        data.status = None;
        data.signed_transaction_info
            .as_mut()
            .unwrap()
            .revocation_date = None;
        data.signed_transaction_info.as_mut().unwrap().is_upgraded = None;
    }
    // The renewal arrived first; the older EXPIRED arrives late.
    let (state, _) = incremental(&[renew.clone(), expired.clone()]).unwrap();
    assert_eq!(state.status, appstore_ledger::ledger::Status::Active);
    assert_eq!(
        Some(state.clone()),
        fold(&item, vec![expired, renew]).map(|(s, _)| s)
    );
}
