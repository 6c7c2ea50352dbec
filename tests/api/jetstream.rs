//! Entitlement events published to NATS JetStream (`[[events.streams]]`),
//! read back by a durable consumer in the test: every event exactly once
//! by id, in each item's order, on a subject per app and type; and the
//! same after a kill -9 of the service mid-publish, JetStream dropping
//! what was published again under the same `Nats-Msg-Id`. The server is
//! `APPSTORE_LEDGER_TEST_NATS` (the README's test command names it).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use futures_util::StreamExt as _;
use serde_json::{json, Value};

use crate::deliveries::{history, HISTORY};
use crate::helpers::{client, config, on_suite_backend, pki, spawn_serve, TempDir, TestApp};
use crate::ledger::{renewal, tx, DAY};
use appstore_ledger::clock::Clock as _;

const BIN: &str = env!("CARGO_BIN_EXE_appstore-ledger");

/// The NATS server the tests may use, or a skip.
fn nats_url() -> Option<String> {
    let url = std::env::var("APPSTORE_LEDGER_TEST_NATS").ok();
    if url.is_none() {
        crate::common::skip("APPSTORE_LEDGER_TEST_NATS names no NATS server");
    }
    url
}

/// A stream of the test's own: its name, subject prefix and config lines.
struct TestStream {
    url: String,
    name: String,
    prefix: String,
}

impl TestStream {
    fn new(url: String) -> TestStream {
        let unique = uuid::Uuid::new_v4().simple().to_string();
        TestStream {
            url,
            name: format!("LEDGERTEST_{unique}"),
            prefix: format!("ledgertest.{unique}"),
        }
    }

    fn config(&self) -> String {
        format!(
            // A short claim lease: after a kill, the restarted instance
            // takes the dead one's claims soon.
            "[events]\nclaim_lease_seconds = 3\n[[events.streams]]\nname = \"bus\"\nurl = \"{}\"\nsubject_prefix = \"{}\"\nstream = \"{}\"\ntimeout_ms = 2000\n",
            self.url, self.prefix, self.name
        )
    }

    async fn context(&self) -> jetstream::Context {
        jetstream::new(async_nats::connect(self.url.as_str()).await.unwrap())
    }

