//! Subscriptions through the HTTP API: notifications posted as Apple would,
//! in any order, state and entitlement read back through the query API.

use serde_json::{json, Value};

use crate::helpers::TestApp;
use crate::ledger::{now, renewal, revoked, tx, Post, DAY, HOUR};
use crate::ledger::{subscription, subscription_at};

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

// The same tests on PostgreSQL, each on a fresh database there.
on_postgres! {
    a_monthly_plan_refunded_and_then_expired,
    an_annual_plan_refunded_with_no_expired_ever_arriving,
    a_refund_reversed_restores_access_and_is_recorded,
    grace_period_is_entitled_and_billing_retry_is_not,
    family_sharing_revoke_ends_access_and_is_recorded,
    an_upgrade_switches_the_product_at_once,
    out_of_order_delivery_does_not_roll_back,
}
