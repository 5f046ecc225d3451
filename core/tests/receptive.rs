//! Receptive agents: kas finds them by polling the GitLab stand-in, dials them and routes calls to
//! them through the same `Router` as tunnelled agents. In-memory transport, virtual time; the last
//! test runs on loopback TCP with TLS.

#[path = "common/receptive_world.rs"]
mod world;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use futures_util::StreamExt;
use kasim_core::agentk::receptive::{Claims, DESCRIBE_METHOD, DescribeRequest, DescribeResponse};
use kasim_core::clock::Clock as _;
use kasim_core::kas::receptive::{sign_claims, sign_jwt};
use kasim_core::kas::router::NO_TUNNEL_MESSAGE;
use kasim_core::proto::grpctool::test::Request;
use kasim_core::proto::grpctool::test::testing_client::TestingClient;
use kasim_core::transport::grpc_channel;
use tonic::Code;
use world::*;

async fn ping(w: &World, agent: i64, s1: &str) -> Result<String, tonic::Status> {
    let mut c = TestingClient::new(w.kas.router().channel(agent));
    Ok(c.request_response(Request { s1: s1.into(), payload: vec![] }).await?.into_inner().s1)
}

fn private_key(w: &World, agent: i64) -> [u8; 32] {
    let entry = w.gl.receptive_agents().into_iter().find(|a| a.agent_id == agent).unwrap();
    let b = base64::engine::general_purpose::STANDARD.decode(entry.jwt.unwrap().private_key).unwrap();
    b.try_into().unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_receptive_agent_serves_forwarded_calls_like_a_tunnelled_one() {
    let w = World::new().await;
    let agent = w.agent("receptive");
    let cfg = w.make_receptive(agent, "grpc://agentk-1:8080").await;
    let _a = w.receptive_agentk(
        "agentk-1:8080",
        cfg["public_key"].as_str().unwrap(),
        Some(agent.0),
        "v18.6.0",
        testing_services(),
    );
    eventually(POLL * 2, || w.receptive.connected().contains_key(&agent.0)).await;
    assert_eq!(w.receptive.connected()[&agent.0].version, "v18.6.0");
    assert_eq!(w.kas.registry().stats(agent.0).connected, 1, "counted like a connected agent");
    assert_eq!(w.net.dial_count("agentk-1:8080"), 1, "kas dialled the agent (and agentk never dialled kas)");

    let mut c = TestingClient::new(w.kas.router().channel(agent.0));
    let mut req = tonic::Request::new(Request { s1: "hello".into(), payload: vec![1, 2, 3] });
    req.metadata_mut().insert("x-echo", "meta".parse().unwrap());
    let resp = c.request_response(req).await.unwrap();
    assert_eq!(resp.metadata().get("x-echo").unwrap(), "meta");
    assert_eq!(resp.into_inner().payload, vec![1, 2, 3]);

    let err = c.request_response(Request { s1: "error:5:no such thing".into(), payload: vec![] }).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::NotFound, "no such thing"));
    let details: kasim_core::proto::google::rpc::Status = prost::Message::decode(err.details()).unwrap();
    assert_eq!(details.details[0].value, b"no such thing");

    let reqs = tokio_stream::iter((0..5).map(|i| Request { s1: format!("m{i}"), payload: vec![i; 100] }));
    let mut stream = c.streaming_request_response(reqs).await.unwrap().into_inner();
    let mut got = vec![];
    while let Some(m) = stream.next().await {
        let m = m.unwrap();
        got.push((m.s1, m.seq));
    }
    assert_eq!(got, (0..5).map(|i| (format!("m{i}"), i64::from(i) + 1)).collect::<Vec<_>>());

    // Concurrent calls share the agent's connection.
    let calls =
        (0..8).map(|i| {
            let mut c = c.clone();
            async move {
                c.request_response(Request { s1: format!("c{i}"), payload: vec![] }).await.unwrap().into_inner().s1
            }
        });
    let got = futures_util::future::join_all(calls).await;
    assert_eq!(got, (0..8).map(|i| format!("c{i}")).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn a_normal_and_a_receptive_agent_side_by_side() {
    let w = World::new().await;
    let normal = w.agent("normal");
    let receptive = w.agent("receptive");
    let cfg = w.make_receptive(receptive, "grpc://agentk-r:8080").await;
    let _r =
        w.receptive_agentk("agentk-r:8080", cfg["public_key"].as_str().unwrap(), None, "v18.6.0", testing_services());
    let _n = w.normal_agentk(normal, testing_services());
    eventually(POLL * 2, || w.receptive.connected().contains_key(&receptive.0)).await;
    for i in 0..3 {
        assert_eq!(ping(&w, normal.0, &format!("n{i}")).await.unwrap(), format!("n{i}"));
        assert_eq!(ping(&w, receptive.0, &format!("r{i}")).await.unwrap(), format!("r{i}"));
    }
    assert_eq!(w.receptive.connected().keys().copied().collect::<Vec<_>>(), vec![receptive.0]);
    assert!(!w.gl.is_receptive(normal).unwrap());
    assert!(w.gl.is_receptive(receptive).unwrap());
    assert_eq!(w.net.dial_count("agentk-r:8080"), 1);
}

/// Calls the agent's listener directly with a chosen `authorization` header.
async fn describe_with(w: &World, target: &str, auth: Option<String>) -> Result<DescribeResponse, tonic::Status> {
    let channel = grpc_channel(Arc::new(w.net.connector()), target, |e| e).unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let mut req = tonic::Request::new(DescribeRequest {});
    if let Some(a) = auth {
        req.metadata_mut().insert("authorization", format!("Bearer {a}").parse().unwrap());
    }
    let codec = tonic_prost::ProstCodec::<DescribeRequest, DescribeResponse>::default();
    Ok(grpc.unary(req, http::uri::PathAndQuery::from_static(DESCRIBE_METHOD), codec).await?.into_inner())
}

#[tokio::test(start_paused = true)]
async fn each_jwt_failure_is_refused_with_its_reason() {
    let w = World::new().await;
    let agent = w.agent("receptive");
    let cfg = w.make_receptive(agent, "grpc://agentk-1:8080").await;
    let _a = w.receptive_agentk(
        "agentk-1:8080",
        cfg["public_key"].as_str().unwrap(),
        Some(agent.0),
        "v18.6.0",
        testing_services(),
    );
    let key = private_key(&w, agent.0);
    let now = w.clock.unix_seconds();
    let claims = |aud: &str, iat: i64, agent_id: i64| Claims {
        iss: "gitlab-kas".into(),
        aud: aud.into(),
        agent_id,
        iat,
        nbf: iat - 5,
        exp: iat + 30,
    };
    // The right token works: refusals below are about the token, not the channel.
    let ok = describe_with(&w, "agentk-1:8080", Some(sign_jwt(&key, agent.0, now))).await.unwrap();
    assert_eq!(ok.agent_meta.unwrap().version, "v18.6.0");
    let cases = [
        (
            Some(sign_jwt(&[9; 32], agent.0, now)),
            "receptive agent: JWT signature does not verify with the configured public key".to_owned(),
        ),
        (
            Some(sign_claims(&key, &claims("gitlab-agent", now - 60, agent.0))),
            format!("receptive agent: JWT expired at {}, now is {now}", now - 30),
        ),
        (
            Some(sign_claims(&key, &claims("gitlab", now, agent.0))),
            "receptive agent: JWT audience \"gitlab\" is not gitlab-agent".to_owned(),
        ),
        (
            Some(sign_claims(&key, &claims("gitlab-agent", now, 999))),
            format!("receptive agent: JWT is for agent 999, this is agent {}", agent.0),
        ),
        (None, "receptive agent: missing authorization metadata".to_owned()),
    ];
    for (token, want) in cases {
        let err = describe_with(&w, "agentk-1:8080", token).await.unwrap_err();
        assert_eq!((err.code(), err.message()), (Code::Unauthenticated, want.as_str()));
    }
    // Module services are guarded the same way.
    let channel = grpc_channel(Arc::new(w.net.connector()), "agentk-1:8080", |e| e).unwrap();
    let mut req = tonic::Request::new(Request::default());
    req.metadata_mut().insert("authorization", format!("Bearer {}", sign_jwt(&[9; 32], agent.0, now)).parse().unwrap());
    let err = TestingClient::new(channel).request_response(req).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
}

#[tokio::test(start_paused = true)]
async fn an_agent_installed_with_the_wrong_public_key_is_never_reached() {
    let w = World::new().await;
    let agent = w.agent("receptive");
    let other = w.agent("other");
    w.make_receptive(agent, "grpc://agentk-1:8080").await;
    let other_cfg = w.make_receptive(other, "grpc://nowhere:1").await;
    // agentk got the other configuration's key.
    let _a = w.receptive_agentk(
        "agentk-1:8080",
        other_cfg["public_key"].as_str().unwrap(),
        None,
        "v18.6.0",
        testing_services(),
    );
    tokio::time::sleep(POLL * 3).await;
    assert!(w.net.dial_count("agentk-1:8080") >= 1, "kas tried");
    assert!(w.receptive.connected().is_empty());
    let err = ping(&w, agent.0, "x").await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::DeadlineExceeded, NO_TUNNEL_MESSAGE));
}

