//! Entitlement at a past moment, through the routes, with notifications
//! delivered out of order: each case a bug the current-state answer had.

use serde_json::{json, Value};

use appstore_ledger::clock::Clock;

use crate::helpers::TestApp;
use crate::ledger::{now, renewal, revoked, subscription_at, tx, Post, DAY};

/// A transaction signed when its notification was (Apple re-signs it each time).
fn signed(mut t: Value, at: i64) -> Value {
    t["signedDate"] = json!(at);
    t
}

async fn at(app: &TestApp, otid: &str, at: i64) -> (bool, String, String) {
    let body = subscription_at(app, otid, at).await;
    (
        body["entitled"].as_bool().unwrap(),
        body["statusAt"].as_str().unwrap_or("none").to_owned(),
        body["productIdAt"].as_str().unwrap_or("none").to_owned(),
    )
}

fn is(entitled: bool, status: &str, product: &str) -> (bool, String, String) {
    (entitled, status.to_owned(), product.to_owned())
}

#[tokio::test]
async fn the_lapse_between_expired_and_resubscribe_is_not_entitled() {
    let app = TestApp::spawn().await;
    let (t0, otid) = (now() - 100 * DAY, "tl-lapse");
    let p1 = tx(otid, "tl-lapse-1", "monthly", t0, t0 + 30 * DAY);
    let p2 = tx(otid, "tl-lapse-2", "monthly", t0 + 40 * DAY, t0 + 70 * DAY);
    // The resubscription arrives first.
    Post::new(&app, "SUBSCRIBED", t0 + 40 * DAY)
        .subtype("RESUBSCRIBE")
        .status(1)
        .tx(signed(p2, t0 + 40 * DAY))
        .renewal(renewal(otid, "monthly", 1, t0 + 40 * DAY))
        .send()
        .await;
    Post::new(&app, "EXPIRED", t0 + 30 * DAY)
        .subtype("VOLUNTARY")
        .status(2)
        .tx(signed(p1.clone(), t0 + 30 * DAY))
        .renewal(renewal(otid, "monthly", 0, t0 + 30 * DAY))
        .send()
        .await;
    Post::new(&app, "SUBSCRIBED", t0)
        .subtype("INITIAL_BUY")
        .status(1)
        .tx(p1)
        .renewal(renewal(otid, "monthly", 1, t0))
        .send()
        .await;
    assert_eq!(
        at(&app, otid, t0 + 10 * DAY).await,
        is(true, "ACTIVE", "monthly")
    );
    assert_eq!(
        at(&app, otid, t0 + 35 * DAY).await,
        is(false, "EXPIRED", "monthly")
    );
    assert_eq!(
        at(&app, otid, t0 + 45 * DAY).await,
        is(true, "ACTIVE", "monthly")
    );
    assert_eq!(at(&app, otid, t0 - DAY).await, is(false, "none", "none"));
}

#[tokio::test]
async fn billing_retry_before_a_recovery_is_not_entitled() {
    let app = TestApp::spawn().await;
    let (t0, otid) = (now() - 50 * DAY, "tl-retry");
    let p1 = tx(otid, "tl-retry-1", "monthly", t0, t0 + 30 * DAY);
    let p2 = tx(otid, "tl-retry-2", "monthly", t0 + 33 * DAY, t0 + 63 * DAY);
    Post::new(&app, "DID_RENEW", t0 + 33 * DAY)
        .subtype("BILLING_RECOVERY")
        .status(1)
        .tx(signed(p2, t0 + 33 * DAY))
        .send()
        .await;
    Post::new(&app, "DID_FAIL_TO_RENEW", t0 + 30 * DAY)
        .status(3)
        .tx(signed(p1.clone(), t0 + 30 * DAY))
        .send()
        .await;
    Post::new(&app, "SUBSCRIBED", t0)
        .status(1)
        .tx(p1)
        .send()
        .await;
    assert_eq!(
        at(&app, otid, t0 + 31 * DAY).await,
        is(false, "BILLING_RETRY", "monthly")
    );
    assert_eq!(
        at(&app, otid, t0 + 34 * DAY).await,
        is(true, "ACTIVE", "monthly")
    );
}

