//! Apple's word as a check, proven on Apple-consistent histories. A
//! reference model written here from Apple's documented rules (not from the
//! ledger's code) lives a subscription's life: renewals, upgrades by
//! preference and by offer, downgrades, seats added mid-period and seats
//! refunded, a family member's copy, a group member's seat (ASSIGNED), billing retry with and without grace,
//! refunds and reversals, lapses and resubscription, and Get All
//! Subscription Statuses answers in between. Each notification carries the
//! status Apple would sign, from the model. Delivered in several orders, one
//! at a time as the store folds them (on top when it sorts last, all again
//! when it arrives late), the ledger must raise no `APPLE_STATUS_DISAGREES`
//! and answer `entitled` at every notification's signedDate exactly as the
//! model does.
//!
//! Apple's rules the model follows (App Store Server Notifications V2,
//! "status", "Managing the life cycle of multiseat subscriptions"):
//! - 1 active while a period runs; a renewal, a billing recovery, an
//!   upgrade (at once, by preference or by offer) or a resubscription
//!   starts one. A downgrade changes the next renewal only.
//! - a failed renewal: 4 (billing grace) until `gracePeriodExpiresDate`,
//!   then 3 (billing retry); 3 at once without grace; 2 when Apple stops
//!   retrying, or at the end of a period whose auto-renew is off.
//! - 5 when access is revoked: a REVOKE of a family member's or a group
//!   member's access (FAMILY_SHARED, ASSIGNED), or a refund once
//!   every transaction of the period carries revocation fields. A refund of
//!   added seats, or of some seats (REFUND/SEATS), leaves the period
//!   active; a reversal restores it.
//! - entitled in 1 and 4.

use proptest::prelude::*;
use serde_json::json;

use appstore_ledger::check::{check_item, FindingKind, Tolerances};
use appstore_ledger::ledger::{
    apply, can_apply_after, fold, sources, Event, EventData, ItemKey, RenewalFacts, State,
    TransactionFacts,
};
use appstore_ledger::model::{
    AutoRenewStatus, InAppOwnershipType, NotificationType, ProductType, RevocationReason,
    SubscriptionStatus, Subtype,
};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
const PERIOD: i64 = 30 * DAY;
const T0: i64 = 1_790_000_000_000;
const OTID: &str = "1000000000000001";

/// Apple's `status` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AppleStatus {
    Active = 1,
    Expired = 2,
    BillingRetry = 3,
    BillingGrace = 4,
    Revoked = 5,
}

impl AppleStatus {
    fn entitled(self) -> bool {
        matches!(self, AppleStatus::Active | AppleStatus::BillingGrace)
    }
}

/// What may happen next in a subscription's life; each is turned into what
/// Apple does in the state the model is in (or nothing, when it cannot).
#[derive(Debug, Clone, Copy)]
enum Step {
    /// The period ends: renewed, or failed (grace of so many days or none;
    /// recovered after so many days, or Apple gives up).
    End {
        fail: Option<(Option<i64>, Option<i64>)>,
    },
    /// So many hours into what is left of the period:
    TurnAutoRenewOff(i64),
    TurnAutoRenewOn(i64),
    Upgrade {
        hours: i64,
        by_offer: bool,
    },
    Downgrade(i64),
    AddSeats {
        hours: i64,
        seats: i64,
    },
    RefundSomeSeats {
        hours: i64,
        seats: i64,
    },
    /// Refund (or, for a family member, revoke) the transaction at this
    /// index of the period, and maybe reverse it so many hours later.
    Refund {
        hours: i64,
        which: usize,
        reversal: Option<i64>,
    },
    /// Get All Subscription Statuses, asked so many hours from now.
    StatusAnswer(i64),
    /// After an expiry, the customer comes back so many days later.
    Resubscribe(i64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => proptest::option::of((proptest::option::of(3..16i64), proptest::option::of(1..70i64)))
            .prop_map(|fail| Step::End { fail }),
        1 => (1..400i64).prop_map(Step::TurnAutoRenewOff),
        1 => (1..400i64).prop_map(Step::TurnAutoRenewOn),
        1 => (1..600i64, any::<bool>()).prop_map(|(hours, by_offer)| Step::Upgrade { hours, by_offer }),
        1 => (1..600i64).prop_map(Step::Downgrade),
        2 => (1..600i64, 1..5i64).prop_map(|(hours, seats)| Step::AddSeats { hours, seats }),
        1 => (1..600i64, 1..4i64).prop_map(|(hours, seats)| Step::RefundSomeSeats { hours, seats }),
        2 => (1..600i64, 0..4usize, proptest::option::of(1..200i64))
            .prop_map(|(hours, which, reversal)| Step::Refund { hours, which, reversal }),
        2 => (1..900i64).prop_map(Step::StatusAnswer),
        1 => (1..40i64).prop_map(Step::Resubscribe),
    ]
}

