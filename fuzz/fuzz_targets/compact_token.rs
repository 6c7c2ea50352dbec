//! Any bytes as a whole token: the compact-form parser, the header and the
//! x5c decoding must answer and never panic. Nothing a fuzzer makes carries a
//! valid signature, so nothing may verify; `verify_token` is the target that
//! reaches past the signature.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

use appstore_ledger::jws::{unverified_kind, unverified_signed_date, ExpectedIdentity, Verifier};
use appstore_ledger_fuzz::{test_pki, AT};

fn verifier() -> &'static Verifier {
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    VERIFIER.get_or_init(|| Verifier::new(test_pki().anchors()))
}

fuzz_target!(|data: &[u8]| {
    let token = String::from_utf8_lossy(data);
    let _ = unverified_kind(&token);
    let _ = unverified_signed_date(&token);
    assert!(verifier()
        .verify(&token, None, &ExpectedIdentity::any(), AT)
        .is_err());
});
