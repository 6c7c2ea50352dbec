//! The refund desk: Apple's consumption requests. Open ones with the time
//! left, the consent and facts known and what will be sent; answered ones
//! with what was sent and Apple's answer; Apple's decision. A support agent
//! may send an answer now or change the facts before it goes: both are
//! written to the access log first.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::customer::timeline_url;
use super::pages::{maybe_moment, moment, percentage};
use super::refund_audit::non_empty;
use super::{message, open_action, open_page, show, unavailable, AppState, Audience};
use crate::http::consumption::{outcome, FactsBody};
use crate::model::{DeliveryStatus, RefundPreference};
use crate::store::{ConsumptionFilter, ConsumptionRequestEntry};

/// The closed requests the page shows, newest first.
const CLOSED_ROWS: i64 = 200;

/// `GET /console/refund-desk`.
pub(super) async fn refund_desk(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = match open_page(&state, &headers, Audience::Staff, "refund-desk", "").await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let open = ConsumptionFilter {
        open: Some(true),
        limit: 1000,
        ..ConsumptionFilter::default()
    };
    let closed = ConsumptionFilter {
        open: Some(false),
        limit: CLOSED_ROWS,
        ..ConsumptionFilter::default()
    };
    // One snapshot: a request answered while the page is read would
    // otherwise show as open and as answered at once (seen under load).
    let Ok((open, closed)) = state
        .store
        .consumption_requests_together(&open, &closed)
        .await
    else {
        return unavailable();
    };
    let now = state.store.clock().now().as_millis();
    let planned = |r: &ConsumptionRequestEntry| {
        let policy = state
            .consumption_policies
            .get(r.bundle_id.as_deref().unwrap_or_default())?;
        let body = crate::sync::planned_answer(r, policy);
        serde_json::to_string(&body).ok()
    };
    let body = html! {
        h1 { "Refund desk" }
        p.muted {
            "Apple asks, for 12 hours after a customer's refund request, what they used of the "
            "purchase. The answer goes once the backend's facts are in or the app's wait is over, "
            "an hour before the deadline at the latest, and never without the customer's consent "
            "or for Family Sharing."
        }
        h2 { "Open (" (open.len()) ")" }
        @if open.is_empty() {
            p.muted { "No request is waiting for an answer." }
        } @else {
            table id="open-requests" {
                tr { th { "transaction" } th { "product" } th { "reason" } th { "asked" }
                     th { "time left" } th { "waiting for" } th { "consent" } th { "facts" }
                     th { "will send" } th { "act" } }
                @for r in &open {
                    tr.request id=(format!("open-{}", r.transaction_id)) {
                        td { (transaction(r)) }
                        td { (r.product_id.as_deref().unwrap_or("–")) br; span.muted { (r.product_type.as_deref().unwrap_or("")) } }
                        td { (r.reason.as_deref().unwrap_or("–")) }
                        td { (moment(r.requested_at)) }
                        td.time-left { (time_left(r.deadline.saturating_sub(now))) }
                        td { (r.why.as_deref().unwrap_or("–"))
                             @if let Some(error) = &r.last_error { br; span.error { (error) } } }
                        td { (consent(r)) }
                        td { (facts(r)) }
                        td { @match planned(r) {
                            Some(body) => (fields(&body)),
                            None => span.muted { "nothing: answers are off for this app" },
                        } }
                        td { (actions(r, &session.csrf_token)) }
                    }
                }
            }
        }
        h2 { "Answered and closed" }
        @if closed.is_empty() {
            p.muted { "None yet." }
        } @else {
            table id="closed-requests" {
                tr { th { "transaction" } th { "product" } th { "reason" } th { "asked" }
                     th { "state" } th { "sent" } th { "Apple's answer" } th { "outcome" } }
                @for r in &closed {
                    tr.request id=(format!("closed-{}", r.transaction_id)) {
                        td { (transaction(r)) }
                        td { (r.product_id.as_deref().unwrap_or("–")) }
                        td { (r.reason.as_deref().unwrap_or("–")) }
                        td { (moment(r.requested_at)) }
                        td { (r.state) @if let Some(why) = &r.why { " (" (why) ")" } }
                        td { @if let Some(body) = &r.sent_body { (fields(body)) (maybe_moment(r.sent_at)) } @else { "–" } }
                        td { @match (r.apple_status, &r.last_error) {
                            (Some(status), _) => { (status) " accepted" }
                            (None, Some(error)) => span.error { (error) },
                            (None, None) => "–",
                        } }
                        td.outcome { @match outcome(r) {
                            Some(o) => { (o) " " (maybe_moment(r.outcome_date)) }
                            None => "pending",
                        } }
                    }
                }
            }
        }
    };
    show("Refund desk", &session, body)
}

