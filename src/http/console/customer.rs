//! The customer pages: search, a customer's timeline, a stored payload.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::pages::{self, date, maybe_moment, moment, price};
use super::{message, open_page, show, svg, unavailable, AppState, Audience};
use crate::console::timeline::{steps, Mark, Step};
use crate::ledger::{ItemKey, Offer};
use crate::store::{FindingEntry, FindingFilter, ItemQuery, LedgerItem, RefundEntry, RefundFilter};

/// Percent-encodes a query value: everything but RFC 3986's unreserved
/// characters.
pub(super) fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The timeline of one subscription or purchase, by its originalTransactionId.
pub(super) fn timeline_url(original_transaction_id: &str) -> String {
    format!(
        "/console/customer?originalTransactionId={}",
        encode(original_transaction_id)
    )
}

/// The timeline of the customer who holds `item`: all their items by
/// appAccountToken when Apple gave one, else this subscription or purchase.
pub(super) fn customer_url(item: &LedgerItem) -> String {
    match &item.state.app_account_token {
        Some(token) => format!("/console/customer?appAccountToken={}", encode(token)),
        None => timeline_url(original_transaction_id(item)),
    }
}

pub(super) fn original_transaction_id(item: &LedgerItem) -> &str {
    item.state
        .original_transaction_id
        .as_deref()
        .unwrap_or(item.item.id())
}

#[derive(Deserialize)]
pub(super) struct SearchParams {
    #[serde(default)]
    q: String,
}

/// `GET /console/search?q=`: an appAccountToken, an originalTransactionId,
/// a transactionId, or (for apps with `[apps.api]`) an order ID; one match
/// leads to the customer's timeline.
pub(super) async fn search(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<SearchParams>,
) -> Response {
    let query = params.q.trim();
    let session = match open_page(&state, &headers, Audience::Staff, "search", query).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    if query.is_empty() {
        return Html(pages::search(&session, "", None).into_string()).into_response();
    }
    for by in [
        ItemQuery::AppAccountToken(crate::model::app_account_token_key(query)),
        ItemQuery::OriginalTransactionId(query.to_owned()),
        ItemQuery::TransactionId(query.to_owned()),
        ItemQuery::Purchase(query.to_owned()),
        ItemQuery::AppTransactionId(query.to_owned()),
    ] {
        match state.store.ledger_items(&by).await {
            Ok(items) => {
                if let Some(item) = items.first() {
                    return Redirect::to(&customer_url(item)).into_response();
                }
            }
            Err(_) => return unavailable(),
        }
    }
    let outcome = if crate::sync::looks_like_order_id(query) && !state.appstore_api.is_empty() {
        order(&state, query).await
    } else {
        Ok(
            html! { p.error id="not-found" { "Nothing is stored for " code { (query) } "." } }
                .into(),
        )
    };
    match outcome {
        Ok(Outcome::Found(url)) => Redirect::to(&url).into_response(),
        Ok(Outcome::Shown(markup)) | Err(markup) => {
            Html(pages::search(&session, query, Some(markup)).into_string()).into_response()
        }
    }
}

enum Outcome {
    Found(String),
    Shown(Markup),
}

impl From<Markup> for Outcome {
    fn from(markup: Markup) -> Self {
        Outcome::Shown(markup)
    }
}

/// Look Up Order ID: the order's purchases, and whether we hold them.
async fn order(state: &AppState, order_id: &str) -> Result<Outcome, Markup> {
    let purchases =
        crate::sync::look_up_order(&state.appstore_api, &state.ingest, order_id)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "Look Up Order ID failed");
                html! { p.error { "Apple could not be asked about order " code { (order_id) } ": " (e.code()) "." } }
            })?;
    if purchases.is_empty() {
        return Ok(html! {
            p.error id="not-found" { "Nothing is stored for " code { (order_id) } ", and Apple knows no such order." }
        }
        .into());
    }
    for (original, _) in &purchases {
        let items = state
            .store
            .ledger_items(&ItemQuery::OriginalTransactionId(original.clone()))
            .await
            .map_err(|_| html! { p.error { "The database did not answer." } })?;
        if let Some(item) = items.first() {
            return Ok(Outcome::Found(customer_url(item)));
        }
    }
    Ok(html! {
        p.error id="not-received" {
            "Apple's order " code { (order_id) } " holds these purchases, but no notification about them is stored here: "
            "Apple has not sent one, or it did not reach us (see Delivery health)."
        }
        ul { @for (original, transaction) in &purchases {
            li { "transactionId " code { (transaction) } ", originalTransactionId " code { (original) } }
        } }
    }
    .into())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CustomerParams {
    app_account_token: Option<String>,
    original_transaction_id: Option<String>,
}

