//! The job that sends an endpoint's events: it takes the feed's next page
//! and claims due retries, each for the claim lease, POSTs each signed, and
//! keeps what the endpoint answered. One loop per endpoint on every
//! instance: the page's lease and the claims, not a job lease, keep two
//! instances from sending one event at once, so several share the work.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{stream, StreamExt as _};

use super::next_attempt;
use super::sink::{Sent, Sink};
use crate::config::{takes, EndpointSettings, StreamSettings};
use crate::metrics::Metrics;
use crate::model::Timestamp;
use crate::stop::Stop;
use crate::store::{Delivery, DeliveryOutcome, DeliveryResult, Store};

/// How often an idle endpoint looks for new events: the most a new event
/// waits before its first attempt, when nothing else is being sent.
const POLL: Duration = Duration::from_millis(100);
/// The least time from one round's start to the next's while events keep
/// coming (a backlog goes at once): with the poll, what an event waits for
/// its first attempt at most. Each round costs ingest two write turns:
/// measured at 2,000 notifications a second, 600 ms gave ingest 2.3% more
/// than 400 ms (delivery p99 640 ms against 440 ms, the target being 1 s).
const PACE: Duration = Duration::from_millis(600);
/// Deliveries taken at once (the feed's page, up to 2,000, and due
/// retries): what a busy sink gets in a pace (about 2,000 events a second
/// here), so that one round's two write transactions take them all;
/// rounds of 512 took three for each pace, and ingest paid for each. A
/// round starts no attempt its claim cannot cover (see `attempt`), so even
/// a slow endpoint's large round stays within its lease.
const BATCH: i64 = 2048;
/// Requests to one sink at once.
const IN_FLIGHT: usize = 64;
/// Attempts at keeping a round's results before it gives up on them.
const FINISH_TRIES: u32 = 8;
/// How long to wait when the database does not answer.
const DATABASE_BACKOFF: Duration = Duration::from_secs(1);

/// The body of a delivery: the Standard Webhooks shape, `type`,
/// `timestamp` (when the event occurred) and `data` (the event).
pub fn body(event_type: &str, occurred_at: i64, data: &str) -> String {
    // `data` is the event as the fold wrote it, JSON already: checked
    // without building it again, and spliced in (a tree built and written
    // again for each delivery was a tenth of a busy sink's CPU).
    let data = if serde_json::from_str::<serde::de::IgnoredAny>(data).is_ok() {
        data
    } else {
        "null"
    };
    let quoted = |text: &str| serde_json::Value::from(text).to_string();
    let timestamp = quoted(&Timestamp::from_millis(occurred_at).to_string());
    let event_type = quoted(event_type);
    let mut body = String::with_capacity(data.len() + timestamp.len() + event_type.len() + 32);
    for part in [
        "{\"data\":",
        data,
        ",\"timestamp\":",
        &timestamp,
        ",\"type\":",
        &event_type,
        "}",
    ] {
        body.push_str(part);
    }
    body
}

/// What a round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// Nothing new, nothing due.
    Idle,
    /// Sent what it took; `full`: as many as a round takes, so more may
    /// be waiting.
    Sent { full: bool },
}

/// Sends one sink's events: an endpoint's or a stream's.
pub struct Deliverer {
    pub store: Store,
    /// The sink's name: its deliveries' `endpoint`.
    pub name: String,
    types: Option<Vec<String>>,
    apps: Option<Vec<String>>,
    timeout: Duration,
    sink: Arc<Sink>,
    pub metrics: Arc<Metrics>,
    /// This instance, as claims name it.
    pub holder: Arc<str>,
    pub claim_lease_ms: i64,
    claims: AtomicU64,
}

impl Deliverer {
    /// For an `[[events.endpoints]]`.
    pub fn new(
        store: Store,
        endpoint: EndpointSettings,
        metrics: Arc<Metrics>,
        holder: Arc<str>,
        claim_lease_ms: i64,
    ) -> Result<Deliverer, String> {
        Ok(Deliverer {
            sink: Arc::new(Sink::http(&endpoint)?),
            store,
            name: endpoint.name,
            types: endpoint.types,
            apps: endpoint.apps,
            timeout: Duration::from_millis(endpoint.timeout_ms),
            metrics,
            holder,
            claim_lease_ms,
            claims: AtomicU64::new(0),
        })
    }

