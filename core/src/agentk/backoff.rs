//! agentk's reconnect backoff: Kubernetes' `ExponentialBackoffManager` with upstream's settings
//! (initial 1 s, cap 20 s, factor 1.6, jitter 0.2, reset after 25 s without a backoff).
//!
//! Semantics copied from k8s.io/apimachinery `wait.Backoff.Step`: the returned delay is the current
//! duration plus up to `jitter` × duration; the duration then grows by `factor` and, once it would pass
//! the cap, is pinned to the cap. If more than `reset` passed since the previous backoff started, the
//! sequence starts over. Randomness comes from a seeded generator owned by the caller.

use std::time::Duration;

use rand::{Rng, RngCore};
use tokio::time::Instant;

/// Backoff parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffConfig {
    pub initial: Duration,
    pub max: Duration,
    pub factor: f64,
    pub jitter: f64,
    pub reset: Duration,
}

/// agentk's settings (upstream reverse_tunnel/agent/factory.go).
pub const AGENTK_BACKOFF: BackoffConfig = BackoffConfig {
    initial: Duration::from_secs(1),
    max: Duration::from_secs(20),
    factor: 1.6,
    jitter: 0.2,
    reset: Duration::from_secs(25),
};

/// One backoff sequence.
#[derive(Debug, Clone)]
pub struct Backoff {
    cfg: BackoffConfig,
    duration: Duration,
    capped: bool,
    last_start: Option<Instant>,
}

impl Backoff {
    pub fn new(cfg: BackoffConfig) -> Self {
        Self { cfg, duration: cfg.initial, capped: false, last_start: None }
    }

    /// The next delay, measured at `now` (tokio's clock).
    pub fn next_delay(&mut self, now: Instant, rng: &mut dyn RngCore) -> Duration {
        if self.last_start.is_some_and(|s| now.saturating_duration_since(s) > self.cfg.reset) {
            self.duration = self.cfg.initial;
            self.capped = false;
        }
        self.last_start = Some(now);
        let current = self.duration;
        if !self.capped {
            let next = current.mul_f64(self.cfg.factor);
            if next > self.cfg.max {
                self.duration = self.cfg.max;
                self.capped = true;
            } else {
                self.duration = next;
            }
        }
        if self.cfg.jitter > 0.0 { current + current.mul_f64(rng.random::<f64>() * self.cfg.jitter) } else { current }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn ms(d: Duration) -> u128 {
        d.as_millis()
    }

    #[tokio::test(start_paused = true)]
    async fn sequence_without_jitter_grows_by_1_6_to_the_cap() {
        let mut b = Backoff::new(BackoffConfig { jitter: 0.0, ..AGENTK_BACKOFF });
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let got: Vec<u128> = (0..10).map(|_| ms(b.next_delay(Instant::now(), &mut rng))).collect();
        assert_eq!(got, vec![1000, 1600, 2560, 4096, 6553, 10485, 16777, 20000, 20000, 20000]);
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_stays_within_20_percent_and_is_seeded() {
        let run = |seed| {
            let mut b = Backoff::new(AGENTK_BACKOFF);
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..10).map(|_| b.next_delay(Instant::now(), &mut rng)).collect::<Vec<_>>()
        };
        let base = [1000.0, 1600.0, 2560.0, 4096.0, 6553.6, 10485.76, 16777.216, 20000.0, 20000.0, 20000.0];
        let a = run(7);
        for (d, b) in a.iter().zip(base) {
            let d = d.as_secs_f64() * 1000.0;
            assert!(d >= b - 1.0 && d <= b * 1.2 + 1.0, "{d} not in [{b}, {}]", b * 1.2);
        }
        assert_eq!(a, run(7), "same seed, same delays");
        assert_ne!(a, run(8));
    }

    #[tokio::test(start_paused = true)]
    async fn resets_after_25s_without_backoff() {
        let mut b = Backoff::new(BackoffConfig { jitter: 0.0, ..AGENTK_BACKOFF });
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..5 {
            b.next_delay(Instant::now(), &mut rng);
        }
        tokio::time::sleep(Duration::from_secs(25)).await;
        assert_eq!(ms(b.next_delay(Instant::now(), &mut rng)), 10485, "exactly 25 s is not a reset");
        tokio::time::sleep(Duration::from_millis(25_001)).await;
        assert_eq!(ms(b.next_delay(Instant::now(), &mut rng)), 1000);
    }
}
