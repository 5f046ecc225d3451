//! kas's Kubernetes API proxy: the HTTP listener CI jobs and users point `kubectl` at.
//!
//! Per request: CORS, URL prefix, credentials, authorization through GitLab (cached), the identity to
//! impersonate, then the request travels as `grpctool.HttpRequest` frames through
//! `KubernetesApi/MakeRequest` on the agent's tunnel, and the response streams back frame by frame
//! (watches are not buffered). Upgrades (exec, attach, port-forward) continue as UpgradeData frames.

pub mod auth;
pub mod cache;
pub mod cors;
pub mod status;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::StatusCode;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncWriteExt, ReadHalf};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use self::auth::Credentials;
use self::cache::Cache;
use self::cors::Origin;
use super::allowed_agents::{AccessType, AllowedAgentsForJob, AuthorizeProxyUser};
use super::gitlab::{GitLabApi, GitLabError};
use super::identity;
use super::router::Router;
use crate::agentk::kubernetes_api::header_extra;
use crate::http_meta;
use crate::proto::grpctool::{HttpRequest, HttpResponse, http_request, http_response};
use crate::proto::kubernetes_api::rpc::ImpersonationConfig;
use crate::proto::prototool;
use crate::transport::Accept;
use crate::tunnel::automaton::{Checker, HTTP_RESPONSE};
use crate::tunnel::call::{CallEvent, CallEvents, OutboundCall};

/// Body of proxy responses.
pub type ProxyBody = http_body_util::combinators::UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

fn full(b: Bytes) -> ProxyBody {
    http_body_util::Full::new(b).map_err(|never| match never {}).boxed_unsync()
}

/// k8s-proxy settings.
#[derive(Debug, Clone)]
pub struct K8sProxyOptions {
    /// Default `/`; e.g. `/k8s-proxy/` behind GitLab's path-based routing.
    pub url_path_prefix: String,
    /// GitLab's external URL: the only allowed CORS origin.
    pub gitlab_external_url: Option<String>,
    pub version: String,
    pub commit: String,
}

impl Default for K8sProxyOptions {
    fn default() -> Self {
        Self {
            url_path_prefix: "/".into(),
            gitlab_external_url: None,
            version: crate::agentk::DEFAULT_VERSION.into(),
            commit: "kasim".into(),
        }
    }
}

/// The proxy. Cheap to clone.
#[derive(Debug, Clone)]
pub struct K8sProxy {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    opts: K8sProxyOptions,
    /// kas's `Via` entry, `gRPC/1.0 gitlab-kas/<version>/<commit>`.
    via: String,
    gitlab: Arc<dyn GitLabApi>,
    router: Router,
    /// Shared answers: a cache hit is a reference count, not a copy of the job's allowed agents.
    jobs: Cache<Arc<Result<AllowedAgentsForJob, GitLabError>>>,
    users: Cache<Arc<Result<AuthorizeProxyUser, GitLabError>>>,
}

/// A refusal before anything was forwarded.
struct Refusal(http::Response<ProxyBody>);

fn refuse(code: StatusCode, detail: &str) -> Refusal {
    Refusal(status::response::<Bytes>(code, detail).map(full))
}

impl K8sProxy {
    pub fn new(gitlab: Arc<dyn GitLabApi>, router: Router, opts: K8sProxyOptions) -> Self {
        let via = format!("gRPC/1.0 gitlab-kas/{}/{}", opts.version, opts.commit);
        Self { inner: Arc::new(Inner { opts, via, gitlab, router, jobs: Cache::default(), users: Cache::default() }) }
    }

