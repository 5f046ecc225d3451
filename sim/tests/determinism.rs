//! Same seed, same trace, byte for byte; another seed, another trace.
//!
//! The trace captures kas/agentk `tracing` events at debug level besides world events, so it sees
//! every tunnel dial, backoff and hand-off. The seed reaches the run through turmoil's message
//! latency, agentk's backoff jitter, token generation and the swizzle choice.

use std::time::Duration;

use kasim_sim::fault::{Fault, Swizzle};
use kasim_sim::scenario::{self, Scenario};
use kasim_sim::schedule::Schedule;
use kasim_sim::seed::Seed;
use kasim_sim::topology::{AgentTopology, Assignment, SimDuration, Topology};

fn scenario() -> Scenario {
    let mut t = Topology { tick: SimDuration::millis(10), ..Topology::default() };
    t.kas.replicas = 2;
    t.agents = vec![AgentTopology::default(); 2];
    t.proxy.assignment = Assignment::Seeded;
    t.drivers[0].interval = SimDuration::secs(1);
    t.drivers[0].holds = 1;
    t.drivers[0].hold_for = SimDuration::secs(5);
    t.trace.tracing = Some("debug".into());
    Scenario {
        topology: t,
        schedule: Schedule::new()
            .at(
                Duration::from_secs(5),
                Fault::Swizzle(Swizzle { count: 3, interval: SimDuration::secs(1), links: None }),
            )
            .at(Duration::from_secs(12), Fault::KasRestart { replica: 0 }),
        duration: SimDuration::secs(20),
        liveness: None,
    }
}

fn trace(seed: u64) -> String {
    let run = scenario::run(&scenario(), Seed(seed), "cargo test -p kasim-sim --test determinism").unwrap();
    if let Err(e) = &run.result {
        panic!("{}", run.world.failure_report(e));
    }
    run.world.trace().text()
}

#[test]
fn same_seed_same_trace_other_seed_other_trace() {
    let seed = Seed::from_env_or(5).unwrap().0;
    let a = trace(seed);
    let b = trace(seed);
    assert!(a.lines().count() > 200, "a rich trace: {} lines", a.lines().count());
    assert!(a.contains("agentk-1") && a.contains("kas-1") && a.contains("DEBUG"), "hosts and tracing events are named");
    if a != b {
        let (n, (x, y)) = a.lines().zip(b.lines()).enumerate().find(|(_, (x, y))| x != y).unwrap_or((0, ("", "")));
        panic!("traces differ first at line {n}:\n  {x}\n  {y}");
    }
    let c = trace(seed + 1);
    assert_ne!(a, c, "the seed must matter");
}
