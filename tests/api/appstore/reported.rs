//! Purchases reported by the app (POST /v1/transactions): access at once,
//! once, and refused when the proof is not genuine or not this app's.

use super::*;
use crate::helpers::API_TOKEN;

/// StoreKit's transaction for a new monthly subscription, signed now.
fn purchase(app: &TestApp, otid: &str, account: &str) -> (Value, String) {
    let mut t = tx(
        otid,
        &format!("{otid}01"),
        "monthly",
        now() - 60_000,
        now() + 30 * DAY,
    );
    t["signedDate"] = json!(now());
    t["appAccountToken"] = json!(account);
    let token = app.pki.sign(&t);
    (t, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reported_purchase_grants_access_at_once_and_once() {
    let app = TestApp::spawn().await;
    let (t, token) = purchase(&app, "8100", "00000000-0000-4000-8000-000000000001");
    let (status, answer) = app.report(json!({"signedTransaction": token, "appAccountToken": "00000000-0000-4000-8000-000000000001"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["entitled"], true, "{answer}");
    assert_eq!(answer["status"], "ACTIVE");
    assert_eq!(answer["type"], "subscription");
    assert_eq!(answer["originalTransactionId"], "8100");
    assert_eq!(answer["productId"], "monthly");
    assert_eq!(answer["expiresDate"], t["expiresDate"]);
    assert_eq!(answer["stored"], true);
    assert_eq!(answer["appAccountTokenMismatch"], Value::Null);
    // The same answer from the query API, and the proof in the history.
    assert_eq!(subscription(&app, "8100").await["entitled"], true);
    let (_, entitlements) = app
        .api("/v1/entitlements?appAccountToken=00000000-0000-4000-8000-000000000001")
        .await;
    assert_eq!(
        entitlements["entitlements"][0]["productId"], "monthly",
        "{entitlements}"
    );
    let (_, history) = app.api("/v1/subscriptions/8100/history").await;
    assert_eq!(
        history["appleAnswers"][0]["source"], "APP_REPORTED_TRANSACTION",
        "{history}"
    );

    // The same proof again changes nothing.
    let before = app.tables().await;
    let (status, again) = app.report(json!({"signedTransaction": token, "appAccountToken": "00000000-0000-4000-8000-000000000001"}),
    )
    .await;
    assert_eq!(
        (status, again["stored"].clone()),
        (200, json!(false)),
        "{again}"
    );
    assert_eq!(app.tables().await, before);

    // Apple's notification for it, later: one period, no double count.
    Post::new(&app, "SUBSCRIBED", now())
        .subtype("INITIAL_BUY")
        .status(1)
        .tx(t.clone())
        .renewal(renewal("8100", "monthly", 1, now()))
        .send()
        .await;
    let ledger = rows(
        &app,
        "SELECT CAST(state AS TEXT) FROM ledger_items WHERE item_id = '8100'",
    )
    .await;
    let state: Value = serde_json::from_str(&ledger[0]).unwrap();
    assert_eq!(
        state["timeline"]["periods"].as_array().unwrap().len(),
        1,
        "{state}"
    );
    assert_eq!(subscription(&app, "8100").await["entitled"], true);
    assert!(rows(&app, "SELECT notification_uuid FROM refunds")
        .await
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proof_that_is_not_genuine_or_not_this_app_s_is_refused_with_its_code() {
    let app = TestApp::spawn().await;
    let (t, token) = purchase(&app, "8200", "00000000-0000-4000-8000-000000000002");
    // One character in the middle of the signature: every bit there counts.
    let mut tampered: Vec<char> = token.chars().collect();
    let at = tampered.len() - 20;
    tampered[at] = if tampered[at] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();
    let mut foreign = t.clone();
    foreign["bundleId"] = json!("com.other.app");
    let mut xcode = t.clone();
    xcode["environment"] = json!("Xcode");
    for (token, code) in [
        (tampered, "INVALID_SIGNATURE"),
        (app.pki.sign(&foreign), "BUNDLE_MISMATCH"),
        (app.pki.sign(&xcode), "ENVIRONMENT_MISMATCH"),
        ("not.a.token".to_owned(), "MALFORMED_TOKEN"),
    ] {
        let (status, body) = app.report(json!({"signedTransaction": token})).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some(code)),
            "{body}"
        );
    }
    assert!(rows(&app, "SELECT item_id FROM ledger_items")
        .await
        .is_empty());
    // Bodies that say nothing usable.
    for body in [
        json!({}),
        json!({"transactionId": "1", "receipt": "AA=="}),
        json!({"signedTransaction": "x", "extra": 1}),
    ] {
        let (status, answer) = app.report(body).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (400, Some("INVALID_BODY")),
            "{answer}"
        );
    }
    // A transaction id needs the App Store Server API.
    let (status, answer) = app.report(json!({"transactionId": "8200"})).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("API_NOT_CONFIGURED"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_chain_is_refused() {
    use crate::common::pki::{date, ChainSpec, TestPki};
    // A leaf that expired years ago, under a root the service trusts.
    let old = TestPki::build(ChainSpec {
        leaf_validity: (date(2018), date(2020)),
        ..ChainSpec::default()
    });
    let app = TestApp::spawn_with(old, TempDir::new(), "").await;
    let (_, token) = purchase(&app, "8250", "acct");
    let (status, body) = app.report(json!({"signedTransaction": token})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("CERTIFICATE_EXPIRED")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_reported_for_another_account_is_flagged() {
    let app = TestApp::spawn().await;
    let (_, token) = purchase(&app, "8300", "00000000-0000-4000-8000-00000000000a");
    let (status, answer) = app.report(json!({"signedTransaction": token, "appAccountToken": "00000000-0000-4000-8000-00000000000b"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["appAccountTokenMismatch"],
        json!({"reported": "00000000-0000-4000-8000-00000000000b", "signed": "00000000-0000-4000-8000-00000000000a"})
    );
    let findings = check_and_keep(&app, now()).await;
    assert!(
        findings.contains(&"APP_ACCOUNT_TOKEN_MISMATCH 8300".to_owned()),
        "{findings:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_rate_limited_per_token() {
    let (signer, dir) = (pki(), TempDir::new());
    let text = crate::helpers::config(&dir, &signer, "", "")
        .replace("tokens = [", "reports_per_minute = 2\n        tokens = [");
    let limited = TestApp::spawn_text(signer, dir, &text).await;
    let (_, token) = purchase(&limited, "8400", "acct");
    for _ in 0..2 {
        assert_eq!(
            limited.report(json!({"signedTransaction": token})).await.0,
            200
        );
    }
    let response = limited
        .client
        .post(format!("{}/v1/transactions", limited.address))
        .bearer_auth(API_TOKEN)
        .json(&json!({"signedTransaction": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    assert!(response.headers().contains_key("retry-after"));
    // Another spelling of the scheme is the same token, the same allowance.
    let respelled = limited
        .client
        .post(format!("{}/v1/transactions", limited.address))
        .header("authorization", format!("BEARER {API_TOKEN}"))
        .json(&json!({"signedTransaction": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(respelled.status().as_u16(), 429);
    // Another token has its own allowance.
    let other = limited
        .client
        .post(format!("{}/v1/transactions", limited.address))
        .bearer_auth(crate::helpers::SECOND_TOKEN)
        .json(&json!({"signedTransaction": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 200);
}

/// A legacy receipt (DER PKCS#7) listing one in-app purchase.
fn receipt(transaction_id: &str) -> Vec<u8> {
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match content.len() {
            n @ 0..=127 => out.push(n as u8),
            n @ 128..=255 => out.extend([0x81, n as u8]),
            n => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend(content);
        out
    }
    fn attribute(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut fields = tlv(0x02, &kind.to_be_bytes());
        fields.extend(tlv(0x02, &[1]));
        fields.extend(tlv(0x04, value));
        tlv(0x30, &fields)
    }
    let in_app = attribute(1705, &tlv(0x0c, transaction_id.as_bytes()));
    let payload = tlv(0x31, &attribute(17, &tlv(0x31, &in_app)));
    let mut encapsulated = tlv(
        0x06,
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01],
    );
    encapsulated.extend(tlv(0xa0, &tlv(0x04, &payload)));
    let mut signed = tlv(0x02, &[1]);
    signed.extend(tlv(0x31, &[]));
    signed.extend(tlv(0x30, &encapsulated));
    let mut content_info = tlv(
        0x06,
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02],
    );
    content_info.extend(tlv(0xa0, &tlv(0x30, &signed)));
    tlv(0x30, &content_info)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_id_or_a_receipt_is_asked_of_apple() {
    use base64::Engine;
    let fake = FakeApple::start().await;
    let app = app(&fake).await;
    let (t, token) = purchase(&app, "8500", "00000000-0000-4000-8000-000000000005");
    {
        let mut s = fake.state();
        s.transaction_info.insert("850001".into(), token);
        s.statuses.insert(
            "850001".into(),
            status_answer(&app, "8500", 1, &t, &renewal("8500", "monthly", 1, 0)),
        );
    }
    let (status, answer) = app.report(json!({"transactionId": "850001"})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (
            answer["entitled"].clone(),
            answer["originalTransactionId"].clone()
        ),
        (json!(true), json!("8500"))
    );
    let (_, history) = app.api("/v1/subscriptions/8500/history").await;
    let sources: Vec<&str> = history["appleAnswers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["source"].as_str().unwrap())
        .collect();
    assert!(
        sources.contains(&"GET_TRANSACTION_INFO")
            && sources.contains(&"GET_ALL_SUBSCRIPTION_STATUSES"),
        "{sources:?}"
    );

    // A legacy receipt names the transaction; Apple's answer is what counts.
    let (t2, token2) = purchase(&app, "8600", "00000000-0000-4000-8000-000000000006");
    fake.state()
        .transaction_info
        .insert("860001".into(), token2);
    fake.state().statuses.insert(
        "860001".into(),
        status_answer(&app, "8600", 1, &t2, &renewal("8600", "monthly", 1, 0)),
    );
    let receipt = base64::engine::general_purpose::STANDARD.encode(receipt("860001"));
    let (status, answer) = app.report(json!({"receipt": receipt})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["originalTransactionId"], "8600");
    // Garbage is refused; an unknown transaction is 404.
    let (status, answer) = app.report(json!({"receipt": "bm90IGEgcmVjZWlwdA=="})).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("MALFORMED_RECEIPT"))
    );
    let (status, answer) = app.report(json!({"transactionId": "999"})).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("UNKNOWN_TRANSACTION")),
        "{answer}"
    );
    assert!(fake.state().refused_tokens.is_empty());
}

// The same tests on PostgreSQL, each on a fresh database there.
on_postgres! {
    a_reported_purchase_grants_access_at_once_and_once,
    proof_that_is_not_genuine_or_not_this_app_s_is_refused_with_its_code,
    an_expired_chain_is_refused,
    a_purchase_reported_for_another_account_is_flagged,
    reports_are_rate_limited_per_token,
    a_transaction_id_or_a_receipt_is_asked_of_apple,
}
