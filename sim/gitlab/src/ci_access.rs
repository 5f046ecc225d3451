//! `ci_access` authorization: which agents a CI job may use
//! (`GET /api/v4/job/allowed_agents`).
//!
//! Mirrors Rails' refresh service, finder and filter service:
//! 1. Each agent config counts only its first [`AUTHORIZED_ENTITY_LIMIT`]
//!    project entries and first 500 group entries, indexed by lower-cased
//!    `id` (Ruby `first(500).index_by`, so among duplicates the **last**
//!    entry wins). Targets must exist and sit under the root group of the
//!    agent's config project; other entries are ignored.
//! 2. Candidates, in order: project entries for the job's project, implicit
//!    entries (agents of the job's own project, configuration `{}`), then
//!    group entries for the job project's ancestors, nearest ancestor first.
//!    Within one step agents are ordered by id.
//! 3. The first candidate per agent id wins ("most specific config wins"),
//!    **before** filtering, so a specific entry that then fails its filters
//!    hides broader entries for the same agent.
//! 4. Filters: entries with `protected_branches_only: true` are dropped unless
//!    the job's ref is protected; then `environments` (see
//!    [`crate::environment`]).
//!
//! A config that does not parse yields no authorizations (kas never posts an
//! invalid config, and this model has no memory of an older valid one).

use serde::Serialize;

use crate::config_file::CiAccessEntry;
use crate::environment::{EnvironmentError, environments_admit};
use crate::model::{AgentId, GitLab, GroupId, JobId, ModelError, ProjectId, State};

/// Rails `AUTHORIZED_ENTITY_LIMIT`: entries past this index are ignored.
pub const AUTHORIZED_ENTITY_LIMIT: usize = 500;

/// Why `allowed_agents` could not be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CiAccessError {
    /// No running job has this token (HTTP 401).
    #[error("unknown or inactive job token")]
    UnknownJobToken,
    /// An environment pattern did not compile (Rails raises: HTTP 500).
    #[error(transparent)]
    Environment(#[from] EnvironmentError),
    /// Inconsistent model state (HTTP 500).
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// `{"id": n}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IdRef {
    /// The id.
    pub id: i64,
}

/// One `allowed_agents[]` item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AllowedAgent {
    /// Agent id.
    pub id: i64,
    /// Project holding the agent's config.
    pub config_project: IdRef,
    /// The winning entry without `id` (`{}` for implicit access).
    pub configuration: CiAccessEntry,
}

/// `project` of the response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobProject {
    /// Project id.
    pub id: i64,
    /// Ancestor groups, **outermost first** (the order the docs' `ci_job`
    /// example shows: 23 then 25).
    pub groups: Vec<IdRef>,
}

/// `user` of the response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobUser {
    /// User id.
    pub id: i64,
    /// Username.
    pub username: String,
    /// The user's effective role in the job's project as a one-element list
    /// (`["developer"]`), empty when not a member.
    pub roles_in_project: Vec<String>,
}

/// `environment` of the response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobEnvironmentRef {
    /// Deployment tier.
    pub tier: String,
    /// Environment slug.
    pub slug: String,
}

/// The Rails `allowed_agents` JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AllowedAgentsForJob {
    /// Agents the job may use, in candidate order.
    pub allowed_agents: Vec<AllowedAgent>,
    /// `{"id": job id}`.
    pub job: IdRef,
    /// `{"id": pipeline id}`.
    pub pipeline: IdRef,
    /// Job's project and its groups.
    pub project: JobProject,
    /// User running the job.
    pub user: JobUser,
    /// Omitted when the job has no environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<JobEnvironmentRef>,
}

struct Candidate {
    agent: AgentId,
    config_project: ProjectId,
    entry: CiAccessEntry,
}

/// Last entry among the first 500 whose lower-cased id equals `path_lc`.
fn lookup<'a>(entries: &'a [CiAccessEntry], path_lc: &str) -> Option<&'a CiAccessEntry> {
    entries.iter().take(AUTHORIZED_ENTITY_LIMIT).rfind(|e| e.id.to_lowercase() == path_lc)
}

