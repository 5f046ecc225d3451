//! Plays scenario files against a real Kubernetes API server: `kasim run --backend cluster`.
//!
//! Per scenario × version: a [`ClusterRun`] (a fresh namespace, agentk's least-privilege service
//! account from `conformance/rbac/agentk.yaml` and its TokenRequest token), the scenario's cluster
//! fixtures applied server-side into the run namespace (see [`NamespaceMap`]), kas and the GitLab
//! stand-in holding the scenario's `gitlab` fixtures on loopback, and one agentk per agent, either
//! in-process or in the cluster through the Helm chart. Requests go through kas's Kubernetes API
//! proxy exactly as in the simulator; the identity the API server saw is read back with a
//! SelfSubjectReview through the same proxy and credentials. Everything is deleted afterwards,
//! also after a failure.
//!
//! What a cluster cannot do is refused, not faked: a `sim_only` scenario is reported as skipped
//! with its reason; a scenario with `load`, `fault` or `assert` steps, or an `advance` longer than
//! [`MAX_REAL_ADVANCE`], must say `sim_only` (the run fails, naming the step, if it does not).
//! `advance` waits in real time; timeouts are wall-clock.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kasim_conformance::helm::{self, Release};
use kasim_conformance::standin::{KAS_SECRET, WallClock};
use kasim_conformance::{AgentStack, AgentkPlacement, ClusterBackend, ClusterRun, GitLabSetup, RunOptions};
use kasim_core::http_client;
use kasim_core::transport::Dialer;
use kasim_core::transport::tcp::TcpConnector;
use kasim_gitlab::{GitLab, Settings};
use kasim_sim::client::HttpCall;
use serde_json::Value;

use crate::credentials;
use crate::fixtures::{self, Issued};
use crate::namespace_map::NamespaceMap;
use crate::result::{Actual, Failure, RequestOutcome, RunResult, Status, StepResult};
use crate::runner::{self, DEFAULT_TIMEOUT};
use crate::spec::{Identity, Request, ScenarioFile};
use crate::validate::Loaded;
use crate::version::KubeVersion;

/// The longest `advance` a cluster run waits out in real time; longer ones need the simulator.
pub const MAX_REAL_ADVANCE: Duration = Duration::from_secs(60);

/// How long agents get to connect to kas before the first step.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// In-cluster agentk: image already loaded, the pod must start first.
const HELM_CONNECT_TIMEOUT: Duration = Duration::from_secs(180);

/// Where agentk runs in a cluster run.
#[derive(Debug, Clone)]
pub enum AgentkMode {
    /// In the kasim process, with the run's service-account token.
    InProcess,
    /// In the cluster, installed with the Helm chart; kas listens on `kas_listen` and agentk
    /// dials `kas_address`.
    Helm { chart: PathBuf, sets: Vec<String>, kas_listen: std::net::SocketAddr, kas_address: String },
}

impl AgentkMode {
    fn describe(&self) -> String {
        match self {
            Self::InProcess => "in-process".into(),
            Self::Helm { chart, kas_address, .. } => format!("helm chart {} (kas at {kas_address})", chart.display()),
        }
    }
}

/// Why a scenario cannot run on a cluster as written, or `None`.
pub fn unsupported_step(spec: &ScenarioFile) -> Option<String> {
    spec.steps.iter().find_map(|s| {
        let what = if s.load.is_some() {
            "load (background load needs the simulator's ledger)"
        } else if s.fault.is_some() {
            "fault (faults are injected by the simulator)"
        } else if s.assert.is_some() {
            "assert (it reads the simulator's internals)"
        } else if s.advance.is_some_and(|d| d.0 > MAX_REAL_ADVANCE) {
            "advance longer than 60s (real time)"
        } else {
            return None;
        };
        Some(format!(
            "step {:?} uses {what}; mark the scenario `sim_only: <reason>` to run it only in the simulator",
            s.name
        ))
    })
}

/// A run name: `kasim-<scenario>-<1MM>-<6 hex>`, a DNS label (≤ 63 characters).
pub fn run_namespace(scenario: &str, version: KubeVersion, nonce: u64) -> String {
    let clean: String = scenario
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect::<String>()
        .trim_matches('-')
        .chars()
        .take(40)
        .collect();
    let clean = clean.trim_end_matches('-');
    format!("kasim-{clean}-1{}-{:06x}", version.minor, nonce & 0xff_ffff)
}

