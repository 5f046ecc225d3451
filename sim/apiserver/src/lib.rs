//! A model of the Kubernetes API server, served over real HTTP.
//!
//! The model implements what the GitLab agent for Kubernetes relies on:
//! bearer-token authentication, impersonation, the RBAC authorizer with
//! aggregated ClusterRoles, stored resources with watch (namespaces,
//! configmaps, secrets, serviceaccounts, pods, the four RBAC kinds and
//! coordination.k8s.io leases), the
//! review APIs, discovery and `/version` — with the real server's status
//! codes and error texts. It runs on any byte stream (turmoil's simulated
//! TCP, loopback TCP, in-memory duplex) and uses only tokio's clock, so it
//! is deterministic under a simulator's virtual time.
//!
//! Each module documents where it deliberately differs from a real
//! kube-apiserver in a "Differences from a real API server" section.
//!
//! ```no_run
//! # async fn demo(io: tokio::io::DuplexStream) {
//! use kasim_apiserver::{ApiServer, KubeVersion, UserInfo};
//! let server = ApiServer::builder(KubeVersion::V1_32)
//!     .token("sa-token", UserInfo {
//!         username: "system:serviceaccount:gitlab-agent:agentk".into(),
//!         ..Default::default()
//!     })
//!     .build()
//!     .expect("bootstrap objects are valid");
//! server.serve_connection(io).await.ok();
//! # }
//! ```

mod audit;
mod authn;
mod body;
mod bootstrap;
mod discovery;
mod impersonation;
mod patch;
mod rbac;
mod request_info;
mod resources;
mod rest;
mod reviews;
mod selector;
mod server;
mod status;
mod store;
mod token_request;
mod version;
mod watch;

pub use audit::{AuditDecision, AuditEvent};
pub use authn::{ALL_AUTHENTICATED, ALL_UNAUTHENTICATED, ANONYMOUS, UserInfo};
pub use body::BoxBody;
pub use rbac::{AggregationMode, SYSTEM_MASTERS};
pub use request_info::RequestAttributes;
pub use server::{ApiServer, ApiServerBuilder, LoadError, ServeError};
pub use version::{KubeVersion, VersionError};
