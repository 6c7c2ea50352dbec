//! Trust anchors: the roots a chain must lead to.

use ring::digest::{digest, SHA256};
use x509_parser::pem::Pem;

use super::error::{CertPosition, VerifyError};
use super::x509::{self, PublicKey};
use super::xcode::XcodeCertificate;
use crate::model::Timestamp;

/// Apple Root CA - G3, the anchor of every App Store signature, as shipped in
/// `certs/`.
const APPLE_ROOT_CA_G3_DER: &[u8] = include_bytes!("../../certs/AppleRootCA-G3.cer");

/// SHA-256 of Apple Root CA - G3, as Apple publishes it. Checked before the
/// embedded copy is trusted, so a corrupted or swapped file cannot become an
/// anchor.
pub const APPLE_ROOT_CA_G3_SHA256: [u8; 32] = [
    0x63, 0x34, 0x3A, 0xBF, 0xB8, 0x9A, 0x6A, 0x03, 0xEB, 0xB5, 0x7E, 0x9B, 0x3F, 0x5F, 0xA7, 0xBE,
    0x7C, 0x4F, 0x5C, 0x75, 0x6F, 0x30, 0x17, 0xB3, 0xA8, 0xC4, 0x88, 0xC3, 0x65, 0x3E, 0x91, 0x79,
];

/// One trusted root, reduced to what path validation uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustAnchor {
    pub(crate) subject: Vec<u8>,
    pub(crate) key: PublicKey,
    pub(crate) not_before: Timestamp,
    pub(crate) not_after: Timestamp,
    pub(crate) path_len: Option<u32>,
    sha256: [u8; 32],
}

impl TrustAnchor {
    /// Reads a DER certificate as an anchor. Its own signature is not checked:
    /// an anchor is trusted because it is configured, not because of what it says.
    pub fn from_der(der: &[u8]) -> Result<Self, VerifyError> {
        let invalid = |why: &str| VerifyError::InvalidTrustAnchor(why.to_owned());
        let cert = x509::parse_certificate(der, CertPosition::Root)
            .map_err(|_| invalid("not a DER X.509 certificate"))?;
        let key = x509::public_key(&cert, CertPosition::Root)
            .map_err(|_| invalid("its public key is neither EC P-256/P-384 nor RSA"))?;
        let constraints = x509::constraints(&cert, CertPosition::Root)
            .map_err(|e| VerifyError::InvalidTrustAnchor(e.to_string()))?;
        if !constraints.is_ca {
            return Err(invalid("it is not a certificate authority"));
        }
        let (not_before, not_after) = x509::validity(&cert);
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(digest(&SHA256, der).as_ref());
        Ok(TrustAnchor {
            subject: cert.subject().as_raw().to_vec(),
            key,
            not_before,
            not_after,
            path_len: constraints.path_len,
            sha256,
        })
    }

    /// SHA-256 of the certificate, as printed by `openssl x509 -fingerprint -sha256`.
    pub fn sha256_fingerprint(&self) -> [u8; 32] {
        self.sha256
    }
}

/// The roots a verifier trusts. Chains are anchored here and nowhere else: the
/// root a token carries in `x5c[2]` is never trusted by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustAnchors {
    anchors: Vec<TrustAnchor>,
    /// The StoreKit test certificate, for the local test environments only.
    xcode: Option<XcodeCertificate>,
}

impl TrustAnchors {
    /// Apple Root CA - G3, embedded in the binary, after checking its fingerprint.
    pub fn apple_root_ca_g3() -> Result<Self, VerifyError> {
        let anchor = TrustAnchor::from_der(APPLE_ROOT_CA_G3_DER)?;
        if anchor.sha256 != APPLE_ROOT_CA_G3_SHA256 {
            return Err(VerifyError::InvalidTrustAnchor(
                "the embedded Apple Root CA - G3 does not have Apple's published fingerprint"
                    .into(),
            ));
        }
        Ok(TrustAnchors {
            anchors: vec![anchor],
            xcode: None,
        })
    }

    pub fn new(anchors: Vec<TrustAnchor>) -> Result<Self, VerifyError> {
        if anchors.is_empty() {
            return Err(VerifyError::InvalidTrustAnchor(
                "no trust anchor configured".into(),
            ));
        }
        Ok(TrustAnchors {
            anchors,
            xcode: None,
        })
    }

    /// These anchors, and Xcode's StoreKit test certificate for tokens of
    /// the local test environments.
    pub fn with_xcode(mut self, certificate: XcodeCertificate) -> Self {
        self.xcode = Some(certificate);
        self
    }

    pub fn xcode(&self) -> Option<&XcodeCertificate> {
        self.xcode.as_ref()
    }

    /// Reads the certificates of one file: DER, or PEM holding one or more
    /// `CERTIFICATE` blocks.
    pub fn parse_file(bytes: &[u8]) -> Result<Vec<TrustAnchor>, VerifyError> {
        if !bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
            return Ok(vec![TrustAnchor::from_der(bytes)?]);
        }
        let mut anchors = Vec::new();
        for pem in Pem::iter_from_buffer(bytes) {
            let pem = pem.map_err(|_| VerifyError::InvalidTrustAnchor("unreadable PEM".into()))?;
            if pem.label == "CERTIFICATE" {
                anchors.push(TrustAnchor::from_der(&pem.contents)?);
            }
        }
        if anchors.is_empty() {
            return Err(VerifyError::InvalidTrustAnchor(
                "no CERTIFICATE in the PEM file".into(),
            ));
        }
        Ok(anchors)
    }

    pub fn iter(&self) -> impl Iterator<Item = &TrustAnchor> {
        self.anchors.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_apple_root_matches_published_fingerprint() {
        let anchors = TrustAnchors::apple_root_ca_g3().unwrap();
        let g3 = anchors.iter().next().unwrap();
        assert_eq!(g3.sha256_fingerprint(), APPLE_ROOT_CA_G3_SHA256);
        // Valid 2014-04-30 to 2039-04-30.
        assert_eq!(g3.not_before.as_millis(), 1_398_881_946_000);
        assert_eq!(g3.not_after.as_millis(), 2_187_800_346_000);
    }

    #[test]
    fn garbage_is_not_an_anchor() {
        assert_eq!(
            TrustAnchor::from_der(b"not a certificate")
                .unwrap_err()
                .code(),
            "INVALID_TRUST_ANCHOR"
        );
        assert!(TrustAnchors::parse_file(b"-----BEGIN CERTIFICATE-----\n!!\n").is_err());
        assert!(TrustAnchors::new(vec![]).is_err());
    }
}
