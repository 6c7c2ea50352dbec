//! `GET /v1/events`: the entitlement events, for consumers that pull. One
//! global order, followed by an opaque cursor that stays valid across
//! instances and restarts until retention removes what it points into.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error_code::ErrorCode;
use super::params::{invalid, Limit, Params};
use super::{ApiError, AppState};
use crate::ledger::event_kinds;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FeedQuery {
    after: Option<String>,
    limit: Option<Limit>,
    /// Comma-separated kinds.
    types: Option<String>,
}

/// A cursor: the feed position `txid-id` of the last event read.
fn parse_cursor(text: &str) -> Option<(i64, i64)> {
    let (txid, id) = text.split_once('-')?;
    let position = (txid.parse().ok()?, id.parse().ok()?);
    (position.0 >= 0 && position.1 >= 0).then_some(position)
}

fn cursor((txid, id): (i64, i64)) -> String {
    format!("{txid}-{id}")
}

pub(super) async fn feed(
    State(state): State<AppState>,
    Params(q): Params<FeedQuery>,
) -> Result<Json<Value>, ApiError> {
    let after = match q.after.as_deref() {
        None | Some("") => None,
        Some(text) => Some(
            parse_cursor(text)
                .ok_or_else(|| invalid("after is a cursor the feed gave (nextCursor)"))?,
        ),
    };
    let limit = q.limit.map_or(100, Limit::get);
    let types: Vec<&str> = q
        .types
        .as_deref()
        .map(|t| {
            t.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if let Some(unknown) = types.iter().find(|t| !event_kinds::ALL.contains(t)) {
        return Err(invalid(format!(
            "types: {unknown:?} is not one of {}",
            event_kinds::ALL.join(", ")
        )));
    }
    let unavailable = |e: crate::store::StoreError| ApiError::database_unavailable(&e);
    if let (Some(after), Some(pruned)) = (
        after,
        state.store.events_pruned().await.map_err(unavailable)?,
    ) {
        if after < pruned {
            return Err(ApiError::new(
                StatusCode::GONE,
                ErrorCode::CursorExpired,
                "events after this cursor were removed (events.retention_days): read again from the start, without after",
            ));
        }
    }
    let start = after.unwrap_or((0, 0));
    let events = state
        .store
        .events_after(start, limit, &types)
        .await
        .map_err(unavailable)?;
    let next = events.last().map_or(start, |e| (e.txid, e.id));
    let events: Vec<Value> = events
        .iter()
        .map(|e| serde_json::from_str(&e.data).unwrap_or(Value::Null))
        .collect();
    Ok(Json(json!({
        "events": events,
        "nextCursor": cursor(next),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        assert_eq!(parse_cursor(&cursor((0, 17))), Some((0, 17)));
        assert_eq!(parse_cursor("12-9223372036854775807"), Some((12, i64::MAX)));
        for bad in [
            "",
            "-",
            "1",
            "a-b",
            "-1-2",
            "1--2",
            "1-2-3",
            "99999999999999999999-1",
        ] {
            assert_eq!(parse_cursor(bad), None, "{bad}");
        }
    }
}
