//! The console's pages over HTTP: search (and Look Up Order ID), a
//! customer's timeline with the state after each notification, a decoded
//! payload, the refund audit with its totals and CSV, findings, delivery
//! health, the access log and who may read it, and values Apple signed
//! shown as text, never as markup.

use serde_json::{json, Value};

use crate::console::{add_user, browser, get, sign_in, Page};
use crate::helpers::{TempDir, TestApp};
use crate::ledger::{now, renewal, revoked, tx, Post, DAY, HOUR};

/// A signed-in client of a new user with `role`; its session cookie.
async fn agent(app: &TestApp, name: &str, role: &str) -> (reqwest::Client, String) {
    add_user(app, name, role);
    let client = browser(reqwest::Client::builder());
    let cookie = sign_in(app, &client, name).await;
    (client, cookie)
}

/// Percent-encodes a query value, as a browser's form does.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The rows of the timeline's notification table whose class is `class`.
fn step_rows<'a>(page: &'a Page, class: &str) -> Vec<&'a str> {
    page.body
        .split("<tr")
        .filter(|row| {
            row.starts_with(&format!(" class=\"{class}\"")) && row.contains("/console/payload/")
        })
        .collect()
}

/// A subscription of `otid`: bought 40 days ago, renewed 10 days ago,
/// refunded 2 days ago.
pub(crate) async fn refunded_subscription(app: &TestApp, otid: &str) -> Value {
    let now = now();
    let t1 = tx(
        otid,
        &format!("{otid}-t1"),
        "monthly",
        now - 40 * DAY,
        now - 10 * DAY,
    );
    let t2 = tx(
        otid,
        &format!("{otid}-t2"),
        "monthly",
        now - 10 * DAY,
        now + 20 * DAY,
    );
    Post::new(app, "SUBSCRIBED", now - 40 * DAY)
        .status(1)
        .tx(t1)
        .renewal(renewal(otid, "monthly", 1, now - 40 * DAY))
        .send()
        .await;
    Post::new(app, "DID_RENEW", now - 10 * DAY)
        .status(1)
        .tx(t2.clone())
        .renewal(renewal(otid, "monthly", 1, now - 10 * DAY))
        .send()
        .await;
    Post::new(app, "REFUND", now - 2 * DAY)
        .tx(revoked(t2.clone(), now - 2 * DAY, "REFUND_FULL"))
        .send()
        .await;
    t2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_leads_to_the_timeline_with_the_state_after_each_notification() {
    let app = TestApp::spawn().await;
    refunded_subscription(&app, "cp-1").await;
    let (client, cookie) = agent(&app, "agent", "support").await;

    let customer = "/console/customer?appAccountToken=account-cp-1";
    for q in ["account-cp-1", "cp-1", "cp-1-t1", "cp-1-t2"] {
        let found = get(&app, &client, &format!("/console/search?q={q}"), &cookie).await;
        assert_eq!(found.status, 303, "{q}: {}", found.body);
        assert_eq!(found.location.as_deref(), Some(customer), "{q}");
    }
    let missing = get(&app, &client, "/console/search?q=nobody-at-all", &cookie).await;
    assert_eq!(missing.status, 200);
    assert!(
        missing.body.contains(r#"id="not-found""#),
        "{}",
        missing.body
    );

    let page = get(&app, &client, customer, &cookie).await;
    assert_eq!(page.status, 200, "{}", page.body);
    // In signedDate order, each with the state after it.
    let steps = page
        .body
        .split("<table class=\"steps\">")
        .nth(1)
        .expect("the steps");
    let subscribed = steps.find(">SUBSCRIBED<").expect("SUBSCRIBED");
    let renewed = steps.find(">DID_RENEW<").expect("DID_RENEW");
    let refund = steps.find(">REFUND<").expect("REFUND");
    assert!(subscribed < renewed && renewed < refund);
    let refund_rows = step_rows(&page, "refund");
    assert_eq!(refund_rows.len(), 1, "{}", page.body);
    // Apple's status 5: the App Store refunded the current transaction.
    assert!(
        refund_rows[0].contains(r#"<td class="status">REVOKED</td>"#),
        "{}",
        refund_rows[0]
    );
    assert!(refund_rows[0].contains(r#"<span class="no">no</span>"#));
    let renewal_row = page
        .body
        .split("<tr")
        .find(|row| row.contains(">DID_RENEW<"))
        .unwrap();
    assert!(
        renewal_row.contains(r#"<td class="status">ACTIVE</td>"#),
        "{renewal_row}"
    );
    assert!(renewal_row.contains(r#"<span class="yes">yes</span>"#));
    // The picture: the periods, the refund.
    assert!(page.body.contains("<svg class=\"timeline\""));
    assert!(page.body.contains("<line class=\"refund\""));
    assert!(
        page.body.contains(r#"id="status-now">REVOKED<"#),
        "{}",
        page.body
    );

    // The decoded payload, one click away.
    let link_start = refund_rows[0].find("/console/payload/").unwrap();
    let link = &refund_rows[0][link_start..];
    let link = &link[..link.find('"').unwrap()];
    let payload = get(&app, &client, link, &cookie).await;
    assert_eq!(payload.status, 200);
    assert!(
        payload
            .body
            .contains("&quot;notificationType&quot;: &quot;REFUND&quot;"),
        "{}",
        payload.body
    );
    let gone = get(&app, &client, "/console/payload/no-such-thing", &cookie).await;
    assert_eq!(gone.status, 404);

    // Every customer page opened is in the access log, which support may
    // not read and admins may.
    for admin_page in ["/console/access-log", "/console/users"] {
        let refused = get(&app, &client, admin_page, &cookie).await;
        assert_eq!(refused.status, 403, "{admin_page}");
    }
    let (admin, admin_cookie) = agent(&app, "boss", "admin").await;
    let log = get(&app, &admin, "/console/access-log", &admin_cookie).await;
    assert_eq!(log.status, 200);
    for seen in [
        "<td>agent</td><td>timeline</td><td><code>appAccountToken=account-cp-1</code>",
        "<td>agent</td><td>search</td><td><code>cp-1-t2</code>",
        "<td>agent</td><td>payload</td>",
        "<td>agent</td><td>access-log (refused)</td>",
        "<td>agent</td><td>users (refused)</td>",
    ] {
        assert!(log.body.contains(seen), "{seen} not in {}", log.body);
    }
    let only_boss = get(&app, &admin, "/console/access-log?user=boss", &admin_cookie).await;
    assert!(!only_boss.body.contains("<td>agent</td>"));
    let users = get(&app, &admin, "/console/users", &admin_cookie).await;
    assert!(users.body.contains("<td>agent</td><td>support</td>"));
    // Not signed in: the sign-in form, and nothing logged.
    let before = app.count("console_access_log").await;
    let anonymous = get(&app, &client, customer, "").await;
    assert_eq!(anonymous.status, 303);
    assert_eq!(anonymous.location.as_deref(), Some("/console/login"));
    assert_eq!(app.count("console_access_log").await, before);

    // A page whose access cannot be logged is not shown.
    sqlx::query("DROP TABLE console_access_log")
        .execute(&mut app.db().await)
        .await
        .unwrap();
    let unlogged = get(&app, &client, customer, &cookie).await;
    assert_eq!(unlogged.status, 503);
    assert!(!unlogged.body.contains("cp-1"), "{}", unlogged.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markup_signed_into_a_notification_is_shown_as_text() {
    let app = TestApp::spawn().await;
    let (now, otid) = (now(), "cp-xss");
    let token = "\"><script>alert(2)</script>";
    let mut t = tx(
        otid,
        "cp-xss-t1",
        "<script>alert(1)</script>",
        now - DAY,
        now + 29 * DAY,
    );
    t["appAccountToken"] = json!(token);
    Post::new(&app, "SUBSCRIBED", now - DAY)
        .status(1)
        .tx(t.clone())
        .send()
        .await;
    Post::new(&app, "REFUND", now - HOUR)
        .tx(revoked(t, now - HOUR, "REFUND_FULL"))
        .send()
        .await;
    let (client, cookie) = agent(&app, "agent", "support").await;

    let found = get(
        &app,
        &client,
        &format!("/console/search?q={}", encode(token)),
        &cookie,
    )
    .await;
    assert_eq!(found.status, 303, "{}", found.body);
    let location = found.location.unwrap();
    assert_eq!(
        location,
        format!("/console/customer?appAccountToken={}", encode(token))
    );
    let pages = [
        get(&app, &client, &location, &cookie).await,
        get(&app, &client, "/console/refunds", &cookie).await,
        get(
            &app,
            &client,
            &format!("/console/search?q={}", encode("<script>x")),
            &cookie,
        )
        .await,
    ];
    for page in &pages {
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(!page.body.contains("<script"), "{}", page.body);
    }
    assert!(pages[0]
        .body
        .contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(pages[0]
        .body
        .contains("&quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt;"));
    assert!(pages[1]
        .body
        .contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refund_audit_filters_totals_charts_and_downloads_what_it_shows() {
    let app = TestApp::spawn().await;
    let now = now();
    // Monthly in USD, refunded; annual in USD, refunded then reversed;
    // monthly in EUR, refunded a week ago.
    refunded_subscription(&app, "cp-a").await;
    let annual = tx(
        "cp-b",
        "cp-b-t1",
        "annual",
        now - 100 * DAY,
        now + 265 * DAY,
    );
    Post::new(&app, "SUBSCRIBED", now - 100 * DAY)
        .status(1)
        .tx(annual.clone())
        .send()
        .await;
    Post::new(&app, "REFUND", now - 5 * DAY)
        .tx(revoked(annual.clone(), now - 5 * DAY, "REFUND_FULL"))
        .send()
        .await;
    Post::new(&app, "REFUND_REVERSED", now - 4 * DAY)
        .tx(annual)
        .send()
        .await;
    let mut euro = tx("cp-c", "cp-c-t1", "monthly", now - 20 * DAY, now + 10 * DAY);
    euro["currency"] = json!("EUR");
    euro["price"] = json!(8990);
    Post::new(&app, "SUBSCRIBED", now - 20 * DAY)
        .status(1)
        .tx(euro.clone())
        .send()
        .await;
    Post::new(&app, "REFUND", now - 7 * DAY)
        .tx(revoked(euro, now - 7 * DAY, "REFUND_FULL"))
        .send()
        .await;
    let (client, cookie) = agent(&app, "agent", "support").await;
    let rows = |page: &Page| {
        page.body.matches("<tr class=\"refund\">").count()
            + page.body.matches("<tr class=\"reversal\">").count()
    };

    let all = get(&app, &client, "/console/refunds", &cookie).await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert_eq!(rows(&all), 3);
    assert!(
        all.body.contains(
            r#"USD: 2 refunded, <strong class="net">9.99 USD</strong> (19.98 USD less 9.99 USD reversed since)."#
        ),
        "{}",
        all.body
    );
    assert!(all
        .body
        .contains(r#"EUR: 1 refunded, <strong class="net">8.99 EUR</strong>."#));
    assert!(all.body.contains(r#"aria-label="Refunds per day""#));
    assert!(all
        .body
        .contains("/console/customer?originalTransactionId=cp-a"));

    let monthly = get(&app, &client, "/console/refunds?product=monthly", &cookie).await;
    assert_eq!(rows(&monthly), 2);
    assert!(monthly
        .body
        .contains(r#"href="/console/refunds.csv?product=monthly""#));
    let csv = client
        .get(format!(
            "{}/console/refunds.csv?product=monthly",
            app.address
        ))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("refunds.csv"));
    let csv = csv.text().await.unwrap();
    let lines: Vec<&str> = csv.trim_end().split("\r\n").collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("notificationUUID,notificationType,transactionId"));
    assert!(
        lines[1..].iter().all(|line| line.contains(",monthly,")),
        "{csv}"
    );
    assert!(
        lines[1].contains("cp-a-t2") && lines[2].contains("cp-c-t1"),
        "{csv}"
    );

    let reversed = get(&app, &client, "/console/refunds?reversed=yes", &cookie).await;
    assert_eq!(rows(&reversed), 1);
    assert!(reversed.body.contains("cp-b-t1"));
    let standing = get(
        &app,
        &client,
        "/console/refunds?reversed=no&reason=1",
        &cookie,
    )
    .await;
    assert_eq!(rows(&standing), 2);
    let production = get(
        &app,
        &client,
        "/console/refunds?environment=Production",
        &cookie,
    )
    .await;
    assert_eq!(rows(&production), 0);
    let recent = pages_date(now - 3 * DAY);
    let since = get(
        &app,
        &client,
        &format!("/console/refunds?from={recent}"),
        &cookie,
    )
    .await;
    assert_eq!(rows(&since), 1);
    assert!(since.body.contains("cp-a-t2"));
    let until = get(
        &app,
        &client,
        &format!("/console/refunds?to={}", pages_date(now - 5 * DAY)),
        &cookie,
    )
    .await;
    assert_eq!(rows(&until), 2, "the whole last day counts");
    let bad = get(&app, &client, "/console/refunds?from=yesterday", &cookie).await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("yesterday is not a date"));
}

fn pages_date(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp(ms / 1000).unwrap();
    format!(
        "{:04}-{:02}-{:02}",
        at.year(),
        u8::from(at.month()),
        at.day()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn findings_and_delivery_health_tell_what_apple_sent_and_what_we_refused() {
    let app = TestApp::spawn_with(
        crate::helpers::pki(),
        TempDir::new(),
        "[check]\ninterval_ms = 100\n",
    )
    .await;
    let (now, otid) = (now(), "cp-f");
    // Refunded three days ago; the refunded period ended yesterday, and
    // no EXPIRED came.
    let t1 = tx(otid, "cp-f-t1", "monthly", now - 31 * DAY, now - DAY);
    Post::new(&app, "SUBSCRIBED", now - 31 * DAY)
        .tx(t1.clone())
        .send()
        .await;
    Post::new(&app, "REFUND", now - 3 * DAY)
        .tx(revoked(t1, now - 3 * DAY, "REFUND_FULL"))
        .send()
        .await;
    let forged = app.post_raw(r#"{"signedPayload":"not.a.jws"}"#).await;
    assert_eq!(forged.0, 403, "{}", forged.1);
    let forged_code = forged.1["error"]["code"].as_str().unwrap().to_owned();
    let garbage = app.post_raw("[]").await;
    assert_eq!(garbage.0, 400);
    let mut other =
        crate::common::payloads::NotificationSpec::new("SUBSCRIBED", crate::helpers::uuid());
    other.bundle_id = "com.example.other";
    let quarantined = app.post(&other.sign(&app.pki)).await;
    assert_eq!(quarantined.0, 202, "{}", quarantined.1);
    let (client, cookie) = agent(&app, "agent", "support").await;

    let mut findings = get(&app, &client, "/console/findings", &cookie).await;
    for _ in 0..100 {
        if findings.body.contains("REFUND_WITHOUT_EXPIRATION") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        findings = get(&app, &client, "/console/findings", &cookie).await;
    }
    assert!(
        findings.body.contains("REFUND_WITHOUT_EXPIRATION"),
        "{}",
        findings.body
    );
    assert!(findings
        .body
        .contains(&format!("/console/customer?originalTransactionId={otid}")));
    assert!(findings.body.contains("REFUND_WITHOUT_EXPIRATION: 1"));
    let resolved = get(&app, &client, "/console/findings?state=resolved", &cookie).await;
    assert!(!resolved.body.contains("<td>REFUND_WITHOUT_EXPIRATION</td>"));
    let timeline = get(
        &app,
        &client,
        &format!("/console/customer?originalTransactionId={otid}"),
        &cookie,
    )
    .await;
    assert!(
        timeline
            .body
            .contains("<tr class=\"open\"><td>REFUND_WITHOUT_EXPIRATION</td>"),
        "{}",
        timeline.body
    );

    // Refused deliveries are counted every few seconds, by code.
    let mut delivery = get(&app, &client, "/console/delivery", &cookie).await;
    for _ in 0..100 {
        if delivery.body.contains(&format!("{forged_code}: 1"))
            && delivery.body.contains("INVALID_REQUEST: 1")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        delivery = get(&app, &client, "/console/delivery", &cookie).await;
    }
    assert_eq!(delivery.status, 200);
    assert!(
        delivery.body.contains(&format!("{forged_code}: 1")),
        "{}",
        delivery.body
    );
    assert!(
        delivery.body.contains("INVALID_REQUEST: 1"),
        "{}",
        delivery.body
    );
    let last = delivery.body.split("id=\"last\"").nth(1).unwrap();
    assert!(
        last.contains(&format!(
            "<td>{}</td><td>Sandbox</td>",
            crate::helpers::BUNDLE_ID
        )),
        "{last}"
    );
    let received = delivery.body.split("id=\"received\"").nth(1).unwrap();
    assert!(
        received.contains("<td>2</td>"),
        "two notifications this hour: {received}"
    );
    let quarantine = delivery.body.split("id=\"quarantined\"").nth(1).unwrap();
    assert!(quarantine.contains("<td>1</td>"), "{quarantine}");
}

/// The money a refund gave back, by kind, the same in the API's JSON and
/// CSV and the console's audit: a prorated refund of 40% of 9.99 USD is
/// 3.996 USD (4.00 shown), a refund of 3 seats at 5.00 EUR is 15.00 EUR, and
/// a Family Sharing revocation is listed but refunds no money.
#[tokio::test]
async fn refunded_money_is_counted_by_the_kind_of_refund() {
    let app = TestApp::spawn().await;
    let now = now();
    let prorated = tx("mr-a", "mr-a-t1", "monthly", now - 20 * DAY, now + 10 * DAY);
    Post::new(&app, "SUBSCRIBED", now - 20 * DAY)
        .status(1)
        .tx(prorated.clone())
        .send()
        .await;
    let mut forty = revoked(prorated, now - 2 * DAY, "REFUND_PRORATED");
    forty["revocationPercentage"] = json!(40_000);
    Post::new(&app, "REFUND", now - 2 * DAY)
        .tx(forty)
        .send()
        .await;

    let mut team = tx("mr-b", "mr-b-t1", "team", now - 20 * DAY, now + 10 * DAY);
    team["quantity"] = json!(5);
    team["price"] = json!(5_000);
    team["currency"] = json!("EUR");
    Post::new(&app, "SUBSCRIBED", now - 20 * DAY)
        .status(1)
        .tx(team.clone())
        .send()
        .await;
    let mut seats = team;
    seats["multiSeatInfo"] = json!({"invitationManagement": "APPLE", "revokedSeatQuantity": 3});
    seats["signedDate"] = json!(now - DAY);
    Post::new(&app, "REFUND", now - DAY)
        .status(1)
        .subtype("SEATS")
        .tx(seats)
        .send()
        .await;

    let mut member = tx("mr-c", "mr-c-t1", "monthly", now - 20 * DAY, now + 10 * DAY);
    member["inAppOwnershipType"] = json!("FAMILY_SHARED");
    Post::new(&app, "SUBSCRIBED", now - 20 * DAY)
        .status(1)
        .tx(member.clone())
        .send()
        .await;
    Post::new(&app, "REVOKE", now - HOUR)
        .tx(revoked(member, now - HOUR, "FAMILY_REVOKE"))
        .send()
        .await;

    let (status, body) = app.api("/v1/refunds").await;
    assert_eq!(status, 200, "{body}");
    let amounts: Vec<(Value, Value, Value)> = body["refunds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["originalTransactionId"].clone(),
                r["refundedAmount"].clone(),
                r["currency"].clone(),
            )
        })
        .collect();
    assert_eq!(
        amounts,
        vec![
            (json!("mr-c"), Value::Null, json!("USD")),
            (json!("mr-b"), json!(15_000), json!("EUR")),
            (json!("mr-a"), json!(3_996), json!("USD")),
        ],
        "{body}"
    );

    let csv = app
        .client
        .get(format!("{}/v1/refunds?format=csv", app.address))
        .bearer_auth(crate::helpers::API_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    let column = lines[0]
        .split(',')
        .position(|name| name == "refundedAmount")
        .unwrap();
    let cells: Vec<&str> = lines[1..]
        .iter()
        .map(|line| line.split(',').nth(column).unwrap())
        .collect();
    assert_eq!(cells, vec!["", "15000", "3996"], "{csv}");

    let (client, cookie) = agent(&app, "agent", "support").await;
    let audit = get(&app, &client, "/console/refunds", &cookie).await;
    assert_eq!(audit.status, 200, "{}", audit.body);
    assert!(
        audit.body.contains(r#"USD: 1 refunded, <strong class="net">4.00 USD</strong>, 1 Family Sharing revocation(s), no money refunded."#),
        "{}",
        audit.body
    );
    assert!(
        audit
            .body
            .contains(r#"EUR: 1 refunded, <strong class="net">15.00 EUR</strong>."#),
        "{}",
        audit.body
    );
    assert!(audit.body.contains("<td>40%</td>"), "{}", audit.body);
    assert!(audit
        .body
        .contains(r#"<td class="refunded">3.996 USD</td>"#));
    assert!(audit
        .body
        .contains(r#"<td class="refunded">15.00 EUR</td>"#));
    assert!(audit
        .body
        .contains(r#"<td class="refunded">revocation, no money</td>"#));
}

// The same tests on PostgreSQL, each on a fresh database there.
on_postgres! {
    search_leads_to_the_timeline_with_the_state_after_each_notification,
    markup_signed_into_a_notification_is_shown_as_text,
    the_refund_audit_filters_totals_charts_and_downloads_what_it_shows,
    findings_and_delivery_health_tell_what_apple_sent_and_what_we_refused,
    refunded_money_is_counted_by_the_kind_of_refund,
}
