//! `rebuild` recomputes every derived row from the stored notifications.

use crate::helpers::TestApp;
use crate::ledger::{now, renewal, revoked, tx, Post, DAY, HOUR};

#[tokio::test]
async fn rebuild_produces_exactly_what_incremental_application_produced() {
    let app = TestApp::spawn().await;
    let now = now();
    let mut tokens = Vec::new();
    for i in 0..12i64 {
        let otid = format!("rb-{i}");
        let start = now - (40 + i) * DAY;
        let t1 = tx(
            &otid,
            &format!("{otid}-t1"),
            "monthly",
            start,
            start + 30 * DAY,
        );
        let t2 = tx(
            &otid,
            &format!("{otid}-t2"),
            "monthly",
            start + 30 * DAY,
            start + 60 * DAY,
        );
        tokens.push(
            Post::new(&app, "SUBSCRIBED", start)
                .subtype("INITIAL_BUY")
                .tx(t1.clone())
                .renewal(renewal(&otid, "monthly", 1, start))
                .token(),
        );
        tokens.push(
            Post::new(&app, "DID_CHANGE_RENEWAL_STATUS", start + DAY)
                .subtype("AUTO_RENEW_DISABLED")
                .tx(t1.clone())
                .renewal(renewal(&otid, "monthly", 0, start + DAY))
                .token(),
        );
        tokens.push(
            Post::new(&app, "DID_RENEW", start + 30 * DAY)
                .tx(t2.clone())
                .renewal(renewal(&otid, "monthly", 1, start + 30 * DAY))
                .token(),
        );
        match i % 4 {
            0 => tokens.push(
                Post::new(&app, "REFUND", start + 31 * DAY)
                    .tx(revoked(t2.clone(), start + 31 * DAY, "REFUND_FULL"))
                    .token(),
            ),
            1 => {
                tokens.push(
                    Post::new(&app, "REFUND", start + 10 * DAY)
                        .tx(revoked(t1.clone(), start + 10 * DAY, "REFUND_PRORATED"))
                        .token(),
                );
                tokens.push(
                    Post::new(&app, "REFUND_REVERSED", start + 12 * DAY)
                        .tx(t1.clone())
                        .token(),
                );
            }
            2 => tokens.push(
                Post::new(&app, "EXPIRED", start + 29 * DAY)
                    .subtype("VOLUNTARY")
                    .tx(t1.clone())
                    .token(),
            ),
            _ => tokens.push(
                Post::new(&app, "DID_FAIL_TO_RENEW", start + 60 * DAY)
                    .subtype("GRACE_PERIOD")
                    .tx(t2.clone())
                    .token(),
            ),
        }
    }
    // Deliver in a scrambled order, some twice.
    let mut order: Vec<usize> = (0..tokens.len()).collect();
    let mut seed = 42u64;
    for i in (1..order.len()).rev() {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        order.swap(i, (seed >> 33) as usize % (i + 1));
    }
    for (n, &i) in order.iter().enumerate() {
        assert_eq!(app.post(&tokens[i]).await.0, 200);
        if n % 5 == 0 {
            assert_eq!(app.post(&tokens[i]).await.0, 200);
        }
    }

    let store = app.store().await;
    let incremental = store.ledger_snapshot().await.unwrap();
    assert_eq!(incremental["ledger_items"].len(), 12);
    assert_eq!(incremental["refunds"].len(), 6);
    assert_eq!(incremental["expirations"].len(), 3);

    // Damage every derived table, so that only a real rebuild restores them:
    // states rolled back, records lost or altered, rows of no notification.
    let mut db = app.db().await;
    for sql in [
        "UPDATE ledger_items SET state = '{}', status = 'EXPIRED' WHERE item_id IN ('rb-0', 'rb-5')",
        "DELETE FROM ledger_items WHERE item_id = 'rb-7'",
        "DELETE FROM refunds WHERE item_id = 'rb-4'",
        "UPDATE refunds SET reversed_at = NULL, reversed_by = NULL",
        "UPDATE expirations SET subtype = 'BILLING_RETRY'",
        "INSERT INTO ledger_items (kind, item_id, original_transaction_id, status, last_signed_date, state)
             VALUES ('subscription', 'zz-none', 'zz-none', 'ACTIVE', 0, '{}')",
        "INSERT INTO expirations (notification_uuid, kind, item_id, original_transaction_id, signed_date)
             VALUES ('bogus', 'subscription', 'zz-none', 'zz-none', 0)",
    ] {
        sqlx::query(sql).execute(&mut db).await.unwrap();
    }
    drop(db);
    assert_ne!(store.ledger_snapshot().await.unwrap(), incremental);

    let out = app.cli(&["rebuild"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let total = tokens.len();
    assert!(out
        .stdout
        .starts_with(&format!("rebuilt the ledger from {total} notifications")));
    assert!(out
        .stderr
        .contains(&format!("rebuild: {total}/{total} notifications (100%)")));
    assert_eq!(store.ledger_snapshot().await.unwrap(), incremental);
    store.close().await;
}

/// A stored notification that cannot be folded is never only logged: it
/// becomes an UNFOLDED_NOTIFICATION finding, and a rebuild that can fold it
/// again resolves it.
#[tokio::test]
async fn a_notification_that_cannot_be_folded_becomes_a_finding() {
    let app = TestApp::spawn().await;
    let now = now();
    let otid = "unfold-1";
    let t1 = tx(otid, "unfold-1-t1", "monthly", now - DAY, now + 29 * DAY);
    Post::new(&app, "SUBSCRIBED", now - DAY)
        .tx(t1.clone())
        .send()
        .await;
    Post::new(&app, "DID_CHANGE_RENEWAL_STATUS", now - HOUR)
        .tx(t1)
        .renewal(renewal(otid, "monthly", 0, now - HOUR))
        .send()
        .await;
    // A stored payload this version cannot read (damaged, or written by a
    // version that read it differently).
    let mut db = app.db().await;
    let (uuid, payload): (String, String) = sqlx::query_as(
        "SELECT notification_uuid, CAST(payload AS TEXT) FROM notifications
         WHERE notification_type = 'DID_CHANGE_RENEWAL_STATUS'",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    // PostgreSQL keeps payloads as JSONB, SQLite as text.
    let json = if app.pg.is_some() {
        "CAST($1 AS JSONB)"
    } else {
        "$1"
    };
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE notifications SET payload = {json} WHERE notification_uuid = $2"
    )))
    .bind("{\"notificationType\": 42}")
    .bind(&uuid)
    .execute(&mut db)
    .await
    .unwrap();

    let out = app.cli(&["rebuild"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let at = appstore_ledger::model::Timestamp::from_millis(now).to_string();
    let out = app.cli(&["check", "--json", "--at", &at]);
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    let finding: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(finding["kind"], "UNFOLDED_NOTIFICATION");
    assert_eq!(finding["subject"], uuid.as_str());
    assert_eq!(finding["originalTransactionId"], otid);
    assert_eq!(finding["bundleId"], crate::helpers::BUNDLE_ID);
    // The rest of the subscription is still folded.
    let (status, s) = app.api(&format!("/v1/subscriptions/{otid}")).await;
    assert_eq!((status, s["autoRenewStatus"].as_i64()), (200, None), "{s}");

    // Once the payload reads again, a rebuild folds it and the finding goes.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE notifications SET payload = {json} WHERE notification_uuid = $2"
    )))
    .bind(&payload)
    .bind(&uuid)
    .execute(&mut db)
    .await
    .unwrap();
    let out = app.cli(&["rebuild"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let out = app.cli(&["check", "--json", "--at", &at]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), ""),
        "{}",
        out.stderr
    );
    assert_eq!(
        app.api(&format!("/v1/subscriptions/{otid}")).await.1["autoRenewStatus"],
        0
    );
}

