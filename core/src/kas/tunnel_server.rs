//! kas's side of `ReverseTunnel/Connect`: one task per tunnel stream.
//!
//! Lifecycle of a stream: authenticate the agent token, read the descriptor, then sit idle in the
//! [`Registry`] until a call is handed over (or the connection reaches its maximum age, which ends an
//! idle tunnel with OK so agentk re-dials). A call is forwarded as request_info / message* /
//! close_send; the agent answers header / message* / trailer / error?, checked against the
//! `ConnectRequest` automaton. Any violation ends the stream with InvalidArgument.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use super::agent_auth::{AgentAuth, bearer_token};
use crate::grpc::status;
use crate::proto::reverse_tunnel::rpc::{
    CloseSend, ConnectRequest, ConnectResponse, Message, RequestInfo, connect_request, connect_response,
    reverse_tunnel_server::ReverseTunnel,
};
use crate::tunnel::automaton::{CONNECT_REQUEST, Checker, EOF};
use crate::tunnel::call::{CallEvent, OutboundCall};
use crate::tunnel::registry::{AgentId, AgentVersion, Descriptor, Handoff, Registry};

/// Put into each request's extensions by the agent listener: cancelled when the HTTP/2 connection
/// reaches its maximum age.
#[derive(Debug, Clone, Default)]
pub struct ConnectionAge(pub CancellationToken);

/// The `ReverseTunnel` gRPC service.
#[derive(Debug, Clone)]
pub struct TunnelServer {
    registry: Registry,
    auth: AgentAuth,
}

impl TunnelServer {
    pub fn new(registry: Registry, auth: AgentAuth) -> Self {
        Self { registry, auth }
    }
}

type Out = mpsc::Sender<Result<ConnectResponse, Status>>;

#[tonic::async_trait]
impl ReverseTunnel for TunnelServer {
    type ConnectStream = ReceiverStream<Result<ConnectResponse, Status>>;

