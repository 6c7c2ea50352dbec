//! Entitlement events: each change of the answer about an item, kept in the
//! transaction of the fold that made it, read from the feed in one order.
//! The service's clock is the test's: each notification arrives when Apple
//! would send it.

use std::time::Duration;

use serde_json::{json, Value};

use appstore_ledger::clock::Clock as _;

use crate::helpers::TestApp;
use crate::ledger::{renewal, revoked, tx, Post, DAY, HOUR};

/// Every event of the feed, read `page` at a time; checks that cursors
/// move forward and that no event comes twice.
pub(crate) async fn all_events(app: &TestApp, page: usize) -> Vec<Value> {
    let mut events = Vec::new();
    let mut after = String::new();
    loop {
        let (status, body) = app
            .api(&format!("/v1/events?limit={page}&after={after}"))
            .await;
        assert_eq!(status, 200, "{body}");
        let got = body["events"].as_array().unwrap().clone();
        let next = body["nextCursor"].as_str().unwrap().to_owned();
        if got.is_empty() {
            assert_eq!(
                next,
                if after.is_empty() {
                    "0-0".into()
                } else {
                    after
                }
            );
            break;
        }
        assert_ne!(next, after);
        events.extend(got);
        after = next;
    }
    let mut ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), events.len(), "an event came twice");
    events
}

