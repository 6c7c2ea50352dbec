//! The client itself: api-check, the 401 diagnosis, rate, retries, environments.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_is_diagnosed() {
    let fake = FakeApple::start().await;
    let app = app(&fake).await;
    {
        let mut s = fake.state();
        s.unauthorized = true;
        s.date_offset_secs = -600;
    }
    let run = api_check(&app, "Production", "1").await;
    assert_eq!(run.code, Some(1));
    let out = &run.stdout;
    for expected in [
        "APPLE_NOT_AUTHORIZED",
        "2X9R4HXF34",
        "57246542-96fe-1a63-e053-0824d011072a",
        BUNDLE_ID,
        "ahead of Apple's Date header",
        "asked Production",
        "no approved version",
    ] {
        assert!(out.contains(expected), "{expected:?} missing from:\n{out}");
    }
    // The secret never appears.
    assert!(!out.contains("PRIVATE KEY") && !run.stderr.contains("PRIVATE KEY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_check_sees_the_test_notification_arrive() {
    let fake = FakeApple::start().await;
    let app = app(&fake).await;
    let test = Post::new(&app, "TEST", now()).token();
    {
        let mut s = fake.state();
        s.test_notification = Some(test);
        s.deliver_to = Some(format!("{}/v2/notifications", app.address));
    }
    let run = api_check(&app, "Sandbox", "10").await;
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("arrived at this service"),
        "{}",
        run.stdout
    );

    // Apple tried and our endpoint failed: the attempts are reported.
    let lost = Post::new(&app, "TEST", now()).token();
    {
        let mut s = fake.state();
        s.test_notification = Some(lost);
        s.deliver_to = None;
        s.test_send_attempts = json!([{"attemptDate": now(), "sendAttemptResult": "SSL_ISSUE"}]);
    }
    let run = api_check(&app, "Sandbox", "1").await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stdout.contains("SSL_ISSUE") && run.stdout.contains("TLS"),
        "{}",
        run.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_keeps_its_rate_bounds_its_retries_and_names_the_other_environment() {
    use appstore_ledger::appstore_api::Error;
    use appstore_ledger::model::Environment;
    let fake = FakeApple::start().await;
    let app = app(&fake).await;
    let api = clients(&app);
    let sandbox = api.client(BUNDLE_ID, &Environment::Sandbox).unwrap();

    // 4040010: not here; the other environment is named.
    let error = sandbox.transaction_info("123").await.unwrap_err();
    assert!(
        matches!(error, Error::TransactionNotFound { .. }),
        "{error}"
    );
    assert_eq!(error.apple_error_code(), Some(4040010));
    assert!(error.to_string().contains("ask Production"), "{error}");

    // A retryable code that does not clear: bounded attempts, then a clear error.
    for _ in 0..3 {
        fake.state().scripted.push_back(Scripted {
            path: "/inApps/v1/subscriptions",
            query: "",
            status: 500,
            body: Some(json!({"errorCode": 5000000, "errorMessage": "An unknown error occurred."})),
            retry_after_ms: None,
            in_seconds: false,
        });
    }
    let error = sandbox.all_subscription_statuses("123").await.unwrap_err();
    assert!(
        matches!(error, Error::RetriesExhausted { attempts: 3, .. }),
        "{error}"
    );
    assert_eq!(fake.seen("/inApps/v1/subscriptions").len(), 3);

    // A Retry-After in seconds (as a proxy may send it) is honoured too.
    fake.state().scripted.push_back(Scripted {
        path: "/inApps/v1/transactions",
        query: "",
        status: 429,
        body: None,
        retry_after_ms: Some(1_000),
        in_seconds: true,
    });
    let before = fake.seen("/inApps/v1/transactions").len();
    let _ = sandbox.transaction_info("123").await;
    let seen = fake.seen("/inApps/v1/transactions");
    assert_eq!(seen.len(), before + 2);
    let gap = seen[before + 1].at - seen[before].at;
    assert!(gap >= 1_000, "retried after {gap} ms");

    // 50 requests per second at most (the configured limit): ten take 180 ms or more.
    let started = std::time::Instant::now();
    for _ in 0..10 {
        let _ = sandbox.transaction_info("123").await;
    }
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(180),
        "{:?}",
        started.elapsed()
    );
    assert!(fake.state().refused_tokens.is_empty());
}

// The same tests on PostgreSQL, each on a fresh database there.
on_postgres! {
    a_401_is_diagnosed,
    api_check_sees_the_test_notification_arrive,
    the_client_keeps_its_rate_bounds_its_retries_and_names_the_other_environment,
}
