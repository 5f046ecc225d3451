//! Routing a call to an agent: from the kas that received it to whichever kas holds a tunnel.
//!
//! The routing kas races its own registry against every gateway kas the tracker lists (polled again
//! every second for newcomers); the first tunnel found wins and every other attempt is dropped, which
//! puts any tunnel it had reserved back. With nothing found within 20 s the call fails with
//! DeadlineExceeded "Agent connection not found. Is agent up to date and connected?", as upstream.

use std::collections::{BTreeMap, BTreeSet};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::FuturesUnordered;
use futures_util::{Future, StreamExt};
use http::HeaderMap;
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::tracker::Tracker;
use crate::grpc::metadata::{self, Meta};
use crate::grpc::raw::{self, RawBody, RawCodec, RequestMessages, ResponseItem};
use crate::grpc::status;
use crate::proto::kas::{GatewayKasResponse, StartStreaming, gateway_kas_response as g};
use crate::transport::{BoxFuture, Dialer, grpc_channel};
use crate::tunnel::automaton::{Checker, EOF, GATEWAY_KAS_RESPONSE};
use crate::tunnel::call::{CallEvent, CallEvents, MethodName, OutboundCall};
use crate::tunnel::registry::{AgentId, Registry, TunnelGone, TunnelHandle};

/// How long a call waits for a tunnel before failing.
pub const ROUTING_TIMEOUT: Duration = Duration::from_secs(20);
/// How often the tracker is polled for kas instances not tried yet.
pub const TRACKER_POLL: Duration = Duration::from_secs(1);
/// Metadata naming the target agent on kas → kas hops. All `kas-hop-*` keys stop at the gateway.
pub const ROUTING_AGENT_ID: &str = "kas-hop-routing-agent-id";
/// The upstream message, verbatim: clients and docs grep for it.
pub const NO_TUNNEL_MESSAGE: &str = "Agent connection not found. Is agent up to date and connected?";

/// Routes calls to agents through local tunnels or other kas replicas.
#[derive(Debug, Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    tracker: Arc<dyn Tracker>,
    own_url: Option<String>,
    dialer: Dialer,
    channels: Mutex<BTreeMap<String, tonic::transport::Channel>>,
    timeout: Duration,
}

enum Found {
    Local(TunnelHandle),
    Gateway(Box<GatewayTunnel>),
}

impl Router {
    /// `own_url` is this kas's private API URL as registered in the tracker (skipped when routing);
    /// `dialer` reaches other kas replicas' private APIs.
    pub fn new(registry: Registry, tracker: Arc<dyn Tracker>, own_url: Option<String>, dialer: Dialer) -> Self {
        Self::with_timeout(registry, tracker, own_url, dialer, ROUTING_TIMEOUT)
    }

    pub fn with_timeout(
        registry: Registry,
        tracker: Arc<dyn Tracker>,
        own_url: Option<String>,
        dialer: Dialer,
        timeout: Duration,
    ) -> Self {
        Self { inner: Arc::new(Inner { registry, tracker, own_url, dialer, channels: Mutex::default(), timeout }) }
    }

    /// Starts `call` on a tunnel of `agent_id`. The 20 s limit applies to finding a tunnel, not to the
    /// call itself (a unary call answers only when it is done); a call given back by a tunnel that
    /// died before the agent answered gets a fresh 20 s to find another.
    pub async fn call(&self, agent_id: AgentId, mut call: OutboundCall) -> Result<CallEvents, Status> {
        let m = MethodName::parse(&call.method).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let (service, method) = (m.service.to_owned(), m.method.to_owned());
        loop {
            // An idle local tunnel is what `find` would pick first; take it without the timer, tracker
            // poll and futures set that waiting needs.
            let found = match self.inner.registry.try_find(agent_id, &service, &method) {
                Some(handle) => Found::Local(handle),
                None => tokio::time::timeout(
                    self.inner.timeout,
                    self.find(agent_id, &service, &method, &call.method, &call.meta),
                )
                .await
                .map_err(|_| Status::deadline_exceeded(NO_TUNNEL_MESSAGE))?,
            };
            match found {
                Found::Local(handle) => match handle.forward(call).await {
                    Ok(events) => return Ok(events),
                    Err(TunnelGone(c)) => call = c,
                },
                Found::Gateway(gw) => return Ok(gw.start(call)),
            }
        }
    }

    /// A tonic-compatible channel whose calls go to `agent_id` through the tunnel.
    pub fn channel(&self, agent_id: AgentId) -> RoutingChannel {
        RoutingChannel { router: self.clone(), agent_id }
    }

