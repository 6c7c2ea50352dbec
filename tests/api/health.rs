use crate::helpers::{uuid, NotificationSpec, TestApp};

#[tokio::test]
async fn health_answers_200_when_the_database_does() {
    let app = TestApp::spawn().await;
    let response = app.get("/health").await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers().contains_key("x-request-id"),
        "every answer carries a request id"
    );
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["status"],
        "ok"
    );
}

#[tokio::test]
async fn health_answers_503_while_the_database_cannot_take_a_write() {
    let app = TestApp::spawn().await;
    let blocker = app.block_writes().await;
    let response = app.get("/health").await;
    assert_eq!(response.status().as_u16(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "DATABASE_UNAVAILABLE");
    assert!(!body.to_string().contains("lock"), "{body}");
    TestApp::unblock_writes(blocker).await;
    assert_eq!(app.get("/health").await.status().as_u16(), 200);
}

#[tokio::test]
async fn metrics_count_outcomes_by_reason() {
    let app = TestApp::spawn().await;
    let token = NotificationSpec::new("DID_RENEW", uuid()).sign(&app.pki);
    app.post(&token).await;
    app.post(&token).await;
    app.post("garbage").await;
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(
        text.contains(r#"appstore_ledger_notifications_total{outcome="stored"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"appstore_ledger_notifications_total{outcome="duplicate"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"appstore_ledger_notifications_total{outcome="rejected",code="MALFORMED_TOKEN"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains("appstore_ledger_stored_notifications 1"),
        "{text}"
    );
    app.assert_totals_match_tables().await;
    // Latencies: every answer, two verifications that got that far, one
    // commit per write, and the query API by route.
    assert!(
        text.contains("appstore_ledger_webhook_seconds_count 3"),
        "{text}"
    );
    assert!(
        text.contains("appstore_ledger_verification_seconds_count 3"),
        "{text}"
    );
    assert!(
        text.contains("appstore_ledger_commit_seconds_count 2"),
        "{text}"
    );
    app.api("/v1/subscriptions/none").await;
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(
        text.contains(
            r#"appstore_ledger_query_seconds_count{route="/v1/subscriptions/{original_transaction_id}"} 1"#
        ),
        "{text}"
    );
}

/// When the database does not answer, /metrics says so instead of reporting
/// an empty database.
#[tokio::test]
async fn metrics_say_when_the_database_failed() {
    let app = TestApp::spawn().await;
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(text.contains("\nappstore_ledger_database_up 1\n"), "{text}");
    assert!(
        text.contains("appstore_ledger_stored_notifications 0"),
        "{text}"
    );

    let mut db = app.db().await;
    sqlx::query("ALTER TABLE totals RENAME TO t_moved")
        .execute(&mut db)
        .await
        .unwrap();
    let response = app.get("/metrics").await;
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.unwrap();
    assert!(text.contains("\nappstore_ledger_database_up 0\n"), "{text}");
    assert!(
        !text.contains("appstore_ledger_stored_notifications"),
        "{text}"
    );

    sqlx::query("ALTER TABLE t_moved RENAME TO totals")
        .execute(&mut db)
        .await
        .unwrap();
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(text.contains("\nappstore_ledger_database_up 1\n"), "{text}");
}

// The same tests on PostgreSQL, each on a fresh database there.
on_postgres! {
    health_answers_200_when_the_database_does,
    health_answers_503_while_the_database_cannot_take_a_write,
    metrics_count_outcomes_by_reason,
    metrics_say_when_the_database_failed,
}
