//! Properties: no input makes the verifier panic or accept what it should not.

use crate::common;

use proptest::prelude::*;

use appstore_ledger::jws::{
    unverified_kind, unverified_signed_date, verify_chain, ExpectedIdentity, Verifier,
};
use common::payloads::{subscribed, transaction};
use common::pki::{TestPki, AT};

fn fixture() -> &'static (TestPki, String, String) {
    static FIXTURE: std::sync::OnceLock<(TestPki, String, String)> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(|| {
        let pki = TestPki::new();
        let notification = subscribed(&pki, "Sandbox");
        let tx = pki.sign(&transaction("Sandbox"));
        (pki, notification, tx)
    })
}

fn verifier() -> &'static Verifier {
    static VERIFIER: std::sync::OnceLock<Verifier> = std::sync::OnceLock::new();
    VERIFIER.get_or_init(|| Verifier::new(fixture().0.anchors()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic_and_never_verify(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let text = String::from_utf8_lossy(&bytes);
        prop_assert!(verifier().verify(&text, None, &ExpectedIdentity::any(), AT).is_err());
        let _ = unverified_kind(&text);
        let _ = unverified_signed_date(&text);
        let pki = &fixture().0;
        prop_assert!(verify_chain(&[&bytes, &pki.intermediate_der, &pki.root_der], &pki.anchors(), AT).is_err());
    }

    #[test]
    fn random_dotted_base64_never_panics(parts in proptest::collection::vec("[A-Za-z0-9_=+/-]{0,200}", 0..6)) {
        let token = parts.join(".");
        prop_assert!(verifier().verify(&token, None, &ExpectedIdentity::any(), AT).is_err());
    }

    #[test]
    fn any_single_character_change_is_rejected(index in any::<prop::sample::Index>(), replacement in "[A-Za-z0-9_.-]") {
        let (_, notification, tx) = fixture();
        for token in [notification, tx] {
            let at = index.index(token.len());
            let mut changed = token.clone();
            changed.replace_range(at..at + 1, &replacement);
            if changed != *token {
                prop_assert!(verifier().verify(&changed, None, &ExpectedIdentity::any(), AT).is_err(), "accepted a change at {}", at);
            }
        }
    }

    #[test]
    fn truncation_is_rejected(cut in 0usize..20_000) {
        let (_, notification, _) = fixture();
        let cut = cut.min(notification.len() - 1);
        prop_assert!(verifier().verify(&notification[..cut], None, &ExpectedIdentity::any(), AT).is_err());
    }

    #[test]
    fn random_der_mutations_of_the_leaf_never_panic(index in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let pki = &fixture().0;
        let mut leaf = pki.leaf_der.clone();
        let at = index.index(leaf.len());
        let original = leaf[at];
        leaf[at] = byte;
        let outcome = verify_chain(&[&leaf, &pki.intermediate_der, &pki.root_der], &pki.anchors(), AT);
        if byte != original {
            // Bytes inside the TBS break the intermediate's signature; bytes
            // outside it break the strict parse: a certificate has one encoding.
            prop_assert!(outcome.is_err());
        }
    }
}

#[test]
fn the_unchanged_fixtures_verify() {
    let (_, notification, tx) = fixture();
    assert!(verifier()
        .verify(notification, None, &ExpectedIdentity::any(), AT)
        .is_ok());
    assert!(verifier()
        .verify(tx, None, &ExpectedIdentity::any(), AT)
        .is_ok());
}

/// Every bit of the leaf certificate matters: inside the TBS it breaks the
/// intermediate's signature; outside it, the strict parse (a lenient parser
/// once accepted a changed tag class, giving one certificate two encodings).
#[test]
fn flipping_any_bit_of_the_leaf_certificate_is_rejected() {
    let pki = &fixture().0;
    let anchors = pki.anchors();
    for at in 0..pki.leaf_der.len() {
        for bit in 0..8 {
            let mut leaf = pki.leaf_der.clone();
            leaf[at] ^= 1 << bit;
            assert!(
                verify_chain(&[&leaf, &pki.intermediate_der, &pki.root_der], &anchors, AT).is_err(),
                "accepted a flip of bit {bit} at byte {at}"
            );
        }
    }
}
