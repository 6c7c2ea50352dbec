//! The state of one subscription or purchase, and how each notification
//! changes it.

use serde::{Deserialize, Serialize};

use super::effects::{effects, Effect};
use super::event::{Event, EventKey, ItemKey, TransactionFacts};
use super::own_status::{
    describe, note_disagreement, own_status_at, status_from_renewal, OwnStatus,
};
use super::timeline::{StatusSpan, Timeline};
use crate::model::{
    AutoRenewStatus, ExpirationIntent, NotificationType, PriceIncreaseStatus, ProductType,
    RevocationReason, RevocationType, SubscriptionStatus, Subtype,
};

/// Status, in Apple's names. A one-time purchase is `ACTIVE` until refunded
/// or revoked, then `REVOKED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    #[default]
    Active,
    BillingGracePeriod,
    BillingRetry,
    Expired,
    Revoked,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "ACTIVE",
            Status::BillingGracePeriod => "BILLING_GRACE_PERIOD",
            Status::BillingRetry => "BILLING_RETRY",
            Status::Expired => "EXPIRED",
            Status::Revoked => "REVOKED",
        }
    }

    /// Whether the customer has access in this status (grace: until
    /// `gracePeriodExpiresDate`).
    pub fn entitles(self) -> bool {
        matches!(self, Status::Active | Status::BillingGracePeriod)
    }

    fn from_apple(status: SubscriptionStatus) -> Option<Status> {
        match status {
            SubscriptionStatus::Active => Some(Status::Active),
            SubscriptionStatus::Expired => Some(Status::Expired),
            SubscriptionStatus::BillingRetry => Some(Status::BillingRetry),
            SubscriptionStatus::BillingGracePeriod => Some(Status::BillingGracePeriod),
            SubscriptionStatus::Revoked => Some(Status::Revoked),
            SubscriptionStatus::Unknown(_) => None,
        }
    }
}

