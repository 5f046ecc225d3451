//! A CI job's generated kubeconfig, used by the kube client, reaches the Kubernetes API through
//! kas → tunnel → agentk on loopback TCP. GitLab is the stand-in served over HTTP; the cluster is the
//! API server model, whose audit log shows the identity it saw.

#[path = "common/procs.rs"]
mod procs;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kasim_apiserver::{ApiServer, KubeVersion, UserInfo};
use kasim_core::agentk::kube_backend::KubeBackend;
use kasim_core::agentk::kubernetes_api::KubernetesApiService;
use kasim_core::agentk::{AgentServices, Agentk, AgentkOptions, PoolConfig};
use kasim_core::clock::SystemClock;
use kasim_core::kas::gitlab::HttpGitLab;
use kasim_core::kas::k8s_proxy::K8sProxyOptions;
use kasim_core::kas::listener::ListenerOptions;
use kasim_core::kas::tracker::StaticTracker;
use kasim_core::kas::{Kas, KasOptions};
use kasim_core::transport::Accept;
use kasim_core::transport::tcp::{TcpConnector, TcpListener};
use kasim_gitlab::{
    AgentId, GitLab, GroupId, JobEnvironment, JobId, NewJob, ProjectId, Settings, UserId, config_file_path,
};
use kube::api::{Api, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio_util::sync::CancellationToken;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const SA_TOKEN: &str = "agentk-service-account-token";
const SA: &str = "system:serviceaccount:gitlab-agent:agentk";
const CONTEXT: &str = "group1/agents:prod";

/// RBAC: agentk may impersonate; CI jobs (group gitlab:ci_job) may read pods and nothing else.
const CLUSTER_FIXTURES: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: default}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: gitlab-agent-impersonate}
rules:
- apiGroups: [""]
  resources: [users, groups, serviceaccounts]
  verbs: [impersonate]
- apiGroups: [authentication.k8s.io]
  resources: [uids, userextras/agent.gitlab.com/id, userextras/agent.gitlab.com/config_project_id, userextras/agent.gitlab.com/project_id, userextras/agent.gitlab.com/ci_pipeline_id, userextras/agent.gitlab.com/ci_job_id, userextras/agent.gitlab.com/username, userextras/agent.gitlab.com/environment_slug, userextras/agent.gitlab.com/environment_tier, userextras/agent.gitlab.com/access_type]
  verbs: [impersonate]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: gitlab-agent-impersonate}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: gitlab-agent-impersonate}
subjects:
- {kind: ServiceAccount, name: agentk, namespace: gitlab-agent}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: ci-read-pods}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ci-read-pods}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: ci-read-pods}
subjects:
- {kind: Group, name: "gitlab:ci_job", apiGroup: rbac.authorization.k8s.io}
"#;

struct Env {
    gitlab: GitLab,
    proxy_url: String,
    user: UserId,
    apiserver: ApiServer,
    job_token: String,
    other_job_token: String,
    shutdown: CancellationToken,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn serve_loopback<F, Fut>(serve: F) -> String
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(serve(s));
        }
    });
    addr
}

async fn env() -> Env {
    env_with(None, None).await
}

