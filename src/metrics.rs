//! What operators watch, in the Prometheus (OpenMetrics) text format:
//! outcomes by reason, how long the webhook, the verifier, the database
//! commit and the query API take, and the stored totals.
//!
//! One registry per service instance (no global recorder), so that tests and
//! several instances in one process keep their own counts.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// Latency buckets from 0.1 ms to about 6.5 s: a verification takes a tenth
/// of a millisecond, a commit under load tens, a stuck database seconds.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.000_1, 2.0, 17))
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    notifications: Family<Labels, Counter>,
    checks: Family<Labels, Counter>,
    webhook_seconds: Histogram,
    verification_seconds: Histogram,
    commit_seconds: Histogram,
    query_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    database_up: Gauge,
    stored: Family<Labels, Gauge>,
    quarantined: Family<Labels, Gauge>,
    open_findings: Family<Labels, Gauge>,
    connections_open: Gauge,
    connections_closed: Family<Labels, Counter>,
    jobs_held: Family<Labels, Gauge>,
    consumption_requests: Family<Labels, Counter>,
    consumption_answer_delay_seconds: Histogram,
    event_delivery_attempts: Family<Labels, Counter>,
    event_deliveries_given_up: Family<Labels, Counter>,
    event_delivery_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    events_pending: Family<Labels, Gauge>,
    /// Encoding takes `&Registry`; scrapes are serialised so that the gauges
    /// set for one scrape are the ones it renders.
    scrape: Mutex<()>,
}

impl Default for Metrics {
    /// Without a store's write batch sizes (a histogram of none).
    fn default() -> Self {
        Metrics::new(Histogram::new([1.0]))
    }
}

