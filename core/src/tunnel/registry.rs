//! kas's in-memory registry of idle tunnels, keyed by agent id.
//!
//! A tunnel is one `Connect` stream from agentk. While idle it sits here; a request for
//! (agent, service, method) takes the oldest idle tunnel whose descriptor lists exactly that pair, and
//! the tunnel leaves the registry: one request per tunnel stream. With no match the request waits in
//! a FIFO queue and is handed the next suitable tunnel that registers. Deadlines are the caller's
//! business (the router applies the 20 s limit), so this type only deals with matching.
//!
//! Everything is ordered (BTreeMap, VecDeque) so hand-outs never depend on hash iteration order.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{mpsc, oneshot};

use crate::proto::reverse_tunnel::info::AgentDescriptor;
use crate::tunnel::call::{CallEvents, CallItem, OutboundCall};

/// Agent ids as GitLab issues them.
pub type AgentId = i64;

/// A tunnel's answer to a hand-off: the call's event channel plus a give-back channel that returns the
/// call if the tunnel dies before the agent said anything (the agent then never saw it, so it is safe
/// to retry); or the call at once when the stream was already dead.
pub type HandoffReply = Result<(mpsc::Receiver<CallItem>, oneshot::Receiver<OutboundCall>), OutboundCall>;

/// Sent to a tunnel task to start a call.
pub type Handoff = (OutboundCall, oneshot::Sender<HandoffReply>);

/// The (service, method) pairs a tunnel's agent serves.
#[derive(Debug, Clone, Default)]
pub struct Descriptor {
    methods: BTreeSet<(String, String)>,
}

/// Why a descriptor from agentk was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DescriptorError {
    #[error("descriptor: service #{0} has an empty name")]
    EmptyService(usize),
    #[error("descriptor: service {0:?} has a method with an empty name")]
    EmptyMethod(String),
}

impl Descriptor {
    /// Validates a descriptor received from agentk (names must be at least one byte, as upstream).
    pub fn from_proto(d: &AgentDescriptor) -> Result<Self, DescriptorError> {
        let mut methods = BTreeSet::new();
        for (i, s) in d.services.iter().enumerate() {
            if s.name.is_empty() {
                return Err(DescriptorError::EmptyService(i));
            }
            for m in &s.methods {
                if m.name.is_empty() {
                    return Err(DescriptorError::EmptyMethod(s.name.clone()));
                }
                methods.insert((s.name.clone(), m.name.clone()));
            }
        }
        Ok(Self { methods })
    }

    pub fn supports(&self, service: &str, method: &str) -> bool {
        self.methods.iter().any(|(s, m)| s == service && m == method)
    }
}

/// An idle tunnel handed to a request. Dropping it unused puts the tunnel back into the registry.
#[derive(Debug)]
pub struct TunnelHandle {
    pub agent_id: AgentId,
    pub tunnel_id: u64,
    tx: oneshot::Sender<Handoff>,
}

/// The tunnel was gone or its stream had died; the call comes back untouched.
#[derive(Debug)]
pub struct TunnelGone(pub OutboundCall);

impl TunnelHandle {
    /// Starts `call` on this tunnel and waits for the agent's first answer (no deadline: a unary call
    /// answers only when done). A tunnel that dies before the agent answered gives the call back.
    pub async fn forward(self, call: OutboundCall) -> Result<CallEvents, TunnelGone> {
        let (reply_tx, reply_rx) = oneshot::channel();
        if let Err((call, _)) = self.tx.send((call, reply_tx)) {
            return Err(TunnelGone(call));
        }
        let (mut rx, mut giveback) = match reply_rx.await {
            Ok(Ok(started)) => started,
            Ok(Err(call)) => return Err(TunnelGone(call)),
            // The tunnel task always answers; if it vanished, the call vanished with it. Report it as
            // a failed call rather than hang.
            Err(_) => {
                let (tx, rx) = mpsc::channel(1);
                let _ = tx.try_send(Err(tonic::Status::unavailable("tunnel task ended during hand-off")));
                return Ok(CallEvents::new(rx));
            }
        };
        tokio::select! {
            biased;
            g = &mut giveback => match g {
                Ok(call) => Err(TunnelGone(call)),
                Err(_) => {
                    let first = rx.recv().await;
                    Ok(CallEvents::with_first(first, rx))
                }
            },
            first = rx.recv() => match first {
                Some(ev) => Ok(CallEvents::with_first(Some(ev), rx)),
                None => match giveback.await {
                    Ok(call) => Err(TunnelGone(call)),
                    Err(_) => Ok(CallEvents::with_first(None, rx)),
                },
            },
        }
    }
}

