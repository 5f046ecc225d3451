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
use crate::standin::{KAS_SECRET, StandIn, StandInError, serve_gitlab};

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
    #[error("this stack was started without the conformance stand-in (AgentStack::start_with)")]
    NoStandIn,
    #[error("GitLab fixtures: {0}")]
    GitLab(String),
}

/// Where agentk runs.
#[derive(Debug, Clone)]
pub enum AgentkPlacement {
    /// One in-process agentk per agent token, on loopback, acting with the run's service-account
    /// token (what `kasim run --backend cluster` does by default).
    InProcess,
    /// agentk runs elsewhere (in the cluster, installed by the Helm chart): kas's agent listener
    /// binds `listen` so that pods can reach it, and no agentk is started here.
    External { listen: std::net::SocketAddr },
}

/// What the GitLab side of a stack holds: the model, served over HTTP to kas, and one agent token
/// per agentk to start.
pub struct GitLabSetup {
    pub gitlab: kasim_gitlab::GitLab,
    pub agent_tokens: Vec<String>,
}

/// A running kas + stand-in + agentk. Stops when dropped.
pub struct AgentStack {
    /// The conformance stand-in, when started with [`AgentStack::start`].
    pub standin: Option<StandIn>,
    kas: Kas,
    gitlab: kasim_gitlab::GitLab,
    agent_tokens: Vec<String>,
    proxy_url: String,
    agent_addr: String,
    shutdown: CancellationToken,
    next_pipeline: std::sync::atomic::AtomicI64,
}

impl Drop for AgentStack {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl AgentStack {
    /// Starts everything for `run` with the conformance stand-in (one agent, one application
    /// project); agentk uses the run's service account.
    pub async fn start(run: &ClusterRun) -> Result<Self, StackError> {
        let mut standin = None;
        let mut stack = Self::start_with(run, AgentkPlacement::InProcess, |proxy_url| {
            let s = StandIn::new(proxy_url, run.namespace(), 1)?;
            let setup = GitLabSetup { gitlab: s.gitlab.clone(), agent_tokens: vec![s.agent_token.clone()] };
            standin = Some(s);
            Ok(setup)
        })
        .await?;
        stack.standin = standin;
        Ok(stack)
    }

    /// Starts kas (agent listener and Kubernetes API proxy on loopback), serves the GitLab model
    /// that `gitlab` builds (it gets the proxy URL CI kubeconfigs must name) to kas over HTTP, and
    /// places agentk per `placement`.
    pub async fn start_with(
        run: &ClusterRun,
        placement: AgentkPlacement,
        gitlab: impl FnOnce(&str) -> Result<GitLabSetup, StackError>,
    ) -> Result<Self, StackError> {
        let shutdown = CancellationToken::new();
        let proxy_listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| StackError::Bind("k8s proxy", e))?;
        let proxy_url = format!("http://{}", proxy_listener.local_addr());
        let setup = gitlab(&proxy_url)?;
        let gl_listener =
            tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| StackError::Bind("GitLab stand-in", e))?;
        let gitlab_addr = gl_listener.local_addr().map_err(|e| StackError::Bind("GitLab stand-in", e))?.to_string();
        let served = setup.gitlab.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move { stop.run_until_cancelled(serve_gitlab(served, gl_listener)).await });

        let kas = Kas::new(
            Arc::new(HttpGitLab::new(Arc::new(TcpConnector), &gitlab_addr, KAS_SECRET.to_vec(), Arc::new(SystemClock))),
            Arc::new(StaticTracker::default()),
            Arc::new(TcpConnector),
            KasOptions { private_api_url: None, agent_listener: ListenerOptions::agent_default() },
        );
        let listen = match &placement {
            AgentkPlacement::InProcess => "127.0.0.1:0".to_owned(),
            AgentkPlacement::External { listen } => listen.to_string(),
        };
        let agent_listener = TcpListener::bind(&listen).await.map_err(|e| StackError::Bind("kas agent listener", e))?;
        let agent_addr = agent_listener.local_addr();
        let (k, s) = (kas.clone(), shutdown.clone());
        tokio::spawn(async move { k.serve_agents(Box::new(agent_listener), s).await });
        let proxy = kas.k8s_proxy(K8sProxyOptions::default());
        let s = shutdown.clone();
        tokio::spawn(async move { proxy.serve(Box::new(proxy_listener), s).await });

        if matches!(placement, AgentkPlacement::InProcess) {
            for (i, token) in setup.agent_tokens.iter().enumerate() {
                let backend = KubeBackend::from_kube_config(&run.agent_config(), Arc::new(TcpConnector))
                    .map_err(|e| StackError::Agentk(e.to_string()))?;
                let services = AgentServices::default()
                    .add_service(TestingService::server())
                    .add_service(KubernetesApiService::server(backend, DEFAULT_VERSION, "conformance"));
                let agentk = Agentk::new(
                    AgentkOptions {
                        kas_authority: agent_addr.clone(),
                        token: token.clone(),
                        services,
                        pool: PoolConfig::default(),
                        seed: i as u64 + 1,
                        version: DEFAULT_VERSION.into(),
                        commit: "conformance".into(),
                    },
                    Arc::new(TcpConnector),
                    shutdown.clone(),
                )
                .map_err(|e| StackError::Agentk(e.to_string()))?;
                agentk.start();
            }
        }
        Ok(Self {
            standin: None,
            kas,
            gitlab: setup.gitlab,
            agent_tokens: setup.agent_tokens,
            proxy_url,
            agent_addr,
            shutdown,
            next_pipeline: std::sync::atomic::AtomicI64::new(1),
        })
    }

    /// The GitLab model the stand-in serves.
    pub fn gitlab(&self) -> &kasim_gitlab::GitLab {
        &self.gitlab
    }

    /// The agent tokens, in the order the setup returned them.
    pub fn agent_tokens(&self) -> &[String] {
        &self.agent_tokens
    }

    /// kas's Kubernetes API proxy, as CI kubeconfigs name it (`http://127.0.0.1:<port>`).
    pub fn proxy_url(&self) -> &str {
        &self.proxy_url
    }

    /// Where kas's agent listener is bound.
    pub fn agent_address(&self) -> &str {
        &self.agent_addr
    }

    /// Tunnel streams agent `agent_id` has open to kas now.
    pub fn connected_streams(&self, agent_id: i64) -> usize {
        self.kas.registry().stats(agent_id).connected
    }

    /// Waits until every agent has at least one tunnel to kas; `Err` names the ones that did not
    /// connect within `timeout` (wall clock).
    pub async fn wait_connected(&self, agent_ids: &[i64], timeout: std::time::Duration) -> Result<(), Vec<i64>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let missing: Vec<i64> = agent_ids.iter().copied().filter(|a| self.connected_streams(*a) == 0).collect();
            if missing.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(missing);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// A new CI job and a client using its GitLab-generated kubeconfig (through kas).
    pub async fn ci_job_client(&self) -> Result<(i64, kube::Client), StackError> {
        let pipeline = self.next_pipeline.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let standin = self.standin.as_ref().ok_or(StackError::NoStandIn)?;
        let (job, yaml) = standin.ci_job(pipeline)?;
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
