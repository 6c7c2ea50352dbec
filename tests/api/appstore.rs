//! The App Store Server API against a fake Apple started in the test:
//! backfill, its resumption and Apple's rate limits, reconciliation, the
//! corrected refund rule, api-check and the 401 diagnosis.

use serde_json::{json, Value};

use appstore_ledger::check::{self, Tolerances};
use appstore_ledger::model::Timestamp;
use appstore_ledger::stop::Stop;
use appstore_ledger::store::Store;

use crate::common::pki::TestPki;
use crate::fake_apple::{api_config, FakeApple, Scripted};
use crate::helpers::{pki, uuid, TempDir, TestApp, APP_APPLE_ID, BUNDLE_ID};
use crate::ledger::{now, renewal, revoked, subscription, tx, Post, DAY};

const NO_SCHEDULE: &str = "backfill_interval_ms = 0\nreconcile_interval_ms = 0";

/// A service whose app has `[apps.api]` pointing at `production` and
/// `sandbox`, trusting `pki`.
async fn app_with(
    production: &FakeApple,
    sandbox: &FakeApple,
    schedule: &str,
    pki: TestPki,
) -> TestApp {
    let dir = TempDir::new();
    let extra = api_config(
        &dir,
        &production.key_pem,
        &production.url,
        &sandbox.url,
        schedule,
    );
    TestApp::spawn_with(pki, dir, &extra).await
}

/// Both environments served by one fake.
async fn app(fake: &FakeApple) -> TestApp {
    app_with(fake, fake, NO_SCHEDULE, pki()).await
}

/// `n` signed SUBSCRIBED/DID_RENEW notifications of one monthly subscription.
fn history(app: &TestApp, otid: &str, n: usize) -> Vec<(String, String)> {
    let start = now() - 100 * DAY;
    (0..n)
        .map(|i| {
            let purchase = start + i as i64 * 30 * DAY;
            let id = uuid();
            let token = Post::new(
                app,
                if i == 0 { "SUBSCRIBED" } else { "DID_RENEW" },
                purchase,
            )
            .uuid(&id)
            .status(1)
            .tx(tx(
                otid,
                &format!("{otid}{i:02}"),
                "monthly",
                purchase,
                purchase + 30 * DAY,
            ))
            .renewal(renewal(otid, "monthly", 1, purchase))
            .token();
            (id, token)
        })
        .collect()
}

fn set_history(fake: &FakeApple, items: &[(String, String)]) {
    fake.state().history = items
        .iter()
        .map(|(_, token)| {
            (
                token.clone(),
                json!([{"attemptDate": now(), "sendAttemptResult": "TIMED_OUT"}]),
            )
        })
        .collect();
}

async fn rows(app: &TestApp, sql: &str) -> Vec<String> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_all(&mut app.db().await)
        .await
        .unwrap()
}

