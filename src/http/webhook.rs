//! `POST /v2/notifications`: where the App Store posts.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::error_code::ErrorCode;
use super::{ApiError, AppState};
use crate::ingest::Ingested;
use crate::store::{Recorded, StoreError};

#[derive(Deserialize)]
struct Body {
    #[serde(rename = "signedPayload")]
    signed_payload: String,
}

/// What became of one POST, as counted in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Stored,
    Duplicate,
    Quarantined,
    /// Not genuine: the verifier's code.
    Rejected(&'static str),
    /// Not a notification request at all: the error's code.
    Invalid(&'static str),
    /// The database did not take it; Apple retries.
    Unavailable,
}

impl Outcome {
    fn count(self, state: &AppState, took: std::time::Duration) {
        let (outcome, code) = match self {
            Outcome::Stored => ("stored", None),
            Outcome::Duplicate => ("duplicate", None),
            Outcome::Quarantined => ("quarantined", None),
            Outcome::Rejected(code) => ("rejected", Some(code)),
            Outcome::Invalid(code) => ("invalid", Some(code)),
            Outcome::Unavailable => ("unavailable", Some(ErrorCode::DatabaseUnavailable.as_str())),
        };
        state.metrics.notification(outcome, code, took);
        if let Outcome::Rejected(code) | Outcome::Invalid(code) = self {
            state
                .rejections
                .note(code, state.store.clock().now().as_millis());
        }
    }
}

/// Verifies, then stores durably, then answers. Apple retries on anything but
/// 2xx, so 2xx is sent only once the notification is committed (or known).
pub(super) async fn receive(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = std::time::Instant::now();
    let (outcome, response) = match receive_inner(&state, body).await {
        Ok(outcome) => {
            let (status, label) = match outcome {
                Outcome::Stored => (StatusCode::OK, "stored"),
                Outcome::Duplicate => (StatusCode::OK, "duplicate"),
                _ => (StatusCode::ACCEPTED, "quarantined"),
            };
            tracing::info!(outcome = label, "notification received");
            (
                outcome,
                (status, Json(json!({"status": label}))).into_response(),
            )
        }
        Err((outcome, error)) => (outcome, error.into_response()),
    };
    outcome.count(&state, started.elapsed());
    response
}

async fn receive_inner(
    state: &AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<Outcome, (Outcome, ApiError)> {
    let invalid = |status, code: ErrorCode, message: String| {
        (
            Outcome::Invalid(code.as_str()),
            ApiError::new(status, code, message),
        )
    };
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            invalid(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                rejection.body_text(),
            )
        } else {
            invalid(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidRequest,
                rejection.body_text(),
            )
        }
    })?;
    let body: Body = serde_json::from_slice(&body).map_err(|_| {
        invalid(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            "the body must be a JSON object with a signedPayload string".into(),
        )
    })?;

    let now = state.store.clock().now();
    let verifying = std::time::Instant::now();
    let classified = state.ingest.classify(&body.signed_payload, now, now);
    state.metrics.verification(verifying.elapsed());
    let ingested = classified.map_err(|error| {
        // Forged or broken: counted and logged, never stored.
        tracing::warn!(code = error.code(), %error, "notification rejected");
        (
            Outcome::Rejected(error.code()),
            ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::of(error.code()),
                error.to_string(),
            ),
        )
    })?;

    let notification = ingested.notification();
    let span = tracing::Span::current();
    span.record("notification_uuid", notification.notification_uuid.as_str());
    span.record("notification_type", notification.notification_type.as_str());

    let committing = std::time::Instant::now();
    let (write, accepted) = match ingested {
        Ingested::Accepted(n) => (
            within(state, state.store.record_notification(n)).await,
            true,
        ),
        Ingested::Quarantined(n, quarantine) => {
            let reason = quarantine.reason();
            tracing::warn!(code = %reason.code, reason = %reason.message, "genuine notification quarantined");
            (
                within(state, state.store.quarantine(n, reason)).await,
                false,
            )
        }
    };
    state.metrics.commit(committing.elapsed());
    let recorded = write.map_err(|e| {
        tracing::error!(error = %e.chain(), "notification not stored; Apple will retry");
        (Outcome::Unavailable, ApiError::database_unavailable(&e))
    })?;

    Ok(match recorded {
        Recorded::Stored if accepted => Outcome::Stored,
        Recorded::Duplicate if accepted => Outcome::Duplicate,
        // Released from quarantine since: a known notification.
        Recorded::AlreadyAccepted => Outcome::Duplicate,
        Recorded::Stored | Recorded::Duplicate => Outcome::Quarantined,
    })
}

/// Bounds a store call by the handler's deadline, so that a stuck database
/// answers 503 (Apple retries) instead of holding the request.
async fn within(
    state: &AppState,
    write: impl std::future::Future<Output = Result<Recorded, StoreError>>,
) -> Result<Recorded, StoreError> {
    tokio::time::timeout(state.store_timeout, write)
        .await
        .unwrap_or_else(|_| Err(StoreError::TimedOut))
}
