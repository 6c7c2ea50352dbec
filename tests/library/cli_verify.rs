//! `appstore-ledger verify`, run as a process.

use crate::common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

use common::payloads::{
    renewal_info, subscribed, subscribed_with, transaction, APP_APPLE_ID, BUNDLE_ID,
};
use common::pki::TestPki;

const BIN: &str = env!("CARGO_BIN_EXE_appstore-ledger");

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let dir =
            std::env::temp_dir().join(format!("appstore-ledger-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    fn file(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    output
}

fn lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

/// The lines of a run that verified every token.
fn verified_lines(out: &Output) -> Vec<String> {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lines(&out.stdout)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

const AT: &str = "2025-06-01T00:00:00Z";

#[test]
fn verifies_files_and_prints_decoded_json_with_nested_content() {
    let pki = TestPki::new();
    let dir = Dir::new("files");
    let root = dir.file("root.der", &pki.root_der);
    let notification = dir.file(
        "n.jws",
        format!("\n  {}  \n", subscribed(&pki, "Production")),
    );
    let tx = dir.file("t.jws", pki.sign(&transaction("Production")));
    let out = run(
        &[
            "verify",
            "--root",
            path(&root),
            "--at",
            AT,
            "--bundle-id",
            BUNDLE_ID,
            "--environment",
            "Production",
            "--app-apple-id",
            &APP_APPLE_ID.to_string(),
            path(&notification),
            path(&tx),
        ],
        b"",
    );
    let printed = verified_lines(&out);
    assert_eq!(printed.len(), 2);
    let n: Value = serde_json::from_str(&printed[0]).unwrap();
    assert_eq!(n["notificationType"], "SUBSCRIBED");
    assert_eq!(
        n["data"]["signedTransactionInfo"]["originalTransactionId"],
        "2000000000000001"
    );
    assert_eq!(n["data"]["signedRenewalInfo"]["autoRenewStatus"], 1);
    let t: Value = serde_json::from_str(&printed[1]).unwrap();
    assert_eq!(t["transactionId"], "2000000000000002");
    assert!(out.stderr.is_empty());
}

/// The whole line, fields Apple may add and the model does not know
/// included: the command writes nested content from the decoded payloads,
/// not from a tree of them, and nothing may be lost on the way.
#[test]
fn prints_a_notification_whole_with_the_fields_it_does_not_know() {
    let pki = TestPki::new();
    let mut tx = transaction("Sandbox");
    tx["someFutureField"] = json!({"seats": [1, 2], "note": "kept"});
    let mut renewal = renewal_info("Sandbox");
    renewal["anotherFutureField"] = json!(true);
    let notification = subscribed_with(&pki, &pki, "Sandbox", &tx, &renewal);
    let dir = Dir::new("whole");
    let root = dir.file("root.der", &pki.root_der);
    let out = run(
        &["verify", "--root", path(&root), "--at", AT],
        format!("{notification}\n").as_bytes(),
    );
    let printed = verified_lines(&out);
    assert_eq!(printed.len(), 1);
    let line: Value = serde_json::from_str(&printed[0]).unwrap();
    assert_eq!(
        line,
        json!({
            "notificationType": "SUBSCRIBED",
            "subtype": "INITIAL_BUY",
            "notificationUUID": "002e14d5-51f5-4503-b5a8-c3a1af68eb20",
            "version": "2.0",
            "signedDate": 1_748_736_000_000i64,
            "data": {
                "appAppleId": 1_234_567_890,
                "bundleId": "com.example.app",
                "bundleVersion": "42",
                "environment": "Sandbox",
                "status": 1,
                "signedTransactionInfo": {
                    "transactionId": "2000000000000002",
                    "originalTransactionId": "2000000000000001",
                    "webOrderLineItemId": "2000000000000003",
                    "bundleId": "com.example.app",
                    "productId": "com.example.app.monthly",
                    "subscriptionGroupIdentifier": "21000000",
                    "purchaseDate": 1_748_735_940_000i64,
                    "originalPurchaseDate": 1_748_735_940_000i64,
                    "expiresDate": 1_751_328_000_000i64,
                    "quantity": 1,
                    "type": "Auto-Renewable Subscription",
                    "inAppOwnershipType": "PURCHASED",
                    "signedDate": 1_748_736_000_000i64,
                    "environment": "Sandbox",
                    "transactionReason": "PURCHASE",
                    "storefront": "USA",
                    "storefrontId": "143441",
                    "price": 9990,
                    "currency": "USD",
                    "appTransactionId": "704897469903383919",
                    "appAccountToken": "7e3fb20b-4cdb-47cc-936d-99d65f608138",
                    "someFutureField": {"seats": [1, 2], "note": "kept"}
                },
                "signedRenewalInfo": {
                    "originalTransactionId": "2000000000000001",
                    "autoRenewProductId": "com.example.app.monthly",
                    "productId": "com.example.app.monthly",
                    "autoRenewStatus": 1,
                    "signedDate": 1_748_736_000_000i64,
                    "environment": "Sandbox",
                    "recentSubscriptionStartDate": 1_748_735_940_000i64,
                    "renewalDate": 1_751_328_000_000i64,
                    "renewalPrice": 9990,
                    "currency": "USD",
                    "appTransactionId": "704897469903383919",
                    "anotherFutureField": true
                }
            }
        })
    );
    // The envelope's fields come sorted, nested content in its place.
    assert!(
        printed[0].starts_with(
            r#"{"data":{"appAppleId":1234567890,"bundleId":"com.example.app","bundleVersion":"42","environment":"Sandbox","signedRenewalInfo":{"#
        ),
        "{}",
        printed[0]
    );
}

/// `appData.signedAppTransactionInfo` is printed in its place too, among
/// fields sorted before and after its name.
#[test]
fn prints_a_notification_s_app_transaction_in_its_place() {
    let pki = TestPki::new();
    let app_transaction = json!({
        "appAppleId": APP_APPLE_ID, "bundleId": BUNDLE_ID, "receiptType": "Sandbox",
        "originalPlatform": "iOS", "signedDate": 5, "futurePlatformField": [1]
    });
    let envelope = json!({
        "notificationType": "RESCIND_CONSENT",
        "notificationUUID": "4",
        "appData": {
            "appAppleId": APP_APPLE_ID, "bundleId": BUNDLE_ID, "environment": "Sandbox",
            "signedAppTransactionInfo": pki.sign(&app_transaction),
            "zFutureField": "z"
        },
        "signedDate": 1
    });
    let dir = Dir::new("app-data");
    let root = dir.file("root.der", &pki.root_der);
    let out = run(
        &["verify", "--root", path(&root), "--at", AT],
        format!("{}\n", pki.sign(&envelope)).as_bytes(),
    );
    assert_eq!(
        verified_lines(&out),
        [
            r#"{"appData":{"appAppleId":1234567890,"bundleId":"com.example.app","environment":"Sandbox","signedAppTransactionInfo":{"appAppleId":1234567890,"bundleId":"com.example.app","originalPlatform":"iOS","receiptType":"Sandbox","signedDate":5,"futurePlatformField":[1]},"zFutureField":"z"},"notificationType":"RESCIND_CONSENT","notificationUUID":"4","signedDate":1}"#
        ]
    );
}

#[test]
fn reads_a_batch_from_stdin_and_reports_failures_by_line() {
    let pki = TestPki::new();
    let other = TestPki::new();
    let dir = Dir::new("stdin");
    let root = dir.file("root.pem", pem(&pki.root_der));
    let mut batch = String::new();
    for i in 0..50 {
        match i {
            10 => batch.push_str(&other.sign(&transaction("Sandbox"))),
            20 => batch.push_str("not.a.token"),
            30 => batch.push_str("   "),
            _ => batch.push_str(&pki.sign(&renewal_info("Sandbox"))),
        }
        batch.push('\n');
    }
    let out = run(
        &["verify", "--root", path(&root), "--at", AT, "-"],
        batch.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(lines(&out.stdout).len(), 47);
    let errors = lines(&out.stderr);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with("<stdin>:11: UNTRUSTED_CHAIN: "),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].starts_with("<stdin>:21: MALFORMED_TOKEN: "),
        "{}",
        errors[1]
    );

    // No FILE at all also reads standard input.
    let out = run(
        &["verify", "--root", path(&root), "--at", AT],
        pki.sign(&transaction("Sandbox")).as_bytes(),
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(lines(&out.stdout).len(), 1);
}

fn pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let body: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        body.join("\n")
    )
}