/// The feed's events once it shows `n` of them: on PostgreSQL an event
/// shows once every older write transaction in its database has ended.
pub(crate) async fn when_shown(app: &TestApp, n: usize, page: usize) -> Vec<Value> {
    for _ in 0..300 {
        let events = all_events(app, page).await;
        if events.len() >= n {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    all_events(app, page).await
}

/// Waits until the clock job has told every answer that time changed by
/// the service's clock: what a test posts next comes after it.
pub(crate) async fn settle(app: &TestApp) {
    let now = app.clock().now().as_millis();
    for _ in 0..300 {
        let due: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM told_answers WHERE changes_at IS NOT NULL AND changes_at <= $1",
        )
        .bind(now)
        .fetch_one(&mut app.db().await)
        .await
        .unwrap();
        if due == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the clock job did not tell what time changed");
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn a_subscriptions_life_is_told_as_events_in_order() {
    // Months pass on the test's clock: retention must not take the first
    // events meanwhile.
    let app = TestApp::spawn_with_manual_clock("[events]\nretention_days = 3650").await;
    let otid = "ev-1";
    let t0 = app.clock().now().as_millis();
    let advance = |by: i64| app.clock().advance(Duration::from_millis(by as u64));
    let now = || app.clock().now().as_millis();
    let mut causes = Vec::new();
    let mut post = async |p: Post<'_>, id: &str| {
        causes.push(id.to_owned());
        p.uuid(id).send().await;
    };

    let t1 = tx(otid, "ev-1-t1", "monthly", t0, t0 + 30 * DAY);
    post(
        Post::new(&app, "SUBSCRIBED", t0)
            .subtype("INITIAL_BUY")
            .status(1)
            .tx(t1.clone())
            .renewal(renewal(otid, "monthly", 1, t0)),
        "ev-n1",
    )
    .await;
    // Apple renews before the period ends: the next period starts then.
    advance(30 * DAY - HOUR);
    let t2 = tx(otid, "ev-1-t2", "monthly", t0 + 30 * DAY, t0 + 60 * DAY);
    post(
        Post::new(&app, "DID_RENEW", now())
            .status(1)
            .tx(t2.clone())
            .renewal(renewal(otid, "monthly", 1, now())),
        "ev-n2",
    )
    .await;
    advance(HOUR);
    settle(&app).await;
    post(
        Post::new(&app, "DID_CHANGE_RENEWAL_STATUS", now())
            .subtype("AUTO_RENEW_DISABLED")
            .status(1)
            .tx(t2.clone())
            .renewal(renewal(otid, "monthly", 0, now())),
        "ev-n3",
    )
    .await;
    advance(HOUR);
    post(
        Post::new(&app, "DID_CHANGE_RENEWAL_STATUS", now())
            .subtype("AUTO_RENEW_ENABLED")
            .status(1)
            .tx(t2.clone())
            .renewal(renewal(otid, "monthly", 1, now())),
        "ev-n4",
    )
    .await;
    // The renewal fails at the period's end: the clock job has told the
    // end first; then grace for six days.
    app.clock()
        .set(appstore_ledger::model::Timestamp::from_millis(
            t0 + 60 * DAY,
        ));
    settle(&app).await;
    let mut r = renewal(otid, "monthly", 1, now());
    r["gracePeriodExpiresDate"] = json!(now() + 6 * DAY);
    r["isInBillingRetryPeriod"] = json!(true);
    post(
        Post::new(&app, "DID_FAIL_TO_RENEW", now())
            .subtype("GRACE_PERIOD")
            .status(4)
            .tx(t2.clone())
            .renewal(r.clone()),
        "ev-n5",
    )
    .await;
    // Grace runs out after six days: told then, before Apple says so.
    advance(7 * DAY);
    settle(&app).await;
    post(
        Post::new(&app, "GRACE_PERIOD_EXPIRED", now())
            .status(3)
            .tx(t2.clone())
            .renewal(r),
        "ev-n6",
    )
    .await;
    advance(DAY);
    let t3 = tx(otid, "ev-1-t3", "monthly", now(), now() + 30 * DAY);
    post(
        Post::new(&app, "DID_RENEW", now())
            .subtype("BILLING_RECOVERY")
            .status(1)
            .tx(t3.clone())
            .renewal(renewal(otid, "monthly", 1, now())),
        "ev-n7",
    )
    .await;
    advance(HOUR);
    let refunded = revoked(t3.clone(), now(), "REFUND_FULL");
    post(
        Post::new(&app, "REFUND", now())
            .status(5)
            .tx(refunded.clone())
            .renewal(renewal(otid, "monthly", 1, now())),
        "ev-n8",
    )
    .await;
    advance(HOUR);
    post(
        Post::new(&app, "REFUND_REVERSED", now())
            .status(1)
            .tx(t3.clone())
            .renewal(renewal(otid, "monthly", 1, now())),
        "ev-n9",
    )
    .await;
    advance(HOUR);
    let t4 = tx(otid, "ev-1-t4", "premium", now(), now() + 30 * DAY);
    post(
        Post::new(&app, "DID_CHANGE_RENEWAL_PREF", now())
            .subtype("UPGRADE")
            .status(1)
            .tx(t4.clone())
            .renewal(renewal(otid, "premium", 1, now())),
        "ev-n10",
    )
    .await;
    advance(31 * DAY);
    settle(&app).await;
    post(
        Post::new(&app, "EXPIRED", now())
            .subtype("VOLUNTARY")
            .status(2)
            .tx(t4.clone())
            .renewal(renewal(otid, "premium", 0, now())),
        "ev-n11",
    )
    .await;

    let events = when_shown(&app, 18, 3).await;
    let told: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e["type"].as_str().unwrap(), e["cause"].as_str().unwrap()))
        .collect();
    assert_eq!(
        told,
        [
            ("ENTITLEMENT_GRANTED", "ev-n1"),
            // Renewed an hour before the end: the answer's end moves when
            // the new period begins.
            ("EXPIRES_DATE_CHANGED", "time"),
            ("AUTO_RENEW_CHANGED", "ev-n3"),
            ("AUTO_RENEW_CHANGED", "ev-n4"),
            // The period ended with no renewal: told at its end.
            ("ENTITLEMENT_REVOKED", "time"),
            ("ENTITLEMENT_GRANTED", "ev-n5"),
            ("GRACE_PERIOD_STARTED", "ev-n5"),
            // The grace period ran out: no access from then; Apple's
            // GRACE_PERIOD_EXPIRED (ev-n6) says billing is being retried.
            ("ENTITLEMENT_REVOKED", "time"),
            ("BILLING_PROBLEM", "ev-n6"),
            ("ENTITLEMENT_GRANTED", "ev-n7"),
            ("REFUNDED", "ev-n8"),
            ("ENTITLEMENT_REVOKED", "ev-n8"),
            ("REFUND_REVERSED", "ev-n9"),
            ("ENTITLEMENT_GRANTED", "ev-n9"),
            ("PRODUCT_CHANGED", "ev-n10"),
            ("EXPIRES_DATE_CHANGED", "ev-n10"),
            ("ENTITLEMENT_REVOKED", "time"),
            // VOLUNTARY: the customer had turned auto-renew off, which this
            // history never said before.
            ("AUTO_RENEW_CHANGED", "ev-n11"),
        ]
    );
    let sequences: Vec<i64> = events
        .iter()
        .map(|e| e["sequence"].as_i64().unwrap())
        .collect();
    assert_eq!(sequences, (1..=18).collect::<Vec<i64>>());
    assert_eq!(events[10]["transactionId"], "ev-1-t3");
    // Time's events occurred when the answer changed: the ends of the
    // period and of the grace period.
    let occurred = |i: usize| events[i]["occurredAt"].as_i64().unwrap();
    assert_eq!(occurred(4), t0 + 60 * DAY);
    assert_eq!(occurred(7), t0 + 66 * DAY);
    assert_eq!(events[0]["item"], "subscription");
    assert_eq!(events[0]["occurredAt"], t0);
    assert_eq!(
        events[0]["answer"],
        json!({"entitled": true, "status": "ACTIVE", "productId": "monthly",
               "expiresDate": t0 + 30 * DAY, "autoRenewStatus": 1,
               "originalTransactionId": otid, "transactionId": "ev-1-t1",
               "appAccountToken": "account-ev-1", "bundleId": crate::helpers::BUNDLE_ID,
               "environment": "Sandbox", "refundsReversed": 0})
    );
    assert_eq!(causes.len(), 11);

    // Apple's retry of a notification, a rebuild of an unchanged ledger and
    // a restart tell nothing new; the feed gives the same events.
    let repeat = Post::new(&app, "EXPIRED", now())
        .subtype("VOLUNTARY")
        .status(2)
        .tx(t4)
        .renewal(renewal(otid, "premium", 0, now()))
        .uuid("ev-n11");
    assert_eq!(app.post(&repeat.token()).await.0, 200);
    let out = app.cli(&["rebuild"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let app = app.restart().await;
    assert_eq!(when_shown(&app, 18, 5).await, events);
    assert_eq!(all_events(&app, 1000).await, events);
    let (_, only) = app.api("/v1/events?types=REFUNDED,REFUND_REVERSED").await;
    assert_eq!(
        kinds(only["events"].as_array().unwrap()),
        ["REFUNDED", "REFUND_REVERSED"]
    );
}

#[tokio::test]
async fn the_feed_refuses_what_it_cannot_answer_and_an_expired_cursor_is_gone() {
    let app = TestApp::spawn_with_manual_clock("").await;
    let t0 = app.clock().now().as_millis();
    // Each customer's event read as soon as it is told: the service's own
    // prune (at start, under load perhaps after the clock moved) may take
    // the first one before the test's does.
    let mut first = Vec::new();
    for (i, otid) in ["ev-2", "ev-3"].into_iter().enumerate() {
        app.clock()
            .advance(Duration::from_secs(40 * 86_400 * i as u64));
        let at = app.clock().now().as_millis();
        Post::new(&app, "SUBSCRIBED", at)
            .subtype("INITIAL_BUY")
            .status(1)
            .tx(tx(
                otid,
                &format!("{otid}-t1"),
                "monthly",
                at,
                // Long enough that time changes nothing here.
                at + 365 * DAY,
            ))
            .renewal(renewal(otid, "monthly", 1, at))
            .send()
            .await;
        // This customer's own event: the one before may still be shown
        // while this one waits for older transactions to end (PostgreSQL).
        let mut own = Vec::new();
        for _ in 0..300 {
            own = all_events(&app, 10)
                .await
                .into_iter()
                .filter(|e| e["answer"]["originalTransactionId"] == otid)
                .collect();
            if !own.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        first.extend(own);
    }
    assert_eq!(first.len(), 2);
    let (_, page) = app.api("/v1/events?limit=1").await;
    let old_cursor = page["nextCursor"].as_str().unwrap().to_owned();
    for bad in [
        "limit=0",
        "limit=1001",
        "after=x",
        "types=SOMETHING",
        "colour=red",
    ] {
        let (status, body) = app.api(&format!("/v1/events?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "INVALID_QUERY", "{bad}");
    }
    // Retention (30 days) removes the first customer's event only (the
    // service's own hourly prune may have been first).
    let store = app.store().await;
    assert!(store.prune_events(t0 + 40 * DAY - 30 * DAY).await.unwrap() <= 1);
    assert_eq!(app.count("entitlement_events").await, 1);
    store.close().await;
    let (status, body) = app.api("/v1/events?after=0-0").await;
    assert_eq!(status, 410, "{body}");
    assert_eq!(body["error"]["code"], "CURSOR_EXPIRED");
    let (status, body) = app.api(&format!("/v1/events?after={old_cursor}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["events"][0]["answer"]["originalTransactionId"], "ev-3");
    assert_eq!(all_events(&app, 10).await, first[1..]);
}

/// An answer told that this version cannot read (a later one wrote it) does
/// not stop the item's next notification: it is stored, and its event takes
/// the next sequence number, never one already used.
#[tokio::test]
async fn an_unreadable_told_answer_keeps_the_sequence_going() {
    let app = TestApp::spawn().await;
    let now = crate::ledger::now();
    let otid = "ev-4";
    Post::new(&app, "SUBSCRIBED", now - DAY)
        .subtype("INITIAL_BUY")
        .status(1)
        .tx(tx(otid, "ev-4-t1", "monthly", now - DAY, now + 29 * DAY))
        .renewal(renewal(otid, "monthly", 1, now - DAY))
        .send()
        .await;
    when_shown(&app, 1, 10).await;
    sqlx::query("UPDATE told_answers SET answer = '{\"writtenBy\": \"a later version\"}'")
        .execute(&mut app.db().await)
        .await
        .unwrap();
    Post::new(&app, "DID_CHANGE_RENEWAL_STATUS", now)
        .subtype("AUTO_RENEW_DISABLED")
        .status(1)
        .tx(tx(otid, "ev-4-t1", "monthly", now - DAY, now + 29 * DAY))
        .renewal(renewal(otid, "monthly", 0, now))
        .send()
        .await;
    let events = when_shown(&app, 2, 10).await;
    let sequences: Vec<(i64, &str)> = events
        .iter()
        .map(|e| (e["sequence"].as_i64().unwrap(), e["type"].as_str().unwrap()))
        .collect();
    // Nothing told could be read: the answer is told again, as new.
    assert_eq!(
        sequences,
        [(1, "ENTITLEMENT_GRANTED"), (2, "ENTITLEMENT_GRANTED")]
    );
}

/// A refund Apple signed long ago arrives after the renewal that followed:
/// what the service said of the refunded weeks was wrong, and it says so
/// (ANSWER_CORRECTED, with the moments and both answers) before the refund.
#[tokio::test]
async fn a_late_refund_corrects_the_answers_already_given() {
    let app = TestApp::spawn_with_manual_clock("[events]\nretention_days = 3650").await;
    let otid = "ev-5";
    let t0 = app.clock().now().as_millis();
    let t1 = tx(otid, "ev-5-t1", "monthly", t0, t0 + 30 * DAY);
    Post::new(&app, "SUBSCRIBED", t0)
        .subtype("INITIAL_BUY")
        .status(1)
        .tx(t1.clone())
        .renewal(renewal(otid, "monthly", 1, t0))
        .uuid("ev-5-n1")
        .send()
        .await;
    app.clock()
        .advance(Duration::from_millis((30 * DAY - HOUR) as u64));
    // Renewed an hour before the period's end.
    let renewed = t0 + 30 * DAY - HOUR;
    Post::new(&app, "DID_RENEW", renewed)
        .status(1)
        .tx(tx(otid, "ev-5-t2", "monthly", renewed, renewed + 30 * DAY))
        .renewal(renewal(otid, "monthly", 1, t0 + 30 * DAY - HOUR))
        .uuid("ev-5-n2")
        .send()
        .await;
    app.clock()
        .advance(Duration::from_millis((10 * DAY) as u64));
    settle(&app).await;
    // Signed on day 10, delivered on day 40.
    Post::new(&app, "REFUND", t0 + 10 * DAY)
        .status(5)
        .tx(revoked(t1, t0 + 10 * DAY, "REFUND_FULL"))
        .renewal(renewal(otid, "monthly", 1, t0 + 10 * DAY))
        .uuid("ev-5-n3")
        .send()
        .await;
    let events = when_shown(&app, 4, 10).await;
    let told: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e["type"].as_str().unwrap(), e["cause"].as_str().unwrap()))
        .collect();
    assert_eq!(
        told,
        [
            ("ENTITLEMENT_GRANTED", "ev-5-n1"),
            ("EXPIRES_DATE_CHANGED", "ev-5-n2"),
            ("ANSWER_CORRECTED", "ev-5-n3"),
            ("REFUNDED", "ev-5-n3"),
        ]
    );
    let correction = &events[2]["correction"];
    // Said: entitled from day 10 until the renewal; now: not entitled
    // then. Today's answer stands.
    assert_eq!(correction["from"], t0 + 10 * DAY);
    assert_eq!(correction["to"], renewed);
    assert_eq!(correction["before"]["entitled"], true);
    assert_eq!(correction["after"]["entitled"], false);
    assert_eq!(correction["after"]["status"], "REVOKED");
    assert_eq!(events[2]["answer"]["entitled"], true);
    assert_eq!(events[3]["transactionId"], "ev-5-t1");
    // Nothing changed since: a rebuild tells nothing.
    let out = app.cli(&["rebuild"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(all_events(&app, 100).await, events);
}

/// A database from before entitlement events: its items' answers are kept
/// as told at start-up, without events, so the next notification tells
/// only what it changed.
#[tokio::test]
async fn an_upgraded_database_tells_only_what_changes_after_it() {
    let app = TestApp::spawn_with_manual_clock("").await;
    let (otid, now) = ("ev-6", app.clock().now().as_millis());
    let t1 = tx(otid, "ev-6-t1", "monthly", now, now + 30 * DAY);
    Post::new(&app, "SUBSCRIBED", now)
        .subtype("INITIAL_BUY")
        .status(1)
        .tx(t1.clone())
        .renewal(renewal(otid, "monthly", 1, now))
        .send()
        .await;
    when_shown(&app, 1, 10).await;
    // As the version before events left it: nothing told, seeding due.
    let mut db = app.db().await;
    for statement in [
        "DELETE FROM entitlement_events",
        "DELETE FROM told_answers",
        "INSERT INTO told_seeding (one, after) VALUES (1, '')",
    ] {
        sqlx::query(statement).execute(&mut db).await.unwrap();
    }
    drop(db);
    let app = app.restart().await;
    assert_eq!(app.count("told_answers").await, 1);
    assert_eq!(app.count("told_seeding").await, 0);
    Post::new(&app, "DID_CHANGE_RENEWAL_STATUS", now + 1)
        .subtype("AUTO_RENEW_DISABLED")
        .status(1)
        .tx(t1)
        .renewal(renewal(otid, "monthly", 0, now + 1))
        .send()
        .await;
    let events = when_shown(&app, 1, 10).await;
    assert_eq!(kinds(&events), ["AUTO_RENEW_CHANGED"]);
    assert_eq!(events[0]["sequence"], 1);
}

// The same tests on PostgreSQL, each on a fresh database there.
on_postgres! {
    a_subscriptions_life_is_told_as_events_in_order,
    the_feed_refuses_what_it_cannot_answer_and_an_expired_cursor_is_gone,
    an_unreadable_told_answer_keeps_the_sequence_going,
    a_late_refund_corrects_the_answers_already_given,
    an_upgraded_database_tells_only_what_changes_after_it,
}