fn nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // Names must not collide with a concurrent or leftover run; nothing else depends on this value.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
}

/// Converts YAML fixture values to JSON values.
fn to_json(v: &serde_yaml_ng::Value) -> Result<Value, String> {
    serde_json::to_value(v).map_err(|e| e.to_string())
}

/// The server's `1.<minor>` (`minor` may carry a `+`, as on some distributions).
pub async fn server_version(backend: &dyn ClusterBackend) -> Result<(KubeVersion, String), String> {
    let client = backend.access().client().await.map_err(|e| e.to_string())?;
    let info = client.apiserver_version().await.map_err(|e| format!("GET /version: {e}"))?;
    let minor: u32 = info
        .minor
        .trim_end_matches('+')
        .parse()
        .map_err(|_| format!("the server reports minor version {:?}", info.minor))?;
    if info.major != "1" {
        return Err(format!("the server reports major version {:?}", info.major));
    }
    Ok((KubeVersion { minor }, info.git_version))
}

/// The result of a run that did not get to its steps.
fn early(
    l: &Loaded,
    version: KubeVersion,
    status: Status,
    why: String,
    derived: BTreeMap<String, String>,
) -> RunResult {
    let (skipped, failure) = match status {
        Status::Skip => (Some(why), None),
        _ => (None, Some(Failure { step: "(setup)".into(), expected: "a working cluster run".into(), actual: why })),
    };
    RunResult {
        scenario: l.spec.name.clone(),
        file: l.file.clone(),
        version: version.to_string(),
        backend: "cluster",
        seed: 0,
        status,
        skipped,
        virtual_ms: 0,
        steps: vec![],
        failure,
        replay: replay_command(l, version),
        derived,
    }
}

/// How to run this scenario on a cluster again.
pub fn replay_command(l: &Loaded, version: KubeVersion) -> String {
    format!("kasim run --backend cluster {} --kubernetes-version {version}", l.file)
}

/// A skipped result (the scenario does not list the cluster's version, or is `sim_only`).
pub fn skipped(l: &Loaded, version: KubeVersion, why: String) -> RunResult {
    early(l, version, Status::Skip, why, BTreeMap::new())
}

/// Runs one scenario on `backend`, whose server runs `version` (`git_version` for the report).
/// Never panics on a broken cluster: every problem ends up in the result.
pub async fn run(
    backend: &dyn ClusterBackend,
    l: &Loaded,
    version: KubeVersion,
    git_version: &str,
    agentk: &AgentkMode,
) -> RunResult {
    if let Some(why) = &l.spec.sim_only {
        return skipped(l, version, format!("sim_only: {why}"));
    }
    let ns = run_namespace(&l.spec.name, version, nonce());
    let mut derived = BTreeMap::from([
        ("cluster".to_owned(), backend.describe()),
        ("server".to_owned(), git_version.to_owned()),
        ("namespace".to_owned(), ns.clone()),
        ("agentk".to_owned(), agentk.describe()),
    ]);
    if let Some(why) = unsupported_step(&l.spec) {
        return early(l, version, Status::Fail, why, derived);
    }
    let mapped = l
        .spec
        .cluster
        .objects
        .iter()
        .map(to_json)
        .collect::<Result<Vec<Value>, String>>()
        .and_then(|objects| Ok((NamespaceMap::new(&objects, &ns).map_err(|e| e.to_string())?, objects)));
    let (map, objects) = match mapped {
        Ok(m) => m,
        Err(e) => return early(l, version, Status::Fail, format!("{}: {e}", l.file), derived),
    };
    derived.insert("namespace.mapped".into(), format!("{} -> {ns}", map.scenario_namespace()));

    let run = match ClusterRun::create(backend.access(), RunOptions::new(ns.trim_start_matches("kasim-"))).await {
        Ok(r) => r,
        Err(e) => return early(l, version, Status::Fail, format!("setting up the run namespace: {e}"), derived),
    };
    let mut result = play(&run, l, version, &map, &objects, agentk, derived).await;
    if let Err(e) = run.cleanup().await {
        result.status = Status::Fail;
        result.failure.get_or_insert(Failure {
            step: "(cleanup)".into(),
            expected: "every object of the run deleted".into(),
            actual: e.to_string(),
        });
    }
    result
}

