//! Start-up configuration, through the real binary.

use std::process::Command;

use crate::helpers::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_appstore-ledger");

fn serve(config: Option<&str>, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = TempDir::new();
    let mut command = Command::new(BIN);
    command.arg("serve").current_dir(&dir.0);
    if let Some(text) = config {
        let path = dir.path("config.toml");
        std::fs::write(&path, text).unwrap();
        command.arg("--config").arg(path);
    }
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_file_value_stops_start_up_naming_the_key() {
    let (code, err) = serve(
        Some("[[apps]]\nbundle_id = \"a\"\nenvironments = [\"Production\"]\n"),
        &[],
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("apps[0].app_apple_id"), "{err}");
}

#[test]
fn environment_variables_override_the_file_and_are_validated_too() {
    let (code, err) = serve(
        None,
        &[("APPSTORE_LEDGER__SERVER__LISTEN", "not-an-address")],
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("server.listen"), "{err}");

    let (code, err) = serve(
        Some("[database]\nurl = \"sqlite://ok.db\"\n"),
        &[("APPSTORE_LEDGER__DATABASE__URL", "mysql://nope")],
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("database.url"), "{err}");
}

#[test]
fn a_missing_config_file_or_bad_root_is_reported() {
    let (code, err) = serve(
        None,
        &[(
            "APPSTORE_LEDGER__VERIFICATION__TRUSTED_ROOTS",
            "[\"/nonexistent.der\"]",
        )],
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("verification.trusted_roots[0]"), "{err}");

    let out = Command::new(BIN)
        .args(["serve", "--config", "/nonexistent/config.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such file"));
}

#[test]
fn apps_can_be_given_in_the_environment() {
    let (code, err) = serve(
        None,
        &[(
            "APPSTORE_LEDGER__APPS",
            r#"[{bundle_id="com.example.app",environments=["Production"]}]"#,
        )],
    );
    assert_eq!(code, Some(2));
    assert!(
        err.contains("apps[0].app_apple_id: required when Production is allowed"),
        "{err}"
    );
}

/// An App Store Server API key is checked at start-up; the error names the
/// key and never prints the secret.
#[test]
fn a_wrong_api_key_stops_start_up_naming_the_key_not_the_secret() {
    let app = "[[apps]]\nbundle_id = \"a\"\nenvironments = [\"Sandbox\"]\n[apps.api]\n";
    let good_ids =
        "issuer_id = \"57246542-96fe-1a63-e053-0824d011072a\"\nkey_id = \"2X9R4HXF34\"\n";
    let sec1 = "-----BEGIN EC PRIVATE KEY-----\nc2VjcmV0LXNlY3JldA==\n-----END EC PRIVATE KEY-----";
    let p8 = crate::fake_apple::p8_pem();
    let garbage = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LXNlY3JldA==\n-----END PRIVATE KEY-----";
    let cases = [
        (format!("{app}{good_ids}private_key = \"\"\"{sec1}\"\"\"\n"), "apps[0].api.private_key", "SEC1"),
        (format!("{app}{good_ids}private_key = \"\"\"{garbage}\"\"\"\n"), "apps[0].api.private_key", "P-256"),
        (format!("{app}{good_ids}private_key = \"not pem\"\n"), "apps[0].api.private_key", "PEM"),
        (format!("{app}{good_ids}private_key_file = \"missing.p8\"\n"), "apps[0].api.private_key_file", "missing.p8"),
        (format!("{app}{good_ids}"), "apps[0].api.private_key_file", "exactly one"),
        (
            format!("{app}issuer_id = \"nope\"\nkey_id = \"2X9R4HXF34\"\nprivate_key = \"x\"\n"),
            "apps[0].api.issuer_id",
            "UUID",
        ),
        (
            format!("{app}issuer_id = \"57246542-96fe-1a63-e053-0824d011072a\"\nkey_id = \"abc\"\nprivate_key = \"x\"\n"),
            "apps[0].api.key_id",
            "ten",
        ),
        (
            format!("{app}{good_ids}private_key = \"\"\"{p8}\"\"\"\nproduction_url = \"http://example.com\"\n"),
            "apps[0].api.production_url",
            "loopback",
        ),
        (
            format!("{app}{good_ids}private_key = \"\"\"{p8}\"\"\"\nmax_requests_per_second = 0\n"),
            "apps[0].api.max_requests_per_second",
            "positive",
        ),
    ];
    for (text, key, why) in cases {
        let (code, err) = serve(Some(&text), &[]);
        assert_eq!(code, Some(2), "{text}\n{err}");
        assert!(
            err.contains(key) && err.contains(why),
            "{key} / {why}: {err}"
        );
        assert!(!err.contains("c2VjcmV0"), "the secret was printed: {err}");
    }
}

/// Every configuration error exits 2 and names its key: a bad TLS file, an
/// unsupported database URL, a database directory that does not exist.
#[test]
fn configuration_errors_exit_2_naming_the_key() {
    for (config, key) in [
        (
            "[server]\ntls_cert = \"/nonexistent/cert.pem\"\ntls_key = \"/nonexistent/key.pem\"\n",
            "server.tls_cert",
        ),
        (
            "[database]\nurl = \"mysql://localhost/ledger\"\n",
            "database.url",
        ),
        ("[api]\ntokens = [\"short\"]\n", "api.tokens[0]"),
        (
            "[api]\ntokens = [\"a-long-enough-token-0\", \"change-me\"]\n",
            "api.tokens[1]",
        ),
        (
            "[database]\nurl = \"sqlite:///nonexistent/dir/ledger.db\"\n",
            "database.url",
        ),
        (
            "[server]\nclient_address_header = \"not a header\"\n",
            "server.client_address_header",
        ),
        (
            "[console]\nsession_idle_minutes = 0\n",
            "console.session_idle_minutes",
        ),
        (
            "[console]\nlogin_failures_allowed = 0\n",
            "console.login_failures_allowed",
        ),
    ] {
        let (code, err) = serve(Some(config), &[]);
        assert_eq!(code, Some(2), "{config}: {err}");
        assert!(err.contains(key), "{config}: {err}");
    }
}

#[test]
fn xcode_without_the_storekit_test_certificate_stops_start_up_naming_the_key() {
    let (code, err) = serve(
        Some("[[apps]]\nbundle_id = \"a\"\nenvironments = [\"Sandbox\", \"Xcode\"]\n"),
        &[],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("verification.xcode_certificate"), "{err}");
    assert!(err.contains("apps[0].environments"), "{err}");
    // A file that is not a certificate is named too.
    let dir = TempDir::new();
    let bogus = dir.path("not-a-certificate.cer");
    std::fs::write(&bogus, b"nonsense").unwrap();
    let (code, err) = serve(
        Some(&format!(
            "[verification]\nxcode_certificate = \"{}\"\n[[apps]]\nbundle_id = \"a\"\nenvironments = [\"Xcode\"]\n",
            bogus.display()
        )),
        &[],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("verification.xcode_certificate"), "{err}");
}
