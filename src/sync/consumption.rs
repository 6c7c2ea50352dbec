//! Answers Apple's consumption requests before their deadline. Each run
//! reads the open requests, decides what each needs now
//! ([`crate::consumption::decide`]) and sends answers with Send Consumption
//! Information. It runs on the instance holding the job's lease, and acts
//! on a request only while holding that request's claim, so that two
//! instances never send two answers, even when a lease changes hands in
//! the middle of a send.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::appstore_api::{AppStoreApi, Error as AppleError};
use crate::config::AppSettings;
use crate::consumption::{self, Asked, Consent, Decision, Facts, Policy};
use crate::metrics::Metrics;
use crate::model::{
    DeliveryStatus, Environment, InAppOwnershipType, ProductType, RefundPreference,
};
use crate::store::{ConsumptionProgress, ConsumptionRequestEntry, Store};

use super::SyncError;

/// Requests looked at per run; the rest wait for the next.
const PER_RUN: i64 = 500;
/// How long a claim lasts: longer than a send with its retries takes.
const CLAIM_MS: i64 = 5 * 60_000;
/// The first wait after a failed send; it doubles up to [`MAX_RETRY_MS`].
const FIRST_RETRY_MS: i64 = 30_000;
const MAX_RETRY_MS: i64 = 15 * 60_000;

/// What the job needs: Apple's clients, each app's policy, and who it is.
#[derive(Clone)]
pub struct ConsumptionJob {
    pub api: Arc<AppStoreApi>,
    pub store: Store,
    /// By bundle id.
    pub policies: Arc<HashMap<String, Policy>>,
    /// This instance, as the request claims name it.
    pub holder: Arc<str>,
    pub metrics: Arc<Metrics>,
}

/// The policies of the apps that have `[apps.consumption]`.
pub fn policies(apps: &[AppSettings]) -> HashMap<String, Policy> {
    apps.iter()
        .filter_map(|app| {
            let settings = app.consumption.as_ref()?;
            Some((app.bundle_id.clone(), Policy::from_settings(settings)))
        })
        .collect()
}

/// What one run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ConsumptionRun {
    pub sent: u32,
    pub not_sent: u32,
    pub missed: u32,
    pub retrying: u32,
    pub waiting: u32,
}

impl ConsumptionJob {
    /// Acts on every due request once.
    pub async fn run(&self) -> Result<ConsumptionRun, SyncError> {
        let mut run = ConsumptionRun::default();
        let now = self.store.now();
        for request in self.store.consumption_due(now, PER_RUN).await? {
            self.act(&request, &mut run).await?;
        }
        Ok(run)
    }

    async fn act(
        &self,
        r: &ConsumptionRequestEntry,
        run: &mut ConsumptionRun,
    ) -> Result<(), SyncError> {
        let now = self.store.now();
        let policy = self
            .policies
            .get(r.bundle_id.as_deref().unwrap_or_default())
            .filter(|p| p.enabled);
        // Apple decided (REFUND, REFUND_DECLINED) before an answer went:
        // there is nothing left to answer.
        if r.outcome.is_some() {
            run.not_sent += 1;
            let progress = ConsumptionProgress {
                state: "NOT_SENT",
                why: Some("APPLE_DECIDED"),
                closed_at: Some(now),
                ..ConsumptionProgress::default()
            };
            return self.close(r, now, progress, "not_sent", None).await;
        }
        // An app that does not answer misses nothing.
        if now >= r.deadline && policy.is_some() {
            run.missed += 1;
            let progress = ConsumptionProgress {
                state: "MISSED",
                why: Some(match r.why.as_deref() {
                    Some("RETRYING") => "APPLE_UNAVAILABLE",
                    _ => "DEADLINE_PASSED",
                }),
                closed_at: Some(now),
                ..ConsumptionProgress::default()
            };
            return self.close(r, now, progress, "missed", None).await;
        }
        let decision = consumption::decide(
            &asked(r),
            policy,
            consent(r).as_ref(),
            facts(r).as_ref(),
            now,
        );
        match decision {
            Decision::Wait { why, .. } => {
                run.waiting += 1;
                if r.why.as_deref() != Some(why.code()) {
                    let progress = ConsumptionProgress {
                        state: "OPEN",
                        why: Some(why.code()),
                        ..ConsumptionProgress::default()
                    };
                    self.close(r, now, progress, "", None).await?;
                }
                Ok(())
            }
            Decision::Skip(why) => {
                run.not_sent += 1;
                tracing::info!(transaction_id = %r.transaction_id, why = why.code(),
                    "consumption request not answered");
                let progress = ConsumptionProgress {
                    state: "NOT_SENT",
                    why: Some(why.code()),
                    closed_at: Some(now),
                    ..ConsumptionProgress::default()
                };
                self.close(r, now, progress, "not_sent", None).await
            }
            Decision::Send(body) => self.send(r, now, &body, run).await,
        }
    }

