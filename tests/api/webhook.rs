use serde_json::json;

use crate::common::pki::{date, ChainSpec, TestPki};
use crate::helpers::{config, pki, uuid, NotificationSpec, TempDir, TestApp, BUNDLE_ID};

/// A row of `notifications`, by column name.
struct Row {
    notification_uuid: String,
    notification_type: String,
    subtype: Option<String>,
    signed_date: Option<i64>,
    received_at: i64,
    environment: String,
    bundle_id: String,
    app_apple_id: i64,
    original_transaction_id: String,
    transaction_id: String,
    signed_payload: String,
    payload: String,
}

impl<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> for Row {
    fn from_row(row: &'r sqlx::any::AnyRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row as _;
        Ok(Row {
            notification_uuid: row.try_get("notification_uuid")?,
            notification_type: row.try_get("notification_type")?,
            subtype: row.try_get("subtype")?,
            signed_date: row.try_get("signed_date")?,
            received_at: row.try_get("received_at")?,
            environment: row.try_get("environment")?,
            bundle_id: row.try_get("bundle_id")?,
            app_apple_id: row.try_get("app_apple_id")?,
            original_transaction_id: row.try_get("original_transaction_id")?,
            transaction_id: row.try_get("transaction_id")?,
            signed_payload: row.try_get("signed_payload")?,
            payload: row.try_get("payload")?,
        })
    }
}

#[tokio::test]
async fn a_genuine_notification_is_stored_with_its_decoded_content() {
    let app = TestApp::spawn().await;
    let id = uuid();
    let mut spec = NotificationSpec::new("SUBSCRIBED", id.clone());
    spec.subtype = Some("INITIAL_BUY");
    spec.environment = "Production";
    let token = spec.sign(&app.pki);
    let (status, body) = app.post(&token).await;
    assert_eq!((status, body), (200, json!({"status": "stored"})));

    let row: Row = sqlx::query_as(
        "SELECT notification_uuid, notification_type, subtype, signed_date, received_at, environment,
                bundle_id, app_apple_id, original_transaction_id, transaction_id, signed_payload,
                CAST(payload AS TEXT) AS payload
         FROM notifications",
    )
    .fetch_one(&mut app.db().await)
    .await
    .unwrap();
    assert_eq!(row.notification_uuid, id);
    assert_eq!(row.notification_type, "SUBSCRIBED");
    assert_eq!(row.subtype.as_deref(), Some("INITIAL_BUY"));
    assert_eq!(row.signed_date, Some(crate::common::payloads::SIGNED_DATE));
    assert!(
        row.received_at > 1_700_000_000_000,
        "received_at is now, in milliseconds"
    );
    assert_eq!(row.environment, "Production");
    assert_eq!(row.bundle_id, BUNDLE_ID);
    assert_eq!(row.app_apple_id, crate::helpers::APP_APPLE_ID);
    assert_eq!(row.original_transaction_id, "2000000000000001");
    assert_eq!(row.transaction_id, "2000000000000002");
    assert_eq!(
        row.signed_payload, token,
        "the raw signedPayload is kept as received"
    );
    let payload: serde_json::Value = serde_json::from_str(&row.payload).unwrap();
    assert_eq!(
        payload["data"]["signedTransactionInfo"]["productId"],
        "com.example.app.monthly"
    );
    assert_eq!(payload["data"]["signedRenewalInfo"]["autoRenewStatus"], 1);
}

#[tokio::test]
async fn a_repeat_answers_200_and_changes_nothing() {
    // No periodic check: its findings would change the tables between the
    // two snapshots (it runs once at start, at a moment of its own).
    let app = TestApp::spawn_with(
        crate::helpers::pki(),
        crate::helpers::TempDir::new(),
        "[check]\ninterval_ms = 0\n",
    )
    .await;
    let id = uuid();
    let token = NotificationSpec::new("DID_RENEW", id.clone()).sign(&app.pki);
    assert_eq!(app.post(&token).await, (200, json!({"status": "stored"})));
    let before = app.tables().await;
    assert!(before
        .iter()
        .any(|(t, rows)| t == "ledger_items" && rows.len() == 1));
    assert_eq!(
        app.post(&token).await,
        (200, json!({"status": "duplicate"}))
    );
    // The same notification signed again (other bytes, same UUID) is still a repeat.
    let mut again = NotificationSpec::new("DID_RENEW", id);
    again.signed_date += 1;
    assert_eq!(
        app.post(&again.sign(&app.pki)).await,
        (200, json!({"status": "duplicate"}))
    );
    // Not a row of any table differs: the notification, the ledger, the
    // records and the findings are as the first delivery left them.
    assert_eq!(app.tables().await, before);
}

