//! The support console's pages at scale: the timeline of a customer with
//! 1,000 notifications (target: under 100 ms on the server), among
//! `--subscriptions` others of 10 notifications each; the refund audit
//! (its page of 2,000 refunds and the CSV); delivery health. Each page is
//! asked `--requests` times, one at a time, over loopback, signed in as an
//! agent; the figures include HTTP and the access log's write.
//!
//! `cargo bench --bench console -- [--subscriptions S] [--requests R] [--postgres URL]`
//! (defaults 100,000, 200 and SQLite). Without `--bench` (as
//! `cargo test --all-targets` runs it) it only checks the harness.

// Tests may panic: that is how they fail.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

#[path = "../tests/common/mod.rs"]
mod common;

use common::bench::{generated_notification, percentile};

use appstore_ledger::config::Settings;
use appstore_ledger::startup::Application;
use appstore_ledger::store::{ConsoleUser, Store};

const DAY: i64 = 86_400_000;
/// The customer whose timeline is drawn: one subscription, 1,000 notifications.
const CUSTOMER_NOTIFICATIONS: usize = 1_000;
const PER_SUBSCRIPTION: usize = 10;
const PASSWORD: &str = "bench password 0123";

fn main() {
    let args = common::bench::Args::from_env();
    let subscriptions = args.number("--subscriptions", 100_000, 200);
    let requests = args.number("--requests", 200, 5);
    let postgres = args.text("--postgres");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(subscriptions, requests, postgres));
}

async fn run(subscriptions: usize, requests: usize, postgres: Option<String>) {
    let dir = std::env::temp_dir().join(format!(
        "appstore-ledger-console-bench-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let name = format!("appstore_ledger_console_bench_{}", std::process::id());
    let url = match &postgres {
        Some(server) => common::bench::fresh_postgres(server, &name).await,
        None => format!("sqlite://{}/console.db", dir.display()),
    };
    let settings = Settings::from_toml(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[database]\nurl = \"{url}\"\n[log]\nlevel = \"error\"\n[check]\ninterval_ms = 0\n"
    ))
    .unwrap();
    let now = appstore_ledger::clock::Clock::now(&appstore_ledger::clock::SystemClock).as_millis();
    let store = Store::connect(&settings.database).await.unwrap();
    eprintln!("storing {subscriptions} subscriptions and the customer's {CUSTOMER_NOTIFICATIONS} notifications...");
    // Subscription 0 is the customer (its last notification a REFUND: 0 % 10
    // == 0); the others have ten notifications each.
    let customer: Vec<_> = (0..CUSTOMER_NOTIFICATIONS)
        .map(|n| {
            generated_notification(
                0,
                n,
                CUSTOMER_NOTIFICATIONS,
                now - 999 * 30 * DAY - DAY,
                now,
            )
        })
        .collect();
    store.import_notifications(&customer).await.unwrap();
    for chunk in (1..=subscriptions).collect::<Vec<_>>().chunks(2_000) {
        let batch: Vec<_> = chunk
            .iter()
            .flat_map(|&s| {
                let start = now - 299 * DAY + (s % 1000) as i64 * 60_000;
                (0..PER_SUBSCRIPTION)
                    .map(move |n| generated_notification(s, n, PER_SUBSCRIPTION, start, now))
            })
            .collect();
        store.import_notifications(&batch).await.unwrap();
    }
    store
        .rebuild(|_, _| {}, &appstore_ledger::stop::Stop::new())
        .await
        .unwrap();
    let hash = appstore_ledger::console::users::hash_password(PASSWORD).unwrap();
    let agent = ConsoleUser {
        name: "agent".into(),
        role: "support".into(),
        created_at: now,
    };
    store.add_console_user(&agent, &hash).await.unwrap();
    store.close().await;

    let application = Application::build(settings).await.unwrap();
    let base = format!("http://127.0.0.1:{}", application.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(application.run_until(async {
        let _ = stopped.await;
    }));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie = sign_in(&client, &base).await;

    let token = format!("00000000-0000-4000-8000-{:012}", 0);
    for (what, path, expect) in [
        (
            "timeline of 1,000 notifications",
            format!("/console/customer?appAccountToken={token}"),
            "REFUND",
        ),
        (
            "refund audit (newest 2,000)",
            "/console/refunds".to_owned(),
            "refund(s) and revocation(s) shown",
        ),
        (
            "refund audit CSV",
            "/console/refunds.csv".to_owned(),
            "notificationUUID",
        ),
        (
            "delivery health",
            "/console/delivery".to_owned(),
            "Delivery health",
        ),
    ] {
        let mut latencies = Vec::with_capacity(requests);
        let mut bytes = 0;
        for _ in 0..requests {
            let started = Instant::now();
            let response = client
                .get(format!("{base}{path}"))
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{path}");
            let body = response.text().await.unwrap();
            latencies.push(started.elapsed());
            assert!(body.contains(expect), "{path}");
            bytes = body.len();
        }
        latencies.sort();
        report(what, &latencies, bytes);
    }
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(server) = &postgres {
        common::bench::drop_postgres(server, &name).await;
    }
}

fn report(what: &str, latencies: &[Duration], bytes: usize) {
    println!(
        "{what}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} requests, {} KB)",
        percentile(latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(latencies, 0.99).as_secs_f64() * 1000.0,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
        latencies.len(),
        bytes / 1024
    );
}

/// Signs in as the agent; the session cookie.
async fn sign_in(client: &reqwest::Client, base: &str) -> String {
    let form = client
        .get(format!("{base}/console/login"))
        .send()
        .await
        .unwrap();
    let login_cookie = form
        .headers()
        .get_all("set-cookie")
        .iter()
        .find_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .unwrap();
    let body = form.text().await.unwrap();
    let start = body.find(r#"name="csrf" value=""#).unwrap() + 19;
    let csrf = &body[start..start + body[start..].find('"').unwrap()];
    let signed_in = client
        .post(format!("{base}/console/login"))
        .header("cookie", login_cookie)
        .form(&[
            ("csrf", csrf),
            ("username", "agent"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    signed_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("console_session="))
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_owned()
}
