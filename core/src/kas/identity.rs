//! The identity kas asks agentk to impersonate for a proxied request (upstream kubernetes_api
//! server/proxy.go): nothing for `agent`, the configured identity for `impersonate`, the CI job's
//! identity for `ci_job`, the GitLab user's for user access.

use super::allowed_agents::{
    AccessAs, AccessType, AllowedAgent, AllowedAgentsForJob, AuthorizeProxyUser, UserAccessAs,
};
use crate::proto::kubernetes_api::rpc::{ExtraKeyVal, ImpersonationConfig};

fn extra(key: &str, val: impl Into<String>) -> ExtraKeyVal {
    ExtraKeyVal { key: format!("agent.gitlab.com/{key}"), val: vec![val.into()] }
}

/// For a CI job through `agent`; `None` means act as the agent itself.
pub fn for_ci_job(job: &AllowedAgentsForJob, agent: &AllowedAgent) -> Option<ImpersonationConfig> {
    match agent.configuration.access_as.as_ref()? {
        AccessAs::Agent(_) => None,
        AccessAs::Impersonate(i) => Some(ImpersonationConfig {
            username: i.username.clone(),
            groups: i.groups.clone(),
            uid: i.uid.clone(),
            extra: i.extra.iter().map(|e| ExtraKeyVal { key: e.key.clone(), val: e.val.clone() }).collect(),
        }),
        AccessAs::CiJob(_) => {
            let env = job.environment.as_ref();
            let mut groups = vec!["gitlab:ci_job".to_owned()];
            for g in &job.project.groups {
                groups.push(format!("gitlab:group:{}", g.id));
                if let Some(e) = env {
                    groups.push(format!("gitlab:group_env_tier:{}:{}", g.id, e.tier));
                }
            }
            let pid = job.project.id;
            groups.push(format!("gitlab:project:{pid}"));
            if let Some(e) = env {
                groups.push(format!("gitlab:project_env:{pid}:{}", e.slug));
                groups.push(format!("gitlab:project_env_tier:{pid}:{}", e.tier));
            }
            let mut extras = vec![
                extra("id", agent.id.to_string()),
                extra("config_project_id", agent.config_project.id.to_string()),
                extra("project_id", pid.to_string()),
                extra("ci_pipeline_id", job.pipeline.id.to_string()),
                extra("ci_job_id", job.job.id.to_string()),
                extra("username", job.user.username.clone()),
            ];
            if let Some(e) = env {
                extras.push(extra("environment_slug", e.slug.clone()));
                extras.push(extra("environment_tier", e.tier.clone()));
            }
            Some(ImpersonationConfig {
                username: format!("gitlab:ci_job:{}", job.job.id),
                groups,
                uid: String::new(),
                extra: extras,
            })
        }
    }
}

/// For a GitLab user (session cookie or PAT); `None` means act as the agent itself.
pub fn for_user(auth: &AuthorizeProxyUser, access_type: AccessType) -> Option<ImpersonationConfig> {
    let UserAccessAs::User(grants) = &auth.access_as else { return None };
    let mut groups = vec!["gitlab:user".to_owned()];
    for p in &grants.projects {
        groups.extend(p.roles.iter().map(|r| format!("gitlab:project_role:{}:{r}", p.id)));
    }
    for g in &grants.groups {
        groups.extend(g.roles.iter().map(|r| format!("gitlab:group_role:{}:{r}", g.id)));
    }
    Some(ImpersonationConfig {
        username: format!("gitlab:user:{}", auth.user.username),
        groups,
        uid: String::new(),
        extra: vec![
            extra("id", auth.agent.id.to_string()),
            extra("username", auth.user.username.clone()),
            extra("access_type", access_type.as_str()),
            extra("config_project_id", auth.agent.config_project.id.to_string()),
        ],
    })
}

