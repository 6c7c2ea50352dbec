//! Drives the running service over loopback with distinct signed
//! notifications at a chosen concurrency, and prints notifications per second
//! and latency percentiles. Every answer is a durable commit.
//!
//! `cargo bench --bench ingest -- [--notifications N] [--concurrency C]
//! [--postgres URL [--instances I]] [--pool P] [--endpoint]` (defaults:
//! 20000, 32, SQLite, 1, the service's default pool of 8, no endpoint).
//! With `--endpoint` the service delivers each notification's entitlement
//! event to a webhook receiver on loopback, and the bench also prints the
//! delivery latency: from the notification's POST to the receiver's answer
//! (an upper bound of the time from the fold's commit). With
//! `--postgres` (a server URL) it runs on a fresh database there, dropped
//! afterwards, with I services sharing it and taking requests in turn. Run
//! by `cargo test --all-targets` (without `--bench`), it only checks that
//! both harnesses work, on a few notifications.
//!
//! `--outside [--duration SECONDS] [--runs R] [--bodies DIR]` (defaults: 10,
//! 5, signed afresh; with the options above but `--notifications`, here the
//! bodies signed when DIR holds none, 60000): the service runs as its own
//! process (this build's binary, `serve`) and this one drives it as an
//! outside load generator would, for a fixed duration per run, each run on a
//! fresh database; it prints each run's figures and their spread. See
//! outside.rs.

// Tests may panic: that is how they fail.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

#[path = "../../tests/common/mod.rs"]
mod common;
mod outside;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use appstore_ledger::config::Settings;
use appstore_ledger::startup::Application;
use common::bench::percentile;
use common::payloads::NotificationSpec;
use common::pki::{date, ChainSpec, TestPki};

struct Options {
    notifications: usize,
    concurrency: usize,
    measure: bool,
    /// A PostgreSQL server to run on instead of SQLite.
    postgres: Option<String>,
    instances: usize,
    /// `database.max_connections` of each service.
    pool: usize,
    /// Deliver events to a webhook receiver on loopback.
    endpoint: bool,
    /// The service as its own process, driven for a fixed duration.
    outside: Option<outside::Outside>,
}

fn options() -> Options {
    let args = common::bench::Args::from_env();
    Options {
        notifications: args.number("--notifications", 20_000, 200),
        concurrency: args.number("--concurrency", 32, 8),
        measure: args.measure,
        postgres: args.text("--postgres"),
        instances: args.number("--instances", 1, 1).max(1),
        pool: args.number("--pool", 8, 8).max(1),
        // The harness's check (without --bench) runs the delivery path too.
        endpoint: args.flag("--endpoint") || !args.measure,
        outside: (args.flag("--outside") || !args.measure).then(|| outside::Outside {
            runs: args.number("--runs", 5, 1).max(1),
            duration: std::time::Duration::from_secs_f64(
                args.text("--duration")
                    .and_then(|d| d.parse().ok())
                    .unwrap_or(if args.measure { 10.0 } else { 1.0 }),
            ),
            concurrency: args.number("--concurrency", 32, 8),
            notifications: args.number("--notifications", 60_000, 200),
            bodies: args.text("--bodies").map(std::path::PathBuf::from),
            postgres: args.text("--postgres"),
            instances: args.number("--instances", 1, 1).max(1),
            pool: args.number("--pool", 8, 8).max(1),
            endpoint: args.flag("--endpoint") || !args.measure,
            measure: args.measure,
        }),
    }
}

