//! The query API for backend services and support staff: subscriptions,
//! entitlements, history and refunds. JSON in Apple's camelCase names and
//! millisecond timestamps. Every answer reads committed state.

use std::collections::HashMap;

use axum::extract::{Path, Query, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::digest::{digest, SHA256};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};
use crate::ledger::{ItemKey, State as LedgerState};
use crate::model::Timestamp;
use crate::store::{ItemQuery, LedgerItem, RefundEntry, RefundFilter, StoreError};

/// Requires `Authorization: Bearer <token>` with one of `[api] tokens`.
pub(super) async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let authorized = presented.is_some_and(|presented| {
        // Comparing digests keeps the comparison constant-time whatever the
        // lengths; every configured token is compared, match or not.
        let presented = digest(&SHA256, presented.as_bytes());
        state.api_tokens.iter().fold(false, |found, token| {
            let expected = digest(&SHA256, token.expose_secret().as_bytes());
            found | bool::from(presented.as_ref().ct_eq(expected.as_ref()))
        })
    });
    if !authorized {
        let mut response = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "a valid bearer token from [api] tokens is required",
        )
        .into_response();
        response.headers_mut().insert(
            "www-authenticate",
            axum::http::HeaderValue::from_static("Bearer"),
        );
        return response;
    }
    next.run(request).await
}

fn unavailable(e: StoreError) -> ApiError {
    ApiError::database_unavailable(&e)
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "INVALID_QUERY", message)
}

fn parse_millis(params: &HashMap<String, String>, name: &str) -> Result<Option<i64>, ApiError> {
    params
        .get(name)
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| invalid(format!("{name} must be milliseconds since 1970")))
        })
        .transpose()
}

fn at(params: &HashMap<String, String>) -> Result<i64, ApiError> {
    Ok(parse_millis(params, "at")?.unwrap_or_else(|| Timestamp::now().as_millis()))
}

fn subscription_json(item: &LedgerItem, at: i64) -> Value {
    let s: &LedgerState = &item.state;
    json!({
        "originalTransactionId": item.item.id(),
        "status": s.status.as_str(),
        "entitled": s.entitled_at(&item.item, at),
        "at": at,
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
        "refundRequestedDate": s.refund_requested_date,
        "refundDeclinedDate": s.refund_declined_date,
        "lastSignedDate": s.last_signed_date,
        "transactionId": s.current_transaction_id,
    })
}

/// `GET /v1/subscriptions/{originalTransactionId}[?at=ms]`
pub(super) async fn subscription(
    State(state): State<AppState>,
    Path(original_transaction_id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let at = at(&params)?;
    let items = state
        .store
        .ledger_items(&ItemQuery::Subscription(original_transaction_id))
        .await
        .map_err(unavailable)?;
    let item = items
        .first()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such subscription"))?;
    Ok(Json(subscription_json(item, at)))
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
    if history.notifications.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "no notification for this subscription",
        ));
    }
    let (entries, refunds, expirations) =
        (history.notifications, history.refunds, history.expirations);
    Ok(Json(json!({
        "originalTransactionId": original_transaction_id,
        "notifications": entries,
        "refunds": refunds,
        "expirations": expirations,
    })))
}

/// `GET /v1/entitlements?appAccountToken=|originalTransactionId=|transactionId=[&at=ms]`
pub(super) async fn entitlements(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let at = at(&params)?;
    let mut given = [
        (
            "appAccountToken",
            ItemQuery::AppAccountToken as fn(String) -> ItemQuery,
        ),
        ("originalTransactionId", ItemQuery::OriginalTransactionId),
        ("transactionId", ItemQuery::TransactionId),
    ]
    .into_iter()
    .filter_map(|(name, query)| params.get(name).map(|v| query(v.clone())));
    let (Some(query), None) = (given.next(), given.next()) else {
        return Err(invalid(
            "give exactly one of appAccountToken, originalTransactionId, transactionId",
        ));
    };
    let items = state
        .store
        .ledger_items(&query)
        .await
        .map_err(unavailable)?;
    let entitlements: Vec<Value> = items
        .iter()
        .filter(|item| item.state.entitled_at(&item.item, at))
        .map(|item| {
            let s = &item.state;
            json!({
                "type": item.item.kind(),
                "productId": s.product_id,
                "status": s.status.as_str(),
                "expiresDate": match item.item {
                    ItemKey::Subscription(_) => s.expires_date(),
                    ItemKey::Purchase(_) => None,
                },
                "originalTransactionId": s.original_transaction_id,
                "transactionId": s.current_transaction_id,
                "bundleId": s.bundle_id,
                "environment": s.environment,
            })
        })
        .collect();
    Ok(Json(json!({ "at": at, "entitlements": entitlements })))
}

const MAX_LIMIT: i64 = 1000;

