//! Notifications: nested tokens verified like the envelope, agreement between
//! them, and the caller's expected app and environment.

use crate::common;

use serde_json::json;

use appstore_ledger::jws::{
    unverified_kind, unverified_signed_date, CertPosition, ExpectedIdentity, TokenKind, Verified,
    Verifier, VerifyError,
};
use appstore_ledger::model::{
    Environment, NotificationType, SubscriptionStatus, Subtype, Timestamp,
};
use common::payloads::{
    self, renewal_info, subscribed, subscribed_with, transaction, APP_APPLE_ID, BUNDLE_ID,
};
use common::pki::{date, millis, ChainSpec, TestPki, AT};

fn expect(bundle: &str, env: Environment) -> ExpectedIdentity {
    ExpectedIdentity {
        bundle_ids: vec![bundle.into()],
        environments: vec![env],
        app_apple_id: Some(APP_APPLE_ID),
    }
}

#[test]
fn a_subscribed_notification_verifies_with_its_nested_tokens() {
    let pki = TestPki::new();
    let verifier = Verifier::new(pki.anchors());
    let token = subscribed(&pki, "Production");
    let n = verifier
        .verify_notification(&token, &expect(BUNDLE_ID, Environment::Production), AT)
        .unwrap();
    assert_eq!(
        n.payload.notification_type,
        Some(NotificationType::Subscribed)
    );
    assert_eq!(n.payload.subtype, Some(Subtype::InitialBuy));
    assert_eq!(
        n.payload.data.as_ref().unwrap().status,
        Some(SubscriptionStatus::Active)
    );
    let t = n.transaction_info.as_ref().unwrap();
    assert_eq!(
        t.original_transaction_id.as_deref(),
        Some("2000000000000001")
    );
    assert_eq!(t.price, Some(9990));
    assert_eq!(n.renewal_info.as_ref().unwrap().renewal_price, Some(9990));
    assert_eq!(
        n.signed_date(),
        Some(Timestamp::from_millis(payloads::SIGNED_DATE))
    );
    // One chain, cached once, serves the envelope and both nested tokens.
    assert_eq!(verifier.cache().len(), 1);

    let json = n.to_json();
    assert_eq!(
        json["data"]["signedTransactionInfo"]["transactionId"],
        "2000000000000002"
    );
    assert_eq!(json["data"]["signedRenewalInfo"]["autoRenewStatus"], 1);
    assert_eq!(
        json["notificationUUID"],
        "002e14d5-51f5-4503-b5a8-c3a1af68eb20"
    );
}

#[test]
fn a_nested_token_from_another_chain_fails_the_notification() {
    let pki = TestPki::new();
    let stranger = TestPki::new();
    let token = subscribed_with(
        &pki,
        &stranger,
        "Sandbox",
        &transaction("Sandbox"),
        &renewal_info("Sandbox"),
    );
    let error = Verifier::new(pki.anchors())
        .verify_notification(&token, &ExpectedIdentity::any(), AT)
        .unwrap_err();
    assert_eq!(
        error,
        VerifyError::Nested {
            field: "data.signedTransactionInfo",
            error: Box::new(VerifyError::UntrustedChain)
        }
    );
    assert_eq!(error.code(), "UNTRUSTED_CHAIN");
}

#[test]
fn a_notification_is_judged_at_the_time_given() {
    let expired = TestPki::build(ChainSpec {
        leaf_validity: (date(2020), date(2025)),
        ..ChainSpec::default()
    });
    // Valid while its leaf was, rejected after.
    let token = subscribed_with(
        &expired,
        &expired,
        "Sandbox",
        &transaction("Sandbox"),
        &renewal_info("Sandbox"),
    );
    let verifier = Verifier::new(expired.anchors());
    assert!(verifier
        .verify_notification(&token, &ExpectedIdentity::any(), millis(date(2024)))
        .is_ok());
    assert_eq!(
        verifier
            .verify_notification(&token, &ExpectedIdentity::any(), AT)
            .unwrap_err(),
        VerifyError::CertificateExpired(CertPosition::Leaf)
    );
}