/// How long a product's period is: the upgrade to premium may end before
/// the period it replaces would have.
fn length(product: &str) -> i64 {
    match product {
        "premium" => PERIOD / 2,
        _ => PERIOD,
    }
}

/// One transaction Apple signed.
#[derive(Debug, Clone)]
struct Tx {
    id: String,
    product: &'static str,
    purchase: i64,
    expires: i64,
    quantity: i64,
    additional: bool,
    revoked_seats: i64,
    revoked_at: Option<i64>,
}

/// The reference model: Apple's view of one subscription.
struct Model {
    /// A family member's copy (FAMILY_SHARED) or a group member's seat
    /// (ASSIGNED): someone else's purchase, revoked when it ends for them.
    family: bool,
    assigned: bool,
    now: i64,
    status: AppleStatus,
    /// The transactions of the current period (the first is the period's
    /// own, the others added seats).
    period: Vec<Tx>,
    auto_renew: bool,
    auto_renew_product: &'static str,
    grace_until: Option<i64>,
    in_billing_retry: bool,
    seq: usize,
    pending: Option<Pending>,
    events: Vec<Event>,
    /// Apple's status after each event, in the order made.
    statuses: Vec<AppleStatus>,
}

impl Model {
    fn new(family: bool, assigned: bool, seats: i64) -> Model {
        let mut m = Model {
            family,
            assigned,
            now: T0,
            status: AppleStatus::Active,
            period: Vec::new(),
            auto_renew: true,
            auto_renew_product: "standard",
            grace_until: None,
            in_billing_retry: false,
            seq: 0,
            pending: None,
            events: Vec::new(),
            statuses: Vec::new(),
        };
        m.start_period("standard", T0, if family { 1 } else { seats });
        m.emit("SUBSCRIBED", Some("INITIAL_BUY"), 0);
        m
    }

    fn next_id(&mut self) -> String {
        self.seq += 1;
        format!("{}", 2_000_000_000_000_000u64 + self.seq as u64)
    }

    fn start_period(&mut self, product: &'static str, at: i64, quantity: i64) {
        let id = self.next_id();
        self.period = vec![Tx {
            id,
            product,
            purchase: at,
            expires: at + length(product),
            quantity,
            additional: false,
            revoked_seats: 0,
            revoked_at: None,
        }];
        self.now = at;
        self.status = AppleStatus::Active;
        self.grace_until = None;
        self.in_billing_retry = false;
    }

    fn end(&self) -> i64 {
        self.period[0].expires
    }

    fn running(&self) -> bool {
        self.status == AppleStatus::Active && self.now < self.end()
    }

    /// A moment `hours` into what is left of the period, if any is.
    fn within(&self, hours: i64) -> Option<i64> {
        let at = self.now + hours * HOUR;
        (self.running() && at < self.end() - HOUR).then_some(at)
    }

    /// Access is revoked when every transaction of the period is.
    fn period_revoked(&self) -> bool {
        self.period.iter().all(|t| t.revoked_at.is_some())
    }

