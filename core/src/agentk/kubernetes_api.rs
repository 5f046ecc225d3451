//! agentk's `KubernetesApi/MakeRequest`: executes HTTP requests forwarded by kas against the
//! Kubernetes API with the agent's own credentials, impersonating as kas asks
//! (upstream internal/module/kubernetes_api/agent/server.go).
//!
//! Impersonation: `rest` = the agent's kubeconfig already impersonates, `cfg` = kas sent an
//! ImpersonationConfig, `req` = the client's own `Impersonate-*` headers. With none, the service
//! account acts; with exactly one, that identity is used; with two or more the request is refused with
//! "nested impersonation is not supported - agent is already configured to impersonate an identity"
//! as gRPC Unavailable (what upstream has returned since 2022-05; kas turns it into a 502).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::{Fuse, FusedFuture, FutureExt};
use futures_util::{Stream, StreamExt};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::kube_backend::KubeBackend;
use crate::http_meta;
use crate::kas::identity;
use crate::proto::grpctool::{HttpRequest, HttpResponse, http_request, http_response};
use crate::proto::kubernetes_api::rpc::kubernetes_api_server::{KubernetesApi, KubernetesApiServer};
use crate::proto::kubernetes_api::rpc::{HeaderExtra, ImpersonationConfig};
use crate::proto::prototool;
use crate::transport::hyper_client::ClientBody;
use crate::tunnel::automaton::{Checker, EOF, HTTP_REQUEST};

/// The refusal text, verbatim from upstream.
pub const NESTED_IMPERSONATION: &str =
    "nested impersonation is not supported - agent is already configured to impersonate an identity";

const HEADER_EXTRA_TYPE_URL: &str = "type.googleapis.com/gitlab.agent.kubernetes_api.rpc.HeaderExtra";

/// The service.
#[derive(Debug, Clone)]
pub struct KubernetesApiService {
    backend: Arc<KubeBackend>,
    /// `gitlab-agent/<version>/<commit>`, for `Via`.
    product: String,
}

impl KubernetesApiService {
    pub fn server(backend: KubeBackend, version: &str, commit: &str) -> KubernetesApiServer<Self> {
        KubernetesApiServer::new(Self {
            backend: Arc::new(backend),
            product: format!("gitlab-agent/{version}/{commit}"),
        })
    }
}

fn field(m: &http_request::Message) -> i32 {
    match m {
        http_request::Message::Header(_) => 1,
        http_request::Message::Data(_) => 2,
        http_request::Message::Trailer(_) => 3,
        http_request::Message::UpgradeData(_) => 4,
    }
}

fn resp(m: http_response::Message) -> Result<HttpResponse, Status> {
    Ok(HttpResponse { message: Some(m) })
}

/// Decodes `extra` (Any(HeaderExtra)); a missing or empty one means no impersonation.
fn imp_config(extra: Option<&prost_types::Any>) -> Result<Option<ImpersonationConfig>, Status> {
    let Some(any) = extra else { return Ok(None) };
    if any.type_url != HEADER_EXTRA_TYPE_URL {
        return Err(Status::invalid_argument(format!("unexpected extra type {:?}", any.type_url)));
    }
    let extra =
        HeaderExtra::decode(any.value.as_slice()).map_err(|e| Status::invalid_argument(format!("extra: {e}")))?;
    Ok(extra
        .imp_config
        .filter(|c| !c.username.is_empty() || !c.groups.is_empty() || !c.uid.is_empty() || !c.extra.is_empty()))
}

/// Encodes kas's impersonation request as the `extra` of the request header.
pub fn header_extra(imp: &ImpersonationConfig) -> prost_types::Any {
    prost_types::Any {
        type_url: HEADER_EXTRA_TYPE_URL.to_owned(),
        value: HeaderExtra { imp_config: Some(imp.clone()) }.encode_to_vec(),
    }
}

fn has_impersonation_headers(h: &http::HeaderMap) -> bool {
    h.keys().any(|k| {
        let k = k.as_str();
        k == "impersonate-user"
            || k == "impersonate-uid"
            || k == "impersonate-group"
            || k.starts_with("impersonate-extra-")
    })
}

#[tonic::async_trait]
impl KubernetesApi for KubernetesApiService {
    type MakeRequestStream = Pin<Box<dyn Stream<Item = Result<HttpResponse, Status>> + Send>>;

