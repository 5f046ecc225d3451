//! Worlds of 1–3 kas replicas and 1–3 agents through bounces, partitions, holds, proxy cuts and
//! swizzle-clogging, with every checker running after each step and a liveness phase at the end.
//! A 100 ms tick keeps these debug-build tests fast; every protocol timer is ≥ 1 s.

use std::time::Duration;

use kasim_sim::fault::{Fault, Link, OneWay, Swizzle};
use kasim_sim::scenario::{self, Scenario};
use kasim_sim::schedule::Schedule;
use kasim_sim::seed::Seed;
use kasim_sim::topology::{AgentTopology, SimDuration, Topology};

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn link(a: &str, b: &str) -> Link {
    Link::new(a, b)
}

fn topology(kas: usize, agents: usize) -> Topology {
    let mut t = Topology { tick: SimDuration::millis(100), ..Topology::default() };
    t.kas.replicas = kas;
    t.agents = vec![AgentTopology::default(); agents];
    t.drivers[0].interval = SimDuration::secs(2);
    t.drivers[0].holds = agents;
    t.drivers[0].hold_for = SimDuration::secs(30);
    t
}

fn play(name: &str, scenario: &Scenario, default_seed: u64) {
    let seed = Seed::from_env_or(default_seed).unwrap();
    let run = scenario::run(scenario, seed, &format!("cargo test -p kasim-sim --test faults -- {name}")).unwrap();
    let report = run.result.unwrap_or_else(|e| panic!("{}", run.world.failure_report(&e)));
    let (issued, ok, _, _) = report.requests;
    assert!(issued > 10 && ok > 5, "the drivers really called the agents: {report}");
}

#[test]
fn one_kas_one_agent_survives_bounces_of_every_host() {
    let schedule = Schedule::new()
        .at(s(20), Fault::KasRestart { replica: 0 })
        .at(s(50), Fault::Bounce { host: "agentk-0".into() })
        .at(s(80), Fault::Bounce { host: "proxy".into() })
        .at(s(100), Fault::Bounce { host: "gitlab".into() })
        .at(s(110), Fault::Crash { host: "driver-0".into() })
        .at(s(115), Fault::Bounce { host: "driver-0".into() });
    let scenario =
        Scenario { topology: topology(1, 1), schedule, duration: SimDuration::secs(140), ..Scenario::default() };
    play("one_kas_one_agent", &scenario, 11);
}

#[test]
fn two_kas_two_agents_through_partitions_holds_and_proxy_cuts() {
    let schedule = Schedule::new()
        .at(s(20), Fault::Hold(link("agentk-0", "proxy")))
        .at(s(30), Fault::Release(link("agentk-0", "proxy")))
        .at(s(40), Fault::Partition(link("proxy", "kas-1")))
        .at(s(70), Fault::Repair(link("proxy", "kas-1")))
        .at(s(80), Fault::PartitionOneway(OneWay { from: "kas-0".into(), to: "kas-1".into() }))
        .at(s(100), Fault::RepairOneway(OneWay { from: "kas-0".into(), to: "kas-1".into() }))
        .at(s(110), Fault::ProxyCut)
        .at(s(120), Fault::Latency { a: "agentk-1".into(), b: "proxy".into(), latency: SimDuration::millis(300) })
        .at(s(130), Fault::Crash { host: "kas-0".into() });
    let scenario =
        Scenario { topology: topology(2, 2), schedule, duration: SimDuration::secs(150), ..Scenario::default() };
    play("two_kas_two_agents", &scenario, 22);
}

#[test]
fn three_kas_three_agents_through_swizzle_clogging() {
    let schedule = Schedule::new()
        .at(s(20), Fault::Swizzle(Swizzle { count: 5, interval: SimDuration::secs(4), links: None }))
        .at(s(70), Fault::KasRestart { replica: 2 });
    let scenario =
        Scenario { topology: topology(3, 3), schedule, duration: SimDuration::secs(90), ..Scenario::default() };
    play("three_kas_three_agents", &scenario, 33);
}

#[test]
fn scenario_files_parse_and_bad_faults_are_errors_not_panics() {
    let yaml = r#"
topology: { tick: 100ms, kas: { replicas: 2 }, agents: [{}, { pool: { max_connections: 50 } }], drivers: [{ interval: 1s }] }
duration: 30s
schedule:
  - { at: 5s, fault: { kind: hold, a: agentk-0, b: proxy } }
  - { at: 6s, fault: { kind: release, a: agentk-0, b: proxy } }
  - { at: 7s, fault: { kind: proxy_cut } }
  - { at: 8s, fault: { kind: swizzle, count: 2, interval: 1s } }
liveness: { bound: 2m }
"#;
    let sc: Scenario = serde_yaml_ng::from_str(yaml).unwrap();
    assert_eq!(sc.topology.kas.replicas, 2);
    assert_eq!(sc.schedule.entries.len(), 4);
    assert!(serde_yaml_ng::from_str::<Scenario>("schedule: [{ at: 5s, fault: { kind: explode } }]").is_err());
    assert!(
        serde_yaml_ng::from_str::<Scenario>("schedule: [{ at: 5s, fault: { kind: hold, a: x, b: y, c: z } }]").is_err()
    );
    play("scenario_files", &sc, 44);

    let bad = Scenario {
        topology: topology(1, 1),
        schedule: Schedule::new().at(s(1), Fault::Crash { host: "kas-7".into() }),
        duration: SimDuration::secs(2),
        liveness: None,
    };
    let run = scenario::run(&bad, Seed(1), "cargo test -p kasim-sim --test faults").unwrap();
    assert!(run.result.unwrap_err().to_string().contains("unknown host \"kas-7\""));
}
