//! Malformed files: each error class gives its exact message with file, line, column and field.

use kasim_scenarios::validate::load_str;

const GOOD: &str = "name: t
gitlab:
  groups: [{id: 1, path: g}]
  projects:
    - {id: 10, path: p, group: 1}
  agents:
    - {name: a, project: 10}
  jobs:
    - {name: j, project: 10}
steps:
  - name: s
    advance: 1s
";

fn errors(text: &str) -> Vec<String> {
    match load_str("t.yaml", text) {
        Ok(_) => vec![],
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn the_base_file_is_valid() {
    assert_eq!(errors(GOOD), Vec::<String>::new());
    let l = load_str("t.yaml", GOOD).unwrap();
    assert_eq!(l.versions.iter().map(ToString::to_string).collect::<Vec<_>>(), ["1.31", "1.32", "1.33"]);
}

#[test]
fn unknown_key() {
    let t = GOOD.replace("    advance: 1s", "    advance: 1s\n    advanec: 2s");
    assert_eq!(
        errors(&t),
        [
            "t.yaml:13:5: steps[0].advanec: unknown field `advanec`, expected one of `name`, `timeout`, `request`, `load`, `advance`, `fault`, `assert`"
        ]
    );
}

#[test]
fn wrong_type() {
    let t = GOOD.replace("{id: 10, path: p, group: 1}", "{id: ten, path: p, group: 1}");
    assert_eq!(errors(&t), ["t.yaml:5:12: gitlab.projects[0].id: invalid type: string \"ten\", expected i64"]);
}

#[test]
fn job_in_a_missing_project() {
    let t = GOOD.replace("{name: j, project: 10}", "{name: j, project: 99}");
    assert_eq!(errors(&t), ["t.yaml:9:7: gitlab.jobs[0].project: project 99 does not exist"]);
}

#[test]
fn agent_name_breaking_rfc_1123() {
    let t = GOOD.replace("{name: a, project: 10}", "{name: Bad_Name, project: 10}");
    assert_eq!(
        errors(&t),
        [
            "t.yaml:7:7: gitlab.agents[0].name: agent name \"Bad_Name\": name can contain only lowercase letters, digits, and '-', but cannot start or end with '-'"
        ]
    );
}

#[test]
fn more_ci_access_projects_than_gitlab_counts() {
    let entries: String = (0..501).map(|i| format!("          - id: g/p{i}\n")).collect();
    let t = GOOD.replace(
        "    - {name: a, project: 10}",
        &format!("    - name: a\n      project: 10\n      config:\n        ci_access:\n          projects:\n{entries}"),
    );
    let t = t.replace("          - id: g/p", "            - id: g/p");
    assert_eq!(
        errors(&t),
        [
            "t.yaml:11:11: gitlab.agents[0].config.ci_access.projects: 501 entries, but GitLab honours only the first 500 (AUTHORIZED_ENTITY_LIMIT): entries past it would silently not count"
        ]
    );
}

#[test]
fn versions_outside_the_window_unless_allowed() {
    let t = GOOD.replace("gitlab:", "kubernetes_versions: [\"1.30\", \"1.34\"]\ngitlab:");
    assert_eq!(
        errors(&t),
        [
            "t.yaml:2:1: kubernetes_versions[0]: Kubernetes 1.30 is outside the GitLab agent's supported window 1.31–1.33; set allow_unsupported_versions: true to run it anyway",
            "t.yaml:2:1: kubernetes_versions[1]: Kubernetes 1.34 is outside the GitLab agent's supported window 1.31–1.33; set allow_unsupported_versions: true to run it anyway"
        ]
    );
    let allowed = t.replace("gitlab:", "allow_unsupported_versions: true\ngitlab:");
    assert_eq!(errors(&allowed), Vec::<String>::new());
}

#[test]
fn step_with_two_actions_and_unknown_job() {
    let t = GOOD.replace("    advance: 1s", "    advance: 1s\n    request: {job: nope, path: /version}");
    assert_eq!(
        errors(&t),
        [
            "t.yaml:11:5: steps[0]: step \"s\" needs exactly one of request, load, advance, fault, assert (has 2)",
            "t.yaml:13:5: steps[0].request.job: job \"nope\" is not declared in gitlab.jobs"
        ]
    );
}

#[test]
fn garbage_never_panics() {
    for t in ["", ":", "- a\n- b", "name: [", "steps: 3", "\u{0}"] {
        assert!(!errors(t).is_empty(), "{t:?}");
    }
}

/// The nightly cluster matrix runs every file: each must either run on a cluster as written or say
/// why it is simulator-only (a skip with a reason, never a surprise failure).
#[test]
fn every_scenario_runs_on_a_cluster_or_says_why_not() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    let mut sim_only = vec![];
    for f in files {
        let l = kasim_scenarios::validate::load(&f).unwrap();
        match (&l.spec.sim_only, kasim_scenarios::cluster::unsupported_step(&l.spec)) {
            (Some(why), _) => {
                assert!(why.len() > 20, "{}: sim_only needs a real reason, got {why:?}", l.file);
                sim_only.push(l.spec.name.clone());
            }
            (None, None) => {}
            (None, Some(why)) => panic!("{}: {why}", l.file),
        }
    }
    assert_eq!(sim_only, ["rotation", "stream-limit"]);
}

#[test]
fn sim_only_on_a_cluster_step_is_caught() {
    let text = GOOD.replace("    advance: 1s\n", "    assert: {checkers: true}\n");
    let l = load_str("t.yaml", &text).unwrap();
    assert_eq!(
        kasim_scenarios::cluster::unsupported_step(&l.spec).unwrap(),
        "step \"s\" uses assert (it reads the simulator's internals); mark the scenario `sim_only: <reason>` to run it only in the simulator"
    );
    let long = GOOD.replace("advance: 1s", "advance: 2m");
    let l = load_str("t.yaml", &long).unwrap();
    assert!(kasim_scenarios::cluster::unsupported_step(&l.spec).unwrap().contains("advance longer than 60s"));
}

#[test]
fn sim_only_must_give_a_reason() {
    let t = GOOD.replace("name: t\n", "name: t\nsim_only: \"  \"\n");
    assert_eq!(
        errors(&t),
        ["t.yaml:2:1: sim_only: must give the reason the scenario needs the simulator (cluster reports show it)"]
    );
}
