//! `appstore-ledger verify`, run as a process.

use crate::common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use common::payloads::{renewal_info, subscribed, transaction, APP_APPLE_ID, BUNDLE_ID};
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
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = lines(&out.stdout);
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
