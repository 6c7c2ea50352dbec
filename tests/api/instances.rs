//! Several `serve` processes on one PostgreSQL database, as behind a load
//! balancer: notifications of the same subscriptions reach both at once, in
//! any order and twice, and one instance dies in the middle of it.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::{json, Value};

use crate::helpers::{config, Served, TestApp};
use crate::ledger::{now, renewal, revoked, tx, Post, DAY, HOUR};
use crate::pg::PgDatabase;

const BIN: &str = env!("CARGO_BIN_EXE_appstore-ledger");
const SUBSCRIPTIONS: i64 = 4;
const RENEWALS: i64 = 14;

/// 4 subscriptions, each bought, renewed 14 times, and refunded, ended or
/// renewed once more: 64 notifications, 16 to each subscription, so that
/// instances fold into the same one at the same moment.
fn histories(reference: &TestApp) -> Vec<(String, String)> {
    let now = now();
    let mut tokens = Vec::new();
    for s in 0..SUBSCRIPTIONS {
        let otid = format!("inst-{s:02}");
        let start = first_purchase(now, s);
        let mut last = tx(
            &otid,
            &format!("{otid}-t0"),
            "monthly",
            start,
            start + 30 * DAY,
        );
        let buy = Post::new(reference, "SUBSCRIBED", start)
            .subtype("INITIAL_BUY")
            .status(1)
            .tx(last.clone())
            .renewal(renewal(&otid, "monthly", 1, start))
            .uuid(&format!("{otid}-n0"));
        tokens.push((format!("{otid}-n0"), buy.token()));
        for n in 1..RENEWALS + 1 {
            let purchase = start + n * 30 * DAY;
            last = tx(
                &otid,
                &format!("{otid}-t{n}"),
                "monthly",
                purchase,
                purchase + 30 * DAY,
            );
            let renew = Post::new(reference, "DID_RENEW", purchase)
                .status(1)
                .tx(last.clone())
                .renewal(renewal(&otid, "monthly", 1, purchase))
                .uuid(&format!("{otid}-n{n}"));
            tokens.push((format!("{otid}-n{n}"), renew.token()));
        }
        let end = start + RENEWALS * 30 * DAY + 10 * DAY;
        let ending = match s % 3 {
            0 => {
                Post::new(reference, "REFUND", end)
                    .status(5)
                    .tx(revoked(last, end, "REFUND_FULL"))
            }
            1 => Post::new(reference, "DID_CHANGE_RENEWAL_STATUS", end)
                .subtype("AUTO_RENEW_DISABLED")
                .status(1)
                .tx(last)
                .renewal(renewal(&otid, "monthly", 0, end)),
            _ => Post::new(reference, "DID_RENEW", end)
                .status(1)
                .tx(last)
                .renewal(renewal(&otid, "monthly", 1, end)),
        };
        let uuid = format!("{otid}-end");
        tokens.push((uuid.clone(), ending.uuid(&uuid).token()));
    }
    tokens
}

/// When subscription `s` was bought: an hour apart, from a day boundary,
/// so that the tokens' `now` and the comparison's give the same moments.
fn first_purchase(now: i64, s: i64) -> i64 {
    (now - 480 * DAY) / DAY * DAY + s * HOUR
}

/// A deterministic shuffle.
fn scramble<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        items.swap(i, (seed >> 33) as usize % (i + 1));
    }
}

async fn post(http: &reqwest::Client, addr: &str, token: &str) -> Option<u16> {
    let response = http
        .post(format!("http://{addr}/v2/notifications"))
        .json(&json!({ "signedPayload": token }))
        .send()
        .await;
    response.ok().map(|r| r.status().as_u16())
}

/// Two `serve` processes trusting `reference`'s PKI on the database at
/// `database_url` (the periodic check off: the tests compare states only).
fn two_instances(reference: &TestApp, database_url: &str) -> (Served, Served) {
    let config_path = reference.dir.path("instances.toml");
    let text = config(
        &reference.dir,
        &reference.pki,
        "",
        "[check]\ninterval_ms = 0\n",
    )
    // A write waits out a lock held elsewhere this long before its 503.
    .replace("busy_timeout_ms = 2000", "busy_timeout_ms = 5000");
    std::fs::write(&config_path, text).unwrap();
    let start = || {
        let mut command = Command::new(BIN);
        command
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .env("APPSTORE_LEDGER__DATABASE__URL", database_url);
        Served::start(command)
    };
    (start(), start())
}

