//! Drives the running service over loopback with distinct signed
//! notifications at a chosen concurrency, and prints notifications per second
//! and latency percentiles. Every answer is a durable commit.
//!
//! `cargo bench --bench ingest -- [--notifications N] [--concurrency C]
//! [--postgres URL [--instances I]] [--pool P]` (defaults: 20000, 32,
//! SQLite, 1, the service's default pool of 8). With
//! `--postgres` (a server URL) it runs on a fresh database there, dropped
//! afterwards, with I services sharing it and taking requests in turn. Run
//! by `cargo test --all-targets` (without `--bench`), it only checks that
//! the harness works, on a few notifications.

// Tests may panic: that is how they fail.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;

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
    }
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
    let settings_text = format!(
        r#"
        [server]
        listen = "127.0.0.1:0"
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
        "#,
        dir.display(),
        common::payloads::BUNDLE_ID,
        common::payloads::APP_APPLE_ID,
        // The service's default unless told: on PostgreSQL a request waits
        // for a connection rather than the database for a core.
        pool = options.pool,
    );
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
    let bodies: Arc<Vec<String>> = Arc::new(
        (0..options.notifications)
            .map(|i| {
                // Distinct customers, as in production: each its own subscription.
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
                }
                let token = spec.sign(&pki);
                serde_json::json!({ "signedPayload": token }).to_string()
            })
            .collect(),
    );

    let client = common::bench::client(options.concurrency);
    let (latencies, elapsed) =
        common::bench::drive(options.concurrency, options.notifications, move |i| {
            let (client, bodies) = (client.clone(), Arc::clone(&bodies));
            let url = urls[i % urls.len()].clone();
            async move {
                let body = bodies[i].clone();
                let response = client.post(&url).body(body).send().await.unwrap();
                let status = response.status().as_u16();
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                // Only a durable, first-time store counts: a duplicate or a
                // quarantine would be a faster, different measurement.
                assert_eq!(
                    (status, body["status"].as_str()),
                    (200, Some("stored")),
                    "notification {i}"
                );
            }
        })
        .await;
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
}