/// The `Impersonate-*` headers a Kubernetes API server receives for `imp`, in order.
pub fn headers(imp: &ImpersonationConfig) -> Vec<(String, String)> {
    let mut out = vec![("Impersonate-User".to_owned(), imp.username.clone())];
    if !imp.uid.is_empty() {
        out.push(("Impersonate-Uid".to_owned(), imp.uid.clone()));
    }
    out.extend(imp.groups.iter().map(|g| ("Impersonate-Group".to_owned(), g.clone())));
    for e in &imp.extra {
        let name = format!("Impersonate-Extra-{}", urlencoding::encode(&e.key));
        out.extend(e.val.iter().map(|v| (name.clone(), v.clone())));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kas::allowed_agents::{
        Configuration, Empty, Environment, IdRef, Impersonate, JobProject, JobUser, ProxyAgent, RoleGrant, UserGrants,
    };

    /// The seed page's example: groups 23 and 25, project 150, environment prod (tier production).
    fn seed_job(access_as: AccessAs) -> (AllowedAgentsForJob, AllowedAgent) {
        let agent = AllowedAgent {
            id: 2,
            config_project: IdRef { id: 100 },
            configuration: Configuration { default_namespace: None, access_as: Some(access_as) },
        };
        let job = AllowedAgentsForJob {
            allowed_agents: vec![agent.clone()],
            job: IdRef { id: 1_074_499_489 },
            pipeline: IdRef { id: 555 },
            project: JobProject { id: 150, groups: vec![IdRef { id: 23 }, IdRef { id: 25 }] },
            user: JobUser { id: 7, username: "alice".into() },
            environment: Some(Environment { slug: "prod".into(), tier: "production".into() }),
        };
        (job, agent)
    }

    #[test]
    fn ci_job_identity_matches_the_documented_example() {
        let (job, agent) = seed_job(AccessAs::CiJob(Empty {}));
        let imp = for_ci_job(&job, &agent).unwrap();
        assert_eq!(imp.username, "gitlab:ci_job:1074499489");
        // Verbatim from the seed page (002): the documented group list.
        assert_eq!(
            imp.groups,
            [
                "gitlab:ci_job",
                "gitlab:group:23",
                "gitlab:group_env_tier:23:production",
                "gitlab:group:25",
                "gitlab:group_env_tier:25:production",
                "gitlab:project:150",
                "gitlab:project_env:150:prod",
                "gitlab:project_env_tier:150:production"
            ]
        );
        let rendered: String = headers(&imp).iter().map(|(k, v)| format!("{k}: {v}\n")).collect();
        insta::assert_snapshot!("seed_ci_job_impersonation_headers", rendered);
    }

    #[test]
    fn without_environment_there_are_no_environment_groups_or_extras() {
        let (mut job, agent) = seed_job(AccessAs::CiJob(Empty {}));
        job.environment = None;
        let imp = for_ci_job(&job, &agent).unwrap();
        assert_eq!(imp.groups, ["gitlab:ci_job", "gitlab:group:23", "gitlab:group:25", "gitlab:project:150"]);
        assert!(imp.extra.iter().all(|e| !e.key.contains("environment")));
        assert_eq!(imp.extra.len(), 6);
    }

    #[test]
    fn agent_and_static_impersonation() {
        let (job, agent) = seed_job(AccessAs::Agent(Empty {}));
        assert_eq!(for_ci_job(&job, &agent), None);
        let mut none = agent.clone();
        none.configuration.access_as = None;
        assert_eq!(for_ci_job(&job, &none), None);
        let (job, agent) = seed_job(AccessAs::Impersonate(Impersonate {
            username: "deployer".into(),
            groups: vec!["ops".into()],
            uid: "u-1".into(),
            extra: vec![crate::kas::allowed_agents::ExtraKeyVal {
                key: "example.com/team".into(),
                val: vec!["a".into(), "b".into()],
            }],
        }));
        let h = headers(&for_ci_job(&job, &agent).unwrap());
        assert_eq!(
            h,
            [
                ("Impersonate-User", "deployer"),
                ("Impersonate-Uid", "u-1"),
                ("Impersonate-Group", "ops"),
                ("Impersonate-Extra-example.com%2Fteam", "a"),
                ("Impersonate-Extra-example.com%2Fteam", "b")
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
    }

    #[test]
    fn user_access_identity() {
        let auth = AuthorizeProxyUser {
            agent: ProxyAgent { id: 2, config_project: IdRef { id: 100 } },
            user: JobUser { id: 7, username: "alice".into() },
            access_as: UserAccessAs::User(UserGrants {
                projects: vec![RoleGrant { id: 150, roles: vec!["developer".into()] }],
                groups: vec![RoleGrant { id: 23, roles: vec!["maintainer".into()] }],
            }),
        };
        let imp = for_user(&auth, AccessType::PersonalAccessToken).unwrap();
        assert_eq!(imp.username, "gitlab:user:alice");
        assert_eq!(imp.groups, ["gitlab:user", "gitlab:project_role:150:developer", "gitlab:group_role:23:maintainer"]);
        let keys: Vec<_> = imp.extra.iter().map(|e| (e.key.as_str(), e.val[0].as_str())).collect();
        assert_eq!(
            keys,
            [
                ("agent.gitlab.com/id", "2"),
                ("agent.gitlab.com/username", "alice"),
                ("agent.gitlab.com/access_type", "personal_access_token"),
                ("agent.gitlab.com/config_project_id", "100")
            ]
        );
        let agent_only = AuthorizeProxyUser { access_as: UserAccessAs::Agent(Empty {}), ..auth };
        assert_eq!(for_user(&agent_only, AccessType::SessionCookie), None);
    }
}
