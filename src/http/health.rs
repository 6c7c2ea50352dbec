use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::{ApiError, AppState};

/// 200 only when the database answers.
pub(super) async fn health(
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    match tokio::time::timeout(state.store_timeout, state.store.health()).await {
        Ok(Ok(())) => Ok(Json(json!({"status": "ok"}))),
        Ok(Err(e)) => Err(ApiError::database_unavailable(e.to_string())),
        Err(_) => Err(ApiError::database_unavailable(
            "the database did not answer in time",
        )),
    }
}

/// Counters by outcome and reason, and stored totals, for monitoring.
pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    let counts = state.store.counts().await.unwrap_or_default();
    let gauges = [
        (
            "appstore_ledger_stored_notifications",
            "notifications stored",
            counts.notifications,
        ),
        (
            "appstore_ledger_quarantined_notifications",
            "notifications in quarantine",
            counts.quarantined,
        ),
    ];
    let mut text = state.metrics.render(&gauges);
    let open = state
        .store
        .open_findings_by_kind()
        .await
        .unwrap_or_default();
    text.push_str(
        "# HELP appstore_ledger_open_findings open findings of the inconsistency checker\n",
    );
    text.push_str("# TYPE appstore_ledger_open_findings gauge\n");
    for kind in crate::check::FindingKind::ALL {
        let count = open
            .iter()
            .find(|(k, _)| k == kind.code())
            .map_or(0, |(_, n)| *n);
        text.push_str(&format!(
            "appstore_ledger_open_findings{{kind=\"{}\"}} {count}\n",
            kind.code()
        ));
    }
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
