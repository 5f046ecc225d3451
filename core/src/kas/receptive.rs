//! kas's side of receptive agents: find them by polling GitLab, dial them, and make them look like
//! connected agents so that [`super::router::Router::call`] and `RoutingChannel` work unchanged.
//!
//! # How a receptive agent joins routing
//! For every agent in GitLab's list kas runs one task that:
//! 1. dials the agent's URL (`grpc://` plain, `grpcs://` TLS with the configuration's `ca_cert` and
//!    `tls_host`) and calls `Describe` (see [`crate::agentk::receptive`]) with a fresh JWT;
//! 2. on success counts one connection for the agent in the [`Registry`] (so the tunnel tracker
//!    advertises this kas for it, as for a tunnel) and keeps one *virtual idle tunnel* registered
//!    with the agent's descriptor. The registry hands it a call exactly as it would hand a real
//!    tunnel one; the task then sends the call to the agent as a direct gRPC call (new JWT each
//!    time) and immediately registers the next virtual tunnel, so calls run concurrently on the
//!    agent's HTTP/2 connection;
//! 3. repeats `Describe` every [`ReceptiveOptions::health_period`]; when it fails the agent leaves the
//!    registry (calls wait, then end with the usual 20 s "Agent connection not found") and the task
//!    retries after [`ReceptiveOptions::retry_period`].
//!
//! The list is polled every [`ReceptiveOptions::poll_period`] (default 10 minutes: GitLab documents
//! that it "may take up to 10 minutes" before it starts dialing a new receptive agent). An agent
//! leaving the list (its URL configuration was deleted: it is a normal agent again) or whose
//! configuration changed has its task stopped (and restarted with the new settings).
//!
//! # GitLab API (kasim's choice)
//! The upstream internal endpoint is unconfirmed. kasim's stand-in serves
//! `GET /api/v4/internal/kubernetes/receptive_agents` (kas JWT in `Gitlab-Kas-Api-Request`):
//! `{"agents":[{"agent_id","url","ca_cert","tls_host","jwt":{"private_key"}} | {..,"mtls":{"client_cert","client_key"}}]}`
//! with the Ed25519 private key as base64 of its 32-byte seed. The method lives in
//! [`ReceptiveAgentsApi`], a trait of its own beside [`super::gitlab::GitLabApi`].
//!
//! mTLS configurations (grpcs:// only) are dialled with the configuration's client certificate and
//! key and send no JWT: the TLS handshake is the authentication, never both.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use ed25519_dalek::{Signer, SigningKey};
use http_body_util::Full;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use super::gitlab::GitLabError;
use crate::agentk::receptive::{
    AgentMeta, Claims, DESCRIBE_METHOD, DescribeRequest, DescribeResponse, JWT_AUDIENCE, JWT_ISSUER,
};
use crate::clock::SharedClock;
use crate::grpc::metadata;
use crate::grpc::raw::RawCodec;
use crate::grpc::status;
use crate::http_client;
use crate::transport::tls::{ClientTlsOptions, TlsConnector};
use crate::transport::{BoxFuture, Dialer, grpc_channel};
use crate::tunnel::call::{CallEvent, OutboundCall};
use crate::tunnel::registry::{AgentId, Descriptor, Handoff, Registry};

/// Validity kas gives a receptive-agent JWT.
pub const JWT_LIFETIME_SECS: i64 = 30;
/// `nbf` lies this far before `iat`, for clock skew.
pub const JWT_NBF_SKEW_SECS: i64 = 5;
/// Path of the stand-in's list of receptive agents.
pub const RECEPTIVE_AGENTS_PATH: &str = "/api/v4/internal/kubernetes/receptive_agents";

/// How kas authenticates to a receptive agent.
#[derive(Clone, PartialEq, Eq)]
pub enum ReceptiveAuth {
    /// The 32-byte Ed25519 seed GitLab generated for the URL configuration.
    Jwt {
        private_key: [u8; 32],
    },
    Mtls {
        client_cert: String,
        client_key: String,
    },
}

