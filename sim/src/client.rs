//! The CI client host (`ci`): what CI jobs and GitLab-side callers do, on command from the runner.
//!
//! Scenario steps are issued between simulation steps, so the runner cannot await a call: it queues
//! a [`Command`] on the host's [`ClientControl`] and steps the world until the outcome shows up.
//! - `Http`: one request through kas's Kubernetes API proxy, as `kubectl` with a CI job's
//!   kubeconfig would send it (one HTTP/1.1 connection per request). The outcome keeps the status,
//!   body and virtual latency.
//! - `Holds` / `Unary`: Testing-service calls routed by kas to an agent, like the drivers' (a router
//!   with no tunnels of its own and a static tracker of every kas). They go into the shared
//!   [`Ledger`], so the request checker holds them to exactly one outcome each.
//! - `Watches`: long HTTP requests (e.g. `?watch=1`) through the proxy, also in the ledger.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use kasim_core::kas::router::Router;
use kasim_core::kas::tracker::StaticTracker;
use kasim_core::proto::grpctool::test::testing_client::TestingClient;
use kasim_core::proto::grpctool::test::{HoldRequest, Request as TestRequest};
use kasim_core::tunnel::registry::{AgentId, Registry};
use tokio::sync::watch;

use crate::ledger::{Ledger, Outcome, RequestKind};
use crate::net::SimConnector;
use crate::trace::{SimTime, Trace};

/// The client host's name.
pub const CLIENT_HOST: &str = "ci";

/// One HTTP request through the k8s proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCall {
    /// `kas-0:8160`.
    pub authority: String,
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Sent in this order, after `host`; `authorization` belongs here.
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    /// The client gives up after this long (virtual time).
    pub timeout: Duration,
}

/// How an HTTP request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpOutcome {
    Response {
        status: u16,
        body: String,
        elapsed: Duration,
    },
    /// Connection error or the client's timeout.
    Error {
        error: String,
        elapsed: Duration,
    },
}

/// A command for the client host.
#[derive(Debug, Clone)]
pub enum Command {
    Http {
        id: u64,
        call: HttpCall,
    },
    /// `count` concurrent Testing `Hold` calls of `hold_for` to agent index `agent`.
    Holds {
        agent: usize,
        count: usize,
        hold_for: Duration,
        timeout: Duration,
    },
    /// `count` unary Testing calls to agent index `agent`, one every `interval`.
    Unary {
        agent: usize,
        count: usize,
        interval: Duration,
        timeout: Duration,
    },
    /// `count` concurrent long HTTP requests; success = status 200 and the body ran to its end.
    Watches {
        agent: usize,
        count: usize,
        call: HttpCall,
    },
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Command>,
    results: BTreeMap<u64, HttpOutcome>,
    next_id: u64,
    /// The longest a successful hold waited for a tunnel (latency minus the hold).
    max_queue_wait: Duration,
}

/// The runner's handle on the client host; cheap to clone.
#[derive(Debug, Clone)]
pub struct ClientControl {
    state: Arc<Mutex<State>>,
    wake: Arc<watch::Sender<u64>>,
}

impl Default for ClientControl {
    fn default() -> Self {
        Self { state: Arc::default(), wake: Arc::new(watch::channel(0).0) }
    }
}

impl ClientControl {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues an HTTP request; returns its id for [`Self::take`].
    pub fn http(&self, call: HttpCall) -> u64 {
        let id = {
            let mut s = self.lock();
            s.next_id += 1;
            let id = s.next_id;
            s.queue.push_back(Command::Http { id, call });
            id
        };
        self.wake.send_modify(|g| *g += 1);
        id
    }

    /// Queues a load command (holds, unary calls, watches).
    pub fn load(&self, cmd: Command) {
        self.lock().queue.push_back(cmd);
        self.wake.send_modify(|g| *g += 1);
    }

    /// The outcome of HTTP request `id`, once there is one (taken: a second call returns `None`).
    pub fn take(&self, id: u64) -> Option<HttpOutcome> {
        self.lock().results.remove(&id)
    }

    /// The longest a successful `Hold` call waited for a tunnel: its latency minus the hold time.
    pub fn max_queue_wait(&self) -> Duration {
        self.lock().max_queue_wait
    }

    fn next(&self) -> Option<Command> {
        self.lock().queue.pop_front()
    }

    fn done(&self, id: u64, outcome: HttpOutcome) {
        self.lock().results.insert(id, outcome);
    }
}

/// Everything the client host needs.
#[derive(Clone)]
pub struct ClientConfig {
    pub agents: Vec<AgentId>,
    pub kas_private_urls: Vec<String>,
    pub control: ClientControl,
    pub ledger: Ledger,
    pub trace: Trace,
    pub time: SimTime,
}

impl HttpCall {
    /// The request as sent: `host`, then `headers` in order, and a JSON body with its content type.
    pub fn request(&self) -> Result<http::Request<Full<Bytes>>, String> {
        let mut req = http::Request::builder().method(self.method.as_str()).uri(self.path.as_str());
        req = req.header("host", self.authority.as_str());
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if self.body.is_some() {
            req = req.header("content-type", "application/json");
        }
        req.body(Full::new(Bytes::from(self.body.clone().unwrap_or_default()))).map_err(|e| format!("request: {e}"))
    }
}

