//! Verification of App Store signed data (JWS with an x5c chain to Apple's root).
//!
//! Everything here is a pure function of its arguments: the token, the trusted
//! roots, what the caller expects, and the time at which to judge certificate
//! validity. Nothing reads the clock. The [`ChainCache`] only saves work; a
//! verification gives the same answer with or without it.

// Values from outside (dates, prices, counts Apple signed or a request
// sent) pass through here: arithmetic is checked or saturating, so that no
// value can overflow into a panic or a wrapped answer; an exception says
// why it cannot overflow.
#![warn(clippy::arithmetic_side_effects)]

mod cache;
mod chain;
mod compact;
mod error;
mod identity;
mod printed;
mod trust;
mod verifier;
mod x509;
mod xcode;

use std::sync::Arc;

use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
use serde_json::Value;

pub use cache::{ChainCache, DEFAULT_CAPACITY as DEFAULT_CHAIN_CACHE_CAPACITY};
pub use chain::{
    verify_chain, ValidatedChain, APPLE_INTERMEDIATE_MARKER_OID, APPLE_LEAF_MARKER_OID,
};
pub use compact::{CHAIN_LENGTH, MAX_TOKEN_BYTES};
pub use error::{CertPosition, VerifyError};
pub use identity::{ExpectedIdentity, PayloadIdentity};
use printed::Nested;
pub use printed::Printed;
pub use trust::{TrustAnchor, TrustAnchors, APPLE_ROOT_CA_G3_SHA256};
pub use verifier::Verifier;
pub use xcode::{verify_xcode, xcode_only, Signer, XcodeCertificate};

use crate::model::{
    Environment, JwsAppTransactionDecodedPayload, JwsRenewalInfoDecodedPayload,
    JwsTransactionDecodedPayload, NotificationType, ResponseBodyV2DecodedPayload, Timestamp,
};

/// Checks a compact JWS: header, chain to `anchors` at `at`, and the ES256
/// signature. Returns the payload bytes, now authenticated.
pub fn verify_compact(
    token: &str,
    anchors: &TrustAnchors,
    at: Timestamp,
    cache: Option<&ChainCache>,
) -> Result<Vec<u8>, VerifyError> {
    // A header the cache holds was decoded and checked when its chain was
    // validated: its form is not checked again.
    let mut cached = None;
    let jws = compact::split_knowing(token, |header_b64| {
        cached = cache.and_then(|c| c.get(header_b64, at));
        cached.is_some()
    })?;
    let (chain, signature) = match cached {
        Some(chain) => (chain, jws.signature()?),
        None => {
            let [leaf, intermediate, root] = compact::parse_header(jws.header_b64)?;
            // The chain first: a token whose x5c is not Apple's is refused for
            // that, whatever else is wrong with it.
            let leaf = compact::decode_certificate(&leaf, CertPosition::Leaf)?;
            let intermediate =
                compact::decode_certificate(&intermediate, CertPosition::Intermediate)?;
            let root = compact::decode_certificate(&root, CertPosition::Root)?;
            let chain = Arc::new(verify_chain(&[&leaf, &intermediate, &root], anchors, at)?);
            let signature = jws.signature()?;
            if let Some(cache) = cache {
                cache.insert(jws.header_b64, Arc::clone(&chain));
            }
            (chain, signature)
        }
    };
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &chain.leaf_key)
        .verify(jws.signing_input.as_bytes(), &signature)
        .map_err(|_| VerifyError::InvalidSignature)?;
    Ok(jws.into_payload())
}

/// The kinds of signed data the App Store sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Notification,
    Transaction,
    RenewalInfo,
    AppTransaction,
}

/// A notification whose envelope and nested tokens all verified.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedNotification {
    /// `notificationUUID`: without one a notification can be neither
    /// deduplicated nor applied, so verification requires it.
    pub notification_uuid: String,
    /// `notificationType`, required likewise.
    pub notification_type: NotificationType,
    /// The envelope; its `signed*` fields still hold the tokens as received.
    pub payload: ResponseBodyV2DecodedPayload,
    /// `data.signedTransactionInfo`, verified and decoded.
    pub transaction_info: Option<JwsTransactionDecodedPayload>,
    /// `data.signedRenewalInfo`, verified and decoded.
    pub renewal_info: Option<JwsRenewalInfoDecodedPayload>,
    /// `appData.signedAppTransactionInfo`, verified and decoded.
    pub app_transaction_info: Option<JwsAppTransactionDecodedPayload>,
}

/// Any verified token, as the `verify` command reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum Verified {
    Notification(Box<VerifiedNotification>),
    Transaction(Box<JwsTransactionDecodedPayload>),
    RenewalInfo(Box<JwsRenewalInfoDecodedPayload>),
    AppTransaction(Box<JwsAppTransactionDecodedPayload>),
}