/// A change in whether this kas holds any tunnel of an agent (feeds the tunnel tracker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Presence {
    pub agent_id: AgentId,
    pub present: bool,
}

#[derive(Debug)]
struct IdleTunnel {
    id: u64,
    descriptor: Arc<Descriptor>,
    tx: oneshot::Sender<Handoff>,
}

#[derive(Debug)]
struct Waiter {
    id: u64,
    service: String,
    method: String,
    tx: oneshot::Sender<TunnelHandle>,
}

#[derive(Debug, Default)]
struct AgentState {
    connected: usize,
    idle: VecDeque<IdleTunnel>,
    waiting: VecDeque<Waiter>,
}

#[derive(Debug, Default)]
struct State {
    agents: BTreeMap<AgentId, AgentState>,
    next_id: u64,
    /// Last `gitlab-agent/<version>/<commit>` each agent announced (kept after it disconnects).
    versions: BTreeMap<AgentId, AgentVersion>,
}

/// What an agent says it is, from its `user-agent` (`gitlab-agent/<version>/<commit>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentVersion {
    pub version: String,
    pub commit: String,
}

impl AgentVersion {
    /// Parses the first product token of a user agent; `None` unless it is `gitlab-agent/…`.
    pub fn from_user_agent(ua: &str) -> Option<Self> {
        let token = ua.split_whitespace().next()?;
        let rest = token.strip_prefix("gitlab-agent/")?;
        let (version, commit) = rest.split_once('/').unwrap_or((rest, ""));
        (!version.is_empty()).then(|| Self { version: version.to_owned(), commit: commit.to_owned() })
    }
}

/// Per-agent counts, for metrics, assertions and invariant checkers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentStats {
    /// Tunnel streams open (idle or forwarding).
    pub connected: usize,
    pub idle: usize,
    /// Requests waiting for a tunnel.
    pub waiting: usize,
}

/// The registry; cheap to clone.
#[derive(Debug, Clone)]
pub struct Registry {
    state: Arc<Mutex<State>>,
    presence: Option<mpsc::UnboundedSender<Presence>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new(None)
    }
}