    /// Reads with a durable consumer until `n` messages came or `rounds`
    /// tenths of a second passed, acknowledging each: `(Nats-Msg-Id,
    /// subject, body)`.
    async fn consume(&self, n: usize, rounds: usize) -> Vec<(String, String, Value)> {
        let js = self.context().await;
        let mut got = Vec::new();
        for _ in 0..rounds {
            if got.len() >= n {
                break;
            }
            let Ok(stream) = js.get_stream(&self.name).await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let consumer: jetstream::consumer::PullConsumer = stream
                .get_or_create_consumer(
                    "test",
                    jetstream::consumer::pull::Config {
                        durable_name: Some("test".into()),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            let mut batch = consumer
                .fetch()
                .max_messages(500)
                .expires(Duration::from_millis(100))
                .messages()
                .await
                .unwrap();
            while let Some(message) = batch.next().await {
                let message = message.unwrap();
                let id = message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("Nats-Msg-Id"))
                    .map(|v| v.to_string())
                    .unwrap_or_default();
                let body: Value = serde_json::from_slice(&message.payload).unwrap();
                got.push((id, message.subject.to_string(), body));
                message.ack().await.unwrap();
            }
        }
        got
    }

    async fn delete(&self) {
        let _ = self.context().await.delete_stream(&self.name).await;
    }
}

/// Each id once, and each item's events in sequence from 1, no gaps.
fn assert_once_and_in_order(got: &[(String, String, Value)]) {
    let ids: BTreeSet<&str> = got.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(ids.len(), got.len(), "an event came twice");
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    for (id, _, body) in got {
        assert_eq!(body["data"]["id"], id.as_str());
        let item = format!(
            "{}:{}",
            body["data"]["item"].as_str().unwrap(),
            body["data"]["answer"]["originalTransactionId"]
                .as_str()
                .unwrap()
        );
        let sequence = body["data"]["sequence"].as_i64().unwrap();
        let before = last.insert(item.clone(), sequence).unwrap_or(0);
        assert_eq!(sequence, before + 1, "{item}: #{sequence} after #{before}");
    }
}

#[tokio::test]
async fn a_scripted_history_reaches_the_stream_once_each_in_order() {
    let Some(url) = nats_url() else { return };
    let stream = TestStream::new(url);
    let app = TestApp::spawn_with_manual_clock(&stream.config()).await;
    history(&app, "js-1").await;
    history(&app, "js-2").await;
    let got = stream.consume(12, 600).await;
    assert_eq!(got.len(), 12);
    assert_once_and_in_order(&got);
    for otid in ["js-1", "js-2"] {
        let types: Vec<&str> = got
            .iter()
            .filter(|(_, _, b)| b["data"]["answer"]["originalTransactionId"] == otid)
            .map(|(_, _, b)| b["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, HISTORY, "{otid}");
    }
    // A subject per app and type.
    let (_, subject, _) = &got[0];
    assert_eq!(
        subject,
        &format!(
            "{}.{}.ENTITLEMENT_GRANTED",
            stream.prefix,
            crate::helpers::BUNDLE_ID
        )
    );
    // Nothing more comes (a second read finds nothing new).
    assert!(stream.consume(1, 10).await.is_empty());
    let feed = crate::events::when_shown(&app, 12, 100).await;
    let feed_ids: BTreeSet<&str> = feed.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let got_ids: BTreeSet<&str> = got.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(got_ids, feed_ids);
    stream.delete().await;
}

#[tokio::test]
async fn a_kill_mid_publish_leaves_every_event_in_the_stream_exactly_once() {
    const ITEMS: usize = 300;
    let Some(url) = nats_url() else { return };
    let stream = TestStream::new(url);
    let (pki, dir) = (pki(), TempDir::new());
    let (text, pg) = on_suite_backend(&dir, config(&dir, &pki, "", &stream.config())).await;
    let config_path = dir.path("config.toml");
    std::fs::write(&config_path, &text).unwrap();
    let (mut child, addr, lines) = spawn_serve(
        Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&config_path)
            .env("APPSTORE_LEDGER__LOG__LEVEL", "info"),
    );
    std::thread::spawn(move || lines.for_each(drop));

    // Each subscription bought, then its auto-renewal turned off: two
    // events each, in order.
    let now = appstore_ledger::clock::SystemClock.now().as_millis();
    let bodies: Arc<Vec<String>> = Arc::new(
        (0..ITEMS * 2)
            .map(|k| {
                let (i, n) = (k % ITEMS, k / ITEMS);
                let otid = format!("5{i:015}");
                let start = now - DAY;
                let signed = start + n as i64 * 1000;
                let mut spec = crate::common::payloads::NotificationSpec::new(
                    if n == 0 {
                        "SUBSCRIBED"
                    } else {
                        "DID_CHANGE_RENEWAL_STATUS"
                    },
                    format!("js-{i:04}-{n}"),
                );
                spec.subtype = Some(if n == 0 {
                    "INITIAL_BUY"
                } else {
                    "AUTO_RENEW_DISABLED"
                });
                spec.signed_date = signed;
                spec.status = Some(1);
                spec.transaction = Some(tx(
                    &otid,
                    &format!("4{i:015}"),
                    "monthly",
                    start,
                    start + 30 * DAY,
                ));
                spec.renewal = Some(renewal(&otid, "monthly", 1 - n as i64, signed));
                json!({ "signedPayload": spec.sign(&pki) }).to_string()
            })
            .collect(),
    );
    let acknowledged = Arc::new(Mutex::new(0usize));
    let next = Arc::new(AtomicUsize::new(0));
    let pid = child.id();
    let http = client();
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (http, bodies, acknowledged, next) = (
            http.clone(),
            Arc::clone(&bodies),
            Arc::clone(&acknowledged),
            Arc::clone(&next),
        );
        let url = format!("http://{addr}/v2/notifications");
        senders.spawn(async move {
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= bodies.len() {
                    return;
                }
                let Ok(response) = http.post(&url).body(bodies[k].clone()).send().await else {
                    return; // killed
                };
                if response.status() == 200 {
                    let mut acknowledged = acknowledged.lock().unwrap();
                    *acknowledged += 1;
                    if *acknowledged == 200 {
                        crate::helpers::kill_9(pid);
                    }
                }
            }
        });
    }
    senders.join_all().await;
    crate::helpers::assert_killed(&mut child);

    // Restarted: it publishes what was left, again what it had not
    // recorded as acknowledged; JetStream keeps each id once.
    let app = TestApp::spawn_on(pki, dir, &text, pg).await;
    let feed = crate::events::when_shown(&app, 200, 1000).await;
    assert!(feed.len() >= 200, "{} events", feed.len());
    let got = stream.consume(feed.len(), 600).await;
    assert_once_and_in_order(&got);
    let feed_ids: BTreeSet<&str> = feed.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let got_ids: BTreeSet<&str> = got.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(got_ids, feed_ids);
    stream.delete().await;
}

// The same tests on PostgreSQL, each on a fresh database there.
on_postgres! {
    a_scripted_history_reaches_the_stream_once_each_in_order,
    a_kill_mid_publish_leaves_every_event_in_the_stream_exactly_once,
}
