//! [`ApiServer`]: the request pipeline (authentication → impersonation →
//! authorization → handler), the audit log, and the HTTP/1.1 + HTTP/2
//! connection server.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::audit::{AuditDecision, AuditEvent, audit_id};
use crate::authn::{self, UserInfo};
use crate::impersonation::{self, ImpersonationError};
use crate::rbac::{self, AggregationMode};
use crate::request_info::{self, Query, RequestAttributes};
use crate::resources;
use crate::rest;
use crate::reviews::{self, Review};
use crate::status::ApiError;
use crate::store::Store;
use crate::token_request;
use crate::version::KubeVersion;
use crate::{BoxBody, bootstrap, discovery};

/// Largest request body accepted, as upstream's 3 MiB limit.
const MAX_BODY: usize = 3 * 1024 * 1024;
/// Default number of events kept for watches.
const DEFAULT_HISTORY: usize = 1000;

/// Errors loading fixtures or bootstrap objects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The YAML could not be parsed.
    #[error("invalid YAML: {0}")]
    Yaml(String),
    /// A document was not a JSON/YAML object.
    #[error("object is not a mapping")]
    NotAnObject,
    /// `apiVersion`/`kind` is not a modelled resource type.
    #[error("unsupported object type {api_version}/{kind}")]
    UnsupportedKind {
        /// The object's `apiVersion`.
        api_version: String,
        /// The object's `kind`.
        kind: String,
    },
    /// The store rejected the object; the message is the Status message.
    #[error("{0}")]
    Rejected(String),
}

/// Errors serving a connection.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// hyper reported a protocol or I/O error on the connection.
    #[error("connection error: {0}")]
    Connection(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// State shared by all clones of an [`ApiServer`] and its watch tasks.
pub(crate) struct Shared {
    version: KubeVersion,
    tokens: BTreeMap<String, UserInfo>,
    store: Mutex<Store>,
    changes: tokio::sync::watch::Sender<u64>,
    audit: Mutex<Vec<AuditEvent>>,
    next_audit_id: AtomicU64,
}

impl Shared {
    /// Locks the store; a poisoned lock is recovered, never a panic.
    pub fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs a write against the store and wakes watchers if it changed.
    pub fn mutate<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let (r, rv) = {
            let mut s = self.lock();
            let r = f(&mut s);
            (r, s.resource_version())
        };
        self.changes.send_if_modified(|v| {
            let changed = *v != rv;
            *v = rv;
            changed
        });
        r
    }

    /// A receiver that is notified on every store change.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

/// A model of the Kubernetes API server. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct ApiServer {
    shared: Arc<Shared>,
}

/// Configures an [`ApiServer`]; see [`ApiServer::builder`].
pub struct ApiServerBuilder {
    version: KubeVersion,
    tokens: BTreeMap<String, UserInfo>,
    aggregation: AggregationMode,
    objects: Vec<Value>,
    yaml: Vec<String>,
    history: usize,
}

impl ApiServerBuilder {
    /// Maps a bearer token to a user. The server appends
    /// `system:authenticated` to the user's groups on each request.
    pub fn token(mut self, token: impl Into<String>, user: UserInfo) -> Self {
        self.tokens.insert(token.into(), user);
        self
    }

    /// Chooses who fills aggregated ClusterRoles (default [`AggregationMode::Kind`]).
    pub fn aggregation(mut self, mode: AggregationMode) -> Self {
        self.aggregation = mode;
        self
    }

    /// Adds an object created at start-up, after the bootstrap policy.
    pub fn object(mut self, obj: Value) -> Self {
        self.objects.push(obj);
        self
    }

    /// Adds (possibly multi-document) YAML applied at start-up, after
    /// [`Self::object`]s.
    pub fn yaml(mut self, yaml: impl Into<String>) -> Self {
        self.yaml.push(yaml.into());
        self
    }

    /// How many events the watch history keeps (default 1000). Watches
    /// from a resourceVersion older than the window get 410 Gone.
    pub fn watch_history(mut self, events: usize) -> Self {
        self.history = events;
        self
    }

