//! What the ledger reads of a stored notification: the decoded payload kept at
//! ingest (already verified), reduced to the facts the state machine uses.
//!
//! Parsing only these fields, and ignoring the rest, is what lets `rebuild`
//! replay a million notifications in seconds.

use serde::{Deserialize, Serialize};

use crate::jws::VerifiedNotification;
use crate::model::{
    app_account_token_key, AutoRenewStatus, ExpirationIntent, InAppOwnershipType,
    JwsRenewalInfoDecodedPayload, JwsTransactionDecodedPayload, NotificationType,
    PriceIncreaseStatus, ProductType, RevocationReason, RevocationType, SubscriptionStatus,
    Subtype,
};

/// One verified notification, as the ledger sees it. Apple's answers to
/// the App Store Server API are kept in the same shape (see [`sources`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    #[serde(rename = "notificationUUID")]
    pub notification_uuid: String,
    pub notification_type: NotificationType,
    #[serde(default)]
    pub subtype: Option<Subtype>,
    #[serde(default)]
    pub signed_date: Option<i64>,
    #[serde(default)]
    pub data: Option<EventData>,
    /// The appAccountToken a backend said the purchase belongs to, when the
    /// app reported the transaction (POST /v1/transactions).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::model::app_account_token_de"
    )]
    pub reported_app_account_token: Option<String>,
    /// UNCLAIM_SEATS: the seat claims the App Store unclaimed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unclaim_info: Option<UnclaimFacts>,
}

/// What UNCLAIM_SEATS says (`unclaimInfo`): which group subscription, and
/// which seat claims (the ids Claim Seat returned) are gone.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnclaimFacts {
    #[serde(default)]
    pub original_transaction_id: Option<String>,
    #[serde(default)]
    pub unclaim_seat_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventData {
    #[serde(default)]
    pub bundle_id: Option<String>,
    #[serde(default)]
    pub environment: Option<String>,
    #[serde(default)]
    pub status: Option<SubscriptionStatus>,
    #[serde(default)]
    pub signed_transaction_info: Option<TransactionFacts>,
    #[serde(default)]
    pub signed_renewal_info: Option<RenewalFacts>,
    /// CONSUMPTION_REQUEST: why the customer asked for a refund.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumption_request_reason: Option<String>,
}

/// The transaction a notification carries (`data.signedTransactionInfo`, decoded).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionFacts {
    #[serde(default)]
    pub transaction_id: Option<String>,
    #[serde(default)]
    pub original_transaction_id: Option<String>,
    #[serde(default)]
    pub product_id: Option<String>,
    #[serde(default)]
    pub subscription_group_identifier: Option<String>,
    #[serde(default, rename = "type")]
    pub product_type: Option<ProductType>,
    #[serde(default)]
    pub purchase_date: Option<i64>,
    #[serde(default)]
    pub original_purchase_date: Option<i64>,
    #[serde(default)]
    pub expires_date: Option<i64>,
    #[serde(default)]
    pub signed_date: Option<i64>,
    #[serde(default)]
    pub revocation_date: Option<i64>,
    #[serde(default)]
    pub revocation_reason: Option<RevocationReason>,
    #[serde(default)]
    pub revocation_type: Option<RevocationType>,
    #[serde(default)]
    pub revocation_percentage: Option<i64>,
    #[serde(default)]
    pub is_upgraded: Option<bool>,
    #[serde(default, deserialize_with = "crate::model::app_account_token_de")]
    pub app_account_token: Option<String>,
    #[serde(default)]
    pub in_app_ownership_type: Option<InAppOwnershipType>,
    #[serde(default)]
    pub price: Option<i64>,
    #[serde(default)]
    pub currency: Option<String>,
    /// Items bought, or seats of a multiseat purchase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<i64>,
    /// Set on every transaction of a period that several transactions
    /// represent (seats added mid-period): they share the period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_transaction_reason: Option<String>,
    /// Kept as signed; its `revokedSeatQuantity` is what
    /// [`TransactionFacts::revoked_seat_quantity`] reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_seat_info: Option<serde_json::Value>,
    /// The customer's download of the app: every purchase they made in it
    /// carries the same one, and RESCIND_CONSENT names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_transaction_id: Option<String>,
    /// The offer the purchase redeemed: Apple's `offerType` (1
    /// introductory, 2 promotional, 3 offer code, 4 win-back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_type: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_identifier: Option<String>,
    /// ISO 8601 duration of the offer (`P1M`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_period: Option<String>,
    /// `FREE_TRIAL`, `PAY_AS_YOU_GO`, `PAY_UP_FRONT`, `ONE_TIME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_discount_type: Option<String>,
    /// Advanced Commerce API details, kept as signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advanced_commerce_info: Option<serde_json::Value>,
}

