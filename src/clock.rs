//! The one place the wall clock is read. Everything else asks a [`Clock`],
//! passed in like any other dependency (the store and the application state
//! carry one), so that a test makes time pass by advancing a
//! [`ManualClock`] rather than sleeping or back-dating rows.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::model::Timestamp;

/// What tells the time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> Timestamp;
}

/// A clock to share between the parts of a process.
pub type SharedClock = Arc<dyn Clock>;

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
        Timestamp::from_millis(i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX))
    }
}

/// The system's clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that stands still until told to move: for tests.
#[derive(Debug)]
pub struct ManualClock {
    millis: AtomicI64,
}

impl ManualClock {
    pub fn starting_at(at: Timestamp) -> ManualClock {
        ManualClock {
            millis: AtomicI64::new(at.as_millis()),
        }
    }

    /// Starting at the system's time now.
    pub fn starting_now() -> ManualClock {
        ManualClock::starting_at(SystemClock.now())
    }

    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        // fetch_update never fails with a closure that always answers.
        let _ = self
            .millis
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                Some(now.saturating_add(by))
            });
    }

    pub fn set(&self, at: Timestamp) {
        self.millis.store(at.as_millis(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.millis.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::starting_at(Timestamp::from_millis(1_000));
        assert_eq!(clock.now().as_millis(), 1_000);
        clock.advance(Duration::from_secs(2));
        assert_eq!(clock.now().as_millis(), 3_000);
        clock.set(Timestamp::from_millis(i64::MAX));
        clock.advance(Duration::from_secs(1));
        assert_eq!(clock.now().as_millis(), i64::MAX);
    }
}