    /// Serves HTTP/1.1 and HTTP/2 (with upgrades) on `listener` until `shutdown`.
    pub async fn serve(&self, mut listener: Box<dyn Accept>, shutdown: CancellationToken) {
        loop {
            let accepted = tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                a = listener.accept() => a,
            };
            let Ok(accepted) = accepted else {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            };
            let proxy = self.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let Ok(io) = accepted.io.await else { return };
                let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                    let proxy = proxy.clone();
                    async move { Ok::<_, Infallible>(proxy.handle(req).await) }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
                tokio::pin!(conn);
                tokio::select! {
                    biased;
                    _ = conn.as_mut() => {}
                    () = shutdown.cancelled() => {}
                }
            });
        }
    }

    /// Handles one request.
    pub async fn handle(&self, mut req: http::Request<Incoming>) -> http::Response<ProxyBody> {
        let origin = cors::check(req.headers(), self.inner.opts.gitlab_external_url.as_deref());
        let origin = match origin {
            Origin::Denied => {
                let mut r = http::Response::new(full(Bytes::new()));
                *r.status_mut() = StatusCode::FORBIDDEN;
                return r;
            }
            Origin::Allowed(o) => Some(o),
            Origin::None => None,
        };
        if let Some(o) = &origin
            && req.method() == http::Method::OPTIONS
        {
            let mut r = http::Response::new(full(Bytes::new()));
            *r.headers_mut() = cors::preflight(req.headers(), o);
            return r;
        }
        let on_upgrade = http_meta::is_upgrade(req.headers()).then(|| hyper::upgrade::on(&mut req));
        let mut resp = match self.forward(req, on_upgrade).await {
            Ok(r) => r,
            Err(Refusal(r)) => r,
        };
        if let Some(o) = &origin {
            cors::decorate(resp.headers_mut(), o);
        }
        resp
    }

    async fn forward(
        &self,
        req: http::Request<Incoming>,
        on_upgrade: Option<hyper::upgrade::OnUpgrade>,
    ) -> Result<http::Response<ProxyBody>, Refusal> {
        let opts = &self.inner.opts;
        let prefix = opts.url_path_prefix.trim_end_matches('/');
        let path = req.uri().path();
        let rest = path.strip_prefix(prefix).filter(|r| r.is_empty() || r.starts_with('/')).ok_or_else(|| {
            refuse(
                StatusCode::BAD_REQUEST,
                &format!("URL path {path:?} does not start with {:?}", opts.url_path_prefix),
            )
        })?;
        let url_path = if rest.is_empty() { "/".to_owned() } else { rest.to_owned() };
        let mut query = http_meta::query_to_values(req.uri().query());
        let query_map: BTreeMap<String, Vec<String>> =
            query.iter().map(|(k, v)| (k.clone(), v.value.clone())).collect();
        let creds = auth::credentials(req.headers(), &query_map)
            .map_err(|e| refuse(StatusCode::UNAUTHORIZED, &e.to_string()))?;
        let agent_id = creds.agent_id();
        let imp = self.authorize(&creds).await?;

        let (parts, body) = req.into_parts();
        let mut headers = parts.headers;
        for h in ["authorization", "cookie", "gitlab-agent-id", "x-csrf-token", "host"] {
            headers.remove(h);
        }
        http_meta::strip_hop_by_hop(&mut headers);
        http_meta::append_via(&mut headers, &self.inner.via);
        query.remove("gitlab-agent-id");
        query.remove("gitlab-csrf-token");
        let content_length =
            match headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<i64>().ok()) {
                Some(n) => n,
                None if http_body::Body::is_end_stream(&body) => 0,
                None => -1,
            };
        let header = http_request::Header {
            request: Some(prototool::HttpRequest {
                method: parts.method.to_string(),
                header: http_meta::to_values(&headers),
                url_path,
                query,
            }),
            extra: imp.as_ref().map(header_extra),
            content_length: Some(content_length),
        };

        // The request goes straight to the router as encoded `grpctool.HttpRequest` messages of a
        // `KubernetesApi/MakeRequest` call: no tonic client or HTTP/2 framing inside kas.
        let (req_tx, req_rx) = mpsc::channel::<Bytes>(16);
        let msg = |m| Bytes::from(prost::Message::encode_to_vec(&HttpRequest { message: Some(m) }));
        let _ = req_tx.send(msg(http_request::Message::Header(header))).await;
        let (upgraded_tx, upgraded_rx) = tokio::sync::oneshot::channel::<ReadHalf<TokioIo<hyper::upgrade::Upgraded>>>();
        let may_upgrade = on_upgrade.is_some();
        // The half-close (`CloseSend`) follows once the agent's response header is here (when this
        // function returns), or after the upgraded connection's bytes.
        let mut half_close = None;
        if !may_upgrade && http_body::Body::is_end_stream(&body) {
            // No body and no upgrade (most GETs): the trailer goes at once, without a task to read an
            // empty body. The channel has room for both messages.
            let _ = req_tx.try_send(msg(http_request::Message::Trailer(http_request::Trailer {})));
            half_close = Some(req_tx.clone());
        } else {
            let body_tx = req_tx.clone();
            tokio::spawn(async move {
                let mut body = body;
                while let Some(frame) = body.frame().await {
                    match frame {
                        Ok(f) => {
                            if let Ok(d) = f.into_data()
                                && body_tx
                                    .send(msg(http_request::Message::Data(http_request::Data { data: d.to_vec() })))
                                    .await
                                    .is_err()
                            {
                                return;
                            }
                        }
                        Err(_) => return,
                    }
                }
                if body_tx.send(msg(http_request::Message::Trailer(http_request::Trailer {}))).await.is_err() {
                    return;
                }
                // After the 101, the client's bytes follow as UpgradeData.
                let Ok(mut io) = upgraded_rx.await else { return };
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    use tokio::io::AsyncReadExt;
                    match io.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            let m = msg(http_request::Message::UpgradeData(http_request::UpgradeData {
                                data: buf[..n].to_vec(),
                            }));
                            if body_tx.send(m).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
        drop(req_tx);

        let call = OutboundCall::new(MAKE_REQUEST, Default::default(), req_rx);
        let mut stream = Responses::new(self.inner.router.call(agent_id, call).await.map_err(|s| bad_gateway(&s))?);
        let mut order = Checker::new(&HTTP_RESPONSE);
        let first = stream.message().await.map_err(|s| bad_gateway(&s))?;
        let head = match first.and_then(|m| m.message) {
            Some(http_response::Message::Header(h)) => {
                let _ = order.accept(1);
                h.response
                    .ok_or_else(|| refuse(StatusCode::BAD_GATEWAY, "agent sent a response header without response"))?
            }
            _ => return Err(refuse(StatusCode::BAD_GATEWAY, "agent did not start its response with a header")),
        };
        let code =
            u16::try_from(head.status_code).ok().and_then(|c| StatusCode::from_u16(c).ok()).ok_or_else(|| {
                refuse(StatusCode::BAD_GATEWAY, &format!("agent sent invalid status code {}", head.status_code))
            })?;
        let mut resp_headers =
            http_meta::from_values(&head.header).map_err(|e| refuse(StatusCode::BAD_GATEWAY, &e.to_string()))?;
        cors::strip_upstream(&mut resp_headers);
        resp_headers.remove(http::header::SERVER);
        http_meta::strip_hop_by_hop(&mut resp_headers);
        http_meta::append_via(&mut resp_headers, &self.inner.via);

        let upgrading = code == StatusCode::SWITCHING_PROTOCOLS && on_upgrade.is_some();
        let body = if upgrading {
            self::upgrade_pump(stream, order, on_upgrade, upgraded_tx)
        } else {
            // The common case: hyper polls the call's events directly, no pump task in between.
            ResponseBody { events: Some(stream.events), order }.boxed_unsync()
        };
        let mut resp = http::Response::new(body);
        *resp.status_mut() = code;
        *resp.headers_mut() = resp_headers;
        drop(half_close);
        Ok(resp)
    }

    async fn authorize(&self, creds: &Credentials) -> Result<Option<ImpersonationConfig>, Refusal> {
        let agent_id = creds.agent_id();
        match creds {
            Credentials::CiJob { job_token, .. } => {
                let key = Cache::<()>::key(&["ci", job_token]);
                let answer = match self.inner.jobs.get(&key) {
                    Some(a) => a,
                    None => {
                        let a = Arc::new(self.inner.gitlab.allowed_agents_for_job(job_token).await);
                        self.inner.jobs.put(key, a.clone(), if a.is_ok() { cache::TTL } else { cache::ERROR_TTL });
                        a
                    }
                };
                let job = answer.as_ref().as_ref().map_err(|e| match e {
                    GitLabError::Unauthorized => refuse(StatusCode::UNAUTHORIZED, "CI job token is not valid"),
                    GitLabError::Forbidden => refuse(StatusCode::FORBIDDEN, "CI job is not allowed to use the agent"),
                    GitLabError::NotFound => refuse(StatusCode::NOT_FOUND, "CI job not found"),
                    GitLabError::Unavailable(m) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &format!("GitLab: {m}")),
                })?;
                let agent = job
                    .allowed_agents
                    .iter()
                    .find(|a| a.id == agent_id)
                    .ok_or_else(|| refuse(StatusCode::FORBIDDEN, "agentId is not allowed"))?;
                Ok(identity::for_ci_job(job, agent))
            }
            Credentials::Pat { token, .. } => {
                self.authorize_user(agent_id, AccessType::PersonalAccessToken, token, "").await
            }
            Credentials::Cookie { cookie, csrf_token, .. } => {
                self.authorize_user(agent_id, AccessType::SessionCookie, cookie, csrf_token).await
            }
        }
    }

    async fn authorize_user(
        &self,
        agent_id: i64,
        access_type: AccessType,
        key: &str,
        csrf: &str,
    ) -> Result<Option<ImpersonationConfig>, Refusal> {
        let cache_key = Cache::<()>::key(&[access_type.as_str(), &agent_id.to_string(), key, csrf]);
        let answer = match self.inner.users.get(&cache_key) {
            Some(a) => a,
            None => {
                let a = Arc::new(self.inner.gitlab.authorize_proxy_user(agent_id, access_type, key, csrf).await);
                self.inner.users.put(cache_key, a.clone(), if a.is_ok() { cache::TTL } else { cache::ERROR_TTL });
                a
            }
        };
        let auth = answer.as_ref().as_ref().map_err(|e| match e {
            GitLabError::Unavailable(m) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &format!("GitLab: {m}")),
            _ => refuse(StatusCode::UNAUTHORIZED, "user is not authorized to access the agent"),
        })?;
        Ok(identity::for_user(auth, access_type))
    }
}

