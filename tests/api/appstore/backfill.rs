//! Backfill from Notification History: once, resumable, within Apple's limits.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_stores_exactly_the_missing_notifications_once() {
    let fake = FakeApple::start().await;
    let app = app(&fake).await;
    let items = history(&app, "7100", 5);
    // The webhook got two of the five; Apple's history holds all.
    for (_, token) in [&items[0], &items[3]] {
        assert_eq!(app.post(token).await.0, 200);
    }
    set_history(&fake, &items);

    let run = backfill(&app, "Sandbox", &since()).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.stdout.lines().last().unwrap(),
        "fetched 5, stored 3, duplicates 2, rejected 0"
    );
    assert_eq!(app.count("notifications").await, 5);
    // The ledger folded what was missed: the last renewal is the current period.
    assert_eq!(subscription(&app, "7100").await["transactionId"], "710004");
    // Apple's delivery attempts are kept with each notification.
    let attempts = rows(
        &app,
        "SELECT CAST(send_attempts AS TEXT) FROM notification_send_attempts",
    )
    .await;
    assert_eq!(attempts.len(), 5);
    assert!(attempts[0].contains("TIMED_OUT"), "{attempts:?}");
    // ...and shown in the subscription's history, for support.
    let (_, history) = app.api("/v1/subscriptions/7100/history").await;
    let first = &history["notifications"][0];
    assert_eq!(
        first["sendAttempts"][0]["sendAttemptResult"], "TIMED_OUT",
        "{history}"
    );

    let again = backfill(&app, "Sandbox", &since()).await;
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert_eq!(
        again.stdout.lines().last().unwrap(),
        "fetched 5, stored 0, duplicates 5, rejected 0"
    );
    assert_eq!(app.count("notifications").await, 5);
    assert!(
        fake.state().refused_tokens.is_empty(),
        "{:?}",
        fake.state().refused_tokens
    );
    // Every request carried the body Apple expects.
    let first = &fake.seen("/inApps/v1/notifications/history")[0];
    assert_eq!(first.method, "POST");
    assert!(
        first.body["startDate"].is_i64() && first.body["endDate"].is_i64(),
        "{}",
        first.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_history_payload_is_rejected_and_nothing_stored() {
    let fake = FakeApple::start().await;
    let app = app(&fake).await;
    let mut items = history(&app, "7150", 2);
    // Signed by a PKI the service does not trust.
    let stranger = TestApp::spawn().await;
    items.push((uuid(), history(&stranger, "7151", 1).remove(0).1));
    set_history(&fake, &items);
    let run = backfill(&app, "Sandbox", &since()).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.stdout.lines().last().unwrap(),
        "fetched 3, stored 2, duplicates 0, rejected 1"
    );
    assert_eq!(app.count("notifications").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_backfill_continues_and_ends_as_an_uninterrupted_one() {
    let fake = FakeApple::start().await;
    let signer = pki();
    let interrupted = app_with(&fake, &fake, NO_SCHEDULE, signer.clone()).await;
    let items = history(&interrupted, "7200", 5);
    set_history(&fake, &items);
    // The second page fails with a code that is not retryable.
    fake.state().scripted.push_back(Scripted {
        path: "/inApps/v1/notifications/history",
        query: "paginationToken=2",
        status: 400,
        body: Some(json!({"errorCode": 4000006, "errorMessage": "Invalid request."})),
        retry_after_ms: None,
        in_seconds: false,
    });
    let args = [
        "backfill",
        "--bundle-id",
        BUNDLE_ID,
        "--environment",
        "Sandbox",
        "--since",
        &since(),
    ];
    let first = cli(&interrupted, &args).await;
    assert_eq!(first.code, Some(1), "{}", first.stdout);
    assert!(first.stderr.contains("4000006"), "{}", first.stderr);
    assert_eq!(interrupted.count("notifications").await, 2);

    let before = fake.seen("/inApps/v1/notifications/history").len();
    let second = cli(&interrupted, &args).await;
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    assert_eq!(
        second.stdout.lines().last().unwrap(),
        "fetched 5, stored 5, duplicates 0, rejected 0"
    );
    // It went on from the page it had not read, not from the start.
    let resumed = &fake.seen("/inApps/v1/notifications/history")[before];
    assert!(
        resumed.query.contains("paginationToken=2"),
        "{}",
        resumed.query
    );

    // The same history, never interrupted, into another database.
    let fake2 = FakeApple::start().await;
    let whole = app_with(&fake2, &fake2, NO_SCHEDULE, signer).await;
    set_history(&fake2, &items);
    assert_eq!(cli(&whole, &args).await.code, Some(0));
    for sql in [
        "SELECT notification_uuid FROM notifications ORDER BY 1",
        "SELECT kind || item_id || state FROM ledger_items ORDER BY 1",
    ] {
        assert_eq!(
            rows(&interrupted, sql).await,
            rows(&whole, sql).await,
            "{sql}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apple_s_429_is_waited_out_and_retryable_codes_are_retried() {
    let fake = FakeApple::start().await;
    let app = app(&fake).await;
    let items = history(&app, "7300", 2);
    set_history(&fake, &items);
    {
        let mut s = fake.state();
        s.scripted.push_back(Scripted {
            path: "/inApps/v1/notifications/history",
            query: "",
            status: 429,
            body: None,
            retry_after_ms: Some(1_500),
            in_seconds: false,
        });
        s.scripted.push_back(Scripted {
            path: "/inApps/v1/notifications/history",
            query: "",
            status: 500,
            body: Some(json!({"errorCode": 5000001, "errorMessage": "An unknown error occurred. Please try again."})),
            retry_after_ms: None,
            in_seconds: false,
        });
    }
    let run = backfill(&app, "Sandbox", &since()).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.stdout.lines().last().unwrap(),
        "fetched 2, stored 2, duplicates 0, rejected 0"
    );
    let seen = fake.seen("/inApps/v1/notifications/history");
    assert_eq!(seen.len(), 3, "429, 5000001, then the page");
    // Never sooner than Retry-After said.
    assert!(
        seen[1].at - seen[0].at >= 1_500,
        "retried after {} ms",
        seen[1].at - seen[0].at
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_since_outside_apple_s_window_is_a_clear_error() {
    let fake = FakeApple::start().await;
    let app = app(&fake).await;
    let old = (now() - 400 * DAY).to_string();
    let run = backfill(&app, "Production", &old).await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("APPLE_START_DATE_OUTSIDE_WINDOW") && run.stderr.contains("180 days"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_backfills_on_its_own() {
    let fake = FakeApple::start().await;
    let dir = TempDir::new();
    let extra = api_config(
        &dir,
        &fake.key_pem,
        &fake.url,
        &fake.url,
        "backfill_interval_ms = 300\nreconcile_interval_ms = 0",
    );
    let app = TestApp::spawn_with(pki(), dir, &extra).await;
    // Lost pushes show up in Apple's history after the service started.
    set_history(&fake, &history(&app, "7700", 3));
    for _ in 0..100 {
        if app.count("notifications").await == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(app.count("notifications").await, 3);
}

// The same tests on PostgreSQL, each on a fresh database there.
on_postgres! {
    backfill_stores_exactly_the_missing_notifications_once,
    a_forged_history_payload_is_rejected_and_nothing_stored,
    an_interrupted_backfill_continues_and_ends_as_an_uninterrupted_one,
    apple_s_429_is_waited_out_and_retryable_codes_are_retried,
    a_since_outside_apple_s_window_is_a_clear_error,
    serve_backfills_on_its_own,
}