/// `GET /v1/inconsistencies?kind=&bundleId=&open=true|false&limit=`
pub(super) async fn inconsistencies(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let kind = params
        .get("kind")
        .map(|k| {
            crate::check::FindingKind::from_code(k)
                .map(|k| k.code().to_owned())
                .ok_or_else(|| invalid(format!("unknown kind {k}")))
        })
        .transpose()?;
    let open = match params.get("open").map(String::as_str) {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(invalid("open must be true or false")),
    };
    let limit = match params.get("limit") {
        None => MAX_LIMIT,
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| invalid(format!("limit must be 1 to {MAX_LIMIT}")))?,
    };
    let filter = crate::store::FindingFilter {
        kind,
        bundle_id: params.get("bundleId").cloned(),
        open,
        limit,
    };
    let findings = state.store.findings(&filter).await.map_err(unavailable)?;
    Ok(Json(json!({ "inconsistencies": findings })))
}

fn encode_cursor(entry: &RefundEntry) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", entry.refund_date, entry.notification_uuid))
}

fn decode_cursor(cursor: &str) -> Option<(i64, String)> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    let (date, uuid) = text.split_once(':')?;
    Some((date.parse().ok()?, uuid.to_owned()))
}

/// `GET /v1/refunds?bundleId=&productId=&from=&to=&limit=&cursor=[&format=csv]`
pub(super) async fn refunds(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let limit = match params.get("limit") {
        None => 100,
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| invalid(format!("limit must be 1 to {MAX_LIMIT}")))?,
    };
    let cursor = params
        .get("cursor")
        .map(|c| decode_cursor(c).ok_or_else(|| invalid("cursor is not one this API gave")))
        .transpose()?;
    let csv = match params.get("format").map(String::as_str) {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(invalid("format must be json or csv")),
    };
    let filter = RefundFilter {
        original_transaction_id: params.get("originalTransactionId").cloned(),
        bundle_id: params.get("bundleId").cloned(),
        product_id: params.get("productId").cloned(),
        from: parse_millis(&params, "from")?,
        to: parse_millis(&params, "to")?,
        limit,
        cursor,
    };
    let rows = state.store.refunds(&filter).await.map_err(unavailable)?;
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| rows.last().map(encode_cursor))
        .flatten();
    if csv {
        let mut response =
            ([(CONTENT_TYPE, "text/csv; charset=utf-8")], to_csv(&rows)).into_response();
        if let Some(next) = next_cursor.and_then(|c| axum::http::HeaderValue::from_str(&c).ok()) {
            response.headers_mut().insert("x-next-cursor", next);
        }
        return Ok(response);
    }
    Ok(Json(json!({ "refunds": rows, "nextCursor": next_cursor })).into_response())
}

const CSV_COLUMNS: [&str; 17] = [
    "notificationUUID",
    "notificationType",
    "transactionId",
    "originalTransactionId",
    "productId",
    "bundleId",
    "environment",
    "revocationDate",
    "revocationReason",
    "revocationType",
    "revocationPercentage",
    "price",
    "currency",
    "signedDate",
    "refundDate",
    "reversedAt",
    "reversedByNotificationUUID",
];

fn to_csv(rows: &[RefundEntry]) -> String {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    // Writing to memory cannot fail; a row that somehow did is left out
    // rather than answered half.
    let _ = writer.write_record(CSV_COLUMNS);
    for row in rows {
        let value = serde_json::to_value(row).unwrap_or(Value::Null);
        let cells =
            CSV_COLUMNS
                .iter()
                .map(|column| match value.get(column).unwrap_or(&Value::Null) {
                    Value::Null => String::new(),
                    Value::String(s) => defuse(s),
                    other => other.to_string(),
                });
        let _ = writer.write_record(cells);
    }
    writer
        .into_inner()
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_default()
}

/// A leading formula character is defused so that a spreadsheet shows the
/// text instead of running it.
fn defuse(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_garbage() {
        let entry = RefundEntry {
            notification_uuid: "u-1".into(),
            notification_type: "REFUND".into(),
            transaction_id: None,
            original_transaction_id: "1".into(),
            product_id: None,
            bundle_id: None,
            environment: None,
            revocation_date: Some(5),
            revocation_reason: None,
            revocation_type: None,
            revocation_percentage: None,
            price: None,
            currency: None,
            signed_date: 6,
            refund_date: 5,
            reversed_at: None,
            reversed_by: None,
        };
        assert_eq!(
            decode_cursor(&encode_cursor(&entry)),
            Some((5, "u-1".into()))
        );
        assert_eq!(decode_cursor("!!"), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode("x:y")), None);
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let entry = RefundEntry {
            notification_uuid: "u-1".into(),
            notification_type: "REFUND".into(),
            transaction_id: Some("a,b".into()),
            original_transaction_id: "1".into(),
            product_id: Some("say \"hi\"".into()),
            bundle_id: Some("=SUM(A1)".into()),
            environment: Some("Sandbox".into()),
            revocation_date: Some(5),
            revocation_reason: None,
            revocation_type: None,
            revocation_percentage: None,
            price: Some(9990),
            currency: Some("@cmd".into()),
            signed_date: 6,
            refund_date: 5,
            reversed_at: None,
            reversed_by: None,
        };
        let csv = to_csv(&[entry]);
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines[0], CSV_COLUMNS.join(","));
        assert_eq!(
            lines[1],
            "u-1,REFUND,\"a,b\",1,\"say \"\"hi\"\"\",'=SUM(A1),Sandbox,5,,,,9990,'@cmd,6,5,,"
        );
        assert_eq!(lines[2], "");
    }
}
