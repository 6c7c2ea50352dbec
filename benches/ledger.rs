//! The ledger at scale: `rebuild` over generated stored notifications, then
//! entitlement queries over HTTP against the service on that database.
//!
//! Then the inconsistency checker over a second database of one-notification
//! subscriptions.
//!
//! `cargo bench --bench ledger -- [--notifications N] [--queries Q] [--concurrency C] [--check-subscriptions S]
//! [--postgres URL]` (defaults: 1,000,000, 100,000, 32, 1,000,000 and SQLite; with `--postgres`,
//! fresh databases on that server, dropped afterwards). Without `--bench` (as
//! `cargo test --all-targets` runs it) it only checks the harness on small
//! databases.

// Tests may panic: that is how they fail.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "../tests/common/mod.rs"]
mod common;

use common::bench::percentile;

use appstore_ledger::config::Settings;
use appstore_ledger::startup::Application;
use appstore_ledger::store::{NewNotification, Store};

const DAY: i64 = 86_400_000;
/// Notifications per subscription: SUBSCRIBED, renewals, and an ending.
const PER_SUBSCRIPTION: usize = 10;

struct Options {
    check_subscriptions: usize,
    notifications: usize,
    queries: usize,
    concurrency: usize,
    measure: bool,
    postgres: Option<String>,
}

fn options() -> Options {
    let args = common::bench::Args::from_env();
    Options {
        check_subscriptions: args.number("--check-subscriptions", 1_000_000, 1_000),
        notifications: args.number("--notifications", 1_000_000, 2_000),
        queries: args.number("--queries", 100_000, 500),
        concurrency: args.number("--concurrency", 32, 8),
        measure: args.measure,
        postgres: args.text("--postgres"),
    }
}

/// The stored form of the `n`th notification of subscription `s`.
fn notification(s: usize, n: usize, start: i64, now: i64) -> NewNotification {
    common::bench::generated_notification(s, n, PER_SUBSCRIPTION, start, now)
}

fn main() {
    let options = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(options));
}