#[tokio::test]
async fn a_grace_period_that_later_ended_was_entitled_while_it_lasted() {
    let app = TestApp::spawn().await;
    let (t0, otid) = (now() - 60 * DAY, "tl-grace");
    let p1 = tx(otid, "tl-grace-1", "monthly", t0, t0 + 30 * DAY);
    let mut grace = renewal(otid, "monthly", 1, t0 + 30 * DAY);
    grace["gracePeriodExpiresDate"] = json!(t0 + 36 * DAY);
    Post::new(&app, "GRACE_PERIOD_EXPIRED", t0 + 36 * DAY)
        .status(3)
        .tx(signed(p1.clone(), t0 + 36 * DAY))
        .renewal(renewal(otid, "monthly", 1, t0 + 36 * DAY))
        .send()
        .await;
    Post::new(&app, "DID_FAIL_TO_RENEW", t0 + 30 * DAY)
        .subtype("GRACE_PERIOD")
        .status(4)
        .tx(signed(p1.clone(), t0 + 30 * DAY))
        .renewal(grace)
        .send()
        .await;
    Post::new(&app, "SUBSCRIBED", t0)
        .status(1)
        .tx(p1)
        .send()
        .await;
    assert_eq!(
        at(&app, otid, t0 + 32 * DAY).await,
        is(true, "BILLING_GRACE_PERIOD", "monthly")
    );
    assert_eq!(
        at(&app, otid, t0 + 37 * DAY).await,
        is(false, "BILLING_RETRY", "monthly")
    );
}

#[tokio::test]
async fn between_a_refund_and_its_reversal_access_was_revoked() {
    let app = TestApp::spawn().await;
    let (t0, otid) = (now() - 200 * DAY, "tl-reversed");
    let p1 = tx(otid, "tl-reversed-1", "annual", t0, t0 + 365 * DAY);
    Post::new(&app, "REFUND_REVERSED", t0 + 120 * DAY)
        .status(1)
        .tx(signed(p1.clone(), t0 + 120 * DAY))
        .send()
        .await;
    Post::new(&app, "REFUND", t0 + 100 * DAY)
        .status(5)
        .tx(signed(
            revoked(p1.clone(), t0 + 100 * DAY, "REFUND_FULL"),
            t0 + 100 * DAY,
        ))
        .send()
        .await;
    Post::new(&app, "SUBSCRIBED", t0)
        .status(1)
        .tx(p1)
        .send()
        .await;
    assert_eq!(
        at(&app, otid, t0 + 50 * DAY).await,
        is(true, "ACTIVE", "annual")
    );
    assert_eq!(
        at(&app, otid, t0 + 110 * DAY).await,
        is(false, "REVOKED", "annual")
    );
    assert_eq!(
        at(&app, otid, t0 + 130 * DAY).await,
        is(true, "ACTIVE", "annual")
    );
}

#[tokio::test]
async fn a_refund_reported_later_ends_access_at_its_revocation_date() {
    let app = TestApp::spawn().await;
    let (t0, otid) = (now() - 200 * DAY, "tl-late-refund");
    let p1 = tx(otid, "tl-late-refund-1", "annual", t0, t0 + 365 * DAY);
    Post::new(&app, "SUBSCRIBED", t0)
        .status(1)
        .tx(p1.clone())
        .send()
        .await;
    // Revoked on day 140, reported on day 150.
    Post::new(&app, "REFUND", t0 + 150 * DAY)
        .status(5)
        .tx(signed(
            revoked(p1, t0 + 140 * DAY, "REFUND_FULL"),
            t0 + 150 * DAY,
        ))
        .send()
        .await;
    assert_eq!(
        at(&app, otid, t0 + 139 * DAY).await,
        is(true, "ACTIVE", "annual")
    );
    assert_eq!(
        at(&app, otid, t0 + 145 * DAY).await,
        is(false, "REVOKED", "annual")
    );
}