/// The response of a 101 with an upgrade: a task pumps the call's events, Data into the body (until
/// the trailer) and UpgradeData into the upgraded connection.
fn upgrade_pump(
    mut stream: Responses,
    mut order: Checker,
    on_upgrade: Option<hyper::upgrade::OnUpgrade>,
    upgraded_tx: tokio::sync::oneshot::Sender<ReadHalf<TokioIo<hyper::upgrade::Upgraded>>>,
) -> ProxyBody {
    let (frames_tx, frames_rx) = mpsc::channel::<Result<Frame<Bytes>, Box<dyn std::error::Error + Send + Sync>>>(16);
    let (down_tx, mut down_rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        let mut frames_tx = Some(frames_tx);
        loop {
            let m = match stream.message().await {
                Ok(Some(m)) => m,
                Ok(None) => return,
                Err(s) => {
                    if let Some(tx) = &frames_tx {
                        let _ = tx.send(Err(format!("agent: {}", s.message()).into())).await;
                    }
                    return;
                }
            };
            let Some(m) = m.message else { return };
            let f = match &m {
                http_response::Message::Header(_) => 1,
                http_response::Message::Data(_) => 2,
                http_response::Message::Trailer(_) => 3,
                http_response::Message::UpgradeData(_) => 4,
            };
            if let Err(e) = order.accept(f) {
                if let Some(tx) = &frames_tx {
                    let _ = tx.send(Err(e.to_string().into())).await;
                }
                return;
            }
            match m {
                http_response::Message::Data(d) => {
                    if let Some(tx) = &frames_tx
                        && tx.send(Ok(Frame::data(Bytes::from(d.data)))).await.is_err()
                    {
                        return;
                    }
                }
                http_response::Message::Trailer(_) => frames_tx = None,
                http_response::Message::UpgradeData(d) => {
                    if down_tx.send(Bytes::from(d.data)).await.is_err() {
                        return;
                    }
                }
                http_response::Message::Header(_) => return,
            }
        }
    });
    if let Some(on_upgrade) = on_upgrade {
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else { return };
            let (rd, mut wr) = tokio::io::split(TokioIo::new(upgraded));
            let _ = upgraded_tx.send(rd);
            while let Some(b) = down_rx.recv().await {
                if wr.write_all(&b).await.is_err() {
                    return;
                }
            }
            let _ = wr.shutdown().await;
        });
    }
    StreamBody::new(ReceiverStream::new(frames_rx)).boxed_unsync()
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The response body of a call that did not upgrade: hyper polls the call's events directly. Same
/// outcomes as a pump task would give: Data messages become body chunks, an agent or tunnel failure
/// or a message out of order fails the body, the agent's trailer (or the call ending) ends it.
struct ResponseBody {
    /// `None` once the body has ended.
    events: Option<CallEvents>,
    order: Checker,
}

