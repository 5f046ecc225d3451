//! The L4 proxy in front of kas: agentk dials `proxy:8150`, the proxy dials a kas replica and
//! copies bytes both ways.
//!
//! GitLab.com's load balancer cuts every connection at its own maximum lifetime, independently of
//! kas's GOAWAY; the proxy does the same (`lifetime`), and drops all live connections on command
//! ([`ProxyControl::cut`]) to model a load-balancer restart. The replica choice is deterministic
//! (round robin, seeded, or fixed) and its state lives outside the host, so it survives a bounce.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tokio::sync::watch;

use crate::conn::{ConnInfo, ConnTable, ObservedIo, peer_name};
use crate::topology::Assignment;
use crate::trace::{SimTime, Trace};

/// The port the proxy and kas's agent listener use.
pub const AGENT_PORT: u16 = 8150;

/// A SYN lost to a partition is never answered (turmoil has no retransmission): give up like a
/// load balancer's connect timeout does.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// The proxy's host name.
pub const PROXY_HOST: &str = "proxy";

/// Commands to the proxy from the fault runner; cheap to clone.
#[derive(Debug, Clone)]
pub struct ProxyControl {
    cut: Arc<watch::Sender<u64>>,
}

impl Default for ProxyControl {
    fn default() -> Self {
        Self { cut: Arc::new(watch::channel(0).0) }
    }
}

impl ProxyControl {
    /// Drops every live proxied connection (both sides see the TCP stream close).
    pub fn cut(&self) {
        self.cut.send_modify(|g| *g += 1);
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.cut.subscribe()
    }
}

/// Everything the proxy host needs; cloned into each incarnation.
#[derive(Clone)]
pub struct ProxyConfig {
    pub kas_hosts: Vec<String>,
    pub lifetime: Option<Duration>,
    pub assignment: Assignment,
    pub control: ProxyControl,
    /// Round-robin counter and seeded generator, shared across restarts.
    pub picker: Arc<Mutex<(usize, ChaCha8Rng)>>,
    pub table: ConnTable,
    pub trace: Trace,
    pub time: SimTime,
}

impl ProxyConfig {
    fn pick(&self) -> String {
        let mut p = self.picker.lock().unwrap_or_else(|e| e.into_inner());
        let n = self.kas_hosts.len().max(1);
        let i = match self.assignment {
            Assignment::RoundRobin => {
                let i = p.0 % n;
                p.0 = p.0.wrapping_add(1);
                i
            }
            Assignment::Seeded => p.1.random_range(0..n),
            Assignment::Index { replica } => replica.min(n - 1),
        };
        self.kas_hosts.get(i).cloned().unwrap_or_default()
    }
}

/// The proxy host's software.
pub async fn run(cfg: ProxyConfig) -> turmoil::Result {
    let listener = turmoil::net::TcpListener::bind(("0.0.0.0", AGENT_PORT)).await?;
    cfg.trace.record(PROXY_HOST, "started");
    loop {
        let (client, addr) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                cfg.trace.record(PROXY_HOST, format_args!("accept failed: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let cfg = cfg.clone();
        tokio::spawn(async move { forward(cfg, client, peer_name(&addr.to_string())).await });
    }
}

async fn forward(cfg: ProxyConfig, client: turmoil::net::TcpStream, peer: String) {
    let mut cut = cfg.control.subscribe();
    cut.mark_unchanged();
    let kas = cfg.pick();
    let dial = tokio::time::timeout(DIAL_TIMEOUT, turmoil::net::TcpStream::connect((kas.as_str(), AGENT_PORT)));
    let upstream = match dial.await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            cfg.trace.record(PROXY_HOST, format_args!("dial {kas} for {peer} failed: {}", e.kind()));
            return;
        }
        Err(_) => {
            cfg.trace.record(PROXY_HOST, format_args!("dial {kas} for {peer} timed out"));
            return;
        }
    };
    let info = ConnInfo {
        host: PROXY_HOST.to_owned(),
        peer: format!("{peer}->{kas}"),
        opened_at: cfg.time.now(),
        max_life: cfg.lifetime,
    };
    let mut client = ObservedIo::new(client, info, cfg.table.clone(), cfg.trace.clone());
    let mut upstream = upstream;
    let lifetime = tokio::time::sleep(cfg.lifetime.unwrap_or(Duration::from_secs(100 * 365 * 86400)));
    let reason = tokio::select! {
        biased;
        _ = cut.changed() => "cut",
        () = lifetime => "lifetime",
        r = tokio::io::copy_bidirectional(&mut client, &mut upstream) => match r {
            Ok(_) => "eof",
            Err(_) => "error",
        },
    };
    cfg.trace.record(PROXY_HOST, format_args!("{peer}->{kas} ends: {reason}"));
}
