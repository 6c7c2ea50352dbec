//! A bounded cache of validated chains.
//!
//! Whether a chain is valid depends only on its certificates, the trust anchors
//! and the time. Apple signs everything with a handful of leaves, so after the
//! first token each further one costs a single ES256 verification.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};

use ring::digest::{Context, SHA256};

use super::chain::ValidatedChain;
use super::compact::CHAIN_LENGTH;
use crate::model::Timestamp;

/// Enough for every leaf Apple has used in years, and still small if an
/// attacker sends many self-made chains (only chains that validated are kept).
pub const DEFAULT_CAPACITY: usize = 64;

pub(crate) type ChainKey = [u8; 32];

/// Validated chains keyed by the SHA-256 of their `x5c` entries. A cache
/// belongs to one set of trust anchors (its [`super::Verifier`]).
#[derive(Debug)]
pub struct ChainCache {
    capacity: usize,
    inner: RwLock<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    chains: HashMap<ChainKey, Arc<ValidatedChain>>,
    // Oldest first: when full, the oldest entry makes room. Apple rotates
    // leaves every two years, so the oldest is the least useful.
    order: VecDeque<ChainKey>,
}

impl ChainCache {
    /// A cache holding at most `capacity` chains; 0 disables caching.
    pub fn new(capacity: usize) -> Self {
        ChainCache {
            capacity,
            inner: RwLock::new(Entries::default()),
        }
    }

    pub(crate) fn key(x5c: &[String; CHAIN_LENGTH]) -> ChainKey {
        let mut context = Context::new(&SHA256);
        for entry in x5c {
            // The length prefix keeps ["ab","c"] and ["a","bc"] apart.
            context.update(&(entry.len() as u64).to_be_bytes());
            context.update(entry.as_bytes());
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(context.finish().as_ref());
        key
    }

    /// The cached chain for `key`, if it is valid at `at`. A chain outside its
    /// validity period is validated again, which reports the exact reason.
    pub(crate) fn get(&self, key: &ChainKey, at: Timestamp) -> Option<Arc<ValidatedChain>> {
        let entries = self
            .inner
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        entries
            .chains
            .get(key)
            .filter(|chain| chain.is_valid_at(at))
            .cloned()
    }

    pub(crate) fn insert(&self, key: ChainKey, chain: Arc<ValidatedChain>) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self
            .inner
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.chains.insert(key, chain).is_some() {
            return;
        }
        entries.order.push_back(key);
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

    fn key(n: u8) -> ChainKey {
        [n; 32]
    }

    #[test]
    fn honours_the_validity_window() {
        let cache = ChainCache::new(4);
        cache.insert(key(1), chain(100, 200));
        assert!(cache.get(&key(1), Timestamp::from_millis(150)).is_some());
        assert!(cache.get(&key(1), Timestamp::from_millis(99)).is_none());
        assert!(cache.get(&key(1), Timestamp::from_millis(201)).is_none());
        assert!(cache.get(&key(2), Timestamp::from_millis(150)).is_none());
    }

    #[test]
    fn stays_within_capacity_evicting_the_oldest() {
        let cache = ChainCache::new(2);
        for n in 1..=3 {
            cache.insert(key(n), chain(0, 10));
        }
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&key(1), Timestamp::from_millis(5)).is_none());
        assert!(cache.get(&key(3), Timestamp::from_millis(5)).is_some());
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let cache = ChainCache::new(0);
        cache.insert(key(1), chain(0, 10));
        assert!(cache.is_empty());
    }

    #[test]
    fn key_separates_entry_boundaries() {
        let a = ["ab".to_string(), "c".to_string(), String::new()];
        let b = ["a".to_string(), "bc".to_string(), String::new()];
        assert_ne!(ChainCache::key(&a), ChainCache::key(&b));
    }
}
