//! Reading a scenario file: strict parsing (serde_path_to_error over serde_yaml_ng) and the semantic
//! checks serde cannot do. Every error names the file, line, column and field path; the location
//! of a semantic error is its key in the text (`kasim_core::config_error::locate`).

use std::collections::BTreeSet;
use std::path::Path;

use kasim_core::config_error::{ConfigError, locate, parse_yaml};
use kasim_gitlab::AUTHORIZED_ENTITY_LIMIT;

use crate::spec::{LoadKind, ScenarioFile};
use crate::version::{KubeVersion, SUPPORTED};

/// A parsed and checked scenario.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The path as given (reports and replay commands use it).
    pub file: String,
    pub text: String,
    pub spec: ScenarioFile,
    /// The versions to run, in file order.
    pub versions: Vec<KubeVersion>,
}

/// Reads and checks `path`. All semantic errors are returned, in file order.
pub fn load(path: &Path) -> Result<Loaded, Vec<ConfigError>> {
    let file = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|source| vec![ConfigError::Read { file: file.clone(), source }])?;
    load_str(&file, &text)
}

/// Parses and checks scenario `text` named `file`.
pub fn load_str(file: &str, text: &str) -> Result<Loaded, Vec<ConfigError>> {
    let mut spec: ScenarioFile = parse_yaml(file, text).map_err(|e| vec![e])?;
    // Scenario files generate load in steps: no background drivers unless asked for.
    if locate(text, "topology.drivers").is_none() {
        spec.topology.drivers.clear();
    }
    let mut errs = Errors { file, text, list: vec![] };
    let versions = check(&spec, &mut errs);
    if errs.list.is_empty() {
        Ok(Loaded { file: file.to_owned(), text: text.to_owned(), spec, versions })
    } else {
        Err(errs.list)
    }
}

struct Errors<'a> {
    file: &'a str,
    text: &'a str,
    list: Vec<ConfigError>,
}

impl Errors<'_> {
    fn at(&mut self, field: &str, message: impl Into<String>) {
        let (file, field, message) = (self.file.to_owned(), field.to_owned(), message.into());
        // Flow-style maps and lists (`{id: 1}`) hide their keys from the locator: fall back to the
        // nearest enclosing key that can be found, and still name the full field.
        let mut at = None;
        let mut probe = field.as_str();
        while at.is_none() && !probe.is_empty() {
            at = locate(self.text, probe);
            probe = match probe.rfind(['.', '[']) {
                Some(i) => &probe[..i],
                None => "",
            };
        }
        self.list.push(match at {
            Some((line, column)) => ConfigError::Field { file, line, column, field, message },
            None => ConfigError::Invalid { file, field, message },
        });
    }
}

