//! Forwarding through kas → tunnel → agentk on the in-memory transport, in virtual time.

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use kasim_core::agentk::PoolConfig;
use kasim_core::kas::listener::ListenerOptions;
use kasim_core::proto::grpctool::test::Request;
use tonic::Code;

#[tokio::test(start_paused = true)]
async fn unary_round_trip_with_metadata() {
    let w = World::new();
    let kas = w.kas("kas", ListenerOptions::agent_default());
    let _agent = w.agentk("kas", TOKEN, PoolConfig::default(), 1);
    let mut c = client(&kas);
    let mut req = tonic::Request::new(Request { s1: "hello".into(), payload: vec![1, 2, 3] });
    req.metadata_mut().insert("x-echo", "meta".parse().unwrap());
    let resp = c.request_response(req).await.unwrap();
    assert_eq!(resp.metadata().get("x-echo").unwrap(), "meta");
    let v = kas.registry().version(AGENT_ID).expect("kas learnt the agent's version from its user-agent");
    assert_eq!((v.version.as_str(), v.commit.as_str()), ("v18.6.0", "test"));
    assert_eq!(resp.into_inner().payload, vec![1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn errors_keep_code_message_and_details() {
    let w = World::new();
    let kas = w.kas("kas", ListenerOptions::agent_default());
    let _agent = w.agentk("kas", TOKEN, PoolConfig::default(), 1);
    let err = client(&kas)
        .request_response(Request { s1: "error:5:no such thing".into(), payload: vec![] })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.message(), "no such thing");
    let details: kasim_core::proto::google::rpc::Status = prost::Message::decode(err.details()).unwrap();
    assert_eq!(details.details[0].value, b"no such thing");
}

#[tokio::test(start_paused = true)]
async fn bidi_streaming_round_trip() {
    let w = World::new();
    let kas = w.kas("kas", ListenerOptions::agent_default());
    let _agent = w.agentk("kas", TOKEN, PoolConfig::default(), 1);
    let reqs = tokio_stream::iter((0..5).map(|i| Request { s1: format!("m{i}"), payload: vec![i; 100] }));
    let mut resp = client(&kas).streaming_request_response(reqs).await.unwrap().into_inner();
    let mut got = vec![];
    while let Some(m) = resp.next().await {
        let m = m.unwrap();
        got.push((m.s1, m.seq));
    }
    assert_eq!(got, (0..5).map(|i| (format!("m{i}"), i64::from(i) + 1)).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn unknown_agent_fails_after_20s_with_the_documented_error() {
    let w = World::new();
    let kas = w.kas("kas", ListenerOptions::agent_default());
    let start = tokio::time::Instant::now();
    let err = client(&kas).request_response(Request::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded);
    assert_eq!(err.message(), "Agent connection not found. Is agent up to date and connected?");
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(20) && waited < Duration::from_secs(21), "{waited:?}");
}

#[tokio::test(start_paused = true)]
async fn a_request_waiting_for_a_tunnel_is_served_when_the_agent_connects() {
    let w = World::new();
    let kas = w.kas("kas", ListenerOptions::agent_default());
    let mut c = client(&kas);
    let call = tokio::spawn(async move { c.request_response(Request { s1: "late".into(), payload: vec![] }).await });
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(kas.registry().stats(AGENT_ID).waiting, 1);
    let _agent = w.agentk("kas", TOKEN, PoolConfig::default(), 1);
    assert_eq!(call.await.unwrap().unwrap().into_inner().s1, "late");
}

#[tokio::test(start_paused = true)]
async fn bad_token_is_refused_and_agentk_backs_off() {
    let w = World::new();
    let kas = w.kas("kas", ListenerOptions::agent_default());
    let agent = w.agentk("kas", "glagent-wrong", PoolConfig::default(), 1);
    tokio::time::sleep(Duration::from_secs(60)).await;
    let errors = agent.stats().errors;
    // Two tunnels backing off 1, 1.6, 2.56, 4.1, 6.6, 10.5, 16.8 s (+ up to 20 % jitter): 5–7 tries each
    // in 60 s, never the hundreds a missing backoff would give.
    assert!((10..=16).contains(&errors), "errors = {errors}");
    assert_eq!(kas.registry().stats(AGENT_ID).connected, 0);
}

#[tokio::test(start_paused = true)]
async fn calls_route_through_the_kas_that_holds_the_tunnel() {
    let w = World::new();
    let kas_a = w.kas("kas-a", ListenerOptions::agent_default());
    let kas_b = w.kas("kas-b", ListenerOptions::agent_default());
    let _agent = w.agentk("kas-b", TOKEN, PoolConfig::default(), 1);
    eventually(Duration::from_secs(5), || kas_b.registry().stats(AGENT_ID).idle == 2).await;
    assert_eq!(w.tracker.kas_urls(AGENT_ID).await, vec!["grpc://kas-b:8155"]);
    let resp = client(&kas_a).request_response(Request { s1: "via b".into(), payload: vec![9] }).await.unwrap();
    assert_eq!(resp.into_inner().s1, "via b");
    let reqs = tokio_stream::iter((0..3).map(|i| Request { s1: format!("s{i}"), payload: vec![] }));
    let n = client(&kas_a).streaming_request_response(reqs).await.unwrap().into_inner().count().await;
    assert_eq!(n, 3);
    let err =
        client(&kas_a).request_response(Request { s1: "error:7:denied".into(), payload: vec![] }).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::PermissionDenied, "denied"));
}

/// Opens a raw Connect stream and sends `msgs`; returns the status the stream ended with.
async fn raw_connect(w: &World, msgs: Vec<kasim_core::proto::reverse_tunnel::rpc::ConnectRequest>) -> tonic::Status {
    use kasim_core::proto::reverse_tunnel::rpc::reverse_tunnel_client::ReverseTunnelClient;
    let channel =
        kasim_core::transport::grpc_channel(std::sync::Arc::new(w.net.connector()), "kas:8150", |e| e).unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    for m in msgs {
        tx.send(m).await.unwrap();
    }
    let mut req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    req.metadata_mut().insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let mut stream = match ReverseTunnelClient::new(channel).connect(req).await {
        Ok(s) => s.into_inner(),
        Err(s) => return s,
    };
    loop {
        match stream.message().await {
            Ok(Some(_)) => {}
            Ok(None) => return tonic::Status::new(Code::Ok, ""),
            Err(s) => return s,
        }
    }
}

#[tokio::test(start_paused = true)]
async fn protocol_violations_end_the_stream_with_invalid_argument() {
    use kasim_core::proto::reverse_tunnel::info::{AgentDescriptor, Method, Service};
    use kasim_core::proto::reverse_tunnel::rpc::{ConnectRequest, Descriptor, Header, connect_request::Msg};
    let w = World::new();
    let _kas = w.kas("kas", ListenerOptions::agent_default());
    let good =
        AgentDescriptor { services: vec![Service { name: "a.S".into(), methods: vec![Method { name: "M".into() }] }] };
    let desc =
        |d: Option<AgentDescriptor>| ConnectRequest { msg: Some(Msg::Descriptor(Descriptor { agent_descriptor: d })) };
    let header = ConnectRequest { msg: Some(Msg::Header(Header::default())) };
    let cases: Vec<(&str, Vec<ConnectRequest>, &str)> = vec![
        ("header first", vec![header.clone()], "ConnectRequest: field 2 not allowed at start"),
        ("empty oneof", vec![ConnectRequest { msg: None }], "expected a descriptor first"),
        ("descriptor without body", vec![desc(None)], "agent_descriptor is required"),
        (
            "service without name",
            vec![desc(Some(AgentDescriptor { services: vec![Service { name: String::new(), methods: vec![] }] }))],
            "service #0 has an empty name",
        ),
        ("header while idle", vec![desc(Some(good.clone())), header], "before any request"),
    ];
    for (name, msgs, want) in cases {
        let s = tokio::time::timeout(Duration::from_secs(5), raw_connect(&w, msgs)).await.expect(name);
        assert_eq!(s.code(), Code::InvalidArgument, "{name}: {s:?}");
        assert!(s.message().contains(want), "{name}: {:?} lacks {want:?}", s.message());
    }
}

/// A tunnel that dies after kas handed it a call but before the agent answered (agentk closing an
/// idle tunnel races with kas's hand-off) gives the call back; it completes on another tunnel.
#[tokio::test(start_paused = true)]
async fn a_call_on_a_tunnel_that_dies_before_answering_moves_to_another_tunnel() {
    use kasim_core::proto::reverse_tunnel::info::{AgentDescriptor, Method, Service};
    use kasim_core::proto::reverse_tunnel::rpc::reverse_tunnel_client::ReverseTunnelClient;
    use kasim_core::proto::reverse_tunnel::rpc::{ConnectRequest, Descriptor, connect_request::Msg};
    let w = World::new();
    let kas = w.kas("kas", ListenerOptions::agent_default());
    // A flaky tunnel registers first, so kas picks it first.
    let channel =
        kasim_core::transport::grpc_channel(std::sync::Arc::new(w.net.connector()), "kas:8150", |e| e).unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let methods = ["RequestResponse", "StreamingRequestResponse", "Hold"].map(|m| Method { name: m.into() }).to_vec();
    let d = AgentDescriptor { services: vec![Service { name: "gitlab.agent.grpctool.test.Testing".into(), methods }] };
    tx.send(ConnectRequest { msg: Some(Msg::Descriptor(Descriptor { agent_descriptor: Some(d) })) }).await.unwrap();
    let mut req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    req.metadata_mut().insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let mut flaky = ReverseTunnelClient::new(channel).connect(req).await.unwrap().into_inner();
    eventually(Duration::from_secs(1), || kas.registry().stats(AGENT_ID).idle == 1).await;
    let _agent = w.agentk("kas", TOKEN, PoolConfig::default(), 1);
    eventually(Duration::from_secs(5), || kas.registry().stats(AGENT_ID).idle == 3).await;
    let mut c = client(&kas);
    let call = tokio::spawn(async move {
        let reqs = tokio_stream::iter((0..3).map(|i| Request { s1: format!("r{i}"), payload: vec![] }));
        c.streaming_request_response(reqs).await.map(|r| r.into_inner())
    });
    // The flaky agent receives the call, then vanishes without a word.
    let first = flaky.message().await.unwrap().unwrap();
    assert!(matches!(first.msg, Some(kasim_core::proto::reverse_tunnel::rpc::connect_response::Msg::RequestInfo(_))));
    drop(flaky);
    drop(tx);
    let got: Vec<String> = call.await.unwrap().unwrap().map(|r| r.unwrap().s1).collect().await;
    assert_eq!(got, ["r0", "r1", "r2"], "every message reached the agent that answered, in order");
}
