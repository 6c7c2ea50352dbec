//! The pages across customers: findings and delivery health (the refund
//! audit has a file of its own); and the admins' pages: the access log and
//! the users.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;

use super::customer::{encode, timeline_url};
use super::pages::{maybe_moment, moment};
use super::refund_audit::non_empty;
use super::{open_page, show, svg, unavailable, AppState, Audience};
use crate::store::FindingFilter;

const HOUR_MS: i64 = 3_600_000;

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct FindingForm {
    /// `open` (the default), `resolved` or `all`.
    state: String,
    kind: String,
}

/// `GET /console/findings?state=open|resolved|all&kind=`
pub(super) async fn findings(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(form): Query<FindingForm>,
) -> Response {
    let subject = format!("state={} kind={}", form.state, form.kind);
    let session = match open_page(&state, &headers, Audience::Staff, "findings", &subject).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let open = match form.state.as_str() {
        "" | "open" => Some(true),
        "resolved" => Some(false),
        _ => None,
    };
    let kind = non_empty(&form.kind);
    let filter = FindingFilter {
        kind: kind.clone(),
        open,
        limit: 1_000,
        ..FindingFilter::default()
    };
    let rows = match state.store.findings(&filter).await {
        Ok(rows) => rows,
        Err(_) => return unavailable(),
    };
    let mut by_kind: BTreeMap<&str, i64> = BTreeMap::new();
    for row in &rows {
        let count = by_kind.entry(row.kind.as_str()).or_default();
        *count = count.saturating_add(1);
    }
    let chosen = if form.state.is_empty() {
        "open"
    } else {
        form.state.as_str()
    };
    show(
        "Findings",
        &session,
        html! {
            h1 { "Findings" }
            form.inline method="get" action="/console/findings" {
                label { "Show "
                    select name="state" {
                        @for value in ["open", "resolved", "all"] {
                            option value=(value) selected[chosen == value] { (value) }
                        }
                    }
                }
                label { "Kind " input name="kind" value=(form.kind); }
                button type="submit" { "Apply" }
            }
            p id="by-kind" { @for (kind, count) in &by_kind { span.pill { (kind) ": " (count) } " " } }
            table id="findings" {
                tr { th { "Kind" } th { "Subject" } th { "App" } th { "Detail" } th { "First seen" } th { "Last seen" } th { "Resolved" } }
                @for f in &rows {
                    tr {
                        td { (f.kind) }
                        td {
                            @match &f.original_transaction_id {
                                Some(original) => a href=(timeline_url(original)) { (f.subject) },
                                None => (f.subject),
                            }
                        }
                        td { (f.bundle_id.as_deref().unwrap_or("–")) " " (f.environment.as_deref().unwrap_or("")) }
                        td { (f.detail) }
                        td { (moment(f.first_seen)) }
                        td { (moment(f.last_seen)) }
                        td { (maybe_moment(f.resolved_at)) @if let Some(how) = &f.resolution { " (" (how) ")" } }
                    }
                }
            }
        },
    )
}

