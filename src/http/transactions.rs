//! `POST /v1/transactions`: a backend forwards the app's proof of purchase
//! (StoreKit's signed transaction, or a transaction id or a legacy receipt
//! to ask Apple about) and gets the entitlement it produces at once.

use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::digest::{digest, SHA256};
use serde::Deserialize;
use serde_json::json;

use super::error_code::ErrorCode;
use super::{ApiError, AppState};
use crate::ledger::ItemKey;
use crate::sync::{self, AppReport, SyncError};

/// Reports per bearer token: `per_minute` a minute on average, a burst of
/// `per_minute` at most (a maintained limiter: governor's GCRA, keyed by
/// the token's digest). Counted per instance: with N instances a token may
/// report N times as much.
#[derive(Debug)]
pub struct ReportLimiter(governor::DefaultKeyedRateLimiter<[u8; 32]>);

impl ReportLimiter {
    pub fn new(per_minute: u32) -> Self {
        // Validated positive at start-up; a zero here allows one a minute.
        let per_minute = std::num::NonZeroU32::new(per_minute).unwrap_or(std::num::NonZeroU32::MIN);
        ReportLimiter(governor::RateLimiter::keyed(governor::Quota::per_minute(
            per_minute,
        )))
    }

    /// None when allowed; else how long until the token may report again.
    fn check(&self, token: &[u8]) -> Option<Duration> {
        let mut key = [0u8; 32];
        key.copy_from_slice(digest(&SHA256, token).as_ref());
        // The limiter's own clock says how far off the next cell is.
        self.0
            .check_key(&key)
            .err()
            .map(|not_until| not_until.wait_time_from(governor::clock::Clock::now(self.0.clock())))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct ReportBody {
    signed_transaction: Option<String>,
    signed_renewal_info: Option<String>,
    app_account_token: Option<String>,
    transaction_id: Option<String>,
    receipt: Option<String>,
}

fn invalid(message: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidBody, message)
}

fn refused(error: &SyncError) -> ApiError {
    let status = match error {
        SyncError::Verification(_) => StatusCode::FORBIDDEN,
        SyncError::Receipt(_)
        | SyncError::EmptyReceipt
        | SyncError::ApiNotConfigured
        | SyncError::InvalidExtension(_) => StatusCode::BAD_REQUEST,
        SyncError::UnknownTransaction(_) | SyncError::UnknownSubscription(_) => {
            StatusCode::NOT_FOUND
        }
        SyncError::Apple(_) | SyncError::NotConfigured { .. } => StatusCode::BAD_GATEWAY,
        SyncError::Store(e) => return ApiError::database_unavailable(e),
    };
    ApiError::new(status, ErrorCode::of(error.code()), error.to_string())
}

/// `POST /v1/transactions` with `{"signedTransaction": ..., ["signedRenewalInfo": ...],
/// ["appAccountToken": ...]}`, or `{"transactionId": ...}`, or `{"receipt": ...}`.
pub(super) async fn report(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<ReportBody>, JsonRejection>,
) -> Response {
    match report_inner(&state, &headers, body).await {
        Ok(answer) => answer.into_response(),
        Err(error) => error.into_response(),
    }
}

async fn report_inner(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Json<ReportBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    // By the token itself, so that another spelling of the scheme is the
    // same allowance.
    let token = super::auth::bearer_token(headers).unwrap_or_default();
    if let Some(wait) = state.report_limiter.check(token.as_bytes()) {
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            "too many reports for this token; see Retry-After",
        )
        .into_response();
        if let Ok(value) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            response.headers_mut().insert("retry-after", value);
        }
        return Ok(response);
    }
    let Json(body) = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                rejection.body_text(),
            )
        } else {
            invalid(&rejection.body_text())
        }
    })?;
    // Nothing a report holds has a NUL; PostgreSQL could not keep one.
    let fields = [
        &body.signed_transaction,
        &body.signed_renewal_info,
        &body.app_account_token,
        &body.transaction_id,
        &body.receipt,
    ];
    if fields
        .iter()
        .any(|f| f.as_deref().is_some_and(|f| f.contains('\0')))
    {
        return Err(invalid("a NUL character is not accepted"));
    }
    let report = match (body.signed_transaction, body.transaction_id, body.receipt) {
        (Some(signed_transaction), None, None) => AppReport::Signed {
            signed_transaction,
            signed_renewal_info: body.signed_renewal_info,
        },
        (None, Some(id), None) if body.signed_renewal_info.is_none() => AppReport::TransactionId(id),
        (None, None, Some(receipt)) if body.signed_renewal_info.is_none() => {
            let receipt: String = receipt.chars().filter(|c| !c.is_whitespace()).collect();
            AppReport::Receipt(STANDARD.decode(receipt).map_err(|_| {
                ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::MalformedReceipt, "the receipt is not base64")
            })?)
        }
        _ => {
            return Err(invalid(
                "give exactly one of signedTransaction (with signedRenewalInfo if known), transactionId, receipt",
            ))
        }
    };
    // StoreKit takes only a UUID as appAccountToken: anything else is not
    // an account Apple could ever sign, and would link nothing.
    let app_account_token = match body.app_account_token.as_deref() {
        None => None,
        Some(raw) => Some(crate::model::parse_app_account_token(raw).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidAppAccountToken,
                "appAccountToken must be a UUID, as StoreKit's appAccountToken(_:) takes it",
            )
        })?),
    };
    let outcome = sync::report(
        &state.appstore_api,
        &state.ingest,
        &state.store,
        report,
        app_account_token,
    )
    .await
    .map_err(|e| refused(&e))?;
    let at = state.store.clock().now().as_millis();
    let s = &outcome.state;
    let item = &outcome.item;
    let answer = s.answer_at(item, at, &state.products);
    Ok(Json(json!({
        "type": item.kind(),
        "originalTransactionId": match item {
            ItemKey::Subscription(id) => Some(id.as_str()),
            ItemKey::Purchase(_) => s.original_transaction_id.as_deref(),
        },
        "transactionId": match item {
            ItemKey::Purchase(id) => Some(id.as_str()),
            ItemKey::Subscription(_) => s.current_transaction_id.as_deref(),
        },
        "productId": answer.product_id,
        "status": answer.status.map(|status| status.as_str()),
        "entitled": answer.entitled,
        "expiresDate": answer.expires_date,
        "seats": answer.seats,
        "durationConfigured": answer.duration_configured,
        "at": at,
        "stored": outcome.stored,
        "appAccountTokenMismatch": outcome.app_account_token_mismatch.map(|(reported, signed)| json!({
            "reported": reported,
            "signed": signed,
        })),
    }))
    .into_response())
}
