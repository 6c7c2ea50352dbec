//! Settings: built-in defaults, then a TOML file, then environment variables
//! prefixed `APPSTORE_LEDGER__` (`APPSTORE_LEDGER__SERVER__LISTEN=0.0.0.0:8080`).
//! Everything is validated at start-up; an error names the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::finding::Tolerances;
use crate::jws::{TrustAnchors, XcodeCertificate};
use crate::ledger::{ProductDuration, Products};
use crate::model::Environment;
pub use apps::{
    check_base_url, is_issuer_id, is_key_id, parse_p8, AppApiSettings, AppSettings,
    ConsumptionSettings, KeyError, ProductSettings,
};

mod apps;
mod events;

pub use events::{
    takes, webhook_key, EndpointSettings, EventsSettings, SinkFilter, StreamSettings,
};

pub const ENV_PREFIX: &str = "APPSTORE_LEDGER__";

/// Shorter bearer tokens can be guessed; the README's example is public.
const MIN_TOKEN_CHARS: usize = 16;
const PLACEHOLDER_TOKEN: &str = "change-me";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub verification: VerificationSettings,
    pub apps: Vec<AppSettings>,
    pub api: ApiSettings,
    pub log: LogSettings,
    pub check: CheckSettings,
    pub appstore_api: AppStoreApiSettings,
    pub console: ConsoleSettings,
    pub events: EventsSettings,
}

/// The support console (`/console`), on once a user exists.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSettings {
    /// A session unused this long is over: sign in again.
    pub session_idle_minutes: u64,
    /// A session this old is over however busy it was: sign in again.
    pub session_max_minutes: u64,
    /// Failed sign-ins allowed per user name, and per address, in 15
    /// minutes; beyond them sign-in is refused (429) until they age out.
    pub login_failures_allowed: u32,
    /// Passwords checked at once (argon2id takes 19 MiB and a core's time
    /// for each): the bound on what sign-ins cost whatever their number.
    pub password_checks_at_once: usize,
    /// Sign-ins that may wait for a check; more are refused with 429.
    pub password_checks_waiting: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSettings {
    /// How often `serve` runs the inconsistency check; 0 never.
    pub interval_ms: u64,
    /// Per rule, minutes of silence before it becomes a finding.
    pub tolerance_minutes: Tolerances,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Address and port to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// With `tls_key`: serve HTTPS (TLS 1.2 and 1.3) from this PEM chain.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Larger request bodies are refused with 413. Apple's are about 20 KB.
    pub max_body_bytes: usize,
    /// A request that takes longer is abandoned (the client gets 408, or 503
    /// if the database was the slow part) and Apple retries it.
    pub request_timeout_ms: u64,
    /// How long in-flight requests may take to finish on SIGINT/SIGTERM.
    pub shutdown_grace_ms: u64,
    /// A new connection, or one that has begun a request, must send the
    /// request's headers within this; slower ones are closed.
    pub header_read_timeout_ms: u64,
    /// A connection with nothing in flight and nothing arriving is closed
    /// after this.
    pub idle_timeout_ms: u64,
    /// Connections beyond this many at once are closed as they arrive.
    pub max_connections: usize,
    /// Serve `/metrics` on this address instead of `listen`, so that it
    /// need not face the internet.
    pub metrics_listen: Option<SocketAddr>,
    /// Behind a load balancer: the header in which it appends the client's
    /// address (`x-forwarded-for`); its last entry is taken. Unset, the
    /// peer's address is the client's.
    pub client_address_header: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerificationSettings {
    /// Trusted roots (DER or PEM); empty means the embedded Apple Root CA - G3.
    pub trusted_roots: Vec<PathBuf>,
    /// The StoreKit test certificate Xcode exports from a StoreKit
    /// configuration (DER or PEM): tokens it signed are accepted for the
    /// `Xcode` and `LocalTesting` environments only. Required when an app
    /// lists either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xcode_certificate: Option<PathBuf>,
}

/// What `serve` asks Apple on its own, for apps with `[apps.api]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppStoreApiSettings {
    /// How often to backfill from Notification History; 0 never.
    pub backfill_interval_ms: u64,
    /// How far back each scheduled backfill looks.
    pub backfill_look_back_hours: u64,
    /// How often to reconcile the subscriptions with open findings; 0 never.
    pub reconcile_interval_ms: u64,
    /// How often to look for consumption requests to answer; 0 never.
    #[serde(default = "default_consumption_interval_ms")]
    pub consumption_interval_ms: u64,
}

fn default_consumption_interval_ms() -> u64 {
    60_000
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    /// Bearer tokens accepted by the query APIs.
    pub tokens: Vec<SecretString>,
    /// Purchases a token may report per minute (POST /v1/transactions).
    pub reports_per_minute: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `human` or `json`.
    pub format: String,
    /// A tracing filter such as `info` or `appstore_ledger=debug,info`.
    pub level: String,
}