impl std::fmt::Debug for ReceptiveAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        match self {
            Self::Jwt { .. } => f.write_str("Jwt"),
            Self::Mtls { .. } => f.write_str("Mtls"),
        }
    }
}

/// One agent's URL configuration as kas needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceptiveAgent {
    pub agent_id: AgentId,
    /// `grpc://host:port` or `grpcs://host:port`.
    pub url: String,
    /// PEM CA certificate(s) to trust for `grpcs://`.
    pub ca_cert: Option<String>,
    /// Name to verify the agent's certificate against instead of the URL's host.
    pub tls_host: Option<String>,
    pub auth: ReceptiveAuth,
}

/// The GitLab API kas needs for receptive agents.
pub trait ReceptiveAgentsApi: Send + Sync + std::fmt::Debug + 'static {
    fn receptive_agents(&self) -> BoxFuture<'_, Result<Vec<ReceptiveAgent>, GitLabError>>;
}

/// A list set by the test or scenario.
#[derive(Debug, Clone, Default)]
pub struct StaticReceptiveAgents {
    agents: Arc<Mutex<Vec<ReceptiveAgent>>>,
}

impl StaticReceptiveAgents {
    pub fn set(&self, agents: Vec<ReceptiveAgent>) {
        *self.agents.lock().unwrap_or_else(|e| e.into_inner()) = agents;
    }
}

impl ReceptiveAgentsApi for StaticReceptiveAgents {
    fn receptive_agents(&self) -> BoxFuture<'_, Result<Vec<ReceptiveAgent>, GitLabError>> {
        let list = self.agents.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Box::pin(async move { Ok(list) })
    }
}

#[derive(serde::Deserialize)]
struct WireList {
    agents: Vec<WireAgent>,
}

#[derive(serde::Deserialize)]
struct WireAgent {
    agent_id: AgentId,
    url: String,
    #[serde(default)]
    ca_cert: Option<String>,
    #[serde(default)]
    tls_host: Option<String>,
    #[serde(default)]
    jwt: Option<WireJwt>,
    #[serde(default)]
    mtls: Option<WireMtls>,
}

#[derive(serde::Deserialize)]
struct WireJwt {
    private_key: String,
}

#[derive(serde::Deserialize)]
struct WireMtls {
    client_cert: String,
    client_key: String,
}

/// Why one entry of GitLab's list is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceptiveConfigError {
    #[error("agent {0}: URL configuration has both a JWT key and a client certificate")]
    BothAuth(AgentId),
    #[error("agent {0}: URL configuration has neither a JWT key nor a client certificate")]
    NoAuth(AgentId),
    #[error("agent {0}: JWT private key must be base64 of a 32-byte Ed25519 seed")]
    PrivateKey(AgentId),
    #[error("agent {agent_id}: URL {url:?}: {reason}")]
    Url { agent_id: AgentId, url: String, reason: String },
    #[error("agent {0}: mTLS needs a grpcs:// URL")]
    MtlsUnsupported(AgentId),
    #[error("agent {agent_id}: TLS settings: {reason}")]
    Tls { agent_id: AgentId, reason: String },
}

fn from_wire(a: WireAgent) -> Result<ReceptiveAgent, ReceptiveConfigError> {
    let auth = match (a.jwt, a.mtls) {
        (Some(_), Some(_)) => return Err(ReceptiveConfigError::BothAuth(a.agent_id)),
        (None, None) => return Err(ReceptiveConfigError::NoAuth(a.agent_id)),
        (Some(j), None) => {
            let bytes =
                STANDARD.decode(j.private_key.trim()).map_err(|_| ReceptiveConfigError::PrivateKey(a.agent_id))?;
            let private_key: [u8; 32] =
                bytes.as_slice().try_into().map_err(|_| ReceptiveConfigError::PrivateKey(a.agent_id))?;
            ReceptiveAuth::Jwt { private_key }
        }
        (None, Some(m)) => ReceptiveAuth::Mtls { client_cert: m.client_cert, client_key: m.client_key },
    };
    Ok(ReceptiveAgent { agent_id: a.agent_id, url: a.url, ca_cert: a.ca_cert, tls_host: a.tls_host, auth })
}