/// The renewal info a notification carries (`data.signedRenewalInfo`, decoded).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenewalFacts {
    #[serde(default)]
    pub original_transaction_id: Option<String>,
    #[serde(default)]
    pub auto_renew_product_id: Option<String>,
    #[serde(default)]
    pub auto_renew_status: Option<AutoRenewStatus>,
    #[serde(default)]
    pub expiration_intent: Option<ExpirationIntent>,
    #[serde(default)]
    pub grace_period_expires_date: Option<i64>,
    #[serde(default)]
    pub is_in_billing_retry_period: Option<bool>,
    #[serde(default)]
    pub renewal_date: Option<i64>,
    #[serde(default)]
    pub price_increase_status: Option<PriceIncreaseStatus>,
    #[serde(default)]
    pub renewal_price: Option<i64>,
    /// Seats in the next renewal of a multiseat subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_quantity: Option<i64>,
    #[serde(default)]
    pub signed_date: Option<i64>,
    #[serde(default, deserialize_with = "crate::model::app_account_token_de")]
    pub app_account_token: Option<String>,
}

fn millis(t: Option<crate::model::Timestamp>) -> Option<i64> {
    t.map(|t| t.as_millis())
}

impl TransactionFacts {
    /// The facts of a verified transaction.
    pub fn from_decoded(t: &JwsTransactionDecodedPayload) -> TransactionFacts {
        TransactionFacts {
            transaction_id: t.transaction_id.clone(),
            original_transaction_id: t.original_transaction_id.clone(),
            product_id: t.product_id.clone(),
            subscription_group_identifier: t.subscription_group_identifier.clone(),
            product_type: t.product_type.clone(),
            purchase_date: millis(t.purchase_date),
            original_purchase_date: millis(t.original_purchase_date),
            expires_date: millis(t.expires_date),
            signed_date: millis(t.signed_date),
            revocation_date: millis(t.revocation_date),
            revocation_reason: t.revocation_reason,
            revocation_type: t.revocation_type.clone(),
            revocation_percentage: t.revocation_percentage,
            is_upgraded: t.is_upgraded,
            app_account_token: t.app_account_token.as_deref().map(app_account_token_key),
            in_app_ownership_type: t.in_app_ownership_type.clone(),
            price: t.price,
            currency: t.currency.clone(),
            quantity: t.quantity,
            additional_transaction_reason: t.additional_transaction_reason.clone(),
            multi_seat_info: t.multi_seat_info.clone(),
            app_transaction_id: t.app_transaction_id.clone(),
            offer_type: t.offer_type.as_ref().map(|o| o.raw()),
            offer_identifier: t.offer_identifier.clone(),
            offer_period: t.offer_period.clone(),
            offer_discount_type: t
                .offer_discount_type
                .as_ref()
                .map(|d| d.as_str().to_owned()),
            advanced_commerce_info: t.advanced_commerce_info.clone(),
        }
    }

    /// Seats a seat-based refund revoked from this transaction, which
    /// stays valid for its other seats.
    pub fn revoked_seat_quantity(&self) -> Option<i64> {
        self.multi_seat_info
            .as_ref()
            .and_then(|info| info.get("revokedSeatQuantity"))
            .and_then(serde_json::Value::as_i64)
    }
}

impl RenewalFacts {
    /// The facts of a verified renewal info.
    pub fn from_decoded(r: &JwsRenewalInfoDecodedPayload) -> RenewalFacts {
        RenewalFacts {
            original_transaction_id: r.original_transaction_id.clone(),
            auto_renew_product_id: r.auto_renew_product_id.clone(),
            auto_renew_status: r.auto_renew_status,
            expiration_intent: r.expiration_intent,
            grace_period_expires_date: millis(r.grace_period_expires_date),
            is_in_billing_retry_period: r.is_in_billing_retry_period,
            renewal_date: millis(r.renewal_date),
            price_increase_status: r.price_increase_status,
            renewal_price: r.renewal_price,
            renewal_quantity: r.renewal_quantity,
            signed_date: millis(r.signed_date),
            app_account_token: r.app_account_token.as_deref().map(app_account_token_key),
        }
    }
}

/// The `notificationType` under which Apple's answers to the App Store
/// Server API are folded. Not Apple's notification types: no push has them.
pub mod sources {
    /// Get All Subscription Statuses: status, latest transaction, renewal info.
    pub const SUBSCRIPTION_STATUS: &str = "GET_ALL_SUBSCRIPTION_STATUSES";
    /// Get Transaction History: a transaction no notification brought.
    pub const TRANSACTION_HISTORY: &str = "GET_TRANSACTION_HISTORY";
    /// Get Refund History: a transaction Apple refunded or revoked.
    pub const REFUND_HISTORY: &str = "GET_REFUND_HISTORY";
    /// Get Transaction Info, asked for a transaction id a backend reported.
    pub const TRANSACTION_INFO: &str = "GET_TRANSACTION_INFO";
    /// A signed transaction the app reported (StoreKit's jwsRepresentation),
    /// forwarded by a backend.
    pub const APP_REPORTED: &str = "APP_REPORTED_TRANSACTION";
}

