//! kasim-conformance: runs kasim scenarios against real Kubernetes clusters.

pub mod target;
