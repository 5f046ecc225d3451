//! Plays a scenario file (YAML or JSON) for a seed and prints the trace.
//!
//! `cargo run -p kasim-sim --example run_scenario -- <scenario.yaml> [seed]` (or `KASIM_SEED=<n>`).

use kasim_sim::scenario::{self, Scenario};
use kasim_sim::seed::Seed;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: run_scenario <scenario.yaml> [seed]");
        std::process::exit(2);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(2);
        }
    };
    let sc: Scenario = match serde_yaml_ng::from_str(&text) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(2);
        }
    };
    let seed = match args.next().map(|s| s.parse::<u64>().map(Seed)) {
        Some(Ok(s)) => s,
        Some(Err(_)) => {
            eprintln!("seed must be a decimal u64");
            std::process::exit(2);
        }
        None => Seed::from_env_or(1).unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(2)
        }),
    };
    let replay = format!("cargo run -p kasim-sim --example run_scenario -- {path}");
    let run = match scenario::run(&sc, seed, &replay) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(2);
        }
    };
    print!("{}", run.world.trace().text());
    if run.result.is_err() {
        std::process::exit(1);
    }
}
