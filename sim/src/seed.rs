//! The run's seed and everything derived from it.
//!
//! One `u64` decides the whole run: turmoil's rng (message latency, host rng), agentk pool seeds,
//! token generation, proxy assignment and swizzle choices. Each consumer gets its own stream,
//! derived from the seed and a label, so adding a consumer does not shift the others. Every derived
//! value is recorded in [`Derived`] and printed before the run (VOPR's habit), and a failing run
//! prints a ready replay command.

use std::fmt;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The environment variable a seed is read from.
pub const SEED_ENV: &str = "KASIM_SEED";

/// The run's root seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seed(pub u64);

/// Why a seed could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SeedError {
    #[error("{SEED_ENV}={0:?} is not a decimal u64")]
    Invalid(String),
}

impl Seed {
    /// `KASIM_SEED` if set, else `default`. A set but malformed value is an error, never ignored.
    pub fn from_env_or(default: u64) -> Result<Self, SeedError> {
        match std::env::var(SEED_ENV) {
            Ok(s) => s.trim().parse().map(Self).map_err(|_| SeedError::Invalid(s)),
            Err(_) => Ok(Self(default)),
        }
    }

    /// A sub-seed for `label`: stable, independent of other labels.
    pub fn derive(self, label: &str) -> u64 {
        // FNV-1a of the label, then SplitMix64 of seed ^ hash: cheap, stable across Rust versions
        // (unlike `DefaultHasher`), and well mixed.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in label.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        let mut z = (self.0 ^ h).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A seeded generator for `label`.
    pub fn rng(self, label: &str) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(self.derive(label))
    }

    /// The command that replays this run: `KASIM_SEED=<seed> <command>`.
    pub fn replay_command(self, command: &str) -> String {
        format!("{SEED_ENV}={} {command}", self.0)
    }
}

impl fmt::Display for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Every setting derived from the seed, in the order it was derived.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Derived {
    entries: Vec<(String, String)>,
}

impl Derived {
    pub fn note(&mut self, key: impl Into<String>, value: impl fmt::Display) {
        self.entries.push((key.into(), value.to_string()));
    }

    pub fn entries(&self) -> &[(String, String)] {
        &self.entries
    }
}

impl fmt::Display for Derived {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v) in &self.entries {
            writeln!(f, "  {k} = {v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_seeds_are_stable_and_label_specific() {
        let s = Seed(7);
        assert_eq!(s.derive("turmoil"), Seed(7).derive("turmoil"));
        assert_ne!(s.derive("turmoil"), s.derive("agentk-0"));
        assert_ne!(s.derive("turmoil"), Seed(8).derive("turmoil"));
        assert_eq!(s.replay_command("cargo test"), "KASIM_SEED=7 cargo test");
    }
}
