//! A simulated world: a turmoil `Sim` holding kas replicas, agents, the L4 proxy, the GitLab
//! stand-in, API servers and drivers, plus the shared state the checkers read.
//!
//! Host names are stable and readable: `gitlab`, `apiserver-<i>`, `kas-<i>`, `proxy`,
//! `agentk-<i>`, `driver-<i>` (registered in that order, which fixes their addresses). The runner
//! advances the world with [`World::step`]; faults are applied between steps with [`World::apply`].

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use kasim_apiserver::{ApiServer, KubeVersion, UserInfo};
use kasim_core::clock::DEFAULT_EPOCH_UNIX_MILLIS;
use kasim_core::kas::gitlab::{AgentInfo, GitLabApi, HttpGitLab, StaticGitLab};
use kasim_core::kas::listener::{KEEPALIVE_INTERVAL, ListenerOptions};
use kasim_core::kas::tracker::InMemoryTracker;
use kasim_gitlab::{GitLab, Settings};

use crate::agent_host::{self, AgentHostConfig, ClusterContext, ServicesFactory};
use crate::apiserver_host::{self, APISERVER_PORT};
use crate::capture::CaptureLayer;
use crate::checker::{AgentProbe, Checkers, Violation};
use crate::client::{self, CLIENT_HOST, ClientConfig, ClientControl};
use crate::clock::SimClock;
use crate::conn::ConnTable;
use crate::driver::{self, DriverConfig, DriverControl};
use crate::fault::{Fault, FaultError, Link};
use crate::fixtures::{AGENTK_SERVICE_ACCOUNT, Fixtures, agentk_rbac};
use crate::gitlab_host::{self, GITLAB_HOST};
use crate::kas_host::{self, KasHostConfig, KasSlot, k8s_proxy_authority, private_url};
use crate::ledger::Ledger;
use crate::liveness::LivenessError;
use crate::proxy::{self, PROXY_HOST, ProxyConfig, ProxyControl};
use crate::seed::{Derived, Seed};
use crate::topology::{GitLabMode, Topology, TopologyError};
use crate::trace::{SimTime, Trace};

/// The host name the world itself uses in the trace (faults, checker results).
pub const WORLD: &str = "world";

/// Why a world could not be built.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error("GitLab model: {0}")]
    GitLab(#[from] kasim_gitlab::ModelError),
    #[error("API server model: {0}")]
    ApiServer(#[from] kasim_apiserver::LoadError),
    #[error("fixtures: {0}")]
    Fixtures(String),
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("invariant breached {0}")]
    Violation(Violation),
    #[error("simulation error: {0}")]
    Sim(String),
    #[error("fault: {0}")]
    Fault(#[from] FaultError),
    #[error("liveness: {0}")]
    Liveness(#[from] LivenessError),
}

impl From<Violation> for RunError {
    fn from(v: Violation) -> Self {
        Self::Violation(v)
    }
}

/// Hooks that are code, not data: what agents serve.
#[derive(Clone)]
pub struct Extensions {
    pub services: ServicesFactory,
    /// Scenario-supplied GitLab and cluster contents; also starts the CI client host.
    pub fixtures: Option<Fixtures>,
}

impl Default for Extensions {
    fn default() -> Self {
        Self { services: agent_host::testing_services(), fixtures: None }
    }
}

/// Faults in force, so the liveness phase can undo them.
#[derive(Debug, Default)]
pub(crate) struct FaultState {
    pub(crate) held: BTreeSet<Link>,
    pub(crate) partitioned: BTreeSet<Link>,
    pub(crate) oneway: BTreeSet<(String, String)>,
    pub(crate) crashed: BTreeSet<String>,
    pub(crate) latency: BTreeSet<Link>,
}

/// What a finished run looked like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub steps: u64,
    pub elapsed: Duration,
    /// Checker evaluations.
    pub checks: u64,
    /// (issued, ok, other outcomes, open).
    pub requests: (usize, usize, usize, usize),
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (issued, ok, other, open) = self.requests;
        write!(
            f,
            "{} steps, {} ms simulated, {} checker passes; requests: {issued} issued, {ok} ok, {other} other, {open} open",
            self.steps,
            self.elapsed.as_millis(),
            self.checks
        )
    }
}

