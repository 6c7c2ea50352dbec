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
