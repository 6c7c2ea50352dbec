//! A client for Apple's App Store Server API, so that the ledger can ask
//! Apple when a push was lost: notification history, subscription statuses,
//! transaction history and info, and test notifications.
//!
//! Answers are returned as Apple sent them; every signed value in them is
//! verified by the caller with the webhook's verifier before it is used.

mod auth;
mod client;
mod error;
mod types;

pub use auth::{parse_p8, ApiKey, KeyError};
pub use client::{Client, RetryPolicy, PRODUCTION_URL, SANDBOX_URL};
pub use error::{other_environment, Diagnosis, Error};
pub use types::{
    CheckTestNotificationResponse, HistoryResponse, LastTransaction, NotificationHistoryItem,
    NotificationHistoryRequest, NotificationHistoryResponse, OrderLookupResponse, SendAttempt,
    SendTestNotificationResponse, StatusResponse, SubscriptionGroupStatus, TransactionInfoResponse,
};

use crate::config::{AppSettings, ConfigError};
use crate::model::Environment;
use secrecy::ExposeSecret;

/// The clients of every configured app with `[apps.api]`, one per environment
/// the App Store Server API serves (Production, Sandbox).
#[derive(Debug, Default)]
pub struct AppStoreApi {
    clients: Vec<Client>,
}

impl AppStoreApi {
    pub fn from_settings(apps: &[AppSettings], retry: RetryPolicy) -> Result<Self, ConfigError> {
        let mut clients = Vec::new();
        for (i, app) in apps.iter().enumerate() {
            let Some(api) = &app.api else { continue };
            let key = |field: &str| format!("apps[{i}].api.{field}");
            let (_, pem) = api
                .private_key_pem()
                .map_err(|(field, why)| ConfigError(format!("{}: {why}", key(field))))?;
            for environment in &app.environments {
                let environment = Environment::from_raw(environment);
                let base_url = match environment {
                    Environment::Production => {
                        api.production_url.as_deref().unwrap_or(PRODUCTION_URL)
                    }
                    Environment::Sandbox => api.sandbox_url.as_deref().unwrap_or(SANDBOX_URL),
                    _ => continue,
                };
                let api_key = ApiKey::new(
                    &api.issuer_id,
                    &api.key_id,
                    &app.bundle_id,
                    pem.expose_secret(),
                )
                .map_err(|e| ConfigError(format!("{}: {e}", key("private_key"))))?;
                let client = Client::new(
                    base_url,
                    environment,
                    api_key,
                    api.max_requests_per_second,
                    retry,
                )
                .map_err(|e| ConfigError(format!("{}: {e}", key("production_url"))))?;
                clients.push(client);
            }
        }
        Ok(AppStoreApi { clients })
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    pub fn clients(&self) -> impl Iterator<Item = &Client> {
        self.clients.iter()
    }

    /// The client of `bundle_id` in `environment`, if configured.
    pub fn client(&self, bundle_id: &str, environment: &Environment) -> Option<&Client> {
        self.clients
            .iter()
            .find(|c| c.bundle_id() == bundle_id && c.environment() == environment)
    }
}

/// Whether `text` has the shape Apple gives issuer ids (a UUID).
pub fn is_issuer_id(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Whether `text` has the shape of an App Store Connect key id (ten
/// upper-case letters and digits).
pub fn is_key_id(text: &str) -> bool {
    text.len() == 10
        && text
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// An override URL must be HTTPS, or plain HTTP to this machine (tests, a
/// local proxy).
pub fn check_base_url(url: &str) -> Result<(), String> {
    if url.starts_with("https://") {
        return Ok(());
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err("must start with https:// (or http:// for a loopback host)".into());
    };
    let host = rest.split('/').next().unwrap_or_default();
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(format!(
            "plain http:// only for loopback hosts, not {host:?}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert!(is_issuer_id("57246542-96fe-1a63-e053-0824d011072a"));
        assert!(!is_issuer_id("57246542-96fe-1a63-e053-0824d011072"));
        assert!(!is_issuer_id("5724654296fe1a63e0530824d011072a"));
        assert!(is_key_id("2X9R4HXF34"));
        assert!(!is_key_id("2x9r4hxf34"));
        assert!(!is_key_id("2X9R4HXF3"));
    }

    #[test]
    fn base_urls() {
        assert!(check_base_url("https://api.storekit.apple.com").is_ok());
        assert!(check_base_url("http://127.0.0.1:8080").is_ok());
        assert!(check_base_url("http://[::1]:8080/x").is_ok());
        assert!(check_base_url("http://localhost").is_ok());
        assert!(check_base_url("http://example.com").is_err());
        assert!(check_base_url("ftp://127.0.0.1").is_err());
    }
}
