//! PostgreSQL: its schema applied by `migrate`, once, also when several
//! instances start at once. These tests use the server named by
//! `APPSTORE_LEDGER_TEST_POSTGRES` (the README's test command sets it), in a
//! fresh database each, dropped afterwards; without one they say `skipped:`.

use std::process::Command;

use crate::helpers::{pki, NotificationSpec, TempDir};
use crate::pg::PgDatabase;

const BIN: &str = env!("CARGO_BIN_EXE_appstore-ledger");

fn migrate(database_url: &str) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .arg("migrate")
        .env("APPSTORE_LEDGER__DATABASE__URL", database_url)
        .env("APPSTORE_LEDGER__LOG__LEVEL", "warn")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn migrate_applies_the_postgres_schema_once() {
    let Some(database) = PgDatabase::create().await else {
        return;
    };
    let (code, out, err) = migrate(&database.url);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        "postgres: applied 17 (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17), now at version 17"
    );
    let (code, out, err) = migrate(&database.url);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "postgres: nothing to apply, at version 17");

    // The schema is PostgreSQL's own: millisecond BIGINTs, JSONB payloads,
    // a digest to compare signed payloads by.
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT column_name::text, data_type::text FROM information_schema.columns
         WHERE table_name = 'notifications'
           AND column_name IN ('received_at', 'payload', 'signed_payload_sha256')
         ORDER BY column_name",
    )
    .fetch_all(&mut database.connect().await)
    .await
    .unwrap();
    assert_eq!(
        columns,
        [
            ("payload".to_owned(), "jsonb".to_owned()),
            ("received_at".to_owned(), "bigint".to_owned()),
            ("signed_payload_sha256".to_owned(), "bytea".to_owned()),
        ]
    );
    // Signed payloads (base64) are not compressed; decoded JSON is, with
    // lz4 on this server.
    let storage: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT attname::text, attstorage::text, attcompression::text FROM pg_attribute
         WHERE attrelid = 'notifications'::regclass AND attname IN ('signed_payload', 'payload')
         ORDER BY attname",
    )
    .fetch_all(&mut database.connect().await)
    .await
    .unwrap();
    assert_eq!(
        storage,
        [
            ("payload".to_owned(), "x".to_owned(), "l".to_owned()),
            ("signed_payload".to_owned(), "e".to_owned(), String::new()),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_migrating_at_once_apply_the_schema_once() {
    let Some(database) = PgDatabase::create().await else {
        return;
    };
    let url = database.url.clone();
    let outcomes = tokio::task::spawn_blocking(move || {
        let runs: Vec<_> = (0..4)
            .map(|_| {
                Command::new(BIN)
                    .arg("migrate")
                    .env("APPSTORE_LEDGER__DATABASE__URL", &url)
                    .env("APPSTORE_LEDGER__LOG__LEVEL", "warn")
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        runs.into_iter()
            .map(|run| {
                let out = run.wait_with_output().unwrap();
                (
                    out.status.code(),
                    String::from_utf8_lossy(&out.stdout).trim().to_owned(),
                )
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert!(
        outcomes.iter().all(|(code, _)| *code == Some(0)),
        "{outcomes:?}"
    );
    let applied = outcomes
        .iter()
        .filter(|(_, out)| {
            out == "postgres: applied 17 (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17), now at version 17"
        })
        .count();
    let nothing = outcomes
        .iter()
        .filter(|(_, out)| out == "postgres: nothing to apply, at version 17")
        .count();
    assert_eq!((applied, nothing), (1, 3), "{outcomes:?}");
    let versions: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&mut database.connect().await)
        .await
        .unwrap();
    assert_eq!(versions, 17);
}

#[test]
fn migrate_on_sqlite_creates_and_migrates_the_file() {
    let dir = TempDir::new();
    let url = format!("sqlite://{}", dir.path("ledger.db").display());
    let (code, out, err) = migrate(&url);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        "sqlite: applied 21 (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21), now at version 21"
    );
    let (_, out, _) = migrate(&url);
    assert_eq!(out, "sqlite: nothing to apply, at version 21");
}

/// A PostgreSQL that does not answer stops start-up as a failure of the
/// database (exit 1), not of the configuration.
#[tokio::test]
async fn serve_on_a_postgres_that_does_not_answer_fails_at_start_up() {
    let (pki, dir) = (pki(), TempDir::new());
    let config_path = dir.path("config.toml");
    std::fs::write(&config_path, crate::helpers::config(&dir, &pki, "", "")).unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config_path)
        .env(
            "APPSTORE_LEDGER__DATABASE__URL",
            "postgres://nobody@127.0.0.1:1/none",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("could not be opened"), "{err}");
}

/// The queries the refund ledger, entitlement by token and the checker's
/// scan will run find an index, at a size where the planner has a choice.
#[tokio::test]
async fn the_schema_gives_the_read_paths_their_indexes() {
    let Some(database) = PgDatabase::create().await else {
        return;
    };
    let (code, _, err) = migrate(&database.url);
    assert_eq!(code, Some(0), "{err}");
    let mut db = database.connect().await;
    for sql in [
        "INSERT INTO refunds (notification_uuid, kind, item_id, notification_type,
             original_transaction_id, signed_date, refund_date)
         SELECT 'n' || i, 'subscription', 'o' || (i % 5000), 'REFUND', 'o' || (i % 5000),
             1700000000000 + i, 1700000000000 + i
         FROM generate_series(1, 20000) AS i",
        "INSERT INTO ledger_items (kind, item_id, original_transaction_id, app_account_token,
             status, last_signed_date, state)
         SELECT 'subscription', 'o' || i, 'o' || i, 'token-' || i, 'ACTIVE', 1, '{}'::jsonb
         FROM generate_series(1, 20000) AS i",
        "INSERT INTO entitlement_events (txid, event_id, kind, item_id, sequence, type, cause,
             occurred_at, data)
         SELECT 1000 + i / 4, 'evt_' || i, 'subscription', 'o' || i, 1, 'ENTITLEMENT_GRANTED',
             'n' || i, 1700000000000 + i, '{}'::jsonb
         FROM generate_series(1, 20000) AS i",
        "ANALYZE",
    ] {
        sqlx::query(sql).execute(&mut db).await.unwrap();
    }
    for (what, query, index) in [
        (
            "refund ledger, newest first after a cursor",
            "SELECT * FROM refunds WHERE (refund_date, notification_uuid) < (1700000010000, 'n9')
             ORDER BY refund_date DESC, notification_uuid DESC LIMIT 100",
            "refunds_newest",
        ),
        (
            "entitlement by appAccountToken",
            "SELECT kind, item_id, state FROM ledger_items WHERE app_account_token = 'token-77'",
            "ledger_items_app_account_token",
        ),
        (
            "entitlement by originalTransactionId",
            "SELECT kind, item_id, state FROM ledger_items WHERE original_transaction_id = 'o77'",
            "ledger_items_original_transaction_id",
        ),
        (
            "the checker's scan, a page after a key",
            "SELECT kind, item_id, state FROM ledger_items WHERE (kind, item_id) > ('subscription', 'o500')
             ORDER BY kind, item_id LIMIT 1000",
            "ledger_items_pkey",
        ),
        (
            "the entitlement events' feed, a page after a cursor",
            "SELECT txid, id, data FROM entitlement_events
             WHERE txid < 6000 AND (txid, id) > (3000, 8000) AND occurred_at >= 0
             ORDER BY txid, id LIMIT 100",
            "entitlement_events_order",
        ),
    ] {
        let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {query}")))
            .fetch_all(&mut db)
            .await
            .unwrap();
        let plan = plan.join("\n");
        eprintln!("EXPLAIN ({what}):\n{plan}\n");
        assert!(plan.contains(index), "{what} does not use {index}:\n{plan}");
    }
}

/// `sslmode` in the URL is honoured: `require` connects over TLS (rustls),
/// `verify-full` refuses a server whose certificate it cannot verify.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_connection_uses_tls_as_the_url_says() {
    let Some(database) = PgDatabase::create().await else {
        return;
    };
    let mut db = database.connect().await;
    let ssl: String = sqlx::query_scalar("SHOW ssl")
        .fetch_one(&mut db)
        .await
        .unwrap();
    if ssl != "on" {
        crate::common::skip("this PostgreSQL server does not offer TLS (ssl = off)");
        return;
    }
    let (pki, dir) = (pki(), TempDir::new());
    let config_path = dir.path("config.toml");
    std::fs::write(&config_path, crate::helpers::config(&dir, &pki, "", "")).unwrap();
    let serve = |url: String| {
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--config"])
            .arg(&config_path)
            .env("APPSTORE_LEDGER__DATABASE__URL", url);
        command
    };

    let served = crate::helpers::Served::start(serve(database.url_with_sslmode("require")));
    assert_eq!(served.health().await.0, 200);
    let name = database.name.clone();
    let connections: Vec<bool> = sqlx::query_scalar(
        "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
         WHERE a.datname = $1 AND a.pid <> pg_backend_pid()",
    )
    .bind(&name)
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert!(!connections.is_empty());
    assert!(connections.iter().all(|ssl| *ssl), "{connections:?}");
    drop(served);

    // The server's certificate is its own (not from a public authority).
    let out = serve(database.url_with_sslmode("verify-full"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("could not be opened"), "{err}");
}

/// Stands between the service and PostgreSQL, and can cut every connection
/// and refuse new ones, as a database that goes down does.
struct Proxy {
    addr: std::net::SocketAddr,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    links: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let links = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (accept_down, accept_links) = (down.clone(), links.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if accept_down.load(Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let upstream = upstream.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                accept_links.lock().unwrap().push(link.abort_handle());
            }
        });
        Proxy { addr, down, links }
    }

    fn go_down(&self) {
        self.down.store(true, std::sync::atomic::Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn come_back(&self) {
        self.down.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The database goes down: notifications get 503 and nothing half-written
/// remains; when it comes back the pool reconnects, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_postgres_is_down_notifications_get_503_and_then_are_stored() {
    let Some(database) = PgDatabase::create().await else {
        return;
    };
    let upstream = {
        let url = reqwest::Url::parse(&database.url).unwrap();
        format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432))
    };
    let proxy = Proxy::start(upstream).await;
    let mut through = reqwest::Url::parse(&database.url).unwrap();
    through.set_port(Some(proxy.addr.port())).unwrap();

    let (pki, dir) = (pki(), TempDir::new());
    let config_path = dir.path("config.toml");
    std::fs::write(&config_path, crate::helpers::config(&dir, &pki, "", "")).unwrap();
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--config"])
        .arg(&config_path)
        .env("APPSTORE_LEDGER__DATABASE__URL", through.as_str());
    let served = crate::helpers::Served::start(command);
    let before = NotificationSpec::new("DID_RENEW", "pg-before").sign(&pki);
    assert_eq!(served.post(&before).await, 200);

    proxy.go_down();
    let during = NotificationSpec::new("DID_RENEW", "pg-during").sign(&pki);
    assert_eq!(served.post(&during).await, 503);
    let (status, body) = served.health().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "DATABASE_UNAVAILABLE");

    proxy.come_back();
    assert_eq!(
        served.health().await.0,
        200,
        "reconnected without a restart"
    );
    assert_eq!(served.post(&during).await, 200);
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT notification_uuid FROM notifications ORDER BY notification_uuid",
    )
    .fetch_all(&mut database.connect().await)
    .await
    .unwrap();
    assert_eq!(stored, ["pg-before", "pg-during"]);
}

