//! `copy-store` to the other backend: SQLite to PostgreSQL here, and
//! PostgreSQL to SQLite when the suite runs on PostgreSQL. Everything that
//! came from outside is copied (notifications, quarantine, a conflict,
//! Apple's delivery attempts and answers, a backfill run, findings), and
//! every query route answers the same on the target.

use super::*;
use crate::helpers::NotificationSpec;
use crate::pg::PgDatabase;

/// Every query route, on every subscription, as (path, status, body); at
/// `at` and 20 days before (answers "now" would differ by the clock).
async fn answers(app: &TestApp, otids: &[&str], at: i64) -> Vec<(String, u16, String)> {
    let mut paths = vec![
        "/v1/refunds".to_owned(),
        "/v1/refunds?format=csv".to_owned(),
        format!("/v1/refunds?bundleId={BUNDLE_ID}&productId=monthly&limit=1"),
        "/v1/inconsistencies?open=true".to_owned(),
        "/v1/inconsistencies?open=false".to_owned(),
    ];
    let before = at - 20 * DAY;
    for otid in otids {
        paths.extend([
            format!("/v1/subscriptions/{otid}?at={at}"),
            format!("/v1/subscriptions/{otid}?at={before}"),
            format!("/v1/subscriptions/{otid}/history"),
            format!("/v1/entitlements?originalTransactionId={otid}&at={at}"),
            format!("/v1/entitlements?appAccountToken=account-{otid}&at={before}"),
            format!("/v1/entitlements?transactionId={otid}01&at={at}"),
            format!("/v1/refunds?originalTransactionId={otid}"),
        ]);
    }
    // Refund pages, followed by their cursors.
    let mut cursor = String::new();
    loop {
        let path = format!("/v1/refunds?limit=2{cursor}");
        let (_, page) = app.api(&path).await;
        paths.push(path);
        match page["nextCursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    let mut out = Vec::new();
    for path in paths {
        let (status, body) = app.api_text(&path).await;
        out.push((path, status, body));
    }
    out
}

async fn copy_store(app: &TestApp, to: &str, more: &[&str]) -> crate::helpers::Cli {
    let from = app.database_url();
    let mut args = vec!["copy-store", "--from", &from, "--to", to];
    args.extend(more);
    cli(app, &args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_store_moves_everything_and_every_query_route_answers_the_same() {
    let fake = FakeApple::start().await;
    let app = app(&fake).await;
    let target_dir = TempDir::new();
    let (target_url, target_pg) = if app.database_url().starts_with("postgres") {
        let url = format!("sqlite://{}", target_dir.path("ledger.db").display());
        (url, None)
    } else {
        let Some(pg) = PgDatabase::create().await else {
            return; // skipped: said by PgDatabase
        };
        (pg.url.clone(), Some(pg))
    };

    // Subscriptions refunded, refunded and reversed, expired, in grace.
    let start = now() - 45 * DAY;
    let otids = ["8100", "8200", "8300", "8400"];
    for (i, otid) in otids.iter().enumerate() {
        let first = tx(
            otid,
            &format!("{otid}01"),
            "monthly",
            start,
            start + 30 * DAY,
        );
        let second = tx(
            otid,
            &format!("{otid}02"),
            "monthly",
            start + 30 * DAY,
            start + 60 * DAY,
        );
        Post::new(&app, "SUBSCRIBED", start)
            .subtype("INITIAL_BUY")
            .tx(first.clone())
            .renewal(renewal(otid, "monthly", 1, start))
            .send()
            .await;
        Post::new(&app, "DID_RENEW", start + 30 * DAY)
            .tx(second.clone())
            .renewal(renewal(otid, "monthly", 1, start + 30 * DAY))
            .send()
            .await;
        let later = start + 31 * DAY;
        match i {
            0 => {
                Post::new(&app, "REFUND", later)
                    .tx(revoked(second.clone(), later, "REFUND_FULL"))
                    .send()
                    .await
            }
            1 => {
                Post::new(&app, "REFUND", later)
                    .tx(revoked(first.clone(), later, "REFUND_PRORATED"))
                    .send()
                    .await;
                Post::new(&app, "REFUND_REVERSED", later + DAY)
                    .tx(first.clone())
                    .send()
                    .await;
            }
            2 => {
                Post::new(&app, "EXPIRED", later)
                    .subtype("VOLUNTARY")
                    .tx(second.clone())
                    .send()
                    .await
            }
            _ => {
                Post::new(&app, "DID_FAIL_TO_RENEW", later)
                    .subtype("GRACE_PERIOD")
                    .tx(second.clone())
                    .send()
                    .await
            }
        }
    }
    // A notification for another app (quarantined), and a UUID sent again
    // with other content (a conflict).
    let mut other_app = NotificationSpec::new("SUBSCRIBED", uuid());
    other_app.bundle_id = "com.example.new-app";
    assert_eq!(app.post(&other_app.sign(&app.pki)).await.0, 202);
    let id = uuid();
    Post::new(&app, "DID_CHANGE_RENEWAL_STATUS", start + 2 * DAY)
        .uuid(&id)
        .tx(tx("8300", "830001", "monthly", start, start + 30 * DAY))
        .renewal(renewal("8300", "monthly", 0, start + 2 * DAY))
        .send()
        .await;
    Post::new(&app, "DID_CHANGE_RENEWAL_STATUS", start + 3 * DAY)
        .uuid(&id)
        .tx(tx("8300", "830001", "monthly", start, start + 30 * DAY))
        .renewal(renewal("8300", "monthly", 1, start + 3 * DAY))
        .send()
        .await;
    // Apple's history recovers what the webhook missed (a backfill run,
    // delivery attempts).
    let items = history(&app, "8500", 3);
    assert_eq!(app.post(&items[0].1).await.0, 200);
    set_history(&fake, &items);
    assert_eq!(backfill(&app, "Sandbox", &since()).await.code, Some(0));
    // Findings, one settled by Apple's answer (kept as evidence).
    let findings = check_and_keep(&app, now()).await;
    assert!(!findings.is_empty());
    let overdue = "8600";
    let purchase = now() - 32 * DAY;
    let missed_first = tx(overdue, "860001", "monthly", purchase, purchase + 30 * DAY);
    Post::new(&app, "SUBSCRIBED", purchase)
        .tx(missed_first.clone())
        .renewal(renewal(overdue, "monthly", 1, purchase))
        .send()
        .await;
    check_and_keep(&app, now()).await;
    let renewed = tx(
        overdue,
        "860002",
        "monthly",
        purchase + 30 * DAY,
        purchase + 60 * DAY,
    );
    fake.state().transactions.insert(
        overdue.into(),
        vec![app.pki.sign(&missed_first), app.pki.sign(&renewed)],
    );
    fake.state().statuses.insert(
        overdue.into(),
        status_answer(
            &app,
            overdue,
            1,
            &renewed,
            &renewal(overdue, "monthly", 1, 0),
        ),
    );
    let run = cli(&app, &["reconcile", "--original-transaction-id", overdue]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);

    let user = app.cli_input(
        &["user", "add", "ana", "--role", "support"],
        "correct horse battery\n",
    );
    assert_eq!(user.code, Some(0), "{}", user.stderr);

    let all = ["8100", "8200", "8300", "8400", "8500", "8600"];
    let at = now();
    let before = answers(&app, &all, at).await;
    assert!(
        before.iter().all(|(_, status, _)| *status == 200),
        "{before:?}"
    );
    let source_tables = app.tables().await;

    let run = copy_store(&app, &target_url, &[]).await;
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    for table in [
        "notifications",
        "quarantined_notifications",
        "notification_conflicts",
        "notification_send_attempts",
        "apple_evidence",
        "backfill_runs",
        "findings",
        "console_users",
    ] {
        let line = run
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{table}: ")) && l.contains("sha256:"))
            .unwrap_or_else(|| panic!("no digest of {table}:\n{}", run.stdout));
        assert!(line.ends_with("on both sides"), "{line}");
        assert!(!line.starts_with(&format!("{table}: 0 rows")), "{line}");
    }
    assert!(
        run.stderr.contains("notifications: ") && run.stderr.contains("(100%)"),
        "progress: {}",
        run.stderr
    );
    // The source is as it was.
    assert_eq!(app.tables().await, source_tables);

    // A source that does not exist is an error, not a new empty file.
    let missing = app.dir.path("missing.db");
    let run = cli(
        &app,
        &[
            "copy-store",
            "--from",
            &format!("sqlite://{}", missing.display()),
            "--to",
            &target_url,
        ],
    )
    .await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("the source (--from)"), "{}", run.stderr);
    assert!(!missing.exists());

    // A target that holds something is refused, and left as it is...
    let refused = copy_store(&app, &target_url, &[]).await;
    assert_eq!(refused.code, Some(2), "{}", refused.stdout);
    assert!(
        refused.stderr.contains("already holds") && refused.stderr.contains("--continue"),
        "{}",
        refused.stderr
    );

    // ...and a copy interrupted half-way (a prefix of each table, as pages
    // commit in key order) continues where it stopped.
    {
        sqlx::any::install_default_drivers();
        let mut target = <sqlx::AnyConnection as sqlx::Connection>::connect(&target_url)
            .await
            .unwrap();
        for sql in [
            "DELETE FROM notifications WHERE id > (SELECT max(id) / 2 FROM notifications)",
            "DELETE FROM findings WHERE id > 1",
            "DELETE FROM apple_evidence",
        ] {
            sqlx::query(sql).execute(&mut target).await.unwrap();
        }
    }
    let resumed = copy_store(&app, &target_url, &["--continue"]).await;
    assert_eq!(
        resumed.code,
        Some(0),
        "{}\n{}",
        resumed.stdout,
        resumed.stderr
    );
    assert!(
        !resumed.stdout.contains("DIFFERENT") && !resumed.stdout.contains("were there already"),
        "{}",
        resumed.stdout
    );
    assert!(
        resumed
            .stdout
            .contains("quarantined_notifications: copied 0 rows"),
        "{}",
        resumed.stdout
    );

    // Every query route answers the same from the target.
    // The source's configuration, without a periodic check to move the
    // findings' lastSeen on.
    let target_text = std::fs::read_to_string(&app.config_path)
        .unwrap()
        .replace(&app.database_url(), &target_url)
        .replace("[log]", "[check]\ninterval_ms = 0\n[log]");
    let target = TestApp::spawn_on(app.pki.clone(), target_dir, &target_text, target_pg).await;
    let after = answers(&target, &all, at).await;
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b, a);
    }
    assert_eq!(before.len(), after.len());
    // Ids go on after the copied ones: the target takes new notifications.
    Post::new(&target, "DID_RENEW", now())
        .tx(tx("8100", "810003", "monthly", now(), now() + 30 * DAY))
        .renewal(renewal("8100", "monthly", 1, now()))
        .send()
        .await;
    assert_eq!(
        target.count("notifications").await,
        app.count("notifications").await + 1
    );
}

// The same tests on PostgreSQL, each on a fresh database there.
on_postgres! {
    copy_store_moves_everything_and_every_query_route_answers_the_same,
}
