//! Any bytes as the leaf, intermediate or root of a chain: certificate parsing
//! and path validation must answer, never panic, and never accept.
#![no_main]

use libfuzzer_sys::fuzz_target;

use appstore_ledger::jws::{verify_chain, TrustAnchor, TrustAnchors};
use appstore_ledger::model::Timestamp;

fuzz_target!(|data: &[u8]| {
    let anchors = TrustAnchors::apple_root_ca_g3().expect("embedded root");
    let at = Timestamp::from_millis(1_759_302_518_835);
    let third = data.len() / 3;
    let (a, rest) = data.split_at(third);
    let (b, c) = rest.split_at(third);
    assert!(verify_chain(&[a, b, c], &anchors, at).is_err());
    let _ = TrustAnchor::from_der(data);
    let _ = TrustAnchors::parse_file(data);
});
