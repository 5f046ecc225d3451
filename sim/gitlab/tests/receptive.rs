//! Receptive agents in the stand-in: URL configurations over the REST API (in-process), the rules
//! Rails enforces, the seeded Ed25519 keys, and kas's internal list.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use common::*;
use ed25519_dalek::SigningKey;
use http::{Method, Request};
use kasim_gitlab::{
    AgentId, GitLab, NewUrlConfiguration, ProjectId, Role, UrlConfigurationError, UrlConfigurationId, sign_kas_jwt,
};
use serde_json::{Value, json};

struct Fixture {
    gl: GitLab,
    project: ProjectId,
    agent: AgentId,
    maintainer: String,
    developer: String,
}

fn fixture() -> Fixture {
    let (gl, _) = gitlab();
    gl.set_receptive_agents_enabled(true);
    let g = gl.add_group(None, None, "infra").unwrap();
    let project = gl.add_project(None, g, "agents").unwrap();
    let agent = gl.add_agent(None, project, "prod").unwrap();
    let m = gl.add_user(None, "maint").unwrap();
    let d = gl.add_user(None, "dev").unwrap();
    gl.add_project_member(project, m, Role::Maintainer).unwrap();
    gl.add_project_member(project, d, Role::Developer).unwrap();
    let maintainer = gl.add_pat(m, &["api"]).unwrap();
    let developer = gl.add_pat(d, &["api"]).unwrap();
    Fixture { gl, project, agent, maintainer, developer }
}

fn call(gl: &GitLab, method: Method, path: &str, token: &str, body: Value) -> (u16, Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("private-token", token)
        .body(Bytes::from(if body.is_null() { String::new() } else { body.to_string() }))
        .unwrap();
    let resp = gl.handle(req);
    let json = if resp.body().is_empty() { Value::Null } else { serde_json::from_slice(resp.body()).unwrap() };
    (resp.status().as_u16(), json)
}

fn path(f: &Fixture) -> String {
    format!("/api/v4/projects/{}/cluster_agents/{}/url_configurations", f.project, f.agent)
}

#[test]
fn create_generates_a_key_pair_and_a_second_one_is_refused() {
    let f = fixture();
    let (status, json) =
        call(&f.gl, Method::POST, &path(&f), &f.maintainer, json!({"url": "grpcs://agentk.example:443"}));
    assert_eq!(status, 201, "{json}");
    assert_eq!(json["url"], "grpcs://agentk.example:443");
    assert_eq!(json["agent_id"], f.agent.0);
    assert_eq!(json["client_cert"], Value::Null);
    let public = STANDARD.decode(json["public_key"].as_str().unwrap()).unwrap();
    assert_eq!(public.len(), 32);
    assert!(f.gl.is_receptive(f.agent).unwrap());
    // kas's copy holds the private half of the same pair.
    let entry = f.gl.receptive_agents().pop().unwrap();
    let seed: [u8; 32] = STANDARD.decode(&entry.jwt.as_ref().unwrap().private_key).unwrap().try_into().unwrap();
    assert_eq!(SigningKey::from_bytes(&seed).verifying_key().to_bytes().to_vec(), public);
    assert!(entry.mtls.is_none());

    let (status, json) = call(&f.gl, Method::POST, &path(&f), &f.maintainer, json!({"url": "grpc://other:1"}));
    assert_eq!(
        (status, json),
        (400, json!({"message": "400 Bad request - URL configuration already exists for this agent"}))
    );
    assert_eq!(
        f.gl.create_url_configuration(
            None,
            f.agent,
            NewUrlConfiguration { url: "grpc://x:1".into(), ..Default::default() }
        ),
        Err(UrlConfigurationError::AlreadyExists)
    );
}

#[test]
fn keys_are_seeded_per_instance_and_configuration() {
    let key_of = |gl: &GitLab, agent| {
        gl.create_url_configuration(None, agent, NewUrlConfiguration { url: "grpc://a:1".into(), ..Default::default() })
            .unwrap()
            .public_key
            .unwrap()
    };
    let (a, b) = (fixture(), fixture());
    let ka = key_of(&a.gl, a.agent);
    assert_eq!(ka, key_of(&b.gl, b.agent), "same seed, same key");
    let second = a.gl.add_agent(None, a.project, "second").unwrap();
    assert_ne!(ka, key_of(&a.gl, second), "every configuration gets its own pair");
}

#[test]
fn mtls_and_jwt_never_mix() {
    let f = fixture();
    let mut both = json!({"url": "grpcs://a:443", "client_cert": "-----BEGIN CERTIFICATE-----"});
    let (status, json) = call(&f.gl, Method::POST, &path(&f), &f.maintainer, both.clone());
    assert_eq!((status, json), (400, json!({"message": "400 Bad request - Client cert must be blank"})));
    both["url"] = json!("https://a:443");
    let (_, json) = call(&f.gl, Method::POST, &path(&f), &f.maintainer, both);
    assert_eq!(
        json["message"],
        "400 Bad request - Url is blocked: Only allowed schemes are grpc, grpcs, Client cert must be blank"
    );
    let (status, json) =
        call(&f.gl, Method::POST, &path(&f), &f.maintainer, json!({"url": "grpcs://a:443", "client_key": "KEY"}));
    assert_eq!((status, json), (400, json!({"message": "400 Bad request - Client cert can't be blank"})));
    assert!(!f.gl.is_receptive(f.agent).unwrap(), "refusals store nothing");

    let (status, json) = call(
        &f.gl,
        Method::POST,
        &path(&f),
        &f.maintainer,
        json!({"url": "grpcs://a:443", "client_cert": "CERT", "client_key": "KEY", "tls_host": "a.internal"}),
    );
    assert_eq!(status, 201);
    assert_eq!((json["public_key"].clone(), json["client_cert"].clone()), (Value::Null, json!("CERT")));
    let entry = f.gl.receptive_agents().pop().unwrap();
    assert!(entry.jwt.is_none());
    assert_eq!(entry.mtls.unwrap().client_key, "KEY");
    assert_eq!(entry.tls_host.as_deref(), Some("a.internal"));
}

