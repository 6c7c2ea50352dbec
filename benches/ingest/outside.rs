//! `--outside`: the service as its own process, driven from this one as an
//! outside load generator drives it (wrk, say): the built binary runs
//! `serve` with a configuration file, so the generator's work and the
//! service's runtime do not share one tokio runtime. Distinct bodies, read
//! from a file when given one, go at a fixed concurrency for a fixed
//! duration; each run starts from a fresh database, and the figures of every
//! run are printed with their spread.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::common::bench::percentile;
use super::common::pki::{date, ChainSpec, TestPki};
use super::{post_stored, receiver, settings_text, sign_bodies, Received};

const BIN: &str = env!("CARGO_BIN_EXE_appstore-ledger");

pub struct Outside {
    pub runs: usize,
    pub duration: Duration,
    pub concurrency: usize,
    /// Signed when the directory holds none yet.
    pub notifications: usize,
    /// A workload directory: `bodies.jsonl` (one request body per line) and
    /// `root.der` (the root their chains lead to). Written when missing.
    pub bodies: Option<PathBuf>,
    pub postgres: Option<String>,
    pub instances: usize,
    pub pool: usize,
    pub endpoint: bool,
    /// Benchmarking: running out of bodies before the duration is an error.
    pub measure: bool,
}

/// What one run measured.
struct RunFigures {
    per_second: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
    acknowledged: usize,
    elapsed: Duration,
    /// From the POST to the receiver's 2xx, with `--endpoint`: p50 and p99.
    delivery: Option<(Duration, Duration)>,
}