    async fn send(
        &self,
        r: &ConsumptionRequestEntry,
        now: i64,
        body: &crate::appstore_api::ConsumptionRequest,
        run: &mut ConsumptionRun,
    ) -> Result<(), SyncError> {
        let environment = Environment::from_raw(r.environment.as_deref().unwrap_or_default());
        let Some(client) = self
            .api
            .client(r.bundle_id.as_deref().unwrap_or_default(), &environment)
        else {
            run.not_sent += 1;
            let progress = ConsumptionProgress {
                state: "NOT_SENT",
                why: Some("API_NOT_CONFIGURED"),
                closed_at: Some(now),
                ..ConsumptionProgress::default()
            };
            return self.close(r, now, progress, "not_sent", None).await;
        };
        if !self.claim(r, now).await? {
            return Ok(());
        }
        let sent_body = serde_json::to_string(body).unwrap_or_default();
        let outcome = client
            .send_consumption_information(&r.transaction_id, body)
            .await;
        let after = self.store.now();
        let progress = match outcome {
            Ok(()) => {
                run.sent += 1;
                tracing::info!(transaction_id = %r.transaction_id, body = %sent_body,
                    "consumption information sent");
                ConsumptionProgress {
                    state: "SENT",
                    attempted: true,
                    sent_body: Some(sent_body),
                    sent_at: Some(after),
                    apple_status: Some(202),
                    closed_at: Some(after),
                    ..ConsumptionProgress::default()
                }
            }
            Err(error) if retryable(&error) => {
                run.retrying += 1;
                tracing::warn!(transaction_id = %r.transaction_id, code = error.code(), %error,
                    "consumption information not accepted yet; will try again before the deadline");
                ConsumptionProgress {
                    state: "OPEN",
                    why: Some("RETRYING"),
                    attempted: true,
                    last_error: Some(error.to_string()),
                    next_attempt_at: Some(retry_at(after, r.attempts, r.deadline)),
                    ..ConsumptionProgress::default()
                }
            }
            Err(error) => {
                run.not_sent += 1;
                tracing::error!(transaction_id = %r.transaction_id, code = error.code(), %error,
                    body = %sent_body, "Apple refused the consumption information");
                ConsumptionProgress {
                    state: "NOT_SENT",
                    why: Some("APPLE_REFUSED"),
                    attempted: true,
                    last_error: Some(error.to_string()),
                    sent_body: Some(sent_body),
                    closed_at: Some(after),
                    ..ConsumptionProgress::default()
                }
            }
        };
        let delay = (progress.state == "SENT").then(|| {
            Duration::from_millis(u64::try_from(after.saturating_sub(r.requested_at)).unwrap_or(0))
        });
        let metric = match progress.state {
            "SENT" => "sent",
            "NOT_SENT" => "not_sent",
            _ => "",
        };
        self.record(r, &progress, metric, delay).await
    }

    /// Claims the request and keeps `progress`; counts it under `metric`
    /// (none when empty) once kept.
    async fn close(
        &self,
        r: &ConsumptionRequestEntry,
        now: i64,
        progress: ConsumptionProgress,
        metric: &str,
        delay: Option<Duration>,
    ) -> Result<(), SyncError> {
        if !self.claim(r, now).await? {
            return Ok(());
        }
        self.record(r, &progress, metric, delay).await
    }

