//! The apps the service serves (`[[apps]]`): their identity, products and
//! App Store Server API key, and the checks that stop start-up when a key
//! is wrong. Below the API client, which builds its clients from these.

use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use secrecy::SecretString;
use serde::Deserialize;

use super::ConfigError;
use crate::jws::ExpectedIdentity;
use crate::model::Environment;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSettings {
    pub bundle_id: String,
    /// Required when Production is allowed: Apple always sends it there.
    pub app_apple_id: Option<i64>,
    pub environments: Vec<String>,
    /// The App Store Server API, to ask Apple when a push was lost.
    #[serde(default)]
    pub api: Option<AppApiSettings>,
    /// What the service must know of a product that Apple does not sign:
    /// how long a non-renewing subscription lasts.
    #[serde(default)]
    pub products: Vec<ProductSettings>,
    /// How the service answers Apple's consumption requests (needs
    /// `[apps.api]`); without it, requests are kept but never answered.
    #[serde(default)]
    pub consumption: Option<ConsumptionSettings>,
}

/// `[apps.consumption]`: the app's policy for answering CONSUMPTION_REQUEST
/// (Send Consumption Information), for what the backend did not say.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumptionSettings {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Wait this long for the backend's facts before answering with the
    /// policy's defaults; the answer always goes an hour before Apple's
    /// 12-hour deadline at the latest.
    #[serde(default = "default_answer_after_minutes")]
    pub answer_after_minutes: u64,
    /// Apple's `deliveryStatus`: DELIVERED, UNDELIVERED_QUALITY_ISSUE,
    /// UNDELIVERED_WRONG_ITEM, UNDELIVERED_SERVER_OUTAGE, UNDELIVERED_OTHER.
    #[serde(default = "default_delivery_status")]
    pub delivery_status: String,
    #[serde(default)]
    pub sample_content_provided: bool,
    /// Apple's `refundPreference` (GRANT_FULL, GRANT_PRORATED, DECLINE);
    /// none sends no preference.
    #[serde(default)]
    pub refund_preference: Option<String>,
    /// A rule on what the ledger knows: DECLINE instead when the customer
    /// asked after at least this percent of the refunded period had passed
    /// (subscriptions, and non-renewing ones with a configured duration).
    #[serde(default)]
    pub decline_after_used_percent: Option<u8>,
}

fn yes() -> bool {
    true
}

fn default_answer_after_minutes() -> u64 {
    60
}

fn default_delivery_status() -> String {
    "DELIVERED".into()
}

/// Checks `[apps.consumption]`: Apple's words, a rule that can hold, and
/// the API key answers need.
pub(super) fn validate_consumption(
    c: &ConsumptionSettings,
    has_api: bool,
    key: &dyn Fn(&str) -> String,
) -> Result<(), ConfigError> {
    use crate::model::{DeliveryStatus, RefundPreference};
    let fail = |field: &str, why: String| Err(ConfigError(format!("{}: {why}", key(field))));
    if c.enabled && !has_api {
        return fail(
            "enabled",
            "answers go through the App Store Server API: configure [apps.api] for this app".into(),
        );
    }
    if matches!(
        DeliveryStatus::from_raw(&c.delivery_status),
        DeliveryStatus::Unknown(_)
    ) {
        return fail(
            "delivery_status",
            format!("must be one of {}", DeliveryStatus::KNOWN.join(", ")),
        );
    }
    if let Some(preference) = &c.refund_preference {
        if matches!(
            RefundPreference::from_raw(preference),
            RefundPreference::Unknown(_)
        ) {
            return fail(
                "refund_preference",
                format!("must be one of {}", RefundPreference::KNOWN.join(", ")),
            );
        }
    }
    if c.decline_after_used_percent.is_some_and(|p| p > 100) {
        return fail("decline_after_used_percent", "must be 0 to 100".into());
    }
    if c.answer_after_minutes >= 11 * 60 {
        return fail(
            "answer_after_minutes",
            "must be under 660: Apple waits 12 hours, and the answer goes an hour before".into(),
        );
    }
    Ok(())
}

/// `[[apps.products]]`: one of the app's products.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductSettings {
    pub product_id: String,
    /// For a non-renewing subscription: how long it lasts from its
    /// purchase, an ISO 8601 duration of years, months, weeks or days
    /// (`P90D`, `P1M`, `P1Y`). Apple signs no expiry for one.
    #[serde(default)]
    pub duration: Option<String>,
}

/// An app's App Store Server API key (App Store Connect > Users and Access >
/// Integrations > In-App Purchase).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppApiSettings {
    pub issuer_id: String,
    pub key_id: String,
    /// The `.p8` file; or the key itself in `private_key`.
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
    #[serde(default)]
    pub private_key: Option<SecretString>,
    /// Overrides, for proxies and tests (plain http:// only for loopback).
    #[serde(default)]
    pub production_url: Option<String>,
    #[serde(default)]
    pub sandbox_url: Option<String>,
    /// Stays below Apple's per-endpoint limits.
    #[serde(default = "default_max_requests_per_second")]
    pub max_requests_per_second: u32,
}

