//! Signing in. The form carries a token the service signed (and the same
//! token in a cookie of its own), so that only a form this service served
//! to this browser, lately, can be posted. A password is checked only
//! after the attempt is reserved against the failure limit, and only a few
//! at once: argon2id costs 19 MiB and a core's time per check, and neither
//! a crowd of attempts nor a crowd of attackers may multiply that.

use std::net::SocketAddr;
use std::sync::OnceLock;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;
use serde::Deserialize;

use super::{
    client_address, console_off, cookie, pages, random_token, same, session, set_cookie,
    sha256_hex, unavailable, AppState, LOGIN_COOKIE, SESSION_COOKIE,
};
use crate::console::users::{check_name, failure_key, hash_password, verify_password};

/// Failed sign-ins are counted over this window.
const FAILURE_WINDOW_MS: i64 = 15 * 60 * 1000;
/// A sign-in form older than this is refused: fill in a fresh one.
const FORM_LIFETIME_MS: i64 = 60 * 60 * 1000;
/// How far ahead of this instance's clock another instance's may be.
const CLOCK_SKEW_MS: i64 = 60 * 1000;

/// The name under which the sign-in form key is stored.
const LOGIN_KEY_NAME: &str = "login_form_hmac_sha256";

/// The key that signs sign-in forms: the one every instance shares, made
/// by whichever asks first; `None` when the database cannot give it.
async fn login_key(state: &AppState) -> Option<&hmac::Key> {
    state
        .console
        .login_key
        .get_or_try_init(|| async {
            let fresh = random_token().ok_or(())?;
            let secret = state
                .store
                .console_secret(LOGIN_KEY_NAME, &fresh)
                .await
                .map_err(
                    |e| tracing::error!(error = %e.chain(), "console sign-in key unavailable"),
                )?;
            Ok::<_, ()>(hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()))
        })
        .await
        .ok()
}

/// A fresh form token: `{issued_at}.{nonce}.{mac}`, the MAC over the first
/// two with the key every instance shares.
fn issue_form_token(key: &hmac::Key, now: i64) -> Option<String> {
    let signed = format!("{now}.{}", random_token()?);
    let mac = hmac::sign(key, signed.as_bytes());
    Some(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref())))
}

/// Whether `token` is one [`issue_form_token`] made with `key` within the
/// form's lifetime before `now`.
fn form_token_valid(key: &hmac::Key, token: &str, now: i64) -> bool {
    let Some((signed, mac)) = token.rsplit_once('.') else {
        return false;
    };
    let Ok(mac) = URL_SAFE_NO_PAD.decode(mac) else {
        return false;
    };
    if hmac::verify(key, signed.as_bytes(), &mac).is_err() {
        return false;
    }
    let issued = signed
        .split_once('.')
        .and_then(|(issued, _)| issued.parse::<i64>().ok());
    issued.is_some_and(|issued| {
        issued <= now.saturating_add(CLOCK_SKEW_MS)
            && now.saturating_sub(issued) <= FORM_LIFETIME_MS
    })
}

/// The sign-in form with a fresh signed token, bound to a cookie of its own.
async fn login_form(
    state: &AppState,
    status: StatusCode,
    user_name: &str,
    error: Option<&str>,
) -> Response {
    let now = state.store.clock().now().as_millis();
    let token = match login_key(state).await {
        Some(key) => issue_form_token(key, now),
        None => None,
    };
    let Some(token) = token else {
        return unavailable();
    };
    let mut response = (
        status,
        Html(pages::login(&token, user_name, error).into_string()),
    )
        .into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(state, LOGIN_COOKIE, &token, None),
    );
    response
}

pub(super) async fn login_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match state.store.has_console_users().await {
        Ok(true) => {}
        Ok(false) => return console_off(),
        Err(_) => return unavailable(),
    }
    match session(&state, &headers).await {
        Ok(Some(_)) => Redirect::to("/console").into_response(),
        Ok(None) => login_form(&state, StatusCode::OK, "", None).await,
        Err(response) => response,
    }
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// A hash to verify against when the user does not exist, so that a
/// missing user takes as long as a wrong password. Made on first use, on
/// the blocking pool like every check.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password, never a user's").unwrap_or_default())
}

/// Checks `password` against `hash` (or, without one, against the decoy,
/// and fails) off the async threads.
async fn check_password(hash: Option<String>, password: String) -> bool {
    tokio::task::spawn_blocking(move || match hash {
        Some(hash) => verify_password(&hash, &password),
        None => {
            let _ = verify_password(decoy_hash(), &password);
            false
        }
    })
    .await
    .unwrap_or(false)
}

