//! Benchmark: GET through kas's k8s proxy → tunnel → agentk → upstream, against GET direct to the same
//! upstream and against a floor: the same GET through a bare two-hop hyper HTTP/1 reverse proxy chain
//! (client → hop1 → hop2 → upstream, each hop a minimal hyper server forwarding with a pooled hyper
//! client), all on loopback TCP in this process. The floor shows what any two proxy hops cost on this
//! machine, independent of kasim's design. Run in release:
//!
//! ```text
//! cargo run --release -p kasim-core --example bench_proxy [-- REQUESTS CONCURRENCY [direct|floor|kasim]]
//! ```
//!
//! Prints p50/p99 latency (sequential requests) and requests/s (concurrent clients) for the three
//! paths, and the ratios kasim/direct and kasim/floor, measured in one run. A third argument runs one
//! path only (for profiling).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kasim_core::agentk::kube_backend::KubeBackend;
use kasim_core::agentk::kubernetes_api::KubernetesApiService;
use kasim_core::agentk::{AgentServices, Agentk, AgentkOptions, PoolConfig};
use kasim_core::kas::allowed_agents::{AllowedAgent, AllowedAgentsForJob, Configuration, IdRef, JobProject, JobUser};
use kasim_core::kas::gitlab::{AgentInfo, StaticGitLab};
use kasim_core::kas::k8s_proxy::K8sProxyOptions;
use kasim_core::kas::listener::ListenerOptions;
use kasim_core::kas::tracker::StaticTracker;
use kasim_core::kas::{Kas, KasOptions};
use kasim_core::transport::Accept;
use kasim_core::transport::tcp::{TcpConnector, TcpListener};
use tokio_util::sync::CancellationToken;

const AGENT_TOKEN: &str = "glagent-benchbenchbenchbenchbenchbenchbenchbenchbenchbench";
const JOB_TOKEN: &str = "glcbt-bench";

/// A pod-sized JSON answer, the same for both paths.
fn body() -> Bytes {
    let pod = serde_json::json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"default","labels":{"app":"bench"}},
        "spec":{"containers":[{"name":"c","image":"registry.example/app:1.0","args":["--flag","--verbose","--port=8080","--log-level=info"]}]},"status":{"phase":"Running"}});
    Bytes::from(pod.to_string())
}

