//! The bearer token Apple's App Store Server API asks for: a JWT signed ES256
//! with the team's In-App Purchase key (a `.p8` file from App Store Connect).

use std::sync::Mutex;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

pub use crate::config::{parse_p8, KeyError};

/// Apple's audience for every App Store Server API token.
const AUDIENCE: &str = "appstoreconnect-v1";
/// Apple refuses tokens living longer than 60 minutes; ours live 20 and are
/// replaced 5 before they end, so a slow request never carries a dying one.
const LIFETIME_SECS: i64 = 20 * 60;
const RENEW_BEFORE_SECS: i64 = 5 * 60;

/// The identity a token asserts, plus the key that signs it.
pub struct ApiKey {
    issuer_id: String,
    key_id: String,
    bundle_id: String,
    encoding: EncodingKey,
    cached: Mutex<Option<(String, i64)>>,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("issuer_id", &self.issuer_id)
            .field("key_id", &self.key_id)
            .field("bundle_id", &self.bundle_id)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    iat: i64,
    exp: i64,
    aud: &'a str,
    bid: &'a str,
}

impl ApiKey {
    pub fn new(
        issuer_id: &str,
        key_id: &str,
        bundle_id: &str,
        pem: &str,
    ) -> Result<ApiKey, KeyError> {
        parse_p8(pem)?;
        let encoding = EncodingKey::from_ec_pem(pem.as_bytes())
            .map_err(|e| KeyError::NotP256(e.to_string()))?;
        Ok(ApiKey {
            issuer_id: issuer_id.to_owned(),
            key_id: key_id.to_owned(),
            bundle_id: bundle_id.to_owned(),
            encoding,
            cached: Mutex::new(None),
        })
    }

    pub fn issuer_id(&self) -> &str {
        &self.issuer_id
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn bundle_id(&self) -> &str {
        &self.bundle_id
    }

    /// A token valid at `now` (UNIX seconds), reused while it has time left.
    pub fn token(&self, now: i64) -> Result<String, jsonwebtoken::errors::Error> {
        if let Ok(cached) = self.cached.lock() {
            if let Some((token, expires)) = cached.as_ref() {
                // A clock set back makes a cached token's iat lie in the future.
                if now + RENEW_BEFORE_SECS < *expires && now >= *expires - LIFETIME_SECS {
                    return Ok(token.clone());
                }
            }
        }
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        header.typ = Some("JWT".into());
        let exp = now + LIFETIME_SECS;
        let token = jsonwebtoken::encode(
            &header,
            &Claims {
                iss: &self.issuer_id,
                iat: now,
                exp,
                aud: AUDIENCE,
                bid: &self.bundle_id,
            },
            &self.encoding,
        )?;
        if let Ok(mut cached) = self.cached.lock() {
            *cached = Some((token.clone(), exp));
        }
        Ok(token)
    }
}
