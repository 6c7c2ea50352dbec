//! The query API's parameters: each decoded from the query string or
//! refused with `INVALID_QUERY`, saying what was expected.

use axum::extract::Query;
use axum::http::StatusCode;
use serde::Deserialize;

use super::{ApiError, ErrorCode};

/// The most rows a page holds.
pub(super) const MAX_LIMIT: i64 = 1000;

pub(super) fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidQuery, message)
}

/// Query parameters, decoded or refused with `INVALID_QUERY` (axum's own
/// rejection would be plain text without a stable code).
pub(super) struct Params<T>(pub(super) T);

impl<T, S> axum::extract::FromRequestParts<S> for Params<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(params)| Params(params))
            .map_err(|rejection| invalid(rejection.body_text()))
    }
}

/// How many rows a page holds: 1 to [`MAX_LIMIT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Limit(i64);

impl Limit {
    pub(super) fn get(self) -> i64 {
        self.0
    }
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .map(Limit)
            .ok_or_else(|| serde::de::Error::custom(format!("limit must be 1 to {MAX_LIMIT}")))
    }
}

/// A whole number from a query string (serde reads every query value as
/// text), or the error that says what was expected.
fn whole_number<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
    expected: &'static str,
) -> Result<i64, D::Error> {
    String::deserialize(deserializer)?
        .parse::<i64>()
        .map_err(|_| serde::de::Error::custom(expected))
}

/// Milliseconds since 1970, as the query API takes every moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Millis(pub(super) i64);

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        whole_number(deserializer, "expected milliseconds since 1970").map(Millis)
    }
}

/// A whole number, such as Apple's `revocationReason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Number(pub(super) i64);

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        whole_number(deserializer, "expected a whole number").map(Number)
    }
}

/// `?at=ms` (default now) and `knownAt=ms`: the answer the service would
/// have given at `knownAt`, from the notifications received by then.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AtParams {
    pub(super) at: Option<Millis>,
    pub(super) known_at: Option<Millis>,
}
