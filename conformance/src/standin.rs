//! The GitLab stand-in for a conformance run: one config project with one agent whose `ci_access`
//! authorizes one application project's CI jobs as `ci_job`, defaulting to the run namespace. Shared
//! by the in-process stack and the `kasim-gitlab-stand-in` binary (for containers).

use std::sync::Arc;

use kasim_gitlab::{Clock, GitLab, NewJob, Settings, config_file_path};

/// kas and the stand-in must agree on this secret (base64 in kas's `authentication_secret_file`).
/// Not a secret in any deployment sense: it only exists between kasim's own processes.
pub const KAS_SECRET: &[u8] = b"kasim-conformance-kas-secret-32b";

/// Wall-clock time: the kas binary signs its JWTs with real time.
#[derive(Debug)]
pub struct WallClock;

impl Clock for WallClock {
    fn now_unix(&self) -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
    }
}

/// The stand-in and the handles a run needs.
#[derive(Clone)]
pub struct StandIn {
    pub gitlab: GitLab,
    pub agent_id: i64,
    pub agent_token: String,
    app_project: kasim_gitlab::ProjectId,
    user: kasim_gitlab::UserId,
}

/// Why the stand-in could not be set up (a model error, named).
#[derive(Debug, thiserror::Error)]
#[error("GitLab stand-in: {0}")]
pub struct StandInError(String);

fn err(e: impl std::fmt::Display) -> StandInError {
    StandInError(e.to_string())
}

impl StandIn {
    /// `k8s_proxy_url`: kas's Kubernetes API proxy as CI jobs reach it (goes into their kubeconfig).
    pub fn new(k8s_proxy_url: &str, namespace: &str, token_seed: u64) -> Result<Self, StandInError> {
        let gitlab = GitLab::new(
            Settings { kas_jwt_secret: KAS_SECRET.to_vec(), k8s_proxy_url: k8s_proxy_url.to_owned(), token_seed },
            Arc::new(WallClock),
        );
        let group = gitlab.add_group(None, None, "kasim").map_err(err)?;
        let agents = gitlab.add_project(None, group, "agents").map_err(err)?;
        let app_project = gitlab.add_project(None, group, "app").map_err(err)?;
        let user = gitlab.add_user(None, "ci-user").map_err(err)?;
        let agent = gitlab.add_agent(None, agents, "conformance").map_err(err)?;
        let cfg = format!(
            "ci_access:\n  projects:\n    - id: kasim/app\n      default_namespace: {namespace}\n      access_as:\n        ci_job: {{}}\n"
        );
        gitlab.set_file(agents, &config_file_path("conformance"), cfg).map_err(err)?;
        let agent_token = gitlab.create_agent_token(agent).map_err(err)?;
        Ok(Self { gitlab, agent_id: agent.0, agent_token, app_project, user })
    }

    /// A new CI job in the application project; returns (job id, kubeconfig YAML for the job).
    pub fn ci_job(&self, pipeline_id: i64) -> Result<(i64, String), StandInError> {
        let (job, token) = self
            .gitlab
            .add_job(NewJob {
                id: None,
                project: self.app_project,
                pipeline_id,
                user: self.user,
                environment: None,
                ref_protected: false,
                token: None,
            })
            .map_err(err)?;
        let kubeconfig = self.gitlab.ci_kubeconfig(&token).map_err(err)?;
        Ok((job.0, kubeconfig))
    }

    /// Serves the stand-in on `listener` until the task is dropped.
    pub async fn serve(self, listener: tokio::net::TcpListener) {
        serve_gitlab(self.gitlab, listener).await;
    }
}

/// Serves `gitlab`'s HTTP API on `listener`, a task per connection, until the task is dropped.
pub async fn serve_gitlab(gitlab: GitLab, listener: tokio::net::TcpListener) {
    while let Ok((s, _)) = listener.accept().await {
        let gl = gitlab.clone();
        tokio::spawn(async move {
            let _ = gl.serve_connection(s).await;
        });
    }
}
