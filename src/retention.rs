//! The entitlement events' periodic jobs, each on the instance holding its
//! lease. Retention: every hour, the events older than
//! `events.retention_days` go, and the feed remembers how far (an older
//! cursor then answers 410). The clock: every second, the answers that time
//! changed (a period or a grace period ended with nothing new) are told
//! again at the moment they changed, so a consumer hears ENTITLEMENT_REVOKED
//! then, not only when Apple's EXPIRED arrives.

use std::time::Duration;

use crate::lease::JobLease;
use crate::stop::Stop;
use crate::store::Store;

/// How often events are pruned.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);
/// How often the clock job looks for answers time changed.
pub const CLOCK_INTERVAL: Duration = Duration::from_secs(1);

/// Runs `work` now, then every `interval` until `stop`, while this
/// instance holds `lease`; gives the lease back when stopped.
fn spawn_leased<F, Fut>(
    lease: JobLease,
    interval: Duration,
    stop: Stop,
    mut work: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        loop {
            if lease.hold().await {
                work().await;
            }
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = stop.cancelled() => {
                    lease.release().await;
                    return;
                }
            }
        }
    })
}

/// Prunes now, then every [`PRUNE_INTERVAL`] until `stop`.
pub fn spawn_prune(
    store: Store,
    retention_ms: i64,
    lease: JobLease,
    stop: Stop,
) -> tokio::task::JoinHandle<()> {
    spawn_leased(lease, PRUNE_INTERVAL, stop, move || {
        let store = store.clone();
        async move {
            let before = store.now().saturating_sub(retention_ms);
            match store.prune_events(before).await {
                Ok(0) => {}
                Ok(gone) => tracing::info!(gone, "entitlement events past retention removed"),
                Err(error) => {
                    tracing::warn!(error = %error.chain(), "entitlement events not pruned")
                }
            }
        }
    })
}

/// Tells the answers time changed, every [`CLOCK_INTERVAL`] until `stop`
/// (all that are due, a batch at a time).
pub fn spawn_clock(store: Store, lease: JobLease, stop: Stop) -> tokio::task::JoinHandle<()> {
    spawn_leased(lease, CLOCK_INTERVAL, stop, move || {
        let store = store.clone();
        async move {
            loop {
                match store.retell_due().await {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(error = %error.chain(), "answers changed by time not told yet");
                        return;
                    }
                }
            }
        }
    })
}
