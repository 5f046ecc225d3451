//! Property tests of `ci_access` over generated group trees and configs.
//!
//! Worlds have two root groups with random subgroup trees, projects, agents
//! whose configs point at random projects/groups (sometimes in the other
//! root, sometimes at nothing, in random letter case), and one job. Each
//! config entry carries a unique `default_namespace` marker, so the test can
//! tell which entry decided.

mod common;

use std::collections::BTreeMap;

use kasim_gitlab::{AgentId, GitLab, GroupId, JobEnvironment, NewJob, ProjectId, UserId};
use proptest::prelude::*;
use proptest::sample::Index;

#[derive(Debug, Clone)]
struct EntrySpec {
    target: Index,
    upper: bool,
    envs: Vec<&'static str>,
    protected_only: bool,
}

#[derive(Debug, Clone)]
struct AgentSpec {
    project: Index,
    projects: Vec<EntrySpec>,
    groups: Vec<EntrySpec>,
}

#[derive(Debug, Clone)]
struct WorldSpec {
    /// Parent choice for groups 2.. (0 and 1 are the roots).
    group_parents: Vec<Index>,
    project_groups: Vec<Index>,
    agents: Vec<AgentSpec>,
    job_project: Index,
    env: Option<&'static str>,
    protected: bool,
    /// Junk entries placed before the generated ones, per kind.
    pad: usize,
}

fn entry() -> impl Strategy<Value = EntrySpec> {
    (
        any::<Index>(),
        any::<bool>(),
        prop::sample::select(vec![vec![], vec!["prod"], vec!["staging"], vec!["*"], vec!["staging", "prod*"]]),
        any::<bool>(),
    )
        .prop_map(|(target, upper, envs, protected_only)| EntrySpec { target, upper, envs, protected_only })
}

fn world() -> impl Strategy<Value = WorldSpec> {
    let agent = (any::<Index>(), prop::collection::vec(entry(), 0..4), prop::collection::vec(entry(), 0..4))
        .prop_map(|(project, projects, groups)| AgentSpec { project, projects, groups });
    (
        prop::collection::vec(any::<Index>(), 0..7),
        prop::collection::vec(any::<Index>(), 1..7),
        prop::collection::vec(agent, 1..5),
        any::<Index>(),
        prop::sample::select(vec![None, Some("prod"), Some("staging")]),
        any::<bool>(),
        prop::sample::select(vec![0usize, 0, 0, 0, 499, 500]),
    )
        .prop_map(|(group_parents, project_groups, agents, job_project, env, protected, pad)| WorldSpec {
            group_parents,
            project_groups,
            agents,
            job_project,
            env,
            protected,
            pad,
        })
}

/// The built world plus what the oracle needs to know about it.
struct Built {
    gl: GitLab,
    token: String,
    group_parent: Vec<Option<usize>>,
    project_group: Vec<usize>,
    job_project: usize,
    /// Per agent: config project index, project entries, group entries
    /// (after padding: `None` = junk entry), as (target, marker, spec).
    agents: Vec<(usize, Vec<Resolved>, Vec<Resolved>)>,
}

#[derive(Clone)]
struct Resolved {
    /// Index of the target project/group; `None` for a path that does not exist.
    target: Option<usize>,
    marker: String,
    envs: Vec<&'static str>,
    protected_only: bool,
}

fn root(group_parent: &[Option<usize>], mut g: usize) -> usize {
    while let Some(p) = group_parent[g] {
        g = p;
    }
    g
}