#[test]
fn a_forged_nested_token_fails_the_notification() {
    let pki = TestPki::new();
    let genuine = pki.sign(&renewal_info("Sandbox"));
    let (header, rest) = genuine.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let forged_payload = {
        use base64::Engine;
        let mut r = renewal_info("Sandbox");
        r["autoRenewStatus"] = json!(0);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r.to_string())
    };
    let forged = format!("{header}.{forged_payload}.{signature}");
    let envelope = json!({
        "notificationType": "DID_CHANGE_RENEWAL_STATUS",
        "notificationUUID": "1",
        "data": {"bundleId": BUNDLE_ID, "environment": "Sandbox", "signedRenewalInfo": forged},
        "signedDate": 1
    });
    let error = Verifier::new(pki.anchors())
        .verify_notification(&pki.sign(&envelope), &ExpectedIdentity::any(), AT)
        .unwrap_err();
    assert_eq!(
        error,
        VerifyError::Nested {
            field: "data.signedRenewalInfo",
            error: Box::new(VerifyError::InvalidSignature)
        }
    );
}

#[test]
fn nested_tokens_must_agree_with_the_envelope_and_each_other() {
    let pki = TestPki::new();
    let verifier = Verifier::new(pki.anchors());
    let any = ExpectedIdentity::any();

    let mut other_bundle = transaction("Sandbox");
    other_bundle["bundleId"] = json!("com.attacker.app");
    let token = subscribed_with(
        &pki,
        &pki,
        "Sandbox",
        &other_bundle,
        &renewal_info("Sandbox"),
    );
    assert_eq!(
        verifier.verify_notification(&token, &any, AT).unwrap_err(),
        VerifyError::Nested {
            field: "data.signedTransactionInfo",
            error: Box::new(VerifyError::BundleMismatch {
                expected: BUNDLE_ID.into(),
                found: "com.attacker.app".into()
            })
        }
    );

    let token = subscribed_with(
        &pki,
        &pki,
        "Production",
        &transaction("Sandbox"),
        &renewal_info("Production"),
    );
    let error = verifier.verify_notification(&token, &any, AT).unwrap_err();
    assert_eq!(error.code(), "ENVIRONMENT_MISMATCH");
    assert!(
        !error.is_identity_mismatch(),
        "an inconsistent payload is not merely unexpected"
    );

    let token = subscribed_with(
        &pki,
        &pki,
        "Sandbox",
        &transaction("Sandbox"),
        &renewal_info("Production"),
    );
    assert_eq!(
        verifier
            .verify_notification(&token, &any, AT)
            .unwrap_err()
            .code(),
        "ENVIRONMENT_MISMATCH"
    );

    let mut other_subscription = renewal_info("Sandbox");
    other_subscription["originalTransactionId"] = json!("999");
    let token = subscribed_with(
        &pki,
        &pki,
        "Sandbox",
        &transaction("Sandbox"),
        &other_subscription,
    );
    assert_eq!(
        verifier.verify_notification(&token, &any, AT).unwrap_err(),
        VerifyError::Nested {
            field: "data.signedRenewalInfo",
            error: Box::new(VerifyError::TransactionMismatch(
                "2000000000000001".into(),
                "999".into()
            ))
        }
    );
}

#[test]
fn the_expected_app_and_environment_are_enforced() {
    let pki = TestPki::new();
    let verifier = Verifier::new(pki.anchors());
    let production = subscribed(&pki, "Production");
    let sandbox = subscribed(&pki, "Sandbox");

    let error = verifier
        .verify_notification(
            &production,
            &expect("com.other.app", Environment::Production),
            AT,
        )
        .unwrap_err();
    assert_eq!(
        error,
        VerifyError::BundleMismatch {
            expected: "com.other.app".into(),
            found: BUNDLE_ID.into()
        }
    );
    assert!(error.is_identity_mismatch());

    let error = verifier
        .verify_notification(&sandbox, &expect(BUNDLE_ID, Environment::Production), AT)
        .unwrap_err();
    assert_eq!(error.code(), "ENVIRONMENT_MISMATCH");
    assert!(error.is_identity_mismatch());

    let wrong_app = ExpectedIdentity {
        app_apple_id: Some(42),
        ..expect(BUNDLE_ID, Environment::Production)
    };
    let error = verifier
        .verify_notification(&production, &wrong_app, AT)
        .unwrap_err();
    assert_eq!(
        error,
        VerifyError::AppAppleIdMismatch {
            expected: "42".into(),
            found: APP_APPLE_ID.to_string()
        }
    );
}

