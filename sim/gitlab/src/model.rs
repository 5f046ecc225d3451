//! The GitLab state: groups, projects, users, agents, tokens, files, CI jobs.
//!
//! [`GitLab`] is a cheap-clone handle over one shared state, so the HTTP
//! server, the scenario driver and assertions all see the same world. Every
//! collection is a `BTreeMap` so no hash order can leak into output.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::clock::Clock;
use crate::config_file::{ConfigError, ConfigurationFile, config_file_path, parse_config_file};
use crate::names::{NameError, validate_agent_name};
use crate::token::TokenGenerator;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// Namespace id of a group.
    GroupId
);
id_type!(
    /// Project id.
    ProjectId
);
id_type!(
    /// User id.
    UserId
);
id_type!(
    /// `Clusters::Agent` id.
    AgentId
);
id_type!(
    /// CI job (build) id.
    JobId
);

/// Membership role (`Gitlab::Access`), ordered by access level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Access level 10.
    Guest,
    /// Access level 20.
    Reporter,
    /// Access level 30.
    Developer,
    /// Access level 40.
    Maintainer,
    /// Access level 50.
    Owner,
}

impl Role {
    /// Lower-case name as used in API output (`developer`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Role::Guest => "guest",
            Role::Reporter => "reporter",
            Role::Developer => "developer",
            Role::Maintainer => "maintainer",
            Role::Owner => "owner",
        }
    }
}

/// Runtime settings of the simulated instance.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Shared secret for `Gitlab-Kas-Api-Request` JWTs (raw bytes, i.e. the
    /// base64-decoded content of `.gitlab_kas_secret`).
    pub kas_jwt_secret: Vec<u8>,
    /// Public k8s-proxy URL written into CI kubeconfigs, e.g.
    /// `https://kas.example.com/k8s-proxy`.
    pub k8s_proxy_url: String,
    /// Seed of the token generator: same seed, same tokens.
    pub token_seed: u64,
}

/// The CI environment a job deploys to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEnvironment {
    /// Environment name, matched against `environments` patterns (`review/x`).
    pub name: String,
    /// URL-safe slug, reported to kas.
    pub slug: String,
    /// Deployment tier (`production`, `staging`, ...).
    pub tier: String,
}

/// Input to [`GitLab::add_job`].
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Explicit job id; `None` = next free.
    pub id: Option<JobId>,
    /// Project the job runs in.
    pub project: ProjectId,
    /// Pipeline id (not otherwise modelled).
    pub pipeline_id: i64,
    /// User the job runs as.
    pub user: UserId,
    /// Environment, if the job deploys.
    pub environment: Option<JobEnvironment>,
    /// Whether the pipeline ref is protected.
    pub ref_protected: bool,
    /// Explicit job token; `None` = generated.
    pub token: Option<String>,
}

/// Errors of the model API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// No such object.
    #[error("{kind} {id} not found")]
    NotFound {
        /// `group`, `project`, ...
        kind: &'static str,
        /// Id looked up.
        id: i64,
    },
    /// An explicit id is already used.
    #[error("{kind} id {id} is already taken")]
    IdTaken {
        /// `group`, `project`, ...
        kind: &'static str,
        /// Id requested.
        id: i64,
    },
    /// Another group or project has this full path (case-insensitive).
    #[error("path {0:?} has already been taken")]
    PathTaken(String),
    /// A path segment GitLab would refuse.
    #[error(
        "path {0:?} can contain only letters, digits, '_', '-' and '.', and must start with a letter, digit or '_'"
    )]
    InvalidPath(String),
    /// Username already used (case-insensitive).
    #[error("username {0:?} has already been taken")]
    UsernameTaken(String),
    /// The agent name breaks the naming rule.
    #[error("invalid agent name {name:?}: {source}")]
    AgentName {
        /// Refused name.
        name: String,
        /// Which rule.
        source: NameError,
    },
    /// The project already has an agent with this name.
    #[error("agent name {name:?} has already been taken in project {project}")]
    AgentNameTaken {
        /// Project of the clash.
        project: ProjectId,
        /// Clashing name.
        name: String,
    },
    /// Unknown (or already revoked) token.
    #[error("token not found")]
    UnknownToken,
    /// A token string is used twice.
    #[error("token is already in use")]
    TokenTaken,
    /// The agent's config file does not parse.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) path: String,
    pub(crate) parent: Option<GroupId>,
}

