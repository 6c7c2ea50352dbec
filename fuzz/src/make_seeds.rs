//! Writes the seed corpus under `fuzz/seeds/<target>/`: real-shaped payloads,
//! tokens, certificates and event sequences made with the tests' own
//! generators, so that fuzzing starts from inputs that reach deep.

use std::path::Path;

use serde_json::{json, Value};

use appstore_ledger_fuzz::{join_prefixed, test_pki};

#[allow(dead_code)]
#[path = "../../tests/common/payloads.rs"]
mod payloads;

// payloads.rs finds the PKI as `super::pki`.
use appstore_ledger_fuzz::pki;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds").join(target);
    std::fs::create_dir_all(&dir).expect("seed folder");
    std::fs::write(dir.join(name), bytes).expect("seed file");
}

/// A notification envelope whose nested tokens are the `$T` and `$R` the
/// verify_token target signs and puts in place.
fn envelope(notification_type: &str, subtype: Option<&str>, status: Option<i64>) -> Value {
    let mut envelope = json!({
        "notificationType": notification_type,
        "notificationUUID": "002e14d5-51f5-4503-b5a8-c3a1af68eb20",
        "data": {
            "appAppleId": payloads::APP_APPLE_ID, "bundleId": payloads::BUNDLE_ID,
            "bundleVersion": "42", "environment": "Sandbox",
            "signedTransactionInfo": "$T", "signedRenewalInfo": "$R",
        },
        "version": "2.0",
        "signedDate": payloads::SIGNED_DATE,
    });
    if let Some(subtype) = subtype {
        envelope["subtype"] = json!(subtype);
    }
    if let Some(status) = status {
        envelope["data"]["status"] = json!(status);
    }
    envelope
}

fn bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("JSON")
}

fn main() {
    let transaction = payloads::transaction("Sandbox");
    let renewal = payloads::renewal_info("Sandbox");
    let mut refunded = transaction.clone();
    refunded["revocationDate"] = json!(payloads::SIGNED_DATE);
    refunded["revocationReason"] = json!(1);
    refunded["revocationType"] = json!("REFUND_FULL");

    // verify_token: envelope, transaction, renewal; length-prefixed.
    for (name, envelope, transaction) in [
        ("subscribed", envelope("SUBSCRIBED", Some("INITIAL_BUY"), Some(1)), &transaction),
        ("did_renew", envelope("DID_RENEW", None, None), &transaction),
        ("refund", envelope("REFUND", None, Some(5)), &refunded),
        ("expired", envelope("EXPIRED", Some("VOLUNTARY"), Some(2)), &transaction),
    ] {
        let seed = join_prefixed(&[&bytes(&envelope), &bytes(transaction), &bytes(&renewal)]);
        write("verify_token", name, &seed);
    }
    // A transaction or a renewal info on its own, and a summary notification.
    write("verify_token", "transaction", &join_prefixed(&[&bytes(&transaction), b"", b""]));
    write("verify_token", "renewal_info", &join_prefixed(&[&bytes(&renewal), b"", b""]));
    let summary = json!({
        "notificationType": "RENEWAL_EXTENSION", "subtype": "SUMMARY",
        "notificationUUID": "7a5a2b41-8d3b-4c21-9f59-6d8a2a3b9e10", "version": "2.0",
        "signedDate": payloads::SIGNED_DATE,
        "summary": {"requestIdentifier": "r", "environment": "Sandbox", "appAppleId": 1,
                    "bundleId": payloads::BUNDLE_ID, "productId": "p",
                    "storefrontCountryCodes": ["USA"], "succeededCount": 1, "failedCount": 0},
    });
    write("verify_token", "summary", &join_prefixed(&[&bytes(&summary), b"", b""]));

    // payload_decoders: the decoded payloads the tests and fixtures use.
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/payloads");
    for entry in std::fs::read_dir(&fixtures).expect("fixtures/payloads") {
        let path = entry.expect("fixture").path();
        let name = path.file_stem().and_then(|n| n.to_str()).unwrap_or("fixture").to_owned();
        write("payload_decoders", &name, &std::fs::read(&path).expect("fixture"));
    }
    write("payload_decoders", "summary", &bytes(&summary));

    // certificate_chain: the genuine chain, raw (even mode) and to be changed (odd).
    let pki = test_pki();
    let chain = join_prefixed(&[&pki.leaf_der, &pki.intermediate_der, &pki.root_der]);
    write("certificate_chain", "chain", &[&[0u8][..], &chain].concat());
    for (position, name) in [(0u8, "leaf_changed"), (1, "intermediate_changed"), (2, "root_changed")] {
        write("certificate_chain", name, &[1, position, 0, 40, 0x01]);
    }

    // compact_token: real-shaped tokens (signed by a PKI the target does not trust).
    write("compact_token", "subscribed", payloads::subscribed(pki, "Sandbox").as_bytes());
    write("compact_token", "transaction", pki.sign(&transaction).as_bytes());

    // ledger_fold: 8 bytes a notification (see the target): type, subtype,
    // item, period, signing offset (2 bytes), flags, status (bit 3 set:
    // data.status present, value status % 7).
    let history: [[u8; 8]; 6] = [
        [0, 1, 0, 0, 0, 1, 0x10, 0x08],   // SUBSCRIBED INITIAL_BUY, status 1
        [1, 0, 0, 1, 0, 1, 0x10, 0x08],   // DID_RENEW, status 1
        [10, 0, 0, 1, 0, 9, 0x11, 0x0c],  // REFUND, revoked, status 5
        [12, 0, 0, 1, 0, 12, 0x10, 0x08], // REFUND_REVERSED, status 1
        [4, 5, 0, 2, 1, 0, 0x00, 0x09],   // EXPIRED VOLUNTARY, status 2
        [15, 0, 2, 0, 0, 1, 0x00, 0x00],  // ONE_TIME_CHARGE of a non-consumable
    ];
    write("ledger_fold", "history", &history.concat());
    let grace: [[u8; 8]; 3] = [
        [0, 1, 1, 0, 0, 1, 0x10, 0x00],   // SUBSCRIBED, no status
        [2, 4, 1, 1, 0, 2, 0x30, 0x00],   // DID_FAIL_TO_RENEW GRACE_PERIOD
        [3, 0, 1, 1, 0, 200, 0x10, 0x00], // GRACE_PERIOD_EXPIRED
    ];
    write("ledger_fold", "grace", &grace.concat());
    println!("seeds written to {}/seeds", env!("CARGO_MANIFEST_DIR"));
}
