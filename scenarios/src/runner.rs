//! Plays one scenario for one Kubernetes version and seed in the simulator.
//!
//! Steps run in file order between simulation steps. A `request` queues an HTTP call on the CI
//! client host and steps the world until its outcome arrives (or the step's timeout passes); `load`
//! starts background calls and returns; `advance` steps virtual time; `fault` applies a fault now;
//! `assert` reads the world. An expectation mismatch marks the step and the run failed but the run
//! goes on (later request outcomes still land in the JSON report); an invariant breach or a fault
//! that cannot be applied stops the run.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kasim_sim::agent_host::kubernetes_services;
use kasim_sim::client::{Command, HttpCall, HttpOutcome};
use kasim_sim::kas_host::k8s_proxy_authority;
use kasim_sim::seed::Seed;
use kasim_sim::topology::{AgentTopology, SimDuration};
use kasim_sim::world::{Extensions, RunError, World, WorldError};

use crate::assert;
use crate::fixtures::{self, FixtureError, Issued};
use crate::result::{Actual, Failure, RequestOutcome, RunResult, Status, StepResult};
use crate::spec::{Expect, Identity, LoadKind, Request};
use crate::validate::Loaded;
use crate::version::KubeVersion;

/// Default step timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a run could not start (bad input, exit code 2), as opposed to failing.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("{file}: {source}")]
    Fixtures { file: String, source: FixtureError },
    #[error("{file}: building the world: {source}")]
    World { file: String, source: WorldError },
}

/// The world plus what the runner tracks between steps.
pub(crate) struct Live {
    pub world: World,
    pub issued: Arc<Mutex<Issued>>,
    pub agent_names: Vec<String>,
    /// Oldest kas agent connection age seen, sampled every second of virtual time.
    pub max_conn_age: Duration,
    sample_every: u64,
}

impl Live {
    /// One world step, with sampling.
    pub fn step(&mut self) -> Result<(), RunError> {
        self.world.step()?;
        if self.world.steps().is_multiple_of(self.sample_every) {
            let now = self.world.elapsed();
            if let Some(t) = self.world.connections().oldest("kas-") {
                self.max_conn_age = self.max_conn_age.max(now.saturating_sub(t));
            }
        }
        Ok(())
    }

    pub fn run_until(&mut self, until: Duration) -> Result<(), RunError> {
        while self.world.elapsed() < until {
            self.step()?;
        }
        Ok(())
    }

    pub fn agent_index(&self, name: Option<&str>) -> usize {
        name.and_then(|n| self.agent_names.iter().position(|a| a == n)).unwrap_or(0)
    }
}

/// The command that re-runs this scenario, version and seed with the full trace.
pub fn replay_command(file: &str, version: KubeVersion, seed: u64) -> String {
    format!("cargo run -p kasim-scenarios --bin kasim -- replay {file} --k8s {version} --seed {seed}")
}

