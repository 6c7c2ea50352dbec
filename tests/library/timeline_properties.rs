//! Entitlement at any moment, as a property: for random subscription
//! histories delivered in random orders, the answer at every moment T equals
//! the answer of a ledger that had received only the notifications signed up
//! to T. The histories here never reach back (every fact is reported when it
//! happens); the tests in tests/api/timeline.rs cover what does.

use proptest::prelude::*;

use appstore_ledger::ledger::{fold, Event, EventData, ItemKey, RenewalFacts, TransactionFacts};
use appstore_ledger::model::{
    AutoRenewStatus, NotificationType, ProductType, SubscriptionStatus, Subtype,
};

const DAY: i64 = 86_400_000;
const T0: i64 = 1_750_000_000_000;
const PERIOD: i64 = 30 * DAY;
const HOUR: i64 = 3_600_000;

/// What happens at the end of a period (or within it).
#[derive(Debug, Clone, Copy)]
enum Step {
    Renew,
    Downgrade,
    /// Refunded `at` days into the period, reversed `reversal` days later.
    Refund {
        at: i64,
        reversal: Option<i64>,
    },
    Upgrade {
        at: i64,
    },
    /// Billing fails; with grace of `grace` days; recovered after `recovery` days or expired.
    Fail {
        grace: Option<i64>,
        recovery: Option<i64>,
    },
    /// Expires; resubscribes after `gap` days.
    Lapse {
        gap: i64,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Renew),
        1 => Just(Step::Downgrade),
        1 => (1..20i64, proptest::option::of(1..5i64)).prop_map(|(at, reversal)| Step::Refund { at, reversal }),
        1 => (1..25i64).prop_map(|at| Step::Upgrade { at }),
        2 => (proptest::option::of(3..16i64), proptest::option::of(1..40i64))
            .prop_map(|(grace, recovery)| Step::Fail { grace, recovery }),
        1 => (1..60i64).prop_map(|gap| Step::Lapse { gap }),
    ]
}

struct Builder {
    events: Vec<Event>,
    n: usize,
    /// The latest signedDate so far: each step happens after it, as Apple's
    /// history does.
    last: i64,
}

impl Builder {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        kind: &str,
        subtype: Option<&str>,
        signed: i64,
        status: i64,
        period: (&str, &str, i64, i64),
        revoked: Option<i64>,
        grace_until: Option<i64>,
    ) {
        self.n += 1;
        self.last = self.last.max(signed);
        let (tid, product, purchase, expires) = period;
        self.events.push(Event {
            notification_uuid: format!("n{:04}", self.n),
            notification_type: NotificationType::from_raw(kind),
            subtype: subtype.map(Subtype::from_raw),
            signed_date: Some(signed),
            data: Some(EventData {
                bundle_id: Some("com.example.app".into()),
                environment: Some("Sandbox".into()),
                status: Some(SubscriptionStatus::from_raw(status)),
                signed_transaction_info: Some(TransactionFacts {
                    transaction_id: Some(tid.into()),
                    original_transaction_id: Some("s".into()),
                    product_id: Some(product.into()),
                    product_type: Some(ProductType::AutoRenewableSubscription),
                    purchase_date: Some(purchase),
                    expires_date: Some(expires),
                    signed_date: Some(signed),
                    revocation_date: revoked,
                    ..TransactionFacts::default()
                }),
                signed_renewal_info: Some(RenewalFacts {
                    original_transaction_id: Some("s".into()),
                    auto_renew_status: Some(AutoRenewStatus::On),
                    grace_period_expires_date: grace_until,
                    renewal_date: Some(expires),
                    signed_date: Some(signed),
                    ..RenewalFacts::default()
                }),
                consumption_request_reason: None,
            }),
            reported_app_account_token: None,
            unclaim_info: None,
        });
    }
}

