//! `kas`: the GitLab agent server, kasim's implementation. See `kasim_core::kas::config` for the
//! configuration file.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use base64::Engine;
use clap::Parser;
use kasim_core::clock::SystemClock;
use kasim_core::kas::config::KasConfig;
use kasim_core::kas::gitlab::HttpGitLab;
use kasim_core::kas::k8s_proxy::K8sProxyOptions;
use kasim_core::kas::listener::{KEEPALIVE_INTERVAL, ListenerOptions};
use kasim_core::kas::tracker::StaticTracker;
use kasim_core::kas::{Kas, KasOptions};
use kasim_core::transport::tcp::{TcpConnector, TcpListener};
use kasim_core::transport::tls::{ClientTlsOptions, ServerTls, TlsConnector, TlsListener};
use kasim_core::transport::{Accept, Dialer};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(name = "kas", version, about = "GitLab agent server (kasim)")]
struct Args {
    /// kas configuration file (YAML).
    #[arg(long = "configuration-file")]
    configuration_file: PathBuf,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kas: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let cfg = KasConfig::load(&args.configuration_file).map_err(|e| e.to_string())?;
    let secret_path = &cfg.gitlab.authentication_secret_file;
    let secret_text = std::fs::read_to_string(secret_path).map_err(|e| format!("{}: {e}", secret_path.display()))?;
    let secret = base64::engine::general_purpose::STANDARD
        .decode(secret_text.trim())
        .map_err(|e| format!("{}: not base64: {e}", secret_path.display()))?;

    let (gitlab_tls, gitlab_authority) = match cfg.gitlab.address.split_once("://") {
        Some(("https", rest)) => (true, rest.trim_end_matches('/').to_owned()),
        Some((_, rest)) => (false, rest.trim_end_matches('/').to_owned()),
        None => return Err("gitlab.address: missing scheme".into()),
    };
    let gitlab_authority = if gitlab_authority.contains(':') {
        gitlab_authority
    } else {
        format!("{gitlab_authority}:{}", if gitlab_tls { 443 } else { 80 })
    };
    let tcp: Dialer = Arc::new(TcpConnector);
    let gitlab_dialer: Dialer = if gitlab_tls {
        let mut opts = ClientTlsOptions { alpn: vec![b"http/1.1".to_vec()], ..Default::default() };
        if let Some(ca) = &cfg.gitlab.ca_certificate_file {
            opts = opts.with_ca_file(ca).map_err(|e| e.to_string())?;
        }
        Arc::new(TlsConnector::new(tcp.clone(), &opts).map_err(|e| e.to_string())?)
    } else {
        tcp.clone()
    };
    let gitlab = Arc::new(HttpGitLab::new(gitlab_dialer, &gitlab_authority, secret, Arc::new(SystemClock)));

    let l = &cfg.agent.listen;
    let (agent_listener, agent_addr, _) =
        listen("agent.listen", &l.address, l.certificate_file.as_ref().zip(l.key_file.as_ref()), &[b"h2"]).await?;

    let shutdown = CancellationToken::new();
    let (private_listener, private_url, peers) = match &cfg.private_api {
        Some(p) => {
            let l = TcpListener::bind(&p.listen.address)
                .await
                .map_err(|e| format!("private_api.listen.address {}: {e}", p.listen.address))?;
            let url = p.url.clone().unwrap_or_else(|| format!("grpc://{}", l.local_addr()));
            println!("kas private API listening on {} ({url})", l.local_addr());
            (Some(l), Some(url), p.peers.clone())
        }
        None => (None, None, vec![]),
    };
    let listener_opts = ListenerOptions {
        max_connection_age: Some(cfg.max_connection_age()),
        max_connection_age_grace: cfg.max_connection_age_grace(),
        keepalive_interval: Some(KEEPALIVE_INTERVAL),
    };
    let kas = Kas::new(
        gitlab,
        Arc::new(StaticTracker::new(peers)),
        tcp,
        KasOptions { private_api_url: private_url, agent_listener: listener_opts },
    );
    println!(
        "kas agent listener on {agent_addr} (max connection age {}, grace {})",
        kasim_core::duration::format(cfg.max_connection_age()),
        kasim_core::duration::format(cfg.max_connection_age_grace())
    );
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(k) = &cfg.kubernetes_api {
        let tls = k.listen.certificate_file.as_ref().zip(k.listen.key_file.as_ref());
        let (listener, addr, scheme) =
            listen("kubernetes_api.listen", &k.listen.address, tls, &[b"h2", b"http/1.1"]).await?;
        println!("kas k8s proxy on {scheme}://{addr}{}", k.url_path_prefix);
        let proxy = kas.k8s_proxy(K8sProxyOptions {
            url_path_prefix: k.url_path_prefix.clone(),
            gitlab_external_url: cfg.gitlab.external_url.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            commit: option_env!("KASIM_COMMIT").unwrap_or("unknown").into(),
        });
        let s = shutdown.clone();
        tasks.spawn(async move { proxy.serve(listener, s).await });
    }
    {
        let (kas, s) = (kas.clone(), shutdown.clone());
        tasks.spawn(async move { kas.serve_agents(agent_listener, s).await });
    }
    if let Some(l) = private_listener {
        let (kas, s) = (kas.clone(), shutdown.clone());
        tasks.spawn(async move { kas.serve_private_api(Box::new(l), s).await });
    }
    {
        let (kas, s) = (kas.clone(), shutdown.clone());
        tasks.spawn(async move { kas.run_tracker(s).await });
    }
    let _ = tokio::signal::ctrl_c().await;
    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Binds `address` and, with a (certificate, key) pair, serves TLS with `alpn`. Returns the listener,
/// the bound address and its scheme (`http`/`https`). `field` names the config section in errors.
async fn listen(
    field: &str,
    address: &str,
    tls: Option<(&PathBuf, &PathBuf)>,
    alpn: &[&[u8]],
) -> Result<(Box<dyn Accept>, String, &'static str), String> {
    let tcp = TcpListener::bind(address).await.map_err(|e| format!("{field}.address {address}: {e}"))?;
    let addr = tcp.local_addr();
    Ok(match tls {
        Some((cert, key)) => {
            let tls = ServerTls::from_files(cert, key, alpn).map_err(|e| format!("{field}: {e}"))?;
            (Box::new(TlsListener::new(tcp, &tls)), addr, "https")
        }
        None => (Box::new(tcp), addr, "http"),
    })
}
