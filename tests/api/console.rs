//! The support console's access: off until a user exists, sign-in with a
//! CSRF-bound form, a session cookie with its flags, sign-out, sessions
//! that end when idle or when their user is removed, failed sign-ins
//! limited, and the headers every console page carries. Over HTTP as a
//! browser speaks it (cookies and forms by hand, redirects not followed).

use std::time::Duration;

use crate::helpers::{pki, TempDir, TestApp};

pub(crate) const PASSWORD: &str = "correct horse battery";

pub(crate) fn browser(builder: reqwest::ClientBuilder) -> reqwest::Client {
    builder
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub(crate) struct Page {
    pub(crate) status: u16,
    pub(crate) location: Option<String>,
    pub(crate) set_cookies: Vec<String>,
    pub(crate) csp: Option<String>,
    pub(crate) body: String,
}

impl Page {
    pub(crate) async fn from(response: reqwest::Response) -> Page {
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Page {
            status: response.status().as_u16(),
            location: header("location"),
            csp: header("content-security-policy"),
            set_cookies: response
                .headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_owned))
                .collect(),
            body: response.text().await.unwrap(),
        }
    }

    /// The whole Set-Cookie line of `name`.
    pub(crate) fn cookie_line(&self, name: &str) -> Option<&str> {
        self.set_cookies
            .iter()
            .find(|line| line.starts_with(&format!("{name}=")))
            .map(String::as_str)
    }

    /// `name=value` of a cookie set, to send back.
    pub(crate) fn cookie(&self, name: &str) -> String {
        let line = self.cookie_line(name).unwrap_or_else(|| {
            panic!("no {name} cookie in {:?}", self.set_cookies);
        });
        line.split(';').next().unwrap().to_owned()
    }

    /// The form's CSRF token.
    pub(crate) fn csrf(&self) -> String {
        let start = self
            .body
            .find(r#"name="csrf" value=""#)
            .expect("a csrf field")
            + 19;
        let end = start + self.body[start..].find('"').unwrap();
        self.body[start..end].to_owned()
    }
}

pub(crate) async fn get(
    app: &TestApp,
    client: &reqwest::Client,
    path: &str,
    cookies: &str,
) -> Page {
    let mut request = client.get(format!("{}{path}", app.address));
    if !cookies.is_empty() {
        request = request.header("cookie", cookies);
    }
    Page::from(request.send().await.unwrap()).await
}

pub(crate) async fn post(
    app: &TestApp,
    client: &reqwest::Client,
    path: &str,
    cookies: &str,
    form: &[(&str, &str)],
) -> Page {
    let mut request = client.post(format!("{}{path}", app.address)).form(form);
    if !cookies.is_empty() {
        request = request.header("cookie", cookies);
    }
    Page::from(request.send().await.unwrap()).await
}