/// Everything between the run's creation and its cleanup.
async fn play(
    run: &ClusterRun,
    l: &Loaded,
    version: KubeVersion,
    map: &NamespaceMap,
    objects: &[Value],
    agentk: &AgentkMode,
    derived: BTreeMap<String, String>,
) -> RunResult {
    let fail = |why: String| early(l, version, Status::Fail, why, derived.clone());
    let fixtures_yaml = match map.fixtures(objects) {
        Ok(objs) => objs.iter().map(Value::to_string).collect::<Vec<_>>().join("\n---\n"),
        Err(e) => return fail(format!("{}: {e}", l.file)),
    };
    if !fixtures_yaml.is_empty()
        && let Err(e) = run.apply_fixtures(&fixtures_yaml).await
    {
        return fail(format!("applying cluster fixtures: {e}"));
    }

    // The scenario's GitLab, with its agent configurations' namespaces mapped.
    let mut g = l.spec.gitlab.clone();
    for a in &mut g.agents {
        if let Some(cfg) = &a.config {
            let mapped = to_json(cfg).and_then(|mut v| {
                map.forward_value(&mut v);
                serde_yaml_ng::to_value(v).map_err(|e| e.to_string())
            });
            match mapped {
                Ok(v) => a.config = Some(v),
                Err(e) => return fail(format!("agent {} config: {e}", a.name)),
            }
        }
    }
    let issued = Arc::new(Mutex::new(Issued::default()));
    let fx = match fixtures::build(&g, &[], version, issued.clone()) {
        Ok(f) => f,
        Err(e) => return fail(e.to_string()),
    };
    let placement = match agentk {
        AgentkMode::InProcess => AgentkPlacement::InProcess,
        AgentkMode::Helm { kas_listen, .. } => AgentkPlacement::External { listen: *kas_listen },
    };
    let stack = AgentStack::start_with(run, placement, move |proxy_url| {
        let gl = GitLab::new(
            Settings { kas_jwt_secret: KAS_SECRET.to_vec(), k8s_proxy_url: proxy_url.to_owned(), token_seed: 1 },
            Arc::new(WallClock),
        );
        let ids = (fx.gitlab)(&gl).map_err(kasim_conformance::stack::StackError::GitLab)?;
        let agent_tokens = ids
            .iter()
            .map(|a| gl.create_agent_token(*a).map_err(|e| kasim_conformance::stack::StackError::GitLab(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(GitLabSetup { gitlab: gl, agent_tokens })
    })
    .await;
    let stack = match stack {
        Ok(s) => s,
        Err(e) => return fail(format!("starting kas, the GitLab stand-in and agentk: {e}")),
    };
    let gitlab = stack.gitlab().clone();
    let agent_ids = issued.lock().unwrap_or_else(|e| e.into_inner()).agent_ids.clone();
    let mut connect_timeout = CONNECT_TIMEOUT;
    if let AgentkMode::Helm { chart, sets, kas_address, .. } = agentk {
        connect_timeout = HELM_CONNECT_TIMEOUT;
        for (i, token) in stack.agent_tokens().iter().cloned().enumerate() {
            let release = Release {
                name: format!("kasim-agentk-{}", i + 1),
                namespace: run.namespace().to_owned(),
                chart: chart.clone(),
                kas_address: kas_address.clone(),
                token,
                service_account: "agentk".into(),
                sets: sets.clone(),
                timeout: "180s".into(),
            };
            if let Err(e) = release.install().await {
                return fail(format!("installing agentk with Helm: {e}"));
            }
        }
    }
    if let Err(missing) = stack.wait_connected(&agent_ids, connect_timeout).await {
        return fail(format!("agents {missing:?} did not connect to kas within {}s", connect_timeout.as_secs()));
    }

    let ctx = Ctx { l, version, map, gitlab: &gitlab, issued: &issued, proxy: stack.proxy_url() };
    let started = Instant::now();
    let scenario_timeout = l.spec.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0);
    let mut steps = vec![];
    let mut failure: Option<Failure> = None;
    for st in &l.spec.steps {
        let timeout = st.timeout.map_or(scenario_timeout, |t| t.0);
        let mut out = StepResult {
            name: st.name.clone(),
            kind: "",
            status: Status::Pass,
            at_ms: 0,
            request: None,
            problems: vec![],
        };
        if let Some(r) = &st.request {
            out.kind = "request";
            let (outcome, problems) = ctx.request(r, &st.name, timeout).await;
            out.request = Some(outcome);
            out.problems = problems;
        } else if let Some(d) = st.advance {
            out.kind = "advance";
            tokio::time::sleep(d.0).await;
        }
        out.at_ms = started.elapsed().as_millis();
        if !out.problems.is_empty() {
            out.status = Status::Fail;
            failure.get_or_insert_with(|| Failure {
                step: st.name.clone(),
                expected: out
                    .request
                    .as_ref()
                    .map_or_else(String::new, |r| serde_json::to_string(&r.expected).unwrap_or_default()),
                actual: out.problems.join("; "),
            });
        }
        steps.push(out);
    }
    drop(stack);
    RunResult {
        scenario: l.spec.name.clone(),
        file: l.file.clone(),
        version: version.to_string(),
        backend: "cluster",
        seed: 0,
        status: if failure.is_some() { Status::Fail } else { Status::Pass },
        skipped: None,
        virtual_ms: started.elapsed().as_millis(),
        steps,
        failure,
        replay: replay_command(l, version),
        derived,
    }
}

/// What request steps need.
struct Ctx<'a> {
    l: &'a Loaded,
    version: KubeVersion,
    map: &'a NamespaceMap,
    gitlab: &'a GitLab,
    issued: &'a Mutex<Issued>,
    proxy: &'a str,
}

/// A response as it came back.
struct Response {
    status: u16,
    body: String,
}

impl Ctx<'_> {
    async fn request(&self, r: &Request, step: &str, timeout: Duration) -> (RequestOutcome, Vec<String>) {
        let expected = runner::expected_for(r, self.version);
        let mut outcome = RequestOutcome {
            key: format!("{}/{step}/{}", self.l.spec.name, self.version),
            job: r.job.clone(),
            method: r.method.clone(),
            path: r.path.clone(),
            expected: expected.clone(),
            actual: Actual::default(),
        };
        let creds = {
            let issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
            let kubeconfig = |t: &str| self.gitlab.ci_kubeconfig(t).map_err(|e| e.to_string());
            let default = self.proxy.trim_start_matches("http://");
            credentials::resolve(
                &issued.job_tokens,
                kubeconfig,
                default,
                &r.job,
                r.context.as_deref(),
                r.agent_id,
                r.job_token.as_deref(),
            )
        };
        let creds = match creds {
            Ok(c) => c,
            Err(e) => {
                outcome.actual.error = Some(e.clone());
                return (outcome, vec![e]);
            }
        };
        let auth = format!("Bearer {}", creds.token);
        let mut headers = vec![("authorization".to_owned(), auth.clone())];
        headers.extend(r.headers.iter().map(|(k, v)| (k.clone(), self.map.forward(v))));
        let body = r.body.as_ref().and_then(|b| to_json(b).ok()).map(|mut b| {
            self.map.forward_value(&mut b);
            b.to_string()
        });
        let path = self.map.forward(&r.path);
        let started = Instant::now();
        let mut identity_error = None;
        let got = tokio::time::timeout(timeout, send(&creds.authority, &r.method, &path, &headers, body)).await;
        let a = &mut outcome.actual;
        a.latency_ms = started.elapsed().as_millis();
        match got {
            Err(_) => a.error = Some(format!("no outcome within {}s", timeout.as_secs_f64())),
            Ok(Err(e)) => a.error = Some(e),
            Ok(Ok(resp)) => {
                a.record_response(resp.status, &self.map.back(&resp.body));
                // kas's own answers never reached the API server: no identity (as in the simulator,
                // whose API server audit has no entry for them).
                if !a.message.as_deref().is_some_and(|m| m.starts_with("GitLab Agent Server")) {
                    match self.who_am_i(&creds.authority, &auth, timeout).await {
                        Ok(id) => a.identity = Some(id),
                        Err(e) => {
                            identity_error = Some(format!("identity read-back (SelfSubjectReview through kas): {e}"))
                        }
                    }
                }
            }
        }
        let mut problems = runner::compare(&expected, a);
        problems.extend(identity_error);
        (outcome, problems)
    }

    /// The identity the API server gives these credentials: a SelfSubjectReview through kas.
    async fn who_am_i(&self, authority: &str, auth: &str, timeout: Duration) -> Result<Identity, String> {
        let review = r#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#;
        let headers = [("authorization".to_owned(), auth.to_owned())];
        let path = "/apis/authentication.k8s.io/v1/selfsubjectreviews";
        let resp = tokio::time::timeout(timeout, send(authority, "POST", path, &headers, Some(review.into())))
            .await
            .map_err(|_| format!("no answer within {}s", timeout.as_secs_f64()))??;
        if resp.status != 201 {
            return Err(format!("status {}: {}", resp.status, resp.body.chars().take(300).collect::<String>()));
        }
        let v: Value = serde_json::from_str(&self.map.back(&resp.body)).map_err(|e| format!("answer: {e}"))?;
        let u = &v["status"]["userInfo"];
        let strings = |v: &Value| -> Vec<String> {
            v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect()).unwrap_or_default()
        };
        let extra: BTreeMap<String, Vec<String>> = u["extra"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), strings(v))).collect())
            .unwrap_or_default();
        Ok(Identity {
            user: u["username"].as_str().map(str::to_owned),
            groups: Some(strings(&u["groups"])),
            extra: Some(extra),
        })
    }
}

