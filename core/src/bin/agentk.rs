//! `agentk`: the GitLab agent for Kubernetes, kasim's implementation. Flags follow the real agentk.

use std::hash::BuildHasher;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use kasim_core::agentk::kube_backend::KubeBackend;
use kasim_core::agentk::kubernetes_api::KubernetesApiService;
use kasim_core::agentk::{AgentServices, Agentk, AgentkOptions, DEFAULT_VERSION, KasAddress, PoolConfig};
use kasim_core::testing_service::TestingService;
use kasim_core::transport::Dialer;
use kasim_core::transport::proxy::ProxyEnv;
use kasim_core::transport::tcp::TcpConnector;
use kasim_core::transport::tls::{ClientTlsOptions, TlsConnector};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(name = "agentk", version, about = "GitLab agent for Kubernetes (kasim)")]
struct Args {
    /// kas address: grpc://host:port or grpcs://host:port.
    #[arg(long, required_unless_present = "receptive_listen")]
    kas_address: Option<String>,
    /// Receptive mode: listen here and let kas dial in, instead of dialling kas.
    #[arg(long)]
    receptive_listen: Option<String>,
    /// Receptive mode, JWT: the public key GitLab generated for the URL configuration
    /// (base64, Helm `config.api.jwtPublicKey`).
    #[arg(long)]
    receptive_jwt_public_key: Option<String>,
    /// Receptive mode, mTLS: CA (PEM) whose client certificates kas presents. Never with a JWT key.
    #[arg(long)]
    receptive_client_ca_file: Option<PathBuf>,
    /// Receptive mode, grpcs://: the listener's certificate and key (PEM).
    #[arg(long, requires = "receptive_key_file")]
    receptive_cert_file: Option<PathBuf>,
    #[arg(long, requires = "receptive_cert_file")]
    receptive_key_file: Option<PathBuf>,
    /// File with the agent token (a trailing newline is trimmed). Alternatively set AGENTK_TOKEN.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Extra CA certificate (PEM) trusted for kas.
    #[arg(long)]
    ca_cert_file: Option<PathBuf>,
    /// Server name to verify kas's certificate against.
    #[arg(long)]
    kas_tls_server_name: Option<String>,
    /// Do not verify kas's certificate.
    #[arg(long)]
    kas_insecure_skip_tls_verify: bool,
    /// Seed for reconnect jitter (default: drawn at start and printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Kubeconfig for the cluster agentk acts in (default: inferred as kubectl does: KUBECONFIG,
    /// ~/.kube/config, then the in-cluster service account).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use.
    #[arg(long)]
    context: Option<String>,
    /// kasim only: run without the Kubernetes API module (tunnel tests without a cluster).
    #[arg(long)]
    without_kubernetes_api: bool,
}

/// Reads the token as agentk does: exactly one of `--token-file` and `AGENTK_TOKEN`, and the
/// variable is removed from the environment once read.
fn token(args: &Args) -> Result<String, String> {
    let env = std::env::var("AGENTK_TOKEN").ok().filter(|t| !t.is_empty());
    let token = match (&args.token_file, env) {
        (Some(_), Some(_)) => return Err("both --token-file and AGENTK_TOKEN are set; use one".into()),
        (None, None) => return Err("no agent token: use --token-file or AGENTK_TOKEN".into()),
        (Some(f), None) => {
            let t = std::fs::read_to_string(f).map_err(|e| format!("--token-file {}: {e}", f.display()))?;
            t.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&t).to_owned()
        }
        (None, Some(t)) => {
            // SAFETY: called before any other thread exists (the runtime starts afterwards).
            unsafe { std::env::remove_var("AGENTK_TOKEN") };
            t
        }
    };
    if token.is_empty() {
        return Err("the agent token is empty".into());
    }
    Ok(token)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let token = match token(&args) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("agentk: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    match rt.block_on(run(args, token)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agentk: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args, token: String) -> Result<(), String> {
    if let Some(listen) = &args.receptive_listen {
        let services = services(&args).await?;
        return serve_receptive(&args, listen, services).await;
    }
    let kas_address = args.kas_address.clone().unwrap_or_default();
    let addr: KasAddress = kas_address.parse().map_err(|e: kasim_core::agentk::address::AddressError| e.to_string())?;
    // HTTPS_PROXY (grpcs) or HTTP_PROXY (grpc), NO_PROXY; either case, upper case wins. The proxy
    // sits under TLS, so kas is verified end to end (custom CA, server name) through the tunnel.
    let proxy_env = ProxyEnv::from_lookup(|k| std::env::var(k).ok());
    if let Some(p) = proxy_env.proxy_for_kas(addr.tls).map_err(|e| e.to_string())? {
        println!("agentk using HTTP CONNECT proxy {} for kas (NO_PROXY={:?})", p.authority, proxy_env.no_proxy);
    }
    let tcp: Dialer = proxy_env.wrap(Arc::new(TcpConnector), addr.tls).map_err(|e| e.to_string())?;
    let dialer: Dialer = if addr.tls {
        let mut opts = ClientTlsOptions {
            server_name: args.kas_tls_server_name.clone(),
            insecure_skip_verify: args.kas_insecure_skip_tls_verify,
            ..Default::default()
        };
        if let Some(ca) = &args.ca_cert_file {
            opts = opts.with_ca_file(ca).map_err(|e| e.to_string())?;
        }
        Arc::new(TlsConnector::new(tcp, &opts).map_err(|e| e.to_string())?)
    } else {
        if args.ca_cert_file.is_some() || args.kas_tls_server_name.is_some() || args.kas_insecure_skip_tls_verify {
            return Err(format!("TLS flags given but {} is not grpcs://", kas_address));
        }
        tcp
    };
    // The only unseeded randomness: drawn once here, printed, and replayable with --seed.
    let seed = args.seed.unwrap_or_else(|| std::collections::hash_map::RandomState::new().hash_one(0u64));
    println!("agentk connecting to {} (seed {seed})", kas_address);
    let services = services(&args).await?;
    let shutdown = CancellationToken::new();
    let agent = Agentk::new(
        AgentkOptions {
            kas_authority: addr.authority.clone(),
            token,
            services,
            pool: PoolConfig::default(),
            seed,
            version: DEFAULT_VERSION.into(),
            commit: option_env!("KASIM_COMMIT").unwrap_or("unknown").into(),
        },
        dialer,
        shutdown.clone(),
    )
    .map_err(|e| e.to_string())?;
    agent.start();
    let _ = tokio::signal::ctrl_c().await;
    shutdown.cancel();
    Ok(())
}