/// Parses the stand-in's answer; unusable entries are logged and left out.
pub fn parse_receptive_agents(body: &[u8]) -> Result<Vec<ReceptiveAgent>, GitLabError> {
    let list: WireList = serde_json::from_slice(body)
        .map_err(|e| GitLabError::Unavailable(format!("receptive_agents: invalid JSON: {e}")))?;
    let mut out = Vec::new();
    for a in list.agents {
        match from_wire(a) {
            Ok(a) => out.push(a),
            Err(e) => tracing::warn!(error = %e, "skipping receptive agent"),
        }
    }
    Ok(out)
}

/// Asks GitLab over HTTP, like [`super::gitlab::HttpGitLab`].
#[derive(Debug, Clone)]
pub struct HttpReceptiveAgents {
    authority: String,
    dialer: Dialer,
    secret: Arc<Vec<u8>>,
    clock: SharedClock,
}

impl HttpReceptiveAgents {
    pub fn new(dialer: Dialer, authority: &str, secret: Vec<u8>, clock: SharedClock) -> Self {
        Self { authority: authority.to_owned(), dialer, secret: Arc::new(secret), clock }
    }
}

impl ReceptiveAgentsApi for HttpReceptiveAgents {
    fn receptive_agents(&self) -> BoxFuture<'_, Result<Vec<ReceptiveAgent>, GitLabError>> {
        Box::pin(async move {
            let jwt = crate::jwt::sign_kas_request(&self.secret, self.clock.unix_seconds());
            let req = http::Request::get(RECEPTIVE_AGENTS_PATH)
                .header(http::header::HOST, &self.authority)
                .header("Gitlab-Kas-Api-Request", jwt)
                .body(Full::new(Bytes::new()))
                .map_err(|e| GitLabError::Unavailable(e.to_string()))?;
            let resp = http_client::send(&self.dialer, &self.authority, req)
                .await
                .map_err(|e| GitLabError::Unavailable(e.to_string()))?;
            match resp.status.as_u16() {
                200 => parse_receptive_agents(&resp.body),
                401 => Err(GitLabError::Unauthorized),
                403 => Err(GitLabError::Forbidden),
                404 => Err(GitLabError::NotFound),
                s => Err(GitLabError::Unavailable(format!("receptive_agents: HTTP {s}"))),
            }
        })
    }
}

/// Signs the JWT kas sends to a receptive agent (claims documented in
/// [`crate::agentk::receptive`]).
pub fn sign_jwt(private_key: &[u8; 32], agent_id: AgentId, now: i64) -> String {
    sign_claims(
        private_key,
        &Claims {
            iss: JWT_ISSUER.into(),
            aud: JWT_AUDIENCE.into(),
            agent_id,
            iat: now,
            nbf: now - JWT_NBF_SKEW_SECS,
            exp: now + JWT_LIFETIME_SECS,
        },
    )
}

/// The base64 public key agentk must be installed with for `private_key` (what GitLab returns as
/// `public_key` when it creates the URL configuration).
pub fn public_key_for(private_key: &[u8; 32]) -> String {
    STANDARD.encode(SigningKey::from_bytes(private_key).verifying_key().to_bytes())
}

/// Signs arbitrary claims with EdDSA (tests use it to forge bad tokens).
pub fn sign_claims(private_key: &[u8; 32], claims: &Claims) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"EdDSA","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let input = format!("{header}.{payload}");
    let sig = SigningKey::from_bytes(private_key).sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

/// Timing of the receptive-agent machinery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceptiveOptions {
    /// How often GitLab's list is fetched.
    pub poll_period: Duration,
    /// How often a reached agent is checked with `Describe`.
    pub health_period: Duration,
    /// Pause before dialling an unreachable agent again.
    pub retry_period: Duration,
}

impl Default for ReceptiveOptions {
    fn default() -> Self {
        Self {
            poll_period: Duration::from_secs(600),
            health_period: Duration::from_secs(60),
            retry_period: Duration::from_secs(10),
        }
    }
}

