//! From a posted `signedPayload` to what the store keeps: verify everything,
//! then decide whether the notification belongs to a configured app.

use crate::config::AppSettings;
use crate::jws::{ExpectedIdentity, VerifiedNotification, Verifier, VerifyError};
use crate::ledger::Event;
use crate::model::{JwsRenewalInfoDecodedPayload, JwsTransactionDecodedPayload, Timestamp};
use crate::store::{NewNotification, QuarantineReason};

/// What to do with a genuine notification.
#[derive(Debug, Clone, PartialEq)]
pub enum Ingested {
    /// It belongs to a configured app and environment.
    Accepted(NewNotification),
    /// Its signature and chain are proven, but no configured app expects it.
    Quarantined(NewNotification, Quarantine),
}

impl Ingested {
    pub fn notification(&self) -> &NewNotification {
        match self {
            Ingested::Accepted(n) | Ingested::Quarantined(n, _) => n,
        }
    }
}

/// Why a genuine notification is kept aside rather than accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Quarantine {
    /// No `[[apps]]` entry has its bundle id (or it names none).
    UnconfiguredApp { bundle_id: Option<String> },
    /// The app is configured, but not for this environment or appAppleId.
    NotExpected(VerifyError),
}

impl Quarantine {
    /// The stable code kept with the notification.
    pub fn code(&self) -> &'static str {
        match self {
            // The same code as a bundle id the verifier was told to expect.
            Quarantine::UnconfiguredApp { .. } => "BUNDLE_MISMATCH",
            Quarantine::NotExpected(error) => error.code(),
        }
    }

    /// As the store keeps it.
    pub fn reason(&self) -> QuarantineReason {
        let message = match self {
            Quarantine::UnconfiguredApp { bundle_id } => format!(
                "no [[apps]] entry for bundle id {}",
                bundle_id.as_deref().unwrap_or("(none)")
            ),
            Quarantine::NotExpected(error) => error.to_string(),
        };
        QuarantineReason {
            code: self.code().to_owned(),
            message,
        }
    }
}

/// A transaction the app reported, verified.
#[derive(Debug, Clone, PartialEq)]
pub struct Reported {
    pub bundle_id: String,
    pub environment: String,
    pub transaction: JwsTransactionDecodedPayload,
    pub renewal_info: Option<JwsRenewalInfoDecodedPayload>,
}

/// The verifier and the configured apps.
#[derive(Debug)]
pub struct Ingest {
    verifier: Verifier,
    apps: Vec<(String, ExpectedIdentity)>,
}

impl Ingest {
    pub fn new(verifier: Verifier, apps: &[AppSettings]) -> Self {
        Ingest {
            verifier,
            apps: apps
                .iter()
                .map(|app| (app.bundle_id.clone(), app.expected_identity()))
                .collect(),
        }
    }

    pub fn has_apps(&self) -> bool {
        !self.apps.is_empty()
    }

    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// What a configured app's signed data must say.
    pub fn expected(&self, bundle_id: &str) -> Option<&ExpectedIdentity> {
        self.apps
            .iter()
            .find(|(id, _)| id == bundle_id)
            .map(|(_, expected)| expected)
    }

    /// Verifies a transaction the app reported (StoreKit's
    /// `jwsRepresentation`), and its renewal info if given, at `at`, like a
    /// nested notification token: the chain, ES256, and a configured app's
    /// bundle id and environment. Returns them with the app's identity.
    pub fn verify_reported(
        &self,
        signed_transaction: &str,
        signed_renewal_info: Option<&str>,
        at: Timestamp,
    ) -> Result<Reported, VerifyError> {
        let any =
            self.verifier
                .verify_transaction(signed_transaction, &ExpectedIdentity::any(), at)?;
        let bundle_id = any.bundle_id.clone().unwrap_or_default();
        let Some(expected) = self.expected(&bundle_id) else {
            return Err(VerifyError::BundleMismatch {
                expected: self
                    .apps
                    .iter()
                    .map(|(id, _)| id.as_str())
                    .collect::<Vec<_>>()
                    .join(" or "),
                found: bundle_id,
            });
        };
        expected.check_environment(any.environment.as_ref())?;
        let renewal_info = match signed_renewal_info {
            Some(token) => {
                let renewal = self.verifier.verify_renewal_info(token, expected, at)?;
                if renewal.original_transaction_id != any.original_transaction_id {
                    return Err(VerifyError::TransactionMismatch(
                        any.original_transaction_id.clone().unwrap_or_default(),
                        renewal.original_transaction_id.clone().unwrap_or_default(),
                    ));
                }
                Some(renewal)
            }
            None => None,
        };
        Ok(Reported {
            environment: any
                .environment
                .as_ref()
                .map(|e| e.as_str().to_owned())
                .unwrap_or_default(),
            bundle_id,
            transaction: any,
            renewal_info,
        })
    }

    /// Verifies `signed_payload` and every nested token at `at`, then checks it
    /// against the configured apps. An error means the payload is not genuine
    /// (or not a notification) and must not be stored.
    pub fn classify(
        &self,
        signed_payload: &str,
        at: Timestamp,
        received_at: Timestamp,
    ) -> Result<Ingested, VerifyError> {
        let verified =
            self.verifier
                .verify_notification(signed_payload, &ExpectedIdentity::any(), at)?;
        let notification = new_notification(&verified, signed_payload, received_at);
        let identity = verified.identity();
        let app = identity
            .bundle_id
            .as_deref()
            .and_then(|bundle| self.apps.iter().find(|(id, _)| id == bundle));
        let Some((_, expected)) = app else {
            return Ok(Ingested::Quarantined(
                notification,
                Quarantine::UnconfiguredApp {
                    bundle_id: identity.bundle_id,
                },
            ));
        };
        match expected.check(&identity) {
            Ok(()) => Ok(Ingested::Accepted(notification)),
            Err(error) if error.is_identity_mismatch() => Ok(Ingested::Quarantined(
                notification,
                Quarantine::NotExpected(error),
            )),
            Err(error) => Err(error),
        }
    }
}

/// The columns the store keeps for a verified notification.
pub fn new_notification(
    verified: &VerifiedNotification,
    signed_payload: &str,
    received_at: Timestamp,
) -> NewNotification {
    let p = &verified.payload;
    let identity = verified.identity();
    let transaction = verified.transaction_info.as_ref();
    let json = verified.to_json();
    NewNotification {
        notification_uuid: verified.notification_uuid.clone(),
        notification_type: verified.notification_type.clone(),
        subtype: p.subtype.clone(),
        signed_date: verified.signed_date().map(Timestamp::as_millis),
        received_at: received_at.as_millis(),
        environment: identity.environment,
        bundle_id: identity.bundle_id,
        app_apple_id: identity.app_apple_id,
        original_transaction_id: transaction
            .and_then(|t| t.original_transaction_id.clone())
            .or_else(|| {
                verified
                    .renewal_info
                    .as_ref()
                    .and_then(|r| r.original_transaction_id.clone())
            })
            .or_else(|| {
                verified
                    .payload
                    .unclaim_info
                    .as_ref()
                    .and_then(|u| u.original_transaction_id.clone())
            }),
        transaction_id: transaction.and_then(|t| t.transaction_id.clone()),
        signed_payload: signed_payload.to_owned(),
        novelty: crate::model::novelty(&json).map(|what| crate::finding::clip(&what, 300)),
        payload: json.to_string(),
        event: Event::from_verified(verified),
    }
}
