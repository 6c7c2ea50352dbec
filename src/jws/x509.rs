//! The few things the chain check needs from a certificate, read with
//! x509-parser and checked with ring.

use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use x509_parser::asn1_rs::Any;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_X509_EXT_BASIC_CONSTRAINTS, OID_X509_EXT_KEY_USAGE,
};
use x509_parser::prelude::FromDer;

use super::error::{CertPosition, VerifyError};
use crate::model::Timestamp;

/// A subject public key in the form ring verifies with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PublicKey {
    /// An uncompressed point on P-256 or P-384.
    Ec { curve: Curve, point: Vec<u8> },
    /// A DER `RSAPublicKey`; only trust anchors may have one (Apple Root CA - G2
    /// and Apple Inc. Root are RSA).
    Rsa { der: Vec<u8> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Curve {
    P256,
    P384,
}

pub(crate) fn parse_certificate(
    der: &[u8],
    position: CertPosition,
) -> Result<X509Certificate<'_>, VerifyError> {
    let malformed = VerifyError::MalformedCertificate(position);
    let cert = match X509Certificate::from_der(der) {
        Ok(([], cert)) => cert,
        _ => return Err(malformed),
    };
    // DER has no empty INTEGER; x509-parser reads one as serial zero.
    if cert.raw_serial().is_empty() {
        return Err(malformed);
    }
    let (outer, inner) = signature_algorithm_encodings(der).ok_or(malformed.clone())?;
    // The outer and inner algorithm identifiers must be the same bytes (RFC
    // 5280 §4.1.1.2), or the signature could be read two ways.
    if outer != inner {
        return Err(malformed);
    }
    Ok(cert)
}

/// The certificate signature algorithms this verifier accepts, by their exact
/// DER AlgorithmIdentifier (as webpki does), so that a certificate it accepts
/// has only one encoding.
const SIGNATURE_ALGORITHMS: [(&[u8], SignatureHash); 5] = [
    // ecdsa-with-SHA256, ecdsa-with-SHA384 (parameters absent)
    (
        &[
            0x30, 0x0A, 0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02,
        ],
        SignatureHash::EcdsaSha256,
    ),
    (
        &[
            0x30, 0x0A, 0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x03,
        ],
        SignatureHash::EcdsaSha384,
    ),
    // sha256/384/512WithRSAEncryption (parameters NULL): an intermediate under
    // an RSA trust anchor (Apple Root CA - G2, Apple Inc. Root).
    (
        &[
            0x30, 0x0D, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0B, 0x05,
            0x00,
        ],
        SignatureHash::RsaSha256,
    ),
    (
        &[
            0x30, 0x0D, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0C, 0x05,
            0x00,
        ],
        SignatureHash::RsaSha384,
    ),
    (
        &[
            0x30, 0x0D, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0D, 0x05,
            0x00,
        ],
        SignatureHash::RsaSha512,
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SignatureHash {
    EcdsaSha256,
    EcdsaSha384,
    RsaSha256,
    RsaSha384,
    RsaSha512,
}

const SEQUENCE: u8 = 0x30;
const BIT_STRING: u8 = 0x03;
const VERSION: u8 = 0xA0;

/// The raw DER of a certificate's outer signatureAlgorithm and of the
/// signature field inside its TBSCertificate. The identifier octets of the
/// outer structure are checked exactly: a lenient parser would otherwise let
/// one certificate have many encodings.
fn signature_algorithm_encodings(der: &[u8]) -> Option<(&[u8], &[u8])> {
    fn next(input: &[u8], identifier: Option<u8>) -> Option<(Any<'_>, &[u8], &[u8])> {
        let (rest, any) = Any::from_der(input).ok()?;
        let raw = input.get(..input.len().checked_sub(rest.len())?)?;
        if identifier.is_some_and(|id| raw.first() != Some(&id)) {
            return None;
        }
        Some((any, raw, rest))
    }
    let (certificate, _, rest) = next(der, Some(SEQUENCE))?;
    if !rest.is_empty() {
        return None;
    }
    let (tbs, _, rest) = next(certificate.data, Some(SEQUENCE))?;
    let (_, outer, rest) = next(rest, Some(SEQUENCE))?;
    let (_, _, rest) = next(rest, Some(BIT_STRING))?;
    if !rest.is_empty() {
        return None;
    }
    let (_, first, mut rest) = next(tbs.data, None)?;
    if first.first() == Some(&VERSION) {
        (_, _, rest) = next(rest, None)?; // the serial number
    }
    let (_, inner, _) = next(rest, Some(SEQUENCE))?;
    Some((outer, inner))
}

pub(crate) fn public_key(
    cert: &X509Certificate<'_>,
    position: CertPosition,
) -> Result<PublicKey, VerifyError> {
    let spki = cert.public_key();
    let unsupported = VerifyError::UnsupportedPublicKey(position);
    let key_bits = &spki.subject_public_key;
    if key_bits.unused_bits != 0 {
        return Err(unsupported);
    }
    if spki.algorithm.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve_oid = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .ok_or(unsupported.clone())?;
        let curve = if curve_oid == OID_EC_P256 {
            Curve::P256
        } else if curve_oid == OID_NIST_EC_P384 {
            Curve::P384
        } else {
            return Err(unsupported);
        };
        Ok(PublicKey::Ec {
            curve,
            point: key_bits.data.to_vec(),
        })
    } else if spki.algorithm.algorithm == OID_PKCS1_RSAENCRYPTION {
        Ok(PublicKey::Rsa {
            der: key_bits.data.to_vec(),
        })
    } else {
        Err(unsupported)
    }
}

/// Checks that `issuer_key` signed `cert`, with the algorithm `cert` declares.
pub(crate) fn verify_signed_by(
    cert: &X509Certificate<'_>,
    position: CertPosition,
    issuer_key: &PublicKey,
) -> Result<(), VerifyError> {
    let unsupported = VerifyError::UnsupportedSignatureAlgorithm(position);
    let (declared, _) = signature_algorithm_encodings(cert.as_raw()).ok_or(unsupported.clone())?;
    let (_, hash) = SIGNATURE_ALGORITHMS
        .iter()
        .find(|(encoding, _)| *encoding == declared)
        .ok_or(unsupported.clone())?;
    let algorithm: &'static dyn VerificationAlgorithm = match (issuer_key, hash) {
        (
            PublicKey::Ec {
                curve: Curve::P256, ..
            },
            SignatureHash::EcdsaSha256,
        ) => &signature::ECDSA_P256_SHA256_ASN1,
        (
            PublicKey::Ec {
                curve: Curve::P256, ..
            },
            SignatureHash::EcdsaSha384,
        ) => &signature::ECDSA_P256_SHA384_ASN1,
        (
            PublicKey::Ec {
                curve: Curve::P384, ..
            },
            SignatureHash::EcdsaSha256,
        ) => &signature::ECDSA_P384_SHA256_ASN1,
        (
            PublicKey::Ec {
                curve: Curve::P384, ..
            },
            SignatureHash::EcdsaSha384,
        ) => &signature::ECDSA_P384_SHA384_ASN1,
        (PublicKey::Rsa { .. }, SignatureHash::RsaSha256) => &signature::RSA_PKCS1_2048_8192_SHA256,
        (PublicKey::Rsa { .. }, SignatureHash::RsaSha384) => &signature::RSA_PKCS1_2048_8192_SHA384,
        (PublicKey::Rsa { .. }, SignatureHash::RsaSha512) => &signature::RSA_PKCS1_2048_8192_SHA512,
        // A key of one kind cannot have made a signature of the other.
        _ => return Err(VerifyError::InvalidCertificateSignature(position)),
    };
    let key_bytes = match issuer_key {
        PublicKey::Ec { point, .. } => point.as_slice(),
        PublicKey::Rsa { der } => der.as_slice(),
    };
    if cert.signature_value.unused_bits != 0 {
        return Err(VerifyError::InvalidCertificateSignature(position));
    }
    UnparsedPublicKey::new(algorithm, key_bytes)
        .verify(cert.tbs_certificate.as_ref(), &cert.signature_value.data)
        .map_err(|_| VerifyError::InvalidCertificateSignature(position))
}

