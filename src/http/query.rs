//! The query API's handlers for backend services and support staff:
//! subscriptions, entitlements, history, findings and refunds. JSON in
//! Apple's camelCase names and millisecond timestamps. Every answer reads
//! committed state. Who may ask is in auth.rs, the parameters in
//! params.rs, the CSV and cursors in export.rs.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error_code::ErrorCode;
use super::export::{decode_cursor, encode_cursor, to_csv};
use super::params::{invalid, AtParams, Limit, Millis, Number, Params, MAX_LIMIT};
use super::views::{self, EvidenceView, ExpirationView, FindingView, HistoryView, RefundView};
use super::{ApiError, AppState};
use crate::ledger::State as LedgerState;
use crate::store::{ConsumptionFilter, ItemQuery, LedgerItem, RefundFilter, StoreError};

fn unavailable(e: StoreError) -> ApiError {
    ApiError::database_unavailable(&e)
}

/// The item as the ledger knew it at `known_at`: folded again from what had
/// been received by then. None when nothing about it had arrived.
async fn as_known_at(
    state: &AppState,
    item: &LedgerItem,
    known_at: Option<Millis>,
) -> Result<Option<LedgerItem>, ApiError> {
    let Some(Millis(known_at)) = known_at else {
        return Ok(Some(item.clone()));
    };
    let payloads = state
        .store
        .item_payloads_known_at(&item.item, known_at)
        .await
        .map_err(unavailable)?;
    let events = payloads
        .iter()
        .filter_map(|p| crate::ledger::Event::parse(p).ok())
        .collect();
    Ok(
        crate::ledger::fold(&item.item, events).map(|(state, _)| LedgerItem {
            item: item.item.clone(),
            state,
        }),
    )
}

fn at_or_now(state: &AppState, at: Option<Millis>) -> i64 {
    at.map_or_else(|| state.store.now(), |Millis(at)| at)
}

/// The customers among `states` who withdrew consent (RESCIND_CONSENT),
/// by appTransactionId, with when; `also` names one more customer.
async fn rescinded_consents<'a>(
    state: &AppState,
    states: impl Iterator<Item = &'a LedgerState>,
    also: Option<&str>,
) -> Result<BTreeMap<String, i64>, ApiError> {
    let mut customers: Vec<String> = states
        .filter_map(|s| s.app_transaction_id.clone())
        .chain(also.map(str::to_owned))
        .collect();
    customers.sort();
    customers.dedup();
    if customers.is_empty() {
        return Ok(BTreeMap::new());
    }
    Ok(state
        .store
        .rescinded_consents(&customers)
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(|c| (c.app_transaction_id, c.rescinded_date))
        .collect())
}

/// `consent` and `consentRescindedDate` of an answer about a customer:
/// `RESCINDED` and when, or both null.
fn consent_of(consents: &BTreeMap<String, i64>, customer: Option<&str>) -> (Value, Value) {
    match customer.and_then(|c| consents.get(c)) {
        Some(date) => (json!("RESCINDED"), json!(date)),
        None => (Value::Null, Value::Null),
    }
}

fn subscription_json(
    item: &LedgerItem,
    at: i64,
    known_at: Option<Millis>,
    consents: &BTreeMap<String, i64>,
) -> Value {
    let s: &LedgerState = &item.state;
    let (consent, consent_date) = consent_of(consents, s.app_transaction_id.as_deref());
    json!({
        "originalTransactionId": item.item.id(),
        "status": s.status.as_str(),
        "entitled": s.entitled_at(&item.item, at),
        "at": at,
        // The status and product at `at`, from the timeline.
        "statusAt": s.status_at(&item.item, at).map(|status| status.as_str()),
        "productIdAt": s.product_at(&item.item, at),
        "expiresDateAt": s.expires_at(&item.item, at),
        // Seats of a multiseat purchase at `at`, as Apple counts them.
        "seatsAt": s.seats_at(&item.item, at),
        // Whose purchase: PURCHASED, FAMILY_SHARED or ASSIGNED (a group
        // member's own seat); a group's invitations (APPLE, DEVELOPER).
        "inAppOwnershipType": s.in_app_ownership_type,
        "invitationManagement": s.invitation_management,
        "knownAt": known_at.map(|Millis(k)| k),
        "productId": s.product_id,
        "autoRenewProductId": s.auto_renew_product_id,
        "autoRenewStatus": s.auto_renew_status.map(|a| a.raw()),
        "expiresDate": s.expires_date(),
        "gracePeriodExpiresDate": s.grace_period_expires_date,
        "revocationDate": s.current_revocation_date(),
        "appAccountToken": s.app_account_token,
        "bundleId": s.bundle_id,
        "environment": s.environment,
        "priceIncreaseStatus": s.price_increase_status.map(|p| p.raw()),
        "renewalPrice": s.renewal_price,
        // Seats at the next renewal (multiseat), from the newest renewal info.
        "renewalSeats": s.renewal_quantity,
        // Seat claims the App Store unclaimed (UNCLAIM_SEATS).
        "unclaimedSeatClaimIds": s.unclaimed_seat_claim_ids,
        "refundRequestedDate": s.refund_requested_date,
        "refundDeclinedDate": s.refund_declined_date,
        "lastSignedDate": s.last_signed_date,
        "transactionId": s.current_transaction_id,
        // When Apple's next word is due (e.g. the EXPIRED after a refund
        // comes when the refunded period ends), and Apple's last status answer.
        "nextExpectedEventDate": crate::check::next_expected_event_date(&item.item, s),
        "appleStatusDate": s.apple_status_date,
        // Why the customer asked for a refund (CONSUMPTION_REQUEST), while
        // the request is open.
        "consumptionRequestReason": s.consumption_request_reason,
        // The offer the transaction covering `at` redeemed.
        "offerAt": s.offer_at(&item.item, at),
        "advancedCommerceInfo": s.advanced_commerce_info,
        // The customer: their download of the app, and RESCIND_CONSENT.
        "appTransactionId": s.app_transaction_id,
        "consent": consent,
        "consentRescindedDate": consent_date,
    })
}

