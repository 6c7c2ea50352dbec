use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::{ApiError, AppState};
use crate::metrics::StoredTotals;
use crate::store::StoreError;

/// 200 only when the database answers.
pub(super) async fn health(
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    match tokio::time::timeout(state.store_timeout, state.store.health()).await {
        Ok(Ok(())) => Ok(Json(json!({"status": "ok"}))),
        Ok(Err(e)) => Err(ApiError::database_unavailable(&e)),
        Err(_) => Err(ApiError::database_unavailable(&StoreError::TimedOut)),
    }
}

/// Counters by outcome and reason, latencies, stored totals and open
/// findings, for monitoring. The totals are kept by the writes themselves,
/// so a scrape costs the same at any size. When the database does not
/// answer, they are left out and `appstore_ledger_database_up` is 0: zeros
/// would read as an empty database.
pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    let pending = state.store.endpoints_health().await;
    let totals = match (state.store.totals().await, pending) {
        (Ok(totals), Ok(endpoints)) => Some(StoredTotals {
            events_pending: endpoints.into_iter().map(|e| (e.name, e.pending)).collect(),
            notifications: totals.notifications,
            quarantined: totals.quarantined,
            open_findings: crate::check::FindingKind::ALL
                .iter()
                .map(|kind| {
                    let count = totals
                        .open_findings
                        .iter()
                        .find(|(k, _)| k == kind.code())
                        .map_or(0, |(_, n)| *n);
                    (kind.code().to_owned(), count)
                })
                .collect(),
        }),
        (Err(error), _) | (_, Err(error)) => {
            tracing::warn!(error = %error.chain(), "metrics: the database did not answer");
            None
        }
    };
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(totals.as_ref()),
    )
        .into_response()
}