/// An answer's fields, one a line (`deliveryStatus: DELIVERED`); the text
/// as kept if it does not read as a JSON object.
fn fields(body: &str) -> Markup {
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(body) {
        Ok(fields) => html! {
            ul.fields { @for (name, value) in &fields { li { code { (name) ": " (value) } } } }
        },
        Err(_) => html! { code { (body) } },
    }
}

fn transaction(r: &ConsumptionRequestEntry) -> Markup {
    let original = r
        .original_transaction_id
        .as_deref()
        .unwrap_or(&r.transaction_id);
    html! { a href=(timeline_url(original)) { code { (r.transaction_id) } } }
}

/// `11 h 59 min left`.
fn time_left(ms: i64) -> String {
    if ms <= 0 {
        return "past the deadline".into();
    }
    let minutes = ms / 60_000;
    format!("{} h {} min left", minutes / 60, minutes % 60)
}

fn consent(r: &ConsumptionRequestEntry) -> Markup {
    html! {
        @match r.consent {
            Some(true) => { "yes, " (maybe_moment(r.consent_recorded_at)) }
            Some(false) => { "no, " (maybe_moment(r.consent_recorded_at)) }
            None if r.app_account_token.is_none() => span.muted { "no appAccountToken" },
            None => span.muted { "not recorded" },
        }
    }
}

fn facts(r: &ConsumptionRequestEntry) -> Markup {
    html! {
        @if r.facts_recorded_at.is_some() {
            (r.facts_delivery_status.as_deref().unwrap_or("–"))
            @if let Some(p) = r.facts_consumption_percentage { ", " (percentage(p)) " used" }
            @if let Some(sample) = r.facts_sample_content_provided { ", sample " (if sample { "yes" } else { "no" }) }
            @if let Some(p) = &r.facts_refund_preference { ", " (p) }
            br; span.muted { "by " (r.facts_recorded_by.as_deref().unwrap_or("?")) ", " (maybe_moment(r.facts_recorded_at)) }
        } @else {
            span.muted { "none: the policy's" }
        }
    }
}