/// `GET /v1/subscriptions/{originalTransactionId}[?at=ms]`
pub(super) async fn subscription(
    State(state): State<AppState>,
    Path(original_transaction_id): Path<String>,
    Params(params): Params<AtParams>,
) -> Result<Json<Value>, ApiError> {
    let at = at_or_now(&state, params.at);
    let items = state
        .store
        .ledger_items(&ItemQuery::Subscription(original_transaction_id))
        .await
        .map_err(unavailable)?;
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no such subscription",
        )
    };
    let item = items.first().ok_or_else(not_found)?;
    let item = as_known_at(&state, item, params.known_at)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "nothing about this subscription had been received by knownAt",
            )
        })?;
    let consents = rescinded_consents(&state, std::iter::once(&item.state), None).await?;
    Ok(Json(subscription_json(
        &item,
        at,
        params.known_at,
        &consents,
    )))
}

/// `GET /v1/subscriptions/{originalTransactionId}/history`
pub(super) async fn history(
    State(state): State<AppState>,
    Path(original_transaction_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let history = state
        .store
        .history(&original_transaction_id)
        .await
        .map_err(unavailable)?;
    if history.notifications.is_empty() && history.evidence.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no notification or answer from Apple for this subscription",
        ));
    }
    // The customer's consent, as every answer about them gives it.
    let items = state
        .store
        .ledger_items(&ItemQuery::Subscription(original_transaction_id.clone()))
        .await
        .map_err(unavailable)?;
    let consents = rescinded_consents(&state, items.iter().map(|i| &i.state), None).await?;
    let customer = items
        .first()
        .and_then(|i| i.state.app_transaction_id.as_deref());
    let (consent, consent_date) = consent_of(&consents, customer);
    // Apple's consumption requests, with what was sent and Apple's answer.
    let consumption = state
        .store
        .consumption_requests(&ConsumptionFilter {
            original_transaction_id: Some(original_transaction_id.clone()),
            limit: 1000,
            ..ConsumptionFilter::default()
        })
        .await
        .map_err(unavailable)?;
    let now = state.store.clock().now().as_millis();
    Ok(Json(json!({
        "originalTransactionId": original_transaction_id,
        "appTransactionId": customer,
        "consent": consent,
        "consentRescindedDate": consent_date,
        "notifications": views::all::<_, HistoryView>(&history.notifications),
        "refunds": views::all::<_, RefundView>(&history.refunds),
        "expirations": views::all::<_, ExpirationView>(&history.expirations),
        "appleAnswers": views::all::<_, EvidenceView>(&history.evidence),
        "consumptionRequests": consumption
            .iter()
            .map(|r| super::consumption::request_json(r, now))
            .collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct EntitlementParams {
    app_account_token: Option<String>,
    original_transaction_id: Option<String>,
    transaction_id: Option<String>,
    app_transaction_id: Option<String>,
    at: Option<Millis>,
    known_at: Option<Millis>,
}

/// `GET /v1/entitlements?appAccountToken=|originalTransactionId=|transactionId=[&at=ms][&knownAt=ms]`
pub(super) async fn entitlements(
    State(state): State<AppState>,
    Params(params): Params<EntitlementParams>,
) -> Result<Json<Value>, ApiError> {
    let at = at_or_now(&state, params.at);
    let customer = params.app_transaction_id.clone();
    let query = match (
        params.app_account_token,
        params.original_transaction_id,
        params.transaction_id,
        params.app_transaction_id,
    ) {
        (Some(token), None, None, None) => {
            ItemQuery::AppAccountToken(crate::model::app_account_token_key(&token))
        }
        (None, Some(id), None, None) => ItemQuery::OriginalTransactionId(id),
        (None, None, Some(id), None) => ItemQuery::TransactionId(id),
        (None, None, None, Some(id)) => ItemQuery::AppTransactionId(id),
        _ => {
            return Err(invalid(
                "give exactly one of appAccountToken, originalTransactionId, transactionId, appTransactionId",
            ))
        }
    };
    let items = state
        .store
        .ledger_items(&query)
        .await
        .map_err(unavailable)?;
    let mut known = Vec::with_capacity(items.len());
    for item in &items {
        if let Some(item) = as_known_at(&state, item, params.known_at).await? {
            known.push(item);
        }
    }
    let consents =
        rescinded_consents(&state, known.iter().map(|i| &i.state), customer.as_deref()).await?;
    let entitlements: Vec<Value> = known
        .iter()
        .map(|item| (item, item.state.answer_at(&item.item, at, &state.products)))
        .filter(|(_, answer)| answer.entitled)
        .map(|(item, answer)| {
            let s = &item.state;
            let (consent, consent_date) = consent_of(&consents, s.app_transaction_id.as_deref());
            json!({
                "type": item.item.kind(),
                "productId": answer.product_id,
                "status": answer.status.map(|status| status.as_str()),
                "expiresDate": answer.expires_date,
                "seats": answer.seats,
                "inAppOwnershipType": s.in_app_ownership_type,
                "durationConfigured": answer.duration_configured,
                "originalTransactionId": s.original_transaction_id,
                "transactionId": s.current_transaction_id,
                "bundleId": s.bundle_id,
                "environment": s.environment,
                "offer": answer.offer,
                "appTransactionId": s.app_transaction_id,
                "consent": consent,
                "consentRescindedDate": consent_date,
            })
        })
        .collect();
    // About the customer asked for: the earliest withdrawal among them.
    let rescinded = consents.values().min();
    Ok(Json(json!({
        "at": at,
        "knownAt": params.known_at.map(|Millis(k)| k),
        "consent": rescinded.map(|_| "RESCINDED"),
        "consentRescindedDate": rescinded,
        "entitlements": entitlements,
    })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct FindingParams {
    kind: Option<String>,
    bundle_id: Option<String>,
    open: Option<bool>,
    limit: Option<Limit>,
}

/// `GET /v1/inconsistencies?kind=&bundleId=&open=true|false&limit=`
pub(super) async fn inconsistencies(
    State(state): State<AppState>,
    Params(params): Params<FindingParams>,
) -> Result<Json<Value>, ApiError> {
    let kind = params
        .kind
        .map(|k| {
            crate::check::FindingKind::from_code(&k)
                .map(|k| k.code().to_owned())
                .ok_or_else(|| invalid(format!("unknown kind {k}")))
        })
        .transpose()?;
    let filter = crate::store::FindingFilter {
        kind,
        bundle_id: params.bundle_id,
        open: params.open,
        limit: params.limit.map_or(MAX_LIMIT, Limit::get),
        original_transaction_id: None,
    };
    let findings = state.store.findings(&filter).await.map_err(unavailable)?;
    Ok(Json(
        json!({ "inconsistencies": views::all::<_, FindingView>(&findings) }),
    ))
}

#[derive(Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(super) enum Format {
    #[default]
    Json,
    Csv,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RefundParams {
    original_transaction_id: Option<String>,
    bundle_id: Option<String>,
    product_id: Option<String>,
    from: Option<Millis>,
    to: Option<Millis>,
    environment: Option<String>,
    revocation_reason: Option<Number>,
    reversed: Option<bool>,
    limit: Option<Limit>,
    cursor: Option<String>,
    #[serde(default)]
    format: Format,
}

/// `GET /v1/refunds?bundleId=&productId=&environment=&revocationReason=&reversed=&from=&to=&limit=&cursor=[&format=csv]`
pub(super) async fn refunds(
    State(state): State<AppState>,
    Params(params): Params<RefundParams>,
) -> Result<Response, ApiError> {
    let limit = params.limit.map_or(100, Limit::get);
    let cursor = params
        .cursor
        .map(|c| decode_cursor(&c).ok_or_else(|| invalid("cursor is not one this API gave")))
        .transpose()?;
    let filter = RefundFilter {
        original_transaction_id: params.original_transaction_id,
        bundle_id: params.bundle_id,
        product_id: params.product_id,
        from: params.from.map(|Millis(m)| m),
        to: params.to.map(|Millis(m)| m),
        limit,
        cursor,
        environment: params.environment,
        revocation_reason: params.revocation_reason.map(|Number(r)| r),
        reversed: params.reversed,
    };
    let rows = state.store.refunds(&filter).await.map_err(unavailable)?;
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| rows.last().map(encode_cursor))
        .flatten();
    if params.format == Format::Csv {
        let mut response =
            ([(CONTENT_TYPE, "text/csv; charset=utf-8")], to_csv(&rows)).into_response();
        if let Some(next) = next_cursor.and_then(|c| axum::http::HeaderValue::from_str(&c).ok()) {
            response.headers_mut().insert("x-next-cursor", next);
        }
        return Ok(response);
    }
    Ok(Json(json!({
        "refunds": views::all::<_, RefundView>(&rows),
        "nextCursor": next_cursor,
    }))
    .into_response())
}