/// Notifications waiting together are written in one transaction; one that
/// PostgreSQL refuses (a NUL character, which JSONB cannot hold) is found by
/// writing each alone, and the others of its batch are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_postgresql_refuses_fails_alone_in_its_batch() {
    use crate::helpers::{config, uuid, TestApp};

    let Some(database) = PgDatabase::create().await else {
        return;
    };
    let (pki, dir) = (pki(), TempDir::new());
    // Writes wait out the test's lock rather than answer 503.
    let text =
        config(&dir, &pki, "", "").replace("busy_timeout_ms = 2000", "busy_timeout_ms = 5000");
    let app = std::sync::Arc::new(TestApp::spawn_on(pki, dir, &text, Some(database)).await);
    let post = |token: String| {
        let app = std::sync::Arc::clone(&app);
        tokio::spawn(async move { app.post(&token).await.0 })
    };

    let blocker = app.block_writes().await;
    // The writers take these and wait on the lock (one writer may take
    // them all in one batch: at least one is seen waiting); what comes
    // next queues or waits too.
    let occupying: Vec<_> = (0..4)
        .map(|_| post(NotificationSpec::new("DID_RENEW", uuid()).sign(&app.pki)))
        .collect();
    app.pg.as_ref().unwrap().until_waiting_for_locks(1).await;
    let mut refused = NotificationSpec::new("DID_RENEW", uuid());
    if let Some(t) = refused.transaction.as_mut() {
        t["productId"] = serde_json::json!("monthly\u{0}");
    }
    let queued: Vec<_> = (0..8)
        .map(|_| post(NotificationSpec::new("DID_RENEW", uuid()).sign(&app.pki)))
        .collect();
    let refused = post(refused.sign(&app.pki));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    TestApp::unblock_writes(blocker).await;

    for posted in occupying.into_iter().chain(queued) {
        assert_eq!(posted.await.unwrap(), 200);
    }
    assert_eq!(refused.await.unwrap(), 503);
    assert_eq!(app.count("notifications").await, 12);
}