    fn transaction(&self, t: &Tx, signed: i64) -> TransactionFacts {
        let ownership = if self.family && self.assigned {
            InAppOwnershipType::Assigned
        } else if self.family {
            InAppOwnershipType::FamilyShared
        } else {
            InAppOwnershipType::Purchased
        };
        TransactionFacts {
            transaction_id: Some(t.id.clone()),
            original_transaction_id: Some(OTID.into()),
            product_id: Some(t.product.into()),
            subscription_group_identifier: Some("21000001".into()),
            product_type: Some(ProductType::AutoRenewableSubscription),
            purchase_date: Some(t.purchase),
            original_purchase_date: Some(T0),
            expires_date: Some(t.expires),
            signed_date: Some(signed),
            revocation_date: t.revoked_at,
            revocation_reason: t.revoked_at.map(|_| RevocationReason::from_raw(0)),
            in_app_ownership_type: Some(ownership),
            quantity: Some(t.quantity),
            additional_transaction_reason: t.additional.then(|| "SEAT_ADDITION".to_owned()),
            multi_seat_info: (t.revoked_seats > 0)
                .then(|| json!({ "revokedSeatQuantity": t.revoked_seats })),
            ..TransactionFacts::default()
        }
    }

    fn renewal(&self, signed: i64) -> RenewalFacts {
        RenewalFacts {
            original_transaction_id: Some(OTID.into()),
            auto_renew_product_id: Some(self.auto_renew_product.into()),
            auto_renew_status: Some(if self.auto_renew {
                AutoRenewStatus::On
            } else {
                AutoRenewStatus::Off
            }),
            grace_period_expires_date: self.grace_until,
            is_in_billing_retry_period: Some(self.in_billing_retry),
            renewal_date: Some(self.end()),
            signed_date: Some(signed),
            ..RenewalFacts::default()
        }
    }

    /// A notification at `self.now` about the period's transaction at
    /// `which`, with Apple's status as the model has it now.
    fn emit(&mut self, kind: &str, subtype: Option<&str>, which: usize) {
        let signed = self.now;
        let t = self.transaction(&self.period[which], signed);
        self.push(kind, subtype, signed, t);
    }

    fn push(&mut self, kind: &str, subtype: Option<&str>, signed: i64, t: TransactionFacts) {
        let uuid = format!("00000000-0000-4000-8000-{:012}", self.events.len());
        self.events.push(Event {
            notification_uuid: uuid,
            notification_type: NotificationType::from_raw(kind),
            subtype: subtype.map(Subtype::from_raw),
            signed_date: Some(signed),
            data: Some(EventData {
                bundle_id: Some("com.example.app".into()),
                environment: Some("Sandbox".into()),
                status: Some(SubscriptionStatus::from_raw(self.status as i64)),
                signed_transaction_info: Some(t),
                signed_renewal_info: Some(self.renewal(signed)),
                consumption_request_reason: None,
            }),
            reported_app_account_token: None,
            unclaim_info: None,
        });
        self.statuses.push(self.status);
    }

    fn seats(&self) -> i64 {
        self.period
            .iter()
            .filter(|t| t.revoked_at.is_none())
            .map(|t| t.quantity - t.revoked_seats)
            .sum()
    }

