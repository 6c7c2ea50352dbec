//! Every way a token's chain or signature can be wrong, each asserting the
//! exact error, on chains generated here in Apple's shape.

use crate::common;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rcgen::{KeyUsagePurpose, PKCS_ECDSA_P384_SHA384};
use serde_json::json;

use appstore_ledger::jws::{
    verify_chain, verify_compact, CertPosition, ChainCache, TrustAnchor, TrustAnchors, VerifyError,
};
use appstore_ledger::model::Timestamp;
use common::pki::{date, millis, ChainSpec, TestPki, AT};

fn payload() -> serde_json::Value {
    json!({"transactionId": "1", "bundleId": "com.example.app", "environment": "Sandbox", "signedDate": 1})
}

fn verify(pki: &TestPki, token: &str) -> Result<Vec<u8>, VerifyError> {
    verify_compact(token, &pki.anchors(), AT, None)
}

/// The error for `pki`'s chain with this leaf in place of its own.
fn with_leaf(pki: &TestPki, leaf: &[u8]) -> VerifyError {
    verify_chain(
        &[leaf, &pki.intermediate_der, &pki.root_der],
        &pki.anchors(),
        AT,
    )
    .unwrap_err()
}

fn rejected(spec: ChainSpec) -> VerifyError {
    let pki = TestPki::build(spec);
    verify(&pki, &pki.sign(&payload())).unwrap_err()
}

#[test]
fn a_chain_shaped_like_apples_verifies() {
    let pki = TestPki::new();
    let token = pki.sign(&payload());
    let bytes = verify(&pki, &token).unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(),
        payload()
    );
}

#[test]
fn the_chain_must_lead_to_a_configured_root() {
    let pki = TestPki::new();
    let other = TestPki::new();
    let token = pki.sign(&payload());
    assert_eq!(
        verify_compact(&token, &other.anchors(), AT, None).unwrap_err(),
        VerifyError::UntrustedChain
    );
}

#[test]
fn the_root_in_x5c_is_never_trusted_by_itself() {
    // An attacker's chain that carries the trusted root's bytes in x5c[2] and
    // an intermediate under a root of the same name.
    let trusted = TestPki::new();
    let attacker = TestPki::new();
    let [leaf, intermediate, _] = attacker.x5c();
    let header = format!(
        r#"{{"alg":"ES256","x5c":["{leaf}","{intermediate}","{}"]}}"#,
        STANDARD.encode(&trusted.root_der)
    );
    let token = attacker.sign_raw(&header, payload().to_string().as_bytes());
    assert_eq!(
        verify(&trusted, &token).unwrap_err(),
        VerifyError::UntrustedChain
    );
}

