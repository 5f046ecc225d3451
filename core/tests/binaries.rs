//! The real `kas` and `agentk` binaries on loopback TCP (and TLS), with the GitLab stand-in serving
//! agent_info over HTTP. The test process plays a second kas: it routes calls through the kas
//! binary's private API (gateway) into the tunnel.

#[path = "common/procs.rs"]
mod procs;

use std::sync::Arc;

use kasim_core::kas::router::Router;
use kasim_core::kas::tracker::StaticTracker;
use kasim_core::proto::grpctool::test::Request;
use kasim_core::proto::grpctool::test::testing_client::TestingClient;
use kasim_core::transport::tcp::TcpConnector;
use procs::*;

struct Started {
    _kas: Proc,
    _agentk: Proc,
    private_url: String,
}

async fn start(gl: &GitLabServer, dir: &std::path::Path, tls: Option<(&str, &str, &str, &str)>) -> Started {
    let secret = write(dir, "secret", &secret_b64());
    let tls_lines =
        tls.map_or(String::new(), |(cert, key, _, _)| format!("    certificate_file: {cert}\n    key_file: {key}\n"));
    let cfg = format!(
        "agent:\n  listen:\n    address: 127.0.0.1:0\n{tls_lines}private_api:\n  listen:\n    address: 127.0.0.1:0\ngitlab:\n  address: http://{}\n  authentication_secret_file: {}\n",
        gl.addr,
        secret.display()
    );
    let cfg = write(dir, "kas.yaml", &cfg);
    let mut kas = Proc::spawn(env!("CARGO_BIN_EXE_kas"), &["--configuration-file", cfg.to_str().unwrap()], &[]).await;
    let private = kas.line("private API listening on").await;
    let private_url = private[private.find("(").unwrap() + 1..private.find(")").unwrap()].to_owned();
    let agent_line = kas.line("agent listener on").await;
    let agent_addr = addr_after(&agent_line, "listener on ");
    let token = write(dir, "token", &format!("{}\n", gl.token));
    let agentk = match tls {
        None => {
            let a = format!("grpc://{agent_addr}");
            Proc::spawn(
                env!("CARGO_BIN_EXE_agentk"),
                &["--kas-address", &a, "--token-file", token.to_str().unwrap(), "--without-kubernetes-api"],
                &[],
            )
            .await
        }
        Some((_, _, ca, server_name)) => {
            let a = format!("grpcs://{agent_addr}");
            let args = [
                "--kas-address",
                &a,
                "--token-file",
                token.to_str().unwrap(),
                "--ca-cert-file",
                ca,
                "--kas-tls-server-name",
                server_name,
                "--without-kubernetes-api",
            ];
            Proc::spawn(env!("CARGO_BIN_EXE_agentk"), &args, &[]).await
        }
    };
    Started { _kas: kas, _agentk: agentk, private_url }
}

async fn call(private_url: &str, agent_id: i64) -> Result<kasim_core::proto::grpctool::test::Response, tonic::Status> {
    let router = Router::with_timeout(
        kasim_core::tunnel::registry::Registry::default(),
        Arc::new(StaticTracker::new(vec![private_url.to_owned()])),
        None,
        Arc::new(TcpConnector),
        std::time::Duration::from_secs(5),
    );
    let mut client = TestingClient::new(router.channel(agent_id));
    let resp = client.request_response(Request { s1: "through the binaries".into(), payload: vec![7; 1000] }).await?;
    Ok(resp.into_inner())
}

