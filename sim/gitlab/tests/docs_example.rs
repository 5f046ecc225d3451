//! The docs' CI/CD example: groups 23 (`group1`) and 25 (`group1/group1-1`),
//! project 150 (`group1/group1-1/project1`), a job in environment `prod`
//! with tier `production`.

mod common;

use kasim_gitlab::{
    AgentId, GitLab, GroupId, JobEnvironment, JobId, NewJob, ProjectId, Role, UserId, config_file_path,
};

const JOB_TOKEN: &str = "glcbt-64_docs-example-job-token";

fn world() -> GitLab {
    let (gl, _) = common::gitlab();
    let g23 = gl.add_group(Some(GroupId(23)), None, "group1").unwrap();
    let g25 = gl.add_group(Some(GroupId(25)), Some(g23), "group1-1").unwrap();
    let p150 = gl.add_project(Some(ProjectId(150)), g25, "project1").unwrap();
    let cfg = gl.add_project(Some(ProjectId(100)), g23, "agents").unwrap();
    let user = gl.add_user(Some(UserId(7)), "alice").unwrap();
    gl.add_group_member(g23, user, Role::Developer).unwrap();
    gl.add_project_member(p150, user, Role::Maintainer).unwrap();

    // Agent 1: project entry for project 150, ci_job impersonation.
    let a1 = gl.add_agent(Some(AgentId(1)), cfg, "prod-agent").unwrap();
    gl.set_file(
        cfg,
        &config_file_path("prod-agent"),
        "ci_access:\n  projects:\n    - id: group1/group1-1/project1\n      default_namespace: deploy\n      environments: [prod]\n      access_as:\n        ci_job: {}\n  groups:\n    - id: group1\n",
    )
    .unwrap();
    // Agent 2: lives in project 150 itself, so it is implicitly authorized.
    gl.add_agent(Some(AgentId(2)), p150, "local").unwrap();
    // Agent 3: group entry limited to staging: filtered out for `prod`.
    gl.add_agent(Some(AgentId(3)), cfg, "staging-agent").unwrap();
    gl.set_file(
        cfg,
        &config_file_path("staging-agent"),
        "ci_access:\n  groups:\n    - id: group1/group1-1\n      environments: [staging]\n",
    )
    .unwrap();
    // Agent 4: group entry on the top-level group, static impersonation.
    gl.add_agent(Some(AgentId(4)), cfg, "shared").unwrap();
    gl.set_file(
        cfg,
        &config_file_path("shared"),
        "ci_access:\n  groups:\n    - id: GROUP1\n      protected_branches_only: true\n      access_as:\n        impersonate:\n          username: deployer\n          groups: [ops]\n",
    )
    .unwrap();
    let _ = a1;
    gl.add_job(NewJob {
        id: Some(JobId(1_074_499_489)),
        project: p150,
        pipeline_id: 555,
        user,
        environment: Some(JobEnvironment { name: "prod".into(), slug: "prod".into(), tier: "production".into() }),
        ref_protected: true,
        token: Some(JOB_TOKEN.into()),
    })
    .unwrap();
    gl
}

#[test]
fn allowed_agents_json() {
    let gl = world();
    let resp = gl.allowed_agents_for_job(JOB_TOKEN).unwrap();
    insta::assert_snapshot!(serde_json::to_string_pretty(&resp).unwrap());
}

#[test]
fn ci_kubeconfig() {
    let gl = world();
    insta::assert_snapshot!(gl.ci_kubeconfig(JOB_TOKEN).unwrap());
}
