//! kill -9 while events are being delivered: two instances share the
//! database and the load, a receiver refuses the first attempt at 30% of
//! the events, and one instance is killed mid-load and mid-delivery. After
//! it restarts, every event of every stored notification has reached the
//! receiver at least once, in each item's order, none for a notification
//! that was not stored; an event received twice is the same event.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{client, config, on_suite_backend, pki, spawn_serve, TempDir, TestApp};
use crate::ledger::{renewal, tx, DAY};
use crate::receiver::{new_secret, Cue, Receiver};
use appstore_ledger::clock::Clock as _;

const BIN: &str = env!("CARGO_BIN_EXE_appstore-ledger");
/// 500 subscriptions, four notifications each.
const ITEMS: usize = 500;
const NOTIFICATIONS: usize = ITEMS * 4;
const CONCURRENCY: usize = 32;
const KILL_AFTER: usize = 700;

/// The `n`th notification of subscription `i`: bought, then auto-renew
/// off, on, off.
fn body(pki: &crate::common::pki::TestPki, i: usize, n: usize, now: i64) -> String {
    let otid = format!("7{i:015}");
    let start = now - DAY;
    let (kind, subtype, auto) = match n {
        0 => ("SUBSCRIBED", "INITIAL_BUY", 1),
        1 | 3 => ("DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_DISABLED", 0),
        _ => ("DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_ENABLED", 1),
    };
    let signed = start + n as i64 * 1000;
    let mut spec = crate::common::payloads::NotificationSpec::new(kind, format!("kev-{i:04}-{n}"));
    spec.subtype = Some(subtype);
    spec.signed_date = signed;
    spec.status = Some(1);
    spec.transaction = Some(tx(
        &otid,
        &format!("6{i:015}"),
        "monthly",
        start,
        start + 30 * DAY,
    ));
    spec.renewal = Some(renewal(&otid, "monthly", auto, signed));
    json!({ "signedPayload": spec.sign(pki) }).to_string()
}

/// First attempts at three events in ten are refused (by the event id).
fn refuses_first(id: &str) -> bool {
    id.bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 10
        < 3
}

