//! A scenario: a topology, a fault schedule, how long to run, and the liveness phase; and the
//! runner that plays it for a seed.
//!
//! ```yaml
//! topology: { kas: { replicas: 2 }, agents: [{}, {}] }
//! duration: 10m
//! schedule:
//!   - { at: 1m, fault: { kind: kas_restart, replica: 0 } }
//!   - { at: 3m, fault: { kind: swizzle, count: 2, interval: 10s } }
//! liveness: { bound: 3m }
//! ```

use serde::Deserialize;

use crate::liveness::Liveness;
use crate::schedule::Schedule;
use crate::seed::Seed;
use crate::topology::{SimDuration, Topology};
use crate::world::{Report, RunError, World, WorldError};

/// Everything one run needs besides the seed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scenario {
    pub topology: Topology,
    pub schedule: Schedule,
    /// Run at least this long (and past the last scheduled fault) before the liveness phase.
    pub duration: SimDuration,
    /// `None` skips the liveness phase.
    pub liveness: Option<Liveness>,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            topology: Topology::default(),
            schedule: Schedule::default(),
            duration: SimDuration::secs(60),
            liveness: Some(Liveness::default()),
        }
    }
}

/// A played scenario: the world (for its trace and ledger) and how it ended.
pub struct Run {
    pub world: World,
    pub result: Result<Report, RunError>,
}

/// Builds the world, prints the seed and every derived setting, plays the schedule, runs the
/// liveness phase, and on failure prints the error, a replay command and the trace tail.
/// `replay` is the command that re-runs this scenario (the seed is put in front of it).
pub fn run(scenario: &Scenario, seed: Seed, replay: &str) -> Result<Run, WorldError> {
    let mut world = World::build(&scenario.topology, seed)?;
    world.set_replay_command(replay);
    let result = play(&mut world, scenario);
    match &result {
        Ok(report) => println!("seed {seed}: passed: {report}"),
        Err(e) => println!("{}", world.failure_report(e)),
    }
    Ok(Run { world, result })
}

fn play(world: &mut World, scenario: &Scenario) -> Result<Report, RunError> {
    let links = world.links().to_vec();
    let seed = world.seed();
    let compiled = scenario.schedule.compile(&links, seed, &mut world.derived)?;
    print!("{}", world.banner());
    let until = scenario.duration.0.max(scenario.schedule.end(&compiled));
    world.run_schedule(&compiled, until)?;
    if let Some(l) = &scenario.liveness {
        world.liveness(l)?;
    }
    world.check()?;
    let report = world.report();
    world.trace().record(crate::world::WORLD, format_args!("checkers passed: {report}"));
    Ok(report)
}