/// The built-in defaults, as a TOML-shaped tree (secrets have no default).
#[derive(Serialize)]
struct Defaults {
    server: ServerSettings,
    database: DatabaseSettings,
    verification: VerificationSettings,
    /// No app by default; the type only has to serialise as a list.
    apps: Vec<String>,
    api: ApiDefaults,
    log: LogSettings,
    check: CheckSettings,
    appstore_api: AppStoreApiSettings,
    console: ConsoleSettings,
    events: events::EventsDefaults,
}

#[derive(Serialize)]
struct ApiDefaults {
    tokens: Vec<String>,
    reports_per_minute: u32,
}

fn defaults() -> Defaults {
    Defaults {
        server: ServerSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tls_cert: None,
            tls_key: None,
            max_body_bytes: 262_144,
            request_timeout_ms: 10_000,
            shutdown_grace_ms: 10_000,
            header_read_timeout_ms: 5_000,
            idle_timeout_ms: 60_000,
            max_connections: 1_024,
            metrics_listen: None,
            client_address_header: None,
        },
        database: DatabaseSettings {
            url: "sqlite://appstore-ledger.db".into(),
            max_connections: 8,
            busy_timeout_ms: 5_000,
        },
        verification: VerificationSettings::default(),
        apps: Vec::new(),
        api: ApiDefaults {
            tokens: Vec::new(),
            reports_per_minute: 600,
        },
        log: LogSettings {
            format: "human".into(),
            level: "info".into(),
        },
        check: CheckSettings {
            interval_ms: 300_000,
            tolerance_minutes: Tolerances::default(),
        },
        appstore_api: AppStoreApiSettings {
            backfill_interval_ms: 3_600_000,
            // Production retries for three days: anything older is lost
            // unless a backfill finds it.
            backfill_look_back_hours: 96,
            reconcile_interval_ms: 3_600_000,
            consumption_interval_ms: default_consumption_interval_ms(),
        },
        console: ConsoleSettings {
            session_idle_minutes: 30,
            session_max_minutes: 720,
            login_failures_allowed: 5,
            password_checks_at_once: 2,
            password_checks_waiting: 16,
        },
        events: events::defaults(),
    }
}

/// The file of a `sqlite:` URL (none for an in-memory database).
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// Where the database is and how to use it (`[database]` in the
/// configuration).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://PATH` (created and migrated on start) or `postgres://...`.
    pub url: String,
    pub max_connections: u32,
    /// How long a write waits for a lock held by another process before the
    /// notification is refused with 503 (and Apple retries).
    pub busy_timeout_ms: u64,
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