#[tokio::test]
async fn the_product_at_t_is_the_one_whose_period_covers_t() {
    let app = TestApp::spawn().await;
    let (t0, otid) = (now() - 100 * DAY, "tl-products");
    let basic = tx(otid, "tl-products-1", "basic", t0, t0 + 30 * DAY);
    // Upgraded on day 10: premium at once.
    let premium = tx(
        otid,
        "tl-products-2",
        "premium",
        t0 + 10 * DAY,
        t0 + 40 * DAY,
    );
    // Downgraded for the next renewal: basic again from day 40.
    let later = tx(otid, "tl-products-3", "basic", t0 + 40 * DAY, t0 + 70 * DAY);
    Post::new(&app, "DID_RENEW", t0 + 40 * DAY)
        .status(1)
        .tx(signed(later, t0 + 40 * DAY))
        .send()
        .await;
    Post::new(&app, "DID_CHANGE_RENEWAL_PREF", t0 + 20 * DAY)
        .subtype("DOWNGRADE")
        .tx(signed(premium.clone(), t0 + 20 * DAY))
        .renewal(renewal(otid, "basic", 1, t0 + 20 * DAY))
        .send()
        .await;
    Post::new(&app, "DID_CHANGE_RENEWAL_PREF", t0 + 10 * DAY)
        .subtype("UPGRADE")
        .status(1)
        .tx(signed(premium, t0 + 10 * DAY))
        .send()
        .await;
    Post::new(&app, "SUBSCRIBED", t0)
        .status(1)
        .tx(basic)
        .send()
        .await;
    assert_eq!(
        at(&app, otid, t0 + 5 * DAY).await,
        is(true, "ACTIVE", "basic")
    );
    assert_eq!(
        at(&app, otid, t0 + 15 * DAY).await,
        is(true, "ACTIVE", "premium")
    );
    assert_eq!(
        at(&app, otid, t0 + 35 * DAY).await,
        is(true, "ACTIVE", "premium")
    );
    assert_eq!(
        at(&app, otid, t0 + 45 * DAY).await,
        is(true, "ACTIVE", "basic")
    );
    // The entitlements route names the product then, too.
    let (_, body) = app
        .api(&format!(
            "/v1/entitlements?originalTransactionId={otid}&at={}",
            t0 + 15 * DAY
        ))
        .await;
    assert_eq!(body["entitlements"][0]["productId"], "premium", "{body}");
    assert_eq!(
        body["entitlements"][0]["expiresDate"],
        t0 + 40 * DAY,
        "{body}"
    );
}

#[tokio::test]
async fn known_at_answers_as_the_service_would_have_then() {
    let app = TestApp::spawn_with_manual_clock("").await;
    let (t0, otid) = (now() - 40 * DAY, "tl-known");
    let p1 = tx(otid, "tl-known-1", "monthly", t0, t0 + 30 * DAY);
    let p2 = tx(otid, "tl-known-2", "monthly", t0 + 30 * DAY, t0 + 60 * DAY);
    Post::new(&app, "SUBSCRIBED", t0)
        .status(1)
        .tx(p1)
        .send()
        .await;
    // The renewal reaches us a second after `before_renewal`.
    app.clock().advance(std::time::Duration::from_secs(1));
    let before_renewal = app.clock().now().as_millis();
    app.clock().advance(std::time::Duration::from_secs(1));
    Post::new(&app, "DID_RENEW", t0 + 30 * DAY)
        .status(1)
        .tx(signed(p2, t0 + 30 * DAY))
        .send()
        .await;

    let moment = t0 + 35 * DAY;
    // Knowing everything: entitled on day 35.
    assert_eq!(at(&app, otid, moment).await, is(true, "ACTIVE", "monthly"));
    // What we answered before the renewal reached us: not entitled.
    let (status, then) = app
        .api(&format!(
            "/v1/subscriptions/{otid}?at={moment}&knownAt={before_renewal}"
        ))
        .await;
    assert_eq!(status, 200, "{then}");
    assert_eq!(
        (then["entitled"].clone(), then["knownAt"].clone()),
        (json!(false), json!(before_renewal))
    );
    let (_, listed) = app
        .api(&format!(
            "/v1/entitlements?originalTransactionId={otid}&at={moment}&knownAt={before_renewal}"
        ))
        .await;
    assert_eq!(listed["entitlements"], json!([]), "{listed}");
    // Before anything about it arrived: unknown.
    let (status, _) = app
        .api(&format!("/v1/subscriptions/{otid}?knownAt={}", t0))
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        app.api(&format!("/v1/subscriptions/{otid}?knownAt=soon"))
            .await
            .0,
        400
    );
}

