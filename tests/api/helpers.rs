use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};
use sqlx::{Connection, SqliteConnection};
use tokio::sync::oneshot;

use appstore_ledger::clock::ManualClock;
use appstore_ledger::config::Settings;
use appstore_ledger::startup::Application;

use crate::common::pki::{date, ChainSpec, TestPki};

pub use crate::common::payloads::{NotificationSpec, APP_APPLE_ID, BUNDLE_ID};

/// A PKI whose leaf is valid now (the service verifies at the current time).
pub fn pki() -> TestPki {
    TestPki::build(ChainSpec {
        leaf_validity: (date(2020), date(2035)),
        ..ChainSpec::default()
    })
}

/// A folder of its own for each test, removed afterwards.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "appstore-ledger-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct TestApp {
    pub address: String,
    /// `/metrics`, when `server.metrics_listen` gives it an address.
    pub metrics_address: Option<String>,
    pub client: reqwest::Client,
    pub db_path: PathBuf,
    pub config_path: PathBuf,
    pub pki: TestPki,
    pub dir: TempDir,
    /// The PostgreSQL database, when this suite runs on PostgreSQL.
    pub pg: Option<crate::pg::PgDatabase>,
    /// Set by a test that sends a status Apple would not sign: the check
    /// that every scenario agrees with Apple is not made when it ends.
    pub apple_may_disagree: bool,
    manual_clock: Option<Arc<ManualClock>>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

/// The configuration every test starts from: one app, both environments,
/// the test PKI's root trusted, a fresh database.
/// `server_extra` goes into `[server]`, `extra` at the end. A write waits
/// up to 2 s for a lock (the service's default is 5 s): at eight tests at
/// once on two cores, 200 ms turned ordinary turns into 503s.
pub fn config(dir: &TempDir, pki: &TestPki, server_extra: &str, extra: &str) -> String {
    let root = dir.path("root.der");
    std::fs::write(&root, &pki.root_der).unwrap();
    format!(
        r#"
        [server]
        listen = "127.0.0.1:0"
        request_timeout_ms = 5000
        {server_extra}
        [database]
        url = "sqlite://{db}"
        busy_timeout_ms = 2000
        [verification]
        trusted_roots = ["{root}"]
        [[apps]]
        bundle_id = "{BUNDLE_ID}"
        app_apple_id = {APP_APPLE_ID}
        environments = ["Production", "Sandbox"]
        [api]
        tokens = ["{API_TOKEN}", "{SECOND_TOKEN}"]
        [log]
        level = "warn"
        {extra}
        "#,
        db = dir.path("ledger.db").display(),
        root = root.display(),
    )
}

pub const API_TOKEN: &str = "test-token-0123456789";
pub const SECOND_TOKEN: &str = "second-token-0123456789";

/// Whether the running test is one of `on_postgres!`'s: libtest names
/// each test's thread after the test, and a test's body runs on it (the
/// tokio runtime's `block_on`). Asked from another thread, it cannot tell,
/// and says so rather than guess.
pub fn on_postgres() -> bool {
    let thread = std::thread::current();
    let name = thread.name().unwrap_or_default();
    assert!(
        name.contains("::"),
        "the suite's backend is told by the test's own thread, not {name:?}"
    );
    name.contains("::on_postgres::")
}

