//! What the ledger tests share: Apple-shaped transactions and renewal infos,
//! a notification builder that signs and posts, and the subscription answer.

use serde_json::{json, Value};

use crate::helpers::{uuid, TestApp, BUNDLE_ID};

pub(crate) const DAY: i64 = 86_400_000;
pub(crate) const HOUR: i64 = 3_600_000;

pub(crate) fn now() -> i64 {
    appstore_ledger::clock::Clock::now(&appstore_ledger::clock::SystemClock).as_millis()
}

/// A subscription's transaction.
pub(crate) fn tx(otid: &str, tid: &str, product: &str, purchase: i64, expires: i64) -> Value {
    json!({
        "transactionId": tid, "originalTransactionId": otid, "bundleId": BUNDLE_ID,
        "productId": product, "subscriptionGroupIdentifier": "group",
        "purchaseDate": purchase, "originalPurchaseDate": purchase - 400 * DAY, "expiresDate": expires,
        "type": "Auto-Renewable Subscription", "inAppOwnershipType": "PURCHASED",
        "signedDate": purchase, "environment": "Sandbox", "price": 9990, "currency": "USD",
        "appAccountToken": format!("account-{otid}"),
    })
}

pub(crate) fn renewal(otid: &str, product: &str, auto_renew: i64, signed: i64) -> Value {
    json!({
        "originalTransactionId": otid, "autoRenewProductId": product, "productId": product,
        "autoRenewStatus": auto_renew, "signedDate": signed, "environment": "Sandbox",
    })
}

pub(crate) fn revoked(mut t: Value, date: i64, kind: &str) -> Value {
    t["revocationDate"] = json!(date);
    t["revocationReason"] = json!(1);
    t["revocationType"] = json!(kind);
    t["revocationPercentage"] = json!(100000);
    t
}

pub(crate) struct Post<'a> {
    app: &'a TestApp,
    notification_type: &'a str,
    subtype: Option<&'a str>,
    signed: i64,
    status: Option<i64>,
    transaction: Option<Value>,
    renewal: Option<Value>,
    uuid: Option<String>,
}

impl<'a> Post<'a> {
    pub(crate) fn new(app: &'a TestApp, notification_type: &'a str, signed: i64) -> Self {
        Post {
            app,
            notification_type,
            subtype: None,
            signed,
            status: None,
            transaction: None,
            renewal: None,
            uuid: None,
        }
    }
    pub(crate) fn uuid(mut self, uuid: &str) -> Self {
        self.uuid = Some(uuid.to_owned());
        self
    }
    pub(crate) fn subtype(mut self, subtype: &'a str) -> Self {
        self.subtype = Some(subtype);
        self
    }
    /// `data.status` as Apple sends it with subscription notifications
    /// (1 active, 2 expired, 3 billing retry, 4 grace period, 5 revoked).
    pub(crate) fn status(mut self, status: i64) -> Self {
        self.status = Some(status);
        self
    }
    pub(crate) fn tx(mut self, t: Value) -> Self {
        self.transaction = Some(t);
        self
    }
    pub(crate) fn renewal(mut self, r: Value) -> Self {
        self.renewal = Some(r);
        self
    }
    pub(crate) fn token(&self) -> String {
        let mut data = json!({"bundleId": BUNDLE_ID, "environment": "Sandbox", "appAppleId": crate::helpers::APP_APPLE_ID});
        if let Some(t) = &self.transaction {
            data["signedTransactionInfo"] = json!(self.app.pki.sign(t));
        }
        if let Some(r) = &self.renewal {
            data["signedRenewalInfo"] = json!(self.app.pki.sign(r));
        }
        if let Some(status) = self.status {
            data["status"] = json!(status);
        }
        let mut payload = json!({
            "notificationType": self.notification_type,
            "notificationUUID": self.uuid.clone().unwrap_or_else(uuid),
            "data": data, "version": "2.0", "signedDate": self.signed,
        });
        if let Some(subtype) = self.subtype {
            payload["subtype"] = json!(subtype);
        }
        self.app.pki.sign(&payload)
    }
    pub(crate) async fn send(self) {
        let (status, body) = self.app.post(&self.token()).await;
        assert_eq!(status, 200, "{} {body}", self.notification_type);
    }
}

/// A subscription's answer now.
pub(crate) async fn subscription(app: &TestApp, otid: &str) -> Value {
    let (status, body) = app.api(&format!("/v1/subscriptions/{otid}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// A subscription's answer at `at`.
pub(crate) async fn subscription_at(app: &TestApp, otid: &str, at: i64) -> Value {
    let (status, body) = app.api(&format!("/v1/subscriptions/{otid}?at={at}")).await;
    assert_eq!(status, 200, "{body}");
    body
}