impl VerifiedNotification {
    /// The app and environment the notification is about, from whichever part
    /// Apple filled in for its type.
    pub fn identity(&self) -> PayloadIdentity {
        let p = &self.payload;
        if let Some(d) = &p.data {
            PayloadIdentity {
                bundle_id: d.bundle_id.clone(),
                environment: d.environment.clone(),
                app_apple_id: d.app_apple_id,
            }
        } else if let Some(s) = &p.summary {
            PayloadIdentity {
                bundle_id: s.bundle_id.clone(),
                environment: s.environment.clone(),
                app_apple_id: s.app_apple_id,
            }
        } else if let Some(t) = &p.external_purchase_token {
            PayloadIdentity {
                bundle_id: t.bundle_id.clone(),
                environment: t.environment(),
                app_apple_id: t.app_apple_id,
            }
        } else if let Some(a) = &p.app_data {
            PayloadIdentity {
                bundle_id: a.bundle_id.clone(),
                environment: a.environment.clone(),
                app_apple_id: a.app_apple_id,
            }
        } else if let Some(u) = &p.unclaim_info {
            PayloadIdentity {
                bundle_id: u.bundle_id.clone(),
                environment: u.environment.clone(),
                app_apple_id: u.app_apple_id,
            }
        } else {
            // A container this version does not know yet: Apple names the
            // app in every one (bundleId, environment, appAppleId), so a
            // genuine notification of a new shape still finds its app.
            p.unknown_fields
                .values()
                .find_map(|container| {
                    let bundle_id = container.get("bundleId")?.as_str()?.to_owned();
                    Some(PayloadIdentity {
                        bundle_id: Some(bundle_id),
                        environment: container
                            .get("environment")
                            .and_then(serde_json::Value::as_str)
                            .map(Environment::from_raw),
                        app_apple_id: container
                            .get("appAppleId")
                            .and_then(serde_json::Value::as_i64),
                    })
                })
                .unwrap_or_default()
        }
    }

    pub fn environment(&self) -> Option<Environment> {
        self.identity().environment
    }

    /// The envelope's `signedDate`, or for old notifications without one, the
    /// newest `signedDate` of the nested tokens.
    pub fn signed_date(&self) -> Option<Timestamp> {
        self.payload.signed_date.or_else(|| {
            [
                self.transaction_info.as_ref().and_then(|t| t.signed_date),
                self.renewal_info.as_ref().and_then(|r| r.signed_date),
                self.app_transaction_info
                    .as_ref()
                    .and_then(|a| a.signed_date),
            ]
            .into_iter()
            .flatten()
            .max()
        })
    }

    /// The decoded notification as JSON, with each nested token replaced by its
    /// decoded, verified content.
    pub fn to_json(&self) -> Value {
        self.with_nested_content(to_value(&self.payload))
    }

    /// `json`, the payload's tree, with the decoded content of each nested
    /// token in the token's place (a token verified is one the payload had).
    fn with_nested_content(&self, mut json: Value) -> Value {
        for (object, field, content) in self.nested_content() {
            if let (Some(object), Some(content)) =
                (json.get_mut(object).and_then(Value::as_object_mut), content)
            {
                object.insert(field.to_owned(), to_value(&content));
            }
        }
        json
    }

