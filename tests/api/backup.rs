//! `appstore-ledger backup --to FILE`: an online copy of the SQLite
//! database, taken while the service writes, that restores everything
//! acknowledged before the backup began.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::helpers::{config, pki, TempDir, TestApp};
use crate::ledger::{now, tx, Post, DAY};

/// Posts notifications of its own subscriptions until `stop`, noting each
/// one Apple would have been told is stored.
async fn write_until(app: &TestApp, writer: usize, stop: &AtomicBool, acked: &Mutex<Vec<String>>) {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let otid = format!("bk-{writer}-{n}");
        let uuid = format!("uuid-{otid}");
        // Apple signs a purchase once it is made.
        let bought = now();
        let (status, body) = app
            .post(
                &Post::new(app, "SUBSCRIBED", bought)
                    .uuid(&uuid)
                    .status(1)
                    .tx(tx(
                        &otid,
                        &format!("{otid}-t1"),
                        "monthly",
                        bought,
                        bought + 30 * DAY,
                    ))
                    .token(),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        acked.lock().unwrap().push(uuid);
        n += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_write_load_restores_everything_acknowledged_before_it() {
    let app = TestApp::spawn().await;
    let copy_dir = TempDir::new();
    let copy = copy_dir.path("backup.db");
    let (stop, acked) = (AtomicBool::new(false), Mutex::new(Vec::new()));

    let backup = async {
        // Under way: a few hundred notifications stored before the backup.
        while acked.lock().unwrap().len() < 300 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let before: BTreeSet<String> = acked.lock().unwrap().iter().cloned().collect();
        let (config_path, to) = (app.config_path.clone(), copy.clone());
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_appstore-ledger"))
                .args(["backup", "--to"])
                .arg(&to)
                .arg("--config")
                .arg(&config_path)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let during = acked.lock().unwrap().len() - before.len();
        // And some more after it, so that the copy is seen to hold only
        // its moment.
        let target = acked.lock().unwrap().len() + 50;
        while acked.lock().unwrap().len() < target {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        stop.store(true, Ordering::Relaxed);
        (before, out, during)
    };
    let ((before, out, during), (), (), ()) = tokio::join!(
        backup,
        write_until(&app, 0, &stop, &acked),
        write_until(&app, 1, &stop, &acked),
        write_until(&app, 2, &stop, &acked),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.starts_with("backed up to "), "{stdout}");
    eprintln!(
        "{stdout}{} acknowledged before, {during} while it ran",
        before.len()
    );
    let all = acked.lock().unwrap().len();

    // Restored: a service started on the copy has every notification
    // acknowledged before the backup began, and answers for them.
    let restored_dir = TempDir::new();
    std::fs::copy(&copy, restored_dir.path("ledger.db")).unwrap();
    let signer = pki();
    let text = config(&restored_dir, &signer, "", "");
    let restored = TestApp::spawn_on(signer, restored_dir, &text, None).await;
    let stored: BTreeSet<String> =
        sqlx::query_scalar("SELECT notification_uuid FROM notifications")
            .fetch_all(&mut restored.db().await)
            .await
            .unwrap()
            .into_iter()
            .collect();
    let missing: Vec<&String> = before.difference(&stored).collect();
    assert!(
        missing.is_empty(),
        "lost {} of {}: {missing:?}",
        missing.len(),
        before.len()
    );
    assert!(
        stored.len() < all,
        "a copy of its moment: {} of {all}",
        stored.len()
    );
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut restored.db().await)
        .await
        .unwrap();
    assert_eq!(integrity, "ok");
    let first = before
        .iter()
        .next()
        .unwrap()
        .trim_start_matches("uuid-")
        .to_owned();
    let (status, answer) = restored.api(&format!("/v1/subscriptions/{first}")).await;
    assert_eq!(
        (status, &answer["entitled"]),
        (200, &serde_json::json!(true)),
        "{answer}"
    );
    // A backup never overwrites.
    let again = app.cli(&["backup", "--to", copy.to_str().unwrap()]);
    assert_eq!(again.code, Some(1), "{}", again.stdout);
    assert!(
        again.stderr.contains("never overwrites"),
        "{}",
        again.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_of_postgresql_points_to_pg_dump() {
    let (signer, dir) = (pki(), TempDir::new());
    let text = config(&dir, &signer, "", "").replace(
        &format!("sqlite://{}", dir.path("ledger.db").display()),
        "postgres://nobody@127.0.0.1:1/none",
    );
    let path = dir.path("config.toml");
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_appstore-ledger"))
        .args([
            "backup",
            "--to",
            dir.path("x.db").to_str().unwrap(),
            "--config",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pg_dump"),
        "{out:?}"
    );
}