/// A simulated world.
pub struct World {
    pub(crate) sim: turmoil::Sim<'static>,
    pub(crate) seed: Seed,
    pub(crate) topology: Topology,
    pub(crate) derived: Derived,
    pub(crate) trace: Trace,
    pub(crate) time: SimTime,
    pub(crate) kas: Vec<(String, KasSlot)>,
    pub(crate) agents: Vec<AgentProbe>,
    pub(crate) drivers: Vec<(String, DriverControl)>,
    pub(crate) proxy: ProxyControl,
    pub(crate) conns: ConnTable,
    pub(crate) ledger: Ledger,
    pub(crate) checkers: Checkers,
    pub(crate) faults: FaultState,
    pub(crate) hosts: Vec<String>,
    pub(crate) links: Vec<Link>,
    pub(crate) steps: u64,
    pub(crate) checks: u64,
    pub(crate) faults_applied: u64,
    pub(crate) gitlab: Option<GitLab>,
    pub(crate) apiservers: Vec<Arc<ApiServer>>,
    pub(crate) client: Option<ClientControl>,
    replay: String,
    _capture: Option<tracing::subscriber::DefaultGuard>,
}

impl World {
    /// Builds the world of `topology` for `seed`, with agents serving the Testing service.
    pub fn build(topology: &Topology, seed: Seed) -> Result<Self, WorldError> {
        Self::build_with(topology, seed, Extensions::default())
    }

    /// Builds the world with custom extensions (per-agent services).
    pub fn build_with(topology: &Topology, seed: Seed, ext: Extensions) -> Result<Self, WorldError> {
        topology.validate()?;
        let t = topology;
        let time = SimTime::default();
        let trace = Trace::new(time.clone(), t.trace.echo);
        let capture = t.trace.tracing.as_deref().and_then(|l| l.parse::<tracing::Level>().ok()).map(|level| {
            use tracing_subscriber::layer::SubscriberExt;
            let subscriber = tracing_subscriber::registry().with(CaptureLayer::new(trace.clone(), level));
            tracing::subscriber::set_default(subscriber)
        });
        let mut derived = Derived::default();
        let turmoil_seed = seed.derive("turmoil");
        derived.note("turmoil.rng_seed", turmoil_seed);

        let sim = turmoil::Builder::new()
            .simulation_duration(Duration::from_secs(10 * 365 * 86400))
            .tick_duration(t.tick.0)
            .epoch(UNIX_EPOCH + Duration::from_millis(u64::try_from(DEFAULT_EPOCH_UNIX_MILLIS).unwrap_or(0)))
            .min_message_latency(t.latency.min.0)
            .max_message_latency(t.latency.max.0)
            .rng_seed(turmoil_seed)
            .build();

        let mut w = World {
            sim,
            seed,
            topology: t.clone(),
            derived,
            trace,
            time,
            kas: vec![],
            agents: vec![],
            drivers: vec![],
            proxy: ProxyControl::default(),
            conns: ConnTable::default(),
            ledger: Ledger::default(),
            checkers: Checkers::new(t.tick.0),
            faults: FaultState::default(),
            hosts: vec![],
            links: vec![],
            steps: 0,
            checks: 0,
            faults_applied: 0,
            gitlab: None,
            apiservers: vec![],
            client: None,
            replay: "cargo test -p kasim-sim".into(),
            _capture: capture,
        };
        w.populate(&ext)?;
        Ok(w)
    }

