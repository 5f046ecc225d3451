//! agentk → kas through a real HTTP CONNECT proxy on loopback (written here, counting what it
//! tunnels), NO_PROXY bypass, upper-case precedence, TLS with a custom CA through the proxy, and
//! the agentk binary's proxy environment handling.
//!
//! kas is addressed by names only the proxy can resolve (`kas.test`): loopback IPs are never
//! proxied (Go's rule), and a name agentk cannot resolve proves the connection went through the
//! proxy.

#[path = "common/procs.rs"]
mod procs;

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kasim_core::agentk::{AgentServices, Agentk, AgentkOptions, PoolConfig};
use kasim_core::clock::TokioClock;
use kasim_core::kas::gitlab::{AgentInfo, StaticGitLab};
use kasim_core::kas::listener::ListenerOptions;
use kasim_core::kas::router::Router;
use kasim_core::kas::tracker::{InMemoryTracker, StaticTracker};
use kasim_core::kas::{Kas, KasOptions};
use kasim_core::proto::grpctool::test::Request;
use kasim_core::proto::grpctool::test::testing_client::TestingClient;
use kasim_core::testing_service::TestingService;
use kasim_core::transport::proxy::{NoProxy, ProxyConnector, ProxyEnv, ProxyUrl};
use kasim_core::transport::tcp::{TcpConnector, TcpListener};
use kasim_core::transport::tls::{ClientTlsOptions, ServerTls, TlsConnector, TlsListener};
use kasim_core::transport::{Accept, BoxFuture, BoxIo, Connect, Dialer};
use procs::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "glagent-proxyproxyproxyproxyproxyproxyproxyproxyproxyproxypr";
const AGENT_ID: i64 = 5;

/// A minimal HTTP CONNECT proxy that resolves names from its own table.
struct TestProxy {
    addr: String,
    /// CONNECT targets, in order.
    targets: Arc<Mutex<Vec<String>>>,
    /// `Proxy-Authorization` values seen.
    auth: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestProxy {
    /// `hosts` maps names to `127.0.0.1`; `refuse` answers every CONNECT with that status line.
    async fn start(hosts: &[&str], refuse: Option<&'static str>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let hosts: BTreeMap<String, String> = hosts.iter().map(|h| ((*h).to_owned(), "127.0.0.1".to_owned())).collect();
        let targets = Arc::new(Mutex::new(Vec::new()));
        let auth = Arc::new(Mutex::new(Vec::new()));
        let (t, a) = (targets.clone(), auth.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else { return };
                let (hosts, t, a) = (hosts.clone(), t.clone(), a.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    while !head.ends_with(b"\r\n\r\n") {
                        let mut b = [0u8; 1];
                        if s.read(&mut b).await.unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(b[0]);
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let mut lines = head.lines();
                    let target = lines.next().unwrap_or_default().split_whitespace().nth(1).unwrap_or_default();
                    t.lock().unwrap().push(target.to_owned());
                    for l in lines {
                        if let Some(v) = l.strip_prefix("Proxy-Authorization: ") {
                            a.lock().unwrap().push(v.to_owned());
                        }
                    }
                    if let Some(status) = refuse {
                        let _ = s.write_all(format!("{status}\r\nContent-Length: 0\r\n\r\n").as_bytes()).await;
                        return;
                    }
                    let (host, port) = target.rsplit_once(':').unwrap_or((target, "80"));
                    let ip = hosts.get(host).cloned().unwrap_or_else(|| host.to_owned());
                    let Ok(mut up) = tokio::net::TcpStream::connect(format!("{ip}:{port}")).await else {
                        let _ = s.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                        return;
                    };
                    let _ = s.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await;
                    let _ = tokio::io::copy_bidirectional(&mut s, &mut up).await;
                });
            }
        });
        Self { addr, targets, auth, task }
    }

    fn targets(&self) -> Vec<String> {
        self.targets.lock().unwrap().clone()
    }
}

/// Dials TCP after mapping test names to 127.0.0.1 (the "DNS" of agentk's own network), and counts
/// direct dials per authority.
#[derive(Debug, Default)]
struct MappedTcp {
    names: Vec<&'static str>,
    dials: Mutex<Vec<String>>,
}

impl Connect for MappedTcp {
    fn connect(&self, authority: &str) -> BoxFuture<'static, io::Result<BoxIo>> {
        self.dials.lock().unwrap().push(authority.to_owned());
        let mapped = match authority.rsplit_once(':') {
            Some((h, p)) if self.names.contains(&h) => format!("127.0.0.1:{p}"),
            _ => authority.to_owned(),
        };
        TcpConnector.connect(&mapped)
    }
}

