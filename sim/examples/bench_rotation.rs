//! The rotation world for 24 simulated hours, at a 10 ms and a 100 ms tick: 1 kas (max age 2 h,
//! grace 1 h), 1 agentk with the full pool (cap 500), the proxy with a 2 h lifetime, one unary call
//! per minute and three 10-minute Holds always in flight. Prints virtual seconds per wall second and
//! steps per second at a 100 ms tick (checkers after every step, and every 100 steps, to show their
//! cost), a 10 ms tick, and a 1 s tick for comparison.
//!
//! `cargo run --release -p kasim-sim --example bench_rotation [hours] [seed]`
//!
//! Hosts are kept to four (kas-0, proxy, agentk-0, driver-0: kas answers agent tokens from memory,
//! no API server): turmoil does not skip idle time, so every host costs every tick.

use std::time::{Duration, Instant};

use kasim_sim::seed::Seed;
use kasim_sim::topology::{GitLabMode, SimDuration, Topology};
use kasim_sim::world::World;

fn topology(tick_ms: u64, check_every: u32) -> Topology {
    let mut t = Topology {
        tick: SimDuration::millis(tick_ms),
        gitlab: GitLabMode::Static,
        apiservers: false,
        check_every,
        ..Topology::default()
    };
    t.kas.max_connection_age = SimDuration::secs(2 * 3600);
    t.kas.grace = Some(SimDuration::secs(3600));
    t.proxy.lifetime = SimDuration::secs(2 * 3600);
    t.drivers[0].interval = SimDuration::secs(60);
    t.drivers[0].holds = 3;
    t.drivers[0].hold_for = SimDuration::secs(600);
    t
}

fn bench(hours: u64, seed: Seed, tick_ms: u64, check_every: u32) -> Result<(), String> {
    let mut w = World::build(&topology(tick_ms, check_every), seed).map_err(|e| e.to_string())?;
    w.set_replay_command("cargo run --release -p kasim-sim --example bench_rotation");
    let virt = Duration::from_secs(hours * 3600);
    let start = Instant::now();
    let r = w.run_until(virt);
    let wall = start.elapsed().as_secs_f64();
    if let Err(e) = r {
        return Err(w.failure_report(&e));
    }
    let report = w.report();
    let trace = w.trace().lines();
    let count = |pat: &str| trace.iter().filter(|l| l.contains(pat)).count();
    println!(
        "tick {tick_ms:>3} ms, checks every {check_every:>3} steps: {:>8.0}x real time ({:.1} s wall for {hours} h), {:>8.0} steps/s",
        virt.as_secs_f64() / wall,
        wall,
        report.steps as f64 / wall
    );
    println!(
        "    {report}; kas conns opened {}, proxy lifetime cuts {}, trace {} lines",
        count("kas-0        conn open"),
        count("ends: lifetime"),
        trace.len()
    );
    Ok(())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let hours = args.next().and_then(|h| h.parse().ok()).unwrap_or(24);
    let seed = match args.next().map(|s| s.parse::<u64>()) {
        Some(Ok(s)) => Seed(s),
        Some(Err(_)) => {
            eprintln!("usage: bench_rotation [hours] [seed]");
            std::process::exit(2);
        }
        None => Seed::from_env_or(1).unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(2)
        }),
    };
    println!(
        "bench_rotation: {hours} simulated hours, seed {seed} (replay: {})",
        seed.replay_command("cargo run --release -p kasim-sim --example bench_rotation")
    );
    for (tick, every) in [(100, 1), (100, 100), (10, 1), (1000, 1)] {
        if let Err(e) = bench(hours, seed, tick, every) {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
