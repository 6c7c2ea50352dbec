//! Path validation of an `x5c` chain: leaf <- intermediate <- configured root.

use super::error::{CertPosition, VerifyError};
use super::trust::{TrustAnchor, TrustAnchors};
use super::x509::{self, Curve, PublicKey};
use crate::model::Timestamp;

/// 1.2.840.113635.100.6.11.1, which Apple puts in the certificates that sign
/// App Store data (DER content octets of the OID).
pub const APPLE_LEAF_MARKER_OID: &[u8] =
    &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x63, 0x64, 0x06, 0x0B, 0x01];
/// 1.2.840.113635.100.6.2.1, Apple's marker for its WWDR intermediate CAs.
pub const APPLE_INTERMEDIATE_MARKER_OID: &[u8] =
    &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x63, 0x64, 0x06, 0x02, 0x01];

/// A chain that led to a trusted root at some moment, and the period during
/// which that stays true (the overlap of the three validity periods).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedChain {
    /// The leaf's P-256 public key, an uncompressed point.
    pub(crate) leaf_key: Vec<u8>,
    pub(crate) valid_from: Timestamp,
    pub(crate) valid_until: Timestamp,
}

impl ValidatedChain {
    pub fn is_valid_at(&self, at: Timestamp) -> bool {
        self.valid_from <= at && at <= self.valid_until
    }
}

/// Validates `x5c` (DER, leaf first) against `anchors` at time `at`.
///
/// `x5c[2]` must be a certificate but is otherwise ignored: the intermediate
/// must be signed by one of `anchors`, whatever the token claims its root is.
pub fn verify_chain(
    x5c: &[&[u8]],
    anchors: &TrustAnchors,
    at: Timestamp,
) -> Result<ValidatedChain, VerifyError> {
    let &[leaf_der, intermediate_der, root_der] = x5c else {
        return Err(VerifyError::InvalidChainLength(x5c.len()));
    };
    let leaf = x509::parse_certificate(leaf_der, CertPosition::Leaf)?;
    let intermediate = x509::parse_certificate(intermediate_der, CertPosition::Intermediate)?;
    x509::parse_certificate(root_der, CertPosition::Root)?;

    x509::check_validity(&leaf, CertPosition::Leaf, at)?;
    x509::check_validity(&intermediate, CertPosition::Intermediate, at)?;

    let leaf_constraints = x509::constraints(&leaf, CertPosition::Leaf)?;
    if leaf_constraints.is_ca {
        return Err(VerifyError::LeafIsCa);
    }
    if leaf_constraints
        .key_usage
        .is_some_and(|usage| !usage.digital_signature)
    {
        return Err(VerifyError::InvalidKeyUsage(CertPosition::Leaf));
    }
    let intermediate_constraints = x509::constraints(&intermediate, CertPosition::Intermediate)?;
    if !intermediate_constraints.is_ca {
        return Err(VerifyError::IntermediateNotCa);
    }
    if intermediate_constraints
        .key_usage
        .is_some_and(|usage| !usage.key_cert_sign)
    {
        return Err(VerifyError::InvalidKeyUsage(CertPosition::Intermediate));
    }
    if !x509::has_extension(&leaf, APPLE_LEAF_MARKER_OID) {
        return Err(VerifyError::MissingAppleMarker(CertPosition::Leaf));
    }
    if !x509::has_extension(&intermediate, APPLE_INTERMEDIATE_MARKER_OID) {
        return Err(VerifyError::MissingAppleMarker(CertPosition::Intermediate));
    }

    let leaf_key = match x509::public_key(&leaf, CertPosition::Leaf)? {
        PublicKey::Ec {
            curve: Curve::P256,
            point,
        } => point,
        _ => return Err(VerifyError::UnsupportedPublicKey(CertPosition::Leaf)),
    };
    let intermediate_key = match x509::public_key(&intermediate, CertPosition::Intermediate)? {
        key @ PublicKey::Ec { .. } => key,
        PublicKey::Rsa { .. } => {
            return Err(VerifyError::UnsupportedPublicKey(
                CertPosition::Intermediate,
            ))
        }
    };

    if leaf.issuer().as_raw() != intermediate.subject().as_raw() {
        return Err(VerifyError::UntrustedChain);
    }
    x509::verify_signed_by(&leaf, CertPosition::Leaf, &intermediate_key)?;
    let anchor = find_issuing_anchor(&intermediate, anchors)?;

    if at < anchor.not_before {
        return Err(VerifyError::CertificateNotYetValid(CertPosition::Root));
    }
    if at > anchor.not_after {
        return Err(VerifyError::CertificateExpired(CertPosition::Root));
    }
    if anchor.path_len == Some(0) {
        return Err(VerifyError::PathLengthExceeded);
    }

    let (leaf_from, leaf_until) = x509::validity(&leaf);
    let (intermediate_from, intermediate_until) = x509::validity(&intermediate);
    Ok(ValidatedChain {
        leaf_key,
        valid_from: leaf_from.max(intermediate_from).max(anchor.not_before),
        valid_until: leaf_until.min(intermediate_until).min(anchor.not_after),
    })
}

fn find_issuing_anchor<'a>(
    intermediate: &x509_parser::certificate::X509Certificate<'_>,
    anchors: &'a TrustAnchors,
) -> Result<&'a TrustAnchor, VerifyError> {
    let issuer = intermediate.issuer().as_raw();
    let mut unsupported = None;
    for anchor in anchors.iter().filter(|a| a.subject == issuer) {
        match x509::verify_signed_by(intermediate, CertPosition::Intermediate, &anchor.key) {
            Ok(()) => return Ok(anchor),
            Err(e @ VerifyError::UnsupportedSignatureAlgorithm(_)) => unsupported = Some(e),
            Err(_) => {}
        }
    }
    Err(unsupported.unwrap_or(VerifyError::UntrustedChain))
}