    fn populate(&mut self, ext: &Extensions) -> Result<(), WorldError> {
        let t = self.topology.clone();
        let seed = self.seed;

        // GitLab: one group, one project, one agent per cluster; tokens from a seeded generator.
        let token_seed = seed.derive("gitlab/tokens");
        self.derived.note("gitlab.token_seed", token_seed);
        let secret = seed.derive("gitlab/kas-secret").to_be_bytes().to_vec();
        let k8s_proxy_url = match &ext.fixtures {
            Some(_) => format!("http://{}", k8s_proxy_authority(0)),
            None => "https://kas.kasim.test/k8s-proxy".into(),
        };
        let gitlab = GitLab::new(
            Settings { kas_jwt_secret: secret.clone(), k8s_proxy_url, token_seed },
            Arc::new(SimClock::default()),
        );
        let mut agent_ids = vec![];
        let mut tokens = vec![];
        let mut project = kasim_gitlab::ProjectId(0);
        if let Some(f) = &ext.fixtures {
            let ids = (f.gitlab)(&gitlab).map_err(WorldError::Fixtures)?;
            if ids.len() != t.agents.len() {
                return Err(WorldError::Fixtures(format!(
                    "{} agents in GitLab for {} agents in the topology",
                    ids.len(),
                    t.agents.len()
                )));
            }
            for id in ids {
                tokens.push(gitlab.create_agent_token(id)?);
                agent_ids.push(id.0);
            }
        } else {
            let group = gitlab.add_group(None, None, "kasim")?;
            project = gitlab.add_project(None, group, "clusters")?;
            for i in 0..t.agents.len() {
                let id = gitlab.add_agent(None, project, &format!("agent-{i}"))?;
                tokens.push(gitlab.create_agent_token(id)?);
                agent_ids.push(id.0);
            }
        }
        self.gitlab = Some(gitlab.clone());
        let gitlab_api: Arc<dyn GitLabApi> = match t.gitlab {
            GitLabMode::Http => {
                let gl = Arc::new(gitlab.clone());
                let trace = self.trace.clone();
                self.add_host(GITLAB_HOST, move || gitlab_host::run(gl.clone(), trace.clone()));
                Arc::new(HttpGitLab::new(
                    Arc::new(crate::net::SimConnector),
                    &gitlab_host::authority(),
                    secret,
                    Arc::new(SimClock::default()),
                ))
            }
            GitLabMode::Static => {
                Arc::new(StaticGitLab::new(tokens.iter().zip(&agent_ids).enumerate().map(|(i, (tok, id))| {
                    let name = format!("agent-{i}");
                    (tok.clone(), AgentInfo { id: *id, project_id: project.0, name, default_branch: "main".into() })
                })))
            }
        };

        // One API server model per cluster.
        let mut clusters = vec![];
        for (i, id) in agent_ids.iter().enumerate() {
            let sa_token = format!("sa-{:016x}", seed.derive(&format!("apiserver-{i}/sa-token")));
            let apiserver = if t.apiservers {
                let name = apiserver_host::host_name(i);
                let version = ext.fixtures.as_ref().map_or(KubeVersion::V1_33, |f| f.kube_version);
                // What a bound service-account token authenticates as on a real 1.30+ server (and
                // the model's own TokenRequest tokens): the account's groups and the credential id.
                let agentk_user = UserInfo {
                    username: AGENTK_SERVICE_ACCOUNT.into(),
                    groups: vec!["system:serviceaccounts".into(), "system:serviceaccounts:gitlab-agent".into()],
                    extra: [(
                        "authentication.kubernetes.io/credential-id".to_owned(),
                        vec![format!("JTI=6b617369-7361-4b00-8000-{i:012x}")],
                    )]
                    .into(),
                    ..Default::default()
                };
                let mut builder = ApiServer::builder(version).token(sa_token.clone(), agentk_user);
                if let Some(f) = &ext.fixtures {
                    builder = builder.yaml(agentk_rbac());
                    if let Some(y) = f.cluster_yaml.get(i) {
                        builder = builder.yaml(y.clone());
                    }
                }
                let server = Arc::new(builder.build()?);
                self.apiservers.push(server.clone());
                let (n, trace) = (name.clone(), self.trace.clone());
                self.add_host(&name, move || apiserver_host::run(n.clone(), server.clone(), trace.clone()));
                Some(format!("{name}:{APISERVER_PORT}"))
            } else {
                None
            };
            clusters.push(ClusterContext { index: i, agent_id: *id, apiserver, apiserver_token: sa_token });
        }

        // kas replicas sharing one tracker on simulated time.
        let tracker = Arc::new(InMemoryTracker::new(Arc::new(SimClock::default())));
        let age = t.kas.max_connection_age.0;
        let listener = ListenerOptions {
            max_connection_age: (!age.is_zero()).then_some(age),
            max_connection_age_grace: t.kas.grace(),
            keepalive_interval: Some(KEEPALIVE_INTERVAL),
        };
        let kas_hosts: Vec<String> = (0..t.kas.replicas).map(|i| format!("kas-{i}")).collect();
        for name in &kas_hosts {
            let slot: KasSlot = Arc::default();
            let cfg = KasHostConfig {
                name: name.clone(),
                gitlab: gitlab_api.clone(),
                tracker: tracker.clone(),
                listener: listener.clone(),
                slot: slot.clone(),
                table: self.conns.clone(),
                trace: self.trace.clone(),
                time: self.time.clone(),
            };
            self.add_host(name, move || kas_host::run(cfg.clone()));
            self.kas.push((name.clone(), slot));
        }

        // The L4 proxy.
        let proxy_seed = seed.derive("proxy/assignment");
        self.derived.note("proxy.assignment", format!("{:?} (seed {proxy_seed})", t.proxy.assignment));
        let lifetime = t.proxy.lifetime.0;
        let pcfg = ProxyConfig {
            kas_hosts: kas_hosts.clone(),
            lifetime: (!lifetime.is_zero()).then_some(lifetime),
            assignment: t.proxy.assignment,
            control: self.proxy.clone(),
            picker: Arc::new(Mutex::new((0, seed.rng("proxy/assignment")))),
            table: self.conns.clone(),
            trace: self.trace.clone(),
            time: self.time.clone(),
        };
        self.add_host(PROXY_HOST, move || proxy::run(pcfg.clone()));

        // Agents.
        for (i, a) in t.agents.iter().enumerate() {
            let name = format!("agentk-{i}");
            let pool_seed = seed.derive(&format!("{name}/pool"));
            self.derived.note(format!("{name}.pool_seed"), pool_seed);
            let slot = Arc::default();
            let cfg = AgentHostConfig {
                name: name.clone(),
                token: tokens[i].clone(),
                pool: a.pool.to_config(),
                pool_seed,
                incarnation: Arc::default(),
                cluster: clusters[i].clone(),
                services: ext.services.clone(),
                slot: Arc::clone(&slot),
                trace: self.trace.clone(),
            };
            self.add_host(&name, move || agent_host::run(cfg.clone()));
            self.agents.push(AgentProbe { name, id: agent_ids[i], slot, token: tokens[i].clone() });
        }

        // Drivers.
        let urls: Vec<String> = kas_hosts.iter().map(|h| private_url(h)).collect();
        for (i, d) in t.drivers.iter().enumerate() {
            let name = format!("driver-{i}");
            let control = DriverControl::default();
            let cfg = DriverConfig {
                name: name.clone(),
                spec: d.clone(),
                agents: agent_ids.clone(),
                kas_private_urls: urls.clone(),
                control: control.clone(),
                ledger: self.ledger.clone(),
                trace: self.trace.clone(),
                time: self.time.clone(),
            };
            self.add_host(&name, move || driver::run(cfg.clone()));
            self.drivers.push((name, control));
        }

        // The CI client host, when the scenario brings its own GitLab and clusters.
        if ext.fixtures.is_some() {
            let control = ClientControl::default();
            let cfg = ClientConfig {
                agents: agent_ids.clone(),
                kas_private_urls: urls.clone(),
                control: control.clone(),
                ledger: self.ledger.clone(),
                trace: self.trace.clone(),
                time: self.time.clone(),
            };
            self.add_host(CLIENT_HOST, move || client::run(cfg.clone()));
            self.client = Some(control);
        }

        self.links = links(&t, &kas_hosts);
        if self.client.is_some() {
            for k in &kas_hosts {
                self.links.push(Link::new(CLIENT_HOST, k));
            }
        }
        Ok(())
    }

