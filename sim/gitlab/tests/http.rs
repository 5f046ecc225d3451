//! The HTTP API over real TCP on 127.0.0.1 with hyper's client.

mod common;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use kasim_gitlab::{Clock, GitLab, JobEnvironment, NewJob, Role, sign_hs256, sign_kas_jwt, verify_kas_jwt};
use serde_json::{Value, json};

struct Server {
    base: String,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

async fn serve(gl: &GitLab) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let gl = gl.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let gl = gl.clone();
            tokio::spawn(async move {
                let _ = gl.serve_connection(stream).await;
            });
        }
    });
    Server { base: format!("http://{addr}"), client: Client::builder(TokioExecutor::new()).build_http() }
}

impl Server {
    async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)], body: &str) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self.client.request(req.body(Full::new(Bytes::from(body.to_owned()))).unwrap()).await.unwrap();
        let status = resp.status();
        assert_eq!(resp.headers()["content-type"], "application/json");
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }
}

fn unauthorized() -> (StatusCode, Value) {
    (StatusCode::UNAUTHORIZED, json!({"message": "401 Unauthorized"}))
}

const AGENT_INFO: &str = "/api/v4/internal/kubernetes/agent_info";
const ALLOWED_AGENTS: &str = "/api/v4/job/allowed_agents";
const AUTHZ_USER: &str = "/api/v4/internal/kubernetes/authorize_proxy_user";

struct World {
    gl: GitLab,
    clock: kasim_gitlab::ManualClock,
    agent_token: String,
    job_token: String,
    pat: String,
}

fn world() -> World {
    let (gl, clock) = common::gitlab();
    let g = gl.add_group(None, None, "g").unwrap();
    let p = gl.add_project(None, g, "p").unwrap();
    let agent = gl.add_agent(None, p, "a").unwrap();
    gl.set_file(p, ".gitlab/agents/a/config.yaml", "user_access:\n  projects: [{id: g/p}]\n").unwrap();
    let agent_token = gl.create_agent_token(agent).unwrap();
    let u = gl.add_user(None, "alice").unwrap();
    gl.add_project_member(p, u, Role::Developer).unwrap();
    let pat = gl.add_pat(u, &["k8s_proxy"]).unwrap();
    let (_, job_token) = gl
        .add_job(NewJob {
            id: None,
            project: p,
            pipeline_id: 9,
            user: u,
            environment: None,
            ref_protected: false,
            token: None,
        })
        .unwrap();
    World { gl, clock, agent_token, job_token, pat }
}

#[tokio::test]
async fn agent_info_needs_a_valid_kas_jwt_and_an_active_agent_token() {
    let w = world();
    let s = serve(&w.gl).await;
    let jwt = sign_kas_jwt(common::SECRET, common::NOW);
    let bearer = format!("Bearer {}", w.agent_token);

    let (status, body) =
        s.send(Method::GET, AGENT_INFO, &[("Authorization", &bearer), ("Gitlab-Kas-Api-Request", &jwt)], "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["agent_name"], "a");
    assert_eq!(body["project_id"], 1);
    assert_eq!(body["default_branch"], "main");
    assert_eq!(body["gitaly_repository"]["gl_project_path"], "g/p");

    let expired = sign_kas_jwt(common::SECRET, common::NOW - 30);
    let wrong_secret = sign_kas_jwt(b"not the secret", common::NOW);
    let claims = |iss: &str, aud: &str| json!({"iss": iss, "aud": aud, "exp": common::NOW + 30});
    let wrong_aud = sign_hs256(common::SECRET, &claims("gitlab-kas", "gitlab-kas"));
    let wrong_iss = sign_hs256(common::SECRET, &claims("gitlab", "gitlab"));
    for bad in [expired.as_str(), &wrong_secret, &wrong_aud, &wrong_iss, "garbage"] {
        let r =
            s.send(Method::GET, AGENT_INFO, &[("Authorization", &bearer), ("Gitlab-Kas-Api-Request", bad)], "").await;
        assert_eq!(r, unauthorized(), "jwt {bad}");
    }
    let r = s.send(Method::GET, AGENT_INFO, &[("Authorization", &bearer)], "").await;
    assert_eq!(r, unauthorized(), "missing jwt");
    let r = s
        .send(
            Method::GET,
            AGENT_INFO,
            &[("Authorization", "Bearer glagent-nope"), ("Gitlab-Kas-Api-Request", &jwt)],
            "",
        )
        .await;
    assert_eq!(r, unauthorized(), "unknown agent token");
    let r = s.send(Method::GET, AGENT_INFO, &[("Gitlab-Kas-Api-Request", &jwt)], "").await;
    assert_eq!(r, unauthorized(), "missing agent token");

    // The clock is the injected one: a token good now fails 30s later.
    w.clock.advance(30);
    let r = s.send(Method::GET, AGENT_INFO, &[("Authorization", &bearer), ("Gitlab-Kas-Api-Request", &jwt)], "").await;
    assert_eq!(r, unauthorized(), "expired by the virtual clock");
    let fresh = sign_kas_jwt(common::SECRET, common::NOW + 30);
    assert_eq!(verify_kas_jwt(common::SECRET, &fresh, w.clock.now_unix()), Ok(()));

    // Revocation takes effect immediately.
    w.gl.revoke_agent_token(&w.agent_token).unwrap();
    let r =
        s.send(Method::GET, AGENT_INFO, &[("Authorization", &bearer), ("Gitlab-Kas-Api-Request", &fresh)], "").await;
    assert_eq!(r, unauthorized(), "revoked");
}

#[tokio::test]
async fn allowed_agents_uses_the_job_token_only() {
    let w = world();
    let s = serve(&w.gl).await;
    let (status, body) = s.send(Method::GET, ALLOWED_AGENTS, &[("Job-Token", &w.job_token)], "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({
            "allowed_agents": [{"id": 1, "config_project": {"id": 1}, "configuration": {}}],
            "job": {"id": 1},
            "pipeline": {"id": 9},
            "project": {"id": 1, "groups": [{"id": 1}]},
            "user": {"id": 1, "username": "alice", "roles_in_project": ["developer"]},
        })
    );
    let r = s.send(Method::GET, ALLOWED_AGENTS, &[("Job-Token", "glcbt-unknown")], "").await;
    assert_eq!(r, unauthorized());
    let r = s.send(Method::GET, ALLOWED_AGENTS, &[], "").await;
    assert_eq!(r, unauthorized());
}

