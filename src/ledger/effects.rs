//! What applying an event writes besides the state: the refund ledger's
//! records, their reversals, and expirations with Apple's reason.

use super::event::{Event, TransactionFacts};
use super::state::State;
use crate::model::NotificationType;

/// A refund or revocation, as the refund ledger records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRecord {
    pub notification_uuid: String,
    /// `REFUND` or `REVOKE`.
    pub notification_type: String,
    pub transaction_id: Option<String>,
    pub original_transaction_id: Option<String>,
    pub product_id: Option<String>,
    pub bundle_id: Option<String>,
    pub environment: Option<String>,
    pub revocation_date: Option<i64>,
    pub revocation_reason: Option<i64>,
    pub revocation_type: Option<String>,
    pub revocation_percentage: Option<i64>,
    pub price: Option<i64>,
    pub currency: Option<String>,
    pub signed_date: i64,
    /// The notification's subtype: `SEATS` for a refund of some seats of
    /// a multiseat purchase, which leaves the transaction valid.
    pub subtype: Option<String>,
    /// Seats the refund revoked (`revokedSeatQuantity`), for a SEATS refund.
    pub revoked_seat_quantity: Option<i64>,
    /// Who told: [`REFUND_FROM_NOTIFICATION`], or [`REFUND_FROM_APPLE_API`]
    /// (Get Refund History, when no notification did).
    pub source: &'static str,
}

/// A refund row a REFUND or REVOKE notification made.
pub const REFUND_FROM_NOTIFICATION: &str = "NOTIFICATION";
/// A refund row Apple's Refund History made: its notification never came.
pub const REFUND_FROM_APPLE_API: &str = "APPLE_API";

/// Keeps `id` in the sorted set `ids` (bounded); false when it was there.
fn note(ids: &mut Vec<String>, id: &str) -> bool {
    match ids.binary_search_by(|known| known.as_str().cmp(id)) {
        Ok(_) => false,
        Err(at) => {
            if ids.len() < super::state::MAX_REFUND_NOTICES {
                ids.insert(at, id.to_owned());
            }
            true
        }
    }
}

/// `revocationPercentage` is in milliunits of a percent: 100% is 100,000.
const WHOLE: i64 = 100_000;

impl RefundRecord {
    /// A Family Sharing revocation: the family member lost access because
    /// the purchaser stopped sharing or was refunded; the record moves no
    /// money (a `REVOKE` notification, or `revocationType` FAMILY_REVOKE).
    pub fn is_family_revocation(&self) -> bool {
        self.notification_type == "REVOKE"
            || self.revocation_type.as_deref() == Some("FAMILY_REVOKE")
    }

    /// The money this record refunded, in milliunits of `currency`, or
    /// `None` when it refunded none (a Family Sharing revocation) or Apple's
    /// fields do not say how much:
    /// - a refund of some seats (subtype SEATS): the price times
    ///   `revokedSeatQuantity` (for a multiseat purchase Apple's `price` is
    ///   the average price per seat, and which tier's seats went back is not
    ///   signed);
    /// - REFUND_PRORATED: the price times `revocationPercentage`, rounded to
    ///   the nearest milliunit (40% of 9,990 is 3,996);
    /// - REFUND_FULL, or a refund before Apple signed a `revocationType`:
    ///   the price.
    ///
    /// Every value is Apple's, signed but unchecked: the product is
    /// computed wide and the percentage held to 0..=100%, so no value
    /// overflows or refunds more than the price.
    pub fn refunded_amount(&self) -> Option<i64> {
        if self.is_family_revocation() {
            return None;
        }
        let price = self.price?;
        if self.subtype.as_deref() == Some("SEATS") {
            return self
                .revoked_seat_quantity
                .map(|seats| price.saturating_mul(seats.max(0)));
        }
        match self.revocation_type.as_deref() {
            Some("REFUND_PRORATED") => self
                .revocation_percentage
                .map(|percentage| prorated(price, percentage)),
            _ => Some(price),
        }
    }
}

/// `value` / `by`, rounded half away from zero (money is rounded so);
/// saturating at i128's ends, 0 for a divisor of 0.
pub fn divide_rounded(value: i128, by: i128) -> i128 {
    let half = by / 2;
    let shifted = if (value < 0) == (by < 0) {
        value.saturating_add(half)
    } else {
        value.saturating_sub(half)
    };
    shifted.checked_div(by).unwrap_or(0)
}

/// `price` x `percentage` / 100%, rounded half away from zero.
fn prorated(price: i64, percentage: i64) -> i64 {
    let exact = i128::from(price).saturating_mul(i128::from(percentage.clamp(0, WHOLE)));
    let rounded = divide_rounded(exact, i128::from(WHOLE));
    // Within [-|price|, |price|] by the clamp: always fits.
    i64::try_from(rounded).unwrap_or(price)
}