/// Plays `l` on `version` with `seed`. `Ok` carries passing and failing runs alike; the trace is
/// returned alongside for `kasim replay`.
pub fn run(l: &Loaded, version: KubeVersion, seed: u64) -> Result<(RunResult, String), RunnerError> {
    let spec = &l.spec;
    let issued = Arc::new(Mutex::new(Issued::default()));
    let fx = fixtures::build(&spec.gitlab, &spec.cluster.objects, version, issued.clone())
        .map_err(|source| RunnerError::Fixtures { file: l.file.clone(), source })?;
    let mut topology = spec.topology.clone();
    topology.agents = spec.gitlab.agents.iter().map(|a| AgentTopology { pool: a.pool.clone() }).collect();
    let ext = Extensions { services: kubernetes_services(), fixtures: Some(fx) };
    let world = World::build_with(&topology, Seed(seed), ext)
        .map_err(|source| RunnerError::World { file: l.file.clone(), source })?;
    let tick = topology.tick.0.max(Duration::from_millis(1));
    let sample_every = u64::try_from((Duration::from_secs(1).as_nanos() / tick.as_nanos()).max(1)).unwrap_or(1);
    let mut live = Live {
        world,
        issued,
        agent_names: spec.gitlab.agents.iter().map(|a| a.name.clone()).collect(),
        max_conn_age: Duration::ZERO,
        sample_every,
    };
    let replay = replay_command(&l.file, version, seed);
    live.world.set_replay_command(&replay);
    live.world.trace().record("runner", format_args!("scenario {} on Kubernetes {version}, seed {seed}", spec.name));
    for line in live.world.banner().lines() {
        live.world.trace().record("runner", line);
    }

    let scenario_timeout = spec.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0);
    let mut steps = vec![];
    let mut failure: Option<Failure> = None;
    for st in &spec.steps {
        let timeout = st.timeout.map_or(scenario_timeout, |t| t.0);
        live.world.trace().record("runner", format_args!("step {:?}", st.name));
        let mut out = StepResult {
            name: st.name.clone(),
            kind: "",
            status: Status::Pass,
            at_ms: 0,
            request: None,
            problems: vec![],
        };
        let res: Result<(), RunError> = (|| {
            if let Some(r) = &st.request {
                out.kind = "request";
                let (outcome, problems) = request(&mut live, l, r, &st.name, version, timeout)?;
                out.request = Some(outcome);
                out.problems = problems;
            } else if let Some(ld) = &st.load {
                out.kind = "load";
                let agent = live.agent_index(ld.agent.as_deref());
                let hold_for = ld.hold_for.map_or(Duration::ZERO, |d| d.0);
                let call_timeout = ld.timeout.map_or(hold_for + Duration::from_secs(60), |d| d.0);
                let cmd = match ld.kind {
                    LoadKind::Hold => Command::Holds { agent, count: ld.count, hold_for, timeout: call_timeout },
                    LoadKind::Unary => Command::Unary {
                        agent,
                        count: ld.count,
                        interval: ld.interval.map_or(Duration::from_secs(1), |d| d.0),
                        timeout: call_timeout,
                    },
                    LoadKind::Watch => {
                        let job = ld.job.clone().unwrap_or_default();
                        let (authority, token, _) = credentials(&live, &job, None, None, None)
                            .map_err(|e| RunError::Sim(format!("load: {e}")))?;
                        Command::Watches {
                            agent,
                            count: ld.count,
                            call: HttpCall {
                                authority,
                                method: "GET".into(),
                                path: ld.path.clone().unwrap_or_default(),
                                headers: vec![("authorization".into(), format!("Bearer {token}"))],
                                body: None,
                                timeout: call_timeout,
                            },
                        }
                    }
                };
                client(&live)?.load(cmd);
            } else if let Some(d) = st.advance {
                out.kind = "advance";
                let until = live.world.elapsed() + d.0;
                live.run_until(until)?;
            } else if let Some(f) = &st.fault {
                out.kind = "fault";
                live.world.apply_expanded(f)?;
            } else if let Some(a) = &st.assert {
                out.kind = "assert";
                out.problems = assert::check(&mut live, a)?;
            }
            Ok(())
        })();
        out.at_ms = live.world.elapsed().as_millis();
        if let Err(e) = res {
            out.problems.push(e.to_string());
            out.status = Status::Fail;
            failure.get_or_insert(Failure {
                step: st.name.clone(),
                expected: "no error".into(),
                actual: e.to_string(),
            });
            steps.push(out);
            break;
        }
        if !out.problems.is_empty() {
            out.status = Status::Fail;
            failure.get_or_insert_with(|| Failure {
                step: st.name.clone(),
                expected: out.request.as_ref().map_or_else(String::new, |r| expect_text(&r.expected)),
                actual: out.problems.join("; "),
            });
        }
        steps.push(out);
    }
    if failure.is_none()
        && let Err(e) = live.world.check()
    {
        failure = Some(Failure { step: "(end)".into(), expected: "invariants hold".into(), actual: e.to_string() });
    }
    let status = if failure.is_some() { Status::Fail } else { Status::Pass };
    live.world.trace().record("runner", format_args!("run {status:?}"));
    let derived = live.world.derived().entries().iter().cloned().collect();
    let result = RunResult {
        scenario: spec.name.clone(),
        file: l.file.clone(),
        version: version.to_string(),
        backend: "sim",
        seed,
        status,
        skipped: None,
        virtual_ms: live.world.elapsed().as_millis(),
        steps,
        failure,
        replay,
        derived,
    };
    Ok((result, live.world.trace().text()))
}

