//! The entitlement events' page (admins): each endpoint's and stream's
//! health, replay of everything since a moment, and an item's events with
//! their deliveries and a resend button each. The customer page lists the
//! events of the customer's items too. Every action is written to the
//! access log first.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

use super::pages::{maybe_moment, moment};
use super::refund_audit::non_empty;
use super::{message, open_action, open_page, show, unavailable, AppState, Audience};
use crate::ledger::ItemKey;
use crate::model::Timestamp;
use crate::store::{DeliveryEntry, EndpointHealth};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct EventsParams {
    /// `subscription:ID` or `purchase:ID`.
    item: Option<String>,
}

fn item_of(text: &str) -> Option<ItemKey> {
    match text.split_once(':')? {
        ("subscription", id) if !id.is_empty() => Some(ItemKey::Subscription(id.to_owned())),
        ("purchase", id) if !id.is_empty() => Some(ItemKey::Purchase(id.to_owned())),
        _ => None,
    }
}

/// `GET /console/events[?item=subscription:ID]`.
pub(super) async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<EventsParams>,
) -> Response {
    let subject = params.item.clone().unwrap_or_default();
    let session = match open_page(&state, &headers, Audience::Admins, "events", &subject).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    if session.role != "admin" {
        return message(
            StatusCode::FORBIDDEN,
            "Admins only",
            "This page is for admins.",
        );
    }
    let Ok(health) = state.store.endpoints_health().await else {
        return unavailable();
    };
    let item = params.item.as_deref().and_then(item_of);
    let item_events = match &item {
        Some(item) => match item_events(&state, item).await {
            Ok(found) => Some(found),
            Err(response) => return response,
        },
        None => None,
    };
    let names = state.events.sink_names();
    let body = html! {
        h1 { "Entitlement events" }
        p.muted {
            "Each change of a customer's answer goes to every endpoint and stream that takes it, "
            "in each item's order, retried for three days. Times in UTC."
        }
        h2 { "Endpoints and streams" }
        @if health.is_empty() {
            p.muted { "No [[events.endpoints]] or [[events.streams]] is configured." }
        } @else {
            table id="endpoints" {
                tr { th { "name" } th { "state" } th { "last success" } th { "failing since" }
                     th { "pending" } th { "oldest pending" } th { "given up" } th { "replay" } }
                @for h in &health {
                    (endpoint_row(h, names.contains(&h.name.as_str()), &session.csrf_token))
                }
            }
        }
        h2 { "An item's events" }
        form method="get" action="/console/events" {
            input type="text" name="item" placeholder="subscription:ORIGINAL_TRANSACTION_ID or purchase:TRANSACTION_ID"
                value=(subject) size="60";
            button type="submit" { "Show" }
        }
        @if let Some((events, deliveries)) = &item_events {
            (events_table(events, deliveries, Some((&names, &session.csrf_token))))
        }
    };
    show("Events", &session, body)
}

/// An item's events (JSON) and their deliveries.
type ItemEvents = (Vec<Value>, Vec<DeliveryEntry>);

async fn item_events(state: &AppState, item: &ItemKey) -> Result<ItemEvents, Response> {
    let events: Vec<Value> = state
        .store
        .events_of_item(item)
        .await
        .map_err(|_| unavailable())?
        .into_iter()
        .filter_map(|e| serde_json::from_str(&e.data).ok())
        .collect();
    let ids: Vec<String> = events
        .iter()
        .filter_map(|e| e["id"].as_str().map(str::to_owned))
        .collect();
    let deliveries = state
        .store
        .deliveries_of(&ids)
        .await
        .map_err(|_| unavailable())?;
    Ok((events, deliveries))
}

fn endpoint_row(h: &EndpointHealth, configured: bool, csrf: &str) -> Markup {
    html! {
        tr.endpoint id=(format!("endpoint-{}", h.name)) {
            td { code { (h.name) } @if !configured { br; span.muted { "no longer configured" } } }
            td.state {
                @match (&h.disabled_at, &h.failing_since) {
                    (Some(at), _) => span.error { "disabled " (moment(*at)) ": " (h.disabled_why.as_deref().unwrap_or("")) },
                    (None, Some(_)) => span.error { "failing" },
                    (None, None) => span.yes { "healthy" },
                }
            }
            td { (maybe_moment(h.last_success_at)) }
            td { (maybe_moment(h.failing_since)) }
            td.pending { (h.pending) }
            td { (maybe_moment(h.oldest_pending)) }
            td { (h.failed) }
            td {
                @if configured {
                    form method="post" action="/console/events/replay" {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="endpoint" value=(h.name);
                        input type="text" name="since" placeholder="2026-12-01T00:00:00Z" size="22";
                        button type="submit" class="replay" { "Replay since" }
                    }
                }
            }
        }
    }
}