#[test]
fn identity_checks_apply_only_when_asked_and_name_the_code() {
    let pki = TestPki::new();
    let dir = Dir::new("identity");
    let root = dir.file("root.der", &pki.root_der);
    let token = dir.file("n.jws", subscribed(&pki, "Sandbox"));
    let out = run(
        &["verify", "--root", path(&root), "--at", AT, path(&token)],
        b"",
    );
    assert_eq!(out.status.code(), Some(0));

    let out = run(
        &[
            "verify",
            "--root",
            path(&root),
            "--at",
            AT,
            "--environment",
            "Production",
            path(&token),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with(&format!("{}: ENVIRONMENT_MISMATCH: ", path(&token))),
        "{err}"
    );

    let out = run(
        &[
            "verify",
            "--root",
            path(&root),
            "--at",
            AT,
            "--kind",
            "transaction",
            path(&token),
        ],
        b"",
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "a notification is not a transaction"
    );
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains(": MALFORMED_PAYLOAD: "));
    let out = run(
        &[
            "verify",
            "--root",
            path(&root),
            "--at",
            AT,
            "--kind",
            "notification",
            path(&token),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn the_time_can_be_now_signed_or_fixed() {
    let pki = TestPki::new();
    let dir = Dir::new("time");
    let root = dir.file("root.der", &pki.root_der);
    // Signed 2025-06-01; the test leaf is valid 2024 to 2027.
    let token = dir.file("t.jws", pki.sign(&transaction("Sandbox")));
    let ok = |at: &str| {
        run(
            &["verify", "--root", path(&root), "--at", at, path(&token)],
            b"",
        )
        .status
        .code()
    };
    assert_eq!(ok("signed"), Some(0));
    assert_eq!(ok("2026-01-01T00:00:00Z"), Some(0));
    assert_eq!(ok("2023-01-01T00:00:00+02:00"), Some(1));
    assert_eq!(ok("2030-01-01T00:00:00Z"), Some(1));
    // `now` is the default: whether it passes depends on the day the test runs.
    let out = run(&["verify", "--root", path(&root), path(&token)], b"");
    assert!(matches!(out.status.code(), Some(0 | 1)));
}

#[test]
fn usage_errors_exit_2() {
    let dir = Dir::new("usage");
    let not_a_cert = dir.file("bad.der", b"nope");
    for args in [
        vec!["verify", "--at", "yesterday"],
        vec!["verify", "--kind", "receipt"],
        vec!["verify", "--environment", "Staging"],
        vec!["verify", "--app-apple-id", "abc"],
        vec!["verify", "--root", path(&not_a_cert)],
        vec!["verify", "--root", "/nonexistent/root.der"],
        vec!["frobnicate"],
    ] {
        let out = run(&args, b"");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty());
    }
    let out = run(&["verify", "/nonexistent/token.jws"], b"");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_embedded_apple_root_is_the_default() {
    let pki = TestPki::new();
    let out = run(
        &["verify", "--at", AT, "-"],
        pki.sign(&transaction("Sandbox")).as_bytes(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("UNTRUSTED_CHAIN"));
}

#[test]
fn garbage_input_fails_cleanly() {
    let dir = Dir::new("garbage");
    let binary = dir.file("binary.jws", [0xffu8, 0xfe, 0x00, 0x01]);
    let huge = dir.file("huge.jws", vec![b'a'; (1 << 20) + 10_000]);
    let out = run(&["verify", path(&binary), path(&huge)], b"");
    assert_eq!(out.status.code(), Some(1));
    let errors = lines(&out.stderr);
    assert!(errors[0].contains("MALFORMED_TOKEN"), "{errors:?}");
    assert!(errors[1].contains("TOKEN_TOO_LARGE"), "{errors:?}");

    let mut stream = vec![b'x'; (1 << 20) + 10_000];
    stream.extend_from_slice(b"\n\xff\xfe\nx.y.z\n");
    let out = run(&["verify", "-"], &stream);
    assert_eq!(out.status.code(), Some(1));
    let errors = lines(&out.stderr);
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors[0].starts_with("<stdin>:1: TOKEN_TOO_LARGE"),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("<stdin>:2: MALFORMED_TOKEN"),
        "{errors:?}"
    );
    assert!(
        errors[2].starts_with("<stdin>:3: MALFORMED_TOKEN"),
        "{errors:?}"
    );
}

/// A line wholly in the reader's buffer is verified where it lies; one
/// across the buffer's end is copied first. Whatever the buffer's size,
/// the same lines are read, numbered alike, with the same output.
#[test]
fn lines_across_the_read_buffer_read_as_lines_within_it() {
    use std::io::BufReader;

    use appstore_ledger::cli::{verify, At, KindArg, VerifyArgs};

    let pki = TestPki::new();
    let dir = Dir::new("buffer");
    let args = VerifyArgs {
        roots: vec![dir.file("root.der", &pki.root_der)],
        bundle_ids: Vec::new(),
        environments: Vec::new(),
        app_apple_id: None,
        at: At::Fixed(common::pki::AT),
        kind: KindArg::Auto,
        files: Vec::new(),
    };
    let notification = subscribed(&pki, "Production");
    // The last line has no newline.
    let batch =
        format!("{notification}\n{notification}\nx.y.z\n\n  {notification}  \n{notification}");
    let read_with = |capacity: usize| {
        let mut input = BufReader::with_capacity(capacity, batch.as_bytes());
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let status = verify(&args, &mut input, &mut out, &mut err);
        (status, lines(&out), lines(&err))
    };
    let (status, out, err) = read_with(1 << 20);
    assert_eq!(status, 1);
    assert_eq!(out.len(), 4);
    let first: Value = serde_json::from_str(&out[0]).unwrap();
    assert_eq!(first["notificationType"], "SUBSCRIBED");
    assert!(out.iter().all(|line| line == &out[0]));
    assert_eq!(err.len(), 1, "{err:?}");
    assert!(
        err[0].starts_with("<stdin>:3: MALFORMED_TOKEN: "),
        "{err:?}"
    );
    let length = notification.len();
    for capacity in [
        16,
        1000,
        length - 1,
        length,
        length + 1,
        length + 2,
        2 * length,
    ] {
        assert_eq!(
            read_with(capacity),
            (status, out.clone(), err.clone()),
            "a buffer of {capacity} bytes"
        );
    }
}
