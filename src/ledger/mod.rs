//! The ledger: a pure, order-proof state machine over verified notifications.
//!
//! State is kept per auto-renewable subscription (`originalTransactionId`) and
//! per one-time purchase (`transactionId` of a consumable, non-consumable or
//! non-renewing subscription). It is a function of the *set* of notifications:
//! [`fold`] sorts them by Apple's `signedDate` (then the transaction's own
//! dates, then the UUID; see [`EventKey`]) and drops repeats, so arrival order
//! and duplicates change nothing. Applying a notification that sorts after
//! everything applied so far is the next step of the same fold
//! ([`can_apply_after`]); one that sorts earlier (a late, older notification)
//! is handled by folding them all again, so it never rolls the state back.
//!
//! Every notification carrying a transaction updates what is known of its
//! period: the transaction of the latest period (greatest `expiresDate`, not
//! `isUpgraded`) is the current one, and its revocation fields, as signed, say
//! whether the current period is refunded. A period may be represented by
//! several transactions (seats added mid-period, each marked with
//! `additionalTransactionReason` and ending with the period): they share
//! it, its seats are the sum of their `quantity` less the seats refunds
//! revoked, and it is revoked only when every one of them is (Apple's rule). Renewal info replaces older renewal
//! info. `data.status`, when Apple sends it, sets the status; otherwise the
//! type does, as below.
//!
//! | notificationType (subtype) | status when `data.status` is absent | records |
//! | --- | --- | --- |
//! | SUBSCRIBED (INITIAL_BUY, RESUBSCRIBE) | ACTIVE | |
//! | DID_RENEW (incl. BILLING_RECOVERY) | ACTIVE | |
//! | DID_FAIL_TO_RENEW (GRACE_PERIOD) | BILLING_GRACE_PERIOD, until `gracePeriodExpiresDate` | |
//! | DID_FAIL_TO_RENEW (no subtype) | BILLING_RETRY | |
//! | GRACE_PERIOD_EXPIRED | BILLING_RETRY | |
//! | EXPIRED (VOLUNTARY, BILLING_RETRY, PRICE_INCREASE, PRODUCT_NOT_FOR_SALE) | EXPIRED | an expiration, with the subtype |
//! | DID_CHANGE_RENEWAL_STATUS (AUTO_RENEW_ENABLED/DISABLED) | unchanged; `autoRenewStatus` from the renewal info | |
//! | DID_CHANGE_RENEWAL_PREF (UPGRADE) | ACTIVE: the upgraded product's transaction becomes current | |
//! | DID_CHANGE_RENEWAL_PREF (DOWNGRADE, none) | unchanged; `autoRenewProductId` changes | |
//! | OFFER_REDEEMED (UPGRADE) | ACTIVE: the upgraded product's transaction becomes current, as for DID_CHANGE_RENEWAL_PREF | |
//! | OFFER_REDEEMED (other) | ACTIVE | |
//! | PRICE_INCREASE (PENDING, ACCEPTED) | unchanged; `priceIncreaseStatus` and `renewalPrice` from its renewal info | |
//! | RENEWAL_EXTENDED | ACTIVE; the extended `expiresDate` | |
//! | RENEWAL_EXTENSION (SUMMARY, FAILURE) | unchanged | |
//! | REFUND | REVOKED if the current period was refunded in every transaction of it; a refund of an older period, or of seats added to the period, does not end access; the pending refund request settled | a refund |
//! | REFUND (SEATS) | unchanged: some seats revoked (`revokedSeatQuantity`), the transaction stays valid | a refund with its seats |
//! | REFUND_DECLINED | unchanged; `refundDeclinedDate` set, the pending refund request settled | |
//! | REFUND_REVERSED | ACTIVE; the transaction, signed again without revocation, restores access | the refund marked reversed |
//! | REVOKE (Family Sharing) | REVOKED | a refund of type REVOKE |
//! | CONSUMPTION_REQUEST | unchanged; `refundRequestedDate` set until a REFUND or REFUND_DECLINED | |
//! | ONE_TIME_CHARGE | a one-time purchase, ACTIVE | |
//! | UNCLAIM_SEATS | unchanged; the seat claims in `unclaimInfo` are kept as unclaimed (no one is entitled through them) | |
//! | TEST, EXTERNAL_PURCHASE_TOKEN, METADATA_UPDATE, MIGRATION, PRICE_CHANGE, RESCIND_CONSENT, unknown | no item, or facts only | |
//!
//! A one-time purchase is ACTIVE until its transaction carries a revocation,
//! then REVOKED (and ACTIVE again if a REFUND_REVERSED re-signs it without).
//!
//! Entitlement at a moment T ([`State::entitled_at`]) is answered from the
//! item's [`Timeline`]: the periods bought (product, purchase, expiry, an
//! upgrade cutting the period it replaces) and the statuses Apple gave, each
//! from the notification that established it, by everything known now. Not
//! entitled while the period covering T is revoked (a refund dated before T
//! counts even if reported later, until a REFUND_REVERSED), nor while Apple's
//! status at T is BILLING_RETRY, EXPIRED or REVOKED; entitled while a period
//! covers T, or in the billing grace period until `gracePeriodExpiresDate`.
//! Consumables are not entitlements.
//!
//! Apple's word is a check, always: besides the status it answers with, the
//! ledger keeps its own ([`own_status_at`]), from the types, transactions
//! and renewal info alone. Every `data.status` Apple signs (in a
//! notification or a Get All Subscription Statuses answer) is compared with
//! the ledger's own answer at its signedDate; Apple's status is kept, and a
//! disagreement is noted, with both answers, for the checker
//! (`APPLE_STATUS_DISAGREES`).