    fn add_host<F, Fut>(&mut self, name: &str, software: F)
    where
        F: Fn() -> Fut + 'static,
        Fut: Future<Output = turmoil::Result> + 'static,
    {
        self.sim.host(name, software);
        self.hosts.push(name.to_owned());
    }

    /// The seed, every derived setting, and the host list, as printed before a run.
    pub fn banner(&self) -> String {
        format!(
            "kasim-sim seed {} (set {}=<n> to change)\nderived settings:\n{}hosts: {}\n",
            self.seed,
            crate::seed::SEED_ENV,
            self.derived,
            self.hosts.join(", ")
        )
    }

    /// Sets the command printed (behind `KASIM_SEED=<seed>`) when a run fails.
    pub fn set_replay_command(&mut self, command: &str) {
        command.clone_into(&mut self.replay);
    }

    pub fn replay_command(&self) -> String {
        self.seed.replay_command(&self.replay)
    }

    /// The report printed when a run fails: error, replay command, trace tail.
    pub fn failure_report(&self, err: &RunError) -> String {
        format!(
            "FAILED at {} ms: {err}\nseed {}; replay: {}\nlast trace lines:\n{}\n",
            self.sim.elapsed().as_millis(),
            self.seed,
            self.replay_command(),
            self.trace.tail(40)
        )
    }

