//! kasim-conformance: runs kasim scenarios against real Kubernetes clusters.
//!
//! The scenario runner picks a [`ClusterBackend`] ([`ExistingCluster`] from `KUBECONFIG`,
//! [`KindCluster`], [`K3sCluster`]), opens a [`ClusterRun`] on its [`ClusterAccess`] (namespace,
//! agentk's least-privilege service account and token), applies fixtures, starts an [`AgentStack`]
//! (kas, GitLab stand-in, agentk) pointed at the run, drives CI clients through kas, and finally
//! calls [`ClusterRun::cleanup`] and [`ClusterBackend::teardown`].

pub mod access;
pub mod apply;
pub mod backend;
pub mod cleanup;
pub mod existing;
pub mod helm;
pub mod images;
#[cfg(feature = "k3s")]
pub mod k3s;
pub mod kind;
pub mod rbac;
pub mod run;
pub mod stack;
pub mod standin;
pub mod target;
pub mod token;

pub use access::ClusterAccess;
pub use apply::{Applied, ApplyMode};
pub use backend::{BackendError, ClusterBackend};
pub use existing::ExistingCluster;
#[cfg(feature = "k3s")]
pub use k3s::K3sCluster;
pub use kind::KindCluster;
pub use run::{ClusterRun, RunError, RunOptions};
pub use stack::{AgentStack, AgentkPlacement, GitLabSetup, who_am_i};
pub use token::TokenSource;
