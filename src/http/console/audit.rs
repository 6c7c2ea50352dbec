//! The pages across customers: the refund audit (and its CSV), findings,
//! delivery health; and the admins' pages: the access log and the users.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;
use time::macros::format_description;

use super::customer::{encode, reason_name, timeline_url};
use super::pages::{date, maybe_moment, moment, price};
use super::{message, open_page, show, svg, unavailable, AppState, Audience};
use crate::store::{FindingFilter, RefundEntry, RefundFilter};

/// The most refunds a page (and its CSV) holds; narrower filters show the rest.
const REFUND_ROWS: i64 = 2_000;
const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// The refund audit's filters as the form sends them: empty means any.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct RefundForm {
    from: String,
    to: String,
    app: String,
    product: String,
    environment: String,
    reason: String,
    reversed: String,
}

fn non_empty(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// Midnight UTC of a `YYYY-MM-DD`, in milliseconds.
fn day_start(text: &str) -> Result<Option<i64>, String> {
    let Some(text) = non_empty(text) else {
        return Ok(None);
    };
    time::Date::parse(&text, format_description!("[year]-[month]-[day]"))
        .map(|d| {
            Some(
                d.midnight()
                    .assume_utc()
                    .unix_timestamp()
                    .saturating_mul(1000),
            )
        })
        .map_err(|_| format!("{text} is not a date (YYYY-MM-DD)"))
}

impl RefundForm {
    /// The store's filter; `to` is inclusive (the whole day).
    fn filter(&self) -> Result<RefundFilter, String> {
        let reason = match self.reason.trim() {
            "" => None,
            "0" => Some(0),
            "1" => Some(1),
            other => return Err(format!("reason {other} is not 0 or 1")),
        };
        let reversed = match self.reversed.trim() {
            "" => None,
            "yes" => Some(true),
            "no" => Some(false),
            other => return Err(format!("reversed {other} is not yes or no")),
        };
        Ok(RefundFilter {
            from: day_start(&self.from)?,
            to: day_start(&self.to)?.map(|d| d.saturating_add(DAY_MS)),
            bundle_id: non_empty(&self.app),
            product_id: non_empty(&self.product),
            environment: non_empty(&self.environment),
            revocation_reason: reason,
            reversed,
            limit: REFUND_ROWS + 1,
            ..RefundFilter::default()
        })
    }

    /// The same filters as a query string, for the CSV link.
    fn query_string(&self) -> String {
        [
            ("from", &self.from),
            ("to", &self.to),
            ("app", &self.app),
            ("product", &self.product),
            ("environment", &self.environment),
            ("reason", &self.reason),
            ("reversed", &self.reversed),
        ]
        .iter()
        .filter(|(_, value)| !value.trim().is_empty())
        .map(|(name, value)| format!("{name}={}", encode(value.trim())))
        .collect::<Vec<_>>()
        .join("&")
    }
}

/// The rows the filters select, at most [`REFUND_ROWS`], and whether
/// more matched.
async fn select_refunds(
    state: &AppState,
    form: &RefundForm,
) -> Result<Result<(Vec<RefundEntry>, bool), String>, Response> {
    let filter = match form.filter() {
        Ok(filter) => filter,
        Err(why) => return Ok(Err(why)),
    };
    let mut rows = state
        .store
        .refunds(&filter)
        .await
        .map_err(|_| unavailable())?;
    let more = rows.len() as i64 > REFUND_ROWS;
    rows.truncate(REFUND_ROWS as usize);
    Ok(Ok((rows, more)))
}

/// `GET /console/refunds?from=&to=&app=&product=&environment=&reason=&reversed=`
pub(super) async fn refunds(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(form): Query<RefundForm>,
) -> Response {
    let session = match open_page(
        &state,
        &headers,
        Audience::Staff,
        "refunds",
        &form.query_string(),
    )
    .await
    {
        Ok(session) => session,
        Err(response) => return response,
    };
    let selected = match select_refunds(&state, &form).await {
        Ok(selected) => selected,
        Err(response) => return response,
    };
    let (status, body) = match selected {
        Ok((rows, more)) => (StatusCode::OK, refund_page(&form, &rows, more)),
        Err(why) => (
            StatusCode::BAD_REQUEST,
            html! { (refund_form(&form)) p.error id="error" { (why) } },
        ),
    };
    (status, show("Refunds", &session, body)).into_response()
}

/// `GET /console/refunds.csv?...`: exactly the rows the same filters show.
pub(super) async fn refunds_csv(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(form): Query<RefundForm>,
) -> Response {
    if let Err(response) = open_page(
        &state,
        &headers,
        Audience::Staff,
        "refunds.csv",
        &form.query_string(),
    )
    .await
    {
        return response;
    }
    match select_refunds(&state, &form).await {
        Ok(Ok((rows, _))) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"refunds.csv\"",
                ),
            ],
            crate::http::export::to_csv(&rows),
        )
            .into_response(),
        Ok(Err(why)) => message(StatusCode::BAD_REQUEST, "Not a filter", &why),
        Err(response) => response,
    }
}

