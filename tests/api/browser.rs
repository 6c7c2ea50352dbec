//! The console in a real browser: Debian's headless Chromium driven through
//! chromedriver (WebDriver). An agent fails to sign in with a wrong
//! password, signs in, finds a customer by appAccountToken, reads the
//! timeline with its REFUND and the state after it, opens the decoded
//! payload, filters the refund audit and downloads its CSV, sees a finding
//! and delivery health, signs out and is refused afterwards; an admin reads
//! the access log. Each page is saved as a PNG under
//! target/console-screenshots/ for a person to look at.
//!
//! Without chromedriver and Chromium (Debian's `chromium-driver` and
//! `chromium`) the test says `skipped:`; `.ci/run` installs them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::console::{add_user, PASSWORD};
use crate::console_pages::refunded_subscription;
use crate::helpers::{TempDir, TestApp};
use crate::ledger::{now, revoked, tx, Post, DAY};

fn chromedriver() -> PathBuf {
    std::env::var_os("APPSTORE_LEDGER_TEST_CHROMEDRIVER")
        .map_or_else(|| PathBuf::from("/usr/bin/chromedriver"), PathBuf::from)
}

fn chromium() -> PathBuf {
    std::env::var_os("APPSTORE_LEDGER_TEST_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Whether chromedriver and Chromium are installed; says `skipped:` when
/// not (`.ci/run` installs them, and fails on a skip).
fn chromium_is_here() -> bool {
    let here = chromedriver().exists() && chromium().exists();
    if !here {
        crate::common::skip(&format!(
            "no {} or {} (Debian's chromium-driver and chromium)",
            chromedriver().display(),
            chromium().display()
        ));
    }
    here
}

/// chromedriver on a free port of 127.0.0.1, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        // Killed and waited for when dropped, also if it never answers.
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let status = format!("{}/status", driver.url);
        for _ in 0..100 {
            if reqwest::get(&status).await.is_ok_and(|r| r.status() == 200) {
                return driver;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not answer at {status}");
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Driver, downloads: &Path) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium(),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1100"],
            "prefs": {
                "download.default_directory": downloads,
                "download.prompt_for_download": false,
            },
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

/// Saves what the browser shows as `target/console-screenshots/{name}.png`.
async fn screenshot(browser: &Client, name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = browser.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

async fn text_of(browser: &Client, css: &str) -> String {
    browser
        .wait()
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

async fn type_into(browser: &Client, css: &str, text: &str) {
    let field = browser.find(Locator::Css(css)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn click(browser: &Client, locator: Locator<'_>) {
    browser.find(locator).await.unwrap().click().await.unwrap();
}

/// How many elements `css` matches.
async fn count(browser: &Client, css: &str) -> usize {
    browser.find_all(Locator::Css(css)).await.unwrap().len()
}

/// Opens `path` of the service, waiting for the page to load.
async fn open(browser: &Client, app: &TestApp, path: &str) {
    browser
        .goto(&format!("{}{path}", app.address))
        .await
        .unwrap();
}

async fn sign_in(browser: &Client, app: &TestApp, name: &str, password: &str) {
    open(browser, app, "/console/login").await;
    type_into(browser, "#username", name).await;
    type_into(browser, "#password", password).await;
    click(browser, Locator::Id("sign-in")).await;
}

async fn path_of(browser: &Client) -> String {
    let url = browser.current_url().await.unwrap();
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

/// Waits (up to 10 s) until the browser has arrived at `expected`: a click
/// may return before the navigation it started is done.
async fn arrive(browser: &Client, expected: &str) {
    let mut at = String::new();
    for _ in 0..100 {
        at = path_of(browser).await;
        if at == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("at {at}, not {expected}");
}

/// Reloads until the page's text holds `text` (a periodic job writes it).
async fn reload_until(browser: &Client, text: &str) -> String {
    for _ in 0..100 {
        let body = text_of(browser, "main").await;
        if body.contains(text) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        browser.refresh().await.unwrap();
    }
    panic!("{text} never showed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_follows_a_refund_through_the_console_in_chromium() {
    if !chromium_is_here() {
        return;
    }
    let app = TestApp::spawn_with(
        crate::helpers::pki(),
        TempDir::new(),
        "[check]\ninterval_ms = 100\n",
    )
    .await;
    let now = now();
    // A monthly subscription, renewed, then refunded two days ago.
    refunded_subscription(&app, "br-1").await;
    // An annual plan refunded when its period had ended: no EXPIRED came,
    // which the periodic check finds.
    let annual = tx("br-2", "br-2-t1", "annual", now - 366 * DAY, now - DAY);
    Post::new(&app, "SUBSCRIBED", now - 366 * DAY)
        .status(1)
        .tx(annual.clone())
        .send()
        .await;
    Post::new(&app, "REFUND", now - 3 * DAY)
        .tx(revoked(annual, now - 3 * DAY, "REFUND_FULL"))
        .send()
        .await;
    add_user(&app, "agent", "support");
    add_user(&app, "boss", "admin");

    let driver = Driver::start().await;
    let downloads = TempDir::new();
    let browser = browser(&driver, &downloads.path("")).await;

    sign_in(&browser, &app, "agent", "not the password").await;
    assert_eq!(
        text_of(&browser, "#error").await,
        "Wrong user name or password."
    );
    screenshot(&browser, "01-wrong-password").await;

    sign_in(&browser, &app, "agent", PASSWORD).await;
    arrive(&browser, "/console").await;
    assert!(text_of(&browser, "main")
        .await
        .contains("Signed in as agent (support)."));
    screenshot(&browser, "02-search").await;

    type_into(&browser, "#q", "account-br-1").await;
    click(&browser, Locator::Id("search")).await;
    arrive(&browser, "/console/customer?appAccountToken=account-br-1").await;
    let refund_row = browser
        .find(Locator::XPath(
            "//table[@class='steps']//tr[@class='refund']",
        ))
        .await
        .unwrap();
    let cells = refund_row.find_all(Locator::Css("td")).await.unwrap();
    let mut texts = Vec::new();
    for cell in &cells {
        texts.push(cell.text().await.unwrap());
    }
    assert!(texts[2].starts_with("REFUND"), "{texts:?}");
    // Apple's status 5: the App Store refunded the current transaction.
    assert_eq!(
        texts[6], "REVOKED",
        "the status after the refund: {texts:?}"
    );
    assert_eq!(texts[7], "no", "not entitled after the refund");
    assert!(browser
        .find(Locator::Css("svg.timeline line.refund"))
        .await
        .is_ok());
    screenshot(&browser, "03-timeline").await;

    refund_row
        .find(Locator::LinkText("decoded"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(text_of(&browser, "#payload")
        .await
        .contains("\"notificationType\": \"REFUND\""));
    screenshot(&browser, "04-payload").await;

    open(&browser, &app, "/console/refunds").await;
    assert_eq!(count(&browser, "#refunds tr.refund").await, 2);
    type_into(&browser, "input[name=product]", "annual").await;
    click(&browser, Locator::Id("apply")).await;
    arrive(
        &browser,
        "/console/refunds?from=&to=&app=&product=annual&environment=&reason=&reversed=",
    )
    .await;
    assert_eq!(count(&browser, "#refunds tr.refund").await, 1);
    assert!(text_of(&browser, "#totals")
        .await
        .contains("USD: 1 refunded, 9.99 USD"));
    screenshot(&browser, "05-refunds").await;
    click(&browser, Locator::Id("csv")).await;
    let csv_path = downloads.path("refunds.csv");
    for _ in 0..100 {
        if csv_path.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let csv = std::fs::read_to_string(&csv_path).expect("the CSV was downloaded");
    let lines: Vec<&str> = csv.trim_end().split("\r\n").collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(
        lines[1].contains("br-2-t1") && lines[1].contains(",annual,"),
        "{csv}"
    );

    open(&browser, &app, "/console/findings").await;
    let findings = reload_until(&browser, "REFUND_WITHOUT_EXPIRATION").await;
    assert!(findings.contains("br-2"), "{findings}");
    screenshot(&browser, "06-findings").await;

    open(&browser, &app, "/console/delivery").await;
    assert!(text_of(&browser, "#last")
        .await
        .contains(crate::helpers::BUNDLE_ID));
    screenshot(&browser, "07-delivery").await;

    click(&browser, Locator::Id("logout")).await;
    arrive(&browser, "/console/login").await;
    assert_eq!(text_of(&browser, "h1").await, "Sign in");
    open(
        &browser,
        &app,
        "/console/customer?appAccountToken=account-br-1",
    )
    .await;
    // Refused after signing out: back to the sign-in form, nothing shown.
    arrive(&browser, "/console/login").await;
    assert_eq!(text_of(&browser, "h1").await, "Sign in");
    assert!(!text_of(&browser, "main").await.contains("br-1"));
    screenshot(&browser, "08-signed-out").await;

    sign_in(&browser, &app, "boss", PASSWORD).await;
    arrive(&browser, "/console").await;
    assert!(text_of(&browser, "main")
        .await
        .contains("Signed in as boss (admin)."));
    open(&browser, &app, "/console/access-log").await;
    let log = text_of(&browser, "#access").await;
    assert!(
        log.contains("agent timeline appAccountToken=account-br-1"),
        "{log}"
    );
    screenshot(&browser, "09-access-log").await;

    browser.close().await.unwrap();
}

/// The refund desk in Chromium: two of Apple's consumption requests wait
/// for the backend's facts with their time left; the agent sends one now,
/// which Apple accepts, and the page shows it answered beside the other,
/// still open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_answers_a_refund_request_at_the_refund_desk_in_chromium() {
    use crate::appstore::consumption::{ask, consent, consumable, desk, now, puts, TOKEN};
    if !chromium_is_here() {
        return;
    }
    let (fake, app) = desk("answer_after_minutes = 60\nrefund_preference = \"GRANT_FULL\"").await;
    consent(&app, TOKEN, true).await;
    let at = now(&app);
    ask(&app, &consumable("desk-waiting", TOKEN, at), at).await;
    ask(&app, &consumable("desk-answered", TOKEN, at), at).await;
    add_user(&app, "agent", "support");

    let driver = Driver::start().await;
    let downloads = TempDir::new();
    let browser = browser(&driver, &downloads.path("")).await;
    sign_in(&browser, &app, "agent", PASSWORD).await;
    arrive(&browser, "/console").await;
    click(&browser, Locator::LinkText("Refund desk")).await;
    arrive(&browser, "/console/refund-desk").await;
    reload_until(&browser, "AWAITING_FACTS").await;
    assert_eq!(count(&browser, "#open-requests tr.request").await, 2);
    for tid in ["desk-waiting", "desk-answered"] {
        assert_eq!(
            text_of(&browser, &format!("#open-{tid} td.time-left")).await,
            "12 h 0 min left"
        );
    }
    let waiting = text_of(&browser, "#open-desk-waiting").await;
    assert!(waiting.contains("UNINTENDED_PURCHASE"), "{waiting}");
    assert!(
        waiting.contains("refundPreference: \"GRANT_FULL\""),
        "{waiting}"
    );
    screenshot(&browser, "10-refund-desk-open").await;

    click(
        &browser,
        Locator::Css("#open-desk-answered button.send-now"),
    )
    .await;
    arrive(&browser, "/console/refund-desk").await;
    reload_until(&browser, "202 accepted").await;
    let answered = text_of(&browser, "#closed-desk-answered").await;
    assert!(answered.contains("SENT"), "{answered}");
    for field in [
        "customerConsented: true",
        "deliveryStatus: \"DELIVERED\"",
        "refundPreference: \"GRANT_FULL\"",
        "sampleContentProvided: false",
    ] {
        assert!(answered.contains(field), "{field}: {answered}");
    }
    assert!(
        answered.contains("pending"),
        "no decision from Apple yet: {answered}"
    );
    assert_eq!(count(&browser, "#open-requests tr.request").await, 1);
    assert_eq!(
        text_of(&browser, "#open-desk-waiting td.time-left").await,
        "12 h 0 min left"
    );
    screenshot(&browser, "11-refund-desk-answered").await;
    assert_eq!(puts(&fake, "desk-answered").len(), 1);
    assert!(puts(&fake, "desk-waiting").is_empty());

    // The agent learned the purchase never arrived: the facts change, and
    // the answer goes with them.
    browser
        .find(Locator::Css(
            "#open-desk-waiting select[name=deliveryStatus]",
        ))
        .await
        .unwrap()
        .select_by_value("UNDELIVERED_SERVER_OUTAGE")
        .await
        .unwrap();
    click(
        &browser,
        Locator::Css("#open-desk-waiting button.change-facts"),
    )
    .await;
    arrive(&browser, "/console/refund-desk").await;
    reload_until(&browser, "Open (0)").await;
    assert_eq!(
        puts(&fake, "desk-waiting"),
        vec![
            json!({"customerConsented": true, "deliveryStatus": "UNDELIVERED_SERVER_OUTAGE",
                    "refundPreference": "GRANT_FULL", "sampleContentProvided": false})
        ]
    );
    for page in ["refund-desk-send-now", "refund-desk-facts"] {
        let logged: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM console_access_log WHERE page = '{page}' AND user_name = 'agent'"
        )))
        .fetch_one(&mut app.db().await)
        .await
        .unwrap();
        assert_eq!(logged, 1, "{page}");
    }
    browser.close().await.unwrap();
}
