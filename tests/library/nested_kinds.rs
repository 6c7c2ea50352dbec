//! A token of the wrong kind in a nested slot is not what it claims to be.

use crate::common;

use appstore_ledger::jws::{ExpectedIdentity, Verifier};
use appstore_ledger::model::Environment;
use common::payloads::{renewal_info, subscribed, subscribed_with, transaction, BUNDLE_ID};
use common::pki::{TestPki, AT};

fn expect(bundle: &str, env: Environment) -> ExpectedIdentity {
    ExpectedIdentity {
        bundle_ids: vec![bundle.to_owned()],
        environments: vec![env],
        app_apple_id: Some(common::payloads::APP_APPLE_ID),
    }
}

/// A token of the wrong kind in a nested slot (a renewal info where the
/// transaction goes, a transaction where the renewal info goes, a whole
/// notification nested in a notification) is not what it claims to be.
#[test]
fn a_nested_token_of_the_wrong_kind_is_malformed() {
    let pki = TestPki::new();
    let verifier = Verifier::new(pki.anchors());
    let expected = expect(BUNDLE_ID, Environment::Production);
    let t = transaction("Production");
    let r = renewal_info("Production");
    let nested_notification: serde_json::Value =
        serde_json::from_str(&payloads_json(&subscribed(&pki, "Production"))).unwrap();
    for (transaction, renewal, slot) in [
        (&r, &r, "data.signedTransactionInfo"),
        (&t, &t, "data.signedRenewalInfo"),
        (&nested_notification, &r, "data.signedTransactionInfo"),
    ] {
        let token = subscribed_with(&pki, &pki, "Production", transaction, renewal);
        let error = verifier
            .verify_notification(&token, &expected, AT)
            .unwrap_err();
        assert_eq!(error.code(), "MALFORMED_PAYLOAD", "{slot}: {error}");
        assert!(error.to_string().contains(slot), "{error}");
    }
    // Standalone, too.
    assert_eq!(
        verifier
            .verify_renewal_info(&pki.sign(&t), &expected, AT)
            .unwrap_err()
            .code(),
        "MALFORMED_PAYLOAD"
    );
}

/// The decoded payload of a token, as JSON text.
fn payloads_json(token: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}
