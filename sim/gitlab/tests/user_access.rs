//! `authorize_proxy_user` decisions.

mod common;

use kasim_gitlab::{
    AccessType, AgentId, GitLab, ProjectId, ProxyAccessAs, Role, RoleGrant, UserAccessError, UserGrant, UserId,
    config_file_path,
};

struct World {
    gl: GitLab,
    agent: AgentId,
    cfg: ProjectId,
    dev: UserId,
    reporter: UserId,
}

fn world(user_access: &str) -> World {
    let (gl, _) = common::gitlab();
    let g = gl.add_group(None, None, "g").unwrap();
    let sub = gl.add_group(None, Some(g), "sub").unwrap();
    let cfg = gl.add_project(None, g, "cfg").unwrap();
    let app = gl.add_project(None, sub, "app").unwrap();
    let foreign = gl.add_group(None, None, "foreign").unwrap();
    gl.add_project(None, foreign, "x").unwrap();
    let agent = gl.add_agent(None, cfg, "a").unwrap();
    gl.set_file(cfg, &config_file_path("a"), user_access).unwrap();
    let dev = gl.add_user(None, "dev").unwrap();
    let reporter = gl.add_user(None, "rep").unwrap();
    gl.add_group_member(sub, dev, Role::Developer).unwrap();
    gl.add_project_member(app, dev, Role::Maintainer).unwrap();
    gl.add_group_member(foreign, dev, Role::Owner).unwrap();
    gl.add_group_member(g, reporter, Role::Reporter).unwrap();
    World { gl, agent, cfg, dev, reporter }
}

fn pat(w: &World, user: UserId) -> String {
    w.gl.add_pat(user, &["k8s_proxy"]).unwrap()
}

#[test]
fn user_mode_lists_authorized_projects_and_groups_with_roles() {
    let w = world(
        "user_access:\n  access_as: {user: {}}\n  projects: [{id: G/SUB/APP}, {id: foreign/x}]\n  groups: [{id: g/sub}, {id: foreign}]\n",
    );
    let resp = w.gl.authorize_proxy_user(w.agent, AccessType::PersonalAccessToken, &pat(&w, w.dev), "").unwrap();
    assert_eq!(resp.agent.config_project.id, w.cfg.0);
    assert_eq!(resp.user.username, "dev");
    // foreign/* sits outside the config project's root group: ignored.
    assert_eq!(
        resp.access_as,
        ProxyAccessAs::User(UserGrant {
            projects: vec![RoleGrant { id: 2, roles: vec!["maintainer".into()] }],
            groups: vec![RoleGrant { id: 2, roles: vec!["developer".into()] }],
        })
    );
    assert_eq!(
        serde_json::to_value(&resp).unwrap()["access_as"],
        serde_json::json!({"user": {"projects": [{"id": 2, "roles": ["maintainer"]}],
                                    "groups": [{"id": 2, "roles": ["developer"]}]}})
    );
}

#[test]
fn agent_mode_is_the_default() {
    let w = world("user_access:\n  groups: [{id: g/sub}]\n");
    let resp = w.gl.authorize_proxy_user(w.agent, AccessType::PersonalAccessToken, &pat(&w, w.dev), "").unwrap();
    assert_eq!(serde_json::to_value(&resp.access_as).unwrap(), serde_json::json!({"agent": {}}));
}

#[test]
fn refusals() {
    let w = world("user_access:\n  groups: [{id: g/sub}]\n");
    let call =
        |access: AccessType, key: &str, csrf: &str, agent: AgentId| w.gl.authorize_proxy_user(agent, access, key, csrf);
    let dev_pat = pat(&w, w.dev);
    // Reporter is below Developer: forbidden.
    assert_eq!(
        call(AccessType::PersonalAccessToken, &pat(&w, w.reporter), "", w.agent),
        Err(UserAccessError::Forbidden)
    );
    // PAT without the k8s_proxy scope, or revoked: unauthorized.
    let api_only = w.gl.add_pat(w.dev, &["api"]).unwrap();
    assert_eq!(call(AccessType::PersonalAccessToken, &api_only, "", w.agent), Err(UserAccessError::Unauthorized));
    // A PAT is not a session cookie.
    assert_eq!(call(AccessType::SessionCookie, &dev_pat, "", w.agent), Err(UserAccessError::Unauthorized));
    // Unknown agent, valid credentials: not found.
    assert_eq!(call(AccessType::PersonalAccessToken, &dev_pat, "", AgentId(77)), Err(UserAccessError::AgentNotFound));
    w.gl.revoke_pat(&dev_pat).unwrap();
    assert_eq!(call(AccessType::PersonalAccessToken, &dev_pat, "", w.agent), Err(UserAccessError::Unauthorized));
    // Session cookies need the matching CSRF token.
    let (cookie, csrf) = w.gl.add_session(w.dev).unwrap();
    assert!(call(AccessType::SessionCookie, &cookie, &csrf, w.agent).is_ok());
    assert_eq!(call(AccessType::SessionCookie, &cookie, "wrong", w.agent), Err(UserAccessError::Unauthorized));
    assert_eq!(call(AccessType::SessionCookie, &cookie, "", w.agent), Err(UserAccessError::Unauthorized));
}

#[test]
fn no_user_access_section_means_forbidden() {
    let w = world("ci_access: {}\n");
    assert_eq!(
        w.gl.authorize_proxy_user(w.agent, AccessType::PersonalAccessToken, &pat(&w, w.dev), ""),
        Err(UserAccessError::Forbidden)
    );
}