impl State {
    pub(crate) fn job_by_token(&self, token: &str) -> Result<JobId, CiAccessError> {
        match self.job_tokens.get(token) {
            Some(id) if self.jobs.get(id).is_some_and(|j| j.running) => Ok(*id),
            _ => Err(CiAccessError::UnknownJobToken),
        }
    }

    fn ci_candidates(&self, project: ProjectId) -> Result<Vec<Candidate>, ModelError> {
        let project_root = self.root_of_project(project)?;
        let project_path = self.project_full_path(project)?.to_lowercase();
        let ancestors = self.self_and_ancestors(self.project(project)?.group)?;
        let mut ancestor_paths = Vec::with_capacity(ancestors.len());
        for g in &ancestors {
            ancestor_paths.push(self.group_full_path(*g)?.to_lowercase());
        }

        let mut by_project = Vec::new();
        let mut implicit = Vec::new();
        let mut by_group: Vec<Vec<Candidate>> = ancestors.iter().map(|_| Vec::new()).collect();
        for (&agent_id, agent) in &self.agents {
            if agent.project == project {
                implicit.push(Candidate {
                    agent: agent_id,
                    config_project: agent.project,
                    entry: CiAccessEntry::default(),
                });
            }
            let Ok(cfg) = self.agent_config(agent_id) else {
                continue;
            };
            let Some(ci) = cfg.ci_access else { continue };
            // Everything below the config project's root group; the job's
            // project and all its ancestors share one root.
            if self.root_of_project(agent.project)? != project_root {
                continue;
            }
            if let Some(e) = lookup(&ci.projects, &project_path) {
                by_project.push(Candidate { agent: agent_id, config_project: agent.project, entry: e.clone() });
            }
            for (i, path) in ancestor_paths.iter().enumerate() {
                if let Some(e) = lookup(&ci.groups, path) {
                    by_group[i].push(Candidate { agent: agent_id, config_project: agent.project, entry: e.clone() });
                }
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        Ok(by_project
            .into_iter()
            .chain(implicit)
            .chain(by_group.into_iter().flatten())
            .filter(|c| seen.insert(c.agent))
            .collect())
    }

    pub(crate) fn allowed_agents(&self, job_token: &str) -> Result<AllowedAgentsForJob, CiAccessError> {
        let job_id = self.job_by_token(job_token)?;
        let job = self.jobs.get(&job_id).ok_or(CiAccessError::UnknownJobToken)?;
        let env_name = job.environment.as_ref().map(|e| e.name.as_str());
        let mut allowed_agents = Vec::new();
        for c in self.ci_candidates(job.project)? {
            if c.entry.protected_branches_only && !job.ref_protected {
                continue;
            }
            if !environments_admit(&c.entry.environments, env_name)? {
                continue;
            }
            allowed_agents.push(AllowedAgent {
                id: c.agent.0,
                config_project: IdRef { id: c.config_project.0 },
                configuration: c.entry,
            });
        }
        let mut groups: Vec<IdRef> = self
            .self_and_ancestors(self.project(job.project)?.group)?
            .into_iter()
            .map(|g: GroupId| IdRef { id: g.0 })
            .collect();
        groups.reverse();
        let user = self.user(job.user)?;
        Ok(AllowedAgentsForJob {
            allowed_agents,
            job: IdRef { id: job_id.0 },
            pipeline: IdRef { id: job.pipeline_id },
            project: JobProject { id: job.project.0, groups },
            user: JobUser {
                id: job.user.0,
                username: user.username.clone(),
                roles_in_project: self
                    .project_role(job.project, job.user)
                    .map(|r| vec![r.name().to_owned()])
                    .unwrap_or_default(),
            },
            environment: job
                .environment
                .as_ref()
                .map(|e| JobEnvironmentRef { tier: e.tier.clone(), slug: e.slug.clone() }),
        })
    }
}

impl GitLab {
    /// The `allowed_agents` answer for a running job's token.
    pub fn allowed_agents_for_job(&self, job_token: &str) -> Result<AllowedAgentsForJob, CiAccessError> {
        self.lock().allowed_agents(job_token)
    }
}
