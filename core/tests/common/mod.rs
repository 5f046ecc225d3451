//! A kas + agentk world on the in-memory transport, for virtual-time tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use kasim_core::agentk::{AgentServices, Agentk, AgentkOptions, PoolConfig};
use kasim_core::clock::TokioClock;
use kasim_core::kas::gitlab::{AgentInfo, StaticGitLab};
use kasim_core::kas::listener::ListenerOptions;
use kasim_core::kas::tracker::{InMemoryTracker, Tracker};
use kasim_core::kas::{Kas, KasOptions};
use kasim_core::proto::grpctool::test::testing_client::TestingClient;
use kasim_core::testing_service::TestingService;
use kasim_core::transport::memory::MemoryNetwork;
use tokio_util::sync::CancellationToken;

pub const TOKEN: &str = "glagent-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
pub const AGENT_ID: i64 = 42;

pub fn gitlab() -> Arc<StaticGitLab> {
    Arc::new(StaticGitLab::new([(
        TOKEN.to_owned(),
        AgentInfo { id: AGENT_ID, project_id: 150, name: "prod".into(), default_branch: "main".into() },
    )]))
}

pub struct World {
    pub net: MemoryNetwork,
    pub tracker: Arc<dyn Tracker>,
    pub shutdown: CancellationToken,
}

impl World {
    pub fn new() -> Self {
        Self {
            net: MemoryNetwork::default(),
            tracker: Arc::new(InMemoryTracker::new(Arc::new(TokioClock::new(0)))),
            shutdown: CancellationToken::new(),
        }
    }

    /// Starts kas `name` with an agent listener at `<name>:8150` and private API at `<name>:8155`.
    pub fn kas(&self, name: &str, agent_listener: ListenerOptions) -> Kas {
        let url = format!("grpc://{name}:8155");
        let kas = Kas::new(
            gitlab(),
            self.tracker.clone(),
            Arc::new(self.net.connector()),
            KasOptions { private_api_url: Some(url), agent_listener },
        );
        let (k1, k2, k3) = (kas.clone(), kas.clone(), kas.clone());
        let (l1, l2) = (self.net.listen(&format!("{name}:8150")), self.net.listen(&format!("{name}:8155")));
        let (s1, s2, s3) = (self.shutdown.clone(), self.shutdown.clone(), self.shutdown.clone());
        tokio::spawn(async move { k1.serve_agents(Box::new(l1), s1).await });
        tokio::spawn(async move { k2.serve_private_api(Box::new(l2), s2).await });
        tokio::spawn(async move { k3.run_tracker(s3).await });
        kas
    }

    pub fn agentk(&self, kas: &str, token: &str, pool: PoolConfig, seed: u64) -> Agentk {
        let a = Agentk::new(
            AgentkOptions {
                kas_authority: format!("{kas}:8150"),
                token: token.to_owned(),
                services: AgentServices::default().add_service(TestingService::server()),
                pool,
                seed,
                version: "v18.6.0".into(),
                commit: "test".into(),
            },
            Arc::new(self.net.connector()),
            self.shutdown.clone(),
        )
        .unwrap();
        a.start();
        a
    }
}

pub fn client(kas: &Kas) -> TestingClient<kasim_core::kas::router::RoutingChannel> {
    TestingClient::new(kas.router().channel(AGENT_ID))
}

/// Waits (virtual time) until `f` holds, failing after `limit`.
pub async fn eventually(limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "condition not reached within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
