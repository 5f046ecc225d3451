//! The tunnel tracker: which kas instances hold tunnels of which agent.
//!
//! Upstream keeps this in a Redis hash `<prefix>:tunnel_tracker2:kas_by_agent_id:<agentId>` whose
//! fields are kas private-API URLs, with a 5 minute TTL refreshed every 4 minutes, and unregisters 5 s
//! after the last tunnel of an agent is gone. kasim puts the store behind [`Tracker`]; the in-memory
//! implementation is shared by every kas replica of one process (simulator, tests).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clock::SharedClock;
use crate::transport::BoxFuture;
use crate::tunnel::registry::AgentId;

/// How long a registration lives without refresh.
pub const TTL: Duration = Duration::from_secs(5 * 60);
/// How often a kas refreshes its registrations.
pub const REFRESH_PERIOD: Duration = Duration::from_secs(4 * 60);
/// Delay between the last tunnel of an agent going away and unregistering it.
pub const UNREGISTER_DELAY: Duration = Duration::from_secs(5);

/// A store of agent id → kas URLs.
pub trait Tracker: Send + Sync + std::fmt::Debug + 'static {
    /// Records (or refreshes) that `kas_url` holds tunnels of `agent_id`, for `ttl`.
    fn register(&self, agent_id: AgentId, kas_url: &str, ttl: Duration) -> BoxFuture<'_, ()>;
    fn unregister(&self, agent_id: AgentId, kas_url: &str) -> BoxFuture<'_, ()>;
    /// Live URLs for the agent, sorted.
    fn kas_urls(&self, agent_id: AgentId) -> BoxFuture<'_, Vec<String>>;
}

/// In-process tracker with TTLs measured on an injected clock.
#[derive(Debug, Clone)]
pub struct InMemoryTracker {
    clock: SharedClock,
    entries: Arc<Mutex<BTreeMap<AgentId, BTreeMap<String, i64>>>>,
}

impl InMemoryTracker {
    pub fn new(clock: SharedClock) -> Self {
        Self { clock, entries: Arc::default() }
    }

    fn live(&self, agent_id: AgentId) -> Vec<String> {
        let now = self.clock.unix_millis();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let Some(urls) = entries.get_mut(&agent_id) else {
            return vec![];
        };
        urls.retain(|_, expires| *expires > now);
        urls.keys().cloned().collect()
    }
}

impl Tracker for InMemoryTracker {
    fn register(&self, agent_id: AgentId, kas_url: &str, ttl: Duration) -> BoxFuture<'_, ()> {
        let expires = self.clock.unix_millis() + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(agent_id)
            .or_default()
            .insert(kas_url.to_owned(), expires);
        Box::pin(async {})
    }

    fn unregister(&self, agent_id: AgentId, kas_url: &str) -> BoxFuture<'_, ()> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(urls) = entries.get_mut(&agent_id) {
            urls.remove(kas_url);
            if urls.is_empty() {
                entries.remove(&agent_id);
            }
        }
        Box::pin(async {})
    }

    fn kas_urls(&self, agent_id: AgentId) -> BoxFuture<'_, Vec<String>> {
        let urls = self.live(agent_id);
        Box::pin(async move { urls })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::TokioClock;

    #[tokio::test(start_paused = true)]
    async fn entries_expire_unless_refreshed() {
        let t = InMemoryTracker::new(Arc::new(TokioClock::new(0)));
        t.register(1, "grpc://kas-b:8155", TTL).await;
        t.register(1, "grpc://kas-a:8155", TTL).await;
        assert_eq!(t.kas_urls(1).await, vec!["grpc://kas-a:8155", "grpc://kas-b:8155"]);
        tokio::time::sleep(REFRESH_PERIOD).await;
        t.register(1, "grpc://kas-a:8155", TTL).await;
        tokio::time::sleep(TTL - REFRESH_PERIOD).await;
        assert_eq!(t.kas_urls(1).await, vec!["grpc://kas-a:8155"], "b expired, a was refreshed");
        t.unregister(1, "grpc://kas-a:8155").await;
        assert!(t.kas_urls(1).await.is_empty());
        assert!(t.kas_urls(2).await.is_empty());
    }
}

/// A fixed set of kas replicas, for deployments without a shared store: every agent is looked for on
/// every peer. Registration is a no-op; a peer without the agent's tunnels just never answers
/// `tunnel_ready`, and the first one that does wins.
#[derive(Debug, Clone, Default)]
pub struct StaticTracker {
    peers: Vec<String>,
}

impl StaticTracker {
    pub fn new(mut peers: Vec<String>) -> Self {
        peers.sort();
        peers.dedup();
        Self { peers }
    }
}

impl Tracker for StaticTracker {
    fn register(&self, _: AgentId, _: &str, _: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    fn unregister(&self, _: AgentId, _: &str) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    fn kas_urls(&self, _: AgentId) -> BoxFuture<'_, Vec<String>> {
        let p = self.peers.clone();
        Box::pin(async move { p })
    }
}
