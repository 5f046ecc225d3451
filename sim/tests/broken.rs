//! Deliberately broken worlds: each must be caught by the checker it targets, with the virtual
//! time and the hosts involved. Each has a healthy twin that passes, so the checker is not simply
//! always failing.

use kasim_sim::checker::Violation;
use kasim_sim::scenario::{self, Run, Scenario};
use kasim_sim::seed::Seed;
use kasim_sim::topology::{DriverBug, GitLabMode, SimDuration, Topology};
use kasim_sim::world::RunError;

fn small(tick_ms: u64) -> Topology {
    Topology {
        tick: SimDuration::millis(tick_ms),
        gitlab: GitLabMode::Static,
        apiservers: false,
        ..Topology::default()
    }
}

fn play(name: &str, topology: Topology, secs: u64) -> Run {
    let seed = Seed::from_env_or(3).unwrap();
    let sc = Scenario { topology, duration: SimDuration::secs(secs), liveness: None, ..Scenario::default() };
    scenario::run(&sc, seed, &format!("cargo test -p kasim-sim --test broken -- {name}")).unwrap()
}

fn violation(run: Run) -> Violation {
    match run.result {
        Err(RunError::Violation(v)) => v,
        Err(e) => panic!("expected a violation, got {e}"),
        Ok(r) => panic!("expected a violation, the run passed: {r}"),
    }
}

/// 510 concurrent long calls against one agent: with the cap at 500 the pool stops there; with a
/// pool allowed 600 tunnels the stream-cap checker fires as soon as the 501st stream opens.
fn holds(max_connections: usize) -> Topology {
    let mut t = small(100);
    t.agents[0].pool.max_connections = max_connections;
    t.drivers[0].interval = SimDuration::default();
    t.drivers[0].holds = 510;
    t.drivers[0].hold_for = SimDuration::secs(600);
    t
}

#[test]
fn pool_cap_above_500_is_caught_by_the_stream_cap_checker() {
    let v = violation(play("pool_cap_above_500", holds(600), 90));
    assert_eq!(v.checker, "stream cap");
    assert_eq!(v.hosts, vec!["agentk-0"]);
    assert!(v.detail.contains("cap 500"), "{v}");
}

#[test]
fn pool_at_500_with_510_long_calls_stays_within_the_cap() {
    let run = play("pool_at_500", holds(500), 90);
    if let Err(e) = &run.result {
        panic!("{}", run.world.failure_report(e));
    }
    let c = run.world.stream_counts(0).unwrap();
    assert_eq!((c.pool_total, c.kas_connected), (500, 500), "the pool filled up to the cap: {c:?}");
}

fn buggy(bug: DriverBug) -> Topology {
    let mut t = small(100);
    t.drivers[0].interval = SimDuration::secs(1);
    t.drivers[0].bug = Some(bug);
    t
}

#[test]
fn a_driver_that_loses_outcomes_is_caught() {
    let v = violation(play("loses_outcomes", buggy(DriverBug::LoseEvery { n: 4 }), 90));
    assert_eq!(v.checker, "requests");
    assert!(v.detail.contains("request 4 ") && v.detail.contains("lost"), "{v}");
    assert_eq!(v.hosts, vec!["driver-0", "agent-0"]);
    // Deadline 30 s after issue, plus the checker's slack.
    assert!(v.at.as_secs() >= 33 && v.at.as_secs() <= 35, "{v}");
}

#[test]
fn a_driver_that_reports_twice_is_caught() {
    let v = violation(play("reports_twice", buggy(DriverBug::DuplicateEvery { n: 3 }), 90));
    assert_eq!(v.checker, "requests");
    assert!(v.detail.contains("request 3 got 2 outcomes"), "{v}");
}

/// kas max age without grace cuts long calls in flight when the connection rotates; with a grace
/// longer than the calls, rotation is invisible. No proxy lifetime here, so kas alone decides.
fn rotation(grace_secs: u64) -> Topology {
    let mut t = small(100);
    t.kas.max_connection_age = SimDuration::secs(60);
    t.kas.grace = Some(SimDuration::secs(grace_secs));
    t.proxy.lifetime = SimDuration::default();
    t.drivers[0].interval = SimDuration::secs(5);
    t.drivers[0].holds = 2;
    t.drivers[0].hold_for = SimDuration::secs(20);
    t.expect_no_failures = true;
    t
}

#[test]
fn max_age_without_grace_is_caught_cutting_calls() {
    let v = violation(play("max_age_without_grace", rotation(0), 240));
    assert_eq!(v.checker, "fault-free success");
    assert!(v.detail.contains("(hold)"), "{v}");
    assert!(v.at.as_secs() >= 60, "not before the first rotation: {v}");
}

#[test]
fn max_age_with_grace_rotates_invisibly() {
    let run = play("max_age_with_grace", rotation(30), 240);
    if let Err(e) = &run.result {
        panic!("{}", run.world.failure_report(e));
    }
    let opened = run.world.trace().lines().iter().filter(|l| l.contains("kas-0") && l.contains("conn open")).count();
    assert!(opened >= 4, "agentk moved to a new connection at each rotation: {opened}");
}

/// A partition leaves kas holding half-open tunnels until its keepalive (50 s + 20 s) gives up: a
/// liveness bound shorter than that must fail, the default bound must pass.
fn partitioned(bound_secs: u64) -> Scenario {
    use kasim_sim::fault::{Fault, Link};
    use kasim_sim::liveness::Liveness;
    use kasim_sim::schedule::Schedule;
    let mut t = small(100);
    t.drivers[0].interval = SimDuration::secs(5);
    Scenario {
        topology: t,
        schedule: Schedule::new()
            .at(std::time::Duration::from_secs(10), Fault::Partition(Link::new("agentk-0", "proxy"))),
        duration: SimDuration::secs(20),
        liveness: Some(Liveness { bound: SimDuration::secs(bound_secs) }),
    }
}

#[test]
fn liveness_bound_shorter_than_keepalive_fails_and_default_passes() {
    let seed = Seed::from_env_or(3).unwrap();
    let replay = "cargo test -p kasim-sim --test broken -- liveness_bound";
    let short = scenario::run(&partitioned(5), seed, replay).unwrap();
    match short.result {
        // Either view may still believe in the dead connection, so the probe is what fails.
        Err(RunError::Liveness(e)) => assert!(e.to_string().contains("5s after the heal"), "{e}"),
        Err(e) => panic!("expected a liveness failure, got {e}"),
        Ok(r) => panic!("expected a liveness failure, passed: {r}"),
    }
    let default = scenario::run(&partitioned(180), seed, replay).unwrap();
    if let Err(e) = &default.result {
        panic!("{}", default.world.failure_report(e));
    }
}
