use std::fmt;

/// Where in a chain a certificate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertPosition {
    /// `x5c[0]`, the certificate whose key signed the token.
    Leaf,
    /// `x5c[1]`, issued by a trusted root.
    Intermediate,
    /// `x5c[2]` as sent, or the configured trust anchor that issued the intermediate.
    Root,
}

impl fmt::Display for CertPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CertPosition::Leaf => "leaf",
            CertPosition::Intermediate => "intermediate",
            CertPosition::Root => "root",
        })
    }
}

/// Why a token, or the trust configuration, was rejected.
///
/// Each variant has a stable machine-readable [`code`](VerifyError::code); the
/// codes are part of the public interface (HTTP answers, CLI output, logs) and
/// never change meaning. The table in the README lists them all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error("the token is larger than {limit} bytes")]
    TokenTooLarge { limit: usize },
    #[error("the token is not a compact JWS: {0}")]
    MalformedToken(&'static str),
    #[error("the JWS algorithm must be ES256, found {0}")]
    InvalidAlgorithm(String),
    #[error("the JWS header has a field this verifier does not understand: {0}")]
    UnsupportedHeader(&'static str),
    #[error("x5c must hold exactly 3 certificates, found {0}")]
    InvalidChainLength(usize),
    #[error("the {0} certificate is not a well-formed DER X.509 certificate")]
    MalformedCertificate(CertPosition),
    #[error("the {0} certificate is signed with an algorithm this verifier does not accept")]
    UnsupportedSignatureAlgorithm(CertPosition),
    #[error("the {0} certificate has a public key this verifier does not accept")]
    UnsupportedPublicKey(CertPosition),
    #[error("the signature on the {0} certificate does not verify with its issuer's key")]
    InvalidCertificateSignature(CertPosition),
    #[error("the chain does not lead to a trusted root")]
    UntrustedChain,
    #[error("the {0} certificate had expired at the verification time")]
    CertificateExpired(CertPosition),
    #[error("the {0} certificate was not yet valid at the verification time")]
    CertificateNotYetValid(CertPosition),
    #[error("the intermediate certificate is not a certificate authority")]
    IntermediateNotCa,
    #[error("the leaf certificate is a certificate authority")]
    LeafIsCa,
    #[error("the trusted root does not allow an intermediate certificate authority below it")]
    PathLengthExceeded,
    #[error("the key usage of the {0} certificate does not allow this use")]
    InvalidKeyUsage(CertPosition),
    #[error("the {0} certificate has a critical extension this verifier does not understand")]
    UnsupportedCriticalExtension(CertPosition),
    #[error("the {0} certificate lacks Apple's marker extension")]
    MissingAppleMarker(CertPosition),
    #[error("the ES256 signature does not verify")]
    InvalidSignature,
    #[error("the payload does not decode: {0}")]
    MalformedPayload(String),
    #[error("the payload has no signedDate to verify it at")]
    MissingSignedDate,
    #[error("bundle id mismatch: expected {expected}, found {found}")]
    BundleMismatch { expected: String, found: String },
    #[error("environment mismatch: expected {expected}, found {found}")]
    EnvironmentMismatch { expected: String, found: String },
    #[error("appAppleId mismatch: expected {expected}, found {found}")]
    AppAppleIdMismatch { expected: String, found: String },
    #[error("the nested tokens name different transactions: {0} and {1}")]
    TransactionMismatch(String, String),
    #[error("a configured trust anchor is unusable: {0}")]
    InvalidTrustAnchor(String),
    #[error("signed with the StoreKit test certificate, which is trusted for the Xcode and LocalTesting environments only, not for {0}")]
    XcodeCertificateOutsideXcode(String),
    #[error("{field}: {error}")]
    Nested {
        /// The nested token, as a JSON path: `data.signedTransactionInfo`, ...
        field: &'static str,
        error: Box<VerifyError>,
    },
}

impl VerifyError {
    /// The stable machine-readable code. A nested token's failure has the code
    /// of that failure; [`VerifyError::Nested`] says which token failed.
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::TokenTooLarge { .. } => "TOKEN_TOO_LARGE",
            VerifyError::MalformedToken(_) => "MALFORMED_TOKEN",
            VerifyError::InvalidAlgorithm(_) => "INVALID_ALGORITHM",
            VerifyError::UnsupportedHeader(_) => "UNSUPPORTED_HEADER",
            VerifyError::InvalidChainLength(_) => "INVALID_CHAIN_LENGTH",
            VerifyError::MalformedCertificate(_) => "MALFORMED_CERTIFICATE",
            VerifyError::UnsupportedSignatureAlgorithm(_) => "UNSUPPORTED_SIGNATURE_ALGORITHM",
            VerifyError::UnsupportedPublicKey(_) => "UNSUPPORTED_PUBLIC_KEY",
            VerifyError::InvalidCertificateSignature(_) => "INVALID_CERTIFICATE_SIGNATURE",
            VerifyError::UntrustedChain => "UNTRUSTED_CHAIN",
            VerifyError::CertificateExpired(_) => "CERTIFICATE_EXPIRED",
            VerifyError::CertificateNotYetValid(_) => "CERTIFICATE_NOT_YET_VALID",
            VerifyError::IntermediateNotCa => "INTERMEDIATE_NOT_CA",
            VerifyError::LeafIsCa => "LEAF_IS_CA",
            VerifyError::PathLengthExceeded => "PATH_LENGTH_EXCEEDED",
            VerifyError::InvalidKeyUsage(_) => "INVALID_KEY_USAGE",
            VerifyError::UnsupportedCriticalExtension(_) => "UNSUPPORTED_CRITICAL_EXTENSION",
            VerifyError::MissingAppleMarker(_) => "MISSING_APPLE_MARKER",
            VerifyError::InvalidSignature => "INVALID_SIGNATURE",
            VerifyError::MalformedPayload(_) => "MALFORMED_PAYLOAD",
            VerifyError::MissingSignedDate => "MISSING_SIGNED_DATE",
            VerifyError::BundleMismatch { .. } => "BUNDLE_MISMATCH",
            VerifyError::EnvironmentMismatch { .. } => "ENVIRONMENT_MISMATCH",
            VerifyError::AppAppleIdMismatch { .. } => "APP_APPLE_ID_MISMATCH",
            VerifyError::TransactionMismatch(..) => "TRANSACTION_MISMATCH",
            VerifyError::InvalidTrustAnchor(_) => "INVALID_TRUST_ANCHOR",
            VerifyError::XcodeCertificateOutsideXcode(_) => "XCODE_CERTIFICATE_OUTSIDE_XCODE",
            VerifyError::Nested { error, .. } => error.code(),
        }
    }

    /// The failure itself, looking through [`VerifyError::Nested`].
    pub fn innermost(&self) -> &VerifyError {
        match self {
            VerifyError::Nested { error, .. } => error.innermost(),
            other => other,
        }
    }

    /// True when every signature and chain was proven but the payload names an
    /// app or environment the caller did not expect. Such a payload is genuine;
    /// a service may keep it aside rather than discard it. (Nested tokens that
    /// disagree with their envelope are reported inside [`VerifyError::Nested`]
    /// and are not this case.)
    pub fn is_identity_mismatch(&self) -> bool {
        matches!(
            self,
            VerifyError::BundleMismatch { .. }
                | VerifyError::EnvironmentMismatch { .. }
                | VerifyError::AppAppleIdMismatch { .. }
        )
    }

    pub(crate) fn nested(field: &'static str) -> impl FnOnce(VerifyError) -> VerifyError {
        move |error| VerifyError::Nested {
            field,
            error: Box::new(error),
        }
    }
}