#[tokio::test(start_paused = true)]
async fn duplicate_url_configurations_are_refused_with_the_documented_message() {
    let w = World::new().await;
    let agent = w.agent("receptive");
    let first = w.make_receptive(agent, "grpc://agentk-1:8080").await;
    let path = format!("/api/v4/projects/{}/cluster_agents/{}/url_configurations", w.project, agent);
    let (status, json) = w.rest(http::Method::POST, &path, serde_json::json!({ "url": "grpcs://elsewhere:443" })).await;
    assert_eq!(status, 400);
    assert_eq!(json["message"], "400 Bad request - URL configuration already exists for this agent");
    let (status, json) = w.rest(http::Method::GET, &path, serde_json::Value::Null).await;
    assert_eq!(status, 200);
    assert_eq!(json.as_array().unwrap().len(), 1);
    assert_eq!(json[0]["url"], "grpc://agentk-1:8080", "the first configuration is untouched");
    assert_eq!(json[0]["public_key"], first["public_key"]);
}

#[tokio::test(start_paused = true)]
async fn deleting_the_url_configuration_turns_it_back_into_a_normal_agent() {
    let w = World::new().await;
    let agent = w.agent("flip");
    let cfg = w.make_receptive(agent, "grpc://agentk-1:8080").await;
    let receptive_agentk =
        w.receptive_agentk("agentk-1:8080", cfg["public_key"].as_str().unwrap(), None, "v18.6.0", testing_services());
    eventually(POLL * 2, || w.receptive.connected().contains_key(&agent.0)).await;
    assert_eq!(ping(&w, agent.0, "receptive").await.unwrap(), "receptive");

    let path = format!("/api/v4/projects/{}/cluster_agents/{}/url_configurations/{}", w.project, agent, cfg["id"]);
    let (status, _) = w.rest(http::Method::DELETE, &path, serde_json::Value::Null).await;
    assert_eq!(status, 204);
    assert!(!w.gl.is_receptive(agent).unwrap());
    // kas notices on its next poll and stops routing to the listener.
    eventually(POLL * 2, || w.receptive.connected().is_empty() && w.kas.registry().stats(agent.0).connected == 0).await;
    let dials = w.net.dial_count("agentk-1:8080");
    receptive_agentk.cancel();

    // Reinstalled as a normal agent, it dials kas and is served through tunnels.
    let (_normal, _stop) = w.normal_agentk(agent, testing_services());
    assert_eq!(ping(&w, agent.0, "normal again").await.unwrap(), "normal again");
    tokio::time::sleep(POLL * 3).await;
    assert_eq!(w.net.dial_count("agentk-1:8080"), dials, "kas no longer dials the old URL");
    assert!(w.receptive.connected().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_receptive_agent_that_goes_away_leaves_routing() {
    let w = World::new().await;
    let agent = w.agent("receptive");
    let cfg = w.make_receptive(agent, "grpc://agentk-1:8080").await;
    let stop =
        w.receptive_agentk("agentk-1:8080", cfg["public_key"].as_str().unwrap(), None, "v18.6.0", testing_services());
    eventually(POLL * 2, || w.receptive.connected().contains_key(&agent.0)).await;
    stop.cancel();
    // The next health check (5 s) fails and the agent leaves the registry.
    eventually(Duration::from_secs(10), || w.kas.registry().stats(agent.0).connected == 0).await;
    let err = ping(&w, agent.0, "x").await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::DeadlineExceeded, NO_TUNNEL_MESSAGE));
    // Back again: kas retries and reaches it.
    let _again =
        w.receptive_agentk("agentk-1:8080", cfg["public_key"].as_str().unwrap(), None, "v18.6.0", testing_services());
    eventually(Duration::from_secs(10), || w.receptive.connected().contains_key(&agent.0)).await;
    assert_eq!(ping(&w, agent.0, "back").await.unwrap(), "back");
}

