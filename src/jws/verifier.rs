//! The verifier a process keeps: trusted roots (and Xcode's StoreKit test
//! certificate, when configured) plus a chain cache, and the checks of each
//! kind of signed data Apple sends: a notification with every token nested
//! in it, a transaction, a renewal info, an app transaction.

use serde::de::DeserializeOwned;

use super::cache::ChainCache;
use super::error::VerifyError;
use super::identity::{agree, ExpectedIdentity, PayloadIdentity};
use super::trust::TrustAnchors;
use super::xcode::{self, xcode_only, Signer};
use super::{
    looks_like_object, payload_kind, verify_compact, TokenKind, Verified, VerifiedNotification,
};
use crate::model::{
    Environment, JwsAppTransactionDecodedPayload, JwsRenewalInfoDecodedPayload,
    JwsTransactionDecodedPayload, ResponseBodyV2DecodedPayload, Timestamp,
};

/// Rejects a payload lacking a field that identifies it: such a payload is not
/// of the kind the caller asked for.
fn require(present: bool, what: &str) -> Result<(), VerifyError> {
    if present {
        Ok(())
    } else {
        Err(VerifyError::MalformedPayload(what.to_owned()))
    }
}

/// A kind of token Apple nests in a notification (and sends alone): what
/// identifies it, and the environment it speaks for.
trait Nested: DeserializeOwned {
    /// Rejects a payload of another kind in this one's place.
    fn check_kind(&self) -> Result<(), VerifyError>;
    fn environment(&self) -> Option<&Environment>;
}

/// A transaction has its id; anything else in its place (a renewal info, a
/// whole notification) is not one.
impl Nested for JwsTransactionDecodedPayload {
    fn check_kind(&self) -> Result<(), VerifyError> {
        require(
            self.transaction_id.is_some(),
            "a transaction without transactionId",
        )
    }

    fn environment(&self) -> Option<&Environment> {
        self.environment.as_ref()
    }
}

/// Renewal info names its subscription and no transaction of its own: a
/// transaction in its place is not one.
impl Nested for JwsRenewalInfoDecodedPayload {
    fn check_kind(&self) -> Result<(), VerifyError> {
        require(
            self.original_transaction_id.is_some(),
            "a renewal info without originalTransactionId",
        )?;
        require(
            !self.unknown_fields.contains_key("transactionId"),
            "a renewal info with a transactionId (a transaction in the renewal info's place)",
        )
    }

    fn environment(&self) -> Option<&Environment> {
        self.environment.as_ref()
    }
}

impl Nested for JwsAppTransactionDecodedPayload {
    fn check_kind(&self) -> Result<(), VerifyError> {
        require(
            self.bundle_id.is_some(),
            "an app transaction without bundleId",
        )
    }

    fn environment(&self) -> Option<&Environment> {
        JwsAppTransactionDecodedPayload::environment(self)
    }
}

pub(super) fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, VerifyError> {
    serde_json::from_slice(payload).map_err(|e| VerifyError::MalformedPayload(e.to_string()))
}

