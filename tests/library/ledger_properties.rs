//! The ledger is a function of the set of stored notifications, checked
//! against the store that serves the answers: random histories are signed by a
//! test PKI, verified and classified by the same code as the webhook, and
//! recorded one at a time into a fresh SQLite database, in random orders with
//! repeats and with conflicting versions of a UUID. Whatever the order, the
//! derived tables are the same, equal the pure fold of the notifications the
//! store kept, and equal what `rebuild` makes of them. The same on a fresh
//! PostgreSQL database (the server `APPSTORE_LEDGER_TEST_POSTGRES` names),
//! where the fold runs under item locks; and there also with two stores (two
//! instances) recording the same history at once, folding the same items.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use serde_json::{json, Value};

use appstore_ledger::config::AppSettings;
use appstore_ledger::ingest::{Ingest, Ingested};
use appstore_ledger::jws::Verifier;
use appstore_ledger::ledger::{fold_all, Event, ItemKey, State};
use appstore_ledger::model::Timestamp;
use appstore_ledger::store::{NewNotification, Recorded, Store};
use common::payloads::{NotificationSpec, APP_APPLE_ID, BUNDLE_ID};
use common::pki::{TestPki, AT};

const DAY: i64 = 86_400_000;
const START: i64 = 1_700_000_000_000;

/// The things notifications are about: two subscriptions, a non-consumable
/// and a consumable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    Subscription(u8),
    NonConsumable,
    Consumable,
}

/// One notification, before signing.
#[derive(Debug, Clone)]
struct Spec {
    uuid: String,
    notification_type: &'static str,
    subtype: Option<&'static str>,
    signed_date: i64,
    status: Option<i64>,
    transaction: Value,
    renewal: Option<Value>,
}

fn subscription_types() -> impl Strategy<Value = (&'static str, Option<&'static str>)> {
    prop_oneof![
        Just(("SUBSCRIBED", Some("INITIAL_BUY"))),
        Just(("SUBSCRIBED", Some("RESUBSCRIBE"))),
        Just(("DID_RENEW", None)),
        Just(("DID_RENEW", Some("BILLING_RECOVERY"))),
        Just(("DID_FAIL_TO_RENEW", None)),
        Just(("DID_FAIL_TO_RENEW", Some("GRACE_PERIOD"))),
        Just(("GRACE_PERIOD_EXPIRED", None)),
        Just(("EXPIRED", Some("VOLUNTARY"))),
        Just(("EXPIRED", Some("BILLING_RETRY"))),
        Just(("DID_CHANGE_RENEWAL_STATUS", Some("AUTO_RENEW_DISABLED"))),
        Just(("DID_CHANGE_RENEWAL_PREF", Some("UPGRADE"))),
        Just(("DID_CHANGE_RENEWAL_PREF", Some("DOWNGRADE"))),
        Just(("OFFER_REDEEMED", None)),
        Just(("PRICE_INCREASE", Some("PENDING"))),
        Just(("RENEWAL_EXTENDED", None)),
        Just(("REFUND", None)),
        Just(("REFUND_DECLINED", None)),
        Just(("REFUND_REVERSED", None)),
        Just(("REVOKE", None)),
    ]
}

fn purchase_types() -> impl Strategy<Value = (&'static str, Option<&'static str>)> {
    prop_oneof![
        Just(("ONE_TIME_CHARGE", None)),
        Just(("REFUND", None)),
        Just(("REFUND_REVERSED", None)),
        Just(("REFUND_DECLINED", None)),
        Just(("CONSUMPTION_REQUEST", None)),
    ]
}

/// Apple's `data.status` for a subscription notification of this type.
fn apple_status(notification_type: &str, subtype: Option<&str>) -> i64 {
    match (notification_type, subtype) {
        ("DID_FAIL_TO_RENEW", Some("GRACE_PERIOD")) => 4,
        ("DID_FAIL_TO_RENEW", _) | ("GRACE_PERIOD_EXPIRED", _) => 3,
        ("EXPIRED", _) => 2,
        ("REFUND", _) | ("REVOKE", _) => 5,
        _ => 1,
    }
}

