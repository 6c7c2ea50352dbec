//! Every stable code the query API, POST /v1/transactions and the webhook
//! answer with (`{"error": {"code": ..., "message": ...}}`), in one place.
//! The README's tables of codes list the same set (tests/library/error_codes.rs
//! fails when either side has one the other lacks), and every code the
//! lower layers give (the verifier, the App Store Server API, a receipt) is
//! one of these.

macro_rules! error_codes {
    ($($variant:ident => $code:literal,)*) => {
        /// A stable, machine-readable error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($variant,)*
        }

        impl ErrorCode {
            /// Every code, in the order of the README's tables.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }
        }
    };
}

error_codes! {
    // The HTTP layer's own.
    Unauthorized => "UNAUTHORIZED",
    NotFound => "NOT_FOUND",
    InvalidQuery => "INVALID_QUERY",
    InvalidRequest => "INVALID_REQUEST",
    InvalidBody => "INVALID_BODY",
    PayloadTooLarge => "PAYLOAD_TOO_LARGE",
    RateLimited => "RATE_LIMITED",
    DatabaseUnavailable => "DATABASE_UNAVAILABLE",
    InvalidAppAccountToken => "INVALID_APP_ACCOUNT_TOKEN",
    MalformedReceipt => "MALFORMED_RECEIPT",
    EmptyReceipt => "EMPTY_RECEIPT",
    ApiNotConfigured => "API_NOT_CONFIGURED",
    UnknownSubscription => "UNKNOWN_SUBSCRIPTION",
    UnknownTransaction => "UNKNOWN_TRANSACTION",
    InvalidExtension => "INVALID_EXTENSION",
    CursorExpired => "CURSOR_EXPIRED",
    // Asking Apple (the App Store Server API).
    AppleNotAuthorized => "APPLE_NOT_AUTHORIZED",
    AppleTransactionNotFound => "APPLE_TRANSACTION_NOT_FOUND",
    AppleStartDateOutsideWindow => "APPLE_START_DATE_OUTSIDE_WINDOW",
    AppleRateLimited => "APPLE_RATE_LIMITED",
    AppleUnavailable => "APPLE_UNAVAILABLE",
    AppleError => "APPLE_ERROR",
    AppleInvalidResponse => "APPLE_INVALID_RESPONSE",
    ApiToken => "API_TOKEN",
    ApiClient => "API_CLIENT",
    // Verification (jws::VerifyError).
    TokenTooLarge => "TOKEN_TOO_LARGE",
    MalformedToken => "MALFORMED_TOKEN",
    InvalidAlgorithm => "INVALID_ALGORITHM",
    UnsupportedHeader => "UNSUPPORTED_HEADER",
    InvalidChainLength => "INVALID_CHAIN_LENGTH",
    MalformedCertificate => "MALFORMED_CERTIFICATE",
    UnsupportedSignatureAlgorithm => "UNSUPPORTED_SIGNATURE_ALGORITHM",
    UnsupportedPublicKey => "UNSUPPORTED_PUBLIC_KEY",
    InvalidCertificateSignature => "INVALID_CERTIFICATE_SIGNATURE",
    UntrustedChain => "UNTRUSTED_CHAIN",
    CertificateExpired => "CERTIFICATE_EXPIRED",
    CertificateNotYetValid => "CERTIFICATE_NOT_YET_VALID",
    IntermediateNotCa => "INTERMEDIATE_NOT_CA",
    LeafIsCa => "LEAF_IS_CA",
    PathLengthExceeded => "PATH_LENGTH_EXCEEDED",
    InvalidKeyUsage => "INVALID_KEY_USAGE",
    UnsupportedCriticalExtension => "UNSUPPORTED_CRITICAL_EXTENSION",
    MissingAppleMarker => "MISSING_APPLE_MARKER",
    InvalidSignature => "INVALID_SIGNATURE",
    MalformedPayload => "MALFORMED_PAYLOAD",
    MissingSignedDate => "MISSING_SIGNED_DATE",
    BundleMismatch => "BUNDLE_MISMATCH",
    EnvironmentMismatch => "ENVIRONMENT_MISMATCH",
    AppAppleIdMismatch => "APP_APPLE_ID_MISMATCH",
    TransactionMismatch => "TRANSACTION_MISMATCH",
    InvalidTrustAnchor => "INVALID_TRUST_ANCHOR",
    XcodeCertificateOutsideXcode => "XCODE_CERTIFICATE_OUTSIDE_XCODE",
}

impl ErrorCode {
    /// The code a lower layer gave (`VerifyError::code`, `SyncError::code`,
    /// ...). Every one of them is listed above (tests/library/error_codes.rs reads
    /// them from the source); one that is not would be a bug, answered as
    /// the nearest honest code rather than a panic.
    pub fn of(code: &str) -> ErrorCode {
        ErrorCode::ALL
            .iter()
            .copied()
            .find(|known| known.as_str() == code)
            .unwrap_or(ErrorCode::MalformedPayload)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_code_is_itself_and_once() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "{code} twice");
            assert_eq!(ErrorCode::of(code.as_str()), *code);
        }
    }
}