/// `text` (a [`config`]) on this suite's backend: when the suite runs on
/// PostgreSQL, on a fresh database there, kept while the guard lives.
pub async fn on_suite_backend(
    dir: &TempDir,
    text: String,
) -> (String, Option<crate::pg::PgDatabase>) {
    if !on_postgres() {
        return (text, None);
    }
    let Some(pg) = crate::pg::PgDatabase::create_migrated().await else {
        // Said (or failed) by create(); on a newcomer's machine the test
        // runs on SQLite, which proves nothing of PostgreSQL but keeps
        // the test's other checks.
        return (text, None);
    };
    let sqlite = format!("sqlite://{}", dir.path("ledger.db").display());
    (text.replace(&sqlite, &pg.url), Some(pg))
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().unwrap()
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(pki(), TempDir::new(), "").await
    }

    pub async fn spawn_with(pki: TestPki, dir: TempDir, extra: &str) -> TestApp {
        TestApp::spawn_configured(pki, dir, "", extra).await
    }

    pub async fn spawn_tls(pki: TestPki, dir: TempDir, cert: &Path, key: &Path) -> TestApp {
        let tls = format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"",
            cert.display(),
            key.display()
        );
        TestApp::spawn_configured(pki, dir, &tls, "").await
    }

    pub async fn spawn_configured(
        pki: TestPki,
        dir: TempDir,
        server_extra: &str,
        extra: &str,
    ) -> TestApp {
        let text = config(&dir, &pki, server_extra, extra);
        TestApp::spawn_text(pki, dir, &text).await
    }

    /// With the whole configuration text given: on a fresh PostgreSQL
    /// database when the test runs on PostgreSQL ([`on_postgres`]).
    pub async fn spawn_text(pki: TestPki, dir: TempDir, text: &str) -> TestApp {
        let (text, pg) = on_suite_backend(&dir, text.to_owned()).await;
        TestApp::spawn_on(pki, dir, &text, pg).await
    }

    /// With the whole configuration text given, on `pg` when given (else
    /// on the SQLite file the text names).
    pub async fn spawn_on(
        pki: TestPki,
        dir: TempDir,
        text: &str,
        pg: Option<crate::pg::PgDatabase>,
    ) -> TestApp {
        TestApp::spawn_clocked(pki, dir, text, pg, None).await
    }

    /// A service whose clock stands still until the test advances it
    /// ([`TestApp::clock`]), starting at the system's time now.
    pub async fn spawn_with_manual_clock(extra: &str) -> TestApp {
        let (pki, dir) = (pki(), TempDir::new());
        let text = config(&dir, &pki, "", extra);
        let (text, pg) = on_suite_backend(&dir, text).await;
        let clock = Arc::new(ManualClock::starting_now());
        TestApp::spawn_clocked(pki, dir, &text, pg, Some(clock)).await
    }

    /// With the configuration text `text`, telling the time by `clock`,
    /// which the test may share (with a fake Apple, another instance).
    pub async fn spawn_text_with_clock(
        pki: TestPki,
        dir: TempDir,
        text: &str,
        clock: Arc<ManualClock>,
    ) -> TestApp {
        let (text, pg) = on_suite_backend(&dir, text.to_owned()).await;
        TestApp::spawn_clocked(pki, dir, &text, pg, Some(clock)).await
    }

    /// A second instance on this one's database and configuration, telling
    /// the time by the same clock. Drop it first.
    pub async fn another_instance(&self) -> TestApp {
        let text = std::fs::read_to_string(&self.config_path).unwrap();
        TestApp::spawn_clocked(
            self.pki.clone(),
            TempDir::new(),
            &text,
            None,
            self.manual_clock.clone(),
        )
        .await
    }

    /// The manual clock the service tells the time by.
    pub fn clock(&self) -> &ManualClock {
        self.manual_clock
            .as_deref()
            .expect("a service spawned with spawn_with_manual_clock")
    }

    /// The test's clock, to move from elsewhere (a receiver's answer).
    pub fn shared_clock(&self) -> Arc<ManualClock> {
        Arc::clone(
            self.manual_clock
                .as_ref()
                .expect("a service spawned with spawn_with_manual_clock"),
        )
    }

    async fn spawn_clocked(
        pki: TestPki,
        dir: TempDir,
        text: &str,
        pg: Option<crate::pg::PgDatabase>,
        manual_clock: Option<Arc<ManualClock>>,
    ) -> TestApp {
        let text = match &pg {
            Some(pg) => text.replace(
                &format!("sqlite://{}", dir.path("ledger.db").display()),
                &pg.url,
            ),
            None => text.to_owned(),
        };
        let text = text.as_str();
        let config_path = dir.path("config.toml");
        std::fs::write(&config_path, text).unwrap();
        let settings = Settings::from_toml(text).unwrap();
        appstore_ledger::telemetry::init(&settings.log);
        let clock: appstore_ledger::clock::SharedClock = match &manual_clock {
            Some(manual) => manual.clone(),
            None => appstore_ledger::clock::system(),
        };
        // The service runs on a runtime of its own, as in production: a test
        // that blocks its own thread (running the binary, say) cannot stop
        // the service in the middle of a write transaction that the binary
        // then waits for.
        let (ready, started) = oneshot::channel::<(String, Option<String>)>();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let application = Application::build_with_clock(settings, clock)
                    .await
                    .unwrap();
                let scheme = if application.is_tls() {
                    "https"
                } else {
                    "http"
                };
                let address = format!("{scheme}://localhost:{}", application.port());
                let metrics_address = application
                    .metrics_addr()
                    .map(|addr| format!("http://{addr}"));
                let _ = ready.send((address, metrics_address));
                application
                    .run_until(async {
                        let _ = stopped.await;
                    })
                    .await
            })
        });
        let (address, metrics_address) = started.await.expect("the service started");
        TestApp {
            address,
            metrics_address,
            client: client(),
            db_path: dir.path("ledger.db"),
            config_path,
            pki,
            dir,
            pg,
            apple_may_disagree: false,
            manual_clock,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// Tells the server to stop, without waiting.
    pub fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Stops the server gracefully and waits until it has closed the database.
    pub async fn stop(&mut self) {
        self.begin_stop();
        if let Some(server) = self.server.take() {
            tokio::task::spawn_blocking(move || server.join())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
        }
    }

    /// Stops, then starts again on the same database and configuration.
    pub async fn restart(mut self) -> TestApp {
        self.stop().await;
        let pki = std::mem::replace(&mut self.pki, pki());
        let dir = std::mem::replace(&mut self.dir, TempDir::new());
        let text = config(&dir, &pki, "", "");
        let pg = self.pg.take();
        TestApp::spawn_on(pki, dir, &text, pg).await
    }

    pub async fn post_raw(&self, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/v2/notifications", self.address))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        (status, body)
    }

    pub async fn post(&self, signed_payload: &str) -> (u16, Value) {
        self.post_raw(json!({ "signedPayload": signed_payload }).to_string())
            .await
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .unwrap()
    }

    /// A query API call with the bearer token; the body as text.
    pub async fn api_text(&self, path: &str) -> (u16, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.address))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// A query API call with the bearer token.
    pub async fn api(&self, path: &str) -> (u16, Value) {
        let (status, body) = self.api_text(path).await;
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// Runs the binary with `args` and this app's `--config`; asserts it ran.
    pub fn cli(&self, args: &[&str]) -> Cli {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_appstore-ledger"))
            .args(args)
            .arg("--config")
            .arg(&self.config_path)
            .output()
            .unwrap();
        Cli {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs the binary with `args`, this app's `--config` and `input` on
    /// its standard input.
    pub fn cli_input(&self, args: &[&str], input: &str) -> Cli {
        run_with_input(
            std::process::Command::new(env!("CARGO_BIN_EXE_appstore-ledger"))
                .args(args)
                .arg("--config")
                .arg(&self.config_path),
            input,
        )
    }

    /// A connection to this app's database, SQLite or PostgreSQL. Binds
    /// are written `$1`, which both read.
    pub async fn db(&self) -> sqlx::AnyConnection {
        sqlx::any::install_default_drivers();
        sqlx::AnyConnection::connect(&self.database_url())
            .await
            .unwrap()
    }

    /// `POST /v1/transactions` with `body`, as a backend reports what the
    /// app bought: the status and the answer.
    pub async fn report(&self, body: serde_json::Value) -> (u16, serde_json::Value) {
        let response = self
            .client
            .post(format!("{}/v1/transactions", self.address))
            .bearer_auth(API_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    /// The service's store, opened beside the running server as its own
    /// configuration says: for what only the library can show.
    pub async fn store(&self) -> appstore_ledger::store::Store {
        let settings = appstore_ledger::config::Settings::load(Some(&self.config_path)).unwrap();
        appstore_ledger::store::Store::connect(&settings.database)
            .await
            .unwrap()
    }

    pub fn database_url(&self) -> String {
        match &self.pg {
            Some(pg) => pg.url.clone(),
            None => format!("sqlite://{}", self.db_path.display()),
        }
    }

    /// Every row of every table the service keeps, as text in a stable
    /// order: to prove that something changed nothing. Leaving out what
    /// only coordinates the running service (job leases, /health's probe),
    /// which every run or health check rewrites.
    pub async fn tables(&self) -> Vec<(String, Vec<String>)> {
        use sqlx::{Column, Row, ValueRef};
        let mut db = self.db().await;
        let names: Vec<String> = sqlx::query_scalar(if self.pg.is_some() {
            "SELECT CAST(table_name AS TEXT) FROM information_schema.tables
             WHERE table_schema = 'public' AND table_name NOT LIKE '_sqlx%'
               AND table_name NOT IN ('job_leases', 'write_probe')
             ORDER BY table_name"
        } else {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
             AND name NOT LIKE '_sqlx%' AND name NOT IN ('job_leases', 'write_probe')
             ORDER BY name"
        })
        .fetch_all(&mut db)
        .await
        .unwrap();
        if self.pg.is_some() {
            // Each row as JSON: the Any driver reads no JSONB.
            let mut out = Vec::new();
            for name in names {
                let sql = format!("SELECT CAST(row_to_json(t) AS TEXT) FROM \"{name}\" t");
                let mut rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .fetch_all(&mut db)
                    .await
                    .unwrap();
                rows.sort();
                out.push((name, rows));
            }
            return out;
        }
        let mut out = Vec::new();
        for name in names {
            // Table names come from sqlite_master, not from outside.
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM \"{name}\"")))
                .fetch_all(&mut db)
                .await
                .unwrap();
            let mut lines: Vec<String> = rows
                .iter()
                .map(|row| {
                    (0..row.columns().len())
                        .map(|i| {
                            let column = row.columns()[i].name().to_owned();
                            let value = if row.try_get_raw(i).unwrap().is_null() {
                                "NULL".to_owned()
                            } else if let Ok(v) = row.try_get::<i64, _>(i) {
                                v.to_string()
                            } else {
                                row.try_get::<String, _>(i)
                                    .unwrap_or_else(|_| "<blob>".into())
                            };
                            // Long values (tokens, payloads) by digest, so a
                            // failing comparison stays readable.
                            let value = if value.len() > 120 {
                                let d =
                                    ring::digest::digest(&ring::digest::SHA256, value.as_bytes());
                                let hex: String =
                                    d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
                                format!("<{} bytes, sha256 {hex}>", value.len())
                            } else {
                                value
                            };
                            format!("{column}={value}")
                        })
                        .collect::<Vec<_>>()
                        .join(" | ")
                })
                .collect();
            lines.sort();
            out.push((name, lines));
        }
        out
    }

    /// `/metrics` reports the totals the writes keep; they must equal what
    /// counting the tables gives.
    pub async fn assert_totals_match_tables(&self) {
        // The periodic check may open a finding meanwhile: compare when two
        // scrapes around the count agree.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let before = self.totals_reported().await;
            let counted = self.totals_counted().await;
            let after = self.totals_reported().await;
            if before == after || attempts == 20 {
                assert_eq!(after, counted, "reported by /metrics, then counted");
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Stored and quarantined notifications and open findings by kind, as
    /// /metrics reports them.
    async fn totals_reported(&self) -> (i64, i64, BTreeMap<String, i64>) {
        let text = self.get("/metrics").await.text().await.unwrap();
        let reported = |name: &str| -> i64 {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
                .unwrap_or_else(|| panic!("no {name} in {text}"))
                .parse()
                .unwrap()
        };
        let open = text
            .lines()
            .filter_map(|line| {
                let rest = line.strip_prefix("appstore_ledger_open_findings{kind=\"")?;
                let (kind, count) = rest.split_once("\"} ")?;
                let count: i64 = count.parse().ok()?;
                (count > 0).then(|| (kind.to_owned(), count))
            })
            .collect();
        (
            reported("appstore_ledger_stored_notifications"),
            reported("appstore_ledger_quarantined_notifications"),
            open,
        )
    }

    /// The same, counted in the tables.
    async fn totals_counted(&self) -> (i64, i64, BTreeMap<String, i64>) {
        let open: Vec<(String, i64)> = sqlx::query_as(
            "SELECT kind, count(*) FROM findings WHERE resolved_at IS NULL GROUP BY kind",
        )
        .fetch_all(&mut self.db().await)
        .await
        .unwrap();
        (
            self.count("notifications").await,
            self.count("quarantined_notifications").await,
            open.into_iter().collect(),
        )
    }

    /// Holds a lock that keeps notifications from being written (as another
    /// process on the database might) until [`TestApp::unblock_writes`].
    pub async fn block_writes(&self) -> sqlx::AnyConnection {
        let mut blocker = self.db().await;
        let statements: &[&str] = if self.pg.is_some() {
            &[
                "BEGIN",
                "LOCK TABLE notifications, quarantined_notifications, write_probe IN EXCLUSIVE MODE",
            ]
        } else {
            &["BEGIN EXCLUSIVE"]
        };
        for sql in statements {
            sqlx::query(sqlx::AssertSqlSafe(*sql))
                .execute(&mut blocker)
                .await
                .unwrap();
        }
        blocker
    }

    pub async fn unblock_writes(mut blocker: sqlx::AnyConnection) {
        sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();
        let _ = blocker.close().await;
    }

    pub async fn count(&self, table: &str) -> i64 {
        let sql = match table {
            "notifications" => "SELECT count(*) FROM notifications",
            "quarantined_notifications" => "SELECT count(*) FROM quarantined_notifications",
            "console_sessions" => "SELECT count(*) FROM console_sessions",
            "console_access_log" => "SELECT count(*) FROM console_access_log",
            "apple_evidence" => "SELECT count(*) FROM apple_evidence",
            "entitlement_events" => "SELECT count(*) FROM entitlement_events",
            "told_answers" => "SELECT count(*) FROM told_answers",
            "told_seeding" => "SELECT count(*) FROM told_seeding",
            other => panic!("no table {other}"),
        };
        sqlx::query_scalar(sql)
            .fetch_one(&mut self.db().await)
            .await
            .unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if !std::thread::panicking() && !self.apple_may_disagree {
            self.assert_apple_agrees();
        }
    }
}

impl TestApp {
    /// Every scenario here is one Apple could sign: the ledger's own
    /// answer agrees with every status Apple signed in it. Checked when the
    /// test is over, by the checker the operator runs; a test that sends a
    /// status Apple would not sign says so ([`TestApp::apple_may_disagree`]).
    fn assert_apple_agrees(&self) {
        let out = self.cli(&["check", "--json"]);
        // A test that broke its own configuration or database on purpose
        // has nothing to check.
        if !matches!(out.code, Some(0 | 3)) {
            return;
        }
        let disagreements: Vec<&str> = out
            .stdout
            .lines()
            .filter(|line| line.contains("\"APPLE_STATUS_DISAGREES\""))
            .collect();
        assert!(
            disagreements.is_empty(),
            "the scenario raised APPLE_STATUS_DISAGREES: {disagreements:?}"
        );
    }
}

/// What a run of the binary printed.
pub struct Cli {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `command` with `input` on its standard input; what it printed.
pub fn run_with_input(command: &mut std::process::Command, input: &str) -> Cli {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(mut stdin) = child.stdin.take() {
        // A command refused before it reads may have closed its end.
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = child.wait_with_output().unwrap();
    Cli {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub async fn db(path: &Path) -> SqliteConnection {
    SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap()
}

pub fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Starts the binary as `command` says, with JSON logs on a pipe, and waits
/// for its listening address. Returns the child, the address, and the rest of
/// its log lines.
pub fn spawn_serve(
    command: &mut std::process::Command,
) -> (
    std::process::Child,
    String,
    std::io::Lines<std::io::BufReader<std::process::ChildStderr>>,
) {
    use std::io::BufRead;
    let mut child = command
        .env("APPSTORE_LEDGER__LOG__FORMAT", "json")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("the server printed its address")
            .unwrap();
        let log: Value = serde_json::from_str(&line).unwrap_or_default();
        if log["message"] == "listening" {
            break log["addr"].as_str().unwrap().to_owned();
        }
    };
    (child, addr, lines)
}

/// kill -9 of a served process: no shutdown, no flush.
pub fn kill_9(pid: u32) {
    std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
}

/// Waits for `child` and checks that kill -9 ended it.
pub fn assert_killed(child: &mut std::process::Child) {
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "killed"
    );
}

/// The binary serving, seen from outside.
pub struct Served {
    pub child: std::process::Child,
    pub addr: String,
    pub http: reqwest::Client,
}

impl Served {
    /// Killed when dropped, so a failing test leaves no server behind.
    pub fn start(mut command: std::process::Command) -> Served {
        let (child, addr, lines) = spawn_serve(command.env("APPSTORE_LEDGER__LOG__LEVEL", "info"));
        std::thread::spawn(move || lines.for_each(drop));
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap();
        Served { child, addr, http }
    }

    pub async fn post(&self, token: &str) -> u16 {
        self.http
            .post(format!("http://{}/v2/notifications", self.addr))
            .json(&json!({ "signedPayload": token }))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// A query API call with the bearer token; the answer must be 200.
    pub async fn api(&self, path: &str) -> serde_json::Value {
        let response = self
            .http
            .get(format!("http://{}{path}", self.addr))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        response.json().await.unwrap()
    }

    pub async fn health(&self) -> (u16, serde_json::Value) {
        let response = self
            .http
            .get(format!("http://{}/health", self.addr))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
