//! The schema's migrations, built into the binary: each file of
//! migrations/sqlite/ and migrations/postgres/, with the version, the
//! description and the checksum sqlx gives it when it reads the folder.
//!
//! Listed here rather than by `sqlx::migrate!`: that macro needs sqlx's
//! macros, which compile both database drivers, TLS and SQLite's C source a
//! second time for the compiler's host, about a minute of every clean build
//! on two cores. A test holds each list to its folder (a file not listed, or
//! listed under another version, fails it).

use std::borrow::Cow;
use std::sync::LazyLock;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::SqlSafeStr;

/// The files of one folder, each read into the binary when compiling.
macro_rules! files {
    ($dir:literal: $($file:literal,)*) => {
        [$(($file, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/", $dir, "/", $file))),)*]
    };
}

/// migrations/sqlite/, in version order.
pub(super) static SQLITE: LazyLock<Migrator> = LazyLock::new(|| {
    migrator(&files!("sqlite":
            "0001_notifications.sql",
            "0002_ledger.sql",
            "0003_checker.sql",
            "0004_unfolded.sql",
            "0005_appstore_api.sql",
            "0006_write_probe.sql",
            "0007_totals.sql",
            "0008_job_leases.sql",
            "0009_console_users.sql",
            "0010_console_sessions.sql",
            "0011_console_audit.sql",
            "0012_console_hardening.sql",
            "0013_apple_model.sql",
            "0014_customer.sql",
            "0015_consumption.sql",
            "0016_refund_source.sql",
            "0017_entitlement_events.sql",
            "0018_webhooks.sql",
            "0019_fresh_told_seeding.sql",
            "0020_delivery_indexes.sql",
            "0021_fan_out_lease.sql",
    ))
});

/// migrations/postgres/, in version order.
pub(super) static POSTGRES: LazyLock<Migrator> = LazyLock::new(|| {
    migrator(&files!("postgres":
            "0001_schema.sql",
            "0002_storage.sql",
            "0003_record_notification.sql",
            "0004_console_users.sql",
            "0005_console_sessions.sql",
            "0006_console_audit.sql",
            "0007_console_hardening.sql",
            "0008_apple_model.sql",
            "0009_customer.sql",
            "0010_consumption.sql",
            "0011_refund_source.sql",
            "0012_entitlement_events.sql",
            "0013_webhooks.sql",
            "0014_fresh_told_seeding.sql",
            "0015_delivery_indexes.sql",
            "0016_fan_out_lease.sql",
            "0017_record_notification_told.sql",
    ))
});

fn migrator(files: &[(&'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        files
            .iter()
            .filter_map(|&(file, sql)| migration(file, sql))
            .collect(),
    )
}

/// As sqlx reads `<version>_<description>.sql`: the description's `_` read
/// as spaces, and `-- no-transaction` on the first line opting out of the
/// migration's transaction. The checksum is the SQL's, as sqlx computes it.
/// A name without a version is none (the test below catches it).
fn migration(file: &'static str, sql: &'static str) -> Option<Migration> {
    let (version, description) = file.strip_suffix(".sql")?.split_once('_')?;
    Some(Migration::new(
        version.parse().ok()?,
        Cow::Owned(description.replace('_', " ")),
        MigrationType::Simple,
        sqlx::AssertSqlSafe(sql).into_sql_str(),
        sql.starts_with("-- no-transaction"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What sqlx itself reads from a folder, as (version, description,
    /// checksum, no_tx).
    fn read(migrator: &Migrator) -> Vec<(i64, String, Vec<u8>, bool)> {
        migrator
            .iter()
            .map(|m| {
                (
                    m.version,
                    m.description.to_string(),
                    m.checksum.to_vec(),
                    m.no_tx,
                )
            })
            .collect()
    }

    async fn folder(dir: &str) -> Migrator {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(dir);
        Migrator::new(path).await.unwrap()
    }

    #[tokio::test]
    async fn each_list_is_its_folder_as_sqlx_reads_it() {
        let sqlite = read(&SQLITE);
        assert_eq!(sqlite, read(&folder("sqlite").await));
        assert_eq!(sqlite.len(), 21);
        let postgres = read(&POSTGRES);
        assert_eq!(postgres, read(&folder("postgres").await));
        assert_eq!(postgres.len(), 17);
    }

    async fn told_seeding_after(before: usize, item: bool) -> i64 {
        use sqlx::Connection;
        let mut connection = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        let earlier: Vec<Migration> = SQLITE.iter().take(before).cloned().collect();
        Migrator::with_migrations(earlier)
            .run(&mut connection)
            .await
            .unwrap();
        if item {
            sqlx::query(
                "INSERT INTO ledger_items (kind, item_id, original_transaction_id, status,
                    last_signed_date, state) VALUES ('subscription', 'o1', 'o1', 'active', 1, '{}')",
            )
            .execute(&mut connection)
            .await
            .unwrap();
        }
        SQLITE.run(&mut connection).await.unwrap();
        sqlx::query_scalar("SELECT count(*) FROM told_seeding")
            .fetch_one(&mut connection)
            .await
            .unwrap()
    }

    /// A new database has no answers from before events to seed; one
    /// upgraded from before them (version 17) with a ledger keeps its
    /// seeding for the first start.
    #[tokio::test]
    async fn only_a_ledger_from_before_events_is_seeded() {
        assert_eq!(told_seeding_after(0, false).await, 0);
        assert_eq!(told_seeding_after(17, false).await, 0);
        assert_eq!(told_seeding_after(17, true).await, 1);
    }

    #[test]
    fn a_name_without_a_version_is_no_migration() {
        assert!(migration("notes.sql", "").is_none());
        assert!(migration("x_notes.sql", "").is_none());
        let m = migration("0007_console_hardening.sql", "-- no-transaction\nSELECT 1").unwrap();
        assert_eq!(
            (m.version, m.description.as_ref(), m.no_tx),
            (7, "console hardening", true)
        );
    }
}