/// A history whose every notification is signed when what it reports happens.
fn history(steps: &[Step]) -> Vec<Event> {
    let mut b = Builder {
        events: Vec::new(),
        n: 0,
        last: T0,
    };
    let mut tids = 0;
    let mut next_tid = || {
        tids += 1;
        format!("t{tids:03}")
    };
    let (mut tid, mut product, mut start) = (next_tid(), "premium", T0);
    let mut end = start + PERIOD;
    b.push(
        "SUBSCRIBED",
        Some("INITIAL_BUY"),
        start,
        1,
        (&tid, product, start, end),
        None,
        None,
    );
    for step in steps {
        match *step {
            Step::Renew | Step::Downgrade => {
                if let Step::Downgrade = step {
                    product = "basic";
                }
                (tid, start) = (next_tid(), end);
                end = start + PERIOD;
                b.push(
                    "DID_RENEW",
                    None,
                    start,
                    1,
                    (&tid, product, start, end),
                    None,
                    None,
                );
            }
            Step::Refund { at, reversal } => {
                let at = (start + at * DAY).max(b.last + HOUR);
                if at >= end {
                    continue;
                }
                let reversal = reversal.filter(|days| at + days * DAY < end);
                b.push(
                    "REFUND",
                    None,
                    at,
                    5,
                    (&tid, product, start, end),
                    Some(at),
                    None,
                );
                if let Some(days) = reversal {
                    let back = at + days * DAY;
                    b.push(
                        "REFUND_REVERSED",
                        None,
                        back,
                        1,
                        (&tid, product, start, end),
                        None,
                        None,
                    );
                }
            }
            Step::Upgrade { at } => {
                let at = (start + at * DAY).max(b.last + HOUR);
                if at >= end {
                    continue;
                }
                product = "premium";
                (tid, start) = (next_tid(), at);
                end = start + PERIOD;
                b.push(
                    "DID_CHANGE_RENEWAL_PREF",
                    Some("UPGRADE"),
                    start,
                    1,
                    (&tid, product, start, end),
                    None,
                    None,
                );
            }
            Step::Fail { grace, recovery } => {
                let failed = end;
                match grace {
                    Some(days) => {
                        let until = failed + days * DAY;
                        b.push(
                            "DID_FAIL_TO_RENEW",
                            Some("GRACE_PERIOD"),
                            failed,
                            4,
                            (&tid, product, start, end),
                            None,
                            Some(until),
                        );
                        if recovery.is_none_or(|r| r >= days) {
                            b.push(
                                "GRACE_PERIOD_EXPIRED",
                                None,
                                until,
                                3,
                                (&tid, product, start, end),
                                None,
                                None,
                            );
                        }
                    }
                    None => b.push(
                        "DID_FAIL_TO_RENEW",
                        None,
                        failed,
                        3,
                        (&tid, product, start, end),
                        None,
                        None,
                    ),
                }
                match recovery {
                    Some(days) => {
                        (tid, start) = (next_tid(), failed + days * DAY);
                        end = start + PERIOD;
                        b.push(
                            "DID_RENEW",
                            Some("BILLING_RECOVERY"),
                            start,
                            1,
                            (&tid, product, start, end),
                            None,
                            None,
                        );
                    }
                    None => {
                        let gone = failed + 60 * DAY;
                        b.push(
                            "EXPIRED",
                            Some("BILLING_RETRY"),
                            gone,
                            2,
                            (&tid, product, start, end),
                            None,
                            None,
                        );
                        (tid, start) = (next_tid(), gone + 5 * DAY);
                        end = start + PERIOD;
                        b.push(
                            "SUBSCRIBED",
                            Some("RESUBSCRIBE"),
                            start,
                            1,
                            (&tid, product, start, end),
                            None,
                            None,
                        );
                    }
                }
            }
            Step::Lapse { gap } => {
                b.push(
                    "EXPIRED",
                    Some("VOLUNTARY"),
                    end,
                    2,
                    (&tid, product, start, end),
                    None,
                    None,
                );
                (tid, start) = (next_tid(), end + gap * DAY);
                end = start + PERIOD;
                b.push(
                    "SUBSCRIBED",
                    Some("RESUBSCRIBE"),
                    start,
                    1,
                    (&tid, product, start, end),
                    None,
                    None,
                );
            }
        }
    }
    b.events
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 500,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_answer_at_t_is_what_was_known_at_t(
        steps in proptest::collection::vec(step(), 0..8),
        seed in any::<u64>(),
    ) {
        let item = ItemKey::Subscription("s".into());
        let events = history(&steps);
        // Delivered in a random order: the fold must not care.
        let mut shuffled = events.clone();
        let mut state = seed;
        for i in (1..shuffled.len()).rev() {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            shuffled.swap(i, (state >> 33) as usize % (i + 1));
        }
        let (now, _) = fold(&item, shuffled).unwrap();
        // Apple's statuses here follow its rules: the ledger's own answer
        // agrees with every one.
        prop_assert!(now.apple_status_disagreements.is_empty(), "{:?} after {:?}", now.apple_status_disagreements, steps);
        let last = events.iter().filter_map(|e| e.signed_date).max().unwrap();
        // Every day, and every event's moment and the instant before it.
        let mut moments: Vec<i64> = (0..=(last - T0) / DAY + 40).map(|d| T0 + d * DAY + DAY / 2).collect();
        for e in &events {
            let at = e.signed_date.unwrap();
            moments.extend([at - 1, at]);
        }
        for at in moments {
            let known: Vec<Event> = events.iter().filter(|e| e.signed_date.unwrap() <= at).cloned().collect();
            let then = fold(&item, known).map(|(s, _)| s);
            let entitled_then = then.as_ref().is_some_and(|s| s.entitled_at(&item, at));
            prop_assert_eq!(now.entitled_at(&item, at), entitled_then, "entitled at {} ({} days) after {:?}", at, (at - T0) / DAY, steps);
            let status_then = then.as_ref().and_then(|s| s.status_at(&item, at));
            // Before anything was known there is no status; after, the same.
            if then.is_some() {
                prop_assert_eq!(now.status_at(&item, at), status_then, "status at {} after {:?}", at, steps);
                prop_assert_eq!(now.product_at(&item, at), then.as_ref().unwrap().product_at(&item, at), "product at {}", at);
            }
        }
    }
}