fn client(live: &Live) -> Result<&kasim_sim::client::ClientControl, RunError> {
    live.world.client().ok_or_else(|| RunError::Sim("the world has no CI client host".into()))
}

fn expect_text(e: &Expect) -> String {
    serde_json::to_string(e).unwrap_or_default()
}

/// (k8s proxy authority, bearer token, agent index) for a job through its kubeconfig context, or
/// with a hand-made `ci:<agent_id>:<token>`.
fn credentials(
    live: &Live,
    job: &str,
    context: Option<&str>,
    agent_id: Option<i64>,
    job_token: Option<&str>,
) -> Result<(String, String, usize), String> {
    let issued = live.issued.lock().unwrap_or_else(|e| e.into_inner());
    let gitlab = live.world.gitlab();
    let kubeconfig = |token: &str| match gitlab {
        Some(g) => g.ci_kubeconfig(token).map_err(|e| e.to_string()),
        None => Err("the world has no GitLab model".to_owned()),
    };
    let c = crate::credentials::resolve(
        &issued.job_tokens,
        kubeconfig,
        &k8s_proxy_authority(0),
        job,
        context,
        agent_id,
        job_token,
    )?;
    let index = issued.agent_ids.iter().position(|a| *a == c.agent_id).unwrap_or(0);
    Ok((c.authority, c.token, index))
}

fn request(
    live: &mut Live,
    l: &Loaded,
    r: &Request,
    step: &str,
    version: KubeVersion,
    timeout: Duration,
) -> Result<(RequestOutcome, Vec<String>), RunError> {
    let expected = expected_for(r, version);
    let mut outcome = RequestOutcome {
        key: format!("{}/{step}/{version}", l.spec.name),
        job: r.job.clone(),
        method: r.method.clone(),
        path: r.path.clone(),
        expected: expected.clone(),
        actual: Actual::default(),
    };
    let (authority, token, cluster) =
        match credentials(live, &r.job, r.context.as_deref(), r.agent_id, r.job_token.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                outcome.actual.error = Some(e.clone());
                return Ok((outcome, vec![e]));
            }
        };
    let mut headers = vec![("authorization".to_owned(), format!("Bearer {token}"))];
    headers.extend(r.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
    let body = r.body.as_ref().map(|b| serde_json::to_string(b).unwrap_or_default());
    let audit_from = live.world.apiserver(cluster).map_or(0, |a| a.audit().len());
    let call = HttpCall { authority, method: r.method.clone(), path: r.path.clone(), headers, body, timeout };
    let client = client(live)?.clone();
    let id = client.http(call);
    let deadline = live.world.elapsed() + timeout + Duration::from_secs(1);
    let got = loop {
        if let Some(o) = client.take(id) {
            break o;
        }
        if live.world.elapsed() >= deadline {
            break HttpOutcome::Error {
                error: format!("no outcome within {}", SimDuration(timeout)),
                elapsed: timeout,
            };
        }
        live.step()?;
    };
    let a = &mut outcome.actual;
    match got {
        HttpOutcome::Response { status, body, elapsed } => {
            a.latency_ms = elapsed.as_millis();
            a.record_response(status, &body);
        }
        HttpOutcome::Error { error, elapsed } => {
            a.error = Some(error);
            a.latency_ms = elapsed.as_millis();
        }
    }
    let path = r.path.split('?').next().unwrap_or(&r.path);
    a.identity = live.world.apiserver(cluster).and_then(|srv| {
        srv.audit()
            .into_iter()
            .skip(audit_from)
            .rfind(|e| e.path == path && e.method.eq_ignore_ascii_case(&r.method))
            .and_then(|e| e.effective_user().cloned())
            .map(|u| Identity { user: Some(u.username), groups: Some(u.groups), extra: Some(u.extra) })
    });
    let problems = compare(&expected, a);
    Ok((outcome, problems))
}