impl Settings {
    /// Defaults, then `file` if given, then `APPSTORE_LEDGER__*` variables.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(defaults()));
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError(format!("{}: no such file", file.display())));
            }
            figment = figment.merge(Toml::file(file));
        }
        figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__"));
        Settings::extract(figment)
    }

    /// Only the defaults and the given TOML text (tests).
    pub fn from_toml(text: &str) -> Result<Settings, ConfigError> {
        Settings::extract(Figment::from(Serialized::defaults(defaults())).merge(Toml::string(text)))
    }

    fn extract(figment: Figment) -> Result<Settings, ConfigError> {
        let settings: Settings = figment.extract().map_err(|e| {
            let key = e.path.join(".");
            ConfigError(if key.is_empty() {
                e.to_string()
            } else {
                format!("{key}: {}", e.kind)
            })
        })?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let fail = |key: &str, why: &str| Err(ConfigError(format!("{key}: {why}")));
        if let Some(problem) = self.events.problem() {
            return Err(ConfigError(problem));
        }
        match (&self.server.tls_cert, &self.server.tls_key) {
            (Some(_), None) => return fail("server.tls_key", "required with server.tls_cert"),
            (None, Some(_)) => return fail("server.tls_cert", "required with server.tls_key"),
            _ => {}
        }
        if let Some(name) = &self.server.client_address_header {
            if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return fail("server.client_address_header", "must be a header name");
            }
        }
        if self.console.session_idle_minutes == 0 {
            return fail("console.session_idle_minutes", "must be positive");
        }
        if self.console.session_max_minutes == 0 {
            return fail("console.session_max_minutes", "must be positive");
        }
        if self.console.password_checks_at_once == 0 {
            return fail("console.password_checks_at_once", "must be positive");
        }
        if self.console.login_failures_allowed == 0 {
            return fail("console.login_failures_allowed", "must be positive");
        }
        if self.server.max_body_bytes < 1024 {
            return fail("server.max_body_bytes", "must be at least 1024");
        }
        if self.server.request_timeout_ms == 0 {
            return fail("server.request_timeout_ms", "must be positive");
        }
        if self.server.header_read_timeout_ms == 0 {
            return fail("server.header_read_timeout_ms", "must be positive");
        }
        if self.server.idle_timeout_ms == 0 {
            return fail("server.idle_timeout_ms", "must be positive");
        }
        if self.server.max_connections == 0 {
            return fail("server.max_connections", "must be positive");
        }
        if self.server.metrics_listen == Some(self.server.listen) && self.server.listen.port() != 0
        {
            return fail(
                "server.metrics_listen",
                "must differ from server.listen (leave it out to serve /metrics there)",
            );
        }
        let url = &self.database.url;
        if !["sqlite:", "postgres:", "postgresql:"]
            .iter()
            .any(|scheme| url.starts_with(scheme))
        {
            return fail("database.url", "must start with sqlite: or postgres:");
        }
        if let Some(path) = sqlite_path(&self.database.url) {
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
            if parent.is_some_and(|dir| !dir.is_dir()) {
                return fail(
                    "database.url",
                    &format!(
                        "the directory of {} does not exist (the file is created, the directory is not)",
                        path.display()
                    ),
                );
            }
        }
        if self.database.max_connections == 0 {
            return fail("database.max_connections", "must be positive");
        }
        for (i, app) in self.apps.iter().enumerate() {
            let key = |field: &str| format!("apps[{i}].{field}");
            if app.bundle_id.trim().is_empty() {
                return fail(&key("bundle_id"), "must not be empty");
            }
            if self
                .apps
                .iter()
                .take(i)
                .any(|other| other.bundle_id == app.bundle_id)
            {
                return fail(&key("bundle_id"), "appears twice");
            }
            if app.environments.is_empty() {
                return fail(&key("environments"), "must list at least one environment");
            }
            for env in &app.environments {
                if let Environment::Unknown(_) = Environment::from_raw(env) {
                    return fail(
                        &key("environments"),
                        &format!("{env:?} is not one of {}", Environment::KNOWN.join(", ")),
                    );
                }
            }
            // StoreKit testing in Xcode signs with its own certificate:
            // without it, every such token would be refused.
            if app
                .environments
                .iter()
                .any(|e| e == "Xcode" || e == "LocalTesting")
                && self.verification.xcode_certificate.is_none()
            {
                return fail(
                    "verification.xcode_certificate",
                    &format!(
                        "required when an app lists Xcode or LocalTesting ({}): the StoreKit test certificate Xcode exports (Editor > Save Public Certificate)",
                        key("environments")
                    ),
                );
            }
            if app.environments.iter().any(|e| e == "Production") && app.app_apple_id.is_none() {
                return fail(&key("app_apple_id"), "required when Production is allowed");
            }
            if let Some(api) = &app.api {
                apps::validate_api(api, &|field| key(&format!("api.{field}")))?;
            }
            if let Some(consumption) = &app.consumption {
                apps::validate_consumption(consumption, app.api.is_some(), &|field| {
                    key(&format!("consumption.{field}"))
                })?;
            }
            for (j, product) in app.products.iter().enumerate() {
                let key = |field: &str| key(&format!("products[{j}].{field}"));
                if product.product_id.trim().is_empty() {
                    return fail(&key("product_id"), "must not be empty");
                }
                if app
                    .products
                    .iter()
                    .take(j)
                    .any(|other| other.product_id == product.product_id)
                {
                    return fail(&key("product_id"), "appears twice");
                }
                if let Some(duration) = &product.duration {
                    ProductDuration::parse(duration)
                        .map_err(|e| ConfigError(format!("{}: {e}", key("duration"))))?;
                }
            }
        }
        for (i, token) in self.api.tokens.iter().enumerate() {
            let token = secrecy::ExposeSecret::expose_secret(token);
            if token == PLACEHOLDER_TOKEN {
                return fail(
                    &format!("api.tokens[{i}]"),
                    "is the README's placeholder; generate a random token (e.g. openssl rand -hex 32)",
                );
            }
            if token.chars().count() < MIN_TOKEN_CHARS {
                return fail(
                    &format!("api.tokens[{i}]"),
                    &format!(
                        "must be at least {MIN_TOKEN_CHARS} characters (e.g. openssl rand -hex 32)"
                    ),
                );
            }
        }
        if self.api.reports_per_minute == 0 {
            return fail("api.reports_per_minute", "must be positive");
        }
        let t = &self.check.tolerance_minutes;
        for (key, minutes) in [
            ("refund_without_expiration", t.refund_without_expiration),
            ("renewal_outcome_overdue", t.renewal_outcome_overdue),
            ("expiration_overdue", t.expiration_overdue),
            ("grace_period_overrun", t.grace_period_overrun),
            ("missing_refund_notification", t.missing_refund_notification),
        ] {
            if minutes < 0 {
                return fail(
                    &format!("check.tolerance_minutes.{key}"),
                    "must not be negative",
                );
            }
        }
        match self.log.format.as_str() {
            "human" | "json" => {}
            _ => return fail("log.format", "must be human or json"),
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return fail("log.level", "is not a tracing filter");
        }
        Ok(())
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.server.request_timeout_ms)
    }

    /// The trust anchors to verify with, read now so that a bad root file
    /// stops start-up.
    pub fn trust_anchors(&self) -> Result<TrustAnchors, ConfigError> {
        let anchors = self.apple_anchors()?;
        let Some(path) = &self.verification.xcode_certificate else {
            return Ok(anchors);
        };
        let key = "verification.xcode_certificate";
        let bytes = std::fs::read(path)
            .map_err(|e| ConfigError(format!("{key}: {}: {e}", path.display())))?;
        let certificate = XcodeCertificate::parse_file(&bytes)
            .map_err(|e| ConfigError(format!("{key}: {}: {e}", path.display())))?;
        Ok(anchors.with_xcode(certificate))
    }

    fn apple_anchors(&self) -> Result<TrustAnchors, ConfigError> {
        if self.verification.trusted_roots.is_empty() {
            return TrustAnchors::apple_root_ca_g3().map_err(|e| ConfigError(e.to_string()));
        }
        let mut anchors = Vec::new();
        for (i, path) in self.verification.trusted_roots.iter().enumerate() {
            let key = format!("verification.trusted_roots[{i}]");
            let bytes = std::fs::read(path)
                .map_err(|e| ConfigError(format!("{key}: {}: {e}", path.display())))?;
            anchors.extend(
                TrustAnchors::parse_file(&bytes)
                    .map_err(|e| ConfigError(format!("{key}: {}: {e}", path.display())))?,
            );
        }
        TrustAnchors::new(anchors).map_err(|e| ConfigError(e.to_string()))
    }
}

