//! The HTTP interface: routes, shared state, and the error answer format.

// Values from outside (dates, prices, counts Apple signed or a request
// sent) pass through here: arithmetic is checked or saturating, so that no
// value can overflow into a panic or a wrapped answer; an exception says
// why it cannot overflow.
#![warn(clippy::arithmetic_side_effects)]

mod auth;
mod connections;
pub mod error_code;

pub use error_code::ErrorCode;
mod console;
pub mod consumption;
mod events;
mod export;
mod health;
mod params;
mod query;
mod rejections;
mod transactions;

pub use connections::ConnectionLimits;
pub use console::render as console_render;
pub use rejections::{spawn_flusher, RejectionTally};
pub use transactions::ReportLimiter;
mod views;
mod webhook;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use secrecy::SecretString;
use serde_json::json;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::ingest::Ingest;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub ingest: Arc<Ingest>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// How long a handler waits for the database before answering 503.
    pub store_timeout: Duration,
    /// Bearer tokens accepted by the query API.
    pub api_tokens: Arc<Vec<SecretString>>,
    /// How long each non-renewing product lasts.
    pub products: Arc<crate::ledger::Products>,
    /// To ask Apple about a reported transaction id or receipt.
    pub appstore_api: Arc<crate::appstore_api::AppStoreApi>,
    /// Each app's `[apps.consumption]`, by bundle id: what the refund desk
    /// will send.
    pub consumption_policies: Arc<std::collections::HashMap<String, crate::consumption::Policy>>,
    /// Reports per token and minute.
    pub report_limiter: Arc<transactions::ReportLimiter>,
    pub console: Arc<ConsoleState>,
    /// Refused deliveries, counted for the console's delivery health page.
    pub rejections: Arc<RejectionTally>,
    /// Where entitlement events go: the console's events page replays by
    /// each sink's filters.
    pub events: Arc<crate::config::EventsSettings>,
}

/// What the console's routes need besides the store.
#[derive(Debug)]
pub struct ConsoleState {
    pub settings: crate::config::ConsoleSettings,
    /// The service speaks TLS itself: cookies are marked `Secure`, and
    /// answers carry `Strict-Transport-Security`.
    pub secure_cookies: bool,
    /// Where a load balancer puts the client's address (its last entry).
    pub client_address_header: Option<axum::http::HeaderName>,
    /// Signs the sign-in form's token: the key every instance shares, read
    /// (or made) on the first sign-in, not at start-up, so that a service
    /// on a database it cannot write to yet still starts and says so.
    login_key: tokio::sync::OnceCell<ring::hmac::Key>,
    /// Sign-ins checking a password or waiting to: beyond its permits, 429.
    sign_ins: tokio::sync::Semaphore,
    /// Passwords checked at once.
    password_checks: tokio::sync::Semaphore,
}

impl ConsoleState {
    pub fn new(
        settings: crate::config::ConsoleSettings,
        secure_cookies: bool,
        client_address_header: Option<axum::http::HeaderName>,
    ) -> ConsoleState {
        let checks = settings.password_checks_at_once;
        let waiting = settings.password_checks_waiting;
        ConsoleState {
            sign_ins: tokio::sync::Semaphore::new(checks.saturating_add(waiting)),
            password_checks: tokio::sync::Semaphore::new(checks),
            login_key: tokio::sync::OnceCell::new(),
            settings,
            secure_cookies,
            client_address_header,
        }
    }
}