async fn run(options: Options) {
    let dir = std::env::temp_dir().join(format!(
        "appstore-ledger-ledger-bench-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let bench_name = |what: &str| format!("appstore_ledger_{what}_bench_{}", std::process::id());
    let ledger_url = match &options.postgres {
        Some(server) => common::bench::fresh_postgres(server, &bench_name("ledger")).await,
        None => format!("sqlite://{}/ledger.db", dir.display()),
    };
    let check_url = match &options.postgres {
        Some(server) => common::bench::fresh_postgres(server, &bench_name("check")).await,
        None => format!("sqlite://{}/check.db", dir.display()),
    };
    let settings = Settings::from_toml(&format!(
        r#"
        [server]
        listen = "127.0.0.1:0"
        [database]
        url = "{}"
        max_connections = {}
        [api]
        tokens = ["bench-token-0123456789"]
        [log]
        level = "error"
        "#,
        ledger_url,
        // PostgreSQL answers each query on a connection of its own.
        if options.postgres.is_some() {
            options.concurrency + 2
        } else {
            8
        }
    ))
    .unwrap();

    let subscriptions = options.notifications.div_ceil(PER_SUBSCRIPTION);
    let now = appstore_ledger::clock::Clock::now(&appstore_ledger::clock::SystemClock).as_millis();
    eprintln!(
        "storing {} generated notifications...",
        subscriptions * PER_SUBSCRIPTION
    );
    let store = Store::connect(&settings.database).await.unwrap();
    // The last period of each ends a day or more after `now`: a populate
    // and rebuild slower than the spread of starts (minutes) must not let
    // renewed subscriptions expire before they are asked about.
    let start = move |s: usize| now - 299 * DAY + (s % 1000) as i64 * 60_000;
    populate(&store, subscriptions, PER_SUBSCRIPTION, start, now).await;

    let started = Instant::now();
    let folded = store
        .rebuild(|_, _| {}, &appstore_ledger::stop::Stop::new())
        .await
        .unwrap()
        .notifications;
    let rebuild_time = started.elapsed();
    assert_eq!(folded as usize, subscriptions * PER_SUBSCRIPTION);
    store.close().await;

    let application = Application::build(settings).await.unwrap();
    let port = application.port();
    let base = format!("http://127.0.0.1:{port}");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(application.run_until(async {
        let _ = stopped.await;
    }));
    let client = common::bench::client(options.concurrency);
    let entitled_count = Arc::new(AtomicUsize::new(0));
    let queries = options.queries;
    let counter = Arc::clone(&entitled_count);
    let (latencies, query_time) = common::bench::drive(options.concurrency, queries, move |i| {
        let (client, base, counter) = (client.clone(), base.clone(), Arc::clone(&counter));
        async move {
            // Spread over all subscriptions (a multiplicative hash of i).
            let s = (i.wrapping_mul(2_654_435_761)) % subscriptions;
            let url = format!("{base}/v1/entitlements?originalTransactionId=1{s:015}");
            let response = client
                .get(&url)
                .bearer_auth("bench-token-0123456789")
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 200);
            let body: serde_json::Value = response.json().await.unwrap();
            // Each answer is checked against what the generator made: the
            // last period refunded (s % 10 == 0) or expired (1) gives no
            // entitlement; a renewal gives one, to the end of the last period.
            let entitlements = body["entitlements"].as_array().expect("entitlements");
            if s % 10 < 2 {
                assert!(entitlements.is_empty(), "subscription {s}: {body}");
            } else {
                let expires = start(s) + PER_SUBSCRIPTION as i64 * 30 * DAY;
                assert_eq!(entitlements.len(), 1, "subscription {s}: {body}");
                assert_eq!(entitlements[0]["productId"], "com.example.app.monthly");
                assert_eq!(entitlements[0]["status"], "ACTIVE");
                assert_eq!(entitlements[0]["expiresDate"], expires, "subscription {s}");
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
    .await;
    // The same queries at a past moment (day 45 of each subscription, its
    // second period), answered from the timeline.
    let client = common::bench::client(options.concurrency);
    let base_at = format!("http://127.0.0.1:{port}");
    let (past_latencies, past_time) =
        common::bench::drive(options.concurrency, queries, move |i| {
            let (client, base) = (client.clone(), base_at.clone());
            async move {
                let s = (i.wrapping_mul(2_654_435_761)) % subscriptions;
                let at = start(s) + 45 * DAY;
                let url = format!("{base}/v1/entitlements?originalTransactionId=1{s:015}&at={at}");
                let response = client
                    .get(&url)
                    .bearer_auth("bench-token-0123456789")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status().as_u16(), 200);
                let body: serde_json::Value = response.json().await.unwrap();
                let entitlements = body["entitlements"].as_array().expect("entitlements");
                assert_eq!(entitlements.len(), 1, "subscription {s} at day 45: {body}");
                assert_eq!(entitlements[0]["status"], "ACTIVE");
                assert_eq!(
                    entitlements[0]["expiresDate"],
                    start(s) + 60 * DAY,
                    "subscription {s}"
                );
            }
        })
        .await;
    // /metrics reads totals the writes keep: its cost must not grow with
    // the database. Counting the tables, as scrapes once did, beside it.
    let scrape_client = common::bench::client(1);
    let mut scrapes = Vec::new();
    for _ in 0..50 {
        let started = Instant::now();
        let text = scrape_client
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        scrapes.push(started.elapsed());
        assert!(
            text.contains(&format!(
                "\nappstore_ledger_stored_notifications {folded}\n"
            )),
            "{text}"
        );
    }
    scrapes.sort();
    let counting = {
        let store = Store::connect(&settings_for_count(&ledger_url))
            .await
            .unwrap();
        let started = Instant::now();
        let counts = store.counts().await.unwrap();
        let took = started.elapsed();
        assert_eq!(counts.notifications as u64, folded);
        store.close().await;
        took
    };
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    assert_eq!(latencies.len(), queries);
    assert_eq!(past_latencies.len(), queries);
    let expected_entitled = (0..queries)
        .filter(|i| (i.wrapping_mul(2_654_435_761) % subscriptions) % 10 >= 2)
        .count();
    assert_eq!(entitled_count.load(Ordering::Relaxed), expected_entitled);

    let (checked, findings, check_time) =
        check_phase(&check_url, options.check_subscriptions, now).await;
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(server) = &options.postgres {
        common::bench::drop_postgres(server, &bench_name("ledger")).await;
        common::bench::drop_postgres(server, &bench_name("check")).await;
    }
    if !options.measure {
        println!("ledger bench harness: rebuilt {folded} notifications, answered {queries} queries, checked {checked}");
        return;
    }
    let database = if options.postgres.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!("ledger at scale, {database}, {subscriptions} subscriptions:");
    println!(
        "  rebuild: {folded} notifications in {:.1} s = {:>8.0} notifications/s (target >= 50,000/s)",
        rebuild_time.as_secs_f64(),
        folded as f64 / rebuild_time.as_secs_f64()
    );
    println!(
        "  entitlement queries over HTTP, concurrency {}: {:>8.0} queries/s (target >= 10,000/s)",
        options.concurrency,
        queries as f64 / query_time.as_secs_f64()
    );
    println!(
        "  latency p50: {:>6.2} ms",
        percentile(&latencies, 0.50).as_secs_f64() * 1000.0
    );
    println!(
        "  latency p99: {:>6.2} ms (target < 10 ms)",
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0
    );
    println!(
        "  the same queries with ?at= a past moment: {:>8.0} queries/s, p50 {:.2} ms, p99 {:.2} ms (target >= 10,000/s, p99 < 10 ms)",
        queries as f64 / past_time.as_secs_f64(),
        percentile(&past_latencies, 0.50).as_secs_f64() * 1000.0,
        percentile(&past_latencies, 0.99).as_secs_f64() * 1000.0
    );
    println!(
        "  /metrics scrape: p50 {:.2} ms, max {:.2} ms (counting the tables instead: {:.1} ms)",
        percentile(&scrapes, 0.50).as_secs_f64() * 1000.0,
        percentile(&scrapes, 1.0).as_secs_f64() * 1000.0,
        counting.as_secs_f64() * 1000.0
    );
    println!(
        "  check: {checked} subscriptions in {:.1} s = {:>8.0} subscriptions/s, {findings} findings (target >= 100,000/s)",
        check_time.as_secs_f64(),
        checked as f64 / check_time.as_secs_f64()
    );
}

fn settings_for_count(url: &str) -> appstore_ledger::config::DatabaseSettings {
    appstore_ledger::config::DatabaseSettings {
        url: url.to_owned(),
        max_connections: 1,
        busy_timeout_ms: 5_000,
    }
}

/// Stores `subscriptions` x `per_subscription` generated notifications.
async fn populate(
    store: &Store,
    subscriptions: usize,
    per_subscription: usize,
    start: impl Fn(usize) -> i64,
    now: i64,
) {
    let batch = 5_000;
    for first in (0..subscriptions).step_by(batch) {
        let notifications: Vec<NewNotification> = (first..(first + batch).min(subscriptions))
            .flat_map(|s| (0..per_subscription).map(move |n| (s, n)))
            .map(|(s, n)| notification(s, n, start(s), now))
            .collect();
        store.import_notifications(&notifications).await.unwrap();
    }
}

/// One SUBSCRIBED per subscription; one in a hundred is long past its
/// expiresDate with auto-renew on (RENEWAL_OUTCOME_OVERDUE), the rest current.
async fn check_phase(url: &str, subscriptions: usize, now: i64) -> (u64, usize, Duration) {
    let settings = appstore_ledger::config::DatabaseSettings {
        url: url.to_owned(),
        max_connections: 4,
        busy_timeout_ms: 5_000,
    };
    let store = Store::connect(&settings).await.unwrap();
    eprintln!("storing {subscriptions} one-notification subscriptions...");
    let start = |s: usize| {
        if s.is_multiple_of(100) {
            now - 60 * DAY
        } else {
            now - 10 * DAY
        }
    };
    populate(&store, subscriptions, 1, start, now).await;
    store
        .rebuild(|_, _| {}, &appstore_ledger::stop::Stop::new())
        .await
        .unwrap();
    let started = Instant::now();
    let report = appstore_ledger::check::run(
        &store,
        appstore_ledger::model::Timestamp::from_millis(now),
        &appstore_ledger::check::Tolerances::default(),
        &appstore_ledger::ledger::Products::default(),
        |_, _| {},
        &appstore_ledger::stop::Stop::new(),
    )
    .await
    .unwrap()
    .expect("nothing stops the benchmark");
    let elapsed = started.elapsed();
    store.close().await;
    assert_eq!(report.items_checked as usize, subscriptions);
    assert_eq!(report.findings.len(), subscriptions.div_ceil(100));
    (report.items_checked, report.findings.len(), elapsed)
}
