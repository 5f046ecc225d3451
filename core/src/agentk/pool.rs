//! agentk's tunnel pool (upstream reverse_tunnel/agent/connection_manager.go).
//!
//! Rules: keep at least `min_idle` (2) idle tunnels; when a tunnel becomes active and fewer than 2
//! remain idle, start `min(10, 500 − total)` more; never more than 500 in total; an idle tunnel closes
//! when it has been idle for 1 minute and more than 2 are idle (checked each minute it stays idle).
//! A tunnel being dialled counts as idle, as upstream. After serving a call, or when kas ends an
//! unused tunnel, a tunnel re-dials at once; after an error it backs off.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::backoff::{AGENTK_BACKOFF, BackoffConfig};

/// Pool limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolConfig {
    pub min_idle: usize,
    pub max_connections: usize,
    pub scale_up_step: usize,
    pub max_idle_time: Duration,
    pub backoff: BackoffConfig,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            min_idle: 2,
            max_connections: 500,
            scale_up_step: 10,
            max_idle_time: Duration::from_secs(60),
            backoff: AGENTK_BACKOFF,
        }
    }
}

/// A snapshot of the pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub idle: usize,
    pub active: usize,
    /// The largest total ever reached.
    pub max_total: usize,
    /// Tunnels started per scale-up, in order (the initial `min_idle` not included).
    pub scale_ups: Vec<usize>,
    /// Tunnels closed for idleness.
    pub idle_closed: usize,
    /// Tunnel attempts that failed and backed off.
    pub errors: usize,
}

impl PoolStats {
    pub fn total(&self) -> usize {
        self.idle + self.active
    }
}

#[derive(Debug)]
struct State {
    cfg: PoolConfig,
    next_id: u64,
    /// id → active?
    tunnels: BTreeMap<u64, bool>,
    stats: PoolStats,
    rng: ChaCha8Rng,
}

/// The pool's bookkeeping; tunnel tasks report to it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PoolState {
    inner: Arc<Mutex<State>>,
}

/// A tunnel the caller must start, with its own seeded generator.
#[derive(Debug)]
pub struct NewTunnel {
    pub id: u64,
    pub rng: ChaCha8Rng,
}

impl PoolState {
    pub fn new(cfg: PoolConfig, seed: u64) -> Self {
        Self {
            inner: Arc::new(Mutex::new(State {
                cfg,
                next_id: 0,
                tunnels: BTreeMap::new(),
                stats: PoolStats::default(),
                rng: ChaCha8Rng::seed_from_u64(seed),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn config(&self) -> PoolConfig {
        self.lock().cfg
    }

    fn add(st: &mut State, n: usize) -> Vec<NewTunnel> {
        (0..n)
            .map(|_| {
                st.next_id += 1;
                st.tunnels.insert(st.next_id, false);
                st.stats.idle += 1;
                NewTunnel { id: st.next_id, rng: ChaCha8Rng::seed_from_u64(st.rng.next_u64()) }
            })
            .collect()
    }

    fn note_total(st: &mut State) {
        let total = st.stats.total();
        st.stats.max_total = st.stats.max_total.max(total);
    }

    /// The initial tunnels.
    pub fn start(&self) -> Vec<NewTunnel> {
        let mut st = self.lock();
        let n = st.cfg.min_idle.min(st.cfg.max_connections);
        let t = Self::add(&mut st, n);
        Self::note_total(&mut st);
        t
    }

    /// A tunnel got a request. Returns tunnels to start if the pool must grow.
    pub fn on_active(&self, id: u64) -> Vec<NewTunnel> {
        let mut st = self.lock();
        if let Some(active) = st.tunnels.get_mut(&id)
            && !*active
        {
            *active = true;
            st.stats.idle -= 1;
            st.stats.active += 1;
        }
        let total = st.stats.total();
        if st.stats.idle < st.cfg.min_idle && total < st.cfg.max_connections {
            let n = st.cfg.scale_up_step.min(st.cfg.max_connections - total);
            st.stats.scale_ups.push(n);
            let t = Self::add(&mut st, n);
            Self::note_total(&mut st);
            return t;
        }
        vec![]
    }

    /// A tunnel finished its call and goes back to idle (it re-dials).
    pub fn on_idle(&self, id: u64) {
        let mut st = self.lock();
        if let Some(active) = st.tunnels.get_mut(&id)
            && *active
        {
            *active = false;
            st.stats.active -= 1;
            st.stats.idle += 1;
        }
    }

    /// An idle tunnel's minute is up: close it if more than `min_idle` are idle.
    pub fn try_close_idle(&self, id: u64) -> bool {
        let mut st = self.lock();
        if st.stats.idle > st.cfg.min_idle && st.tunnels.get(&id) == Some(&false) {
            st.tunnels.remove(&id);
            st.stats.idle -= 1;
            st.stats.idle_closed += 1;
            true
        } else {
            false
        }
    }

    /// A tunnel task ended for good (shutdown).
    pub fn remove(&self, id: u64) {
        let mut st = self.lock();
        if let Some(active) = st.tunnels.remove(&id) {
            if active {
                st.stats.active -= 1;
            } else {
                st.stats.idle -= 1;
            }
        }
    }

    pub fn note_error(&self) {
        self.lock().stats.errors += 1;
    }

    pub fn stats(&self) -> PoolStats {
        self.lock().stats.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[NewTunnel]) -> Vec<u64> {
        v.iter().map(|t| t.id).collect()
    }

    #[test]
    fn scale_up_by_ten_when_idle_drops_below_two_and_cap_at_500() {
        let p = PoolState::new(PoolConfig::default(), 1);
        let mut idle: Vec<u64> = ids(&p.start());
        assert_eq!(idle, vec![1, 2]);
        let mut active = 0;
        let mut steps = vec![];
        while let Some(id) = idle.pop() {
            let new = p.on_active(id);
            active += 1;
            if !new.is_empty() {
                steps.push(new.len());
            }
            idle.extend(ids(&new));
            assert!(p.stats().total() <= 500);
        }
        assert_eq!(active, 500);
        assert_eq!(p.stats().max_total, 500);
        assert_eq!(steps.len(), 50, "2 + 49 × 10 = 492, then a final step of 8");
        assert!(steps[..49].iter().all(|s| *s == 10));
        assert_eq!(steps[49], 8);
        assert!(p.on_active(1).is_empty(), "already active");
    }

    #[test]
    fn idle_close_keeps_the_minimum() {
        let p = PoolState::new(PoolConfig::default(), 1);
        let first = ids(&p.start());
        let grown = ids(&p.on_active(first[0]));
        assert_eq!(grown.len(), 10);
        p.on_idle(first[0]);
        assert_eq!(p.stats().idle, 12);
        let mut closed = 0;
        for id in first.iter().chain(&grown) {
            if p.try_close_idle(*id) {
                closed += 1;
            }
        }
        assert_eq!(closed, 10);
        assert_eq!(p.stats().idle, 2);
        assert_eq!(p.stats().idle_closed, 10);
    }

    #[test]
    fn per_tunnel_generators_are_seeded() {
        let a: Vec<u64> =
            PoolState::new(PoolConfig::default(), 9).start().into_iter().map(|mut t| t.rng.next_u64()).collect();
        let b: Vec<u64> =
            PoolState::new(PoolConfig::default(), 9).start().into_iter().map(|mut t| t.rng.next_u64()).collect();
        let c: Vec<u64> =
            PoolState::new(PoolConfig::default(), 10).start().into_iter().map(|mut t| t.rng.next_u64()).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