#[test]
fn production_notifications_must_carry_the_app_apple_id() {
    let pki = TestPki::new();
    let verifier = Verifier::new(pki.anchors());
    for (environment, ok) in [("Production", false), ("Sandbox", true)] {
        let envelope = json!({
            "notificationType": "TEST",
            "notificationUUID": "3",
            "data": {"bundleId": BUNDLE_ID, "environment": environment},
            "signedDate": 1
        });
        let outcome = verifier.verify_notification(
            &pki.sign(&envelope),
            &ExpectedIdentity {
                app_apple_id: Some(APP_APPLE_ID),
                ..ExpectedIdentity::any()
            },
            AT,
        );
        assert_eq!(outcome.is_ok(), ok, "{environment}");
    }
}

#[test]
fn app_data_and_summary_and_external_tokens_carry_the_identity() {
    let pki = TestPki::new();
    let verifier = Verifier::new(pki.anchors());
    let app_transaction = json!({
        "appAppleId": APP_APPLE_ID, "bundleId": BUNDLE_ID, "receiptType": "Sandbox",
        "applicationVersion": "1", "originalPlatform": "iOS", "signedDate": 5,
        "appTransactionId": "704897469903383919"
    });
    let envelope = json!({
        "notificationType": "RESCIND_CONSENT",
        "notificationUUID": "4",
        "appData": {
            "appAppleId": APP_APPLE_ID, "bundleId": BUNDLE_ID, "environment": "Sandbox",
            "signedAppTransactionInfo": pki.sign(&app_transaction)
        },
        "signedDate": 1
    });
    let n = verifier
        .verify_notification(
            &pki.sign(&envelope),
            &expect(BUNDLE_ID, Environment::Sandbox),
            AT,
        )
        .unwrap();
    assert_eq!(
        n.app_transaction_info
            .as_ref()
            .unwrap()
            .app_transaction_id
            .as_deref(),
        Some("704897469903383919")
    );
    assert_eq!(
        n.to_json()["appData"]["signedAppTransactionInfo"]["originalPlatform"],
        "iOS"
    );

    let mut other_env = app_transaction.clone();
    other_env["receiptType"] = json!("Production");
    let mut envelope2 = envelope.clone();
    envelope2["appData"]["signedAppTransactionInfo"] = json!(pki.sign(&other_env));
    assert_eq!(
        verifier
            .verify_notification(&pki.sign(&envelope2), &ExpectedIdentity::any(), AT)
            .unwrap_err()
            .code(),
        "ENVIRONMENT_MISMATCH"
    );

    let summary = json!({
        "notificationType": "RENEWAL_EXTENSION", "subtype": "SUMMARY", "notificationUUID": "5",
        "summary": {"environment": "Production", "appAppleId": APP_APPLE_ID, "bundleId": BUNDLE_ID,
                    "productId": "p", "requestIdentifier": "r", "storefrontCountryCodes": ["USA"],
                    "succeededCount": 5, "failedCount": 0},
        "signedDate": 1
    });
    let n = verifier
        .verify_notification(
            &pki.sign(&summary),
            &expect(BUNDLE_ID, Environment::Production),
            AT,
        )
        .unwrap();
    assert_eq!(n.payload.summary.as_ref().unwrap().succeeded_count, Some(5));

    let external = json!({
        "notificationType": "EXTERNAL_PURCHASE_TOKEN", "subtype": "UNREPORTED", "notificationUUID": "6",
        "externalPurchaseToken": {"externalPurchaseId": "SANDBOX_b2158121-7af9-49d4-9561-1f588205523e",
                                  "tokenCreationDate": 1698148950000i64, "appAppleId": APP_APPLE_ID, "bundleId": BUNDLE_ID},
        "signedDate": 1
    });
    let token = pki.sign(&external);
    assert!(verifier
        .verify_notification(&token, &expect(BUNDLE_ID, Environment::Sandbox), AT)
        .is_ok());
    assert_eq!(
        verifier
            .verify_notification(&token, &expect(BUNDLE_ID, Environment::Production), AT)
            .unwrap_err()
            .code(),
        "ENVIRONMENT_MISMATCH"
    );
}

