//! Reconciliation: Apple's answer settles or corrects what the ledger says.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refunded_annual_plan_is_no_finding_before_its_period_ends_and_reconcile_settles_it() {
    let fake = FakeApple::start().await;
    let app = app(&fake).await;
    let otid = "7400";
    let purchase = now() - 400 * DAY;
    let expires = purchase + 365 * DAY; // 35 days ago
    let annual = tx(otid, "740001", "annual", purchase, expires);
    Post::new(&app, "SUBSCRIBED", purchase)
        .subtype("INITIAL_BUY")
        .status(1)
        .tx(annual.clone())
        .renewal(renewal(otid, "annual", 1, purchase))
        .send()
        .await;
    let refunded = purchase + 30 * DAY;
    let refunded_tx = revoked(annual.clone(), refunded, "REFUND_FULL");
    Post::new(&app, "REFUND", refunded)
        .status(5)
        .tx(refunded_tx.clone())
        .renewal(renewal(otid, "annual", 0, refunded))
        .send()
        .await;

    // Months after the refund, before the refunded period ends: Apple owes nothing yet.
    assert!(check_and_keep(&app, expires - DAY).await.is_empty());
    let answer = subscription(&app, otid).await;
    assert_eq!(answer["nextExpectedEventDate"], expires, "{answer}");
    // After it ended (and the tolerance), Apple's silence is a finding.
    let findings = check_and_keep(&app, now()).await;
    assert_eq!(findings, vec![format!("REFUND_WITHOUT_EXPIRATION {otid}")]);

    // Apple confirms: revoked, auto-renew off.
    fake.state().statuses.insert(
        otid.into(),
        status_answer(&app, otid, 5, &refunded_tx, &renewal(otid, "annual", 0, 0)),
    );
    fake.state()
        .transactions
        .insert(otid.into(), vec![app.pki.sign(&refunded_tx)]);
    let run = cli(&app, &["reconcile", "--open-findings"]).await;
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("REFUND_WITHOUT_EXPIRATION CONFIRMED_BY_APPLE"),
        "{}",
        run.stdout
    );
    let (_, body) = app.api("/v1/inconsistencies?open=false").await;
    let finding = &body["inconsistencies"][0];
    assert_eq!(finding["resolution"], "CONFIRMED_BY_APPLE", "{body}");
    assert!(finding["resolvedAt"].is_i64());
    // Settled for good: the next check finds nothing, and nothing more is expected.
    assert!(check_and_keep(&app, now()).await.is_empty());
    assert!(subscription(&app, otid).await["nextExpectedEventDate"].is_null());
    assert!(fake.state().refused_tokens.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_corrects_a_missed_renewal_from_transaction_history() {
    let fake = FakeApple::start().await;
    let app = app(&fake).await;
    let otid = "7500";
    let purchase = now() - 32 * DAY;
    let first = tx(otid, "750001", "monthly", purchase, purchase + 30 * DAY);
    Post::new(&app, "SUBSCRIBED", purchase)
        .status(1)
        .tx(first.clone())
        .renewal(renewal(otid, "monthly", 1, purchase))
        .send()
        .await;
    assert_eq!(
        check_and_keep(&app, now()).await,
        vec![format!("RENEWAL_OUTCOME_OVERDUE {otid}")]
    );
    assert_eq!(subscription(&app, otid).await["entitled"], false);

    // The DID_RENEW push was lost; Apple knows the renewal.
    let renewed_at = purchase + 30 * DAY;
    let second = tx(otid, "750002", "monthly", renewed_at, renewed_at + 30 * DAY);
    fake.state().transactions.insert(
        otid.into(),
        vec![app.pki.sign(&first), app.pki.sign(&second)],
    );
    fake.state().statuses.insert(
        otid.into(),
        status_answer(&app, otid, 1, &second, &renewal(otid, "monthly", 1, 0)),
    );
    let run = cli(&app, &["reconcile", "--original-transaction-id", otid]).await;
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("RENEWAL_OUTCOME_OVERDUE CORRECTED_FROM_APPLE"),
        "{}",
        run.stdout
    );
    let answer = subscription(&app, otid).await;
    assert_eq!(answer["entitled"], true, "{answer}");
    assert_eq!(answer["transactionId"], "750002");
    assert_eq!(answer["expiresDate"], renewed_at + 30 * DAY);
    let (_, history) = app.api(&format!("/v1/subscriptions/{otid}/history")).await;
    assert_eq!(
        history["appleAnswers"].as_array().unwrap().len(),
        2,
        "{history}"
    );
    // Only the transaction the ledger never saw was kept from the history.
    assert_eq!(
        rows(&app, "SELECT source FROM apple_evidence ORDER BY source").await,
        vec!["GET_ALL_SUBSCRIPTION_STATUSES", "GET_TRANSACTION_HISTORY"]
    );

    // A later push still wins: it is ordered by signedDate, after Apple's answer.
    Post::new(&app, "EXPIRED", now() + 1_000)
        .subtype("VOLUNTARY")
        .status(2)
        .tx(second.clone())
        .renewal(renewal(otid, "monthly", 0, now() + 1_000))
        .send()
        .await;
    assert_eq!(subscription(&app, otid).await["status"], "EXPIRED");
    // And rebuild gives the same ledger, evidence included.
    let before = rows(
        &app,
        "SELECT kind || item_id || state FROM ledger_items ORDER BY 1",
    )
    .await;
    assert_eq!(cli(&app, &["rebuild"]).await.code, Some(0));
    assert_eq!(
        rows(
            &app,
            "SELECT kind || item_id || state FROM ledger_items ORDER BY 1"
        )
        .await,
        before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_unknown_in_production_is_found_in_sandbox() {
    let production = FakeApple::start().await;
    let sandbox = FakeApple::start().await;
    // Both fakes must accept the same key.
    sandbox.trust_key_of(&production);
    let app = app_with(&production, &sandbox, NO_SCHEDULE, pki()).await;
    let otid = "7600";
    let t = tx(otid, "760001", "monthly", now() - DAY, now() + 29 * DAY);
    sandbox.state().statuses.insert(
        otid.into(),
        status_answer(&app, otid, 1, &t, &renewal(otid, "monthly", 1, 0)),
    );
    sandbox.state().transactions.insert(otid.into(), vec![]);

    let run = cli(&app, &["reconcile", "--original-transaction-id", otid]).await;
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        production.seen("/inApps/v2/history").len(),
        1,
        "asked Production first"
    );
    assert_eq!(subscription(&app, otid).await["entitled"], true);

    let unknown = cli(&app, &["reconcile", "--original-transaction-id", "7699"]).await;
    assert_eq!(unknown.code, Some(1));
    assert!(
        unknown.stderr.contains("UNKNOWN_SUBSCRIPTION"),
        "{}",
        unknown.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reconciles_open_findings_on_its_own() {
    let fake = FakeApple::start().await;
    let dir = TempDir::new();
    let mut extra = api_config(
        &dir,
        &fake.key_pem,
        &fake.url,
        &fake.url,
        "backfill_interval_ms = 0\nreconcile_interval_ms = 200",
    );
    extra.push_str("\n[check]\ninterval_ms = 100\n");
    let app = TestApp::spawn_with(pki(), dir, &extra).await;
    let otid = "7800";
    let purchase = now() - 32 * DAY;
    let first = tx(otid, "780001", "monthly", purchase, purchase + 30 * DAY);
    Post::new(&app, "SUBSCRIBED", purchase)
        .status(1)
        .tx(first.clone())
        .renewal(renewal(otid, "monthly", 0, purchase))
        .send()
        .await;
    // Apple says it expired; the EXPIRED push was lost.
    fake.state().statuses.insert(
        otid.into(),
        status_answer(&app, otid, 2, &first, &renewal(otid, "monthly", 0, 0)),
    );
    fake.state().transactions.insert(otid.into(), vec![]);
    for _ in 0..100 {
        let (_, body) = app.api("/v1/inconsistencies?open=false").await;
        if body["inconsistencies"][0]["resolution"] == "CORRECTED_FROM_APPLE" {
            assert_eq!(body["inconsistencies"][0]["kind"], "EXPIRATION_OVERDUE");
            assert_eq!(subscription(&app, otid).await["status"], "EXPIRED");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("serve did not reconcile the open finding within 10 s");
}

/// Apple's word in a status answer is checked like a notification's: a
/// paid period Apple calls billing retry is kept as Apple says, and raised
/// with both answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_answer_the_ledger_disagrees_with_is_kept_and_raised() {
    let fake = FakeApple::start().await;
    let mut app = app(&fake).await;
    app.apple_may_disagree = true;
    let otid = "7900";
    let purchase = now() - 3 * DAY;
    let paid = tx(otid, "790001", "monthly", purchase, purchase + 30 * DAY);
    Post::new(&app, "SUBSCRIBED", purchase)
        .subtype("INITIAL_BUY")
        .status(1)
        .tx(paid.clone())
        .renewal(renewal(otid, "monthly", 1, purchase))
        .send()
        .await;
    assert!(check_and_keep(&app, now()).await.is_empty());
    fake.state().statuses.insert(
        otid.into(),
        status_answer(&app, otid, 3, &paid, &renewal(otid, "monthly", 1, 0)),
    );
    fake.state()
        .transactions
        .insert(otid.into(), vec![app.pki.sign(&paid)]);
    let run = cli(&app, &["reconcile", "--original-transaction-id", otid]).await;
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let answer = subscription(&app, otid).await;
    assert_eq!(
        (answer["status"].as_str(), answer["entitled"].as_bool()),
        (Some("BILLING_RETRY"), Some(false)),
        "Apple's status is the answer: {answer}"
    );
    assert_eq!(
        check_and_keep(&app, now()).await,
        vec![format!("APPLE_STATUS_DISAGREES {otid}")]
    );
    let (_, body) = app.api("/v1/inconsistencies").await;
    let detail = body["inconsistencies"][0]["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        detail.contains("GET_ALL_SUBSCRIPTION_STATUSES ")
            && detail.contains(": Apple's status BILLING_RETRY, the ledger's ACTIVE (since SUBSCRIBED/INITIAL_BUY "),
        "{body}"
    );
}

/// A customer asked Apple to refund an older period (CONSUMPTION_REQUEST),
/// Apple refunded it, and the REFUND never came. The scheduled
/// reconciliation asks about the subscription because of the request, and
/// reads the refund from Transaction History although it knows that
/// transaction: one row of the refund ledger, from Apple's answer, and the
/// checker's MISSING_REFUND_NOTIFICATION for that transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_refund_of_an_older_period_is_read_when_the_customer_asked_for_one() {
    let fake = FakeApple::start().await;
    let jobs = "backfill_interval_ms = 0\nreconcile_interval_ms = 0\nconsumption_interval_ms = 20";
    let app = app_with(&fake, &fake, jobs, pki()).await;
    let (otid, now) = ("7600", now());
    let first = tx(otid, "760001", "monthly", now - 40 * DAY, now - 10 * DAY);
    let second = tx(otid, "760002", "monthly", now - 10 * DAY, now + 20 * DAY);
    for (kind, t) in [("SUBSCRIBED", &first), ("DID_RENEW", &second)] {
        let at = t["purchaseDate"].as_i64().unwrap();
        Post::new(&app, kind, at)
            .status(1)
            .tx(t.clone())
            .renewal(renewal(otid, "monthly", 1, at))
            .send()
            .await;
    }
    super::consumption::ask(&app, &first, now - 5 * DAY).await;
    // The app does not answer consumption requests: closed, no finding.
    let closed =
        super::consumption::request_when(&app, "760001", |r| r["state"] == "NOT_SENT").await;
    assert_eq!(closed["why"], "ANSWERS_OFF");
    assert!(check_and_keep(&app, now).await.is_empty());

    let mut refunded = revoked(first, now - 2 * DAY, "REFUND_FULL");
    refunded["signedDate"] = json!(now - 2 * DAY);
    fake.state().transactions.insert(
        otid.into(),
        vec![app.pki.sign(&refunded), app.pki.sign(&second)],
    );
    fake.state().statuses.insert(
        otid.into(),
        status_answer(&app, otid, 1, &second, &renewal(otid, "monthly", 1, 0)),
    );
    let run = cli(&app, &["reconcile", "--open-findings"]).await;
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(fake.seen(&format!("/inApps/v2/history/{otid}")).len(), 1);

    let (_, body) = app
        .api(&format!("/v1/refunds?originalTransactionId={otid}"))
        .await;
    let rows = body["refunds"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{body}");
    assert_eq!(rows[0]["transactionId"], "760001");
    assert_eq!(rows[0]["source"], "APPLE_API");
    assert_eq!(rows[0]["refundedAmount"], 9990);
    // The current period stays paid for.
    assert_eq!(subscription(&app, otid).await["entitled"], true);
    assert_eq!(
        check_and_keep(&app, now).await,
        vec![format!("MISSING_REFUND_NOTIFICATION {otid}")]
    );
    assert!(fake.state().refused_tokens.is_empty());
}

/// Reconciliation also reads Refund History: a refund there that no
/// notification brought becomes an APPLE_API row and ends the period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_reads_refund_history() {
    let fake = FakeApple::start().await;
    let app = app(&fake).await;
    let (otid, now) = ("7700", now());
    let t = tx(otid, "770001", "monthly", now - 5 * DAY, now + 25 * DAY);
    Post::new(&app, "SUBSCRIBED", now - 5 * DAY)
        .status(1)
        .tx(t.clone())
        .renewal(renewal(otid, "monthly", 1, now - 5 * DAY))
        .send()
        .await;
    let mut refunded = revoked(t.clone(), now - DAY, "REFUND_FULL");
    refunded["signedDate"] = json!(now - DAY);
    {
        let mut s = fake.state();
        s.transactions.insert(otid.into(), vec![app.pki.sign(&t)]);
        s.refunds.insert(otid.into(), vec![app.pki.sign(&refunded)]);
        s.statuses.insert(
            otid.into(),
            status_answer(&app, otid, 5, &refunded, &renewal(otid, "monthly", 0, 0)),
        );
    }
    let run = cli(&app, &["reconcile", "--original-transaction-id", otid]).await;
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        fake.seen(&format!("/inApps/v2/refund/lookup/{otid}")).len(),
        1
    );
    let (_, body) = app
        .api(&format!("/v1/refunds?originalTransactionId={otid}"))
        .await;
    assert_eq!(body["refunds"][0]["source"], "APPLE_API", "{body}");
    assert_eq!(body["refunds"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(subscription(&app, otid).await["entitled"], false);
}

// The same tests on PostgreSQL, each on a fresh database there.
on_postgres! {
    a_refunded_annual_plan_is_no_finding_before_its_period_ends_and_reconcile_settles_it,
    reconcile_corrects_a_missed_renewal_from_transaction_history,
    a_subscription_unknown_in_production_is_found_in_sandbox,
    serve_reconciles_open_findings_on_its_own,
    a_status_answer_the_ledger_disagrees_with_is_kept_and_raised,
    a_later_refund_of_an_older_period_is_read_when_the_customer_asked_for_one,
    reconcile_reads_refund_history,
}
