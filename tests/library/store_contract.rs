//! The Store's contract, checked in process on both backends: the same
//! calls, the same literal answers, on a fresh SQLite file and on a fresh
//! PostgreSQL database (the server `APPSTORE_LEDGER_TEST_POSTGRES` names).
//! What the black-box suite reaches only through HTTP is pinned here at the
//! seam every backend implements: storing once, quarantine and release,
//! findings, job leases, console users, sign-in reservations (also many at
//! once), sessions and the shared console secret, deliveries kept with
//! each its own moment, a delivery round that starts no attempt its claim
//! could not cover, notifications written in one batch folded as one by
//! one (a withdrawn consent among them too), and a feed on PostgreSQL that another database's open
//! transaction does not hold back.

use crate::common;

use std::future::Future;

use appstore_ledger::config::AppSettings;
use appstore_ledger::finding::{Finding, FindingKind};
use appstore_ledger::ingest::{Ingest, Ingested};
use appstore_ledger::jws::Verifier;
use appstore_ledger::ledger::ItemKey;
use appstore_ledger::model::Timestamp;
use appstore_ledger::store::{
    ConsoleUser, Delivery, DeliveryOutcome, DeliveryResult, DeliveryRow, FindingFilter, ItemQuery,
    NewNotification, QuarantineReason, Recorded, Store,
};
use common::db::{postgres_admin, TempDb};
use common::payloads::{NotificationSpec, APP_APPLE_ID, BUNDLE_ID};
use common::pki::{TestPki, AT};

const NOW: i64 = 1_780_000_000_000;
const MINUTE: i64 = 60_000;

/// Runs `check` on a fresh SQLite store, then on a fresh PostgreSQL one
/// (a skip when no server is named), saying which failed.
async fn on_each_backend<F, Fut>(check: F)
where
    F: Fn(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let sqlite = TempDb::new(None).await;
    let store = sqlite.store().await;
    check(store.clone()).await;
    store.close().await;
    let Some(admin) = postgres_admin() else {
        return;
    };
    let postgres = TempDb::new(Some(&admin)).await;
    let store = postgres.store().await;
    check(store.clone()).await;
    store.close().await;
}

fn pki() -> &'static TestPki {
    static PKI: std::sync::OnceLock<TestPki> = std::sync::OnceLock::new();
    PKI.get_or_init(TestPki::new)
}

/// A notification as the webhook would store it (verified and classified
/// by the service's own code), for `bundle_id`.
fn notification(uuid: &str, bundle_id: &str) -> NewNotification {
    classified(
        NotificationSpec {
            bundle_id,
            ..NotificationSpec::new("DID_RENEW", uuid)
        },
        uuid,
    )
}

/// A renewal of the subscription `original_transaction_id`, as stored.
fn renewal_of(uuid: &str, original_transaction_id: &str) -> NewNotification {
    renewal_until(
        uuid,
        original_transaction_id,
        &format!("{original_transaction_id}-t"),
        NOW + 30 * 24 * 60 * MINUTE,
    )
}

/// A renewal by `transaction_id` that runs until `expires`.
fn renewal_until(
    uuid: &str,
    original_transaction_id: &str,
    transaction_id: &str,
    expires: i64,
) -> NewNotification {
    classified(
        renewal_spec(uuid, original_transaction_id, transaction_id, expires),
        uuid,
    )
}

fn renewal_spec<'a>(
    uuid: &str,
    original_transaction_id: &str,
    transaction_id: &str,
    expires: i64,
) -> NotificationSpec<'a> {
    let mut spec = NotificationSpec::new("DID_RENEW", uuid);
    for payload in [spec.transaction.as_mut(), spec.renewal.as_mut()]
        .into_iter()
        .flatten()
    {
        payload["originalTransactionId"] = original_transaction_id.into();
    }
    // Bought a minute before it was received (at NOW) and running for a
    // month: entitled then, so the fold tells it as an event.
    if let Some(t) = spec.transaction.as_mut() {
        t["transactionId"] = transaction_id.into();
        t["purchaseDate"] = (NOW - MINUTE).into();
        t["expiresDate"] = expires.into();
    }
    spec.signed_date = NOW;
    spec
}

fn classified(spec: NotificationSpec, uuid: &str) -> NewNotification {
    classified_token(&spec.sign(pki()), uuid)
}

