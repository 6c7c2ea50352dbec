//! Conformance on real Apple-signed tokens (../shared/conformance/real-jws).
//!
//! The tokens are not in this repository: the test reads the folder named by
//! `APPSTORE_LEDGER_REAL_JWS_DIR` (a path relative to the crate root works, as
//! in the README's test command) and says it skipped when there is none.

use crate::common;

use std::path::PathBuf;

use serde_json::Value;

use appstore_ledger::jws::{
    unverified_kind, unverified_signed_date, CertPosition, ExpectedIdentity, TokenKind,
    TrustAnchors, Verified, Verifier, VerifyError,
};
use appstore_ledger::model::{Environment, Timestamp};

const ENV_VAR: &str = "APPSTORE_LEDGER_REAL_JWS_DIR";

struct Case {
    file: String,
    token: String,
    pass: bool,
    entry: Value,
}

fn cases() -> Option<Vec<Case>> {
    let dir = std::env::var_os(ENV_VAR).map(PathBuf::from);
    let Some(dir) = dir.filter(|d| d.join("MANIFEST.json").is_file()) else {
        common::skip(&format!(
            "{ENV_VAR} does not name a folder with MANIFEST.json, so the real Apple tokens were not checked"
        ));
        return None;
    };
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("MANIFEST.json")).expect("MANIFEST.json"))
            .unwrap();
    let files = manifest["files"].as_array().expect("files");
    let cases: Vec<Case> = files
        .iter()
        .map(|entry| {
            let file = entry["file"].as_str().unwrap().to_owned();
            let token = std::fs::read_to_string(dir.join(&file))
                .unwrap()
                .trim()
                .to_owned();
            let pass = match entry["expected_result"].as_str() {
                Some("PASS") => true,
                Some("FAIL") => false,
                other => panic!("{file}: expected_result {other:?}"),
            };
            Case {
                file,
                token,
                pass,
                entry: entry.clone(),
            }
        })
        .collect();
    assert_eq!(cases.len(), 25, "the manifest lists 25 tokens");
    assert_eq!(cases.iter().filter(|c| c.pass).count(), 21);
    Some(cases)
}

fn apple() -> Verifier {
    Verifier::new(TrustAnchors::apple_root_ca_g3().unwrap())
}

/// The manifest's reference time: signedDate, or for a notification without
/// one, the newest nested signedDate.
fn reference_time(case: &Case) -> Timestamp {
    Timestamp::from_millis(case.entry["validity_reference_ms"].as_i64().unwrap())
}

fn environment(case: &Case) -> Environment {
    Environment::from_raw(case.entry["environment"].as_str().unwrap())
}

/// What the manifest says of the app, as the caller would state it.
fn expected(case: &Case) -> ExpectedIdentity {
    ExpectedIdentity {
        bundle_ids: case.entry["bundleId"]
            .as_str()
            .map(String::from)
            .into_iter()
            .collect(),
        environments: vec![environment(case)],
        app_apple_id: case.entry["appAppleId"].as_i64(),
    }
}

#[test]
fn every_token_verifies_or_fails_as_the_manifest_says() {
    let Some(cases) = cases() else { return };
    let verifier = apple();
    let mut passed = 0;
    for case in &cases {
        if case.pass {
            assert_eq!(
                unverified_signed_date(&case.token).unwrap(),
                reference_time(case),
                "{}",
                case.file
            );
        }
        let outcome = verifier.verify(&case.token, None, &expected(case), reference_time(case));
        match (&outcome, case.pass) {
            (Ok(verified), true) => {
                check_content(case, verified);
                passed += 1;
            }
            (Err(error), false) => {
                let (code, why) = failure_the_manifest_gives(case);
                assert_eq!(
                    (error.code(), error.to_string().contains(why)),
                    (code, true),
                    "{}: {error} (manifest: {})",
                    case.file,
                    case.entry["fail_reason"]
                );
                eprintln!("{}: rejected as the manifest says: {error}", case.file)
            }
            (outcome, _) => panic!(
                "{}: expected {}, got {outcome:?}",
                case.file,
                if case.pass { "PASS" } else { "FAIL" }
            ),
        }
    }
    assert_eq!(passed, 21);
}

/// The code and the words of the error a FAIL token must be refused with,
/// read from what its manifest entry says is wrong with it.
fn failure_the_manifest_gives(case: &Case) -> (&'static str, &'static str) {
    let e = &case.entry;
    let reason = e["fail_reason"].as_str().unwrap_or_default();
    match (
        e["chain_verified"].as_bool(),
        e["signature_verified"].as_bool(),
    ) {
        // Placeholder strings in x5c: they are not certificates.
        (Some(false), _) if reason.contains("x5c does not parse") => (
            "MALFORMED_CERTIFICATE",
            "certificate is not a well-formed DER X.509 certificate",
        ),
        // A genuine chain over a payload changed after signing.
        (Some(true), Some(false)) if reason.contains("does not match") => {
            ("INVALID_SIGNATURE", "signature does not verify")
        }
        // A genuine chain whose signature was cut short: its base64url no
        // longer decodes to 64 bytes.
        (Some(true), Some(false)) if reason.contains("fewer than 64 bytes") => {
            ("MALFORMED_TOKEN", "signature")
        }
        other => panic!("{}: no expected failure for {other:?}: {reason}", case.file),
    }
}

