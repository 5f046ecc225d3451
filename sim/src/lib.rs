//! kasim-sim: runs the real kas and agentk code inside turmoil's deterministic network simulator.
//!
//! This crate is the only one that names turmoil. It provides the turmoil arm of kasim-core's
//! transport seam ([`net`]), a clock on simulated time ([`clock`]), and the simulator proper:
//! a [`world::World`] built from a serde [`topology::Topology`] and a [`seed::Seed`], a fault
//! [`schedule::Schedule`] applied between steps, invariant [`checker`]s run continuously, a
//! [`liveness`] phase, and a deterministic [`trace`]. [`scenario::run`] ties them together.
//!
//! ```no_run
//! use kasim_sim::{scenario::{self, Scenario}, seed::Seed};
//! let seed = Seed::from_env_or(1).expect("KASIM_SEED is a number");
//! let run = scenario::run(&Scenario::default(), seed, "cargo run --example my_scenario").unwrap();
//! assert!(run.result.is_ok());
//! ```

pub mod agent_host;
pub mod apiserver_host;
pub mod capture;
pub mod checker;
pub mod client;
pub mod clock;
pub mod conn;
pub mod driver;
pub mod fault;
pub mod fixtures;
pub mod gitlab_host;
pub mod kas_host;
pub mod ledger;
pub mod liveness;
pub mod net;
pub mod proxy;
pub mod scenario;
pub mod schedule;
pub mod seed;
pub mod swizzle;
pub mod topology;
pub mod trace;
pub mod world;
