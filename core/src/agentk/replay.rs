//! Replays a call forwarded by kas against agentk's in-process services, message by message, with
//! the pass-through codec, and reports header / message* / trailer / error? back up the tunnel.

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::grpc::metadata::{self, Meta};
use crate::grpc::raw::RawCodec;
use crate::grpc::status;
use crate::proto::reverse_tunnel::rpc::{ConnectRequest, Error, Header, Message, Trailer, connect_request};

fn msg(m: connect_request::Msg) -> ConnectRequest {
    ConnectRequest { msg: Some(m) }
}

/// Runs the call; returns when the agent side is complete. Sends into `out` and drops it at the end,
/// which half-closes the tunnel stream; a closed `out` stops the replay.
pub async fn replay(
    routes: tonic::service::Routes,
    method: &str,
    meta: &Meta,
    requests: mpsc::Receiver<Bytes>,
    out: mpsc::Sender<ConnectRequest>,
) {
    let result = async {
        let path: http::uri::PathAndQuery = method.parse().map_err(|_| Status::invalid_argument("bad method name"))?;
        let mut headers = http::HeaderMap::new();
        metadata::append_to_headers(meta, &mut headers).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let mut req = tonic::Request::new(ReceiverStream::new(requests));
        *req.metadata_mut() = tonic::metadata::MetadataMap::from_headers(headers);
        let mut grpc = tonic::client::Grpc::new(routes);
        grpc.ready().await.map_err(|e| Status::unavailable(e.to_string()))?;
        grpc.streaming(req, path, RawCodec).await
    }
    .await;
    let resp = match result {
        Ok(r) => r,
        Err(s) => {
            let _ = out.send(msg(connect_request::Msg::Error(Error { status: Some(status::to_proto(&s)) }))).await;
            return;
        }
    };
    let header = metadata::from_headers(&resp.metadata().clone().into_headers());
    if out.send(msg(connect_request::Msg::Header(Header { meta: header }))).await.is_err() {
        return;
    }
    let mut stream = resp.into_inner();
    loop {
        match stream.message().await {
            Ok(Some(m)) => {
                if out.send(msg(connect_request::Msg::Message(Message { data: m.to_vec() }))).await.is_err() {
                    return;
                }
            }
            Ok(None) => {
                let trailers =
                    stream.trailers().await.ok().flatten().map(|t| metadata::from_headers(&t.into_headers()));
                let _ =
                    out.send(msg(connect_request::Msg::Trailer(Trailer { meta: trailers.unwrap_or_default() }))).await;
                return;
            }
            Err(s) => {
                let trailer = metadata::from_headers(&s.metadata().clone().into_headers());
                if out.send(msg(connect_request::Msg::Trailer(Trailer { meta: trailer }))).await.is_err() {
                    return;
                }
                let _ = out.send(msg(connect_request::Msg::Error(Error { status: Some(status::to_proto(&s)) }))).await;
                return;
            }
        }
    }
}
