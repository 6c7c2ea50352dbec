//! Who may ask: the query API's bearer tokens, compared in constant time,
//! and the answer time observed per route on the way out.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ring::digest::{digest, SHA256};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use super::error_code::ErrorCode;
use super::{ApiError, AppState};

/// Requires `Authorization: Bearer <token>` with one of `[api] tokens`, and
/// observes the answer time by matched route (one layer, not two: every
/// query pays for each).
pub(super) async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let started = std::time::Instant::now();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .cloned();
    let response = authorized(&state, request, next).await;
    let route = route
        .as_ref()
        .map_or("", axum::extract::MatchedPath::as_str);
    state.metrics.query(route, started.elapsed());
    response
}

/// The token of the one `Authorization: Bearer <token>` header. The scheme
/// is case-insensitive (RFC 7235); two Authorization headers are refused,
/// since proxies and servers may disagree on which one counts.
pub(super) fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next()?.to_str().ok()?;
    if values.next().is_some() {
        return None;
    }
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

async fn authorized(state: &AppState, request: Request, next: Next) -> Response {
    let presented = bearer_token(request.headers());
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
            ErrorCode::Unauthorized,
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
