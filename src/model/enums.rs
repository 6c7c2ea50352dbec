//! Apple's enumerations. Apple adds values without notice, so every enum keeps
//! an `Unknown` variant holding the raw value instead of failing to decode.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

/// An enum carried as a JSON string.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $raw:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            /// A value this version does not know, kept as Apple sent it.
            Unknown(String),
        }

        impl $name {
            /// Every value this version knows, in Apple's spelling.
            pub const KNOWN: &'static [&'static str] = &[$($raw),*];

            pub fn from_raw(raw: &str) -> Self {
                match raw {
                    $($raw => Self::$variant,)*
                    other => Self::Unknown(other.to_owned()),
                }
            }

            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $raw,)*
                    Self::Unknown(raw) => raw,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a string")
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$name, E> {
                        Ok($name::from_raw(v))
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

/// An enum carried as a JSON integer.
macro_rules! int_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $raw:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            /// A value this version does not know, kept as Apple sent it.
            Unknown(i64),
        }

        impl $name {
            pub fn from_raw(raw: i64) -> Self {
                match raw {
                    $($raw => Self::$variant,)*
                    other => Self::Unknown(other),
                }
            }

            pub fn raw(&self) -> i64 {
                match self {
                    $(Self::$variant => $raw,)*
                    Self::Unknown(raw) => *raw,
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_i64(self.raw())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("an integer")
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$name, E> {
                        Ok($name::from_raw(v))
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$name, E> {
                        i64::try_from(v)
                            .map($name::from_raw)
                            .map_err(|_| E::custom("integer out of range"))
                    }
                }
                d.deserialize_i64(V)
            }
        }
    };
}

string_enum! {
    /// The server environment that signed the data.
    Environment {
        Sandbox => "Sandbox",
        Production => "Production",
        Xcode => "Xcode",
        LocalTesting => "LocalTesting",
    }
}

string_enum! {
    /// `notificationType` of an App Store Server Notification V2.
    NotificationType {
        Subscribed => "SUBSCRIBED",
        DidChangeRenewalPref => "DID_CHANGE_RENEWAL_PREF",
        DidChangeRenewalStatus => "DID_CHANGE_RENEWAL_STATUS",
        OfferRedeemed => "OFFER_REDEEMED",
        DidRenew => "DID_RENEW",
        Expired => "EXPIRED",
        DidFailToRenew => "DID_FAIL_TO_RENEW",
        GracePeriodExpired => "GRACE_PERIOD_EXPIRED",
        PriceIncrease => "PRICE_INCREASE",
        Refund => "REFUND",
        RefundDeclined => "REFUND_DECLINED",
        RefundReversed => "REFUND_REVERSED",
        ConsumptionRequest => "CONSUMPTION_REQUEST",
        RenewalExtended => "RENEWAL_EXTENDED",
        RenewalExtension => "RENEWAL_EXTENSION",
        Revoke => "REVOKE",
        Test => "TEST",
        ExternalPurchaseToken => "EXTERNAL_PURCHASE_TOKEN",
        OneTimeCharge => "ONE_TIME_CHARGE",
        RescindConsent => "RESCIND_CONSENT",
        MetadataUpdate => "METADATA_UPDATE",
        Migration => "MIGRATION",
        PriceChange => "PRICE_CHANGE",
        /// The App Store unclaimed seats of a group subscription whose
        /// invitations the developer hosts (`unclaimInfo`).
        UnclaimSeats => "UNCLAIM_SEATS",
    }
}

string_enum! {
    /// `subtype` of an App Store Server Notification V2.
    Subtype {
        InitialBuy => "INITIAL_BUY",
        Resubscribe => "RESUBSCRIBE",
        Downgrade => "DOWNGRADE",
        Upgrade => "UPGRADE",
        AutoRenewEnabled => "AUTO_RENEW_ENABLED",
        AutoRenewDisabled => "AUTO_RENEW_DISABLED",
        Voluntary => "VOLUNTARY",
        BillingRetry => "BILLING_RETRY",
        PriceIncrease => "PRICE_INCREASE",
        GracePeriod => "GRACE_PERIOD",
        Pending => "PENDING",
        Accepted => "ACCEPTED",
        BillingRecovery => "BILLING_RECOVERY",
        ProductNotForSale => "PRODUCT_NOT_FOR_SALE",
        Summary => "SUMMARY",
        Failure => "FAILURE",
        Unreported => "UNREPORTED",
        ActiveTokenReminder => "ACTIVE_TOKEN_REMINDER",
        Created => "CREATED",
        /// A REFUND that revoked some seats of a multiseat purchase and left
        /// the transaction valid (`revokedSeatQuantity`).
        Seats => "SEATS",
        IncreaseQuantity => "INCREASE_QUANTITY",
        DecreaseQuantity => "DECREASE_QUANTITY",
    }
}

string_enum! {
    /// `type` of a transaction: the kind of in-app purchase.
    ProductType {
        AutoRenewableSubscription => "Auto-Renewable Subscription",
        NonConsumable => "Non-Consumable",
        Consumable => "Consumable",
        NonRenewingSubscription => "Non-Renewing Subscription",
    }
}

