use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::{ApiError, AppState};
use crate::store::StoreError;

/// 200 only when the database answers.
pub(super) async fn health(
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    match tokio::time::timeout(state.store_timeout, state.store.health()).await {
        Ok(Ok(())) => Ok(Json(json!({"status": "ok"}))),
        Ok(Err(e)) => Err(ApiError::database_unavailable(&e)),
        Err(_) => Err(ApiError::database_unavailable(&StoreError::Unavailable(
            "the database did not answer in time".into(),
        ))),
    }
}

/// Counters by outcome and reason, stored totals and open findings, for
/// monitoring. When the database does not answer, the totals are left out
/// and `appstore_ledger_database_up` is 0: zeros would read as an empty
/// database.
pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    let counts = state.store.counts().await;
    let open = state.store.open_findings_by_kind().await;
    let up = i64::from(counts.is_ok() && open.is_ok());
    let mut gauges = vec![(
        "appstore_ledger_database_up",
        "1 when the database answered this scrape, 0 when it did not",
        up,
    )];
    match &counts {
        Ok(counts) => gauges.extend([
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
        ]),
        Err(error) => tracing::warn!(%error, "metrics: the database did not answer"),
    }
    let mut text = state.metrics.render(&gauges);
    if let Ok(open) = open {
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
    }
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