/// A serialization failure or deadlock (here raised by a trigger of the
/// test's for the first attempts) is retried: within the attempts the
/// notification is stored; beyond them it is 503 and nothing is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serialization_failures_are_retried_then_answered_503() {
    use crate::helpers::{config, uuid, TestApp};

    let Some(database) = PgDatabase::create().await else {
        return;
    };
    let (pki, dir) = (pki(), TempDir::new());
    let text = config(&dir, &pki, "", "");
    let app = TestApp::spawn_on(pki, dir, &text, Some(database)).await;
    let fail_first = |failures: i64, code: &str| {
        // A sequence is not rolled back with the failed transaction: it
        // counts the attempts.
        format!(
            "DROP TRIGGER IF EXISTS conflict ON notifications;
             DROP SEQUENCE IF EXISTS attempts;
             CREATE SEQUENCE attempts;
             CREATE OR REPLACE FUNCTION conflict() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF nextval('attempts') <= {failures} THEN
                     RAISE EXCEPTION 'conflict for the test' USING ERRCODE = '{code}';
                 END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER conflict BEFORE INSERT ON notifications
                 FOR EACH ROW EXECUTE FUNCTION conflict();"
        )
    };
    let mut db = app.db().await;

    for (failures, code) in [(3, "40001"), (1, "40P01")] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(fail_first(failures, code)))
            .execute(&mut db)
            .await
            .unwrap();
        let token = NotificationSpec::new("DID_RENEW", uuid()).sign(&app.pki);
        assert_eq!(app.post(&token).await.0, 200, "{code}");
        assert_eq!(attempts(&mut db).await, failures + 1, "{code}");
    }
    assert_eq!(app.count("notifications").await, 2);

    // Four attempts, all refused.
    sqlx::raw_sql(sqlx::AssertSqlSafe(fail_first(4, "40001")))
        .execute(&mut db)
        .await
        .unwrap();
    let token = NotificationSpec::new("DID_RENEW", uuid()).sign(&app.pki);
    let (status, body) = app.post(&token).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "DATABASE_UNAVAILABLE");
    assert_eq!(attempts(&mut db).await, 4);
    assert_eq!(app.count("notifications").await, 2);
    // Apple's retry is stored.
    assert_eq!(app.post(&token).await.0, 200);
    assert_eq!(app.count("notifications").await, 3);
}