#[derive(Debug)]
struct Running {
    config: ReceptiveAgent,
    stop: CancellationToken,
}

#[derive(Debug, Default)]
struct Shared {
    /// Agents reached, with what they said about themselves.
    connected: BTreeMap<AgentId, AgentMeta>,
}

/// Discovers receptive agents and serves them through the registry. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ReceptiveAgents {
    registry: Registry,
    api: Arc<dyn ReceptiveAgentsApi>,
    dialer: Dialer,
    clock: SharedClock,
    opts: ReceptiveOptions,
    shared: Arc<Mutex<Shared>>,
}

impl ReceptiveAgents {
    /// `registry` is the kas's own (`Kas::registry()`); `dialer` reaches the agents' listeners.
    pub fn new(
        registry: Registry,
        api: Arc<dyn ReceptiveAgentsApi>,
        dialer: Dialer,
        clock: SharedClock,
        opts: ReceptiveOptions,
    ) -> Self {
        Self { registry, api, dialer, clock, opts, shared: Arc::default() }
    }

    /// Receptive agents currently reached, with their reported version.
    pub fn connected(&self) -> BTreeMap<AgentId, AgentMeta> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner()).connected.clone()
    }

    /// Polls GitLab and keeps one task per receptive agent until `shutdown`.
    pub async fn run(&self, shutdown: CancellationToken) {
        let mut running: BTreeMap<AgentId, Running> = BTreeMap::new();
        let mut poll = tokio::time::interval(self.opts.poll_period);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                _ = poll.tick() => {}
            }
            let list = match self.api.receptive_agents().await {
                Ok(l) => l,
                Err(e) => {
                    // Keep serving what we know; GitLab being down is no reason to drop agents.
                    tracing::warn!(error = %e, "listing receptive agents failed");
                    continue;
                }
            };
            let wanted: BTreeMap<AgentId, ReceptiveAgent> = list.into_iter().map(|a| (a.agent_id, a)).collect();
            running.retain(|id, r| {
                let keep = wanted.get(id) == Some(&r.config);
                if !keep {
                    tracing::info!(agent_id = id, "receptive agent removed or reconfigured");
                    r.stop.cancel();
                }
                keep
            });
            for (id, config) in wanted {
                if running.contains_key(&id) {
                    continue;
                }
                let stop = shutdown.child_token();
                tokio::spawn(self.clone().agent_task(config.clone(), stop.clone()));
                running.insert(id, Running { config, stop });
            }
        }
        for r in running.values() {
            r.stop.cancel();
        }
    }

    async fn agent_task(self, config: ReceptiveAgent, stop: CancellationToken) {
        let agent_id = config.agent_id;
        let target = match self.target(&config) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "cannot dial receptive agent");
                return;
            }
        };
        loop {
            let result = self.serve_agent(&target, &stop).await;
            self.shared.lock().unwrap_or_else(|e| e.into_inner()).connected.remove(&agent_id);
            match result {
                Ok(()) => return,
                Err(e) => tracing::debug!(agent_id, error = %e.message(), "receptive agent unreachable"),
            }
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                () = tokio::time::sleep(self.opts.retry_period) => {}
            }
        }
    }

    fn target(&self, config: &ReceptiveAgent) -> Result<Target, ReceptiveConfigError> {
        let agent_id = config.agent_id;
        let url_err =
            |reason: &str| ReceptiveConfigError::Url { agent_id, url: config.url.clone(), reason: reason.to_owned() };
        let (private_key, client_identity) = match &config.auth {
            ReceptiveAuth::Jwt { private_key } => (Some(*private_key), None),
            ReceptiveAuth::Mtls { client_cert, client_key } => {
                (None, Some((client_cert.as_bytes().to_vec(), client_key.as_bytes().to_vec())))
            }
        };
        let (tls, rest) = match config.url.split_once("://") {
            Some(("grpc", r)) => (false, r),
            Some(("grpcs", r)) => (true, r),
            Some((s, _)) => return Err(url_err(&format!("unsupported scheme {s}://; want grpc:// or grpcs://"))),
            None => return Err(url_err("missing scheme; want grpc:// or grpcs://")),
        };
        let hostport = rest.trim_end_matches('/');
        if hostport.is_empty() || hostport.contains('/') || hostport.starts_with(':') {
            return Err(url_err("want scheme://host[:port]"));
        }
        let has_port = hostport.rsplit_once(':').is_some_and(|(h, p)| !h.ends_with(':') && !p.contains(']'));
        let authority = if has_port {
            let port = hostport.rsplit_once(':').map(|(_, p)| p).unwrap_or_default();
            port.parse::<u16>().map_err(|_| url_err("invalid port"))?;
            hostport.to_owned()
        } else {
            format!("{hostport}:{}", if tls { 443 } else { 80 })
        };
        if client_identity.is_some() && !tls {
            return Err(ReceptiveConfigError::MtlsUnsupported(agent_id));
        }
        let dialer: Dialer = if tls {
            let opts = ClientTlsOptions {
                ca_pem: config.ca_cert.as_ref().map(|c| c.as_bytes().to_vec()),
                server_name: config.tls_host.clone(),
                client_identity,
                ..Default::default()
            };
            let c = TlsConnector::new(self.dialer.clone(), &opts)
                .map_err(|e| ReceptiveConfigError::Tls { agent_id, reason: e.to_string() })?;
            Arc::new(c)
        } else {
            self.dialer.clone()
        };
        let channel = grpc_channel(dialer, &authority, |e| e.connect_timeout(Duration::from_secs(20)))
            .map_err(|e| url_err(&e.to_string()))?;
        Ok(Target { agent_id, channel, private_key })
    }

    /// Describes the agent, then serves calls until it stops answering (Err) or `stop` (Ok).
    async fn serve_agent(&self, target: &Target, stop: &CancellationToken) -> Result<(), Status> {
        let agent_id = target.agent_id;
        let d = target.describe(&self.clock).await?;
        let descriptor =
            d.agent_descriptor.ok_or_else(|| Status::invalid_argument("Describe: agent_descriptor is required"))?;
        let descriptor =
            Arc::new(Descriptor::from_proto(&descriptor).map_err(|e| Status::invalid_argument(e.to_string()))?);
        let meta = d.agent_meta.unwrap_or_default();
        tracing::info!(agent_id, version = %meta.version, "receptive agent reached");
        self.shared.lock().unwrap_or_else(|e| e.into_inner()).connected.insert(agent_id, meta);
        let _connection = self.registry.connect(agent_id);
        let mut health = tokio::time::interval(self.opts.health_period);
        health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        health.tick().await;
        loop {
            let mut reg = self.registry.register(agent_id, descriptor.clone());
            tokio::select! {
                biased;
                () = stop.cancelled() => return Ok(()),
                handoff = &mut reg.rx => {
                    drop(reg);
                    if let Ok(handoff) = handoff {
                        tokio::spawn(target.clone().forward(handoff, self.clock.clone()));
                    }
                }
                _ = health.tick() => {
                    drop(reg);
                    target.describe(&self.clock).await?;
                }
            }
        }
    }
}

