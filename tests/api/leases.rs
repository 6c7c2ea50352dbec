//! Two `serve` processes on one database: both take notifications, but the
//! periodic check runs on one at a time, and the other takes over when
//! that one stops (at once) or crashes (when its lease lapses).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::helpers::{config, on_suite_backend, pki, Served, TempDir};
use crate::pg::PgDatabase;

const BIN: &str = env!("CARGO_BIN_EXE_appstore-ledger");

fn serve(config_path: &std::path::Path) -> Served {
    let mut command = Command::new(BIN);
    command.arg("serve").arg("--config").arg(config_path);
    Served::start(command)
}

async fn metric(served: &Served, line_start: &str) -> Option<i64> {
    let text = served
        .http
        .get(format!("http://{}/metrics", served.addr))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(line_start)?.trim().parse().ok())
}

async fn holds_check(served: &Served) -> bool {
    metric(served, r#"appstore_ledger_job_held{job="check"}"#).await == Some(1)
}

async fn checks_completed(served: &Served) -> i64 {
    metric(
        served,
        r#"appstore_ledger_checks_total{outcome="completed"}"#,
    )
    .await
    .unwrap_or(0)
}

/// Waits until `which` of the two holds the check's lease; the other must not.
async fn one_holds(a: &Served, b: &Served, within: Duration) -> usize {
    let started = Instant::now();
    loop {
        match (holds_check(a).await, holds_check(b).await) {
            (true, false) => return 0,
            (false, true) => return 1,
            (true, true) => panic!("both instances hold the check's lease"),
            (false, false) if started.elapsed() < within => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (false, false) => panic!("nobody took the check's lease in {within:?}"),
        }
    }
}

/// One configuration for both instances, on this suite's backend (the
/// database kept while the guard lives).
async fn shared_config(
    dir: &TempDir,
    interval_ms: u64,
) -> (std::path::PathBuf, Option<PgDatabase>) {
    let path = dir.path("config.toml");
    let text = config(
        dir,
        &pki(),
        "",
        &format!("[check]\ninterval_ms = {interval_ms}\n"),
    );
    let (text, pg) = on_suite_backend(dir, text).await;
    std::fs::write(&path, text).unwrap();
    (path, pg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_check_runs_on_one_instance_and_moves_when_it_stops() {
    let dir = TempDir::new();
    // A lease lasts three intervals: 6 s here, so a takeover within 2 s
    // can only come from the lease given back.
    let (config_path, _pg) = shared_config(&dir, 2_000).await;
    let mut instances = vec![serve(&config_path), serve(&config_path)];
    let holder = one_holds(&instances[0], &instances[1], Duration::from_secs(10)).await;
    let other = 1 - holder;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(checks_completed(&instances[holder]).await >= 1);
    assert_eq!(checks_completed(&instances[other]).await, 0);

    // Stopped cleanly (SIGTERM), the holder gives the lease back.
    let pid = instances[holder].child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let _ = instances[holder].child.wait();
    let stopped = Instant::now();
    while !holds_check(&instances[other]).await {
        assert!(
            stopped.elapsed() < Duration::from_millis(4_000),
            "no takeover before the lease would have lapsed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(instances.remove(holder));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_holder_is_replaced_when_its_lease_lapses() {
    let dir = TempDir::new();
    let (config_path, _pg) = shared_config(&dir, 300).await;
    let mut instances = vec![serve(&config_path), serve(&config_path)];
    let holder = one_holds(&instances[0], &instances[1], Duration::from_secs(10)).await;
    let other = 1 - holder;
    // kill -9: nothing is given back.
    instances[holder].child.kill().unwrap();
    let _ = instances[holder].child.wait();
    let killed = Instant::now();
    while !holds_check(&instances[other]).await {
        assert!(killed.elapsed() < Duration::from_secs(10), "no takeover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = checks_completed(&instances[other]).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(checks_completed(&instances[other]).await > before);
    drop(instances.remove(holder));
}

// The same tests on PostgreSQL, each on a fresh database there.
on_postgres! {
    the_periodic_check_runs_on_one_instance_and_moves_when_it_stops,
    a_crashed_holder_is_replaced_when_its_lease_lapses,
}
