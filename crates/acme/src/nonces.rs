//! Where nonces (RFC 8555 7.2) are kept: in the store, so that every instance sharing it
//! accepts a nonce once, or in this process's memory.
//!
//! A nonce is a write when it is handed out and another when it is used: two fsynced
//! transactions for every ACME request, nearly half the server's CPU of a whole ACME flow
//! (docs/PERFORMANCE.md). Nothing about a nonce needs to survive a crash: a client whose nonce
//! is unknown gets `badNonce` with a fresh one in `Replay-Nonce` and retries (RFC 8555 6.5),
//! which every ACME client does. So a CA whose store is one SQLite file keeps them in memory.
//! Several instances sharing a PostgreSQL or MySQL database keep them in the store: a load
//! balancer may send a client's next request to another instance, which must accept the nonce
//! the first one handed out.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::store::AcmeStore;

/// Live nonces one process keeps at most (about 100 bytes each). Far above what the per-address
/// limits let the clients of one address hold; a flood from many addresses is refused rather
/// than grow memory.
const MEMORY_NONCES_MAX: usize = 1_000_000;

/// Where this CA keeps its nonces.
#[derive(Debug)]
pub enum NonceBook {
    /// In the store: accepted once by any instance sharing it.
    Store,
    /// In this process's memory: accepted once, here; forgotten on restart.
    Memory(MemoryNonces),
}

impl NonceBook {
    /// A book kept in this process's memory.
    pub fn memory() -> NonceBook {
        NonceBook::Memory(MemoryNonces::default())
    }

    /// Records `nonce` as handed out, usable up to and including `expires_at` (Unix seconds).
    pub(crate) async fn insert(
        &self,
        store: &dyn AcmeStore,
        nonce: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        match self {
            NonceBook::Store => Ok(store.insert_nonce(nonce, expires_at).await?),
            NonceBook::Memory(memory) => memory.insert(nonce, now, expires_at),
        }
    }

    /// Uses `nonce`: true when it was handed out, is not expired at `now` and was not used.
    pub(crate) async fn consume(
        &self,
        store: &dyn AcmeStore,
        nonce: &str,
        now: i64,
    ) -> Result<bool> {
        match self {
            NonceBook::Store => Ok(store.consume_nonce(nonce, now).await?),
            NonceBook::Memory(memory) => Ok(memory.consume(nonce, now)),
        }
    }

    /// Forgets expired nonces; how many.
    pub(crate) async fn prune(&self, store: &dyn AcmeStore, now: i64) -> Result<u64> {
        match self {
            NonceBook::Store => Ok(store.prune_nonces(now).await?),
            NonceBook::Memory(memory) => Ok(memory.prune(now)),
        }
    }
}

/// Nonces in memory: each with the second it expires after.
#[derive(Debug, Default)]
pub struct MemoryNonces {
    live: Mutex<HashMap<String, i64>>,
}

impl MemoryNonces {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        match self.live.lock() {
            Ok(live) => live,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn insert(&self, nonce: &str, now: i64, expires_at: i64) -> Result<()> {
        let mut live = self.lock();
        if live.len() >= MEMORY_NONCES_MAX {
            live.retain(|_, expires| *expires >= now);
            if live.len() >= MEMORY_NONCES_MAX {
                return Err(Error::RateLimited {
                    detail: format!(
                        "{MEMORY_NONCES_MAX} nonces are handed out and unused; try again later"
                    ),
                    retry_after_seconds: 60,
                });
            }
        }
        live.insert(nonce.to_owned(), expires_at);
        Ok(())
    }

    fn consume(&self, nonce: &str, now: i64) -> bool {
        self.lock()
            .remove(nonce)
            .is_some_and(|expires_at| expires_at >= now)
    }

    fn prune(&self, now: i64) -> u64 {
        let mut live = self.lock();
        let before = live.len();
        live.retain(|_, expires| *expires >= now);
        u64::try_from(before - live.len()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_in_memory_is_used_once_and_not_after_it_expires() {
        let nonces = MemoryNonces::default();
        nonces.insert("a", 100, 200).unwrap();
        nonces.insert("b", 100, 150).unwrap();
        assert!(nonces.consume("a", 200), "usable through its last second");
        assert!(!nonces.consume("a", 120), "used twice");
        assert!(!nonces.consume("b", 151), "expired");
        assert!(!nonces.consume("c", 100), "never handed out");
        nonces.insert("d", 100, 150).unwrap();
        nonces.insert("e", 100, 300).unwrap();
        assert_eq!(nonces.prune(200), 1);
        assert_eq!(nonces.lock().len(), 1);
    }
}
