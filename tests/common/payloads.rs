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

/// A notification of any type for `bundle_id`, with nested tokens for
/// `transaction` and `renewal` when given.
pub struct NotificationSpec<'a> {
    pub notification_type: &'a str,
    pub subtype: Option<&'a str>,
    pub uuid: String,
    pub environment: &'a str,
    pub bundle_id: &'a str,
    pub signed_date: i64,
    pub transaction: Option<Value>,
    pub renewal: Option<Value>,
    /// `data.status`, as Apple sends it with subscription notifications.
    pub status: Option<i64>,
}

impl<'a> NotificationSpec<'a> {
    pub fn new(notification_type: &'a str, uuid: impl Into<String>) -> Self {
        NotificationSpec {
            notification_type,
            subtype: None,
            uuid: uuid.into(),
            environment: "Sandbox",
            bundle_id: BUNDLE_ID,
            signed_date: SIGNED_DATE,
            transaction: Some(transaction("Sandbox")),
            renewal: Some(renewal_info("Sandbox")),
            status: None,
        }
    }

    pub fn sign(&self, pki: &TestPki) -> String {
        let mut data = json!({
            "appAppleId": APP_APPLE_ID,
            "bundleId": self.bundle_id,
            "bundleVersion": "42",
            "environment": self.environment,
        });
        if let Some(t) = &self.transaction {
            let mut t = t.clone();
            t["bundleId"] = json!(self.bundle_id);
            t["environment"] = json!(self.environment);
            data["signedTransactionInfo"] = json!(pki.sign(&t));
        }
        if let Some(r) = &self.renewal {
            let mut r = r.clone();
            r["environment"] = json!(self.environment);
            data["signedRenewalInfo"] = json!(pki.sign(&r));
        }
        if let Some(status) = self.status {
            data["status"] = json!(status);
        }
        let mut payload = json!({
            "notificationType": self.notification_type,
            "notificationUUID": self.uuid,
            "data": data,
            "version": "2.0",
            "signedDate": self.signed_date,
        });
        if let Some(subtype) = self.subtype {
            payload["subtype"] = json!(subtype);
        }
        pki.sign(&payload)
    }
}