/// `tls`: serve the k8s proxy over TLS with (certificate PEM, key PEM), as GitLab does in production.
/// `upstream`: agentk's Kubernetes API address instead of the model's.
async fn env_with(tls: Option<(&str, &str)>, upstream: Option<String>) -> Env {
    let shutdown = CancellationToken::new();
    // The Kubernetes API server model.
    let apiserver = ApiServer::builder(KubeVersion::V1_32)
        .token(SA_TOKEN, UserInfo { username: SA.into(), ..Default::default() })
        .yaml(CLUSTER_FIXTURES)
        .build()
        .unwrap();
    let a = apiserver.clone();
    let api_addr = serve_loopback(move |s| {
        let a = a.clone();
        async move {
            let _ = a.serve_connection(s).await;
        }
    })
    .await;

    // kas's k8s proxy listener first: its URL goes into the CI kubeconfig.
    let proxy_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("{}://{}", if tls.is_some() { "https" } else { "http" }, proxy_listener.local_addr());
    let proxy_listener: Box<dyn Accept> = match tls {
        Some((cert, key)) => {
            let t =
                kasim_core::transport::tls::ServerTls::from_pem(cert.as_bytes(), key.as_bytes(), &[b"h2", b"http/1.1"])
                    .unwrap();
            Box::new(kasim_core::transport::tls::TlsListener::new(proxy_listener, &t))
        }
        None => Box::new(proxy_listener),
    };

    // GitLab: groups 23 > 25 > project 150 (the seed example), config project group1/agents with agent
    // `prod` authorizing project 150's jobs as ci_job; project group1/other is not authorized.
    let proxy_url_for_env = proxy_url.clone();
    let gitlab = GitLab::new(
        Settings { kas_jwt_secret: SECRET.to_vec(), k8s_proxy_url: proxy_url, token_seed: 3 },
        Arc::new(procs::WallClock),
    );
    let g23 = gitlab.add_group(Some(GroupId(23)), None, "group1").unwrap();
    let g25 = gitlab.add_group(Some(GroupId(25)), Some(g23), "group1-1").unwrap();
    let p150 = gitlab.add_project(Some(ProjectId(150)), g25, "project1").unwrap();
    let other = gitlab.add_project(Some(ProjectId(151)), g23, "other").unwrap();
    let cfg = gitlab.add_project(Some(ProjectId(100)), g23, "agents").unwrap();
    let user = gitlab.add_user(Some(UserId(7)), "alice").unwrap();
    let agent = gitlab.add_agent(Some(AgentId(2)), cfg, "prod").unwrap();
    gitlab
        .set_file(
            cfg,
            &config_file_path("prod"),
            "ci_access:\n  projects:\n    - id: group1/group1-1/project1\n      default_namespace: default\n      access_as:\n        ci_job: {}\nuser_access:\n  access_as:\n    user: {}\n  projects:\n    - id: group1/group1-1/project1\n",
        )
        .unwrap();
    let agent_token = gitlab.create_agent_token(agent).unwrap();
    let env = Some(JobEnvironment { name: "prod".into(), slug: "prod".into(), tier: "production".into() });
    let (_, job_token) = gitlab
        .add_job(NewJob {
            id: Some(JobId(1_074_499_489)),
            project: p150,
            pipeline_id: 555,
            user,
            environment: env,
            ref_protected: true,
            token: None,
        })
        .unwrap();
    let (_, other_job_token) = gitlab
        .add_job(NewJob {
            id: None,
            project: other,
            pipeline_id: 556,
            user,
            environment: None,
            ref_protected: true,
            token: None,
        })
        .unwrap();
    let g = gitlab.clone();
    let gitlab_addr = serve_loopback(move |s| {
        let g = g.clone();
        async move {
            let _ = g.serve_connection(s).await;
        }
    })
    .await;

    // kas.
    let kas = Kas::new(
        Arc::new(HttpGitLab::new(Arc::new(TcpConnector), &gitlab_addr, SECRET.to_vec(), Arc::new(SystemClock))),
        Arc::new(StaticTracker::default()),
        Arc::new(TcpConnector),
        KasOptions { private_api_url: None, agent_listener: ListenerOptions::agent_default() },
    );
    let agent_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent_addr = agent_listener.local_addr();
    let (k, s) = (kas.clone(), shutdown.clone());
    tokio::spawn(async move { k.serve_agents(Box::new(agent_listener), s).await });
    let proxy = kas.k8s_proxy(K8sProxyOptions::default());
    let s = shutdown.clone();
    tokio::spawn(async move { proxy.serve(proxy_listener, s).await });

    // agentk, with the Kubernetes API module talking to the model as its service account.
    let backend = KubeBackend::new(
        Arc::new(TcpConnector),
        &format!("http://{}", upstream.unwrap_or(api_addr)),
        Some(SA_TOKEN.into()),
    )
    .unwrap();
    let agentk = Agentk::new(
        AgentkOptions {
            kas_authority: agent_addr,
            token: agent_token,
            services: AgentServices::default().add_service(KubernetesApiService::server(backend, "v18.6.0", "test")),
            pool: PoolConfig::default(),
            seed: 1,
            version: "v18.6.0".into(),
            commit: "test".into(),
        },
        Arc::new(TcpConnector),
        shutdown.clone(),
    )
    .unwrap();
    agentk.start();
    Env { gitlab, proxy_url: proxy_url_for_env, user, apiserver, job_token, other_job_token, shutdown }
}

