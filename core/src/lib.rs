//! kasim-core: a Rust kas and agentk speaking the GitLab agent's reverse-tunnel protocol.
//!
//! The same code runs in the deterministic simulator, over loopback TCP and against real clusters:
//! all networking goes through [`transport`], all time through tokio's clock, all randomness through
//! seeded generators.

pub mod agentk;
pub mod clock;
pub mod config_error;
pub mod duration;
pub mod grpc;
pub mod http_client;
pub mod http_meta;
pub mod jwt;
pub mod kas;
pub mod proto;
pub mod testing_service;
pub mod transport;
pub mod tunnel;
