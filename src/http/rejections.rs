//! Deliveries refused before anything was stored (forged, broken, not a
//! notification), counted per hour and code in memory and added to the
//! database every few seconds: the console's delivery health page reads
//! them from there, so every instance's count shows, and a flood of garbage
//! costs a few row updates instead of a write per request.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::store::{Store, StoreError};

/// How often the counts are written.
const FLUSH_EVERY: Duration = Duration::from_secs(2);
const HOUR_MS: i64 = 3_600_000;

#[derive(Debug, Default)]
pub struct RejectionTally {
    pending: Mutex<BTreeMap<(i64, &'static str), i64>>,
}

impl RejectionTally {
    pub fn note(&self, code: &'static str, now_ms: i64) {
        let hour = now_ms.div_euclid(HOUR_MS).saturating_mul(HOUR_MS);
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let count = pending.entry((hour, code)).or_insert(0);
        *count = count.saturating_add(1);
    }

    /// Writes what was counted since the last flush; on failure keeps it
    /// for the next.
    pub async fn flush(&self, store: &Store) -> Result<(), StoreError> {
        let taken = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if taken.is_empty() {
            return Ok(());
        }
        let counts: Vec<(i64, String, i64)> = taken
            .iter()
            .map(|((hour, code), count)| (*hour, (*code).to_owned(), *count))
            .collect();
        let written = store.add_rejections(&counts).await;
        if written.is_err() {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            for (key, count) in taken {
                let kept = pending.entry(key).or_insert(0);
                *kept = kept.saturating_add(count);
            }
        }
        written
    }
}

/// Flushes every few seconds until `stop`, then once more (the server
/// flushes again after its last request).
pub fn spawn_flusher(
    tally: Arc<RejectionTally>,
    store: Store,
    stop: crate::stop::Stop,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let stopped = tokio::select! {
                () = tokio::time::sleep(FLUSH_EVERY) => false,
                () = stop.cancelled() => true,
            };
            if let Err(e) = tally.flush(&store).await {
                tracing::warn!(error = %e.chain(), "refused deliveries not counted yet; trying again");
            }
            if stopped {
                break;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_hour_and_code() {
        let tally = RejectionTally::default();
        tally.note("INVALID_SIGNATURE", HOUR_MS + 5);
        tally.note("INVALID_SIGNATURE", 2 * HOUR_MS - 1);
        tally.note("INVALID_REQUEST", 2 * HOUR_MS);
        let pending = tally.pending.lock().unwrap_or_else(|e| e.into_inner());
        assert_eq!(pending.get(&(HOUR_MS, "INVALID_SIGNATURE")), Some(&2));
        assert_eq!(pending.get(&(2 * HOUR_MS, "INVALID_REQUEST")), Some(&1));
        assert_eq!(pending.len(), 2);
    }
}