fn env(pairs: &[(&str, String)]) -> ProxyEnv {
    let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
    ProxyEnv::from_lookup(move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
}

struct KasUnderTest {
    kas: Kas,
    port: u16,
    shutdown: CancellationToken,
}

impl Drop for KasUnderTest {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start_kas(tls: Option<&ServerTls>) -> KasUnderTest {
    let gitlab = Arc::new(StaticGitLab::new([(
        TOKEN.to_owned(),
        AgentInfo { id: AGENT_ID, project_id: 1, name: "prod".into(), default_branch: "main".into() },
    )]));
    let kas = Kas::new(
        gitlab,
        Arc::new(InMemoryTracker::new(Arc::new(TokioClock::new(0)))),
        Arc::new(TcpConnector),
        KasOptions { private_api_url: None, agent_listener: ListenerOptions::agent_default() },
    );
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port: u16 = l.local_addr().rsplit_once(':').unwrap().1.parse().unwrap();
    let listener: Box<dyn Accept> = match tls {
        Some(t) => Box::new(TlsListener::new(l, t)),
        None => Box::new(l),
    };
    let shutdown = CancellationToken::new();
    let (k, s) = (kas.clone(), shutdown.clone());
    tokio::spawn(async move { k.serve_agents(listener, s).await });
    KasUnderTest { kas, port, shutdown }
}

fn start_agentk(kas_authority: &str, dialer: Dialer, shutdown: &CancellationToken) -> Agentk {
    let a = Agentk::new(
        AgentkOptions {
            kas_authority: kas_authority.to_owned(),
            token: TOKEN.into(),
            services: AgentServices::default().add_service(TestingService::server()),
            pool: PoolConfig::default(),
            seed: 1,
            version: "v18.6.0".into(),
            commit: "proxy".into(),
        },
        dialer,
        shutdown.child_token(),
    )
    .unwrap();
    a.start();
    a
}

async fn ping(kas: &Kas) -> String {
    let mut c = TestingClient::new(kas.router().channel(AGENT_ID));
    let r = tokio::time::timeout(
        Duration::from_secs(15),
        c.request_response(Request { s1: "via proxy?".into(), payload: vec![1; 100] }),
    )
    .await
    .expect("call finished")
    .expect("call succeeded");
    r.into_inner().s1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcs_through_https_proxy_with_a_custom_ca() {
    let (ca, cert, key) = pki("kas.test");
    let kas = start_kas(Some(&ServerTls::from_pem(cert.as_bytes(), key.as_bytes(), &[b"h2"]).unwrap())).await;
    let proxy = TestProxy::start(&["kas.test"], None).await;
    let e = env(&[("HTTPS_PROXY", format!("http://{}", proxy.addr)), ("HTTP_PROXY", "http://127.0.0.1:1".into())]);
    let direct = Arc::new(MappedTcp::default());
    let proxied = e.wrap(direct.clone(), true).unwrap();
    let tls = ClientTlsOptions { ca_pem: Some(ca.into_bytes()), ..Default::default() };
    let dialer: Dialer = Arc::new(TlsConnector::new(proxied, &tls).unwrap());
    let _a = start_agentk(&format!("kas.test:{}", kas.port), dialer, &kas.shutdown);
    assert_eq!(ping(&kas.kas).await, "via proxy?");
    let targets = proxy.targets();
    assert!(!targets.is_empty(), "the proxy saw no CONNECT");
    assert!(targets.iter().all(|t| *t == format!("kas.test:{}", kas.port)), "{targets:?}");
    // agentk itself only ever dialled the proxy.
    assert!(direct.dials.lock().unwrap().iter().all(|d| *d == proxy.addr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_uses_http_proxy_and_upper_case_wins() {
    let kas = start_kas(None).await;
    let upper = TestProxy::start(&["kas.test"], None).await;
    let lower = TestProxy::start(&["kas.test"], None).await;
    let e = env(&[
        ("HTTP_PROXY", format!("http://{}", upper.addr)),
        ("http_proxy", format!("http://{}", lower.addr)),
        ("HTTPS_PROXY", format!("http://{}", lower.addr)),
    ]);
    let dialer = e.wrap(Arc::new(TcpConnector), false).unwrap();
    let _a = start_agentk(&format!("kas.test:{}", kas.port), dialer, &kas.shutdown);
    assert_eq!(ping(&kas.kas).await, "via proxy?");
    assert!(!upper.targets().is_empty(), "HTTP_PROXY was not used");
    assert_eq!(lower.targets(), Vec::<String>::new(), "http_proxy and HTTPS_PROXY must not be used for grpc://");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_proxy_match_goes_direct_and_the_proxy_sees_nothing() {
    let kas = start_kas(None).await;
    let proxy = TestProxy::start(&["kas.internal"], None).await;
    let e = env(&[("HTTP_PROXY", format!("http://{}", proxy.addr)), ("no_proxy", "example.com, .internal".into())]);
    let direct = Arc::new(MappedTcp { names: vec!["kas.internal"], ..Default::default() });
    let dialer = e.wrap(direct.clone(), false).unwrap();
    let target = format!("kas.internal:{}", kas.port);
    let _a = start_agentk(&target, dialer, &kas.shutdown);
    assert_eq!(ping(&kas.kas).await, "via proxy?");
    assert_eq!(proxy.targets(), Vec::<String>::new());
    assert!(direct.dials.lock().unwrap().iter().all(|d| *d == target));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connect_names_the_proxy_and_its_status_and_credentials_are_sent() {
    let proxy = TestProxy::start(&[], Some("HTTP/1.1 407 Proxy Authentication Required")).await;
    let url = ProxyUrl::parse("HTTPS_PROXY", &format!("http://alice:s%3Dcret@{}", proxy.addr)).unwrap();
    let c = ProxyConnector::new(Arc::new(TcpConnector), url, NoProxy::parse(""));
    let err = c.connect("kas.test:443").await.err().unwrap();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    assert_eq!(
        err.to_string(),
        format!("proxy {}: CONNECT kas.test:443 refused: HTTP/1.1 407 Proxy Authentication Required", proxy.addr)
    );
    assert_eq!(proxy.targets(), vec!["kas.test:443".to_owned()]);
    use base64::Engine;
    let want = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("alice:s=cret"));
    assert_eq!(*proxy.auth.lock().unwrap(), vec![want]);
    // Nothing listens on port 1: the error says it was the proxy that could not be reached.
    let c = ProxyConnector::new(
        Arc::new(TcpConnector),
        ProxyUrl::parse("HTTPS_PROXY", "127.0.0.1:1").unwrap(),
        NoProxy::parse(""),
    );
    let err = c.connect("kas.test:443").await.err().unwrap();
    assert!(err.to_string().starts_with("dialing proxy 127.0.0.1:1 for kas.test:443: "), "{err}");
}

/// The real binaries: agentk finds its proxy in the environment, verifies kas with
/// `--ca-cert-file` through it, and kas (binary) forwards a routed call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agentk_binary_honours_https_proxy_with_ca_cert_file() {
    let gl = gitlab_server().await;
    let dir = tempdir("http-proxy-binaries");
    let (ca, cert, key) = pki("kas.test");
    let (ca, cert, key) = (write(&dir, "ca.pem", &ca), write(&dir, "kas.pem", &cert), write(&dir, "kas.key", &key));
    let secret = write(&dir, "secret", &secret_b64());
    let cfg = format!(
        "agent:\n  listen:\n    address: 127.0.0.1:0\n    certificate_file: {}\n    key_file: {}\nprivate_api:\n  listen:\n    address: 127.0.0.1:0\ngitlab:\n  address: http://{}\n  authentication_secret_file: {}\n",
        cert.display(),
        key.display(),
        gl.addr,
        secret.display()
    );
    let cfg = write(&dir, "kas.yaml", &cfg);
    let mut kas = Proc::spawn(env!("CARGO_BIN_EXE_kas"), &["--configuration-file", cfg.to_str().unwrap()], &[]).await;
    let private = kas.line("private API listening on").await;
    let private_url = private[private.find('(').unwrap() + 1..private.find(')').unwrap()].to_owned();
    let agent_addr = addr_after(&kas.line("agent listener on").await, "listener on ");
    let port = agent_addr.rsplit_once(':').unwrap().1;
    let proxy = TestProxy::start(&["kas.test"], None).await;
    let token = write(&dir, "token", &format!("{}\n", gl.token));
    let address = format!("grpcs://kas.test:{port}");
    let proxy_url = format!("http://{}", proxy.addr);
    let mut agentk = Proc::spawn(
        env!("CARGO_BIN_EXE_agentk"),
        &[
            "--kas-address",
            &address,
            "--token-file",
            token.to_str().unwrap(),
            "--ca-cert-file",
            ca.to_str().unwrap(),
            "--without-kubernetes-api",
        ],
        &[("https_proxy", "http://127.0.0.1:1"), ("HTTPS_PROXY", &proxy_url), ("NO_PROXY", "example.com")],
    )
    .await;
    let line = agentk.line("using HTTP CONNECT proxy").await;
    assert!(line.contains(&proxy.addr), "{line}");
    let router = Router::with_timeout(
        kasim_core::tunnel::registry::Registry::default(),
        Arc::new(StaticTracker::new(vec![private_url])),
        None,
        Arc::new(TcpConnector),
        Duration::from_secs(15),
    );
    let resp = TestingClient::new(router.channel(gl.agent_id))
        .request_response(Request { s1: "binary via proxy".into(), payload: vec![] })
        .await
        .unwrap();
    assert_eq!(resp.into_inner().s1, "binary via proxy");
    assert!(proxy.targets().iter().any(|t| *t == format!("kas.test:{port}")), "{:?}", proxy.targets());
}

#[tokio::test]
async fn agentk_binary_refuses_a_bad_proxy_url() {
    let cases = [
        (
            "HTTPS_PROXY",
            "https://example.com/proxy",
            "HTTPS_PROXY=\"https://example.com/proxy\": proxy scheme https:// is not supported",
        ),
        (
            "https_proxy",
            "http://proxy:99999",
            "https_proxy=\"http://proxy:99999\": invalid proxy URL: invalid port \"99999\"",
        ),
    ];
    for (var, value, want) in cases {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_agentk"))
            .args(["--kas-address", "grpcs://kas.example:443"])
            .env("AGENTK_TOKEN", "glagent-x")
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .env(var, value)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}={value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{var}={value}: {err}");
    }
}