/// An expiry, with Apple's reason (the EXPIRED subtype).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpirationRecord {
    pub notification_uuid: String,
    pub subtype: Option<String>,
    pub transaction_id: Option<String>,
    pub original_transaction_id: Option<String>,
    pub product_id: Option<String>,
    pub bundle_id: Option<String>,
    pub environment: Option<String>,
    pub expires_date: Option<i64>,
    pub signed_date: i64,
}

/// What applying an event writes besides the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Refund(RefundRecord),
    /// Every unreversed refund of this transaction reported before `reversed_at`.
    RefundReversed {
        transaction_id: String,
        reversed_at: i64,
        reversed_by: String,
    },
    Expiration(ExpirationRecord),
    /// The row Refund History made for this transaction goes: its REFUND
    /// or REVOKE notification arrived and made its own.
    ApiRefundSuperseded {
        transaction_id: String,
    },
}

/// The refund row `event` makes, about transaction `t`.
fn refund_record(
    s: &State,
    event: &Event,
    t: Option<&TransactionFacts>,
    signed: i64,
    source: &'static str,
) -> RefundRecord {
    RefundRecord {
        notification_uuid: event.notification_uuid.clone(),
        notification_type: event.notification_type.as_str().to_owned(),
        transaction_id: t.and_then(|t| t.transaction_id.clone()),
        original_transaction_id: t
            .and_then(|t| t.original_transaction_id.clone())
            .or(s.original_transaction_id.clone()),
        product_id: t.and_then(|t| t.product_id.clone()),
        bundle_id: s.bundle_id.clone(),
        environment: s.environment.clone(),
        revocation_date: t.and_then(|t| t.revocation_date),
        revocation_reason: t.and_then(|t| t.revocation_reason).map(|r| r.raw()),
        revocation_type: t
            .and_then(|t| t.revocation_type.as_ref())
            .map(|r| r.as_str().to_owned()),
        revocation_percentage: t.and_then(|t| t.revocation_percentage),
        price: t.and_then(|t| t.price),
        currency: t.and_then(|t| t.currency.clone()),
        signed_date: signed,
        subtype: event.subtype.as_ref().map(|t| t.as_str().to_owned()),
        revoked_seat_quantity: t.and_then(TransactionFacts::revoked_seat_quantity),
        source,
    }
}

