//! Retention of entitlement events: every hour, on the instance holding the
//! job's lease, the events older than `events.retention_days` go, and the
//! feed remembers how far (an older cursor then answers 410).

use std::time::Duration;

use crate::lease::JobLease;
use crate::stop::Stop;
use crate::store::Store;

/// How often events are pruned.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// Prunes now, then every [`PRUNE_INTERVAL`] until `stop`.
pub fn spawn_prune(
    store: Store,
    retention_ms: i64,
    lease: JobLease,
    stop: Stop,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if lease.hold().await {
                let before = store.now().saturating_sub(retention_ms);
                match store.prune_events(before).await {
                    Ok(0) => {}
                    Ok(gone) => tracing::info!(gone, "entitlement events past retention removed"),
                    Err(error) => {
                        tracing::warn!(error = %error.chain(), "entitlement events not pruned")
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(PRUNE_INTERVAL) => {}
                _ = stop.cancelled() => {
                    lease.release().await;
                    return;
                }
            }
        }
    })
}
