//! What a CI job sends through kas's Kubernetes API proxy: the proxy's address and the
//! `ci:<agent id>:<job token>` bearer token, taken from the kubeconfig GitLab generates for the job
//! (as `kubectl --context <agent project path>:<agent name>` would), or hand-made for a request
//! that names an agent id directly. Shared by the simulator and the cluster runner.

use std::collections::BTreeMap;

/// Where and as whom a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `host:port` of kas's Kubernetes API proxy.
    pub authority: String,
    /// `ci:<agent id>:<job token>`.
    pub token: String,
    pub agent_id: i64,
}

/// Resolves a request's credentials. `kubeconfig(job_token)` is GitLab's CI kubeconfig for the job;
/// `default_authority` is used when `agent_id` bypasses the kubeconfig. A replaced `job_token`
/// keeps the context's agent id.
pub fn resolve(
    job_tokens: &BTreeMap<String, String>,
    kubeconfig: impl FnOnce(&str) -> Result<String, String>,
    default_authority: &str,
    job: &str,
    context: Option<&str>,
    agent_id: Option<i64>,
    job_token: Option<&str>,
) -> Result<Credentials, String> {
    let real = job_tokens.get(job).ok_or_else(|| format!("job {job:?} has no token"))?.clone();
    let token = job_token.map_or(real.clone(), str::to_owned);
    if let Some(id) = agent_id {
        return Ok(Credentials {
            authority: default_authority.to_owned(),
            token: format!("ci:{id}:{token}"),
            agent_id: id,
        });
    }
    let kc = kubeconfig(&real).map_err(|e| format!("kubeconfig of job {job:?}: {e}"))?;
    let kc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&kc).map_err(|e| e.to_string())?;
    let contexts = kc["contexts"].as_sequence().cloned().unwrap_or_default();
    let names: Vec<&str> = contexts.iter().filter_map(|c| c["name"].as_str()).collect();
    let ctx = match context {
        Some(want) => contexts.iter().find(|c| c["name"].as_str() == Some(want)),
        None if contexts.len() == 1 => contexts.first(),
        None => None,
    }
    .ok_or_else(|| {
        format!("job {job:?}'s kubeconfig has no context {} (contexts: {names:?})", context.unwrap_or(""))
    })?;
    let user = ctx["context"]["user"].as_str().unwrap_or_default();
    let cluster = ctx["context"]["cluster"].as_str().unwrap_or_default();
    let find = |list: &str, name: &str| {
        kc[list].as_sequence().and_then(|s| s.iter().find(|x| x["name"].as_str() == Some(name)).cloned())
    };
    let kube_token =
        find("users", user).and_then(|u| u["user"]["token"].as_str().map(str::to_owned)).unwrap_or_default();
    let server =
        find("clusters", cluster).and_then(|c| c["cluster"]["server"].as_str().map(str::to_owned)).unwrap_or_default();
    let authority =
        server.trim_start_matches("http://").trim_start_matches("https://").trim_end_matches('/').to_owned();
    let mut parts = kube_token.splitn(3, ':');
    let id = match (parts.next(), parts.next().and_then(|i| i.parse::<i64>().ok())) {
        (Some("ci"), Some(id)) => id,
        _ => return Err(format!("job {job:?}'s kubeconfig user {user:?} has no ci:<agent id>:<token> token")),
    };
    Ok(Credentials { authority, token: format!("ci:{id}:{token}"), agent_id: id })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KC: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: gitlab\n  cluster: {server: 'http://kas:8154/k8s-proxy/'}\nusers:\n- name: agent:2\n  user: {token: 'ci:2:tok'}\n- name: agent:3\n  user: {token: 'ci:3:tok'}\ncontexts:\n- name: g/agents:prod\n  context: {cluster: gitlab, user: 'agent:2'}\n- name: g/agents:dev\n  context: {cluster: gitlab, user: 'agent:3'}\n";

    fn jobs() -> BTreeMap<String, String> {
        BTreeMap::from([("deploy".to_owned(), "tok".to_owned())])
    }

    #[test]
    fn contexts_pick_the_agent_and_replaced_tokens_keep_it() {
        let kc = |_: &str| Ok(KC.to_owned());
        let c = resolve(&jobs(), kc, "x", "deploy", Some("g/agents:dev"), None, None).unwrap();
        assert_eq!(c, Credentials { authority: "kas:8154/k8s-proxy".into(), token: "ci:3:tok".into(), agent_id: 3 });
        let c = resolve(&jobs(), kc, "x", "deploy", Some("g/agents:prod"), None, Some("bad")).unwrap();
        assert_eq!((c.token.as_str(), c.agent_id), ("ci:2:bad", 2));
        let e = resolve(&jobs(), kc, "x", "deploy", None, None, None).unwrap_err();
        assert!(e.contains("has no context") && e.contains("g/agents:prod"), "{e}");
        let c = resolve(&jobs(), kc, "proxy:1", "deploy", None, Some(9), None).unwrap();
        assert_eq!(c, Credentials { authority: "proxy:1".into(), token: "ci:9:tok".into(), agent_id: 9 });
        assert_eq!(resolve(&jobs(), kc, "x", "nobody", None, None, None).unwrap_err(), "job \"nobody\" has no token");
    }
}