#[derive(Debug)]
pub(crate) struct Project {
    pub(crate) path: String,
    pub(crate) group: GroupId,
    pub(crate) default_branch: String,
    pub(crate) files: BTreeMap<String, Vec<u8>>,
}

#[derive(Debug)]
pub(crate) struct User {
    pub(crate) username: String,
}

#[derive(Debug)]
pub(crate) struct Agent {
    pub(crate) name: String,
    pub(crate) project: ProjectId,
}

#[derive(Debug)]
pub(crate) struct AgentToken {
    pub(crate) agent: AgentId,
    pub(crate) revoked: bool,
}

#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) project: ProjectId,
    pub(crate) pipeline_id: i64,
    pub(crate) user: UserId,
    pub(crate) environment: Option<JobEnvironment>,
    pub(crate) ref_protected: bool,
    pub(crate) running: bool,
}

#[derive(Debug)]
pub(crate) struct Pat {
    pub(crate) user: UserId,
    pub(crate) scopes: Vec<String>,
    pub(crate) revoked: bool,
}

#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) user: UserId,
    pub(crate) csrf_token: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Group(GroupId),
    Project(ProjectId),
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) groups: BTreeMap<GroupId, Group>,
    pub(crate) projects: BTreeMap<ProjectId, Project>,
    routes: BTreeMap<String, Route>,
    pub(crate) users: BTreeMap<UserId, User>,
    usernames: BTreeMap<String, UserId>,
    pub(crate) project_members: BTreeMap<(ProjectId, UserId), Role>,
    pub(crate) group_members: BTreeMap<(GroupId, UserId), Role>,
    pub(crate) agents: BTreeMap<AgentId, Agent>,
    pub(crate) agent_tokens: BTreeMap<String, AgentToken>,
    pub(crate) jobs: BTreeMap<JobId, Job>,
    pub(crate) job_tokens: BTreeMap<String, JobId>,
    pub(crate) pats: BTreeMap<String, Pat>,
    pub(crate) sessions: BTreeMap<String, Session>,
    tokens: TokenGenerator,
    pub(crate) receptive: crate::url_configuration::ReceptiveState,
    pub(crate) versions: crate::version_skew::VersionState,
}

/// Handle to one simulated GitLab instance. Clones share state.
#[derive(Clone)]
pub struct GitLab {
    state: Arc<Mutex<State>>,
    settings: Arc<Settings>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for GitLab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitLab").field("k8s_proxy_url", &self.settings.k8s_proxy_url).finish_non_exhaustive()
    }
}

fn next_id<K: Ord + Copy, V>(map: &BTreeMap<K, V>, get: impl Fn(K) -> i64) -> i64 {
    map.keys().next_back().map_or(1, |k| get(*k).saturating_add(1))
}

