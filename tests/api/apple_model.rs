//! Where Apple's model moved on, through the webhook and the query API:
//! seats added mid-period and their refunds, seat-based refunds, upgrades
//! by offer followed by a billing failure in grace. Each scenario's answers
//! are Apple's documented rules worked out by hand; `rebuild` must give the
//! same rows as the notifications folded one by one.

use serde_json::{json, Value};

use crate::helpers::TestApp;
use crate::ledger::{now, renewal, revoked, subscription, subscription_at, tx, Post, DAY, HOUR};

/// A transaction of a period that several transactions represent.
fn with_seats(mut t: Value, quantity: i64, additional: bool) -> Value {
    t["quantity"] = json!(quantity);
    if additional {
        t["additionalTransactionReason"] = json!("SEAT_ADDITION");
    }
    t
}

async fn refunds_of(app: &TestApp, otid: &str) -> Vec<Value> {
    let (status, body) = app
        .api(&format!("/v1/refunds?originalTransactionId={otid}"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["refunds"].as_array().unwrap().clone()
}

async fn entitlements(app: &TestApp, token: &str) -> Vec<Value> {
    let (status, body) = app
        .api(&format!("/v1/entitlements?appAccountToken={token}"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["entitlements"].as_array().unwrap().clone()
}

/// `rebuild` recomputes every derived row as the notifications, folded one
/// by one, left it.
pub(crate) async fn assert_rebuild_agrees(app: &TestApp) {
    let store = app.store().await;
    let incremental = store.ledger_snapshot().await.unwrap();
    let out = app.cli(&["rebuild"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(store.ledger_snapshot().await.unwrap(), incremental);
    store.close().await;
}

#[tokio::test]
async fn refunding_added_seats_leaves_the_period_and_a_seats_refund_leaves_the_transaction() {
    let app = TestApp::spawn().await;
    let (now, otid) = (now(), "team-1");
    let (start, end) = (now - 10 * DAY, now + 20 * DAY);
    let first = with_seats(tx(otid, "team-1-t1", "team", start, end), 5, false);
    Post::new(&app, "SUBSCRIBED", start)
        .status(1)
        .subtype("INITIAL_BUY")
        .tx(first.clone())
        .renewal(renewal(otid, "team", 1, start))
        .send()
        .await;
    // Three seats added on day 4: a second transaction for the same period,
    // and Apple re-signs the first with the reason too.
    let added_at = start + 4 * DAY;
    let added = with_seats(tx(otid, "team-1-t2", "team", added_at, end), 3, true);
    Post::new(&app, "DID_CHANGE_RENEWAL_PREF", added_at)
        .status(1)
        .subtype("INCREASE_QUANTITY")
        .tx(added.clone())
        .send()
        .await;
    let s = subscription(&app, otid).await;
    assert_eq!(
        (
            &s["status"],
            &s["entitled"],
            &s["seatsAt"],
            &s["expiresDateAt"]
        ),
        (&json!("ACTIVE"), &json!(true), &json!(8), &json!(end)),
        "{s}"
    );

    // The added seats refunded: Apple still says ACTIVE, and so must we.
    let refunded_at = now - 2 * DAY;
    Post::new(&app, "REFUND", refunded_at)
        .status(1)
        .tx(revoked(added, refunded_at, "REFUND_FULL"))
        .send()
        .await;
    let s = subscription(&app, otid).await;
    assert_eq!(
        (
            &s["status"],
            &s["entitled"],
            &s["seatsAt"],
            &s["revocationDate"]
        ),
        (&json!("ACTIVE"), &json!(true), &json!(5), &Value::Null),
        "{s}"
    );
    let found = entitlements(&app, "account-team-1").await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (
            &found[0]["productId"],
            &found[0]["seats"],
            &found[0]["expiresDate"]
        ),
        (&json!("team"), &json!(5), &json!(end))
    );

    // Two of the first transaction's seats refunded (REFUND / SEATS): the
    // transaction stays valid for three.
    let mut fewer = with_seats(first, 5, true);
    fewer["multiSeatInfo"] = json!({"invitationManagement": "APPLE", "revokedSeatQuantity": 2});
    fewer["signedDate"] = json!(now - HOUR);
    Post::new(&app, "REFUND", now - HOUR)
        .status(1)
        .subtype("SEATS")
        .tx(fewer)
        .send()
        .await;
    let s = subscription(&app, otid).await;
    assert_eq!(
        (&s["status"], &s["entitled"], &s["seatsAt"]),
        (&json!("ACTIVE"), &json!(true), &json!(3)),
        "{s}"
    );
    // The purchaser lowers the seats that renew: a reduction takes effect
    // at the next renewal, so the period's seats stay as they are.
    let mut fewer_renew = renewal(otid, "team", 1, now - HOUR / 2);
    fewer_renew["renewalQuantity"] = json!(2);
    Post::new(&app, "DID_CHANGE_RENEWAL_PREF", now - HOUR / 2)
        .status(1)
        .subtype("DECREASE_QUANTITY")
        .renewal(fewer_renew)
        .send()
        .await;
    let s = subscription(&app, otid).await;
    assert_eq!(
        (&s["seatsAt"], &s["renewalSeats"], &s["entitled"]),
        (&json!(3), &json!(2), &json!(true)),
        "{s}"
    );
    let refunds = refunds_of(&app, otid).await;
    let rows: Vec<(Value, Value, Value, Value)> = refunds
        .iter()
        .map(|r| {
            (
                r["transactionId"].clone(),
                r["subtype"].clone(),
                r["revokedSeatQuantity"].clone(),
                r["revocationDate"].clone(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (json!("team-1-t1"), json!("SEATS"), json!(2), Value::Null),
            (
                json!("team-1-t2"),
                Value::Null,
                Value::Null,
                json!(refunded_at)
            ),
        ]
    );
    assert_rebuild_agrees(&app).await;
}

#[tokio::test]
async fn a_period_refunded_in_every_transaction_ends_access() {
    let app = TestApp::spawn().await;
    let (now, otid) = (now(), "team-2");
    let (start, end) = (now - 10 * DAY, now + 20 * DAY);
    let first = with_seats(tx(otid, "team-2-t1", "team", start, end), 5, true);
    let added = with_seats(tx(otid, "team-2-t2", "team", start + 4 * DAY, end), 3, true);
    let refunded_at = now - 2 * DAY;
    // Delivered out of order: the refunds before the purchases.
    Post::new(&app, "REFUND", refunded_at + HOUR)
        .status(5)
        .tx(revoked(first.clone(), refunded_at, "REFUND_FULL"))
        .send()
        .await;
    Post::new(&app, "REFUND", refunded_at)
        .status(1)
        .tx(revoked(added.clone(), refunded_at, "REFUND_FULL"))
        .send()
        .await;
    Post::new(&app, "DID_CHANGE_RENEWAL_PREF", start + 4 * DAY)
        .status(1)
        .subtype("INCREASE_QUANTITY")
        .tx(added)
        .send()
        .await;
    Post::new(&app, "SUBSCRIBED", start)
        .status(1)
        .subtype("INITIAL_BUY")
        .tx(first)
        .send()
        .await;
    let s = subscription(&app, otid).await;
    assert_eq!(
        (&s["status"], &s["entitled"], &s["statusAt"]),
        (&json!("REVOKED"), &json!(false), &json!("REVOKED")),
        "{s}"
    );
    let before = subscription_at(&app, otid, refunded_at - 1).await;
    assert_eq!(
        (&before["entitled"], &before["seatsAt"]),
        (&json!(true), &json!(8)),
        "{before}"
    );
    assert!(entitlements(&app, "account-team-2").await.is_empty());
    assert_eq!(refunds_of(&app, otid).await.len(), 2);
    assert_rebuild_agrees(&app).await;
}

#[tokio::test]
async fn an_offer_upgrade_then_a_billing_failure_is_entitled_through_grace() {
    let app = TestApp::spawn().await;
    let (now, otid) = (now(), "offer-1");
    // A yearly plan bought 100 days ago; an offer upgraded it to a monthly
    // premium plan 35 days ago, whose period ended 5 days ago and failed
    // to renew; Apple's grace period runs 16 days from then.
    let yearly = tx(
        otid,
        "offer-1-t1",
        "basic.yearly",
        now - 100 * DAY,
        now + 265 * DAY,
    );
    let (upgraded_at, premium_end) = (now - 35 * DAY, now - 5 * DAY);
    let premium = tx(
        otid,
        "offer-1-t2",
        "premium.monthly",
        upgraded_at,
        premium_end,
    );
    let grace_until = premium_end + 16 * DAY;
    Post::new(&app, "SUBSCRIBED", now - 100 * DAY)
        .status(1)
        .subtype("INITIAL_BUY")
        .tx(yearly)
        .renewal(renewal(otid, "basic.yearly", 1, now - 100 * DAY))
        .send()
        .await;
    Post::new(&app, "OFFER_REDEEMED", upgraded_at)
        .status(1)
        .subtype("UPGRADE")
        .tx(premium.clone())
        .renewal(renewal(otid, "premium.monthly", 1, upgraded_at))
        .send()
        .await;
    let mut in_grace = renewal(otid, "premium.monthly", 1, premium_end);
    in_grace["gracePeriodExpiresDate"] = json!(grace_until);
    in_grace["isInBillingRetryPeriod"] = json!(true);
    in_grace["renewalDate"] = json!(premium_end);
    Post::new(&app, "DID_FAIL_TO_RENEW", premium_end)
        .status(4)
        .subtype("GRACE_PERIOD")
        .tx(premium)
        .renewal(in_grace)
        .send()
        .await;

    let s = subscription(&app, otid).await;
    assert_eq!(
        (
            &s["status"],
            &s["entitled"],
            &s["statusAt"],
            &s["productId"],
            &s["expiresDate"],
            &s["transactionId"]
        ),
        (
            &json!("BILLING_GRACE_PERIOD"),
            &json!(true),
            &json!("BILLING_GRACE_PERIOD"),
            &json!("premium.monthly"),
            &json!(premium_end),
            &json!("offer-1-t2")
        ),
        "{s}"
    );
    let found = entitlements(&app, "account-offer-1").await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["productId"], "premium.monthly");
    let after_grace = subscription_at(&app, otid, grace_until).await;
    assert_eq!(after_grace["entitled"], false, "{after_grace}");
    let before_upgrade = subscription_at(&app, otid, upgraded_at - 1).await;
    assert_eq!(before_upgrade["productIdAt"], "basic.yearly");
    assert_rebuild_agrees(&app).await;
}

/// A subscription's transaction as a family member's device gets it: Family
/// Sharing, and no appAccountToken (Apple never signs one for a member).
fn family_member(otid: &str, tid: &str) -> Value {
    let mut t = tx(otid, tid, "family.monthly", now() - HOUR, now() + 30 * DAY);
    t["inAppOwnershipType"] = json!("FAMILY_SHARED");
    t["signedDate"] = json!(now());
    t.as_object_mut().unwrap().remove("appAccountToken");
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_family_member_reported_with_an_upper_case_token_is_found_by_it() {
    let app = TestApp::spawn().await;
    let member = family_member("fam-1", "fam-1-t1");
    let upper = "5B2C1F7E-9A0D-4E3B-8C6F-112233445566";
    let lower = "5b2c1f7e-9a0d-4e3b-8c6f-112233445566";
    let (status, answer) = app
        .report(json!({"signedTransaction": app.pki.sign(&member), "appAccountToken": upper}))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (&answer["entitled"], &answer["appAccountTokenMismatch"]),
        (&json!(true), &Value::Null),
        "{answer}"
    );
    for token in [upper, lower] {
        let found = entitlements(&app, token).await;
        assert_eq!(found.len(), 1, "{token}: {found:?}");
        assert_eq!(found[0]["productId"], "family.monthly");
    }
    assert_eq!(subscription(&app, "fam-1").await["appAccountToken"], lower);
    // Apple's own notification for the member, without a token, changes
    // nothing of that.
    Post::new(&app, "SUBSCRIBED", now())
        .status(1)
        .tx(member)
        .send()
        .await;
    assert_eq!(entitlements(&app, lower).await.len(), 1);
    let findings = crate::appstore::check_and_keep(&app, now()).await;
    assert!(findings.is_empty(), "{findings:?}");
    assert_rebuild_agrees(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reported_token_must_be_a_uuid() {
    let app = TestApp::spawn().await;
    let member = family_member("fam-2", "fam-2-t1");
    for bad in ["acct-1", "", "5b2c1f7e9a0d4e3b8c6f112233445566"] {
        let (status, answer) = app
            .report(json!({"signedTransaction": app.pki.sign(&member), "appAccountToken": bad}))
            .await;
        assert_eq!(
            (status, &answer["error"]["code"]),
            (400, &json!("INVALID_APP_ACCOUNT_TOKEN")),
            "{bad:?}: {answer}"
        );
    }
    // Nothing was kept of the refused reports.
    assert_eq!(app.count("apple_evidence").await, 0);
}

#[tokio::test]
async fn a_changed_app_account_token_becomes_the_items_and_both_find_it() {
    let app = TestApp::spawn().await;
    let (now, otid) = (now(), "tok-change");
    let first_token = "0a0a0a0a-0000-4000-8000-000000000001";
    let second_token = "0b0b0b0b-0000-4000-8000-000000000002";
    let mut t1 = tx(
        otid,
        "tok-change-t1",
        "monthly",
        now - 40 * DAY,
        now - 10 * DAY,
    );
    t1["appAccountToken"] = json!(first_token);
    // Set App Account Token between the periods: the renewal carries the
    // new token.
    let mut t2 = tx(
        otid,
        "tok-change-t2",
        "monthly",
        now - 10 * DAY,
        now + 20 * DAY,
    );
    t2["appAccountToken"] = json!(second_token);
    // A refund of the first period, signed last, carries its old token.
    let refund_of_first = revoked(t1.clone(), now - HOUR, "REFUND_PRORATED");
    Post::new(&app, "REFUND", now - HOUR)
        .status(1)
        .tx(refund_of_first)
        .send()
        .await;
    Post::new(&app, "DID_RENEW", now - 10 * DAY)
        .status(1)
        .tx(t2)
        .send()
        .await;
    Post::new(&app, "SUBSCRIBED", now - 40 * DAY)
        .status(1)
        .subtype("INITIAL_BUY")
        .tx(t1)
        .send()
        .await;
    let s = subscription(&app, otid).await;
    assert_eq!(
        (&s["appAccountToken"], &s["entitled"]),
        (&json!(second_token), &json!(true)),
        "{s}"
    );
    for token in [first_token, second_token] {
        let found = entitlements(&app, token).await;
        assert_eq!(found.len(), 1, "{token}: {found:?}");
    }
    let findings = crate::appstore::check_and_keep(&app, now).await;
    assert!(findings.is_empty(), "{findings:?}");
    assert_rebuild_agrees(&app).await;
}

/// A non-renewing subscription bought at `purchase`: Apple signs no expiry.
fn non_renewing(tid: &str, product: &str, purchase: i64, account: &str) -> Value {
    json!({
        "transactionId": tid, "originalTransactionId": tid, "bundleId": crate::helpers::BUNDLE_ID,
        "productId": product, "purchaseDate": purchase, "originalPurchaseDate": purchase,
        "type": "Non-Renewing Subscription", "inAppOwnershipType": "PURCHASED",
        "signedDate": purchase, "environment": "Sandbox", "price": 19990, "currency": "USD",
        "appAccountToken": account,
    })
}

#[tokio::test]
async fn a_non_renewing_subscription_lasts_its_configured_duration() {
    let app = TestApp::spawn_with(
        crate::helpers::pki(),
        crate::helpers::TempDir::new(),
        "[[apps.products]]\nproduct_id = \"season.pass\"\nduration = \"P90D\"\n",
    )
    .await;
    let now = now();
    let account = "0c0c0c0c-0000-4000-8000-00000000000c";
    // A season pass bought 100 days ago ended 10 days ago; one bought 30
    // days ago runs 60 more; a gift month of unknown length bought three
    // years ago (and another last week) has no end the service can know.
    for (tid, product, purchase) in [
        ("nr-old", "season.pass", now - 100 * DAY),
        ("nr-new", "season.pass", now - 30 * DAY),
        ("nr-gift", "gift.month", now - 3 * 365 * DAY),
        ("nr-gift-2", "gift.month", now - 7 * DAY),
    ] {
        Post::new(&app, "ONE_TIME_CHARGE", purchase)
            .tx(non_renewing(tid, product, purchase, account))
            .send()
            .await;
    }
    let mut found: Vec<(Value, Value, Value)> = entitlements(&app, account)
        .await
        .iter()
        .map(|e| {
            (
                e["transactionId"].clone(),
                e["expiresDate"].clone(),
                e["durationConfigured"].clone(),
            )
        })
        .collect();
    found.sort_by_key(|(tid, _, _)| tid.to_string());
    assert_eq!(
        found,
        [
            (json!("nr-gift"), Value::Null, json!(false)),
            (json!("nr-gift-2"), Value::Null, json!(false)),
            (
                json!("nr-new"),
                json!(now - 30 * DAY + 90 * DAY),
                json!(true)
            ),
        ]
    );
    // Asked at a moment inside the old pass's season, it was entitled.
    let (_, then) = app
        .api(&format!(
            "/v1/entitlements?transactionId=nr-old&at={}",
            now - 50 * DAY
        ))
        .await;
    assert_eq!(
        then["entitlements"][0]["expiresDate"],
        now - 100 * DAY + 90 * DAY,
        "{then}"
    );
    let findings = crate::appstore::check_and_keep(&app, now).await;
    assert_eq!(findings, ["NON_RENEWING_DURATION_UNKNOWN gift.month"]);
}

#[tokio::test]
async fn a_duration_that_does_not_read_is_a_start_up_error() {
    let dir = crate::helpers::TempDir::new();
    let text = crate::helpers::config(
        &dir,
        &crate::helpers::pki(),
        "",
        "[[apps.products]]\nproduct_id = \"season.pass\"\nduration = \"90 days\"\n",
    );
    let path = dir.path("bad.toml");
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_appstore-ledger"))
        .args(["check", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("apps[0].products[0].duration") && stderr.contains("ISO 8601"),
        "{stderr}"
    );
}

/// A payload as Apple signs it, with `container` in place of `data`.
fn signed_with(app: &TestApp, kind: &str, container: (&str, Value)) -> (String, String) {
    let uuid = crate::helpers::uuid();
    let mut payload = json!({
        "notificationType": kind, "notificationUUID": uuid,
        "version": "2.0", "signedDate": now(),
    });
    payload[container.0] = container.1;
    (uuid, app.pki.sign(&payload))
}

#[tokio::test]
async fn unclaim_seats_is_stored_and_folded_from_its_container() {
    let app = TestApp::spawn().await;
    let (now, otid) = (now(), "group-1");
    Post::new(&app, "SUBSCRIBED", now - 5 * DAY)
        .status(1)
        .subtype("INITIAL_BUY")
        .tx(with_seats(
            tx(otid, "group-1-t1", "team", now - 5 * DAY, now + 25 * DAY),
            10,
            false,
        ))
        .send()
        .await;
    let claims = [
        "8E5B1F4A-1D2C-4B3A-9F8E-7D6C5B4A3F21",
        "0c9d8e7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f",
    ];
    let (_, token) = signed_with(
        &app,
        "UNCLAIM_SEATS",
        (
            "unclaimInfo",
            json!({
                "bundleId": crate::helpers::BUNDLE_ID, "environment": "Sandbox",
                "appAppleId": crate::helpers::APP_APPLE_ID,
                "originalTransactionId": otid, "unclaimSeatIds": claims,
            }),
        ),
    );
    let (status, body) = app.post(&token).await;
    assert_eq!(status, 200, "stored, not quarantined: {body}");
    assert_eq!(app.count("quarantined_notifications").await, 0);
    let s = subscription(&app, otid).await;
    assert_eq!(
        (&s["unclaimedSeatClaimIds"], &s["entitled"], &s["seatsAt"]),
        (
            &json!([
                "0c9d8e7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f",
                "8e5b1f4a-1d2c-4b3a-9f8e-7d6c5b4a3f21"
            ]),
            &json!(true),
            &json!(10)
        ),
        "{s}"
    );
    let (_, history) = app.api(&format!("/v1/subscriptions/{otid}/history")).await;
    let types: Vec<&str> = history["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["notificationType"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["SUBSCRIBED", "UNCLAIM_SEATS"]);
    assert!(crate::appstore::check_and_keep(&app, now).await.is_empty());
    assert_rebuild_agrees(&app).await;
}

#[tokio::test]
async fn a_notification_of_a_new_shape_for_a_configured_app_is_stored_and_found() {
    let app = TestApp::spawn().await;
    let (uuid, token) = signed_with(
        &app,
        "SEAT_REASSIGNED",
        (
            "seatInfo",
            json!({"bundleId": crate::helpers::BUNDLE_ID, "environment": "Sandbox", "seats": 3}),
        ),
    );
    let (status, body) = app.post(&token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.count("notifications").await, 1);
    let findings = crate::appstore::check_and_keep(&app, now()).await;
    assert_eq!(findings, [format!("UNKNOWN_NOTIFICATION_SHAPE {uuid}")]);
    let (_, open) = app.api("/v1/inconsistencies?open=true").await;
    let detail = open["inconsistencies"][0]["detail"]
        .as_str()
        .unwrap_or_default();
    assert!(
        detail.contains("notificationType SEAT_REASSIGNED")
            && detail.contains("container seatInfo"),
        "{open}"
    );

    // A new shape for an app this service is not configured for is still
    // kept aside, as before.
    let (_, other) = signed_with(
        &app,
        "SEAT_REASSIGNED",
        (
            "seatInfo",
            json!({"bundleId": "com.example.other", "environment": "Sandbox"}),
        ),
    );
    let (status, _) = app.post(&other).await;
    assert_eq!(status, 202);
    assert_eq!(app.count("quarantined_notifications").await, 1);
}

/// A notification of `kind` with `data` as given (besides the app's
/// identity) and nested tokens signed by the app's PKI.
async fn post_data(app: &TestApp, kind: &str, signed: i64, uuid: &str, mut data: Value) {
    data["bundleId"] = json!(crate::common::payloads::BUNDLE_ID);
    data["environment"] = json!("Sandbox");
    data["appAppleId"] = json!(crate::helpers::APP_APPLE_ID);
    for field in ["signedTransactionInfo", "signedRenewalInfo"] {
        if let Some(content) = data.get(field).cloned() {
            data[field] = json!(app.pki.sign(&content));
        }
    }
    let payload = json!({
        "notificationType": kind, "notificationUUID": uuid,
        "data": data, "version": "2.0", "signedDate": signed,
    });
    let (status, body) = app.post(&app.pki.sign(&payload)).await;
    assert_eq!(status, 200, "{body}");
}

/// The customer's download of the app, as every purchase of theirs carries it.
const APP_TRANSACTION_ID: &str = "704289572311810183";

fn offered(otid: &str, start: i64, end: i64) -> Value {
    let mut t = tx(otid, &format!("{otid}-t1"), "monthly", start, end);
    t["appTransactionId"] = json!(APP_TRANSACTION_ID);
    t["offerType"] = json!(1);
    t["offerIdentifier"] = json!("intro-month");
    t["offerPeriod"] = json!("P1M");
    t["offerDiscountType"] = json!("FREE_TRIAL");
    t["advancedCommerceInfo"] = json!({
        "requestReferenceId": "ref-1", "taxCode": "C003-00-1",
        "items": [{"SKU": "monthly-pro", "displayName": "Pro", "price": 0}]
    });
    t
}

#[tokio::test]
async fn what_apple_signs_is_kept_and_shown_where_it_matters() {
    let app = TestApp::spawn().await;
    let (now, otid) = (now(), "offer-1");
    let (start, end) = (now - 3 * DAY, now + 27 * DAY);
    let t1 = offered(otid, start, end);
    post_data(
        &app,
        "SUBSCRIBED",
        start,
        "5e1f0c1e-0000-4000-8000-000000000001",
        json!({"signedTransactionInfo": t1.clone(), "status": 1}),
    )
    .await;
    post_data(
        &app,
        "CONSUMPTION_REQUEST",
        now - HOUR,
        "5e1f0c1e-0000-4000-8000-000000000002",
        json!({"signedTransactionInfo": t1, "status": 1, "consumptionRequestReason": "UNINTENDED_PURCHASE"}),
    )
    .await;

    let answer = subscription(&app, otid).await;
    assert_eq!(
        answer["offerAt"],
        json!({"offerType": 1, "offerIdentifier": "intro-month", "offerPeriod": "P1M", "offerDiscountType": "FREE_TRIAL"}),
        "{answer}"
    );
    assert_eq!(answer["appTransactionId"], APP_TRANSACTION_ID);
    assert_eq!(answer["consumptionRequestReason"], "UNINTENDED_PURCHASE");
    assert_eq!(answer["refundRequestedDate"], now - HOUR);
    assert_eq!(
        answer["advancedCommerceInfo"]["requestReferenceId"],
        "ref-1"
    );
    assert_eq!(
        (
            answer["consent"].clone(),
            answer["consentRescindedDate"].clone()
        ),
        (Value::Null, Value::Null)
    );

    // The customer's items, by their download of the app.
    let (status, body) = app
        .api(&format!(
            "/v1/entitlements?appTransactionId={APP_TRANSACTION_ID}"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let found = body["entitlements"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{body}");
    assert_eq!(found[0]["originalTransactionId"], otid);
    assert_eq!(found[0]["offer"]["offerIdentifier"], "intro-month");
    assert_eq!(found[0]["appTransactionId"], APP_TRANSACTION_ID);
    let (_, none) = app.api("/v1/entitlements?appTransactionId=0").await;
    assert_eq!(none["entitlements"], json!([]), "{none}");

    // The history shows every field Apple signed, and the request's reason.
    let (_, history) = app.api(&format!("/v1/subscriptions/{otid}/history")).await;
    let notifications = history["notifications"].as_array().unwrap();
    assert_eq!(
        notifications[0]["transaction"]["offerPeriod"], "P1M",
        "{history}"
    );
    assert_eq!(
        notifications[0]["transaction"]["offerDiscountType"],
        "FREE_TRIAL"
    );
    assert_eq!(
        notifications[0]["transaction"]["appTransactionId"],
        APP_TRANSACTION_ID
    );
    assert_eq!(notifications[0]["status"], 1);
    assert_eq!(
        notifications[1]["consumptionRequestReason"],
        "UNINTENDED_PURCHASE"
    );
    assert_eq!(history["appTransactionId"], APP_TRANSACTION_ID);
    assert_rebuild_agrees(&app).await;
}

#[tokio::test]
async fn a_rescinded_consent_is_given_with_every_answer_about_the_customer() {
    let app = TestApp::spawn().await;
    let (now, otid) = (now(), "consent-1");
    let (start, end) = (now - 3 * DAY, now + 27 * DAY);
    post_data(
        &app,
        "SUBSCRIBED",
        start,
        "5e1f0c1e-0000-4000-8000-000000000011",
        json!({"signedTransactionInfo": offered(otid, start, end), "status": 1}),
    )
    .await;
    // A parent withdraws consent: appData names the customer's download.
    let rescinded = now - 2 * HOUR;
    let app_transaction = json!({
        "appTransactionId": APP_TRANSACTION_ID, "bundleId": crate::common::payloads::BUNDLE_ID,
        "receiptType": "Sandbox", "appAppleId": crate::helpers::APP_APPLE_ID,
        "originalPurchaseDate": start - 100 * DAY, "signedDate": rescinded,
    });
    let payload = json!({
        "notificationType": "RESCIND_CONSENT",
        "notificationUUID": "5e1f0c1e-0000-4000-8000-000000000012",
        "appData": {
            "appAppleId": crate::helpers::APP_APPLE_ID, "bundleId": crate::common::payloads::BUNDLE_ID,
            "environment": "Sandbox", "signedAppTransactionInfo": app.pki.sign(&app_transaction),
        },
        "version": "2.0", "signedDate": rescinded,
    });
    let (status, body) = app.post(&app.pki.sign(&payload)).await;
    assert_eq!(status, 200, "{body}");
    // Consumers are told, about each item of the customer.
    let events = crate::events::when_shown(&app, 2, 10).await;
    let told: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e["type"].as_str().unwrap(), e["cause"].as_str().unwrap()))
        .collect();
    assert_eq!(
        told,
        [
            (
                "ENTITLEMENT_GRANTED",
                "5e1f0c1e-0000-4000-8000-000000000011"
            ),
            ("CONSENT_RESCINDED", "5e1f0c1e-0000-4000-8000-000000000012"),
        ]
    );
    assert_eq!(events[1]["answer"]["consentRescindedDate"], rescinded);
    assert_eq!(events[1]["answer"]["entitled"], true);

    let answer = subscription(&app, otid).await;
    assert_eq!(
        (
            answer["consent"].clone(),
            answer["consentRescindedDate"].clone()
        ),
        (json!("RESCINDED"), json!(rescinded)),
        "{answer}"
    );
    // Entitlement is Apple's to end; the consent is said beside it.
    assert_eq!(answer["entitled"], true);
    for query in [
        format!("appTransactionId={APP_TRANSACTION_ID}"),
        format!("appAccountToken=account-{otid}"),
        format!("originalTransactionId={otid}"),
    ] {
        let (status, body) = app.api(&format!("/v1/entitlements?{query}")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["consent"], "RESCINDED", "{query}: {body}");
        assert_eq!(body["consentRescindedDate"], rescinded, "{query}: {body}");
        assert_eq!(
            body["entitlements"][0]["consent"], "RESCINDED",
            "{query}: {body}"
        );
    }
    let (_, history) = app.api(&format!("/v1/subscriptions/{otid}/history")).await;
    assert_eq!(history["consent"], "RESCINDED", "{history}");
    // Another customer's answers say nothing of it.
    let (_, other) = app.api("/v1/entitlements?appTransactionId=1").await;
    assert_eq!(other["consent"], Value::Null, "{other}");

    // The console's customer page says it on top.
    crate::console::add_user(&app, "ada", "support");
    let client = crate::console::browser(reqwest::Client::builder());
    let cookie = crate::console::sign_in(&app, &client, "ada").await;
    let page = crate::console::get(
        &app,
        &client,
        &format!("/console/customer?originalTransactionId={otid}"),
        &cookie,
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("id=\"consent\""), "{}", page.body);
    assert!(page.body.contains("Consent RESCINDED on "), "{}", page.body);
    assert!(page.body.contains(APP_TRANSACTION_ID), "{}", page.body);
    // Found by the customer's download of the app too.
    let found = crate::console::get(
        &app,
        &client,
        &format!("/console/search?q={APP_TRANSACTION_ID}"),
        &cookie,
    )
    .await;
    assert_eq!(found.status, 303, "{}", found.body);
    assert_rebuild_agrees(&app).await;
    // Kept through rebuild: a state of the customer, not derived.
    assert_eq!(subscription(&app, otid).await["consent"], "RESCINDED");

    // What is told later of the customer's items still says it (on
    // PostgreSQL read with each notification's insert): the item's auto
    // renewal turned off, and a purchase that starts another item.
    post_data(
        &app,
        "DID_CHANGE_RENEWAL_STATUS",
        now - HOUR,
        "5e1f0c1e-0000-4000-8000-000000000013",
        json!({"signedTransactionInfo": offered(otid, start, end),
               "signedRenewalInfo": renewal(otid, "monthly", 0, now - HOUR), "status": 1}),
    )
    .await;
    post_data(
        &app,
        "SUBSCRIBED",
        now - HOUR,
        "5e1f0c1e-0000-4000-8000-000000000014",
        json!({"signedTransactionInfo": offered("consent-2", now - HOUR, now + 29 * DAY),
               "status": 1}),
    )
    .await;
    let events = crate::events::when_shown(&app, 5, 10).await;
    let later: Vec<(&str, &str, &Value)> = events
        .iter()
        .skip(2)
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["cause"].as_str().unwrap(),
                &e["answer"]["consentRescindedDate"],
            )
        })
        .collect();
    assert_eq!(
        later,
        [
            (
                "AUTO_RENEW_CHANGED",
                "5e1f0c1e-0000-4000-8000-000000000013",
                &json!(rescinded)
            ),
            (
                "ENTITLEMENT_GRANTED",
                "5e1f0c1e-0000-4000-8000-000000000014",
                &json!(rescinded)
            ),
            // The new item's consumers learn of the withdrawn consent too.
            (
                "CONSENT_RESCINDED",
                "5e1f0c1e-0000-4000-8000-000000000014",
                &json!(rescinded)
            ),
        ]
    );
}

/// A group purchase with Apple-hosted invitations: the purchaser's
/// transaction counts the seats; each member has a transaction of their
/// own (ASSIGNED) that says what Apple says of their seat, and entitles
/// them until Apple revokes it.
#[tokio::test]
async fn a_group_member_is_entitled_by_their_own_seat_until_apple_revokes_it() {
    let app = TestApp::spawn().await;
    let (now, start) = (now(), now() - 2 * DAY);
    let end = start + 30 * DAY;
    let mut purchaser = with_seats(tx("group-1", "group-1-t1", "team", start, end), 5, false);
    purchaser["multiSeatInfo"] = json!({"invitationManagement": "APPLE"});
    Post::new(&app, "SUBSCRIBED", start)
        .status(1)
        .subtype("INITIAL_BUY")
        .tx(purchaser)
        .send()
        .await;
    // The member accepted the invitation a day later: their own
    // subscription, their own seat.
    let member_token = "9a9a9a9a-0000-4000-8000-00000000009a";
    let joined = start + DAY;
    let mut seat = with_seats(tx("member-1", "member-1-t1", "team", joined, end), 1, false);
    seat["inAppOwnershipType"] = json!("ASSIGNED");
    // Whatever token the member's transaction carries is not the member's
    // account: the purchaser chose it, or nobody did.
    seat["appAccountToken"] = json!("7b7b7b7b-0000-4000-8000-00000000007b");
    Post::new(&app, "SUBSCRIBED", joined)
        .status(1)
        .subtype("INITIAL_BUY")
        .tx(seat.clone())
        .send()
        .await;
    // The app reports the member's purchase with the member's account, in
    // upper case as Swift writes a UUID.
    let reported = app
        .report(json!({
            "signedTransaction": app.pki.sign(&seat),
            "appAccountToken": member_token.to_uppercase(),
        }))
        .await;
    assert_eq!(reported.0, 200, "{}", reported.1);

    let purchase = subscription(&app, "group-1").await;
    assert_eq!(
        (
            purchase["seatsAt"].clone(),
            purchase["invitationManagement"].clone(),
            purchase["inAppOwnershipType"].clone()
        ),
        (json!(5), json!("APPLE"), json!("PURCHASED")),
        "{purchase}"
    );
    let member = subscription(&app, "member-1").await;
    assert_eq!(
        (
            member["entitled"].clone(),
            member["inAppOwnershipType"].clone(),
            member["seatsAt"].clone()
        ),
        (json!(true), json!("ASSIGNED"), json!(1)),
        "{member}"
    );
    let found = entitlements(&app, member_token).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["originalTransactionId"], "member-1");
    assert_eq!(found[0]["inAppOwnershipType"], "ASSIGNED");

    // The purchaser removes the member: Apple revokes the member's seat.
    let removed = now - HOUR;
    Post::new(&app, "REVOKE", removed)
        .status(5)
        .tx(revoked(seat, removed, "REFUND_FULL"))
        .send()
        .await;
    assert_eq!(subscription(&app, "member-1").await["entitled"], false);
    assert!(entitlements(&app, member_token).await.is_empty());
    assert_eq!(subscription(&app, "group-1").await["entitled"], true);
    let out = app.cli(&["check", "--json"]);
    assert!(
        !out.stdout.contains("APP_ACCOUNT_TOKEN_MISMATCH"),
        "{}",
        out.stdout
    );
    assert_rebuild_agrees(&app).await;
}

// The same tests on PostgreSQL, each on a fresh database there.
on_postgres! {
    refunding_added_seats_leaves_the_period_and_a_seats_refund_leaves_the_transaction,
    a_period_refunded_in_every_transaction_ends_access,
    an_offer_upgrade_then_a_billing_failure_is_entitled_through_grace,
    a_family_member_reported_with_an_upper_case_token_is_found_by_it,
    a_reported_token_must_be_a_uuid,
    a_changed_app_account_token_becomes_the_items_and_both_find_it,
    a_non_renewing_subscription_lasts_its_configured_duration,
    a_duration_that_does_not_read_is_a_start_up_error,
    unclaim_seats_is_stored_and_folded_from_its_container,
    a_notification_of_a_new_shape_for_a_configured_app_is_stored_and_found,
    what_apple_signs_is_kept_and_shown_where_it_matters,
    a_rescinded_consent_is_given_with_every_answer_about_the_customer,
    a_group_member_is_entitled_by_their_own_seat_until_apple_revokes_it,
}