impl Registry {
    /// `presence` receives 0→1 and 1→0 changes of connected tunnels per agent.
    pub fn new(presence: Option<mpsc::UnboundedSender<Presence>>) -> Self {
        Self { state: Arc::default(), presence }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock is a bug; keep serving rather than poisoning everything.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a newly connected tunnel stream; the guard uncounts it.
    pub fn connect(&self, agent_id: AgentId) -> Connection {
        let first = {
            let mut st = self.lock();
            let a = st.agents.entry(agent_id).or_default();
            a.connected += 1;
            a.connected == 1
        };
        if first && let Some(p) = &self.presence {
            let _ = p.send(Presence { agent_id, present: true });
        }
        Connection { registry: self.clone(), agent_id }
    }

    /// Offers an idle tunnel: hands it to the oldest matching waiter, or parks it.
    /// The returned registration's receiver yields the call when one arrives; if the handle is
    /// dropped unused the receiver errors and the tunnel should register again.
    pub fn register(&self, agent_id: AgentId, descriptor: Arc<Descriptor>) -> Registration {
        let (tx, rx) = oneshot::channel();
        let mut st = self.lock();
        st.next_id += 1;
        let id = st.next_id;
        let a = st.agents.entry(agent_id).or_default();
        let mut tx = Some(tx);
        while let Some(pos) = a.waiting.iter().position(|w| descriptor.supports(&w.service, &w.method)) {
            let Some(w) = a.waiting.remove(pos) else {
                break;
            };
            let handle = TunnelHandle { agent_id, tunnel_id: id, tx: tx.take().expect("tx present") };
            match w.tx.send(handle) {
                Ok(()) => break,
                // The waiter gave up; take the sender back and try the next one.
                Err(h) => tx = Some(h.tx),
            }
        }
        if let Some(tx) = tx {
            a.idle.push_back(IdleTunnel { id, descriptor, tx });
        }
        Registration { registry: self.clone(), agent_id, id, rx }
    }

    /// Takes a matching idle tunnel now, or queues and waits for one (no deadline here).
    pub async fn find(&self, agent_id: AgentId, service: &str, method: &str) -> TunnelHandle {
        let (rx, guard) = {
            let mut st = self.lock();
            st.next_id += 1;
            let id = st.next_id;
            let a = st.agents.entry(agent_id).or_default();
            if let Some(pos) = a.idle.iter().position(|t| t.descriptor.supports(service, method)) {
                let t = a.idle.remove(pos).expect("position is in range");
                return TunnelHandle { agent_id, tunnel_id: t.id, tx: t.tx };
            }
            let (tx, rx) = oneshot::channel();
            a.waiting.push_back(Waiter { id, service: service.to_owned(), method: method.to_owned(), tx });
            (rx, WaiterGuard { registry: self.clone(), agent_id, id })
        };
        let handle = rx.await;
        drop(guard);
        match handle {
            Ok(h) => h,
            // Only the registry drops waiters' senders, and only via the guard above.
            Err(_) => std::future::pending().await,
        }
    }

    /// Takes a matching idle tunnel if there is one right now.
    pub fn try_find(&self, agent_id: AgentId, service: &str, method: &str) -> Option<TunnelHandle> {
        let mut st = self.lock();
        let a = st.agents.get_mut(&agent_id)?;
        let pos = a.idle.iter().position(|t| t.descriptor.supports(service, method))?;
        let t = a.idle.remove(pos)?;
        Some(TunnelHandle { agent_id, tunnel_id: t.id, tx: t.tx })
    }

    pub fn record_version(&self, agent_id: AgentId, version: AgentVersion) {
        self.lock().versions.insert(agent_id, version);
    }

    /// The version the agent last announced, for skew checks against GitLab's version.
    pub fn version(&self, agent_id: AgentId) -> Option<AgentVersion> {
        self.lock().versions.get(&agent_id).cloned()
    }

    pub fn stats(&self, agent_id: AgentId) -> AgentStats {
        let st = self.lock();
        st.agents.get(&agent_id).map_or_else(AgentStats::default, |a| AgentStats {
            connected: a.connected,
            idle: a.idle.len(),
            waiting: a.waiting.len(),
        })
    }

    /// Agents with at least one connected tunnel, ascending.
    pub fn agents(&self) -> Vec<AgentId> {
        self.lock().agents.iter().filter(|(_, a)| a.connected > 0).map(|(id, _)| *id).collect()
    }

    fn gc(st: &mut State, agent_id: AgentId) {
        if let Some(a) = st.agents.get(&agent_id)
            && a.connected == 0
            && a.idle.is_empty()
            && a.waiting.is_empty()
        {
            st.agents.remove(&agent_id);
        }
    }
}

/// Counts one connected tunnel stream for as long as it lives.
#[derive(Debug)]
pub struct Connection {
    registry: Registry,
    agent_id: AgentId,
}

impl Drop for Connection {
    fn drop(&mut self) {
        let last = {
            let mut st = self.registry.lock();
            let last = match st.agents.get_mut(&self.agent_id) {
                Some(a) => {
                    a.connected = a.connected.saturating_sub(1);
                    a.connected == 0
                }
                None => false,
            };
            Registry::gc(&mut st, self.agent_id);
            last
        };
        if last && let Some(p) = &self.registry.presence {
            let _ = p.send(Presence { agent_id: self.agent_id, present: false });
        }
    }
}

/// An idle tunnel's place in the registry; dropping it withdraws the tunnel if still idle.
#[derive(Debug)]
pub struct Registration {
    registry: Registry,
    agent_id: AgentId,
    id: u64,
    pub rx: oneshot::Receiver<Handoff>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut st = self.registry.lock();
        if let Some(a) = st.agents.get_mut(&self.agent_id) {
            a.idle.retain(|t| t.id != self.id);
        }
        Registry::gc(&mut st, self.agent_id);
    }
}

struct WaiterGuard {
    registry: Registry,
    agent_id: AgentId,
    id: u64,
}

