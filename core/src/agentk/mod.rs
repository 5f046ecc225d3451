//! agentk: the cluster-side agent. Dials kas, keeps a pool of reverse tunnels and serves calls kas
//! forwards through them with its in-process gRPC services.

pub mod address;
pub mod backoff;
pub mod descriptor;
pub mod kube_backend;
pub mod kubernetes_api;
pub mod pool;
pub mod receptive;
pub mod replay;
pub mod services;
pub mod tunnel;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use address::KasAddress;
pub use pool::{PoolConfig, PoolStats};
pub use services::AgentServices;

use crate::transport::{Dialer, grpc_channel};

/// agentk pings kas every 55 s.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(55);
/// gRPC's MinConnectTimeout as agentk sets it.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// The agent version kasim's agentk reports, modelled on the GitLab release it follows.
pub const DEFAULT_VERSION: &str = "v18.6.0";

/// agentk settings.
#[derive(Debug, Clone)]
pub struct AgentkOptions {
    /// `host:port` of kas as the dialer understands it (TLS, if any, is inside the dialer).
    pub kas_authority: String,
    pub token: String,
    pub services: AgentServices,
    pub pool: PoolConfig,
    /// Seeds backoff jitter. Binaries draw it from the OS and print it; simulations derive it.
    pub seed: u64,
    pub version: String,
    pub commit: String,
}

/// Why agentk could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentkError {
    #[error("agent token is not a valid header value")]
    Token,
    #[error(transparent)]
    Service(#[from] descriptor::UnknownService),
    #[error("kas endpoint: {0}")]
    Endpoint(#[from] tonic::transport::Error),
}

/// A running agentk.
#[derive(Debug, Clone)]
pub struct Agentk {
    ctx: Arc<tunnel::TunnelContext>,
}

impl Agentk {
    pub fn new(opts: AgentkOptions, dialer: Dialer, shutdown: CancellationToken) -> Result<Self, AgentkError> {
        let user_agent = format!("gitlab-agent/{}/{}", opts.version, opts.commit);
        let channel = grpc_channel(dialer, &opts.kas_authority, |e| {
            e.user_agent(user_agent.clone())
                .expect("user agent is ASCII")
                .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
                .keep_alive_timeout(Duration::from_secs(20))
                .keep_alive_while_idle(true)
                .connect_timeout(CONNECT_TIMEOUT)
        })?;
        let authorization = format!("Bearer {}", opts.token).parse().map_err(|_| AgentkError::Token)?;
        let descriptor = opts.services.descriptor()?;
        let ctx = tunnel::TunnelContext {
            channel,
            authorization,
            descriptor,
            services: opts.services,
            pool: pool::PoolState::new(opts.pool, opts.seed),
            shutdown,
        };
        Ok(Self { ctx: Arc::new(ctx) })
    }

    /// Starts the pool's first tunnels; they keep running until the shutdown token fires.
    pub fn start(&self) {
        for t in self.ctx.pool.start() {
            tunnel::spawn(self.ctx.clone(), t);
        }
    }

    pub fn stats(&self) -> PoolStats {
        self.ctx.pool.stats()
    }
}