    async fn find(&self, agent_id: AgentId, service: &str, method: &str, full: &str, meta: &Meta) -> Found {
        type Attempt = BoxFuture<'static, (String, Result<Found, Status>)>;
        let mut pending: FuturesUnordered<Attempt> = FuturesUnordered::new();
        let registry = self.inner.registry.clone();
        let (s, m) = (service.to_owned(), method.to_owned());
        pending.push(Box::pin(async move { (String::new(), Ok(Found::Local(registry.find(agent_id, &s, &m).await))) }));
        let mut tried: BTreeSet<String> = BTreeSet::new();
        let mut poll = tokio::time::interval(TRACKER_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                Some((url, r)) = pending.next() => match r {
                    Ok(found) => return found,
                    Err(e) => {
                        tracing::debug!(%url, agent_id, error = %e.message(), "gateway attempt failed");
                        tried.remove(&url);
                    }
                },
                _ = poll.tick() => {
                    for url in self.inner.tracker.kas_urls(agent_id).await {
                        if Some(&url) == self.inner.own_url.as_ref() || !tried.insert(url.clone()) {
                            continue;
                        }
                        let channel = match self.gateway_channel(&url) {
                            Ok(c) => c,
                            Err(e) => {
                                tracing::warn!(%url, error = %e, "bad kas URL in tracker");
                                continue;
                            }
                        };
                        let (full, meta) = (full.to_owned(), meta.clone());
                        pending.push(Box::pin(async move {
                            let r = GatewayTunnel::open(channel, agent_id, &full, &meta).await.map(|g| Found::Gateway(Box::new(g)));
                            (url, r)
                        }));
                    }
                }
            }
        }
    }

    fn gateway_channel(&self, url: &str) -> Result<tonic::transport::Channel, String> {
        let mut channels = self.inner.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = channels.get(url) {
            return Ok(c.clone());
        }
        let authority =
            url.strip_prefix("grpc://").ok_or_else(|| format!("unsupported kas URL {url:?}: want grpc://host:port"))?;
        let c = grpc_channel(self.inner.dialer.clone(), authority, |e| e).map_err(|e| e.to_string())?;
        channels.insert(url.to_owned(), c.clone());
        Ok(c)
    }
}

/// A tunnel reserved on another kas, waiting for `StartStreaming`.
struct GatewayTunnel {
    requests: mpsc::Sender<Bytes>,
    responses: tonic::Streaming<Bytes>,
    order: Checker,
}

impl GatewayTunnel {
    async fn open(
        channel: tonic::transport::Channel,
        agent_id: AgentId,
        method: &str,
        meta: &Meta,
    ) -> Result<Self, Status> {
        let path: http::uri::PathAndQuery = method.parse().map_err(|_| Status::invalid_argument("bad method"))?;
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.map_err(|e| Status::unavailable(e.to_string()))?;
        let (tx, rx) = mpsc::channel::<Bytes>(16);
        let mut headers = HeaderMap::new();
        metadata::append_to_headers(meta, &mut headers).map_err(|e| Status::invalid_argument(e.to_string()))?;
        headers.insert(ROUTING_AGENT_ID, agent_id.into());
        let mut req = tonic::Request::new(ReceiverStream::new(rx));
        *req.metadata_mut() = tonic::metadata::MetadataMap::from_headers(headers);
        let mut responses = grpc.streaming(req, path, RawCodec).await?.into_inner();
        let mut order = Checker::new(&GATEWAY_KAS_RESPONSE);
        loop {
            let msg = responses
                .message()
                .await?
                .ok_or_else(|| Status::unavailable("gateway kas ended before a tunnel was ready"))?;
            let msg = GatewayKasResponse::decode(msg).map_err(|e| Status::internal(format!("gateway kas: {e}")))?;
            match msg.msg {
                Some(g::Msg::NoTunnel(_)) => order.accept(6)?,
                Some(g::Msg::TunnelReady(_)) => {
                    order.accept(1)?;
                    return Ok(Self { requests: tx, responses, order });
                }
                Some(other) => {
                    return Err(order
                        .accept(gateway_field(&other))
                        .err()
                        .map_or_else(|| Status::internal("unreachable"), Status::from));
                }
                None => return Err(order.accept_msg(None).unwrap_err().into()),
            }
        }
    }

