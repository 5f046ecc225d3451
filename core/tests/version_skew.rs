//! Version skew as it shows in practice: an agent that lacks a method kas needs is never matched,
//! so the call waits and ends after 20 s with upstream's "Is agent up to date" error — for tunnelled
//! and receptive agents alike. And the version an agent reports reaches the stand-in's warning.

#[path = "common/receptive_world.rs"]
mod world;

use std::time::Duration;

use kasim_core::agentk::AgentServices;
use kasim_core::kas::router::NO_TUNNEL_MESSAGE;
use kasim_core::proto::kubernetes_api::rpc::kubernetes_api_client::KubernetesApiClient;
use kasim_gitlab::VersionSkew;
use tonic::Code;
use world::*;

/// Calls `KubernetesApi/MakeRequest`, which the test agents (Testing service only) do not serve;
/// returns the error and how long it took.
async fn make_request(w: &World, agent: i64) -> (tonic::Status, Duration) {
    let start = tokio::time::Instant::now();
    let mut c = KubernetesApiClient::new(w.kas.router().channel(agent));
    let err = c.make_request(tokio_stream::empty()).await.unwrap_err();
    (err, start.elapsed())
}

fn assert_no_tunnel((err, waited): (tonic::Status, Duration)) {
    assert_eq!((err.code(), err.message()), (Code::DeadlineExceeded, NO_TUNNEL_MESSAGE));
    assert!(waited >= Duration::from_secs(20) && waited < Duration::from_secs(21), "{waited:?}");
}

#[tokio::test(start_paused = true)]
async fn a_tunnelled_agent_missing_a_method_is_never_matched() {
    let w = World::new().await;
    let agent = w.agent("old");
    let (a, _stop) = w.normal_agentk(agent, testing_services());
    eventually(Duration::from_secs(5), || w.kas.registry().stats(agent.0).idle >= 2).await;
    let idle_before = w.kas.registry().stats(agent.0).idle;
    let call = tokio::spawn({
        let kas = w.kas.clone();
        async move {
            let start = tokio::time::Instant::now();
            let err = KubernetesApiClient::new(kas.router().channel(agent.0))
                .make_request(tokio_stream::empty())
                .await
                .unwrap_err();
            (err, start.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_secs(10)).await;
    // Connected, idle tunnels, and still the request waits: none offers the method.
    let stats = w.kas.registry().stats(agent.0);
    assert_eq!((stats.waiting, stats.idle), (1, idle_before));
    assert_eq!(a.stats().active, 0);
    assert_no_tunnel(call.await.unwrap());
    // The same agent serves what it has.
    let mut c = kasim_core::proto::grpctool::test::testing_client::TestingClient::new(w.kas.router().channel(agent.0));
    c.request_response(kasim_core::proto::grpctool::test::Request::default()).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_receptive_agent_missing_a_method_shows_the_same_symptom() {
    let w = World::new().await;
    let agent = w.agent("old-receptive");
    let cfg = w.make_receptive(agent, "grpc://agentk-1:8080").await;
    let _a =
        w.receptive_agentk("agentk-1:8080", cfg["public_key"].as_str().unwrap(), None, "v18.4.0", testing_services());
    eventually(POLL * 2, || w.receptive.connected().contains_key(&agent.0)).await;
    assert_no_tunnel(make_request(&w, agent.0).await);
}

#[tokio::test(start_paused = true)]
async fn an_agent_without_any_service_is_connected_but_useless() {
    let w = World::new().await;
    let agent = w.agent("empty");
    let (_a, _stop) = w.normal_agentk(agent, AgentServices::default());
    eventually(Duration::from_secs(5), || w.kas.registry().stats(agent.0).connected >= 2).await;
    assert_no_tunnel(make_request(&w, agent.0).await);
}

#[tokio::test(start_paused = true)]
async fn reported_versions_reach_the_agent_list_warning() {
    let w = World::new().await;
    w.gl.set_gitlab_version("v18.6.2").unwrap();
    let mut agents = Vec::new();
    for (i, version) in ["v18.4.0", "v18.5.3", "v18.6.0", "v18.7.1", "v18.8.0"].into_iter().enumerate() {
        let agent = w.agent(&format!("agent-{i}"));
        let name = format!("agentk-{i}:8080");
        let cfg = w.make_receptive(agent, &format!("grpc://{name}")).await;
        let stop = w.receptive_agentk(&name, cfg["public_key"].as_str().unwrap(), None, version, testing_services());
        agents.push((agent, version, stop));
    }
    eventually(POLL * 2, || w.receptive.connected().len() == agents.len()).await;
    // What kas learned from each agent, handed to GitLab as kas would report it.
    for (id, meta) in w.receptive.connected() {
        w.gl.record_agent_version(kasim_gitlab::AgentId(id), &meta.version).unwrap();
    }
    let verdicts: Vec<(&str, Option<VersionSkew>)> = agents
        .iter()
        .map(|(agent, version, _)| (*version, w.gl.agent_version_warning(*agent).unwrap().and_then(|w| w.skew)))
        .collect();
    assert_eq!(
        verdicts,
        vec![
            ("v18.4.0", Some(VersionSkew::TooOld)),
            ("v18.5.3", None),
            ("v18.6.0", None),
            ("v18.7.1", None),
            ("v18.8.0", Some(VersionSkew::TooNew)),
        ]
    );
}
