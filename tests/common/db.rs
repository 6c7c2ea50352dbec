//! A database of its own for an in-process test: a SQLite file in a folder
//! of its own, or a PostgreSQL database on the server
//! `APPSTORE_LEDGER_TEST_POSTGRES` names, cloned from a migrated template;
//! removed or dropped afterwards.

use appstore_ledger::config::DatabaseSettings;
use appstore_ledger::store::Store;

/// A case's database: a SQLite file in a folder of its own, or a
/// PostgreSQL database of its own; removed or dropped afterwards.
pub struct TempDb {
    dir: std::path::PathBuf,
    /// The server's admin URL, the database's name and its URL.
    pg: Option<(String, String, String)>,
}

/// The PostgreSQL server the tests may use; a skip when none is named.
pub fn postgres_admin() -> Option<String> {
    let admin = std::env::var("APPSTORE_LEDGER_TEST_POSTGRES").ok();
    if admin.is_none() {
        super::skip("APPSTORE_LEDGER_TEST_POSTGRES names no PostgreSQL server");
    }
    admin
}

/// A migrated database on the server to clone each case's from: a clone
/// takes a tenth of what creating and migrating one does. One per schema
/// (named by a hash of migrations/postgres/), shared by every test process:
/// cargo-nextest runs each test in a process of its own. The first process
/// to need it builds it under another name and renames it when migrated,
/// holding an advisory lock, so a clone never sees a half-built one.
pub fn postgres_template(admin: &str) -> &'static str {
    static TEMPLATE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let admin = admin.to_owned();
        std::thread::spawn(move || {
            use sqlx::Connection;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let name = format!("appstore_ledger_template_{:016x}", schema_hash());
                let mut connection = sqlx::PgConnection::connect(&admin).await.unwrap();
                sqlx::query("SELECT pg_advisory_lock(hashtext('appstore_ledger_template'))")
                    .execute(&mut connection)
                    .await
                    .unwrap();
                // Left by test processes that are gone: the templates of
                // the one-per-process scheme, and builds cut short.
                let old: Vec<String> = sqlx::query_scalar(
                    "SELECT datname::text FROM pg_database
                     WHERE datname LIKE 'appstore_ledger_props_template_%'
                        OR datname LIKE 'appstore_ledger_building_%'",
                )
                .fetch_all(&mut connection)
                .await
                .unwrap();
                for old in old {
                    let pid = old.rsplit('_').next().unwrap_or_default();
                    if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {old} WITH (FORCE)"
                        )))
                        .execute(&mut connection)
                        .await;
                    }
                }
                let exists: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
                )
                .bind(&name)
                .fetch_one(&mut connection)
                .await
                .unwrap();
                if !exists {
                    let building = format!("appstore_ledger_building_{}", std::process::id());
                    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {building}")))
                        .execute(&mut connection)
                        .await
                        .unwrap();
                    let store = Store::connect(&DatabaseSettings {
                        url: database_url(&admin, &building),
                        max_connections: 2,
                        busy_timeout_ms: 5000,
                    })
                    .await
                    .unwrap();
                    store.close().await;
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "ALTER DATABASE {building} RENAME TO {name}"
                    )))
                    .execute(&mut connection)
                    .await
                    .unwrap();
                }
                let _ = connection.close().await;
                name
            })
        })
        .join()
        .unwrap()
    })
}

/// The URL of the database `name` on the server `admin` names: without TLS
/// unless `admin` names an `sslmode`. The suite tests the ledger, not the
/// transport; TLS handshakes took a sixth of the PostgreSQL suite's time
/// (tests/api/postgres.rs checks that the service honours `sslmode`).
pub fn database_url(admin: &str, name: &str) -> String {
    let mut url = reqwest::Url::parse(admin).expect("a postgres:// URL");
    url.set_path(&format!("/{name}"));
    if !url.query_pairs().any(|(key, _)| key == "sslmode") {
        url.query_pairs_mut().append_pair("sslmode", "disable");
    }
    url.to_string()
}

/// A hash of migrations/postgres/ (names and contents): a new migration
/// makes a new template.
fn schema_hash() -> u64 {
    use std::hash::{Hash, Hasher};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    // Fixed keys: the same hash in every process.
    let mut hasher = std::hash::DefaultHasher::new();
    for file in files {
        file.file_name().hash(&mut hasher);
        std::fs::read(&file).unwrap().hash(&mut hasher);
    }
    hasher.finish()
}

impl TempDb {
    /// On PostgreSQL when `postgres` names its server.
    pub async fn new(postgres: Option<&str>) -> TempDb {
        use sqlx::Connection;
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("appstore-ledger-props-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let pg = match postgres {
            None => None,
            Some(admin) => {
                let name = format!("appstore_ledger_props_{}_{n}", std::process::id());
                let template = postgres_template(admin);
                let mut connection = sqlx::PgConnection::connect(admin).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "CREATE DATABASE {name} TEMPLATE {template}"
                )))
                .execute(&mut connection)
                .await
                .unwrap();
                // What is tested is the fold's order-independence, not the
                // disk: commits need not wait for it.
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "ALTER DATABASE {name} SET synchronous_commit = off"
                )))
                .execute(&mut connection)
                .await
                .unwrap();
                let _ = connection.close().await;
                let url = database_url(admin, &name);
                Some((admin.to_owned(), name, url))
            }
        };
        TempDb { dir, pg }
    }

    pub async fn store(&self) -> Store {
        let url = match &self.pg {
            Some((_, _, url)) => url.clone(),
            None => format!("sqlite://{}", self.dir.join("ledger.db").display()),
        };
        Store::connect(&DatabaseSettings {
            url,
            max_connections: 4,
            busy_timeout_ms: 5000,
        })
        .await
        .unwrap()
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some((admin, name, _)) = self.pg.take() {
            drop_database(admin, name);
        }
    }
}

/// Drops the database `name` on the server `admin` names, even while
/// connections to it remain, from outside async (a Drop): on a thread of
/// its own, which may block on a runtime.
pub fn drop_database(admin: String, name: String) {
    let _ = std::thread::spawn(move || {
        use sqlx::Connection;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            if let Ok(mut connection) = sqlx::PgConnection::connect(&admin).await {
                let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                let _ = sqlx::query(sqlx::AssertSqlSafe(drop))
                    .execute(&mut connection)
                    .await;
            }
        });
    })
    .join();
}