fn refund_form(form: &RefundForm) -> Markup {
    html! {
        form.inline id="filters" method="get" action="/console/refunds" {
            label { "From " input type="date" name="from" value=(form.from); }
            label { "To " input type="date" name="to" value=(form.to); }
            label { "App " input name="app" placeholder="bundle id" value=(form.app); }
            label { "Product " input name="product" value=(form.product); }
            label { "Environment "
                select name="environment" {
                    @for (value, text) in [("", "any"), ("Production", "Production"), ("Sandbox", "Sandbox")] {
                        option value=(value) selected[form.environment == value] { (text) }
                    }
                }
            }
            label { "Reason "
                select name="reason" {
                    @for (value, text) in [("", "any"), ("0", "0 · other"), ("1", "1 · app issue")] {
                        option value=(value) selected[form.reason == value] { (text) }
                    }
                }
            }
            label { "Reversed "
                select name="reversed" {
                    @for (value, text) in [("", "either"), ("yes", "reversed"), ("no", "not reversed")] {
                        option value=(value) selected[form.reversed == value] { (text) }
                    }
                }
            }
            button type="submit" id="apply" { "Apply" }
        }
    }
}

/// Midnight UTC of the day `ms` falls in (saturating at i64's ends).
fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS).saturating_mul(DAY_MS)
}

/// Bars for refunds per day: every day between the first and the last, so
/// that gaps show, when they are at most a year apart; otherwise only the
/// days that have refunds. Dates Apple signed may be anywhere in i64: the
/// span is computed checked, and never more than 367 bars are made from it.
fn refund_days(per_day: &BTreeMap<i64, i64>) -> Vec<(String, i64)> {
    const MOST_DAYS: usize = 367;
    let within_a_year = match (per_day.keys().next(), per_day.keys().next_back()) {
        (Some(&first), Some(&last)) => last
            .checked_sub(first)
            .is_some_and(|span| span / DAY_MS < MOST_DAYS as i64),
        _ => false,
    };
    if !within_a_year {
        return per_day.iter().map(|(d, n)| (date(*d), *n)).collect();
    }
    let (first, last) = match (per_day.keys().next(), per_day.keys().next_back()) {
        (Some(&first), Some(&last)) => (first, last),
        _ => return Vec::new(),
    };
    std::iter::successors(Some(first), |d| {
        d.checked_add(DAY_MS).filter(|d| *d <= last)
    })
    .take(MOST_DAYS)
    .map(|d| (date(d), per_day.get(&d).copied().unwrap_or(0)))
    .collect()
}

pub(super) fn refund_page(form: &RefundForm, rows: &[RefundEntry], more: bool) -> Markup {
    // Per currency: refunds, their sum, and the part reversed since.
    let mut totals: BTreeMap<&str, (i64, i64, i64)> = BTreeMap::new();
    let mut per_day: BTreeMap<i64, i64> = BTreeMap::new();
    for row in rows {
        let total = totals
            .entry(row.refund.currency.as_deref().unwrap_or("?"))
            .or_default();
        let price = row.refund.price.unwrap_or(0);
        total.0 = total.0.saturating_add(1);
        total.1 = total.1.saturating_add(price);
        if row.reversed_at.is_some() {
            total.2 = total.2.saturating_add(price);
        }
        let day = per_day.entry(day_of(row.refund_date)).or_default();
        *day = day.saturating_add(1);
    }
    let days = refund_days(&per_day);
    let csv = format!("/console/refunds.csv?{}", form.query_string());
    html! {
        h1 { "Refund audit" }
        (refund_form(form))
        p.totals id="totals" {
            (rows.len()) " refund(s) shown. "
            @for (currency, (count, sum, reversed)) in &totals {
                span { (currency) ": " (count) " refunded, " (price(Some(*sum), Some(currency)))
                    @if *reversed != 0 { ", of which reversed " (price(Some(*reversed), Some(currency))) } }
            }
        }
        @if more {
            p.error { "More than " (REFUND_ROWS) " refunds match: the newest " (REFUND_ROWS) " are shown (and in the CSV); narrow the filters." }
        }
        p { a id="csv" href=(csv) download="refunds.csv" { "Download these rows as CSV" } }
        h3 { "Refunds per day" }
        (svg::bars("Refunds per day", &days))
        table id="refunds" {
            tr {
                th { "Refund date" } th { "Type" } th { "Transaction" } th { "Original" } th { "Product" }
                th { "App" } th { "Env." } th { "Reason" } th { "Revocation type" } th { "Price" } th { "Reversed" }
            }
            @for r in rows {
                tr class=(if r.reversed_at.is_some() { "reversal" } else { "refund" }) {
                    td { (moment(r.refund_date)) }
                    td { (r.refund.notification_type) }
                    td { (r.refund.transaction_id.as_deref().unwrap_or("–")) }
                    td {
                        @if let Some(original) = &r.refund.original_transaction_id {
                            a href=(timeline_url(original)) { (original) }
                        }
                    }
                    td { (r.refund.product_id.as_deref().unwrap_or("–")) }
                    td { (r.refund.bundle_id.as_deref().unwrap_or("–")) }
                    td { (r.refund.environment.as_deref().unwrap_or("–")) }
                    td { (r.refund.revocation_reason.map_or("–", reason_name)) }
                    td { (r.refund.revocation_type.as_deref().unwrap_or("–")) }
                    td { (price(r.refund.price, r.refund.currency.as_deref())) }
                    td { (maybe_moment(r.reversed_at)) }
                }
            }
        }
    }
}

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