impl AppApiSettings {
    /// The key's PEM text, with the key it came from (`private_key` or
    /// `private_key_file`); an error names its key and says why.
    pub fn private_key_pem(&self) -> Result<(&'static str, SecretString), (&'static str, String)> {
        match (&self.private_key_file, &self.private_key) {
            (Some(file), None) => std::fs::read_to_string(file)
                .map(|pem| ("private_key_file", SecretString::from(pem)))
                .map_err(|e| {
                    (
                        "private_key_file",
                        format!("cannot read {}: {e}", file.display()),
                    )
                }),
            (None, Some(pem)) => Ok(("private_key", pem.clone())),
            _ => Err((
                "private_key_file",
                "give exactly one of private_key_file and private_key".into(),
            )),
        }
    }
}

fn default_max_requests_per_second() -> u32 {
    20
}

impl AppSettings {
    /// What a notification for this app must match.
    pub fn expected_identity(&self) -> ExpectedIdentity {
        ExpectedIdentity {
            bundle_ids: vec![self.bundle_id.clone()],
            environments: self
                .environments
                .iter()
                .map(|e| Environment::from_raw(e))
                .collect(),
            app_apple_id: self.app_apple_id,
        }
    }
}

/// Checks an app's API settings now, so that a wrong key stops start-up;
/// errors name the key and never print the secret.
pub(super) fn validate_api(
    api: &AppApiSettings,
    key: &dyn Fn(&str) -> String,
) -> Result<(), ConfigError> {
    use secrecy::ExposeSecret;
    let fail = |field: &str, why: &str| Err(ConfigError(format!("{}: {why}", key(field))));
    if !is_issuer_id(&api.issuer_id) {
        return fail(
            "issuer_id",
            "must be a UUID, as App Store Connect shows it above the keys",
        );
    }
    if !is_key_id(&api.key_id) {
        return fail(
            "key_id",
            "must be ten upper-case letters and digits, as in SubscriptionKey_<key id>.p8",
        );
    }
    let (field, pem) = match api.private_key_pem() {
        Ok(found) => found,
        Err((field, why)) => return fail(field, &why),
    };
    if let Err(e) = parse_p8(pem.expose_secret()) {
        return fail(field, &e.to_string());
    }
    for (field, url) in [
        ("production_url", &api.production_url),
        ("sandbox_url", &api.sandbox_url),
    ] {
        if let Some(url) = url {
            if let Err(why) = check_base_url(url) {
                return fail(field, &why);
            }
        }
    }
    if api.max_requests_per_second == 0 {
        return fail("max_requests_per_second", "must be positive");
    }
    Ok(())
}

/// Why a configured key cannot be used. Never holds the key itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("is not PEM: expected -----BEGIN PRIVATE KEY-----, as in the .p8 file App Store Connect gives")]
    NotPem,
    #[error(
        "is a SEC1 EC key (BEGIN EC PRIVATE KEY); Apple's .p8 keys are PKCS#8 (BEGIN PRIVATE KEY)"
    )]
    Sec1,
    #[error("is not a PKCS#8 P-256 private key ({0}); an App Store Server API key is ECDSA P-256")]
    NotP256(String),
}

/// Checks that `pem` holds a PKCS#8 P-256 private key; returns its DER.
pub fn parse_p8(pem: &str) -> Result<Vec<u8>, KeyError> {
    if pem.contains("BEGIN EC PRIVATE KEY") {
        return Err(KeyError::Sec1);
    }
    let body = pem
        .split_once("-----BEGIN PRIVATE KEY-----")
        .and_then(|(_, rest)| rest.split_once("-----END PRIVATE KEY-----"))
        .map(|(body, _)| body)
        .ok_or(KeyError::NotPem)?;
    let base64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let der = STANDARD.decode(base64).map_err(|_| KeyError::NotPem)?;
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &SystemRandom::new())
        .map_err(|e| KeyError::NotP256(e.to_string()))?;
    Ok(der)
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
    use crate::config::Settings;

    fn error(toml: &str) -> String {
        Settings::from_toml(toml).unwrap_err().to_string()
    }

    #[test]
    fn a_consumption_policy_needs_the_api_and_apples_words() {
        let app = "[[apps]]\nbundle_id = \"a\"\nenvironments = [\"Sandbox\"]\n[apps.consumption]\n";
        assert!(error(app).contains("apps[0].consumption.enabled"));
        let off = format!("{app}enabled = false\n");
        assert!(Settings::from_toml(&off).is_ok());
        assert!(error(&format!("{off}delivery_status = \"LOST\""))
            .contains("apps[0].consumption.delivery_status"));
        assert!(error(&format!("{off}refund_preference = \"MAYBE\""))
            .contains("apps[0].consumption.refund_preference"));
        assert!(error(&format!("{off}decline_after_used_percent = 101"))
            .contains("apps[0].consumption.decline_after_used_percent"));
        assert!(error(&format!("{off}answer_after_minutes = 660"))
            .contains("apps[0].consumption.answer_after_minutes"));
    }
}
