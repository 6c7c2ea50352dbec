//! What the load benchmarks share: their arguments and percentiles.

use std::time::Duration;

use serde_json::json;

use appstore_ledger::ledger::Event;
use appstore_ledger::model::{Environment, NotificationType, Subtype};
use appstore_ledger::store::NewNotification;

const DAY: i64 = 86_400_000;

/// The benchmark's arguments. `cargo bench` passes `--bench`; without it (as
/// `cargo test --all-targets` runs benches) a benchmark only checks its
/// harness on small numbers.
pub struct Args {
    args: Vec<String>,
    pub measure: bool,
}

/// cargo-nextest, which runs the tests (the README's command), first asks
/// each target for its tests (`--list --format terse`), then runs each by
/// name. A benchmark checked as a test is one test, `smoke`: its harness on
/// small numbers. Answers a listing and exits; otherwise returns.
pub fn answer_listing() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        // None of them is ignored.
        if !args.iter().any(|a| a == "--ignored") {
            println!("smoke: test");
        }
        std::process::exit(0);
    }
}

impl Args {
    pub fn from_env() -> Args {
        answer_listing();
        let args: Vec<String> = std::env::args().collect();
        let measure = args.iter().any(|a| a == "--bench");
        Args { args, measure }
    }

    /// `--name VALUE`, if given.
    pub fn text(&self, name: &str) -> Option<String> {
        self.args
            .iter()
            .position(|a| a == name)
            .and_then(|i| self.args.get(i + 1))
            .cloned()
    }

    /// Whether `--name` is given.
    pub fn flag(&self, name: &str) -> bool {
        self.args.iter().any(|a| a == name)
    }

    /// `--name N`, or `measured` when benchmarking, `smoke` otherwise.
    pub fn number(&self, name: &str, measured: usize, smoke: usize) -> usize {
        self.args
            .iter()
            .position(|a| a == name)
            .and_then(|i| self.args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(if self.measure { measured } else { smoke })
    }
}

/// The share of this machine's CPU time its host took (`steal` in
/// /proc/stat) since `from` ([`cpu_ticks`] then): a virtual machine's
/// figures are worth comparing only when it is small. `None` without /proc.
pub fn host_share(from: Option<(u64, u64)>) -> Option<f64> {
    let ((total0, steal0), (total1, steal1)) = (from?, cpu_ticks()?);
    let total = total1.checked_sub(total0).filter(|t| *t > 0)?;
    Some(steal1.saturating_sub(steal0) as f64 / total as f64)
}

/// The machine's CPU time so far and the part its host took, in clock
/// ticks (the first eight columns of /proc/stat's `cpu` line, and the
/// eighth).
pub fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|t| t.parse().ok())
        .collect();
    Some((ticks.iter().sum(), *ticks.get(7)?))
}

/// The `p` quantile of sorted latencies.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// An HTTP client for load, with a connection per concurrent request.
pub fn client(concurrency: usize) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("an HTTP client")
}

/// Runs `request(0..count)` with `concurrency` requests in flight; returns
/// the sorted latencies and the elapsed time.
pub async fn drive<F, Fut>(
    concurrency: usize,
    count: usize,
    request: F,
) -> (Vec<Duration>, Duration)
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (next, request) = (Arc::clone(&next), request.clone());
        workers.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return latencies;
                }
                let sent = Instant::now();
                request(i).await;
                latencies.push(sent.elapsed());
            }
        });
    }
    let mut latencies: Vec<Duration> = workers.join_all().await.into_iter().flatten().collect();
    let elapsed = started.elapsed();
    latencies.sort();
    (latencies, elapsed)
}

/// A fresh database `name` on the PostgreSQL server `server` (a URL); its URL.
pub async fn fresh_postgres(server: &str, name: &str) -> String {
    admin(server, &format!("CREATE DATABASE {name}")).await;
    let mut url = reqwest::Url::parse(server).unwrap();
    url.set_path(&format!("/{name}"));
    url.to_string()
}