/// A dialable receptive agent.
#[derive(Clone)]
struct Target {
    agent_id: AgentId,
    channel: tonic::transport::Channel,
    private_key: Option<[u8; 32]>,
}

impl Target {
    /// The JWT for JWT-authenticated agents; `None` with mTLS (the TLS handshake authenticated kas).
    fn bearer(
        &self,
        clock: &SharedClock,
    ) -> Result<Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>, Status> {
        let Some(key) = &self.private_key else { return Ok(None) };
        format!("Bearer {}", sign_jwt(key, self.agent_id, clock.unix_seconds()))
            .parse()
            .map(Some)
            .map_err(|_| Status::internal("JWT is not a valid header value"))
    }

    async fn describe(&self, clock: &SharedClock) -> Result<DescribeResponse, Status> {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready().await.map_err(|e| Status::unavailable(e.to_string()))?;
        let mut req = tonic::Request::new(DescribeRequest {});
        if let Some(b) = self.bearer(clock)? {
            req.metadata_mut().insert("authorization", b);
        }
        let path = http::uri::PathAndQuery::from_static(DESCRIBE_METHOD);
        let codec = tonic_prost::ProstCodec::<DescribeRequest, DescribeResponse>::default();
        Ok(grpc.unary(req, path, codec).await?.into_inner())
    }