pub async fn run(options: Outside) {
    let scratch =
        std::env::temp_dir().join(format!("appstore-ledger-bench-out-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let workload = options
        .bodies
        .clone()
        .unwrap_or_else(|| scratch.join("workload"));
    let bodies = Arc::new(workload_bodies(&workload, options.notifications));
    std::fs::copy(workload.join("root.der"), scratch.join("root.der")).unwrap();
    eprintln!(
        "{} distinct bodies from {}",
        bodies.len(),
        workload.display()
    );

    let mut figures = Vec::new();
    for run in 0..options.runs {
        let ticks = super::common::bench::cpu_ticks();
        figures.push(one_run(&options, &scratch, run, &bodies).await);
        let host = super::common::bench::host_share(ticks)
            .map(|share| format!("; the host took {:.0}% of the CPU", share * 100.0))
            .unwrap_or_default();
        let f = figures.last().unwrap();
        if options.measure {
            println!(
                "  run {}: {:>6.0} per second, p50 {:>6.2} ms, p99 {:>6.2} ms, max {:>7.2} ms ({} in {:.1} s){}{host}",
                run + 1,
                f.per_second,
                ms(f.p50),
                ms(f.p99),
                ms(f.max),
                f.acknowledged,
                f.elapsed.as_secs_f64(),
                f.delivery
                    .map(|(p50, p99)| format!(", delivery p50 {:.0} ms, p99 {:.0} ms", ms(p50), ms(p99)))
                    .unwrap_or_default(),
            );
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    if !options.measure {
        println!(
            "ingest bench harness, outside: {} notifications stored by the binary",
            figures.iter().map(|f| f.acknowledged).sum::<usize>()
        );
        return;
    }
    let database = match &options.postgres {
        Some(_) => format!("PostgreSQL, {} instance(s) sharing it", options.instances),
        None => "SQLite (WAL, synchronous=FULL)".to_owned(),
    };
    println!(
        "ingest from an outside generator (the service as its own process), {database}, concurrency {}, {} s per run, {} runs:",
        options.concurrency,
        options.duration.as_secs_f64(),
        options.runs
    );
    let spread = |values: Vec<f64>| {
        let (min, max) = values
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        format!("{min:.1} to {max:.1} (mean {mean:.1})")
    };
    println!(
        "  per second: {}",
        spread(figures.iter().map(|f| f.per_second).collect())
    );
    println!(
        "  p50 ms:     {}",
        spread(figures.iter().map(|f| ms(f.p50)).collect())
    );
    println!(
        "  p99 ms:     {}",
        spread(figures.iter().map(|f| ms(f.p99)).collect())
    );
    println!(
        "  p99 under 50 ms in {} of {} runs",
        figures
            .iter()
            .filter(|f| f.p99 < Duration::from_millis(50))
            .count(),
        figures.len()
    );
    if options.endpoint {
        println!(
            "  delivery p99 ms: {}",
            spread(
                figures
                    .iter()
                    .filter_map(|f| f.delivery.map(|(_, p99)| ms(p99)))
                    .collect()
            )
        );
    }
    println!("  target: >= 2000 notifications/s, p99 < 50 ms at concurrency 32");
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The workload in `dir`, signed there first when it holds none.
fn workload_bodies(dir: &Path, count: usize) -> Vec<String> {
    let file = dir.join("bodies.jsonl");
    if !file.exists() {
        eprintln!(
            "signing {count} distinct notifications into {}...",
            dir.display()
        );
        std::fs::create_dir_all(dir).unwrap();
        let pki = TestPki::build(ChainSpec {
            leaf_validity: (date(2020), date(2035)),
            ..ChainSpec::default()
        });
        std::fs::write(dir.join("root.der"), &pki.root_der).unwrap();
        let mut lines = sign_bodies(&pki, count).join("\n");
        lines.push('\n');
        std::fs::write(&file, lines).unwrap();
    }
    std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}

/// One run: a fresh database, the services started, the load for the
/// duration, the services stopped, what was acknowledged counted.
async fn one_run(
    options: &Outside,
    scratch: &Path,
    run: usize,
    bodies: &Arc<Vec<String>>,
) -> RunFigures {
    let name = format!("appstore_ledger_bench_{}_{run}", std::process::id());
    let database_url = match &options.postgres {
        Some(server) => super::common::bench::fresh_postgres(server, &name).await,
        None => format!("sqlite://{}/run-{run}.db", scratch.display()),
    };
    let received: Received = Arc::default();
    let endpoint = if options.endpoint {
        receiver(Arc::clone(&received)).await
    } else {
        String::new()
    };
    let mut services = Vec::new();
    let mut urls = Vec::new();
    for instance in 0..options.instances {
        let port = free_port();
        let config = scratch.join(format!("run-{run}-{instance}.toml"));
        let text = settings_text(
            scratch,
            &database_url,
            options.pool,
            &format!("127.0.0.1:{port}"),
            &endpoint,
        );
        std::fs::write(&config, text).unwrap();
        let child = Command::new(BIN)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        services.push(Service(child));
        wait_healthy(port).await;
        urls.push(format!("http://127.0.0.1:{port}/v2/notifications"));
    }

    let (latencies, sent_at, elapsed, ran_out) = drive_for(
        options.concurrency,
        options.duration,
        urls,
        Arc::clone(bodies),
    )
    .await;
    assert!(
        !(options.measure && ran_out),
        "the {} bodies ran out before {:?}: sign more (--notifications, and a new --bodies directory)",
        bodies.len(),
        options.duration
    );
    let acknowledged = latencies.len();
    let delivery = if options.endpoint {
        let latencies = delivery_latencies(&received, &sent_at).await;
        Some((percentile(&latencies, 0.50), percentile(&latencies, 0.99)))
    } else {
        None
    };
    for service in &mut services {
        service.stop();
    }
    drop(services);

    // Every acknowledged notification is stored, and nothing else.
    sqlx::any::install_default_drivers();
    let mut db = <sqlx::AnyConnection as sqlx::Connection>::connect(&database_url)
        .await
        .unwrap();
    let (stored,): (i64,) = sqlx::query_as("SELECT count(*) FROM notifications")
        .fetch_one(&mut db)
        .await
        .unwrap();
    drop(db);
    assert_eq!(stored, acknowledged as i64, "stored against acknowledged");
    if let Some(server) = &options.postgres {
        super::common::bench::drop_postgres(server, &name).await;
    }
    RunFigures {
        per_second: acknowledged as f64 / elapsed.as_secs_f64(),
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        max: percentile(&latencies, 1.0),
        acknowledged,
        elapsed,
        delivery,
    }
}

/// A served binary, stopped by SIGTERM (and waited for) at the latest when
/// dropped.
struct Service(Child);

impl Service {
    fn stop(&mut self) {
        if self.0.try_wait().unwrap().is_none() {
            Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status()
                .unwrap();
        }
        let status = self.0.wait().unwrap();
        assert!(status.success(), "the service stopped with {status:?}");
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A port free a moment ago: the service binds it at once.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

async fn wait_healthy(port: u16) {
    let client = super::common::bench::client(1);
    let started = Instant::now();
    loop {
        let health = client
            .get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await;
        if health.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the service on port {port} did not become healthy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `concurrency` requests in flight, each a body not sent before, the
/// services taken in turn, until `duration` has passed (or the bodies ran
/// out: the last value). Every answer must be a first-time store.
async fn drive_for(
    concurrency: usize,
    duration: Duration,
    urls: Vec<String>,
    bodies: Arc<Vec<String>>,
) -> (Vec<Duration>, Vec<Option<Instant>>, Duration, bool) {
    let client = super::common::bench::client(concurrency);
    let urls = Arc::new(urls);
    let next = Arc::new(AtomicUsize::new(0));
    let ran_out = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, urls, bodies) = (client.clone(), Arc::clone(&urls), Arc::clone(&bodies));
        let (next, ran_out) = (Arc::clone(&next), Arc::clone(&ran_out));
        workers.spawn(async move {
            let mut done = Vec::new();
            while started.elapsed() < duration {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else {
                    ran_out.store(true, Ordering::Relaxed);
                    break;
                };
                let sent = Instant::now();
                post_stored(&client, &urls[i % urls.len()], body.clone(), i).await;
                done.push((i, sent, sent.elapsed()));
            }
            done
        });
    }
    let done: Vec<(usize, Instant, Duration)> =
        workers.join_all().await.into_iter().flatten().collect();
    let elapsed = started.elapsed();
    let mut sent_at = vec![None; bodies.len()];
    for (i, sent, _) in &done {
        sent_at[*i] = Some(*sent);
    }
    let mut latencies: Vec<Duration> = done.into_iter().map(|(_, _, took)| took).collect();
    latencies.sort();
    (latencies, sent_at, elapsed, ran_out.load(Ordering::Relaxed))
}

/// Waits until every acknowledged notification's event reached the
/// receiver; from each POST to its event's 2xx, sorted.
pub async fn delivery_latencies(received: &Received, sent_at: &[Option<Instant>]) -> Vec<Duration> {
    let acknowledged = sent_at.iter().flatten().count();
    let waited = Instant::now();
    while received.lock().unwrap().len() < acknowledged {
        assert!(
            waited.elapsed() < Duration::from_secs(300),
            "events delivered: {} of {acknowledged}",
            received.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let received = received.lock().unwrap();
    let mut latencies: Vec<Duration> = sent_at
        .iter()
        .enumerate()
        .filter_map(|(i, at)| {
            let at = (*at)?;
            let got = received
                .get(&format!("bench-{i:08}"))
                .unwrap_or_else(|| panic!("body {i}: no event delivered"));
            Some(got.saturating_duration_since(at))
        })
        .collect();
    latencies.sort();
    latencies
}