/// A request's expectation on `version`: `expect` with the version's `expect_by_version` over it.
pub(crate) fn expected_for(r: &Request, version: KubeVersion) -> Expect {
    let mut expected = r.expect.clone();
    if let Some(o) =
        r.expect_by_version.iter().find(|(k, _)| k.parse::<KubeVersion>().ok() == Some(version)).map(|(_, e)| e)
    {
        merge(&mut expected, o);
    }
    expected
}

/// `o`'s set fields over `base` (`expect_by_version`).
pub(crate) fn merge(base: &mut Expect, o: &Expect) {
    macro_rules! take {
        ($($f:ident),*) => { $( if o.$f.is_some() { base.$f = o.$f.clone(); } )* };
    }
    take!(status, message, message_contains, body_contains, body_excludes, body_json, identity, latency);
}

/// Every mismatch between `e` and `a`, as `field: expected X, got Y`.
pub fn compare(e: &Expect, a: &Actual) -> Vec<String> {
    let mut p = vec![];
    if let Some(err) = &a.error {
        p.push(format!("request failed: {err}"));
        return p;
    }
    if let Some(s) = e.status
        && a.status != Some(s)
    {
        p.push(format!("status: expected {s}, got {}", a.status.map_or("none".into(), |s| s.to_string())));
    }
    let msg = a.message.as_deref().unwrap_or("");
    if let Some(m) = &e.message
        && msg != m
    {
        p.push(format!("message: expected {m:?}, got {msg:?}"));
    }
    if let Some(m) = &e.message_contains
        && !msg.contains(m.as_str())
    {
        p.push(format!("message: expected to contain {m:?}, got {msg:?}"));
    }
    if let Some(b) = &e.body_contains
        && !a.body.contains(b.as_str())
    {
        p.push(format!("body: expected to contain {b:?}, got {:?}", a.body.chars().take(300).collect::<String>()));
    }
    if let Some(b) = &e.body_excludes
        && a.body.contains(b.as_str())
    {
        p.push(format!("body: expected not to contain {b:?}"));
    }
    if let Some(want) = &e.body_json {
        let got: serde_json::Value = serde_json::from_str(&a.body).unwrap_or_default();
        if let Some(path) = json_mismatch(want, &got, String::new()) {
            p.push(format!("body_json: at {path:?} expected {}, got {}", pick(want, &path), pick(&got, &path)));
        }
    }
    if let Some(want) = &e.identity {
        let got = a.identity.clone().unwrap_or_default();
        if want.user.is_some() && want.user != got.user {
            p.push(format!("identity.user: expected {:?}, got {:?}", want.user, got.user));
        }
        if want.groups.is_some() && want.groups != got.groups {
            p.push(format!("identity.groups: expected {:?}, got {:?}", want.groups, got.groups));
        }
        if want.extra.is_some() && want.extra != got.extra {
            p.push(format!("identity.extra: expected {:?}, got {:?}", want.extra, got.extra));
        }
    }
    if let Some(r) = &e.latency {
        let got = Duration::from_millis(u64::try_from(a.latency_ms).unwrap_or(u64::MAX));
        if r.min.is_some_and(|m| got < m.0) || r.max.is_some_and(|m| got > m.0) {
            p.push(format!("latency: expected {}, got {}", assert::dur_range(r), SimDuration(got)));
        }
    }
    p
}

/// The first path where `got` does not partially match `want` (objects: subset; else equality).
fn json_mismatch(want: &serde_json::Value, got: &serde_json::Value, at: String) -> Option<String> {
    match (want, got) {
        (serde_json::Value::Object(w), serde_json::Value::Object(g)) => w.iter().find_map(|(k, wv)| {
            let here = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
            match g.get(k) {
                Some(gv) => json_mismatch(wv, gv, here),
                None => Some(here),
            }
        }),
        _ if want == got => None,
        _ => Some(at),
    }
}

fn pick(v: &serde_json::Value, path: &str) -> String {
    let mut cur = v;
    for k in path.split('.').filter(|k| !k.is_empty()) {
        match cur.get(k) {
            Some(n) => cur = n,
            None => return "nothing".into(),
        }
    }
    cur.to_string()
}
