//! The support console's routes: sign-in, sign-out and the pages behind
//! them. Off (404) until a user exists. Sessions live in the database (a
//! cookie holds a random token; the store keeps its SHA-256), every form
//! that changes something carries a CSRF token, and failed sign-ins are
//! limited per user name and per address.

mod account;
mod audit;
mod customer;
mod events;
mod extend;
mod pages;
mod refund_audit;
mod refund_desk;
mod sign_in;
mod svg;

use std::net::SocketAddr;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SecureRandom;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::AppState;
use crate::store::ConsoleSession;

const SESSION_COOKIE: &str = "console_session";
/// Binds the sign-in form to the browser that asked for it.
const LOGIN_COOKIE: &str = "console_login";

/// No inline script or style, nothing from elsewhere, no framing.
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'self'; img-src 'self' data:; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's pages as pure functions of what they show: what the fuzz
/// target renders from extreme and hostile values (no panic, bounded size).
pub mod render {
    pub use super::customer::ItemStory;

    /// A customer's timeline page (its SVG included), as HTML.
    pub fn customer_timeline(subject: &str, stories: &[ItemStory], now: i64) -> String {
        super::customer::timeline_page(subject, stories, now).into_string()
    }

    /// The refund audit page for `rows` (unfiltered), as HTML.
    pub fn refund_audit(rows: &[crate::store::RefundEntry], more: bool) -> String {
        super::refund_audit::refund_page(&super::refund_audit::RefundForm::default(), rows, more)
            .into_string()
    }
}

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(home))
        .route("/console/search", get(customer::search))
        .route("/console/customer", get(customer::customer))
        .route(
            "/console/set-app-account-token",
            post(account::set_app_account_token),
        )
        .route("/console/extend-renewal", post(extend::extend_renewal))
        .route("/console/payload/{id}", get(customer::payload))
        .route("/console/refunds", get(refund_audit::refunds))
        .route("/console/refunds.csv", get(refund_audit::refunds_csv))
        .route("/console/events", get(events::events))
        .route("/console/events/replay", post(events::replay))
        .route("/console/events/resend", post(events::resend))
        .route("/console/refund-desk", get(refund_desk::refund_desk))
        .route("/console/refund-desk/send-now", post(refund_desk::send_now))
        .route(
            "/console/refund-desk/facts",
            post(refund_desk::change_facts),
        )
        .route("/console/findings", get(audit::findings))
        .route("/console/delivery", get(audit::delivery))
        .route("/console/access-log", get(audit::access_log))
        .route("/console/users", get(audit::users))
        .route(
            "/console/login",
            get(sign_in::login_page).post(sign_in::login),
        )
        .route("/console/logout", post(logout))
        .route("/console/style.css", get(style))
        .layer(axum::middleware::from_fn(security_headers))
}

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        pages::STYLE,
    )
}

/// A page that says why, with its status.
fn message(status: StatusCode, title: &str, text: &str) -> Response {
    (status, Html(pages::message(title, text).into_string())).into_response()
}

fn unavailable() -> Response {
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Unavailable",
        "The database did not answer; try again in a moment.",
    )
}

fn console_off() -> Response {
    message(
        StatusCode::NOT_FOUND,
        "The console is off",
        "No user exists yet: add one with `appstore-ledger user add`.",
    )
}

/// 32 random bytes, URL-safe.
fn random_token() -> Option<String> {
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut bytes).ok()?;
    Some(URL_SAFE_NO_PAD.encode(bytes))
}

fn sha256_hex(token: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then_some(value)
        })
}

