//! One app in one environment of the App Store Server API: signs each
//! request, keeps below the configured rate, waits out 429s as Apple says,
//! retries what Apple calls retryable with jittered backoff, and explains 401s.

use std::time::{Duration, UNIX_EPOCH};

use reqwest::header::{DATE, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::auth::ApiKey;
use super::error::{
    other_environment, Diagnosis, Error, INVALID_START_DATE, RETRYABLE_CODES, TRANSACTION_NOT_FOUND,
};
use super::types::{
    CheckTestNotificationResponse, ConsumptionRequest, ErrorBody, ExtendRenewalDateRequest,
    ExtendRenewalDateResponse, HistoryResponse, MassExtendRenewalDateRequest,
    MassExtendRenewalDateResponse, MassExtendRenewalDateStatusResponse, NotificationHistoryRequest,
    NotificationHistoryResponse, OrderLookupResponse, SendTestNotificationResponse, StatusResponse,
    TransactionInfoResponse,
};
use crate::clock::SharedClock;
use crate::model::Environment;

pub const PRODUCTION_URL: &str = "https://api.storekit.apple.com";
pub const SANDBOX_URL: &str = "https://api.storekit-sandbox.apple.com";

/// How hard to try before giving up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The first backoff; each next one doubles, up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// A 429's `Retry-After` further away than this is not waited for.
    pub max_rate_limit_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_rate_limit_wait: Duration::from_secs(15 * 60),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1`: exponential, with full jitter
    /// over its upper half so that instances do not retry in step.
    fn backoff(&self, attempt: u32) -> Duration {
        let exponential = self
            .base_delay
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max_delay);
        let half = exponential / 2;
        half + half.mul_f64(jitter())
    }
}

/// A number in [0, 1).
fn jitter() -> f64 {
    let mut bytes = [0u8; 4];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0)
}

/// Requests to Apple paced evenly, at most `per_second` a second (a
/// maintained limiter: governor's GCRA with a burst of one).
#[derive(Debug)]
struct RateLimiter(governor::DefaultDirectRateLimiter);

impl RateLimiter {
    fn new(per_second: u32) -> Self {
        let interval = Duration::from_secs(1) / per_second.max(1);
        // A period of zero is impossible: per_second is at most u32::MAX.
        let quota = governor::Quota::with_period(interval)
            .unwrap_or_else(|| governor::Quota::per_second(std::num::NonZeroU32::MIN));
        RateLimiter(governor::RateLimiter::direct(quota))
    }

    async fn acquire(&self) {
        self.0.until_ready().await;
    }
}

/// The client of one app in one environment.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    environment: Environment,
    key: ApiKey,
    limiter: RateLimiter,
    retry: RetryPolicy,
    /// What tells the time: a token's iat, Apple's Retry-After.
    clock: SharedClock,
}

enum Attempt<T> {
    Done(T),
    Retry { after: Duration, why: String },
    RateLimited { until: Option<i64> },
}

impl Client {
    pub fn new(
        base_url: &str,
        environment: Environment,
        key: ApiKey,
        max_requests_per_second: u32,
        retry: RetryPolicy,
        clock: SharedClock,
    ) -> Result<Client, Error> {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Client(format!("TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("appstore-ledger/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Client(e.to_string()))?;
        Ok(Client {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            environment,
            key,
            limiter: RateLimiter::new(max_requests_per_second),
            retry,
            clock,
        })
    }

    pub fn environment(&self) -> &Environment {
        &self.environment
    }

    pub fn bundle_id(&self) -> &str {
        self.key.bundle_id()
    }

    /// Get Notification History: one page.
    pub async fn notification_history(
        &self,
        request: &NotificationHistoryRequest,
        pagination_token: Option<&str>,
    ) -> Result<NotificationHistoryResponse, Error> {
        let query: Vec<(&str, &str)> = pagination_token
            .map(|t| vec![("paginationToken", t)])
            .unwrap_or_default();
        self.call(
            Method::POST,
            "/inApps/v1/notifications/history",
            &query,
            Some(request),
        )
        .await
    }

    /// Get All Subscription Statuses of the customer who made `transaction_id`.
    pub async fn all_subscription_statuses(
        &self,
        transaction_id: &str,
    ) -> Result<StatusResponse, Error> {
        let path = format!("/inApps/v1/subscriptions/{}", path_segment(transaction_id));
        self.call_about(transaction_id, Method::GET, &path, &[], None::<&()>)
            .await
    }

    /// Get Transaction History (v2): one page, after `revision`.
    pub async fn transaction_history(
        &self,
        transaction_id: &str,
        revision: Option<&str>,
    ) -> Result<HistoryResponse, Error> {
        let path = format!("/inApps/v2/history/{}", path_segment(transaction_id));
        let mut query = vec![("sort", "ASCENDING")];
        if let Some(revision) = revision {
            query.push(("revision", revision));
        }
        self.call_about(transaction_id, Method::GET, &path, &query, None::<&()>)
            .await
    }

    /// Get Refund History (v2): one page of the customer's refunded
    /// transactions, after `revision` (Apple answers in the shape of
    /// Transaction History's pages).
    pub async fn refund_history(
        &self,
        transaction_id: &str,
        revision: Option<&str>,
    ) -> Result<HistoryResponse, Error> {
        let path = format!("/inApps/v2/refund/lookup/{}", path_segment(transaction_id));
        let query: Vec<(&str, &str)> = revision.map(|r| vec![("revision", r)]).unwrap_or_default();
        self.call_about(transaction_id, Method::GET, &path, &query, None::<&()>)
            .await
    }

    /// Get Transaction Info.
    pub async fn transaction_info(
        &self,
        transaction_id: &str,
    ) -> Result<TransactionInfoResponse, Error> {
        let path = format!("/inApps/v1/transactions/{}", path_segment(transaction_id));
        self.call_about(transaction_id, Method::GET, &path, &[], None::<&()>)
            .await
    }

    /// Set App Account Token: Apple signs `app_account_token` (a UUID)
    /// into the subscription's or purchase's later transactions. Apple
    /// answers with no content.
    pub async fn set_app_account_token(
        &self,
        original_transaction_id: &str,
        app_account_token: &str,
    ) -> Result<(), Error> {
        let path = format!(
            "/inApps/v1/transactions/{}/appAccountToken",
            path_segment(original_transaction_id)
        );
        let body = serde_json::json!({ "appAccountToken": app_account_token });
        self.call_about(
            original_transaction_id,
            Method::PUT,
            &path,
            &[],
            Some(&body),
        )
        .await
    }

    /// Send Consumption Information (`PUT /inApps/v2/transactions/consumption/{transactionId}`):
    /// the answer to a CONSUMPTION_REQUEST about `transaction_id`. Apple
    /// answers 202 with no content.
    pub async fn send_consumption_information(
        &self,
        transaction_id: &str,
        request: &ConsumptionRequest,
    ) -> Result<(), Error> {
        let path = format!(
            "/inApps/v2/transactions/consumption/{}",
            path_segment(transaction_id)
        );
        self.call_about(transaction_id, Method::PUT, &path, &[], Some(request))
            .await
    }

    /// Extend a Subscription Renewal Date: `request.extend_by_days` more
    /// for one active subscription (goodwill, an outage).
    pub async fn extend_subscription_renewal_date(
        &self,
        original_transaction_id: &str,
        request: &ExtendRenewalDateRequest,
    ) -> Result<ExtendRenewalDateResponse, Error> {
        let path = format!(
            "/inApps/v1/subscriptions/extend/{}",
            path_segment(original_transaction_id)
        );
        self.call_about(
            original_transaction_id,
            Method::PUT,
            &path,
            &[],
            Some(request),
        )
        .await
    }

    /// Extend Subscription Renewal Dates for All Active Subscribers of a
    /// product; Apple works through them for hours or days.
    pub async fn extend_renewal_dates_for_all(
        &self,
        request: &MassExtendRenewalDateRequest,
    ) -> Result<MassExtendRenewalDateResponse, Error> {
        self.call(
            Method::POST,
            "/inApps/v1/subscriptions/extend/mass",
            &[],
            Some(request),
        )
        .await
    }

    /// Get Status of Subscription Renewal Date Extensions: whether the
    /// mass extension `request_identifier` of `product_id` is complete.
    pub async fn mass_extension_status(
        &self,
        product_id: &str,
        request_identifier: &str,
    ) -> Result<MassExtendRenewalDateStatusResponse, Error> {
        let path = format!(
            "/inApps/v1/subscriptions/extend/mass/{}/{}",
            path_segment(product_id),
            path_segment(request_identifier)
        );
        self.call(Method::GET, &path, &[], None::<&()>).await
    }

    /// Look Up Order ID: the purchases of the order ID on a customer's
    /// receipt email.
    pub async fn look_up_order_id(&self, order_id: &str) -> Result<OrderLookupResponse, Error> {
        let path = format!("/inApps/v1/lookup/{}", path_segment(order_id));
        self.call(Method::GET, &path, &[], None::<&()>).await
    }

    /// Request a Test Notification.
    pub async fn request_test_notification(&self) -> Result<SendTestNotificationResponse, Error> {
        self.call(
            Method::POST,
            "/inApps/v1/notifications/test",
            &[],
            None::<&()>,
        )
        .await
    }

    /// Get Test Notification Status.
    pub async fn test_notification_status(
        &self,
        test_notification_token: &str,
    ) -> Result<CheckTestNotificationResponse, Error> {
        let path = format!(
            "/inApps/v1/notifications/test/{}",
            path_segment(test_notification_token)
        );
        self.call(Method::GET, &path, &[], None::<&()>).await
    }

    /// A call about one transaction: 4040010 names the other environment.
    async fn call_about<T: DeserializeOwned>(
        &self,
        transaction_id: &str,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&impl Serialize>,
    ) -> Result<T, Error> {
        match self.call(method, path, query, body).await {
            Err(Error::Apple {
                error_code: Some(TRANSACTION_NOT_FOUND),
                ..
            }) => Err(Error::TransactionNotFound {
                transaction_id: transaction_id.to_owned(),
                environment: self.environment.clone(),
                other: other_environment(&self.environment),
            }),
            other => other,
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&impl Serialize>,
    ) -> Result<T, Error> {
        let mut attempts = 0u32;
        let mut rate_limited = 0u32;
        loop {
            attempts += 1;
            let outcome = self.attempt(method.clone(), path, query, body).await?;
            match outcome {
                Attempt::Done(value) => return Ok(value),
                Attempt::RateLimited { until } => {
                    rate_limited += 1;
                    // Never sooner than Apple said; without a usable
                    // Retry-After, the backoff.
                    let wait = match until {
                        Some(until) => Duration::from_millis(
                            u64::try_from(until.saturating_sub(self.clock.now().as_millis()))
                                .unwrap_or(0),
                        ),
                        None => self.retry.backoff(rate_limited),
                    };
                    if rate_limited >= self.retry.max_attempts
                        || wait > self.retry.max_rate_limit_wait
                    {
                        return Err(Error::RateLimited {
                            path: path.to_owned(),
                            attempts: rate_limited,
                        });
                    }
                    tracing::warn!(
                        path,
                        wait_ms = wait.as_millis() as u64,
                        "rate limited by Apple; waiting as Retry-After says"
                    );
                    tokio::time::sleep(wait).await;
                    // A 429 is not a failed attempt of the request itself.
                    attempts -= 1;
                }
                Attempt::Retry { after, why } => {
                    if attempts >= self.retry.max_attempts {
                        return Err(Error::RetriesExhausted {
                            path: path.to_owned(),
                            attempts,
                            last: why,
                        });
                    }
                    tracing::warn!(path, attempts, %why, "App Store Server API failed; retrying");
                    tokio::time::sleep(after.max(self.retry.backoff(attempts - 1))).await;
                }
            }
        }
    }

    async fn attempt<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&impl Serialize>,
    ) -> Result<Attempt<T>, Error> {
        self.limiter.acquire().await;
        let our_time = self.clock.now().as_millis() / 1000;
        let token = self
            .key
            .token(our_time)
            .map_err(|e| Error::Token(e.to_string()))?;
        let url = format!("{}{path}", self.base_url);
        let mut request = self
            .http
            .request(method, &url)
            .bearer_auth(token)
            .query(query);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                return Ok(Attempt::Retry {
                    after: Duration::ZERO,
                    why: format!("no answer from {url}: {}", crate::telemetry::chain(&e)),
                })
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(e) => {
                return Ok(Attempt::Retry {
                    after: Duration::ZERO,
                    why: format!("answer from {url} cut short: {e}"),
                })
            }
        };
        if status.is_success() {
            // An answer with no content (Set App Account Token) reads as
            // JSON null: `()` for the calls that expect nothing.
            let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
            return serde_json::from_slice(bytes)
                .map(Attempt::Done)
                .map_err(|e| Error::InvalidResponse {
                    path: path.to_owned(),
                    reason: e.to_string(),
                });
        }
        if status == StatusCode::UNAUTHORIZED {
            let apple_time = headers
                .get(DATE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| httpdate::parse_http_date(v).ok())
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs() as i64);
            return Err(Error::Unauthorized(Box::new(Diagnosis {
                url,
                environment: self.environment.clone(),
                bundle_id: self.key.bundle_id().to_owned(),
                key_id: self.key.key_id().to_owned(),
                issuer_id: self.key.issuer_id().to_owned(),
                our_time,
                apple_time,
            })));
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            // Apple sends a UNIX time in milliseconds; a proxy in between
            // may send HTTP's delay in seconds instead.
            let until = headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<i64>().ok())
                .map(|value| {
                    if value < 100_000_000_000 {
                        self.clock
                            .now()
                            .as_millis()
                            .saturating_add(value.saturating_mul(1000))
                    } else {
                        value
                    }
                });
            return Ok(Attempt::RateLimited { until });
        }
        let error: Option<ErrorBody> = serde_json::from_slice(&bytes).ok();
        let error_code = error.as_ref().and_then(|e| e.error_code);
        let message = error.and_then(|e| e.error_message);
        if error_code.is_some_and(|c| RETRYABLE_CODES.contains(&c))
            || (status.is_server_error() && error_code.is_none())
        {
            return Ok(Attempt::Retry {
                after: Duration::ZERO,
                why: format!(
                    "Apple answered {status}{}",
                    error_code
                        .map(|c| format!(", errorCode {c}"))
                        .unwrap_or_default()
                ),
            });
        }
        if error_code == Some(INVALID_START_DATE) {
            let start_date = body
                .and_then(|b| serde_json::to_value(b).ok())
                .and_then(|v| v.get("startDate").and_then(serde_json::Value::as_i64))
                .unwrap_or_default();
            return Err(Error::StartDateOutsideWindow { start_date });
        }
        Err(Error::Apple {
            path: path.to_owned(),
            status: status.as_u16(),
            error_code,
            message,
        })
    }
}

/// A value placed in a URL path: only what Apple's ids and tokens are made of.
fn path_segment(value: &str) -> String {
    value
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_bounded() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_rate_limit_wait: Duration::from_secs(1),
        };
        for attempt in 0..20 {
            let d = policy.backoff(attempt);
            let full = (Duration::from_millis(100) * (1u32 << attempt.min(16)))
                .min(Duration::from_secs(1));
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
    }

    #[test]
    fn path_segments_cannot_leave_the_path() {
        assert_eq!(path_segment("2000000123"), "2000000123");
        assert_eq!(path_segment("../x?y=1#z"), "xy1z");
    }
}