fn classified_token(token: &str, uuid: &str) -> NewNotification {
    let ingest = Ingest::new(
        Verifier::new(pki().anchors()),
        &[AppSettings {
            bundle_id: BUNDLE_ID.into(),
            app_apple_id: Some(APP_APPLE_ID),
            environments: vec!["Sandbox".into()],
            api: None,
            products: Vec::new(),
            consumption: None,
        }],
    );
    match ingest.classify(token, AT, Timestamp::from_millis(NOW)) {
        Ok(Ingested::Accepted(n)) => n,
        Ok(Ingested::Quarantined(n, _)) => n,
        other => panic!("{uuid}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_is_stored_once() {
    on_each_backend(|store| async move {
        let n = notification("contract-1", BUNDLE_ID);
        assert_eq!(
            store.record_notification(n.clone()).await.unwrap(),
            Recorded::Stored
        );
        assert_eq!(
            store.record_notification(n).await.unwrap(),
            Recorded::Duplicate
        );
        assert!(store.has_notification("contract-1").await.unwrap());
        assert!(!store.has_notification("contract-2").await.unwrap());
        assert_eq!(store.counts().await.unwrap().notifications, 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarantined_notification_is_released_once() {
    on_each_backend(|store| async move {
        let n = notification("contract-q", "com.example.other");
        let reason = QuarantineReason {
            code: "BUNDLE_MISMATCH".into(),
            message: "no [[apps]] entry".into(),
        };
        assert_eq!(
            store.quarantine(n.clone(), reason.clone()).await.unwrap(),
            Recorded::Stored
        );
        assert_eq!(
            store.quarantine(n.clone(), reason.clone()).await.unwrap(),
            Recorded::Duplicate
        );
        let held = store.quarantined(0, 10).await.unwrap();
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].notification_uuid, "contract-q");
        assert_eq!(held[0].reason_code, "BUNDLE_MISMATCH");
        assert_eq!(
            store
                .release_quarantined(held[0].id, n.clone())
                .await
                .unwrap(),
            Recorded::Stored
        );
        assert!(store.quarantined(0, 10).await.unwrap().is_empty());
        assert_eq!(
            store.record_notification(n.clone()).await.unwrap(),
            Recorded::Duplicate
        );
        assert_eq!(
            store.quarantine(n, reason).await.unwrap(),
            Recorded::AlreadyAccepted
        );
        let counts = store.counts().await.unwrap();
        assert_eq!((counts.notifications, counts.quarantined), (1, 0));
    })
    .await;
}

fn finding(subject: &str, detail: String) -> Finding {
    Finding {
        kind: FindingKind::IdentityMismatch,
        subject: subject.into(),
        original_transaction_id: Some(subject.into()),
        bundle_id: Some(BUNDLE_ID.into()),
        environment: Some("Sandbox".into()),
        detail,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn findings_open_once_keep_a_bounded_detail_and_resolve() {
    on_each_backend(|store| async move {
        let found = [
            finding("f-1", "x".repeat(10_000)),
            finding("f-2", "short".into()),
        ];
        assert_eq!(store.upsert_findings(&found, NOW).await.unwrap(), 2);
        assert_eq!(store.upsert_findings(&found, NOW + 1).await.unwrap(), 0);
        let mut keys = store.open_finding_keys(None).await.unwrap();
        keys.sort();
        assert_eq!(
            keys,
            [
                ("IDENTITY_MISMATCH".to_owned(), "f-1".to_owned()),
                ("IDENTITY_MISMATCH".to_owned(), "f-2".to_owned())
            ]
        );
        let open = store
            .findings(&FindingFilter {
                open: Some(true),
                limit: 10,
                ..FindingFilter::default()
            })
            .await
            .unwrap();
        let long = open.iter().find(|f| f.subject == "f-1").unwrap();
        assert_eq!(
            long.detail,
            format!("{}…(6000 more characters)", "x".repeat(4_000))
        );
        assert_eq!((long.first_seen, long.last_seen), (NOW, NOW + 1));
        let resolve = [("IDENTITY_MISMATCH".to_owned(), "f-2".to_owned())];
        assert_eq!(
            store
                .resolve_findings(&resolve, NOW + 2, None)
                .await
                .unwrap(),
            1
        );
        assert_eq!(store.open_finding_keys(None).await.unwrap().len(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_is_held_by_one_holder_until_it_lapses() {
    on_each_backend(|store| async move {
        assert!(store
            .hold_lease("check", "a", NOW, NOW + MINUTE)
            .await
            .unwrap());
        assert!(!store
            .hold_lease("check", "b", NOW + 1, NOW + MINUTE)
            .await
            .unwrap());
        assert!(store
            .hold_lease("check", "a", NOW + 2, NOW + 2 * MINUTE)
            .await
            .unwrap());
        // Lapsed: another takes it.
        assert!(store
            .hold_lease("check", "b", NOW + 3 * MINUTE, NOW + 4 * MINUTE)
            .await
            .unwrap());
        store.release_lease("check", "b").await.unwrap();
        assert!(store
            .hold_lease("check", "a", NOW + 3 * MINUTE, NOW + 4 * MINUTE)
            .await
            .unwrap());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_user_names_are_one_regardless_of_case() {
    on_each_backend(|store| async move {
        let user = |name: &str| ConsoleUser {
            name: name.into(),
            role: "support".into(),
            created_at: NOW,
        };
        assert!(store
            .add_console_user(&user("ana"), "hash-1")
            .await
            .unwrap());
        assert!(!store
            .add_console_user(&user("ANA"), "hash-2")
            .await
            .unwrap());
        assert_eq!(
            store.console_login("Ana").await.unwrap(),
            Some(("ana".into(), "support".into(), "hash-1".into()))
        );
        assert!(store.remove_console_user("ANA").await.unwrap());
        assert!(store.console_users().await.unwrap().is_empty());
        assert!(!store.has_console_users().await.unwrap());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_attempts_are_reserved_up_to_the_limit_even_all_at_once() {
    on_each_backend(|store| async move {
        let since = NOW - 15 * MINUTE;
        let reserve = |user: &'static str, address: &'static str, at: i64| {
            let store = store.clone();
            async move {
                store
                    .reserve_login_attempt(user, address, at, since, 3)
                    .await
                    .unwrap()
            }
        };
        let first = reserve("ana", "10.0.0.1", NOW).await.unwrap();
        reserve("ana", "10.0.0.1", NOW).await.unwrap();
        reserve("ana", "10.0.0.1", NOW).await.unwrap();
        assert_eq!(reserve("ana", "10.0.0.1", NOW).await, None);
        // The user's limit holds from another address; the address's for
        // another user.
        assert_eq!(reserve("ana", "10.0.0.2", NOW).await, None);
        assert_eq!(reserve("bo", "10.0.0.1", NOW).await, None);
        // A right password takes its attempt back.
        store.forget_login_attempt(first).await.unwrap();
        assert!(reserve("ana", "10.0.0.1", NOW).await.is_some());
        // Failures older than the window no longer count.
        assert!(reserve("ana", "10.0.0.1", NOW + 16 * MINUTE)
            .await
            .is_none());
        let later = since + 16 * MINUTE;
        assert!(store
            .reserve_login_attempt("ana", "10.0.0.1", NOW + 16 * MINUTE, later, 3)
            .await
            .unwrap()
            .is_some());

        // Twenty at once for one user: exactly the limit is reserved.
        let mut at_once = tokio::task::JoinSet::new();
        for i in 0..20 {
            let store = store.clone();
            at_once.spawn(async move {
                store
                    .reserve_login_attempt("cy", &format!("10.1.0.{i}"), NOW, since, 5)
                    .await
                    .unwrap()
                    .is_some()
            });
        }
        let reserved = at_once.join_all().await.into_iter().filter(|r| *r).count();
        assert_eq!(reserved, 5);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_when_idle_or_too_old_and_the_console_secret_is_made_once() {
    on_each_backend(|store| async move {
        let ana = appstore_ledger::store::ConsoleUser {
            name: "ana".into(),
            role: "admin".into(),
            created_at: NOW,
        };
        store.add_console_user(&ana, "hash").await.unwrap();
        store
            .create_console_session("token-1", "ana", "csrf-1", NOW)
            .await
            .unwrap();
        let seen = store
            .console_session("token-1", NOW - MINUTE, NOW - MINUTE, NOW + 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                seen.user_name.as_str(),
                seen.role.as_str(),
                seen.csrf_token.as_str()
            ),
            ("ana", "admin", "csrf-1")
        );
        // Begun before the oldest a session may have begun: over, and gone.
        assert!(store
            .console_session("token-1", NOW - MINUTE, NOW + 1, NOW + 2)
            .await
            .unwrap()
            .is_none());
        assert!(store
            .console_session("token-1", 0, 0, NOW + 3)
            .await
            .unwrap()
            .is_none());
        // Idle too long: over as well.
        store
            .create_console_session("token-2", "ana", "csrf-2", NOW)
            .await
            .unwrap();
        assert!(store
            .console_session("token-2", NOW + 1, 0, NOW + 2)
            .await
            .unwrap()
            .is_none());

        assert_eq!(store.console_secret("key", "first").await.unwrap(), "first");
        assert_eq!(
            store.console_secret("key", "second").await.unwrap(),
            "first"
        );
    })
    .await;
}

/// Takes `endpoint`'s deliveries for `claim` until a call gives some (on
/// PostgreSQL an event shows once every older transaction in its database
/// has ended), and returns them with the page the call took.
async fn take_some(store: &Store, claim: &str) -> appstore_ledger::store::Taken {
    for _ in 0..200 {
        let taken = store
            .take_deliveries("backend", |_| true, claim, i64::MAX, 10)
            .await
            .unwrap();
        if !taken.deliveries.is_empty() {
            return taken;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{claim}: nothing to deliver");
}

fn answered(delivery: &Delivery, at: i64, outcome: DeliveryOutcome) -> DeliveryResult {
    DeliveryResult {
        row: delivery.row.clone(),
        at,
        outcome,
    }
}

fn delivered() -> DeliveryOutcome {
    DeliveryOutcome::Delivered { status: Some(204) }
}

/// Deliveries answered at different moments and kept together (one
/// statement on the common path) keep each its own moment: those sent
/// before any row was written, and claimed rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_deliveries_keep_each_its_own_moment() {
    on_each_backend(|store| async move {
        store.open_endpoints(&["backend"]).await.unwrap();
        for (uuid, otid) in [("moment-1", "7100"), ("moment-2", "7200")] {
            store
                .record_notification(renewal_of(uuid, otid))
                .await
                .unwrap();
        }
        // Sent from the feed's page, refused: kept as rows due again now.
        let mut ids = Vec::new();
        while ids.len() < 2 {
            let taken = take_some(&store, &format!("page-{}", ids.len())).await;
            let results: Vec<DeliveryResult> = taken
                .deliveries
                .iter()
                .map(|d| {
                    assert!(matches!(d.row, DeliveryRow::Fresh(_)), "{d:?}");
                    ids.push(d.event_id.clone());
                    let retry = DeliveryOutcome::Retry {
                        status: Some(500),
                        error: "HTTP 500".into(),
                        next_attempt_at: NOW,
                    };
                    answered(d, NOW, retry)
                })
                .collect();
            store
                .finish_deliveries(
                    "backend",
                    &format!("page-{}", ids.len() - results.len()),
                    &results,
                    taken.fan_out.as_ref(),
                )
                .await
                .unwrap();
        }
        // Claimed as rows, delivered at two moments, kept in one call.
        let taken = take_some(&store, "claim-1").await;
        assert_eq!(taken.deliveries.len(), 2, "{:?}", taken.deliveries);
        assert!(taken.fan_out.is_none());
        let results: Vec<DeliveryResult> = taken
            .deliveries
            .iter()
            .zip([NOW + 1_000, NOW + 2_000])
            .map(|(d, at)| {
                assert!(matches!(d.row, DeliveryRow::Claimed(_)), "{d:?}");
                answered(d, at, delivered())
            })
            .collect();
        store
            .finish_deliveries("backend", "claim-1", &results, None)
            .await
            .unwrap();
        // A third event, sent from the page and delivered at once.
        store
            .record_notification(renewal_of("moment-3", "7300"))
            .await
            .unwrap();
        let taken = take_some(&store, "page-3").await;
        let [fresh] = &taken.deliveries[..] else {
            panic!("{:?}", taken.deliveries);
        };
        ids.push(fresh.event_id.clone());
        store
            .finish_deliveries(
                "backend",
                "page-3",
                &[answered(fresh, NOW + 3_000, delivered())],
                taken.fan_out.as_ref(),
            )
            .await
            .unwrap();
        // delivered_at, last_attempt_at, last_status, state, attempts
        type Kept = (Option<i64>, Option<i64>, Option<i64>, String, i64);
        let mut kept: Vec<Kept> = store
            .deliveries_of(&ids)
            .await
            .unwrap()
            .into_iter()
            .map(|e| {
                (
                    e.delivered_at,
                    e.last_attempt_at,
                    e.last_status,
                    e.state,
                    e.attempts,
                )
            })
            .collect();
        kept.sort();
        let delivered = |at: i64, attempts| {
            (
                Some(at),
                Some(at),
                Some(204),
                "DELIVERED".to_owned(),
                attempts,
            )
        };
        assert_eq!(
            kept,
            [
                delivered(NOW + 1_000, 2),
                delivered(NOW + 2_000, 2),
                delivered(NOW + 3_000, 1)
            ]
        );
        // Nothing left to send.
        let taken = store
            .take_deliveries("backend", |_| true, "claim-2", i64::MAX, 10)
            .await
            .unwrap();
        assert_eq!((taken.read, taken.deliveries.len()), (0, 0));
    })
    .await;
}

/// The feed's next page goes to one round at a time (another round
/// meanwhile sends none of it), and its events are sent before any row is
/// written, unless they must wait: behind an earlier event of their item in
/// the same round, or behind a delivery of their item still to make. An
/// item's events go out in order, whatever the endpoint answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_goes_to_one_round_and_each_item_keeps_its_order() {
    on_each_backend(|store| async move {
        store.open_endpoints(&["backend"]).await.unwrap();
        let day = 24 * 60 * MINUTE;
        // Item 7500: granted, then renewed further (two events); item 7600:
        // granted.
        store
            .record_notification(renewal_of("order-a1", "7500"))
            .await
            .unwrap();
        store
            .record_notification(renewal_until("order-a2", "7500", "7500-t2", NOW + 60 * day))
            .await
            .unwrap();
        store
            .record_notification(renewal_of("order-b1", "7600"))
            .await
            .unwrap();
        let event_of = |d: &Delivery| {
            let data: serde_json::Value = serde_json::from_str(&d.data).unwrap();
            (
                data["answer"]["originalTransactionId"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                d.event_type.clone(),
            )
        };
        let mut sent: Vec<(String, String)> = Vec::new();
        // The three events show (on PostgreSQL once older transactions
        // ended), then a round takes the page.
        for _ in 0..200 {
            if store
                .events_after((i64::MIN, i64::MIN), 10, &[])
                .await
                .unwrap()
                .len()
                == 3
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let taken = take_some(&store, "round-1").await;
        assert_eq!(taken.read, 3);
        let first: Vec<(String, String)> = taken.deliveries.iter().map(event_of).collect();
        assert_eq!(
            first,
            [
                ("7500".to_owned(), "ENTITLEMENT_GRANTED".to_owned()),
                ("7600".to_owned(), "ENTITLEMENT_GRANTED".to_owned()),
            ]
        );
        assert!(taken
            .deliveries
            .iter()
            .all(|d| matches!(d.row, DeliveryRow::Fresh(_))));
        // Another round meanwhile: the page is taken, nothing is due.
        let other = store
            .take_deliveries("backend", |_| true, "round-2", i64::MAX, 10)
            .await
            .unwrap();
        assert_eq!(other.deliveries, []);
        assert!(other.fan_out.is_none());
        // 7500's grant refused (due again now), 7600's delivered.
        let refused = DeliveryOutcome::Retry {
            status: Some(500),
            error: "HTTP 500".into(),
            next_attempt_at: NOW,
        };
        let results = [
            answered(&taken.deliveries[0], NOW, refused),
            answered(&taken.deliveries[1], NOW, delivered()),
        ];
        sent.extend(first);
        store
            .finish_deliveries("backend", "round-1", &results, taken.fan_out.as_ref())
            .await
            .unwrap();
        // A third event of 7500 while its grant waits: it waits too.
        store
            .record_notification(renewal_until("order-a3", "7500", "7500-t3", NOW + 90 * day))
            .await
            .unwrap();
        // Rounds from here deliver whatever they get; each sends only 7500's
        // next event.
        for round in 3..10 {
            let claim = format!("round-{round}");
            let taken = take_some(&store, &claim).await;
            let got: Vec<(String, String)> = taken.deliveries.iter().map(event_of).collect();
            assert_eq!(got.len(), 1, "{claim}: {got:?}");
            let results: Vec<DeliveryResult> = taken
                .deliveries
                .iter()
                .map(|d| answered(d, NOW, delivered()))
                .collect();
            store
                .finish_deliveries("backend", &claim, &results, taken.fan_out.as_ref())
                .await
                .unwrap();
            sent.extend(got);
            if sent.len() == 5 {
                break;
            }
        }
        let expected = |item: &str, event: &str| (item.to_owned(), event.to_owned());
        assert_eq!(
            sent,
            [
                expected("7500", "ENTITLEMENT_GRANTED"),
                expected("7600", "ENTITLEMENT_GRANTED"),
                expected("7500", "ENTITLEMENT_GRANTED"),
                expected("7500", "EXPIRES_DATE_CHANGED"),
                expected("7500", "EXPIRES_DATE_CHANGED"),
            ]
        );
    })
    .await;
}

/// A round starts no attempt that could outlast its claim: once less than
/// the endpoint's timeout is left of the claim's lease, what the round has
/// not started yet is released unsent (attempts not counted) and goes in
/// the next round, rather than while another instance may claim it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_starts_no_attempt_that_could_outlast_its_claim() {
    use appstore_ledger::clock::ManualClock;
    use appstore_ledger::config::EndpointSettings;
    use appstore_ledger::metrics::Metrics;
    use appstore_ledger::webhooks::{Deliverer, Round};
    use std::sync::{Arc, Mutex};

    on_each_backend(|store| async move {
        let clock = Arc::new(ManualClock::starting_at(Timestamp::from_millis(NOW)));
        let store = store.with_clock(clock.clone());
        store.open_endpoints(&["backend"]).await.unwrap();
        for i in 0..100 {
            let notification = renewal_of(&format!("lease-{i}"), &format!("81{i:03}"));
            store.record_notification(notification).await.unwrap();
        }
        // On PostgreSQL an event shows once every older transaction in its
        // database has ended.
        for _ in 0..200 {
            if store.events_after((-1, 0), 1000, &[]).await.unwrap().len() == 100 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        // The receiver: the first request finds the claim's lease (3 s)
        // 2.5 s old, less than the timeout (1 s) left of it.
        let received: Arc<Mutex<Vec<String>>> = Arc::default();
        let app = axum::Router::new().route(
            "/hooks",
            axum::routing::post({
                let (received, clock) = (Arc::clone(&received), Arc::clone(&clock));
                move |headers: axum::http::HeaderMap| async move {
                    let id = headers["webhook-id"].to_str().unwrap().to_owned();
                    let mut received = received.lock().unwrap();
                    if received.is_empty() {
                        clock.advance(std::time::Duration::from_millis(2_500));
                    }
                    received.push(id);
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let endpoint = EndpointSettings {
            name: "backend".to_owned(),
            url,
            secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned().into(),
            previous_secret: None,
            types: None,
            apps: None,
            timeout_ms: 1_000,
        };
        let deliverer = Deliverer::new(
            store.clone(),
            endpoint,
            Arc::new(Metrics::default()),
            Arc::from("instance-1"),
            3_000,
        )
        .unwrap();

        // Those started before the clock moved went; the rest wait, unsent.
        assert_eq!(deliverer.round().await.unwrap(), Round::Sent { full: true });
        let first = received.lock().unwrap().len();
        assert!((1..100).contains(&first), "{first} sent in the first round");
        // The next round has a claim of its own: the rest, each once, and
        // the attempts left unsent were not counted.
        assert_eq!(
            deliverer.round().await.unwrap(),
            Round::Sent { full: false }
        );
        let mut ids = received.lock().unwrap().clone();
        assert_eq!(ids.len(), 100);
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 100, "an event was sent twice");
        let attempts: Vec<(String, i64)> = store
            .deliveries_of(&ids)
            .await
            .unwrap()
            .into_iter()
            .map(|d| (d.state, d.attempts))
            .collect();
        assert_eq!(attempts, vec![("DELIVERED".to_owned(), 1); 100]);
        server.abort();
    })
    .await;
}

/// On PostgreSQL the feed shows an event once every transaction that could
/// still commit an older one has ended. A transaction left open in another
/// database on the same server (another application's) cannot write this
/// database's events, and does not hold the feed back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_open_in_another_database_does_not_hold_the_feed_back() {
    use sqlx::Connection as _;
    let Some(admin) = postgres_admin() else {
        return;
    };
    let mut other = sqlx::PgConnection::connect(&admin).await.unwrap();
    let mut open = other.begin().await.unwrap();
    // A transaction id taken, as by any write, and held.
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *open)
        .await
        .unwrap();
    let postgres = TempDb::new(Some(&admin)).await;
    let store = postgres.store().await;
    store
        .record_notification(renewal_of("held-back-1", "9100"))
        .await
        .unwrap();
    let mut shown = 0;
    for _ in 0..100 {
        shown = store.events_after((-1, 0), 10, &[]).await.unwrap().len();
        if shown == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(shown, 1, "the event did not show in 5 s");
    open.rollback().await.unwrap();
    store.close().await;
}

/// The entitlement events of subscription `id`, in its sequence: each
/// one's type, sequence, cause and answer.
async fn told_of(store: &Store, id: &str) -> Vec<(String, i64, String, serde_json::Value)> {
    store
        .events_of_item(&ItemKey::Subscription(id.into()))
        .await
        .unwrap()
        .iter()
        .map(|e| {
            let mut data: serde_json::Value = serde_json::from_str(&e.data).unwrap();
            (
                data["type"].as_str().unwrap().to_owned(),
                data["sequence"].as_i64().unwrap(),
                data["cause"].as_str().unwrap().to_owned(),
                data["answer"].take(),
            )
        })
        .collect()
}

/// A batch writer folds a run of notifications of distinct items together
/// (one round trip to insert them and load their items, one to save):
/// the same answers and events as one by one, whatever the batch holds.
/// On a current-thread runtime every write below is queued before the
/// writer runs, so they form one batch: two renewals of one subscription
/// (a run each), a repeat within the batch, a notification whose fold does
/// more than save its item (a subtype this version does not know) and one
/// after it in the same run, which must load its item again.
#[tokio::test]
async fn notifications_written_in_one_batch_fold_as_one_by_one() {
    on_each_backend(|store| async move {
        const DAY: i64 = 24 * 60 * MINUTE;
        let mut novel = renewal_spec("c1", "sub-c", "sub-c-t", NOW + 30 * DAY);
        novel.subtype = Some("A_FUTURE_SUBTYPE");
        let batch = vec![
            renewal_until("a2", "sub-a", "sub-a-t2", NOW + 60 * DAY),
            renewal_until("d1", "sub-d", "sub-d-t", NOW + 30 * DAY),
            renewal_until("b1", "sub-b", "sub-b-t", NOW + 30 * DAY),
            classified(novel, "c1"),
            renewal_until("a1", "sub-a", "sub-a-t1", NOW + 30 * DAY),
            renewal_until("b1", "sub-b", "sub-b-t", NOW + 30 * DAY),
        ];
        let results =
            futures_util::future::join_all(batch.into_iter().map(|n| store.record_notification(n)))
                .await;
        let results: Vec<Recorded> = results.into_iter().map(Result::unwrap).collect();
        // The two of b1 are one notification: one stored, one a repeat.
        assert_eq!(
            results,
            [
                Recorded::Stored,
                Recorded::Stored,
                Recorded::Stored,
                Recorded::Stored,
                Recorded::Stored,
                Recorded::Duplicate
            ]
        );
        let events = |id: &'static str| {
            let store = store.clone();
            async move {
                told_of(&store, id)
                    .await
                    .into_iter()
                    .map(|(kind, sequence, cause, answer)| {
                        (kind, sequence, cause, answer["expiresDate"].clone())
                    })
                    .collect::<Vec<_>>()
            }
        };
        let granted = |cause: &str, expires: i64| {
            vec![(
                "ENTITLEMENT_GRANTED".to_owned(),
                1,
                cause.to_owned(),
                serde_json::json!(expires),
            )]
        };
        // a1 sorts first (an item's notifications go in their
        // notificationUUIDs' order): granted until a1's expiry, then a2
        // moves it on.
        let mut sub_a = granted("a1", NOW + 30 * DAY);
        sub_a.push((
            "EXPIRES_DATE_CHANGED".to_owned(),
            2,
            "a2".to_owned(),
            serde_json::json!(NOW + 60 * DAY),
        ));
        assert_eq!(events("sub-a").await, sub_a);
        assert_eq!(events("sub-b").await, granted("b1", NOW + 30 * DAY));
        assert_eq!(events("sub-c").await, granted("c1", NOW + 30 * DAY));
        assert_eq!(events("sub-d").await, granted("d1", NOW + 30 * DAY));
        let shapes: Vec<String> = store
            .unknown_shapes()
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.notification_uuid)
            .collect();
        assert_eq!(shapes, ["c1"]);
        for (id, expires) in [
            ("sub-a", NOW + 60 * DAY),
            ("sub-b", NOW + 30 * DAY),
            ("sub-c", NOW + 30 * DAY),
            ("sub-d", NOW + 30 * DAY),
        ] {
            let items = store
                .ledger_items(&ItemQuery::Subscription(id.into()))
                .await
                .unwrap();
            let expiries: Vec<Option<i64>> = items.iter().map(|i| i.state.expires_date()).collect();
            assert_eq!(expiries, [Some(expires)], "{id}");
        }
    })
    .await;
}

/// A customer's consent withdrawn in the batch that also renews one of
/// their subscriptions: the withdrawal (no item: first in the batch) tells
/// the customer's items, so the renewal after it in the same run must load
/// its item again, and its event comes after CONSENT_RESCINDED in the
/// item's sequence, with the consent in its answer.
#[tokio::test]
async fn a_renewal_batched_after_its_customer_s_withdrawn_consent_is_told_after_it() {
    on_each_backend(|store| async move {
        const DAY: i64 = 24 * 60 * MINUTE;
        let of_customer = |uuid: &str, transaction_id: &str, expires: i64| {
            let mut spec = renewal_spec(uuid, "sub-e", transaction_id, expires);
            if let Some(t) = spec.transaction.as_mut() {
                t["appTransactionId"] = "customer-e".into();
            }
            classified(spec, uuid)
        };
        assert_eq!(
            store
                .record_notification(of_customer("e1", "sub-e-t1", NOW + 30 * DAY))
                .await
                .unwrap(),
            Recorded::Stored
        );
        let rescinded = NOW - 60 * MINUTE;
        let app_transaction = serde_json::json!({
            "appTransactionId": "customer-e", "bundleId": BUNDLE_ID, "receiptType": "Sandbox",
            "appAppleId": APP_APPLE_ID, "originalPurchaseDate": NOW - 100 * DAY,
            "signedDate": rescinded,
        });
        let withdrawal = serde_json::json!({
            "notificationType": "RESCIND_CONSENT",
            "notificationUUID": "e0-rescind",
            "appData": {
                "appAppleId": APP_APPLE_ID, "bundleId": BUNDLE_ID, "environment": "Sandbox",
                "signedAppTransactionInfo": pki().sign(&app_transaction),
            },
            "version": "2.0", "signedDate": rescinded,
        });
        let batch = vec![
            of_customer("e2", "sub-e-t2", NOW + 60 * DAY),
            classified_token(&pki().sign(&withdrawal), "e0-rescind"),
        ];
        let results: Vec<Recorded> =
            futures_util::future::join_all(batch.into_iter().map(|n| store.record_notification(n)))
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect();
        assert_eq!(results, [Recorded::Stored, Recorded::Stored]);
        let events: Vec<(String, i64, String, serde_json::Value, serde_json::Value)> =
            told_of(&store, "sub-e")
                .await
                .into_iter()
                .map(|(kind, sequence, cause, answer)| {
                    (
                        kind,
                        sequence,
                        cause,
                        answer["expiresDate"].clone(),
                        answer["consentRescindedDate"].clone(),
                    )
                })
                .collect();
        let event = |kind: &str, sequence, cause: &str, expires: i64, consent| {
            (
                kind.to_owned(),
                sequence,
                cause.to_owned(),
                serde_json::json!(expires),
                consent,
            )
        };
        assert_eq!(
            events,
            [
                event(
                    "ENTITLEMENT_GRANTED",
                    1,
                    "e1",
                    NOW + 30 * DAY,
                    serde_json::Value::Null
                ),
                event(
                    "CONSENT_RESCINDED",
                    2,
                    "e0-rescind",
                    NOW + 30 * DAY,
                    serde_json::json!(rescinded)
                ),
                event(
                    "EXPIRES_DATE_CHANGED",
                    3,
                    "e2",
                    NOW + 60 * DAY,
                    serde_json::json!(rescinded)
                ),
            ]
        );
    })
    .await;
}
