//! PostgreSQL: its schema applied by `migrate`, once, also when several
//! instances start at once. These tests use the server named by
//! `APPSTORE_LEDGER_TEST_POSTGRES` (the README's test command sets it), in a
//! fresh database each, dropped afterwards; without one they say `skipped:`.

use std::process::Command;

use crate::helpers::{pki, TempDir};
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
    assert_eq!(out, "postgres: applied 1 (1), now at version 1");
    let (code, out, err) = migrate(&database.url);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "postgres: nothing to apply, at version 1");

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
        .filter(|(_, out)| out == "postgres: applied 1 (1), now at version 1")
        .count();
    let nothing = outcomes
        .iter()
        .filter(|(_, out)| out == "postgres: nothing to apply, at version 1")
        .count();
    assert_eq!((applied, nothing), (1, 3), "{outcomes:?}");
    let versions: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&mut database.connect().await)
        .await
        .unwrap();
    assert_eq!(versions, 1);
}

#[test]
fn migrate_on_sqlite_creates_and_migrates_the_file() {
    let dir = TempDir::new();
    let url = format!("sqlite://{}", dir.path("ledger.db").display());
    let (code, out, err) = migrate(&url);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        "sqlite: applied 8 (1, 2, 3, 4, 5, 6, 7, 8), now at version 8"
    );
    let (_, out, _) = migrate(&url);
    assert_eq!(out, "sqlite: nothing to apply, at version 8");
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