/// Everything the ledger knows of one item, after the notifications so far.
/// Stored as JSON; entitlement at any moment is computed from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub original_transaction_id: Option<String>,
    pub bundle_id: Option<String>,
    pub environment: Option<String>,
    pub app_account_token: Option<String>,
    pub product_id: Option<String>,
    pub product_type: Option<ProductType>,
    pub subscription_group_identifier: Option<String>,
    pub status: Status,
    /// The signedDate of the notification that set `status`.
    pub status_since: i64,
    /// The transaction of the current (latest) period, or the purchase.
    pub current_transaction_id: Option<String>,
    pub original_purchase_date: Option<i64>,
    pub purchase_date: Option<i64>,
    /// `expiresDate` of the current period's transaction.
    pub transaction_expires_date: Option<i64>,
    /// `renewalDate` of the newest renewal info: when the most recent purchase
    /// expires, which may be a period whose transaction we have not seen.
    pub renewal_date: Option<i64>,
    pub grace_period_expires_date: Option<i64>,
    /// Set while the current period's transaction is refunded or revoked.
    pub revocation_date: Option<i64>,
    pub revocation_reason: Option<RevocationReason>,
    pub revocation_type: Option<RevocationType>,
    pub auto_renew_product_id: Option<String>,
    pub auto_renew_status: Option<AutoRenewStatus>,
    pub expiration_intent: Option<ExpirationIntent>,
    /// From the newest renewal info: whether the customer accepted a price
    /// increase (PRICE_INCREASE), and the price of the next renewal.
    #[serde(default)]
    pub price_increase_status: Option<PriceIncreaseStatus>,
    #[serde(default)]
    pub renewal_price: Option<i64>,
    /// From the newest renewal info: the seats that renew (a multiseat
    /// subscription; a reduction takes effect then, as Apple says).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_quantity: Option<i64>,
    /// A refund request Apple asked us about (CONSUMPTION_REQUEST) and has
    /// not yet decided: cleared by the REFUND or REFUND_DECLINED that follows.
    #[serde(default)]
    pub refund_requested_date: Option<i64>,
    /// Why the customer asked (`consumptionRequestReason`), while the
    /// request is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumption_request_reason: Option<String>,
    /// The customer's download of the app (`appTransactionId`): every
    /// purchase they made in it carries it, and RESCIND_CONSENT names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_transaction_id: Option<String>,
    /// The current transaction's Advanced Commerce API details, as signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advanced_commerce_info: Option<serde_json::Value>,
    /// Whose purchase this is to the customer: `PURCHASED`, `FAMILY_SHARED`,
    /// or `ASSIGNED` (a group member's seat), from the current transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_app_ownership_type: Option<String>,
    /// A group purchase's invitations: `APPLE` (each member gets a
    /// transaction of their own) or `DEVELOPER` (the app's seat claims
    /// grant access), from the purchaser's `multiSeatInfo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invitation_management: Option<String>,
    /// The signedDate of the last REFUND_DECLINED.
    #[serde(default)]
    pub refund_declined_date: Option<i64>,
    /// The signedDate of Apple's latest status answer (Get All Subscription
    /// Statuses): what Apple said then is known, whatever push was lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apple_status_date: Option<i64>,
    pub price: Option<i64>,
    pub currency: Option<String>,
    /// signedDate of the renewal info applied (newer ones replace it).
    pub renewal_signed_date: i64,
    pub last_signed_date: i64,
    pub last_notification_type: Option<String>,
    pub last_notification_subtype: Option<String>,
    pub last_expired_signed_date: Option<i64>,
    pub last_refund_signed_date: Option<i64>,
    /// The last event applied: a later one applies on top, an earlier one
    /// means replaying them all.
    pub last_key: EventKey,
    /// Disagreements between this item's notifications on what must not
    /// change: bundle id, environment, subscription group.
    /// Each as `field: first value != later value`, sorted, once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identity_conflicts: Vec<String>,
    /// Notifications and status answers whose `data.status` disagrees with
    /// the ledger's own answer at their signedDate (Apple's status is kept,
    /// and the checker raises each): both answers and the notifications
    /// involved. Sorted, once, at most [`MAX_CONTRADICTIONS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apple_status_disagreements: Vec<String>,
    /// The status the ledger gives from everything but Apple's
    /// `data.status` (the types, the transactions and the renewal info):
    /// what each status Apple signs is checked against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub own_status: Option<OwnStatus>,
    /// Whether this state was folded from its first event by a version
    /// that keeps its own status. A state an older version folded lacks
    /// what the comparison needs: Apple's word is not compared with it
    /// (no false alarm after an upgrade) until `rebuild` folds it again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub own_status_kept: bool,
    /// The transactions a REFUND or REVOKE notification reported, sorted,
    /// at most [`MAX_REFUND_NOTICES`]: a period revoked but missing here lost
    /// its notification (the checker's MISSING_REFUND_NOTIFICATION).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refund_notices: Vec<String>,
    /// Transactions whose refund only Apple's Refund History told (no REFUND
    /// or REVOKE yet): each has one row of the refund ledger, `APPLE_API`,
    /// until its notification arrives. Sorted, once, at most
    /// [`MAX_REFUND_NOTICES`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_refunds: Vec<String>,
    /// Whether this state was folded from its first event by a version
    /// that keeps [`State::refund_notices`]; an older one is checked by the
    /// older rule (a revocation with no refund at all) until `rebuild`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refund_notices_kept: bool,
    /// Transactions a backend reported for another appAccountToken than the
    /// one Apple signed in (a sign of a replayed purchase). Sorted, once, at
    /// most [`MAX_CONTRADICTIONS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub app_account_token_mismatches: Vec<String>,
    /// Every appAccountToken the item carried (signed, or linked by a
    /// backend's report of a purchase Apple signed without one), sorted:
    /// each finds it. `app_account_token` is the latest signed one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub app_account_tokens: Vec<String>,
    /// The periods bought and the statuses Apple gave, over time.
    #[serde(default, skip_serializing_if = "Timeline::is_empty")]
    pub timeline: Timeline,
    /// Seat claims of a developer-hosted group subscription that the App
    /// Store unclaimed (UNCLAIM_SEATS): whoever the backend seated there
    /// is no longer entitled through them. Sorted, at most
    /// [`MAX_UNCLAIMED_SEATS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unclaimed_seat_claim_ids: Vec<String>,
}

/// Unclaimed seat claims kept per subscription: a group's seats, bounded.
const MAX_UNCLAIMED_SEATS: usize = 10_000;
/// More refunded transactions than a subscription has periods in decades.
pub const MAX_REFUND_NOTICES: usize = 10_000;

/// More contradictions than this say nothing new.
pub const MAX_CONTRADICTIONS: usize = 20;

/// The most appAccountTokens an item keeps: each a UUID, a few in a
/// lifetime (Set App Account Token, family members linked by a backend).
const MAX_TOKENS: usize = 20;