    /// Builds the server and loads bootstrap objects and fixtures.
    pub fn build(self) -> Result<ApiServer, LoadError> {
        let mut store = Store::new(self.aggregation, self.history);
        for (rt, obj) in bootstrap::objects() {
            store.create(rt, "", obj).map_err(|e| LoadError::Rejected(ApiError::from(e).message))?;
        }
        let rv = store.resource_version();
        let server = ApiServer {
            shared: Arc::new(Shared {
                version: self.version,
                tokens: self.tokens,
                store: Mutex::new(store),
                changes: tokio::sync::watch::Sender::new(rv),
                audit: Mutex::new(Vec::new()),
                next_audit_id: AtomicU64::new(0),
            }),
        };
        for obj in self.objects {
            server.create_object(obj)?;
        }
        for y in &self.yaml {
            server.apply_yaml(y)?;
        }
        Ok(server)
    }
}

fn classify(obj: &Value) -> Result<(&'static resources::ResourceType, String), LoadError> {
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or("").to_string();
    let (api_version, kind) = (s("/apiVersion"), s("/kind"));
    let rt = resources::by_kind(&api_version, &kind).ok_or(LoadError::UnsupportedKind { api_version, kind })?;
    let mut ns = s("/metadata/namespace");
    if rt.namespaced && ns.is_empty() {
        ns = "default".into();
    }
    Ok((rt, ns))
}

async fn read_body<B>(body: B) -> Result<Bytes, ApiError>
where
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::too_large(MAX_BODY)),
        Err(e) => Err(ApiError::bad_request(format!("unable to read request body: {e}"))),
    }
}

impl ApiServer {
    /// Starts configuring a server modelling Kubernetes `version`.
    pub fn builder(version: KubeVersion) -> ApiServerBuilder {
        ApiServerBuilder {
            version,
            tokens: BTreeMap::new(),
            aggregation: AggregationMode::default(),
            objects: Vec::new(),
            yaml: Vec::new(),
            history: DEFAULT_HISTORY,
        }
    }

    /// The modelled version.
    pub fn version(&self) -> KubeVersion {
        self.shared.version
    }

    /// Creates a plain Kubernetes object, bypassing authentication and
    /// authorization (for fixtures). Namespaced objects without a namespace
    /// go to `default`. Returns the stored object.
    pub fn create_object(&self, obj: Value) -> Result<Value, LoadError> {
        if !obj.is_object() {
            return Err(LoadError::NotAnObject);
        }
        let (rt, ns) = classify(&obj)?;
        self.shared.mutate(|s| s.create(rt, &ns, obj)).map_err(|e| LoadError::Rejected(ApiError::from(e).message))
    }

