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
    assert_eq!(code, Some(1));
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
