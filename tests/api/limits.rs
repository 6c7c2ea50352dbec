//! Limits the machine imposes: a file-size limit (RLIMIT_FSIZE) reached by
//! a write fails that write (503) and kills nothing.

use std::process::Command;

use serde_json::json;

use crate::helpers::{config, pki, spawn_serve, NotificationSpec, TempDir};

const BIN: &str = env!("CARGO_BIN_EXE_appstore-ledger");

#[tokio::test]
async fn a_file_size_limit_fails_the_write_and_kills_nothing() {
    let (pki, dir) = (pki(), TempDir::new());
    let config_path = dir.path("config.toml");
    std::fs::write(&config_path, config(&dir, &pki, "", "")).unwrap();
    // 1 MB in 1024-byte blocks (bash), 512 KB in 512-byte blocks (dash):
    // enough to start, soon too little for the log of writes.
    let script = format!(
        "ulimit -f 1024 && exec {BIN} serve --config {}",
        config_path.display()
    );
    let (mut child, addr, lines) = spawn_serve(
        Command::new("sh")
            .args(["-c", &script])
            .env("APPSTORE_LEDGER__LOG__LEVEL", "info"),
    );
    std::thread::spawn(move || lines.for_each(drop));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap();
    let mut refused = 0;
    for i in 0..3_000 {
        let token = NotificationSpec::new("DID_RENEW", format!("fsize-{i:05}")).sign(&pki);
        let response = http
            .post(format!("http://{addr}/v2/notifications"))
            .json(&json!({ "signedPayload": token }))
            .send()
            .await;
        let status = match response {
            Ok(response) => response.status().as_u16(),
            Err(error) => panic!("no answer after {i} notifications: {error}"),
        };
        if status == 503 {
            refused += 1;
            if refused == 3 {
                break;
            }
        } else {
            assert_eq!(status, 200);
        }
    }
    assert_eq!(refused, 3, "the file-size limit was never reached");
    assert!(child.try_wait().unwrap().is_none(), "the process is gone");
    let health = http.get(format!("http://{addr}/health")).send().await;
    assert!(health.is_ok(), "still answering");
    let _ = child.kill();
    let _ = child.wait();
}