fn build(spec: &WorldSpec) -> Built {
    let (gl, _) = common::gitlab();
    let mut group_parent: Vec<Option<usize>> = vec![None, None];
    let mut group_ids = vec![gl.add_group(None, None, "root0").unwrap(), gl.add_group(None, None, "root1").unwrap()];
    for (i, idx) in spec.group_parents.iter().enumerate() {
        let parent = idx.index(group_ids.len());
        let g = gl.add_group(None, Some(group_ids[parent]), &format!("g{}", i + 2)).unwrap();
        group_ids.push(g);
        group_parent.push(Some(parent));
    }
    let mut project_group = Vec::new();
    let mut project_ids: Vec<ProjectId> = Vec::new();
    for (j, idx) in spec.project_groups.iter().enumerate() {
        let g = idx.index(group_ids.len());
        project_ids.push(gl.add_project(None, group_ids[g], &format!("p{j}")).unwrap());
        project_group.push(g);
    }
    let user = gl.add_user(Some(UserId(1)), "runner").unwrap();

    let mut agents = Vec::new();
    for (a, aspec) in spec.agents.iter().enumerate() {
        let cfg_project = aspec.project.index(project_ids.len());
        let name = format!("agent-{a}");
        let agent = gl.add_agent(Some(AgentId(a as i64 + 1)), project_ids[cfg_project], &name).unwrap();
        assert_eq!(agent, AgentId(a as i64 + 1));
        let mut yaml = String::from("ci_access:\n");
        let mut kinds = Vec::new();
        for (kind, entries, count) in
            [("projects", &aspec.projects, project_ids.len()), ("groups", &aspec.groups, group_ids.len())]
        {
            yaml.push_str(&format!("  {kind}:\n"));
            let mut resolved = Vec::new();
            for k in 0..spec.pad {
                yaml.push_str(&format!("    - id: nowhere/pad{k}\n"));
                resolved.push(Resolved { target: None, marker: String::new(), envs: vec![], protected_only: false });
            }
            for (k, e) in entries.iter().enumerate() {
                // One extra slot: a path that does not exist.
                let t = e.target.index(count + 1);
                let target = (t < count).then_some(t);
                let mut path = match target {
                    None => "root0/missing".to_owned(),
                    Some(t) if kind == "projects" => gl.project_full_path(project_ids[t]).unwrap(),
                    Some(t) => gl.group_full_path(group_ids[t]).unwrap(),
                };
                if e.upper {
                    path = path.to_uppercase();
                }
                let marker = format!("m{a}-{kind}-{k}");
                yaml.push_str(&format!(
                    "    - id: {path}\n      default_namespace: {marker}\n      environments: {:?}\n      protected_branches_only: {}\n",
                    e.envs, e.protected_only
                ));
                resolved.push(Resolved { target, marker, envs: e.envs.clone(), protected_only: e.protected_only });
            }
            kinds.push(resolved);
        }
        gl.set_file(project_ids[cfg_project], &format!(".gitlab/agents/{name}/config.yaml"), yaml).unwrap();
        let groups = kinds.pop().unwrap();
        let projects = kinds.pop().unwrap();
        agents.push((cfg_project, projects, groups));
    }

    let job_project = spec.job_project.index(project_ids.len());
    let (_, token) = gl
        .add_job(NewJob {
            id: None,
            project: project_ids[job_project],
            pipeline_id: 1,
            user,
            environment: spec.env.map(|e| JobEnvironment { name: e.into(), slug: e.into(), tier: "production".into() }),
            ref_protected: spec.protected,
            token: None,
        })
        .unwrap();
    let _: &[GroupId] = &group_ids;
    Built { gl, token, group_parent, project_group, job_project, agents }
}

fn env_admits(patterns: &[&str], env: Option<&str>) -> bool {
    if patterns.is_empty() {
        return true;
    }
    let Some(env) = env else { return false };
    patterns.iter().any(|p| *p == env || *p == "*" || (*p == "prod*" && env.contains("prod")))
}

/// Independent statement of the rules: (agent id, deciding marker) in order.
fn oracle(b: &Built, spec: &WorldSpec) -> Vec<(i64, String)> {
    let job_group = b.project_group[b.job_project];
    let job_root = root(&b.group_parent, job_group);
    let mut ancestors = vec![job_group];
    while let Some(p) = b.group_parent[*ancestors.last().unwrap()] {
        ancestors.push(p);
    }
    let last_for = |entries: &[Resolved], target: usize| -> Option<Resolved> {
        entries.iter().take(500).rfind(|e| e.target == Some(target)).cloned()
    };
    // (rank, agent id, marker)
    let mut out: Vec<(usize, i64, String)> = Vec::new();
    for (a, (cfg_project, projects, groups)) in b.agents.iter().enumerate() {
        let id = a as i64 + 1;
        let same_root = root(&b.group_parent, b.project_group[*cfg_project]) == job_root;
        let mut deciding: Option<(usize, Option<Resolved>)> = None;
        if let Some(e) = last_for(projects, b.job_project).filter(|_| same_root) {
            deciding = Some((0, Some(e)));
        }
        if deciding.is_none() && *cfg_project == b.job_project {
            deciding = Some((1, None));
        }
        if deciding.is_none() && same_root {
            for (depth, g) in ancestors.iter().enumerate() {
                if let Some(e) = last_for(groups, *g) {
                    deciding = Some((2 + depth, Some(e)));
                    break;
                }
            }
        }
        match deciding {
            Some((rank, None)) => out.push((rank, id, String::new())),
            Some((rank, Some(e))) if (!e.protected_only || spec.protected) && env_admits(&e.envs, spec.env) => {
                out.push((rank, id, e.marker));
            }
            _ => {}
        }
    }
    out.sort();
    out.into_iter().map(|(_, id, m)| (id, m)).collect()
}

