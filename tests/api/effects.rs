//! The effect of each notification type: one that would be absent if the
//! ledger ignored the type.

use serde_json::{json, Value};

use crate::helpers::TestApp;
use crate::helpers::BUNDLE_ID;
use crate::ledger::subscription;
use crate::ledger::{now, renewal, tx, Post, DAY, HOUR};

/// One step of a subscription's life: a notification, and what the
/// subscription answer must then say (only the fields named).
struct Step {
    notification_type: &'static str,
    subtype: Option<&'static str>,
    status: Option<i64>,
    /// Hours after the start.
    at: i64,
    transaction: Value,
    renewal: Option<Value>,
    expect: Value,
}

/// Each type in turn, with an effect that would be absent if the ledger
/// ignored it.
#[tokio::test]
async fn every_other_type_has_its_effect() {
    let app = TestApp::spawn().await;
    let (now, otid) = (now(), "e-1");
    let start = now - 10 * DAY;
    let t1 = tx(otid, "e-1-t1", "monthly", start, now + 20 * DAY);
    let mut extended = t1.clone();
    extended["expiresDate"] = json!(now + 50 * DAY);
    let with = |mut r: Value, fields: Value| {
        if let (Some(r), Some(fields)) = (r.as_object_mut(), fields.as_object()) {
            r.extend(fields.clone());
        }
        r
    };
    let step = |notification_type, subtype, status, at: i64, renewal: Option<Value>, expect| Step {
        notification_type,
        subtype,
        status,
        at,
        transaction: t1.clone(),
        renewal,
        expect,
    };
    let renewal_at =
        |product, auto_renew, at: i64| renewal(otid, product, auto_renew, start + at * HOUR);
    let steps = [
        step(
            "SUBSCRIBED",
            Some("INITIAL_BUY"),
            Some(1),
            0,
            Some(renewal_at("monthly", 1, 0)),
            json!({"status": "ACTIVE", "entitled": true, "autoRenewStatus": 1}),
        ),
        step(
            "DID_CHANGE_RENEWAL_STATUS",
            Some("AUTO_RENEW_DISABLED"),
            Some(1),
            24,
            Some(renewal_at("monthly", 0, 24)),
            json!({"autoRenewStatus": 0}),
        ),
        step(
            "DID_CHANGE_RENEWAL_STATUS",
            Some("AUTO_RENEW_ENABLED"),
            Some(1),
            48,
            Some(renewal_at("monthly", 1, 48)),
            json!({"autoRenewStatus": 1}),
        ),
        // A downgrade changes the next product, not the current one.
        step(
            "DID_CHANGE_RENEWAL_PREF",
            Some("DOWNGRADE"),
            Some(1),
            72,
            Some(renewal_at("lite", 1, 72)),
            json!({"productId": "monthly", "autoRenewProductId": "lite"}),
        ),
        // PRICE_INCREASE: its renewal info says whether the customer consented.
        step(
            "PRICE_INCREASE",
            Some("PENDING"),
            Some(1),
            96,
            Some(with(
                renewal_at("lite", 1, 96),
                json!({"priceIncreaseStatus": 0, "renewalPrice": 12990}),
            )),
            json!({"status": "ACTIVE", "entitled": true, "priceIncreaseStatus": 0, "renewalPrice": 12990}),
        ),
        step(
            "PRICE_INCREASE",
            Some("ACCEPTED"),
            Some(1),
            97,
            Some(with(
                renewal_at("lite", 1, 97),
                json!({"priceIncreaseStatus": 1, "renewalPrice": 12990}),
            )),
            json!({"priceIncreaseStatus": 1}),
        ),
        // A refund asked for; REFUND_DECLINED settles it without touching access.
        step(
            "CONSUMPTION_REQUEST",
            None,
            Some(1),
            98,
            None,
            json!({"refundRequestedDate": start + 98 * HOUR, "refundDeclinedDate": null}),
        ),
        step(
            "REFUND_DECLINED",
            None,
            Some(1),
            99,
            None,
            json!({"status": "ACTIVE", "entitled": true, "refundRequestedDate": null,
                   "refundDeclinedDate": start + 99 * HOUR, "lastSignedDate": start + 99 * HOUR}),
        ),
        Step {
            transaction: with(extended.clone(), json!({"signedDate": start + 120 * HOUR})),
            ..step(
                "RENEWAL_EXTENDED",
                None,
                Some(1),
                120,
                None,
                json!({"expiresDate": now + 50 * DAY, "entitled": true}),
            )
        },
    ];
    for s in steps {
        let mut post = Post::new(&app, s.notification_type, start + s.at * HOUR).tx(s.transaction);
        if let Some(subtype) = s.subtype {
            post = post.subtype(subtype);
        }
        if let Some(status) = s.status {
            post = post.status(status);
        }
        if let Some(renewal) = s.renewal {
            post = post.renewal(renewal);
        }
        post.send().await;
        let answer = subscription(&app, otid).await;
        for (field, expected) in s.expect.as_object().into_iter().flatten() {
            assert_eq!(
                &answer[field], expected,
                "{} {field}: {answer}",
                s.notification_type
            );
        }
    }
    let (_, refunds) = app
        .api(&format!("/v1/refunds?originalTransactionId={otid}"))
        .await;
    assert_eq!(
        refunds["refunds"],
        json!([]),
        "a declined refund is no refund"
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
    let mut app = TestApp::spawn().await;
    // The statuses here contradict their types on purpose.
    app.apple_may_disagree = true;
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
        "SELECT bundle_id, environment, CAST(payload AS TEXT) FROM notifications
         WHERE notification_uuid = 'summary-1'",
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

// The same tests on PostgreSQL, each on a fresh database there.
on_postgres! {
    every_other_type_has_its_effect,
    apples_data_status_decides_over_the_type,
    an_offer_redeemed_after_expiry_restores_access,
    a_renewal_extension_summary_is_filed_under_its_app,
}
