//! The Rails API over HTTP: an in-process [`GitLab::handle`] and a hyper
//! server for any byte stream ([`GitLab::serve_connection`]).
//!
//! Errors use Rails/Grape bodies: `{"message":"401 Unauthorized"}` for
//! `unauthorized!`-style refusals, `{"error":"..."}` for parameter
//! validation and unknown routes.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::jwt::verify_kas_jwt;
use crate::model::{AgentId, GitLab};
use crate::user_access::{AccessType, UserAccessError};

/// Header carrying kas' JWT.
pub const KAS_JWT_HEADER: &str = "gitlab-kas-api-request";
/// Alternative header for the agent token accepted by Rails.
pub const AGENTK_TOKEN_HEADER: &str = "gitlab-agentk-api-request";
/// Header carrying the CI job token.
pub const JOB_TOKEN_HEADER: &str = "job-token";
/// Largest request body read, in bytes.
pub const MAX_BODY_BYTES: usize = 1 << 20;

const AGENT_INFO_PATH: &str = "/api/v4/internal/kubernetes/agent_info";
const ALLOWED_AGENTS_PATH: &str = "/api/v4/job/allowed_agents";
const AUTHORIZE_PROXY_USER_PATH: &str = "/api/v4/internal/kubernetes/authorize_proxy_user";
/// kas's list of receptive agents (kasim's endpoint; the upstream one is unconfirmed).
pub const RECEPTIVE_AGENTS_PATH: &str = "/api/v4/internal/kubernetes/receptive_agents";
/// Header carrying a personal access token on the public REST API.
pub const PRIVATE_TOKEN_HEADER: &str = "private-token";

/// A connection-level failure of the HTTP server.
#[derive(Debug, thiserror::Error)]
#[error("http connection error: {0}")]
pub struct HttpError(String);

fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response<Bytes> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(Bytes::from(bytes));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    resp
}

fn message(status: StatusCode, msg: &str) -> Response<Bytes> {
    json_response(status, &serde_json::json!({ "message": msg }))
}

fn unauthorized() -> Response<Bytes> {
    message(StatusCode::UNAUTHORIZED, "401 Unauthorized")
}

fn bad_request(error: &str) -> Response<Bytes> {
    json_response(StatusCode::BAD_REQUEST, &serde_json::json!({ "error": error }))
}

fn internal_error() -> Response<Bytes> {
    message(StatusCode::INTERNAL_SERVER_ERROR, "500 Internal Server Error")
}

fn header_str<'a>(req: &'a Request<Bytes>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

impl GitLab {
    /// Answers one request in-process (no sockets involved).
    pub fn handle(&self, req: Request<Bytes>) -> Response<Bytes> {
        let path = req.uri().path();
        if path == RECEPTIVE_AGENTS_PATH {
            if req.method() != Method::GET {
                return json_response(
                    StatusCode::METHOD_NOT_ALLOWED,
                    &serde_json::json!({ "error": "405 Not Allowed" }),
                );
            }
            return self.handle_receptive_agents(&req);
        }
        if let Some(resp) = self.handle_url_configurations(&req) {
            return resp;
        }
        let route = [AGENT_INFO_PATH, ALLOWED_AGENTS_PATH, AUTHORIZE_PROXY_USER_PATH].into_iter().find(|p| *p == path);
        let Some(route) = route else {
            return json_response(StatusCode::NOT_FOUND, &serde_json::json!({ "error": "404 Not Found" }));
        };
        let want = if route == AUTHORIZE_PROXY_USER_PATH { Method::POST } else { Method::GET };
        if req.method() != want {
            return json_response(StatusCode::METHOD_NOT_ALLOWED, &serde_json::json!({ "error": "405 Not Allowed" }));
        }
        match route {
            AGENT_INFO_PATH => self.handle_agent_info(&req),
            ALLOWED_AGENTS_PATH => self.handle_allowed_agents(&req),
            _ => self.handle_authorize_proxy_user(&req),
        }
    }