pub(super) fn effects(s: &mut State, event: &Event, signed: i64) -> Vec<Effect> {
    let t = event.transaction();
    let uuid = event.notification_uuid.clone();
    match &event.notification_type {
        NotificationType::ConsumptionRequest => {
            s.refund_requested_date = Some(signed);
            s.consumption_request_reason = event
                .data
                .as_ref()
                .and_then(|d| d.consumption_request_reason.clone());
            Vec::new()
        }
        NotificationType::RefundDeclined => {
            s.refund_requested_date = None;
            s.consumption_request_reason = None;
            s.refund_declined_date = Some(signed);
            Vec::new()
        }
        NotificationType::Refund | NotificationType::Revoke => {
            s.last_refund_signed_date = Some(signed);
            let mut effects = Vec::with_capacity(2);
            if let Some(id) = t.and_then(|t| t.transaction_id.as_ref()) {
                note(&mut s.refund_notices, id);
                // Apple's answer told it first: the notification's row
                // replaces the one made from it.
                if let Ok(at) = s.api_refunds.binary_search_by(|k| k.as_str().cmp(id)) {
                    s.api_refunds.remove(at);
                    effects.push(Effect::ApiRefundSuperseded {
                        transaction_id: id.clone(),
                    });
                }
            }
            s.refund_requested_date = None;
            s.consumption_request_reason = None;
            effects.push(Effect::Refund(refund_record(
                s,
                event,
                t,
                signed,
                REFUND_FROM_NOTIFICATION,
            )));
            effects
        }
        NotificationType::Unknown(source)
            if source == super::sources::REFUND_HISTORY
                || source == super::sources::TRANSACTION_HISTORY =>
        {
            // Refund History lists what Apple refunded, and Transaction
            // History shows a refund as a revocation with its reason: a row
            // of the refund ledger when no notification made one, once per
            // transaction.
            let Some(t) = t.filter(|t| {
                t.revocation_date.is_some()
                    && (source == super::sources::REFUND_HISTORY || t.revocation_reason.is_some())
            }) else {
                return Vec::new();
            };
            let Some(id) = t.transaction_id.as_deref() else {
                return Vec::new();
            };
            if s.refund_notices
                .binary_search_by(|k| k.as_str().cmp(id))
                .is_ok()
                || !note(&mut s.api_refunds, id)
            {
                return Vec::new();
            }
            let mut record = refund_record(s, event, Some(t), signed, REFUND_FROM_APPLE_API);
            record.notification_type = NotificationType::Refund.as_str().to_owned();
            vec![Effect::Refund(record)]
        }
        NotificationType::RefundReversed => t
            .and_then(|t| t.transaction_id.clone())
            .map(|transaction_id| Effect::RefundReversed {
                transaction_id,
                reversed_at: signed,
                reversed_by: uuid,
            })
            .into_iter()
            .collect(),
        NotificationType::Expired => {
            s.last_expired_signed_date = Some(signed);
            vec![Effect::Expiration(ExpirationRecord {
                notification_uuid: uuid,
                subtype: event.subtype.as_ref().map(|t| t.as_str().to_owned()),
                transaction_id: t.and_then(|t| t.transaction_id.clone()),
                original_transaction_id: s.original_transaction_id.clone(),
                product_id: t
                    .and_then(|t| t.product_id.clone())
                    .or(s.product_id.clone()),
                bundle_id: s.bundle_id.clone(),
                environment: s.environment.clone(),
                expires_date: t
                    .and_then(|t| t.expires_date)
                    .or(s.transaction_expires_date),
                signed_date: signed,
            })]
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refund(notification_type: &str, revocation_type: Option<&str>) -> RefundRecord {
        RefundRecord {
            notification_uuid: "n".into(),
            notification_type: notification_type.into(),
            transaction_id: Some("t".into()),
            original_transaction_id: Some("o".into()),
            product_id: None,
            bundle_id: None,
            environment: None,
            revocation_date: Some(1),
            revocation_reason: Some(0),
            revocation_type: revocation_type.map(str::to_owned),
            revocation_percentage: None,
            price: Some(9_990),
            currency: Some("USD".into()),
            signed_date: 1,
            subtype: None,
            revoked_seat_quantity: None,
            source: crate::ledger::REFUND_FROM_NOTIFICATION,
        }
    }

    #[test]
    fn money_refunded_by_each_kind_of_refund() {
        assert_eq!(
            refund("REFUND", Some("REFUND_FULL")).refunded_amount(),
            Some(9_990)
        );
        // Before Apple signed a revocationType, a refund was of the price.
        assert_eq!(refund("REFUND", None).refunded_amount(), Some(9_990));
        let mut prorated = refund("REFUND", Some("REFUND_PRORATED"));
        prorated.revocation_percentage = Some(40_000);
        assert_eq!(prorated.refunded_amount(), Some(3_996));
        prorated.revocation_percentage = Some(67_932);
        assert_eq!(prorated.refunded_amount(), Some(6_786));
        prorated.revocation_percentage = None;
        assert_eq!(prorated.refunded_amount(), None, "how much is not signed");
        let mut seats = refund("REFUND", Some("REFUND_FULL"));
        seats.subtype = Some("SEATS".into());
        seats.price = Some(5_000);
        seats.revoked_seat_quantity = Some(3);
        assert_eq!(seats.refunded_amount(), Some(15_000));
    }

    #[test]
    fn a_family_sharing_revocation_refunds_no_money() {
        assert_eq!(refund("REVOKE", None).refunded_amount(), None);
        assert_eq!(
            refund("REFUND", Some("FAMILY_REVOKE")).refunded_amount(),
            None
        );
        assert!(refund("REVOKE", Some("FAMILY_REVOKE")).is_family_revocation());
        assert!(!refund("REFUND", Some("REFUND_FULL")).is_family_revocation());
    }

    #[test]
    fn extreme_signed_values_neither_overflow_nor_refund_more_than_the_price() {
        let mut r = refund("REFUND", Some("REFUND_PRORATED"));
        r.price = Some(i64::MAX);
        r.revocation_percentage = Some(100_000);
        assert_eq!(r.refunded_amount(), Some(i64::MAX));
        r.revocation_percentage = Some(i64::MAX);
        assert_eq!(r.refunded_amount(), Some(i64::MAX));
        r.price = Some(9_990);
        r.revocation_percentage = Some(-5);
        assert_eq!(r.refunded_amount(), Some(0));
        r.price = Some(i64::MIN);
        r.revocation_percentage = Some(50_000);
        assert_eq!(r.refunded_amount(), Some(i64::MIN / 2));
        let mut seats = refund("REFUND", None);
        seats.subtype = Some("SEATS".into());
        seats.price = Some(i64::MAX);
        seats.revoked_seat_quantity = Some(i64::MAX);
        assert_eq!(seats.refunded_amount(), Some(i64::MAX));
        seats.revoked_seat_quantity = Some(-3);
        assert_eq!(seats.refunded_amount(), Some(0));
    }
}
