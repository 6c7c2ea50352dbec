//! The refund desk against the fake App Store Server API, which checks
//! every token and every `ConsumptionRequest` against Apple's field rules:
//! a CONSUMPTION_REQUEST is answered once, before its deadline, with the
//! backend's facts or the app's policy, and never without consent or for
//! Family Sharing; Apple's 429 and 5xx are retried; two instances send one
//! answer; a deadline missed is a finding; REFUND and REFUND_DECLINED close
//! the request. The service's clock is the test's, shared with the fake.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use appstore_ledger::clock::{Clock as _, ManualClock};

use super::check_and_keep;
use crate::fake_apple::{api_config, FakeApple, Scripted};
use crate::helpers::{config, pki, uuid, TempDir, TestApp, APP_APPLE_ID, BUNDLE_ID};
use crate::ledger::{renewal, tx, Post, DAY, HOUR};

const JOBS: &str =
    "backfill_interval_ms = 0\nreconcile_interval_ms = 0\nconsumption_interval_ms = 40";
pub(crate) const TOKEN: &str = "5f1c3a2e-8b7d-4c6a-9e0f-1a2b3c4d5e6f";
const MINUTE: i64 = 60_000;
const PUT_PATH: &str = "/inApps/v2/transactions/consumption/";

/// A service whose app answers consumption requests with `policy`
/// (`[apps.consumption]`), and the fake Apple it asks, on one clock.
pub(crate) async fn desk(policy: &str) -> (FakeApple, TestApp) {
    let fake = FakeApple::start().await;
    let clock = Arc::new(ManualClock::starting_now());
    fake.state().clock = Some(Arc::clone(&clock));
    let (pki, dir) = (pki(), TempDir::new());
    let api = api_config(&dir, &fake.key_pem, &fake.url, &fake.url, JOBS).replace(
        "[appstore_api]",
        &format!("[apps.consumption]\n{policy}\n[appstore_api]"),
    );
    let text = config(&dir, &pki, "", &api);
    let app = TestApp::spawn_text_with_clock(pki, dir, &text, clock).await;
    (fake, app)
}

pub(crate) fn now(app: &TestApp) -> i64 {
    app.clock().now().as_millis()
}

pub(crate) fn consumable(tid: &str, token: &str, at: i64) -> Value {
    json!({
        "transactionId": tid, "originalTransactionId": tid, "bundleId": BUNDLE_ID,
        "productId": "coins.500", "purchaseDate": at - DAY, "originalPurchaseDate": at - DAY,
        "type": "Consumable", "inAppOwnershipType": "PURCHASED", "quantity": 1,
        "signedDate": at, "environment": "Sandbox", "price": 4990, "currency": "USD",
        "appAccountToken": token,
    })
}

/// Apple's CONSUMPTION_REQUEST `id` about transaction `t`, signed `at`.
fn request_token(app: &TestApp, t: &Value, at: i64, id: &str) -> String {
    app.pki.sign(&json!({
        "notificationType": "CONSUMPTION_REQUEST", "notificationUUID": id,
        "data": {
            "bundleId": BUNDLE_ID, "environment": "Sandbox", "appAppleId": APP_APPLE_ID,
            "signedTransactionInfo": app.pki.sign(t),
            "consumptionRequestReason": "UNINTENDED_PURCHASE",
        },
        "version": "2.0", "signedDate": at,
    }))
}

/// Apple's CONSUMPTION_REQUEST about transaction `t`, signed `at`, posted.
pub(crate) async fn ask(app: &TestApp, t: &Value, at: i64) -> String {
    let id = uuid();
    let (status, body) = app.post(&request_token(app, t, at, &id)).await;
    assert_eq!(status, 200, "{body}");
    id
}

/// Apple's decision (REFUND or REFUND_DECLINED) about transaction `t`.
async fn decide(app: &TestApp, kind: &str, t: &Value, at: i64) {
    let mut t = t.clone();
    if kind == "REFUND" {
        t["revocationDate"] = json!(at);
        t["revocationReason"] = json!(0);
        t["revocationType"] = json!("REFUND_FULL");
        t["revocationPercentage"] = json!(100000);
    }
    Post::new(app, kind, at).tx(t).send().await;
}