    /// Takes `r` for this instance, unless another holds it.
    async fn claim(&self, r: &ConsumptionRequestEntry, now: i64) -> Result<bool, SyncError> {
        let until = now.saturating_add(CLAIM_MS);
        Ok(self
            .store
            .claim_consumption_request(&r.notification_uuid, &self.holder, now, until)
            .await?)
    }

    async fn record(
        &self,
        r: &ConsumptionRequestEntry,
        progress: &ConsumptionProgress,
        metric: &str,
        delay: Option<Duration>,
    ) -> Result<(), SyncError> {
        let kept = self
            .store
            .record_consumption_progress(&r.notification_uuid, &self.holder, progress)
            .await?;
        if kept && !metric.is_empty() {
            self.metrics.consumption_request(metric, delay);
        }
        Ok(())
    }
}

/// Apple's "later": rate limits, its 5xx and retryable codes, no answer,
/// and a key Apple refused (an operator may fix it before the deadline).
fn retryable(error: &AppleError) -> bool {
    matches!(
        error,
        AppleError::RateLimited { .. }
            | AppleError::RetriesExhausted { .. }
            | AppleError::Unauthorized(_)
            | AppleError::Token(_)
            | AppleError::Client(_)
    )
}

/// When to try again after `attempts` failed ones: doubling from 30
/// seconds to 15 minutes, and never past the deadline.
fn retry_at(now: i64, attempts: i64, deadline: i64) -> i64 {
    let doublings = u32::try_from(attempts.clamp(0, 10)).unwrap_or(0);
    let wait = FIRST_RETRY_MS
        .saturating_mul(2_i64.saturating_pow(doublings))
        .min(MAX_RETRY_MS);
    now.saturating_add(wait).min(deadline)
}

/// What would be sent for `r` now under `policy`, whatever it still waits
/// for (the refund desk shows it before it goes).
pub fn planned_answer(
    r: &ConsumptionRequestEntry,
    policy: &Policy,
) -> crate::appstore_api::ConsumptionRequest {
    consumption::answer(&asked(r), policy, facts(r).unwrap_or_default())
}

fn asked(r: &ConsumptionRequestEntry) -> Asked {
    Asked {
        product_type: r.product_type.as_deref().map(ProductType::from_raw),
        in_app_ownership_type: r
            .in_app_ownership_type
            .as_deref()
            .map(InAppOwnershipType::from_raw),
        app_account_token: r.app_account_token.clone(),
        requested_at: r.requested_at,
        deadline: r.deadline,
        purchase_date: r.purchase_date,
        expires_date: r.expires_date,
        send_now: r.send_now_by.is_some(),
    }
}

fn consent(r: &ConsumptionRequestEntry) -> Option<Consent> {
    Some(Consent {
        consumption_data: r.consent?,
        recorded_at: r.consent_recorded_at.unwrap_or_default(),
    })
}

fn facts(r: &ConsumptionRequestEntry) -> Option<Facts> {
    r.facts_recorded_at?;
    Some(Facts {
        delivery_status: r
            .facts_delivery_status
            .as_deref()
            .map(DeliveryStatus::from_raw),
        consumption_percentage: r.facts_consumption_percentage,
        sample_content_provided: r.facts_sample_content_provided,
        refund_preference: r
            .facts_refund_preference
            .as_deref()
            .map(RefundPreference::from_raw),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_and_stop_at_the_deadline() {
        assert_eq!(retry_at(0, 0, i64::MAX), 30_000);
        assert_eq!(retry_at(0, 2, i64::MAX), 120_000);
        assert_eq!(retry_at(0, 9, i64::MAX), MAX_RETRY_MS);
        assert_eq!(retry_at(0, i64::MAX, 1_000), 1_000);
        assert_eq!(retry_at(i64::MAX, i64::MIN, i64::MAX), i64::MAX);
    }
}