prop_compose! {
    fn spec(index: usize)(
        item in prop_oneof![
            3 => (0u8..2).prop_map(Item::Subscription),
            1 => Just(Item::NonConsumable),
            1 => Just(Item::Consumable),
        ],
        subscription_type in subscription_types(),
        purchase_type in purchase_types(),
        period in 0i64..4,
        signed_offset in 0i64..(40 * DAY),
        transaction_signed_shift in -(2 * DAY)..(2 * DAY),
        renewal_signed_shift in -(2 * DAY)..(2 * DAY),
        status in prop_oneof![2 => Just(None), 2 => Just(Some(0i64)), 1 => (1i64..6).prop_map(Some)],
        revoked in prop::bool::weighted(0.2),
        upgraded in prop::bool::weighted(0.15),
        auto_renew in any::<bool>(),
        grace in any::<bool>(),
        renewal_period in prop::option::of(0i64..5),
        same_moment in prop::bool::weighted(0.15),
    ) -> Spec {
        let purchase = START + period * 30 * DAY;
        let signed_date = if same_moment { START } else { purchase + signed_offset };
        let (notification_type, subtype) = match item {
            Item::Subscription(_) => subscription_type,
            _ => purchase_type,
        };
        let revoked = revoked || matches!(notification_type, "REFUND" | "REVOKE");
        let mut transaction = match item {
            Item::Subscription(s) => {
                let product = if upgraded { "pro" } else { "basic" };
                json!({
                    "transactionId": format!("s{s}-t{period}{}", if upgraded { "u" } else { "" }),
                    "originalTransactionId": format!("s{s}"),
                    "productId": product,
                    "subscriptionGroupIdentifier": "group",
                    "type": "Auto-Renewable Subscription",
                    "purchaseDate": purchase,
                    "originalPurchaseDate": START,
                    "expiresDate": purchase + 30 * DAY,
                    "isUpgraded": upgraded && period == 0,
                    "appAccountToken": format!("account-s{s}"),
                })
            }
            Item::NonConsumable => json!({
                "transactionId": "p-lifetime", "originalTransactionId": "p-lifetime",
                "productId": "lifetime", "type": "Non-Consumable",
                "purchaseDate": START, "originalPurchaseDate": START,
                "appAccountToken": "account-p",
            }),
            Item::Consumable => json!({
                "transactionId": "p-coins", "originalTransactionId": "p-coins",
                "productId": "coins", "type": "Consumable",
                "purchaseDate": START, "originalPurchaseDate": START,
                "appAccountToken": "account-p",
            }),
        };
        transaction["bundleId"] = json!(BUNDLE_ID);
        transaction["environment"] = json!("Sandbox");
        transaction["inAppOwnershipType"] = json!("PURCHASED");
        transaction["signedDate"] = json!(signed_date + transaction_signed_shift);
        transaction["price"] = json!(9990);
        transaction["currency"] = json!("USD");
        if revoked {
            transaction["revocationDate"] = json!(signed_date - 1000);
            transaction["revocationReason"] = json!(1);
            transaction["revocationType"] = json!("REFUND_FULL");
            transaction["revocationPercentage"] = json!(100_000);
        }
        let renewal = match item {
            Item::Subscription(s) => {
                let mut renewal = json!({
                    "originalTransactionId": format!("s{s}"),
                    "autoRenewProductId": if subtype == Some("DOWNGRADE") { "lite" } else { "basic" },
                    "productId": "basic",
                    "autoRenewStatus": i64::from(auto_renew),
                    "signedDate": signed_date + renewal_signed_shift,
                    "environment": "Sandbox",
                });
                if grace {
                    renewal["gracePeriodExpiresDate"] = json!(purchase + 36 * DAY);
                }
                if let Some(p) = renewal_period {
                    renewal["renewalDate"] = json!(START + p * 30 * DAY);
                }
                Some(renewal)
            }
            _ => None,
        };
        // 0 stands for "as Apple would send it for this type".
        let status = match item {
            Item::Subscription(_) => status.map(|s| if s == 0 { apple_status(notification_type, subtype) } else { s }),
            _ => None,
        };
        Spec {
            uuid: format!("n{index:03}"),
            notification_type,
            subtype,
            signed_date,
            status,
            transaction,
            renewal,
        }
    }
}

