//! kasim-sim: runs the real kas and agentk code inside turmoil's deterministic network simulator.
//!
//! This crate is the only one that names turmoil: it provides the turmoil arm of kasim-core's
//! transport seam ([`net`]) and a clock on simulated time ([`clock`]).

pub mod clock;
pub mod net;
