//! A bounded cache of validated chains.
//!
//! Whether a chain is valid depends only on its certificates, the trust anchors
//! and the time. Apple signs everything with a handful of leaves, so after the
//! first token each further one costs a single ES256 verification.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::{Arc, RwLock};

use super::chain::ValidatedChain;
use crate::model::Timestamp;

/// Enough for every leaf Apple has used in years, and still small if an
/// attacker sends many self-made chains (only chains that validated are kept).
pub const DEFAULT_CAPACITY: usize = 64;

/// Validated chains keyed by the exact base64url JWS header that carried them.
/// The header holds `x5c` and nothing else that matters: every header check is
/// a function of its bytes, so a token whose header is byte-for-byte one
/// already verified needs no header parse and no chain work.
///
/// A cache belongs to one set of trust anchors (its [`super::Verifier`]).
#[derive(Debug)]
pub struct ChainCache {
    capacity: usize,
    // Keyed per process, so nobody can aim collisions at the map.
    hasher: RandomState,
    inner: RwLock<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    chains: HashMap<u64, (String, Arc<ValidatedChain>)>,
    // Oldest first: when full, the oldest entry makes room. Apple rotates
    // leaves every two years, so the oldest is the least useful.
    order: VecDeque<u64>,
}

impl ChainCache {
    /// A cache holding at most `capacity` chains; 0 disables caching.
    pub fn new(capacity: usize) -> Self {
        ChainCache {
            capacity,
            hasher: RandomState::new(),
            inner: RwLock::new(Entries::default()),
        }
    }

    fn slot(&self, header_b64: &str) -> u64 {
        // A header is ~5 KB and hashing all of it would cost more than the rest
        // of a cache hit. Its length and first bytes (the leaf certificate's
        // serial number and key) tell chains apart; the full header is then
        // compared, so a shared slot can only cost a miss, never a wrong hit.
        let bytes = header_b64.as_bytes();
        self.hasher
            .hash_one((bytes.len(), bytes.get(..512).unwrap_or(bytes)))
    }

    /// The chain validated for exactly this header, if it is valid at `at`. A
    /// chain outside its validity period is validated again, which reports the
    /// exact reason.
    pub(crate) fn get(&self, header_b64: &str, at: Timestamp) -> Option<Arc<ValidatedChain>> {
        let slot = self.slot(header_b64);
        let entries = self
            .inner
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        entries
            .chains
            .get(&slot)
            .filter(|(header, chain)| header == header_b64 && chain.is_valid_at(at))
            .map(|(_, chain)| Arc::clone(chain))
    }

    pub(crate) fn insert(&self, header_b64: &str, chain: Arc<ValidatedChain>) {
        if self.capacity == 0 {
            return;
        }
        let slot = self.slot(header_b64);
        let mut entries = self
            .inner
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries
            .chains
            .insert(slot, (header_b64.to_owned(), chain))
            .is_some()
        {
            return;
        }
        entries.order.push_back(slot);
        while entries.order.len() > self.capacity {
            if let Some(oldest) = entries.order.pop_front() {
                entries.chains.remove(&oldest);
            }
        }
    }

    pub fn len(&self) -> usize {
        let entries = self
            .inner
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.chains.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for ChainCache {
    fn default() -> Self {
        ChainCache::new(DEFAULT_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(from: i64, until: i64) -> Arc<ValidatedChain> {
        Arc::new(ValidatedChain {
            leaf_key: vec![4],
            valid_from: Timestamp::from_millis(from),
            valid_until: Timestamp::from_millis(until),
        })
    }

    fn at(millis: i64) -> Timestamp {
        Timestamp::from_millis(millis)
    }

    #[test]
    fn honours_the_validity_window() {
        let cache = ChainCache::new(4);
        cache.insert("h1", chain(100, 200));
        assert!(cache.get("h1", at(150)).is_some());
        assert!(cache.get("h1", at(99)).is_none());
        assert!(cache.get("h1", at(201)).is_none());
        assert!(cache.get("h2", at(150)).is_none());
    }

    #[test]
    fn only_the_exact_header_hits() {
        let cache = ChainCache::new(4);
        let long = "a".repeat(2000);
        cache.insert(&long, chain(0, 10));
        let mut same_prefix = long.clone();
        same_prefix.replace_range(1999..2000, "b");
        assert!(cache.get(&long, at(5)).is_some());
        assert!(cache.get(&same_prefix, at(5)).is_none());
    }

    #[test]
    fn stays_within_capacity_evicting_the_oldest() {
        let cache = ChainCache::new(2);
        for header in ["h1", "h2", "h3"] {
            cache.insert(header, chain(0, 10));
        }
        assert_eq!(cache.len(), 2);
        assert!(cache.get("h1", at(5)).is_none());
        assert!(cache.get("h3", at(5)).is_some());
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let cache = ChainCache::new(0);
        cache.insert("h1", chain(0, 10));
        assert!(cache.is_empty());
    }
}