/// The payload read as a notification when it is a JSON object that reads
/// as one and names a notificationType or notificationUUID: what
/// [`payload_kind`] calls a notification, and read as
/// [`Verifier::notification_from`] reads it. `None` for anything else,
/// whose kind (and any error) the fields of the payload tell.
fn read_as_notification(payload: &[u8]) -> Option<ResponseBodyV2DecodedPayload> {
    if !looks_like_object(payload) {
        return None;
    }
    let notification: ResponseBodyV2DecodedPayload = serde_json::from_slice(payload).ok()?;
    (notification.notification_type.is_some() || notification.notification_uuid.is_some())
        .then_some(notification)
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
    /// StoreKit test certificate. Nothing of the payload is read yet.
    fn verify_payload(&self, token: &str, at: Timestamp) -> Result<(Vec<u8>, Signer), VerifyError> {
        match verify_compact(token, &self.anchors, at, Some(&self.cache)) {
            Ok(payload) => Ok((payload, Signer::Apple)),
            Err(apple) => match self.anchors.xcode() {
                Some(xcode) => match xcode::verify_xcode(token, xcode, at) {
                    Ok(payload) => Ok((payload, Signer::Xcode)),
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

    /// A verified payload of kind `T`, of that kind, and (when Xcode's
    /// certificate signed it) for a local test environment.
    fn nested_from<T: Nested>(payload: &[u8], signer: Signer) -> Result<T, VerifyError> {
        let payload: T = decode(payload)?;
        payload.check_kind()?;
        xcode_only(signer, payload.environment())?;
        Ok(payload)
    }

    /// A token of kind `T`, verified, as [`Verifier::nested_from`] reads it.
    fn verify_nested<T: Nested>(&self, token: &str, at: Timestamp) -> Result<T, VerifyError> {
        let (payload, signer) = self.verify_payload(token, at)?;
        Self::nested_from(&payload, signer)
    }

    pub fn verify_transaction(
        &self,
        token: &str,
        expected: &ExpectedIdentity,
        at: Timestamp,
    ) -> Result<JwsTransactionDecodedPayload, VerifyError> {
        let (payload, signer) = self.verify_payload(token, at)?;
        Self::transaction_from(&payload, signer, expected)
    }

    fn transaction_from(
        payload: &[u8],
        signer: Signer,
        expected: &ExpectedIdentity,
    ) -> Result<JwsTransactionDecodedPayload, VerifyError> {
        let transaction: JwsTransactionDecodedPayload = Self::nested_from(payload, signer)?;
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
        let (payload, signer) = self.verify_payload(token, at)?;
        Self::renewal_info_from(&payload, signer, expected)
    }

    fn renewal_info_from(
        payload: &[u8],
        signer: Signer,
        expected: &ExpectedIdentity,
    ) -> Result<JwsRenewalInfoDecodedPayload, VerifyError> {
        let renewal_info: JwsRenewalInfoDecodedPayload = Self::nested_from(payload, signer)?;
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
        let (payload, signer) = self.verify_payload(token, at)?;
        Self::app_transaction_from(&payload, signer, expected)
    }

    fn app_transaction_from(
        payload: &[u8],
        signer: Signer,
        expected: &ExpectedIdentity,
    ) -> Result<JwsAppTransactionDecodedPayload, VerifyError> {
        let app_transaction: JwsAppTransactionDecodedPayload = Self::nested_from(payload, signer)?;
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
        let (payload, signer) = self.verify_payload(token, at)?;
        self.notification_from(&payload, signer, expected, at)
    }

    /// A notification's verified payload, read, with every token nested in
    /// it verified at `at`, as [`Verifier::verify_notification`] checks it.
    fn notification_from(
        &self,
        payload: &[u8],
        envelope_signer: Signer,
        expected: &ExpectedIdentity,
        at: Timestamp,
    ) -> Result<VerifiedNotification, VerifyError> {
        self.notification_of(decode(payload)?, envelope_signer, expected, at)
    }

    /// As [`Verifier::notification_from`], for a payload already read.
    fn notification_of(
        &self,
        payload: ResponseBodyV2DecodedPayload,
        envelope_signer: Signer,
        expected: &ExpectedIdentity,
        at: Timestamp,
    ) -> Result<VerifiedNotification, VerifyError> {
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
            .map(|t| self.verify_nested::<JwsTransactionDecodedPayload>(t, at))
            .transpose()
            .map_err(VerifyError::nested(TRANSACTION))?;
        let renewal_info = data
            .and_then(|d| d.signed_renewal_info.as_deref())
            .map(|t| self.verify_nested::<JwsRenewalInfoDecodedPayload>(t, at))
            .transpose()
            .map_err(VerifyError::nested(RENEWAL))?;
        let app_transaction_info = app_data
            .and_then(|d| d.signed_app_transaction_info.as_deref())
            .map(|t| self.verify_nested::<JwsAppTransactionDecodedPayload>(t, at))
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

    /// Verifies a token of the given kind, or of the kind its payload
    /// says when `kind` is `None`: told from the payload once its signature
    /// is proven (read before, as it was, it cost a second decoding of the
    /// payload, about 3% of `verify --kind auto`).
    pub fn verify(
        &self,
        token: &str,
        kind: Option<TokenKind>,
        expected: &ExpectedIdentity,
        at: Timestamp,
    ) -> Result<Verified, VerifyError> {
        let (payload, signer) = self.verify_payload(token, at)?;
        let kind = match kind {
            Some(kind) => kind,
            // Most tokens are notifications: one read tells the kind and
            // decodes it (a pass over the payload to tell the kind first,
            // nested tokens and all, was a fifth of what `verify --kind
            // auto` spent outside ring). Anything else is told as before.
            None => match read_as_notification(&payload) {
                Some(notification) => {
                    return Ok(Verified::Notification(Box::new(self.notification_of(
                        notification,
                        signer,
                        expected,
                        at,
                    )?)))
                }
                None => payload_kind(&payload)?,
            },
        };
        Ok(match kind {
            TokenKind::Notification => Verified::Notification(Box::new(
                self.notification_from(&payload, signer, expected, at)?,
            )),
            TokenKind::Transaction => Verified::Transaction(Box::new(Self::transaction_from(
                &payload, signer, expected,
            )?)),
            TokenKind::RenewalInfo => Verified::RenewalInfo(Box::new(Self::renewal_info_from(
                &payload, signer, expected,
            )?)),
            TokenKind::AppTransaction => Verified::AppTransaction(Box::new(
                Self::app_transaction_from(&payload, signer, expected)?,
            )),
        })
    }
}
