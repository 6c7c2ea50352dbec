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

/// console_render's 32-byte notifications.
fn console_events(events: &[(u8, u8, u8, u8, i64, i64, i64, u8)], long: u8, price: u8) -> Vec<u8> {
    let mut out = Vec::new();
    for &(kind, subtype, item, flags, purchase, expires, signed, reversed) in events {
        out.extend_from_slice(&[kind, subtype, item, flags]);
        for date in [purchase, expires, signed] {
            out.extend_from_slice(&date.to_be_bytes());
        }
        // No data.status: these seeds are about rendering, and a status
        // Apple would not sign would be a disagreement with its type.
        out.extend_from_slice(&[long, price, 0x00, reversed]);
    }
    out
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

    // console_render: 32 bytes a notification (see the target): type,
    // subtype, item, flags, purchase, expires and signed dates (8 bytes
    // each; flags 0x80 and 0x40 keep them near 2023, else raw or extreme),
    // text length, price selector, status, reversal.
    let tame: [(u8, u8, u8, u8, i64, i64, i64, u8); 5] = [
        (0, 1, 0, 0xc0, 0, 30, 0, 0),       // SUBSCRIBED INITIAL_BUY
        (1, 0, 0, 0xc0, 30, 60, 30, 0),     // DID_RENEW
        (2, 3, 0, 0xe8, 60, 60, 61, 0),     // DID_FAIL_TO_RENEW with grace
        (6, 0, 0, 0xc3, 30, 60, 45, 1),     // REFUND, reversed
        (9, 0, 1, 0xc0, 10, 10, 10, 0),     // ONE_TIME_CHARGE
    ];
    write("console_render", "tame", &console_events(&tame, 4, 0));
    let extremes: [(u8, u8, u8, u8, i64, i64, i64, u8); 5] = [
        (9, 0, 1, 0x00, 0, 0, 0, 0),                      // purchase at i64::MIN
        (6, 0, 1, 0x01, 0x0100_0000_0000_0000, 0, 0, 0),  // REFUND, extreme revocation
        (6, 0, 1, 0x01, 0x0b00_0000_0000_0000, 0, 0, 0),
        (0, 1, 0, 0x00, 0x0b00_0000_0000_0000, 0x0b00_0000_0000_0000, 0x0100_0000_0000_0000, 0),
        (8, 0, 0, 0x41, 0x0300_0000_0000_0000, -1, 5, 0), // REVOKE
    ];
    write("console_render", "extremes", &console_events(&extremes, 4, 1));
    let long: [(u8, u8, u8, u8, i64, i64, i64, u8); 3] = [
        (0, 1, 2, 0xc0, 0, 30, 0, 0),
        (6, 0, 2, 0xc3, 30, 60, 45, 0),
        (1, 0, 0, 0xc0, 30, 60, 30, 0),
    ];
    write("console_render", "long", &console_events(&long, 255, 3));
    println!("seeds written to {}/seeds", env!("CARGO_MANIFEST_DIR"));
}
