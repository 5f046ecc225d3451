//! Deterministic secret generation.
//!
//! Rails uses `Devise.friendly_token(n)`: URL-safe base64 of random bytes with
//! `lIO0` translated to `sxyz`. The simulator needs reproducible runs, so the
//! randomness comes from a seeded SplitMix64 stream instead of the OS.

/// Prefix of every agent token (no instance prefix is modelled).
pub const AGENT_TOKEN_PREFIX: &str = "glagent-";
/// Length of the random part of an agent token.
pub const AGENT_TOKEN_RANDOM_LEN: usize = 50;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Seeded generator of `friendly_token`-style strings.
#[derive(Debug, Clone)]
pub struct TokenGenerator {
    state: u64,
}

impl TokenGenerator {
    /// Same seed, same sequence of tokens.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        // SplitMix64: tiny, well distributed, and good enough for test secrets.
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `len` URL-safe characters, with Devise's `lIO0` -> `sxyz` translation.
    pub fn friendly(&mut self, len: usize) -> String {
        let mut out = String::with_capacity(len);
        while out.len() < len {
            let mut word = self.next_u64();
            for _ in 0..10 {
                if out.len() == len {
                    break;
                }
                let c = ALPHABET[(word & 63) as usize] as char;
                word >>= 6;
                out.push(match c {
                    'l' => 's',
                    'I' => 'x',
                    'O' => 'y',
                    '0' => 'z',
                    other => other,
                });
            }
        }
        out
    }

    /// 32 seeded bytes, e.g. an Ed25519 seed.
    pub(crate) fn bytes32(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for chunk in out.chunks_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        out
    }

    /// A fresh agent token: `glagent-` + 50 URL-safe characters.
    pub fn agent_token(&mut self) -> String {
        format!("{AGENT_TOKEN_PREFIX}{}", self.friendly(AGENT_TOKEN_RANDOM_LEN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_tokens_have_the_rails_shape_and_are_reproducible() {
        let mut a = TokenGenerator::new(7);
        let mut b = TokenGenerator::new(7);
        let t1 = a.agent_token();
        assert_eq!(t1, b.agent_token());
        assert_ne!(t1, a.agent_token(), "successive tokens differ");
        let rest = t1.strip_prefix("glagent-").expect("prefix");
        assert_eq!(rest.len(), 50);
        assert!(rest.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert!(!rest.contains(['l', 'I', 'O', '0']), "{rest}");
        assert_ne!(TokenGenerator::new(8).agent_token(), t1, "seed matters");
    }
}
