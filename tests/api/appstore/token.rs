//! Set App Account Token: the CLI asks Apple, and Apple's next signed
//! transaction moves the subscription to the new account.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_account_token_is_asked_of_apple_and_taken_from_its_next_transaction() {
    let fake = FakeApple::start().await;
    let app = app(&fake).await;
    let (now, otid) = (now(), "9100");
    let old_token = "0d0d0d0d-0000-4000-8000-00000000000d";
    let upper = "0E0E0E0E-0000-4000-8000-00000000000E";
    let new_token = "0e0e0e0e-0000-4000-8000-00000000000e";
    let mut t1 = tx(otid, "910001", "monthly", now - 40 * DAY, now - 10 * DAY);
    t1["appAccountToken"] = json!(old_token);
    Post::new(&app, "SUBSCRIBED", now - 40 * DAY)
        .status(1)
        .tx(t1.clone())
        .send()
        .await;
    fake.state()
        .transaction_info
        .insert(otid.into(), app.pki.sign(&t1));

    // Not a UUID: refused before Apple is asked.
    let out = app.cli(&[
        "set-app-account-token",
        "--original-transaction-id",
        otid,
        "--token",
        "acct-1",
    ]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("INVALID_APP_ACCOUNT_TOKEN"),
        "{}",
        out.stderr
    );
    assert!(fake
        .seen("/inApps/v1/transactions/9100/appAccountToken")
        .is_empty());

    let out = app.cli(&[
        "set-app-account-token",
        "--original-transaction-id",
        otid,
        "--token",
        upper,
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout
            .starts_with(&format!("Apple set appAccountToken {new_token} on {otid}")),
        "{}",
        out.stdout
    );
    let seen = fake.seen("/inApps/v1/transactions/9100/appAccountToken");
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].method.as_str(), &seen[0].body),
        ("PUT", &json!({"appAccountToken": new_token}))
    );
    assert_eq!(fake.state().app_account_tokens[otid], new_token);
    // Until Apple signs it, the ledger keeps what Apple signed.
    assert_eq!(subscription(&app, otid).await["appAccountToken"], old_token);

    // The renewal Apple signs next carries the new token.
    let mut t2 = tx(otid, "910002", "monthly", now - 10 * DAY, now + 20 * DAY);
    t2["appAccountToken"] = json!(new_token);
    Post::new(&app, "DID_RENEW", now - 10 * DAY)
        .status(1)
        .tx(t2)
        .send()
        .await;
    assert_eq!(subscription(&app, otid).await["appAccountToken"], new_token);
    for token in [old_token, new_token] {
        let (_, found) = app
            .api(&format!("/v1/entitlements?appAccountToken={token}"))
            .await;
        assert_eq!(found["entitlements"][0]["productId"], "monthly", "{found}");
    }
    assert!(check_and_keep(&app, now).await.is_empty());

    // A transaction no configured environment knows.
    let out = app.cli(&[
        "set-app-account-token",
        "--original-transaction-id",
        "404404",
        "--token",
        new_token,
    ]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("UNKNOWN_TRANSACTION"), "{}", out.stderr);
    assert!(fake.state().refused_tokens.is_empty());
}

/// An admin fixes an account link from the console: Apple is asked, the
/// access log says who did it; a support agent may not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_asks_apple_for_a_new_account_link_from_the_console() {
    let fake = FakeApple::start().await;
    let app = app(&fake).await;
    let (now, otid) = (now(), "9300");
    let new_token = "0f0f0f0f-0000-4000-8000-00000000000f";
    let t1 = tx(otid, "930001", "monthly", now - 5 * DAY, now + 25 * DAY);
    Post::new(&app, "SUBSCRIBED", now - 5 * DAY)
        .status(1)
        .tx(t1.clone())
        .send()
        .await;
    fake.state()
        .transaction_info
        .insert(otid.into(), app.pki.sign(&t1));
    let path = format!("/inApps/v1/transactions/{otid}/appAccountToken");
    let timeline = format!("/console/customer?originalTransactionId={otid}");

    // A support agent sees no form, and is refused if they post one.
    crate::console::add_user(&app, "sam", "support");
    let client = crate::console::browser(reqwest::Client::builder());
    let support = crate::console::sign_in(&app, &client, "sam").await;
    let page = crate::console::get(&app, &client, &timeline, &support).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(!page.body.contains("id=\"account-link\""), "{}", page.body);
    let refused = crate::console::post(
        &app,
        &client,
        "/console/set-app-account-token",
        &support,
        &[
            ("csrf", &page.csrf()),
            ("originalTransactionId", otid),
            ("token", new_token),
        ],
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(fake.seen(&path).is_empty());

    crate::console::add_user(&app, "ada", "admin");
    let admin_client = crate::console::browser(reqwest::Client::builder());
    let admin = crate::console::sign_in(&app, &admin_client, "ada").await;
    let page = crate::console::get(&app, &admin_client, &timeline, &admin).await;
    assert!(page.body.contains("id=\"account-link\""), "{}", page.body);
    // A form from elsewhere (no token of this session) is refused.
    let forged = crate::console::post(
        &app,
        &admin_client,
        "/console/set-app-account-token",
        &admin,
        &[
            ("csrf", "made-up"),
            ("originalTransactionId", otid),
            ("token", new_token),
        ],
    )
    .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    // Not a UUID: refused before Apple is asked.
    let bad = crate::console::post(
        &app,
        &admin_client,
        "/console/set-app-account-token",
        &admin,
        &[
            ("csrf", &page.csrf()),
            ("originalTransactionId", otid),
            ("token", "acct-1"),
        ],
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(
        bad.body.contains("INVALID_APP_ACCOUNT_TOKEN"),
        "{}",
        bad.body
    );
    assert!(fake.seen(&path).is_empty());

    let done = crate::console::post(
        &app,
        &admin_client,
        "/console/set-app-account-token",
        &admin,
        &[
            ("csrf", &page.csrf()),
            ("originalTransactionId", otid),
            ("token", &new_token.to_uppercase()),
        ],
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(
        done.body.contains(&format!(
            "Apple set appAccountToken <code>{new_token}</code> on <code>{otid}</code>"
        )),
        "{}",
        done.body
    );
    let seen = fake.seen(&path);
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].method.as_str(), &seen[0].body),
        ("PUT", &json!({"appAccountToken": new_token}))
    );
    // Who asked, and who was refused, is in the access log.
    let log = crate::console::get(&app, &admin_client, "/console/access-log", &admin).await;
    assert!(
        log.body.contains("set-app-account-token (refused)") && log.body.contains("sam"),
        "{}",
        log.body
    );
    assert!(
        log.body.contains(&format!(
            "originalTransactionId={otid} appAccountToken={}",
            new_token.to_uppercase()
        )),
        "{}",
        log.body
    );
}

// The same tests on PostgreSQL, each on a fresh database there.
on_postgres! {
    a_new_account_token_is_asked_of_apple_and_taken_from_its_next_transaction,
    an_admin_asks_apple_for_a_new_account_link_from_the_console,
}