/// Sends one HTTP/1.1 request on a fresh connection (core's one-shot client over the simulated
/// network) and reads the whole body.
async fn send(call: &HttpCall) -> Result<(u16, String), String> {
    let dialer: kasim_core::transport::Dialer = Arc::new(SimConnector);
    let resp =
        kasim_core::http_client::send(&dialer, &call.authority, call.request()?).await.map_err(|e| e.to_string())?;
    Ok((resp.status.as_u16(), String::from_utf8_lossy(&resp.body).into_owned()))
}

impl ClientConfig {
    async fn http(&self, id: u64, call: HttpCall) {
        let start = self.time.now();
        self.trace.record(CLIENT_HOST, format_args!("http {id} {} {}", call.method, call.path));
        let outcome = match tokio::time::timeout(call.timeout, send(&call)).await {
            Ok(Ok((status, body))) => HttpOutcome::Response { status, body, elapsed: self.time.now() - start },
            Ok(Err(error)) => HttpOutcome::Error { error, elapsed: self.time.now() - start },
            Err(_) => HttpOutcome::Error { error: "client timeout".into(), elapsed: self.time.now() - start },
        };
        let summary = match &outcome {
            HttpOutcome::Response { status, .. } => format!("status {status}"),
            HttpOutcome::Error { error, .. } => error.clone(),
        };
        self.trace.record(CLIENT_HOST, format_args!("http {id} {summary}"));
        self.control.done(id, outcome);
    }

    async fn grpc(&self, router: &Router, agent: usize, kind: RequestKind, hold_for: Duration, timeout: Duration) {
        let start = self.time.now();
        let id = self.ledger.issue(CLIENT_HOST, agent, kind, start, timeout);
        let mut c = TestingClient::new(router.channel(self.agents.get(agent).copied().unwrap_or_default()));
        let hold_millis = i64::try_from(hold_for.as_millis()).unwrap_or(i64::MAX);
        let call = async {
            match kind {
                RequestKind::Hold => c.hold(HoldRequest { hold_millis }).await.map(|_| ()),
                _ => c.request_response(TestRequest { s1: format!("ci-{id}"), payload: vec![] }).await.map(|_| ()),
            }
        };
        let outcome = match tokio::time::timeout(timeout, call).await {
            Ok(Ok(())) => Outcome::Ok,
            Ok(Err(s)) => Outcome::Failed(format!("{:?}: {}", s.code(), s.message())),
            Err(_) => Outcome::TimedOut,
        };
        if outcome == Outcome::Ok && kind == RequestKind::Hold {
            let wait = (self.time.now() - start).saturating_sub(hold_for);
            let mut s = self.control.lock();
            s.max_queue_wait = s.max_queue_wait.max(wait);
        }
        self.trace.record(CLIENT_HOST, format_args!("req {id} {kind} agent-{agent} {outcome}"));
        self.ledger.complete(id, self.time.now(), outcome);
    }

    async fn watch(&self, agent: usize, call: HttpCall) {
        let id = self.ledger.issue(CLIENT_HOST, agent, RequestKind::Hold, self.time.now(), call.timeout);
        let outcome = match tokio::time::timeout(call.timeout, send(&call)).await {
            Ok(Ok((200, _))) => Outcome::Ok,
            Ok(Ok((status, body))) => Outcome::Failed(format!("{status}: {}", body.trim())),
            Ok(Err(e)) => Outcome::Failed(e),
            Err(_) => Outcome::TimedOut,
        };
        self.ledger.complete(id, self.time.now(), outcome);
    }
}

/// The client host's software.
pub async fn run(cfg: ClientConfig) -> turmoil::Result {
    let router = Router::new(
        Registry::default(),
        Arc::new(StaticTracker::new(cfg.kas_private_urls.clone())),
        None,
        Arc::new(SimConnector),
    );
    cfg.trace.record(CLIENT_HOST, "started");
    let mut wake = cfg.control.wake.subscribe();
    loop {
        while let Some(cmd) = cfg.control.next() {
            match cmd {
                Command::Http { id, call } => {
                    let cfg = cfg.clone();
                    tokio::spawn(async move { cfg.http(id, call).await });
                }
                Command::Holds { agent, count, hold_for, timeout } => {
                    for _ in 0..count {
                        let (cfg, router) = (cfg.clone(), router.clone());
                        tokio::spawn(
                            async move { cfg.grpc(&router, agent, RequestKind::Hold, hold_for, timeout).await },
                        );
                    }
                }
                Command::Unary { agent, count, interval, timeout } => {
                    let (cfg, router) = (cfg.clone(), router.clone());
                    tokio::spawn(async move {
                        let mut tick = tokio::time::interval(interval);
                        for _ in 0..count {
                            tick.tick().await;
                            let (cfg, router) = (cfg.clone(), router.clone());
                            tokio::spawn(async move {
                                cfg.grpc(&router, agent, RequestKind::Unary, Duration::ZERO, timeout).await;
                            });
                        }
                    });
                }
                Command::Watches { agent, count, call } => {
                    for _ in 0..count {
                        let (cfg, call) = (cfg.clone(), call.clone());
                        tokio::spawn(async move { cfg.watch(agent, call).await });
                    }
                }
            }
        }
        if wake.changed().await.is_err() {
            return Ok(());
        }
    }
}