async fn client_for(env: &Env, token: &str, mutate: impl FnOnce(&mut Kubeconfig)) -> kube::Client {
    let yaml = env.gitlab.ci_kubeconfig(token).unwrap();
    let mut kc = Kubeconfig::from_yaml(&yaml).unwrap();
    mutate(&mut kc);
    let opts = KubeConfigOptions { context: Some(CONTEXT.into()), ..Default::default() };
    let config = kube::Config::from_custom_kubeconfig(kc, &opts).await.unwrap();
    kube::Client::try_from(config).unwrap()
}

fn api_error(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.message),
        other => panic!("expected a Status error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_job_kubeconfig_reaches_the_cluster_as_the_ci_job() {
    let env = env().await;
    let client = client_for(&env, &env.job_token, |_| {}).await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let list = tokio::time::timeout(Duration::from_secs(30), pods.list(&ListParams::default())).await.unwrap().unwrap();
    assert!(list.items.is_empty());

    // The identity the API server saw, read back with SelfSubjectReview through the proxy.
    let ssr: Api<SelfSubjectReview> = Api::all(client.clone());
    let review = ssr.create(&PostParams::default(), &SelfSubjectReview::default()).await.unwrap();
    let info = review.status.unwrap().user_info.unwrap();
    assert_eq!(info.username.as_deref(), Some("gitlab:ci_job:1074499489"));
    assert_eq!(
        info.groups.unwrap(),
        [
            "gitlab:ci_job",
            "gitlab:group:23",
            "gitlab:group_env_tier:23:production",
            "gitlab:group:25",
            "gitlab:group_env_tier:25:production",
            "gitlab:project:150",
            "gitlab:project_env:150:prod",
            "gitlab:project_env_tier:150:production",
            "system:authenticated"
        ]
    );
    let extra = info.extra.unwrap();
    let keys: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (k.as_str(), v[0].as_str())).collect();
    assert_eq!(
        keys,
        [
            ("agent.gitlab.com/ci_job_id", "1074499489"),
            ("agent.gitlab.com/ci_pipeline_id", "555"),
            ("agent.gitlab.com/config_project_id", "100"),
            ("agent.gitlab.com/environment_slug", "prod"),
            ("agent.gitlab.com/environment_tier", "production"),
            ("agent.gitlab.com/id", "2"),
            ("agent.gitlab.com/project_id", "150"),
            ("agent.gitlab.com/username", "alice")
        ]
    );
    // The audit log agrees: the agent's service account called, the CI job was impersonated.
    let audit = env.apiserver.audit();
    let last = audit.last().unwrap();
    assert_eq!(last.user.as_ref().unwrap().username, SA);
    assert_eq!(last.impersonated_user.as_ref().unwrap().username, "gitlab:ci_job:1074499489");

    // RBAC through the proxy: reading pods is allowed, writing configmaps is not.
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({"metadata": {"name": "x"}})).unwrap();
    let (code, msg) = api_error(cms.create(&PostParams::default(), &cm).await.unwrap_err());
    assert_eq!(code, 403);
    assert_eq!(
        msg,
        "configmaps is forbidden: User \"gitlab:ci_job:1074499489\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"default\""
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_carry_the_documented_status_and_message() {
    let env = env().await;
    // A bad job token.
    let c = client_for(&env, &env.job_token, |kc| {
        for u in &mut kc.auth_infos {
            if let Some(a) = &mut u.auth_info {
                a.token = Some("ci:2:not-a-job-token".to_owned().into());
            }
        }
    })
    .await;
    let (code, msg) = api_error(Api::<Pod>::default_namespaced(c).list(&ListParams::default()).await.unwrap_err());
    assert_eq!((code, msg.as_str()), (401, "GitLab Agent Server: Unauthorized: CI job token is not valid"));

    // A wrong agent id.
    let tok = env.job_token.clone();
    let c = client_for(&env, &env.job_token, |kc| {
        for u in &mut kc.auth_infos {
            if let Some(a) = &mut u.auth_info {
                a.token = Some(format!("ci:999:{tok}").into());
            }
        }
    })
    .await;
    let (code, msg) = api_error(Api::<Pod>::default_namespaced(c).list(&ListParams::default()).await.unwrap_err());
    assert_eq!((code, msg.as_str()), (403, "GitLab Agent Server: Forbidden: agentId is not allowed"));

    // A job in a project the agent does not authorize: its kubeconfig has no context for the agent,
    // and a hand-made token is refused.
    assert!(!env.gitlab.ci_kubeconfig(&env.other_job_token).unwrap().contains(CONTEXT));
    let other = env.other_job_token.clone();
    let c = client_for(&env, &env.job_token, |kc| {
        for u in &mut kc.auth_infos {
            if let Some(a) = &mut u.auth_info {
                a.token = Some(format!("ci:2:{other}").into());
            }
        }
    })
    .await;
    let (code, msg) = api_error(Api::<Pod>::default_namespaced(c).list(&ListParams::default()).await.unwrap_err());
    assert_eq!((code, msg.as_str()), (403, "GitLab Agent Server: Forbidden: agentId is not allowed"));

    // Nested impersonation: the job already impersonates (ci_job) and the client adds --as.
    let c = client_for(&env, &env.job_token, |kc| {
        for u in &mut kc.auth_infos {
            if let Some(a) = &mut u.auth_info {
                a.impersonate = Some("someone-else".into());
            }
        }
    })
    .await;
    let (code, msg) = api_error(Api::<Pod>::default_namespaced(c).list(&ListParams::default()).await.unwrap_err());
    assert_eq!(
        (code, msg.as_str()),
        (
            502,
            "GitLab Agent Server: Bad Gateway: nested impersonation is not supported - agent is already configured to impersonate an identity"
        )
    );
}

/// The same kubeconfig works for kubectl (skipped with a reason when kubectl is not installed).
/// kubectl sends credentials only over TLS (client-go reads user auth only for TLS transports), so
/// the proxy serves HTTPS here, as GitLab's does; the CA is passed with --certificate-authority.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_job_kubeconfig_works_with_kubectl() {
    if std::process::Command::new("kubectl").arg("version").arg("--client").output().is_err() {
        eprintln!("skipped: kubectl is not installed");
        return;
    }
    let (ca, cert, key) = procs::pki("127.0.0.1");
    let env = env_with(Some((&cert, &key)), None).await;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("kubectl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    let kc = dir.join("kubeconfig");
    std::fs::write(&kc, env.gitlab.ci_kubeconfig(&env.job_token).unwrap()).unwrap();
    let run = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.arg("--kubeconfig").arg(&kc).arg("--context").arg(CONTEXT).arg("--certificate-authority").arg(&ca_file);
        cmd.args(args).env("HOME", &dir);
        async move { cmd.output().await.unwrap() }
    };
    // `kubectl auth whoami` posts protobuf, which the API server model does not speak; the same
    // SelfSubjectReview posted as JSON with --raw reads the identity back.
    let ssr = dir.join("ssr.json");
    std::fs::write(&ssr, r#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#).unwrap();
    let out =
        run(&["create", "--raw", "/apis/authentication.k8s.io/v1/selfsubjectreviews", "-f", ssr.to_str().unwrap()])
            .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let review: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(review["status"]["userInfo"]["username"], "gitlab:ci_job:1074499489");
    let out = run(&["get", "pods", "-o", "name"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["create", "configmap", "x"]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot create resource \"configmaps\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Watches stream through the proxy: an event arrives while the watch is still open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_stream_through_the_tunnel() {
    use futures_util::{StreamExt, TryStreamExt};
    let env = env().await;
    let client = client_for(&env, &env.job_token, |_| {}).await;
    let pods: Api<Pod> = Api::default_namespaced(client);
    let mut stream = pods.watch(&kube::api::WatchParams::default().timeout(60), "0").await.unwrap().boxed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    env.apiserver
        .create_object(serde_json::json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p1","namespace":"default"},"spec":{"containers":[{"name":"c","image":"x"}]}}))
        .unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
        .await
        .expect("event streamed before the watch ended");
    match ev.unwrap().unwrap() {
        kube::api::WatchEvent::Added(p) => assert_eq!(p.metadata.name.as_deref(), Some("p1")),
        other => panic!("unexpected {other:?}"),
    }
}

/// Upgrades (exec, attach, port-forward) continue as UpgradeData frames in both directions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgraded_connections_carry_bytes_both_ways() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // An upstream that switches protocols and echoes in upper case.
    let echo = serve_loopback(|s| async move {
        let svc = hyper::service::service_fn(|mut req: http::Request<hyper::body::Incoming>| async move {
            assert_eq!(req.headers()["upgrade"], "SPDY/3.1");
            let on = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let mut io = hyper_util::rt::TokioIo::new(on.await.unwrap());
                let mut buf = [0u8; 64];
                loop {
                    let n = io.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    let up: Vec<u8> = buf[..n].to_ascii_uppercase();
                    io.write_all(&up).await.unwrap();
                }
            });
            let mut r = http::Response::new(http_body_util::Empty::<bytes::Bytes>::new());
            *r.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
            r.headers_mut().insert("connection", "Upgrade".parse().unwrap());
            r.headers_mut().insert("upgrade", "SPDY/3.1".parse().unwrap());
            Ok::<_, std::convert::Infallible>(r)
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
            .with_upgrades()
            .await;
    })
    .await;
    let env = env_with(None, Some(echo)).await;
    let yaml = env.gitlab.ci_kubeconfig(&env.job_token).unwrap();
    let kc = Kubeconfig::from_yaml(&yaml).unwrap();
    let server = kc.clusters[0].cluster.as_ref().unwrap().server.clone().unwrap();
    let authority = server.trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(&authority).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn.with_upgrades());
    let req = http::Request::post("/api/v1/namespaces/default/pods/p/exec?command=sh")
        .header("host", &authority)
        .header("authorization", format!("Bearer ci:2:{}", env.job_token))
        .header("connection", "Upgrade")
        .header("upgrade", "SPDY/3.1")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(30), sender.send_request(req)).await.unwrap().unwrap();
    assert_eq!(resp.status(), http::StatusCode::SWITCHING_PROTOCOLS);
    let mut io = hyper_util::rt::TokioIo::new(hyper::upgrade::on(resp).await.unwrap());
    for word in ["hello", "through the tunnel"] {
        io.write_all(word.as_bytes()).await.unwrap();
        let mut got = vec![0u8; word.len()];
        tokio::time::timeout(Duration::from_secs(10), io.read_exact(&mut got)).await.unwrap().unwrap();
        assert_eq!(got, word.to_uppercase().as_bytes());
    }
}

/// User access with a personal access token: the proxy impersonates the GitLab user with role groups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_access_token_acts_as_the_gitlab_user() {
    let env = env().await;
    env.gitlab.add_project_member(ProjectId(150), env.user, kasim_gitlab::Role::Developer).unwrap();
    let pat = env.gitlab.add_pat(env.user, &["k8s_proxy"]).unwrap();
    let kc = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: gitlab\n  cluster: {{server: '{}'}}\nusers:\n- name: alice\n  user: {{token: 'pat:2:{pat}'}}\ncontexts:\n- name: c\n  context: {{cluster: gitlab, user: alice}}\ncurrent-context: c\n",
        env.proxy_url
    );
    let kc = Kubeconfig::from_yaml(&kc).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let review = Api::<SelfSubjectReview>::all(client)
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .unwrap();
    let info = review.status.unwrap().user_info.unwrap();
    assert_eq!(info.username.as_deref(), Some("gitlab:user:alice"));
    assert_eq!(info.groups.unwrap(), ["gitlab:user", "gitlab:project_role:150:developer", "system:authenticated"]);
    let extra = info.extra.unwrap();
    assert_eq!(extra["agent.gitlab.com/access_type"], ["personal_access_token"]);

    // A PAT without the k8s_proxy scope is refused by GitLab, and kas says so.
    let weak = env.gitlab.add_pat(env.user, &["read_api"]).unwrap();
    let kc = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: gitlab\n  cluster: {{server: '{}'}}\nusers:\n- name: alice\n  user: {{token: 'pat:2:{weak}'}}\ncontexts:\n- name: c\n  context: {{cluster: gitlab, user: alice}}\ncurrent-context: c\n",
        env.proxy_url
    );
    let config =
        kube::Config::from_custom_kubeconfig(Kubeconfig::from_yaml(&kc).unwrap(), &KubeConfigOptions::default())
            .await
            .unwrap();
    let err = Api::<Pod>::default_namespaced(kube::Client::try_from(config).unwrap())
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert_eq!(
        api_error(err),
        (401, "GitLab Agent Server: Unauthorized: user is not authorized to access the agent".to_owned())
    );
}