/// An item's events, newest last, each with its deliveries; with resend
/// buttons when `resend` gives the sinks and the form's token.
pub(super) fn events_table(
    events: &[Value],
    deliveries: &[DeliveryEntry],
    resend: Option<(&[&str], &str)>,
) -> Markup {
    html! {
        @if events.is_empty() {
            p.muted { "No event was told about this item." }
        } @else {
            table.events {
                tr { th { "#" } th { "type" } th { "occurred" } th { "cause" } th { "deliveries" } }
                @for e in events {
                    @let id = e["id"].as_str().unwrap_or_default();
                    tr.event id=(id) {
                        td { (e["sequence"]) }
                        td { code { (e["type"].as_str().unwrap_or("?")) } }
                        td { (e["occurredAt"].as_i64().map_or_else(String::new, moment)) }
                        td { code { (e["cause"].as_str().unwrap_or("")) } }
                        td {
                            @for d in deliveries.iter().filter(|d| d.event_id == id) {
                                span.delivery { (d.endpoint) ": " (d.state) " (" (d.attempts) ")"
                                    @if let Some(error) = &d.last_error { " " span.error { (error) } } }
                                br;
                            }
                            @if let Some((sinks, csrf)) = resend {
                                @for sink in sinks {
                                    form.inline method="post" action="/console/events/resend" {
                                        input type="hidden" name="csrf" value=(csrf);
                                        input type="hidden" name="endpoint" value=(sink);
                                        input type="hidden" name="eventId" value=(id);
                                        button type="submit" class="resend" { "Resend to " (sink) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The events of the customer page's items, without actions.
pub(super) async fn customer_events(
    state: &AppState,
    items: &[ItemKey],
) -> Result<Markup, Response> {
    let mut sections = Vec::new();
    for item in items {
        let (events, deliveries) = item_events(state, item).await?;
        sections.push((item, events, deliveries));
    }
    Ok(html! {
        section id="events" {
            h2 { "Entitlement events" }
            @for (item, events, deliveries) in &sections {
                h3 { (item.kind()) " " code { (item.id()) }
                     " · " a href=(format!("/console/events?item={}:{}", item.kind(), item.id())) { "deliveries" } }
                (events_table(events, deliveries, None))
            }
        }
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ReplayForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    endpoint: String,
    #[serde(default)]
    since: String,
}

/// `POST /console/events/replay`: every event since the moment that the
/// sink takes, queued again.
pub(super) async fn replay(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<ReplayForm>,
) -> Response {
    let subject = format!("endpoint={} since={}", form.endpoint, form.since);
    if let Err(response) = open_action(
        &state,
        &headers,
        Audience::Admins,
        "events-replay",
        &subject,
        &form.csrf,
    )
    .await
    {
        return response;
    }
    let Some(since) = non_empty(&form.since)
        .and_then(|text| Timestamp::parse_rfc3339(&text))
        .map(Timestamp::as_millis)
    else {
        return message(
            StatusCode::BAD_REQUEST,
            "Since when?",
            "Give a moment in RFC 3339, such as 2026-12-01T00:00:00Z.",
        );
    };
    match crate::webhooks::replay(&state.store, &state.events, &form.endpoint, since).await {
        Ok(Some(_)) => Redirect::to("/console/events").into_response(),
        Ok(None) => message(
            StatusCode::NOT_FOUND,
            "No such sink",
            "No endpoint or stream has that name.",
        ),
        Err(_) => unavailable(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ResendForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    endpoint: String,
    #[serde(default)]
    event_id: String,
}

/// `POST /console/events/resend`: one event, queued again for one sink.
pub(super) async fn resend(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<ResendForm>,
) -> Response {
    let subject = format!("endpoint={} eventId={}", form.endpoint, form.event_id);
    if let Err(response) = open_action(
        &state,
        &headers,
        Audience::Admins,
        "events-resend",
        &subject,
        &form.csrf,
    )
    .await
    {
        return response;
    }
    if state.events.filter(&form.endpoint).is_none() {
        return message(
            StatusCode::NOT_FOUND,
            "No such sink",
            "No endpoint or stream has that name.",
        );
    }
    match state
        .store
        .resend_event(&form.endpoint, &form.event_id)
        .await
    {
        Ok(true) => Redirect::to("/console/events").into_response(),
        Ok(false) => message(
            StatusCode::NOT_FOUND,
            "No such event",
            "No event has that id.",
        ),
        Err(_) => unavailable(),
    }
}