pub(super) async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    match state.store.has_console_users().await {
        Ok(true) => {}
        Ok(false) => return console_off(),
        Err(_) => return unavailable(),
    }
    let now = state.store.clock().now().as_millis();
    let bound = !form.csrf.is_empty()
        && cookie(&headers, LOGIN_COOKIE).is_some_and(|token| same(token, &form.csrf))
        && match login_key(&state).await {
            Some(key) => form_token_valid(key, &form.csrf, now),
            None => return unavailable(),
        };
    if !bound {
        return login_form(
            &state,
            StatusCode::FORBIDDEN,
            &form.username,
            Some("The form expired; sign in again."),
        )
        .await;
    }
    let address = client_address(&state, &headers, peer);
    // A bounded crowd waits for a check; the rest are told to come back.
    let Ok(_admitted) = state.console.sign_ins.try_acquire() else {
        tracing::warn!(user = %form.username, %address, "console sign-in refused: too many at once");
        return login_form(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            &form.username,
            Some("Too many sign-ins at once; try again in a moment."),
        )
        .await;
    };
    let Ok(checking) = state.console.password_checks.acquire().await else {
        return unavailable();
    };
    // Count first, then verify: the attempt is a failure until the password
    // proves right, so attempts made at once cannot all pass the limit.
    let allowed = i64::from(state.console.settings.login_failures_allowed);
    let reserved = state
        .store
        .reserve_login_attempt(
            &failure_key(&form.username),
            &address,
            now,
            now.saturating_sub(FAILURE_WINDOW_MS),
            allowed,
        )
        .await;
    let attempt = match reserved {
        Ok(Some(attempt)) => attempt,
        Ok(None) => {
            tracing::warn!(user = %form.username, %address, "console sign-in refused: too many failures");
            return login_form(
                &state,
                StatusCode::TOO_MANY_REQUESTS,
                &form.username,
                Some("Too many failed sign-ins; wait 15 minutes."),
            )
            .await;
        }
        Err(_) => return unavailable(),
    };
    // A name no user can have is not looked up: it may hold what the
    // database refuses (a NUL byte), and it is simply wrong.
    let known = if check_name(&form.username).is_ok() {
        match state.store.console_login(&form.username).await {
            Ok(known) => known,
            Err(_) => return unavailable(),
        }
    } else {
        None
    };
    let hash = known.as_ref().map(|(_, _, hash)| hash.clone());
    let verified = check_password(hash, form.password.clone()).await;
    drop(checking);
    let Some((user_name, _, _)) = known.filter(|_| verified) else {
        tracing::info!(user = %form.username, %address, "console sign-in failed");
        return login_form(
            &state,
            StatusCode::UNAUTHORIZED,
            &form.username,
            Some("Wrong user name or password."),
        )
        .await;
    };
    if state.store.forget_login_attempt(attempt).await.is_err() {
        return unavailable();
    }
    let (Some(token), Some(csrf)) = (random_token(), random_token()) else {
        return unavailable();
    };
    if state
        .store
        .create_console_session(&sha256_hex(&token), &user_name, &csrf, now)
        .await
        .is_err()
    {
        return unavailable();
    }
    tracing::info!(user = %user_name, %address, "console sign-in");
    let mut response = Redirect::to("/console").into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(&state, SESSION_COOKIE, &token, None),
    );
    headers.append(
        header::SET_COOKIE,
        set_cookie(&state, LOGIN_COOKIE, "", Some(0)),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_780_000_000_000;

    fn key(byte: u8) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, &[byte; 32])
    }

    #[test]
    fn only_a_fresh_token_the_service_signed_is_accepted() {
        let token = issue_form_token(&key(1), NOW).unwrap();
        assert!(form_token_valid(&key(1), &token, NOW));
        assert!(form_token_valid(&key(1), &token, NOW + FORM_LIFETIME_MS));
        assert!(!form_token_valid(
            &key(1),
            &token,
            NOW + FORM_LIFETIME_MS + 1
        ));
        assert!(!form_token_valid(&key(1), &token, NOW - CLOCK_SKEW_MS - 1));
        assert!(!form_token_valid(&key(2), &token, NOW), "another key");
        let (signed, _) = token.rsplit_once('.').unwrap();
        let forged_time = signed.replacen(&NOW.to_string(), &(NOW + 1).to_string(), 1);
        let forged = format!("{forged_time}.{}", token.rsplit_once('.').unwrap().1);
        assert!(!form_token_valid(&key(1), &forged, NOW + 1));
        for junk in ["", ".", "..", "1.2.3", "x.y", &format!("{NOW}..")] {
            assert!(!form_token_valid(&key(1), junk, NOW), "{junk:?}");
        }
    }
}
