//! `[events]`: entitlement events and their feed.

use serde::{Deserialize, Serialize};

/// Entitlement events (`GET /v1/events`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsSettings {
    /// Events older than this are removed (at least 1); a feed cursor
    /// before them answers 410 CURSOR_EXPIRED.
    pub retention_days: u64,
}

impl EventsSettings {
    /// The error for a value that cannot be kept, naming its key.
    pub(super) fn problem(&self) -> Option<String> {
        (self.retention_days == 0).then(|| "events.retention_days: must be at least 1".to_owned())
    }

    /// Retention in milliseconds.
    pub fn retention_ms(&self) -> i64 {
        i64::try_from(self.retention_days)
            .unwrap_or(i64::MAX)
            .saturating_mul(86_400_000)
    }
}