// Values from outside (dates, prices, counts Apple signed or a request
// sent) pass through here: arithmetic is checked or saturating, so that no
// value can overflow into a panic or a wrapped answer; an exception says
// why it cannot overflow.
#![warn(clippy::arithmetic_side_effects)]

mod duration;
mod effects;
mod entitlement;
mod event;
mod own_status;
mod state;
mod timeline;
mod told;

use std::collections::BTreeMap;

pub use duration::{ProductDuration, Products};
pub use effects::{
    divide_rounded, Effect, ExpirationRecord, RefundRecord, REFUND_FROM_APPLE_API,
    REFUND_FROM_NOTIFICATION,
};
pub use entitlement::Answer;
pub use event::{
    in_order, sources, Event, EventData, EventKey, ItemKey, RenewalFacts, TransactionFacts,
    UnclaimFacts,
};
pub use own_status::{own_status_at, OwnStatus};
pub use state::{
    apply, current_period_revoked, State, Status, MAX_CONTRADICTIONS, MAX_REFUND_NOTICES,
};
pub use timeline::{Offer, Period, Revocation, StatusSpan, Timeline};
pub use told::{
    changes, changes_at, correction, kinds as event_kinds, moments, reversals, Change, Correction,
    Told,
};

/// The state and records of one item after all of `events` that concern it,
/// whatever their order and however often each appears.
pub fn fold(item: &ItemKey, events: Vec<Event>) -> Option<(State, Vec<Effect>)> {
    let mut state = None;
    let mut effects = Vec::new();
    for event in in_order(events) {
        if event.item().as_ref() != Some(item) {
            continue;
        }
        let (next, mut more) = apply(state, item, &event);
        state = Some(next);
        effects.append(&mut more);
    }
    state.map(|state| (state, effects))
}

/// Every item's state and records after `events`.
pub fn fold_all(events: Vec<Event>) -> BTreeMap<ItemKey, (State, Vec<Effect>)> {
    let mut by_item: BTreeMap<ItemKey, Vec<Event>> = BTreeMap::new();
    for event in events {
        if let Some(item) = event.item() {
            by_item.entry(item).or_default().push(event);
        }
    }
    by_item
        .into_iter()
        .filter_map(|(item, events)| fold(&item, events).map(|folded| (item, folded)))
        .collect()
}

/// True when `event` can be applied on top of `state`: it sorts after every
/// event applied so far. Otherwise the item must be folded again.
pub fn can_apply_after(state: &State, event: &Event) -> bool {
    event.key() > state.last_key
}
