//! StoreKit testing in Xcode: tokens signed with the one self-signed
//! certificate a StoreKit configuration holds (Xcode exports it: Editor >
//! Save Public Certificate), never with Apple's chain. Trusted only when
//! configured (`verification.xcode_certificate`) and only for the `Xcode`
//! and `LocalTesting` environments: a token this certificate signed that
//! claims Sandbox or Production is refused, whatever else it says.

use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
use x509_parser::pem::Pem;

use super::compact;
use super::error::{CertPosition, VerifyError};
use super::x509::{self, Curve, PublicKey};
use crate::model::{Environment, Timestamp};

/// The StoreKit test certificate, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XcodeCertificate {
    der: Vec<u8>,
    key: PublicKey,
    not_before: Timestamp,
    not_after: Timestamp,
}

impl XcodeCertificate {
    /// Reads the certificate Xcode exported: DER, or the first
    /// `CERTIFICATE` of a PEM file.
    pub fn parse_file(bytes: &[u8]) -> Result<Self, VerifyError> {
        let invalid = |why: &str| VerifyError::InvalidTrustAnchor(why.to_owned());
        let der = if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
            Pem::iter_from_buffer(bytes)
                .filter_map(Result::ok)
                .find(|pem| pem.label == "CERTIFICATE")
                .map(|pem| pem.contents)
                .ok_or_else(|| invalid("no CERTIFICATE in the PEM file"))?
        } else {
            bytes.to_vec()
        };
        let cert = x509::parse_certificate(&der, CertPosition::Root)
            .map_err(|_| invalid("not a DER X.509 certificate"))?;
        let key = x509::public_key(&cert, CertPosition::Root)
            .map_err(|_| invalid("its public key is neither EC P-256/P-384 nor RSA"))?;
        let (not_before, not_after) = x509::validity(&cert);
        Ok(XcodeCertificate {
            der: der.clone(),
            key,
            not_before,
            not_after,
        })
    }
}

/// Checks a compact JWS that Xcode signed: `x5c` starts with the
/// configured certificate itself, or with a P-256 certificate it signed;
/// the certificates are valid at `at`; the ES256 signature verifies.
/// Returns the payload bytes, authenticated.
pub fn verify_xcode(
    token: &str,
    certificate: &XcodeCertificate,
    at: Timestamp,
) -> Result<Vec<u8>, VerifyError> {
    let jws = compact::split(token)?;
    let x5c = compact::parse_header_chain(jws.header_b64)?;
    let first = x5c.first().ok_or(VerifyError::InvalidChainLength(0))?;
    let signer = compact::decode_certificate(first, CertPosition::Leaf)?;
    if at < certificate.not_before {
        return Err(VerifyError::CertificateNotYetValid(CertPosition::Root));
    }
    if at > certificate.not_after {
        return Err(VerifyError::CertificateExpired(CertPosition::Root));
    }
    let key = if signer == certificate.der {
        certificate.key.clone()
    } else {
        let leaf = x509::parse_certificate(&signer, CertPosition::Leaf)?;
        x509::verify_signed_by(&leaf, CertPosition::Leaf, &certificate.key)
            .map_err(|_| VerifyError::UntrustedChain)?;
        x509::check_validity(&leaf, CertPosition::Leaf, at)?;
        x509::public_key(&leaf, CertPosition::Leaf)?
    };
    let PublicKey::Ec {
        curve: Curve::P256,
        point,
    } = key
    else {
        return Err(VerifyError::UnsupportedPublicKey(CertPosition::Leaf));
    };
    let signature = jws.signature()?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
        .verify(jws.signing_input.as_bytes(), &signature)
        .map_err(|_| VerifyError::InvalidSignature)?;
    Ok(jws.into_payload())
}

/// Who vouched for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signer {
    /// A chain to a configured root (Apple Root CA - G3).
    Apple,
    /// The configured StoreKit test certificate.
    Xcode,
}

/// A token the StoreKit test certificate signed speaks for the local test
/// environments only.
pub fn xcode_only(signer: Signer, environment: Option<&Environment>) -> Result<(), VerifyError> {
    match (signer, environment) {
        (Signer::Apple, _)
        | (Signer::Xcode, Some(Environment::Xcode | Environment::LocalTesting)) => Ok(()),
        (Signer::Xcode, other) => Err(VerifyError::XcodeCertificateOutsideXcode(
            other.map_or_else(|| "none".to_owned(), |e| e.as_str().to_owned()),
        )),
    }
}