/// What one item's part of the timeline shows.
pub struct ItemStory {
    pub item: LedgerItem,
    /// Its notifications and Apple's answers in the ledger's order, each
    /// with the state after it.
    pub steps: Vec<Step>,
    /// When each notification or answer reached us, by its id.
    pub arrived: HashMap<String, i64>,
    pub refunds: Vec<RefundEntry>,
    pub findings: Vec<FindingEntry>,
    /// When the item's customer withdrew consent (RESCIND_CONSENT), if so.
    pub consent_rescinded: Option<i64>,
}

async fn story(state: &AppState, item: LedgerItem) -> Result<ItemStory, crate::store::StoreError> {
    let original = original_transaction_id(&item).to_owned();
    let events = state.store.item_events(&item.item).await?;
    let refunds = state
        .store
        .refunds(&RefundFilter {
            original_transaction_id: Some(original.clone()),
            limit: i64::MAX,
            ..RefundFilter::default()
        })
        .await?
        .into_iter()
        // A purchase shares its originalTransactionId with other purchases.
        .filter(|r| match &item.item {
            ItemKey::Subscription(_) => true,
            ItemKey::Purchase(id) => r.refund.transaction_id.as_deref() == Some(id),
        })
        .collect();
    let findings = state
        .store
        .findings(&FindingFilter {
            original_transaction_id: Some(original),
            limit: 200,
            ..FindingFilter::default()
        })
        .await?;
    let payloads: Vec<&str> = events.iter().map(|e| e.payload.as_str()).collect();
    let (steps, _) = steps(&item.item, &payloads);
    Ok(ItemStory {
        item,
        steps,
        arrived: events.into_iter().map(|e| (e.id, e.arrived_at)).collect(),
        refunds,
        findings,
        consent_rescinded: None,
    })
}

/// `GET /console/customer?appAccountToken=|originalTransactionId=`
pub(super) async fn customer(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<CustomerParams>,
) -> Response {
    let (query, subject) = match (params.app_account_token, params.original_transaction_id) {
        (Some(token), None) => (
            ItemQuery::AppAccountToken(crate::model::app_account_token_key(&token)),
            format!("appAccountToken={token}"),
        ),
        (None, Some(id)) => (
            ItemQuery::OriginalTransactionId(id.clone()),
            format!("originalTransactionId={id}"),
        ),
        _ => {
            return message(
                StatusCode::BAD_REQUEST,
                "Which customer?",
                "Give an appAccountToken or an originalTransactionId.",
            )
        }
    };
    let session = match open_page(&state, &headers, Audience::Staff, "timeline", &subject).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let mut items = match state.store.ledger_items(&query).await {
        Ok(items) => items,
        Err(_) => return unavailable(),
    };
    if items.is_empty() {
        return message(
            StatusCode::NOT_FOUND,
            "Nothing stored",
            "No subscription or purchase is stored for this customer.",
        );
    }
    items.sort_by_key(|item| {
        (
            item.item.kind() != "subscription",
            item.state.original_purchase_date,
        )
    });
    // The customers' withdrawn consents, asked once for all their items.
    let mut customers: Vec<String> = items
        .iter()
        .filter_map(|item| item.state.app_transaction_id.clone())
        .collect();
    customers.sort();
    customers.dedup();
    let rescinded: HashMap<String, i64> = match state.store.rescinded_consents(&customers).await {
        Ok(found) => found
            .into_iter()
            .map(|c| (c.app_transaction_id, c.rescinded_date))
            .collect(),
        Err(_) => return unavailable(),
    };
    let mut stories = Vec::with_capacity(items.len());
    for item in items {
        match story(&state, item).await {
            Ok(mut story) => {
                story.consent_rescinded = story
                    .item
                    .state
                    .app_transaction_id
                    .as_ref()
                    .and_then(|customer| rescinded.get(customer).copied());
                stories.push(story);
            }
            Err(_) => return unavailable(),
        }
    }
    let keys: Vec<crate::ledger::ItemKey> = stories.iter().map(|s| s.item.item.clone()).collect();
    let events = match super::events::customer_events(&state, &keys).await {
        Ok(events) => events,
        Err(response) => return response,
    };
    let now = state.store.clock().now().as_millis();
    let body = html! {
        (timeline_page(&subject, &stories, now))
        (events)
        @if !state.appstore_api.is_empty() {
            (super::extend::extend_forms(&stories, &session.csrf_token))
        }
        @if session.role == "admin" && !state.appstore_api.is_empty() {
            (super::account::account_forms(&stories, &session.csrf_token))
        }
    };
    show("Customer", &session, body)
}