/// The validity period in milliseconds, as the rest of the crate counts time.
pub(crate) fn validity(cert: &X509Certificate<'_>) -> (Timestamp, Timestamp) {
    let v = cert.validity();
    (
        Timestamp::from_unix_seconds(v.not_before.timestamp()),
        Timestamp::from_unix_seconds(v.not_after.timestamp()),
    )
}

pub(crate) fn check_validity(
    cert: &X509Certificate<'_>,
    position: CertPosition,
    at: Timestamp,
) -> Result<(), VerifyError> {
    let (not_before, not_after) = validity(cert);
    if at < not_before {
        Err(VerifyError::CertificateNotYetValid(position))
    } else if at > not_after {
        Err(VerifyError::CertificateExpired(position))
    } else {
        Ok(())
    }
}

/// What a certificate's basicConstraints say, after rejecting malformed,
/// duplicated or unknown critical extensions (RFC 5280 §4.2: a verifier must
/// reject a certificate with a critical extension it does not process).
pub(crate) struct Constraints {
    pub is_ca: bool,
    pub path_len: Option<u32>,
    pub key_usage: Option<KeyUsage>,
}

pub(crate) struct KeyUsage {
    pub digital_signature: bool,
    pub key_cert_sign: bool,
}

pub(crate) fn constraints(
    cert: &X509Certificate<'_>,
    position: CertPosition,
) -> Result<Constraints, VerifyError> {
    let malformed = VerifyError::MalformedCertificate(position);
    // extensions_map fails on duplicates, which RFC 5280 forbids.
    cert.extensions_map().map_err(|_| malformed.clone())?;
    let understood_when_critical = [OID_X509_EXT_BASIC_CONSTRAINTS, OID_X509_EXT_KEY_USAGE];
    let mut result = Constraints {
        is_ca: false,
        path_len: None,
        key_usage: None,
    };
    for ext in cert.extensions() {
        if ext.critical && !understood_when_critical.contains(&ext.oid) {
            return Err(VerifyError::UnsupportedCriticalExtension(position));
        }
        match ext.parsed_extension() {
            ParsedExtension::ParseError { .. } => return Err(malformed),
            ParsedExtension::BasicConstraints(bc) => {
                result.is_ca = bc.ca;
                result.path_len = bc.path_len_constraint;
            }
            ParsedExtension::KeyUsage(ku) => {
                result.key_usage = Some(KeyUsage {
                    digital_signature: ku.digital_signature(),
                    key_cert_sign: ku.key_cert_sign(),
                });
            }
            _ => {}
        }
    }
    Ok(result)
}

/// True when `cert` has the extension whose OID has this DER content.
pub(crate) fn has_extension(cert: &X509Certificate<'_>, oid_der: &[u8]) -> bool {
    cert.extensions()
        .iter()
        .any(|ext| ext.oid.as_bytes() == oid_der)
}
