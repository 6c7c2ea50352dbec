//! Webhook deliveries of entitlement events (statements in
//! sql/deliveries.rs). Each endpoint follows the feed with a cursor of its
//! own and turns each event it wants into a delivery; an instance claims
//! due deliveries for a while (the claim lease), sends them, and keeps what
//! the endpoint answered. The next event of an item is claimable only once
//! the one before it is delivered or given up, so an item's events arrive
//! in order.

use std::collections::HashMap;

use super::*;

row_struct! {
/// An event read from the feed for an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEvent {
    pub txid: i64,
    pub id: i64,
    pub event_id: String,
    pub kind: String,
    pub item_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub occurred_at: i64,
    pub data: String,
}
}

impl FeedEvent {
    /// The app the event is about (its answer's bundleId).
    pub fn bundle_id(&self) -> Option<String> {
        bundle_id_of(&self.data)
    }
}

/// The app an event (JSON) is about: its answer's bundleId. Read without
/// building the event's tree: every delivery asks it.
pub fn bundle_id_of(data: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Event<'a> {
        #[serde(borrow)]
        answer: Option<Answer<'a>>,
    }
    #[derive(serde::Deserialize)]
    struct Answer<'a> {
        #[serde(rename = "bundleId", borrow)]
        bundle_id: Option<std::borrow::Cow<'a, str>>,
    }
    let event: Event<'_> = serde_json::from_str(data).ok()?;
    event.answer?.bundle_id.map(std::borrow::Cow::into_owned)
}

/// A delivery an instance claimed: the event to send and how it went so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    pub event_id: String,
    pub attempts: i64,
    pub created_at: i64,
    pub first_attempt_at: Option<i64>,
    pub event_type: String,
    pub occurred_at: i64,
    /// The event as consumers receive it (JSON).
    pub data: String,
}

row_struct! {
/// A delivery row just claimed, before its event is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::store) struct Claimed {
    pub id: i64,
    pub event_id: String,
    pub attempts: i64,
    pub created_at: i64,
    pub first_attempt_at: Option<i64>,
}
}

/// What came of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// A 2xx (its status), or JetStream's acknowledgement (none).
    Delivered { status: Option<i64> },
    /// Anything else, or no answer: tried again at `next_attempt_at`.
    Retry {
        status: Option<i64>,
        error: String,
        next_attempt_at: i64,
    },
    /// Tried for three days: given up.
    Failed { status: Option<i64>, error: String },
    /// 410 Gone: the endpoint is disabled; the delivery waits for it.
    Gone,
    /// Not attempted: the claim would have lapsed before an attempt
    /// started now could end. Released for a later round, not counted.
    Unsent,
}

/// The result of an attempt at delivery `id`, made at `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryResult {
    pub id: i64,
    pub at: i64,
    pub outcome: DeliveryOutcome,
}

row_struct! {
/// An endpoint's health, for the console and operators.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndpointHealth {
    pub name: String,
    pub disabled_at: Option<i64>,
    pub disabled_why: Option<String>,
    pub last_success_at: Option<i64>,
    pub failing_since: Option<i64>,
    pub pending: i64,
    pub oldest_pending: Option<i64>,
    pub failed: i64,
}
}

row_struct! {
/// A delivery as the console and `GET` answers list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryEntry {
    pub endpoint: String,
    pub event_id: String,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_attempt_at: Option<i64>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub delivered_at: Option<i64>,
}
}

/// How many feed events one fan-out reads.
const FAN_OUT_PAGE: i64 = 2000;