#[tokio::test]
async fn a_status_apple_signs_that_the_ledger_disagrees_with_is_kept_and_raised() {
    let mut app = TestApp::spawn().await;
    app.apple_may_disagree = true;
    let (t0, otid) = (now() - 5 * DAY, "tl-contradiction");
    let p1 = tx(otid, "tl-contradiction-1", "monthly", t0, t0 + 30 * DAY);
    Post::new(&app, "SUBSCRIBED", t0 - 30 * DAY)
        .status(1)
        .tx(tx(otid, "tl-contradiction-0", "monthly", t0 - 30 * DAY, t0))
        .send()
        .await;
    // A renewal of a paid period, with data.status 3 (billing retry).
    Post::new(&app, "DID_RENEW", t0)
        .status(3)
        .tx(signed(p1, t0))
        .send()
        .await;
    let body = subscription_at(&app, otid, now()).await;
    assert_eq!(
        body["status"], "BILLING_RETRY",
        "Apple's status is kept: {body}"
    );
    let out = app.cli(&["check", "--json"]);
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    let finding = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|f| f["kind"] == "APPLE_STATUS_DISAGREES")
        .expect("an APPLE_STATUS_DISAGREES finding");
    assert_eq!(finding["subject"], otid);
    let detail = finding["detail"].as_str().unwrap();
    // Both answers, and the notifications involved.
    assert!(
        detail.starts_with("Apple's status was kept (entitlement follows it): DID_RENEW "),
        "{finding}"
    );
    assert!(
        detail.contains(&format!(
            " signed {t0}: Apple's status BILLING_RETRY, the ledger's ACTIVE (since DID_RENEW "
        )),
        "{finding}"
    );
}

/// knownAt=K is a replay of what had been received by K: the same answers,
/// at every moment, as a service that received only that.
#[tokio::test]
async fn known_at_equals_a_replay_of_what_had_been_received() {
    let t0 = now() - 200 * DAY;
    let otid = "tl-replay";
    let period = |n: i64, from: i64| {
        let purchase = t0 + from * DAY;
        signed(
            tx(
                otid,
                &format!("tl-replay-{n}"),
                if n == 2 { "premium" } else { "monthly" },
                purchase,
                purchase + 30 * DAY,
            ),
            purchase,
        )
    };
    // (type, subtype, signed day, status, transaction)
    let history: Vec<(&str, Option<&str>, i64, i64, Value)> = vec![
        ("SUBSCRIBED", Some("INITIAL_BUY"), 0, 1, period(1, 0)),
        (
            "DID_CHANGE_RENEWAL_PREF",
            Some("UPGRADE"),
            10,
            1,
            period(2, 10),
        ),
        (
            "DID_FAIL_TO_RENEW",
            None,
            40,
            3,
            signed(period(2, 10), t0 + 40 * DAY),
        ),
        ("DID_RENEW", Some("BILLING_RECOVERY"), 45, 1, period(3, 45)),
        (
            "REFUND",
            None,
            55,
            5,
            signed(
                revoked(period(3, 45), t0 + 55 * DAY, "REFUND_FULL"),
                t0 + 55 * DAY,
            ),
        ),
        (
            "REFUND_REVERSED",
            None,
            60,
            1,
            signed(period(3, 45), t0 + 60 * DAY),
        ),
        (
            "EXPIRED",
            Some("VOLUNTARY"),
            75,
            2,
            signed(period(3, 45), t0 + 75 * DAY),
        ),
        ("SUBSCRIBED", Some("RESUBSCRIBE"), 90, 1, period(4, 90)),
    ];
    for seed in 1..=3u64 {
        let all = TestApp::spawn_with_manual_clock("").await;
        let replay = TestApp::spawn_with(all.pki.clone(), crate::helpers::TempDir::new(), "").await;
        let mut order: Vec<usize> = (0..history.len()).collect();
        let mut state = seed;
        for i in (1..order.len()).rev() {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            order.swap(i, (state >> 33) as usize % (i + 1));
        }
        let split = 1 + (seed as usize * 2) % (history.len() - 1);
        let tokens: Vec<String> = order
            .iter()
            .map(|&i| {
                let (kind, subtype, day, status, t) = &history[i];
                let mut post = Post::new(&all, kind, t0 + day * DAY)
                    .status(*status)
                    .tx(t.clone());
                if let Some(subtype) = subtype {
                    post = post.subtype(subtype);
                }
                post.token()
            })
            .collect();
        for token in &tokens[..split] {
            assert_eq!(all.post(token).await.0, 200);
            assert_eq!(replay.post(token).await.0, 200);
        }
        all.clock().advance(std::time::Duration::from_secs(1));
        let known_at = all.clock().now().as_millis();
        all.clock().advance(std::time::Duration::from_secs(1));
        for token in &tokens[split..] {
            assert_eq!(all.post(token).await.0, 200);
        }
        for day in (-2..130).step_by(3) {
            let at = t0 + day * DAY + DAY / 3;
            let then = all
                .api(&format!(
                    "/v1/subscriptions/{otid}?at={at}&knownAt={known_at}"
                ))
                .await;
            let replayed = replay
                .api(&format!("/v1/subscriptions/{otid}?at={at}"))
                .await;
            for field in [
                "entitled",
                "statusAt",
                "productIdAt",
                "expiresDateAt",
                "status",
            ] {
                assert_eq!(
                    then.1[field], replayed.1[field],
                    "seed {seed}, day {day}, {field}: {} vs {}",
                    then.1, replayed.1
                );
            }
            let listed = all
                .api(&format!(
                    "/v1/entitlements?originalTransactionId={otid}&at={at}&knownAt={known_at}"
                ))
                .await;
            let listed_replay = replay
                .api(&format!(
                    "/v1/entitlements?originalTransactionId={otid}&at={at}"
                ))
                .await;
            assert_eq!(
                listed.1["entitlements"], listed_replay.1["entitlements"],
                "seed {seed}, day {day}"
            );
        }
    }
}

