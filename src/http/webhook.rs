//! `POST /v2/notifications`: where the App Store posts.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, AppState};
use crate::ingest::Ingested;
use crate::model::Timestamp;
use crate::store::{Recorded, StoreError};

const COUNTER: &str = "appstore_ledger_notifications_total";

#[derive(Deserialize)]
struct Body {
    #[serde(rename = "signedPayload")]
    signed_payload: String,
}

/// Verifies, then stores durably, then answers. Apple retries on anything but
/// 2xx, so 2xx is sent only once the notification is committed (or known).
pub(super) async fn receive(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match receive_inner(&state, body).await {
        Ok(response) => response,
        Err(error) => {
            let outcome = match error.status {
                StatusCode::FORBIDDEN => "rejected",
                StatusCode::SERVICE_UNAVAILABLE => "unavailable",
                _ => "invalid",
            };
            state
                .metrics
                .increment(COUNTER, &[("outcome", outcome), ("code", error.code)]);
            error.into_response()
        }
    }
}

async fn receive_inner(
    state: &AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                rejection.body_text(),
            )
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
                rejection.body_text(),
            )
        }
    })?;
    let body: Body = serde_json::from_slice(&body).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "the body must be a JSON object with a signedPayload string",
        )
    })?;

    let now = Timestamp::now();
    let ingested = state
        .ingest
        .classify(&body.signed_payload, now, now)
        .map_err(|error| {
            // Forged or broken: counted and logged, never stored.
            tracing::warn!(code = error.code(), %error, "notification rejected");
            ApiError::new(StatusCode::FORBIDDEN, error.code(), error.to_string())
        })?;

    let notification = ingested.notification();
    let span = tracing::Span::current();
    span.record("notification_uuid", notification.notification_uuid.as_str());
    span.record("notification_type", notification.notification_type.as_str());

    let (write, accepted) = match ingested {
        Ingested::Accepted(n) => (
            within(state, state.store.record_notification(n)).await,
            true,
        ),
        Ingested::Quarantined(n, reason) => {
            tracing::warn!(code = %reason.code, reason = %reason.message, "genuine notification quarantined");
            (
                within(state, state.store.quarantine(n, reason)).await,
                false,
            )
        }
    };
    let recorded = write.map_err(|e| {
        tracing::error!(error = %e, "notification not stored; Apple will retry");
        ApiError::database_unavailable(e.to_string())
    })?;

    let (status, label) = match recorded {
        Recorded::Stored if accepted => (StatusCode::OK, "stored"),
        Recorded::Duplicate if accepted => (StatusCode::OK, "duplicate"),
        // Released from quarantine since: a known notification.
        Recorded::AlreadyAccepted => (StatusCode::OK, "duplicate"),
        Recorded::Stored | Recorded::Duplicate => (StatusCode::ACCEPTED, "quarantined"),
    };
    state.metrics.increment(COUNTER, &[("outcome", label)]);
    tracing::info!(outcome = label, "notification received");
    Ok((status, Json(json!({"status": label}))).into_response())
}

/// Bounds a store call by the handler's deadline, so that a stuck database
/// answers 503 (Apple retries) instead of holding the request.
async fn within(
    state: &AppState,
    write: impl std::future::Future<Output = Result<Recorded, StoreError>>,
) -> Result<Recorded, StoreError> {
    tokio::time::timeout(state.store_timeout, write)
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(
                "the database did not answer in time".into(),
            ))
        })
}
