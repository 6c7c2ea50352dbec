//! `api-check`: the wiring end to end. Authenticate, ask Apple for a test
//! notification, wait for it to arrive here, and say what failed.

use std::time::Duration;

use super::reconcile::expected_identity;
use super::SyncError;
use crate::appstore_api::{Client, SendAttempt};
use crate::ingest::Ingest;
use crate::jws::unverified_signed_date;
use crate::store::Store;

/// What the check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCheckReport {
    pub test_notification_token: String,
    /// The test notification's UUID, once Apple's status answer carried it.
    pub notification_uuid: Option<String>,
    /// It is stored here: our endpoint received and accepted it.
    pub arrived: bool,
    pub send_attempts: Vec<SendAttempt>,
}

impl ApiCheckReport {
    /// Lines for the operator: what happened, and what to look at.
    pub fn diagnosis(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if self.arrived {
            lines.push(format!(
                "ok: test notification {} arrived at this service and is stored",
                self.notification_uuid.as_deref().unwrap_or("?")
            ));
            return lines;
        }
        lines.push(format!(
            "the test notification (token {}) did not arrive at this service",
            self.test_notification_token
        ));
        if self.send_attempts.is_empty() {
            lines.push(
                "Apple reports no delivery attempt yet: check the App Store Server Notifications URL for this \
                 environment in App Store Connect (App Information), and wait a little longer"
                    .into(),
            );
        }
        for attempt in &self.send_attempts {
            let result = attempt.send_attempt_result.as_deref().unwrap_or("?");
            lines.push(format!(
                "Apple's attempt at {}: {result}: {}",
                attempt
                    .attempt_date
                    .map_or_else(|| "?".to_owned(), |d| d.to_string()),
                hint(result)
            ));
        }
        lines
    }
}

/// What Apple's `sendAttemptResult` values point at.
fn hint(result: &str) -> &'static str {
    match result {
        "SUCCESS" => "Apple delivered it and we answered 2xx, yet it is not stored: is this service using the database the endpoint writes to?",
        "TIMED_OUT" => "our endpoint did not answer in time: check the service is reachable from the internet and fast",
        "SSL_ISSUE" => "TLS failed: Apple needs a certificate chain from a public CA and TLS 1.2 or later",
        "CIRCULAR_REDIRECT" | "INVALID_RESPONSE" => "the URL redirects or answers oddly: configure the final URL of POST /v2/notifications",
        "NO_RESPONSE" | "PREMATURE_CLOSE" | "SOCKET_ISSUE" => "the connection failed: check DNS, firewall and the proxy in front of the service",
        "UNSUPPORTED_CHARSET" => "the answer's charset is refused: answer with UTF-8",
        "UNSUCCESSFUL_HTTP_RESPONSE_CODE" => "we answered non-2xx: see this service's log for the request (quarantine, verification or database)",
        _ => "see Apple's sendAttemptResult documentation",
    }
}

/// Requests a test notification and waits up to `wait` for it.
pub async fn api_check(
    client: &Client,
    ingest: &Ingest,
    store: &Store,
    wait: Duration,
    poll: Duration,
) -> Result<ApiCheckReport, SyncError> {
    // The app's own identity: a test notification of another app or
    // environment is not ours.
    let expected = expected_identity(ingest, client)?;
    let requested = client.request_test_notification().await?;
    let mut report = ApiCheckReport {
        test_notification_token: requested.test_notification_token,
        notification_uuid: None,
        arrived: false,
        send_attempts: Vec::new(),
    };
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let status = client
            .test_notification_status(&report.test_notification_token)
            .await?;
        report.send_attempts = status.send_attempts;
        if let Some(signed_payload) = &status.signed_payload {
            let at = unverified_signed_date(signed_payload)?;
            let verified = ingest
                .verifier()
                .verify_notification(signed_payload, &expected, at)?;
            report.arrived = store.has_notification(&verified.notification_uuid).await?;
            report.notification_uuid = Some(verified.notification_uuid);
        }
        if report.arrived || tokio::time::Instant::now() + poll > deadline {
            return Ok(report);
        }
        tokio::time::sleep(poll).await;
    }
}
