//! Entitlement events delivered as signed webhooks to a receiver on
//! loopback: signatures by both secrets while one rotates, each event
//! accepted once and in its item's order through failures and timeouts,
//! retries on the test's clock, 410 disabling the endpoint, giving up after
//! three days, filters, replay and resend, and two instances sharing work.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use appstore_ledger::clock::{Clock as _, ManualClock};
use serde_json::Value;

use crate::events::when_shown;
use crate::helpers::TestApp;
use crate::ledger::{renewal, revoked, tx, Post, DAY, HOUR};
use crate::receiver::{always_ok, new_secret, Cue, Receiver};

/// `[[events.endpoints]]` for `url`, with `more` lines.
fn endpoint(name: &str, url: &str, secret: &str, more: &str) -> String {
    format!(
        "[[events.endpoints]]\nname = \"{name}\"\nurl = \"{url}\"\nsecret = \"{secret}\"\n{more}\n"
    )
}

/// A subscription bought, renewed, refunded and the refund reversed: six
/// events (GRANTED, EXPIRES_DATE_CHANGED, REFUNDED, REVOKED,
/// REFUND_REVERSED, GRANTED). Time passes on the test's clock.
pub(crate) async fn history(app: &TestApp, otid: &str) {
    let now = || app.clock().now().as_millis();
    let t1 = tx(
        otid,
        &format!("{otid}-t1"),
        "monthly",
        now(),
        now() + 30 * DAY,
    );
    Post::new(app, "SUBSCRIBED", now())
        .subtype("INITIAL_BUY")
        .status(1)
        .tx(t1)
        .renewal(renewal(otid, "monthly", 1, now()))
        .uuid(&format!("{otid}-n1"))
        .send()
        .await;
    app.clock().advance(Duration::from_millis(HOUR as u64));
    let t2 = tx(
        otid,
        &format!("{otid}-t2"),
        "monthly",
        now(),
        now() + 31 * DAY,
    );
    Post::new(app, "DID_RENEW", now())
        .status(1)
        .tx(t2.clone())
        .renewal(renewal(otid, "monthly", 1, now()))
        .uuid(&format!("{otid}-n2"))
        .send()
        .await;
    app.clock().advance(Duration::from_millis(HOUR as u64));
    Post::new(app, "REFUND", now())
        .status(5)
        .tx(revoked(t2.clone(), now(), "REFUND_FULL"))
        .renewal(renewal(otid, "monthly", 1, now()))
        .uuid(&format!("{otid}-n3"))
        .send()
        .await;
    app.clock().advance(Duration::from_millis(HOUR as u64));
    Post::new(app, "REFUND_REVERSED", now())
        .status(1)
        .tx(t2)
        .renewal(renewal(otid, "monthly", 1, now()))
        .uuid(&format!("{otid}-n4"))
        .send()
        .await;
}

pub(crate) const HISTORY: [&str; 6] = [
    "ENTITLEMENT_GRANTED",
    "EXPIRES_DATE_CHANGED",
    "REFUNDED",
    "ENTITLEMENT_REVOKED",
    "REFUND_REVERSED",
    "ENTITLEMENT_GRANTED",
];

