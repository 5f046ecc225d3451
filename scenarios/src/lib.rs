//! kasim-scenarios: the scenario file format, its validation and runner, and the `kasim` CLI.
//!
//! A scenario file (`scenarios/<name>.yaml`, see `scenarios/README.md`) names a topology, GitLab
//! and cluster fixtures, and steps. [`validate::load`] parses it strictly and checks it;
//! [`runner::run`] plays it in the simulator for one Kubernetes version and seed; [`cluster`] plays
//! it against a real Kubernetes API server (kas, the GitLab stand-in and agentk around it); [`report`] turns
//! results into the human summary, JUnit XML and JSON.

pub mod assert;
pub mod cluster;
pub mod credentials;
pub mod diff;
pub mod fixtures;
pub mod namespace_map;
pub mod report;
pub mod result;
pub mod runner;
pub mod spec;
pub mod validate;
pub mod version;
