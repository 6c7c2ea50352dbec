//! The inconsistency checker: each rule's situation built through the HTTP
//! endpoint with notifications signed days ago, found by `check --at`, then
//! resolved by delivering what was missing.

use serde_json::{json, Value};

use appstore_ledger::model::Timestamp;

use crate::helpers::{uuid, TempDir, TestApp};
use crate::ledger::{now, renewal, revoked, tx, Post, DAY, HOUR};

/// Runs `check --json` at `at` (milliseconds); returns the exit code and findings.
fn check(app: &TestApp, at: i64) -> (Option<i32>, Vec<Value>) {
    let at = Timestamp::from_millis(at).to_string();
    let out = app.cli(&["check", "--json", "--at", &at]);
    let findings = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (out.code, findings)
}

fn kinds_for(findings: &[Value], subject: &str) -> Vec<String> {
    findings
        .iter()
        .filter(|f| f["subject"] == subject)
        .map(|f| f["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn refund_without_expiration_is_found_and_resolves_when_expired_arrives() {
    let app = TestApp::spawn().await;
    let (now, otid) = (now(), "c-refund");
    // An annual plan whose refunded period ended three days ago.
    let end = now - 3 * DAY;
    let t1 = tx(otid, "c-refund-t1", "annual", end - 365 * DAY, end);
    Post::new(&app, "SUBSCRIBED", end - 365 * DAY)
        .tx(t1.clone())
        .renewal(renewal(otid, "annual", 1, end - 365 * DAY))
        .send()
        .await;
    let refunded = end - 200 * DAY;
    Post::new(&app, "REFUND", refunded)
        .tx(revoked(t1.clone(), refunded - HOUR, "REFUND_FULL"))
        .send()
        .await;

    // Apple's next word comes when the refunded period ends, not after the
    // refund: days and months after the refund, nothing is missing yet...
    assert_eq!(check(&app, refunded + 2 * DAY), (Some(0), vec![]));
    assert_eq!(check(&app, refunded + 150 * DAY), (Some(0), vec![]));
    // ...nor within the 24 h tolerance after the period's end.
    assert_eq!(check(&app, end + 23 * HOUR), (Some(0), vec![]));
    let (code, findings) = check(&app, now);
    assert_eq!(code, Some(3));
    assert_eq!(kinds_for(&findings, otid), ["REFUND_WITHOUT_EXPIRATION"]);
    let f = &findings[0];
    assert_eq!(
        (f["bundleId"].as_str(), f["environment"].as_str()),
        (Some(crate::helpers::BUNDLE_ID), Some("Sandbox"))
    );
    assert!(f["detail"].as_str().unwrap().contains("no EXPIRED"), "{f}");

    Post::new(&app, "EXPIRED", refunded + HOUR)
        .subtype("VOLUNTARY")
        .tx(revoked(t1, refunded - HOUR, "REFUND_FULL"))
        .send()
        .await;
    assert_eq!(check(&app, now), (Some(0), vec![]));
}

#[tokio::test]
async fn renewal_outcome_overdue_resolves_with_did_renew() {
    let app = TestApp::spawn().await;
    let (now, otid) = (now(), "c-renew");
    let t1 = tx(otid, "c-renew-t1", "monthly", now - 32 * DAY, now - 2 * DAY);
    Post::new(&app, "SUBSCRIBED", now - 32 * DAY)
        .tx(t1)
        .renewal(renewal(otid, "monthly", 1, now - 32 * DAY))
        .send()
        .await;
    assert_eq!(
        check(&app, now - 2 * DAY + 5 * HOUR),
        (Some(0), vec![]),
        "within 6 h of expiresDate"
    );
    let (code, findings) = check(&app, now);
    assert_eq!(
        (code, kinds_for(&findings, otid)),
        (Some(3), vec!["RENEWAL_OUTCOME_OVERDUE".to_owned()])
    );

    let t2 = tx(otid, "c-renew-t2", "monthly", now - 2 * DAY, now + 28 * DAY);
    Post::new(&app, "DID_RENEW", now - 2 * DAY)
        .tx(t2)
        .renewal(renewal(otid, "monthly", 1, now - 2 * DAY))
        .send()
        .await;
    assert_eq!(check(&app, now), (Some(0), vec![]));
}

#[tokio::test]
async fn expiration_overdue_resolves_with_expired() {
    let app = TestApp::spawn().await;
    let (now, otid) = (now(), "c-expire");
    let t1 = tx(otid, "c-expire-t1", "monthly", now - 31 * DAY, now - DAY);
    Post::new(&app, "SUBSCRIBED", now - 31 * DAY)
        .tx(t1.clone())
        .renewal(renewal(otid, "monthly", 1, now - 31 * DAY))
        .send()
        .await;
    Post::new(&app, "DID_CHANGE_RENEWAL_STATUS", now - 20 * DAY)
        .subtype("AUTO_RENEW_DISABLED")
        .tx(t1.clone())
        .renewal(renewal(otid, "monthly", 0, now - 20 * DAY))
        .send()
        .await;
    let (code, findings) = check(&app, now);
    assert_eq!(
        (code, kinds_for(&findings, otid)),
        (Some(3), vec!["EXPIRATION_OVERDUE".to_owned()])
    );
    Post::new(&app, "EXPIRED", now - DAY)
        .subtype("VOLUNTARY")
        .tx(t1)
        .send()
        .await;
    assert_eq!(check(&app, now), (Some(0), vec![]));
}

#[tokio::test]
async fn grace_period_overrun_resolves_with_grace_period_expired() {
    let app = TestApp::spawn().await;
    let (now, otid) = (now(), "c-grace");
    let t1 = tx(
        otid,
        "c-grace-t1",
        "monthly",
        now - 40 * DAY,
        now - 10 * DAY,
    );
    Post::new(&app, "SUBSCRIBED", now - 40 * DAY)
        .tx(t1.clone())
        .renewal(renewal(otid, "monthly", 1, now - 40 * DAY))
        .send()
        .await;
    let mut r = renewal(otid, "monthly", 1, now - 10 * DAY);
    r["gracePeriodExpiresDate"] = json!(now - 4 * DAY);
    Post::new(&app, "DID_FAIL_TO_RENEW", now - 10 * DAY)
        .subtype("GRACE_PERIOD")
        .tx(t1.clone())
        .renewal(r)
        .send()
        .await;
    let (code, findings) = check(&app, now);
    assert_eq!(
        (code, kinds_for(&findings, otid)),
        (Some(3), vec!["GRACE_PERIOD_OVERRUN".to_owned()])
    );
    Post::new(&app, "GRACE_PERIOD_EXPIRED", now - 4 * DAY)
        .tx(t1)
        .send()
        .await;
    assert_eq!(check(&app, now), (Some(0), vec![]));
}

#[tokio::test]
async fn a_uuid_arriving_with_different_content_is_a_conflicting_duplicate_and_both_are_kept() {
    let app = TestApp::spawn().await;
    let (now, otid) = (now(), "c-dup");
    let id = uuid();
    let sign = |product: &str, signed: i64| {
        let payload = json!({
            "notificationType": "DID_RENEW", "notificationUUID": id, "signedDate": signed,
            "data": {"bundleId": crate::helpers::BUNDLE_ID, "environment": "Sandbox", "appAppleId": crate::helpers::APP_APPLE_ID,
                     "signedTransactionInfo": app.pki.sign(&tx(otid, "c-dup-t1", product, now - DAY, now + 29 * DAY))},
        });
        app.pki.sign(&payload)
    };
    assert_eq!(
        app.post(&sign("monthly", now - DAY)).await.1["status"],
        "stored"
    );
    // A re-signed retry (only signedDate differs) is no conflict.
    assert_eq!(
        app.post(&sign("monthly", now - DAY + 5)).await.1["status"],
        "duplicate"
    );
    assert_eq!(check(&app, now), (Some(0), vec![]));
    // Same UUID, other content.
    assert_eq!(
        app.post(&sign("premium", now - DAY)).await.1["status"],
        "duplicate"
    );
    let (code, findings) = check(&app, now);
    assert_eq!(
        (code, kinds_for(&findings, &id)),
        (Some(3), vec!["CONFLICTING_DUPLICATE".to_owned()])
    );
    assert_eq!(findings[0]["originalTransactionId"], otid);
    let conflicts: i64 = sqlx::query_scalar("SELECT count(*) FROM notification_conflicts")
        .fetch_one(&mut app.db().await)
        .await
        .unwrap();
    assert_eq!(conflicts, 1);
    // The first stored stays authoritative.
    let (_, s) = app.api(&format!("/v1/subscriptions/{otid}")).await;
    assert_eq!(s["productId"], "monthly");
}

#[tokio::test]
async fn notifications_disagreeing_on_identity_are_found() {
    let app = TestApp::spawn().await;
    let (now, otid) = (now(), "c-identity");
    let t1 = tx(
        otid,
        "c-identity-t1",
        "monthly",
        now - 10 * DAY,
        now + 20 * DAY,
    );
    Post::new(&app, "SUBSCRIBED", now - 10 * DAY)
        .tx(t1.clone())
        .send()
        .await;
    assert_eq!(check(&app, now), (Some(0), vec![]));
    // A subscription does not move to another group. (Its appAccountToken
    // may change: Set App Account Token; see apple_model.rs.)
    let mut other_group = t1;
    other_group["subscriptionGroupIdentifier"] = json!("another-group");
    Post::new(&app, "DID_CHANGE_RENEWAL_STATUS", now - 9 * DAY)
        .subtype("AUTO_RENEW_ENABLED")
        .tx(other_group)
        .send()
        .await;
    let (code, findings) = check(&app, now);
    assert_eq!(
        (code, kinds_for(&findings, otid)),
        (Some(3), vec!["IDENTITY_MISMATCH".to_owned()])
    );
    assert!(findings[0]["detail"]
        .as_str()
        .unwrap()
        .contains("subscriptionGroupIdentifier: group != another-group"));
}

#[tokio::test]
async fn a_revocation_seen_without_any_refund_notification_is_found() {
    let app = TestApp::spawn().await;
    let (now, otid) = (now(), "c-norefund");
    let t1 = tx(
        otid,
        "c-norefund-t1",
        "monthly",
        now - 20 * DAY,
        now + 10 * DAY,
    );
    Post::new(&app, "SUBSCRIBED", now - 20 * DAY)
        .tx(t1.clone())
        .send()
        .await;
    // Apple's EXPIRED shows the transaction revoked; the REFUND never came.
    Post::new(&app, "EXPIRED", now - 2 * DAY)
        .subtype("VOLUNTARY")
        .tx(revoked(t1.clone(), now - 3 * DAY, "REFUND_FULL"))
        .send()
        .await;
    let (code, findings) = check(&app, now);
    assert_eq!(
        (code, kinds_for(&findings, otid)),
        (Some(3), vec!["MISSING_REFUND_NOTIFICATION".to_owned()])
    );
    Post::new(&app, "REFUND", now - 3 * DAY)
        .tx(revoked(t1, now - 3 * DAY, "REFUND_FULL"))
        .send()
        .await;
    assert_eq!(check(&app, now), (Some(0), vec![]));
    let (_, refunds) = app.api("/v1/refunds").await;
    assert_eq!(refunds["refunds"].as_array().unwrap().len(), 1);
}

/// The rule is per transaction: an earlier period's refund, notified, does
/// not hide that a later period's refund lost its notification.
#[tokio::test]
async fn a_lost_refund_of_a_later_period_after_an_earlier_refund_is_found() {
    let app = TestApp::spawn().await;
    let (now, otid) = (now(), "c-second-refund");
    let t1 = tx(
        otid,
        "c-second-refund-t1",
        "monthly",
        now - 70 * DAY,
        now - 40 * DAY,
    );
    Post::new(&app, "SUBSCRIBED", now - 70 * DAY)
        .tx(t1.clone())
        .send()
        .await;
    Post::new(&app, "REFUND", now - 60 * DAY)
        .tx(revoked(t1, now - 60 * DAY, "REFUND_FULL"))
        .send()
        .await;
    let t2 = tx(otid, "c-second-refund-t2", "monthly", now - 30 * DAY, now);
    Post::new(&app, "SUBSCRIBED", now - 30 * DAY)
        .subtype("RESUBSCRIBE")
        .tx(t2.clone())
        .send()
        .await;
    assert_eq!(check(&app, now), (Some(0), vec![]));
    // Apple's EXPIRED shows the second period revoked; its REFUND never came.
    Post::new(&app, "EXPIRED", now - HOUR)
        .subtype("VOLUNTARY")
        .tx(revoked(t2.clone(), now - 3 * DAY, "REFUND_FULL"))
        .send()
        .await;
    let (code, findings) = check(&app, now);
    assert_eq!(
        (code, kinds_for(&findings, otid)),
        (Some(3), vec!["MISSING_REFUND_NOTIFICATION".to_owned()])
    );
    let detail = findings[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("transaction c-second-refund-t2 carries revocationDate"),
        "{detail}"
    );
    assert!(!detail.contains("c-second-refund-t1"), "{detail}");
    Post::new(&app, "REFUND", now - 3 * DAY)
        .tx(revoked(t2, now - 3 * DAY, "REFUND_FULL"))
        .send()
        .await;
    assert_eq!(check(&app, now), (Some(0), vec![]));
}

#[tokio::test]
async fn healthy_histories_give_no_finding() {
    let app = TestApp::spawn().await;
    let now = now();
    // A monthly plan refunded, followed by its EXPIRED.
    let t1 = tx(
        "h-refund",
        "h-refund-t1",
        "monthly",
        now - 20 * DAY,
        now + 10 * DAY,
    );
    Post::new(&app, "SUBSCRIBED", now - 20 * DAY)
        .tx(t1.clone())
        .renewal(renewal("h-refund", "monthly", 1, now - 20 * DAY))
        .send()
        .await;
    Post::new(&app, "REFUND", now - 5 * DAY)
        .tx(revoked(t1.clone(), now - 5 * DAY, "REFUND_FULL"))
        .send()
        .await;
    Post::new(&app, "EXPIRED", now - 5 * DAY + HOUR)
        .subtype("VOLUNTARY")
        .tx(revoked(t1, now - 5 * DAY, "REFUND_FULL"))
        .send()
        .await;
    // Normal renewals, month after month.
    for month in 0..4 {
        let start = now - (100 - month * 30) * DAY;
        let t = tx(
            "h-renew",
            &format!("h-renew-t{month}"),
            "monthly",
            start,
            start + 30 * DAY,
        );
        let kind = if month == 0 {
            "SUBSCRIBED"
        } else {
            "DID_RENEW"
        };
        Post::new(&app, kind, start)
            .tx(t)
            .renewal(renewal("h-renew", "monthly", 1, start))
            .send()
            .await;
    }
    // A voluntary expiry, reported on time.
    let t = tx(
        "h-expire",
        "h-expire-t1",
        "monthly",
        now - 40 * DAY,
        now - 10 * DAY,
    );
    Post::new(&app, "SUBSCRIBED", now - 40 * DAY)
        .tx(t.clone())
        .renewal(renewal("h-expire", "monthly", 0, now - 40 * DAY))
        .send()
        .await;
    Post::new(&app, "EXPIRED", now - 10 * DAY)
        .subtype("VOLUNTARY")
        .tx(t)
        .send()
        .await;
    assert_eq!(check(&app, now), (Some(0), vec![]));
}

#[tokio::test]
async fn serve_keeps_findings_and_resolves_them_by_itself() {
    let app = TestApp::spawn_with(
        crate::helpers::pki(),
        TempDir::new(),
        "[check]\ninterval_ms = 100\n",
    )
    .await;
    let (now, otid) = (now(), "c-serve");
    // Refunded three days ago; the refunded period ended yesterday.
    let t1 = tx(otid, "c-serve-t1", "monthly", now - 31 * DAY, now - DAY);
    Post::new(&app, "SUBSCRIBED", now - 31 * DAY)
        .tx(t1.clone())
        .send()
        .await;
    Post::new(&app, "REFUND", now - 3 * DAY)
        .tx(revoked(t1.clone(), now - 3 * DAY, "REFUND_FULL"))
        .send()
        .await;

    let open = wait_for(
        &app,
        "/v1/inconsistencies?open=true&kind=REFUND_WITHOUT_EXPIRATION",
        |f| !f.is_empty(),
    )
    .await;
    let finding = &open[0];
    assert_eq!(finding["originalTransactionId"], otid);
    assert_eq!(finding["bundleId"], crate::helpers::BUNDLE_ID);
    assert!(finding["firstSeen"].as_i64().unwrap() >= now);
    assert_eq!(finding["resolvedAt"], Value::Null);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("appstore_ledger_open_findings{kind=\"REFUND_WITHOUT_EXPIRATION\"} 1"),
        "{metrics}"
    );
    app.assert_totals_match_tables().await;

    Post::new(&app, "EXPIRED", now - 2 * DAY)
        .subtype("VOLUNTARY")
        .tx(revoked(t1, now - 3 * DAY, "REFUND_FULL"))
        .send()
        .await;
    let resolved = wait_for(&app, "/v1/inconsistencies?open=false", |f| !f.is_empty()).await;
    assert_eq!(resolved[0]["kind"], "REFUND_WITHOUT_EXPIRATION");
    assert!(
        resolved[0]["resolvedAt"].as_i64().unwrap() >= resolved[0]["firstSeen"].as_i64().unwrap()
    );
    let (_, open) = app.api("/v1/inconsistencies?open=true").await;
    assert_eq!(open["inconsistencies"], json!([]));
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("appstore_ledger_open_findings{kind=\"REFUND_WITHOUT_EXPIRATION\"} 0"),
        "{metrics}"
    );
    app.assert_totals_match_tables().await;
    assert_eq!(app.api("/v1/inconsistencies?kind=NOPE").await.0, 400);
}