/// Every route; `/metrics` too unless it has a listener of its own
/// (`with_metrics` false, see [`metrics_router`]).
pub fn router(
    state: AppState,
    max_body_bytes: usize,
    request_timeout: Duration,
    with_metrics: bool,
) -> Router {
    let request_id = axum::http::HeaderName::from_static("x-request-id");
    let queries = Router::new()
        .route(
            "/v1/subscriptions/{original_transaction_id}",
            get(query::subscription),
        )
        .route(
            "/v1/subscriptions/{original_transaction_id}/history",
            get(query::history),
        )
        .route("/v1/entitlements", get(query::entitlements))
        .route("/v1/refunds", get(query::refunds))
        .route("/v1/inconsistencies", get(query::inconsistencies))
        .route("/v1/transactions", post(transactions::report))
        .route(
            "/v1/customers/{app_account_token}/consent",
            put(consumption::set_consent),
        )
        .route(
            "/v1/transactions/{transaction_id}/consumption",
            put(consumption::set_facts),
        )
        .route("/v1/consumption-requests", get(consumption::requests))
        .route("/v1/events", get(events::feed))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    let mut routes = Router::new()
        .merge(queries)
        .merge(console::routes())
        .route("/v2/notifications", post(webhook::receive))
        .route("/health", get(health::health));
    if with_metrics {
        routes = routes.route("/metrics", get(health::metrics));
    }
    let tls = state.console.secure_cookies;
    routes
        .fallback(not_found)
        .layer(axum::middleware::from_fn(refuse_nul))
        .layer(axum::middleware::from_fn(move |request, next| {
            common_headers(tls, request, next)
        }))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn(move |request, next| {
            refuse_oversized(max_body_bytes, request, next)
        }))
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                        let route = request
                            .extensions()
                            .get::<MatchedPath>()
                            .map(MatchedPath::as_str)
                            .unwrap_or("unmatched");
                        let request_id = request
                            .headers()
                            .get("x-request-id")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        tracing::info_span!(
                            "request",
                            method = %request.method(),
                            route,
                            request_id,
                            notification_uuid = tracing::field::Empty,
                            notification_type = tracing::field::Empty,
                        )
                    }),
                )
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    request_timeout,
                )),
        )
}

/// `/metrics` alone, for `server.metrics_listen`.
pub fn metrics_router(state: AppState, request_timeout: Duration) -> Router {
    Router::new()
        .route("/metrics", get(health::metrics))
        .fallback(not_found)
        .with_state(state)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
}

/// A declared `Content-Length` over the limit is refused before any of the
/// body is read: at once rather than after the request timeout, and before
/// an `Expect: 100-continue` client is told to send it.
async fn refuse_oversized(
    max_body_bytes: usize,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > max_body_bytes as u64) {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("the body may be at most {max_body_bytes} bytes"),
        )
        .into_response();
    }
    next.run(request).await
}

/// A NUL byte (`%00`) in the path or the query is refused before any
/// handler sees it: no name, id or filter holds one, and PostgreSQL's text
/// cannot, so it would otherwise reach the database and fail there (503).
async fn refuse_nul(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let uri = request.uri();
    let has_nul = |text: &str| {
        text.as_bytes()
            .windows(3)
            .any(|w| w.eq_ignore_ascii_case(b"%00"))
    };
    if has_nul(uri.path()) || uri.query().is_some_and(has_nul) {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidQuery,
            "a NUL byte (%00) is not accepted in a path or a query",
        )
        .into_response();
    }
    next.run(request).await
}

/// Every answer: not to be cached (entitlements, refunds and console pages
/// are about customers and change at any moment), and when the service
/// speaks TLS itself, to be asked for over HTTPS only from now on.
async fn common_headers(
    tls: bool,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if !headers.contains_key(axum::http::header::CACHE_CONTROL) {
        headers.insert(
            axum::http::header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        );
    }
    if tls {
        headers.insert(
            axum::http::header::STRICT_TRANSPORT_SECURITY,
            axum::http::HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such route")
}

/// An error answer: `{"error": {"code": ..., "message": ...}}`. The code is
/// stable and machine-readable; the message is for people.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// The database failed. Its own words (file paths, SQL) go to the log,
    /// never to the client, which gets the stable code only.
    pub fn database_unavailable(error: &StoreError) -> Self {
        tracing::error!(error = %error.chain(), "database unavailable");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::DatabaseUnavailable,
            "the database is unavailable; retry later",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code.as_str(), "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}