impl Drop for WaiterGuard {
    fn drop(&mut self) {
        let mut st = self.registry.lock();
        if let Some(a) = st.agents.get_mut(&self.agent_id) {
            a.waiting.retain(|w| w.id != self.id);
        }
        Registry::gc(&mut st, self.agent_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::reverse_tunnel::info::{Method, Service};

    fn desc(pairs: &[(&str, &str)]) -> Arc<Descriptor> {
        let services = pairs
            .iter()
            .map(|(s, m)| Service { name: (*s).into(), methods: vec![Method { name: (*m).into() }] })
            .collect();
        Arc::new(Descriptor::from_proto(&AgentDescriptor { services }).unwrap())
    }

    fn call() -> OutboundCall {
        OutboundCall::new("/a.S/M", Default::default(), mpsc::channel(1).1)
    }

    #[test]
    fn descriptor_validation() {
        let bad = AgentDescriptor { services: vec![Service { name: String::new(), methods: vec![] }] };
        assert_eq!(Descriptor::from_proto(&bad).unwrap_err(), DescriptorError::EmptyService(0));
        let bad = AgentDescriptor {
            services: vec![Service { name: "s".into(), methods: vec![Method { name: String::new() }] }],
        };
        assert_eq!(Descriptor::from_proto(&bad).unwrap_err(), DescriptorError::EmptyMethod("s".into()));
    }

    #[tokio::test]
    async fn exact_pair_match_oldest_first_and_one_request_per_tunnel() {
        let r = Registry::default();
        let _other = r.register(1, desc(&[("a.S", "Other")]));
        let first = r.register(1, desc(&[("a.S", "M")]));
        let _second = r.register(1, desc(&[("a.S", "M")]));
        assert!(r.try_find(1, "a.S", "X").is_none());
        assert!(r.try_find(2, "a.S", "M").is_none(), "other agents' tunnels never match");
        let h = r.find(1, "a.S", "M").await;
        assert_eq!(h.tunnel_id, first.id);
        let h2 = r.try_find(1, "a.S", "M").unwrap();
        assert_ne!(h2.tunnel_id, first.id);
        assert!(r.try_find(1, "a.S", "M").is_none(), "each tunnel is handed out once");
        drop((h, h2));
    }

    #[tokio::test]
    async fn waiters_are_served_in_order_by_the_next_suitable_tunnel() {
        let r = Registry::default();
        let r1 = r.clone();
        let w1 = tokio::spawn(async move { r1.find(7, "a.S", "M").await.tunnel_id });
        tokio::task::yield_now().await;
        let r2 = r.clone();
        let w2 = tokio::spawn(async move { r2.find(7, "a.S", "M").await.tunnel_id });
        tokio::task::yield_now().await;
        assert_eq!(r.stats(7).waiting, 2);
        let unsuitable = r.register(7, desc(&[("a.S", "N")]));
        assert_eq!(r.stats(7).idle, 1);
        let t1 = r.register(7, desc(&[("a.S", "M")]));
        let t2 = r.register(7, desc(&[("a.S", "M")]));
        assert_eq!(w1.await.unwrap(), t1.id);
        assert_eq!(w2.await.unwrap(), t2.id);
        assert_eq!(r.stats(7), AgentStats { connected: 0, idle: 1, waiting: 0 });
        drop(unsuitable);
        assert_eq!(r.stats(7), AgentStats::default());
    }

    #[tokio::test]
    async fn abandoned_waiters_are_removed_and_unused_handles_return_the_tunnel() {
        let r = Registry::default();
        let fut = tokio::time::timeout(std::time::Duration::from_millis(1), r.find(3, "a.S", "M"));
        assert!(fut.await.is_err());
        assert_eq!(r.stats(3).waiting, 0);
        let mut reg = r.register(3, desc(&[("a.S", "M")]));
        let h = r.try_find(3, "a.S", "M").unwrap();
        drop(h);
        assert!(reg.rx.try_recv().is_err(), "a dropped handle closes the registration channel");
        let gone = r.try_find(3, "a.S", "M");
        assert!(gone.is_none());
        drop(reg);
        let reg = r.register(3, desc(&[("a.S", "M")]));
        let h = r.try_find(3, "a.S", "M").unwrap();
        drop(reg);
        assert!(matches!(h.forward(call()).await, Err(TunnelGone(_))), "a dead tunnel gives the call back");
    }

    #[test]
    fn user_agent_parsing() {
        let v = AgentVersion::from_user_agent("gitlab-agent/v18.6.0/abc123 tonic/0.14.9").unwrap();
        assert_eq!((v.version.as_str(), v.commit.as_str()), ("v18.6.0", "abc123"));
        assert_eq!(AgentVersion::from_user_agent("gitlab-agent/v17.0.1").unwrap().commit, "");
        assert_eq!(AgentVersion::from_user_agent("agentk/v14.0.0/x"), None);
        assert_eq!(AgentVersion::from_user_agent(""), None);
    }

    #[test]
    fn presence_changes_on_first_and_last_connection() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let r = Registry::new(Some(tx));
        let c1 = r.connect(5);
        let c2 = r.connect(5);
        assert_eq!(r.agents(), vec![5]);
        drop(c1);
        drop(c2);
        assert_eq!(rx.try_recv().unwrap(), Presence { agent_id: 5, present: true });
        assert_eq!(rx.try_recv().unwrap(), Presence { agent_id: 5, present: false });
        assert!(rx.try_recv().is_err());
        assert!(r.agents().is_empty());
    }
}