fn actual(b: &Built) -> Vec<(i64, String)> {
    b.gl.allowed_agents_for_job(&b.token)
        .unwrap()
        .allowed_agents
        .into_iter()
        .map(|a| (a.id, a.configuration.default_namespace))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    /// The full rule set: the most specific entry decides, then filters.
    #[test]
    fn allowed_agents_follow_the_rules(spec in world()) {
        let b = build(&spec);
        prop_assert_eq!(actual(&b), oracle(&b, &spec));
    }

    /// Entries pointing outside the config project's root group never
    /// authorize: every allowed agent shares the job's root group.
    #[test]
    fn foreign_root_never_authorizes(spec in world()) {
        let b = build(&spec);
        let job_root = root(&b.group_parent, b.project_group[b.job_project]);
        for (id, _) in actual(&b) {
            let cfg_project = b.agents[(id - 1) as usize].0;
            prop_assert_eq!(root(&b.group_parent, b.project_group[cfg_project]), job_root);
        }
    }

    /// With 500 junk entries first, only implicit access remains.
    #[test]
    fn entries_past_500_never_count(mut spec in world()) {
        spec.pad = 500;
        let b = build(&spec);
        for (id, marker) in actual(&b) {
            prop_assert_eq!(marker, "");
            prop_assert_eq!(b.agents[(id - 1) as usize].0, b.job_project);
        }
    }

    /// Without an environment, only entries with an empty list pass; with
    /// an empty list, the environment never matters.
    #[test]
    fn environment_rules(spec in world()) {
        let b = build(&spec);
        let allowed = b.gl.allowed_agents_for_job(&b.token).unwrap().allowed_agents;
        if spec.env.is_none() {
            for a in &allowed {
                prop_assert!(a.configuration.environments.is_empty());
            }
        }
        // Changing the job's environment never changes the fate of agents
        // whose deciding entry has an empty list.
        let mut other = spec.clone();
        other.env = match spec.env { None => Some("staging"), Some(_) => None };
        let b2 = build(&other);
        let keep = |v: Vec<(i64, String)>| -> Vec<(i64, String)> {
            v.into_iter()
                .filter(|(id, marker)| {
                    let (_, p, g) = &b.agents[(*id - 1) as usize];
                    p.iter().chain(g).find(|e| &e.marker == marker).is_none_or(|e| e.envs.is_empty())
                })
                .collect()
        };
        prop_assert_eq!(keep(actual(&b)), keep(actual(&b2)));
    }

    /// `protected_branches_only: true` never authorizes an unprotected ref.
    #[test]
    fn protected_only_needs_protected_ref(mut spec in world()) {
        spec.protected = false;
        let b = build(&spec);
        for a in b.gl.allowed_agents_for_job(&b.token).unwrap().allowed_agents {
            prop_assert!(!a.configuration.protected_branches_only);
        }
    }
}

#[test]
fn oracle_sanity_most_specific_wins_even_when_filtered() {
    // Project entry restricted to staging hides the unrestricted group entry.
    let spec_yaml = "ci_access:\n  projects:\n    - id: r/p\n      environments: [staging]\n  groups:\n    - id: r\n";
    let (gl, _) = common::gitlab();
    let r = gl.add_group(None, None, "r").unwrap();
    let p = gl.add_project(None, r, "p").unwrap();
    let c = gl.add_project(None, r, "c").unwrap();
    let u = gl.add_user(None, "u").unwrap();
    gl.add_agent(None, c, "a").unwrap();
    gl.set_file(c, ".gitlab/agents/a/config.yaml", spec_yaml).unwrap();
    let (_, token) = gl
        .add_job(NewJob {
            id: None,
            project: p,
            pipeline_id: 1,
            user: u,
            environment: Some(JobEnvironment { name: "prod".into(), slug: "prod".into(), tier: "production".into() }),
            ref_protected: true,
            token: None,
        })
        .unwrap();
    let allowed: BTreeMap<i64, ()> =
        gl.allowed_agents_for_job(&token).unwrap().allowed_agents.into_iter().map(|a| (a.id, ())).collect();
    assert!(allowed.is_empty(), "{allowed:?}");
}
