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
            s.refund_requested_date = None;
            s.consumption_request_reason = None;
            vec![Effect::Refund(RefundRecord {
                notification_uuid: uuid,
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
            })]
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
