//! Turns a scenario's `gitlab` and `cluster` sections into the simulator's [`Fixtures`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use kasim_apiserver::KubeVersion as ModelVersion;
use kasim_gitlab::{AgentId, GitLab, GroupId, JobEnvironment, JobId, NewJob, ProjectId, UserId, config_file_path};
use kasim_sim::fixtures::Fixtures;

use crate::spec::GitLabFixtures;
use crate::version::KubeVersion;

/// What the GitLab setup hands back to the runner: job tokens by job name and agent ids in order.
#[derive(Debug, Default)]
pub struct Issued {
    pub job_tokens: BTreeMap<String, String>,
    pub agent_ids: Vec<i64>,
}

/// Why fixtures cannot be built for a run.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("the API server model imitates only Kubernetes 1.31, 1.32 and 1.33, not {0}")]
    ModelVersion(KubeVersion),
}

/// The model version for `v`.
pub fn model_version(v: KubeVersion) -> Result<ModelVersion, FixtureError> {
    match v.minor {
        31 => Ok(ModelVersion::V1_31),
        32 => Ok(ModelVersion::V1_32),
        33 => Ok(ModelVersion::V1_33),
        _ => Err(FixtureError::ModelVersion(v)),
    }
}

/// Builds the fixtures; `issued` is filled while the world is built.
pub fn build(
    g: &GitLabFixtures,
    objects: &[serde_yaml_ng::Value],
    version: KubeVersion,
    issued: Arc<Mutex<Issued>>,
) -> Result<Fixtures, FixtureError> {
    let clusters = g.agents.len();
    let g = g.clone();
    let setup = move |gl: &GitLab| -> Result<Vec<AgentId>, String> {
        let e = |e: kasim_gitlab::ModelError| e.to_string();
        for grp in &g.groups {
            gl.add_group(Some(GroupId(grp.id)), grp.parent.map(GroupId), &grp.path).map_err(e)?;
        }
        for p in &g.projects {
            gl.add_project(Some(ProjectId(p.id)), GroupId(p.group), &p.path).map_err(e)?;
        }
        let mut users = vec![];
        if g.users.is_empty() {
            users.push(gl.add_user(Some(UserId(1)), "kasim").map_err(e)?);
        }
        for u in &g.users {
            users.push(gl.add_user(Some(UserId(u.id)), &u.username).map_err(e)?);
        }
        let mut ids = vec![];
        for a in &g.agents {
            let id = gl.add_agent(a.id.map(AgentId), ProjectId(a.project), &a.name).map_err(e)?;
            if let Some(cfg) = &a.config {
                let yaml = serde_yaml_ng::to_string(cfg).map_err(|e| e.to_string())?;
                gl.set_file(ProjectId(a.project), &config_file_path(&a.name), yaml).map_err(e)?;
            }
            ids.push(id);
        }
        let mut tokens = BTreeMap::new();
        for j in &g.jobs {
            let environment = j.environment.as_ref().map(|env| JobEnvironment {
                name: env.name.clone(),
                slug: env.slug.clone().unwrap_or_else(|| env.name.clone()),
                tier: env.tier.clone(),
            });
            let (_, token) = gl
                .add_job(NewJob {
                    id: j.id.map(JobId),
                    project: ProjectId(j.project),
                    pipeline_id: j.pipeline_id,
                    user: j.user.map_or(users[0], UserId),
                    environment,
                    ref_protected: j.protected,
                    token: None,
                })
                .map_err(e)?;
            tokens.insert(j.name.clone(), token);
        }
        let mut out = issued.lock().unwrap_or_else(|e| e.into_inner());
        out.job_tokens = tokens;
        out.agent_ids = ids.iter().map(|a| a.0).collect();
        Ok(ids)
    };
    let yaml: Vec<String> = objects.iter().filter_map(|o| serde_yaml_ng::to_string(o).ok()).collect();
    let cluster = yaml.join("---\n");
    Ok(Fixtures {
        kube_version: model_version(version)?,
        gitlab: Arc::new(setup),
        cluster_yaml: vec![cluster; clusters],
    })
}