string_enum! {
    /// `inAppOwnershipType`: bought by the customer or shared with them.
    InAppOwnershipType {
        Purchased => "PURCHASED",
        FamilyShared => "FAMILY_SHARED",
        /// A member's seat in a group (multiseat) purchase with Apple-hosted
        /// invitations, or an organization's assignment: the member's own
        /// transaction.
        Assigned => "ASSIGNED",
    }
}

string_enum! {
    /// `deliveryStatus` of a consumption answer: whether the app delivered
    /// a purchase that works.
    DeliveryStatus {
        Delivered => "DELIVERED",
        UndeliveredQualityIssue => "UNDELIVERED_QUALITY_ISSUE",
        UndeliveredWrongItem => "UNDELIVERED_WRONG_ITEM",
        UndeliveredServerOutage => "UNDELIVERED_SERVER_OUTAGE",
        UndeliveredOther => "UNDELIVERED_OTHER",
    }
}

string_enum! {
    /// `refundPreference` of a consumption answer: the outcome the
    /// developer would prefer, one of Apple's factors.
    RefundPreference {
        Decline => "DECLINE",
        GrantFull => "GRANT_FULL",
        GrantProrated => "GRANT_PRORATED",
    }
}

string_enum! {
    /// `transactionReason`.
    TransactionReason {
        Purchase => "PURCHASE",
        Renewal => "RENEWAL",
    }
}

string_enum! {
    /// `offerDiscountType`: the payment mode of an offer.
    OfferDiscountType {
        FreeTrial => "FREE_TRIAL",
        PayAsYouGo => "PAY_AS_YOU_GO",
        PayUpFront => "PAY_UP_FRONT",
        OneTime => "ONE_TIME",
    }
}

string_enum! {
    /// `revocationType`: how a transaction was revoked.
    RevocationType {
        RefundFull => "REFUND_FULL",
        RefundProrated => "REFUND_PRORATED",
        FamilyRevoke => "FAMILY_REVOKE",
    }
}

string_enum! {
    /// `consumptionRequestReason`: why the customer asked for a refund.
    ConsumptionRequestReason {
        UnintendedPurchase => "UNINTENDED_PURCHASE",
        FulfillmentIssue => "FULFILLMENT_ISSUE",
        UnsatisfiedWithPurchase => "UNSATISFIED_WITH_PURCHASE",
        Legal => "LEGAL",
        Other => "OTHER",
    }
}

string_enum! {
    /// `originalPlatform` of an app transaction.
    PurchasePlatform {
        Ios => "iOS",
        MacOs => "macOS",
        TvOs => "tvOS",
        VisionOs => "visionOS",
    }
}

int_enum! {
    /// `status` of an auto-renewable subscription.
    SubscriptionStatus {
        Active => 1,
        Expired => 2,
        BillingRetry => 3,
        BillingGracePeriod => 4,
        Revoked => 5,
    }
}

int_enum! {
    /// `autoRenewStatus`.
    AutoRenewStatus {
        Off => 0,
        On => 1,
    }
}

int_enum! {
    /// `expirationIntent`: why a subscription expired.
    ExpirationIntent {
        CustomerCancelled => 1,
        BillingError => 2,
        CustomerDidNotConsentToPriceIncrease => 3,
        ProductNotAvailable => 4,
        Other => 5,
    }
}

int_enum! {
    /// `offerType`.
    OfferType {
        IntroductoryOffer => 1,
        PromotionalOffer => 2,
        OfferCode => 3,
        WinBackOffer => 4,
    }
}

int_enum! {
    /// `priceIncreaseStatus`.
    PriceIncreaseStatus {
        CustomerHasNotResponded => 0,
        CustomerConsentedOrWasNotifiedWithoutNeedingConsent => 1,
    }
}

int_enum! {
    /// `revocationReason`: why Apple refunded or revoked a transaction.
    RevocationReason {
        Other => 0,
        RefundedDueToIssue => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_string_values_are_kept_raw() {
        let t: NotificationType = serde_json::from_str("\"SOMETHING_NEW\"").unwrap();
        assert_eq!(t, NotificationType::Unknown("SOMETHING_NEW".into()));
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"SOMETHING_NEW\"");
    }

    #[test]
    fn unknown_integer_values_are_kept_raw() {
        let s: SubscriptionStatus = serde_json::from_str("9").unwrap();
        assert_eq!(s, SubscriptionStatus::Unknown(9));
        assert_eq!(serde_json::to_string(&s).unwrap(), "9");
    }

    #[test]
    fn known_values_round_trip() {
        for raw in NotificationType::KNOWN {
            let t = NotificationType::from_raw(raw);
            assert!(!matches!(t, NotificationType::Unknown(_)), "{raw}");
            assert_eq!(t.as_str(), *raw);
        }
        for raw in Subtype::KNOWN {
            assert!(
                !matches!(Subtype::from_raw(raw), Subtype::Unknown(_)),
                "{raw}"
            );
        }
        assert_eq!(
            ProductType::from_raw("Auto-Renewable Subscription"),
            ProductType::AutoRenewableSubscription
        );
    }

    #[test]
    fn wrong_json_type_is_an_error_not_a_panic() {
        assert!(serde_json::from_str::<Environment>("5").is_err());
        assert!(serde_json::from_str::<AutoRenewStatus>("\"1\"").is_err());
        assert!(serde_json::from_str::<AutoRenewStatus>("18446744073709551615").is_err());
    }
}