#[test]
fn the_leaf_must_be_signed_by_the_intermediate() {
    // Same names throughout, different keys: the leaf's signature fails.
    let pki = TestPki::new();
    let other = TestPki::new();
    let [leaf, _, root] = other.x5c();
    let [_, intermediate, _] = pki.x5c();
    let header = format!(r#"{{"alg":"ES256","x5c":["{leaf}","{intermediate}","{root}"]}}"#);
    let token = other.sign_raw(&header, b"{}");
    assert_eq!(
        verify(&pki, &token).unwrap_err(),
        VerifyError::InvalidCertificateSignature(CertPosition::Leaf)
    );
}

#[test]
fn the_leaf_must_name_the_intermediate_as_issuer() {
    let error = rejected(ChainSpec {
        leaf_issuer_name: Some("Somebody Else"),
        ..ChainSpec::default()
    });
    assert_eq!(error, VerifyError::UntrustedChain);
}

#[test]
fn validity_periods_are_checked_at_the_given_time() {
    let error = rejected(ChainSpec {
        leaf_validity: (date(2020), date(2025)),
        ..ChainSpec::default()
    });
    assert_eq!(error, VerifyError::CertificateExpired(CertPosition::Leaf));

    let error = rejected(ChainSpec {
        leaf_validity: (date(2026), date(2027)),
        ..ChainSpec::default()
    });
    assert_eq!(
        error,
        VerifyError::CertificateNotYetValid(CertPosition::Leaf)
    );

    let error = rejected(ChainSpec {
        intermediate_validity: (date(2015), date(2025)),
        ..ChainSpec::default()
    });
    assert_eq!(
        error,
        VerifyError::CertificateExpired(CertPosition::Intermediate)
    );

    let pki = TestPki::new();
    let token = pki.sign(&payload());
    assert!(verify_compact(&token, &pki.anchors(), millis(date(2024)), None).is_ok());
    assert_eq!(
        verify_compact(&token, &pki.anchors(), millis(date(2023)), None).unwrap_err(),
        VerifyError::CertificateNotYetValid(CertPosition::Leaf)
    );
    assert_eq!(
        verify_compact(
            &token,
            &pki.anchors(),
            millis(date(2027)).plus_millis(1),
            None
        )
        .unwrap_err(),
        VerifyError::CertificateExpired(CertPosition::Leaf)
    );
    // The trusted root expires in 2039 and the intermediate in 2036.
    assert_eq!(
        verify_compact(&token, &pki.anchors(), millis(date(2040)), None).unwrap_err(),
        VerifyError::CertificateExpired(CertPosition::Leaf)
    );
}

/// Leaf and intermediate valid for long, so that only the certificate under
/// test is out of its validity period at `AT` (2025-06-01).
fn only(spec: ChainSpec) -> ChainSpec {
    ChainSpec {
        leaf_validity: (date(2015), date(2038)),
        ..spec
    }
}

#[test]
fn the_intermediate_and_root_validity_periods_are_checked() {
    let error = rejected(only(ChainSpec {
        intermediate_validity: (date(2026), date(2036)),
        ..ChainSpec::default()
    }));
    assert_eq!(
        error,
        VerifyError::CertificateNotYetValid(CertPosition::Intermediate)
    );
    let error = rejected(only(ChainSpec {
        intermediate_validity: (date(2015), date(2025)),
        ..ChainSpec::default()
    }));
    assert_eq!(
        error,
        VerifyError::CertificateExpired(CertPosition::Intermediate)
    );
    let error = rejected(only(ChainSpec {
        root_validity: (date(2026), date(2039)),
        ..ChainSpec::default()
    }));
    assert_eq!(
        error,
        VerifyError::CertificateNotYetValid(CertPosition::Root)
    );
    let error = rejected(only(ChainSpec {
        root_validity: (date(2010), date(2025)),
        ..ChainSpec::default()
    }));
    assert_eq!(error, VerifyError::CertificateExpired(CertPosition::Root));

    // The same chain on either side of the root's last moment.
    let pki = TestPki::build(only(ChainSpec {
        root_validity: (date(2010), date(2025)),
        intermediate_validity: (date(2011), date(2036)),
        ..ChainSpec::default()
    }));
    let token = pki.sign(&payload());
    let end = millis(date(2025));
    assert!(verify_compact(&token, &pki.anchors(), end, None).is_ok());
    assert_eq!(
        verify_compact(&token, &pki.anchors(), end.plus_millis(1), None).unwrap_err(),
        VerifyError::CertificateExpired(CertPosition::Root)
    );
    // And on either side of the intermediate's first moment.
    let pki = TestPki::build(only(ChainSpec {
        intermediate_validity: (date(2024), date(2036)),
        ..ChainSpec::default()
    }));
    let token = pki.sign(&payload());
    let start = millis(date(2024));
    assert!(verify_compact(&token, &pki.anchors(), start, None).is_ok());
    assert_eq!(
        verify_compact(&token, &pki.anchors(), start.plus_millis(-1), None).unwrap_err(),
        VerifyError::CertificateNotYetValid(CertPosition::Intermediate)
    );
}

trait PlusMillis {
    fn plus_millis(self, n: i64) -> Timestamp;
}
impl PlusMillis for Timestamp {
    fn plus_millis(self, n: i64) -> Timestamp {
        Timestamp::from_millis(self.as_millis() + n)
    }
}

#[test]
fn the_intermediate_must_be_a_ca() {
    let error = rejected(ChainSpec {
        intermediate_is_ca: false,
        ..ChainSpec::default()
    });
    assert_eq!(error, VerifyError::IntermediateNotCa);
}

#[test]
fn the_leaf_must_not_be_a_ca() {
    let error = rejected(ChainSpec {
        leaf_is_ca: true,
        ..ChainSpec::default()
    });
    assert_eq!(error, VerifyError::LeafIsCa);
}

#[test]
fn key_usage_must_allow_the_use() {
    let error = rejected(ChainSpec {
        intermediate_key_usage: vec![KeyUsagePurpose::DigitalSignature],
        ..ChainSpec::default()
    });
    assert_eq!(
        error,
        VerifyError::InvalidKeyUsage(CertPosition::Intermediate)
    );

    let error = rejected(ChainSpec {
        leaf_key_usage: vec![KeyUsagePurpose::KeyEncipherment],
        ..ChainSpec::default()
    });
    assert_eq!(error, VerifyError::InvalidKeyUsage(CertPosition::Leaf));
}

#[test]
fn apple_marker_extensions_are_required() {
    let error = rejected(ChainSpec {
        leaf_marker: false,
        ..ChainSpec::default()
    });
    assert_eq!(error, VerifyError::MissingAppleMarker(CertPosition::Leaf));

    let error = rejected(ChainSpec {
        intermediate_marker: false,
        ..ChainSpec::default()
    });
    assert_eq!(
        error,
        VerifyError::MissingAppleMarker(CertPosition::Intermediate)
    );
}

#[test]
fn unknown_critical_extensions_are_rejected() {
    let error = rejected(ChainSpec {
        leaf_unknown_critical_extension: true,
        ..ChainSpec::default()
    });
    assert_eq!(
        error,
        VerifyError::UnsupportedCriticalExtension(CertPosition::Leaf)
    );
}

#[test]
fn a_root_with_path_length_zero_cannot_issue_an_intermediate_ca() {
    let error = rejected(ChainSpec {
        root_path_len: Some(0),
        ..ChainSpec::default()
    });
    assert_eq!(error, VerifyError::PathLengthExceeded);
}

#[test]
fn the_leaf_key_must_be_p256() {
    let pki = TestPki::build(ChainSpec {
        leaf_algorithm: &PKCS_ECDSA_P384_SHA384,
        ..ChainSpec::default()
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(pki.header()),
        URL_SAFE_NO_PAD.encode(b"{}")
    );
    let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode([1u8; 64]));
    assert_eq!(
        verify(&pki, &token).unwrap_err(),
        VerifyError::UnsupportedPublicKey(CertPosition::Leaf)
    );
}

/// The DER of ecdsa-with-SHA384 and of ecdsa-with-SHA512, same length.
const ECDSA_SHA384: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x03];
const ECDSA_SHA512: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x04];