    /// Each nested token's decoded content and where it goes in the payload
    /// (object, field), sorted by field within an object: the one map that
    /// both [`VerifiedNotification::to_json`] and [`Printed`] follow.
    fn nested_content(&self) -> [(&'static str, &'static str, Option<Nested<'_>>); 3] {
        [
            (
                "data",
                "signedRenewalInfo",
                self.renewal_info.as_ref().map(Nested::Renewal),
            ),
            (
                "data",
                "signedTransactionInfo",
                self.transaction_info.as_ref().map(Nested::Transaction),
            ),
            (
                "appData",
                "signedAppTransactionInfo",
                self.app_transaction_info
                    .as_ref()
                    .map(Nested::AppTransaction),
            ),
        ]
    }
}

impl Verified {
    pub fn to_json(&self) -> Value {
        match self {
            Verified::Notification(n) => n.to_json(),
            Verified::Transaction(t) => to_value(t),
            Verified::RenewalInfo(r) => to_value(r),
            Verified::AppTransaction(a) => to_value(a),
        }
    }
}

fn to_value<T: serde::Serialize>(value: &T) -> Value {
    // Our models serialize to JSON objects with string keys; this cannot fail.
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// The paths at which a payload may carry nested tokens.
const NESTED_TOKENS: [(&str, &str); 3] = [
    ("data", "signedTransactionInfo"),
    ("data", "signedRenewalInfo"),
    ("appData", "signedAppTransactionInfo"),
];

fn unverified_json(token: &str) -> Result<Value, VerifyError> {
    json_object(&compact::unverified_payload(token)?)
}

/// A payload read as a JSON object, or why it is not one.
fn json_object(payload: &[u8]) -> Result<Value, VerifyError> {
    let json: Value = verifier::decode(payload)?;
    if !json.is_object() {
        return Err(VerifyError::MalformedPayload(
            "the payload is not a JSON object".into(),
        ));
    }
    Ok(json)
}

/// The `signedDate` a stored token claims, for replay and audit, which judge a
/// token at the moment Apple signed it. For a notification without a top-level
/// `signedDate` (older ones), the newest `signedDate` of its nested tokens.
///
/// Nothing is verified here: pass the result to a `verify_*` call, which
/// proves the signature before anything else is believed.
pub fn unverified_signed_date(token: &str) -> Result<Timestamp, VerifyError> {
    let json = unverified_json(token)?;
    if let Some(millis) = json.get("signedDate").and_then(Value::as_i64) {
        return Ok(Timestamp::from_millis(millis));
    }
    let mut newest = None;
    for (object, field) in NESTED_TOKENS {
        if let Some(nested) = json
            .get(object)
            .and_then(|o| o.get(field))
            .and_then(Value::as_str)
        {
            let nested_json = unverified_json(nested)?;
            if let Some(millis) = nested_json.get("signedDate").and_then(Value::as_i64) {
                newest = newest.max(Some(Timestamp::from_millis(millis)));
            }
        }
    }
    newest.ok_or(VerifyError::MissingSignedDate)
}

/// The fields that tell the kinds apart, each only present or absent:
/// nothing else of the payload is kept (a notification's nested tokens were
/// copied into a JSON tree here, about 5% of `verify --kind auto`).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct KindFields {
    #[serde(default, deserialize_with = "present")]
    notification_type: bool,
    #[serde(default, deserialize_with = "present", rename = "notificationUUID")]
    notification_uuid: bool,
    #[serde(default, deserialize_with = "present")]
    receipt_type: bool,
    #[serde(default, deserialize_with = "present")]
    application_version: bool,
    #[serde(default, deserialize_with = "present")]
    transaction_id: bool,
    #[serde(default, deserialize_with = "present")]
    auto_renew_status: bool,
    #[serde(default, deserialize_with = "present")]
    auto_renew_product_id: bool,
    #[serde(default, deserialize_with = "present")]
    renewal_date: bool,
}

/// Whether a payload's JSON begins as an object: serde would also read a
/// struct from an array, and a payload is an object or nothing.
fn looks_like_object(payload: &[u8]) -> bool {
    payload.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// A field named is present, whatever its value (`null` too, as a JSON
/// object's key is).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    <serde::de::IgnoredAny as serde::Deserialize>::deserialize(d).map(|_| true)
}

impl KindFields {
    /// Read from a payload that is a JSON object; `None` leaves the exact
    /// error to a full reading.
    fn of(payload: &[u8]) -> Option<KindFields> {
        if !looks_like_object(payload) {
            return None;
        }
        serde_json::from_slice(payload).ok()
    }

    /// From the JSON object, when there is one (it has every name once).
    fn of_json(json: &Value) -> Result<KindFields, VerifyError> {
        <KindFields as serde::Deserialize>::deserialize(json)
            .map_err(|e| VerifyError::MalformedPayload(e.to_string()))
    }

    fn kind(&self) -> Result<TokenKind, VerifyError> {
        if self.notification_type || self.notification_uuid {
            Ok(TokenKind::Notification)
        } else if self.receipt_type || self.application_version {
            Ok(TokenKind::AppTransaction)
        } else if self.transaction_id {
            Ok(TokenKind::Transaction)
        } else if self.auto_renew_status || self.auto_renew_product_id || self.renewal_date {
            Ok(TokenKind::RenewalInfo)
        } else {
            Err(VerifyError::MalformedPayload(
                "the payload is not a notification, transaction, renewal info or app transaction"
                    .into(),
            ))
        }
    }
}

/// Which kind of token this looks like, from the fields of its payload.
/// Unverified: only used to pick the decoder, which verifies everything.
pub fn unverified_kind(token: &str) -> Result<TokenKind, VerifyError> {
    let fields = match compact::payload_alone(token).and_then(|p| KindFields::of(&p)) {
        Some(fields) => fields,
        None => KindFields::of_json(&unverified_json(token)?)?,
    };
    fields.kind()
}

/// The kind of a verified payload, as [`unverified_kind`] tells it.
fn payload_kind(payload: &[u8]) -> Result<TokenKind, VerifyError> {
    let fields = match KindFields::of(payload) {
        Some(fields) => fields,
        None => KindFields::of_json(&json_object(payload)?)?,
    };
    fields.kind()
}
