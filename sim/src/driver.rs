//! Driver hosts: clients that call agents through kas and write every request into the [`Ledger`].
//!
//! A driver reaches kas like a GitLab-side component does: a [`Router`] with no tunnels of its own
//! and a static tracker listing every kas private API, so each call is routed by whichever replica
//! holds a tunnel of the agent. Unary Testing calls go out every `interval` (agents in turn); `holds`
//! long `Hold` calls stay in flight like watches. Every call has a driver-side deadline, so each
//! request gets exactly one outcome even when the network swallows it.
//!
//! Extension point: CI-job HTTP clients of kas's Kubernetes API proxy will be another request kind
//! here (`RequestKind::K8sProxy`), issued against a kas HTTP listener once core has one.

use std::sync::Arc;
use std::time::Duration;

use kasim_core::kas::router::{Router, RoutingChannel};
use kasim_core::kas::tracker::StaticTracker;
use kasim_core::proto::grpctool::test::testing_client::TestingClient;
use kasim_core::proto::grpctool::test::{HoldRequest, Request as TestRequest};
use kasim_core::tunnel::registry::{AgentId, Registry};
use tokio::sync::watch;

use crate::ledger::{Ledger, Outcome, RequestKind};
use crate::net::SimConnector;
use crate::topology::{DriverBug, DriverTopology};
use crate::trace::{SimTime, Trace};

/// How long the driver's router looks for a tunnel (kas's own routing limit).
pub const ROUTING_TIMEOUT: Duration = kasim_core::kas::router::ROUTING_TIMEOUT;

/// Asks a driver to probe every agent once (liveness phase); cheap to clone.
#[derive(Debug, Clone)]
pub struct DriverControl {
    probe: Arc<watch::Sender<u64>>,
}

impl Default for DriverControl {
    fn default() -> Self {
        Self { probe: Arc::new(watch::channel(0).0) }
    }
}

impl DriverControl {
    pub fn probe(&self) {
        self.probe.send_modify(|g| *g += 1);
    }
}

/// Everything one driver incarnation needs.
#[derive(Clone)]
pub struct DriverConfig {
    pub name: String,
    pub spec: DriverTopology,
    /// Agent ids, by agent index.
    pub agents: Vec<AgentId>,
    pub kas_private_urls: Vec<String>,
    pub control: DriverControl,
    pub ledger: Ledger,
    pub trace: Trace,
    pub time: SimTime,
}

type Client = TestingClient<RoutingChannel>;

impl DriverConfig {
    fn client(&self, router: &Router, agent: usize) -> Client {
        TestingClient::new(router.channel(self.agents.get(agent).copied().unwrap_or_default()))
    }

    /// Issues one call and records its outcome (unless the configured bug says otherwise).
    async fn call(&self, router: &Router, agent: usize, kind: RequestKind) {
        let timeout = match kind {
            RequestKind::Hold => self.spec.hold_for.0 + self.spec.request_timeout.0,
            _ => self.spec.request_timeout.0,
        };
        let id = self.ledger.issue(&self.name, agent, kind, self.time.now(), timeout);
        self.trace.record(&self.name, format_args!("req {id} {kind} agent-{agent} issued"));
        let mut c = self.client(router, agent);
        let hold_millis = i64::try_from(self.spec.hold_for.0.as_millis()).unwrap_or(i64::MAX);
        let call = async {
            match kind {
                RequestKind::Hold => c.hold(HoldRequest { hold_millis }).await.map(|_| ()),
                _ => c.request_response(TestRequest { s1: format!("req-{id}"), payload: vec![] }).await.map(|_| ()),
            }
        };
        let outcome = match tokio::time::timeout(timeout, call).await {
            Ok(Ok(())) => Outcome::Ok,
            Ok(Err(s)) => Outcome::Failed(format!("{:?}", s.code())),
            Err(_) => Outcome::TimedOut,
        };
        self.trace.record(&self.name, format_args!("req {id} {outcome}"));
        match self.spec.bug {
            Some(DriverBug::LoseEvery { n }) if id.is_multiple_of(n) => {}
            Some(DriverBug::DuplicateEvery { n }) if id.is_multiple_of(n) => {
                self.ledger.complete(id, self.time.now(), outcome.clone());
                self.ledger.complete(id, self.time.now(), outcome);
            }
            _ => self.ledger.complete(id, self.time.now(), outcome),
        }
    }
}

/// The driver host's software.
pub async fn run(cfg: DriverConfig) -> turmoil::Result {
    let router = Router::with_timeout(
        Registry::default(),
        Arc::new(StaticTracker::new(cfg.kas_private_urls.clone())),
        None,
        Arc::new(SimConnector),
        ROUTING_TIMEOUT,
    );
    cfg.trace.record(&cfg.name, "started");
    let n_agents = cfg.agents.len().max(1);
    for h in 0..cfg.spec.holds {
        let (cfg, router) = (cfg.clone(), router.clone());
        tokio::spawn(async move {
            loop {
                cfg.call(&router, h % n_agents, RequestKind::Hold).await;
            }
        });
    }
    let mut probe = cfg.control.probe.subscribe();
    probe.mark_unchanged();
    let interval = cfg.spec.interval.0;
    let mut next_agent = 0;
    let mut tick = (!interval.is_zero()).then(|| tokio::time::interval(interval));
    loop {
        tokio::select! {
            biased;
            r = probe.changed() => {
                if r.is_err() {
                    return Ok(());
                }
                for agent in 0..cfg.agents.len() {
                    let (cfg, router) = (cfg.clone(), router.clone());
                    tokio::spawn(async move { cfg.call(&router, agent, RequestKind::Probe).await });
                }
            }
            _ = async { match tick.as_mut() { Some(t) => t.tick().await, None => std::future::pending().await } } => {
                let agent = next_agent % n_agents;
                next_agent += 1;
                let (cfg, router) = (cfg.clone(), router.clone());
                tokio::spawn(async move { cfg.call(&router, agent, RequestKind::Unary).await });
            }
        }
    }
}