fn replace_all(der: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = der.to_vec();
    let mut i = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
            i += from.len();
        } else {
            i += 1;
        }
    }
    out
}

fn replace_last(der: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = der.to_vec();
    let at = (0..=out.len() - from.len())
        .rev()
        .find(|&i| &out[i..i + from.len()] == from)
        .unwrap();
    out[at..at + from.len()].copy_from_slice(to);
    out
}

#[test]
fn certificate_signature_algorithms_other_than_ecdsa_sha256_384_are_rejected() {
    let pki = TestPki::new();
    let leaf = replace_all(&pki.leaf_der, ECDSA_SHA384, ECDSA_SHA512);
    assert_eq!(
        with_leaf(&pki, &leaf),
        VerifyError::UnsupportedSignatureAlgorithm(CertPosition::Leaf)
    );
}

#[test]
fn the_inner_and_outer_signature_algorithms_must_agree() {
    let pki = TestPki::new();
    let leaf = replace_last(&pki.leaf_der, ECDSA_SHA384, ECDSA_SHA512);
    assert_eq!(
        with_leaf(&pki, &leaf),
        VerifyError::MalformedCertificate(CertPosition::Leaf)
    );
}

#[test]
fn a_tampered_certificate_fails_its_signature() {
    let pki = TestPki::new();
    // Flip a bit of the leaf's public key (inside the signed TBS).
    let mut leaf = pki.leaf_der.clone();
    let spki_at = leaf.windows(2).rposition(|w| w == [0x03, 0x42]).unwrap();
    leaf[spki_at + 10] ^= 1;
    assert_eq!(
        with_leaf(&pki, &leaf),
        VerifyError::InvalidCertificateSignature(CertPosition::Leaf)
    );
}