/// One HTTP/1.1 request to kas's proxy on a fresh connection (built as the simulator's CI client
/// builds it, sent with core's one-shot client); reads the whole body. `authority` may carry a path
/// prefix (`host:port/k8s-proxy`).
async fn send(
    authority: &str,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Option<String>,
) -> Result<Response, String> {
    let (host, prefix) = authority.split_once('/').map_or((authority, String::new()), |(h, p)| (h, format!("/{p}")));
    let call = HttpCall {
        authority: host.to_owned(),
        method: method.to_owned(),
        path: format!("{prefix}{path}"),
        headers: headers.to_vec(),
        body,
        timeout: Duration::ZERO, // unused here: the caller applies the wall-clock timeout
    };
    let dialer: Dialer = Arc::new(TcpConnector);
    let resp = http_client::send(&dialer, host, call.request()?).await.map_err(|e| e.to_string())?;
    Ok(Response { status: resp.status.as_u16(), body: String::from_utf8_lossy(&resp.body).into_owned() })
}

/// The agentk image a Helm install uses: `image.repository` and `image.tag` from the `--set`
/// values (the last one wins, as with helm), else from the chart's `values.yaml`.
pub fn chart_image(chart: &std::path::Path, sets: &[String]) -> Result<String, String> {
    let path = chart.join("values.yaml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let values: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let set = |key: &str| sets.iter().rev().find_map(|s| s.strip_prefix(key).and_then(|r| r.strip_prefix('=')));
    let repo = set("image.repository")
        .map(str::to_owned)
        .or_else(|| values["image"]["repository"].as_str().map(str::to_owned));
    let tag = set("image.tag").map(str::to_owned).or_else(|| values["image"]["tag"].as_str().map(str::to_owned));
    match (repo, tag) {
        (Some(r), Some(t)) => Ok(format!("{r}:{t}")),
        _ => Err(format!("{}: no image.repository/image.tag, and none in --set", path.display())),
    }
}

/// `helm` is needed for [`AgentkMode::Helm`]; the one-line reason when it is missing.
pub fn helm_ready() -> Result<String, String> {
    helm::helm_available().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_helm_image_comes_from_set_values_over_the_charts_defaults() {
        let chart = kasim_conformance::helm::default_chart();
        assert_eq!(chart_image(&chart, &[]).unwrap(), "kasim/agentk:dev");
        let sets = ["image.tag=release".to_owned(), "image.tag=v2".to_owned()];
        assert_eq!(chart_image(&chart, &sets).unwrap(), "kasim/agentk:v2");
        assert!(
            chart_image(std::path::Path::new("/nonexistent"), &[]).unwrap_err().contains("/nonexistent/values.yaml")
        );
    }

    #[test]
    fn run_namespaces_are_dns_labels() {
        let v = KubeVersion { minor: 32 };
        assert_eq!(run_namespace("rbac-impersonation", v, 0xabcdef12), "kasim-rbac-impersonation-132-cdef12");
        let long = run_namespace("A very_long scenario name that goes on and on and on", v, 1);
        assert!(long.len() <= 63, "{long}");
        assert!(long.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'), "{long}");
        assert!(!long.contains("--"), "{long}");
    }
}