impl Settings {
    /// The configured length of each non-renewing product (validated at
    /// load: a duration that does not read is an error there).
    pub fn products(&self) -> Products {
        Products::new(self.apps.iter().flat_map(|app| {
            app.products.iter().filter_map(|product| {
                let duration = ProductDuration::parse(product.duration.as_deref()?).ok()?;
                Some((app.bundle_id.clone(), product.product_id.clone(), duration))
            })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let s = Settings::from_toml("").unwrap();
        assert_eq!(s.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.database.url, "sqlite://appstore-ledger.db");
        assert!(s.apps.is_empty());
    }

    #[test]
    fn the_documented_example_parses() {
        let s = Settings::from_toml(
            r#"
            [server]
            listen = "0.0.0.0:8443"
            max_body_bytes = 262144
            [database]
            url = "sqlite://ledger.db"
            [verification]
            trusted_roots = []
            [[apps]]
            bundle_id = "com.example.app"
            app_apple_id = 1234567890
            environments = ["Production", "Sandbox"]
            [api]
            tokens = ["a-long-random-token-for-tests"]
            [log]
            format = "json"
            "#,
        )
        .unwrap();
        assert_eq!(
            s.apps[0].expected_identity().environments,
            vec![Environment::Production, Environment::Sandbox]
        );
        assert_eq!(s.api.tokens.len(), 1);
    }

    fn error(toml: &str) -> String {
        Settings::from_toml(toml).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_key() {
        assert!(error("[server]\nlisten = \"nowhere\"").contains("server.listen"));
        assert!(error("[server]\nlistn = \"x\"").contains("listn"));
        assert!(error("[server]\ntls_cert = \"c.pem\"").contains("server.tls_key"));
        assert!(error("[database]\nurl = \"mysql://x\"").contains("database.url"));
        assert!(
            error("[[apps]]\nbundle_id = \"a\"\nenvironments = [\"Production\"]")
                .contains("apps[0].app_apple_id")
        );
        assert!(
            error("[[apps]]\nbundle_id = \"a\"\nenvironments = [\"Staging\"]")
                .contains("apps[0].environments")
        );
        assert!(error("[[apps]]\nbundle_id = \"a\"\nenvironments = []")
            .contains("apps[0].environments"));
        assert!(error(
            "[[apps]]\nbundle_id = \"a\"\nenvironments = [\"Sandbox\"]\n[[apps]]\nbundle_id = \"a\"\nenvironments = [\"Sandbox\"]"
        )
        .contains("apps[1].bundle_id"));
        assert!(error("[log]\nformat = \"xml\"").contains("log.format"));
        assert!(error("[server]\nmax_body_bytes = -1").contains("server.max_body_bytes"));
    }
}