    async fn make_request(
        &self,
        req: Request<Streaming<HttpRequest>>,
    ) -> Result<Response<Self::MakeRequestStream>, Status> {
        let mut inbound = req.into_inner();
        let mut order = Checker::new(&HTTP_REQUEST);
        let first = inbound.message().await?.ok_or_else(|| Status::invalid_argument("HttpRequest: empty stream"))?;
        let header = match first.message {
            Some(http_request::Message::Header(h)) => {
                order.accept(1)?;
                h
            }
            other => {
                return Err(order
                    .accept_msg(other.as_ref().map(field))
                    .err()
                    .map_or_else(|| Status::internal("unreachable"), Into::into));
            }
        };
        let proto_req =
            header.request.ok_or_else(|| Status::invalid_argument("HttpRequest.Header: request is required"))?;
        let cfg_imp = imp_config(header.extra.as_ref())?;
        let mut headers =
            http_meta::from_values(&proto_req.header).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let req_imp = has_impersonation_headers(&headers);
        let rest_imp = self.backend.rest_impersonation().is_some();
        if [rest_imp, cfg_imp.is_some(), req_imp].iter().filter(|b| **b).count() > 1 {
            return Err(Status::unavailable(NESTED_IMPERSONATION));
        }
        http_meta::strip_hop_by_hop(&mut headers);
        headers.remove(http::header::HOST);
        headers.remove(http::header::AUTHORIZATION);
        if let Some(imp) = &cfg_imp {
            for (k, v) in identity::headers(imp) {
                let name = http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes())
                    .map_err(|_| Status::invalid_argument(format!("impersonation header {k:?}")))?;
                let value = http::HeaderValue::from_str(&v)
                    .map_err(|_| Status::invalid_argument(format!("impersonation value for {k}")))?;
                headers.append(name, value);
            }
        }
        http_meta::append_via(&mut headers, &format!("gRPC/1.0 {}", self.product));
        let upgrade = http_meta::is_upgrade(&headers);
        let query = http_meta::values_to_query(&proto_req.query);
        let path = if proto_req.url_path.starts_with('/') {
            proto_req.url_path.clone()
        } else {
            format!("/{}", proto_req.url_path)
        };
        let pq = if query.is_empty() { path } else { format!("{path}?{query}") };
        let method = http::Method::from_bytes(proto_req.method.as_bytes())
            .map_err(|_| Status::invalid_argument(format!("invalid method {:?}", proto_req.method)))?;

        // Request body: Data frames until Trailer; then, for upgrades, UpgradeData.
        let (body_tx, body_rx) = mpsc::channel::<Result<http_body::Frame<Bytes>, std::io::Error>>(16);
        let (upgrade_tx, mut upgrade_rx) = mpsc::channel::<Bytes>(16);
        let no_body = header.content_length == Some(0);
        let reader = async move {
            let mut body_tx = if no_body { None } else { Some(body_tx) };
            while let Some(m) = inbound.next().await {
                let m = match m {
                    Ok(m) => m,
                    Err(_) => return,
                };
                let Some(msg) = m.message else { return };
                if order.accept(field(&msg)).is_err() {
                    return;
                }
                match msg {
                    http_request::Message::Data(d) => {
                        if let Some(tx) = &body_tx {
                            let _ = tx.send(Ok(http_body::Frame::data(Bytes::from(d.data)))).await;
                        }
                    }
                    http_request::Message::Trailer(_) => body_tx = None,
                    http_request::Message::UpgradeData(d) => {
                        if upgrade_tx.send(Bytes::from(d.data)).await.is_err() {
                            return;
                        }
                    }
                    http_request::Message::Header(_) => return,
                }
            }
            let _ = order.accept(EOF);
        };
        // A request with a body or an upgrade needs its reader running beside the upstream call; for
        // the rest (most GETs) it only drains the trailer and the end, polled inline rather than as
        // a task: during the upstream call here, then by the response stream.
        let (reader, mut inline_reader): (Option<tokio::task::JoinHandle<()>>, Option<Reader>) = if no_body && !upgrade
        {
            (None, Some((Box::pin(reader) as Pin<Box<dyn Future<Output = ()> + Send>>).fuse()))
        } else {
            (Some(tokio::spawn(reader)), None)
        };
        let body: ClientBody = if no_body {
            http_body_util::Empty::new().map_err(|never| match never {}).boxed_unsync()
        } else {
            http_body_util::StreamBody::new(ReceiverStream::new(body_rx)).boxed_unsync()
        };
        let mut builder = http::Request::builder().method(method).uri(pq);
        *builder.headers_mut().expect("builder is valid") = headers;
        let request = builder.body(body).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let send = self.backend.send(request);
        let sent = match &mut inline_reader {
            None => send.await,
            Some(r) => {
                tokio::pin!(send);
                loop {
                    tokio::select! {
                        biased;
                        sent = &mut send => break sent,
                        () = &mut *r, if reader_running(r) => {}
                    }
                }
            }
        };
        let mut response = sent.map_err(|e| Status::unavailable(format!("Kubernetes API: {e}")))?;