/// Loopback TCP and TLS: a grpcs:// URL configuration with the agent's CA and a `tls_host`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_grpcs_receptive_agent_with_ca_cert_and_tls_host() {
    use kasim_core::agentk::receptive::{self, AgentMeta};
    use kasim_core::clock::SystemClock;
    use kasim_core::kas::receptive::{
        ReceptiveAgent, ReceptiveAgents, ReceptiveAuth, ReceptiveOptions, StaticReceptiveAgents,
    };
    use kasim_core::transport::Accept as _;
    use kasim_core::transport::tcp::{TcpConnector, TcpListener};
    use kasim_core::transport::tls::{ServerTls, TlsListener};
    use kasim_core::tunnel::registry::Registry;

    let (ca, cert, key) = {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let k = KeyPair::generate().unwrap();
        let c =
            CertificateParams::new(vec!["agentk.cluster.local".to_owned()]).unwrap().signed_by(&k, &issuer).unwrap();
        (ca_cert.pem(), c.pem(), k.serialize_pem())
    };
    let seed = [42u8; 32];
    let public_key = base64::engine::general_purpose::STANDARD
        .encode(ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key().to_bytes());
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().rsplit_once(':').unwrap().1.to_owned();
    let tls = ServerTls::from_pem(cert.as_bytes(), key.as_bytes(), &[b"h2"]).unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let opts = receptive::ReceptiveOptions {
        services: testing_services(),
        public_key: Some(receptive::parse_public_key(&public_key).unwrap()),
        agent_id: Some(11),
        meta: AgentMeta { version: "v18.7.0".into(), ..Default::default() },
        clock: Arc::new(SystemClock),
    };
    let s = shutdown.clone();
    tokio::spawn(async move { receptive::serve(Box::new(TlsListener::new(tcp, &tls)), opts, s).await });

    let api = StaticReceptiveAgents::default();
    api.set(vec![ReceptiveAgent {
        agent_id: 11,
        url: format!("grpcs://127.0.0.1:{port}"),
        ca_cert: Some(ca),
        tls_host: Some("agentk.cluster.local".into()),
        auth: ReceptiveAuth::Jwt { private_key: seed },
    }]);
    let registry = Registry::default();
    let r = ReceptiveAgents::new(
        registry.clone(),
        Arc::new(api),
        Arc::new(TcpConnector),
        Arc::new(SystemClock),
        ReceptiveOptions { poll_period: Duration::from_millis(200), ..Default::default() },
    );
    let (r2, s) = (r.clone(), shutdown.clone());
    tokio::spawn(async move { r2.run(s).await });
    let router = kasim_core::kas::router::Router::with_timeout(
        registry,
        Arc::new(kasim_core::kas::tracker::StaticTracker::new(vec![])),
        None,
        Arc::new(TcpConnector),
        Duration::from_secs(10),
    );
    let resp = TestingClient::new(router.channel(11))
        .request_response(Request { s1: "over tls".into(), payload: vec![5; 10_000] })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((resp.s1.as_str(), resp.payload.len()), ("over tls", 10_000));
    assert_eq!(r.connected()[&11].version, "v18.7.0");
    shutdown.cancel();
}

