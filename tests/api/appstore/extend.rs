//! Goodwill time: a support agent extends one subscription from the console,
//! the CLI extends one or every active subscriber of a product and follows
//! the mass request until Apple completes it; Apple's rules are checked
//! before Apple is asked.

use super::*;

/// The value of `name` in the first form of the page that posts to `action`.
fn form_value(body: &str, action: &str, name: &str) -> String {
    let form = body
        .split(&format!("action=\"{action}\""))
        .nth(1)
        .unwrap_or_else(|| panic!("no form to {action}: {body}"));
    let field = form
        .split(&format!("name=\"{name}\" value=\""))
        .nth(1)
        .unwrap_or_else(|| panic!("no {name} in the form: {form}"));
    field.split('"').next().unwrap().to_owned()
}

/// A service with an active monthly subscription `otid`, which the fake
/// Apple knows.
async fn subscribed(otid: &'static str) -> (FakeApple, TestApp, &'static str) {
    let fake = FakeApple::start().await;
    let app = app(&fake).await;
    let now = now();
    let t1 = tx(
        otid,
        &format!("{otid}01"),
        "monthly",
        now - 5 * DAY,
        now + 25 * DAY,
    );
    Post::new(&app, "SUBSCRIBED", now - 5 * DAY)
        .status(1)
        .tx(t1.clone())
        .send()
        .await;
    fake.state()
        .transaction_info
        .insert(otid.into(), app.pki.sign(&t1));
    (fake, app, otid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_gives_goodwill_time_from_the_console_once() {
    let (fake, app, otid) = subscribed("9500").await;
    let path = format!("/inApps/v1/subscriptions/extend/{otid}");
    let timeline = format!("/console/customer?originalTransactionId={otid}");

    crate::console::add_user(&app, "sam", "support");
    let client = crate::console::browser(reqwest::Client::builder());
    let cookie = crate::console::sign_in(&app, &client, "sam").await;
    let page = crate::console::get(&app, &client, &timeline, &cookie).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("id=\"extend-renewal\""), "{}", page.body);
    let request_identifier = form_value(&page.body, "/console/extend-renewal", "requestIdentifier");
    assert!(!request_identifier.is_empty());

    // Days Apple would refuse: refused here, Apple not asked.
    let refused = crate::console::post(
        &app,
        &client,
        "/console/extend-renewal",
        &cookie,
        &[
            ("csrf", &page.csrf()),
            ("originalTransactionId", otid),
            ("days", "91"),
            ("reason", "CUSTOMER_SATISFACTION"),
            ("requestIdentifier", &request_identifier),
        ],
    )
    .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.contains("INVALID_EXTENSION"),
        "{}",
        refused.body
    );
    assert!(fake.seen(&path).is_empty());

    let form = [
        ("csrf", page.csrf()),
        ("originalTransactionId", otid.to_owned()),
        ("days", "14".to_owned()),
        ("reason", "SERVICE_ISSUE_OR_OUTAGE".to_owned()),
        ("requestIdentifier", request_identifier.clone()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let done = crate::console::post(&app, &client, "/console/extend-renewal", &cookie, &form).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(
        done.body.contains(&format!(
            "Apple moved the renewal date of <code>{otid}</code> by 14 days (SERVICE_ISSUE_OR_OUTAGE;"
        )),
        "{}",
        done.body
    );
    let seen = fake.seen(&path);
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].method.as_str(), &seen[0].body),
        (
            "PUT",
            &json!({"extendByDays": 14, "extendReasonCode": 3, "requestIdentifier": request_identifier})
        )
    );

    // Who asked, for how long and why, is in the access log.
    crate::console::add_user(&app, "ada", "admin");
    let admin_client = crate::console::browser(reqwest::Client::builder());
    let admin = crate::console::sign_in(&app, &admin_client, "ada").await;
    let log = crate::console::get(&app, &admin_client, "/console/access-log", &admin).await;
    assert!(
        log.body.contains(&format!(
            "originalTransactionId={otid} days=14 reason=SERVICE_ISSUE_OR_OUTAGE requestIdentifier={request_identifier}"
        )) && log.body.contains("extend-renewal"),
        "{}",
        log.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_extends_one_subscription_and_every_subscriber_until_apple_completes() {
    let (fake, app, otid) = subscribed("9600").await;

    let out = app.cli(&[
        "extend-renewal",
        "--original-transaction-id",
        otid,
        "--days",
        "0",
        "--reason",
        "OTHER",
    ]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("INVALID_EXTENSION"), "{}", out.stderr);
    let out = app.cli(&[
        "extend-renewal",
        "--original-transaction-id",
        otid,
        "--days",
        "3",
        "--reason",
        "GOODWILL",
    ]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("INVALID_EXTENSION"), "{}", out.stderr);
    assert!(fake.seen("/inApps/v1/subscriptions/extend").is_empty());

    let out = app.cli(&[
        "extend-renewal",
        "--original-transaction-id",
        otid,
        "--days",
        "30",
        "--reason",
        "1",
        "--request-identifier",
        "goodwill-9600-1",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.starts_with(&format!(
            "Apple extended {otid} by 30 days (CUSTOMER_SATISFACTION), requestIdentifier goodwill-9600-1"
        )),
        "{}",
        out.stdout
    );
    let seen = fake.seen(&format!("/inApps/v1/subscriptions/extend/{otid}"));
    assert_eq!(
        seen.iter().map(|s| s.body.clone()).collect::<Vec<_>>(),
        vec![
            json!({"extendByDays": 30, "extendReasonCode": 1, "requestIdentifier": "goodwill-9600-1"})
        ]
    );

    let out = app.cli(&[
        "extend-renewal-all",
        "--product",
        "monthly",
        "--days",
        "5",
        "--reason",
        "SERVICE_ISSUE_OR_OUTAGE",
        "--storefront",
        "USA",
        "--environment",
        "Sandbox",
        "--request-identifier",
        "outage-2026-12",
        "--poll-seconds",
        "1",
    ]);
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    let posted = fake.seen("/inApps/v1/subscriptions/extend/mass");
    let (asked, polled): (Vec<_>, Vec<_>) = posted.iter().partition(|s| s.method == "POST");
    assert_eq!(
        asked.iter().map(|s| s.body.clone()).collect::<Vec<_>>(),
        vec![json!({
            "extendByDays": 5, "extendReasonCode": 3, "requestIdentifier": "outage-2026-12",
            "productId": "monthly", "storefrontCountryCodes": ["USA"],
        })]
    );
    assert!(out.stdout.contains("in progress"), "{}", out.stdout);
    // Asked until complete: the fake completes at the second question.
    assert_eq!(
        polled.iter().map(|s| s.path.as_str()).collect::<Vec<_>>(),
        vec!["/inApps/v1/subscriptions/extend/mass/monthly/outage-2026-12"; 2]
    );
    assert!(
        out.stdout
            .lines()
            .last()
            .unwrap()
            .starts_with("requestIdentifier outage-2026-12: complete at ")
            && out.stdout.contains("7 extended, 1 failed"),
        "{}",
        out.stdout
    );
    // Following it again asks nothing new of Apple.
    let out = app.cli(&[
        "extend-renewal-all",
        "--product",
        "monthly",
        "--days",
        "5",
        "--reason",
        "3",
        "--environment",
        "Sandbox",
        "--request-identifier",
        "outage-2026-12",
        "--status-only",
    ]);
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    let posts = fake
        .seen("/inApps/v1/subscriptions/extend/mass")
        .iter()
        .filter(|s| s.method == "POST")
        .count();
    assert_eq!(posts, 1);
    assert!(fake.state().refused_tokens.is_empty());
}

// The same tests on PostgreSQL, each on a fresh database there.
on_postgres! {
    an_agent_gives_goodwill_time_from_the_console_once,
    the_cli_extends_one_subscription_and_every_subscriber_until_apple_completes,
}
