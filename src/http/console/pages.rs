//! The console's HTML, server-rendered by maud: every value is escaped
//! unless marked otherwise, and no page has an inline script or style (the
//! Content-Security-Policy forbids them).

use maud::{html, Markup, DOCTYPE};
use time::macros::format_description;
use time::OffsetDateTime;

use crate::store::ConsoleSession;

fn utc(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms).checked_mul(1_000_000)?).ok()
}

/// `2026-11-26`, in UTC as Apple's dates are.
pub(crate) fn date(ms: i64) -> String {
    utc(ms)
        .and_then(|t| t.format(format_description!("[year]-[month]-[day]")).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// `2026-11-26 21:08:29`, UTC.
pub(crate) fn moment(ms: i64) -> String {
    utc(ms)
        .and_then(|t| {
            t.format(format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]"
            ))
            .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// A moment or a dash.
pub(crate) fn maybe_moment(ms: Option<i64>) -> String {
    ms.map_or_else(|| "–".to_owned(), moment)
}

/// Apple's prices are in thousandths of the currency unit: 9990 is 9.99,
/// 1234 is 1.234.
pub(crate) fn price(milli: Option<i64>, currency: Option<&str>) -> String {
    let Some(milli) = milli else {
        return "–".to_owned();
    };
    let units = milli.unsigned_abs();
    let mut decimals = format!("{:03}", units % 1000);
    if decimals.ends_with('0') {
        decimals.pop();
    }
    let sign = if milli < 0 { "-" } else { "" };
    format!(
        "{sign}{}.{decimals} {}",
        units / 1000,
        currency.unwrap_or("")
    )
    .trim_end()
    .to_owned()
}

/// An amount in milliunits, rounded to the currency's minor unit (ISO 4217:
/// none for the yen or the won, three for the dinars, two for the rest):
/// 3,996 is "4.00 USD".
pub(crate) fn money(milli: i64, currency: &str) -> String {
    // (digits after the point, milliunits per minor unit, minor units per unit)
    let (digits, step, scale): (usize, i128, u128) = match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => (0, 1000, 1),
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => (3, 1, 1000),
        _ => (2, 10, 100),
    };
    let minor = crate::ledger::divide_rounded(i128::from(milli), step);
    let sign = if minor < 0 { "-" } else { "" };
    let minor = minor.unsigned_abs();
    let whole = minor.checked_div(scale).unwrap_or(0);
    let text = if digits == 0 {
        format!("{sign}{whole}")
    } else {
        let fraction = minor.checked_rem(scale).unwrap_or(0);
        format!("{sign}{whole}.{fraction:0digits$}")
    };
    format!("{text} {currency}").trim_end().to_owned()
}

/// Apple's `revocationPercentage`, in thousandths of a percent: 40000 is
/// "40%", 67932 is "67.932%".
pub(crate) fn percentage(milli: i64) -> String {
    let sign = if milli < 0 { "-" } else { "" };
    let units = milli.unsigned_abs();
    let fraction = format!("{:03}", units % 1000);
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        format!("{sign}{}%", units / 1000)
    } else {
        format!("{sign}{}.{fraction}%", units / 1000)
    }
}

/// The one stylesheet, served from /console/style.css.
pub(super) const STYLE: &str = "\
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d1d1f;background:#f5f5f7}\
header{background:#1d1d1f;color:#fff;padding:.6em 1.2em;display:flex;justify-content:space-between;align-items:center}\
header form{margin:0}main{max-width:60em;margin:2em auto;padding:0 1.2em}\
.card{background:#fff;border-radius:8px;padding:1.5em;max-width:24em;margin:3em auto;box-shadow:0 1px 3px #0002}\
label{display:block;margin:.8em 0 .2em}input{width:100%;padding:.5em;box-sizing:border-box;font:inherit}\
button{margin-top:1em;padding:.5em 1.2em;font:inherit;cursor:pointer}\
.error{color:#b00020;margin:.8em 0}\
nav a{color:#fff;margin-right:1em;text-decoration:none}nav a:hover{text-decoration:underline}\
main.wide{max-width:none}table{border-collapse:collapse;width:100%;background:#fff;margin:1em 0;font-size:13px}\
th,td{border-bottom:1px solid #e5e5ea;padding:.35em .5em;text-align:left;vertical-align:top}\
th{background:#f2f2f7;position:sticky;top:0}tr.refund td{background:#ffe5e3}tr.reversal td{background:#e3f0ff}\
tr.expiration td{background:#eeeef0}tr.billing td{background:#fff4d6}tr.apple td{background:#eef8ee}\
.muted{color:#6e6e73}ul.fields{list-style:none;margin:0;padding:0}.pill{display:inline-block;padding:0 .5em;border-radius:9px;background:#e5e5ea;font-size:12px}\
.yes{color:#1a7f37;font-weight:600}.no{color:#b00020;font-weight:600}section{margin:1.5em 0}\
form.inline{display:flex;flex-wrap:wrap;gap:.6em;align-items:end}form.inline label{margin:0}\
form.inline input,form.inline select{width:auto}form.inline button{margin:0}\
pre{background:#fff;padding:1em;overflow:auto;font-size:12px}svg{background:#fff;border-radius:6px}\
.totals span{margin-right:1.5em}";

pub(super) fn page(title: &str, signed_in: Option<&ConsoleSession>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · appstore-ledger" }
                link rel="stylesheet" href="/console/style.css";
            }
            body {
                header {
                    strong { "appstore-ledger console" }
                    @if let Some(session) = signed_in {
                        nav {
                            a href="/console" { "Search" }
                            a href="/console/refunds" { "Refunds" }
                            a href="/console/refund-desk" { "Refund desk" }
                            a href="/console/findings" { "Findings" }
                            a href="/console/delivery" { "Delivery health" }
                            @if session.role == "admin" {
                                a href="/console/events" { "Events" }
                                a href="/console/access-log" { "Access log" }
                                a href="/console/users" { "Users" }
                            }
                        }
                        form method="post" action="/console/logout" {
                            span { (session.user_name) " (" (session.role) ") " }
                            input type="hidden" name="csrf" value=(session.csrf_token);
                            button type="submit" id="logout" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The sign-in form; `error` says why the last attempt failed.
pub(super) fn login(csrf: &str, user_name: &str, error: Option<&str>) -> Markup {
    page(
        "Sign in",
        None,
        html! {
            form.card method="post" action="/console/login" {
                h1 { "Sign in" }
                @if let Some(error) = error {
                    p.error id="error" { (error) }
                }
                input type="hidden" name="csrf" value=(csrf);
                label for="username" { "User name" }
                input id="username" name="username" autocomplete="username" required value=(user_name);
                label for="password" { "Password" }
                input id="password" name="password" type="password" autocomplete="current-password" required;
                button type="submit" id="sign-in" { "Sign in" }
            }
        },
    )
}

/// The search box: where a signed-in agent lands.
pub(super) fn search(session: &ConsoleSession, query: &str, outcome: Option<Markup>) -> Markup {
    page(
        "Search",
        Some(session),
        html! {
            h1 { "Find a customer" }
            p.muted { "Signed in as " (session.user_name) " (" (session.role) ")." }
            form.inline method="get" action="/console/search" {
                label for="q" { "appAccountToken, originalTransactionId, transactionId or order ID" }
                input id="q" name="q" size="48" required value=(query) autofocus;
                button type="submit" id="search" { "Search" }
            }
            @if let Some(outcome) = outcome { (outcome) }
        },
    )
}

/// A page that only says something: the console is off, a form expired.
pub(super) fn message(title: &str, text: &str) -> Markup {
    page(
        title,
        None,
        html! {
            div.card {
                h1 { (title) }
                p { (text) }
                p { a href="/console/login" { "Sign in" } }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_in_thousandths() {
        assert_eq!(price(Some(9990), Some("USD")), "9.99 USD");
        assert_eq!(price(Some(1234), Some("JPY")), "1.234 JPY");
        assert_eq!(price(Some(-500), None), "-0.50");
        assert_eq!(price(None, Some("USD")), "–");
    }

    #[test]
    fn money_in_the_currency_minor_unit() {
        assert_eq!(money(3_996, "USD"), "4.00 USD");
        assert_eq!(money(15_000, "USD"), "15.00 USD");
        assert_eq!(money(-4_995, "EUR"), "-5.00 EUR");
        assert_eq!(money(1_499, "JPY"), "1 JPY");
        assert_eq!(money(1_234, "KWD"), "1.234 KWD");
        assert_eq!(money(0, "?"), "0.00 ?");
        assert_eq!(money(i64::MIN, "JPY"), "-9223372036854776 JPY");
        assert_eq!(money(i64::MAX, "USD"), "9223372036854775.81 USD");
    }

    #[test]
    fn percentages_in_thousandths() {
        assert_eq!(percentage(40_000), "40%");
        assert_eq!(percentage(67_932), "67.932%");
        assert_eq!(percentage(15), "0.015%");
        assert_eq!(percentage(i64::MIN), "-9223372036854775.808%");
    }

    #[test]
    fn dates_in_utc() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(moment(86_399_000), "1970-01-01 23:59:59");
        assert_eq!(moment(i64::MAX), i64::MAX.to_string());
    }
}
