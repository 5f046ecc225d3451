//! The images as containers on a private Docker network: the GitLab stand-in, kas and agentk
//! (FROM scratch, static binaries). A Testing-service call from this process goes through kas's
//! private API into agentk's tunnel; then kas is killed and restarted, and the agent reconnects and
//! serves again.
//!
//! Gated by `KASIM_DOCKER_TESTS=1`: it runs `ci/build-images.sh` (a static release build, minutes the
//! first time); skipped with the reason when the gate is unset or Docker is unreachable.

use std::sync::Arc;
use std::time::Duration;

use kasim_conformance::images::{DEV_TAG, build_images, docker_available};
use kasim_conformance::standin::{KAS_SECRET, StandIn};
use kasim_core::kas::router::Router;
use kasim_core::kas::tracker::StaticTracker;
use kasim_core::proto::grpctool::test::Request;
use kasim_core::proto::grpctool::test::testing_client::TestingClient;
use kasim_core::transport::tcp::TcpConnector;
use testcontainers::core::{ContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{GenericImage, ImageExt};

const TOKEN_SEED: u64 = 7;

async fn call(private_url: &str, agent_id: i64) -> Result<String, tonic::Status> {
    let router = Router::with_timeout(
        kasim_core::tunnel::registry::Registry::default(),
        Arc::new(StaticTracker::new(vec![private_url.to_owned()])),
        None,
        Arc::new(TcpConnector),
        Duration::from_secs(3),
    );
    let mut client = TestingClient::new(router.channel(agent_id));
    let resp = client.request_response(Request { s1: "through containers".into(), payload: vec![1; 100] }).await?;
    Ok(resp.into_inner().s1)
}

/// Retries `call` until it succeeds or `limit` passes; returns the last error on timeout.
async fn eventually_call(private_url: &str, agent_id: i64, limit: Duration) -> Result<String, String> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match call(private_url, agent_id).await {
            Ok(s) => return Ok(s),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(format!("{e:?}")),
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_in_a_container_reconnects_after_kas_is_killed_and_restarted() {
    if std::env::var_os("KASIM_DOCKER_TESTS").is_none() {
        eprintln!("skipped: set KASIM_DOCKER_TESTS=1 to build the images and run kas/agentk as containers");
        return;
    }
    if let Err(e) = docker_available() {
        eprintln!("skipped: {e}");
        return;
    }
    let t0 = std::time::Instant::now();
    build_images(DEV_TAG).unwrap();
    eprintln!("images built after {:?}", t0.elapsed());
    let id = std::process::id();
    let network = format!("kasim-conf-{id}");
    let (gitlab_name, kas_name) = (format!("kasim-gitlab-{id}"), format!("kasim-kas-{id}"));

    // The stand-in's tokens derive from the seed: compute the agent's instead of logging it.
    let proxy_url = format!("http://{kas_name}:8154");
    let standin = StandIn::new(&proxy_url, "default", TOKEN_SEED).unwrap();
    let _gitlab = GenericImage::new("kasim/gitlab-stand-in", DEV_TAG)
        .with_wait_for(WaitFor::message_on_stdout("GitLab stand-in listening"))
        .with_network(&network)
        .with_container_name(&gitlab_name)
        .with_cmd(["--listen", "0.0.0.0:8080", "--k8s-proxy-url", &proxy_url, "--token-seed", &TOKEN_SEED.to_string()])
        .start()
        .await
        .unwrap();

    let kas_config = format!(
        "agent:\n  listen:\n    address: 0.0.0.0:8150\nprivate_api:\n  listen:\n    address: 0.0.0.0:8155\n  url: grpc://{kas_name}:8155\nkubernetes_api:\n  listen:\n    address: 0.0.0.0:8154\ngitlab:\n  address: http://{gitlab_name}:8080\n  authentication_secret_file: /etc/kas/secret\n"
    );
    use base64::Engine;
    let secret = base64::engine::general_purpose::STANDARD.encode(KAS_SECRET);
    let kas = GenericImage::new("kasim/kas", DEV_TAG)
        .with_exposed_port(ContainerPort::Tcp(8155))
        .with_wait_for(WaitFor::message_on_stdout("kas agent listener on"))
        .with_network(&network)
        .with_container_name(&kas_name)
        .with_copy_to("/etc/kas/config.yaml", kas_config.into_bytes())
        .with_copy_to("/etc/kas/secret", secret.into_bytes())
        .with_cmd(["--configuration-file", "/etc/kas/config.yaml"])
        .start()
        .await
        .unwrap();

    let _agentk = GenericImage::new("kasim/agentk", DEV_TAG)
        .with_wait_for(WaitFor::message_on_stdout("agentk connecting to"))
        .with_network(&network)
        .with_copy_to("/etc/agentk/token", standin.agent_token.clone().into_bytes())
        .with_cmd([
            "--kas-address",
            &format!("grpc://{kas_name}:8150"),
            "--token-file",
            "/etc/agentk/token",
            "--without-kubernetes-api",
        ])
        .start()
        .await
        .unwrap();

    let port = kas.get_host_port_ipv4(8155).await.unwrap();
    let s1 =
        eventually_call(&format!("grpc://127.0.0.1:{port}"), standin.agent_id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(s1, "through containers");
    eprintln!("first call through kas after {:?}", t0.elapsed());

    // Kill kas (SIGKILL, no grace) and start it again: agentk reconnects on its own.
    kas.stop_with_timeout(Some(0)).await.unwrap();
    let down = call(&format!("grpc://127.0.0.1:{port}"), standin.agent_id).await;
    assert!(down.is_err(), "kas is down, the call must fail: {down:?}");
    kas.start().await.unwrap();
    eprintln!("kas killed and restarted after {:?}", t0.elapsed());
    let port = kas.get_host_port_ipv4(8155).await.unwrap();
    let s1 =
        eventually_call(&format!("grpc://127.0.0.1:{port}"), standin.agent_id, Duration::from_secs(90)).await.unwrap();
    assert_eq!(s1, "through containers");
    eprintln!("served again after {:?}", t0.elapsed());
}
