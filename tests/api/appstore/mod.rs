//! The App Store Server API against a fake Apple started in the test:
//! backfill, its resumption and Apple's rate limits, reconciliation, the
//! corrected refund rule, api-check and the 401 diagnosis. Here, what the
//! tests share.

mod backfill;
mod client;
pub(crate) mod consumption;
mod copy_store;
mod extend;
mod order;
mod reconcile;
mod refund_history;
mod reported;
mod token;

use serde_json::{json, Value};

use appstore_ledger::check::{self, Tolerances};
use appstore_ledger::model::Timestamp;
use appstore_ledger::stop::Stop;

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
pub(crate) async fn cli(app: &TestApp, args: &[&str]) -> crate::helpers::Cli {
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
pub(crate) async fn check_and_keep(app: &TestApp, at: i64) -> Vec<String> {
    let store = app.store().await;
    let products = appstore_ledger::config::Settings::load(Some(&app.config_path))
        .unwrap()
        .products();
    let report = check::run(
        &store,
        Timestamp::from_millis(at),
        &Tolerances::default(),
        &products,
        |_, _| {},
        &Stop::new(),
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
    AppStoreApi::from_settings(&settings.apps, retry, &appstore_ledger::clock::system()).unwrap()
}
