//! Every refund learned: a refund whose notification never arrived is read
//! from Get Refund History, revokes the period, and is the checker's
//! MISSING_REFUND_NOTIFICATION for its transaction.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_only_in_refund_history_revokes_and_is_found() {
    let fake = FakeApple::start().await;
    let app = app(&fake).await;
    let (now, otid) = (now(), "9700");
    let t1 = tx(otid, "970001", "monthly", now - 40 * DAY, now - 10 * DAY);
    Post::new(&app, "SUBSCRIBED", now - 40 * DAY)
        .status(1)
        .tx(t1.clone())
        .send()
        .await;
    let t2 = tx(otid, "970002", "monthly", now - 10 * DAY, now + 20 * DAY);
    Post::new(&app, "DID_RENEW", now - 10 * DAY)
        .status(1)
        .tx(t2.clone())
        .send()
        .await;
    assert_eq!(subscription(&app, otid).await["entitled"], true);
    // Both periods refunded; only the first refund was ever notified.
    let refunded_t1 = revoked(t1, now - 20 * DAY, "REFUND_FULL");
    Post::new(&app, "REFUND", now - 20 * DAY)
        .tx(refunded_t1.clone())
        .send()
        .await;
    let mut refunded_t2 = revoked(t2, now - 2 * DAY, "REFUND_FULL");
    refunded_t2["signedDate"] = json!(now - 2 * DAY);
    fake.state().refunds.insert(
        otid.into(),
        vec![app.pki.sign(&refunded_t1), app.pki.sign(&refunded_t2)],
    );

    let out = app.cli(&["refunds-backfill", "--original-transaction-id", otid]);
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    assert_eq!(
        out.stdout.lines().last(),
        Some("subscriptions 1, refunded 2, new 2"),
        "{}",
        out.stdout
    );
    // Both pages were read (the fake lists one refund a page).
    assert_eq!(
        fake.seen(&format!("/inApps/v2/refund/lookup/{otid}")).len(),
        2
    );
    let s = subscription(&app, otid).await;
    assert_eq!(s["entitled"], false, "{s}");
    // In the refund ledger once each, by who told of it.
    assert_eq!(
        sources(&app, otid).await,
        [
            ("970001".into(), "NOTIFICATION".into()),
            ("970002".into(), "APPLE_API".into())
        ]
    );
    let (_, csv) = app
        .api_text(&format!(
            "/v1/refunds?originalTransactionId={otid}&format=csv"
        ))
        .await;
    assert!(csv.lines().next().unwrap().ends_with(",source"), "{csv}");
    assert!(
        csv.contains(",970002,") && csv.contains(",APPLE_API"),
        "{csv}"
    );
    let findings = check_and_keep(&app, now).await;
    assert_eq!(
        findings,
        vec![format!("MISSING_REFUND_NOTIFICATION {otid}")],
        "{findings:?}"
    );
    let store = app.store().await;
    let kept = store
        .findings(&appstore_ledger::store::FindingFilter {
            kind: Some("MISSING_REFUND_NOTIFICATION".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    store.close().await;
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(
        kept[0]
            .detail
            .contains("transaction 970002 carries revocationDate"),
        "{kept:?}"
    );
    assert!(!kept[0].detail.contains("970001"), "{kept:?}");

    // Asked again, every subscription: nothing new.
    let out = app.cli(&["refunds-backfill"]);
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    assert_eq!(
        out.stdout.lines().last(),
        Some("subscriptions 1, refunded 2, new 0"),
        "{}",
        out.stdout
    );
    // A subscription no configured environment knows.
    let out = app.cli(&["refunds-backfill", "--original-transaction-id", "404404"]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("UNKNOWN_SUBSCRIPTION"),
        "{}",
        out.stderr
    );
    assert!(fake.state().refused_tokens.is_empty());
}

/// The refund ledger's (transactionId, source) of a subscription.
async fn sources(app: &TestApp, otid: &str) -> Vec<(String, String)> {
    let (status, body) = app
        .api(&format!("/v1/refunds?originalTransactionId={otid}"))
        .await;
    assert_eq!(status, 200, "{body}");
    let mut rows: Vec<(String, String)> = body["refunds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["transactionId"].as_str().unwrap().to_owned(),
                r["source"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    rows.sort();
    rows
}

/// The REFUND notification that Refund History stood in for arrives late,
/// signed before Apple's answer or after it: either way the transaction has
/// one row in the refund ledger, the notification's, and no finding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_refund_notification_replaces_the_row_apples_answer_made() {
    let fake = FakeApple::start().await;
    let app = app(&fake).await;
    let now = now();
    for (otid, notified_after_answer) in [("9710", false), ("9720", true)] {
        let tid = format!("{otid}01");
        let t = tx(otid, &tid, "monthly", now - 10 * DAY, now + 20 * DAY);
        Post::new(&app, "SUBSCRIBED", now - 10 * DAY)
            .status(1)
            .tx(t.clone())
            .send()
            .await;
        let mut refunded = revoked(t, now - 3 * DAY, "REFUND_FULL");
        refunded["signedDate"] = json!(now - 2 * DAY);
        fake.state()
            .refunds
            .insert(otid.into(), vec![app.pki.sign(&refunded)]);
        let out = app.cli(&["refunds-backfill", "--original-transaction-id", otid]);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        assert_eq!(
            sources(&app, otid).await,
            [(tid.clone(), "APPLE_API".into())]
        );
        // Apple's retry of the lost notification, signed when it refunded
        // (before the answer) or re-signed later (after it).
        let signed = if notified_after_answer {
            now - DAY
        } else {
            now - 3 * DAY
        };
        refunded["signedDate"] = json!(signed);
        Post::new(&app, "REFUND", signed).tx(refunded).send().await;
        assert_eq!(
            sources(&app, otid).await,
            [(tid.clone(), "NOTIFICATION".into())],
            "{otid}"
        );
        assert_eq!(subscription(&app, otid).await["entitled"], false);
    }
    let findings = check_and_keep(&app, now).await;
    assert!(
        findings.iter().all(|f| !f.starts_with("MISSING_REFUND")),
        "{findings:?}"
    );
    // The rebuild makes the same rows.
    crate::apple_model::assert_rebuild_agrees(&app).await;
}

// The same tests on PostgreSQL, each on a fresh database there.
on_postgres! {
    a_refund_only_in_refund_history_revokes_and_is_found,
    a_late_refund_notification_replaces_the_row_apples_answer_made,
}