pub(crate) async fn consent(app: &TestApp, token: &str, consumption_data: bool) {
    let response = app
        .client
        .put(format!("{}/v1/customers/{token}/consent", app.address))
        .bearer_auth(crate::helpers::API_TOKEN)
        .json(&json!({"consumptionData": consumption_data}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

async fn facts(app: &TestApp, tid: &str, body: Value) -> (u16, Value) {
    let response = app
        .client
        .put(format!("{}/v1/transactions/{tid}/consumption", app.address))
        .bearer_auth(crate::helpers::API_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// The request about `tid`, once `done` holds of it (the job runs every
/// 40 ms; twenty seconds allow Apple's retries).
pub(crate) async fn request_when(app: &TestApp, tid: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..1000 {
        let (status, body) = app
            .api(&format!("/v1/consumption-requests?transactionId={tid}"))
            .await;
        assert_eq!(status, 200, "{body}");
        if let Some(request) = body["consumptionRequests"].get(0) {
            if done(request) {
                return request.clone();
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, body) = app
        .api(&format!("/v1/consumption-requests?transactionId={tid}"))
        .await;
    panic!("the request about {tid} never got there: {body}");
}

fn state_is(state: &'static str) -> impl Fn(&Value) -> bool {
    move |r| r["state"] == state
}

pub(crate) fn puts(fake: &FakeApple, tid: &str) -> Vec<Value> {
    fake.seen(&format!("{PUT_PATH}{tid}"))
        .into_iter()
        .map(|s| {
            assert_eq!(s.method, "PUT");
            s.body
        })
        .collect()
}

/// Several runs of the job.
async fn a_while() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_request_with_consent_is_answered_once_by_the_policy_after_the_wait() {
    let (fake, app) = desk("answer_after_minutes = 30\nrefund_preference = \"GRANT_FULL\"").await;
    consent(&app, TOKEN, true).await;
    let asked_at = now(&app);
    let t = consumable("cr-policy", TOKEN, asked_at);
    let uuid = ask(&app, &t, asked_at).await;

    // Within the 30 minutes the backend may still send facts: nothing goes.
    let open = request_when(&app, "cr-policy", |r| r["why"] == "AWAITING_FACTS").await;
    assert_eq!(open["state"], "OPEN");
    assert_eq!(open["deadline"], json!(asked_at + 12 * HOUR));
    assert_eq!(open["timeLeftMs"], json!(12 * HOUR));
    assert_eq!(open["consumptionRequestReason"], "UNINTENDED_PURCHASE");
    assert_eq!(open["notificationUUID"], json!(uuid));
    a_while().await;
    assert!(puts(&fake, "cr-policy").is_empty());

    app.clock().advance(Duration::from_secs(30 * 60));
    let sent = request_when(&app, "cr-policy", state_is("SENT")).await;
    let expected = json!({
        "customerConsented": true, "deliveryStatus": "DELIVERED",
        "refundPreference": "GRANT_FULL", "sampleContentProvided": false,
    });
    assert_eq!(puts(&fake, "cr-policy"), vec![expected.clone()]);
    assert_eq!(sent["sent"], expected);
    assert_eq!(sent["appleStatus"], 202);
    assert_eq!(sent["sentDate"], json!(asked_at + 30 * MINUTE));
    assert!(fake.seen(PUT_PATH)[0].at < asked_at + 12 * HOUR);
    assert!(fake.state().refused_tokens.is_empty());

    // Kept as evidence in the item's history; Apple's refund closes it.
    let (_, history) = app.api("/v1/subscriptions/cr-policy/history").await;
    assert_eq!(history["consumptionRequests"][0]["sent"], expected);
    decide(&app, "REFUND", &t, asked_at + 2 * HOUR).await;
    let refunded = request_when(&app, "cr-policy", |r| r["outcome"] == "REFUNDED").await;
    assert_eq!(refunded["outcomeDate"], json!(asked_at + 2 * HOUR));
    a_while().await;
    assert_eq!(puts(&fake, "cr-policy").len(), 1);

    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("appstore_ledger_consumption_requests_total{outcome=\"sent\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("appstore_ledger_consumption_answer_delay_seconds_count 1"));
}

#[tokio::test]
async fn facts_from_the_backend_are_sent_at_once_in_apples_words() {
    let (fake, app) = desk("answer_after_minutes = 60").await;
    consent(&app, TOKEN, true).await;
    let (status, kept) = facts(
        &app,
        "cr-facts",
        json!({"deliveryStatus": "DELIVERED", "consumptionPercentage": 40000,
               "sampleContentProvided": true, "refundPreference": "GRANT_PRORATED"}),
    )
    .await;
    assert_eq!(status, 200, "{kept}");
    // Not Apple's words: refused with a stable code, nothing kept.
    for wrong in [
        json!({"deliveryStatus": "LOST"}),
        json!({"consumptionPercentage": 100001}),
        json!({"refundPreference": "MAYBE"}),
        json!({"consumptionStatus": 1}),
    ] {
        let (status, body) = facts(&app, "cr-facts", wrong.clone()).await;
        assert_eq!(status, 400, "{wrong}");
        assert_eq!(body["error"]["code"], "INVALID_BODY", "{body}");
    }
    let at = now(&app);
    ask(&app, &consumable("cr-facts", TOKEN, at), at).await;
    let sent = request_when(&app, "cr-facts", state_is("SENT")).await;
    let expected = json!({
        "customerConsented": true, "consumptionPercentage": 40000, "deliveryStatus": "DELIVERED",
        "refundPreference": "GRANT_PRORATED", "sampleContentProvided": true,
    });
    assert_eq!(puts(&fake, "cr-facts"), vec![expected.clone()]);
    assert_eq!(sent["facts"]["recordedBy"], "backend");
    assert_eq!(sent["sentDate"], json!(at));
}

#[tokio::test]
async fn a_subscription_is_never_sent_a_percentage() {
    let (fake, app) = desk("answer_after_minutes = 60").await;
    fake.state()
        .product_types
        .insert("cr-sub-t1".into(), "Auto-Renewable Subscription".into());
    consent(&app, TOKEN, true).await;
    let at = now(&app);
    let mut t = tx(
        "cr-sub",
        "cr-sub-t1",
        "monthly",
        at - 5 * DAY,
        at + 25 * DAY,
    );
    t["appAccountToken"] = json!(TOKEN);
    Post::new(&app, "SUBSCRIBED", at - 5 * DAY)
        .subtype("INITIAL_BUY")
        .status(1)
        .tx(t.clone())
        .renewal(renewal("cr-sub", "monthly", 1, at - 5 * DAY))
        .send()
        .await;
    facts(
        &app,
        "cr-sub-t1",
        json!({"consumptionPercentage": 50000, "refundPreference": "DECLINE"}),
    )
    .await;
    ask(&app, &t, at).await;
    request_when(&app, "cr-sub-t1", state_is("SENT")).await;
    assert_eq!(
        puts(&fake, "cr-sub-t1"),
        vec![
            json!({"customerConsented": true, "deliveryStatus": "DELIVERED",
                    "refundPreference": "DECLINE", "sampleContentProvided": false})
        ]
    );
}

#[tokio::test]
async fn no_answer_without_consent_nor_for_family_sharing() {
    let (fake, app) = desk("answer_after_minutes = 0").await;
    let (silent, declined) = (
        "0b5a2f58-3d6c-4e1b-8a9f-7c6d5e4f3a2b",
        "1c6b3f69-4e7d-4f2c-9b0a-8d7e6f5a4b3c",
    );
    consent(&app, TOKEN, true).await;
    consent(&app, declined, false).await;
    let at = now(&app);
    let mut shared = consumable("cr-family", TOKEN, at);
    shared["inAppOwnershipType"] = json!("FAMILY_SHARED");
    ask(&app, &shared, at).await;
    ask(&app, &consumable("cr-silent", silent, at), at).await;
    ask(&app, &consumable("cr-declined", declined, at), at).await;

    let family = request_when(&app, "cr-family", state_is("NOT_SENT")).await;
    assert_eq!(family["why"], "FAMILY_SHARED");
    // Consent may still come: the request waits until an hour before the
    // deadline, then says why nothing went.
    for tid in ["cr-silent", "cr-declined"] {
        request_when(&app, tid, |r| r["why"] == "AWAITING_CONSENT").await;
    }
    app.clock().advance(Duration::from_secs(11 * 3600));
    let silent = request_when(&app, "cr-silent", state_is("NOT_SENT")).await;
    assert_eq!(silent["why"], "NO_CONSENT");
    let declined = request_when(&app, "cr-declined", state_is("NOT_SENT")).await;
    assert_eq!(declined["why"], "CONSENT_DECLINED");
    assert!(fake.seen(PUT_PATH).is_empty());
    // A deliberate silence is no finding.
    let at = now(&app) + 2 * HOUR;
    assert!(check_and_keep(&app, at)
        .await
        .iter()
        .all(|f| !f.starts_with("CONSUMPTION_DEADLINE_MISSED")));
}

#[tokio::test]
async fn apples_429_and_5xx_are_retried_before_the_deadline() {
    let (fake, app) = desk("answer_after_minutes = 0").await;
    consent(&app, TOKEN, true).await;
    {
        let mut s = fake.state();
        s.scripted.push_back(Scripted {
            path: PUT_PATH,
            query: "",
            status: 429,
            body: None,
            retry_after_ms: Some(200),
            in_seconds: false,
        });
        s.consumption_failing = Some(503);
    }
    let at = now(&app);
    ask(&app, &consumable("cr-retry", TOKEN, at), at).await;
    let retrying = request_when(&app, "cr-retry", |r| r["why"] == "RETRYING").await;
    assert_eq!(retrying["state"], "OPEN");
    assert_eq!(retrying["attempts"], 1);
    assert_eq!(retrying["nextAttemptDate"], json!(at + 30_000));
    let failed = fake.seen(PUT_PATH).len();
    // The 429 waited out, then the client's own five attempts.
    assert_eq!(failed, 6);

    fake.state().consumption_failing = None;
    a_while().await;
    assert_eq!(
        fake.seen(PUT_PATH).len(),
        failed,
        "not before nextAttemptDate"
    );
    app.clock().advance(Duration::from_secs(30));
    let sent = request_when(&app, "cr-retry", state_is("SENT")).await;
    assert_eq!(sent["attempts"], 2);
    assert_eq!(fake.seen(PUT_PATH).len(), failed + 1);
}

#[tokio::test]
async fn two_instances_send_one_answer() {
    let (fake, app) = desk("answer_after_minutes = 0").await;
    let other = app.another_instance().await;
    consent(&app, TOKEN, true).await;
    let at = now(&app);
    for i in 0..6 {
        let tid = format!("cr-two-{i}");
        let (first, second) = if i % 2 == 0 {
            (&app, &other)
        } else {
            (&other, &app)
        };
        let t = consumable(&tid, TOKEN, at);
        let id = ask(first, &t, at).await;
        // Apple's retry reaches the other instance.
        let token = request_token(first, &t, at, &id);
        assert_eq!(second.post(&token).await.0, 200);
    }
    for i in 0..6 {
        request_when(&app, &format!("cr-two-{i}"), state_is("SENT")).await;
    }
    a_while().await;
    for i in 0..6 {
        assert_eq!(puts(&fake, &format!("cr-two-{i}")).len(), 1, "cr-two-{i}");
    }
    drop(other);
}

#[tokio::test]
async fn a_deadline_missed_while_apple_fails_is_a_finding_until_apple_decides() {
    let (fake, app) = desk("answer_after_minutes = 0").await;
    fake.state().consumption_failing = Some(500);
    consent(&app, TOKEN, true).await;
    let at = now(&app);
    let t = consumable("cr-missed", TOKEN, at);
    let uuid = ask(&app, &t, at).await;
    request_when(&app, "cr-missed", |r| r["why"] == "RETRYING").await;

    app.clock().advance(Duration::from_secs(12 * 3600));
    let missed = request_when(&app, "cr-missed", state_is("MISSED")).await;
    assert_eq!(missed["why"], "APPLE_UNAVAILABLE");
    assert!(
        missed["lastError"].as_str().unwrap().contains("500"),
        "{missed}"
    );
    let findings = check_and_keep(&app, now(&app)).await;
    assert!(
        findings.contains(&format!("CONSUMPTION_DEADLINE_MISSED {uuid}")),
        "{findings:?}"
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("appstore_ledger_consumption_requests_total{outcome=\"missed\"} 1"));

    decide(&app, "REFUND_DECLINED", &t, at + 13 * HOUR).await;
    let declined = request_when(&app, "cr-missed", |r| r["outcome"] == "DECLINED").await;
    assert_eq!(declined["state"], "MISSED");
    let findings = check_and_keep(&app, now(&app)).await;
    assert!(
        !findings.contains(&format!("CONSUMPTION_DEADLINE_MISSED {uuid}")),
        "{findings:?}"
    );
}

#[tokio::test]
async fn apples_decision_before_an_answer_closes_the_request() {
    let (fake, app) = desk("answer_after_minutes = 60").await;
    consent(&app, TOKEN, true).await;
    let at = now(&app);
    let t = consumable("cr-decided", TOKEN, at);
    ask(&app, &t, at).await;
    request_when(&app, "cr-decided", |r| r["why"] == "AWAITING_FACTS").await;
    decide(&app, "REFUND_DECLINED", &t, at + MINUTE).await;
    let closed = request_when(&app, "cr-decided", state_is("NOT_SENT")).await;
    assert_eq!(closed["why"], "APPLE_DECIDED");
    assert_eq!(closed["outcome"], "DECLINED");
    app.clock().advance(Duration::from_secs(3600));
    a_while().await;
    assert!(fake.seen(PUT_PATH).is_empty());
}

// The same tests on PostgreSQL, each on a fresh database there.
on_postgres! {
    a_request_with_consent_is_answered_once_by_the_policy_after_the_wait,
    facts_from_the_backend_are_sent_at_once_in_apples_words,
    a_subscription_is_never_sent_a_percentage,
    no_answer_without_consent_nor_for_family_sharing,
    apples_429_and_5xx_are_retried_before_the_deadline,
    two_instances_send_one_answer,
    a_deadline_missed_while_apple_fails_is_a_finding_until_apple_decides,
    apples_decision_before_an_answer_closes_the_request,
}