/// Waits (real time, up to 60 s) until `done`, moving the service's clock
/// by `step` each time so that retries fall due.
async fn until(app: &TestApp, step: Duration, mut done: impl FnMut() -> bool) {
    for _ in 0..600 {
        if done() {
            return;
        }
        app.clock().advance(step);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(done(), "not done within 60 s");
}

fn types(received: &[crate::receiver::Received]) -> Vec<(String, String)> {
    received
        .iter()
        .map(|r| {
            (
                r.item().0,
                r.body["type"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The first endpoint's row of `events endpoints`: name, disabled,
/// last success, failing since, pending, oldest pending, failed.
fn endpoint_row(app: &TestApp) -> Vec<String> {
    let out = app.cli(&["events", "endpoints"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    out.stdout
        .lines()
        .nth(1)
        .unwrap()
        .split('\t')
        .map(str::to_owned)
        .collect()
}

async fn metric(app: &TestApp, line: &str) -> Option<String> {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(line)?.strip_prefix(' ').map(str::to_owned))
}

#[tokio::test]
async fn events_reach_the_endpoint_signed_once_each_and_in_order_through_failures() {
    let (current, previous) = (new_secret(1), new_secret(2));
    // The receiver checks both signatures: a consumer still on the
    // previous secret, and one already on the current one, both accept.
    let receiver = Receiver::start(
        &[&current, &previous],
        Box::new(|_, body: &Value, n| match (n, body["type"].as_str()) {
            // The first attempt at each event fails; a refund's first
            // attempt gets no answer in time instead.
            (0, Some("REFUNDED")) => Cue::Sleep(Duration::from_secs(2)),
            (0, _) => Cue::Status(500),
            _ => Cue::Ok,
        }),
    )
    .await;
    let config = endpoint(
        "backend",
        &receiver.url,
        &current,
        &format!("previous_secret = \"{previous}\"\ntimeout_ms = 500"),
    );
    let app = TestApp::spawn_with_manual_clock(&config).await;
    history(&app, "wh-1").await;
    history(&app, "wh-2").await;
    let feed = when_shown(&app, 12, 100).await;
    until(&app, Duration::from_secs(6), || {
        receiver.accepted().len() == 12
    })
    .await;

    assert_eq!(receiver.out_of_order(), Vec::<String>::new());
    let accepted = receiver.accepted();
    for otid in ["wh-1", "wh-2"] {
        let item = format!("subscription:{otid}");
        let of_item: Vec<&str> = accepted
            .iter()
            .filter(|r| r.item().0 == item)
            .map(|r| r.body["type"].as_str().unwrap())
            .collect();
        assert_eq!(of_item, HISTORY, "{otid}");
    }
    assert!(receiver.accepted_counts().values().all(|n| *n == 1));
    let received = receiver.received();
    assert!(
        received.iter().all(|r| r.verified),
        "{:?}",
        types(&received)
    );
    // Each event failed once (ten 500s, two timeouts), then was delivered.
    assert_eq!(received.len(), 24);
    // The same id as the feed's, and the Standard Webhooks body around the
    // feed's event.
    let first = accepted
        .iter()
        .find(|r| r.id == feed[0]["id"].as_str().unwrap())
        .unwrap();
    assert_eq!(first.body["type"], "ENTITLEMENT_GRANTED");
    assert_eq!(first.body["data"], feed[0]);
    let occurred = feed[0]["occurredAt"].as_i64().unwrap();
    assert_eq!(
        first.body["timestamp"],
        appstore_ledger::model::Timestamp::from_millis(occurred).to_string()
    );
    assert!(first.timestamp >= occurred / 1000);

    for (outcome, count) in [("delivered", "12"), ("rejected", "10"), ("timeout", "2")] {
        let line = format!(
            "appstore_ledger_event_delivery_attempts_total{{endpoint=\"backend\",outcome=\"{outcome}\"}}"
        );
        assert_eq!(metric(&app, &line).await.as_deref(), Some(count), "{line}");
    }
    assert_eq!(
        metric(&app, "appstore_ledger_events_pending{endpoint=\"backend\"}")
            .await
            .as_deref(),
        Some("0")
    );
    let row = endpoint_row(&app);
    assert_eq!(
        (&*row[0], &*row[1], &*row[4], &*row[6]),
        ("backend", "-", "0", "0")
    );
}

#[tokio::test]
async fn an_endpoint_answering_410_is_disabled_until_enabled_then_replay_and_resend_send_again() {
    let secret = new_secret(3);
    let receiver = Receiver::start(&[&secret], Box::new(|_, _, _| Cue::Status(410))).await;
    let app = TestApp::spawn_with_manual_clock(&endpoint("gone", &receiver.url, &secret, "")).await;
    history(&app, "wh-3").await;
    until(&app, Duration::from_secs(6), || {
        !receiver.received().is_empty()
    })
    .await;
    // Disabled: nothing more is sent, whatever time passes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.clock().advance(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 1);
    // All six pending once the feed shows them: on PostgreSQL an event
    // shows once every older transaction in its database has ended.
    let mut row = endpoint_row(&app);
    for _ in 0..50 {
        if row[4] == "6" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        row = endpoint_row(&app);
    }
    assert_ne!(row[1], "-", "disabled: {row:?}");
    assert_eq!(row[4], "6", "{row:?}");
    assert_eq!(receiver.received().len(), 1);

    receiver.cue(always_ok());
    let out = app.cli(&["events", "enable", "--endpoint", "gone"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "gone enabled\n");
    until(&app, Duration::from_secs(1), || {
        receiver.accepted().len() == 6
    })
    .await;
    assert_eq!(
        types(&receiver.accepted())
            .into_iter()
            .map(|(_, t)| t)
            .collect::<Vec<_>>(),
        HISTORY
    );

    // Replay everything since the start: the same six ids again, in order.
    receiver.forget_order();
    let out = app.cli(&["events", "replay", "--endpoint", "gone", "--since", "0"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.starts_with("6 events since"), "{}", out.stdout);
    until(&app, Duration::from_secs(1), || {
        receiver.accepted_counts().values().all(|n| *n == 2)
    })
    .await;
    let first_id = receiver.accepted()[0].id.clone();
    receiver.forget_order();
    let out = app.cli(&[
        "events",
        "resend",
        "--endpoint",
        "gone",
        "--event-id",
        &first_id,
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    until(&app, Duration::from_secs(1), || {
        receiver.accepted_counts()[&first_id] == 3
    })
    .await;
    for (args, want) in [
        (
            vec!["events", "replay", "--endpoint", "nobody", "--since", "0"],
            2,
        ),
        (
            vec![
                "events",
                "resend",
                "--endpoint",
                "gone",
                "--event-id",
                "evt_none",
            ],
            1,
        ),
    ] {
        assert_eq!(app.cli(&args).code, Some(want), "{args:?}");
    }
    assert_eq!(receiver.out_of_order(), Vec::<String>::new());
}

#[tokio::test]
async fn a_delivery_failing_for_three_days_is_given_up_and_the_next_one_goes() {
    let secret = new_secret(4);
    let clock = Arc::new(OnceLock::<Arc<ManualClock>>::new());
    let answers_clock = Arc::clone(&clock);
    // The first event of the item is refused every time; the rest accepted.
    let receiver = Receiver::start(
        &[&secret],
        Box::new(move |_, body: &Value, n| {
            if body["data"]["sequence"] == 1 {
                // The refusal of the second attempt comes three days after
                // it was sent (the service's clock moves meanwhile): the
                // three days are counted between attempts sent, as the
                // endpoint sees them, not up to when an answer came.
                if n == 1 {
                    if let Some(clock) = answers_clock.get() {
                        clock.advance(Duration::from_secs(3 * 86_400));
                    }
                }
                Cue::Status(503)
            } else {
                Cue::Ok
            }
        }),
    )
    .await;
    receiver.allow_gaps();
    let app =
        TestApp::spawn_with_manual_clock(&endpoint("flaky", &receiver.url, &secret, "")).await;
    let _ = clock.set(app.shared_clock());
    let now = app.clock().now().as_millis();
    Post::new(&app, "SUBSCRIBED", now)
        .subtype("INITIAL_BUY")
        .status(1)
        .tx(tx("wh-4", "wh-4-t1", "monthly", now, now + 30 * DAY))
        .renewal(renewal("wh-4", "monthly", 1, now))
        .send()
        .await;
    Post::new(&app, "DID_CHANGE_RENEWAL_STATUS", now + 1)
        .subtype("AUTO_RENEW_DISABLED")
        .status(1)
        .tx(tx("wh-4", "wh-4-t1", "monthly", now, now + 30 * DAY))
        .renewal(renewal("wh-4", "monthly", 0, now + 1))
        .send()
        .await;
    // Ten hours at a time: the schedule's waits grow to that, and three
    // days pass in about eight steps.
    until(&app, Duration::from_secs(36_000), || {
        !receiver.accepted().is_empty()
    })
    .await;
    let refused: Vec<i64> = receiver
        .received()
        .iter()
        .filter(|r| r.answered == Cue::Status(503))
        .map(|r| r.timestamp)
        .collect();
    // Tried for three days (webhook-timestamp is in seconds), then given up.
    let tried_for = refused.last().unwrap() - refused.first().unwrap();
    assert!(tried_for >= 3 * 86_400, "tried for {tried_for} s");
    // How many attempts that took depends on how far the test's clock
    // jumped between two (it moves ten hours a step): not checked.
    assert_eq!(
        types(&receiver.accepted()),
        [(
            "subscription:wh-4".to_owned(),
            "AUTO_RENEW_CHANGED".to_owned()
        )]
    );
    assert_eq!(
        metric(
            &app,
            "appstore_ledger_event_deliveries_given_up_total{endpoint=\"flaky\"}"
        )
        .await
        .as_deref(),
        Some("1")
    );
    let row = endpoint_row(&app);
    assert_eq!((&*row[4], &*row[6]), ("0", "1"), "{row:?}");
}

#[tokio::test]
async fn endpoints_take_only_the_types_and_apps_they_name() {
    let secret = new_secret(5);
    let revocations = Receiver::start(&[&secret], always_ok()).await;
    revocations.allow_gaps();
    let other_app = Receiver::start(&[&secret], always_ok()).await;
    let config = format!(
        "{}{}",
        endpoint(
            "revocations",
            &revocations.url,
            &secret,
            "types = [\"ENTITLEMENT_REVOKED\"]"
        ),
        endpoint(
            "other-app",
            &other_app.url,
            &secret,
            "apps = [\"com.example.other\"]"
        ),
    );
    let app = TestApp::spawn_with_manual_clock(&config).await;
    history(&app, "wh-5").await;
    until(&app, Duration::from_secs(1), || {
        !revocations.accepted().is_empty()
    })
    .await;
    // Let everything else that could go, go.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        types(&revocations.received()),
        [(
            "subscription:wh-5".to_owned(),
            "ENTITLEMENT_REVOKED".to_owned()
        )]
    );
    assert!(other_app.received().is_empty());
}

#[tokio::test]
async fn two_instances_share_the_deliveries_without_sending_one_event_twice() {
    let secret = new_secret(6);
    let receiver = Receiver::start(&[&secret], always_ok()).await;
    let app =
        TestApp::spawn_with_manual_clock(&endpoint("shared", &receiver.url, &secret, "")).await;
    let other = app.another_instance().await;
    // The clock stands still: no claim lapses, so only a claim taken twice
    // could send an event twice. Each subscription bought on one instance
    // and its auto-renewal turned off on the other: two events, in order.
    let now = app.clock().now().as_millis();
    for i in 0..30 {
        let otid = format!("wh-s{i}");
        let (first, second) = if i % 2 == 0 {
            (&app, &other)
        } else {
            (&other, &app)
        };
        let t1 = tx(&otid, &format!("{otid}-t1"), "monthly", now, now + 30 * DAY);
        Post::new(first, "SUBSCRIBED", now)
            .subtype("INITIAL_BUY")
            .status(1)
            .tx(t1.clone())
            .renewal(renewal(&otid, "monthly", 1, now))
            .send()
            .await;
        Post::new(second, "DID_CHANGE_RENEWAL_STATUS", now + 1)
            .subtype("AUTO_RENEW_DISABLED")
            .status(1)
            .tx(t1)
            .renewal(renewal(&otid, "monthly", 0, now + 1))
            .send()
            .await;
    }
    until(&app, Duration::ZERO, || receiver.accepted().len() == 60).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 60, "an event was sent twice");
    assert_eq!(receiver.out_of_order(), Vec::<String>::new());
    for r in receiver.accepted() {
        let want = if r.item().1 == 1 {
            "ENTITLEMENT_GRANTED"
        } else {
            "AUTO_RENEW_CHANGED"
        };
        assert_eq!(r.body["type"], want);
    }
}

/// The console's events page: an admin sees each endpoint's health, an
/// item's events with their deliveries, and resends one event or replays
/// everything since a moment; the customer page lists the events too;
/// support staff may not open the page; every action is in the access log.
#[tokio::test]
async fn the_console_shows_endpoint_health_and_resends_and_replays() {
    use crate::console::{add_user, browser, get, post, sign_in};
    let secret = new_secret(7);
    let receiver = Receiver::start(&[&secret], always_ok()).await;
    let app =
        TestApp::spawn_with_manual_clock(&endpoint("backend", &receiver.url, &secret, "")).await;
    history(&app, "wh-c").await;
    until(&app, Duration::from_secs(1), || {
        receiver.accepted().len() == 6
    })
    .await;

    add_user(&app, "ada", "admin");
    let admin = browser(reqwest::Client::builder());
    let cookie = sign_in(&app, &admin, "ada").await;
    let page = get(
        &app,
        &admin,
        "/console/events?item=subscription:wh-c",
        &cookie,
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("id=\"endpoint-backend\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("healthy"));
    let first_id = receiver.accepted()[0].id.clone();
    assert!(page.body.contains(&format!("id=\"{first_id}\"")));
    assert_eq!(page.body.matches("backend: DELIVERED (1)").count(), 6);
    // What follows sends again on purpose.
    receiver.forget_order();

    let resent = post(
        &app,
        &admin,
        "/console/events/resend",
        &cookie,
        &[
            ("csrf", &page.csrf()),
            ("endpoint", "backend"),
            ("eventId", &first_id),
        ],
    )
    .await;
    assert_eq!(resent.status, 303, "{}", resent.body);
    until(&app, Duration::from_secs(1), || {
        receiver.accepted_counts()[&first_id] == 2
    })
    .await;
    receiver.forget_order();
    let replayed = post(
        &app,
        &admin,
        "/console/events/replay",
        &cookie,
        &[
            ("csrf", &page.csrf()),
            ("endpoint", "backend"),
            ("since", "2000-01-01T00:00:00Z"),
        ],
    )
    .await;
    assert_eq!(replayed.status, 303, "{}", replayed.body);
    until(&app, Duration::from_secs(1), || {
        receiver.received().len() == 13
    })
    .await;
    assert_eq!(receiver.out_of_order(), Vec::<String>::new());

    let customer = get(
        &app,
        &admin,
        "/console/customer?originalTransactionId=wh-c",
        &cookie,
    )
    .await;
    assert!(
        customer.body.contains("Entitlement events"),
        "{}",
        customer.body
    );
    assert_eq!(customer.body.matches("<tr class=\"event\"").count(), 6);

    add_user(&app, "sam", "support");
    let support = browser(reqwest::Client::builder());
    let support_cookie = sign_in(&app, &support, "sam").await;
    assert_eq!(
        get(&app, &support, "/console/events", &support_cookie)
            .await
            .status,
        403
    );
    let log = get(&app, &admin, "/console/access-log", &cookie).await;
    for action in ["events-resend", "events-replay", "events (refused)"] {
        assert!(log.body.contains(action), "{action} not in the access log");
    }
}

// The same tests on PostgreSQL, each on a fresh database there.
on_postgres! {
    events_reach_the_endpoint_signed_once_each_and_in_order_through_failures,
    an_endpoint_answering_410_is_disabled_until_enabled_then_replay_and_resend_send_again,
    a_delivery_failing_for_three_days_is_given_up_and_the_next_one_goes,
    endpoints_take_only_the_types_and_apps_they_name,
    two_instances_share_the_deliveries_without_sending_one_event_twice,
    the_console_shows_endpoint_health_and_resends_and_replays,
}
