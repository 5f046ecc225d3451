//! The GitLab stand-in host (`gitlab`): kasim-gitlab's model served over simulated HTTP on port 80.
//! The model lives outside the host, so a bounce loses connections, not agents or tokens.

use std::sync::Arc;

use kasim_gitlab::GitLab;

use crate::trace::Trace;

/// The GitLab host's name and port.
pub const GITLAB_HOST: &str = "gitlab";
pub const GITLAB_PORT: u16 = 80;

/// `gitlab:80`.
pub fn authority() -> String {
    format!("{GITLAB_HOST}:{GITLAB_PORT}")
}

/// The GitLab host's software.
pub async fn run(gitlab: Arc<GitLab>, trace: Trace) -> turmoil::Result {
    let listener = turmoil::net::TcpListener::bind(("0.0.0.0", GITLAB_PORT)).await?;
    trace.record(GITLAB_HOST, "started");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        };
        let gitlab = gitlab.clone();
        tokio::spawn(async move {
            // A connection error is the client's business (kas maps it to Unavailable).
            let _ = gitlab.serve_connection(stream).await;
        });
    }
}
