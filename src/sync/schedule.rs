//! What `serve` asks Apple on its own, for every app with `[apps.api]`: a
//! backfill over the look-back window, so a lost push heals by itself, and
//! reconciliation of the subscriptions with open findings.

use std::sync::Arc;
use std::time::Duration;

use crate::appstore_api::AppStoreApi;
use crate::check::Tolerances;
use crate::config::AppStoreApiSettings;
use crate::ingest::Ingest;
use crate::lease::Leases;
use crate::stop::Stop;
use crate::store::Store;

use super::consumption::{ConsumptionJob, ConsumptionRun};
use super::{backfill, reconcile_open_findings, BackfillWindow};

/// Starts the scheduled backfill and reconciliation (each when its interval
/// is not 0, on the instance holding its lease); they stop when `stop` is
/// requested.
pub fn spawn_periodic(
    api: Arc<AppStoreApi>,
    ingest: Arc<Ingest>,
    store: Store,
    settings: &AppStoreApiSettings,
    tolerances: Tolerances,
    leases: &Leases,
    stop: &Stop,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    if api.is_empty() {
        return tasks;
    }
    if settings.backfill_interval_ms > 0 {
        let (api, ingest, store, stop) = (
            Arc::clone(&api),
            Arc::clone(&ingest),
            store.clone(),
            stop.clone(),
        );
        let interval = Duration::from_millis(settings.backfill_interval_ms);
        let lease = leases.lease(&store, "backfill", interval);
        let look_back = i64::try_from(settings.backfill_look_back_hours)
            .unwrap_or(i64::MAX / 3_600_000)
            .saturating_mul(3_600_000);
        tasks.push(tokio::spawn(async move {
            loop {
                let held = lease.hold().await;
                for client in api.clients().filter(|_| held) {
                    let window = BackfillWindow {
                        since: store.clock().now().as_millis().saturating_sub(look_back),
                        until: None,
                        only_failures: false,
                    };
                    match backfill(client, &ingest, &store, &window, |_| {}, &stop).await {
                        Ok(report) => tracing::info!(
                            bundle_id = client.bundle_id(),
                            environment = %client.environment(),
                            %report,
                            "scheduled backfill"
                        ),
                        Err(error) => tracing::warn!(
                            bundle_id = client.bundle_id(),
                            environment = %client.environment(),
                            code = error.code(),
                            %error,
                            "scheduled backfill failed"
                        ),
                    }
                    if stop.is_cancelled() {
                        lease.release().await;
                        return;
                    }
                }
                if !sleep(interval, &stop).await {
                    lease.release().await;
                    return;
                }
            }
        }));
    }
    if settings.reconcile_interval_ms > 0 {
        let stop = stop.clone();
        let interval = Duration::from_millis(settings.reconcile_interval_ms);
        let lease = leases.lease(&store, "reconcile", interval);
        tasks.push(tokio::spawn(async move {
            loop {
                let outcome = if lease.hold().await {
                    reconcile_open_findings(&api, &ingest, &store, &tolerances).await
                } else {
                    Ok(Vec::new())
                };
                match outcome {
                    Ok(results) => {
                        for result in results {
                            match result {
                                Ok(r) => tracing::info!(
                                    original_transaction_id = %r.original_transaction_id,
                                    resolved = r.resolved.len(),
                                    still_open = r.still_open.len(),
                                    "reconciled with Apple"
                                ),
                                Err((otid, error)) => tracing::warn!(
                                    original_transaction_id = %otid,
                                    code = error.code(),
                                    %error,
                                    "reconciliation failed"
                                ),
                            }
                        }
                    }
                    Err(error) => {
                        tracing::warn!(code = error.code(), %error, "reconciliation failed")
                    }
                }
                if !sleep(interval, &stop).await {
                    lease.release().await;
                    return;
                }
            }
        }));
    }
    tasks
}

/// Starts the consumption job (when its interval is not 0), on the instance
/// holding its lease; it stops when `stop` is requested. It runs even when
/// no app answers: it closes their requests at once as `ANSWERS_OFF`, so
/// that only a request an app meant to answer can be missed.
pub fn spawn_consumption(
    job: ConsumptionJob,
    settings: &AppStoreApiSettings,
    leases: &Leases,
    stop: &Stop,
) -> Option<tokio::task::JoinHandle<()>> {
    if settings.consumption_interval_ms == 0 {
        return None;
    }
    let interval = Duration::from_millis(settings.consumption_interval_ms);
    let lease = leases.lease(&job.store, "consumption", interval);
    let stop = stop.clone();
    Some(tokio::spawn(async move {
        loop {
            if lease.hold().await {
                match job.run().await {
                    Ok(run) if run == ConsumptionRun::default() => {}
                    Ok(run) => tracing::info!(
                        sent = run.sent,
                        not_sent = run.not_sent,
                        missed = run.missed,
                        retrying = run.retrying,
                        waiting = run.waiting,
                        "consumption requests"
                    ),
                    Err(error) => {
                        tracing::warn!(code = error.code(), %error, "consumption job failed")
                    }
                }
            }
            if !sleep(interval, &stop).await {
                lease.release().await;
                return;
            }
        }
    }))
}

/// Sleeps `interval`; false when a stop was requested meanwhile.
async fn sleep(interval: Duration, stop: &Stop) -> bool {
    let stop = stop.clone();
    tokio::select! {
        _ = tokio::time::sleep(interval) => !stop.is_cancelled(),
        _ = stop.cancelled() => false,
    }
}