#[test]
fn malformed_certificates_are_rejected_with_their_position() {
    let pki = TestPki::new();
    let anchors = pki.anchors();
    let garbage = b"not a certificate".as_slice();
    let mut trailing = pki.leaf_der.clone();
    trailing.push(0);
    for (chain, position) in [
        (
            [garbage, &pki.intermediate_der, &pki.root_der],
            CertPosition::Leaf,
        ),
        (
            [&trailing[..], &pki.intermediate_der, &pki.root_der],
            CertPosition::Leaf,
        ),
        (
            [&pki.leaf_der[..], garbage, &pki.root_der],
            CertPosition::Intermediate,
        ),
        (
            [&pki.leaf_der[..], &pki.intermediate_der, garbage],
            CertPosition::Root,
        ),
    ] {
        assert_eq!(
            verify_chain(&chain, &anchors, AT).unwrap_err(),
            VerifyError::MalformedCertificate(position)
        );
    }
    // x5c entries that are not standard base64 (as in tokens published with
    // placeholder chains).
    let [_, intermediate, root] = pki.x5c();
    let header = format!(r#"{{"alg":"ES256","x5c":["example31","{intermediate}","{root}"]}}"#);
    let token = pki.sign_raw(&header, b"{}");
    assert_eq!(
        verify(&pki, &token).unwrap_err(),
        VerifyError::MalformedCertificate(CertPosition::Leaf)
    );
    let header = format!(r#"{{"alg":"ES256","x5c":["example1","{intermediate}",7]}}"#);
    let token = pki.sign_raw(&header, b"{}");
    assert_eq!(
        verify(&pki, &token).unwrap_err(),
        VerifyError::MalformedCertificate(CertPosition::Root)
    );
}

/// DER has no empty INTEGER: a serial of zero length is not a certificate.
#[test]
fn a_zero_length_serial_number_is_malformed() {
    let serial = [0x5A; 16];
    let pki = TestPki::build(ChainSpec {
        leaf_serial: Some(serial.to_vec()),
        ..ChainSpec::default()
    });
    let encoded = [&[0x02, 16][..], &serial].concat();
    let mut leaf = pki.leaf_der.clone();
    let at = leaf
        .windows(encoded.len())
        .position(|w| w == encoded)
        .unwrap();
    leaf.splice(at..at + encoded.len(), [0x02, 0x00]);
    // The Certificate and TBSCertificate SEQUENCEs (two length octets each)
    // are 16 octets shorter.
    for sequence in [0, 4] {
        assert_eq!(leaf[sequence..sequence + 2], [0x30, 0x82]);
        let length = u16::from_be_bytes([leaf[sequence + 2], leaf[sequence + 3]]) - 16;
        leaf[sequence + 2..sequence + 4].copy_from_slice(&length.to_be_bytes());
    }
    assert_eq!(
        with_leaf(&pki, &leaf),
        VerifyError::MalformedCertificate(CertPosition::Leaf)
    );
}

#[test]
fn chain_length_must_be_three() {
    let pki = TestPki::new();
    let [leaf, intermediate, root] = pki.x5c();
    for (x5c, n) in [
        (format!(r#"["{leaf}","{intermediate}"]"#), 2),
        (
            format!(r#"["{leaf}","{intermediate}","{root}","{root}"]"#),
            4,
        ),
    ] {
        let token = pki.sign_raw(&format!(r#"{{"alg":"ES256","x5c":{x5c}}}"#), b"{}");
        assert_eq!(
            verify(&pki, &token).unwrap_err(),
            VerifyError::InvalidChainLength(n)
        );
    }
    assert_eq!(
        verify_chain(&[&pki.leaf_der, &pki.intermediate_der], &pki.anchors(), AT).unwrap_err(),
        VerifyError::InvalidChainLength(2)
    );
}

#[test]
fn the_algorithm_must_be_es256() {
    let pki = TestPki::new();
    let [leaf, intermediate, root] = pki.x5c();
    for alg in ["none", "HS256", "ES384", "RS256", "EdDSA"] {
        let header = format!(r#"{{"alg":"{alg}","x5c":["{leaf}","{intermediate}","{root}"]}}"#);
        let token = pki.sign_raw(&header, b"{}");
        assert_eq!(
            verify(&pki, &token).unwrap_err(),
            VerifyError::InvalidAlgorithm(alg.into())
        );
    }
}

#[test]
fn the_signature_must_match_header_and_payload() {
    let pki = TestPki::new();
    let token = pki.sign(&payload());
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let (header, _) = signing_input.split_once('.').unwrap();

    let forged_payload = URL_SAFE_NO_PAD.encode(br#"{"transactionId":"2"}"#);
    let forged = format!("{header}.{forged_payload}.{signature}");
    assert_eq!(
        verify(&pki, &forged).unwrap_err(),
        VerifyError::InvalidSignature
    );

    let other = TestPki::new();
    let signed_by_other_key = format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(other.es256(signing_input.as_bytes()))
    );
    assert_eq!(
        verify(&pki, &signed_by_other_key).unwrap_err(),
        VerifyError::InvalidSignature
    );
}

#[test]
fn a_der_encoded_signature_is_rejected() {
    let pki = TestPki::new();
    let token = pki.sign(&payload());
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let raw = URL_SAFE_NO_PAD.decode(signature).unwrap();
    let der = der_signature(&raw[..32], &raw[32..]);
    let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(der));
    assert_eq!(
        verify(&pki, &token).unwrap_err(),
        VerifyError::InvalidSignature
    );
}

fn der_signature(r: &[u8], s: &[u8]) -> Vec<u8> {
    let integer = |v: &[u8]| {
        let mut out = vec![0x02];
        let pad = v[0] & 0x80 != 0;
        out.push((v.len() + usize::from(pad)) as u8);
        if pad {
            out.push(0);
        }
        out.extend_from_slice(v);
        out
    };
    let body = [integer(r), integer(s)].concat();
    [vec![0x30, body.len() as u8], body].concat()
}

#[test]
fn several_roots_can_be_trusted_at_once() {
    let a = TestPki::new();
    let b = TestPki::new();
    let anchors = TrustAnchors::new(vec![
        TrustAnchor::from_der(&a.root_der).unwrap(),
        TrustAnchor::from_der(&b.root_der).unwrap(),
    ])
    .unwrap();
    for pki in [&a, &b] {
        assert!(verify_compact(&pki.sign(&payload()), &anchors, AT, None).is_ok());
    }
}

#[test]
fn the_cache_changes_no_answer() {
    let pki = TestPki::new();
    let anchors = pki.anchors();
    let cache = ChainCache::new(8);
    let token = pki.sign(&payload());
    assert!(verify_compact(&token, &anchors, AT, Some(&cache)).is_ok());
    assert_eq!(cache.len(), 1);
    // Warm cache, but outside the chain's validity: still rejected, exactly.
    assert_eq!(
        verify_compact(&token, &anchors, millis(date(2028)), Some(&cache)).unwrap_err(),
        VerifyError::CertificateExpired(CertPosition::Leaf)
    );
    // Warm cache: the signature is still checked for every token.
    let (signing_input, _) = token.rsplit_once('.').unwrap();
    let bad = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode([0u8; 64]));
    assert_eq!(
        verify_compact(&bad, &anchors, AT, Some(&cache)).unwrap_err(),
        VerifyError::InvalidSignature
    );
    // A failed chain is never cached.
    let other = TestPki::new();
    assert!(verify_compact(&other.sign(&payload()), &anchors, AT, Some(&cache)).is_err());
    assert_eq!(cache.len(), 1);
}
