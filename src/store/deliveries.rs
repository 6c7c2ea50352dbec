//! Webhook deliveries of entitlement events (statements in
//! sql/deliveries.rs). Each endpoint follows the feed with a cursor of its
//! own. A round takes the feed's next page for a while (the fan-out lease:
//! one round at a time), sends the events it wants before writing anything
//! for them, and keeps one row per event with what came of its attempt
//! (a row written, claimed and updated for each event held ingest's writer
//! twice as long). Retries are rows: an instance claims due ones for a
//! while (the claim lease), sends them, and keeps what the endpoint
//! answered. The next event of an item goes only once the one before it is
//! delivered or given up, so an item's events arrive in order: an event
//! whose item has a row still pending, or an earlier event in the round,
//! waits as a row.

use std::collections::{HashMap, HashSet};

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

/// A delivery a round is to attempt (a row it claimed, or an event of the
/// feed's page it took): the event to send and how it went so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub row: DeliveryRow,
    pub event_id: String,
    pub attempts: i64,
    pub created_at: i64,
    pub first_attempt_at: Option<i64>,
    pub event_type: String,
    pub occurred_at: i64,
    /// The event as consumers receive it (JSON).
    pub data: String,
}

/// Where a delivery is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryRow {
    /// A row claimed by this round.
    Claimed(i64),
    /// None yet: an event of the feed's page this round took, sent before
    /// any row is written (one row, with its outcome, when the round ends).
    Fresh(NewDelivery),
}

/// A delivery to make: an event and its place in its item's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    pub(in crate::store) event_id: String,
    /// `kind:item_id`.
    pub(in crate::store) item_key: String,
    pub(in crate::store) sequence: i64,
}

impl NewDelivery {
    pub(in crate::store) fn of(event: &FeedEvent) -> NewDelivery {
        NewDelivery {
            event_id: event.event_id.clone(),
            item_key: format!("{}:{}", event.kind, event.item_id),
            sequence: event.sequence,
        }
    }
}

/// The feed's page a round took (the fan-out lease), to give back with
/// the round's results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanOut {
    /// The page's last event: the endpoint's cursor once the round ends.
    end: (i64, i64),
    /// When the round took it: its rows' `created_at`.
    at: i64,
    /// Events behind one of their item's sent in the round: rows due once
    /// the round's results are kept.
    behind: Vec<NewDelivery>,
}

