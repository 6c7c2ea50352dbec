//! A database of its own on the PostgreSQL server named by
//! `APPSTORE_LEDGER_TEST_POSTGRES` (the README's test command sets it),
//! created for a test and dropped after it.

use sqlx::{Connection, PgConnection};

/// A database of its own on the test server, dropped when done.
pub struct PgDatabase {
    /// Without TLS unless the server's URL names an `sslmode`.
    pub url: String,
    admin: String,
    pub name: String,
}

impl PgDatabase {
    /// `None` (the test skips, see [`crate::common::skip`]) when no server
    /// is named. A server that is named but does not answer fails the
    /// test: it was meant to run there.
    pub async fn create() -> Option<PgDatabase> {
        PgDatabase::create_from(false).await
    }

    /// Like [`PgDatabase::create`], already migrated: a clone of a migrated
    /// database, a tenth of what creating and migrating one costs (for the
    /// suite's TestApps, which would migrate it first thing).
    pub async fn create_migrated() -> Option<PgDatabase> {
        PgDatabase::create_from(true).await
    }

    async fn create_from(migrated: bool) -> Option<PgDatabase> {
        let Ok(admin) = std::env::var("APPSTORE_LEDGER_TEST_POSTGRES") else {
            crate::common::skip("APPSTORE_LEDGER_TEST_POSTGRES names no PostgreSQL server");
            return None;
        };
        let mut connection = match PgConnection::connect(&admin).await {
            Ok(connection) => connection,
            Err(error) => panic!(
                "APPSTORE_LEDGER_TEST_POSTGRES names {admin}, which does not answer: {error}"
            ),
        };
        let name = format!("appstore_ledger_test_{}", uuid::Uuid::new_v4().simple());
        let create = if migrated {
            let template = crate::common::db::postgres_template(&admin);
            format!("CREATE DATABASE {name} TEMPLATE {template}")
        } else {
            format!("CREATE DATABASE {name}")
        };
        sqlx::query(sqlx::AssertSqlSafe(create))
            .execute(&mut connection)
            .await
            .unwrap();
        let _ = connection.close().await;
        let url = crate::common::db::database_url(&admin, &name);
        Some(PgDatabase { url, admin, name })
    }

    /// [`PgDatabase::url`] with `sslmode` set to `mode`.
    pub fn url_with_sslmode(&self, mode: &str) -> String {
        let mut url = reqwest::Url::parse(&self.url).unwrap();
        let rest: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(key, _)| key != "sslmode")
            .map(|(key, value)| (key.into_owned(), value.into_owned()))
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(rest)
            .append_pair("sslmode", mode);
        url.to_string()
    }

    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.url).await.unwrap()
    }

    /// Returns once `n` connections to this database wait for a lock, as
    /// PostgreSQL itself shows them (`pg_stat_activity`): a test sees the
    /// other side wait rather than sleeping and hoping it does. Fails after
    /// 20 seconds.
    pub async fn until_waiting_for_locks(&self, n: i64) {
        let mut connection = self.connect().await;
        for _ in 0..400 {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&mut connection)
            .await
            .unwrap();
            if waiting >= n {
                let _ = connection.close().await;
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("{n} connections never waited for a lock");
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        crate::common::db::drop_database(self.admin.clone(), self.name.clone());
    }
}