    /// Applies multi-document YAML (also `kind: List`): each object is
    /// created, or replaced if it exists, bypassing authorization.
    pub fn apply_yaml(&self, yaml: &str) -> Result<Vec<Value>, LoadError> {
        use serde::Deserialize;
        let mut docs = Vec::new();
        for doc in serde_yaml_ng::Deserializer::from_str(yaml) {
            let v = Value::deserialize(doc).map_err(|e| LoadError::Yaml(e.to_string()))?;
            match v {
                Value::Null => {}
                Value::Object(ref m) if m.get("kind").and_then(Value::as_str) == Some("List") => {
                    docs.extend(m.get("items").and_then(Value::as_array).cloned().unwrap_or_default());
                }
                v => docs.push(v),
            }
        }
        let mut out = Vec::new();
        for obj in docs {
            if !obj.is_object() {
                return Err(LoadError::NotAnObject);
            }
            let (rt, ns) = classify(&obj)?;
            let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
            let stored = self
                .shared
                .mutate(|s| {
                    if !name.is_empty() && s.get(rt, &ns, &name).is_ok() {
                        let mut obj = obj;
                        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                            m.remove("resourceVersion");
                        }
                        s.update(rt, &ns, &name, obj).map(|(o, _)| o)
                    } else {
                        s.create(rt, &ns, obj)
                    }
                })
                .map_err(|e| LoadError::Rejected(ApiError::from(e).message))?;
            out.push(stored);
        }
        Ok(out)
    }

    /// Every request seen so far, in completion order.
    pub fn audit(&self) -> Vec<AuditEvent> {
        self.shared.audit.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Serves one request in process. Never panics on input: every failure
    /// is a Kubernetes `Status` response.
    ///
    /// Must be polled inside a tokio runtime: a watch spawns the task that
    /// feeds its streaming body.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<BoxBody>
    where
        B: http_body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = req.into_parts();
        let query = request_info::parse_query(parts.uri.query());
        let attrs = request_info::resolve(&parts.method, parts.uri.path(), &query);
        let id = self.shared.next_audit_id.fetch_add(1, Ordering::Relaxed);
        let mut ev = AuditEvent {
            id,
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            query: parts.uri.query().map(str::to_string),
            user: None,
            impersonated_user: None,
            attributes: attrs.clone(),
            decision: AuditDecision::Unauthenticated,
            status: 0,
        };
        // The body is read before anything can fail, as Go's net/http drains unread request bodies
        // after a handler returns: an early 401/403 must not leave unread bytes that force the
        // server to close the connection under a client that is about to reuse it. A body error
        // still surfaces where the real server reports it (after authentication and authorization).
        let body = read_body(body).await;
        let mut resp = match self.process(&parts, &query, &attrs, body, &mut ev).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        };
        ev.status = resp.status().as_u16();
        if let Ok(v) = header::HeaderValue::from_str(&audit_id(id)) {
            resp.headers_mut().insert("audit-id", v);
        }
        tracing::debug!(
            method = %ev.method,
            path = %ev.path,
            status = ev.status,
            decision = ?ev.decision,
            "kube-apiserver request"
        );
        self.shared.audit.lock().unwrap_or_else(|e| e.into_inner()).push(ev);
        resp
    }

    async fn process(
        &self,
        parts: &http::request::Parts,
        query: &Query,
        attrs: &RequestAttributes,
        body: Result<Bytes, ApiError>,
        ev: &mut AuditEvent,
    ) -> Result<Response<BoxBody>, ApiError> {
        let shared = &self.shared;
        let user =
            authn::authenticate(&shared.tokens, &parts.headers, |t| token_request::authenticate(&mut shared.lock(), t))
                .map_err(|_| ApiError::unauthorized())?;
        ev.user = Some(user.clone());

        ev.decision = AuditDecision::ImpersonationRejected;
        let impersonated = {
            let store = shared.lock();
            impersonation::impersonate(&parts.headers, |a| {
                let d = rbac::authorize(&store, &user, a);
                (d.allowed, d.reason)
            })
        };
        let impersonated = match impersonated {
            Ok(i) => i,
            Err(ImpersonationError::Forbidden { attrs: a, reason }) => {
                ev.decision = AuditDecision::ImpersonationForbidden;
                return Err(forbidden(&user.username, &a, &reason));
            }
            Err(e) => return Err(ApiError::bad_request(e.to_string())),
        };
        ev.impersonated_user = impersonated.clone();
        let effective = impersonated.unwrap_or(user);

        let decision = rbac::authorize(&shared.lock(), &effective, attrs);
        if !decision.allowed {
            ev.decision = AuditDecision::Forbidden;
            return Err(forbidden(&effective.username, attrs, &decision.reason));
        }
        ev.decision = AuditDecision::Allowed;

        if !attrs.resource_request {
            return discovery::serve(shared.version, &parts.method, &parts.headers, &attrs.path);
        }
        let body = body?;
        if let Some(review) = Review::of(attrs) {
            if parts.method != Method::POST {
                return Err(ApiError::method_not_allowed());
            }
            let doc = if body.is_empty() {
                Value::Object(Default::default())
            } else {
                rest::decode_body(&parts.headers, &body)?
            };
            let out = reviews::serve(review, &shared.lock(), &effective, &doc)?;
            return Ok(rest::ok_json(StatusCode::CREATED, &out));
        }
        if token_request::is_token_request(attrs) {
            return token_request::serve(&mut shared.lock(), attrs, &parts.headers, &body);
        }
        rest::serve(shared, &parts.headers, attrs, query, &body)
    }

    /// Serves HTTP/1.1 and HTTP/2 (prior knowledge) on one connection until
    /// the peer closes it. Watch responses stream for as long as they run.
    pub async fn serve_connection<IO>(&self, io: IO) -> Result<(), ServeError>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let this = self.clone();
        let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let this = this.clone();
            async move { Ok::<_, Infallible>(this.handle(req).await) }
        });
        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(io), service)
            .await
            .map_err(ServeError::Connection)
    }
}

/// The 403 Status for a denied request, with the authorizer's reason.
fn forbidden(username: &str, a: &RequestAttributes, reason: &str) -> ApiError {
    let msg = rbac::forbidden_message(username, a);
    let err = if reason.is_empty() { msg } else { format!("{msg}: {reason}") };
    ApiError::forbidden(&a.resource, &a.api_group, &a.name, &err)
}