fn check_content(case: &Case, verified: &Verified) {
    let e = &case.entry;
    let file = &case.file;
    let kind = e["kind"].as_str().unwrap();
    match verified {
        Verified::Notification(n) => {
            assert_eq!(kind, "notification signedPayload", "{file}");
            let p = &n.payload;
            assert_eq!(
                p.notification_type.as_ref().map(|t| t.as_str()),
                e["notificationType"].as_str(),
                "{file}"
            );
            assert_eq!(
                p.subtype.as_ref().map(|t| t.as_str()),
                e["subtype"].as_str(),
                "{file}"
            );
            assert_eq!(
                p.notification_uuid.as_deref(),
                e["notificationUUID"].as_str(),
                "{file}"
            );
            assert_eq!(p.version.as_deref(), e["version"].as_str(), "{file}");
            assert_eq!(n.environment(), Some(environment(case)), "{file}");
            assert_eq!(
                n.identity().bundle_id.as_deref(),
                e["bundleId"].as_str(),
                "{file}"
            );
            assert_eq!(
                n.identity().app_apple_id,
                e["appAppleId"].as_i64(),
                "{file}"
            );
            assert_eq!(n.signed_date(), Some(reference_time(case)), "{file}");
            // Every nested token the manifest lists was verified and decoded.
            let nested: Vec<&str> = e["nested"]
                .as_array()
                .map(|a| a.iter().filter_map(|n| n["field"].as_str()).collect())
                .unwrap_or_default();
            assert_eq!(
                n.transaction_info.is_some(),
                nested.contains(&"data.signedTransactionInfo"),
                "{file}"
            );
            assert_eq!(
                n.renewal_info.is_some(),
                nested.contains(&"data.signedRenewalInfo"),
                "{file}"
            );
            if let Some(info) = &n.transaction_info {
                assert_eq!(info.environment, Some(environment(case)), "{file}");
            }
            let json = n.to_json();
            for field in nested {
                let (object, key) = field.split_once('.').unwrap();
                assert!(
                    json[object][key].is_object(),
                    "{file}: {field} is replaced by its content"
                );
            }
        }
        Verified::Transaction(t) => {
            assert_eq!(kind, "signedTransactionInfo", "{file}");
            assert_eq!(t.bundle_id.as_deref(), e["bundleId"].as_str(), "{file}");
            assert_eq!(t.product_id.as_deref(), e["productId"].as_str(), "{file}");
            assert_eq!(
                t.transaction_id.as_deref(),
                e["transactionId"].as_str(),
                "{file}"
            );
            assert_eq!(
                t.original_transaction_id.as_deref(),
                e["originalTransactionId"].as_str(),
                "{file}"
            );
            assert_eq!(t.signed_date, Some(reference_time(case)), "{file}");
        }
        Verified::RenewalInfo(r) => {
            assert_eq!(kind, "signedRenewalInfo", "{file}");
            assert_eq!(r.product_id.as_deref(), e["productId"].as_str(), "{file}");
            assert_eq!(
                r.original_transaction_id.as_deref(),
                e["originalTransactionId"].as_str(),
                "{file}"
            );
            assert_eq!(r.signed_date, Some(reference_time(case)), "{file}");
        }
        Verified::AppTransaction(_) => panic!("{file}: the manifest has no app transactions"),
    }
}

#[test]
fn the_declared_kind_is_detected() {
    let Some(cases) = cases() else { return };
    for case in cases.iter().filter(|c| c.pass) {
        let expected = match case.entry["kind"].as_str().unwrap() {
            "notification signedPayload" => TokenKind::Notification,
            "signedTransactionInfo" => TokenKind::Transaction,
            "signedRenewalInfo" => TokenKind::RenewalInfo,
            other => panic!("{other}"),
        };
        assert_eq!(
            unverified_kind(&case.token).unwrap(),
            expected,
            "{}",
            case.file
        );
    }
}

#[test]
fn after_its_leaf_expired_a_token_is_rejected_at_the_current_time() {
    let Some(cases) = cases() else { return };
    let verifier = apple();
    // The newest Apple leaf in the set is valid until 2027-10-13.
    let later = Timestamp::parse_rfc3339("2027-11-01T00:00:00Z").unwrap();
    for case in cases.iter().filter(|c| c.pass) {
        assert_eq!(
            verifier
                .verify(&case.token, None, &ExpectedIdentity::any(), later)
                .unwrap_err(),
            VerifyError::CertificateExpired(CertPosition::Leaf),
            "{}",
            case.file
        );
    }
}