/// `GET /console/delivery`: the last 48 hours of deliveries.
pub(super) async fn delivery(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = match open_page(&state, &headers, Audience::Staff, "delivery", "").await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let now = state.store.clock().now().as_millis();
    let first_hour = now
        .div_euclid(HOUR_MS)
        .saturating_sub(47)
        .saturating_mul(HOUR_MS);
    let health = match state.store.delivery_health(first_hour).await {
        Ok(health) => health,
        Err(_) => return unavailable(),
    };
    let mut per_hour: BTreeMap<i64, i64> = BTreeMap::new();
    for (hour, _, _, count) in &health.received {
        let sum = per_hour.entry(*hour).or_default();
        *sum = sum.saturating_add(*count);
    }
    let bars: Vec<(String, i64)> = (0..48)
        .map(|i: i64| first_hour.saturating_add(i.saturating_mul(HOUR_MS)))
        .map(|hour| {
            let label: String = moment(hour).chars().take(13).collect();
            (
                format!("{label}:00"),
                per_hour.get(&hour).copied().unwrap_or(0),
            )
        })
        .collect();
    let mut rejected_by_code: BTreeMap<&str, i64> = BTreeMap::new();
    for (_, code, count) in &health.rejections {
        let sum = rejected_by_code.entry(code.as_str()).or_default();
        *sum = sum.saturating_add(*count);
    }
    show(
        "Delivery health",
        &session,
        html! {
            h1 { "Delivery health" }
            p.muted { "Since " (moment(first_hour)) " UTC (48 hours), every instance." }
            h3 { "Last notification per app" }
            table id="last" {
                tr { th { "App" } th { "Environment" } th { "Last received" } th { "Ago" } th { "Stored in all" } }
                @for (bundle, environment, last, total) in &health.last_received {
                    tr {
                        td { (bundle.as_deref().unwrap_or("–")) } td { (environment.as_deref().unwrap_or("–")) }
                        td { (moment(*last)) } td { (ago(now.saturating_sub(*last))) } td { (total) }
                    }
                }
            }
            h3 { "Notifications received per hour" }
            (svg::bars("Notifications received per hour", &bars))
            table id="received" {
                tr { th { "Hour (UTC)" } th { "App" } th { "Environment" } th { "Received" } }
                @for (hour, bundle, environment, count) in health.received.iter().rev() {
                    tr {
                        td { (moment(*hour)) } td { (bundle.as_deref().unwrap_or("–")) }
                        td { (environment.as_deref().unwrap_or("–")) } td { (count) }
                    }
                }
            }
            h3 { "Refused deliveries (nothing stored)" }
            p id="rejections" {
                @if rejected_by_code.is_empty() { "None." }
                @for (code, count) in &rejected_by_code { span.pill { (code) ": " (count) } " " }
            }
            table id="rejected" {
                tr { th { "Hour (UTC)" } th { "Code" } th { "Refused" } }
                @for (hour, code, count) in health.rejections.iter().rev() {
                    tr { td { (moment(*hour)) } td { (code) } td { (count) } }
                }
            }
            h3 { "Quarantined (genuine, kept aside)" }
            table id="quarantined" {
                tr { th { "Reason" } th { "Notifications" } th { "Last" } }
                @for (code, count, last) in &health.quarantined {
                    tr { td { (code) } td { (count) } td { (moment(*last)) } }
                }
            }
            h3 { "What backfill recovered (Apple's notification history)" }
            table id="backfills" {
                tr { th { "App" } th { "Environment" } th { "Range" } th { "Fetched" } th { "Recovered" } th { "Already here" } th { "Refused" } th { "Finished" } }
                @for (bundle, environment, start, end, fetched, stored, duplicates, rejected, _, finished) in &health.backfills {
                    tr {
                        td { (bundle) } td { (environment) } td { (moment(*start)) " – " (moment(*end)) }
                        td { (fetched) } td { (stored) } td { (duplicates) } td { (rejected) }
                        td { (finished.map_or_else(|| "running".to_owned(), moment)) }
                    }
                }
            }
        },
    )
}

fn ago(ms: i64) -> String {
    let minutes = ms.max(0) / 60_000;
    match minutes {
        0 => "just now".to_owned(),
        1..=119 => format!("{minutes} min"),
        _ if minutes < 48 * 60 => format!("{} h", minutes / 60),
        _ => format!("{} days", minutes / (24 * 60)),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct AccessForm {
    user: String,
    before: Option<i64>,
}

/// `GET /console/access-log?user=&before=` (admins): who opened what.
pub(super) async fn access_log(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(form): Query<AccessForm>,
) -> Response {
    let session =
        match open_page(&state, &headers, Audience::Admins, "access-log", &form.user).await {
            Ok(session) => session,
            Err(response) => return response,
        };
    let user = non_empty(&form.user);
    let rows = match state
        .store
        .console_access_log(user.as_deref(), form.before, 200)
        .await
    {
        Ok(rows) => rows,
        Err(_) => return unavailable(),
    };
    let older = (rows.len() == 200)
        .then(|| rows.last().map(|last| last.id))
        .flatten();
    show(
        "Access log",
        &session,
        html! {
            h1 { "Access log" }
            form.inline method="get" action="/console/access-log" {
                label { "User " input name="user" value=(form.user); }
                button type="submit" { "Apply" }
            }
            table id="access" {
                tr { th { "When (UTC)" } th { "User" } th { "Page" } th { "What" } }
                @for entry in &rows {
                    tr { td { (moment(entry.at)) } td { (entry.user_name) } td { (entry.page) } td { code { (entry.subject) } } }
                }
            }
            @if let Some(id) = older {
                a href=(format!("/console/access-log?user={}&before={id}", encode(&form.user))) { "Older" }
            }
        },
    )
}

/// `GET /console/users` (admins): who may sign in.
pub(super) async fn users(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = match open_page(&state, &headers, Audience::Admins, "users", "").await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let users = match state.store.console_users().await {
        Ok(users) => users,
        Err(_) => return unavailable(),
    };
    show("Users", &session, users_page(&users))
}

fn users_page(users: &[crate::store::ConsoleUser]) -> Markup {
    html! {
        h1 { "Console users" }
        p.muted { "Added and removed with " code { "appstore-ledger user add|remove" } " on the server." }
        table id="users" {
            tr { th { "Name" } th { "Role" } th { "Added (UTC)" } }
            @for user in users { tr { td { (user.name) } td { (user.role) } td { (moment(user.created_at)) } } }
        }
    }
}