#[test]
fn unknown_types_fields_and_values_decode_and_are_kept() {
    let pki = TestPki::new();
    let envelope = json!({
        "notificationType": "SOMETHING_APPLE_ADDS_LATER",
        "subtype": "NEW_SUBTYPE",
        "notificationUUID": "7",
        "data": {"bundleId": BUNDLE_ID, "environment": "Sandbox", "status": 9, "newField": {"a": [1, 2]}},
        "brandNewTopLevel": true,
        "signedDate": 1
    });
    let n = Verifier::new(pki.anchors())
        .verify_notification(&pki.sign(&envelope), &ExpectedIdentity::any(), AT)
        .unwrap();
    assert_eq!(
        n.payload.notification_type,
        Some(NotificationType::Unknown(
            "SOMETHING_APPLE_ADDS_LATER".into()
        ))
    );
    assert_eq!(
        n.payload.subtype,
        Some(Subtype::Unknown("NEW_SUBTYPE".into()))
    );
    let data = n.payload.data.as_ref().unwrap();
    assert_eq!(data.status, Some(SubscriptionStatus::Unknown(9)));
    assert_eq!(data.unknown_fields["newField"], json!({"a": [1, 2]}));
    assert_eq!(
        n.to_json(),
        envelope,
        "decoding and re-encoding loses nothing"
    );
}

#[test]
fn known_fields_of_the_wrong_type_are_malformed() {
    let pki = TestPki::new();
    let verifier = Verifier::new(pki.anchors());
    let mut t = transaction("Sandbox");
    t["expiresDate"] = json!("tomorrow");
    let error = verifier
        .verify_transaction(&pki.sign(&t), &ExpectedIdentity::any(), AT)
        .unwrap_err();
    assert_eq!(error.code(), "MALFORMED_PAYLOAD");
    for payload in [b"[]".as_slice(), b"null", b"not json", b"\xff\xfe"] {
        let token = pki.sign_raw(&pki.header(), payload);
        let error = verifier
            .verify_transaction(&token, &ExpectedIdentity::any(), AT)
            .unwrap_err();
        assert_eq!(error.code(), "MALFORMED_PAYLOAD");
    }
}

#[test]
fn standalone_tokens_check_what_they_carry() {
    let pki = TestPki::new();
    let verifier = Verifier::new(pki.anchors());
    let t = pki.sign(&transaction("Sandbox"));
    assert!(verifier
        .verify_transaction(&t, &expect(BUNDLE_ID, Environment::Sandbox), AT)
        .is_ok());
    assert_eq!(
        verifier
            .verify_transaction(&t, &expect("x", Environment::Sandbox), AT)
            .unwrap_err()
            .code(),
        "BUNDLE_MISMATCH"
    );
    let r = pki.sign(&renewal_info("Sandbox"));
    assert!(verifier
        .verify_renewal_info(&r, &expect(BUNDLE_ID, Environment::Sandbox), AT)
        .is_ok());
    assert_eq!(
        verifier
            .verify_renewal_info(&r, &expect(BUNDLE_ID, Environment::Production), AT)
            .unwrap_err()
            .code(),
        "ENVIRONMENT_MISMATCH"
    );
}

/// Told the kind from the payload, the verifier believes nothing of a
/// payload before its signature holds: a stranger's token says it is not
/// trusted, whatever its payload, and a genuine one of no kind says so.
#[test]
fn the_kind_is_read_only_from_a_payload_whose_signature_holds() {
    let pki = TestPki::new();
    let stranger = TestPki::new();
    let verifier = Verifier::new(pki.anchors());
    let any = ExpectedIdentity::any();
    for payload in [
        json!({"x": 1}),
        json!(["n", "u"]),
        json!({"transactionId": "1"}),
    ] {
        assert_eq!(
            verifier
                .verify(&stranger.sign(&payload), None, &any, AT)
                .unwrap_err(),
            VerifyError::UntrustedChain,
            "{payload}"
        );
    }
    assert_eq!(
        verifier
            .verify(&pki.sign(&json!({"x": 1})), None, &any, AT)
            .unwrap_err()
            .code(),
        "MALFORMED_PAYLOAD"
    );
    assert_eq!(
        verifier
            .verify(&pki.sign(&json!(["n", "u"])), None, &any, AT)
            .unwrap_err(),
        VerifyError::MalformedPayload("the payload is not a JSON object".into())
    );
    let transaction = verifier
        .verify(&pki.sign(&transaction("Sandbox")), None, &any, AT)
        .unwrap();
    assert!(matches!(transaction, Verified::Transaction(_)));
}

