//! Signed payloads of any content: the input is split (length-prefixed, see
//! `split_prefixed`) into an envelope, a transaction and a renewal info; the
//! target signs each with the test PKI, puts the signed transaction and
//! renewal wherever the envelope says `$T` and `$R`, signs the envelope, and
//! verifies it. So every input passes the chain and the ES256 check, and the
//! payload decoders, the nested-token verification and the identity checks
//! all see fuzzed content.
//!
//! What must hold: the verifier never panics; a fresh verifier (no chain
//! cache) gives the same answer; a verified token stops verifying when its
//! signature changes; a verified notification is refused for another app.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

use appstore_ledger::jws::{ExpectedIdentity, Verified, Verifier};
use appstore_ledger_fuzz::{split_prefixed, test_pki, AT};

fn verifier() -> &'static Verifier {
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    VERIFIER.get_or_init(|| Verifier::new(test_pki().anchors()))
}

fn outcome(result: &Result<Verified, appstore_ledger::jws::VerifyError>) -> Result<String, String> {
    match result {
        Ok(verified) => Ok(verified.to_json().to_string()),
        Err(error) => Err(error.to_string()),
    }
}

fuzz_target!(|data: &[u8]| {
    let pki = test_pki();
    let header = pki.header();
    let parts = split_prefixed(data, 3);
    let &[envelope, transaction, renewal] = parts.as_slice() else {
        return;
    };
    let signed_transaction = pki.sign_raw(&header, transaction);
    let signed_renewal = pki.sign_raw(&header, renewal);
    let envelope = String::from_utf8_lossy(envelope)
        .replace("$T", &signed_transaction)
        .replace("$R", &signed_renewal);
    let token = pki.sign_raw(&header, envelope.as_bytes());

    let any = ExpectedIdentity::any();
    let result = verifier().verify(&token, None, &any, AT);
    let fresh = Verifier::new(pki.anchors()).verify(&token, None, &any, AT);
    assert_eq!(
        outcome(&result),
        outcome(&fresh),
        "the chain cache changed an answer"
    );

    let Ok(verified) = result else { return };
    // The signature is what is checked: change one character of it.
    let mut tampered = token.clone().into_bytes();
    if let Some(last) = tampered.last_mut() {
        *last = if *last == b'A' { b'Q' } else { b'A' };
    }
    let tampered = String::from_utf8(tampered).expect("ASCII");
    assert!(
        verifier().verify(&tampered, None, &any, AT).is_err(),
        "a changed signature verified"
    );

    if let Verified::Notification(notification) = &verified {
        let other_app = ExpectedIdentity {
            bundle_ids: vec!["fuzz.other.app".into()],
            ..ExpectedIdentity::default()
        };
        if notification.identity().bundle_id.as_deref() != Some("fuzz.other.app") {
            assert!(
                verifier()
                    .verify_notification(&token, &other_app, AT)
                    .is_err(),
                "a notification of another app passed the identity check"
            );
        }
    }
});