/// Send now, and the facts form.
fn actions(r: &ConsumptionRequestEntry, csrf: &str) -> Markup {
    let selected = |current: &Option<String>, value: &str| current.as_deref() == Some(value);
    html! {
        form method="post" action="/console/refund-desk/send-now" {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="notificationUuid" value=(r.notification_uuid);
            button type="submit" class="send-now" { "Send now" }
        }
        form method="post" action="/console/refund-desk/facts" {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="transactionId" value=(r.transaction_id);
            select name="deliveryStatus" {
                option value="" { "delivery: policy" }
                @for d in DeliveryStatus::KNOWN {
                    option value=(d) selected[selected(&r.facts_delivery_status, d)] { (d) }
                }
            }
            input type="number" name="consumptionPercentage" min="0" max="100000" placeholder="used, milliunits"
                value=(r.facts_consumption_percentage.map(|p| p.to_string()).unwrap_or_default());
            select name="sampleContentProvided" {
                option value="" { "sample: policy" }
                option value="true" selected[r.facts_sample_content_provided == Some(true)] { "sample given" }
                option value="false" selected[r.facts_sample_content_provided == Some(false)] { "no sample" }
            }
            select name="refundPreference" {
                option value="" { "preference: policy" }
                @for p in RefundPreference::KNOWN {
                    option value=(p) selected[selected(&r.facts_refund_preference, p)] { (p) }
                }
            }
            button type="submit" class="change-facts" { "Keep facts" }
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SendNowForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    notification_uuid: String,
}

/// `POST /console/refund-desk/send-now`: the answer goes at the job's next
/// run, whatever it still waited for (never without consent).
pub(super) async fn send_now(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<SendNowForm>,
) -> Response {
    let subject = format!("notificationUUID={}", form.notification_uuid);
    let session = match open_action(
        &state,
        &headers,
        Audience::Staff,
        "refund-desk-send-now",
        &subject,
        &form.csrf,
    )
    .await
    {
        Ok(session) => session,
        Err(response) => return response,
    };
    let by = format!("console:{}", session.user_name);
    match state
        .store
        .send_consumption_now(&form.notification_uuid, &by)
        .await
    {
        Ok(true) => Redirect::to("/console/refund-desk").into_response(),
        Ok(false) => message(
            StatusCode::CONFLICT,
            "Not open",
            "That request is no longer open: it was answered or closed meanwhile.",
        ),
        Err(_) => unavailable(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct FactsForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    transaction_id: String,
    #[serde(default)]
    delivery_status: String,
    #[serde(default)]
    consumption_percentage: String,
    #[serde(default)]
    sample_content_provided: String,
    #[serde(default)]
    refund_preference: String,
}

/// `POST /console/refund-desk/facts`: the facts an agent learned, kept as
/// the backend's would be (they replace them), before the answer goes.
pub(super) async fn change_facts(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<FactsForm>,
) -> Response {
    let subject = format!(
        "transactionId={} deliveryStatus={} consumptionPercentage={} sampleContentProvided={} refundPreference={}",
        form.transaction_id,
        form.delivery_status,
        form.consumption_percentage,
        form.sample_content_provided,
        form.refund_preference
    );
    let session = match open_action(
        &state,
        &headers,
        Audience::Staff,
        "refund-desk-facts",
        &subject,
        &form.csrf,
    )
    .await
    {
        Ok(session) => session,
        Err(response) => return response,
    };
    let percentage = match non_empty(&form.consumption_percentage).map(|p| p.parse::<i64>()) {
        None => None,
        Some(Ok(p)) => Some(p),
        Some(Err(_)) => {
            return message(
                StatusCode::BAD_REQUEST,
                "Not Apple's words",
                "INVALID_BODY: consumptionPercentage is a number of milliunits, 0 to 100000",
            )
        }
    };
    let sample = match form.sample_content_provided.trim() {
        "" => None,
        "true" => Some(true),
        _ => Some(false),
    };
    let body = FactsBody {
        delivery_status: non_empty(&form.delivery_status),
        consumption_percentage: percentage,
        sample_content_provided: sample,
        refund_preference: non_empty(&form.refund_preference),
    };
    let at = state.store.clock().now().as_millis();
    let facts = match body.validate(
        form.transaction_id.trim(),
        at,
        format!("console:{}", session.user_name),
    ) {
        Ok(facts) => facts,
        Err(why) => {
            return message(
                StatusCode::BAD_REQUEST,
                "Not Apple's words",
                &format!("INVALID_BODY: {why}"),
            )
        }
    };
    match state.store.set_consumption_facts(&facts).await {
        Ok(()) => Redirect::to("/console/refund-desk").into_response(),
        Err(_) => unavailable(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_in_hours_and_minutes() {
        assert_eq!(time_left(12 * 3_600_000), "12 h 0 min left");
        assert_eq!(time_left(3_599_999), "0 h 59 min left");
        assert_eq!(time_left(0), "past the deadline");
        assert_eq!(time_left(i64::MIN), "past the deadline");
        assert_eq!(time_left(i64::MAX), "2562047788015 h 12 min left");
    }
}
