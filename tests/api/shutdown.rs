//! The binary on its defaults, stopped by a signal.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::helpers::{client, spawn_serve, TempDir};

const BIN: &str = env!("CARGO_BIN_EXE_appstore-ledger");

#[tokio::test]
async fn serve_runs_on_embedded_defaults_and_stops_gracefully_on_sigterm() {
    let dir = TempDir::new();
    let (mut child, addr, lines) = spawn_serve(
        Command::new(BIN)
            .arg("serve")
            .current_dir(&dir.0)
            // Port 0 so that tests do not collide; everything else is the default.
            .env("APPSTORE_LEDGER__SERVER__LISTEN", "127.0.0.1:0"),
    );
    let health = client()
        .get(format!("http://{addr}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    assert!(
        dir.path("appstore-ledger.db").exists(),
        "the default database is created"
    );

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:?}");
}

#[tokio::test]
async fn shutdown_stops_accepting_and_finishes_requests_in_flight() {
    use crate::helpers::{config, pki, uuid, NotificationSpec, TestApp};

    let (pki, dir) = (pki(), TempDir::new());
    // Long enough for the request to be in flight while the server stops.
    let text =
        config(&dir, &pki, "", "").replace("busy_timeout_ms = 2000", "busy_timeout_ms = 5000");
    let mut app = TestApp::spawn_text(pki, dir, &text).await;
    let token = NotificationSpec::new("DID_RENEW", uuid()).sign(&app.pki);

    let mut blocker = app.db().await;
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut blocker)
        .await
        .unwrap();
    let (client, url) = (
        app.client.clone(),
        format!("{}/v2/notifications", app.address),
    );
    let in_flight = tokio::spawn(async move {
        let body = serde_json::json!({ "signedPayload": token }).to_string();
        let response = client.post(url).body(body).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.begin_stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fresh = crate::helpers::client()
        .get(format!("{}/health", app.address))
        .send()
        .await;
    assert!(
        fresh.is_err(),
        "no new connection is accepted while stopping"
    );

    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();
    let (status, body) = in_flight.await.unwrap();
    assert_eq!((status, body.as_str()), (200, r#"{"status":"stored"}"#));
    app.stop().await;
    assert_eq!(app.count("notifications").await, 1);
}

/// A check over many subscriptions is stopped between two pages when the
/// server shuts down: shutdown does not wait for the whole scan, and the
/// partial scan resolves no finding.
#[tokio::test]
async fn shutdown_during_a_long_check_stops_it_within_the_grace() {
    use crate::helpers::{config, pki, TestApp};
    use appstore_ledger::ledger::Event;
    use appstore_ledger::model::{Environment, NotificationType};
    use appstore_ledger::stop::Stop;
    use appstore_ledger::store::{NewNotification, Store};

    const SUBSCRIPTIONS: usize = 50_000;
    let (pki, dir) = (pki(), TempDir::new());
    let text = config(&dir, &pki, "shutdown_grace_ms = 2000", "")
        .replace("[log]", "[check]\ninterval_ms = 3600000\n[log]");
    let settings = appstore_ledger::config::Settings::from_toml(&text).unwrap();
    let store = Store::connect(&settings.database).await.unwrap();
    let now = appstore_ledger::clock::Clock::now(&appstore_ledger::clock::SystemClock).as_millis();
    // One subscription folded, then copied under other ids: the check
    // reads each item's state alone, and folding 50,000 would take most
    // of a minute in a debug build.
    let payload = serde_json::json!({
        "notificationType": "SUBSCRIBED", "notificationUUID": "long-0",
        "signedDate": now,
        "data": {"bundleId": crate::helpers::BUNDLE_ID, "environment": "Sandbox",
            "signedTransactionInfo": {
                "transactionId": "t0", "originalTransactionId": "o00000000",
                "type": "Auto-Renewable Subscription", "purchaseDate": now,
                "expiresDate": now + 86_400_000, "signedDate": now}},
    })
    .to_string();
    let notification = NewNotification {
        notification_uuid: "long-0".into(),
        notification_type: NotificationType::Subscribed,
        subtype: None,
        signed_date: Some(now),
        received_at: now,
        environment: Some(Environment::Sandbox),
        bundle_id: Some(crate::helpers::BUNDLE_ID.into()),
        app_apple_id: None,
        original_transaction_id: Some("o00000000".into()),
        transaction_id: Some("t0".into()),
        signed_payload: String::new(),
        event: Event::parse(&payload).unwrap(),
        novelty: None,
        payload,
    };
    store.import_notifications(&[notification]).await.unwrap();
    store.rebuild(|_, _| {}, &Stop::new()).await.unwrap();
    let mut db = crate::helpers::db(&dir.path("ledger.db")).await;
    let copied = sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1)
         INSERT INTO ledger_items (kind, item_id, original_transaction_id, bundle_id, environment,
             product_id, app_account_token, status, expires_date, last_signed_date, state)
         SELECT kind, printf('o%08d', i), printf('o%08d', i), bundle_id, environment, product_id,
             app_account_token, status, expires_date, last_signed_date, state
         FROM ledger_items, n WHERE item_id = 'o00000000'",
    )
    .bind(SUBSCRIPTIONS as i64 - 1)
    .execute(&mut db)
    .await
    .unwrap();
    assert_eq!(copied.rows_affected() as usize, SUBSCRIPTIONS - 1);
    drop(db);
    // How long a whole check takes here.
    let started = Instant::now();
    let tolerances = appstore_ledger::check::Tolerances::default();
    let report = appstore_ledger::check::run(
        &store,
        appstore_ledger::clock::Clock::now(&appstore_ledger::clock::SystemClock),
        &tolerances,
        &appstore_ledger::ledger::Products::default(),
        |_, _| {},
        &Stop::new(),
    )
    .await
    .unwrap()
    .unwrap();
    let whole = started.elapsed();
    assert_eq!(report.items_checked as usize, SUBSCRIPTIONS);
    store.close().await;

    // The server starts its first check at once; stop it in the middle.
    let mut app = TestApp::spawn_text(pki, dir, &text).await;
    tokio::time::sleep(whole / 4).await;
    let stopping = Instant::now();
    app.stop().await;
    let stopped = stopping.elapsed();
    assert!(
        stopped < whole / 2,
        "stopping took {stopped:?}; a whole check takes {whole:?}"
    );
    // Within the grace period (2 s), and the store's closing after it: a
    // check whose page outlasts the grace (a loaded machine) is dropped.
    assert!(stopped < Duration::from_millis(3000), "{stopped:?}");
}
