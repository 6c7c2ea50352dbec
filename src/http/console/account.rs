//! For admins: fix an account link. Asks Apple to sign another
//! appAccountToken into an item's later transactions (Set App Account
//! Token); the request is written to the access log before Apple is asked.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::customer::{original_transaction_id, timeline_url, ItemStory};
use super::{message, open_action, show, AppState, Audience};

/// For admins: move a subscription or purchase to another account (Set App
/// Account Token), one form per item.
pub(super) fn account_forms(stories: &[ItemStory], csrf: &str) -> Markup {
    html! {
        section.admin id="account-link" {
            h2 { "Fix an account link" }
            p.muted {
                "Asks Apple to sign this appAccountToken into the item's later transactions "
                "(Set App Account Token). The ledger follows Apple's next signed transaction."
            }
            @for story in stories {
                @let original = original_transaction_id(&story.item);
                form method="post" action="/console/set-app-account-token" {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="originalTransactionId" value=(original);
                    label { code { (original) } " → appAccountToken "
                        input type="text" name="token" required placeholder="UUID";
                    }
                    " " button type="submit" { "Ask Apple" }
                }
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SetTokenForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    original_transaction_id: String,
    #[serde(default)]
    token: String,
}

/// `POST /console/set-app-account-token`: admins only, written to the
/// access log before Apple is asked.
pub(super) async fn set_app_account_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<SetTokenForm>,
) -> Response {
    let subject = format!(
        "originalTransactionId={} appAccountToken={}",
        form.original_transaction_id, form.token
    );
    let session = match open_action(
        &state,
        &headers,
        Audience::Admins,
        "set-app-account-token",
        &subject,
        &form.csrf,
    )
    .await
    {
        Ok(session) => session,
        Err(response) => return response,
    };
    let Some(token) = crate::model::parse_app_account_token(&form.token) else {
        return message(
            StatusCode::BAD_REQUEST,
            "Not a UUID",
            "INVALID_APP_ACCOUNT_TOKEN: an appAccountToken is a UUID.",
        );
    };
    let original = form.original_transaction_id.trim();
    let outcome =
        crate::sync::set_app_account_token(&state.appstore_api, &state.store, original, &token)
            .await;
    let back = timeline_url(original);
    let (status, body) = match outcome {
        Ok(set) => (
            StatusCode::OK,
            html! {
                h1 { "Apple accepted the account link" }
                p id="outcome" {
                    "Apple set appAccountToken " code { (token) } " on " code { (original) }
                    " (" (set.bundle_id) " " (set.environment) "). Its next signed transaction carries it; "
                    "until then the ledger keeps what Apple signed."
                }
                p { a href=(back) { "Back to the timeline" } }
            },
        ),
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            html! {
                h1 { "Apple did not set the account link" }
                p.error id="outcome" { (e.code()) ": " (e.to_string()) }
                p { a href=(back) { "Back to the timeline" } }
            },
        ),
    };
    (status, show("Account link", &session, body)).into_response()
}