    /// For an `[[events.streams]]`.
    pub fn for_stream(
        store: Store,
        stream: StreamSettings,
        metrics: Arc<Metrics>,
        holder: Arc<str>,
        claim_lease_ms: i64,
    ) -> Deliverer {
        Deliverer {
            sink: Arc::new(Sink::jetstream(&stream)),
            store,
            name: stream.name,
            types: stream.types,
            apps: stream.apps,
            timeout: Duration::from_millis(stream.timeout_ms),
            metrics,
            holder,
            claim_lease_ms,
            claims: AtomicU64::new(0),
        }
    }

    /// One round: new events become deliveries, and due deliveries are
    /// sent.
    pub async fn round(&self) -> Result<Round, crate::store::StoreError> {
        let name = self.name.as_str();
        // Unique to this instance, sink and round: two sinks' rounds must
        // never read each other's claims.
        let claim = format!(
            "{}/{name}/{}",
            self.holder,
            self.claims.fetch_add(1, Ordering::Relaxed)
        );
        let until = self.store.now().saturating_add(self.claim_lease_ms);
        let wants = |e: &crate::store::FeedEvent| {
            takes(
                self.types.as_deref(),
                self.apps.as_deref(),
                &e.event_type,
                e.bundle_id().as_deref(),
            )
        };
        let taken = self
            .store
            .take_deliveries(name, wants, &claim, until, BATCH)
            .await?;
        let deliveries = taken.deliveries;
        if deliveries.is_empty() {
            return Ok(if taken.read > 0 {
                Round::Sent { full: false }
            } else {
                Round::Idle
            });
        }
        let full = deliveries.len() >= usize::try_from(BATCH).unwrap_or(usize::MAX);
        // At most IN_FLIGHT requests to the sink at once, from this task:
        // sending is waiting, and a task for each was a cost of its own.
        let results: Vec<DeliveryResult> =
            stream::iter(deliveries.into_iter().map(|d| self.attempt(d, until)))
                .buffer_unordered(IN_FLIGHT)
                .collect()
                .await;
        // What was left unsent is due now: the next round at once.
        let full = full || results.iter().any(|r| r.outcome == DeliveryOutcome::Unsent);
        // What the endpoint answered is worth a few tries: lost, each of
        // these events would be sent again once the claim lapses.
        let mut tries = 0;
        loop {
            match self
                .store
                .finish_deliveries(name, &claim, &results, taken.fan_out.as_ref())
                .await
            {
                Ok(()) => return Ok(Round::Sent { full }),
                Err(error) if tries < FINISH_TRIES => {
                    tries += 1;
                    tracing::debug!(endpoint = name, error = %error.chain(), "delivery results not kept yet; trying again");
                    tokio::time::sleep(DATABASE_BACKOFF / 4).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// One attempt at `delivery`, held (claimed, or its page taken) until
    /// `until`.
    fn attempt(
        &self,
        delivery: Delivery,
        until: i64,
    ) -> impl std::future::Future<Output = DeliveryResult> + Send + 'static {
        let sink = Arc::clone(&self.sink);
        let name = self.name.clone();
        let timeout = self.timeout;
        let store = self.store.clone();
        let metrics = Arc::clone(&self.metrics);
        async move {
            let sent_at = store.now();
            // Started later, the attempt could still be running when the
            // claim lapses and another instance claims the delivery and
            // sends it too: a round's later attempts (a slow endpoint, a
            // large batch) are left to the next round instead.
            let timeout_ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
            if sent_at.saturating_add(timeout_ms) > until {
                return DeliveryResult {
                    row: delivery.row,
                    at: sent_at,
                    outcome: DeliveryOutcome::Unsent,
                };
            }
            let body = body(&delivery.event_type, delivery.occurred_at, &delivery.data);
            let bundle_id = crate::store::bundle_id_of(&delivery.data);
            let sent = sink
                .send(
                    &delivery.event_id,
                    &delivery.event_type,
                    bundle_id.as_deref(),
                    sent_at.div_euclid(1000),
                    body,
                    timeout,
                )
                .await;
            let at = store.now();
            let (status, error, label) = match sent {
                Sent::Answered(None) => (None, String::new(), "delivered"),
                Sent::Answered(Some(status)) => (
                    Some(status),
                    format!("HTTP {status}"),
                    match status {
                        200..=299 => "delivered",
                        410 => "gone",
                        _ => "rejected",
                    },
                ),
                Sent::Refused(why) => (None, why, "rejected"),
                Sent::TimedOut => (
                    None,
                    format!("no answer within {} ms", timeout.as_millis()),
                    "timeout",
                ),
                Sent::Unreachable(why) => (None, format!("not delivered: {why}"), "unreachable"),
            };
            let outcome = match label {
                "delivered" => {
                    metrics.event_delivered(&name, latency_ms(&delivery, at));
                    DeliveryOutcome::Delivered { status }
                }
                "gone" => DeliveryOutcome::Gone,
                _ => {
                    let failures = delivery.attempts.saturating_add(1);
                    let first = delivery.first_attempt_at.unwrap_or(at);
                    match next_attempt(failures, first, sent_at, at, &delivery.event_id) {
                        Some(next_attempt_at) => DeliveryOutcome::Retry {
                            status,
                            error,
                            next_attempt_at,
                        },
                        None => {
                            tracing::warn!(endpoint = %name, event_id = %delivery.event_id, %error,
                                "event delivery given up after three days");
                            metrics.event_delivery_given_up(&name);
                            DeliveryOutcome::Failed { status, error }
                        }
                    }
                }
            };
            metrics.event_delivery_attempt(&name, label);
            DeliveryResult {
                row: delivery.row,
                at,
                outcome,
            }
        }
    }
}

/// From the event to its 2xx: from when it occurred (the notification's
/// receipt, before its commit), or, for an event queued more than a minute
/// later (a replay, a backlog after downtime), from when it was queued.
fn latency_ms(delivery: &Delivery, at: i64) -> i64 {
    let start = if delivery.created_at.saturating_sub(delivery.occurred_at) > 60_000 {
        delivery.created_at
    } else {
        delivery.occurred_at
    };
    at.saturating_sub(start).max(0)
}

/// One delivery loop per endpoint, until `stop`.
pub fn spawn_deliveries(
    deliverers: Vec<Deliverer>,
    stop: &Stop,
) -> Vec<tokio::task::JoinHandle<()>> {
    deliverers
        .into_iter()
        .map(|deliverer| {
            let stop = stop.clone();
            tokio::spawn(async move {
                loop {
                    let started = tokio::time::Instant::now();
                    let wait = match deliverer.round().await {
                        // A backlog: the next batch at once.
                        Ok(Round::Sent { full: true }) => Duration::ZERO,
                        // Busy: a round's writes are its own transactions
                        // beside ingest's, so rounds are paced to take
                        // what came meanwhile together.
                        Ok(Round::Sent { full: false }) => PACE.saturating_sub(started.elapsed()),
                        Ok(Round::Idle) => POLL,
                        Err(error) => {
                            tracing::warn!(endpoint = %deliverer.name, error = %error.chain(),
                                "webhook deliveries: the database did not answer");
                            DATABASE_BACKOFF
                        }
                    };
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = stop.cancelled() => return,
                    }
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The event goes out as the fold stored it; what is not JSON goes out
    /// as null rather than as a body no consumer could read.
    #[test]
    fn a_body_carries_the_stored_event_and_null_for_what_is_not_json() {
        let data = r#"{"answer": {"bundleId": "com.example"}, "id": "evt_1"}"#;
        assert_eq!(
            body("ENTITLEMENT_GRANTED", 1_700_000_000_123, data),
            r#"{"data":{"answer": {"bundleId": "com.example"}, "id": "evt_1"},"timestamp":"2023-11-14T22:13:20.123Z","type":"ENTITLEMENT_GRANTED"}"#
        );
        assert_eq!(
            body("A\"B", 0, "{\"id\": 1"),
            r#"{"data":null,"timestamp":"1970-01-01T00:00:00Z","type":"A\"B"}"#
        );
        assert_eq!(
            crate::store::bundle_id_of(data),
            Some("com.example".to_owned())
        );
        assert_eq!(
            crate::store::bundle_id_of(r#"{"answer": {"bundleId": 7}}"#),
            None
        );
        assert_eq!(crate::store::bundle_id_of(r#"{"answer": null}"#), None);
    }
}