    pub fn seed(&self) -> Seed {
        self.seed
    }

    /// The GitLab model (job tokens, kubeconfigs).
    pub fn gitlab(&self) -> Option<&GitLab> {
        self.gitlab.as_ref()
    }

    /// API server model of cluster `i` (audit log, objects).
    pub fn apiserver(&self, i: usize) -> Option<&ApiServer> {
        self.apiservers.get(i).map(|a| &**a)
    }

    /// The CI client host's handle; `Some` when the world was built with fixtures.
    pub fn client(&self) -> Option<&ClientControl> {
        self.client.as_ref()
    }

    /// The live observed connections (kas agent listeners and proxied ones).
    pub fn connections(&self) -> &ConnTable {
        &self.conns
    }

    /// agentk's pool statistics of agent `i` (`None` while its host is down).
    pub fn pool_stats(&self, agent: usize) -> Option<kasim_core::agentk::PoolStats> {
        let a = self.agents.get(agent)?;
        a.slot.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|a| a.stats())
    }

    pub fn derived(&self) -> &Derived {
        &self.derived
    }

    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// Every link between hosts that talk to each other, in a stable order.
    pub fn links(&self) -> &[Link] {
        &self.links
    }

    pub fn elapsed(&self) -> Duration {
        self.sim.elapsed()
    }

    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Tunnel stream counts of agent `i` (agentk pool and kas registries).
    pub fn stream_counts(&self, agent: usize) -> Option<crate::checker::StreamCounts> {
        self.agents.get(agent).map(|a| crate::checker::stream_counts(a, &self.kas))
    }

    /// Drops all live proxied connections.
    pub fn proxy_cut(&self) {
        self.proxy.cut();
    }

    pub fn report(&self) -> Report {
        Report { steps: self.steps, elapsed: self.sim.elapsed(), checks: self.checks, requests: self.ledger.counts() }
    }

    /// Advances one tick, then runs the checkers if it is their turn.
    pub fn step(&mut self) -> Result<(), RunError> {
        self.time.set(self.sim.elapsed());
        self.sim.step().map_err(|e| RunError::Sim(e.to_string()))?;
        self.steps += 1;
        self.time.set(self.sim.elapsed());
        if self.steps.is_multiple_of(u64::from(self.topology.check_every)) {
            self.check()?;
        }
        Ok(())
    }

    /// Runs every checker now.
    pub fn check(&mut self) -> Result<(), RunError> {
        let now = self.sim.elapsed();
        self.checks += 1;
        let no_failures = self.topology.expect_no_failures && self.faults_applied == 0;
        let r = self
            .checkers
            .stream_cap(now, &self.agents, &self.kas)
            .and_then(|()| self.checkers.requests(now, &self.ledger, no_failures))
            .and_then(|()| self.checkers.connection_age(now, &self.conns))
            .and_then(|()| self.checkers.token_leak(now, &self.trace, &self.agents));
        if let Err(v) = &r {
            self.trace.record(WORLD, format_args!("checker FAILED: {v}"));
        }
        r.map_err(RunError::from)
    }

    /// Steps until `elapsed() >= until`.
    pub fn run_until(&mut self, until: Duration) -> Result<(), RunError> {
        while self.sim.elapsed() < until {
            self.step()?;
        }
        Ok(())
    }

    /// Applies `faults` (compiled, time-ordered) at their times while stepping until `until`.
    pub fn run_schedule(&mut self, faults: &[(Duration, Fault)], until: Duration) -> Result<(), RunError> {
        let mut next = 0;
        loop {
            while let Some((at, f)) = faults.get(next)
                && *at <= self.sim.elapsed()
            {
                self.apply(f)?;
                next += 1;
            }
            if self.sim.elapsed() >= until && next >= faults.len() {
                return Ok(());
            }
            self.step()?;
        }
    }

    fn known(&self, host: &str) -> Result<(), FaultError> {
        if self.hosts.iter().any(|h| h == host) { Ok(()) } else { Err(FaultError::UnknownHost(host.to_owned())) }
    }

    fn link(&self, a: &str, b: &str) -> Result<Link, FaultError> {
        self.known(a)?;
        self.known(b)?;
        if a == b {
            return Err(FaultError::SelfLink(a.to_owned()));
        }
        Ok(if a < b { Link::new(a, b) } else { Link::new(b, a) })
    }

    /// Clears the live handles of a host whose software stops.
    fn stopping(&mut self, host: &str) {
        let now = self.sim.elapsed();
        for (n, slot) in &self.kas {
            if n == host {
                *slot.lock().unwrap_or_else(|e| e.into_inner()) = None;
            }
        }
        for a in &self.agents {
            if a.name == host {
                *a.slot.lock().unwrap_or_else(|e| e.into_inner()) = None;
            }
        }
        for id in self.ledger.abandon(host, now) {
            self.trace.record(host, format_args!("req {id} abandoned"));
        }
        self.conns.forget_host(host);
    }

    /// Applies one fault now.
    pub fn apply(&mut self, fault: &Fault) -> Result<(), RunError> {
        self.trace.record(WORLD, format_args!("fault: {fault}"));
        self.faults_applied += 1;
        match fault {
            Fault::Hold(l) => {
                let l = self.link(&l.a, &l.b)?;
                self.sim.hold(l.a.as_str(), l.b.as_str());
                self.faults.held.insert(l);
            }
            Fault::Release(l) => {
                let l = self.link(&l.a, &l.b)?;
                self.sim.release(l.a.as_str(), l.b.as_str());
                self.faults.held.remove(&l);
            }
            Fault::Partition(l) => {
                let l = self.link(&l.a, &l.b)?;
                self.sim.partition(l.a.as_str(), l.b.as_str());
                self.faults.partitioned.insert(l);
            }
            Fault::Repair(l) => {
                let l = self.link(&l.a, &l.b)?;
                self.sim.repair(l.a.as_str(), l.b.as_str());
                self.faults.partitioned.remove(&l);
            }
            Fault::PartitionOneway(o) => {
                self.link(&o.from, &o.to)?;
                self.sim.partition_oneway(o.from.as_str(), o.to.as_str());
                self.faults.oneway.insert((o.from.clone(), o.to.clone()));
            }
            Fault::RepairOneway(o) => {
                self.link(&o.from, &o.to)?;
                self.sim.repair_oneway(o.from.as_str(), o.to.as_str());
                self.faults.oneway.remove(&(o.from.clone(), o.to.clone()));
            }
            Fault::Crash { host } => {
                self.known(host)?;
                self.stopping(host);
                self.sim.crash(host.as_str());
                self.faults.crashed.insert(host.clone());
            }
            Fault::Bounce { host } => self.bounce(host)?,
            Fault::KasRestart { replica } => {
                let host = self
                    .kas
                    .get(*replica)
                    .map(|(n, _)| n.clone())
                    .ok_or(FaultError::NoSuchReplica { replica: *replica, replicas: self.kas.len() })?;
                self.bounce(&host)?;
            }
            Fault::Latency { a, b, latency } => {
                let l = self.link(a, b)?;
                self.sim.set_link_latency(l.a.as_str(), l.b.as_str(), latency.0);
                self.faults.latency.insert(l);
            }
            Fault::ProxyCut => self.proxy.cut(),
            Fault::Swizzle(_) => return Err(FaultError::Unexpanded.into()),
            Fault::Heal => self.heal(),
        }
        Ok(())
    }

    /// Applies `fault` now; a swizzle is expanded from the seed (noted in the derived settings and
    /// the trace) and played to its end, so scenario steps can use every fault kind.
    pub fn apply_expanded(&mut self, fault: &Fault) -> Result<(), RunError> {
        if !matches!(fault, Fault::Swizzle(_)) {
            return self.apply(fault);
        }
        let now = self.sim.elapsed();
        let schedule = crate::schedule::Schedule {
            entries: vec![crate::schedule::Entry { at: crate::topology::SimDuration(now), fault: fault.clone() }],
        };
        let links = self.links.clone();
        let compiled = schedule.compile(&links, self.seed, &mut self.derived)?;
        if let Some((k, v)) = self.derived.entries().last() {
            self.trace.record(WORLD, format_args!("derived {k}: {v}"));
        }
        let end = schedule.end(&compiled);
        self.run_schedule(&compiled, end)
    }

    fn bounce(&mut self, host: &str) -> Result<(), FaultError> {
        self.known(host)?;
        self.stopping(host);
        self.sim.bounce(host);
        self.faults.crashed.remove(host);
        Ok(())
    }

    /// Undoes every fault in force: releases holds, repairs partitions, restarts crashed hosts and
    /// fixes overridden links to the topology's minimum latency (turmoil cannot unset a link's
    /// latency).
    pub fn heal(&mut self) {
        let f = std::mem::take(&mut self.faults);
        for l in &f.held {
            self.sim.release(l.a.as_str(), l.b.as_str());
        }
        for l in &f.partitioned {
            self.sim.repair(l.a.as_str(), l.b.as_str());
        }
        for (from, to) in &f.oneway {
            self.sim.repair_oneway(from.as_str(), to.as_str());
        }
        for l in &f.latency {
            self.sim.set_link_latency(l.a.as_str(), l.b.as_str(), self.topology.latency.min.0);
        }
        for h in &f.crashed {
            self.sim.bounce(h.as_str());
        }
        self.trace.record(
            WORLD,
            format_args!(
                "healed: {} holds, {} partitions, {} one-way, {} latencies, {} crashed",
                f.held.len(),
                f.partitioned.len(),
                f.oneway.len(),
                f.latency.len(),
                f.crashed.len()
            ),
        );
    }
}

/// Links between hosts that talk to each other: agentk–proxy, proxy–kas, kas–gitlab, kas–kas,
/// driver–kas, agentk–apiserver.
fn links(t: &Topology, kas: &[String]) -> Vec<Link> {
    let mut out = vec![];
    for i in 0..t.agents.len() {
        out.push(Link::new(&format!("agentk-{i}"), PROXY_HOST));
    }
    for k in kas {
        out.push(Link::new(PROXY_HOST, k));
    }
    if t.gitlab == GitLabMode::Http {
        for k in kas {
            out.push(Link::new(k, GITLAB_HOST));
        }
    }
    for (i, a) in kas.iter().enumerate() {
        for b in &kas[i + 1..] {
            out.push(Link::new(a, b));
        }
    }
    for d in 0..t.drivers.len() {
        for k in kas {
            out.push(Link::new(&format!("driver-{d}"), k));
        }
    }
    if t.apiservers {
        for i in 0..t.agents.len() {
            out.push(Link::new(&format!("agentk-{i}"), &apiserver_host::host_name(i)));
        }
    }
    out
}