/// `count` distinct DID_RENEW notifications as Apple posts them, each of its
/// own customer, renewed a minute ago for a month: each changes what its
/// customer is entitled to (one entitlement event each).
fn sign_bodies(pki: &TestPki, count: usize) -> Vec<String> {
    let now = appstore_ledger::clock::Clock::now(&appstore_ledger::clock::SystemClock).as_millis();
    (0..count)
        .map(|i| {
            let mut spec = NotificationSpec::new("DID_RENEW", format!("bench-{i:08}"));
            let otid = format!("3{i:015}");
            for nested in [spec.transaction.as_mut(), spec.renewal.as_mut()]
                .into_iter()
                .flatten()
            {
                nested["originalTransactionId"] = serde_json::json!(otid);
            }
            if let Some(t) = spec.transaction.as_mut() {
                t["transactionId"] = serde_json::json!(format!("4{i:015}"));
                t["purchaseDate"] = serde_json::json!(now - 60_000);
                t["originalPurchaseDate"] = serde_json::json!(now - 60_000);
                t["expiresDate"] = serde_json::json!(now + 30 * 86_400_000);
                t["signedDate"] = serde_json::json!(now);
            }
            if let Some(r) = spec.renewal.as_mut() {
                r["signedDate"] = serde_json::json!(now);
            }
            spec.signed_date = now;
            let token = spec.sign(pki);
            serde_json::json!({ "signedPayload": token }).to_string()
        })
        .collect()
}

/// The service's configuration: the test PKI's root (`dir/root.der`)
/// trusted, the bench's app, no checker, errors only in the log;
/// `endpoint` is more TOML (an `[[events.endpoints]]`) or empty.
fn settings_text(
    dir: &std::path::Path,
    database_url: &str,
    pool: usize,
    listen: &str,
    endpoint: &str,
) -> String {
    format!(
        r#"
        [server]
        listen = "{listen}"
        [database]
        url = "{database_url}"
        max_connections = {pool}
        [verification]
        trusted_roots = ["{}/root.der"]
        [[apps]]
        bundle_id = "{}"
        app_apple_id = {}
        environments = ["Production", "Sandbox"]
        [check]
        interval_ms = 0
        [log]
        level = "error"
        {endpoint}
        "#,
        dir.display(),
        common::payloads::BUNDLE_ID,
        common::payloads::APP_APPLE_ID,
    )
}

/// Posts notification `i` and checks that it was stored: only a durable,
/// first-time store counts (a duplicate or a quarantine would be a faster,
/// different measurement).
async fn post_stored(client: &reqwest::Client, url: &str, body: String, i: usize) {
    let response = client.post(url).body(body).send().await.unwrap();
    let status = response.status().as_u16();
    let answer: serde_json::Value = response.json().await.unwrap_or_default();
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("stored")),
        "notification {i}"
    );
}

/// When each notification's event first reached the receiver, by its
/// notificationUUID (the event's `cause`).
type Received = Arc<std::sync::Mutex<HashMap<String, Instant>>>;

