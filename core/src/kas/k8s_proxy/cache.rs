//! kas's cache of GitLab authorization answers: allowed_agents for 60 s, errors for 10 s (upstream).
//! Keys are SHA-256 digests of the credential, never the credential itself. tokio time only.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::time::Instant;

pub const TTL: Duration = Duration::from_secs(60);
pub const ERROR_TTL: Duration = Duration::from_secs(10);

type Entries<T> = Arc<Mutex<BTreeMap<[u8; 32], (Instant, T)>>>;

/// A small TTL cache.
#[derive(Debug)]
pub struct Cache<T> {
    entries: Entries<T>,
}

impl<T> Clone for Cache<T> {
    fn clone(&self) -> Self {
        Self { entries: self.entries.clone() }
    }
}

impl<T> Default for Cache<T> {
    fn default() -> Self {
        Self { entries: Arc::default() }
    }
}

impl<T: Clone> Cache<T> {
    pub fn key(parts: &[&str]) -> [u8; 32] {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p.as_bytes());
            h.update([0]);
        }
        h.finalize().into()
    }

    pub fn get(&self, key: &[u8; 32]) -> Option<T> {
        let now = Instant::now();
        let e = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        e.get(key).filter(|(exp, _)| *exp > now).map(|(_, v)| v.clone())
    }

    pub fn put(&self, key: [u8; 32], value: T, ttl: Duration) {
        let now = Instant::now();
        let mut e = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        e.retain(|_, (exp, _)| *exp > now);
        e.insert(key, (now + ttl, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn entries_expire() {
        let c: Cache<u32> = Cache::default();
        let k = Cache::<u32>::key(&["ci", "token"]);
        c.put(k, 1, TTL);
        tokio::time::sleep(Duration::from_secs(59)).await;
        assert_eq!(c.get(&k), Some(1));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(c.get(&k), None);
        assert_ne!(Cache::<u32>::key(&["a", "bc"]), Cache::<u32>::key(&["ab", "c"]));
    }
}