    /// Sends one forwarded call to the agent and reports it as [`CallEvent`]s, in the order a
    /// tunnel would: header, messages, trailer, and an error status when the call failed.
    async fn forward(self, (call, reply): Handoff, clock: SharedClock) {
        let OutboundCall { method, meta, mut requests, replay } = call;
        if !replay.is_empty() {
            // A tunnel gave this call back: its already-taken messages go first.
            let (fwd_tx, fwd_rx) = tokio::sync::mpsc::channel(16);
            tokio::spawn(async move {
                for m in replay {
                    if fwd_tx.send(m).await.is_err() {
                        return;
                    }
                }
                while let Some(m) = requests.recv().await {
                    if fwd_tx.send(m).await.is_err() {
                        return;
                    }
                }
            });
            requests = fwd_rx;
        }
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        // A direct gRPC call is never given back: the agent may have seen it.
        let (_no_giveback, giveback_rx) = tokio::sync::oneshot::channel();
        if reply.send(Ok((rx, giveback_rx))).is_err() {
            return;
        }
        let fail = |s: Status| CallEvent::Error(status::to_proto(&s));
        let started = async {
            let path: http::uri::PathAndQuery =
                method.parse().map_err(|_| Status::invalid_argument(format!("bad method name {method:?}")))?;
            let mut headers = http::HeaderMap::new();
            metadata::append_to_headers(&meta, &mut headers).map_err(|e| Status::invalid_argument(e.to_string()))?;
            let mut req = tonic::Request::new(ReceiverStream::new(requests));
            *req.metadata_mut() = tonic::metadata::MetadataMap::from_headers(headers);
            // The caller's own credential (if any reached here) is not for the agent: replace it.
            if let Some(b) = self.bearer(&clock)? {
                req.metadata_mut().insert("authorization", b);
            }
            let mut grpc = tonic::client::Grpc::new(self.channel.clone());
            grpc.ready().await.map_err(|e| Status::unavailable(e.to_string()))?;
            grpc.streaming(req, path, RawCodec).await
        }
        .await;
        let resp = match started {
            Ok(r) => r,
            Err(s) => {
                let _ = tx.send(Ok(fail(s))).await;
                return;
            }
        };
        let header = metadata::from_headers(&resp.metadata().clone().into_headers());
        if tx.send(Ok(CallEvent::Header(header))).await.is_err() {
            return;
        }
        let mut stream = resp.into_inner();
        loop {
            let event = tokio::select! {
                biased;
                () = tx.closed() => return,
                m = stream.message() => m,
            };
            match event {
                Ok(Some(m)) => {
                    if tx.send(Ok(CallEvent::Message(m))).await.is_err() {
                        return;
                    }
                }
                Ok(None) => {
                    let trailers = stream.trailers().await.ok().flatten();
                    let meta = trailers.map(|t| metadata::from_headers(&t.into_headers())).unwrap_or_default();
                    let _ = tx.send(Ok(CallEvent::Trailer(meta))).await;
                    return;
                }
                Err(s) => {
                    let meta = metadata::from_headers(&s.metadata().clone().into_headers());
                    if tx.send(Ok(CallEvent::Trailer(meta))).await.is_ok() {
                        let _ = tx.send(Ok(fail(s))).await;
                    }
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agentk::receptive::verify_jwt;

    #[test]
    fn signed_jwt_verifies_with_the_public_key() {
        let seed = [9u8; 32];
        let vk = SigningKey::from_bytes(&seed).verifying_key();
        let t = sign_jwt(&seed, 7, 1000);
        let c = verify_jwt(&t, &vk, 1000, Some(7)).unwrap();
        assert_eq!(
            (c.iss.as_str(), c.aud.as_str(), c.iat, c.nbf, c.exp),
            ("gitlab-kas", "gitlab-agent", 1000, 995, 1030)
        );
    }

    #[test]
    fn wire_entries() {
        let key = STANDARD.encode([1u8; 32]);
        let body = format!(
            r#"{{"agents":[
              {{"agent_id":1,"url":"grpc://a:1","jwt":{{"private_key":"{key}"}},"extra":true}},
              {{"agent_id":2,"url":"grpc://b:1","jwt":{{"private_key":"{key}"}},"mtls":{{"client_cert":"c","client_key":"k"}}}},
              {{"agent_id":3,"url":"grpc://c:1"}},
              {{"agent_id":4,"url":"grpcs://d:1","ca_cert":"PEM","tls_host":"d.example","mtls":{{"client_cert":"c","client_key":"k"}}}},
              {{"agent_id":5,"url":"grpc://e:1","jwt":{{"private_key":"c2hvcnQ="}}}}
            ]}}"#
        );
        let got = parse_receptive_agents(body.as_bytes()).unwrap();
        assert_eq!(got.iter().map(|a| a.agent_id).collect::<Vec<_>>(), vec![1, 4]);
        assert_eq!(got[0].auth, ReceptiveAuth::Jwt { private_key: [1; 32] });
        assert_eq!(got[1].tls_host.as_deref(), Some("d.example"));
        assert!(!format!("{:?}", got[0]).contains(&key), "keys are not printed");
        let e = |a: WireAgent| from_wire(a).unwrap_err().to_string();
        let w = |jwt: bool, mtls: bool| WireAgent {
            agent_id: 2,
            url: "grpc://x:1".into(),
            ca_cert: None,
            tls_host: None,
            jwt: jwt.then(|| WireJwt { private_key: key.clone() }),
            mtls: mtls.then(|| WireMtls { client_cert: "c".into(), client_key: "k".into() }),
        };
        assert_eq!(e(w(true, true)), "agent 2: URL configuration has both a JWT key and a client certificate");
        assert_eq!(e(w(false, false)), "agent 2: URL configuration has neither a JWT key nor a client certificate");
    }

    #[test]
    fn targets() {
        let r = ReceptiveAgents::new(
            Registry::default(),
            Arc::new(StaticReceptiveAgents::default()),
            Arc::new(crate::transport::tcp::TcpConnector),
            Arc::new(crate::clock::TokioClock::new(0)),
            ReceptiveOptions::default(),
        );
        let cfg = |url: &str, auth: ReceptiveAuth| ReceptiveAgent {
            agent_id: 3,
            url: url.into(),
            ca_cert: None,
            tls_host: None,
            auth,
        };
        let jwt = ReceptiveAuth::Jwt { private_key: [1; 32] };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let _g = rt.enter();
        assert!(r.target(&cfg("grpc://agent:8080", jwt.clone())).is_ok());
        assert!(r.target(&cfg("grpcs://agent", jwt.clone())).is_ok());
        assert_eq!(
            r.target(&cfg("wss://agent:1", jwt.clone())).err().unwrap().to_string(),
            "agent 3: URL \"wss://agent:1\": unsupported scheme wss://; want grpc:// or grpcs://"
        );
        assert!(matches!(r.target(&cfg("grpc://agent:99999", jwt.clone())), Err(ReceptiveConfigError::Url { .. })));
        assert!(matches!(r.target(&cfg("grpc://a/b", jwt)), Err(ReceptiveConfigError::Url { .. })));
        let mtls = ReceptiveAuth::Mtls { client_cert: "c".into(), client_key: "k".into() };
        assert_eq!(r.target(&cfg("grpc://a:1", mtls.clone())).err(), Some(ReceptiveConfigError::MtlsUnsupported(3)));
        assert!(
            matches!(r.target(&cfg("grpcs://a:1", mtls)), Err(ReceptiveConfigError::Tls { .. })),
            "a client certificate that is not PEM is a TLS settings error"
        );
    }
}
