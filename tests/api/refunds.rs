//! One-time purchases, the refund ledger and its export, and the query API's
//! answers to bad requests.

use serde_json::{json, Value};

use crate::helpers::TestApp;
use crate::helpers::BUNDLE_ID;
use crate::ledger::{now, revoked, tx, Post, DAY, HOUR};

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
        .bearer_auth(crate::helpers::SECOND_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        second.status().as_u16(),
        200,
        "every configured token is accepted"
    );
    // The scheme is case-insensitive (RFC 7235); two Authorization headers
    // are refused, whatever they hold.
    let url = format!("{}/v1/entitlements?transactionId=1", app.address);
    let lower = app
        .client
        .get(&url)
        .header(
            "authorization",
            format!("bearer {}", crate::helpers::API_TOKEN),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(lower.status().as_u16(), 200);
    let twice = app
        .client
        .get(&url)
        .header(
            "authorization",
            format!("Bearer {}", crate::helpers::API_TOKEN),
        )
        .header(
            "authorization",
            format!("Bearer {}", crate::helpers::API_TOKEN),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status().as_u16(), 401);
    for malformed in ["Bearer", "Basic dGVzdA==", "Bearertest-token"] {
        let response = app
            .client
            .get(&url)
            .header("authorization", malformed)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401, "{malformed}");
    }

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

// The same tests on PostgreSQL, each on a fresh database there.
on_postgres! {
    a_one_time_purchase_and_its_refund,
    the_query_api_needs_a_token_and_answers_clear_errors,
    the_refund_ledger_pages_filters_and_exports_csv,
}
