//! The database's failures as an operator meets them: files that cannot be
//! written, a disk that fills up. `/health` tells the truth about them, and
//! the service recovers on its own when they are fixed.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::helpers::{config, pki, NotificationSpec, Served, TempDir};

const BIN: &str = env!("CARGO_BIN_EXE_appstore-ledger");

fn set_mode(path: &Path, mode: u32) {
    if path.exists() {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

/// `serve` as a process that file permissions bind: root reads and writes
/// through them, so as root the capabilities that let it are dropped.
fn serve_bound_by_permissions(config_path: &Path) -> Command {
    // This process's own entry in /proc belongs to its effective user.
    let root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0;
    let mut command = if root {
        let mut command = Command::new("setpriv");
        command.args([
            "--bounding-set",
            "-dac_override,-dac_read_search,-fowner",
            BIN,
        ]);
        command
    } else {
        Command::new(BIN)
    };
    command.arg("serve").arg("--config").arg(config_path);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_on_read_only_files_is_unhealthy_and_recovers_when_they_are_writable() {
    let (pki, dir) = (pki(), TempDir::new());
    let config_path = dir.path("config.toml");
    std::fs::write(&config_path, config(&dir, &pki, "", "")).unwrap();
    let mut command = Command::new(BIN);
    command.arg("serve").arg("--config").arg(&config_path);
    let mut first = Served::start(command);
    let token = NotificationSpec::new("DID_RENEW", "ro-first").sign(&pki);
    assert_eq!(first.post(&token).await, 200);
    // Killed, so the log of writes and its index are left beside the file.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let files = ["", "-wal", "-shm"].map(|suffix| dir.path(&format!("ledger.db{suffix}")));
    for file in &files {
        set_mode(file, 0o444);
    }

    let served = Served::start(serve_bound_by_permissions(&config_path));
    let (status, body) = served.health().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "DATABASE_UNAVAILABLE", "{body}");
    let token = NotificationSpec::new("DID_RENEW", "ro-second").sign(&pki);
    assert_eq!(served.post(&token).await, 503);

    for file in &files {
        set_mode(file, 0o644);
    }
    let (status, body) = served.health().await;
    assert_eq!(status, 200, "writable again, without a restart: {body}");
    assert_eq!(served.post(&token).await, 200);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications")
        .fetch_one(&mut crate::helpers::db(&dir.path("ledger.db")).await)
        .await
        .unwrap();
    assert_eq!(stored, 2);
}

/// Whether this machine lets a test mount a small tmpfs of its own, in a
/// mount namespace that vanishes with the process.
fn can_mount_a_small_disk() -> bool {
    Command::new("unshare")
        .args(["--mount", "--propagation", "private", "true"])
        .status()
        .is_ok_and(|status| status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_unhealthy_refuses_with_503_and_recovers_when_space_is_freed() {
    if !can_mount_a_small_disk() {
        crate::common::skip("needs `unshare --mount` to put the database on a 2 MB tmpfs");
        return;
    }
    let (pki, dir) = (pki(), TempDir::new());
    let disk = dir.path("disk");
    std::fs::create_dir(&disk).unwrap();
    let config_path = dir.path("config.toml");
    let text = config(&dir, &pki, "", "").replace(
        &format!("sqlite://{}", dir.path("ledger.db").display()),
        &format!("sqlite://{}/ledger.db", disk.display()),
    );
    std::fs::write(&config_path, text).unwrap();
    let script = format!(
        "mount -t tmpfs -o size=2m tmpfs {} && exec {BIN} serve --config {}",
        disk.display(),
        config_path.display()
    );
    let mut command = Command::new("unshare");
    command.args(["--mount", "--propagation", "private", "sh", "-c", &script]);
    let served = Served::start(command);
    // The tmpfs as the server sees it.
    let inside = Path::new("/proc")
        .join(served.child.id().to_string())
        .join("root")
        .join(disk.strip_prefix("/").unwrap());

    let stored = NotificationSpec::new("DID_RENEW", "full-first").sign(&pki);
    assert_eq!(served.post(&stored).await, 200);
    assert_eq!(served.health().await.0, 200);

    let filler = inside.join("filler");
    fill(&filler);
    let (status, body) = served.health().await;
    assert_eq!(status, 503, "the disk is full: {body}");
    assert_eq!(body["error"]["code"], "DATABASE_UNAVAILABLE", "{body}");
    let refused = NotificationSpec::new("DID_RENEW", "full-second").sign(&pki);
    assert_eq!(served.post(&refused).await, 503);
    assert_eq!(served.health().await.0, 503, "still full");

    std::fs::remove_file(&filler).unwrap();
    let (status, body) = served.health().await;
    assert_eq!(status, 200, "space freed, without a restart: {body}");
    assert_eq!(served.post(&refused).await, 200);
    let history = served
        .api("/v1/subscriptions/2000000000000001/history")
        .await;
    let mut uuids: Vec<&str> = history["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["notificationUUID"].as_str().unwrap())
        .collect();
    uuids.sort();
    assert_eq!(uuids, ["full-first", "full-second"], "{history}");
}

/// Writes until the disk refuses.
fn fill(path: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 4096];
    loop {
        match file.write_all(&chunk) {
            Ok(()) => {}
            Err(error) => {
                assert_eq!(error.raw_os_error(), Some(libc::ENOSPC), "{error}");
                return;
            }
        }
    }
}
