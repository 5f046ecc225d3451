//! An agentk host (`agentk-<i>`): a real [`Agentk`] dialling kas through the proxy.
//!
//! Extension point: the services an agent exposes come from a [`ServicesFactory`], called with the
//! agent's [`ClusterContext`] (its API server's address and service-account token) on every start.
//! The default serves the Testing service; the Kubernetes API module plugs in here.

use std::sync::{Arc, Mutex};

use kasim_core::agentk::kube_backend::KubeBackend;
use kasim_core::agentk::kubernetes_api::KubernetesApiService;
use kasim_core::agentk::{AgentServices, Agentk, AgentkOptions, PoolConfig};
use kasim_core::testing_service::TestingService;
use kasim_core::tunnel::registry::AgentId;
use tokio_util::sync::CancellationToken;

use crate::net::SimConnector;
use crate::proxy::{AGENT_PORT, PROXY_HOST};
use crate::trace::Trace;

/// The live agentk of a host, `None` while crashed.
pub type AgentSlot = Arc<Mutex<Option<Agentk>>>;

/// What an agent's services may reach in its cluster.
#[derive(Debug, Clone)]
pub struct ClusterContext {
    pub index: usize,
    pub agent_id: AgentId,
    /// `apiserver-<i>:6443` when the topology starts API servers.
    pub apiserver: Option<String>,
    /// Bearer token of agentk's service account on that API server.
    pub apiserver_token: String,
}

/// Builds an agent's services; called on every (re)start of the agent host.
pub type ServicesFactory = Arc<dyn Fn(&ClusterContext) -> AgentServices + Send + Sync>;

/// The default: the Testing service only.
pub fn testing_services() -> ServicesFactory {
    Arc::new(|_| AgentServices::default().add_service(TestingService::server()))
}

/// agentk's Kubernetes API module (talking to the cluster's API server model as agentk's service
/// account) next to the Testing service, so CI jobs reach the cluster and load steps can hold streams.
pub fn kubernetes_services() -> ServicesFactory {
    Arc::new(|c: &ClusterContext| {
        let svc = AgentServices::default().add_service(TestingService::server());
        let Some(addr) = &c.apiserver else { return svc };
        match KubeBackend::new(Arc::new(SimConnector), &format!("http://{addr}"), Some(c.apiserver_token.clone())) {
            Ok(b) => svc.add_service(KubernetesApiService::server(b, kasim_core::agentk::DEFAULT_VERSION, "kasim-sim")),
            // A malformed URL cannot come from the world (it builds `apiserver-<i>:6443` itself).
            Err(_) => svc,
        }
    })
}

/// Everything one agentk incarnation needs.
#[derive(Clone)]
pub struct AgentHostConfig {
    pub name: String,
    /// Never printed: the token checker looks for it in the trace.
    pub token: String,
    pub pool: PoolConfig,
    /// Pool seed of the first incarnation; incarnation k uses `pool_seed + k`.
    pub pool_seed: u64,
    pub incarnation: Arc<Mutex<u64>>,
    pub cluster: ClusterContext,
    pub services: ServicesFactory,
    pub slot: AgentSlot,
    pub trace: Trace,
}

/// The agentk host's software.
pub async fn run(cfg: AgentHostConfig) -> turmoil::Result {
    let incarnation = {
        let mut n = cfg.incarnation.lock().unwrap_or_else(|e| e.into_inner());
        let k = *n;
        *n += 1;
        k
    };
    let seed = cfg.pool_seed.wrapping_add(incarnation);
    let agent = Agentk::new(
        AgentkOptions {
            kas_authority: format!("{PROXY_HOST}:{AGENT_PORT}"),
            token: cfg.token.clone(),
            services: (cfg.services)(&cfg.cluster),
            pool: cfg.pool,
            seed,
            version: kasim_core::agentk::DEFAULT_VERSION.into(),
            commit: "kasim-sim".into(),
        },
        Arc::new(SimConnector),
        CancellationToken::new(),
    )?;
    *cfg.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(agent.clone());
    cfg.trace.record(&cfg.name, format_args!("started (incarnation {incarnation}, pool seed {seed})"));
    agent.start();
    std::future::pending::<()>().await;
    Ok(())
}
