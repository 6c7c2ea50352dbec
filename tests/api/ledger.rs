//! Scenarios through the HTTP API: notifications posted as Apple would, state
//! and entitlement read back through the query API.

use serde_json::{json, Value};

use appstore_ledger::model::Timestamp;

use crate::helpers::{uuid, TestApp, BUNDLE_ID};

pub(crate) const DAY: i64 = 86_400_000;
pub(crate) const HOUR: i64 = 3_600_000;

pub(crate) fn now() -> i64 {
    Timestamp::now().as_millis()
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
        }
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
            "notificationType": self.notification_type, "notificationUUID": uuid(),
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

async fn subscription(app: &TestApp, otid: &str) -> Value {
    let (status, body) = app.api(&format!("/v1/subscriptions/{otid}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn subscription_at(app: &TestApp, otid: &str, at: i64) -> Value {
    let (status, body) = app.api(&format!("/v1/subscriptions/{otid}?at={at}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn a_monthly_plan_refunded_and_then_expired() {
    let app = TestApp::spawn().await;
    let (now, otid) = (now(), "m-1");
    let t1 = tx(otid, "m-1-t1", "monthly", now - 10 * DAY, now + 20 * DAY);
    Post::new(&app, "SUBSCRIBED", now - 10 * DAY)
        .status(1)
        .subtype("INITIAL_BUY")
        .tx(t1.clone())
        .renewal(renewal(otid, "monthly", 1, now - 10 * DAY))
        .send()
        .await;
    let s = subscription(&app, otid).await;
    assert_eq!(
        (s["status"].as_str(), s["entitled"].as_bool()),
        (Some("ACTIVE"), Some(true)),
        "{s}"
    );
    assert_eq!(s["expiresDate"], now + 20 * DAY);
    assert_eq!(s["appAccountToken"], "account-m-1");

    let refund_date = now - 2 * HOUR;
    Post::new(&app, "REFUND", now - HOUR)
        .status(5)
        .tx(revoked(t1.clone(), refund_date, "REFUND_FULL"))
        .send()
        .await;
    let s = subscription(&app, otid).await;
    assert_eq!(
        (s["status"].as_str(), s["entitled"].as_bool()),
        (Some("REVOKED"), Some(false)),
        "{s}"
    );
    assert_eq!(s["revocationDate"], refund_date);

    Post::new(&app, "EXPIRED", now - HOUR / 2)
        .status(2)
        .subtype("VOLUNTARY")
        .tx(revoked(t1, refund_date, "REFUND_FULL"))
        .renewal(renewal(otid, "monthly", 0, now - HOUR / 2))
        .send()
        .await;
    let s = subscription(&app, otid).await;
    assert_eq!(
        (s["status"].as_str(), s["entitled"].as_bool()),
        (Some("EXPIRED"), Some(false)),
        "{s}"
    );

    let (_, history) = app.api(&format!("/v1/subscriptions/{otid}/history")).await;
    let types: Vec<&str> = history["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["notificationType"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["SUBSCRIBED", "REFUND", "EXPIRED"]);
    assert_eq!(history["expirations"][0]["subtype"], "VOLUNTARY");
    assert_eq!(history["refunds"][0]["revocationDate"], refund_date);
    assert_eq!(
        history["notifications"][0]["transaction"]["transactionId"],
        "m-1-t1"
    );
    assert!(history["notifications"][0]["receivedAt"].as_i64().unwrap() > 0);
}

#[tokio::test]
async fn an_annual_plan_refunded_with_no_expired_ever_arriving() {
    let app = TestApp::spawn().await;
    let (now, otid) = (now(), "a-1");
    let t1 = tx(otid, "a-1-t1", "annual", now - 30 * DAY, now + 335 * DAY);
    Post::new(&app, "SUBSCRIBED", now - 30 * DAY)
        .status(1)
        .subtype("INITIAL_BUY")
        .tx(t1.clone())
        .renewal(renewal(otid, "annual", 1, now - 30 * DAY))
        .send()
        .await;
    let revocation = now - DAY;
    let mut r = renewal(otid, "annual", 1, now - DAY + 1000);
    r["renewalDate"] = json!(now + 335 * DAY);
    Post::new(&app, "REFUND", now - DAY + 1000)
        .status(5)
        .tx(revoked(t1, revocation, "REFUND_FULL"))
        .renewal(r)
        .send()
        .await;

    let s = subscription(&app, otid).await;
    assert_eq!(
        s["entitled"], false,
        "not entitled from revocationDate, without any EXPIRED: {s}"
    );
    assert_eq!(
        subscription_at(&app, otid, revocation - 1).await["entitled"],
        true
    );
    assert_eq!(
        subscription_at(&app, otid, revocation).await["entitled"],
        false
    );

    let (_, e) = app
        .api(&format!("/v1/entitlements?originalTransactionId={otid}"))
        .await;
    assert_eq!(e["entitlements"], json!([]));
}

#[tokio::test]
async fn a_refund_reversed_restores_access_and_is_recorded() {
    let app = TestApp::spawn().await;
    let (now, otid) = (now(), "r-1");
    let t1 = tx(otid, "r-1-t1", "monthly", now - 5 * DAY, now + 25 * DAY);
    Post::new(&app, "SUBSCRIBED", now - 5 * DAY)
        .status(1)
        .tx(t1.clone())
        .renewal(renewal(otid, "monthly", 1, now - 5 * DAY))
        .send()
        .await;
    Post::new(&app, "REFUND", now - 2 * DAY)
        .status(5)
        .tx(revoked(t1.clone(), now - 2 * DAY - 1000, "REFUND_FULL"))
        .send()
        .await;
    assert_eq!(subscription(&app, otid).await["entitled"], false);

    let mut reinstated = t1;
    reinstated["signedDate"] = json!(now - DAY);
    Post::new(&app, "REFUND_REVERSED", now - DAY)
        .status(1)
        .tx(reinstated)
        .send()
        .await;
    let s = subscription(&app, otid).await;
    assert_eq!(
        (s["status"].as_str(), s["entitled"].as_bool()),
        (Some("ACTIVE"), Some(true)),
        "{s}"
    );
    assert_eq!(s["revocationDate"], Value::Null);

    let (_, refunds) = app.api("/v1/refunds").await;
    let refund = &refunds["refunds"][0];
    assert_eq!(refund["transactionId"], "r-1-t1");
    assert_eq!(refund["reversedAt"], now - DAY);
    assert!(refund["reversedByNotificationUUID"].is_string());
}

#[tokio::test]
async fn grace_period_is_entitled_and_billing_retry_is_not() {
    let app = TestApp::spawn().await;
    let now = now();
    for (otid, subtype) in [("g-1", Some("GRACE_PERIOD")), ("b-1", None)] {
        let t1 = tx(
            otid,
            &format!("{otid}-t1"),
            "monthly",
            now - 31 * DAY,
            now - DAY,
        );
        Post::new(&app, "SUBSCRIBED", now - 31 * DAY)
            .status(1)
            .tx(t1.clone())
            .renewal(renewal(otid, "monthly", 1, now - 31 * DAY))
            .send()
            .await;
        let mut r = renewal(otid, "monthly", 1, now - DAY);
        if subtype.is_some() {
            r["gracePeriodExpiresDate"] = json!(now + 5 * DAY);
        }
        r["isInBillingRetryPeriod"] = json!(true);
        let mut post = Post::new(&app, "DID_FAIL_TO_RENEW", now - DAY)
            .tx(t1)
            .renewal(r);
        if let Some(subtype) = subtype {
            post = post.subtype(subtype).status(4);
        } else {
            post = post.status(3);
        }
        post.send().await;
    }
    let g = subscription(&app, "g-1").await;
    assert_eq!(
        (g["status"].as_str(), g["entitled"].as_bool()),
        (Some("BILLING_GRACE_PERIOD"), Some(true)),
        "{g}"
    );
    assert_eq!(g["gracePeriodExpiresDate"], now + 5 * DAY);
    assert_eq!(
        subscription_at(&app, "g-1", now + 6 * DAY).await["entitled"],
        false
    );
    let b = subscription(&app, "b-1").await;
    assert_eq!(
        (b["status"].as_str(), b["entitled"].as_bool()),
        (Some("BILLING_RETRY"), Some(false)),
        "{b}"
    );

    // The grace period ends without recovery: billing retry, no access.
    let t1 = tx("g-1", "g-1-t1", "monthly", now - 31 * DAY, now - DAY);
    Post::new(&app, "GRACE_PERIOD_EXPIRED", now - HOUR)
        .status(3)
        .tx(t1)
        .send()
        .await;
    let g = subscription(&app, "g-1").await;
    assert_eq!(
        (g["status"].as_str(), g["entitled"].as_bool()),
        (Some("BILLING_RETRY"), Some(false)),
        "{g}"
    );

    // Billing recovers.
    let t2 = tx("b-1", "b-1-t2", "monthly", now - HOUR, now + 30 * DAY);
    Post::new(&app, "DID_RENEW", now - HOUR / 2)
        .status(1)
        .subtype("BILLING_RECOVERY")
        .tx(t2)
        .send()
        .await;
    let b = subscription(&app, "b-1").await;
    assert_eq!(
        (b["status"].as_str(), b["entitled"].as_bool()),
        (Some("ACTIVE"), Some(true)),
        "{b}"
    );
}

#[tokio::test]
async fn family_sharing_revoke_ends_access_and_is_recorded() {
    let app = TestApp::spawn().await;
    let (now, otid) = (now(), "f-1");
    let mut t1 = tx(otid, "f-1-t1", "family", now - 3 * DAY, now + 27 * DAY);
    t1["inAppOwnershipType"] = json!("FAMILY_SHARED");
    Post::new(&app, "SUBSCRIBED", now - 3 * DAY)
        .status(1)
        .tx(t1.clone())
        .send()
        .await;
    Post::new(&app, "REVOKE", now - HOUR)
        .status(5)
        .tx(revoked(t1, now - HOUR, "FAMILY_REVOKE"))
        .send()
        .await;
    let s = subscription(&app, otid).await;
    assert_eq!(
        (s["status"].as_str(), s["entitled"].as_bool()),
        (Some("REVOKED"), Some(false)),
        "{s}"
    );
    let (_, refunds) = app.api("/v1/refunds").await;
    assert_eq!(refunds["refunds"][0]["notificationType"], "REVOKE");
    assert_eq!(refunds["refunds"][0]["revocationType"], "FAMILY_REVOKE");
}

#[tokio::test]
async fn an_upgrade_switches_the_product_at_once() {
    let app = TestApp::spawn().await;
    let (now, otid) = (now(), "u-1");
    let basic = tx(
        otid,
        "u-1-t1",
        "basic.annual",
        now - 10 * DAY,
        now + 355 * DAY,
    );
    Post::new(&app, "SUBSCRIBED", now - 10 * DAY)
        .status(1)
        .tx(basic)
        .renewal(renewal(otid, "basic.annual", 1, now - 10 * DAY))
        .send()
        .await;
    // Upgrade to a monthly premium plan: it expires before the annual would have.
    let premium = tx(otid, "u-1-t2", "premium.monthly", now - DAY, now + 29 * DAY);
    Post::new(&app, "DID_CHANGE_RENEWAL_PREF", now - DAY)
        .status(1)
        .subtype("UPGRADE")
        .tx(premium)
        .renewal(renewal(otid, "premium.monthly", 1, now - DAY))
        .send()
        .await;
    let mut upgraded_away = tx(
        otid,
        "u-1-t1",
        "basic.annual",
        now - 10 * DAY,
        now + 355 * DAY,
    );
    upgraded_away["isUpgraded"] = json!(true);
    upgraded_away["signedDate"] = json!(now - DAY + 1);
    Post::new(&app, "DID_RENEW", now - DAY + 1)
        .status(1)
        .tx(upgraded_away)
        .send()
        .await;
    let s = subscription(&app, otid).await;
    assert_eq!(s["productId"], "premium.monthly", "{s}");
    assert_eq!(s["autoRenewProductId"], "premium.monthly");
    assert_eq!(s["expiresDate"], now + 29 * DAY);
    assert_eq!(s["entitled"], true);
}

#[tokio::test]
async fn out_of_order_delivery_does_not_roll_back() {
    let app = TestApp::spawn().await;
    let (now, otid) = (now(), "o-1");
    let t1 = tx(otid, "o-1-t1", "monthly", now - 40 * DAY, now - 10 * DAY);
    let t2 = tx(otid, "o-1-t2", "monthly", now - 10 * DAY, now + 20 * DAY);
    let subscribed = Post::new(&app, "SUBSCRIBED", now - 40 * DAY)
        .status(1)
        .tx(t1.clone())
        .token();
    let expired = Post::new(&app, "EXPIRED", now - 10 * DAY - 1000)
        .status(2)
        .subtype("BILLING_RETRY")
        .tx(t1)
        .token();
    let resubscribed = Post::new(&app, "SUBSCRIBED", now - 10 * DAY)
        .status(1)
        .subtype("RESUBSCRIBE")
        .tx(t2)
        .token();
    // Apple delivers the newest first and the older EXPIRED last.
    for token in [&resubscribed, &subscribed, &expired] {
        assert_eq!(app.post(token).await.0, 200);
    }
    let s = subscription(&app, otid).await;
    assert_eq!(
        (s["status"].as_str(), s["entitled"].as_bool()),
        (Some("ACTIVE"), Some(true)),
        "{s}"
    );
    assert_eq!(s["transactionId"], "o-1-t2");
    let (_, history) = app.api(&format!("/v1/subscriptions/{otid}/history")).await;
    let types: Vec<&str> = history["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["notificationType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["SUBSCRIBED", "EXPIRED", "SUBSCRIBED"],
        "history is in signedDate order"
    );
}

#[tokio::test]
async fn a_one_time_purchase_and_its_refund() {
    let app = TestApp::spawn().await;
    let now = now();
    let purchase = json!({
        "transactionId": "p-1", "originalTransactionId": "p-1", "bundleId": BUNDLE_ID,
        "productId": "lifetime", "purchaseDate": now - DAY, "originalPurchaseDate": now - DAY,
        "type": "Non-Consumable", "inAppOwnershipType": "PURCHASED", "signedDate": now - DAY,
        "environment": "Sandbox", "price": 49990, "currency": "EUR", "appAccountToken": "account-p",
    });
    Post::new(&app, "ONE_TIME_CHARGE", now - DAY)
        .tx(purchase.clone())
        .send()
        .await;
    let (_, e) = app.api("/v1/entitlements?transactionId=p-1").await;
    assert_eq!(e["entitlements"][0]["productId"], "lifetime", "{e}");
    assert_eq!(e["entitlements"][0]["type"], "purchase");
    let (_, e) = app.api("/v1/entitlements?appAccountToken=account-p").await;
    assert_eq!(e["entitlements"].as_array().unwrap().len(), 1);

    let consumable = json!({
        "transactionId": "c-1", "originalTransactionId": "c-1", "bundleId": BUNDLE_ID, "productId": "coins",
        "purchaseDate": now - DAY, "type": "Consumable", "signedDate": now - DAY, "environment": "Sandbox",
        "appAccountToken": "account-p",
    });
    Post::new(&app, "ONE_TIME_CHARGE", now - DAY)
        .tx(consumable.clone())
        .send()
        .await;
    let (_, e) = app.api("/v1/entitlements?appAccountToken=account-p").await;
    assert_eq!(
        e["entitlements"].as_array().unwrap().len(),
        1,
        "a consumable is not an entitlement: {e}"
    );

    Post::new(&app, "CONSUMPTION_REQUEST", now - HOUR)
        .tx(purchase.clone())
        .send()
        .await;
    Post::new(&app, "REFUND", now - HOUR / 2)
        .tx(revoked(purchase, now - HOUR / 2, "REFUND_FULL"))
        .send()
        .await;
    let (_, e) = app.api("/v1/entitlements?transactionId=p-1").await;
    assert_eq!(e["entitlements"], json!([]), "{e}");
    Post::new(&app, "REFUND", now - HOUR / 4)
        .tx(revoked(consumable, now - HOUR / 4, "REFUND_PRORATED"))
        .send()
        .await;
    let (_, refunds) = app.api(&format!("/v1/refunds?bundleId={BUNDLE_ID}")).await;
    let refunds = refunds["refunds"].as_array().unwrap();
    assert_eq!(refunds.len(), 2);
    assert_eq!(refunds[0]["productId"], "coins", "newest first");
    assert_eq!(refunds[1]["price"], 49990);
    assert_eq!(refunds[1]["currency"], "EUR");
}

#[tokio::test]
async fn every_other_type_has_its_effect() {
    let app = TestApp::spawn().await;
    let (now, otid) = (now(), "e-1");
    let t1 = tx(otid, "e-1-t1", "monthly", now - 10 * DAY, now + 20 * DAY);
    Post::new(&app, "SUBSCRIBED", now - 10 * DAY)
        .tx(t1.clone())
        .renewal(renewal(otid, "monthly", 1, now - 10 * DAY))
        .send()
        .await;

    Post::new(&app, "DID_CHANGE_RENEWAL_STATUS", now - 9 * DAY)
        .subtype("AUTO_RENEW_DISABLED")
        .tx(t1.clone())
        .renewal(renewal(otid, "monthly", 0, now - 9 * DAY))
        .send()
        .await;
    assert_eq!(subscription(&app, otid).await["autoRenewStatus"], 0);
    Post::new(&app, "DID_CHANGE_RENEWAL_STATUS", now - 8 * DAY)
        .subtype("AUTO_RENEW_ENABLED")
        .tx(t1.clone())
        .renewal(renewal(otid, "monthly", 1, now - 8 * DAY))
        .send()
        .await;
    assert_eq!(subscription(&app, otid).await["autoRenewStatus"], 1);

    Post::new(&app, "DID_CHANGE_RENEWAL_PREF", now - 7 * DAY)
        .subtype("DOWNGRADE")
        .tx(t1.clone())
        .renewal(renewal(otid, "lite", 1, now - 7 * DAY))
        .send()
        .await;
    let s = subscription(&app, otid).await;
    assert_eq!(
        (s["productId"].as_str(), s["autoRenewProductId"].as_str()),
        (Some("monthly"), Some("lite"))
    );

    // PRICE_INCREASE: the renewal info it carries says whether the customer
    // consented; status and access are unchanged.
    let mut pending = renewal(otid, "lite", 1, now - 6 * DAY);
    pending["priceIncreaseStatus"] = json!(0);
    pending["renewalPrice"] = json!(12990);
    Post::new(&app, "PRICE_INCREASE", now - 6 * DAY)
        .subtype("PENDING")
        .status(1)
        .tx(t1.clone())
        .renewal(pending)
        .send()
        .await;
    let s = subscription(&app, otid).await;
    assert_eq!(
        (
            s["status"].as_str(),
            s["entitled"].as_bool(),
            s["priceIncreaseStatus"].as_i64(),
            s["renewalPrice"].as_i64()
        ),
        (Some("ACTIVE"), Some(true), Some(0), Some(12990)),
        "{s}"
    );
    let mut accepted = renewal(otid, "lite", 1, now - 6 * DAY + HOUR);
    accepted["priceIncreaseStatus"] = json!(1);
    accepted["renewalPrice"] = json!(12990);
    Post::new(&app, "PRICE_INCREASE", now - 6 * DAY + HOUR)
        .subtype("ACCEPTED")
        .status(1)
        .tx(t1.clone())
        .renewal(accepted)
        .send()
        .await;
    assert_eq!(
        subscription(&app, otid).await["priceIncreaseStatus"],
        json!(1)
    );

    // CONSUMPTION_REQUEST: a refund was asked for; REFUND_DECLINED settles it
    // without touching access, and records no refund.
    Post::new(&app, "CONSUMPTION_REQUEST", now - 6 * DAY + 2 * HOUR)
        .status(1)
        .tx(t1.clone())
        .send()
        .await;
    let s = subscription(&app, otid).await;
    assert_eq!(s["refundRequestedDate"], now - 6 * DAY + 2 * HOUR, "{s}");
    assert_eq!(s["refundDeclinedDate"], Value::Null, "{s}");
    Post::new(&app, "REFUND_DECLINED", now - 6 * DAY + 3 * HOUR)
        .status(1)
        .tx(t1.clone())
        .send()
        .await;
    let s = subscription(&app, otid).await;
    assert_eq!(
        (
            s["status"].as_str(),
            s["entitled"].as_bool(),
            &s["refundRequestedDate"],
            &s["refundDeclinedDate"],
            &s["lastSignedDate"]
        ),
        (
            Some("ACTIVE"),
            Some(true),
            &Value::Null,
            &json!(now - 6 * DAY + 3 * HOUR),
            &json!(now - 6 * DAY + 3 * HOUR)
        ),
        "{s}"
    );
    let (_, refunds) = app
        .api(&format!("/v1/refunds?originalTransactionId={otid}"))
        .await;
    assert_eq!(
        refunds["refunds"],
        json!([]),
        "a declined refund is no refund"
    );

    let mut extended = t1.clone();
    extended["expiresDate"] = json!(now + 50 * DAY);
    extended["signedDate"] = json!(now - 5 * DAY);
    Post::new(&app, "RENEWAL_EXTENDED", now - 5 * DAY)
        .tx(extended)
        .send()
        .await;
    assert_eq!(
        subscription(&app, otid).await["expiresDate"],
        now + 50 * DAY
    );

    // TEST concerns no subscription.
    Post::new(&app, "TEST", now).send().await;
    let (_, history) = app.api(&format!("/v1/subscriptions/{otid}/history")).await;
    let types: Vec<&str> = history["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["notificationType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "SUBSCRIBED",
            "DID_CHANGE_RENEWAL_STATUS",
            "DID_CHANGE_RENEWAL_STATUS",
            "DID_CHANGE_RENEWAL_PREF",
            "PRICE_INCREASE",
            "PRICE_INCREASE",
            "CONSUMPTION_REQUEST",
            "REFUND_DECLINED",
            "RENEWAL_EXTENDED"
        ]
    );
    assert_eq!(app.count("notifications").await, 10);
}

/// Apple's `data.status` decides over what the type implies: a
/// DID_CHANGE_RENEWAL_STATUS after the period lapsed changes no status by its
/// type, but Apple says EXPIRED; a DID_RENEW that says billing grace period is
/// one.
#[tokio::test]
async fn apples_data_status_decides_over_the_type() {
    let app = TestApp::spawn().await;
    let (now, otid) = (now(), "status-1");
    let t1 = tx(
        otid,
        "status-1-t1",
        "monthly",
        now - 40 * DAY,
        now - 10 * DAY,
    );
    Post::new(&app, "SUBSCRIBED", now - 40 * DAY)
        .status(1)
        .tx(t1.clone())
        .renewal(renewal(otid, "monthly", 0, now - 40 * DAY))
        .send()
        .await;
    Post::new(&app, "DID_CHANGE_RENEWAL_STATUS", now - DAY)
        .subtype("AUTO_RENEW_ENABLED")
        .status(2)
        .tx(t1)
        .renewal(renewal(otid, "monthly", 1, now - DAY))
        .send()
        .await;
    let s = subscription(&app, otid).await;
    assert_eq!(
        (
            s["status"].as_str(),
            s["entitled"].as_bool(),
            s["autoRenewStatus"].as_i64()
        ),
        (Some("EXPIRED"), Some(false), Some(1)),
        "{s}"
    );

    let t2 = tx(otid, "status-1-t2", "monthly", now - HOUR, now + 30 * DAY);
    let mut grace = renewal(otid, "monthly", 1, now - HOUR / 2);
    grace["gracePeriodExpiresDate"] = json!(now + 3 * DAY);
    Post::new(&app, "DID_RENEW", now - HOUR / 2)
        .status(4)
        .tx(t2)
        .renewal(grace)
        .send()
        .await;
    assert_eq!(
        subscription(&app, otid).await["status"],
        "BILLING_GRACE_PERIOD"
    );
}

/// OFFER_REDEEMED without `data.status` (older notifications): the type
/// alone brings an expired subscription back.
#[tokio::test]
async fn an_offer_redeemed_after_expiry_restores_access() {
    let app = TestApp::spawn().await;
    let (now, otid) = (now(), "offer-1");
    let t1 = tx(
        otid,
        "offer-1-t1",
        "monthly",
        now - 40 * DAY,
        now - 10 * DAY,
    );
    Post::new(&app, "SUBSCRIBED", now - 40 * DAY)
        .tx(t1.clone())
        .send()
        .await;
    Post::new(&app, "EXPIRED", now - 10 * DAY)
        .subtype("VOLUNTARY")
        .tx(t1)
        .send()
        .await;
    let s = subscription(&app, otid).await;
    assert_eq!(
        (s["status"].as_str(), s["entitled"].as_bool()),
        (Some("EXPIRED"), Some(false))
    );
    let t2 = tx(otid, "offer-1-t2", "monthly", now - DAY, now + 29 * DAY);
    Post::new(&app, "OFFER_REDEEMED", now - DAY)
        .tx(t2)
        .send()
        .await;
    let s = subscription(&app, otid).await;
    assert_eq!(
        (
            s["status"].as_str(),
            s["entitled"].as_bool(),
            s["transactionId"].as_str(),
            s["expiresDate"].as_i64()
        ),
        (
            Some("ACTIVE"),
            Some(true),
            Some("offer-1-t2"),
            Some(now + 29 * DAY)
        ),
        "{s}"
    );
}

/// RENEWAL_EXTENSION (SUMMARY) carries a `summary` object and no `data`: it is
/// filed under the app and environment the summary names, and a summary for
/// an app that is not configured is kept aside like any other notification.
#[tokio::test]
async fn a_renewal_extension_summary_is_filed_under_its_app() {
    let app = TestApp::spawn().await;
    let summary = |uuid: &str, bundle_id: &str| {
        app.pki.sign(&json!({
            "notificationType": "RENEWAL_EXTENSION", "subtype": "SUMMARY",
            "notificationUUID": uuid, "version": "2.0", "signedDate": now(),
            "summary": {
                "requestIdentifier": "ext-1", "environment": "Sandbox",
                "appAppleId": crate::helpers::APP_APPLE_ID, "bundleId": bundle_id,
                "productId": "monthly", "storefrontCountryCodes": ["USA", "CAN"],
                "succeededCount": 41, "failedCount": 1,
            },
        }))
    };
    let (status, body) = app.post(&summary("summary-1", BUNDLE_ID)).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("stored")));
    let (bundle_id, environment, payload): (String, String, String) = sqlx::query_as(
        "SELECT bundle_id, environment, payload FROM notifications WHERE notification_uuid = 'summary-1'",
    )
    .fetch_one(&mut app.db().await)
    .await
    .unwrap();
    assert_eq!(
        (bundle_id.as_str(), environment.as_str()),
        (BUNDLE_ID, "Sandbox")
    );
    let payload: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(payload["summary"]["succeededCount"], 41);
    assert_eq!(payload["summary"]["requestIdentifier"], "ext-1");

    let (status, body) = app.post(&summary("summary-2", "com.other.app")).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (202, Some("quarantined"))
    );
}

#[tokio::test]
async fn the_query_api_needs_a_token_and_answers_clear_errors() {
    let app = TestApp::spawn().await;
    for auth in [None, Some("wrong"), Some("")] {
        let mut request = app
            .client
            .get(format!("{}/v1/entitlements?transactionId=1", app.address));
        if let Some(token) = auth {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "UNAUTHORIZED");
    }
    let second = app
        .client
        .get(format!("{}/v1/entitlements?transactionId=1", app.address))
        .bearer_auth("second-token")
        .send()
        .await
        .unwrap();
    assert_eq!(
        second.status().as_u16(),
        200,
        "every configured token is accepted"
    );

    assert_eq!(app.api("/v1/subscriptions/nope").await.0, 404);
    assert_eq!(app.api("/v1/subscriptions/nope/history").await.0, 404);
    for path in [
        "/v1/subscriptions/x?at=yesterday",
        "/v1/entitlements",
        "/v1/entitlements?transactionId=1&appAccountToken=2",
        "/v1/refunds?limit=0",
        "/v1/refunds?limit=5000",
        "/v1/refunds?cursor=garbage",
        "/v1/refunds?format=xml",
        "/v1/refunds?from=soon",
    ] {
        let (status, body) = app.api(path).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("INVALID_QUERY")),
            "{path}"
        );
    }
}

