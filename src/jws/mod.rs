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
mod trust;
mod x509;
mod xcode;

use std::sync::Arc;

use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use cache::{ChainCache, DEFAULT_CAPACITY as DEFAULT_CHAIN_CACHE_CAPACITY};
pub use chain::{
    verify_chain, ValidatedChain, APPLE_INTERMEDIATE_MARKER_OID, APPLE_LEAF_MARKER_OID,
};
pub use compact::{CHAIN_LENGTH, MAX_TOKEN_BYTES};
pub use error::{CertPosition, VerifyError};
pub use identity::{ExpectedIdentity, PayloadIdentity};
pub use trust::{TrustAnchor, TrustAnchors, APPLE_ROOT_CA_G3_SHA256};
pub use xcode::{verify_xcode, xcode_only, Signer, XcodeCertificate};

use crate::model::{
    Environment, JwsAppTransactionDecodedPayload, JwsRenewalInfoDecodedPayload,
    JwsTransactionDecodedPayload, NotificationType, ResponseBodyV2DecodedPayload, Timestamp,
};
use identity::agree;

/// Checks a compact JWS: header, chain to `anchors` at `at`, and the ES256
/// signature. Returns the payload bytes, now authenticated.
pub fn verify_compact(
    token: &str,
    anchors: &TrustAnchors,
    at: Timestamp,
    cache: Option<&ChainCache>,
) -> Result<Vec<u8>, VerifyError> {
    let jws = compact::split(token)?;
    let cached = cache.and_then(|c| c.get(jws.header_b64, at));
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
    jws.decode_payload()
}

/// Rejects a payload lacking a field that identifies it: such a payload is not
/// of the kind the caller asked for.
fn require(present: bool, what: &str) -> Result<(), VerifyError> {
    if present {
        Ok(())
    } else {
        Err(VerifyError::MalformedPayload(what.to_owned()))
    }
}

/// A transaction has its id; anything else in its place (a renewal info, a
/// whole notification) is not one.
fn check_transaction(t: &JwsTransactionDecodedPayload) -> Result<(), VerifyError> {
    require(
        t.transaction_id.is_some(),
        "a transaction without transactionId",
    )
}

/// Renewal info names its subscription and no transaction of its own: a
/// transaction in its place is not one.
fn check_renewal_info(r: &JwsRenewalInfoDecodedPayload) -> Result<(), VerifyError> {
    require(
        r.original_transaction_id.is_some(),
        "a renewal info without originalTransactionId",
    )?;
    require(
        !r.unknown_fields.contains_key("transactionId"),
        "a renewal info with a transactionId (a transaction in the renewal info's place)",
    )
}

fn check_app_transaction(a: &JwsAppTransactionDecodedPayload) -> Result<(), VerifyError> {
    require(a.bundle_id.is_some(), "an app transaction without bundleId")
}

fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, VerifyError> {
    serde_json::from_slice(payload).map_err(|e| VerifyError::MalformedPayload(e.to_string()))
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

/// Trusted roots plus a chain cache: what a process keeps to verify tokens.
#[derive(Debug)]
pub struct Verifier {
    anchors: TrustAnchors,
    cache: ChainCache,
}

impl Verifier {
    pub fn new(anchors: TrustAnchors) -> Self {
        Verifier::with_cache(anchors, ChainCache::default())
    }

    pub fn with_cache(anchors: TrustAnchors, cache: ChainCache) -> Self {
        Verifier { anchors, cache }
    }

    pub fn anchors(&self) -> &TrustAnchors {
        &self.anchors
    }

    pub fn cache(&self) -> &ChainCache {
        &self.cache
    }

    /// A token's payload and who vouched for it: Apple's chain, or (when
    /// configured, and only when Apple's chain does not hold) Xcode's
    /// StoreKit test certificate.
    fn verify_token<T: DeserializeOwned>(
        &self,
        token: &str,
        at: Timestamp,
    ) -> Result<(T, Signer), VerifyError> {
        match verify_compact(token, &self.anchors, at, Some(&self.cache)) {
            Ok(payload) => Ok((decode(&payload)?, Signer::Apple)),
            Err(apple) => match self.anchors.xcode() {
                Some(xcode) => match xcode::verify_xcode(token, xcode, at) {
                    Ok(payload) => Ok((decode(&payload)?, Signer::Xcode)),
                    // Not Xcode's either. A chain of Apple's length is
                    // refused for Apple's reason; a shorter one is shaped
                    // like Xcode's, and refused for Xcode's.
                    Err(xcode) => Err(match apple {
                        VerifyError::InvalidChainLength(_) => xcode,
                        apple => apple,
                    }),
                },
                None => Err(apple),
            },
        }
    }

    pub fn verify_transaction(
        &self,
        token: &str,
        expected: &ExpectedIdentity,
        at: Timestamp,
    ) -> Result<JwsTransactionDecodedPayload, VerifyError> {
        let (transaction, signer): (JwsTransactionDecodedPayload, _) =
            self.verify_token(token, at)?;
        check_transaction(&transaction)?;
        xcode_only(signer, transaction.environment.as_ref())?;
        expected.check_bundle_id(transaction.bundle_id.as_deref())?;
        expected.check_environment(transaction.environment.as_ref())?;
        Ok(transaction)
    }

    pub fn verify_renewal_info(
        &self,
        token: &str,
        expected: &ExpectedIdentity,
        at: Timestamp,
    ) -> Result<JwsRenewalInfoDecodedPayload, VerifyError> {
        let (renewal_info, signer): (JwsRenewalInfoDecodedPayload, _) =
            self.verify_token(token, at)?;
        check_renewal_info(&renewal_info)?;
        xcode_only(signer, renewal_info.environment.as_ref())?;
        // Renewal info names no bundle id; its environment is all there is to check.
        expected.check_environment(renewal_info.environment.as_ref())?;
        Ok(renewal_info)
    }

    pub fn verify_app_transaction(
        &self,
        token: &str,
        expected: &ExpectedIdentity,
        at: Timestamp,
    ) -> Result<JwsAppTransactionDecodedPayload, VerifyError> {
        let (app_transaction, signer): (JwsAppTransactionDecodedPayload, _) =
            self.verify_token(token, at)?;
        check_app_transaction(&app_transaction)?;
        xcode_only(signer, app_transaction.environment())?;
        expected.check(&PayloadIdentity {
            bundle_id: app_transaction.bundle_id.clone(),
            environment: app_transaction.environment().cloned(),
            app_apple_id: app_transaction.app_apple_id,
        })?;
        Ok(app_transaction)
    }

    /// Verifies a notification's `signedPayload` and every token nested in it,
    /// all at `at`, checks that they agree with each other, then checks the
    /// app and environment against `expected`.
    pub fn verify_notification(
        &self,
        token: &str,
        expected: &ExpectedIdentity,
        at: Timestamp,
    ) -> Result<VerifiedNotification, VerifyError> {
        let (payload, envelope_signer): (ResponseBodyV2DecodedPayload, _) =
            self.verify_token(token, at)?;
        let (Some(notification_uuid), Some(notification_type)) = (
            payload.notification_uuid.clone(),
            payload.notification_type.clone(),
        ) else {
            let missing = if payload.notification_uuid.is_none() {
                "notificationUUID"
            } else {
                "notificationType"
            };
            return Err(VerifyError::MalformedPayload(format!(
                "a notification without {missing}"
            )));
        };
        let data = payload.data.as_ref();
        let app_data = payload.app_data.as_ref();

        const TRANSACTION: &str = "data.signedTransactionInfo";
        const RENEWAL: &str = "data.signedRenewalInfo";
        const APP_TRANSACTION: &str = "appData.signedAppTransactionInfo";
        let transaction_info = data
            .and_then(|d| d.signed_transaction_info.as_deref())
            .map(|t| {
                let (transaction, signer) =
                    self.verify_token::<JwsTransactionDecodedPayload>(t, at)?;
                check_transaction(&transaction)?;
                xcode_only(signer, transaction.environment.as_ref()).map(|()| transaction)
            })
            .transpose()
            .map_err(VerifyError::nested(TRANSACTION))?;
        let renewal_info = data
            .and_then(|d| d.signed_renewal_info.as_deref())
            .map(|t| {
                let (renewal, signer) = self.verify_token::<JwsRenewalInfoDecodedPayload>(t, at)?;
                check_renewal_info(&renewal)?;
                xcode_only(signer, renewal.environment.as_ref()).map(|()| renewal)
            })
            .transpose()
            .map_err(VerifyError::nested(RENEWAL))?;
        let app_transaction_info = app_data
            .and_then(|d| d.signed_app_transaction_info.as_deref())
            .map(|t| {
                let (app_transaction, signer) =
                    self.verify_token::<JwsAppTransactionDecodedPayload>(t, at)?;
                check_app_transaction(&app_transaction)?;
                xcode_only(signer, app_transaction.environment()).map(|()| app_transaction)
            })
            .transpose()
            .map_err(VerifyError::nested(APP_TRANSACTION))?;

        let bundle_mismatch = |expected, found| VerifyError::BundleMismatch { expected, found };
        let environment_mismatch =
            |expected, found| VerifyError::EnvironmentMismatch { expected, found };
        let app_apple_id_mismatch =
            |expected, found| VerifyError::AppAppleIdMismatch { expected, found };
        if let Some(transaction) = &transaction_info {
            let envelope = data.and_then(|d| d.bundle_id.as_ref());
            agree(envelope, transaction.bundle_id.as_ref(), bundle_mismatch)
                .and_then(|()| {
                    let envelope = data.and_then(|d| d.environment.as_ref());
                    agree(
                        envelope,
                        transaction.environment.as_ref(),
                        environment_mismatch,
                    )
                })
                .map_err(VerifyError::nested(TRANSACTION))?;
        }
        if let Some(renewal) = &renewal_info {
            let envelope = data.and_then(|d| d.environment.as_ref());
            agree(envelope, renewal.environment.as_ref(), environment_mismatch)
                .and_then(|()| {
                    let transaction = transaction_info
                        .as_ref()
                        .and_then(|t| t.original_transaction_id.as_ref());
                    agree(
                        transaction,
                        renewal.original_transaction_id.as_ref(),
                        VerifyError::TransactionMismatch,
                    )
                })
                .map_err(VerifyError::nested(RENEWAL))?;
        }
        if let Some(app_transaction) = &app_transaction_info {
            agree(
                app_data.and_then(|d| d.bundle_id.as_ref()),
                app_transaction.bundle_id.as_ref(),
                bundle_mismatch,
            )
            .and_then(|()| {
                agree(
                    app_data.and_then(|d| d.environment.as_ref()),
                    app_transaction.environment(),
                    environment_mismatch,
                )
            })
            .and_then(|()| {
                agree(
                    app_data.and_then(|d| d.app_apple_id.as_ref()),
                    app_transaction.app_apple_id.as_ref(),
                    app_apple_id_mismatch,
                )
            })
            .map_err(VerifyError::nested(APP_TRANSACTION))?;
        }

        let notification = VerifiedNotification {
            notification_uuid,
            notification_type,
            payload,
            transaction_info,
            renewal_info,
            app_transaction_info,
        };
        let identity = notification.identity();
        xcode_only(envelope_signer, identity.environment.as_ref())?;
        expected.check(&identity)?;
        Ok(notification)
    }

    /// Verifies a token of the given kind, or of the kind its payload looks
    /// like when `kind` is `None`.
    pub fn verify(
        &self,
        token: &str,
        kind: Option<TokenKind>,
        expected: &ExpectedIdentity,
        at: Timestamp,
    ) -> Result<Verified, VerifyError> {
        let kind = match kind {
            Some(kind) => kind,
            None => unverified_kind(token)?,
        };
        Ok(match kind {
            TokenKind::Notification => {
                Verified::Notification(Box::new(self.verify_notification(token, expected, at)?))
            }
            TokenKind::Transaction => {
                Verified::Transaction(Box::new(self.verify_transaction(token, expected, at)?))
            }
            TokenKind::RenewalInfo => {
                Verified::RenewalInfo(Box::new(self.verify_renewal_info(token, expected, at)?))
            }
            TokenKind::AppTransaction => Verified::AppTransaction(Box::new(
                self.verify_app_transaction(token, expected, at)?,
            )),
        })
    }
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
        let mut json = to_value(&self.payload);
        let mut replace = |object: &str, field: &str, content: Option<Value>| {
            if let (Some(slot), Some(content)) =
                (json.get_mut(object).and_then(|o| o.get_mut(field)), content)
            {
                *slot = content;
            }
        };
        replace(
            "data",
            "signedTransactionInfo",
            self.transaction_info.as_ref().map(to_value),
        );
        replace(
            "data",
            "signedRenewalInfo",
            self.renewal_info.as_ref().map(to_value),
        );
        replace(
            "appData",
            "signedAppTransactionInfo",
            self.app_transaction_info.as_ref().map(to_value),
        );
        json
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
    let payload = compact::unverified_payload(token)?;
    let json: Value = decode(&payload)?;
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

/// Which kind of token this looks like, from the fields of its payload.
/// Unverified: only used to pick the decoder, which verifies everything.
pub fn unverified_kind(token: &str) -> Result<TokenKind, VerifyError> {
    let json = unverified_json(token)?;
    let has = |field: &str| json.get(field).is_some();
    if has("notificationType") || has("notificationUUID") {
        Ok(TokenKind::Notification)
    } else if has("receiptType") || has("applicationVersion") {
        Ok(TokenKind::AppTransaction)
    } else if has("transactionId") {
        Ok(TokenKind::Transaction)
    } else if has("autoRenewStatus") || has("autoRenewProductId") || has("renewalDate") {
        Ok(TokenKind::RenewalInfo)
    } else {
        Err(VerifyError::MalformedPayload(
            "the payload is not a notification, transaction, renewal info or app transaction"
                .into(),
        ))
    }
}