impl ResponseBody {
    fn fail(&mut self, e: BoxError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.events = None;
        Poll::Ready(Some(Err(e)))
    }

    fn end(&mut self) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.events = None;
        Poll::Ready(None)
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            let Some(events) = &mut this.events else { return Poll::Ready(None) };
            let m = match events.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return this.end(),
                Poll::Ready(Some(Err(s))) => return this.fail(format!("agent: {}", s.message()).into()),
                Poll::Ready(Some(Ok(CallEvent::Header(_) | CallEvent::Trailer(_)))) => continue,
                Poll::Ready(Some(Ok(CallEvent::Error(s)))) => {
                    let s = crate::grpc::status::from_proto(&s);
                    return this.fail(format!("agent: {}", s.message()).into());
                }
                Poll::Ready(Some(Ok(CallEvent::Message(m)))) => m,
            };
            let m = match <HttpResponse as prost::Message>::decode(m) {
                Ok(m) => m,
                Err(e) => return this.fail(format!("agent: HttpResponse: {e}").into()),
            };
            let Some(m) = m.message else { return this.end() };
            let f = match &m {
                http_response::Message::Header(_) => 1,
                http_response::Message::Data(_) => 2,
                http_response::Message::Trailer(_) => 3,
                http_response::Message::UpgradeData(_) => 4,
            };
            if let Err(e) = this.order.accept(f) {
                return this.fail(e.to_string().into());
            }
            match m {
                http_response::Message::Data(d) => return Poll::Ready(Some(Ok(Frame::data(Bytes::from(d.data))))),
                http_response::Message::Trailer(_) => {
                    // The body is complete. The rest of the call (the agent's gRPC trailer, then the
                    // end) is still drained, so that kas does not cancel a call that succeeded.
                    if let Some(events) = this.events.take() {
                        drain(events, cx);
                    }
                    return Poll::Ready(None);
                }
                // Not upgrading: upgrade bytes have nowhere to go, the call ends.
                http_response::Message::UpgradeData(_) | http_response::Message::Header(_) => return this.end(),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.events.is_none()
    }
}