/// What a round takes: how many feed events it read, the deliveries to
/// attempt, and the feed's page when it took one.
#[derive(Debug, Default)]
pub struct Taken {
    pub read: usize,
    pub deliveries: Vec<Delivery>,
    pub fan_out: Option<FanOut>,
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

/// The result of an attempt at a delivery (its `row`), made at `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryResult {
    pub row: DeliveryRow,
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
    /// One step of a sink's loop. The feed's next page, if no other round
    /// holds it, is taken for `claim` until `until` (the fan-out lease):
    /// each event `wants` takes is sent by this round before any row is
    /// written for it, unless its item has a delivery still to make there
    /// or an earlier event in the page (those wait as rows, in order). Then
    /// up to `limit` due deliveries are claimed likewise (each the first
    /// undelivered event of its item, none another instance holds, none
    /// while the endpoint is disabled), in one write transaction. Reads
    /// first: an idle sink takes no write lock.
    pub async fn take_deliveries(
        &self,
        endpoint: &str,
        wants: impl Fn(&FeedEvent) -> bool,
        claim: &str,
        until: i64,
        limit: i64,
    ) -> Result<Taken, StoreError> {
        let now = self.now();
        let (cursor, events, due) = on_read!(self, |conn| {
            let Some(cursor) = Sql::endpoint_cursor(conn, endpoint).await? else {
                return Ok((None, Vec::new(), false));
            };
            let events = Sql::feed_page(conn, cursor, i64::MIN, FAN_OUT_PAGE).await?;
            let due = events.is_empty() && Sql::deliveries_due(conn, endpoint, now).await?;
            Ok((Some(cursor), events, due))
        })?;
        let Some(cursor) = cursor else {
            on_write!(self, |tx| Sql::open_endpoint(tx, endpoint).await)?;
            return Ok(Taken::default());
        };
        if events.is_empty() && !due {
            return Ok(Taken::default());
        }
        let last = events.last().map(|e| (e.txid, e.id));
        let wanted: Vec<(&FeedEvent, NewDelivery)> = events
            .iter()
            .filter(|e| wants(e))
            .map(|e| (e, NewDelivery::of(e)))
            .collect();
        let keys: Vec<&str> = wanted.iter().map(|(_, d)| d.item_key.as_str()).collect();
        let mut by_id: HashMap<&str, &FeedEvent> =
            events.iter().map(|e| (e.event_id.as_str(), e)).collect();
        let (fresh, later, claimed, read_apart) = on_write_relaxed!(self, |tx| {
            // Indexes into `wanted`: sent now, and kept after the round.
            let mut fresh = Vec::new();
            let mut later = None;
            if let Some(last) = last {
                if let Some(disabled) =
                    Sql::take_fan_out(tx, endpoint, cursor, claim, now, until).await?
                {
                    let pending = if disabled {
                        HashSet::new()
                    } else {
                        Sql::items_pending(tx, endpoint, &keys).await?
                    };
                    let mut waiting = Vec::new();
                    let mut behind = Vec::new();
                    let mut sending: HashSet<&str> = HashSet::new();
                    for (i, (_, delivery)) in wanted.iter().enumerate() {
                        let key = delivery.item_key.as_str();
                        if disabled || pending.contains(key) {
                            waiting.push(delivery);
                        } else if sending.contains(key) {
                            // Behind an event of its item sent in this
                            // round: a row once that one's is kept, or it
                            // could be claimed and sent before it.
                            behind.push(i);
                        } else {
                            sending.insert(key);
                            fresh.push(i);
                        }
                    }
                    Sql::insert_deliveries(tx, endpoint, &waiting, now).await?;
                    if fresh.is_empty() {
                        Sql::end_fan_out(tx, endpoint, claim, last).await?;
                    } else {
                        later = Some((last, behind));
                    }
                }
            }
            let room = limit.saturating_sub(i64::try_from(fresh.len()).unwrap_or(i64::MAX));
            let claimed = if room > 0 {
                Sql::claim_deliveries(tx, endpoint, claim, now, until, room).await?
            } else {
                Vec::new()
            };
            // Mostly this page's events; retries' events are read again.
            let missing: Vec<&str> = claimed
                .iter()
                .map(|c| c.event_id.as_str())
                .filter(|id| !by_id.contains_key(id))
                .collect();
            let read_apart = Sql::feed_events(tx, &missing).await?;
            Ok((fresh, later, claimed, read_apart))
        })?;
        by_id.extend(read_apart.iter().map(|e| (e.event_id.as_str(), e)));
        let mut deliveries: Vec<Delivery> = fresh
            .iter()
            .filter_map(|&i| wanted.get(i))
            .map(|(event, new)| Delivery {
                row: DeliveryRow::Fresh(new.clone()),
                event_id: event.event_id.clone(),
                attempts: 0,
                created_at: now,
                first_attempt_at: None,
                event_type: event.event_type.clone(),
                occurred_at: event.occurred_at,
                data: event.data.clone(),
            })
            .collect();
        // A claimed row whose event is gone (retention removed it) has
        // nothing to send: it stays claimed until its lease ends, as before.
        deliveries.extend(claimed.into_iter().filter_map(|c| {
            let event = by_id.get(c.event_id.as_str())?;
            Some(Delivery {
                row: DeliveryRow::Claimed(c.id),
                event_type: event.event_type.clone(),
                occurred_at: event.occurred_at,
                data: event.data.clone(),
                event_id: c.event_id,
                attempts: c.attempts,
                created_at: c.created_at,
                first_attempt_at: c.first_attempt_at,
            })
        }));
        let fan_out = later.map(|(end, behind)| FanOut {
            end,
            at: now,
            behind: behind
                .iter()
                .filter_map(|&i| wanted.get(i))
                .map(|(_, d)| d.clone())
                .collect(),
        });
        Ok(Taken {
            read: events.len(),
            deliveries,
            fan_out,
        })
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
    /// instance took over meanwhile keeps its own), with a row for each
    /// event the round sent from the feed's page, and moves the endpoint
    /// past that page; and the endpoint's health.
    pub async fn finish_deliveries(
        &self,
        endpoint: &str,
        claim: &str,
        results: &[DeliveryResult],
        fan_out: Option<&FanOut>,
    ) -> Result<(), StoreError> {
        if results.is_empty() && fan_out.is_none() {
            return Ok(());
        }
        let created_at = fan_out.map_or_else(|| self.now(), |f| f.at);
        on_write_relaxed!(self, |tx| {
            Sql::finish_deliveries(tx, endpoint, claim, results, created_at).await?;
            if let Some(fan_out) = fan_out {
                let behind: Vec<&NewDelivery> = fan_out.behind.iter().collect();
                Sql::insert_deliveries(tx, endpoint, &behind, fan_out.at).await?;
                Sql::end_fan_out(tx, endpoint, claim, fan_out.end).await?;
            }
            Ok(())
        })
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
            let wanted: Vec<NewDelivery> = events
                .iter()
                .filter(|e| wants(e))
                .map(NewDelivery::of)
                .collect();
            let wanted: Vec<&NewDelivery> = wanted.iter().collect();
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
            Sql::send_again(tx, endpoint, &[&NewDelivery::of(&event)], now).await?;
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
