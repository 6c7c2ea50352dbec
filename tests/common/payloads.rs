//! Payloads shaped like Apple's, for signing with a test PKI.

use serde_json::{json, Value};

use super::pki::TestPki;

pub const BUNDLE_ID: &str = "com.example.app";
pub const APP_APPLE_ID: i64 = 1_234_567_890;
pub const SIGNED_DATE: i64 = 1_748_736_000_000;

pub fn transaction(environment: &str) -> Value {
    json!({
        "transactionId": "2000000000000002",
        "originalTransactionId": "2000000000000001",
        "webOrderLineItemId": "2000000000000003",
        "bundleId": BUNDLE_ID,
        "productId": "com.example.app.monthly",
        "subscriptionGroupIdentifier": "21000000",
        "purchaseDate": SIGNED_DATE - 60_000,
        "originalPurchaseDate": SIGNED_DATE - 60_000,
        "expiresDate": SIGNED_DATE + 30 * 86_400_000i64,
        "quantity": 1,
        "type": "Auto-Renewable Subscription",
        "inAppOwnershipType": "PURCHASED",
        "signedDate": SIGNED_DATE,
        "environment": environment,
        "transactionReason": "PURCHASE",
        "storefront": "USA",
        "storefrontId": "143441",
        "price": 9990,
        "currency": "USD",
        "appTransactionId": "704897469903383919",
        "appAccountToken": "7e3fb20b-4cdb-47cc-936d-99d65f608138"
    })
}

pub fn renewal_info(environment: &str) -> Value {
    json!({
        "originalTransactionId": "2000000000000001",
        "autoRenewProductId": "com.example.app.monthly",
        "productId": "com.example.app.monthly",
        "autoRenewStatus": 1,
        "signedDate": SIGNED_DATE,
        "environment": environment,
        "recentSubscriptionStartDate": SIGNED_DATE - 60_000,
        "renewalDate": SIGNED_DATE + 30 * 86_400_000i64,
        "renewalPrice": 9990,
        "currency": "USD",
        "appTransactionId": "704897469903383919"
    })
}

/// A SUBSCRIBED / INITIAL_BUY notification whose nested tokens are signed by
/// `nested_pki`, with `transaction` and `renewal` as their payloads.
pub fn subscribed_with(
    envelope_pki: &TestPki,
    nested_pki: &TestPki,
    environment: &str,
    transaction: &Value,
    renewal: &Value,
) -> String {
    let payload = json!({
        "notificationType": "SUBSCRIBED",
        "subtype": "INITIAL_BUY",
        "notificationUUID": "002e14d5-51f5-4503-b5a8-c3a1af68eb20",
        "data": {
            "appAppleId": APP_APPLE_ID,
            "bundleId": BUNDLE_ID,
            "bundleVersion": "42",
            "environment": environment,
            "signedTransactionInfo": nested_pki.sign(transaction),
            "signedRenewalInfo": nested_pki.sign(renewal),
            "status": 1
        },
        "version": "2.0",
        "signedDate": SIGNED_DATE
    });
    envelope_pki.sign(&payload)
}

pub fn subscribed(pki: &TestPki, environment: &str) -> String {
    subscribed_with(
        pki,
        pki,
        environment,
        &transaction(environment),
        &renewal_info(environment),
    )
}