    fn step(&mut self, step: Step) {
        match step {
            Step::End { fail } => self.end_period(fail),
            Step::TurnAutoRenewOff(hours) | Step::TurnAutoRenewOn(hours) => {
                let on = matches!(step, Step::TurnAutoRenewOn(_));
                let Some(at) = self.within(hours) else { return };
                if self.auto_renew == on || self.period_revoked() {
                    return;
                }
                self.now = at;
                self.auto_renew = on;
                let subtype = if on {
                    "AUTO_RENEW_ENABLED"
                } else {
                    "AUTO_RENEW_DISABLED"
                };
                // Apple's status stays what it is.
                self.emit("DID_CHANGE_RENEWAL_STATUS", Some(subtype), 0);
            }
            Step::Upgrade { hours, by_offer } => {
                let Some(at) = self.within(hours) else { return };
                if self.period_revoked() || self.period[0].product == "premium" {
                    return;
                }
                let seats = if self.family { 1 } else { self.seats().max(1) };
                self.start_period("premium", at, seats);
                self.auto_renew_product = "premium";
                self.auto_renew = true;
                if by_offer {
                    self.emit("OFFER_REDEEMED", Some("UPGRADE"), 0);
                } else {
                    self.emit("DID_CHANGE_RENEWAL_PREF", Some("UPGRADE"), 0);
                }
            }
            Step::Downgrade(hours) => {
                let Some(at) = self.within(hours) else { return };
                if self.auto_renew_product == "basic" {
                    return;
                }
                self.now = at;
                self.auto_renew_product = "basic";
                self.emit("DID_CHANGE_RENEWAL_PREF", Some("DOWNGRADE"), 0);
            }
            Step::AddSeats { hours, seats } => {
                let Some(at) = self.within(hours) else { return };
                if self.family || self.period_revoked() {
                    return;
                }
                self.now = at;
                let id = self.next_id();
                let product = self.period[0].product;
                let expires = self.end();
                self.period.push(Tx {
                    id,
                    product,
                    purchase: at,
                    expires,
                    quantity: seats,
                    additional: true,
                    revoked_seats: 0,
                    revoked_at: None,
                });
                // Every transaction of the period carries the reason.
                self.period[0].additional = true;
                let last = self.period.len() - 1;
                self.emit("DID_CHANGE_RENEWAL_PREF", None, last);
            }
            Step::RefundSomeSeats { hours, seats } => {
                let Some(at) = self.within(hours) else { return };
                let first = &self.period[0];
                if self.family
                    || first.revoked_at.is_some()
                    || first.quantity - first.revoked_seats <= seats
                {
                    return;
                }
                self.now = at;
                self.period[0].revoked_seats += seats;
                self.emit("REFUND", Some("SEATS"), 0);
            }
            Step::Refund {
                hours,
                which,
                reversal,
            } => {
                let which = which % self.period.len();
                let Some(at) = self.within(hours) else { return };
                if self.period[which].revoked_at.is_some() {
                    return;
                }
                self.now = at;
                self.period[which].revoked_at = Some(at);
                let kind = if self.family {
                    // The purchaser's refund, or the end of sharing: the
                    // member's access is revoked.
                    for t in &mut self.period {
                        t.revoked_at = t.revoked_at.or(Some(at));
                    }
                    "REVOKE"
                } else {
                    "REFUND"
                };
                if self.period_revoked() {
                    self.status = AppleStatus::Revoked;
                    self.auto_renew = false;
                }
                self.emit(kind, None, which);
                let back = reversal.map(|hours| at + hours * HOUR);
                if let (Some(back), false) = (back, self.family) {
                    if back < self.end() - HOUR {
                        self.now = back;
                        self.period[which].revoked_at = None;
                        self.status = AppleStatus::Active;
                        self.emit("REFUND_REVERSED", None, which);
                    }
                }
                if self.status == AppleStatus::Revoked {
                    // Apple's next word comes when the refunded period ends.
                    self.now = self.end();
                    self.status = AppleStatus::Expired;
                    self.emit("EXPIRED", Some("VOLUNTARY"), 0);
                }
            }
            Step::StatusAnswer(hours) => {
                let at = self.now + hours * HOUR;
                // Apple's status at `at` without a notification between:
                // only while nothing changes by then.
                let quiet = match self.status {
                    AppleStatus::Active => at < self.end(),
                    AppleStatus::BillingGrace => {
                        self.grace_until.is_some_and(|g| at < g)
                            && self
                                .pending
                                .is_some_and(|p| p.recovery.is_none_or(|r| at < p.failed + r * DAY))
                    }
                    AppleStatus::BillingRetry => self.pending.is_some_and(|p| {
                        at < p.failed + 60 * DAY
                            && p.recovery.is_none_or(|r| at < p.failed + r * DAY)
                    }),
                    AppleStatus::Expired | AppleStatus::Revoked => true,
                };
                if !quiet {
                    return;
                }
                self.now = at;
                // The latest transaction, as Get All Subscription Statuses
                // gives it.
                let latest = self
                    .period
                    .iter()
                    .max_by_key(|t| t.purchase)
                    .cloned()
                    .expect("a period");
                let t = self.transaction(&latest, at);
                let before = self.events.len();
                self.push(sources::SUBSCRIPTION_STATUS, None, at, t);
                self.events[before].notification_uuid = format!("status-answer-{before}");
            }
            Step::Resubscribe(days) => {
                if self.status != AppleStatus::Expired || self.family {
                    return;
                }
                let at = self.now + days * DAY;
                self.auto_renew = true;
                self.auto_renew_product = "standard";
                self.start_period("standard", at, 1);
                self.emit("SUBSCRIBED", Some("RESUBSCRIBE"), 0);
            }
        }
    }

