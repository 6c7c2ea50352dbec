//! What the load benchmarks share: their arguments and percentiles.

use std::time::Duration;

/// The benchmark's arguments. `cargo bench` passes `--bench`; without it (as
/// `cargo test --all-targets` runs benches) a benchmark only checks its
/// harness on small numbers.
pub struct Args {
    args: Vec<String>,
    pub measure: bool,
}

impl Args {
    pub fn from_env() -> Args {
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