/// agentk's module services: the test service, and the Kubernetes API module unless disabled.
async fn services(args: &Args) -> Result<AgentServices, String> {
    let mut services = AgentServices::default().add_service(TestingService::server());
    if !args.without_kubernetes_api {
        let opts = kube::config::KubeConfigOptions { context: args.context.clone(), ..Default::default() };
        let config = match &args.kubeconfig {
            Some(path) => {
                let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| format!("--kubeconfig {}: {e}", path.display()))?;
                kube::Config::from_custom_kubeconfig(kc, &opts).await.map_err(|e| format!("--kubeconfig {}: {e}", path.display()))?
            }
            None => kube::Config::infer().await.map_err(|e| {
                format!("no Kubernetes configuration (KUBECONFIG, ~/.kube/config or in-cluster): {e}; pass --kubeconfig or --without-kubernetes-api")
            })?,
        };
        println!("agentk Kubernetes API at {}", config.cluster_url);
        let backend = KubeBackend::from_kube_config(&config, Arc::new(TcpConnector)).map_err(|e| e.to_string())?;
        let commit = option_env!("KASIM_COMMIT").unwrap_or("unknown");
        services = services.add_service(KubernetesApiService::server(backend, DEFAULT_VERSION, commit));
    }
    Ok(services)
}

/// Receptive mode: serve kas's calls on `listen` (kas dials in, authenticated by JWT or mTLS).
async fn serve_receptive(args: &Args, listen: &str, services: AgentServices) -> Result<(), String> {
    use kasim_core::agentk::receptive;
    let public_key = match (&args.receptive_jwt_public_key, &args.receptive_client_ca_file) {
        (Some(_), Some(_)) => {
            return Err("use either --receptive-jwt-public-key or --receptive-client-ca-file, never both".into());
        }
        (None, None) => {
            return Err(
                "receptive mode needs --receptive-jwt-public-key (JWT) or --receptive-client-ca-file (mTLS)".into()
            );
        }
        (Some(k), None) => {
            Some(receptive::parse_public_key(k).map_err(|e| format!("--receptive-jwt-public-key: {e}"))?)
        }
        (None, Some(_)) => None,
    };
    let tcp = kasim_core::transport::tcp::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("--receptive-listen {listen}: {e}"))?;
    let addr = kasim_core::transport::Accept::local_addr(&tcp);
    let read = |p: &PathBuf| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let listener: Box<dyn kasim_core::transport::Accept> = match (&args.receptive_cert_file, &args.receptive_key_file) {
        (Some(cert), Some(key)) => {
            let tls = match &args.receptive_client_ca_file {
                Some(ca) => kasim_core::transport::tls::ServerTls::from_pem_with_client_ca(
                    &read(cert)?,
                    &read(key)?,
                    &[b"h2"],
                    &read(ca)?,
                ),
                None => kasim_core::transport::tls::ServerTls::from_pem(&read(cert)?, &read(key)?, &[b"h2"]),
            }
            .map_err(|e| e.to_string())?;
            Box::new(kasim_core::transport::tls::TlsListener::new(tcp, &tls))
        }
        _ if args.receptive_client_ca_file.is_some() => {
            return Err("mTLS needs --receptive-cert-file and --receptive-key-file".into());
        }
        _ => Box::new(tcp),
    };
    println!("agentk receptive listener on {addr}");
    let shutdown = CancellationToken::new();
    let opts = receptive::ReceptiveOptions {
        services,
        public_key,
        agent_id: None,
        meta: receptive::AgentMeta {
            version: DEFAULT_VERSION.into(),
            commit_id: option_env!("KASIM_COMMIT").unwrap_or("unknown").into(),
            ..Default::default()
        },
        clock: Arc::new(kasim_core::clock::SystemClock),
    };
    let s = shutdown.clone();
    let server = tokio::spawn(async move { receptive::serve(listener, opts, s).await });
    let _ = tokio::signal::ctrl_c().await;
    shutdown.cancel();
    server.await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())
}