/// Someone else's purchase reaching this customer: a Family Sharing
/// member's own transaction, or a group member's seat (ASSIGNED). Neither
/// carries the member's choice of appAccountToken.
fn is_shared(t: &TransactionFacts) -> bool {
    use crate::model::InAppOwnershipType as Ownership;
    matches!(
        t.in_app_ownership_type,
        Some(Ownership::FamilyShared | Ownership::Assigned)
    )
}

/// Applies one event, which must come after every event already applied to
/// `state` in [`Event::key`] order.
impl State {
    /// Whether the refund ledger has transaction `id`'s refund, from its
    /// notification or from Apple's Refund History.
    pub fn knows_refund_of(&self, id: &str) -> bool {
        let has = |ids: &[String]| ids.binary_search_by(|k| k.as_str().cmp(id)).is_ok();
        has(&self.refund_notices) || has(&self.api_refunds)
    }
}

pub fn apply(state: Option<State>, item: &ItemKey, event: &Event) -> (State, Vec<Effect>) {
    let mut s = state.unwrap_or_else(|| State {
        own_status_kept: true,
        refund_notices_kept: true,
        ..State::default()
    });
    let signed = event.effective_signed_date();
    let kind = &event.notification_type;
    s.last_key = event.key();
    s.last_signed_date = s.last_signed_date.max(signed);
    s.last_notification_type = Some(kind.as_str().to_owned());
    s.last_notification_subtype = event.subtype.as_ref().map(|t| t.as_str().to_owned());
    if kind.as_str() == super::sources::SUBSCRIPTION_STATUS {
        s.apple_status_date = s.apple_status_date.max(Some(signed));
    }
    if let Some(data) = &event.data {
        note_conflict(
            &mut s.identity_conflicts,
            "bundleId",
            s.bundle_id.as_ref(),
            data.bundle_id.as_ref(),
        );
        note_conflict(
            &mut s.identity_conflicts,
            "environment",
            s.environment.as_ref(),
            data.environment.as_ref(),
        );
        s.bundle_id = data.bundle_id.clone().or(s.bundle_id.take());
        s.environment = data.environment.clone().or(s.environment.take());
    }
    if let Some(t) = event.transaction() {
        note_conflict(
            &mut s.identity_conflicts,
            "subscriptionGroupIdentifier",
            s.subscription_group_identifier.as_ref(),
            t.subscription_group_identifier.as_ref(),
        );
        // A later transaction may carry another appAccountToken: Set App
        // Account Token changes it legitimately. The latest is the item's
        // token; every one it carried still finds it.
        if let Some(token) = &t.app_account_token {
            note_once(&mut s.app_account_tokens, token.clone(), MAX_TOKENS);
        }
    }

    if let (Some(reported), Some(t)) = (&event.reported_app_account_token, event.transaction()) {
        match &t.app_account_token {
            // Apple signed the purchase for another account: a sign of a
            // replayed purchase. Not for a family member, whose transaction
            // never carries the purchaser's choice of token.
            Some(signed) if signed != reported && !is_shared(t) => {
                let note = format!(
                    "transaction {}: reported for {reported}, signed for {signed}",
                    t.transaction_id.as_deref().unwrap_or("?"),
                );
                note_once(
                    &mut s.app_account_token_mismatches,
                    note,
                    MAX_CONTRADICTIONS,
                );
            }
            // A family member's purchase, or one Apple signed without a
            // token: the backend's word links the account to it.
            _ => {
                note_once(&mut s.app_account_tokens, reported.clone(), MAX_TOKENS);
                if s.app_account_token.is_none() {
                    s.app_account_token = Some(reported.clone());
                }
            }
        }
    }
    if let Some(unclaimed) = &event.unclaim_info {
        for id in &unclaimed.unclaim_seat_ids {
            note_once(
                &mut s.unclaimed_seat_claim_ids,
                crate::model::app_account_token_key(id),
                MAX_UNCLAIMED_SEATS,
            );
        }
    }
    if let Some(t) = event.transaction() {
        s.timeline.note_transaction(t, signed);
        s.original_transaction_id = t
            .original_transaction_id
            .clone()
            .or(s.original_transaction_id.take());
        // The token of the latest purchase is the item's: a refund of an
        // older period re-signs that period with the token it had then.
        if t.purchase_date >= s.purchase_date || s.app_account_token.is_none() {
            s.app_account_token = t.app_account_token.clone().or(s.app_account_token.take());
        }
        s.original_purchase_date = t.original_purchase_date.or(s.original_purchase_date);
        s.app_transaction_id = t.app_transaction_id.clone().or(s.app_transaction_id.take());
        match item {
            ItemKey::Purchase(_) => take_transaction(&mut s, t),
            ItemKey::Subscription(_) => {
                // An upgrade takes effect at once, whether the customer
                // chose the plan (DID_CHANGE_RENEWAL_PREF) or redeemed an
                // offer for it (OFFER_REDEEMED): the notification carries
                // the new product's transaction, which may end before the
                // old one.
                let upgrade = matches!(
                    kind,
                    NotificationType::DidChangeRenewalPref | NotificationType::OfferRedeemed
                ) && event.subtype == Some(Subtype::Upgrade)
                    && t.is_upgraded != Some(true);
                if upgrade || is_current_period(&s, t) {
                    take_transaction(&mut s, t);
                    s.transaction_expires_date = t.expires_date;
                }
            }
        }
    }
    if let Some(r) = event.renewal() {
        let renewal_signed = r.signed_date.unwrap_or(signed);
        if renewal_signed >= s.renewal_signed_date {
            s.renewal_signed_date = renewal_signed;
            s.auto_renew_product_id = r.auto_renew_product_id.clone();
            s.auto_renew_status = r.auto_renew_status;
            s.expiration_intent = r.expiration_intent;
            s.grace_period_expires_date = r.grace_period_expires_date;
            s.renewal_date = r.renewal_date.or(s.renewal_date);
            s.price_increase_status = r.price_increase_status;
            s.renewal_price = r.renewal_price.or(s.renewal_price);
            s.renewal_quantity = r.renewal_quantity;
            s.app_account_token = s.app_account_token.take().or(r.app_account_token.clone());
            if let Some(token) = &r.app_account_token {
                note_once(&mut s.app_account_tokens, token.clone(), MAX_TOKENS);
            }
        }
        s.original_transaction_id = s
            .original_transaction_id
            .take()
            .or(r.original_transaction_id.clone());
    }

    let status = match item {
        ItemKey::Purchase(_) if s.revocation_date.is_some() => Some(Status::Revoked),
        ItemKey::Purchase(_) => Some(Status::Active),
        ItemKey::Subscription(_) => {
            let implied = derived_status(&s, event);
            if let Some(own) = implied.or_else(|| status_from_renewal(&s, event, signed)) {
                s.own_status = Some(OwnStatus {
                    span: StatusSpan {
                        from: signed,
                        status: own,
                        grace: grace_window(&s, event, own, signed),
                    },
                    set_by: describe(event),
                });
            }
            let apple = event.status().and_then(Status::from_apple);
            if let Some(apple) = apple.filter(|_| s.own_status_kept) {
                let own = own_status_at(&s, signed);
                if own != apple {
                    note_disagreement(&mut s, event, signed, apple, own);
                }
            }
            apple.or(implied)
        }
    };
    if let Some(status) = status {
        if status != s.status || s.status_since == 0 {
            s.status = status;
            s.status_since = signed;
        }
        if let ItemKey::Subscription(_) = item {
            let grace = grace_window(&s, event, status, signed);
            s.timeline.note_status(StatusSpan {
                from: signed,
                status,
                grace,
            });
        }
    }

    let effects = effects(&mut s, event, signed);
    (s, effects)
}