pub(crate) fn add_user(app: &TestApp, name: &str, role: &str) {
    let added = app.cli_input(
        &["user", "add", name, "--role", role],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(added.code, Some(0), "{}", added.stderr);
}

/// The sign-in form, and what posting it filled in with `name` and
/// `password` answered.
pub(crate) async fn submit_login(
    app: &TestApp,
    client: &reqwest::Client,
    name: &str,
    password: &str,
) -> (Page, Page) {
    let form = get(app, client, "/console/login", "").await;
    let answer = post(
        app,
        client,
        "/console/login",
        &form.cookie("console_login"),
        &[
            ("csrf", &form.csrf()),
            ("username", name),
            ("password", password),
        ],
    )
    .await;
    (form, answer)
}

/// The sign-in form, and what posting it with the right password answered.
async fn sign_in_pages(app: &TestApp, client: &reqwest::Client, name: &str) -> (Page, Page) {
    let (form, signed_in) = submit_login(app, client, name, PASSWORD).await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    (form, signed_in)
}

/// Signs in; returns the session cookie (`name=value`).
pub(crate) async fn sign_in(app: &TestApp, client: &reqwest::Client, name: &str) -> String {
    sign_in_pages(app, client, name)
        .await
        .1
        .cookie("console_session")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_off_until_a_user_exists() {
    let app = TestApp::spawn().await;
    let client = browser(reqwest::Client::builder());
    let off = get(&app, &client, "/console/login", "").await;
    assert_eq!(off.status, 404);
    assert!(off.body.contains("The console is off"), "{}", off.body);
    let posted = post(&app, &client, "/console/login", "", &[("username", "x")]).await;
    assert_eq!(posted.status, 404);

    add_user(&app, "ana", "support");
    let on = get(&app, &client, "/console/login", "").await;
    assert_eq!(on.status, 200);
    assert!(on.body.contains(r#"name="password""#), "{}", on.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_signs_in_and_out_and_the_session_is_refused_afterwards() {
    let app = TestApp::spawn().await;
    let client = browser(reqwest::Client::builder());
    add_user(&app, "ana", "support");

    // The form is bound to its browser: a cookie of its own, the same
    // token in the form.
    let form = get(&app, &client, "/console/login", "").await;
    let login_cookie = form.cookie("console_login");
    let line = form.cookie_line("console_login").unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(line.contains(flag), "{line}");
    }
    let csrf = form.csrf();
    assert_eq!(login_cookie, format!("console_login={csrf}"));

    // A wrong password, a form without its token: no session.
    let wrong = post(
        &app,
        &client,
        "/console/login",
        &login_cookie,
        &[
            ("csrf", &csrf),
            ("username", "ana"),
            ("password", "not the password"),
        ],
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert!(
        wrong.body.contains("Wrong user name or password"),
        "{}",
        wrong.body
    );
    assert!(wrong.cookie_line("console_session").is_none());
    let forged = post(
        &app,
        &client,
        "/console/login",
        "",
        &[("csrf", &csrf), ("username", "ana"), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(forged.status, 403);
    assert!(forged.cookie_line("console_session").is_none());

    // Signed in: a session cookie with its flags (no Secure over plain HTTP).
    let signed_in = post(
        &app,
        &client,
        "/console/login",
        &login_cookie,
        &[("csrf", &csrf), ("username", "ana"), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    assert_eq!(signed_in.location.as_deref(), Some("/console"));
    let line = signed_in.cookie_line("console_session").unwrap().to_owned();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(line.contains(flag), "{line}");
    }
    assert!(!line.contains("Secure"), "{line}");
    let session = signed_in.cookie("console_session");
    // Only the token's hash is stored.
    let token = session.trim_start_matches("console_session=").to_owned();
    let stored: Vec<String> = sqlx::query_scalar("SELECT token_sha256 FROM console_sessions")
        .fetch_all(&mut app.db().await)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], token);

    let home = get(&app, &client, "/console", &session).await;
    assert_eq!(home.status, 200);
    assert!(home.body.contains("Signed in as ana"), "{}", home.body);
    let anonymous = get(&app, &client, "/console", "").await;
    assert_eq!(anonymous.status, 303);
    assert_eq!(anonymous.location.as_deref(), Some("/console/login"));

    // Signing out without the page's token is refused and changes nothing.
    let forged = post(
        &app,
        &client,
        "/console/logout",
        &session,
        &[("csrf", "guess")],
    )
    .await;
    assert_eq!(forged.status, 403);
    assert_eq!(get(&app, &client, "/console", &session).await.status, 200);
    let out = post(
        &app,
        &client,
        "/console/logout",
        &session,
        &[("csrf", &home.csrf())],
    )
    .await;
    assert_eq!(out.status, 303);
    assert_eq!(out.location.as_deref(), Some("/console/login"));
    assert!(out
        .cookie_line("console_session")
        .unwrap()
        .contains("Max-Age=0"));
    // The old cookie no longer opens anything.
    let after = get(&app, &client, "/console", &session).await;
    assert_eq!(after.status, 303);
    assert_eq!(after.location.as_deref(), Some("/console/login"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_pages_forbid_inline_scripts_and_framing() {
    let app = TestApp::spawn().await;
    let client = browser(reqwest::Client::builder());
    add_user(&app, "ana", "support");
    let session = sign_in(&app, &client, "ana").await;
    for (path, cookies) in [
        ("/console/login", ""),
        ("/console", session.as_str()),
        ("/console/style.css", ""),
    ] {
        let page = get(&app, &client, path, cookies).await;
        let csp = page.csp.unwrap_or_default();
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(!page.body.contains("<script"), "{path}");
        assert!(!page.body.contains("style=\""), "{path}");
    }
    // What a visitor types is shown as text.
    let (_, echoed) =
        submit_login(&app, &client, "<script>alert(1)</script>", "wrong password").await;
    assert_eq!(echoed.status, 401);
    assert!(
        echoed
            .body
            .contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        echoed.body
    );
    assert!(!echoed.body.contains("<script>alert"), "{}", echoed.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_are_limited_then_even_the_right_password_waits() {
    let app = TestApp::spawn_with_manual_clock("[console]\nlogin_failures_allowed = 3\n").await;
    let client = browser(reqwest::Client::builder());
    add_user(&app, "ana", "support");
    add_user(&app, "bo", "support");
    let attempt = |name: &'static str, password: &'static str| {
        let (app, client) = (&app, &client);
        async move { submit_login(app, client, name, password).await.1 }
    };
    for _ in 0..3 {
        assert_eq!(attempt("ana", "wrong password").await.status, 401);
    }
    let limited = attempt("ana", PASSWORD).await;
    assert_eq!(limited.status, 429);
    assert!(
        limited.body.contains("Too many failed sign-ins"),
        "{}",
        limited.body
    );
    assert!(limited.cookie_line("console_session").is_none());
    // From the same address, another user waits too.
    assert_eq!(attempt("bo", PASSWORD).await.status, 429);
    // Still limited a minute before the failures age out (15 minutes)...
    app.clock().advance(Duration::from_secs(14 * 60));
    assert_eq!(attempt("ana", PASSWORD).await.status, 429);
    // ...and once they have, the right password works again.
    app.clock().advance(Duration::from_secs(2 * 60));
    assert_eq!(attempt("ana", PASSWORD).await.status, 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_when_idle_or_when_its_user_is_removed() {
    let app = TestApp::spawn_with_manual_clock("").await;
    let client = browser(reqwest::Client::builder());
    add_user(&app, "ana", "support");
    add_user(&app, "bo", "admin");
    let ana = sign_in(&app, &client, "ana").await;
    let bo = sign_in(&app, &client, "bo").await;
    assert_eq!(get(&app, &client, "/console", &ana).await.status, 200);

    // Ana's session unused for longer than the idle timeout (30 minutes by
    // default); Bo's used in between.
    app.clock().advance(Duration::from_secs(20 * 60));
    assert_eq!(get(&app, &client, "/console", &bo).await.status, 200);
    app.clock().advance(Duration::from_secs(11 * 60));
    assert_eq!(get(&app, &client, "/console", &ana).await.status, 303);
    assert_eq!(app.count("console_sessions").await, 1);

    assert_eq!(get(&app, &client, "/console", &bo).await.status, 200);
    let removed = app.cli(&["user", "remove", "bo"]);
    assert_eq!(removed.code, Some(0), "{}", removed.stderr);
    assert_eq!(get(&app, &client, "/console", &bo).await.status, 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_the_cookies_are_secure() {
    let dir = TempDir::new();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.path("cert.pem"), dir.path("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let app = TestApp::spawn_tls(pki(), dir, &cert, &key).await;
    let root = reqwest::Certificate::from_der(certified.cert.der()).unwrap();
    let client = browser(
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(root),
    );
    add_user(&app, "ana", "support");
    let (form, signed_in) = sign_in_pages(&app, &client, "ana").await;
    assert!(form
        .cookie_line("console_login")
        .unwrap()
        .contains("; Secure"));
    assert!(signed_in
        .cookie_line("console_session")
        .unwrap()
        .contains("; Secure"));
    // Over TLS every answer tells the browser to keep to HTTPS.
    for path in ["/console/login", "/health", "/v1/refunds"] {
        let response = client
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response
                .headers()
                .get("strict-transport-security")
                .and_then(|v| v.to_str().ok()),
            Some("max-age=31536000"),
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_load_balancer_failures_count_per_client_address() {
    let (pki, dir) = (pki(), TempDir::new());
    let text = crate::helpers::config(
        &dir,
        &pki,
        "client_address_header = \"x-forwarded-for\"",
        "[console]\nlogin_failures_allowed = 2\n",
    );
    let app = TestApp::spawn_text(pki, dir, &text).await;
    let client = browser(reqwest::Client::builder());
    add_user(&app, "ana", "support");
    add_user(&app, "bo", "support");
    let attempt = |name: &'static str, password: &'static str, forwarded: &'static str| {
        let (app, client) = (&app, &client);
        async move {
            let form = get(app, client, "/console/login", "").await;
            let response = client
                .post(format!("{}/console/login", app.address))
                .header("cookie", form.cookie("console_login"))
                .header("x-forwarded-for", forwarded)
                .form(&[
                    ("csrf", form.csrf().as_str()),
                    ("username", name),
                    ("password", password),
                ])
                .send()
                .await
                .unwrap();
            response.status().as_u16()
        }
    };
    // The balancer's entry is the last: what the client put before it is
    // not believed.
    assert_eq!(
        attempt("ana", "wrong password", "1.1.1.1, 203.0.113.7").await,
        401
    );
    assert_eq!(
        attempt("ana", "wrong password", "2.2.2.2, 203.0.113.7").await,
        401
    );
    assert_eq!(attempt("bo", PASSWORD, "203.0.113.7").await, 429);
    // Another client behind the same balancer is not locked out.
    assert_eq!(attempt("bo", PASSWORD, "198.51.100.2").await, 303);
}

// The same tests on PostgreSQL, each on a fresh database there.
on_postgres! {
    the_console_is_off_until_a_user_exists,
    an_agent_signs_in_and_out_and_the_session_is_refused_afterwards,
    console_pages_forbid_inline_scripts_and_framing,
    failed_sign_ins_are_limited_then_even_the_right_password_waits,
    a_session_ends_when_idle_or_when_its_user_is_removed,
    over_tls_the_cookies_are_secure,
    behind_a_load_balancer_failures_count_per_client_address,
}
