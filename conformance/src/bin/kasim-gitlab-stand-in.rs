//! `kasim-gitlab-stand-in`: the GitLab stand-in of a conformance run as a server, for running kas and
//! agentk as containers. The world is `kasim_conformance::standin::StandIn`; the agent token is
//! derived from `--token-seed`, so the test computes it with the same seed instead of the server
//! ever printing it.

use std::process::ExitCode;

use clap::Parser;
use kasim_conformance::standin::StandIn;

#[derive(Debug, Parser)]
#[command(name = "kasim-gitlab-stand-in", version, about = "GitLab stand-in for kasim conformance runs")]
struct Args {
    /// Address to serve the GitLab API on.
    #[arg(long, default_value = "0.0.0.0:8080")]
    listen: String,
    /// kas's Kubernetes API proxy URL as CI jobs reach it.
    #[arg(long, default_value = "http://kas:8154")]
    k8s_proxy_url: String,
    /// The run namespace (CI jobs' default namespace).
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Seed of the token generator.
    #[arg(long, default_value_t = 1)]
    token_seed: u64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = Args::parse();
    let standin = match StandIn::new(&args.k8s_proxy_url, &args.namespace, args.token_seed) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kasim-gitlab-stand-in: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("kasim-gitlab-stand-in: --listen {}: {e}", args.listen);
            return ExitCode::from(2);
        }
    };
    // Ready line for container wait conditions; names the agent, never its token.
    println!("GitLab stand-in listening on {} (agent id {})", args.listen, standin.agent_id);
    tokio::select! {
        _ = standin.serve(listener) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    ExitCode::SUCCESS
}
