//! For support staff: goodwill time. Asks Apple to extend a subscription's
//! renewal date (Extend a Subscription Renewal Date); the request, with its
//! days and reason, is written to the access log before Apple is asked.
//! The ledger moves the dates when Apple's RENEWAL_EXTENDED arrives.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::customer::{original_transaction_id, timeline_url, ItemStory};
use super::{message, open_action, show, AppState, Audience};
use crate::appstore_api::{ExtendReason, MAX_EXTEND_BY_DAYS};
use crate::ledger::ItemKey;

/// One form per subscription of the page. Each carries a request
/// identifier made when the page was: the same form sent twice extends once.
pub(super) fn extend_forms(stories: &[ItemStory], csrf: &str) -> Markup {
    let subscriptions: Vec<&ItemStory> = stories
        .iter()
        .filter(|s| matches!(s.item.item, ItemKey::Subscription(_)))
        .collect();
    html! {
        @if !subscriptions.is_empty() {
            section.support id="extend-renewal" {
                h2 { "Give goodwill time" }
                p.muted {
                    "Asks Apple to move the renewal date of an active subscription "
                    "(Extend a Subscription Renewal Date; Apple allows two a year per customer). "
                    "The timeline shows the new dates when Apple's RENEWAL_EXTENDED arrives."
                }
                @for story in subscriptions {
                    @let original = original_transaction_id(&story.item);
                    form method="post" action="/console/extend-renewal" {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="originalTransactionId" value=(original);
                        input type="hidden" name="requestIdentifier" value=(crate::sync::new_request_identifier().unwrap_or_default());
                        label { code { (original) } " by "
                            input type="number" name="days" min="1" max=(MAX_EXTEND_BY_DAYS) value="7" required;
                            " days"
                        }
                        " "
                        label { "reason "
                            select name="reason" {
                                @for reason in ExtendReason::ALL {
                                    option value=(reason.name()) selected[reason == ExtendReason::CustomerSatisfaction] { (reason.name()) }
                                }
                            }
                        }
                        " " button type="submit" { "Ask Apple" }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ExtendForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    original_transaction_id: String,
    #[serde(default)]
    days: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    request_identifier: String,
}

/// `POST /console/extend-renewal`: support and admins, written to the
/// access log (with the days and the reason) before Apple is asked.
pub(super) async fn extend_renewal(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<ExtendForm>,
) -> Response {
    let subject = format!(
        "originalTransactionId={} days={} reason={} requestIdentifier={}",
        form.original_transaction_id, form.days, form.reason, form.request_identifier
    );
    let session = match open_action(
        &state,
        &headers,
        Audience::Staff,
        "extend-renewal",
        &subject,
        &form.csrf,
    )
    .await
    {
        Ok(session) => session,
        Err(response) => return response,
    };
    let original = form.original_transaction_id.trim();
    let extension = form
        .days
        .trim()
        .parse::<i64>()
        .map_err(|_| {
            crate::sync::SyncError::InvalidExtension(format!(
                "days {:?} is not a number",
                form.days
            ))
        })
        .and_then(|days| {
            crate::sync::Extension::new(days, &form.reason, Some(&form.request_identifier))
        });
    let extension = match extension {
        Ok(extension) => extension,
        Err(e) => {
            return message(
                StatusCode::BAD_REQUEST,
                "Not an extension Apple takes",
                &format!("{}: {e}", e.code()),
            )
        }
    };
    let outcome =
        crate::sync::extend_renewal(&state.appstore_api, &state.store, original, &extension).await;
    let back = timeline_url(original);
    let (status, body) = match outcome {
        Ok(extended) if extended.success => (
            StatusCode::OK,
            html! {
                h1 { "Apple extended the renewal date" }
                p id="outcome" {
                    "Apple moved the renewal date of " code { (original) } " by " (extension.days)
                    " days (" (extension.reason.name()) "; " (extended.bundle_id) " " (extended.environment) ")"
                    @if let Some(date) = extended.effective_date { ", to " (super::pages::moment(date)) }
                    ". The timeline follows when Apple's RENEWAL_EXTENDED arrives."
                }
                p { a href=(back) { "Back to the timeline" } }
            },
        ),
        Ok(_) => (
            StatusCode::CONFLICT,
            html! {
                h1 { "Apple did not extend the renewal date" }
                p.error id="outcome" {
                    "Apple found " code { (original) } " not eligible (not active, or extended "
                    "twice in the last 365 days)."
                }
                p { a href=(back) { "Back to the timeline" } }
            },
        ),
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            html! {
                h1 { "Apple did not extend the renewal date" }
                p.error id="outcome" { (e.code()) ": " (e.to_string()) }
                p { a href=(back) { "Back to the timeline" } }
            },
        ),
    };
    (status, show("Goodwill time", &session, body)).into_response()
}
