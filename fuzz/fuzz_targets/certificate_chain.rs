//! Certificates and chains. The first byte chooses how the rest is read:
//! - even: any bytes as the leaf, intermediate and root, length-prefixed (see
//!   `split_prefixed`) so that each can be a whole certificate. Parsing and
//!   path validation must answer and never panic.
//! - odd: the test PKI's genuine chain with bytes of one certificate changed
//!   (position, offset, then bytes XORed in). It must still verify only if
//!   neither the leaf nor the intermediate changed: the root in x5c is never
//!   what is trusted, and every other byte is signed or must be exact DER.
#![no_main]

use libfuzzer_sys::fuzz_target;

use appstore_ledger::jws::{verify_chain, TrustAnchor, TrustAnchors};
use appstore_ledger_fuzz::{split_prefixed, test_pki, AT};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let pki = test_pki();
    let anchors = pki.anchors();
    if mode % 2 == 0 {
        let parts = split_prefixed(rest, 3);
        if let &[leaf, intermediate, root] = parts.as_slice() {
            let _ = verify_chain(&[leaf, intermediate, root], &anchors, AT);
            // Apple's root accepts nothing a fuzzer can make.
            let apple = TrustAnchors::apple_root_ca_g3().expect("embedded root");
            assert!(verify_chain(&[leaf, intermediate, root], &apple, AT).is_err());
        }
        let _ = TrustAnchor::from_der(rest);
        let _ = TrustAnchors::parse_file(rest);
        return;
    }
    let Some((&[position, hi, lo], xor)) = rest.split_first_chunk::<3>() else {
        return;
    };
    let mut chain = [
        pki.leaf_der.clone(),
        pki.intermediate_der.clone(),
        pki.root_der.clone(),
    ];
    let Some(cert) = chain.get_mut(usize::from(position % 3)) else {
        return;
    };
    let offset = usize::from(u16::from_be_bytes([hi, lo])) % cert.len().max(1);
    for (byte, x) in cert.iter_mut().skip(offset).zip(xor) {
        *byte ^= x;
    }
    let [leaf, intermediate, root] = &chain;
    if verify_chain(&[leaf, intermediate, root], &anchors, AT).is_ok() {
        assert_eq!(leaf, &pki.leaf_der, "a changed leaf verified");
        assert_eq!(
            intermediate, &pki.intermediate_der,
            "a changed intermediate verified"
        );
    }
});