/// mTLS instead of JWT: agentk's listener accepts only clients with a certificate from its client CA;
/// kas dials with the URL configuration's client certificate and sends no JWT. A client certificate
/// from another CA never gets through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_mtls_receptive_agent() {
    use kasim_core::agentk::receptive::{self, AgentMeta};
    use kasim_core::clock::SystemClock;
    use kasim_core::kas::receptive::{
        ReceptiveAgent, ReceptiveAgents, ReceptiveAuth, ReceptiveOptions, StaticReceptiveAgents,
    };
    use kasim_core::transport::Accept as _;
    use kasim_core::transport::tcp::{TcpConnector, TcpListener};
    use kasim_core::transport::tls::{ServerTls, TlsListener};
    use kasim_core::tunnel::registry::Registry;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

    fn ca() -> (String, Issuer<'static, KeyPair>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), Issuer::new(params, key))
    }
    fn leaf(issuer: &Issuer<'static, KeyPair>, name: &str) -> (String, String) {
        let k = KeyPair::generate().unwrap();
        let c = CertificateParams::new(vec![name.to_owned()]).unwrap().signed_by(&k, issuer).unwrap();
        (c.pem(), k.serialize_pem())
    }
    let (server_ca, server_issuer) = ca();
    let (client_ca, client_issuer) = ca();
    let (_, rogue_issuer) = ca();
    let (server_cert, server_key) = leaf(&server_issuer, "agentk.cluster.local");
    let (kas_cert, kas_key) = leaf(&client_issuer, "kas");
    let (rogue_cert, rogue_key) = leaf(&rogue_issuer, "kas");

    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().rsplit_once(':').unwrap().1.to_owned();
    let tls = ServerTls::from_pem_with_client_ca(
        server_cert.as_bytes(),
        server_key.as_bytes(),
        &[b"h2"],
        client_ca.as_bytes(),
    )
    .unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let opts = receptive::ReceptiveOptions {
        services: testing_services(),
        public_key: None,
        agent_id: Some(12),
        meta: AgentMeta { version: "v18.6.0".into(), ..Default::default() },
        clock: Arc::new(SystemClock),
    };
    let s = shutdown.clone();
    tokio::spawn(async move { receptive::serve(Box::new(TlsListener::new(tcp, &tls)), opts, s).await });

    let call = |cert: String, key: String| {
        let (server_ca, port, shutdown) = (server_ca.clone(), port.clone(), shutdown.clone());
        async move {
            let api = StaticReceptiveAgents::default();
            api.set(vec![ReceptiveAgent {
                agent_id: 12,
                url: format!("grpcs://127.0.0.1:{port}"),
                ca_cert: Some(server_ca),
                tls_host: Some("agentk.cluster.local".into()),
                auth: ReceptiveAuth::Mtls { client_cert: cert, client_key: key },
            }]);
            let registry = Registry::default();
            let r = ReceptiveAgents::new(
                registry.clone(),
                Arc::new(api),
                Arc::new(TcpConnector),
                Arc::new(SystemClock),
                ReceptiveOptions { poll_period: Duration::from_millis(200), ..Default::default() },
            );
            let s = shutdown.child_token();
            let s2 = s.clone();
            tokio::spawn(async move { r.run(s2).await });
            let router = kasim_core::kas::router::Router::with_timeout(
                registry,
                Arc::new(kasim_core::kas::tracker::StaticTracker::new(vec![])),
                None,
                Arc::new(TcpConnector),
                Duration::from_secs(3),
            );
            let r = TestingClient::new(router.channel(12))
                .request_response(Request { s1: "mtls".into(), payload: vec![] })
                .await
                .map(|r| r.into_inner().s1);
            s.cancel();
            r
        }
    };
    assert_eq!(call(kas_cert, kas_key).await.unwrap(), "mtls");
    let refused = call(rogue_cert, rogue_key).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::DeadlineExceeded, "{refused:?}");
    shutdown.cancel();
}
