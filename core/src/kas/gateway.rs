//! The gateway side of kas → kas routing, served on the private API listener.
//!
//! A routing kas calls the target method here with metadata `kas-hop-routing-agent-id`. The gateway
//! answers `no_tunnel` while it waits, `tunnel_ready` once it holds one of its own tunnels, then waits
//! for `StartStreaming` before forwarding; responses travel as `GatewayKasResponse` messages. If the
//! routing kas goes away before `StartStreaming`, the reserved tunnel returns to the registry.

use bytes::Bytes;
use futures_util::StreamExt;
use http::HeaderMap;
use prost::Message as _;
use tokio::sync::mpsc;
use tonic::Status;

use super::router::ROUTING_AGENT_ID;
use crate::grpc::metadata;
use crate::grpc::raw::{self, RawBody, RequestMessages, ResponseItem};
use crate::proto::kas::{GatewayKasResponse, gateway_kas_response as g};
use crate::tunnel::call::{CallEvent, MethodName, OutboundCall};
use crate::tunnel::registry::{Registry, TunnelGone};

fn encode(msg: g::Msg) -> ResponseItem {
    ResponseItem::Message(GatewayKasResponse { msg: Some(msg) }.encode_to_vec().into())
}

/// Handles one routed call.
pub async fn serve<B>(registry: Registry, req: http::Request<B>) -> http::Response<RawBody>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display,
{
    let agent_id =
        match req.headers().get(ROUTING_AGENT_ID).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i64>().ok()) {
            Some(id) => id,
            None => {
                return raw::error_response(&Status::invalid_argument(format!(
                    "missing or invalid {ROUTING_AGENT_ID} metadata"
                )));
            }
        };
    let method = req.uri().path().to_owned();
    let (service, name) = match MethodName::parse(&method) {
        Ok(m) => (m.service.to_owned(), m.method.to_owned()),
        Err(e) => return raw::error_response(&Status::invalid_argument(e.to_string())),
    };
    let mut meta = metadata::from_headers(req.headers());
    meta.retain(|k, _| !k.starts_with("kas-hop-"));
    let mut body = RequestMessages::new(req.into_body());
    let (out, out_rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut handle = match registry.try_find(agent_id, &service, &name) {
            Some(h) => h,
            None => {
                if out.send(encode(g::Msg::NoTunnel(g::NoTunnel {}))).await.is_err() {
                    return;
                }
                tokio::select! {
                    biased;
                    h = registry.find(agent_id, &service, &name) => h,
                    () = out.closed() => return,
                }
            }
        };
        if out.send(encode(g::Msg::TunnelReady(g::TunnelReady {}))).await.is_err() {
            return;
        }
        // First request message must be StartStreaming; anything else (or the routing kas leaving)
        // releases the tunnel by dropping the handle.
        match body.next().await {
            Some(Ok(_start)) => {}
            _ => return,
        }
        let (req_tx, req_rx) = mpsc::channel(16);
        tokio::spawn(async move {
            while let Some(Ok(m)) = body.next().await {
                if req_tx.send(m).await.is_err() {
                    return;
                }
            }
        });
        let mut call = OutboundCall::new(method, meta, req_rx);
        let mut events = loop {
            match handle.forward(call).await {
                Ok(events) => break events,
                Err(TunnelGone(c)) => {
                    call = c;
                    handle = tokio::select! {
                        biased;
                        h = registry.find(agent_id, &service, &name) => h,
                        () = out.closed() => return,
                    };
                }
            }
        };
        loop {
            let item = match events.recv().await {
                Some(Ok(CallEvent::Header(meta))) => encode(g::Msg::Header(g::Header { meta })),
                Some(Ok(CallEvent::Message(m))) => encode(g::Msg::Message(g::Message { data: m.to_vec() })),
                Some(Ok(CallEvent::Trailer(meta))) => encode(g::Msg::Trailer(g::Trailer { meta })),
                Some(Ok(CallEvent::Error(s))) => encode(g::Msg::Error(g::Error { status: Some(s) })),
                Some(Err(s)) => ResponseItem::End(s, HeaderMap::new()),
                None => ResponseItem::End(Status::new(tonic::Code::Ok, ""), HeaderMap::new()),
            };
            let end = matches!(item, ResponseItem::End(..));
            if out.send(item).await.is_err() || end {
                return;
            }
        }
    });
    raw::response(HeaderMap::new(), out_rx)
}
