//! A kas replica host (`kas-<i>`): agent listener on 8150 (observed by the connection checker),
//! private API on 8155, tracker loop; the live [`Kas`] is published in a slot for the checkers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kasim_core::kas::gitlab::GitLabApi;
use kasim_core::kas::k8s_proxy::K8sProxyOptions;
use kasim_core::kas::listener::ListenerOptions;
use kasim_core::kas::tracker::Tracker;
use kasim_core::kas::{Kas, KasOptions};
use tokio_util::sync::CancellationToken;

use crate::conn::{ConnTable, ObservedListener};
use crate::net::{SimConnector, SimListener};
use crate::proxy::AGENT_PORT;
use crate::trace::{SimTime, Trace};

/// kas's private API port.
pub const PRIVATE_API_PORT: u16 = 8155;

/// The live kas of a host, `None` while crashed.
pub type KasSlot = Arc<Mutex<Option<Kas>>>;

/// Everything one kas incarnation needs.
#[derive(Clone)]
pub struct KasHostConfig {
    pub name: String,
    pub gitlab: Arc<dyn GitLabApi>,
    pub tracker: Arc<dyn Tracker>,
    pub listener: ListenerOptions,
    pub slot: KasSlot,
    pub table: ConnTable,
    pub trace: Trace,
    pub time: SimTime,
}

impl KasHostConfig {
    pub fn private_url(&self) -> String {
        private_url(&self.name)
    }

    /// Bound on an agent connection's life: age + grace.
    pub fn max_life(&self) -> Option<Duration> {
        self.listener.max_connection_age.map(|a| a + self.listener.max_connection_age_grace)
    }
}

/// kas's Kubernetes API proxy port (plain HTTP inside the simulation).
pub const K8S_PROXY_PORT: u16 = 8160;

/// `kas-<replica>:8160`.
pub fn k8s_proxy_authority(replica: usize) -> String {
    format!("kas-{replica}:{K8S_PROXY_PORT}")
}

/// `grpc://<host>:8155`.
pub fn private_url(host: &str) -> String {
    format!("grpc://{host}:{PRIVATE_API_PORT}")
}

/// The kas host's software.
pub async fn run(cfg: KasHostConfig) -> turmoil::Result {
    let kas = Kas::new(
        cfg.gitlab.clone(),
        cfg.tracker.clone(),
        Arc::new(SimConnector),
        KasOptions { private_api_url: Some(cfg.private_url()), agent_listener: cfg.listener.clone() },
    );
    let agents = SimListener::bind(AGENT_PORT, &cfg.name).await?;
    let agents = ObservedListener::new(
        Box::new(agents),
        &cfg.name,
        cfg.max_life(),
        cfg.table.clone(),
        cfg.trace.clone(),
        cfg.time.clone(),
    );
    let private = SimListener::bind(PRIVATE_API_PORT, &cfg.name).await?;
    let k8s = SimListener::bind(K8S_PROXY_PORT, &cfg.name).await?;
    *cfg.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(kas.clone());
    cfg.trace.record(&cfg.name, "started");
    let shutdown = CancellationToken::new();
    let (k1, k2, s1, s2) = (kas.clone(), kas.clone(), shutdown.clone(), shutdown.clone());
    tokio::spawn(async move { k1.serve_agents(Box::new(agents), s1).await });
    tokio::spawn(async move { k2.serve_private_api(Box::new(private), s2).await });
    let (proxy, s3) = (kas.k8s_proxy(K8sProxyOptions::default()), shutdown.clone());
    tokio::spawn(async move { proxy.serve(Box::new(k8s), s3).await });
    kas.run_tracker(shutdown).await;
    Ok(())
}