/// Runs the binary off the runtime's threads: the fake Apple and the
/// service answer it meanwhile.
async fn cli(app: &TestApp, args: &[&str]) -> crate::helpers::Cli {
    let config = app.config_path.clone();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_appstore-ledger"))
            .args(&args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        crate::helpers::Cli {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

async fn backfill(app: &TestApp, environment: &str, since: &str) -> crate::helpers::Cli {
    let args = [
        "backfill",
        "--bundle-id",
        BUNDLE_ID,
        "--environment",
        environment,
        "--since",
        since,
    ];
    cli(app, &args).await
}

async fn api_check(app: &TestApp, environment: &str, wait_seconds: &str) -> crate::helpers::Cli {
    let args = [
        "api-check",
        "--bundle-id",
        BUNDLE_ID,
        "--environment",
        environment,
        "--wait-seconds",
        wait_seconds,
    ];
    cli(app, &args).await
}

fn since() -> String {
    (now() - 30 * DAY).to_string()
}

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
    let attempts = rows(&app, "SELECT send_attempts FROM notification_send_attempts").await;
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
        });
        s.scripted.push_back(Scripted {
            path: "/inApps/v1/notifications/history",
            query: "",
            status: 500,
            body: Some(json!({"errorCode": 5000001, "errorMessage": "An unknown error occurred. Please try again."})),
            retry_after_ms: None,
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

/// The status answer Apple gives for a subscription, signed by the app's PKI.
fn status_answer(
    app: &TestApp,
    otid: &str,
    status: i64,
    transaction: &Value,
    renewal: &Value,
) -> Value {
    let signed = now();
    let mut t = transaction.clone();
    t["signedDate"] = json!(signed);
    let mut r = renewal.clone();
    r["signedDate"] = json!(signed);
    json!({
        "environment": "Sandbox", "bundleId": BUNDLE_ID, "appAppleId": APP_APPLE_ID,
        "data": [{"subscriptionGroupIdentifier": "group", "lastTransactions": [{
            "status": status, "originalTransactionId": otid,
            "signedTransactionInfo": app.pki.sign(&t), "signedRenewalInfo": app.pki.sign(&r),
        }]}],
    })
}

/// Runs the check at `at` and keeps its findings, as `serve` does.
async fn check_and_keep(app: &TestApp, at: i64) -> Vec<String> {
    let store = Store::connect(
        &appstore_ledger::config::Settings::load(Some(&app.config_path))
            .unwrap()
            .database,
    )
    .await
    .unwrap();
    let report = check::run(
        &store,
        Timestamp::from_millis(at),
        &Tolerances::default(),
        |_, _| {},
        &Stop::never(),
    )
    .await
    .unwrap()
    .unwrap();
    check::sync_findings(&store, &report.findings, at)
        .await
        .unwrap();
    store.close().await;
    report
        .findings
        .iter()
        .map(|f| format!("{} {}", f.kind.code(), f.subject))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refunded_annual_plan_is_no_finding_before_its_period_ends_and_reconcile_settles_it() {
    let fake = FakeApple::start().await;
    let app = app(&fake).await;
    let otid = "7400";
    let purchase = now() - 400 * DAY;
    let expires = purchase + 365 * DAY; // 35 days ago
    let annual = tx(otid, "740001", "annual", purchase, expires);
    Post::new(&app, "SUBSCRIBED", purchase)
        .subtype("INITIAL_BUY")
        .status(1)
        .tx(annual.clone())
        .renewal(renewal(otid, "annual", 1, purchase))
        .send()
        .await;
    let refunded = purchase + 30 * DAY;
    let refunded_tx = revoked(annual.clone(), refunded, "REFUND_FULL");
    Post::new(&app, "REFUND", refunded)
        .status(5)
        .tx(refunded_tx.clone())
        .renewal(renewal(otid, "annual", 0, refunded))
        .send()
        .await;

    // Months after the refund, before the refunded period ends: Apple owes nothing yet.
    assert!(check_and_keep(&app, expires - DAY).await.is_empty());
    let answer = subscription(&app, otid).await;
    assert_eq!(answer["nextExpectedEventDate"], expires, "{answer}");
    // After it ended (and the tolerance), Apple's silence is a finding.
    let findings = check_and_keep(&app, now()).await;
    assert_eq!(findings, vec![format!("REFUND_WITHOUT_EXPIRATION {otid}")]);

    // Apple confirms: revoked, auto-renew off.
    fake.state().statuses.insert(
        otid.into(),
        status_answer(&app, otid, 5, &refunded_tx, &renewal(otid, "annual", 0, 0)),
    );
    fake.state()
        .transactions
        .insert(otid.into(), vec![app.pki.sign(&refunded_tx)]);
    let run = cli(&app, &["reconcile", "--open-findings"]).await;
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("REFUND_WITHOUT_EXPIRATION CONFIRMED_BY_APPLE"),
        "{}",
        run.stdout
    );
    let (_, body) = app.api("/v1/inconsistencies?open=false").await;
    let finding = &body["inconsistencies"][0];
    assert_eq!(finding["resolution"], "CONFIRMED_BY_APPLE", "{body}");
    assert!(finding["resolvedAt"].is_i64());
    // Settled for good: the next check finds nothing, and nothing more is expected.
    assert!(check_and_keep(&app, now()).await.is_empty());
    assert!(subscription(&app, otid).await["nextExpectedEventDate"].is_null());
    assert!(fake.state().refused_tokens.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_corrects_a_missed_renewal_from_transaction_history() {
    let fake = FakeApple::start().await;
    let app = app(&fake).await;
    let otid = "7500";
    let purchase = now() - 32 * DAY;
    let first = tx(otid, "750001", "monthly", purchase, purchase + 30 * DAY);
    Post::new(&app, "SUBSCRIBED", purchase)
        .status(1)
        .tx(first.clone())
        .renewal(renewal(otid, "monthly", 1, purchase))
        .send()
        .await;
    assert_eq!(
        check_and_keep(&app, now()).await,
        vec![format!("RENEWAL_OUTCOME_OVERDUE {otid}")]
    );
    assert_eq!(subscription(&app, otid).await["entitled"], false);

    // The DID_RENEW push was lost; Apple knows the renewal.
    let renewed_at = purchase + 30 * DAY;
    let second = tx(otid, "750002", "monthly", renewed_at, renewed_at + 30 * DAY);
    fake.state().transactions.insert(
        otid.into(),
        vec![app.pki.sign(&first), app.pki.sign(&second)],
    );
    fake.state().statuses.insert(
        otid.into(),
        status_answer(&app, otid, 1, &second, &renewal(otid, "monthly", 1, 0)),
    );
    let run = cli(&app, &["reconcile", "--original-transaction-id", otid]).await;
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("RENEWAL_OUTCOME_OVERDUE CORRECTED_FROM_APPLE"),
        "{}",
        run.stdout
    );
    let answer = subscription(&app, otid).await;
    assert_eq!(answer["entitled"], true, "{answer}");
    assert_eq!(answer["transactionId"], "750002");
    assert_eq!(answer["expiresDate"], renewed_at + 30 * DAY);
    let (_, history) = app.api(&format!("/v1/subscriptions/{otid}/history")).await;
    assert_eq!(
        history["appleAnswers"].as_array().unwrap().len(),
        2,
        "{history}"
    );
    // Only the transaction the ledger never saw was kept from the history.
    assert_eq!(
        rows(&app, "SELECT source FROM apple_evidence ORDER BY source").await,
        vec!["GET_ALL_SUBSCRIPTION_STATUSES", "GET_TRANSACTION_HISTORY"]
    );

    // A later push still wins: it is ordered by signedDate, after Apple's answer.
    Post::new(&app, "EXPIRED", now() + 1_000)
        .subtype("VOLUNTARY")
        .status(2)
        .tx(second.clone())
        .renewal(renewal(otid, "monthly", 0, now() + 1_000))
        .send()
        .await;
    assert_eq!(subscription(&app, otid).await["status"], "EXPIRED");
    // And rebuild gives the same ledger, evidence included.
    let before = rows(
        &app,
        "SELECT kind || item_id || state FROM ledger_items ORDER BY 1",
    )
    .await;
    assert_eq!(cli(&app, &["rebuild"]).await.code, Some(0));
    assert_eq!(
        rows(
            &app,
            "SELECT kind || item_id || state FROM ledger_items ORDER BY 1"
        )
        .await,
        before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_unknown_in_production_is_found_in_sandbox() {
    let production = FakeApple::start().await;
    let sandbox = FakeApple::start().await;
    let dir = TempDir::new();
    let extra = api_config(
        &dir,
        &production.key_pem,
        &production.url,
        &sandbox.url,
        NO_SCHEDULE,
    );
    // Both fakes must accept the same key.
    sandbox.trust_key_of(&production);
    let app = TestApp::spawn_with(pki(), dir, &extra).await;
    let otid = "7600";
    let t = tx(otid, "760001", "monthly", now() - DAY, now() + 29 * DAY);
    sandbox.state().statuses.insert(
        otid.into(),
        status_answer(&app, otid, 1, &t, &renewal(otid, "monthly", 1, 0)),
    );
    sandbox.state().transactions.insert(otid.into(), vec![]);

    let run = cli(&app, &["reconcile", "--original-transaction-id", otid]).await;
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        production.seen("/inApps/v2/history").len(),
        1,
        "asked Production first"
    );
    assert_eq!(subscription(&app, otid).await["entitled"], true);

    let unknown = cli(&app, &["reconcile", "--original-transaction-id", "7699"]).await;
    assert_eq!(unknown.code, Some(1));
    assert!(
        unknown.stderr.contains("UNKNOWN_SUBSCRIPTION"),
        "{}",
        unknown.stderr
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

/// The clients of `app`'s configuration, with quick retries.
fn clients(app: &TestApp) -> appstore_ledger::appstore_api::AppStoreApi {
    use appstore_ledger::appstore_api::{AppStoreApi, RetryPolicy};
    let settings = appstore_ledger::config::Settings::load(Some(&app.config_path)).unwrap();
    let retry = RetryPolicy {
        max_attempts: 3,
        base_delay: std::time::Duration::from_millis(20),
        max_delay: std::time::Duration::from_millis(100),
        max_rate_limit_wait: std::time::Duration::from_secs(5),
    };
    AppStoreApi::from_settings(&settings.apps, retry).unwrap()
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
        });
    }
    let error = sandbox.all_subscription_statuses("123").await.unwrap_err();
    assert!(
        matches!(error, Error::RetriesExhausted { attempts: 3, .. }),
        "{error}"
    );
    assert_eq!(fake.seen("/inApps/v1/subscriptions").len(), 3);

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reconciles_open_findings_on_its_own() {
    let fake = FakeApple::start().await;
    let dir = TempDir::new();
    let mut extra = api_config(
        &dir,
        &fake.key_pem,
        &fake.url,
        &fake.url,
        "backfill_interval_ms = 0\nreconcile_interval_ms = 200",
    );
    extra.push_str("\n[check]\ninterval_ms = 100\n");
    let app = TestApp::spawn_with(pki(), dir, &extra).await;
    let otid = "7800";
    let purchase = now() - 32 * DAY;
    let first = tx(otid, "780001", "monthly", purchase, purchase + 30 * DAY);
    Post::new(&app, "SUBSCRIBED", purchase)
        .status(1)
        .tx(first.clone())
        .renewal(renewal(otid, "monthly", 0, purchase))
        .send()
        .await;
    // Apple says it expired; the EXPIRED push was lost.
    fake.state().statuses.insert(
        otid.into(),
        status_answer(&app, otid, 2, &first, &renewal(otid, "monthly", 0, 0)),
    );
    fake.state().transactions.insert(otid.into(), vec![]);
    for _ in 0..100 {
        let (_, body) = app.api("/v1/inconsistencies?open=false").await;
        if body["inconsistencies"][0]["resolution"] == "CORRECTED_FROM_APPLE" {
            assert_eq!(body["inconsistencies"][0]["kind"], "EXPIRATION_OVERDUE");
            assert_eq!(subscription(&app, otid).await["status"], "EXPIRED");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("serve did not reconcile the open finding within 10 s");
}