#[tokio::test]
async fn allowed_agents_answers_500_for_a_broken_environment_pattern() {
    let (gl, _) = common::gitlab();
    let g = gl.add_group(None, None, "g").unwrap();
    let p = gl.add_project(None, g, "p").unwrap();
    gl.add_agent(None, p, "a").unwrap();
    gl.set_file(
        p,
        ".gitlab/agents/a/config.yaml",
        "ci_access:\n  projects:\n    - id: g/p\n      environments: ['a(*']\n",
    )
    .unwrap();
    let u = gl.add_user(None, "u").unwrap();
    let (_, token) = gl
        .add_job(NewJob {
            id: None,
            project: p,
            pipeline_id: 1,
            user: u,
            environment: Some(JobEnvironment { name: "prod".into(), slug: "prod".into(), tier: "production".into() }),
            ref_protected: false,
            token: None,
        })
        .unwrap();
    let s = serve(&gl).await;
    let r = s.send(Method::GET, ALLOWED_AGENTS, &[("Job-Token", &token)], "").await;
    assert_eq!(r, (StatusCode::INTERNAL_SERVER_ERROR, json!({"message": "500 Internal Server Error"})));
}

#[tokio::test]
async fn authorize_proxy_user_over_http() {
    let w = world();
    let s = serve(&w.gl).await;
    let jwt = sign_kas_jwt(common::SECRET, common::NOW);
    let hdrs = [("Gitlab-Kas-Api-Request", jwt.as_str()), ("Content-Type", "application/json")];
    let body = |agent: i64, key: &str| {
        json!({"agent_id": agent, "access_type": "personal_access_token", "access_key": key}).to_string()
    };
    let (status, resp) = s.send(Method::POST, AUTHZ_USER, &hdrs, &body(1, &w.pat)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        resp,
        json!({
            "agent": {"id": 1, "config_project": {"id": 1}},
            "user": {"id": 1, "username": "alice"},
            "access_as": {"agent": {}},
        })
    );
    assert_eq!(s.send(Method::POST, AUTHZ_USER, &hdrs, &body(1, "glpat-wrong")).await, unauthorized());
    assert_eq!(
        s.send(Method::POST, AUTHZ_USER, &hdrs, &body(99, &w.pat)).await,
        (StatusCode::NOT_FOUND, json!({"message": "404 Agent Not Found"}))
    );
    assert_eq!(s.send(Method::POST, AUTHZ_USER, &[], &body(1, &w.pat)).await, unauthorized(), "JWT required");
    assert_eq!(
        s.send(Method::POST, AUTHZ_USER, &hdrs, r#"{"agent_id": 1}"#).await,
        (StatusCode::BAD_REQUEST, json!({"error": "access_type is missing, access_key is missing"}))
    );
    assert_eq!(
        s.send(Method::POST, AUTHZ_USER, &hdrs, r#"{"agent_id": 1, "access_type": "oauth", "access_key": "x"}"#).await,
        (StatusCode::BAD_REQUEST, json!({"error": "access_type does not have a valid value"}))
    );
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let w = world();
    let s = serve(&w.gl).await;
    assert_eq!(
        s.send(Method::GET, "/api/v4/nope", &[], "").await,
        (StatusCode::NOT_FOUND, json!({"error": "404 Not Found"}))
    );
    assert_eq!(
        s.send(Method::POST, ALLOWED_AGENTS, &[], "").await,
        (StatusCode::METHOD_NOT_ALLOWED, json!({"error": "405 Not Allowed"}))
    );
}
