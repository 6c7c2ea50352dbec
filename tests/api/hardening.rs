//! What an outside tester broke, each kept broken no more: sign-in limits
//! under concurrency with memory bounded, signed dates at the ends of i64,
//! upper-case appAccountTokens, findings that grow, spreadsheet formulas
//! behind a tab, sign-in forms the service never issued, NUL bytes,
//! sessions without end, HSTS and caching, user names that differ only in
//! case, padded tokens, and what the binary says to an operator.

use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::console::{add_user, browser, get, post, sign_in, submit_login, PASSWORD};
use crate::helpers::{
    config, on_suite_backend, pki, run_with_input, Served, TempDir, TestApp, API_TOKEN,
};
use crate::ledger::{now, revoked, tx, Post, DAY};

const BIN: &str = env!("CARGO_BIN_EXE_appstore-ledger");

/// The most memory the process has held, from /proc, in bytes.
fn peak_memory(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/PID/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib * 1024
}

/// `console_login=...` and the form's token, from a sign-in page.
fn form_of(set_cookie: &str, body: &str) -> (String, String) {
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let start = body.find(r#"name="csrf" value=""#).unwrap() + 19;
    let end = start + body[start..].find('"').unwrap();
    (cookie, body[start..end].to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_wrong_passwords_at_once_check_five_and_memory_stays_bounded() {
    let (signer, dir) = (pki(), TempDir::new());
    let (text, _pg) = on_suite_backend(&dir, config(&dir, &signer, "", "")).await;
    let path = dir.path("config.toml");
    std::fs::write(&path, &text).unwrap();
    let path = path.to_str().unwrap();
    let added = run_with_input(
        Command::new(BIN).args(["user", "add", "ana", "--role", "support", "--config", path]),
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(added.code, Some(0), "{}", added.stderr);
    let served = Served::start({
        let mut command = Command::new(BIN);
        command.args(["serve", "--config", path]);
        command
    });
    let base = format!("http://{}", served.addr);
    let client = browser(reqwest::Client::builder());
    let mut forms = Vec::new();
    for _ in 0..40 {
        let page = client
            .get(format!("{base}/console/login"))
            .send()
            .await
            .unwrap();
        let cookie = page.headers()["set-cookie"].to_str().unwrap().to_owned();
        forms.push(form_of(&cookie, &page.text().await.unwrap()));
    }
    let before = peak_memory(served.child.id());
    let mut attempts = tokio::task::JoinSet::new();
    for (cookie, csrf) in forms {
        let (client, base) = (client.clone(), base.clone());
        attempts.spawn(async move {
            client
                .post(format!("{base}/console/login"))
                .header("cookie", cookie)
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("username", "ana"),
                    ("password", "a wrong password"),
                ])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
    }
    let mut statuses = attempts.join_all().await;
    statuses.sort_unstable();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((checked, refused), (5, 35), "{statuses:?}");
    let peak = peak_memory(served.child.id());
    eprintln!(
        "peak memory: {} MiB before the attempts, {} MiB after",
        before >> 20,
        peak >> 20
    );
    assert!(peak < 150 << 20, "peak memory {} MiB", peak >> 20);
    // The failures were counted: the right password waits too.
    let page = client
        .get(format!("{base}/console/login"))
        .send()
        .await
        .unwrap();
    let cookie = page.headers()["set-cookie"].to_str().unwrap().to_owned();
    let (cookie, csrf) = form_of(&cookie, &page.text().await.unwrap());
    let right = client
        .post(format!("{base}/console/login"))
        .header("cookie", cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", "ana"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(right.status().as_u16(), 429);
}

/// A one-time purchase refunded at `revoked_at`.
async fn refunded_purchase(app: &TestApp, id: &str, revoked_at: i64) {
    let mut t = tx(id, id, "lifetime", now() - 10 * DAY, 0);
    t["type"] = json!("Non-Consumable");
    t.as_object_mut().unwrap().remove("expiresDate");
    Post::new(app, "ONE_TIME_CHARGE", now() - 10 * DAY)
        .tx(t.clone())
        .send()
        .await;
    Post::new(app, "REFUND", now() - DAY)
        .tx(revoked(t, revoked_at, "REFUND_FULL"))
        .send()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_dates_at_the_ends_of_time_do_not_take_the_service_down() {
    let app = TestApp::spawn().await;
    refunded_purchase(&app, "far-past", -9_000_000_000_000_000_000).await;
    refunded_purchase(&app, "far-future", 9_000_000_000_000_000_000).await;
    // A subscription bought at the last millisecond i64 holds, ending
    // before it began, with no status from Apple to start its picture
    // earlier; and a purchase bought then.
    let mut t = tx(
        "end-of-time",
        "end-of-time-t1",
        "monthly",
        i64::MAX,
        now() + 30 * DAY,
    );
    t["originalPurchaseDate"] = json!(i64::MIN);
    Post::new(&app, "SUBSCRIBED", now()).tx(t).send().await;
    let mut t = tx("last-purchase", "last-purchase", "lifetime", i64::MAX, 0);
    t["type"] = json!("Non-Consumable");
    t.as_object_mut().unwrap().remove("expiresDate");
    Post::new(&app, "ONE_TIME_CHARGE", now()).tx(t).send().await;
    add_user(&app, "ana", "support");
    let client = browser(reqwest::Client::builder());
    let cookie = sign_in(&app, &client, "ana").await;

    let refunds = get(&app, &client, "/console/refunds", &cookie).await;
    assert_eq!(refunds.status, 200, "{}", refunds.body);
    // Two days with a refund, too far apart for every day between: two bars.
    let bars = refunds.body.split("<svg").nth(1).unwrap();
    assert_eq!(bars.matches("<rect").count(), 2, "{bars}");
    assert!(refunds.body.len() < 200_000, "{}", refunds.body.len());
    for customer in ["end-of-time", "last-purchase", "far-past", "far-future"] {
        let page = get(
            &app,
            &client,
            &format!("/console/customer?originalTransactionId={customer}"),
            &cookie,
        )
        .await;
        assert_eq!(page.status, 200, "{customer}: {}", page.body);
    }
    let (status, csv) = app.api_text("/v1/refunds?format=csv").await;
    assert_eq!(status, 200);
    assert_eq!(csv.lines().count(), 3, "{csv}");
    // And the service still takes notifications. One instant for both: a
    // purchase a millisecond after the date Apple signed its ACTIVE status
    // would not have begun at that status, and the check would disagree.
    let at = now();
    Post::new(&app, "SUBSCRIBED", at)
        .status(1)
        .tx(tx("after", "after-t1", "monthly", at, at + 30 * DAY))
        .send()
        .await;
    assert_eq!(app.api("/v1/subscriptions/after").await.1["entitled"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upper_case_app_account_token_is_the_same_token() {
    let app = TestApp::spawn().await;
    let upper = "7E3FB20B-4CDB-47CC-936D-99D65F608138";
    let lower = "7e3fb20b-4cdb-47cc-936d-99d65f608138";
    let mut t = tx(
        "tok-1",
        "tok-1-t1",
        "monthly",
        now() - DAY,
        now() + 29 * DAY,
    );
    t["appAccountToken"] = json!(upper);
    t["signedDate"] = json!(now());
    Post::new(&app, "SUBSCRIBED", now() - DAY)
        .status(1)
        .tx(t.clone())
        .send()
        .await;
    for token in [upper, lower] {
        let (status, found) = app
            .api(&format!("/v1/entitlements?appAccountToken={token}"))
            .await;
        assert_eq!(status, 200, "{found}");
        assert_eq!(
            found["entitlements"][0]["productId"], "monthly",
            "{token}: {found}"
        );
    }
    assert_eq!(
        app.api("/v1/subscriptions/tok-1").await.1["appAccountToken"],
        lower
    );
    // The app reports it with the token as Swift writes it, or as Apple's
    // JSON does: the same account, no mismatch.
    for reported in [upper, lower] {
        let (status, answer) = app
            .report(json!({"signedTransaction": app.pki.sign(&t), "appAccountToken": reported}))
            .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["appAccountTokenMismatch"], Value::Null, "{answer}");
    }
    let findings = crate::appstore::check_and_keep(&app, now()).await;
    assert!(findings.is_empty(), "{findings:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finding_and_its_state_stay_small_whatever_was_reported() {
    let app = TestApp::spawn().await;
    let mut t = tx(
        "big-1",
        "big-1-t1",
        "monthly",
        now() - DAY,
        now() + 29 * DAY,
    );
    t["signedDate"] = json!(now());
    // Signed values may be long (Apple signs what the app set); reported
    // ones are UUIDs, and anything else is refused before it is kept.
    t["appAccountToken"] = json!("x".repeat(1_000));
    let signed = app.pki.sign(&t);
    let report =
        |token: String| app.report(json!({"signedTransaction": signed, "appAccountToken": token}));
    let (status, body) = report("y".repeat(100_000)).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "INVALID_APP_ACCOUNT_TOKEN");
    for n in 0..21 {
        let (status, body) = report(format!("00000000-0000-4000-8000-{n:012}")).await;
        assert_eq!(status, 200, "{body}");
    }
    let findings = crate::appstore::check_and_keep(&app, now()).await;
    assert_eq!(findings, ["APP_ACCOUNT_TOKEN_MISMATCH big-1"]);
    let (detail, state): (String, String) = sqlx::query_as(
        "SELECT f.detail, CAST(i.state AS TEXT) FROM findings f, ledger_items i
         WHERE f.subject = 'big-1' AND i.item_id = 'big-1'",
    )
    .fetch_one(&mut app.db().await)
    .await
    .unwrap();
    assert!(detail.chars().count() <= 4_100, "{}", detail.len());
    assert!(detail.contains("more characters)"), "{detail}");
    assert!(state.len() < 20_000, "{}", state.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_formula_behind_a_tab_or_return_is_defused_in_both_csvs() {
    let app = TestApp::spawn().await;
    let mut t = tx(
        "csv-1",
        "csv-1-t1",
        "\t=2+5",
        now() - 10 * DAY,
        now() + 20 * DAY,
    );
    t["currency"] = json!("\r=1+1");
    Post::new(&app, "REFUND", now() - DAY)
        .tx(revoked(t, now() - DAY, "REFUND_FULL"))
        .send()
        .await;
    let (_, csv) = app.api_text("/v1/refunds?format=csv").await;
    assert!(csv.contains("'\t=2+5"), "{csv:?}");
    assert!(csv.contains("'\r=1+1"), "{csv:?}");
    add_user(&app, "ana", "support");
    let client = browser(reqwest::Client::builder());
    let cookie = sign_in(&app, &client, "ana").await;
    let console = get(&app, &client, "/console/refunds.csv", &cookie).await;
    assert_eq!(console.status, 200);
    assert!(console.body.contains("'\t=2+5"), "{:?}", console.body);
    assert!(!console.body.contains(",\t=2+5"), "{:?}", console.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_form_the_service_did_not_issue_is_refused() {
    let app = TestApp::spawn().await;
    add_user(&app, "ana", "support");
    let client = browser(reqwest::Client::builder());
    for (cookie, csrf) in [
        ("console_login=", ""),
        ("", ""),
        ("console_login=made-up", "made-up"),
        ("console_login=1.2.3", "1.2.3"),
    ] {
        let page = post(
            &app,
            &client,
            "/console/login",
            cookie,
            &[("csrf", csrf), ("username", "ana"), ("password", PASSWORD)],
        )
        .await;
        assert_eq!(page.status, 403, "{cookie:?} {csrf:?}");
        assert!(page.cookie_line("console_session").is_none());
    }
    // The form the service served still works.
    sign_in(&app, &client, "ana").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_byte_is_refused_as_bad_input_and_a_sign_in_with_one_still_counts() {
    let (signer, dir) = (pki(), TempDir::new());
    let text = config(&dir, &signer, "", "[console]\nlogin_failures_allowed = 2\n");
    let app = TestApp::spawn_text(signer, dir, &text).await;
    for path in [
        "/v1/refunds?productId=a%00b",
        "/v1/subscriptions/%00",
        "/v1/entitlements?appAccountToken=%00",
        "/v1/inconsistencies?kind=%00",
    ] {
        let (status, body) = app.api(path).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("INVALID_QUERY")),
            "{path}: {body}"
        );
    }
    add_user(&app, "ana", "support");
    let client = browser(reqwest::Client::builder());
    let cookie = sign_in(&app, &client, "ana").await;
    for path in [
        "/console/refunds?product=a%00",
        "/console/search?q=%00",
        "/console/customer?originalTransactionId=%00",
        "/console/access-log?user=%00",
    ] {
        assert_eq!(
            get(&app, &client, path, &cookie).await.status,
            400,
            "{path}"
        );
    }
    // A user name with a NUL is a wrong name: 401, and counted.
    let other = browser(reqwest::Client::builder());
    for _ in 0..2 {
        let (_, page) = submit_login(&app, &other, "ana\0", PASSWORD).await;
        assert_eq!(page.status, 401, "{}", page.body);
    }
    let (_, page) = submit_login(&app, &other, "ana", PASSWORD).await;
    assert_eq!(page.status, 429, "{}", page.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_session_still_ends_after_its_maximum_lifetime() {
    let app = TestApp::spawn_with_manual_clock("").await;
    add_user(&app, "ana", "support");
    let client = browser(reqwest::Client::builder());
    let session = sign_in(&app, &client, "ana").await;
    // Used every 20 minutes for 12 hours (the maximum, by default): never
    // idle, still open...
    for _ in 0..36 {
        assert_eq!(get(&app, &client, "/console", &session).await.status, 200);
        app.clock().advance(std::time::Duration::from_secs(20 * 60));
    }
    // ...and ended a minute later, busy or not.
    app.clock().advance(std::time::Duration::from_secs(60));
    let page = get(&app, &client, "/console", &session).await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location.as_deref(), Some("/console/login"));
    assert_eq!(app.count("console_sessions").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_answers_are_not_to_be_cached() {
    let app = TestApp::spawn().await;
    for path in ["/v1/subscriptions/none", "/v1/refunds", "/health"] {
        let response = app
            .client
            .get(format!("{}{path}", app.address))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response
                .headers()
                .get("cache-control")
                .and_then(|v| v.to_str().ok()),
            Some("no-store"),
            "{path}"
        );
        assert!(response
            .headers()
            .get("strict-transport-security")
            .is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_names_are_one_regardless_of_case() {
    let app = TestApp::spawn().await;
    add_user(&app, "ana", "support");
    let twin = app.cli_input(
        &["user", "add", "ANA", "--role", "admin"],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(twin.code, Some(1), "{}", twin.stdout);
    assert!(
        twin.stderr.contains("regardless of case"),
        "{}",
        twin.stderr
    );
    // What an operator sees: the answer, and no database chatter (on
    // PostgreSQL the migrator's notices), even at the info level.
    let quiet = run_with_input(
        Command::new(BIN)
            .args(["user", "add", "bo", "--role", "admin", "--config"])
            .arg(&app.config_path)
            .env("APPSTORE_LEDGER__LOG__LEVEL", "info"),
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(quiet.code, Some(0), "{}", quiet.stderr);
    assert_eq!(quiet.stderr, "");
    assert_eq!(quiet.stdout, "added bo (admin)\n");
    let removed = app.cli(&["user", "remove", "bo"]);
    assert_eq!(removed.code, Some(0), "{}", removed.stderr);
    let listed = app.cli(&["user", "list"]);
    assert_eq!(listed.stdout.lines().count(), 1, "{}", listed.stdout);
    // Signing in as ANA is signing in as ana.
    let client = browser(reqwest::Client::builder());
    let session = sign_in(&app, &client, "ANA").await;
    let home = get(&app, &client, "/console", &session).await;
    assert!(
        home.body.contains("Signed in as ana (support)"),
        "{}",
        home.body
    );
    let removed = app.cli(&["user", "remove", "Ana"]);
    assert_eq!(removed.code, Some(0), "{}", removed.stderr);
    assert_eq!(app.cli(&["user", "list"]).stdout, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_padded_token_is_malformed() {
    let app = TestApp::spawn().await;
    let token = Post::new(&app, "SUBSCRIBED", now())
        .tx(tx("pad-1", "pad-1-t1", "monthly", now(), now() + DAY))
        .token();
    let parts: Vec<&str> = token.split('.').collect();
    for padded in [
        format!("{}.{}==.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}==", parts[0], parts[1], parts[2]),
        format!("{}==.{}.{}", parts[0], parts[1], parts[2]),
    ] {
        let (status, body) = app.post(&padded).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("MALFORMED_TOKEN")),
            "{body}"
        );
    }
    assert_eq!(app.post(&token).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_start_without_api_tokens_says_queries_will_be_refused() {
    let (signer, dir) = (pki(), TempDir::new());
    let text = config(&dir, &signer, "", "")
        .replace(
            &format!(
                "tokens = [\"{API_TOKEN}\", \"{}\"]",
                crate::helpers::SECOND_TOKEN
            ),
            "",
        )
        .replace("level = \"warn\"", "level = \"info\"");
    assert!(!text.contains("tokens"), "{text}");
    let path = dir.path("config.toml");
    std::fs::write(&path, text).unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--config", path.to_str().unwrap()])
        .env("APPSTORE_LEDGER__LOG__FORMAT", "json")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap()));
    let mut said = Vec::new();
    for line in lines.map_while(Result::ok) {
        let listening = line.contains("\"listening\"");
        said.push(line);
        if listening {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        said.iter()
            .any(|line| line.contains("no [api] tokens configured: every query API call")),
        "{said:?}"
    );
}

// The same tests on PostgreSQL, each on a fresh database there.
on_postgres! {
    forty_wrong_passwords_at_once_check_five_and_memory_stays_bounded,
    signed_dates_at_the_ends_of_time_do_not_take_the_service_down,
    an_upper_case_app_account_token_is_the_same_token,
    a_finding_and_its_state_stay_small_whatever_was_reported,
    a_formula_behind_a_tab_or_return_is_defused_in_both_csvs,
    a_sign_in_form_the_service_did_not_issue_is_refused,
    a_nul_byte_is_refused_as_bad_input_and_a_sign_in_with_one_still_counts,
    a_busy_session_still_ends_after_its_maximum_lifetime,
    query_answers_are_not_to_be_cached,
    user_names_are_one_regardless_of_case,
    a_padded_token_is_malformed,
    the_first_start_without_api_tokens_says_queries_will_be_refused,
}