#[test]
fn kind_and_signed_date_are_read_from_the_payload() {
    let pki = TestPki::new();
    let notification = subscribed(&pki, "Sandbox");
    assert_eq!(
        unverified_kind(&notification).unwrap(),
        TokenKind::Notification
    );
    assert_eq!(
        unverified_kind(&pki.sign(&transaction("Sandbox"))).unwrap(),
        TokenKind::Transaction
    );
    assert_eq!(
        unverified_kind(&pki.sign(&renewal_info("Sandbox"))).unwrap(),
        TokenKind::RenewalInfo
    );
    assert_eq!(
        unverified_kind(&pki.sign(&json!({"receiptType": "Sandbox", "bundleId": "b"}))).unwrap(),
        TokenKind::AppTransaction
    );
    assert_eq!(
        unverified_kind(&pki.sign(&json!({"x": 1})))
            .unwrap_err()
            .code(),
        "MALFORMED_PAYLOAD"
    );
    // An array holding as many values as the fields that tell the kinds
    // apart is no payload of any kind.
    let array = pki.sign(&json!(["n", "u", "r", "a", "t", "s", "p", "d"]));
    assert_eq!(
        unverified_kind(&array).unwrap_err(),
        VerifyError::MalformedPayload("the payload is not a JSON object".into())
    );
    // A field named twice is read as a JSON object reads it.
    let twice = pki.sign_raw(
        &pki.header(),
        br#"{"transactionId":"1","transactionId":"2"}"#,
    );
    assert_eq!(unverified_kind(&twice).unwrap(), TokenKind::Transaction);
    // A field is there with any value, null too, as in a JSON object.
    let null = pki.sign(&json!({"notificationType": null, "transactionId": "1"}));
    assert_eq!(unverified_kind(&null).unwrap(), TokenKind::Notification);
    assert_eq!(
        unverified_signed_date(&notification).unwrap(),
        Timestamp::from_millis(payloads::SIGNED_DATE)
    );

    // An old notification without signedDate: the newest nested signedDate.
    let mut t = transaction("Sandbox");
    t["signedDate"] = json!(100);
    let mut r = renewal_info("Sandbox");
    r["signedDate"] = json!(200);
    let envelope = json!({
        "notificationType": "DID_RENEW", "notificationUUID": "8",
        "data": {"bundleId": BUNDLE_ID, "environment": "Sandbox",
                 "signedTransactionInfo": pki.sign(&t), "signedRenewalInfo": pki.sign(&r)}
    });
    let token = pki.sign(&envelope);
    assert_eq!(
        unverified_signed_date(&token).unwrap(),
        Timestamp::from_millis(200)
    );
    let n = Verifier::new(pki.anchors())
        .verify(&token, None, &ExpectedIdentity::any(), AT)
        .unwrap();
    let Verified::Notification(n) = n else {
        panic!("not a notification")
    };
    assert_eq!(n.signed_date(), Some(Timestamp::from_millis(200)));

    let bare = pki.sign(&json!({"notificationType": "TEST", "notificationUUID": "9"}));
    assert_eq!(
        unverified_signed_date(&bare).unwrap_err(),
        VerifyError::MissingSignedDate
    );
}

#[test]
fn tokens_lacking_their_identifying_field_are_malformed() {
    let pki = TestPki::new();
    let verifier = Verifier::new(pki.anchors());
    let any = ExpectedIdentity::any();
    let no_uuid = pki.sign(&json!({"notificationType": "TEST", "data": {}, "signedDate": 1}));
    let no_type = pki.sign(&json!({"notificationUUID": "1", "data": {}, "signedDate": 1}));
    for token in [no_uuid, no_type] {
        assert_eq!(
            verifier
                .verify_notification(&token, &any, AT)
                .unwrap_err()
                .code(),
            "MALFORMED_PAYLOAD"
        );
    }
    let mut t = transaction("Sandbox");
    t.as_object_mut().unwrap().remove("transactionId");
    assert_eq!(
        verifier
            .verify_transaction(&pki.sign(&t), &any, AT)
            .unwrap_err()
            .code(),
        "MALFORMED_PAYLOAD"
    );
    let mut r = renewal_info("Sandbox");
    r.as_object_mut().unwrap().remove("originalTransactionId");
    assert_eq!(
        verifier
            .verify_renewal_info(&pki.sign(&r), &any, AT)
            .unwrap_err()
            .code(),
        "MALFORMED_PAYLOAD"
    );
    let app = pki.sign(&json!({"receiptType": "Sandbox"}));
    assert_eq!(
        verifier
            .verify_app_transaction(&app, &any, AT)
            .unwrap_err()
            .code(),
        "MALFORMED_PAYLOAD"
    );
}
