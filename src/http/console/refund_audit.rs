//! The refund audit across customers (and its CSV): every refund and
//! revocation, the money refunded per currency, and refunds per day.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;
use time::macros::format_description;

use super::customer::{encode, reason_name, timeline_url};
use super::pages::{date, maybe_moment, moment, money, percentage, price};
use super::{message, open_page, show, svg, unavailable, AppState, Audience};
use crate::store::{RefundEntry, RefundFilter};

/// The most refunds a page (and its CSV) holds; narrower filters show the rest.
const REFUND_ROWS: i64 = 2_000;
const DAY_MS: i64 = 86_400_000;

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

pub(super) fn non_empty(text: &str) -> Option<String> {
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

/// The money of one currency in the rows shown.
#[derive(Default)]
struct CurrencyTotal {
    /// Refunds (not Family Sharing revocations).
    refunds: i64,
    /// What they refunded, in milliunits, reversed ones included.
    refunded: i64,
    /// The part of `refunded` that REFUND_REVERSED took back since.
    reversed: i64,
    /// Family Sharing revocations: listed, never counted as money.
    revocations: i64,
}

pub(super) fn refund_page(form: &RefundForm, rows: &[RefundEntry], more: bool) -> Markup {
    let mut totals: BTreeMap<&str, CurrencyTotal> = BTreeMap::new();
    let mut per_day: BTreeMap<i64, i64> = BTreeMap::new();
    for row in rows {
        let total = totals
            .entry(row.refund.currency.as_deref().unwrap_or("?"))
            .or_default();
        if row.refund.is_family_revocation() {
            total.revocations = total.revocations.saturating_add(1);
        } else {
            let amount = row.refund.refunded_amount().unwrap_or(0);
            total.refunds = total.refunds.saturating_add(1);
            total.refunded = total.refunded.saturating_add(amount);
            if row.reversed_at.is_some() {
                total.reversed = total.reversed.saturating_add(amount);
            }
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
            (rows.len()) " refund(s) and revocation(s) shown. "
            @for (currency, t) in &totals {
                span.currency-total data-currency=(currency) {
                    (currency) ": " (t.refunds) " refunded, "
                    strong.net { (money(t.refunded.saturating_sub(t.reversed), currency)) }
                    @if t.reversed != 0 {
                        " (" (money(t.refunded, currency)) " less " (money(t.reversed, currency)) " reversed since)"
                    }
                    @if t.revocations != 0 {
                        ", " (t.revocations) " Family Sharing revocation(s), no money refunded"
                    }
                    ". "
                }
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
                th { "App" } th { "Env." } th { "Reason" } th { "Revocation type" } th { "Price" }
                th { "Percentage" } th { "Seats" } th { "Refunded" } th { "Reversed" } th { "Told by" }
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
                    td { (r.refund.revocation_percentage.map_or_else(|| "–".to_owned(), percentage)) }
                    td { (r.refund.revoked_seat_quantity.map_or_else(|| "–".to_owned(), |n| n.to_string())) }
                    td.refunded {
                        @if r.refund.is_family_revocation() { "revocation, no money" }
                        @else { (price(r.refund.refunded_amount(), r.refund.currency.as_deref())) }
                    }
                    td { (maybe_moment(r.reversed_at)) }
                    td.source { @if r.refund.source == crate::ledger::REFUND_FROM_APPLE_API {
                        span.pill title="No notification came; Apple's Refund History told" { "Apple API" }
                    } @else { "notification" } }
                }
            }
        }
    }
}