/// What the ledger keeps state for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ItemKey {
    /// An auto-renewable subscription, by `originalTransactionId`.
    Subscription(String),
    /// A consumable, non-consumable or non-renewing subscription, by `transactionId`.
    Purchase(String),
}

impl ItemKey {
    pub fn kind(&self) -> &'static str {
        match self {
            ItemKey::Subscription(_) => "subscription",
            ItemKey::Purchase(_) => "purchase",
        }
    }

    pub fn id(&self) -> &str {
        match self {
            ItemKey::Subscription(id) | ItemKey::Purchase(id) => id,
        }
    }
}

/// The total order in which events are applied: Apple's `signedDate`, then
/// the transaction's own dates, then the notification UUID so that equal
/// dates still have one order. Never the order of arrival.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
pub struct EventKey {
    pub signed_date: i64,
    pub transaction_signed_date: i64,
    pub purchase_date: i64,
    pub notification_uuid: String,
}

impl Event {
    /// Reads a stored notification (its decoded payload, as kept at ingest).
    pub fn parse(payload: &str) -> Result<Event, serde_json::Error> {
        serde_json::from_str(payload)
    }

    /// The same facts [`Event::parse`] reads from the stored payload, taken
    /// from the verified notification itself, without a round trip through
    /// JSON.
    pub fn from_verified(n: &VerifiedNotification) -> Event {
        let data = n.payload.data.as_ref().map(|d| EventData {
            bundle_id: d.bundle_id.clone(),
            environment: d.environment.as_ref().map(|e| e.as_str().to_owned()),
            status: d.status,
            signed_transaction_info: n
                .transaction_info
                .as_ref()
                .map(TransactionFacts::from_decoded),
            signed_renewal_info: n.renewal_info.as_ref().map(RenewalFacts::from_decoded),
            consumption_request_reason: d
                .consumption_request_reason
                .as_ref()
                .map(|r| r.as_str().to_owned()),
        });
        Event {
            notification_uuid: n.notification_uuid.clone(),
            notification_type: n.notification_type.clone(),
            subtype: n.payload.subtype.clone(),
            signed_date: millis(n.payload.signed_date),
            data,
            reported_app_account_token: None,
            unclaim_info: n.payload.unclaim_info.as_ref().map(|u| UnclaimFacts {
                original_transaction_id: u.original_transaction_id.clone(),
                unclaim_seat_ids: u.unclaim_seat_ids.clone().unwrap_or_default(),
            }),
        }
    }

    pub fn transaction(&self) -> Option<&TransactionFacts> {
        self.data.as_ref()?.signed_transaction_info.as_ref()
    }

    pub fn renewal(&self) -> Option<&RenewalFacts> {
        self.data.as_ref()?.signed_renewal_info.as_ref()
    }

    pub fn status(&self) -> Option<SubscriptionStatus> {
        self.data.as_ref()?.status
    }

    /// The envelope's signedDate, or (old notifications) the newest nested one.
    pub fn effective_signed_date(&self) -> i64 {
        self.signed_date
            .or_else(|| {
                let t = self.transaction().and_then(|t| t.signed_date);
                let r = self.renewal().and_then(|r| r.signed_date);
                t.max(r)
            })
            .unwrap_or(0)
    }

    pub fn key(&self) -> EventKey {
        let transaction = self.transaction();
        EventKey {
            signed_date: self.effective_signed_date(),
            transaction_signed_date: transaction.and_then(|t| t.signed_date).unwrap_or(0),
            purchase_date: transaction.and_then(|t| t.purchase_date).unwrap_or(0),
            notification_uuid: self.notification_uuid.clone(),
        }
    }

    /// The subscription or purchase this notification is about, if any (a TEST
    /// notification, for one, is about nothing).
    pub fn item(&self) -> Option<ItemKey> {
        if let Some(t) = self.transaction() {
            let is_subscription = matches!(
                t.product_type,
                Some(ProductType::AutoRenewableSubscription) | None
            );
            return if is_subscription {
                t.original_transaction_id.clone().map(ItemKey::Subscription)
            } else {
                t.transaction_id.clone().map(ItemKey::Purchase)
            };
        }
        self.renewal()
            .and_then(|r| r.original_transaction_id.clone())
            .or_else(|| {
                self.unclaim_info
                    .as_ref()
                    .and_then(|u| u.original_transaction_id.clone())
            })
            .map(ItemKey::Subscription)
    }
}

/// Sorts events into the order of application and drops repeats of a UUID.
/// (The store keeps one notification per UUID, so repeats are identical.)
pub fn in_order(mut events: Vec<Event>) -> Vec<Event> {
    events.sort_by_cached_key(Event::key);
    events.dedup_by(|later, earlier| later.notification_uuid == earlier.notification_uuid);
    events
}