/// Starts a webhook receiver on loopback that answers 204 and keeps when
/// each event first arrived in `received`; its `[[events.endpoints]]`.
async fn receiver(received: Received) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |body: axum::body::Bytes| {
            let received = Arc::clone(&received);
            async move {
                let event: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                if let Some(cause) = event["data"]["cause"].as_str() {
                    received
                        .lock()
                        .unwrap()
                        .entry(cause.to_owned())
                        .or_insert_with(Instant::now);
                }
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!(
        "[[events.endpoints]]\nname = \"bench\"\nurl = \"{url}\"\nsecret = \"whsec_{}\"\n",
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    )
}

fn main() {
    let mut options = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // Benchmarking, one harness or the other; checked as a test, both.
    match options.outside.take() {
        Some(outside) if options.measure => runtime.block_on(outside::run(outside)),
        outside => {
            runtime.block_on(run(options));
            if let Some(outside) = outside {
                runtime.block_on(outside::run(outside));
            }
        }
    }
}

async fn run(options: Options) {
    let dir = std::env::temp_dir().join(format!("appstore-ledger-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pki = TestPki::build(ChainSpec {
        leaf_validity: (date(2020), date(2035)),
        ..ChainSpec::default()
    });
    std::fs::write(dir.join("root.der"), &pki.root_der).unwrap();
    // A fresh database on the PostgreSQL server, or a SQLite file.
    let database_url = match &options.postgres {
        Some(server) => {
            let name = format!("appstore_ledger_bench_{}", std::process::id());
            common::bench::fresh_postgres(server, &name).await
        }
        None => format!("sqlite://{}/bench.db", dir.display()),
    };
    let received: Received = Arc::default();
    let endpoint = if options.endpoint {
        receiver(Arc::clone(&received)).await
    } else {
        String::new()
    };
    let settings_text = settings_text(&dir, &database_url, options.pool, "127.0.0.1:0", &endpoint);
    let mut urls = Vec::new();
    let mut servers = Vec::new();
    for _ in 0..options.instances {
        let application = Application::build(Settings::from_toml(&settings_text).unwrap())
            .await
            .unwrap();
        urls.push(format!(
            "http://127.0.0.1:{}/v2/notifications",
            application.port()
        ));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        servers.push((
            stop,
            tokio::spawn(application.run_until(async {
                let _ = stopped.await;
            })),
        ));
    }
    let urls = Arc::new(urls);

    eprintln!(
        "signing {} distinct notifications...",
        options.notifications
    );
    let bodies = Arc::new(sign_bodies(&pki, options.notifications));

    let client = common::bench::client(options.concurrency);
    let sent_at: Arc<std::sync::Mutex<Vec<Option<Instant>>>> =
        Arc::new(std::sync::Mutex::new(vec![None; options.notifications]));
    let sent = Arc::clone(&sent_at);
    let (latencies, elapsed) =
        common::bench::drive(options.concurrency, options.notifications, move |i| {
            let (client, bodies, sent) = (client.clone(), Arc::clone(&bodies), Arc::clone(&sent));
            let url = urls[i % urls.len()].clone();
            async move {
                let body = bodies[i].clone();
                sent.lock().unwrap()[i] = Some(Instant::now());
                post_stored(&client, &url, body, i).await;
            }
        })
        .await;
    // Every event delivered before the services stop.
    let delivery_latencies = if options.endpoint {
        let sent_at = sent_at.lock().unwrap().clone();
        outside::delivery_latencies(&received, &sent_at).await
    } else {
        Vec::new()
    };
    for (stop, server) in servers {
        let _ = stop.send(());
        server.await.unwrap().unwrap();
    }
    assert_eq!(latencies.len(), options.notifications);

    // What was acknowledged is there: every notification and its own
    // subscription folded into the ledger.
    sqlx::any::install_default_drivers();
    let mut db = <sqlx::AnyConnection as sqlx::Connection>::connect(&database_url)
        .await
        .unwrap();
    let (notifications, items, active): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM notifications),
                (SELECT count(*) FROM ledger_items WHERE kind = 'subscription'),
                (SELECT count(*) FROM ledger_items WHERE status = 'ACTIVE')",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(server) = &options.postgres {
        let name = format!("appstore_ledger_bench_{}", std::process::id());
        common::bench::drop_postgres(server, &name).await;
    }
    let n = options.notifications as i64;
    assert_eq!((notifications, items, active), (n, n, n));

    if !options.measure {
        println!(
            "ingest bench harness: {} notifications stored",
            latencies.len()
        );
        return;
    }
    let database = match options.postgres {
        Some(_) => format!("PostgreSQL, {} instance(s) sharing it", options.instances),
        None => "SQLite (WAL, synchronous=FULL)".to_owned(),
    };
    println!(
        "ingest over loopback, {database}, {} notifications, concurrency {}:",
        options.notifications, options.concurrency
    );
    println!(
        "  notifications per second: {:>8.0}",
        options.notifications as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  latency p50:              {:>8.2} ms",
        percentile(&latencies, 0.50).as_secs_f64() * 1000.0
    );
    println!(
        "  latency p99:              {:>8.2} ms",
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0
    );
    println!(
        "  latency max:              {:>8.2} ms",
        percentile(&latencies, 1.0).as_secs_f64() * 1000.0
    );
    println!("  target: >= 2000 notifications/s, p99 < 50 ms at concurrency 32");
    if options.endpoint {
        println!(
            "  entitlement events delivered to a loopback endpoint, from the POST to the 2xx:"
        );
        for (name, q) in [("p50", 0.50), ("p99", 0.99), ("max", 1.0)] {
            println!(
                "  delivery {name}:             {:>8.2} ms",
                percentile(&delivery_latencies, q).as_secs_f64() * 1000.0
            );
        }
        println!(
            "  target: delivery p99 < 1 s; ingest at most 10% below the run without --endpoint"
        );
    }
}