    fn start(self, call: OutboundCall) -> CallEvents {
        let Self { requests, mut responses, mut order } = self;
        let (events_tx, events_rx) = mpsc::channel(16);
        let replay = call.replay;
        let mut client = call.requests;
        tokio::spawn(async move {
            if requests.send(StartStreaming {}.encode_to_vec().into()).await.is_err() {
                let _ = events_tx.send(Err(Status::unavailable("gateway kas went away"))).await;
                return;
            }
            let pump = async move {
                for m in replay {
                    if requests.send(m).await.is_err() {
                        return;
                    }
                }
                while let Some(m) = client.recv().await {
                    if requests.send(m).await.is_err() {
                        return;
                    }
                }
            };
            tokio::spawn(pump);
            loop {
                let msg = tokio::select! {
                    biased;
                    m = responses.message() => m,
                    () = events_tx.closed() => return,
                };
                let event = match msg {
                    Ok(None) => {
                        if let Err(e) = order.accept(EOF) {
                            let _ = events_tx.send(Err(Status::unavailable(format!("gateway kas: {e}")))).await;
                        }
                        return;
                    }
                    Err(s) => Err(s),
                    Ok(Some(bytes)) => match GatewayKasResponse::decode(bytes) {
                        Err(e) => Err(Status::internal(format!("gateway kas: {e}"))),
                        Ok(GatewayKasResponse { msg: None }) => Err(order.accept_msg(None).unwrap_err().into()),
                        Ok(GatewayKasResponse { msg: Some(m) }) => match order.accept(gateway_field(&m)) {
                            Err(e) => Err(e.into()),
                            Ok(()) => Ok(match m {
                                g::Msg::Header(h) => CallEvent::Header(h.meta),
                                g::Msg::Message(m) => CallEvent::Message(m.data.into()),
                                g::Msg::Trailer(t) => CallEvent::Trailer(t.meta),
                                g::Msg::Error(e) => CallEvent::Error(e.status.unwrap_or_default()),
                                g::Msg::TunnelReady(_) | g::Msg::NoTunnel(_) => {
                                    unreachable!("rejected by the automaton")
                                }
                            }),
                        },
                    },
                };
                let failed = event.is_err();
                if events_tx.send(event).await.is_err() || failed {
                    return;
                }
            }
        });
        CallEvents::new(events_rx)
    }
}

fn gateway_field(m: &g::Msg) -> i32 {
    match m {
        g::Msg::TunnelReady(_) => 1,
        g::Msg::Header(_) => 2,
        g::Msg::Message(_) => 3,
        g::Msg::Trailer(_) => 4,
        g::Msg::Error(_) => 5,
        g::Msg::NoTunnel(_) => 6,
    }
}

/// A tower service that tonic clients use as their channel: each call is routed to the agent.
#[derive(Debug, Clone)]
pub struct RoutingChannel {
    router: Router,
    agent_id: AgentId,
}

impl tower_service::Service<http::Request<tonic::body::Body>> for RoutingChannel {
    type Response = http::Response<RawBody>;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let router = self.router.clone();
        let agent_id = self.agent_id;
        Box::pin(async move { Ok(serve_call(&router, agent_id, req).await) })
    }
}

/// Serves one gRPC request from the HTTP side by routing it to the agent.
pub async fn serve_call<B>(router: &Router, agent_id: AgentId, req: http::Request<B>) -> http::Response<RawBody>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display,
{
    let method = req.uri().path().to_owned();
    let meta = metadata::from_headers(req.headers());
    let (tx, rx) = mpsc::channel(16);
    let mut body = RequestMessages::new(req.into_body());
    tokio::spawn(async move {
        while let Some(Ok(m)) = body.next().await {
            if tx.send(m).await.is_err() {
                return;
            }
        }
    });
    let mut events = match router.call(agent_id, OutboundCall::new(method, meta, rx)).await {
        Ok(e) => e,
        Err(s) => return raw::error_response(&s),
    };
    let headers = match events.recv().await {
        Some(Ok(CallEvent::Header(meta))) => {
            let mut h = HeaderMap::new();
            if let Err(e) = metadata::append_to_headers(&meta, &mut h) {
                return raw::error_response(&Status::internal(format!("agent header: {e}")));
            }
            h
        }
        Some(Ok(CallEvent::Error(s))) => return raw::error_response(&status::from_proto(&s)),
        Some(Err(s)) => return raw::error_response(&s),
        Some(Ok(other)) => {
            return raw::error_response(&Status::internal(format!("agent sent {other:?} before header")));
        }
        None => return raw::error_response(&Status::unavailable("tunnel ended before a response")),
    };
    let (items_tx, items_rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut trailers = HeaderMap::new();
        loop {
            let item = match events.recv().await {
                Some(Ok(CallEvent::Message(m))) => ResponseItem::Message(m),
                Some(Ok(CallEvent::Trailer(meta))) => {
                    let _ = metadata::append_to_headers(&meta, &mut trailers);
                    continue;
                }
                Some(Ok(CallEvent::Error(s))) => {
                    ResponseItem::End(status::from_proto(&s), std::mem::take(&mut trailers))
                }
                Some(Ok(CallEvent::Header(_))) => {
                    ResponseItem::End(Status::internal("second header"), HeaderMap::new())
                }
                Some(Err(s)) => ResponseItem::End(s, std::mem::take(&mut trailers)),
                None => ResponseItem::End(Status::new(tonic::Code::Ok, ""), std::mem::take(&mut trailers)),
            };
            let end = matches!(item, ResponseItem::End(..));
            if items_tx.send(item).await.is_err() || end {
                return;
            }
        }
    });
    raw::response(headers, items_rx)
}