    fn kas_jwt_ok(&self, req: &Request<Bytes>) -> bool {
        header_str(req, KAS_JWT_HEADER)
            .is_some_and(|jwt| verify_kas_jwt(&self.settings().kas_jwt_secret, jwt, self.now_unix()).is_ok())
    }

    fn handle_agent_info(&self, req: &Request<Bytes>) -> Response<Bytes> {
        if !self.kas_jwt_ok(req) {
            return unauthorized();
        }
        let token = header_str(req, header::AUTHORIZATION.as_str())
            .and_then(|v| v.strip_prefix("Bearer "))
            .or_else(|| header_str(req, AGENTK_TOKEN_HEADER));
        let Some(token) = token else {
            return unauthorized();
        };
        match self.agent_info(token.trim()) {
            Ok(info) => json_response(StatusCode::OK, &info),
            Err(_) => unauthorized(),
        }
    }

    fn handle_allowed_agents(&self, req: &Request<Bytes>) -> Response<Bytes> {
        let Some(token) = header_str(req, JOB_TOKEN_HEADER) else {
            return unauthorized();
        };
        match self.allowed_agents_for_job(token) {
            Ok(body) => json_response(StatusCode::OK, &body),
            Err(crate::ci_access::CiAccessError::UnknownJobToken) => unauthorized(),
            Err(e) => {
                tracing::warn!(error = %e, "allowed_agents failed");
                internal_error()
            }
        }
    }

    fn handle_authorize_proxy_user(&self, req: &Request<Bytes>) -> Response<Bytes> {
        if !self.kas_jwt_ok(req) {
            return unauthorized();
        }
        let body: serde_json::Value = match serde_json::from_slice(req.body()) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            _ => {
                return bad_request("agent_id is missing, access_type is missing, access_key is missing");
            }
        };
        let mut missing = Vec::new();
        let agent_id = match body.get("agent_id") {
            None | Some(serde_json::Value::Null) => {
                missing.push("agent_id is missing");
                None
            }
            // Grape coerces numeric strings to Integer.
            Some(v) => match v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())) {
                Some(id) => Some(id),
                None => return bad_request("agent_id is invalid"),
            },
        };
        let access_type = body.get("access_type").and_then(|v| v.as_str());
        let access_key = body.get("access_key").and_then(|v| v.as_str());
        if access_type.is_none() {
            missing.push("access_type is missing");
        }
        if access_key.is_none() {
            missing.push("access_key is missing");
        }
        let (Some(agent_id), Some(access_type), Some(access_key)) = (agent_id, access_type, access_key) else {
            return bad_request(&missing.join(", "));
        };
        let Some(access_type) = AccessType::parse(access_type) else {
            return bad_request("access_type does not have a valid value");
        };
        let csrf = body.get("csrf_token").and_then(|v| v.as_str()).unwrap_or("");
        match self.authorize_proxy_user(AgentId(agent_id), access_type, access_key, csrf) {
            Ok(resp) => json_response(StatusCode::OK, &resp),
            Err(UserAccessError::Unauthorized) => unauthorized(),
            Err(UserAccessError::AgentNotFound) => message(StatusCode::NOT_FOUND, "404 Agent Not Found"),
            Err(UserAccessError::Forbidden) => message(StatusCode::FORBIDDEN, "403 Forbidden"),
        }
    }

    /// Serves HTTP/1.1 or HTTP/2 on one connection until it closes. The
    /// caller supplies the stream (TCP, turmoil, in-memory duplex...), so this
    /// crate never opens sockets itself.
    pub async fn serve_connection<IO>(&self, io: IO) -> Result<(), HttpError>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let gitlab = self.clone();
        let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let gitlab = gitlab.clone();
            async move {
                let (parts, body) = req.into_parts();
                let resp = match Limited::new(body, MAX_BODY_BYTES).collect().await {
                    Ok(collected) => gitlab.handle(Request::from_parts(parts, collected.to_bytes())),
                    Err(_) => message(StatusCode::PAYLOAD_TOO_LARGE, "413 Request Entity Too Large"),
                };
                Ok::<_, std::convert::Infallible>(resp.map(Full::new))
            }
        });
        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(io), service)
            .await
            .map_err(|e| HttpError(e.to_string()))
    }
}

