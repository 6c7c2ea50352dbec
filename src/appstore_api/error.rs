//! What can go wrong asking Apple, each with Apple's numeric `errorCode`
//! when it gave one, and what the operator can do about it.

use std::fmt;

use crate::model::Environment;

/// Apple's codes that mean "try again later".
pub(super) const RETRYABLE_CODES: [i64; 5] = [4040002, 4040004, 4040006, 5000001, 5000000];
/// TransactionIdNotFoundError.
pub(super) const TRANSACTION_NOT_FOUND: i64 = 4040010;
/// InvalidStartDateError: a start date outside the history Apple keeps.
pub(super) const INVALID_START_DATE: i64 = 4000012;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 401, whose body is empty: what was checked, and where to look.
    #[error("{0}")]
    Unauthorized(Box<Diagnosis>),
    /// 4040010 in one environment.
    #[error("transaction {transaction_id} not found in {environment} (errorCode 4040010); if it was made in {other}, ask {other}")]
    TransactionNotFound {
        transaction_id: String,
        environment: Environment,
        other: Environment,
    },
    /// 4000012: Apple keeps notification history for a limited window.
    #[error("Apple refused startDate {start_date} (errorCode 4000012): notification history reaches back 180 days in Production (and less in Sandbox); choose a later --since")]
    StartDateOutsideWindow { start_date: i64 },
    /// Still rate limited (429) after waiting as told, as often as allowed.
    #[error("rate limited by Apple (429) on {path} {attempts} times; waited as Retry-After said each time")]
    RateLimited { path: String, attempts: u32 },
    /// A retryable failure (codes 4040002, 4040004, 4040006, 5000000,
    /// 5000001, other 5xx, or no answer) that did not clear.
    #[error("{path}: gave up after {attempts} attempts: {last}")]
    RetriesExhausted {
        path: String,
        attempts: u32,
        last: String,
    },
    /// Any other refusal.
    #[error("{path}: Apple answered {status}{}{}", error_code.map(|c| format!(", errorCode {c}")).unwrap_or_default(), message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Apple {
        path: String,
        status: u16,
        error_code: Option<i64>,
        message: Option<String>,
    },
    /// A 2xx answer that is not what the endpoint returns.
    #[error("{path}: Apple's answer does not read: {reason}")]
    InvalidResponse { path: String, reason: String },
    #[error("cannot sign the API token: {0}")]
    Token(String),
    #[error("cannot start the HTTP client: {0}")]
    Client(String),
}

impl Error {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Unauthorized(_) => "APPLE_NOT_AUTHORIZED",
            Error::TransactionNotFound { .. } => "APPLE_TRANSACTION_NOT_FOUND",
            Error::StartDateOutsideWindow { .. } => "APPLE_START_DATE_OUTSIDE_WINDOW",
            Error::RateLimited { .. } => "APPLE_RATE_LIMITED",
            Error::RetriesExhausted { .. } => "APPLE_UNAVAILABLE",
            Error::Apple { .. } => "APPLE_ERROR",
            Error::InvalidResponse { .. } => "APPLE_INVALID_RESPONSE",
            Error::Token(_) => "API_TOKEN",
            Error::Client(_) => "API_CLIENT",
        }
    }

    /// Apple's numeric `errorCode`, when it gave one.
    pub fn apple_error_code(&self) -> Option<i64> {
        match self {
            Error::TransactionNotFound { .. } => Some(TRANSACTION_NOT_FOUND),
            Error::StartDateOutsideWindow { .. } => Some(INVALID_START_DATE),
            Error::Apple { error_code, .. } => *error_code,
            _ => None,
        }
    }
}

/// Everything a 401 can come from, with what we know of each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    pub url: String,
    pub environment: Environment,
    pub bundle_id: String,
    pub key_id: String,
    pub issuer_id: String,
    /// Our clock when the token was made, UNIX seconds.
    pub our_time: i64,
    /// Apple's `Date` header, UNIX seconds, when it sent one that reads.
    pub apple_time: Option<i64>,
}

/// More than this between our clock and Apple's and tokens look expired or
/// not yet valid to Apple.
const SKEW_LIMIT_SECS: i64 = 60;

impl Diagnosis {
    /// Seconds our clock is ahead of Apple's (negative: behind).
    pub fn skew(&self) -> Option<i64> {
        self.apple_time.map(|apple| self.our_time - apple)
    }
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Apple answered 401 Unauthorized (no body) for {} in {} at {}. Checked:",
            self.bundle_id, self.environment, self.url
        )?;
        writeln!(
            f,
            "  - key id {:?}, issuer id {:?}, bundle id {:?} as configured: the key must be an In-App Purchase key \
             (App Store Connect > Users and Access > Integrations > In-App Purchase), the issuer id the one shown \
             on that page, and the key must not be revoked",
            self.key_id, self.issuer_id, self.bundle_id
        )?;
        writeln!(
            f,
            "  - the key's type: a PKCS#8 ECDSA P-256 key, checked at start-up (tokens are ES256 with kid, aud \
             appstoreconnect-v1, bid, at most 60 minutes)"
        )?;
        match self.skew() {
            Some(skew) if skew.abs() > SKEW_LIMIT_SECS => writeln!(
                f,
                "  - the clock: ours is {} s {} Apple's Date header: Apple refuses a token whose iat is in its future \
                 or whose exp has passed. Fix this machine's time (NTP)",
                skew.abs(),
                if skew > 0 { "ahead of" } else { "behind" }
            )?,
            Some(skew) => writeln!(
                f,
                "  - the clock: within {} s of Apple's Date header (fine)",
                skew.abs()
            )?,
            None => writeln!(
                f,
                "  - the clock: Apple sent no readable Date header; compare this machine's time with a time server"
            )?,
        }
        let other = other_environment(&self.environment);
        writeln!(
            f,
            "  - the environment: this asked {}; a transaction made in {other} must be asked of {other}'s URL",
            self.environment
        )?;
        write!(
            f,
            "  - the app: Production answers 401 for an app with no approved version yet; until then use Sandbox"
        )
    }
}

/// Production's counterpart is Sandbox and the other way round.
pub fn other_environment(environment: &Environment) -> Environment {
    match environment {
        Environment::Production => Environment::Sandbox,
        _ => Environment::Production,
    }
}
