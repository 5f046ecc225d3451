//! A world with the GitLab stand-in served over HTTP (in-memory transport), a kas that also polls
//! it for receptive agents, and helpers to start normal and receptive agentks. Virtual time.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use kasim_core::agentk::receptive::{self, AgentMeta};
use kasim_core::agentk::{AgentServices, Agentk, AgentkOptions, PoolConfig};
use kasim_core::clock::{Clock as _, DEFAULT_EPOCH_UNIX_MILLIS, TokioClock};
use kasim_core::kas::gitlab::HttpGitLab;
use kasim_core::kas::listener::ListenerOptions;
use kasim_core::kas::receptive::{HttpReceptiveAgents, ReceptiveAgents, ReceptiveOptions};
use kasim_core::kas::tracker::InMemoryTracker;
use kasim_core::kas::{Kas, KasOptions};
use kasim_core::testing_service::TestingService;
use kasim_core::transport::Accept;
use kasim_core::transport::memory::MemoryNetwork;
use kasim_gitlab::{AgentId, GitLab, ProjectId, Role, Settings};
use tokio_util::sync::CancellationToken;

pub const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
pub const POLL: Duration = Duration::from_secs(10);

/// The stand-in reads kas's virtual clock, so JWTs agree.
#[derive(Debug)]
pub struct SharedVirtualClock(pub Arc<TokioClock>);

impl kasim_gitlab::Clock for SharedVirtualClock {
    fn now_unix(&self) -> i64 {
        self.0.unix_seconds()
    }
}

pub struct World {
    pub net: MemoryNetwork,
    pub gl: GitLab,
    pub clock: Arc<TokioClock>,
    pub kas: Kas,
    pub receptive: ReceptiveAgents,
    pub shutdown: CancellationToken,
    pub project: ProjectId,
    /// A maintainer's personal access token (scope `api`).
    pub pat: String,
}

impl World {
    pub async fn new() -> Self {
        let net = MemoryNetwork::default();
        let clock = Arc::new(TokioClock::new(DEFAULT_EPOCH_UNIX_MILLIS));
        let gl = GitLab::new(
            Settings {
                kas_jwt_secret: SECRET.to_vec(),
                k8s_proxy_url: "https://kas.example/k8s-proxy".into(),
                token_seed: 7,
            },
            Arc::new(SharedVirtualClock(clock.clone())),
        );
        gl.set_receptive_agents_enabled(true);
        let group = gl.add_group(None, None, "infra").unwrap();
        let project = gl.add_project(None, group, "agents").unwrap();
        let user = gl.add_user(None, "maintainer").unwrap();
        gl.add_project_member(project, user, Role::Maintainer).unwrap();
        let pat = gl.add_pat(user, &["api"]).unwrap();
        let shutdown = CancellationToken::new();
        let mut gl_listener = net.listen("gitlab:80");
        let (g, s) = (gl.clone(), shutdown.clone());
        tokio::spawn(async move {
            loop {
                let acc = tokio::select! {
                    biased;
                    () = s.cancelled() => return,
                    a = gl_listener.accept() => a,
                };
                let Ok(acc) = acc else { return };
                let g = g.clone();
                tokio::spawn(async move {
                    if let Ok(io) = acc.io.await {
                        let _ = g.serve_connection(io).await;
                    }
                });
            }
        });
        let dialer: kasim_core::transport::Dialer = Arc::new(net.connector());
        let kas = Kas::new(
            Arc::new(HttpGitLab::new(dialer.clone(), "gitlab:80", SECRET.to_vec(), clock.clone())),
            Arc::new(InMemoryTracker::new(clock.clone())),
            dialer.clone(),
            KasOptions { private_api_url: None, agent_listener: ListenerOptions::agent_default() },
        );
        let (k, l, s) = (kas.clone(), net.listen("kas:8150"), shutdown.clone());
        tokio::spawn(async move { k.serve_agents(Box::new(l), s).await });
        let receptive = ReceptiveAgents::new(
            kas.registry().clone(),
            Arc::new(HttpReceptiveAgents::new(dialer.clone(), "gitlab:80", SECRET.to_vec(), clock.clone())),
            dialer,
            clock.clone(),
            ReceptiveOptions {
                poll_period: POLL,
                health_period: Duration::from_secs(5),
                retry_period: Duration::from_secs(1),
            },
        );
        let (r, s) = (receptive.clone(), shutdown.clone());
        tokio::spawn(async move { r.run(s).await });
        Self { net, gl, clock, kas, receptive, shutdown, project, pat }
    }

    pub fn agent(&self, name: &str) -> AgentId {
        self.gl.add_agent(None, self.project, name).unwrap()
    }

    /// A REST call to the stand-in with the maintainer's token.
    pub async fn rest(&self, method: http::Method, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let dialer: kasim_core::transport::Dialer = Arc::new(self.net.connector());
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "gitlab")
            .header("private-token", &self.pat)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        let resp = kasim_core::http_client::send(&dialer, "gitlab:80", req).await.unwrap();
        let json =
            if resp.body.is_empty() { serde_json::Value::Null } else { serde_json::from_slice(&resp.body).unwrap() };
        (resp.status.as_u16(), json)
    }

    /// Creates `agent`'s URL configuration over REST; returns its JSON.
    pub async fn make_receptive(&self, agent: AgentId, url: &str) -> serde_json::Value {
        let (status, json) = self
            .rest(
                http::Method::POST,
                &format!("/api/v4/projects/{}/cluster_agents/{}/url_configurations", self.project, agent),
                serde_json::json!({ "url": url }),
            )
            .await;
        assert_eq!(status, 201, "{json}");
        json
    }

    /// Starts a receptive agentk listening at `name` (e.g. `agentk-1:8080`); cancel the token to stop it.
    pub fn receptive_agentk(
        &self,
        name: &str,
        public_key_b64: &str,
        agent_id: Option<i64>,
        version: &str,
        services: AgentServices,
    ) -> CancellationToken {
        let listener: Box<dyn Accept> = Box::new(self.net.listen(name));
        let opts = receptive::ReceptiveOptions {
            services,
            public_key: Some(receptive::parse_public_key(public_key_b64).unwrap()),
            agent_id,
            meta: AgentMeta { version: version.into(), commit_id: "test".into(), ..Default::default() },
            clock: self.clock.clone(),
        };
        let stop = self.shutdown.child_token();
        let s = stop.clone();
        tokio::spawn(async move { receptive::serve(listener, opts, s).await.unwrap() });
        stop
    }

    /// Starts a normal agentk for `agent` dialling kas.
    pub fn normal_agentk(&self, agent: AgentId, services: AgentServices) -> (Agentk, CancellationToken) {
        let token = self.gl.create_agent_token(agent).unwrap();
        let stop = self.shutdown.child_token();
        let a = Agentk::new(
            AgentkOptions {
                kas_authority: "kas:8150".into(),
                token,
                services,
                pool: PoolConfig::default(),
                seed: 3,
                version: "v18.6.0".into(),
                commit: "test".into(),
            },
            Arc::new(self.net.connector()),
            stop.clone(),
        )
        .unwrap();
        a.start();
        (a, stop)
    }
}

pub fn testing_services() -> AgentServices {
    AgentServices::default().add_service(TestingService::server())
}

/// Waits (virtual time) until `f` holds, failing after `limit`.
pub async fn eventually(limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "condition not reached within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