fn yes_no(value: bool) -> Markup {
    if value {
        html! { span.yes { "yes" } }
    } else {
        html! { span.no { "no" } }
    }
}

pub(super) fn timeline_page(subject: &str, stories: &[ItemStory], now: i64) -> Markup {
    // A state of the customer, not of one purchase: said once, on top.
    let rescinded = stories.iter().filter_map(|s| s.consent_rescinded).min();
    html! {
        h1 { "Customer " code { (subject) } }
        @if let Some(date) = rescinded {
            p.error id="consent" {
                "Consent RESCINDED on " (moment(date))
                ": a parent withdrew consent for this customer's use of the app (RESCIND_CONSENT). "
                "Apple stops the app from launching; end their sessions and delete what depended on that consent."
            }
        }
        p.muted { (stories.len()) " subscription(s) and purchase(s); dates in UTC; prices in the currency Apple gave." }
        @for story in stories { (item_section(story, now)) }
    }
}

fn item_section(story: &ItemStory, now: i64) -> Markup {
    let item = &story.item;
    let s = &item.state;
    let refunds: Vec<&RefundEntry> = story.refunds.iter().collect();
    let reversed: HashMap<&str, i64> = refunds
        .iter()
        .filter_map(|r| Some((r.refund.notification_uuid.as_str(), r.reversed_at?)))
        .collect();
    html! {
        section.item id=(format!("{}-{}", item.item.kind(), item.item.id())) {
            h2 {
                (item.item.kind()) " " code { (item.item.id()) } " · "
                (s.product_at(&item.item, now).unwrap_or("?"))
            }
            p {
                "Now: " span.pill id="status-now" { (s.status_at(&item.item, now).map_or("?", |x| x.as_str())) }
                " entitled " (yes_no(s.entitled_at(&item.item, now)))
                " · expires " (maybe_moment(s.expires_at(&item.item, now)))
                " · " (s.bundle_id.as_deref().unwrap_or("?")) " (" (s.environment.as_deref().unwrap_or("?")) ")"
                @if let Some(token) = &s.app_account_token { " · appAccountToken " code { (token) } }
                @if let Some(customer) = &s.app_transaction_id { " · appTransactionId " code { (customer) } }
                @if let Some(seats) = s.seats_at(&item.item, now) { " · seats " (seats) }
                @if let Some(offer) = s.offer_at(&item.item, now) { " · offer " (offer_text(offer)) }
                @if let (Some(asked), reason) = (s.refund_requested_date, &s.consumption_request_reason) {
                    " · refund requested " (moment(asked))
                    @if let Some(reason) = reason { " (" (reason) ")" }
                }
                @if let Some(date) = s.apple_status_date { " · Apple's last status answer " (moment(date)) }
            }
            (svg::timeline(s, &refunds, now))
            @if !story.findings.is_empty() {
                h3 { "Findings" }
                table.findings {
                    tr { th { "Kind" } th { "Detail" } th { "First seen" } th { "Resolved" } }
                    @for f in &story.findings {
                        tr class=(if f.resolved_at.is_none() { "open" } else { "resolved" }) {
                            td { (f.kind) } td { (f.detail) } td { (moment(f.first_seen)) }
                            td {
                                @match f.resolved_at {
                                    Some(at) => { (moment(at)) @if let Some(how) = &f.resolution { " (" (how) ")" } },
                                    None => { span.no { "open" } },
                                }
                            }
                        }
                    }
                }
            }
            @if !refunds.is_empty() {
                h3 { "Refunds" }
                table.refunds {
                    tr { th { "Refund date" } th { "Type" } th { "Transaction" } th { "Reason" } th { "Price" } th { "Reversed" } }
                    @for r in &refunds {
                        tr.refund {
                            td { (moment(r.refund_date)) } td { (r.refund.notification_type) }
                            td { (r.refund.transaction_id.as_deref().unwrap_or("?")) }
                            td { (r.refund.revocation_reason.map_or("–", reason_name)) }
                            td { (price(r.refund.price, r.refund.currency.as_deref())) }
                            td { (maybe_moment(r.reversed_at)) }
                        }
                    }
                }
            }
            h3 { "Notifications and Apple's answers, in order" }
            table.steps {
                tr {
                    th { "Signed" } th { "Received" } th { "Type" } th { "Product" } th { "Transaction" }
                    th { "Price" } th { "Status after" } th { "Entitled" } th { "Expires after" } th { "Payload" }
                }
                @for step in &story.steps {
                    @let event = &step.event;
                    @let t = event.transaction();
                    @let mark = Mark::of(event);
                    tr class=(mark.class()) {
                        td { (moment(event.effective_signed_date())) }
                        td { (maybe_moment(story.arrived.get(&event.notification_uuid).copied())) }
                        td.type {
                            (event.notification_type.as_str())
                            @if let Some(subtype) = &event.subtype { " · " (subtype.as_str()) }
                            @if let Some(reason) = event.data.as_ref().and_then(|d| d.consumption_request_reason.as_deref()) {
                                br; span.pill { "reason " (reason) }
                            }
                            @if let Some(offer) = t.and_then(Offer::of) {
                                br; span.pill { "offer " (offer_text(&offer)) }
                            }
                            @if let Some(seats) = t.and_then(|t| t.quantity).filter(|q| *q > 1) {
                                br; span.pill { (seats) " seats" }
                            }
                            @if let Some(at) = reversed.get(event.notification_uuid.as_str()) {
                                br; span.pill { "reversed " (date(*at)) }
                            }
                        }
                        td { (t.and_then(|t| t.product_id.as_deref()).unwrap_or("–")) }
                        td { (t.and_then(|t| t.transaction_id.as_deref()).unwrap_or("–")) }
                        td { (price(t.and_then(|t| t.price), t.and_then(|t| t.currency.as_deref()))) }
                        td.status { (step.after.status.as_str()) }
                        td { (yes_no(step.after.entitled)) }
                        td { (maybe_moment(step.after.expires_date)) }
                        td { a href=(format!("/console/payload/{}", encode(&event.notification_uuid))) { "decoded" } }
                    }
                }
            }
        }
    }
}

