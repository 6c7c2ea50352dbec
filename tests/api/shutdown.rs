//! The binary on its defaults, stopped by a signal.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{client, TempDir};

const BIN: &str = env!("CARGO_BIN_EXE_appstore-ledger");

#[tokio::test]
async fn serve_runs_on_embedded_defaults_and_stops_gracefully_on_sigterm() {
    let dir = TempDir::new();
    let mut child = Command::new(BIN)
        .arg("serve")
        .current_dir(&dir.0)
        // Port 0 so that tests do not collide; everything else is the default.
        .env("APPSTORE_LEDGER__SERVER__LISTEN", "127.0.0.1:0")
        .env("APPSTORE_LEDGER__LOG__FORMAT", "json")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("the server printed its address")
            .unwrap();
        let log: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if log["message"] == "listening" {
            break log["addr"].as_str().unwrap().to_owned();
        }
    };
    let health = client()
        .get(format!("http://{addr}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    assert!(
        dir.path("appstore-ledger.db").exists(),
        "the default database is created"
    );

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:?}");
}