async fn attempts(db: &mut sqlx::AnyConnection) -> i64 {
    sqlx::query_scalar("SELECT last_value FROM attempts")
        .fetch_one(db)
        .await
        .unwrap()
}

/// A service that stops closes every connection it opened, the writers'
/// too: a deploy does not leave sessions behind on the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_service_leaves_no_connection_open() {
    use crate::helpers::{config, uuid, TestApp};

    let Some(database) = PgDatabase::create().await else {
        return;
    };
    let name = database.name.clone();
    let mut admin = database.connect().await;
    let (pki, dir) = (pki(), TempDir::new());
    let text = config(&dir, &pki, "", "");
    let mut app = TestApp::spawn_on(pki, dir, &text, Some(database)).await;
    let token = NotificationSpec::new("DID_RENEW", uuid()).sign(&app.pki);
    assert_eq!(app.post(&token).await.0, 200);
    let sessions =
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()";
    let open: i64 = sqlx::query_scalar(sessions)
        .bind(&name)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(open >= 2, "{open}");
    app.stop().await;
    // A backend leaves pg_stat_activity a moment after its client closed
    // the connection (under load, after this query came): wait for that,
    // where a connection left open would stay.
    let mut open: i64 = -1;
    for _ in 0..100 {
        open = sqlx::query_scalar(sessions)
            .bind(&name)
            .fetch_one(&mut admin)
            .await
            .unwrap();
        if open == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(open, 0);
}