async fn round_trip(private_url: &str, agent_id: i64) {
    let resp = call(private_url, agent_id).await.unwrap();
    assert_eq!(resp.s1, "through the binaries");
    assert_eq!(resp.payload, vec![7; 1000]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_round_trip_through_kas_and_agentk_binaries() {
    let gl = gitlab_server().await;
    let dir = tempdir("binaries-plain");
    let s = start(&gl, &dir, None).await;
    round_trip(&s.private_url, gl.agent_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_round_trip_over_tls_with_a_generated_ca() {
    let gl = gitlab_server().await;
    let dir = tempdir("binaries-tls");
    let pki = pki("kas.test");
    let (ca, cert, key) =
        (write(&dir, "ca.pem", &pki.0), write(&dir, "kas.pem", &pki.1), write(&dir, "kas.key", &pki.2));
    let s =
        start(&gl, &dir, Some((cert.to_str().unwrap(), key.to_str().unwrap(), ca.to_str().unwrap(), "kas.test"))).await;
    round_trip(&s.private_url, gl.agent_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_name_the_certificate_does_not_carry_never_connects() {
    let gl = gitlab_server().await;
    let dir = tempdir("binaries-tls-wrong-name");
    let pki = pki("kas.test");
    let (ca, cert, key) =
        (write(&dir, "ca.pem", &pki.0), write(&dir, "kas.pem", &pki.1), write(&dir, "kas.key", &pki.2));
    let s = start(&gl, &dir, Some((cert.to_str().unwrap(), key.to_str().unwrap(), ca.to_str().unwrap(), "other.test")))
        .await;
    let err = call(&s.private_url, gl.agent_id).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::DeadlineExceeded, "{err:?}");
}

#[tokio::test]
async fn agentk_refuses_bad_flags_with_a_clear_error() {
    let dir = tempdir("binaries-flags");
    let token = write(&dir, "token", "glagent-x\n");
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec!["--kas-address", "wss://kas.example"],
            vec![("AGENTK_TOKEN", "t")],
            "scheme wss:// is not supported by kasim",
        ),
        (vec!["--kas-address", "grpc://127.0.0.1:1"], vec![], "no agent token: use --token-file or AGENTK_TOKEN"),
        (
            vec!["--kas-address", "grpc://127.0.0.1:1", "--token-file", token.to_str().unwrap()],
            vec![("AGENTK_TOKEN", "t")],
            "both --token-file and AGENTK_TOKEN are set",
        ),
        (
            vec!["--kas-address", "grpc://127.0.0.1:1", "--ca-cert-file", "/nonexistent"],
            vec![("AGENTK_TOKEN", "t")],
            "TLS flags given but grpc://127.0.0.1:1 is not grpcs://",
        ),
    ];
    for (args, envs, want) in cases {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_agentk"));
        cmd.args(&args).env_remove("AGENTK_TOKEN");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[tokio::test]
async fn kas_refuses_a_bad_config_naming_file_line_and_field() {
    let dir = tempdir("binaries-kas-config");
    let cfg = write(
        &dir,
        "kas.yaml",
        "agent:\n  listen:\n    adress: x\ngitlab:\n  address: http://x\n  authentication_secret_file: s\n",
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kas"))
        .args(["--configuration-file", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:3:5: agent.listen.adress: unknown field `adress`", cfg.display())), "{err}");
}

/// The whole path with binaries: a CI job's kubeconfig → kas binary's k8s proxy → tunnel → agentk
/// binary's Kubernetes API module → the API server model (agentk reads its kubeconfig with --kubeconfig).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_job_reaches_the_cluster_through_the_binaries() {
    use k8s_openapi::api::authentication::v1::SelfSubjectReview;
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, ListParams, PostParams};

    let gl = gitlab_server().await;
    let dir = tempdir("binaries-k8s");
    let sa = "system:serviceaccount:gitlab-agent:agentk";
    let apiserver = kasim_apiserver::ApiServer::builder(kasim_apiserver::KubeVersion::V1_33)
        .token("sa-token", kasim_apiserver::UserInfo { username: sa.into(), ..Default::default() })
        .yaml("apiVersion: v1\nkind: Namespace\nmetadata: {name: default}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: agentk-admin}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\nsubjects:\n- {kind: ServiceAccount, name: agentk, namespace: gitlab-agent}\n")
        .build()
        .unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let a = apiserver.clone();
            tokio::spawn(async move {
                let _ = a.serve_connection(s).await;
            });
        }
    });
    let agent_kubeconfig = write(
        &dir,
        "agentk-kubeconfig",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: m\n  cluster: {{server: 'http://{api_addr}'}}\nusers:\n- name: sa\n  user: {{token: sa-token}}\ncontexts:\n- name: m\n  context: {{cluster: m, user: sa}}\ncurrent-context: m\n"
        ),
    );
    let secret = write(&dir, "secret", &secret_b64());
    let cfg = format!(
        "agent:\n  listen:\n    address: 127.0.0.1:0\nkubernetes_api:\n  listen:\n    address: 127.0.0.1:0\n  url_path_prefix: /k8s-proxy/\ngitlab:\n  address: http://{}\n  authentication_secret_file: {}\n",
        gl.addr,
        secret.display()
    );
    let cfg = write(&dir, "kas.yaml", &cfg);
    let mut kas = Proc::spawn(env!("CARGO_BIN_EXE_kas"), &["--configuration-file", cfg.to_str().unwrap()], &[]).await;
    let agent_addr = addr_after(&kas.line("agent listener on").await, "listener on ");
    let proxy_url = addr_after(&kas.line("k8s proxy on").await, "proxy on ");
    let token = write(&dir, "token", &gl.token);
    let a = format!("grpc://{agent_addr}");
    let _agentk = Proc::spawn(
        env!("CARGO_BIN_EXE_agentk"),
        &[
            "--kas-address",
            &a,
            "--token-file",
            token.to_str().unwrap(),
            "--kubeconfig",
            agent_kubeconfig.to_str().unwrap(),
        ],
        &[],
    )
    .await;

    // A job in the agent's own project is implicitly authorized, acting as the agent.
    let user = gl.gitlab.add_user(None, "ci-user").unwrap();
    let (_, job_token) = gl
        .gitlab
        .add_job(kasim_gitlab::NewJob {
            id: None,
            project: gl.project,
            pipeline_id: 1,
            user,
            environment: None,
            ref_protected: false,
            token: None,
        })
        .unwrap();
    let yaml = gl.gitlab.ci_kubeconfig(&job_token).unwrap();
    let mut kc = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
    for c in &mut kc.clusters {
        c.cluster.as_mut().unwrap().server = Some(proxy_url.trim_end_matches('/').to_owned());
    }
    let ctx = kc.contexts[0].name.clone();
    assert_eq!(ctx, "group/agents:prod");
    let opts = kube::config::KubeConfigOptions { context: Some(ctx), ..Default::default() };
    let client = kube::Client::try_from(kube::Config::from_custom_kubeconfig(kc, &opts).await.unwrap()).unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let list = tokio::time::timeout(std::time::Duration::from_secs(30), pods.list(&ListParams::default()))
        .await
        .unwrap()
        .unwrap();
    assert!(list.items.is_empty());
    let ssr: Api<SelfSubjectReview> = Api::all(client);
    let who = ssr.create(&PostParams::default(), &SelfSubjectReview::default()).await.unwrap();
    assert_eq!(
        who.status.unwrap().user_info.unwrap().username.as_deref(),
        Some(sa),
        "access_as agent: the agent's own identity"
    );
}

/// The agentk binary in receptive mode: it listens, kas dials in with a JWT signed by the URL
/// configuration's key, and forwarded calls are served. Bad receptive flags are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agentk_binary_in_receptive_mode_serves_kas() {
    use base64::Engine;
    use kasim_core::clock::SystemClock;
    use kasim_core::kas::receptive::{
        ReceptiveAgent, ReceptiveAgents, ReceptiveAuth, ReceptiveOptions, StaticReceptiveAgents,
    };
    use kasim_core::tunnel::registry::Registry;

    let dir = tempdir("binaries-receptive");
    let token = write(&dir, "token", "glagent-receptive\n");
    let seed = [7u8; 32];
    let public_key = base64::engine::general_purpose::STANDARD
        .encode(ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key().to_bytes());
    let mut agentk = Proc::spawn(
        env!("CARGO_BIN_EXE_agentk"),
        &[
            "--receptive-listen",
            "127.0.0.1:0",
            "--receptive-jwt-public-key",
            &public_key,
            "--token-file",
            token.to_str().unwrap(),
            "--without-kubernetes-api",
        ],
        &[],
    )
    .await;
    let addr = addr_after(&agentk.line("receptive listener on").await, "listener on ");

    let api = StaticReceptiveAgents::default();
    api.set(vec![ReceptiveAgent {
        agent_id: 21,
        url: format!("grpc://{addr}"),
        ca_cert: None,
        tls_host: None,
        auth: ReceptiveAuth::Jwt { private_key: seed },
    }]);
    let registry = Registry::default();
    let r = ReceptiveAgents::new(
        registry.clone(),
        Arc::new(api),
        Arc::new(TcpConnector),
        Arc::new(SystemClock),
        ReceptiveOptions { poll_period: std::time::Duration::from_millis(200), ..Default::default() },
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    let s = shutdown.clone();
    tokio::spawn(async move { r.run(s).await });
    let router = Router::with_timeout(
        registry,
        Arc::new(StaticTracker::new(vec![])),
        None,
        Arc::new(TcpConnector),
        std::time::Duration::from_secs(10),
    );
    let resp = TestingClient::new(router.channel(21))
        .request_response(Request { s1: "kas dialled in".into(), payload: vec![] })
        .await
        .unwrap();
    assert_eq!(resp.into_inner().s1, "kas dialled in");
    shutdown.cancel();

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_agentk"))
        .args(["--receptive-listen", "127.0.0.1:0", "--receptive-jwt-public-key", &public_key])
        .args(["--receptive-client-ca-file", "/ca.pem", "--without-kubernetes-api"])
        .env("AGENTK_TOKEN", "t")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("never both"), "{}", String::from_utf8_lossy(&out.stderr));
}