    fn end_period(&mut self, fail: Option<(Option<i64>, Option<i64>)>) {
        if let Some(pending) = self.pending.take() {
            return self.settle(pending);
        }
        if !self.running() {
            return;
        }
        let failed = self.end();
        self.now = failed;
        if !self.auto_renew {
            self.status = AppleStatus::Expired;
            self.emit("EXPIRED", Some("VOLUNTARY"), 0);
            return;
        }
        let product = self.auto_renew_product;
        let seats = if self.family { 1 } else { self.seats().max(1) };
        let Some((grace, recovery)) = fail else {
            self.start_period(product, failed, seats);
            self.emit("DID_RENEW", None, 0);
            return;
        };
        self.in_billing_retry = true;
        match grace {
            Some(days) => {
                self.grace_until = Some(failed + days * DAY);
                self.status = AppleStatus::BillingGrace;
                self.emit("DID_FAIL_TO_RENEW", Some("GRACE_PERIOD"), 0);
            }
            None => {
                self.status = AppleStatus::BillingRetry;
                self.emit("DID_FAIL_TO_RENEW", None, 0);
            }
        }
        // What comes of it is the next step's: status answers may come
        // between.
        self.pending = Some(Pending {
            failed,
            recovery,
            product,
            seats,
        });
    }

    /// The end of a failed renewal: recovered, or Apple gives up.
    fn settle(&mut self, p: Pending) {
        // An hour past the day: never at the moment grace ends.
        let recovered = p
            .recovery
            .map(|days| p.failed + days * DAY + HOUR)
            .filter(|at| *at < p.failed + 60 * DAY);
        if let Some(until) = self.grace_until {
            if recovered.is_none_or(|at| at >= until) {
                self.now = until;
                self.status = AppleStatus::BillingRetry;
                self.emit("GRACE_PERIOD_EXPIRED", None, 0);
            }
        }
        match recovered {
            Some(at) => {
                self.start_period(p.product, at, p.seats);
                self.emit("DID_RENEW", Some("BILLING_RECOVERY"), 0);
            }
            None => {
                // Apple stops retrying after 60 days.
                self.now = p.failed + 60 * DAY;
                self.status = AppleStatus::Expired;
                self.in_billing_retry = false;
                self.grace_until = None;
                self.emit("EXPIRED", Some("BILLING_RETRY"), 0);
            }
        }
    }
}

/// A failed renewal not yet settled.
#[derive(Debug, Clone, Copy)]
struct Pending {
    failed: i64,
    recovery: Option<i64>,
    product: &'static str,
    seats: i64,
}

/// The ledger fed `events` in this order, one at a time as the store does:
/// on top of the state when it sorts after everything applied, else all
/// of them folded again.
fn delivered(item: &ItemKey, events: &[Event]) -> State {
    let mut arrived: Vec<Event> = Vec::new();
    let mut state: Option<State> = None;
    for event in events {
        arrived.push(event.clone());
        state = Some(match state {
            Some(s) if can_apply_after(&s, event) => apply(Some(s), item, event).0,
            _ => fold(item, arrived.clone()).expect("an item").0,
        });
    }
    state.expect("a history")
}

