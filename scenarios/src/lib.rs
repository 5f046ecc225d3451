//! kasim-scenarios: the scenario file format, its validation and runner, and the `kasim` CLI.

pub mod version;