#[tokio::test]
async fn the_refund_ledger_pages_filters_and_exports_csv() {
    let app = TestApp::spawn().await;
    let now = now();
    for i in 0..7i64 {
        let otid = format!("rl-{i}");
        let product = if i % 2 == 0 { "even" } else { "odd" };
        let t = tx(
            &otid,
            &format!("{otid}-t"),
            product,
            now - 20 * DAY,
            now + 10 * DAY,
        );
        Post::new(&app, "REFUND", now - DAY + i)
            .tx(revoked(t, now - 10 * DAY + i * HOUR, "REFUND_FULL"))
            .send()
            .await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/refunds?limit=3&cursor={c}"),
            None => "/v1/refunds?limit=3".to_owned(),
        };
        let (status, page) = app.api(&path).await;
        assert_eq!(status, 200);
        for r in page["refunds"].as_array().unwrap() {
            seen.push(r["revocationDate"].as_i64().unwrap());
        }
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let mut expected: Vec<i64> = (0..7).map(|i| now - 10 * DAY + i * HOUR).collect();
    expected.reverse();
    assert_eq!(seen, expected, "every refund once, newest first");

    let (_, odd) = app.api("/v1/refunds?productId=odd").await;
    assert_eq!(odd["refunds"].as_array().unwrap().len(), 3);
    let (_, window) = app
        .api(&format!(
            "/v1/refunds?from={}&to={}",
            now - 10 * DAY + HOUR,
            now - 10 * DAY + 3 * HOUR
        ))
        .await;
    assert_eq!(window["refunds"].as_array().unwrap().len(), 2);

    let csv = app
        .client
        .get(format!("{}/v1/refunds?format=csv&limit=2", app.address))
        .bearer_auth(crate::helpers::API_TOKEN)
        .send()
        .await
        .unwrap();
    assert!(csv.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert!(csv.headers().contains_key("x-next-cursor"));
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with(
        "notificationUUID,notificationType,transactionId,originalTransactionId,productId"
    ));
    assert!(
        lines[1].contains(",REFUND,rl-6-t,rl-6,even,"),
        "{}",
        lines[1]
    );
}