/// Beside a service whose writes hold the database longer than a write
/// waits for SQLite's lock (5 s; a busy service under load, or a backup),
/// `rebuild` waits for its turn rather than failing with "database is
/// locked" (seen failing so, with the lock held 6 s, before it retried).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_waits_for_a_write_lock_held_elsewhere() {
    let app = TestApp::spawn().await;
    let now = now();
    Post::new(&app, "SUBSCRIBED", now - DAY)
        .subtype("INITIAL_BUY")
        .status(1)
        .tx(tx(
            "rb-wait",
            "rb-wait-t1",
            "monthly",
            now - DAY,
            now + 29 * DAY,
        ))
        .send()
        .await;
    let blocker = app.block_writes().await;
    let rebuild = crate::appstore::cli(&app, &["rebuild"]);
    let unblock = async {
        tokio::time::sleep(std::time::Duration::from_millis(6000)).await;
        TestApp::unblock_writes(blocker).await;
    };
    let (out, ()) = tokio::join!(rebuild, unblock);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out
        .stdout
        .starts_with("rebuilt the ledger from 1 notifications"));
}

// The same tests on PostgreSQL, each on a fresh database there.
on_postgres! {
    rebuild_produces_exactly_what_incremental_application_produced,
    a_notification_that_cannot_be_folded_becomes_a_finding,
    rebuild_waits_for_a_write_lock_held_elsewhere,
}