/// A subscription at `at`, as the reference and as an instance answer it.
async fn both_answers(
    reference: &TestApp,
    instance: &Served,
    otid: &str,
    at: i64,
) -> (Value, Value) {
    let path = format!("/v1/subscriptions/{otid}?at={at}");
    let (status, expected) = reference.api(&path).await;
    assert_eq!(status, 200, "{expected}");
    (expected, instance.api(&path).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_database_fold_like_one_and_lose_nothing_acknowledged() {
    let Some(database) = PgDatabase::create().await else {
        return;
    };
    // The single-instance fold to compare with: SQLite, in order.
    let reference = TestApp::spawn().await;
    let tokens = histories(&reference);
    for (_, token) in &tokens {
        assert_eq!(reference.post(token).await.0, 200);
    }

    let (a, mut b) = two_instances(&reference, &database.url);
    let http = a.http.clone();

    // Every notification to one instance, a third of them to the other
    // too, all at once, in a scrambled order; B is killed half-way.
    let mut deliveries: Vec<(usize, bool)> = Vec::new();
    for i in 0..tokens.len() {
        deliveries.push((i, i % 2 == 0));
        if i % 3 == 0 {
            deliveries.push((i, i % 2 != 0));
        }
    }
    scramble(&mut deliveries, 7);
    let mut acknowledged = BTreeSet::new();
    let mut refused = BTreeSet::new();
    // What B did: acknowledged before it was killed, cut off by the kill.
    let (mut b_served, mut b_cut_off, mut b_dead) = (0, 0, false);
    let halves = deliveries.split_at(deliveries.len() / 2);
    for (half, chunk) in [halves.0, halves.1].into_iter().enumerate() {
        let mut burst = tokio::task::JoinSet::new();
        for &(i, to_a) in chunk {
            let addr = if to_a { a.addr.clone() } else { b.addr.clone() };
            let (http, token) = (http.clone(), tokens[i].1.clone());
            burst.spawn(async move { (i, to_a, post(&http, &addr, &token).await) });
        }
        while let Some(done) = burst.join_next().await {
            let (i, to_a, answer) = done.unwrap();
            match answer {
                Some(200) => {
                    acknowledged.insert(i);
                    if !to_a && !b_dead {
                        b_served += 1;
                    }
                }
                other => {
                    assert!(matches!(other, None | Some(503)), "{other:?}");
                    refused.insert(i);
                    if !to_a && other.is_none() {
                        b_cut_off += 1;
                    }
                }
            }
            // Half-way through the second burst, on its first answer (the
            // rest still in flight), B is killed.
            if half == 1 && !b_dead {
                b.child.kill().unwrap();
                b_dead = true;
            }
        }
    }
    let status = b.child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "B was killed: {status:?}"
    );
    eprintln!(
        "{} acknowledged, {} refused or cut off; B served {b_served} before it was killed and \
         {b_cut_off} were cut off by the kill",
        acknowledged.len(),
        refused.len()
    );
    assert!(b_served > 0, "the killed instance had served requests");
    assert!(
        b_cut_off > 0,
        "the killed instance was killed with requests in flight"
    );

    // Nothing acknowledged is lost, even by the instance killed.
    let mut db = database.connect().await;
    let stored: Vec<String> = sqlx::query_scalar("SELECT notification_uuid FROM notifications")
        .fetch_all(&mut db)
        .await
        .unwrap();
    for i in &acknowledged {
        assert!(
            stored.contains(&tokens[*i].0),
            "{} was acknowledged",
            tokens[*i].0
        );
    }
    // Apple retries what was not acknowledged; A takes it.
    for (i, (_, token)) in tokens.iter().enumerate() {
        if !acknowledged.contains(&i) {
            assert_eq!(post(&http, &a.addr, token).await, Some(200));
        }
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(rows, tokens.len() as i64, "one row per notificationUUID");

    // The same states as one instance folding them in order, now and in
    // the middle of every period (a lost update would lose a period).
    let now = now();
    for s in 0..SUBSCRIPTIONS {
        let otid = format!("inst-{s:02}");
        let start = first_purchase(now, s);
        let moments = (0..=RENEWALS).map(|n| start + n * 30 * DAY + 15 * DAY);
        for at in moments.chain([now]) {
            let (expected, actual) = both_answers(&reference, &a, &otid, at).await;
            assert_eq!(actual, expected, "{otid} at {at}");
        }
    }
    drop(a);
}

/// Two renewals of one subscription held at the same point in both
/// instances (their state written after the other read it), then let go:
/// neither renewal is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewals_folded_at_the_same_moment_by_two_instances_are_both_kept() {
    let Some(database) = PgDatabase::create().await else {
        return;
    };
    let reference = TestApp::spawn().await;
    let tokens = histories(&reference);
    for (_, token) in &tokens[..3] {
        assert_eq!(reference.post(token).await.0, 200);
    }
    let (a, b) = two_instances(&reference, &database.url);
    assert_eq!(post(&a.http, &a.addr, &tokens[0].1).await, Some(200));

    // Reads go on; no state can be written until the lock is let go.
    let mut blocker = database.connect().await;
    sqlx::query("BEGIN").execute(&mut blocker).await.unwrap();
    sqlx::query("LOCK TABLE ledger_items IN EXCLUSIVE MODE")
        .execute(&mut blocker)
        .await
        .unwrap();
    let first = {
        let (http, addr, token) = (a.http.clone(), a.addr.clone(), tokens[1].1.clone());
        tokio::spawn(async move { post(&http, &addr, &token).await })
    };
    let second = {
        let (http, addr, token) = (b.http.clone(), b.addr.clone(), tokens[2].1.clone());
        tokio::spawn(async move { post(&http, &addr, &token).await })
    };
    // Both instances are seen waiting for the lock, then it is let go.
    database.until_waiting_for_locks(2).await;
    sqlx::query("COMMIT").execute(&mut blocker).await.unwrap();
    assert_eq!(first.await.unwrap(), Some(200));
    assert_eq!(second.await.unwrap(), Some(200));

    let start = first_purchase(now(), 0);
    for n in 0..3 {
        let at = start + n * 30 * DAY + 15 * DAY;
        let (expected, actual) = both_answers(&reference, &b, "inst-00", at).await;
        assert_eq!(actual, expected, "period {n}");
    }
}
