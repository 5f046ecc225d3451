//! Benchmark: a unary call forwarded kas → tunnel → agentk over loopback TCP, against a direct call to
//! the same service over loopback TCP. Run in release:
//!
//! ```text
//! cargo run --release -p kasim-core --example bench_roundtrip [-- CALLS]
//! ```
//!
//! Prints p50/p90/p99 of both paths and their ratio, measured in one run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kasim_core::agentk::{AgentServices, Agentk, AgentkOptions, PoolConfig};
use kasim_core::kas::gitlab::{AgentInfo, StaticGitLab};
use kasim_core::kas::listener::{self, ListenerOptions};
use kasim_core::kas::tracker::StaticTracker;
use kasim_core::kas::{Kas, KasOptions};
use kasim_core::proto::grpctool::test::Request;
use kasim_core::proto::grpctool::test::testing_client::TestingClient;
use kasim_core::testing_service::TestingService;
use kasim_core::transport::tcp::{TcpConnector, TcpListener};
use kasim_core::transport::{Accept, grpc_channel};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "glagent-benchbenchbenchbenchbenchbenchbenchbenchbenchbench";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn measure<F, Fut>(calls: usize, mut f: F) -> Vec<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..calls / 10 {
        f().await;
    }
    let mut out = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        f().await;
        out.push(t.elapsed());
    }
    out.sort();
    out
}

fn report(name: &str, d: &[Duration]) {
    println!(
        "{name:<10} p50 {:>8.1} µs   p90 {:>8.1} µs   p99 {:>8.1} µs   ({} calls)",
        percentile(d, 0.5).as_secs_f64() * 1e6,
        percentile(d, 0.9).as_secs_f64() * 1e6,
        percentile(d, 0.99).as_secs_f64() * 1e6,
        d.len()
    );
}

#[tokio::main]
async fn main() {
    let calls: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(5000);
    let shutdown = CancellationToken::new();

    // Direct: the Testing service served over loopback HTTP/2, called with tonic.
    let direct_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let direct_addr = direct_listener.local_addr();
    let routes = tonic::service::Routes::new(TestingService::server());
    tokio::spawn(listener::serve(Box::new(direct_listener), routes, ListenerOptions::no_age(), shutdown.clone()));
    let direct_channel = grpc_channel(Arc::new(TcpConnector), &direct_addr, |e| e).unwrap();

    // Forwarded: kas + agentk on loopback; the call enters kas's router.
    let gitlab = Arc::new(StaticGitLab::new([(
        TOKEN.to_owned(),
        AgentInfo { id: 1, project_id: 1, name: "bench".into(), default_branch: "main".into() },
    )]));
    let kas = Kas::new(
        gitlab,
        Arc::new(StaticTracker::default()),
        Arc::new(TcpConnector),
        KasOptions { private_api_url: None, agent_listener: ListenerOptions::agent_default() },
    );
    let agent_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent_addr = agent_listener.local_addr();
    {
        let (kas, s) = (kas.clone(), shutdown.clone());
        tokio::spawn(async move { kas.serve_agents(Box::new(agent_listener), s).await });
    }
    let agent = Agentk::new(
        AgentkOptions {
            kas_authority: agent_addr,
            token: TOKEN.into(),
            services: AgentServices::default().add_service(TestingService::server()),
            pool: PoolConfig::default(),
            seed: 1,
            version: "v18.6.0".into(),
            commit: "bench".into(),
        },
        Arc::new(TcpConnector),
        shutdown.clone(),
    )
    .unwrap();
    agent.start();
    let forwarded_channel = kas.router().channel(1);

    let req = || Request { s1: "bench".into(), payload: vec![0u8; 64] };
    let direct = measure(calls, || {
        let mut c = TestingClient::new(direct_channel.clone());
        async move {
            c.request_response(req()).await.unwrap();
        }
    })
    .await;
    let forwarded = measure(calls, || {
        let mut c = TestingClient::new(forwarded_channel.clone());
        async move {
            c.request_response(req()).await.unwrap();
        }
    })
    .await;
    report("direct", &direct);
    report("forwarded", &forwarded);
    let ratio = percentile(&forwarded, 0.5).as_secs_f64() / percentile(&direct, 0.5).as_secs_f64();
    println!("p50 ratio forwarded/direct: {ratio:.2}x");
    println!("agentk pool after the run: {:?}", agent.stats());
    shutdown.cancel();
}
