//! kas: the GitLab-side server agents connect to.

pub mod agent_auth;
pub mod allowed_agents;
pub mod config;
pub mod gateway;
pub mod gitlab;
pub mod identity;
pub mod k8s_proxy;
pub mod listener;
pub mod receptive;
pub mod router;
pub mod server;
pub mod tracker;
pub mod tunnel_server;

pub use server::{Kas, KasOptions};