/// An active customer who resubscribed was entitled in their earlier
/// period, even when no transaction carries originalPurchaseDate (the
/// current-state answer took the current period's purchase as the start).
#[tokio::test]
async fn before_a_resubscription_s_period_the_earlier_period_still_counts() {
    let app = TestApp::spawn().await;
    let (t0, otid) = (now() - 100 * DAY, "tl-resub");
    let without_original = |tid: &str, from: i64| {
        let mut t = tx(
            otid,
            tid,
            "monthly",
            t0 + from * DAY,
            t0 + (from + 30) * DAY,
        );
        t.as_object_mut().unwrap().remove("originalPurchaseDate");
        signed(t, t0 + from * DAY)
    };
    Post::new(&app, "SUBSCRIBED", t0 + 80 * DAY)
        .subtype("RESUBSCRIBE")
        .status(1)
        .tx(without_original("tl-resub-2", 80))
        .send()
        .await;
    Post::new(&app, "SUBSCRIBED", t0)
        .subtype("INITIAL_BUY")
        .status(1)
        .tx(without_original("tl-resub-1", 0))
        .send()
        .await;
    assert_eq!(
        at(&app, otid, t0 + 10 * DAY).await,
        is(true, "ACTIVE", "monthly")
    );
    assert_eq!(
        at(&app, otid, t0 + 50 * DAY).await,
        is(false, "EXPIRED", "monthly")
    );
    assert_eq!(at(&app, otid, now()).await, is(true, "ACTIVE", "monthly"));
}

// The same tests on PostgreSQL, each on a fresh database there.
on_postgres! {
    the_lapse_between_expired_and_resubscribe_is_not_entitled,
    billing_retry_before_a_recovery_is_not_entitled,
    a_grace_period_that_later_ended_was_entitled_while_it_lasted,
    between_a_refund_and_its_reversal_access_was_revoked,
    a_refund_reported_later_ends_access_at_its_revocation_date,
    the_product_at_t_is_the_one_whose_period_covers_t,
    known_at_answers_as_the_service_would_have_then,
    a_status_apple_signs_that_the_ledger_disagrees_with_is_kept_and_raised,
    known_at_equals_a_replay_of_what_had_been_received,
    before_a_resubscription_s_period_the_earlier_period_still_counts,
}
