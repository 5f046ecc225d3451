//! One agentk tunnel: dial `Connect`, send the descriptor, wait (idle) for a request, replay it,
//! and start over.

use std::sync::Arc;

use rand_chacha::ChaCha8Rng;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Status};

use super::backoff::Backoff;
use super::pool::{NewTunnel, PoolState};
use super::replay::replay;
use super::services::AgentServices;
use crate::proto::reverse_tunnel::info::AgentDescriptor;
use crate::proto::reverse_tunnel::rpc::{
    ConnectRequest, ConnectResponse, Descriptor, connect_request, connect_response,
    reverse_tunnel_client::ReverseTunnelClient,
};
use crate::tunnel::automaton::{CONNECT_RESPONSE, Checker, EOF};

/// What every tunnel of one agentk shares.
#[derive(Debug)]
pub struct TunnelContext {
    pub channel: tonic::transport::Channel,
    pub authorization: tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
    pub descriptor: AgentDescriptor,
    pub services: AgentServices,
    pub pool: PoolState,
    pub shutdown: CancellationToken,
}

enum Outcome {
    /// Served a call, or kas ended the unused tunnel: re-dial at once.
    Again,
    /// Closed for idleness or shutdown.
    Done,
}

/// Spawns the task of a new tunnel.
pub fn spawn(ctx: Arc<TunnelContext>, t: NewTunnel) {
    tokio::spawn(run(ctx, t));
}

async fn run(ctx: Arc<TunnelContext>, NewTunnel { id, mut rng }: NewTunnel) {
    let mut backoff = Backoff::new(ctx.pool.config().backoff);
    loop {
        if ctx.shutdown.is_cancelled() {
            break;
        }
        match attempt(&ctx, id).await {
            Ok(Outcome::Again) => {}
            Ok(Outcome::Done) => break,
            Err(s) if matches!(s.code(), Code::Cancelled | Code::DeadlineExceeded) => {
                tracing::debug!(tunnel = id, code = ?s.code(), "tunnel ended; reconnecting at once");
            }
            Err(s) => {
                ctx.pool.note_error();
                let delay = backoff.next_delay(tokio::time::Instant::now(), &mut rng as &mut ChaCha8Rng);
                tracing::debug!(tunnel = id, code = ?s.code(), message = s.message(), ?delay, "tunnel failed; backing off");
                tokio::select! {
                    biased;
                    () = ctx.shutdown.cancelled() => break,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    ctx.pool.remove(id);
}

async fn attempt(ctx: &Arc<TunnelContext>, id: u64) -> Result<Outcome, Status> {
    let (tx, rx) = mpsc::channel::<ConnectRequest>(16);
    let descriptor = ConnectRequest {
        msg: Some(connect_request::Msg::Descriptor(Descriptor { agent_descriptor: Some(ctx.descriptor.clone()) })),
    };
    tx.send(descriptor).await.map_err(|_| Status::internal("request channel closed"))?;
    let mut req = tonic::Request::new(ReceiverStream::new(rx));
    req.metadata_mut().insert("authorization", ctx.authorization.clone());
    let mut client = ReverseTunnelClient::new(ctx.channel.clone());
    let mut stream = tokio::select! {
        biased;
        () = ctx.shutdown.cancelled() => return Ok(Outcome::Done),
        r = client.connect(req) => r?.into_inner(),
    };
    let max_idle = ctx.pool.config().max_idle_time;
    let mut order = Checker::new(&CONNECT_RESPONSE);
    let first = loop {
        tokio::select! {
            biased;
            () = ctx.shutdown.cancelled() => return Ok(Outcome::Done),
            m = stream.message() => break m?,
            () = tokio::time::sleep(max_idle) => {
                if ctx.pool.try_close_idle(id) {
                    return Ok(Outcome::Done);
                }
            }
        }
    };
    let info = match first.and_then(|m| m.msg) {
        None => {
            order.accept(EOF)?;
            return Ok(Outcome::Again);
        }
        Some(connect_response::Msg::RequestInfo(info)) => {
            order.accept(1)?;
            info
        }
        Some(connect_response::Msg::Message(_)) => return Err(order.accept(2).unwrap_err().into()),
        Some(connect_response::Msg::CloseSend(_)) => {
            return Err(order.accept(3).unwrap_err().into());
        }
    };
    for t in ctx.pool.on_active(id) {
        spawn(ctx.clone(), t);
    }
    let result = serve(ctx, info, stream, tx, order).await;
    ctx.pool.on_idle(id);
    result.map(|()| Outcome::Again)
}

async fn serve(
    ctx: &Arc<TunnelContext>,
    info: crate::proto::reverse_tunnel::rpc::RequestInfo,
    mut stream: tonic::Streaming<ConnectResponse>,
    tx: mpsc::Sender<ConnectRequest>,
    mut order: Checker,
) -> Result<(), Status> {
    let (req_tx, req_rx) = mpsc::channel(16);
    let call = replay(ctx.services.routes(), &info.method_name, &info.meta, req_rx, tx);
    tokio::pin!(call);
    let mut req_tx = Some(req_tx);
    let mut call_done = false;
    loop {
        tokio::select! {
            biased;
            () = &mut call, if !call_done => {
                // The replay dropped the last request sender: our half-close. kas ends the stream once
                // it has seen everything.
                call_done = true;
            }
            m = stream.message() => {
                let m = m?;
                match m.map(|m| m.msg) {
                    None => {
                        order.accept(EOF)?;
                        // kas ended the stream; if our call was still running the caller went away.
                        return Ok(());
                    }
                    Some(None) => return Err(order.accept_msg(None).unwrap_err().into()),
                    Some(Some(connect_response::Msg::Message(msg))) => {
                        order.accept(2)?;
                        if let Some(r) = &req_tx {
                            let _ = r.send(msg.data.into()).await;
                        }
                    }
                    Some(Some(connect_response::Msg::CloseSend(_))) => {
                        order.accept(3)?;
                        req_tx = None;
                    }
                    Some(Some(connect_response::Msg::RequestInfo(_))) => return Err(order.accept(1).unwrap_err().into()),
                }
            }
            () = ctx.shutdown.cancelled(), if call_done => return Ok(()),
        }
    }
}
