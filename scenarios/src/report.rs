//! Reports: the one-line human summary, JUnit XML (failures carry the step, the expected and actual
//! values and the replay command) and JSON (what `kasim diff` will compare), and the JSON Schema.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use kasim_sim::topology::SimDuration;

use crate::result::{RunResult, Status};

/// `PASS stream-limit k8s 1.33 seed 1 virtual 4m0s`; on a cluster `PASS k8s-versions k8s 1.32 cluster 4.1s`.
pub fn summary_line(r: &RunResult) -> String {
    let d = SimDuration(std::time::Duration::from_millis(u64::try_from(r.virtual_ms).unwrap_or(u64::MAX)));
    let status = match r.status {
        Status::Pass => "PASS",
        Status::Fail => "FAIL",
        Status::Skip => "SKIP",
    };
    let mut s = match r.backend {
        "sim" => format!("{status} {} k8s {} seed {} virtual {d}", r.scenario, r.version, r.seed),
        b => format!("{status} {} k8s {} {b} {d}", r.scenario, r.version),
    };
    if let Some(why) = &r.skipped {
        let _ = write!(s, " ({why})");
    }
    if let Some(f) = &r.failure {
        let _ = write!(s, "\n    step {:?}: {}\n    replay: {}", f.step, f.actual, r.replay);
    }
    s
}

/// The deterministic summary of one run: its line plus every step's status and problems (what the
/// insta snapshots hold).
pub fn detailed(r: &RunResult) -> String {
    let mut s = summary_line(r);
    for st in &r.steps {
        let _ = write!(s, "\n  {:?} {} {} at {} ms", st.status, st.kind, st.name, st.at_ms);
        if let Some(req) = &st.request {
            let _ = write!(
                s,
                " -> {} {:?}",
                req.actual.status.map_or_else(|| "-".into(), |c| c.to_string()),
                req.actual.message.as_deref().unwrap_or("")
            );
        }
        for p in &st.problems {
            let _ = write!(s, "\n    {p}");
        }
    }
    s
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => {}
            c => o.push(c),
        }
    }
    o
}

/// JUnit XML: one testsuite per scenario, one testcase per version × seed. `wall` is seconds per
/// run, same order as `runs` (0 when unknown).
pub fn junit(runs: &[RunResult], wall: &[f64]) -> String {
    let mut suites: BTreeMap<&str, Vec<(usize, &RunResult)>> = BTreeMap::new();
    for (i, r) in runs.iter().enumerate() {
        suites.entry(r.scenario.as_str()).or_default().push((i, r));
    }
    let count = |rs: &mut dyn Iterator<Item = &RunResult>, st: Status| rs.filter(|r| r.status == st).count();
    let failures = count(&mut runs.iter(), Status::Fail);
    let skipped = count(&mut runs.iter(), Status::Skip);
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"kasim\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\">",
        runs.len()
    );
    for (name, rs) in suites {
        let f = count(&mut rs.iter().map(|(_, r)| *r), Status::Fail);
        let sk = count(&mut rs.iter().map(|(_, r)| *r), Status::Skip);
        let _ = writeln!(
            x,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{f}\" skipped=\"{sk}\">",
            esc(name),
            rs.len()
        );
        for (i, r) in rs {
            let t = wall.get(i).copied().unwrap_or(0.0);
            let case = match r.backend {
                "sim" => format!("k8s {} seed {}", r.version, r.seed),
                b => format!("k8s {} {b}", r.version),
            };
            let _ = write!(
                x,
                "    <testcase classname=\"{}\" name=\"{}\" file=\"{}\" time=\"{t:.3}\"",
                esc(name),
                esc(&case),
                esc(&r.file)
            );
            match (&r.failure, &r.skipped) {
                (None, Some(why)) => {
                    let _ = write!(x, ">\n      <skipped message=\"{}\"/>\n    </testcase>\n", esc(why));
                }
                (None, None) => x.push_str("/>\n"),
                (Some(fl), _) => {
                    let msg = format!("step {:?}: {}", fl.step, fl.actual);
                    let body = format!(
                        "step: {}\nexpected: {}\nactual: {}\nreplay: {}\n",
                        fl.step, fl.expected, fl.actual, r.replay
                    );
                    let _ = write!(
                        x,
                        ">\n      <failure message=\"{}\" type=\"ScenarioFailure\">{}</failure>\n    </testcase>\n",
                        esc(&msg),
                        esc(&body)
                    );
                }
            }
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}

/// JSON results: `{"runs": [...]}`.
pub fn json(runs: &[RunResult]) -> String {
    serde_json::to_string_pretty(&serde_json::json!({ "runs": runs })).unwrap_or_default()
}

/// The JSON Schema of a scenario file.
pub fn schema() -> String {
    let s = schemars::schema_for!(crate::spec::ScenarioFile);
    serde_json::to_string_pretty(&s).unwrap_or_default()
}