impl Metrics {
    /// With the store's write transactions' sizes
    /// (the store's `write_batch_sizes`).
    pub fn new(write_batch_sizes: Histogram) -> Self {
        let mut registry = Registry::default();
        registry.register(
            "appstore_ledger_write_batch_size",
            "notifications written in one committed transaction (on PostgreSQL, per writer connection)",
            write_batch_sizes,
        );
        let notifications = Family::<Labels, Counter>::default();
        registry.register(
            "appstore_ledger_notifications",
            "POSTs to the webhook, by outcome and code",
            notifications.clone(),
        );
        let checks = Family::<Labels, Counter>::default();
        registry.register(
            "appstore_ledger_checks",
            "periodic inconsistency checks, by outcome",
            checks.clone(),
        );
        let webhook_seconds = latency();
        registry.register(
            "appstore_ledger_webhook_seconds",
            "time from a notification's arrival to its answer",
            webhook_seconds.clone(),
        );
        let verification_seconds = latency();
        registry.register(
            "appstore_ledger_verification_seconds",
            "time to verify a signedPayload and its nested tokens",
            verification_seconds.clone(),
        );
        let commit_seconds = latency();
        registry.register(
            "appstore_ledger_commit_seconds",
            "time to store a notification durably (queue, transaction, fsync)",
            commit_seconds.clone(),
        );
        let query_seconds =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(latency);
        registry.register(
            "appstore_ledger_query_seconds",
            "time to answer the query API, by route",
            query_seconds.clone(),
        );
        let database_up = Gauge::default();
        registry.register(
            "appstore_ledger_database_up",
            "1 when the database answered this scrape, 0 when it did not",
            database_up.clone(),
        );
        let stored = Family::<Labels, Gauge>::default();
        registry.register(
            "appstore_ledger_stored_notifications",
            "notifications stored",
            stored.clone(),
        );
        let quarantined = Family::<Labels, Gauge>::default();
        registry.register(
            "appstore_ledger_quarantined_notifications",
            "notifications in quarantine",
            quarantined.clone(),
        );
        let open_findings = Family::<Labels, Gauge>::default();
        registry.register(
            "appstore_ledger_open_findings",
            "open findings of the inconsistency checker, by kind",
            open_findings.clone(),
        );
        let connections_open = Gauge::default();
        registry.register(
            "appstore_ledger_connections_open",
            "HTTP connections open now",
            connections_open.clone(),
        );
        let connections_closed = Family::<Labels, Counter>::default();
        registry.register(
            "appstore_ledger_connections_closed",
            "HTTP connections the server closed or refused, by limit \
             (header_read_timeout, idle_timeout, over_cap)",
            connections_closed.clone(),
        );
        let jobs_held = Family::<Labels, Gauge>::default();
        registry.register(
            "appstore_ledger_job_held",
            "1 while this instance holds the lease of a periodic job (check, backfill, reconcile)",
            jobs_held.clone(),
        );
        let consumption_requests = Family::<Labels, Counter>::default();
        registry.register(
            "appstore_ledger_consumption_requests",
            "consumption requests closed by this instance, by outcome \
             (sent, not_sent, missed)",
            consumption_requests.clone(),
        );
        // From Apple's request to its answer: minutes to hours.
        let consumption_answer_delay_seconds = Histogram::new(exponential_buckets(60.0, 2.0, 10));
        registry.register(
            "appstore_ledger_consumption_answer_delay_seconds",
            "time from Apple's consumption request to the answer Apple accepted",
            consumption_answer_delay_seconds.clone(),
        );
        let event_delivery_attempts = Family::<Labels, Counter>::default();
        registry.register(
            "appstore_ledger_event_delivery_attempts",
            "webhook delivery attempts, by endpoint and outcome \
             (delivered, rejected, timeout, unreachable, gone)",
            event_delivery_attempts.clone(),
        );
        let event_deliveries_given_up = Family::<Labels, Counter>::default();
        registry.register(
            "appstore_ledger_event_deliveries_given_up",
            "webhook deliveries given up after three days of failures, by endpoint",
            event_deliveries_given_up.clone(),
        );
        let event_delivery_seconds =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(latency);
        registry.register(
            "appstore_ledger_event_delivery_seconds",
            "time from an entitlement event (its notification's receipt) to the endpoint's 2xx",
            event_delivery_seconds.clone(),
        );
        let events_pending = Family::<Labels, Gauge>::default();
        registry.register(
            "appstore_ledger_events_pending",
            "entitlement events not yet delivered, by endpoint",
            events_pending.clone(),
        );
        Metrics {
            registry,
            event_delivery_attempts,
            event_deliveries_given_up,
            event_delivery_seconds,
            events_pending,
            consumption_requests,
            consumption_answer_delay_seconds,
            notifications,
            checks,
            webhook_seconds,
            verification_seconds,
            commit_seconds,
            query_seconds,
            database_up,
            stored,
            quarantined,
            open_findings,
            connections_open,
            connections_closed,
            jobs_held,
            scrape: Mutex::new(()),
        }
    }
}

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

/// The database's answers for one scrape; `None` when it did not answer.
#[derive(Debug, Clone, Default)]
pub struct StoredTotals {
    pub notifications: i64,
    pub quarantined: i64,
    /// Open findings per kind code, every kind (zeros too).
    pub open_findings: Vec<(String, i64)>,
    /// Events not yet delivered, per endpoint.
    pub events_pending: Vec<(String, i64)>,
}

impl Metrics {
    /// One POST to the webhook, with its outcome (and code, for failures).
    pub fn notification(&self, outcome: &str, code: Option<&str>, took: Duration) {
        let mut pairs = vec![("outcome", outcome)];
        pairs.extend(code.map(|code| ("code", code)));
        self.notifications.get_or_create(&labels(&pairs)).inc();
        self.webhook_seconds.observe(took.as_secs_f64());
    }

    pub fn check(&self, outcome: &str) {
        self.checks
            .get_or_create(&labels(&[("outcome", outcome)]))
            .inc();
    }

    pub fn verification(&self, took: Duration) {
        self.verification_seconds.observe(took.as_secs_f64());
    }

    pub fn commit(&self, took: Duration) {
        self.commit_seconds.observe(took.as_secs_f64());
    }

    pub fn query(&self, route: &str, took: Duration) {
        self.query_seconds
            .get_or_create(&labels(&[("route", route)]))
            .observe(took.as_secs_f64());
    }