#[test]
fn the_wrong_app_or_environment_is_refused() {
    let Some(cases) = cases() else { return };
    let verifier = apple();
    for case in cases
        .iter()
        .filter(|c| c.pass && c.entry["bundleId"].is_string())
    {
        let wrong_bundle = ExpectedIdentity {
            bundle_ids: vec!["com.example.not-this-app".into()],
            ..ExpectedIdentity::any()
        };
        let error = verifier
            .verify(&case.token, None, &wrong_bundle, reference_time(case))
            .unwrap_err();
        assert_eq!(error.code(), "BUNDLE_MISMATCH", "{}", case.file);

        let other_environment = match environment(case) {
            Environment::Production => Environment::Sandbox,
            _ => Environment::Production,
        };
        let wrong_environment = ExpectedIdentity {
            environments: vec![other_environment],
            ..ExpectedIdentity::any()
        };
        let error = verifier
            .verify(&case.token, None, &wrong_environment, reference_time(case))
            .unwrap_err();
        assert_eq!(error.code(), "ENVIRONMENT_MISMATCH", "{}", case.file);
    }
}

#[test]
fn apples_other_roots_can_be_configured_beside_g3_but_do_not_replace_it() {
    let Some(cases) = cases() else { return };
    let roots_dir =
        PathBuf::from(std::env::var_os(ENV_VAR).unwrap_or_default()).join("../apple-roots");
    let read = |name: &str| {
        TrustAnchors::parse_file(&std::fs::read(roots_dir.join(name)).unwrap()).unwrap()
    };
    let all = TrustAnchors::new(
        [
            read("AppleRootCA-G2.pem"),
            read("AppleIncRootCertificate.cer"),
            read("AppleRootCA-G3.pem"),
        ]
        .concat(),
    )
    .unwrap();
    let without_g3 = TrustAnchors::new(
        [
            read("AppleRootCA-G2.cer"),
            read("AppleIncRootCertificate.pem"),
        ]
        .concat(),
    )
    .unwrap();
    let all = Verifier::new(all);
    let without_g3 = Verifier::new(without_g3);
    for case in cases.iter().filter(|c| c.pass) {
        assert!(
            all.verify(
                &case.token,
                None,
                &ExpectedIdentity::any(),
                reference_time(case)
            )
            .is_ok(),
            "{}",
            case.file
        );
        assert_eq!(
            without_g3
                .verify(
                    &case.token,
                    None,
                    &ExpectedIdentity::any(),
                    reference_time(case)
                )
                .unwrap_err(),
            VerifyError::UntrustedChain,
            "{}",
            case.file
        );
    }
}

/// Apple's own notifications of one sandbox subscription, folded by the
/// ledger in any order, tell a consistent story.
#[test]
fn a_real_subscription_history_folds_the_same_in_any_order() {
    use appstore_ledger::ingest::new_notification;
    use appstore_ledger::ledger::{fold_all, Effect, Event, ItemKey, Status};

    let Some(cases) = cases() else { return };
    let verifier = apple();
    let events: Vec<Event> = cases
        .iter()
        .filter(|c| {
            c.pass
                && c.file.contains("session-pro-backend")
                && c.entry["kind"] == "notification signedPayload"
        })
        .filter_map(|c| {
            let n = verifier
                .verify_notification(&c.token, &ExpectedIdentity::any(), reference_time(c))
                .unwrap();
            let stored = new_notification(&n, &c.token, reference_time(c));
            Event::parse(&stored.payload)
                .ok()
                .filter(|e| e.item().is_some())
        })
        .collect();
    assert_eq!(
        events.len(),
        8,
        "eight notifications concern the subscription"
    );

    let forward = fold_all(events.clone());
    let mut reversed = events.clone();
    reversed.reverse();
    assert_eq!(fold_all(reversed), forward);
    let mut doubled = events.clone();
    doubled.extend(events);
    assert_eq!(fold_all(doubled), forward);

    let item = ItemKey::Subscription("2000001024993299".into());
    let (state, effects) = &forward[&item];
    // The last word is the REFUND of an older period (Apple's status 1): the
    // subscription stays ACTIVE and its latest period ends at renewalDate.
    assert_eq!(state.status, Status::Active);
    assert_eq!(state.expires_date(), Some(1_760_592_314_000));
    assert_eq!(state.current_revocation_date(), None);
    assert!(state.entitled_at(&item, 1_760_592_314_000 - 1));
    assert!(!state.entitled_at(&item, 1_760_592_314_000));
    let refunds: Vec<_> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Refund(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(refunds.len(), 1);
    assert_eq!(
        refunds[0].transaction_id.as_deref(),
        Some("2000001032604840")
    );
    assert_eq!(
        (refunds[0].price, refunds[0].currency.as_deref()),
        (Some(1990), Some("AUD"))
    );
    assert_eq!(refunds[0].revocation_date, Some(1_760_591_999_000));
    let expirations: Vec<_> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Expiration(x) => Some(x),
            _ => None,
        })
        .collect();
    assert_eq!(expirations.len(), 1);
    assert_eq!(expirations[0].subtype.as_deref(), Some("VOLUNTARY"));
}