pub async fn drop_postgres(server: &str, name: &str) {
    admin(server, &format!("DROP DATABASE {name} WITH (FORCE)")).await;
}

/// One statement on the PostgreSQL server's own database.
async fn admin(server: &str, sql: &str) {
    let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(server)
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut connection)
        .await
        .unwrap();
}

/// The stored form of the `n`th of the `per_subscription` notifications of
/// subscription `s`, which started at `start`: SUBSCRIBED, renewals, and
/// for one subscription in ten a REFUND of the last period, for another an
/// EXPIRED.
pub fn generated_notification(
    s: usize,
    n: usize,
    per_subscription: usize,
    start: i64,
    now: i64,
) -> NewNotification {
    let otid = format!("1{s:015}");
    // Apple's data.status with each: a refund revokes the period it refunds;
    // an expiry comes at the end of the last paid period, with its transaction.
    let (kind, subtype, period, status) = match n {
        0 => ("SUBSCRIBED", Some("INITIAL_BUY"), n, 1),
        n if n == per_subscription - 1 && s.is_multiple_of(10) => ("REFUND", None, n, 5),
        n if n == per_subscription - 1 && s % 10 == 1 => ("EXPIRED", Some("VOLUNTARY"), n - 1, 2),
        _ => ("DID_RENEW", None, n, 1),
    };
    let tid = format!("2{s:011}{period:04}");
    let purchase = start + period as i64 * 30 * DAY;
    let signed = match kind {
        "REFUND" => purchase + 15 * DAY,
        "EXPIRED" => purchase + 30 * DAY,
        _ => purchase,
    };
    let mut transaction = json!({
        "transactionId": tid, "originalTransactionId": otid, "bundleId": "com.example.app",
        "productId": "com.example.app.monthly", "subscriptionGroupIdentifier": "21000000",
        "purchaseDate": purchase, "originalPurchaseDate": start, "expiresDate": purchase + 30 * DAY,
        "quantity": 1, "type": "Auto-Renewable Subscription", "inAppOwnershipType": "PURCHASED",
        "signedDate": signed, "environment": "Production", "transactionReason": "RENEWAL",
        "storefront": "USA", "storefrontId": "143441", "price": 9990, "currency": "USD",
        "appAccountToken": format!("00000000-0000-4000-8000-{s:012}"),
    });
    if kind == "REFUND" {
        transaction["revocationDate"] = json!(signed);
        transaction["revocationReason"] = json!(0);
    }
    let renewal = json!({
        "originalTransactionId": otid, "autoRenewProductId": "com.example.app.monthly",
        "productId": "com.example.app.monthly", "autoRenewStatus": i64::from(kind != "EXPIRED"),
        "signedDate": signed, "environment": "Production", "renewalDate": purchase + 30 * DAY,
    });
    let uuid = format!("00000000-0000-4000-9000-{:012}", s * per_subscription + n);
    let mut payload = json!({
        "notificationType": kind, "notificationUUID": uuid, "version": "2.0", "signedDate": signed,
        "data": {"appAppleId": 1234567890, "bundleId": "com.example.app", "bundleVersion": "42",
                 "environment": "Production", "status": status,
                 "signedTransactionInfo": transaction, "signedRenewalInfo": renewal},
    });
    if let Some(subtype) = subtype {
        payload["subtype"] = json!(subtype);
    }
    NewNotification {
        notification_uuid: uuid,
        notification_type: NotificationType::from_raw(kind),
        subtype: subtype.map(Subtype::from_raw),
        signed_date: Some(signed),
        received_at: now,
        environment: Some(Environment::Production),
        bundle_id: Some("com.example.app".into()),
        app_apple_id: Some(1_234_567_890),
        original_transaction_id: Some(otid),
        transaction_id: Some(tid),
        // Not a real JWS: rebuild reads the decoded payload, never this.
        signed_payload: String::from("generated"),
        event: Event::parse(&payload.to_string()).expect("a generated payload is an event"),
        novelty: None,
        payload: payload.to_string(),
    }
}