#[tokio::test]
async fn identical_posts_at_the_same_moment_store_one_row() {
    let app = TestApp::spawn().await;
    let token = NotificationSpec::new("DID_RENEW", uuid()).sign(&app.pki);
    let body = json!({ "signedPayload": token }).to_string();
    let mut posts = tokio::task::JoinSet::new();
    for _ in 0..24 {
        let (client, url, body) = (
            app.client.clone(),
            format!("{}/v2/notifications", app.address),
            body.clone(),
        );
        posts.spawn(async move {
            let response = client.post(url).body(body).send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<serde_json::Value>().await.unwrap(),
            )
        });
    }
    let answers = posts.join_all().await;
    let stored = answers
        .iter()
        .filter(|(s, b)| *s == 200 && b["status"] == "stored")
        .count();
    let duplicates = answers
        .iter()
        .filter(|(s, b)| *s == 200 && b["status"] == "duplicate")
        .count();
    assert_eq!((stored, duplicates), (1, 23), "{answers:?}");
    assert_eq!(app.count("notifications").await, 1);
}

#[tokio::test]
async fn forged_and_broken_payloads_are_refused_with_the_verifiers_code_and_never_stored() {
    let app = TestApp::spawn().await;
    let stranger = pki();
    let expired = TestPki::build(ChainSpec {
        leaf_validity: (date(2020), date(2021)),
        ..ChainSpec::default()
    });
    let genuine = NotificationSpec::new("DID_RENEW", uuid()).sign(&app.pki);
    let (signing_input, _) = genuine.rsplit_once('.').unwrap();
    let bad_signature = format!("{signing_input}.{}", "A".repeat(86));
    let header_none = {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!(
            "{}.{}.",
            b64(r#"{"alg":"none"}"#),
            b64(r#"{"notificationUUID":"x"}"#)
        )
    };
    // A nested transaction for another app inside a genuine envelope.
    let nested_mismatch = {
        let mut t = crate::common::payloads::transaction("Sandbox");
        t["bundleId"] = json!("com.other");
        let payload = json!({
            "notificationType": "DID_RENEW", "notificationUUID": uuid(), "signedDate": 1,
            "data": {"bundleId": BUNDLE_ID, "environment": "Sandbox", "signedTransactionInfo": app.pki.sign(&t)}
        });
        app.pki.sign(&payload)
    };
    for (token, code) in [
        (
            NotificationSpec::new("DID_RENEW", uuid()).sign(&stranger),
            "UNTRUSTED_CHAIN",
        ),
        (
            NotificationSpec::new("DID_RENEW", uuid()).sign(&expired),
            "CERTIFICATE_EXPIRED",
        ),
        (bad_signature, "INVALID_SIGNATURE"),
        (header_none, "INVALID_ALGORITHM"),
        ("not-a-token".to_owned(), "MALFORMED_TOKEN"),
        (nested_mismatch, "BUNDLE_MISMATCH"),
    ] {
        let (status, body) = app.post(&token).await;
        assert_eq!(status, 403, "{code}: {body}");
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(body["error"]["message"].is_string());
    }
    assert_eq!(app.count("notifications").await, 0);
    assert_eq!(app.count("quarantined_notifications").await, 0);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(
            r#"appstore_ledger_notifications_total{outcome="rejected",code="UNTRUSTED_CHAIN"} 1"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_body_that_is_not_the_expected_json_is_a_bad_request() {
    let app = TestApp::spawn().await;
    for body in [
        "",
        "not json",
        "[]",
        "{}",
        r#"{"signedPayload": 5}"#,
        r#"{"payload": "x"}"#,
    ] {
        let (status, answer) = app.post_raw(body.to_owned()).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(answer["error"]["code"], "INVALID_REQUEST", "{body}");
    }
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413() {
    let app = TestApp::spawn().await;
    let huge = json!({ "signedPayload": "a".repeat(300_000) }).to_string();
    let (status, body) = app.post_raw(huge).await;
    assert_eq!(status, 413);
    assert_eq!(body["error"]["code"], "PAYLOAD_TOO_LARGE");
}

/// A declared length over the limit is refused at once, before the body is
/// sent: not after the request timeout, and not with `100 Continue`.
#[tokio::test]
async fn a_declared_oversized_length_is_refused_before_the_body() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn().await;
    let port = app.address.rsplit(':').next().unwrap().to_owned();
    for expect in ["", "Expect: 100-continue\r\n"] {
        let mut stream = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
            .await
            .unwrap();
        let head = format!(
            "POST /v2/notifications HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: 100000000\r\n{expect}\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let started = std::time::Instant::now();
        let mut answer = vec![0u8; 512];
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(2), stream.read(&mut answer))
                .await
                .expect("an answer before any body byte")
                .unwrap();
        let answer = String::from_utf8_lossy(&answer[..read]).into_owned();
        assert!(answer.starts_with("HTTP/1.1 413"), "{expect:?}: {answer}");
        assert!(answer.contains("PAYLOAD_TOO_LARGE"), "{answer}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}

#[tokio::test]
async fn a_test_notification_is_stored_like_any_other() {
    let app = TestApp::spawn().await;
    let mut spec = NotificationSpec::new("TEST", uuid());
    spec.transaction = None;
    spec.renewal = None;
    assert_eq!(
        app.post(&spec.sign(&app.pki)).await,
        (200, json!({"status": "stored"}))
    );
    let kind: String = sqlx::query_scalar("SELECT notification_type FROM notifications")
        .fetch_one(&mut app.db().await)
        .await
        .unwrap();
    assert_eq!(kind, "TEST");
}

#[tokio::test]
async fn an_unavailable_database_answers_503_and_a_later_retry_succeeds() {
    let app = TestApp::spawn().await;
    let token = NotificationSpec::new("DID_RENEW", uuid()).sign(&app.pki);

    // Another process holds the write lock longer than the busy timeout.
    let blocker = app.block_writes().await;
    let (status, body) = app.post(&token).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "DATABASE_UNAVAILABLE");
    // The stable code, never the database's own words.
    assert!(!body.to_string().contains("lock"), "{body}");
    TestApp::unblock_writes(blocker).await;
    assert_eq!(app.count("notifications").await, 0, "nothing half-written");

    // Apple retries later.
    assert_eq!(app.post(&token).await, (200, json!({"status": "stored"})));
    assert_eq!(app.count("notifications").await, 1);
}

/// A notification whose request already answered 503 (it waited behind a
/// lock held elsewhere until the request gave up) is not committed later:
/// Apple will retry it, and the service said it was not stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_requester_gave_up_is_not_committed_later() {
    let (pki, dir) = (crate::helpers::pki(), crate::helpers::TempDir::new());
    let text = crate::helpers::config(&dir, &pki, "", "")
        .replace("busy_timeout_ms = 2000", "busy_timeout_ms = 4000")
        .replace("request_timeout_ms = 5000", "request_timeout_ms = 1000");
    let app = TestApp::spawn_text(pki, dir, &text).await;
    let first = NotificationSpec::new("DID_RENEW", uuid()).sign(&app.pki);
    let second = NotificationSpec::new("DID_RENEW", uuid()).sign(&app.pki);

    let blocker = app.block_writes().await;
    // The first takes the writer, which waits on the lock; the second
    // queues behind it. Both requests give up before the lock is freed.
    let app = std::sync::Arc::new(app);
    let posting = {
        let app = std::sync::Arc::clone(&app);
        tokio::spawn(async move { app.post(&first).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (status, _) = app.post(&second).await;
    assert_eq!(status, 503);
    assert_eq!(posting.await.unwrap().0, 503);
    TestApp::unblock_writes(blocker).await;
    // The first was already in its transaction; the second never starts one.
    tokio::time::sleep(std::time::Duration::from_millis(3_000)).await;
    let uuids: Vec<String> = sqlx::query_scalar("SELECT notification_uuid FROM notifications")
        .fetch_all(&mut app.db().await)
        .await
        .unwrap();
    assert!(uuids.len() <= 1, "{uuids:?}");
    let second_uuid = serde_json::from_str::<serde_json::Value>(&payload_of(&second)).unwrap()
        ["notificationUUID"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        !uuids.contains(&second_uuid),
        "the abandoned write was committed"
    );
}

fn payload_of(token: &str) -> String {
    use base64::Engine;
    String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_restart_keeps_everything() {
    let app = TestApp::spawn().await;
    let token = NotificationSpec::new("DID_RENEW", uuid()).sign(&app.pki);
    assert_eq!(app.post(&token).await.0, 200);
    let mut other = NotificationSpec::new("DID_RENEW", uuid());
    other.bundle_id = "com.unconfigured";
    assert_eq!(app.post(&other.sign(&app.pki)).await.0, 202);

    let subscription = "/v1/subscriptions/2000000000000001?at=1748736000000";
    let (status, before) = app.api(subscription).await;
    assert_eq!(
        (
            status,
            before["status"].as_str(),
            before["entitled"].as_bool()
        ),
        (200, Some("ACTIVE"), Some(true)),
        "{before}"
    );
    // The check that runs at start-up may open findings; the rest must be
    // exactly as it was.
    let tables = without_findings(app.tables().await);

    let app = app.restart().await;
    assert_eq!(without_findings(app.tables().await), tables);
    assert_eq!(app.api(subscription).await, (200, before));
    assert_eq!(
        app.post(&token).await,
        (200, json!({"status": "duplicate"}))
    );
    assert_eq!(without_findings(app.tables().await), tables);
}

/// Without the findings and their counts per kind.
fn without_findings(mut tables: Vec<(String, Vec<String>)>) -> Vec<(String, Vec<String>)> {
    tables.retain(|(name, _)| name != "findings" && name != "open_findings");
    tables
}

#[tokio::test]
async fn a_notification_the_database_refuses_does_not_fail_the_others_written_with_it() {
    // As in notifications_arriving_together_share_a_commit: folds of one
    // subscription take turns on PostgreSQL, and a loaded machine must not
    // turn a slow turn into a 503 for a good notification.
    let (pki, dir) = (pki(), TempDir::new());
    let text =
        config(&dir, &pki, "", "").replace("busy_timeout_ms = 2000", "busy_timeout_ms = 5000");
    let app = TestApp::spawn_text(pki, dir, &text).await;
    // Make the database refuse one notification (a constraint of its own).
    // Both backends write waiting notifications in shared transactions.
    let poison_trigger: &[&'static str] = if app.pg.is_some() {
        &[
            "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.notification_uuid = 'poison' THEN RAISE EXCEPTION 'refused'; END IF;
                 RETURN NEW;
             END $$",
            "CREATE TRIGGER poison BEFORE INSERT ON notifications
             FOR EACH ROW EXECUTE FUNCTION poison()",
        ]
    } else {
        &["CREATE TRIGGER poison BEFORE INSERT ON notifications WHEN NEW.notification_uuid = 'poison'
           BEGIN SELECT RAISE(ABORT, 'refused'); END"]
    };
    for statement in poison_trigger {
        sqlx::query(*statement)
            .execute(&mut app.db().await)
            .await
            .unwrap();
    }
    let poison = NotificationSpec::new("DID_RENEW", "poison").sign(&app.pki);
    let mut tokens: Vec<String> = (0..40)
        .map(|_| NotificationSpec::new("DID_RENEW", uuid()).sign(&app.pki))
        .collect();
    tokens.insert(20, poison.clone());
    // All at once, so that the writer commits them in shared batches.
    let poisoned: Vec<bool> = tokens.iter().map(|token| *token == poison).collect();
    for (is_poison, status) in poisoned
        .into_iter()
        .zip(post_all_at_once(&app, tokens).await)
    {
        assert_eq!(status, if is_poison { 503 } else { 200 });
    }
    assert_eq!(
        app.count("notifications").await,
        40,
        "every other notification is stored"
    );
    let (status, body) = app.post(&poison).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("DATABASE_UNAVAILABLE"))
    );
}

/// Posts every token at the same moment; the statuses, in the tokens' order.
async fn post_all_at_once(app: &TestApp, tokens: Vec<String>) -> Vec<u16> {
    let mut posts = tokio::task::JoinSet::new();
    for (i, token) in tokens.into_iter().enumerate() {
        let (client, url) = (
            app.client.clone(),
            format!("{}/v2/notifications", app.address),
        );
        posts.spawn(async move {
            let body = json!({ "signedPayload": token }).to_string();
            let status = client.post(url).body(body).send().await.unwrap().status();
            (i, status.as_u16())
        });
    }
    let mut statuses = posts.join_all().await;
    statuses.sort_unstable();
    statuses.into_iter().map(|(_, status)| status).collect()
}

/// The sum and count of a histogram in a /metrics text.
fn histogram(text: &str, name: &str) -> (f64, u64) {
    let value = |suffix: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name}_{suffix} ")))
            .unwrap_or_else(|| panic!("{name}_{suffix} in {text}"))
            .trim()
            .to_owned()
    };
    (
        value("sum").parse().unwrap(),
        value("count").parse().unwrap(),
    )
}

/// A service whose writes wait longer for the database than by default.
/// What the tests that use it check is how notifications arriving at once
/// are written, not how long a write may wait for another's lock (on
/// PostgreSQL, folds of one subscription take turns): a loaded machine must
/// not turn a slow turn into a 503.
async fn spawn_patient() -> TestApp {
    let (pki, dir) = (pki(), TempDir::new());
    let text =
        config(&dir, &pki, "", "").replace("busy_timeout_ms = 2000", "busy_timeout_ms = 5000");
    TestApp::spawn_text(pki, dir, &text).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_arriving_together_share_a_commit() {
    let app = spawn_patient().await;
    let before = app.get("/metrics").await.text().await.unwrap();
    let (_, commits_before) = histogram(&before, "appstore_ledger_write_batch_size");
    let tokens = (0..80)
        .map(|_| NotificationSpec::new("DID_RENEW", uuid()).sign(&app.pki))
        .collect();
    let statuses = post_all_at_once(&app, tokens).await;
    assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}");
    let after = app.get("/metrics").await.text().await.unwrap();
    let (notifications, commits) = histogram(&after, "appstore_ledger_write_batch_size");
    let commits = commits - commits_before;
    // Every notification was written in a committed transaction, and
    // fewer transactions than notifications were needed.
    assert!(notifications >= 80.0, "{after}");
    assert!(
        (commits as f64) < notifications,
        "{commits} commits for {notifications} notifications: no batch ever formed"
    );
    eprintln!("80 notifications at once: {commits} commits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_stored_together_are_counted_once_each() {
    // Stored in batches, with repeats of notifications stored before
    // among them: /metrics counts each stored one once, as the table does.
    let app = spawn_patient().await;
    let tokens: Vec<String> = (0..60)
        .map(|_| NotificationSpec::new("DID_RENEW", uuid()).sign(&app.pki))
        .collect();
    let first = post_all_at_once(&app, tokens.iter().take(20).cloned().collect()).await;
    assert!(first.iter().all(|status| *status == 200), "{first:?}");
    let all = post_all_at_once(&app, tokens).await;
    assert!(all.iter().all(|status| *status == 200), "{all:?}");
    assert_eq!(app.count("notifications").await, 60);
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(
        text.contains("\nappstore_ledger_stored_notifications 60\n"),
        "{text}"
    );
    app.assert_totals_match_tables().await;
}

// The same tests on PostgreSQL, each on a fresh database there.
on_postgres! {
    a_genuine_notification_is_stored_with_its_decoded_content,
    a_repeat_answers_200_and_changes_nothing,
    identical_posts_at_the_same_moment_store_one_row,
    forged_and_broken_payloads_are_refused_with_the_verifiers_code_and_never_stored,
    a_body_that_is_not_the_expected_json_is_a_bad_request,
    an_oversized_body_is_refused_with_413,
    a_declared_oversized_length_is_refused_before_the_body,
    a_test_notification_is_stored_like_any_other,
    an_unavailable_database_answers_503_and_a_later_retry_succeeds,
    a_write_whose_requester_gave_up_is_not_committed_later,
    a_restart_keeps_everything,
    a_notification_the_database_refuses_does_not_fail_the_others_written_with_it,
    notifications_arriving_together_share_a_commit,
    notifications_stored_together_are_counted_once_each,
}