fn valid_segment(path: &str) -> bool {
    let Some(first) = path.chars().next() else {
        return false;
    };
    (first.is_ascii_alphanumeric() || first == '_')
        && path.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

impl GitLab {
    /// An empty instance.
    pub fn new(settings: Settings, clock: Arc<dyn Clock>) -> Self {
        let tokens = TokenGenerator::new(settings.token_seed);
        Self {
            state: Arc::new(Mutex::new(State {
                groups: BTreeMap::new(),
                projects: BTreeMap::new(),
                routes: BTreeMap::new(),
                users: BTreeMap::new(),
                usernames: BTreeMap::new(),
                project_members: BTreeMap::new(),
                group_members: BTreeMap::new(),
                agents: BTreeMap::new(),
                agent_tokens: BTreeMap::new(),
                jobs: BTreeMap::new(),
                job_tokens: BTreeMap::new(),
                pats: BTreeMap::new(),
                sessions: BTreeMap::new(),
                tokens,
                receptive: Default::default(),
                versions: Default::default(),
            })),
            settings: Arc::new(settings),
            clock,
        }
    }

    /// Instance settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Current virtual time from the injected clock.
    pub fn now_unix(&self) -> i64 {
        self.clock.now_unix()
    }

    /// Locks the state. A panic in another thread while holding the lock
    /// cannot leave the maps half-updated in a way we rely on, so poisoning
    /// is ignored rather than turned into a panic here.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates a group (top-level when `parent` is `None`).
    pub fn add_group(&self, id: Option<GroupId>, parent: Option<GroupId>, path: &str) -> Result<GroupId, ModelError> {
        let mut st = self.lock();
        if !valid_segment(path) {
            return Err(ModelError::InvalidPath(path.to_owned()));
        }
        let full = match parent {
            Some(p) => format!("{}/{path}", st.group_full_path(p)?),
            None => path.to_owned(),
        };
        let id = id.unwrap_or(GroupId(next_id(&st.groups, |g| g.0)));
        if st.groups.contains_key(&id) {
            return Err(ModelError::IdTaken { kind: "group", id: id.0 });
        }
        st.claim_route(&full, Route::Group(id))?;
        st.groups.insert(id, Group { path: path.to_owned(), parent });
        Ok(id)
    }

    /// Creates a project in `group`; its default branch is `main`.
    pub fn add_project(&self, id: Option<ProjectId>, group: GroupId, path: &str) -> Result<ProjectId, ModelError> {
        let mut st = self.lock();
        if !valid_segment(path) {
            return Err(ModelError::InvalidPath(path.to_owned()));
        }
        let full = format!("{}/{path}", st.group_full_path(group)?);
        let id = id.unwrap_or(ProjectId(next_id(&st.projects, |p| p.0)));
        if st.projects.contains_key(&id) {
            return Err(ModelError::IdTaken { kind: "project", id: id.0 });
        }
        st.claim_route(&full, Route::Project(id))?;
        st.projects.insert(
            id,
            Project { path: path.to_owned(), group, default_branch: "main".to_owned(), files: BTreeMap::new() },
        );
        Ok(id)
    }

    /// Full path such as `group/subgroup/project`.
    pub fn project_full_path(&self, project: ProjectId) -> Result<String, ModelError> {
        self.lock().project_full_path(project)
    }

    /// Full path such as `group/subgroup`.
    pub fn group_full_path(&self, group: GroupId) -> Result<String, ModelError> {
        self.lock().group_full_path(group)
    }

    /// Creates a user.
    pub fn add_user(&self, id: Option<UserId>, username: &str) -> Result<UserId, ModelError> {
        let mut st = self.lock();
        if !valid_segment(username) {
            return Err(ModelError::InvalidPath(username.to_owned()));
        }
        let key = username.to_lowercase();
        if st.usernames.contains_key(&key) {
            return Err(ModelError::UsernameTaken(username.to_owned()));
        }
        let id = id.unwrap_or(UserId(next_id(&st.users, |u| u.0)));
        if st.users.contains_key(&id) {
            return Err(ModelError::IdTaken { kind: "user", id: id.0 });
        }
        st.usernames.insert(key, id);
        st.users.insert(id, User { username: username.to_owned() });
        Ok(id)
    }

    /// Makes `user` a direct member of `project` (replacing an older role).
    pub fn add_project_member(&self, project: ProjectId, user: UserId, role: Role) -> Result<(), ModelError> {
        let mut st = self.lock();
        st.project(project)?;
        st.user(user)?;
        st.project_members.insert((project, user), role);
        Ok(())
    }

    /// Makes `user` a member of `group`; the role is inherited by every
    /// subgroup and project below it.
    pub fn add_group_member(&self, group: GroupId, user: UserId, role: Role) -> Result<(), ModelError> {
        let mut st = self.lock();
        st.group(group)?;
        st.user(user)?;
        st.group_members.insert((group, user), role);
        Ok(())
    }

    /// Registers an agent in `project` after checking the name rule and
    /// per-project uniqueness.
    pub fn add_agent(&self, id: Option<AgentId>, project: ProjectId, name: &str) -> Result<AgentId, ModelError> {
        let mut st = self.lock();
        st.project(project)?;
        validate_agent_name(name).map_err(|source| ModelError::AgentName { name: name.to_owned(), source })?;
        if st.agents.values().any(|a| a.project == project && a.name == name) {
            return Err(ModelError::AgentNameTaken { project, name: name.to_owned() });
        }
        let id = id.unwrap_or(AgentId(next_id(&st.agents, |a| a.0)));
        if st.agents.contains_key(&id) {
            return Err(ModelError::IdTaken { kind: "agent", id: id.0 });
        }
        st.agents.insert(id, Agent { name: name.to_owned(), project });
        Ok(id)
    }

    /// Issues a new active token for `agent`; an agent may hold several.
    pub fn create_agent_token(&self, agent: AgentId) -> Result<String, ModelError> {
        let mut st = self.lock();
        st.agent(agent)?;
        loop {
            let token = st.tokens.agent_token();
            if !st.agent_tokens.contains_key(&token) {
                st.agent_tokens.insert(token.clone(), AgentToken { agent, revoked: false });
                return Ok(token);
            }
        }
    }

    /// Revokes a token; later lookups treat it as unknown.
    pub fn revoke_agent_token(&self, token: &str) -> Result<(), ModelError> {
        let mut st = self.lock();
        match st.agent_tokens.get_mut(token) {
            Some(t) if !t.revoked => {
                t.revoked = true;
                Ok(())
            }
            _ => Err(ModelError::UnknownToken),
        }
    }

    /// The agent owning an **active** token.
    pub fn agent_for_token(&self, token: &str) -> Result<AgentId, ModelError> {
        self.lock().active_agent_token(token)
    }

    /// Writes a file on the project's default branch (e.g. an agent config).
    pub fn set_file(&self, project: ProjectId, path: &str, contents: impl Into<Vec<u8>>) -> Result<(), ModelError> {
        let mut st = self.lock();
        let p = st.projects.get_mut(&project).ok_or(ModelError::NotFound { kind: "project", id: project.0 })?;
        p.files.insert(path.to_owned(), contents.into());
        Ok(())
    }

    /// Deletes a file; deleting a missing file is not an error.
    pub fn delete_file(&self, project: ProjectId, path: &str) -> Result<(), ModelError> {
        let mut st = self.lock();
        let p = st.projects.get_mut(&project).ok_or(ModelError::NotFound { kind: "project", id: project.0 })?;
        p.files.remove(path);
        Ok(())
    }

    /// Parsed config of `agent`; a missing file is the empty config.
    pub fn agent_config(&self, agent: AgentId) -> Result<ConfigurationFile, ModelError> {
        self.lock().agent_config(agent)
    }

    /// Creates a running CI job and returns its id and job token.
    pub fn add_job(&self, job: NewJob) -> Result<(JobId, String), ModelError> {
        let mut st = self.lock();
        st.project(job.project)?;
        st.user(job.user)?;
        let id = job.id.unwrap_or(JobId(next_id(&st.jobs, |j| j.0)));
        if st.jobs.contains_key(&id) {
            return Err(ModelError::IdTaken { kind: "job", id: id.0 });
        }
        let token = match job.token {
            Some(t) => t,
            None => format!("glcbt-{}", st.tokens.friendly(20)),
        };
        if st.job_tokens.contains_key(&token) {
            return Err(ModelError::TokenTaken);
        }
        st.job_tokens.insert(token.clone(), id);
        st.jobs.insert(
            id,
            Job {
                project: job.project,
                pipeline_id: job.pipeline_id,
                user: job.user,
                environment: job.environment,
                ref_protected: job.ref_protected,
                running: true,
            },
        );
        Ok((id, token))
    }

    /// Finishes a job: its token stops authenticating, as in Rails.
    pub fn finish_job(&self, job: JobId) -> Result<(), ModelError> {
        let mut st = self.lock();
        let j = st.jobs.get_mut(&job).ok_or(ModelError::NotFound { kind: "job", id: job.0 })?;
        j.running = false;
        Ok(())
    }

    /// Issues a personal access token (`glpat-...`) with the given scopes.
    pub fn add_pat(&self, user: UserId, scopes: &[&str]) -> Result<String, ModelError> {
        let mut st = self.lock();
        st.user(user)?;
        let token = format!("glpat-{}", st.tokens.friendly(20));
        st.pats.insert(
            token.clone(),
            Pat { user, scopes: scopes.iter().map(|s| (*s).to_owned()).collect(), revoked: false },
        );
        Ok(token)
    }

    /// Revokes a personal access token.
    pub fn revoke_pat(&self, token: &str) -> Result<(), ModelError> {
        let mut st = self.lock();
        match st.pats.get_mut(token) {
            Some(p) if !p.revoked => {
                p.revoked = true;
                Ok(())
            }
            _ => Err(ModelError::UnknownToken),
        }
    }

    /// Signs `user` in: returns the `_gitlab_kas` cookie value and the CSRF
    /// token that must accompany it.
    pub fn add_session(&self, user: UserId) -> Result<(String, String), ModelError> {
        let mut st = self.lock();
        st.user(user)?;
        let cookie = st.tokens.friendly(32);
        let csrf = st.tokens.friendly(43);
        st.sessions.insert(cookie.clone(), Session { user, csrf_token: csrf.clone() });
        Ok((cookie, csrf))
    }
}

impl State {
    fn claim_route(&mut self, full: &str, route: Route) -> Result<(), ModelError> {
        let key = full.to_lowercase();
        if self.routes.contains_key(&key) {
            return Err(ModelError::PathTaken(full.to_owned()));
        }
        self.routes.insert(key, route);
        Ok(())
    }

    pub(crate) fn group(&self, id: GroupId) -> Result<&Group, ModelError> {
        self.groups.get(&id).ok_or(ModelError::NotFound { kind: "group", id: id.0 })
    }

    pub(crate) fn project(&self, id: ProjectId) -> Result<&Project, ModelError> {
        self.projects.get(&id).ok_or(ModelError::NotFound { kind: "project", id: id.0 })
    }

    pub(crate) fn user(&self, id: UserId) -> Result<&User, ModelError> {
        self.users.get(&id).ok_or(ModelError::NotFound { kind: "user", id: id.0 })
    }

    pub(crate) fn agent(&self, id: AgentId) -> Result<&Agent, ModelError> {
        self.agents.get(&id).ok_or(ModelError::NotFound { kind: "agent", id: id.0 })
    }

    pub(crate) fn active_agent_token(&self, token: &str) -> Result<AgentId, ModelError> {
        match self.agent_tokens.get(token) {
            Some(t) if !t.revoked => Ok(t.agent),
            _ => Err(ModelError::UnknownToken),
        }
    }

    /// The group and its ancestors, nearest first. Parents always exist
    /// before children, so the walk ends; the bound guards against bugs.
    pub(crate) fn self_and_ancestors(&self, group: GroupId) -> Result<Vec<GroupId>, ModelError> {
        let mut out = vec![group];
        let mut cur = self.group(group)?.parent;
        while let Some(g) = cur {
            if out.len() > self.groups.len() {
                break;
            }
            out.push(g);
            cur = self.group(g)?.parent;
        }
        Ok(out)
    }

    pub(crate) fn root_of_group(&self, group: GroupId) -> Result<GroupId, ModelError> {
        Ok(*self.self_and_ancestors(group)?.last().unwrap_or(&group))
    }

    pub(crate) fn root_of_project(&self, project: ProjectId) -> Result<GroupId, ModelError> {
        self.root_of_group(self.project(project)?.group)
    }

    pub(crate) fn group_full_path(&self, group: GroupId) -> Result<String, ModelError> {
        let chain = self.self_and_ancestors(group)?;
        let mut segs = Vec::with_capacity(chain.len());
        for g in chain.iter().rev() {
            segs.push(self.group(*g)?.path.as_str());
        }
        Ok(segs.join("/"))
    }

    pub(crate) fn project_full_path(&self, project: ProjectId) -> Result<String, ModelError> {
        let p = self.project(project)?;
        Ok(format!("{}/{}", self.group_full_path(p.group)?, p.path))
    }

    /// Case-insensitive route lookup (Rails `where_full_path_in`).
    pub(crate) fn project_by_path(&self, path: &str) -> Option<ProjectId> {
        match self.routes.get(&path.to_lowercase()) {
            Some(Route::Project(p)) => Some(*p),
            _ => None,
        }
    }

    /// Case-insensitive route lookup (Rails `where_full_path_in`).
    pub(crate) fn group_by_path(&self, path: &str) -> Option<GroupId> {
        match self.routes.get(&path.to_lowercase()) {
            Some(Route::Group(g)) => Some(*g),
            _ => None,
        }
    }

    /// Highest role from direct project membership or membership of any
    /// ancestor group.
    pub(crate) fn project_role(&self, project: ProjectId, user: UserId) -> Option<Role> {
        let direct = self.project_members.get(&(project, user)).copied();
        let inherited = self.projects.get(&project).and_then(|p| self.group_role(p.group, user));
        direct.max(inherited)
    }

    /// Highest role from membership of the group or any ancestor.
    pub(crate) fn group_role(&self, group: GroupId, user: UserId) -> Option<Role> {
        self.self_and_ancestors(group)
            .ok()?
            .into_iter()
            .filter_map(|g| self.group_members.get(&(g, user)).copied())
            .max()
    }

    pub(crate) fn agent_config(&self, agent: AgentId) -> Result<ConfigurationFile, ModelError> {
        let a = self.agent(agent)?;
        let path = config_file_path(&a.name);
        match self.project(a.project)?.files.get(&path) {
            None => Ok(ConfigurationFile::default()),
            Some(bytes) => Ok(parse_config_file(&path, bytes)?),
        }
    }
}
