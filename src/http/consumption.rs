//! The refund desk for backends: the customer's consent
//! (`PUT /v1/customers/{appAccountToken}/consent`), the facts of a
//! transaction for its consumption answer
//! (`PUT /v1/transactions/{transactionId}/consumption`), and Apple's
//! consumption requests with what came of them (`GET /v1/consumption-requests`).

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error_code::ErrorCode;
use super::{ApiError, AppState};
use crate::consumption::MAX_CONSUMPTION_PERCENTAGE;
use crate::model::{parse_app_account_token, DeliveryStatus, RefundPreference};
use crate::store::{ConsumptionFilter, ConsumptionRequestEntry, NewConsumptionFacts};

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidBody, message)
}

fn body_of<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(body)| body)
        .map_err(|rejection| invalid(rejection.body_text()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct ConsentBody {
    consumption_data: bool,
}

/// Keeps whether the customer agreed to share consumption data with Apple.
/// Without a `true` here, no answer about their purchases is ever sent.
pub(super) async fn set_consent(
    State(state): State<AppState>,
    Path(token): Path<String>,
    body: Result<Json<ConsentBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let token = parse_app_account_token(&token).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidAppAccountToken,
            "appAccountToken must be a UUID, as StoreKit's appAccountToken(_:) takes it",
        )
    })?;
    let body = body_of(body)?;
    let at = state.store.clock().now().as_millis();
    state
        .store
        .set_consumption_consent(&token, body.consumption_data, at)
        .await
        .map_err(|e| ApiError::database_unavailable(&e))?;
    Ok(Json(json!({
        "appAccountToken": token,
        "consumptionData": body.consumption_data,
        "recordedDate": at,
    })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FactsBody {
    pub delivery_status: Option<String>,
    pub consumption_percentage: Option<i64>,
    pub sample_content_provided: Option<bool>,
    pub refund_preference: Option<String>,
}

impl FactsBody {
    /// The facts to keep, in Apple's words, or why they are not Apple's.
    pub fn validate(
        self,
        transaction_id: &str,
        recorded_at: i64,
        recorded_by: String,
    ) -> Result<NewConsumptionFacts, String> {
        if transaction_id.is_empty() || transaction_id.len() > 64 || transaction_id.contains('\0') {
            return Err("transactionId must be 1 to 64 characters".into());
        }
        if let Some(d) = &self.delivery_status {
            if matches!(DeliveryStatus::from_raw(d), DeliveryStatus::Unknown(_)) {
                return Err(format!(
                    "deliveryStatus must be one of {}",
                    DeliveryStatus::KNOWN.join(", ")
                ));
            }
        }
        if let Some(p) = &self.refund_preference {
            if matches!(RefundPreference::from_raw(p), RefundPreference::Unknown(_)) {
                return Err(format!(
                    "refundPreference must be one of {}",
                    RefundPreference::KNOWN.join(", ")
                ));
            }
        }
        if self
            .consumption_percentage
            .is_some_and(|p| !(0..=MAX_CONSUMPTION_PERCENTAGE).contains(&p))
        {
            return Err("consumptionPercentage is in milliunits: 0 to 100000".into());
        }
        Ok(NewConsumptionFacts {
            transaction_id: transaction_id.to_owned(),
            delivery_status: self.delivery_status,
            consumption_percentage: self.consumption_percentage,
            sample_content_provided: self.sample_content_provided,
            refund_preference: self.refund_preference,
            recorded_at,
            recorded_by,
        })
    }
}

/// Keeps what the backend says of a transaction for its consumption
/// answer; an open request about it is answered at the job's next run.
pub(super) async fn set_facts(
    State(state): State<AppState>,
    Path(transaction_id): Path<String>,
    body: Result<Json<FactsBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let at = state.store.clock().now().as_millis();
    let facts = body_of(body)?
        .validate(&transaction_id, at, "backend".into())
        .map_err(invalid)?;
    state
        .store
        .set_consumption_facts(&facts)
        .await
        .map_err(|e| ApiError::database_unavailable(&e))?;
    Ok(Json(json!({
        "transactionId": facts.transaction_id,
        "deliveryStatus": facts.delivery_status,
        "consumptionPercentage": facts.consumption_percentage,
        "sampleContentProvided": facts.sample_content_provided,
        "refundPreference": facts.refund_preference,
        "recordedDate": at,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RequestsQuery {
    /// `open` or `closed`.
    state: Option<String>,
    original_transaction_id: Option<String>,
    transaction_id: Option<String>,
    limit: Option<i64>,
}

/// Apple's consumption requests: open ones soonest deadline first, then the
/// rest newest first.
pub(super) async fn requests(
    State(state): State<AppState>,
    query: Result<Query<RequestsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|r| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidQuery,
            r.body_text(),
        )
    })?;
    let open = match q.state.as_deref() {
        None => None,
        Some("open") => Some(true),
        Some("closed") => Some(false),
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidQuery,
                "state is open or closed",
            ))
        }
    };
    let filter = ConsumptionFilter {
        open,
        original_transaction_id: q.original_transaction_id,
        transaction_id: q.transaction_id,
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
    };
    let found = state
        .store
        .consumption_requests(&filter)
        .await
        .map_err(|e| ApiError::database_unavailable(&e))?;
    let now = state.store.clock().now().as_millis();
    Ok(Json(json!({
        "consumptionRequests": found.iter().map(|r| request_json(r, now)).collect::<Vec<_>>(),
    })))
}

/// REFUND or REFUND_DECLINED, as the desk says it.
pub fn outcome(r: &ConsumptionRequestEntry) -> Option<&'static str> {
    match r.outcome.as_deref()? {
        "REFUND" => Some("REFUNDED"),
        "REFUND_DECLINED" => Some("DECLINED"),
        _ => None,
    }
}

/// A request as the API, and the history, give it.
pub fn request_json(r: &ConsumptionRequestEntry, now: i64) -> Value {
    let sent_body: Option<Value> = r
        .sent_body
        .as_deref()
        .and_then(|b| serde_json::from_str(b).ok());
    json!({
        "notificationUUID": r.notification_uuid,
        "transactionId": r.transaction_id,
        "originalTransactionId": r.original_transaction_id,
        "bundleId": r.bundle_id,
        "environment": r.environment,
        "productId": r.product_id,
        "type": r.product_type,
        "inAppOwnershipType": r.in_app_ownership_type,
        "appAccountToken": r.app_account_token,
        "consumptionRequestReason": r.reason,
        "requestedDate": r.requested_at,
        "deadline": r.deadline,
        "timeLeftMs": (r.state == "OPEN").then(|| r.deadline.saturating_sub(now).max(0)),
        "state": r.state,
        "why": r.why,
        "attempts": r.attempts,
        "nextAttemptDate": r.next_attempt_at,
        "lastError": r.last_error,
        "sendNowBy": r.send_now_by,
        "sent": sent_body,
        "sentDate": r.sent_at,
        "appleStatus": r.apple_status,
        "closedDate": r.closed_at,
        "outcome": outcome(r),
        "outcomeDate": r.outcome_date,
        "consent": r.consent.map(|c| json!({
            "consumptionData": c, "recordedDate": r.consent_recorded_at,
        })),
        "facts": r.facts_recorded_at.map(|at| json!({
            "deliveryStatus": r.facts_delivery_status,
            "consumptionPercentage": r.facts_consumption_percentage,
            "sampleContentProvided": r.facts_sample_content_provided,
            "refundPreference": r.facts_refund_preference,
            "recordedDate": at,
            "recordedBy": r.facts_recorded_by,
        })),
    })
}
