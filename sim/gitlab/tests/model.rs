//! Model invariants: ids, paths, agent names, tokens, jobs.

mod common;

use kasim_gitlab::{AgentId, GroupId, ModelError, NameError, NewJob, ProjectId, config_file_path};

#[test]
fn explicit_ids_full_paths_and_case_insensitive_uniqueness() {
    let (gl, _) = common::gitlab();
    let g = gl.add_group(Some(GroupId(23)), None, "Group1").unwrap();
    let sub = gl.add_group(Some(GroupId(25)), Some(g), "sub").unwrap();
    let p = gl.add_project(Some(ProjectId(150)), sub, "proj").unwrap();
    assert_eq!(gl.project_full_path(p).unwrap(), "Group1/sub/proj");
    // Auto ids continue after the highest explicit one.
    assert_eq!(gl.add_group(None, None, "other").unwrap(), GroupId(26));
    assert_eq!(gl.add_group(None, None, "group1"), Err(ModelError::PathTaken("group1".into())));
    assert_eq!(gl.add_project(None, sub, "PROJ"), Err(ModelError::PathTaken("Group1/sub/PROJ".into())));
    // Groups and projects share the route namespace.
    assert_eq!(gl.add_group(None, Some(sub), "Proj"), Err(ModelError::PathTaken("Group1/sub/Proj".into())));
    assert_eq!(gl.add_group(Some(GroupId(23)), None, "x"), Err(ModelError::IdTaken { kind: "group", id: 23 }));
    assert_eq!(gl.add_project(None, GroupId(999), "x"), Err(ModelError::NotFound { kind: "group", id: 999 }));
    assert_eq!(gl.add_group(None, None, "a/b"), Err(ModelError::InvalidPath("a/b".into())));
}

#[test]
fn agent_names_follow_the_rule_and_are_unique_per_project() {
    let (gl, _) = common::gitlab();
    let g = gl.add_group(None, None, "g").unwrap();
    let p1 = gl.add_project(None, g, "p1").unwrap();
    let p2 = gl.add_project(None, g, "p2").unwrap();
    gl.add_agent(None, p1, "prod").unwrap();
    assert_eq!(gl.add_agent(None, p1, "prod"), Err(ModelError::AgentNameTaken { project: p1, name: "prod".into() }));
    assert!(gl.add_agent(None, p2, "prod").is_ok(), "other project is fine");
    let err = gl.add_agent(None, p1, "Prod").unwrap_err();
    assert_eq!(err, ModelError::AgentName { name: "Prod".into(), source: NameError::Format });
    assert_eq!(
        err.to_string(),
        "invalid agent name \"Prod\": name can contain only lowercase letters, digits, and '-', \
         but cannot start or end with '-'"
    );
}

#[test]
fn agent_tokens_are_several_per_agent_and_revocable() {
    let (gl, _) = common::gitlab();
    let g = gl.add_group(None, None, "g").unwrap();
    let p = gl.add_project(None, g, "p").unwrap();
    let a = gl.add_agent(Some(AgentId(5)), p, "a").unwrap();
    let t1 = gl.create_agent_token(a).unwrap();
    let t2 = gl.create_agent_token(a).unwrap();
    assert_ne!(t1, t2);
    assert!(t1.starts_with("glagent-") && t1.len() == 58, "{t1}");
    assert_eq!(gl.agent_for_token(&t1), Ok(a));
    gl.revoke_agent_token(&t1).unwrap();
    assert_eq!(gl.agent_for_token(&t1), Err(ModelError::UnknownToken));
    assert_eq!(gl.agent_info(&t1).unwrap_err(), ModelError::UnknownToken);
    assert_eq!(gl.revoke_agent_token(&t1), Err(ModelError::UnknownToken));
    assert_eq!(gl.agent_for_token(&t2), Ok(a), "other token unaffected");
    assert_eq!(gl.agent_for_token(""), Err(ModelError::UnknownToken));
}

#[test]
fn same_seed_same_tokens() {
    let make = || {
        let (gl, _) = common::gitlab();
        let g = gl.add_group(None, None, "g").unwrap();
        let p = gl.add_project(None, g, "p").unwrap();
        let a = gl.add_agent(None, p, "a").unwrap();
        gl.create_agent_token(a).unwrap()
    };
    assert_eq!(make(), make());
}

#[test]
fn config_file_errors_surface_through_the_model() {
    let (gl, _) = common::gitlab();
    let g = gl.add_group(None, None, "g").unwrap();
    let p = gl.add_project(None, g, "p").unwrap();
    let a = gl.add_agent(None, p, "a").unwrap();
    assert_eq!(gl.agent_config(a).unwrap(), Default::default(), "missing file");
    gl.set_file(p, &config_file_path("a"), "bogus: 1\n").unwrap();
    let err = gl.agent_config(a).unwrap_err();
    assert!(err.to_string().starts_with(".gitlab/agents/a/config.yaml:1:1: bogus: unknown field"), "{err}");
    gl.delete_file(p, &config_file_path("a")).unwrap();
    assert_eq!(gl.agent_config(a).unwrap(), Default::default());
}

#[test]
fn finished_jobs_lose_their_token_and_invalid_configs_keep_only_implicit_access() {
    let (gl, _) = common::gitlab();
    let g = gl.add_group(None, None, "g").unwrap();
    let p = gl.add_project(None, g, "p").unwrap();
    let other = gl.add_project(None, g, "other").unwrap();
    let local = gl.add_agent(None, p, "local").unwrap();
    let remote = gl.add_agent(None, other, "remote").unwrap();
    gl.set_file(other, &config_file_path("remote"), "ci_access:\n  groups: [{id: g}]\n").unwrap();
    let u = gl.add_user(None, "u").unwrap();
    let (job, token) = gl
        .add_job(NewJob {
            id: None,
            project: p,
            pipeline_id: 1,
            user: u,
            environment: None,
            ref_protected: false,
            token: None,
        })
        .unwrap();
    let ids = |gl: &kasim_gitlab::GitLab| -> Vec<i64> {
        gl.allowed_agents_for_job(&token).unwrap().allowed_agents.iter().map(|a| a.id).collect()
    };
    assert_eq!(ids(&gl), vec![local.0, remote.0]);
    // A broken config authorizes nothing, but implicit access stays.
    gl.set_file(other, &config_file_path("remote"), "ci_access: [").unwrap();
    gl.set_file(p, &config_file_path("local"), "nope: 1").unwrap();
    assert_eq!(ids(&gl), vec![local.0]);
    gl.finish_job(job).unwrap();
    assert_eq!(gl.allowed_agents_for_job(&token), Err(kasim_gitlab::CiAccessError::UnknownJobToken));
    assert!(gl.ci_kubeconfig(&token).is_err());
}