/// `/api/v4/projects/:id/cluster_agents/:agent_id/url_configurations[/:url_configuration_id]`
/// split into its ids; `None` when the path is something else.
fn url_configurations_route(path: &str) -> Option<(&str, &str, Option<&str>)> {
    let rest = path.strip_prefix("/api/v4/projects/")?;
    let mut parts = rest.split('/');
    let project = parts.next()?;
    if parts.next()? != "cluster_agents" {
        return None;
    }
    let agent = parts.next()?;
    if parts.next()? != "url_configurations" {
        return None;
    }
    let id = parts.next();
    if parts.next().is_some() || id == Some("") {
        return None;
    }
    Some((project, agent, id))
}

impl GitLab {
    fn handle_receptive_agents(&self, req: &Request<Bytes>) -> Response<Bytes> {
        if !self.kas_jwt_ok(req) {
            return unauthorized();
        }
        json_response(StatusCode::OK, &serde_json::json!({ "agents": self.receptive_agents() }))
    }

    /// The user of a valid `PRIVATE-TOKEN` with the `api` scope.
    fn pat_user(&self, req: &Request<Bytes>) -> Option<crate::model::UserId> {
        let token = header_str(req, PRIVATE_TOKEN_HEADER)?;
        let st = self.lock();
        let pat = st.pats.get(token).filter(|p| !p.revoked && p.scopes.iter().any(|s| s == "api"))?;
        Some(pat.user)
    }

    fn handle_url_configurations(&self, req: &Request<Bytes>) -> Option<Response<Bytes>> {
        use crate::url_configuration::{NewUrlConfiguration, UrlConfigurationError as E, UrlConfigurationId};
        let (project, agent, id) = url_configurations_route(req.uri().path())?;
        let Some(user) = self.pat_user(req) else {
            return Some(unauthorized());
        };
        let not_found = |what: &str| message(StatusCode::NOT_FOUND, &format!("404 {what} Not Found"));
        let (Ok(project), Ok(agent)) = (project.parse::<i64>(), agent.parse::<i64>()) else {
            return Some(not_found("Agent"));
        };
        let agent = AgentId(agent);
        if self.agent_project(agent).map(|p| p.0) != Ok(project) {
            return Some(not_found("Agent"));
        }
        let error = |e: E| match e {
            E::Disabled => json_response(StatusCode::NOT_FOUND, &serde_json::json!({ "error": "404 Not Found" })),
            E::Forbidden => message(StatusCode::FORBIDDEN, "403 Forbidden"),
            E::NotFound(_) => not_found("URL configuration"),
            E::Model(_) => not_found("Agent"),
            e @ (E::AlreadyExists | E::Invalid(_)) => {
                message(StatusCode::BAD_REQUEST, &format!("400 Bad request - {e}"))
            }
        };
        let resp = match (req.method().clone(), id) {
            (Method::POST, None) => {
                let new: NewUrlConfiguration = match serde_json::from_slice(req.body()) {
                    Ok(n) => n,
                    Err(_) => return Some(bad_request("url is missing")),
                };
                match self.create_url_configuration(Some(user), agent, new) {
                    Ok(c) => json_response(StatusCode::CREATED, &c),
                    Err(e) => error(e),
                }
            }
            (Method::GET, None) => match self.url_configuration(agent) {
                Ok(c) => json_response(StatusCode::OK, &c.into_iter().collect::<Vec<_>>()),
                Err(e) => error(e.into()),
            },
            (Method::DELETE, Some(id)) => {
                let Ok(id) = id.parse::<i64>() else {
                    return Some(not_found("URL configuration"));
                };
                match self.delete_url_configuration(Some(user), agent, UrlConfigurationId(id)) {
                    Ok(()) => {
                        let mut r = Response::new(Bytes::new());
                        *r.status_mut() = StatusCode::NO_CONTENT;
                        r
                    }
                    Err(e) => error(e),
                }
            }
            _ => json_response(StatusCode::METHOD_NOT_ALLOWED, &serde_json::json!({ "error": "405 Not Allowed" })),
        };
        Some(resp)
    }
}