/// Reads a finished response's remaining gRPC metadata events up to the end of the call: inline as far
/// as they are already there, in a task otherwise. Anything else ends the call.
fn drain(mut events: CallEvents, cx: &mut Context<'_>) {
    loop {
        match events.poll_recv(cx) {
            Poll::Ready(Some(Ok(CallEvent::Header(_) | CallEvent::Trailer(_)))) => {}
            Poll::Ready(_) => return,
            Poll::Pending => break,
        }
    }
    tokio::spawn(
        async move { while let Some(Ok(CallEvent::Header(_) | CallEvent::Trailer(_))) = events.recv().await {} },
    );
}

/// The full method name of `KubernetesApi/MakeRequest`.
const MAKE_REQUEST: &str = "/gitlab.agent.kubernetes_api.rpc.KubernetesApi/MakeRequest";

/// The agent's `HttpResponse` messages out of the call's events (what a tonic client's `Streaming`
/// would give): gRPC headers and trailers are skipped, an error status ends the stream.
struct Responses {
    events: CallEvents,
}

impl Responses {
    fn new(events: CallEvents) -> Self {
        Self { events }
    }

    async fn message(&mut self) -> Result<Option<HttpResponse>, Status> {
        loop {
            match self.events.recv().await {
                None => return Ok(None),
                Some(Err(s)) => return Err(s),
                Some(Ok(CallEvent::Header(_) | CallEvent::Trailer(_))) => {}
                Some(Ok(CallEvent::Error(s))) => return Err(crate::grpc::status::from_proto(&s)),
                Some(Ok(CallEvent::Message(m))) => {
                    return prost::Message::decode(m)
                        .map(Some)
                        .map_err(|e| Status::internal(format!("HttpResponse: {e}")));
                }
            }
        }
    }
}

fn bad_gateway(s: &Status) -> Refusal {
    refuse(StatusCode::BAD_GATEWAY, s.message())
}