async fn upstream() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let b = body();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let b = b.clone();
            s.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| {
                    let b = b.clone();
                    async move {
                        let mut r = http::Response::new(http_body_util::Full::new(b));
                        r.headers_mut().insert("content-type", "application/json".parse().unwrap());
                        Ok::<_, std::convert::Infallible>(r)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

/// One hop of the floor chain: a minimal hyper HTTP/1 server that forwards every request to `next`
/// with a pooled hyper client and streams the answer back.
async fn hop(next: String) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    let client: Client<HttpConnector, hyper::body::Incoming> = Client::builder(TokioExecutor::new()).build(http);
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            s.set_nodelay(true).unwrap();
            let (client, next) = (client.clone(), next.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let (client, next) = (client.clone(), next.clone());
                    async move {
                        let (mut parts, body) = req.into_parts();
                        let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                        parts.uri = format!("http://{next}{pq}").parse().unwrap();
                        parts.headers.remove(http::header::HOST);
                        client.request(http::Request::from_parts(parts, body)).await
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

type C = Client<HttpConnector, Empty<Bytes>>;

async fn get(client: &C, url: &str, auth: Option<&str>) {
    let mut req = http::Request::get(url);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = client.request(req.body(Empty::new()).unwrap()).await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.into_body().collect().await.unwrap();
}

async fn latency(client: &C, url: &str, auth: Option<&str>, n: usize) -> Vec<Duration> {
    for _ in 0..n / 10 {
        get(client, url, auth).await;
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        get(client, url, auth).await;
        out.push(t.elapsed());
    }
    out.sort();
    out
}

async fn throughput(client: &C, url: &str, auth: Option<&str>, n: usize, concurrency: usize) -> f64 {
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (c, u, a) = (client.clone(), url.to_owned(), auth.map(str::to_owned));
        tasks.spawn(async move {
            for _ in 0..n / concurrency {
                get(&c, &u, a.as_deref()).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    (n / concurrency * concurrency) as f64 / t.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(5000);
    let concurrency: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(8);
    let only = args.next();
    // As the kas and agentk binaries do: with a subscriber installed, disabled spans of hyper, h2 and
    // tonic cost a cached interest check instead of tracing's `log` fallback.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let shutdown = CancellationToken::new();
    let up = upstream().await;

    let job = AllowedAgentsForJob {
        allowed_agents: vec![AllowedAgent {
            id: 1,
            config_project: IdRef { id: 1 },
            configuration: Configuration::default(),
        }],
        job: IdRef { id: 1 },
        pipeline: IdRef { id: 1 },
        project: JobProject { id: 1, groups: vec![] },
        user: JobUser { id: 1, username: "bench".into() },
        environment: None,
    };
    let gitlab = StaticGitLab::new([(
        AGENT_TOKEN.to_owned(),
        AgentInfo { id: 1, project_id: 1, name: "bench".into(), default_branch: "main".into() },
    )])
    .with_jobs([(JOB_TOKEN.to_owned(), job)]);
    let kas = Kas::new(
        Arc::new(gitlab),
        Arc::new(StaticTracker::default()),
        Arc::new(TcpConnector),
        KasOptions { private_api_url: None, agent_listener: ListenerOptions::agent_default() },
    );
    let agent_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent_addr = agent_listener.local_addr();
    let proxy_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = proxy_listener.local_addr();
    let (k, s) = (kas.clone(), shutdown.clone());
    tokio::spawn(async move { k.serve_agents(Box::new(agent_listener), s).await });
    let proxy = kas.k8s_proxy(K8sProxyOptions::default());
    let s = shutdown.clone();
    tokio::spawn(async move { proxy.serve(Box::new(proxy_listener) as Box<dyn Accept>, s).await });
    let backend = KubeBackend::new(Arc::new(TcpConnector), &format!("http://{up}"), None).unwrap();
    let agentk = Agentk::new(
        AgentkOptions {
            kas_authority: agent_addr,
            token: AGENT_TOKEN.into(),
            services: AgentServices::default().add_service(KubernetesApiService::server(backend, "v18.6.0", "bench")),
            pool: PoolConfig::default(),
            seed: 1,
            version: "v18.6.0".into(),
            commit: "bench".into(),
        },
        Arc::new(TcpConnector),
        shutdown.clone(),
    )
    .unwrap();
    agentk.start();

    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    let client: C = Client::builder(TokioExecutor::new()).build(http);
    let path = "/api/v1/namespaces/default/pods/p";
    let direct_url = format!("http://{up}{path}");
    let proxied_url = format!("http://{proxy_addr}{path}");
    let auth = format!("Bearer ci:1:{JOB_TOKEN}");

    let floor_url = format!("http://{}{path}", hop(hop(up.clone()).await).await);

    let only = only.as_deref();
    let run = |name: &str| only.is_none_or(|o| o == name);
    let mut rows: Vec<(&str, Vec<Duration>, f64)> = Vec::new();
    for (name, url, auth) in
        [("direct", &direct_url, None), ("floor", &floor_url, None), ("kasim", &proxied_url, Some(auth.as_str()))]
    {
        if run(name) {
            let lat = latency(&client, url, auth, n).await;
            rows.push((name, lat, 0.0));
        }
    }
    for (name, url, auth) in
        [("direct", &direct_url, None), ("floor", &floor_url, None), ("kasim", &proxied_url, Some(auth.as_str()))]
    {
        if run(name) {
            let rps = throughput(&client, url, auth, n * 2, concurrency).await;
            if let Some(r) = rows.iter_mut().find(|r| r.0 == name) {
                r.2 = rps;
            }
        }
    }
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "body {} bytes, {n} sequential requests, {} concurrent requests in {concurrency} clients",
        body().len(),
        n * 2
    );
    for (name, lat, rps) in &rows {
        println!(
            "{name:<8}  p50 {:>8.1} µs  p99 {:>8.1} µs  {:>9.0} req/s",
            us(percentile(lat, 0.5)),
            us(percentile(lat, 0.99)),
            rps
        );
    }
    let row = |name: &str| rows.iter().find(|r| r.0 == name);
    if let Some(k) = row("kasim") {
        for base in ["direct", "floor"] {
            if let Some(b) = row(base) {
                println!(
                    "kasim/{base:<6}  p50 {:.2}x   p99 {:.2}x   throughput {:.2}x",
                    percentile(&k.1, 0.5).as_secs_f64() / percentile(&b.1, 0.5).as_secs_f64(),
                    percentile(&k.1, 0.99).as_secs_f64() / percentile(&b.1, 0.99).as_secs_f64(),
                    k.2 / b.2
                );
            }
        }
    }
    if let (Some(f), Some(d)) = (row("floor"), row("direct")) {
        println!(
            "floor/direct  p50 {:.2}x   p99 {:.2}x   throughput {:.2}x",
            percentile(&f.1, 0.5).as_secs_f64() / percentile(&d.1, 0.5).as_secs_f64(),
            percentile(&f.1, 0.99).as_secs_f64() / percentile(&d.1, 0.99).as_secs_f64(),
            f.2 / d.2
        );
    }
    println!("agentk pool: {:?}", agentk.stats());
    shutdown.cancel();
}
