//! Every field Apple documents decodes into a typed field (none is left in
//! `unknown_fields`), and decoding then encoding gives back the same JSON.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use appstore_ledger::model::{
    ConsumptionRequestReason, Environment, ExpirationIntent, JwsAppTransactionDecodedPayload,
    JwsRenewalInfoDecodedPayload, JwsTransactionDecodedPayload, OfferType, PurchasePlatform,
    ResponseBodyV2DecodedPayload, RevocationType, SubscriptionStatus, Timestamp,
};

fn fixture(name: &str) -> Value {
    let path = format!("{}/fixtures/payloads/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn round_trip<T: DeserializeOwned + Serialize>(name: &str) -> T {
    let json = fixture(name);
    let decoded: T = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(
        serde_json::to_value(&decoded).unwrap(),
        json,
        "{name} round trip"
    );
    decoded
}

#[test]
fn transaction_fields() {
    let t: JwsTransactionDecodedPayload = round_trip("transaction.json");
    assert!(t.unknown_fields.is_empty(), "{:?}", t.unknown_fields.keys());
    assert_eq!(t.revocation_type, Some(RevocationType::RefundProrated));
    assert_eq!(t.revocation_percentage, Some(52_500));
    assert_eq!(t.price, Some(4990));
    assert_eq!(t.offer_type, Some(OfferType::PromotionalOffer));
    assert_eq!(t.offer_period.as_deref(), Some("P3M"));
    assert_eq!(
        t.revocation_date,
        Some(Timestamp::from_millis(1_760_000_000_000))
    );
}

#[test]
fn renewal_info_fields() {
    let r: JwsRenewalInfoDecodedPayload = round_trip("renewal_info.json");
    assert!(r.unknown_fields.is_empty(), "{:?}", r.unknown_fields.keys());
    assert_eq!(r.expiration_intent, Some(ExpirationIntent::BillingError));
    assert_eq!(r.offer_type, Some(OfferType::WinBackOffer));
    assert_eq!(
        r.eligible_win_back_offer_ids.as_ref().map(Vec::len),
        Some(2)
    );
}

#[test]
fn app_transaction_fields() {
    let a: JwsAppTransactionDecodedPayload = round_trip("app_transaction.json");
    assert!(a.unknown_fields.is_empty(), "{:?}", a.unknown_fields.keys());
    assert_eq!(a.original_platform, Some(PurchasePlatform::VisionOs));
    assert_eq!(a.environment(), Some(&Environment::Production));
}

#[test]
fn notification_fields() {
    let n: ResponseBodyV2DecodedPayload = round_trip("notification.json");
    assert!(n.unknown_fields.is_empty(), "{:?}", n.unknown_fields.keys());
    let data = n.data.as_ref().unwrap();
    assert!(data.unknown_fields.is_empty());
    assert_eq!(data.status, Some(SubscriptionStatus::BillingGracePeriod));
    assert_eq!(
        data.consumption_request_reason,
        Some(ConsumptionRequestReason::UnintendedPurchase)
    );
    assert!(n.summary.as_ref().unwrap().unknown_fields.is_empty());
    assert!(n.app_data.as_ref().unwrap().unknown_fields.is_empty());
    let token = n.external_purchase_token.as_ref().unwrap();
    assert!(token.unknown_fields.is_empty());
    assert_eq!(token.environment(), Some(Environment::Production));
}

/// Unknown fields survive storing and reading back unchanged, numbers too: a
/// large number parsed without correct rounding changed in its last digit
/// (found by the payload_decoders fuzz target).
#[test]
fn unknown_numbers_read_back_exactly() {
    let json = br#"{"signedDate": 1760000001000, "someFutureField": 17033333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333330000000000, "ratio": 0.30000000000000004}"#;
    let decoded: ResponseBodyV2DecodedPayload = serde_json::from_slice(json).unwrap();
    let stored = serde_json::to_vec(&decoded).unwrap();
    let again: ResponseBodyV2DecodedPayload = serde_json::from_slice(&stored).unwrap();
    assert_eq!(again, decoded);
    assert_eq!(
        decoded.unknown_fields["ratio"],
        serde_json::json!(0.30000000000000004)
    );
}
