//! One kas instance: the agent listener, the private API (gateway) listener and the tunnel tracker.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;

use hyper::body::Incoming;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::agent_auth::AgentAuth;
use super::gateway;
use super::gitlab::GitLabApi;
use super::k8s_proxy::{K8sProxy, K8sProxyOptions};
use super::listener::{self, ListenerOptions};
use super::router::Router;
use super::tracker::{self, Tracker};
use super::tunnel_server::TunnelServer;
use crate::proto::reverse_tunnel::rpc::reverse_tunnel_server::ReverseTunnelServer;
use crate::transport::{Accept, Dialer};
use crate::tunnel::registry::{Presence, Registry};

/// Everything a kas needs from its surroundings.
#[derive(Debug, Clone)]
pub struct KasOptions {
    /// This kas's private API URL (`grpc://host:port`) as other replicas reach it; `None` for a
    /// single kas without a private API.
    pub private_api_url: Option<String>,
    pub agent_listener: ListenerOptions,
}

/// A kas instance. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Kas {
    registry: Registry,
    router: Router,
    tracker: Arc<dyn Tracker>,
    auth: AgentAuth,
    gitlab: Arc<dyn GitLabApi>,
    opts: KasOptions,
    presence: Arc<std::sync::Mutex<Option<mpsc::UnboundedReceiver<Presence>>>>,
}

impl Kas {
    /// `dialer` reaches other kas replicas' private APIs.
    pub fn new(gitlab: Arc<dyn GitLabApi>, tracker: Arc<dyn Tracker>, dialer: Dialer, opts: KasOptions) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let registry = Registry::new(Some(tx));
        let router = Router::new(registry.clone(), tracker.clone(), opts.private_api_url.clone(), dialer);
        Self {
            registry,
            router,
            tracker,
            auth: AgentAuth::new(gitlab.clone()),
            gitlab,
            opts,
            presence: Arc::new(std::sync::Mutex::new(Some(rx))),
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn router(&self) -> &Router {
        &self.router
    }

    /// This kas's Kubernetes API proxy (serve it with [`K8sProxy::serve`]).
    pub fn k8s_proxy(&self, opts: K8sProxyOptions) -> K8sProxy {
        K8sProxy::new(self.gitlab.clone(), self.router.clone(), opts)
    }

    /// Serves agents on `listener` until `shutdown`.
    pub async fn serve_agents(&self, listener: Box<dyn Accept>, shutdown: CancellationToken) {
        let routes = tonic::service::Routes::new(ReverseTunnelServer::new(TunnelServer::new(
            self.registry.clone(),
            self.auth.clone(),
        )));
        listener::serve(listener, routes, self.opts.agent_listener.clone(), shutdown).await;
    }

    /// Serves the private API (routed calls from other kas replicas) until `shutdown`.
    pub async fn serve_private_api(&self, listener: Box<dyn Accept>, shutdown: CancellationToken) {
        let registry = self.registry.clone();
        let svc = tower::service_fn(move |req: http::Request<Incoming>| {
            let registry = registry.clone();
            async move { Ok::<_, Infallible>(gateway::serve(registry, req).await) }
        });
        listener::serve(listener, svc, ListenerOptions::no_age(), shutdown).await;
    }

    /// Keeps the tracker in step with the registry: register on the first tunnel of an agent,
    /// refresh every 4 minutes, unregister 5 s after the last tunnel is gone. Runs until `shutdown`.
    pub async fn run_tracker(&self, shutdown: CancellationToken) {
        let Some(url) = self.opts.private_api_url.clone() else {
            return;
        };
        let Some(mut presence) = self.presence.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        let (gone_tx, mut gone_rx) = mpsc::unbounded_channel();
        let mut present = BTreeSet::new();
        let mut refresh = tokio::time::interval(tracker::REFRESH_PERIOD);
        refresh.tick().await;
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                Some(p) = presence.recv() => {
                    if p.present {
                        if present.insert(p.agent_id) {
                            self.tracker.register(p.agent_id, &url, tracker::TTL).await;
                        }
                    } else {
                        let gone_tx = gone_tx.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(tracker::UNREGISTER_DELAY).await;
                            let _ = gone_tx.send(p.agent_id);
                        });
                    }
                }
                Some(agent_id) = gone_rx.recv() => {
                    if self.registry.stats(agent_id).connected == 0 && present.remove(&agent_id) {
                        self.tracker.unregister(agent_id, &url).await;
                    }
                }
                _ = refresh.tick() => {
                    for agent_id in &present {
                        self.tracker.register(*agent_id, &url, tracker::TTL).await;
                    }
                }
            }
        }
    }
}
