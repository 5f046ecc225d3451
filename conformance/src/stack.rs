//! kas, the GitLab stand-in and agentk as in-process tasks on loopback, pointed at a run's cluster:
//! agentk acts with the run's service-account token, CI jobs reach the cluster through kas's
//! Kubernetes API proxy. The same wiring as the `kas` and `agentk` binaries, minus the processes.

use std::sync::Arc;

use k8s_openapi::api::authentication::v1::{SelfSubjectReview, UserInfo};
use kasim_core::agentk::kube_backend::KubeBackend;
use kasim_core::agentk::kubernetes_api::KubernetesApiService;
use kasim_core::agentk::{AgentServices, Agentk, AgentkOptions, DEFAULT_VERSION, PoolConfig};
use kasim_core::clock::SystemClock;
use kasim_core::kas::gitlab::HttpGitLab;
use kasim_core::kas::k8s_proxy::K8sProxyOptions;
use kasim_core::kas::listener::ListenerOptions;
use kasim_core::kas::tracker::StaticTracker;
use kasim_core::kas::{Kas, KasOptions};
use kasim_core::testing_service::TestingService;
use kasim_core::transport::Accept;
use kasim_core::transport::tcp::{TcpConnector, TcpListener};
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio_util::sync::CancellationToken;

use crate::run::ClusterRun;
use crate::standin::{KAS_SECRET, StandIn, StandInError};

/// The context the stand-in names in CI kubeconfigs: `<config project path>:<agent name>`.
pub const CI_CONTEXT: &str = "kasim/agents:conformance";

/// Why the stack could not start or a CI client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("bind {0}: {1}")]
    Bind(&'static str, std::io::Error),
    #[error(transparent)]
    StandIn(#[from] StandInError),
    #[error("agentk: {0}")]
    Agentk(String),
    #[error("CI job kubeconfig: {0}")]
    Kubeconfig(String),
    #[error("SelfSubjectReview through kas: {0}")]
    Review(kube::Error),
    #[error("SelfSubjectReview through kas: no user info in the answer")]
    NoUserInfo,
}

/// A running kas + stand-in + agentk. Stops when dropped.
pub struct AgentStack {
    pub standin: StandIn,
    shutdown: CancellationToken,
    next_pipeline: std::sync::atomic::AtomicI64,
}

impl Drop for AgentStack {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl AgentStack {
    /// Starts everything for `run`; agentk uses the run's service account.
    pub async fn start(run: &ClusterRun) -> Result<Self, StackError> {
        let shutdown = CancellationToken::new();
        let proxy_listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| StackError::Bind("k8s proxy", e))?;
        let proxy_url = format!("http://{}", proxy_listener.local_addr());
        let standin = StandIn::new(&proxy_url, run.namespace(), 1)?;
        let gl_listener =
            tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| StackError::Bind("GitLab stand-in", e))?;
        let gitlab_addr = gl_listener.local_addr().map_err(|e| StackError::Bind("GitLab stand-in", e))?.to_string();
        let s = standin.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move { stop.run_until_cancelled(s.serve(gl_listener)).await });

        let kas = Kas::new(
            Arc::new(HttpGitLab::new(Arc::new(TcpConnector), &gitlab_addr, KAS_SECRET.to_vec(), Arc::new(SystemClock))),
            Arc::new(StaticTracker::default()),
            Arc::new(TcpConnector),
            KasOptions { private_api_url: None, agent_listener: ListenerOptions::agent_default() },
        );
        let agent_listener =
            TcpListener::bind("127.0.0.1:0").await.map_err(|e| StackError::Bind("kas agent listener", e))?;
        let agent_addr = agent_listener.local_addr();
        let (k, s) = (kas.clone(), shutdown.clone());
        tokio::spawn(async move { k.serve_agents(Box::new(agent_listener), s).await });
        let proxy = kas.k8s_proxy(K8sProxyOptions::default());
        let s = shutdown.clone();
        tokio::spawn(async move { proxy.serve(Box::new(proxy_listener), s).await });

        let backend = KubeBackend::from_kube_config(&run.agent_config(), Arc::new(TcpConnector))
            .map_err(|e| StackError::Agentk(e.to_string()))?;
        let services = AgentServices::default()
            .add_service(TestingService::server())
            .add_service(KubernetesApiService::server(backend, DEFAULT_VERSION, "conformance"));
        let agentk = Agentk::new(
            AgentkOptions {
                kas_authority: agent_addr,
                token: standin.agent_token.clone(),
                services,
                pool: PoolConfig::default(),
                seed: 1,
                version: DEFAULT_VERSION.into(),
                commit: "conformance".into(),
            },
            Arc::new(TcpConnector),
            shutdown.clone(),
        )
        .map_err(|e| StackError::Agentk(e.to_string()))?;
        agentk.start();
        Ok(Self { standin, shutdown, next_pipeline: std::sync::atomic::AtomicI64::new(1) })
    }

    /// A new CI job and a client using its GitLab-generated kubeconfig (through kas).
    pub async fn ci_job_client(&self) -> Result<(i64, kube::Client), StackError> {
        let pipeline = self.next_pipeline.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (job, yaml) = self.standin.ci_job(pipeline)?;
        let kc = Kubeconfig::from_yaml(&yaml).map_err(|e| StackError::Kubeconfig(e.to_string()))?;
        let opts = KubeConfigOptions { context: Some(CI_CONTEXT.into()), ..Default::default() };
        let config =
            kube::Config::from_custom_kubeconfig(kc, &opts).await.map_err(|e| StackError::Kubeconfig(e.to_string()))?;
        let client = kube::Client::try_from(config).map_err(|e| StackError::Kubeconfig(e.to_string()))?;
        Ok((job, client))
    }
}

/// The identity the API server saw for `client`'s requests (SelfSubjectReview, through whatever
/// path `client` takes — for a CI client: kas and agentk).
pub async fn who_am_i(client: &kube::Client) -> Result<UserInfo, StackError> {
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    let review = api.create(&PostParams::default(), &SelfSubjectReview::default()).await.map_err(StackError::Review)?;
    review.status.and_then(|s| s.user_info).ok_or(StackError::NoUserInfo)
}