impl Store {
    /// One step of a sink's loop, in one write transaction: the feed's
    /// next events become deliveries to `endpoint` (those `wants` takes)
    /// and its cursor moves past them; then up to `limit` due deliveries
    /// are claimed for `claim` until `until` (each the first undelivered
    /// event of its item, none another instance holds, none while the
    /// endpoint is disabled). How many feed events were read, and the
    /// deliveries claimed. Reads first: an idle sink takes no write lock.
    pub async fn take_deliveries(
        &self,
        endpoint: &str,
        wants: impl Fn(&FeedEvent) -> bool,
        claim: &str,
        until: i64,
        limit: i64,
    ) -> Result<(usize, Vec<Delivery>), StoreError> {
        let now = self.now();
        let (cursor, events, due) = on_read!(self, |conn| {
            let Some(cursor) = Sql::endpoint_cursor(conn, endpoint).await? else {
                return Ok((None, Vec::new(), false));
            };
            let events = Sql::feed_page(conn, cursor, i64::MIN, FAN_OUT_PAGE).await?;
            let due = events.is_empty() && Sql::deliveries_due(conn, endpoint, now).await?;
            Ok((Some(cursor), events, due))
        })?;
        if cursor.is_none() {
            on_write!(self, |tx| Sql::open_endpoint(tx, endpoint).await)?;
            return Ok((0, Vec::new()));
        }
        if events.is_empty() && !due {
            return Ok((0, Vec::new()));
        }
        let last = events.last().map(|e| (e.txid, e.id));
        let wanted: Vec<&FeedEvent> = events.iter().filter(|e| wants(e)).collect();
        let mut by_id: HashMap<&str, &FeedEvent> =
            events.iter().map(|e| (e.event_id.as_str(), e)).collect();
        let (claimed, read_apart) = on_write_relaxed!(self, |tx| {
            if let Some(last) = last {
                Sql::insert_deliveries(tx, endpoint, &wanted, now).await?;
                Sql::move_endpoint_cursor(tx, endpoint, last).await?;
            }
            let claimed = Sql::claim_deliveries(tx, endpoint, claim, now, until, limit).await?;
            // Mostly this page's events; retries' events are read again.
            let missing: Vec<&str> = claimed
                .iter()
                .map(|c| c.event_id.as_str())
                .filter(|id| !by_id.contains_key(id))
                .collect();
            let read_apart = Sql::feed_events(tx, &missing).await?;
            Ok((claimed, read_apart))
        })?;
        by_id.extend(read_apart.iter().map(|e| (e.event_id.as_str(), e)));
        // A claimed row whose event is gone (retention removed it) has
        // nothing to send: it stays claimed until its lease ends, as before.
        let deliveries = claimed
            .into_iter()
            .filter_map(|c| {
                let event = by_id.get(c.event_id.as_str())?;
                Some(Delivery {
                    id: c.id,
                    event_type: event.event_type.clone(),
                    occurred_at: event.occurred_at,
                    data: event.data.clone(),
                    event_id: c.event_id,
                    attempts: c.attempts,
                    created_at: c.created_at,
                    first_attempt_at: c.first_attempt_at,
                })
            })
            .collect();
        Ok((events.len(), deliveries))
    }

    /// Opens each endpoint not met before at the feed's end, before the
    /// service takes notifications: every event stored from then on goes
    /// to it.
    pub async fn open_endpoints(&self, endpoints: &[&str]) -> Result<(), StoreError> {
        for endpoint in endpoints {
            on_write!(self, |tx| Sql::open_endpoint(tx, endpoint).await)?;
        }
        Ok(())
    }

    /// Keeps what came of the attempts made under `claim` (a claim another
    /// instance took over meanwhile keeps its own), and the endpoint's
    /// health.
    pub async fn finish_deliveries(
        &self,
        endpoint: &str,
        claim: &str,
        results: &[DeliveryResult],
    ) -> Result<(), StoreError> {
        if results.is_empty() {
            return Ok(());
        }
        on_write_relaxed!(self, |tx| Sql::finish_deliveries(
            tx, endpoint, claim, results
        )
        .await)
    }

    /// Every endpoint's health, by name.
    pub async fn endpoints_health(&self) -> Result<Vec<EndpointHealth>, StoreError> {
        on_read!(self, |conn| Sql::endpoints_health(conn).await)
    }

    /// Enables an endpoint that answered 410; false when it is unknown.
    pub async fn enable_endpoint(&self, endpoint: &str) -> Result<bool, StoreError> {
        on_write!(self, |tx| Sql::enable_endpoint(tx, endpoint).await)
    }

    /// Delivers again to `endpoint` every event since `since` that `wants`
    /// takes (those delivered too, in their items' order); how many.
    pub async fn replay_events(
        &self,
        endpoint: &str,
        since: i64,
        wants: impl Fn(&FeedEvent) -> bool,
    ) -> Result<u64, StoreError> {
        let now = self.now();
        let mut after = (i64::MIN, i64::MIN);
        let mut count = 0u64;
        loop {
            let events = on_read!(self, |conn| Sql::feed_page(
                conn,
                after,
                since,
                FAN_OUT_PAGE
            )
            .await)?;
            let Some(last) = events.last().map(|e| (e.txid, e.id)) else {
                return Ok(count);
            };
            after = last;
            let wanted: Vec<&FeedEvent> = events.iter().filter(|e| wants(e)).collect();
            on_write!(self, |tx| Sql::send_again(tx, endpoint, &wanted, now).await)?;
            count = count.saturating_add(wanted.len() as u64);
        }
    }

    /// Delivers one event again to `endpoint`; false when there is no such
    /// event.
    pub async fn resend_event(&self, endpoint: &str, event_id: &str) -> Result<bool, StoreError> {
        let now = self.now();
        on_write!(self, |tx| {
            let Some(event) = Sql::feed_events(tx, &[event_id]).await?.pop() else {
                return Ok(false);
            };
            Sql::send_again(tx, endpoint, &[&event], now).await?;
            Ok(true)
        })
    }

    /// The deliveries of the events in `event_ids`, every endpoint's.
    pub async fn deliveries_of(
        &self,
        event_ids: &[String],
    ) -> Result<Vec<DeliveryEntry>, StoreError> {
        if event_ids.is_empty() {
            return Ok(Vec::new());
        }
        on_read!(self, |conn| Sql::deliveries_of(conn, event_ids).await)
    }
}