/// In the billing grace period: from the end of the period that failed to
/// renew until `gracePeriodExpiresDate`. That period is the latest
/// purchase, which this notification carries (even when the upgrade that
/// began it was never received), else the current one; never an older or
/// upgraded-away period's end.
fn grace_window(s: &State, event: &Event, status: Status, signed: i64) -> Option<(i64, i64)> {
    let failed_period_end = event
        .transaction()
        .filter(|t| t.is_upgraded != Some(true) && t.purchase_date >= s.purchase_date)
        .and_then(|t| t.expires_date)
        .or(s.transaction_expires_date);
    (status == Status::BillingGracePeriod)
        .then_some(s.grace_period_expires_date)
        .flatten()
        .map(|until| (failed_period_end.unwrap_or(signed).min(until), until))
}

fn note_conflict(
    conflicts: &mut Vec<String>,
    field: &str,
    known: Option<&String>,
    seen: Option<&String>,
) {
    if let (Some(known), Some(seen)) = (known, seen) {
        if known != seen {
            note_once(
                conflicts,
                format!("{field}: {known} != {seen}"),
                MAX_CONTRADICTIONS,
            );
        }
    }
}

/// The most characters a note keeps: it names values from outside.
const MAX_NOTE_CHARS: usize = 300;

/// Keeps `note` (cut to [`MAX_NOTE_CHARS`]) in the sorted `notes` once,
/// while they number under `max`: a state, and the finding made of it,
/// stay small whatever the values noted.
pub(super) fn note_once(notes: &mut Vec<String>, note: String, max: usize) {
    let note = crate::finding::clip(&note, MAX_NOTE_CHARS);
    if notes.len() < max {
        if let Err(at) = notes.binary_search(&note) {
            notes.insert(at, note);
        }
    }
}