/// `name=value` with the flags every console cookie has; `Secure` when the
/// service speaks TLS itself.
fn set_cookie(state: &AppState, name: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
    let mut text = format!("{name}={value}; Path=/console; HttpOnly; SameSite=Strict");
    if let Some(seconds) = max_age {
        text.push_str(&format!("; Max-Age={seconds}"));
    }
    if state.console.secure_cookies {
        text.push_str("; Secure");
    }
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The client's address: the peer's, or behind a load balancer the last
/// entry of the header it appends to (earlier entries are the client's own
/// word).
fn client_address(state: &AppState, headers: &HeaderMap, peer: SocketAddr) -> String {
    let forwarded = state
        .console
        .client_address_header
        .as_ref()
        .and_then(|name| {
            let value = headers.get_all(name).iter().next_back()?.to_str().ok()?;
            let last = value.rsplit(',').next()?.trim();
            last.parse::<std::net::IpAddr>().ok()
        });
    forwarded.unwrap_or(peer.ip()).to_string()
}

/// The request's session, if it has one that is still alive.
async fn session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<ConsoleSession>, Response> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let now = state.store.clock().now().as_millis();
    let minutes = |m: u64| i64::try_from(m).unwrap_or(i64::MAX).saturating_mul(60_000);
    let settings = &state.console.settings;
    let idle_since = now.saturating_sub(minutes(settings.session_idle_minutes));
    let created_since = now.saturating_sub(minutes(settings.session_max_minutes));
    state
        .store
        .console_session(&sha256_hex(token), idle_since, created_since, now)
        .await
        .map_err(|_| unavailable())
}

async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match session(&state, &headers).await {
        Ok(Some(session)) => Html(pages::search(&session, "", None).into_string()).into_response(),
        Ok(None) => Redirect::to("/console/login").into_response(),
        Err(response) => response,
    }
}

/// Who may open a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Audience {
    /// Support and admins.
    Staff,
    Admins,
}

/// The signed-in agent, once the page they open (`page`, about `subject`)
/// is written to the access log; otherwise the answer to give instead. The
/// page is not shown when the log cannot be written: every access to
/// personal purchase data is audited. A support user asking for an admin
/// page is refused, and that is logged too.
async fn open_page(
    state: &AppState,
    headers: &HeaderMap,
    audience: Audience,
    page: &str,
    subject: &str,
) -> Result<ConsoleSession, Response> {
    let session = match session(state, headers).await? {
        Some(session) => session,
        None => return Err(Redirect::to("/console/login").into_response()),
    };
    let refused = audience == Audience::Admins && session.role != "admin";
    let entry = crate::store::AccessEntry {
        id: 0,
        at: state.store.clock().now().as_millis(),
        user_name: session.user_name.clone(),
        page: if refused {
            format!("{page} (refused)")
        } else {
            page.to_owned()
        },
        // A subject is what an agent typed or followed: bounded, so that the
        // log cannot be made to grow by a long query.
        subject: subject.chars().take(500).collect(),
    };
    if let Err(e) = state.store.note_console_access(&entry).await {
        tracing::error!(error = %e.chain(), "console access not logged; page refused");
        return Err(unavailable());
    }
    if refused {
        return Err(message(
            StatusCode::FORBIDDEN,
            "Admins only",
            "This page is for console admins.",
        ));
    }
    Ok(session)
}

/// As [`open_page`], for a form that acts (asks Apple): also refused when
/// the form did not come from this console (its CSRF token).
async fn open_action(
    state: &AppState,
    headers: &HeaderMap,
    audience: Audience,
    page: &str,
    subject: &str,
    csrf: &str,
) -> Result<ConsoleSession, Response> {
    let session = open_page(state, headers, audience, page, subject).await?;
    if !same(&session.csrf_token, csrf) {
        return Err(message(
            StatusCode::FORBIDDEN,
            "Refused",
            "The form did not come from this console.",
        ));
    }
    Ok(session)
}

/// A page shown to a signed-in agent.
fn show(title: &str, session: &ConsoleSession, body: maud::Markup) -> Response {
    Html(pages::page(title, Some(session), body).into_string()).into_response()
}

#[derive(Deserialize)]
struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Response {
    let session = match session(&state, &headers).await {
        Ok(Some(session)) => session,
        Ok(None) => return Redirect::to("/console/login").into_response(),
        Err(response) => return response,
    };
    if !same(&session.csrf_token, &form.csrf) {
        return message(
            StatusCode::FORBIDDEN,
            "Refused",
            "The form did not come from this console.",
        );
    }
    let Some(token) = cookie(&headers, SESSION_COOKIE) else {
        return Redirect::to("/console/login").into_response();
    };
    if state
        .store
        .delete_console_session(&sha256_hex(token))
        .await
        .is_err()
    {
        return unavailable();
    }
    let mut response = Redirect::to("/console/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, SESSION_COOKIE, "", Some(0)),
    );
    response
}
