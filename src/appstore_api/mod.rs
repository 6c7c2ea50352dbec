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
    CheckTestNotificationResponse, ConsumptionRequest, ExtendReason, ExtendRenewalDateRequest,
    ExtendRenewalDateResponse, HistoryResponse, LastTransaction, MassExtendRenewalDateRequest,
    MassExtendRenewalDateResponse, MassExtendRenewalDateStatusResponse, NotificationHistoryItem,
    NotificationHistoryRequest, NotificationHistoryResponse, OrderLookupResponse, SendAttempt,
    SendTestNotificationResponse, StatusResponse, SubscriptionGroupStatus, TransactionInfoResponse,
    MAX_EXTEND_BY_DAYS, MAX_REQUEST_IDENTIFIER,
};

use crate::clock::SharedClock;
pub use crate::config::{check_base_url, is_issuer_id, is_key_id};
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
    pub fn from_settings(
        apps: &[AppSettings],
        retry: RetryPolicy,
        clock: &SharedClock,
    ) -> Result<Self, ConfigError> {
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
                    clock.clone(),
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
