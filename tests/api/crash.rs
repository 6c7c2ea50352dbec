//! kill -9 under load: every notification acknowledged before the kill is
//! there after a restart, folded into its subscription's state.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::helpers::{
    client, config, on_suite_backend, pki, spawn_serve, NotificationSpec, TempDir, TestApp,
};

const BIN: &str = env!("CARGO_BIN_EXE_appstore-ledger");
const NOTIFICATIONS: usize = 600;
const KILL_AFTER: usize = 150;

fn spec(i: usize) -> NotificationSpec<'static> {
    // Each its own subscription, so each acknowledgement has its own state.
    let mut spec = NotificationSpec::new("DID_RENEW", format!("crash-{i:05}"));
    let otid = format!("9{i:015}");
    for nested in [spec.transaction.as_mut(), spec.renewal.as_mut()]
        .into_iter()
        .flatten()
    {
        nested["originalTransactionId"] = json!(otid);
    }
    if let Some(t) = spec.transaction.as_mut() {
        t["transactionId"] = json!(format!("8{i:015}"));
    }
    spec
}

#[tokio::test]
async fn sigkill_under_load_loses_no_acknowledged_notification() {
    let (pki, dir) = (pki(), TempDir::new());
    let (text, pg) = on_suite_backend(&dir, config(&dir, &pki, "", "")).await;
    let config_path = dir.path("config.toml");
    std::fs::write(&config_path, &text).unwrap();
    let (mut child, addr, lines) = spawn_serve(
        Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&config_path)
            .env("APPSTORE_LEDGER__LOG__LEVEL", "info"),
    );
    // Keep reading the log so that the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));

    let bodies: Arc<Vec<String>> = Arc::new(
        (0..NOTIFICATIONS)
            .map(|i| json!({ "signedPayload": spec(i).sign(&pki) }).to_string())
            .collect(),
    );
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let pid = child.id();
    let http = client();
    let mut senders = tokio::task::JoinSet::new();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..16 {
        let (http, bodies, acknowledged, next) = (
            http.clone(),
            Arc::clone(&bodies),
            Arc::clone(&acknowledged),
            Arc::clone(&next),
        );
        let url = format!("http://{addr}/v2/notifications");
        senders.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= NOTIFICATIONS {
                    return;
                }
                let Ok(response) = http.post(&url).body(bodies[i].clone()).send().await else {
                    return; // the server is gone
                };
                let status = response.status().as_u16();
                let Ok(body) = response.json::<serde_json::Value>().await else {
                    return;
                };
                if status == 200 && body["status"] == "stored" {
                    let mut acknowledged = acknowledged.lock().unwrap();
                    acknowledged.push(i);
                    if acknowledged.len() == KILL_AFTER {
                        // Mid-load: other requests are being written right now.
                        crate::helpers::kill_9(pid);
                    }
                }
            }
        });
    }
    senders.join_all().await;
    crate::helpers::assert_killed(&mut child);
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= KILL_AFTER, "{}", acknowledged.len());
    assert!(
        acknowledged.len() < NOTIFICATIONS,
        "the kill came before the load ended"
    );

    // Restart on the same database: everything acknowledged is there.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let app = TestApp::spawn_on(pki, dir, &text, pg).await;
    for &i in &acknowledged {
        let uuid = format!("crash-{i:05}");
        let stored: i64 =
            sqlx::query_scalar("SELECT count(*) FROM notifications WHERE notification_uuid = $1")
                .bind(&uuid)
                .fetch_one(&mut app.db().await)
                .await
                .unwrap();
        assert_eq!(stored, 1, "{uuid} was acknowledged and is lost");
        let (status, s) = app
            .api(&format!("/v1/subscriptions/9{i:015}?at=1748736000000"))
            .await;
        assert_eq!(
            (status, s["status"].as_str(), s["entitled"].as_bool()),
            (200, Some("ACTIVE"), Some(true)),
            "{uuid}: {s}"
        );
        assert_eq!(s["transactionId"], format!("8{i:015}"));
    }
    // Whatever else was committed before the kill is consistent too: the
    // ledger is exactly what a rebuild makes of the stored notifications.
    let before = app.tables().await;
    let out = app.cli(&["rebuild"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(app.tables().await, before);
    // And Apple's retries of the rest are taken as new.
    let retry = (0..NOTIFICATIONS)
        .find(|i| !acknowledged.contains(i))
        .unwrap();
    let (status, body) = app.post_raw(bodies[retry].clone()).await;
    assert_eq!(status, 200, "{body}");
}

// The same tests on PostgreSQL, each on a fresh database there.
on_postgres! {
    sigkill_under_load_loses_no_acknowledged_notification,
}