fn check(s: &ScenarioFile, e: &mut Errors<'_>) -> Vec<KubeVersion> {
    if s.name.trim().is_empty() {
        e.at("name", "must not be empty");
    }
    if s.sim_only.as_deref().is_some_and(|r| r.trim().is_empty()) {
        e.at("sim_only", "must give the reason the scenario needs the simulator (cluster reports show it)");
    }
    let mut versions = vec![];
    match &s.kubernetes_versions {
        None => versions.extend(SUPPORTED),
        Some(list) => {
            if list.is_empty() {
                e.at("kubernetes_versions", "must list at least one version");
            }
            for (i, v) in list.iter().enumerate() {
                match KubeVersion::parse_checked(v, s.allow_unsupported_versions) {
                    Ok(v) if versions.contains(&v) => {
                        e.at(&format!("kubernetes_versions[{i}]"), format!("{v} is listed twice"))
                    }
                    Ok(v) => versions.push(v),
                    Err(err) => e.at(&format!("kubernetes_versions[{i}]"), err.to_string()),
                }
            }
        }
    }
    if let Err(err) = s.topology.validate() {
        e.at("topology", err.to_string());
    }
    if locate(e.text, "topology.agents").is_some() {
        e.at(
            "topology.agents",
            "agents are declared under gitlab.agents (one agentk per GitLab agent); set pool limits there",
        );
    }
    let g = &s.gitlab;
    let mut groups = BTreeSet::new();
    for (i, grp) in g.groups.iter().enumerate() {
        if let Some(p) = grp.parent
            && !groups.contains(&p)
        {
            e.at(&format!("gitlab.groups[{i}].parent"), format!("group {p} is not declared before this group"));
        }
        if !groups.insert(grp.id) {
            e.at(&format!("gitlab.groups[{i}].id"), format!("group {} is declared twice", grp.id));
        }
    }
    let mut projects = BTreeSet::new();
    for (i, p) in g.projects.iter().enumerate() {
        if !groups.contains(&p.group) {
            e.at(&format!("gitlab.projects[{i}].group"), format!("group {} does not exist", p.group));
        }
        if !projects.insert(p.id) {
            e.at(&format!("gitlab.projects[{i}].id"), format!("project {} is declared twice", p.id));
        }
    }
    let users: BTreeSet<i64> = if g.users.is_empty() { [1].into() } else { g.users.iter().map(|u| u.id).collect() };
    if g.agents.is_empty() {
        e.at("gitlab.agents", "declare at least one agent");
    }
    let mut agents = BTreeSet::new();
    for (i, a) in g.agents.iter().enumerate() {
        if let Err(err) = kasim_gitlab::validate_agent_name(&a.name) {
            e.at(&format!("gitlab.agents[{i}].name"), format!("agent name {:?}: {err}", a.name));
        }
        if !agents.insert(a.name.clone()) {
            e.at(&format!("gitlab.agents[{i}].name"), format!("agent {:?} is declared twice", a.name));
        }
        if !projects.contains(&a.project) {
            e.at(&format!("gitlab.agents[{i}].project"), format!("project {} does not exist", a.project));
        }
        if a.pool.max_connections == 0 || a.pool.scale_up_step == 0 {
            e.at(&format!("gitlab.agents[{i}].pool"), "max_connections and scale_up_step must be at least 1");
        }
        if let Some(cfg) = &a.config {
            let yaml = serde_yaml_ng::to_string(cfg).unwrap_or_default();
            match kasim_gitlab::parse_config_file("config.yaml", yaml.as_bytes()) {
                Err(err) => e.at(&format!("gitlab.agents[{i}].config"), err.to_string()),
                Ok(c) => {
                    let ci = c.ci_access.unwrap_or_default();
                    for (list, n) in [("projects", ci.projects.len()), ("groups", ci.groups.len())] {
                        if n > AUTHORIZED_ENTITY_LIMIT {
                            e.at(
                                &format!("gitlab.agents[{i}].config.ci_access.{list}"),
                                format!(
                                    "{n} entries, but GitLab honours only the first {AUTHORIZED_ENTITY_LIMIT} (AUTHORIZED_ENTITY_LIMIT): entries past it would silently not count"
                                ),
                            );
                        }
                    }
                }
            }
        }
    }
    let mut jobs = BTreeSet::new();
    for (i, j) in g.jobs.iter().enumerate() {
        if !projects.contains(&j.project) {
            e.at(&format!("gitlab.jobs[{i}].project"), format!("project {} does not exist", j.project));
        }
        if let Some(u) = j.user
            && !users.contains(&u)
        {
            e.at(&format!("gitlab.jobs[{i}].user"), format!("user {u} does not exist"));
        }
        if !jobs.insert(j.name.clone()) {
            e.at(&format!("gitlab.jobs[{i}].name"), format!("job {:?} is declared twice", j.name));
        }
    }
    let mut names = BTreeSet::new();
    for (i, st) in s.steps.iter().enumerate() {
        let at = |f: &str| format!("steps[{i}].{f}");
        if !names.insert(st.name.clone()) {
            e.at(&at("name"), format!("step {:?} is declared twice", st.name));
        }
        let actions =
            [st.request.is_some(), st.load.is_some(), st.advance.is_some(), st.fault.is_some(), st.assert.is_some()];
        let n = actions.iter().filter(|a| **a).count();
        if n != 1 {
            e.at(
                &format!("steps[{i}]"),
                format!("step {:?} needs exactly one of request, load, advance, fault, assert (has {n})", st.name),
            );
        }
        if let Some(r) = &st.request {
            if !jobs.contains(&r.job) {
                e.at(&at("request.job"), format!("job {:?} is not declared in gitlab.jobs", r.job));
            }
            for v in r.expect_by_version.keys() {
                match v.parse::<KubeVersion>() {
                    Ok(k) if versions.contains(&k) => {}
                    Ok(k) => e.at(&at("request.expect_by_version"), format!("{k} is not in kubernetes_versions")),
                    Err(err) => e.at(&at("request.expect_by_version"), err.to_string()),
                }
            }
            if http::Method::from_bytes(r.method.as_bytes()).is_err() {
                e.at(&at("request.method"), format!("invalid HTTP method {:?}", r.method));
            }
            if !r.path.starts_with('/') {
                e.at(&at("request.path"), "must start with /");
            }
        }
        if let Some(l) = &st.load {
            if l.count == 0 {
                e.at(&at("load.count"), "must be at least 1");
            }
            let need = |ok: bool, f: &str, e: &mut Errors<'_>| {
                if !ok {
                    e.at(&at("load"), format!("{f} is required for this kind"));
                }
            };
            match l.kind {
                LoadKind::Hold => need(l.hold_for.is_some(), "hold_for", e),
                LoadKind::Unary => need(l.interval.is_some_and(|i| !i.0.is_zero()), "a positive interval", e),
                LoadKind::Watch => {
                    need(l.job.is_some() && l.path.is_some(), "job and path", e);
                    if let Some(j) = &l.job
                        && !jobs.contains(j)
                    {
                        e.at(&at("load.job"), format!("job {j:?} is not declared in gitlab.jobs"));
                    }
                }
            }
            if let Some(a) = &l.agent
                && !agents.contains(a)
            {
                e.at(&at("load.agent"), format!("agent {a:?} is not declared in gitlab.agents"));
            }
        }
        if let Some(a) = st.assert.as_ref().and_then(|a| a.agent.as_ref())
            && !agents.contains(a)
        {
            e.at(&at("assert.agent"), format!("agent {a:?} is not declared in gitlab.agents"));
        }
    }
    if s.steps.is_empty() {
        e.at("steps", "declare at least one step");
    }
    versions
}
