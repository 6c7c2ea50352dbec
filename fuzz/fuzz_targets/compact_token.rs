//! Any bytes as a token: the decoder and verifier must answer, never panic,
//! and never accept (no fuzzer input is signed by Apple).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

use appstore_ledger::jws::{unverified_kind, unverified_signed_date, ExpectedIdentity, TrustAnchors, Verifier};
use appstore_ledger::model::Timestamp;

fn verifier() -> &'static Verifier {
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    VERIFIER.get_or_init(|| Verifier::new(TrustAnchors::apple_root_ca_g3().expect("embedded root")))
}

fuzz_target!(|data: &[u8]| {
    let token = String::from_utf8_lossy(data);
    let at = Timestamp::from_millis(1_759_302_518_835);
    let _ = unverified_kind(&token);
    let _ = unverified_signed_date(&token);
    assert!(verifier().verify(&token, None, &ExpectedIdentity::any(), at).is_err());
});
