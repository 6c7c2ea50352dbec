//! Look Up Order ID from the console's search box: an order ID from
//! Apple's receipt email leads to the customer's timeline; an order whose
//! purchases never reached us says so; an order Apple does not know, too.

use serde_json::json;

use super::app;
use crate::console::{add_user, browser, get, sign_in};
use crate::fake_apple::{FakeApple, Scripted};
use crate::ledger::{now, renewal, tx, Post, DAY};

fn order(path: &'static str, body: serde_json::Value) -> Scripted {
    Scripted {
        path,
        query: "",
        status: 200,
        body: Some(body),
        retry_after_ms: None,
        in_seconds: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_id_leads_to_the_customer_or_says_what_is_missing() {
    let fake = FakeApple::start().await;
    let app = app(&fake).await;
    let now = now();
    let held = tx("ord-1", "ord-1-t1", "monthly", now - DAY, now + 29 * DAY);
    Post::new(&app, "SUBSCRIBED", now - DAY)
        .status(1)
        .tx(held.clone())
        .renewal(renewal("ord-1", "monthly", 1, now - DAY))
        .send()
        .await;
    let lost = tx("ord-2", "ord-2-t1", "annual", now - DAY, now + 364 * DAY);
    {
        let mut s = fake.state();
        s.scripted.push_back(order(
            "/inApps/v1/lookup/MK5TTTVWJH",
            json!({"status": 0, "signedTransactions": [app.pki.sign(&held)]}),
        ));
        s.scripted.push_back(order(
            "/inApps/v1/lookup/LOSTORDER1",
            json!({"status": 0, "signedTransactions": [app.pki.sign(&lost)]}),
        ));
        // Apple answers status 1 for an order it does not know, in both
        // environments.
        for _ in 0..2 {
            s.scripted
                .push_back(order("/inApps/v1/lookup/NOSUCHORDER", json!({"status": 1})));
        }
    }
    add_user(&app, "agent", "support");
    let client = browser(reqwest::Client::builder());
    let cookie = sign_in(&app, &client, "agent").await;

    let found = get(&app, &client, "/console/search?q=MK5TTTVWJH", &cookie).await;
    assert_eq!(found.status, 303, "{}", found.body);
    assert_eq!(
        found.location.as_deref(),
        Some("/console/customer?appAccountToken=account-ord-1")
    );
    let missing = get(&app, &client, "/console/search?q=LOSTORDER1", &cookie).await;
    assert_eq!(missing.status, 200);
    assert!(
        missing.body.contains(r#"id="not-received""#),
        "{}",
        missing.body
    );
    assert!(missing.body.contains("ord-2-t1"));
    let unknown = get(&app, &client, "/console/search?q=NOSUCHORDER", &cookie).await;
    assert!(
        unknown.body.contains("Apple knows no such order"),
        "{}",
        unknown.body
    );
    assert_eq!(fake.seen("/inApps/v1/lookup/").len(), 4);
    // A token Apple would refuse is never sent: the search is not an order ID.
    let before = fake.seen("/inApps/v1/lookup/").len();
    let _ = get(&app, &client, "/console/search?q=not%20an%20order", &cookie).await;
    assert_eq!(fake.seen("/inApps/v1/lookup/").len(), before);
}

// The same tests on PostgreSQL, each on a fresh database there.
on_postgres! {
    an_order_id_leads_to_the_customer_or_says_what_is_missing,
}