/// A history: distinct notifications, plus later versions of some UUIDs with
/// different content (a re-signed retry, or one whose content differs).
fn history() -> impl Strategy<Value = (Vec<Spec>, Vec<Spec>)> {
    (1usize..28)
        .prop_flat_map(|n| (0..n).map(spec).collect::<Vec<_>>())
        .prop_flat_map(|specs| {
            let n = specs.len();
            let variants =
                prop::collection::vec((0..n, 1i64..(3 * DAY), prop::option::of(1i64..6)), 0..4);
            (Just(specs), variants)
        })
        .prop_map(|(specs, variants)| {
            let versions = variants
                .into_iter()
                .map(|(i, shift, status)| {
                    let mut v = specs[i % specs.len()].clone();
                    v.signed_date += shift;
                    if v.renewal.is_some() {
                        v.status = status;
                    }
                    v
                })
                .collect();
            (specs, versions)
        })
}

fn sign(pki: &TestPki, spec: &Spec) -> String {
    NotificationSpec {
        subtype: spec.subtype,
        signed_date: spec.signed_date,
        transaction: Some(spec.transaction.clone()),
        renewal: spec.renewal.clone(),
        status: spec.status,
        ..NotificationSpec::new(spec.notification_type, spec.uuid.clone())
    }
    .sign(pki)
}

struct Fixture {
    pki: TestPki,
    ingest: Ingest,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(|| {
        let pki = TestPki::new();
        let ingest = Ingest::new(
            Verifier::new(pki.anchors()),
            &[AppSettings {
                bundle_id: BUNDLE_ID.into(),
                app_apple_id: Some(APP_APPLE_ID),
                environments: vec!["Sandbox".into()],
                api: None,
                products: Vec::new(),
                consumption: None,
            }],
        );
        Fixture { pki, ingest }
    })
}

/// What the webhook would store for `spec`: verified and classified by the
/// service's own code.
fn stored_form(spec: &Spec, received_at: i64) -> NewNotification {
    let f = fixture();
    let token = sign(&f.pki, spec);
    match f
        .ingest
        .classify(&token, AT, Timestamp::from_millis(received_at))
    {
        Ok(Ingested::Accepted(n)) => n,
        other => panic!("{} was not accepted: {other:?}", spec.uuid),
    }
}

/// Every item's state as the store serves it.
async fn states(store: &Store) -> BTreeMap<ItemKey, State> {
    let mut out = BTreeMap::new();
    let mut after = None;
    loop {
        let page = store.scan_ledger(after.as_ref(), 100).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some((last.item.kind().to_owned(), last.item.id().to_owned()));
        for item in page {
            out.insert(item.item, item.state);
        }
    }
    out
}

/// Records `arrivals` one at a time into a fresh database. Returns the
/// derived tables, the states served, and the notifications kept (the first
/// version of each UUID).
async fn record_all(
    arrivals: &[NewNotification],
    postgres: Option<&str>,
) -> (
    BTreeMap<String, Vec<String>>,
    BTreeMap<ItemKey, State>,
    Vec<NewNotification>,
    common::db::TempDb,
    Store,
) {
    let db = common::db::TempDb::new(postgres).await;
    let store = db.store().await;
    let mut kept: Vec<NewNotification> = Vec::new();
    for n in arrivals {
        let first = !kept
            .iter()
            .any(|k| k.notification_uuid == n.notification_uuid);
        let recorded = store.record_notification(n.clone()).await.unwrap();
        assert_eq!(
            recorded,
            if first {
                Recorded::Stored
            } else {
                Recorded::Duplicate
            },
            "{}",
            n.notification_uuid
        );
        if first {
            kept.push(n.clone());
        }
    }
    let snapshot = store.ledger_snapshot().await.unwrap();
    let states = states(&store).await;
    (snapshot, states, kept, db, store)
}

fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let j = (seed >> 33) as usize % (i + 1);
        items.swap(i, j);
    }
}

/// Reorders `b` so that each UUID's first version in it is the one that came
/// first in `a`: the store keeps the first version it receives, so only such
/// orders must agree.
fn same_first_versions(a: &[(usize, Spec)], b: &mut [(usize, Spec)]) {
    let mut done = BTreeSet::new();
    for (version, spec) in a {
        if !done.insert(spec.uuid.clone()) {
            continue;
        }
        let first = b.iter().position(|(_, s)| s.uuid == spec.uuid).unwrap();
        let wanted = b.iter().position(|(v, _)| v == version).unwrap();
        if wanted > first {
            b.swap(first, wanted);
        }
    }
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(48);
    ProptestConfig::with_cases(cases)
}

/// Fewer cases on PostgreSQL: each makes databases on the server.
fn postgres_config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(4);
    ProptestConfig::with_cases(cases)
}

/// A random history, delivered in two random orders (each with repeats and
/// conflicting versions), recorded into fresh databases on `postgres` (or
/// SQLite): the same derived rows and states either way, the pure fold of
/// what was kept, and what `rebuild` makes.
fn same_whatever_the_order(
    specs: Vec<Spec>,
    versions: Vec<Spec>,
    repeats: &[prop::sample::Index],
    (seed_a, seed_b): (u64, u64),
    postgres: Option<&str>,
) -> Result<(), TestCaseError> {
    let mut arrivals: Vec<(usize, Spec)> = specs.into_iter().chain(versions).enumerate().collect();
    for r in repeats {
        let again = r.get(&arrivals).clone();
        arrivals.push(again);
    }
    let mut a = arrivals.clone();
    shuffle(&mut a, seed_a);
    let mut b = arrivals;
    shuffle(&mut b, seed_b);
    same_first_versions(&a, &mut b);

    // Sign each version once, so a repeat is the same token.
    let mut signed: BTreeMap<usize, NewNotification> = BTreeMap::new();
    for (position, (version, spec)) in a.iter().enumerate() {
        signed
            .entry(*version)
            .or_insert_with(|| stored_form(spec, START + position as i64));
    }
    let in_order = |order: &[(usize, Spec)]| -> Vec<NewNotification> {
        order.iter().map(|(v, _)| signed[v].clone()).collect()
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (snapshot_a, states_a, kept, _db_a, store_a) =
            record_all(&in_order(&a), postgres).await;
        let (snapshot_b, states_b, _, _db_b, store_b) = record_all(&in_order(&b), postgres).await;
        store_b.close().await;
        prop_assert_eq!(&snapshot_a, &snapshot_b);
        prop_assert_eq!(&states_a, &states_b);

        // The pure fold of what was kept is what the store serves.
        let events = kept
            .iter()
            .map(|n| Event::parse(&n.payload).unwrap())
            .collect();
        let folded: BTreeMap<ItemKey, State> = fold_all(events)
            .into_iter()
            .map(|(item, (state, _))| (item, state))
            .collect();
        prop_assert_eq!(&states_a, &folded);

        // And rebuild makes exactly the same derived rows.
        store_a
            .rebuild(|_, _| {}, &appstore_ledger::stop::Stop::new())
            .await
            .unwrap();
        prop_assert_eq!(&store_a.ledger_snapshot().await.unwrap(), &snapshot_a);
        store_a.close().await;
        Ok(())
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_store_answers_the_same_whatever_the_order(
        (specs, versions) in history(),
        repeats in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        seeds in any::<(u64, u64)>(),
    ) {
        same_whatever_the_order(specs, versions, &repeats, seeds, None)?;
    }
}

proptest! {
    #![proptest_config(postgres_config())]

    #[test]
    fn postgresql_answers_the_same_whatever_the_order(
        (specs, versions) in history(),
        repeats in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        seeds in any::<(u64, u64)>(),
    ) {
        let Some(admin) = common::db::postgres_admin() else { return Ok(()) };
        same_whatever_the_order(specs, versions, &repeats, seeds, Some(&admin))?;
    }

    /// Two stores on one database (two instances) record the same history
    /// at once, each in its own order, every notification sent to both: the
    /// item locks make the states the pure fold of the set, as one store
    /// recording it alone makes them.
    #[test]
    fn two_postgresql_writers_folding_the_same_items_at_once_agree_with_the_fold(
        (specs, _) in history(),
        seeds in any::<(u64, u64)>(),
    ) {
        let Some(admin) = common::db::postgres_admin() else { return Ok(()) };
        let signed: Vec<NewNotification> = specs
            .iter()
            .enumerate()
            .map(|(i, spec)| stored_form(spec, START + i as i64))
            .collect();
        let mut first = signed.clone();
        shuffle(&mut first, seeds.0);
        let mut second = signed.clone();
        shuffle(&mut second, seeds.1);
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async {
            let db = common::db::TempDb::new(Some(&admin)).await;
            let (one, two) = (db.store().await, db.store().await);
            let record = |store: Store, order: Vec<NewNotification>| {
                tokio::spawn(async move {
                    for n in order {
                        let recorded = store.record_notification(n).await.unwrap();
                        assert!(matches!(recorded, Recorded::Stored | Recorded::Duplicate));
                    }
                    store
                })
            };
            let (one, two) = (record(one, first), record(two, second));
            let (one, two) = (one.await.unwrap(), two.await.unwrap());
            two.close().await;
            let together = states(&one).await;
            let snapshot = one.ledger_snapshot().await.unwrap();
            one.close().await;

            let events = signed.iter().map(|n| Event::parse(&n.payload).unwrap()).collect();
            let folded: BTreeMap<ItemKey, State> = fold_all(events)
                .into_iter()
                .map(|(item, (state, _))| (item, state))
                .collect();
            prop_assert_eq!(&together, &folded);
            let (alone, _, _, _db, store) = record_all(&signed, Some(&admin)).await;
            store.close().await;
            prop_assert_eq!(&snapshot, &alone);
            Ok(())
        })?;
    }
}

