//! One instance at a time for each periodic job.
//!
//! Several `serve` processes may share one database; each accepts
//! notifications and answers queries, but the periodic check, backfill and
//! reconciliation should run on one of them. Before each run a job takes or
//! renews its lease in the database; the lease lasts three intervals, so a
//! holder that crashed is replaced within that, and one that stops cleanly
//! gives it back for the next instance to take at its next tick.

use std::sync::Arc;
use std::time::Duration;

use crate::metrics::Metrics;
use crate::store::Store;

/// What names this process as a holder: unique per start.
fn holder_id() -> String {
    let mut random = [0u8; 8];
    // Uniqueness only: on failure the address of a fresh allocation (and
    // the process id below) stands in.
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random).is_err() {
        let stand_in = Box::new(0u8);
        random = (std::ptr::from_ref(&*stand_in) as usize as u64).to_be_bytes();
    }
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!("pid-{}-{hex}", std::process::id())
}

/// What every job's lease shares: this process's name and its metrics.
#[derive(Clone)]
pub struct Leases {
    holder: Arc<str>,
    metrics: Arc<Metrics>,
}

impl Leases {
    pub fn new(metrics: Arc<Metrics>) -> Leases {
        Leases {
            holder: holder_id().into(),
            metrics,
        }
    }

    /// This process, as leases and claims name it.
    pub fn holder(&self) -> Arc<str> {
        Arc::clone(&self.holder)
    }

    /// The lease of `job`, which runs every `interval`.
    pub fn lease(&self, store: &Store, job: &'static str, interval: Duration) -> JobLease {
        JobLease::new(
            store.clone(),
            job,
            Arc::clone(&self.holder),
            interval,
            Arc::clone(&self.metrics),
        )
    }
}

#[derive(Clone)]
pub struct JobLease {
    store: Store,
    job: &'static str,
    holder: Arc<str>,
    lasts: Duration,
    metrics: Arc<Metrics>,
}

impl JobLease {
    /// The lease of `job`, which runs every `interval`.
    pub fn new(
        store: Store,
        job: &'static str,
        holder: Arc<str>,
        interval: Duration,
        metrics: Arc<Metrics>,
    ) -> JobLease {
        JobLease {
            store,
            job,
            holder,
            lasts: interval.saturating_mul(3),
            metrics,
        }
    }

    /// Takes or renews the lease; false when another instance holds it, or
    /// the database cannot say (then nobody should assume it).
    pub async fn hold(&self) -> bool {
        let now = self.store.now();
        let until = now.saturating_add(i64::try_from(self.lasts.as_millis()).unwrap_or(i64::MAX));
        let held = match self
            .store
            .hold_lease(self.job, &self.holder, now, until)
            .await
        {
            Ok(held) => held,
            Err(error) => {
                tracing::warn!(job = self.job, error = %error.chain(), "job lease: the database did not answer");
                false
            }
        };
        self.metrics.job_held(self.job, held);
        held
    }

    /// Gives the lease back (at shutdown), so another instance takes over at once.
    pub async fn release(&self) {
        if let Err(error) = self.store.release_lease(self.job, &self.holder).await {
            tracing::warn!(job = self.job, error = %error.chain(), "job lease not given back; it will lapse");
        }
        self.metrics.job_held(self.job, false);
    }
}