fn shuffled(events: &[Event], mut seed: u64) -> Vec<Event> {
    let mut order = events.to_vec();
    for i in (1..order.len()).rev() {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        order.swap(i, (seed >> 33) as usize % (i + 1));
    }
    order
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 1_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_ledger_agrees_with_every_status_apple_signs(
        family in prop::bool::weighted(0.25),
        assigned in any::<bool>(),
        seats in 1..4i64,
        steps in proptest::collection::vec(step(), 1..14),
        seeds in any::<(u64, u64)>(),
    ) {
        let mut model = Model::new(family, assigned, seats);
        for step in &steps {
            model.step(*step);
        }
        let item = ItemKey::Subscription(OTID.into());
        let events = &model.events;
        let mut late_first = events.clone();
        late_first.reverse();
        let orders = [
            events.clone(),
            late_first,
            shuffled(events, seeds.0),
            shuffled(events, seeds.1),
        ];
        let rebuilt = fold(&item, events.clone()).expect("an item").0;
        for (n, order) in orders.iter().enumerate() {
            let state = delivered(&item, order);
            prop_assert_eq!(&state, &rebuilt, "order {} folded otherwise than rebuild", n);
        }
        let kinds: Vec<FindingKind> = check_item(&item, &rebuilt, T0, &Tolerances::default())
            .into_iter()
            .map(|f| f.kind)
            .collect();
        prop_assert!(
            !kinds.contains(&FindingKind::AppleStatusDisagrees),
            "{:?}\nsteps {:?}\nhistory {:#?}",
            rebuilt.apple_status_disagreements,
            steps,
            events.iter().zip(&model.statuses).map(|(e, s)| format!(
                "{} {:?} at {} status {:?}",
                e.notification_type.as_str(),
                e.subtype.as_ref().map(|s| s.as_str().to_owned()),
                (e.signed_date.unwrap() - T0) / HOUR,
                s
            )).collect::<Vec<_>>()
        );
        for (event, apple) in events.iter().zip(&model.statuses) {
            let at = event.signed_date.unwrap();
            prop_assert_eq!(
                rebuilt.entitled_at(&item, at),
                apple.entitled(),
                "entitled at {} h ({} {:?}, Apple's status {:?}) after {:?}",
                (at - T0) / HOUR,
                event.notification_type.as_str(),
                event.subtype.as_ref().map(|s| s.as_str().to_owned()),
                apple,
                steps
            );
        }
    }
}

/// The model's own sanity: a history of every kind is made, so that the
/// property above is not passing over empty histories.
#[test]
fn the_model_makes_every_kind_of_history() {
    let mut model = Model::new(false, false, 2);
    for step in [
        Step::AddSeats {
            hours: 10,
            seats: 3,
        },
        Step::RefundSomeSeats { hours: 5, seats: 1 },
        Step::Refund {
            hours: 5,
            which: 1,
            reversal: None,
        },
        Step::StatusAnswer(3),
        Step::End { fail: None },
        Step::Upgrade {
            hours: 48,
            by_offer: true,
        },
        Step::End {
            fail: Some((Some(6), None)),
        },
        Step::StatusAnswer(30),
        Step::End { fail: None },
        Step::Resubscribe(3),
        Step::Downgrade(5),
        Step::End {
            fail: Some((None, Some(4))),
        },
        Step::End { fail: None },
        Step::TurnAutoRenewOff(20),
        Step::End { fail: None },
    ] {
        model.step(step);
    }
    let made: Vec<String> = model
        .events
        .iter()
        .zip(&model.statuses)
        .map(|(e, s)| {
            format!(
                "{}{} {}",
                e.notification_type.as_str(),
                e.subtype
                    .as_ref()
                    .map(|s| format!("/{}", s.as_str()))
                    .unwrap_or_default(),
                *s as i64
            )
        })
        .collect();
    assert_eq!(
        made,
        [
            "SUBSCRIBED/INITIAL_BUY 1",
            "DID_CHANGE_RENEWAL_PREF 1",
            "REFUND/SEATS 1",
            "REFUND 1",
            "GET_ALL_SUBSCRIPTION_STATUSES 1",
            "DID_RENEW 1",
            "OFFER_REDEEMED/UPGRADE 1",
            "DID_FAIL_TO_RENEW/GRACE_PERIOD 4",
            "GET_ALL_SUBSCRIPTION_STATUSES 4",
            "GRACE_PERIOD_EXPIRED 3",
            "EXPIRED/BILLING_RETRY 2",
            "SUBSCRIBED/RESUBSCRIBE 1",
            "DID_CHANGE_RENEWAL_PREF/DOWNGRADE 1",
            "DID_FAIL_TO_RENEW 3",
            "DID_RENEW/BILLING_RECOVERY 1",
            "DID_CHANGE_RENEWAL_STATUS/AUTO_RENEW_DISABLED 1",
            "EXPIRED/VOLUNTARY 2",
        ]
    );
    let item = ItemKey::Subscription(OTID.into());
    let state = fold(&item, model.events.clone()).unwrap().0;
    assert!(
        state.apple_status_disagreements.is_empty(),
        "{:?}",
        state.apple_status_disagreements
    );
    // The downgrade took effect at the renewal after it.
    assert_eq!(model.period[0].product, "basic");
}
