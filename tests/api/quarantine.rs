use crate::helpers::{pki, uuid, NotificationSpec, TempDir, TestApp, BUNDLE_ID};

#[tokio::test]
async fn genuine_notifications_for_an_unconfigured_app_or_environment_are_kept_and_can_be_released()
{
    let sandbox_only = r#"
        [[apps]]
        bundle_id = "com.example.sandbox-only"
        environments = ["Sandbox"]
    "#;
    let app = TestApp::spawn_with(pki(), TempDir::new(), sandbox_only).await;

    let mut other_app = NotificationSpec::new("SUBSCRIBED", uuid());
    other_app.bundle_id = "com.example.new-app";
    let mut wrong_environment = NotificationSpec::new("DID_RENEW", uuid());
    wrong_environment.bundle_id = "com.example.sandbox-only";
    wrong_environment.environment = "Production";
    for (spec, code) in [
        (&other_app, "BUNDLE_MISMATCH"),
        (&wrong_environment, "ENVIRONMENT_MISMATCH"),
    ] {
        let token = spec.sign(&app.pki);
        let (status, body) = app.post(&token).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (202, Some("quarantined")),
            "{body}"
        );
        // A repeat is still 2xx and changes no row.
        let before = app.tables().await;
        assert_eq!(app.post(&token).await.0, 202);
        assert_eq!(app.tables().await, before);
        let reason: String = sqlx::query_scalar(
            "SELECT reason_code FROM quarantined_notifications WHERE notification_uuid = $1",
        )
        .bind(&spec.uuid)
        .fetch_one(&mut app.db().await)
        .await
        .unwrap();
        assert_eq!(reason, code);
    }
    assert_eq!(app.count("quarantined_notifications").await, 2);
    assert_eq!(app.count("notifications").await, 0);

    // Nothing changes when the configuration still does not expect them.
    let out = app.cli(&["reprocess", "--quarantined"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout.trim(),
        "released 0, still quarantined 2, failed 0"
    );

    // Kept aside means out of the ledger.
    let subscription = "/v1/subscriptions/2000000000000001?at=1748736000000";
    assert_eq!(app.api(subscription).await.0, 404);

    // The operator adds the new app; its notification is released, the other stays.
    let config = std::fs::read_to_string(&app.config_path).unwrap()
        + "\n[[apps]]\nbundle_id = \"com.example.new-app\"\nenvironments = [\"Sandbox\"]\n";
    std::fs::write(&app.config_path, config).unwrap();
    let out = app.cli(&["reprocess", "--quarantined"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout.trim(),
        "released 1, still quarantined 1, failed 0"
    );
    assert!(out.stderr.contains("reprocess: 2/2 checked"));

    let released: String = sqlx::query_scalar("SELECT notification_uuid FROM notifications")
        .fetch_one(&mut app.db().await)
        .await
        .unwrap();
    assert_eq!(released, other_app.uuid);
    assert_eq!(app.count("quarantined_notifications").await, 1);
    app.assert_totals_match_tables().await;
    // Released means folded into the ledger, as if it had been accepted.
    let (status, s) = app.api(subscription).await;
    assert_eq!(
        (
            status,
            s["status"].as_str(),
            s["entitled"].as_bool(),
            s["bundleId"].as_str()
        ),
        (200, Some("ACTIVE"), Some(true), Some("com.example.new-app")),
        "{s}"
    );
    assert_eq!(s["transactionId"], "2000000000000002");
    // The released notification is now a known one.
    assert_eq!(
        app.post(&other_app.sign(&app.pki)).await.1["status"],
        "duplicate"
    );
    let _ = BUNDLE_ID;
}

// The same tests on PostgreSQL, each on a fresh database there.
on_postgres! {
    genuine_notifications_for_an_unconfigured_app_or_environment_are_kept_and_can_be_released,
}