/// An offer as support reads it: type, identifier, period, discount.
fn offer_text(offer: &Offer) -> String {
    let kind = match offer.offer_type {
        Some(1) => "introductory",
        Some(2) => "promotional",
        Some(3) => "offer code",
        Some(4) => "win-back",
        Some(_) => "unknown type",
        None => "offer",
    };
    [
        Some(kind),
        offer.offer_identifier.as_deref(),
        offer.offer_period.as_deref(),
        offer.offer_discount_type.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" · ")
}

/// Apple's `revocationReason`.
pub(super) fn reason_name(reason: i64) -> &'static str {
    match reason {
        0 => "0 · other",
        1 => "1 · app issue",
        _ => "unknown",
    }
}

/// `GET /console/payload/{id}`: a notification's or Apple answer's decoded
/// payload.
pub(super) async fn payload(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let session = match open_page(&state, &headers, Audience::Staff, "payload", &id).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let stored = match state.store.stored_payload(&id).await {
        Ok(Some(stored)) => stored,
        Ok(None) => {
            return message(
                StatusCode::NOT_FOUND,
                "Not found",
                "No such payload is stored.",
            )
        }
        Err(_) => return unavailable(),
    };
    let pretty = serde_json::from_str::<serde_json::Value>(&stored.payload)
        .and_then(|value| serde_json::to_string_pretty(&value))
        .unwrap_or(stored.payload.clone());
    show(
        "Payload",
        &session,
        html! {
            h1 { "Payload " code { (id) } }
            p {
                (stored.source) ", arrived " (moment(stored.arrived_at))
                @if let Some(original) = &stored.original_transaction_id {
                    " · " a href=(timeline_url(original)) { "timeline" }
                }
            }
            pre id="payload" { (pretty) }
        },
    )
}