/// A renewal that arrived first is not rolled back by an older EXPIRED that
/// arrives late.
#[test]
fn a_late_older_expired_does_not_roll_back_a_renewal() {
    let base = |uuid: &str, notification_type, subtype, signed_date| Spec {
        uuid: uuid.into(),
        notification_type,
        subtype,
        signed_date,
        status: None,
        transaction: json!({
            "transactionId": "t1", "originalTransactionId": "s0", "bundleId": BUNDLE_ID,
            "productId": "basic", "type": "Auto-Renewable Subscription",
            "purchaseDate": START, "originalPurchaseDate": START, "expiresDate": START + 30 * DAY,
            "signedDate": signed_date, "environment": "Sandbox",
        }),
        renewal: None,
    };
    let renew = stored_form(&base("renew", "DID_RENEW", None, START + 2_000), START);
    let expired = stored_form(
        &base("expired", "EXPIRED", Some("BILLING_RETRY"), START + 1_000),
        START + 1,
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (late, states_late, _, _db, store) =
            record_all(&[renew.clone(), expired.clone()], None).await;
        store.close().await;
        let state = &states_late[&ItemKey::Subscription("s0".into())];
        assert_eq!(state.status, appstore_ledger::ledger::Status::Active);
        assert_eq!(state.last_notification_type.as_deref(), Some("DID_RENEW"));
        let (in_order, _, _, _db, store) = record_all(&[expired, renew], None).await;
        store.close().await;
        assert_eq!(late, in_order);
    });
}