/// A transaction is the current period's when it is not an upgraded-away
/// one and ends no earlier than the current period's transaction (or is it).
fn is_current_period(s: &State, t: &TransactionFacts) -> bool {
    if t.is_upgraded == Some(true) {
        return false;
    }
    if s.current_transaction_id.is_some() && s.current_transaction_id == t.transaction_id {
        return true;
    }
    match (t.expires_date, s.transaction_expires_date) {
        (Some(new), Some(current)) => {
            new > current || (new == current && t.purchase_date >= s.purchase_date)
        }
        (Some(_), None) => true,
        (None, _) => s.current_transaction_id.is_none(),
    }
}

fn take_transaction(s: &mut State, t: &TransactionFacts) {
    s.current_transaction_id = t.transaction_id.clone();
    s.product_id = t.product_id.clone().or(s.product_id.take());
    s.product_type = t.product_type.clone().or(s.product_type.take());
    s.subscription_group_identifier = t
        .subscription_group_identifier
        .clone()
        .or(s.subscription_group_identifier.take());
    s.purchase_date = t.purchase_date;
    // Each signed transaction says how things stand when it was signed: one
    // without revocation fields means the refund was reversed (or never was).
    s.revocation_date = t.revocation_date;
    s.revocation_reason = t.revocation_reason;
    s.revocation_type = t.revocation_type.clone();
    s.price = t.price.or(s.price);
    s.currency = t.currency.clone().or(s.currency.take());
    s.advanced_commerce_info = t.advanced_commerce_info.clone();
    s.in_app_ownership_type = t
        .in_app_ownership_type
        .as_ref()
        .map(|o| o.as_str().to_owned())
        .or(s.in_app_ownership_type.take());
    s.invitation_management = t
        .multi_seat_info
        .as_ref()
        .and_then(|info| info.get("invitationManagement"))
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .or(s.invitation_management.take());
}

/// The status a notification implies when Apple did not send `data.status`.
fn derived_status(s: &State, event: &Event) -> Option<Status> {
    use NotificationType as T;
    match &event.notification_type {
        T::Subscribed | T::DidRenew | T::RenewalExtended | T::RefundReversed | T::OfferRedeemed => {
            Some(Status::Active)
        }
        T::DidChangeRenewalPref if event.subtype == Some(Subtype::Upgrade) => Some(Status::Active),
        T::DidFailToRenew if event.subtype == Some(Subtype::GracePeriod) => {
            Some(Status::BillingGracePeriod)
        }
        T::DidFailToRenew | T::GracePeriodExpired => Some(Status::BillingRetry),
        T::Expired => Some(Status::Expired),
        T::Revoke => Some(Status::Revoked),
        T::Refund if current_period_revoked(s) => Some(Status::Revoked),
        _ => None,
    }
}

/// True while the latest known period is refunded or revoked. A refund of an
/// older period (one that a newer renewal date shows has lapsed) is not; nor
/// is a refund of one transaction of a period others share (added seats)
/// while another of them stands.
pub fn current_period_revoked(s: &State) -> bool {
    s.revocation_date.is_some()
        && match (s.renewal_date, s.transaction_expires_date) {
            (Some(renewal), Some(expires)) => renewal <= expires,
            _ => true,
        }
        && s.current_transaction_id
            .as_deref()
            .and_then(|id| s.timeline.period_of_revoked(id))
            .unwrap_or(true)
}

impl State {
    /// When the latest known period ends.
    pub fn expires_date(&self) -> Option<i64> {
        match (self.transaction_expires_date, self.renewal_date) {
            (Some(t), Some(r)) => Some(t.max(r)),
            (t, r) => t.or(r),
        }
    }

    /// The revocation date that ends current access, if any.
    pub fn current_revocation_date(&self) -> Option<i64> {
        if current_period_revoked(self) {
            self.revocation_date
        } else {
            None
        }
    }
}