    pub fn connection_opened(&self) {
        self.connections_open.inc();
    }

    pub fn connection_ended(&self) {
        self.connections_open.dec();
    }

    /// A connection closed or refused by one of the server's limits.
    pub fn connection_closed(&self, limit: &str) {
        self.connections_closed
            .get_or_create(&labels(&[("limit", limit)]))
            .inc();
    }

    pub fn job_held(&self, job: &str, held: bool) {
        self.jobs_held
            .get_or_create(&labels(&[("job", job)]))
            .set(i64::from(held));
    }

    /// A consumption request closed: `sent` (with the time from Apple's
    /// request to the accepted answer), `not_sent` or `missed`.
    pub fn consumption_request(&self, outcome: &str, delay: Option<Duration>) {
        self.consumption_requests
            .get_or_create(&labels(&[("outcome", outcome)]))
            .inc();
        if let Some(delay) = delay {
            self.consumption_answer_delay_seconds
                .observe(delay.as_secs_f64());
        }
    }

    /// One webhook delivery attempt and its outcome.
    pub fn event_delivery_attempt(&self, endpoint: &str, outcome: &str) {
        self.event_delivery_attempts
            .get_or_create(&labels(&[("endpoint", endpoint), ("outcome", outcome)]))
            .inc();
    }

    /// An event delivered, `latency_ms` after it occurred.
    pub fn event_delivered(&self, endpoint: &str, latency_ms: i64) {
        self.event_delivery_seconds
            .get_or_create(&labels(&[("endpoint", endpoint)]))
            .observe(Duration::from_millis(u64::try_from(latency_ms).unwrap_or(0)).as_secs_f64());
    }

    /// A delivery given up.
    pub fn event_delivery_given_up(&self, endpoint: &str) {
        self.event_deliveries_given_up
            .get_or_create(&labels(&[("endpoint", endpoint)]))
            .inc();
    }

    /// Every metric, with the stored totals of this scrape (left out, and
    /// `appstore_ledger_database_up` 0, when the database did not answer).
    pub fn render(&self, totals: Option<&StoredTotals>) -> String {
        let _scrape = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        self.stored.clear();
        self.quarantined.clear();
        self.open_findings.clear();
        self.events_pending.clear();
        self.database_up.set(i64::from(totals.is_some()));
        if let Some(totals) = totals {
            self.stored
                .get_or_create(&Vec::new())
                .set(totals.notifications);
            self.quarantined
                .get_or_create(&Vec::new())
                .set(totals.quarantined);
            for (endpoint, count) in &totals.events_pending {
                self.events_pending
                    .get_or_create(&vec![("endpoint", endpoint.clone())])
                    .set(*count);
            }
            for (kind, count) in &totals.open_findings {
                self.open_findings
                    .get_or_create(&vec![("kind", kind.clone())])
                    .set(*count);
            }
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_label_times_and_renders() {
        let m = Metrics::default();
        m.notification("stored", None, Duration::from_millis(3));
        m.notification("stored", None, Duration::from_millis(5));
        m.notification("rejected", Some("INVALID_\"SIG"), Duration::from_millis(1));
        m.verification(Duration::from_micros(150));
        let text = m.render(Some(&StoredTotals {
            notifications: 5,
            ..StoredTotals::default()
        }));
        assert!(
            text.contains("appstore_ledger_notifications_total{outcome=\"stored\"} 2"),
            "{text}"
        );
        assert!(text.contains("code=\"INVALID_\\\"SIG\""), "{text}");
        assert!(
            text.contains("\nappstore_ledger_stored_notifications 5\n"),
            "{text}"
        );
        assert!(
            text.contains("appstore_ledger_webhook_seconds_count 3"),
            "{text}"
        );
        assert!(
            text.contains("appstore_ledger_verification_seconds_bucket{le=\"0.0002\"} 1"),
            "{text}"
        );
        let down = m.render(None);
        assert!(down.contains("\nappstore_ledger_database_up 0\n"), "{down}");
        assert!(
            !down.contains("\nappstore_ledger_stored_notifications "),
            "{down}"
        );
    }
}