#[tokio::test]
async fn sigkill_while_delivering_loses_no_event_and_keeps_each_items_order() {
    let secret = new_secret(9);
    let receiver = Receiver::start(
        &[&secret],
        Box::new(|id, _, n| {
            if n == 0 && refuses_first(id) {
                Cue::Status(500)
            } else {
                Cue::Ok
            }
        }),
    )
    .await;
    let (pki, dir) = (pki(), TempDir::new());
    // A short claim lease: the survivor takes the killed one's claims soon.
    let extra = format!(
        "[events]\nclaim_lease_seconds = 3\n[[events.endpoints]]\nname = \"backend\"\nurl = \"{}\"\nsecret = \"{secret}\"\ntimeout_ms = 2000\n",
        receiver.url
    );
    let (text, pg) = on_suite_backend(&dir, config(&dir, &pki, "", &extra)).await;
    let config_path = dir.path("config.toml");
    std::fs::write(&config_path, &text).unwrap();
    let serve = || {
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--config"])
            .arg(&config_path)
            // `listening` is an info line: spawn_serve waits for it.
            .env("APPSTORE_LEDGER__LOG__LEVEL", "info");
        let (child, addr, lines) = spawn_serve(&mut command);
        std::thread::spawn(move || lines.for_each(drop));
        (child, addr)
    };
    let (mut doomed, doomed_addr) = serve();
    let (mut survivor, survivor_addr) = serve();

    let now = appstore_ledger::clock::SystemClock.now().as_millis();
    let bodies: Arc<Vec<String>> = Arc::new(
        (0..NOTIFICATIONS)
            .map(|k| body(&pki, k % ITEMS, k / ITEMS, now))
            .collect(),
    );
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let killed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let next = Arc::new(AtomicUsize::new(0));
    let pid = doomed.id();
    let http = client();
    let mut senders = tokio::task::JoinSet::new();
    for s in 0..CONCURRENCY {
        let (http, bodies, acknowledged, next, killed) = (
            http.clone(),
            Arc::clone(&bodies),
            Arc::clone(&acknowledged),
            Arc::clone(&next),
            Arc::clone(&killed),
        );
        let urls = [
            format!("http://{doomed_addr}/v2/notifications"),
            format!("http://{survivor_addr}/v2/notifications"),
        ];
        senders.spawn(async move {
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= NOTIFICATIONS {
                    return;
                }
                // As Apple would: again until acknowledged, here through
                // whichever instance answers (a load balancer's choice).
                for attempt in 0..50 {
                    let to = if killed.load(Ordering::Relaxed) {
                        1
                    } else {
                        (s + attempt) % 2
                    };
                    let sent = http.post(&urls[to]).body(bodies[k].clone()).send().await;
                    let Ok(response) = sent else { continue };
                    let ok = response.status() == 200;
                    let body: Value = response.json().await.unwrap_or_default();
                    if ok && matches!(body["status"].as_str(), Some("stored" | "duplicate")) {
                        let mut acknowledged = acknowledged.lock().unwrap();
                        acknowledged.insert(k);
                        if acknowledged.len() == KILL_AFTER {
                            crate::helpers::kill_9(pid);
                            killed.store(true, Ordering::Relaxed);
                        }
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
    }
    senders.join_all().await;
    crate::helpers::assert_killed(&mut doomed);
    assert_eq!(acknowledged.lock().unwrap().len(), NOTIFICATIONS);

    // The killed instance restarts; the survivor went on meanwhile.
    let app = TestApp::spawn_on(pki, dir, &text, pg).await;
    let stored: BTreeSet<String> =
        sqlx::query_scalar::<_, String>("SELECT notification_uuid FROM notifications")
            .fetch_all(&mut app.db().await)
            .await
            .unwrap()
            .into_iter()
            .collect();
    assert_eq!(stored.len(), NOTIFICATIONS);
    let id_set = |events: &[Value]| -> BTreeSet<String> {
        events
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let mut events = crate::events::when_shown(&app, 1, 1000).await;
    let mut ids = id_set(&events);
    for _ in 0..1200 {
        let accepted: BTreeSet<String> = receiver.accepted_counts().into_keys().collect();
        if ids.is_subset(&accepted) {
            if accepted.is_subset(&ids) {
                break;
            }
            // Delivered, yet not in the feed as read: it was read before
            // it showed them (on PostgreSQL an event shows once every
            // transaction older than it has ended). Read it again.
            events = crate::events::all_events(&app, 1000).await;
            ids = id_set(&events);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Each subscription: granted, then three auto-renew changes (fewer when
    // a later change was folded first and an earlier one then changed
    // nothing told).
    assert!(events.len() >= ITEMS * 2, "{} events", events.len());
    for e in &events {
        let cause = e["cause"].as_str().unwrap();
        assert!(stored.contains(cause), "an event of {cause}, never stored");
    }
    let accepted: BTreeSet<String> = receiver.accepted_counts().into_keys().collect();
    let missing: Vec<&String> = ids.difference(&accepted).collect();
    assert!(
        missing.is_empty(),
        "{} events never delivered",
        missing.len()
    );
    let unknown: Vec<&String> = accepted.difference(&ids).collect();
    assert!(
        unknown.is_empty(),
        "events the feed does not hold: {unknown:?}"
    );
    assert_eq!(receiver.out_of_order(), Vec::<String>::new());
    // Duplicates (a kill between the 2xx and its record) share an id and
    // are the same event.
    let mut bodies_by_id: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in receiver.received() {
        bodies_by_id
            .entry(r.id.clone())
            .or_default()
            .insert(r.body["data"].to_string());
        assert!(r.verified, "{}", r.id);
    }
    assert!(bodies_by_id.values().all(|b| b.len() == 1));
    survivor.kill().unwrap();
    let _ = survivor.wait();
}

// The same tests on PostgreSQL, each on a fresh database there.
on_postgres! {
    sigkill_while_delivering_loses_no_event_and_keeps_each_items_order,
}
