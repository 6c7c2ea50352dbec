//! Pictures drawn on the server as inline SVG: a subscription's periods on
//! a time axis, and bar charts. Colours are presentation attributes, not
//! style attributes, which the Content-Security-Policy forbids.

use maud::{html, Markup};

use crate::ledger::{State, Status};
use crate::store::RefundEntry;

const WIDTH: f64 = 900.0;
const LEFT: f64 = 110.0;
const RIGHT: f64 = 20.0;

fn day(ms: i64) -> String {
    crate::http::console::pages::date(ms)
}

/// x of `ms` on an axis from `start` to `end`, in floating point: dates
/// Apple signed may lie anywhere in i64, and their differences with it.
fn x_of(ms: i64, start: i64, end: i64) -> f64 {
    let ms = ms.max(start).min(end);
    let span = (end as f64 - start as f64).max(1.0);
    LEFT + (ms as f64 - start as f64) / span * (WIDTH - LEFT - RIGHT)
}

fn status_colour(status: Status) -> &'static str {
    match status {
        Status::Active => "#34c759",
        Status::BillingGracePeriod => "#ffcc00",
        Status::BillingRetry => "#ff9500",
        Status::Expired => "#8e8e93",
        Status::Revoked => "#ff3b30",
    }
}

/// The periods bought (blue, red where revoked), the statuses Apple gave
/// over time (grace and billing retry in their colours), and a tick per
/// refund, from the first purchase to the last date known.
pub(super) fn timeline(state: &State, refunds: &[&RefundEntry], now: i64) -> Markup {
    let timeline = &state.timeline;
    let periods = &timeline.periods;
    let spans = &timeline.statuses;
    let Some(start) = periods
        .iter()
        .map(|p| p.purchase_date)
        .chain(spans.iter().map(|s| s.from))
        .min()
    else {
        return html! { p.muted { "No period to draw yet." } };
    };
    let last_known = periods
        .iter()
        .filter_map(|p| p.expires_date)
        .chain(spans.iter().map(|s| s.from))
        .chain(spans.iter().filter_map(|s| s.grace.map(|(_, until)| until)))
        .chain(refunds.iter().map(|r| r.refund_date))
        .max()
        .unwrap_or(start);
    // A purchase without an end reaches to today.
    let end = if periods.iter().any(|p| p.expires_date.is_none()) {
        last_known.max(now)
    } else {
        last_known
    };
    let end = end.max(start.saturating_add(86_400_000));
    let x = |ms: i64| x_of(ms, start, end);
    html! {
        svg.timeline role="img" aria-label="Periods, statuses and refunds over time"
            viewBox=(format!("0 0 {WIDTH} 132")) width="100%" {
            text x="4" y="30" font-size="12" fill="#1d1d1f" { "Periods" }
            text x="4" y="66" font-size="12" fill="#1d1d1f" { "Status" }
            text x="4" y="98" font-size="12" fill="#1d1d1f" { "Refunds" }
            @for period in periods {
                @let until = period.expires_date.unwrap_or(end);
                rect x=(format!("{:.1}", x(period.purchase_date)))
                    y="16" height="22" rx="3" fill="#0a84ff" stroke="#fff"
                    width=(format!("{:.1}", (x(until) - x(period.purchase_date)).max(2.0))) {
                    title {
                        (period.product_id.as_deref().unwrap_or("?")) " · transaction "
                        (period.transaction_id) ": " (day(period.purchase_date)) " to "
                        (period.expires_date.map_or_else(|| "no end".to_owned(), day))
                    }
                }
                @for revocation in &period.revocations {
                    @let to = revocation.until.unwrap_or(until).max(revocation.from);
                    rect.revoked x=(format!("{:.1}", x(revocation.from))) y="16" height="22"
                        fill="#ff3b30" width=(format!("{:.1}", (x(to) - x(revocation.from)).max(2.0))) {
                        title {
                            "Revoked " (day(revocation.from))
                            @if let Some(until) = revocation.until { ", reversed " (day(until)) }
                        }
                    }
                }
            }
            @for (span, next) in spans.iter().zip(spans.iter().skip(1).map(Some).chain([None])) {
                @let to = next.map_or(end, |next| next.from);
                rect.status x=(format!("{:.1}", x(span.from))) y="52" height="22"
                    fill=(status_colour(span.status))
                    width=(format!("{:.1}", (x(to) - x(span.from)).max(2.0))) {
                    title { (span.status.as_str()) " from " (day(span.from)) }
                }
                @if let Some((from, until)) = span.grace {
                    rect.grace x=(format!("{:.1}", x(from))) y="52" height="22" fill="#ffcc00"
                        stroke="#1d1d1f" stroke-dasharray="3 2"
                        width=(format!("{:.1}", (x(until) - x(from)).max(2.0))) {
                        title { "Billing grace period " (day(from)) " to " (day(until)) }
                    }
                }
            }
            @for refund in refunds.iter().copied() {
                @let at = x(refund.refund_date);
                line.refund x1=(format!("{at:.1}")) x2=(format!("{at:.1}")) y1="86" y2="108"
                    stroke=(if refund.reversed_at.is_some() { "#8e8e93" } else { "#ff3b30" })
                    stroke-width="3" {
                    title {
                        (refund.refund.notification_type) " " (day(refund.refund_date))
                        @if refund.reversed_at.is_some() { " (reversed)" }
                    }
                }
            }
            line x1=(LEFT) x2=(WIDTH - RIGHT) y1="116" y2="116" stroke="#c7c7cc" {}
            text x=(LEFT) y="129" font-size="11" fill="#6e6e73" { (day(start)) }
            text x=(WIDTH - RIGHT) y="129" font-size="11" fill="#6e6e73" text-anchor="end" { (day(end)) }
        }
    }
}

/// Bars of `values` (label, count), left to right, with the largest count
/// written on the axis.
pub(super) fn bars(label: &str, values: &[(String, i64)]) -> Markup {
    let most = values.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let slot = (WIDTH - LEFT - RIGHT) / values.len().max(1) as f64;
    html! {
        svg.bars role="img" aria-label=(label) viewBox=(format!("0 0 {WIDTH} 140")) width="100%" {
            text x="4" y="16" font-size="12" fill="#1d1d1f" { (most) }
            text x="4" y="118" font-size="12" fill="#1d1d1f" { "0" }
            @for (i, (name, count)) in values.iter().enumerate() {
                @let height = *count as f64 / most as f64 * 100.0;
                rect x=(format!("{:.1}", LEFT + i as f64 * slot + 1.0)) y=(format!("{:.1}", 114.0 - height))
                    width=(format!("{:.1}", (slot - 2.0).max(1.0))) height=(format!("{height:.1}"))
                    fill="#0a84ff" {
                    title { (name) ": " (count) }
                }
            }
            line x1=(LEFT) x2=(WIDTH - RIGHT) y1="114" y2="114" stroke="#c7c7cc" {}
            @if let (Some((first, _)), Some((last, _))) = (values.first(), values.last()) {
                text x=(LEFT) y="132" font-size="11" fill="#6e6e73" { (first) }
                text x=(WIDTH - RIGHT) y="132" font-size="11" fill="#6e6e73" text-anchor="end" { (last) }
            }
        }
    }
}