#[test]
fn delete_makes_it_a_normal_agent_again() {
    let f = fixture();
    let (_, created) = call(&f.gl, Method::POST, &path(&f), &f.maintainer, json!({"url": "grpc://a:1"}));
    let id = created["id"].as_i64().unwrap();
    let (status, _) = call(&f.gl, Method::DELETE, &format!("{}/{}", path(&f), id + 1), &f.maintainer, Value::Null);
    assert_eq!(status, 404, "wrong id");
    let (status, body) = call(&f.gl, Method::DELETE, &format!("{}/{id}", path(&f)), &f.developer, Value::Null);
    assert_eq!((status, body), (403, json!({"message": "403 Forbidden"})));
    let (status, body) = call(&f.gl, Method::DELETE, &format!("{}/{id}", path(&f)), &f.maintainer, Value::Null);
    assert_eq!((status, body), (204, Value::Null));
    assert!(!f.gl.is_receptive(f.agent).unwrap());
    assert!(f.gl.receptive_agents().is_empty());
    let (status, list) = call(&f.gl, Method::GET, &path(&f), &f.maintainer, Value::Null);
    assert_eq!((status, list), (200, json!([])));
    // And it may become receptive again.
    let (status, _) = call(&f.gl, Method::POST, &path(&f), &f.maintainer, json!({"url": "grpc://a:1"}));
    assert_eq!(status, 201);
    assert_eq!(f.gl.url_configuration(f.agent).unwrap().unwrap().id, UrlConfigurationId(id + 1));
}

#[test]
fn permissions_setting_and_routing() {
    let f = fixture();
    let (status, json) = call(&f.gl, Method::POST, &path(&f), &f.developer, json!({"url": "grpc://a:1"}));
    assert_eq!((status, json), (403, json!({"message": "403 Forbidden"})));
    assert_eq!(
        f.gl.create_url_configuration(
            Some(kasim_gitlab::UserId(2)),
            f.agent,
            NewUrlConfiguration { url: "grpc://a:1".into(), ..Default::default() }
        )
        .unwrap_err()
        .to_string(),
        "You have insufficient permissions to create an url configuration for this agent"
    );
    let (status, _) = call(&f.gl, Method::POST, &path(&f), "glpat-nope", json!({"url": "grpc://a:1"}));
    assert_eq!(status, 401);
    let wrong_project = format!("/api/v4/projects/{}/cluster_agents/{}/url_configurations", f.project.0 + 1, f.agent);
    assert_eq!(call(&f.gl, Method::POST, &wrong_project, &f.maintainer, json!({"url": "grpc://a:1"})).0, 404);
    f.gl.set_receptive_agents_enabled(false);
    let (status, _) = call(&f.gl, Method::POST, &path(&f), &f.maintainer, json!({"url": "grpc://a:1"}));
    assert_eq!(status, 404);
    assert_eq!(
        f.gl.create_url_configuration(
            None,
            f.agent,
            NewUrlConfiguration { url: "grpc://a:1".into(), ..Default::default() }
        )
        .unwrap_err()
        .to_string(),
        "Receptive agents are disabled for this GitLab instance"
    );
}

#[test]
fn kas_lists_receptive_agents_with_its_jwt_only() {
    let f = fixture();
    let normal = f.gl.add_agent(None, f.project, "normal").unwrap();
    let _ = normal;
    call(&f.gl, Method::POST, &path(&f), &f.maintainer, json!({"url": "grpc://agentk:8080", "tls_host": ""}));
    let list = |jwt: Option<String>| {
        let mut req = Request::get("/api/v4/internal/kubernetes/receptive_agents");
        if let Some(j) = jwt {
            req = req.header("gitlab-kas-api-request", j);
        }
        let resp = f.gl.handle(req.body(Bytes::new()).unwrap());
        (resp.status().as_u16(), serde_json::from_slice::<Value>(resp.body()).unwrap())
    };
    assert_eq!(list(None).0, 401);
    assert_eq!(list(Some(sign_kas_jwt(b"wrong secret", NOW))).0, 401);
    let (status, body) = list(Some(sign_kas_jwt(SECRET, NOW)));
    assert_eq!(status, 200);
    let agents = body["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 1, "only the receptive agent: {body}");
    assert_eq!(agents[0]["agent_id"], f.agent.0);
    assert_eq!(agents[0]["url"], "grpc://agentk:8080");
    assert_eq!(agents[0]["tls_host"], Value::Null, "blank is stored as absent");
    assert_eq!(STANDARD.decode(agents[0]["jwt"]["private_key"].as_str().unwrap()).unwrap().len(), 32);
    assert!(agents[0].get("mtls").is_none());
}
