//! FoundationDB's swizzle-clogging: pick a random subset of links, clog them one by one, then
//! unclog them in a (different) random order. Clogging is turmoil's `hold` — a transient stall,
//! not a loss — which is what makes it find ordering bugs rather than just killing connections.

use std::time::Duration;

use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::fault::{Fault, FaultError, Link, Swizzle};

/// Expands `s`, starting at `at`, into timed holds and releases. Deterministic for a given rng.
pub fn expand(
    s: &Swizzle,
    at: Duration,
    candidates: &[Link],
    rng: &mut ChaCha8Rng,
) -> Result<Vec<(Duration, Fault)>, FaultError> {
    if s.count > candidates.len() {
        return Err(FaultError::SwizzleCount { count: s.count, links: candidates.len() });
    }
    let mut links = candidates.to_vec();
    links.shuffle(rng);
    links.truncate(s.count);
    let mut out = Vec::with_capacity(2 * links.len());
    let mut t = at;
    for l in &links {
        out.push((t, Fault::Hold(l.clone())));
        t += s.interval.0;
    }
    let mut order = links;
    order.shuffle(rng);
    for l in order {
        out.push((t, Fault::Release(l)));
        t += s.interval.0;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::topology::SimDuration;

    fn links() -> Vec<Link> {
        (0..6).map(|i| Link::new(&format!("h{i}"), "proxy")).collect()
    }

    #[test]
    fn clogs_a_seeded_subset_then_releases_each_once() {
        let s = Swizzle { count: 3, interval: SimDuration::secs(1), links: None };
        let a = expand(&s, Duration::ZERO, &links(), &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
        let b = expand(&s, Duration::ZERO, &links(), &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 6);
        let held: Vec<_> =
            a[..3].iter().map(|(_, f)| if let Fault::Hold(l) = f { l.clone() } else { panic!() }).collect();
        let mut released: Vec<_> =
            a[3..].iter().map(|(_, f)| if let Fault::Release(l) = f { l.clone() } else { panic!() }).collect();
        released.sort();
        let mut h = held.clone();
        h.sort();
        assert_eq!(h, released);
        assert_eq!(a.last().unwrap().0, Duration::from_secs(5));
        let other: Vec<_> = (2..40)
            .map(|seed| expand(&s, Duration::ZERO, &links(), &mut ChaCha8Rng::seed_from_u64(seed)).unwrap())
            .collect();
        assert!(other.iter().any(|o| *o != a), "the choice depends on the seed");
        let too_many = Swizzle { count: 7, ..s };
        assert!(expand(&too_many, Duration::ZERO, &links(), &mut ChaCha8Rng::seed_from_u64(1)).is_err());
    }
}