    async fn connect(&self, req: Request<Streaming<ConnectRequest>>) -> Result<Response<Self::ConnectStream>, Status> {
        let token = bearer_token(req.metadata())?;
        let agent = self.auth.agent_info(&token).await.map_err(|e| e.to_status())?;
        if let Some(v) =
            req.metadata().get("user-agent").and_then(|v| v.to_str().ok()).and_then(AgentVersion::from_user_agent)
        {
            self.registry.record_version(agent.id, v);
        }
        let age = req.extensions().get::<ConnectionAge>().cloned().unwrap_or_default();
        let inbound = req.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let registry = self.registry.clone();
        tokio::spawn(async move {
            if let Err(status) = run(registry, agent.id, inbound, &tx, age.0).await {
                tracing::debug!(agent_id = agent.id, code = ?status.code(), message = status.message(), "tunnel ended with error");
                let _ = tx.send(Err(status)).await;
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

async fn run(
    registry: Registry,
    agent_id: AgentId,
    mut inbound: Streaming<ConnectRequest>,
    out: &Out,
    age: CancellationToken,
) -> Result<(), Status> {
    let mut order = Checker::new(&CONNECT_REQUEST);
    let first = inbound.message().await?;
    let descriptor = match first.and_then(|m| m.msg) {
        Some(connect_request::Msg::Descriptor(d)) => {
            order.accept(1)?;
            let d = d
                .agent_descriptor
                .ok_or_else(|| Status::invalid_argument("descriptor: agent_descriptor is required"))?;
            Arc::new(Descriptor::from_proto(&d).map_err(|e| Status::invalid_argument(e.to_string()))?)
        }
        Some(other) => {
            return Err(order.accept(field_of(&other)).map_or_else(Status::from, |_| Status::internal("unreachable")));
        }
        None => {
            return Err(Status::invalid_argument("ConnectRequest: expected a descriptor first"));
        }
    };
    let _connection = registry.connect(agent_id);
    loop {
        let mut reg = registry.register(agent_id, descriptor.clone());
        tokio::select! {
            biased;
            handoff = &mut reg.rx => match handoff {
                Ok(handoff) => {
                    drop(reg);
                    return forward(handoff, inbound, out, order).await;
                }
                // The handle was dropped unused: the tunnel is idle again.
                Err(_) => continue,
            },
            msg = inbound.message() => return match msg {
                Ok(None) => Ok(()),
                Ok(Some(_)) => Err(Status::invalid_argument("ConnectRequest: message from agent before any request was sent")),
                Err(s) => Err(s),
            },
            () = age.cancelled() => {
                // Maximum connection age: end the idle tunnel with OK; agentk re-dials at once, on a new
                // connection because this one has sent GOAWAY.
                return Ok(());
            }
        }
    }
}

fn field_of(m: &connect_request::Msg) -> i32 {
    match m {
        connect_request::Msg::Descriptor(_) => 1,
        connect_request::Msg::Header(_) => 2,
        connect_request::Msg::Message(_) => 3,
        connect_request::Msg::Trailer(_) => 4,
        connect_request::Msg::Error(_) => 5,
    }
}

/// Client messages kept for a retry until the agent answers; past this, a tunnel that dies before
/// the agent's first message fails the call instead of retrying it.
const REPLAY_LIMIT: usize = 4 * 1024 * 1024;

async fn forward(
    (call, reply): Handoff,
    mut inbound: Streaming<ConnectRequest>,
    out: &Out,
    mut order: Checker,
) -> Result<(), Status> {
    let OutboundCall { method, meta, mut requests, replay } = call;
    let info = ConnectResponse {
        msg: Some(connect_response::Msg::RequestInfo(RequestInfo { method_name: method.clone(), meta: meta.clone() })),
    };
    if out.send(Ok(info)).await.is_err() {
        // The stream died while idle: give the call back for another tunnel.
        let _ = reply.send(Err(OutboundCall { method, meta, requests, replay }));
        return Ok(());
    }
    let (events_tx, events_rx) = mpsc::channel(16);
    let (giveback_tx, giveback_rx) = tokio::sync::oneshot::channel();
    if reply.send(Ok((events_rx, giveback_rx))).is_err() {
        return Err(Status::cancelled("caller went away"));
    }
    // Until the agent's first message, everything sent is also kept, so that the call can move to
    // another tunnel if this one dies first (agentk closing an idle tunnel races with kas handing it a
    // call; the agent never saw the call then).
    let mut giveback = Some((giveback_tx, replay.clone(), replay.iter().map(|b| b.len()).sum::<usize>()));
    let mut client_open = true;
    let mut pending_replay = replay.into_iter();
    let dead = |giveback: &mut Option<(tokio::sync::oneshot::Sender<OutboundCall>, Vec<Bytes>, usize)>,
                requests: mpsc::Receiver<Bytes>,
                why: String| {
        match giveback.take() {
            Some((tx, sent, size)) if size <= REPLAY_LIMIT => {
                let _ = tx.send(OutboundCall { method: method.clone(), meta: meta.clone(), requests, replay: sent });
                None
            }
            _ => Some(Status::unavailable(why)),
        }
    };
    loop {
        // Replayed messages first, then the live ones.
        let next_replay = if client_open { pending_replay.next() } else { None };
        if let Some(data) = next_replay {
            if out
                .send(Ok(ConnectResponse {
                    msg: Some(connect_response::Msg::Message(Message { data: data.to_vec() })),
                }))
                .await
                .is_err()
            {
                if let Some(err) = dead(&mut giveback, requests, "tunnel stream closed".into()) {
                    let _ = events_tx.send(Err(err)).await;
                }
                return Ok(());
            }
            continue;
        }
        tokio::select! {
            biased;
            msg = inbound.message() => {
                let msg = match msg {
                    Ok(Some(m)) => m,
                    // Only a stream the agent itself cancelled (agentk closing an idle tunnel) or ended
                    // before answering proves the agent did not act on the call; a broken connection
                    // may have cut a call the agent was already running, which must not run twice.
                    Ok(None) if giveback.is_some() => {
                        if let Some(err) = dead(&mut giveback, requests, "tunnel ended before the agent answered".into()) {
                            let _ = events_tx.send(Err(err)).await;
                        }
                        return Ok(());
                    }
                    Err(s) if giveback.is_some() && s.code() == tonic::Code::Cancelled => {
                        if let Some(err) = dead(&mut giveback, requests, "tunnel ended before the agent answered".into()) {
                            let _ = events_tx.send(Err(err)).await;
                        }
                        return Ok(());
                    }
                    Err(s) => {
                        let _ = events_tx.send(Err(Status::unavailable(format!("tunnel broke: {}", s.message())))).await;
                        return Ok(());
                    }
                    Ok(None) => {
                        if let Err(e) = order.accept(EOF) {
                            let _ = events_tx.send(Err(Status::unavailable(format!("tunnel ended mid-call: {e}")))).await;
                        }
                        return Ok(());
                    }
                };
                giveback = None;
                let Some(msg) = msg.msg else {
                    let e = order.accept_msg(None).unwrap_err();
                    let _ = events_tx.send(Err(Status::unavailable(format!("agent protocol violation: {e}")))).await;
                    return Err(e.into());
                };
                if let Err(e) = order.accept(field_of(&msg)) {
                    let _ = events_tx.send(Err(Status::unavailable(format!("agent protocol violation: {e}")))).await;
                    return Err(e.into());
                }
                let event = match msg {
                    connect_request::Msg::Header(h) => CallEvent::Header(h.meta),
                    connect_request::Msg::Message(m) => CallEvent::Message(m.data.into()),
                    connect_request::Msg::Trailer(t) => CallEvent::Trailer(t.meta),
                    connect_request::Msg::Error(e) => match e.status {
                        Some(s) => CallEvent::Error(s),
                        None => {
                            let _ = events_tx.send(Err(Status::unavailable("agent sent an error without status"))).await;
                            return Err(Status::invalid_argument("Error: status is required"));
                        }
                    },
                    connect_request::Msg::Descriptor(_) => unreachable!("rejected by the automaton"),
                };
                if events_tx.send(Ok(event)).await.is_err() {
                    return Err(Status::cancelled("caller went away"));
                }
            }
            req = requests.recv(), if client_open => {
                let msg = match req {
                    Some(data) => {
                        if let Some((_, sent, size)) = &mut giveback {
                            *size += data.len();
                            if *size <= REPLAY_LIMIT {
                                sent.push(data.clone());
                            }
                        }
                        connect_response::Msg::Message(Message { data: data.to_vec() })
                    }
                    None => {
                        client_open = false;
                        connect_response::Msg::CloseSend(CloseSend {})
                    }
                };
                if out.send(Ok(ConnectResponse { msg: Some(msg) })).await.is_err() {
                    if let Some(err) = dead(&mut giveback, requests, "tunnel stream closed".into()) {
                        let _ = events_tx.send(Err(err)).await;
                    }
                    return Ok(());
                }
            }
            () = events_tx.closed() => return Err(Status::cancelled("caller went away")),
        }
    }
}

/// Converts a `CallEvent::Error` into the tonic status the caller sees.
pub fn error_status(s: &crate::proto::google::rpc::Status) -> Status {
    status::from_proto(s)
}
