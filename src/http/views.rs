//! What the query API shows: Apple's camelCase names over the store's rows.
//! The store's types stay storage types; the shape of an answer is decided
//! here.

use serde::Serialize;

use crate::ledger::ExpirationRecord;
use crate::store::{EvidenceEntry, FindingEntry, HistoryEntry, RefundEntry};

/// One notification of a subscription's history.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct HistoryView<'a> {
    #[serde(rename = "notificationUUID")]
    notification_uuid: &'a str,
    notification_type: &'a str,
    subtype: Option<&'a str>,
    signed_date: Option<i64>,
    received_at: i64,
    transaction_id: Option<&'a str>,
    /// The decoded transaction the notification carried: every field Apple
    /// signed (offer, appTransactionId, quantity, multiSeatInfo, Advanced
    /// Commerce).
    transaction: Option<&'a serde_json::Value>,
    /// Apple's `data.status`.
    status: Option<i64>,
    /// CONSUMPTION_REQUEST: why the customer asked for a refund.
    #[serde(skip_serializing_if = "Option::is_none")]
    consumption_request_reason: Option<&'a str>,
    /// Apple's attempts to deliver it (from Notification History).
    #[serde(skip_serializing_if = "Option::is_none")]
    send_attempts: Option<&'a serde_json::Value>,
}

impl<'a> From<&'a HistoryEntry> for HistoryView<'a> {
    fn from(e: &'a HistoryEntry) -> Self {
        HistoryView {
            notification_uuid: &e.notification_uuid,
            notification_type: &e.notification_type,
            subtype: e.subtype.as_deref(),
            signed_date: e.signed_date,
            received_at: e.received_at,
            transaction_id: e.transaction_id.as_deref(),
            transaction: e.transaction.as_ref(),
            status: e.status,
            consumption_request_reason: e.consumption_request_reason.as_deref(),
            send_attempts: e.send_attempts.as_ref(),
        }
    }
}

/// One of Apple's answers kept as evidence.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct EvidenceView<'a> {
    evidence_id: &'a str,
    /// `GET_ALL_SUBSCRIPTION_STATUSES` or `GET_TRANSACTION_HISTORY`.
    source: &'a str,
    transaction_id: Option<&'a str>,
    signed_date: i64,
    fetched_at: i64,
}

impl<'a> From<&'a EvidenceEntry> for EvidenceView<'a> {
    fn from(e: &'a EvidenceEntry) -> Self {
        EvidenceView {
            evidence_id: &e.evidence_id,
            source: &e.source,
            transaction_id: e.transaction_id.as_deref(),
            signed_date: e.signed_date,
            fetched_at: e.fetched_at,
        }
    }
}

/// A row of the refund ledger (JSON and, column by column, CSV).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RefundView<'a> {
    #[serde(rename = "notificationUUID")]
    notification_uuid: &'a str,
    notification_type: &'a str,
    transaction_id: Option<&'a str>,
    original_transaction_id: &'a str,
    product_id: Option<&'a str>,
    bundle_id: Option<&'a str>,
    environment: Option<&'a str>,
    revocation_date: Option<i64>,
    revocation_reason: Option<i64>,
    revocation_type: Option<&'a str>,
    revocation_percentage: Option<i64>,
    price: Option<i64>,
    currency: Option<&'a str>,
    /// The money refunded, in milliunits of `currency` (see
    /// `RefundRecord::refunded_amount`); absent for a Family Sharing
    /// revocation, which refunds none.
    refunded_amount: Option<i64>,
    signed_date: i64,
    refund_date: i64,
    reversed_at: Option<i64>,
    #[serde(rename = "reversedByNotificationUUID")]
    reversed_by: Option<&'a str>,
    /// `SEATS`: some seats of a multiseat purchase were refunded, and the
    /// transaction stays valid for the others.
    subtype: Option<&'a str>,
    revoked_seat_quantity: Option<i64>,
    /// `NOTIFICATION`, or `APPLE_API` when only Apple's Refund History told.
    source: &'a str,
}

impl<'a> From<&'a RefundEntry> for RefundView<'a> {
    fn from(entry: &'a RefundEntry) -> Self {
        let r = &entry.refund;
        RefundView {
            notification_uuid: &r.notification_uuid,
            notification_type: &r.notification_type,
            transaction_id: r.transaction_id.as_deref(),
            // Always stored (the item's id when the transaction lacked one).
            original_transaction_id: r.original_transaction_id.as_deref().unwrap_or_default(),
            product_id: r.product_id.as_deref(),
            bundle_id: r.bundle_id.as_deref(),
            environment: r.environment.as_deref(),
            revocation_date: r.revocation_date,
            revocation_reason: r.revocation_reason,
            revocation_type: r.revocation_type.as_deref(),
            revocation_percentage: r.revocation_percentage,
            price: r.price,
            currency: r.currency.as_deref(),
            refunded_amount: r.refunded_amount(),
            signed_date: r.signed_date,
            refund_date: entry.refund_date,
            reversed_at: entry.reversed_at,
            reversed_by: entry.reversed_by.as_deref(),
            subtype: r.subtype.as_deref(),
            revoked_seat_quantity: r.revoked_seat_quantity,
            source: r.source,
        }
    }
}

/// An expiry, with Apple's reason (the EXPIRED subtype).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ExpirationView<'a> {
    #[serde(rename = "notificationUUID")]
    notification_uuid: &'a str,
    subtype: Option<&'a str>,
    transaction_id: Option<&'a str>,
    product_id: Option<&'a str>,
    expires_date: Option<i64>,
    signed_date: i64,
}

impl<'a> From<&'a ExpirationRecord> for ExpirationView<'a> {
    fn from(e: &'a ExpirationRecord) -> Self {
        ExpirationView {
            notification_uuid: &e.notification_uuid,
            subtype: e.subtype.as_deref(),
            transaction_id: e.transaction_id.as_deref(),
            product_id: e.product_id.as_deref(),
            expires_date: e.expires_date,
            signed_date: e.signed_date,
        }
    }
}

/// A kept finding of the inconsistency checker.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct FindingView<'a> {
    kind: &'a str,
    subject: &'a str,
    original_transaction_id: Option<&'a str>,
    bundle_id: Option<&'a str>,
    environment: Option<&'a str>,
    detail: &'a str,
    first_seen: i64,
    last_seen: i64,
    resolved_at: Option<i64>,
    resolution: Option<&'a str>,
}

impl<'a> From<&'a FindingEntry> for FindingView<'a> {
    fn from(f: &'a FindingEntry) -> Self {
        FindingView {
            kind: &f.kind,
            subject: &f.subject,
            original_transaction_id: f.original_transaction_id.as_deref(),
            bundle_id: f.bundle_id.as_deref(),
            environment: f.environment.as_deref(),
            detail: &f.detail,
            first_seen: f.first_seen,
            last_seen: f.last_seen,
            resolved_at: f.resolved_at,
            resolution: f.resolution.as_deref(),
        }
    }
}

/// Views of every row, for a JSON list.
pub(super) fn all<'a, T, V: From<&'a T>>(rows: &'a [T]) -> Vec<V> {
    rows.iter().map(V::from).collect()
}