        let status = response.status();
        let mut resp_headers = response.headers().clone();
        http_meta::strip_hop_by_hop(&mut resp_headers);
        let version = match response.version() {
            http::Version::HTTP_2 => "2.0",
            http::Version::HTTP_10 => "1.0",
            _ => "1.1",
        };
        http_meta::append_via(&mut resp_headers, &format!("{version} {}", self.product));
        let head = http_response::Message::Header(http_response::Header {
            response: Some(prototool::HttpResponse {
                status_code: i32::from(status.as_u16()),
                status: format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or("")),
                header: http_meta::to_values(&resp_headers),
            }),
        });
        let upgraded =
            (upgrade && status == http::StatusCode::SWITCHING_PROTOCOLS).then(|| hyper::upgrade::on(&mut response));
        if upgraded.is_none() {
            // No upgrade: tonic polls the upstream body directly, no task and channel in between.
            return Ok(Response::new(Box::pin(ResponseStream {
                head: Some(resp(head)),
                body: Some(response.into_body()),
                reader: inline_reader,
                _upgrade_rx: upgrade_rx,
            })));
        }
        let (out_tx, out_rx) = mpsc::channel(16);
        out_tx.send(resp(head)).await.map_err(|_| Status::cancelled("kas went away"))?;
        tokio::spawn(async move {
            let mut body = response.into_body();
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => {
                        if let Ok(data) = f.into_data()
                            && out_tx
                                .send(resp(http_response::Message::Data(http_response::Data { data: data.to_vec() })))
                                .await
                                .is_err()
                        {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ =
                            out_tx.send(Err(Status::unavailable(format!("Kubernetes API response body: {e}")))).await;
                        return;
                    }
                }
            }
            if out_tx.send(resp(http_response::Message::Trailer(http_response::Trailer {}))).await.is_err() {
                return;
            }
            let Some(upgraded) = upgraded else {
                drop(reader);
                return;
            };
            let Ok(io) = upgraded.await else { return };
            let (mut rd, mut wr) = tokio::io::split(hyper_util::rt::TokioIo::new(io));
            let up = async move {
                use tokio::io::AsyncWriteExt;
                while let Some(b) = upgrade_rx.recv().await {
                    if wr.write_all(&b).await.is_err() {
                        return;
                    }
                }
                let _ = wr.shutdown().await;
            };
            let down = async {
                use tokio::io::AsyncReadExt;
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    match rd.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            let m = http_response::Message::UpgradeData(http_response::UpgradeData {
                                data: buf[..n].to_vec(),
                            });
                            if out_tx.send(resp(m)).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            };
            tokio::join!(up, down);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out_rx))))
    }
}

/// The request reader when it runs inline (no body, no upgrade).
type Reader = Fuse<Pin<Box<dyn Future<Output = ()> + Send>>>;

fn reader_running(r: &Reader) -> bool {
    !r.is_terminated()
}

/// A response without upgrade: the header, the upstream body as Data messages, then the trailer; an
/// upstream body error ends it with Unavailable. It also polls the inline request reader, and hands
/// a reader that has not finished by the end to a task, as a reader task would have gone on.
struct ResponseStream {
    head: Option<Result<HttpResponse, Status>>,
    body: Option<Incoming>,
    reader: Option<Reader>,
    /// Upgrade bytes from kas are dropped: nothing upgraded.
    _upgrade_rx: mpsc::Receiver<Bytes>,
}

impl ResponseStream {
    fn finish(&mut self) {
        self.body = None;
        if let Some(r) = self.reader.take()
            && reader_running(&r)
        {
            tokio::spawn(r);
        }
    }
}

impl Stream for ResponseStream {
    type Item = Result<HttpResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(r) = &mut this.reader
            && reader_running(r)
        {
            let _ = Pin::new(r).poll(cx);
        }
        if let Some(h) = this.head.take() {
            return Poll::Ready(Some(h));
        }
        loop {
            let Some(body) = &mut this.body else { return Poll::Ready(None) };
            match Pin::new(body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(f))) => {
                    if let Ok(data) = f.into_data() {
                        return Poll::Ready(Some(resp(http_response::Message::Data(http_response::Data {
                            data: data.to_vec(),
                        }))));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.finish();
                    return Poll::Ready(Some(Err(Status::unavailable(format!("Kubernetes API response body: {e}")))));
                }
                Poll::Ready(None) => {
                    this.finish();
                    return Poll::Ready(Some(resp(http_response::Message::Trailer(http_response::Trailer {}))));
                }
            }
        }
    }
}
