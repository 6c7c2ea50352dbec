//! From a posted `signedPayload` to what the store keeps: verify everything,
//! then decide whether the notification belongs to a configured app.

use crate::config::AppSettings;
use crate::jws::{ExpectedIdentity, VerifiedNotification, Verifier, VerifyError};
use crate::model::Timestamp;
use crate::store::{NewNotification, QuarantineReason};

/// What to do with a genuine notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    /// It belongs to a configured app and environment.
    Accepted(NewNotification),
    /// Its signature and chain are proven, but no configured app expects it.
    Quarantined(NewNotification, QuarantineReason),
}

impl Ingested {
    pub fn notification(&self) -> &NewNotification {
        match self {
            Ingested::Accepted(n) | Ingested::Quarantined(n, _) => n,
        }
    }
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
        let outcome = match app {
            None => Err(VerifyError::BundleMismatch {
                expected: "a bundle id configured in [[apps]]".into(),
                found: identity
                    .bundle_id
                    .clone()
                    .unwrap_or_else(|| "nothing".into()),
            }),
            Some((_, expected)) => expected.check(&identity),
        };
        match outcome {
            Ok(()) => Ok(Ingested::Accepted(notification)),
            Err(error) if error.is_identity_mismatch() => Ok(Ingested::Quarantined(
                notification,
                QuarantineReason {
                    code: error.code().to_owned(),
                    message: error.to_string(),
                },
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
    NewNotification {
        // verify_notification guarantees both are present.
        notification_uuid: p.notification_uuid.clone().unwrap_or_default(),
        notification_type: p
            .notification_type
            .as_ref()
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default(),
        subtype: p.subtype.as_ref().map(|s| s.as_str().to_owned()),
        signed_date: verified.signed_date().map(Timestamp::as_millis),
        received_at: received_at.as_millis(),
        environment: identity.environment.map(|e| e.as_str().to_owned()),
        bundle_id: identity.bundle_id,
        app_apple_id: identity.app_apple_id,
        original_transaction_id: transaction
            .and_then(|t| t.original_transaction_id.clone())
            .or_else(|| {
                verified
                    .renewal_info
                    .as_ref()
                    .and_then(|r| r.original_transaction_id.clone())
            }),
        transaction_id: transaction.and_then(|t| t.transaction_id.clone()),
        signed_payload: signed_payload.to_owned(),
        payload: verified.to_json().to_string(),
    }
}
