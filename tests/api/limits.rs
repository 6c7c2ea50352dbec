//! Limits the machine imposes: a file-size limit (RLIMIT_FSIZE) reached by
//! a write fails that write (503), /health says so, nothing is killed, and
//! the service recovers when the limit is lifted.

use std::process::Command;

use crate::helpers::{config, pki, NotificationSpec, Served, TempDir};

const BIN: &str = env!("CARGO_BIN_EXE_appstore-ledger");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_size_limit_fails_the_write_and_kills_nothing() {
    let (pki, dir) = (pki(), TempDir::new());
    let config_path = dir.path("config.toml");
    std::fs::write(&config_path, config(&dir, &pki, "", "")).unwrap();
    // 2 MB in 1024-byte blocks (bash), 1 MB in 512-byte blocks (dash):
    // enough to start (the first start writes every migration to the WAL),
    // soon too little for the log of writes. The soft limit only, so that
    // it can be lifted again without privileges.
    let script = format!(
        "ulimit -S -f 2048 && exec {BIN} serve --config {}",
        config_path.display()
    );
    let mut command = Command::new("sh");
    command.args(["-c", &script]);
    let mut served = Served::start(command);
    let mut refused = 0;
    for i in 0..3_000 {
        let token = NotificationSpec::new("DID_RENEW", format!("fsize-{i:05}")).sign(&pki);
        let status = served.post(&token).await;
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
    assert!(
        served.child.try_wait().unwrap().is_none(),
        "the process is gone"
    );
    assert_eq!(
        served.health().await.0,
        503,
        "no notification could be stored now"
    );

    // Lifted from outside: the next write succeeds, without a restart.
    let lifted = Command::new("prlimit")
        .args(["--pid", &served.child.id().to_string(), "--fsize=unlimited"])
        .status()
        .expect("prlimit (util-linux) runs");
    assert!(lifted.success(), "prlimit lifted the limit");
    assert_eq!(served.health().await.0, 200);
    let token = NotificationSpec::new("DID_RENEW", "fsize-lifted").sign(&pki);
    assert_eq!(served.post(&token).await, 200);
}