async fn wait_for(app: &TestApp, path: &str, done: impl Fn(&Vec<Value>) -> bool) -> Vec<Value> {
    for _ in 0..100 {
        let (status, body) = app.api(path).await;
        assert_eq!(status, 200, "{body}");
        let findings = body["inconsistencies"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if done(&findings) {
            return findings;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{path}: the periodic check did not get there in 5 s");
}

/// The check reads every ledger item, in pages, and says how many.
#[tokio::test]
async fn check_counts_every_item_it_read() {
    let app = TestApp::spawn().await;
    let now = now();
    for i in 0..3 {
        let otid = format!("count-{i}");
        Post::new(&app, "SUBSCRIBED", now - DAY)
            .tx(tx(
                &otid,
                &format!("{otid}-t1"),
                "monthly",
                now - DAY,
                now + 29 * DAY,
            ))
            .send()
            .await;
    }
    let at = Timestamp::from_millis(now).to_string();
    let out = app.cli(&["check", "--at", &at]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "checked 3 subscriptions and purchases at {at}: 0 finding(s)"
        )),
        "{}",
        out.stderr
    );
}

/// Syncing the kept findings says what it opened and resolved, across
/// several batches.
#[tokio::test]
async fn syncing_findings_counts_what_it_opened_and_resolved() {
    use appstore_ledger::check::{sync_findings, Finding, FindingKind, SyncSummary};
    use appstore_ledger::config::DatabaseSettings;
    use appstore_ledger::store::{FindingFilter, Store};

    let dir = TempDir::new();
    let store = Store::connect(&DatabaseSettings {
        url: format!("sqlite://{}", dir.path("findings.db").display()),
        max_connections: 2,
        busy_timeout_ms: 5000,
    })
    .await
    .unwrap();
    let finding = |subject: String| Finding {
        kind: FindingKind::ExpirationOverdue,
        subject,
        original_transaction_id: None,
        bundle_id: None,
        environment: None,
        detail: String::new(),
    };
    let first: Vec<Finding> = (0..1200).map(|i| finding(format!("s{i}"))).collect();
    assert_eq!(
        sync_findings(&store, &first, 1).await.unwrap(),
        SyncSummary {
            opened: 1200,
            resolved: 0
        }
    );
    // Half seen again, half vanished, two new.
    let mut second: Vec<Finding> = (600..1200).map(|i| finding(format!("s{i}"))).collect();
    second.extend([finding("new-1".into()), finding("new-2".into())]);
    assert_eq!(
        sync_findings(&store, &second, 2).await.unwrap(),
        SyncSummary {
            opened: 2,
            resolved: 600
        }
    );
    let open = store
        .findings(&FindingFilter {
            open: Some(true),
            limit: 5000,
            ..FindingFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(open.len(), 602);
    let open_by_kind = || async { store.totals().await.unwrap().open_findings };
    assert_eq!(
        open_by_kind().await,
        [("EXPIRATION_OVERDUE".to_owned(), 602)]
    );
    assert_eq!(
        sync_findings(&store, &[], 3).await.unwrap(),
        SyncSummary {
            opened: 0,
            resolved: 602
        }
    );
    assert_eq!(open_by_kind().await, []);
    store.close().await;
}

// The same tests on PostgreSQL, each on a fresh database there.
on_postgres! {
    refund_without_expiration_is_found_and_resolves_when_expired_arrives,
    renewal_outcome_overdue_resolves_with_did_renew,
    expiration_overdue_resolves_with_expired,
    grace_period_overrun_resolves_with_grace_period_expired,
    a_uuid_arriving_with_different_content_is_a_conflicting_duplicate_and_both_are_kept,
    notifications_disagreeing_on_identity_are_found,
    a_revocation_seen_without_any_refund_notification_is_found,
    a_lost_refund_of_a_later_period_after_an_earlier_refund_is_found,
    healthy_histories_give_no_finding,
    serve_keeps_findings_and_resolves_them_by_itself,
    check_counts_every_item_it_read,
    syncing_findings_counts_what_it_opened_and_resolved,
}
