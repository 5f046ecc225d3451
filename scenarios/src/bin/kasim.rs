//! `kasim`: lint, list, run and replay scenario files; print their JSON Schema.
//!
//! Exit codes: 0 all passed (skipped runs allowed), 1 a scenario failed, 2 bad input (unreadable or
//! invalid file, unknown backend, version outside the window) or no usable cluster.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use kasim_conformance::ClusterBackend;
use kasim_scenarios::cluster;
use kasim_scenarios::report;
use kasim_scenarios::result::{RunResult, Status};
use kasim_scenarios::runner;
use kasim_scenarios::validate::{self, Loaded};
use kasim_scenarios::version::KubeVersion;

#[derive(Parser)]
#[command(name = "kasim", about = "Simulation and conformance harness for the GitLab agent for Kubernetes")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run scenario files (directories: their *.yaml files, not recursive).
    Run {
        #[arg(default_value = "scenarios")]
        paths: Vec<PathBuf>,
        /// One seed (default: each file's `seed`).
        #[arg(long, conflicts_with = "seeds")]
        seed: Option<u64>,
        /// A seed range `A..B` (B exclusive).
        #[arg(long)]
        seeds: Option<String>,
        /// `sim` (the deterministic simulator) or `cluster` (a real Kubernetes API server).
        #[arg(long, default_value = "sim")]
        backend: String,
        /// Only this Kubernetes version (must be one the file lists).
        #[arg(long, visible_alias = "kubernetes-version")]
        k8s: Option<String>,
        /// Run only shard N of M (`N/M`, 1-based) of the scenario × version runs.
        #[arg(long)]
        shard: Option<String>,
        #[arg(long)]
        junit: Option<PathBuf>,
        #[arg(long)]
        json: Option<PathBuf>,
        #[command(flatten)]
        cluster: Box<ClusterArgs>,
    },
    /// Re-run one scenario, version and seed, and print the full trace.
    Replay {
        path: PathBuf,
        #[arg(long)]
        seed: Option<u64>,
        #[arg(long)]
        k8s: Option<String>,
    },
    /// Check files without running them.
    Lint {
        #[arg(default_value = "scenarios")]
        paths: Vec<PathBuf>,
    },
    /// Print the JSON Schema of scenario files.
    Schema,
    /// List every request whose decision, status, identity or message differs between two JSON
    /// reports (e.g. 1.31 vs 1.33, or sim vs cluster). Exit 0: none differ; 1: some do.
    Diff {
        a: PathBuf,
        b: PathBuf,
        /// Match requests by scenario and step only (automatic when the reports' versions are disjoint).
        #[arg(long)]
        ignore_version: bool,
    },
    /// List scenarios and the runs they make.
    List {
        #[arg(default_value = "scenarios")]
        paths: Vec<PathBuf>,
    },
}

/// `--backend cluster` options.
#[derive(clap::Args)]
struct ClusterArgs {
    /// Where the cluster comes from: `kubeconfig` (KUBECONFIG or ~/.kube/config, as kubectl),
    /// `kind` (created per version from kind-configs/<version>.yaml, deleted afterwards) or `k3s`
    /// (a testcontainers k3s container per version).
    #[arg(long, default_value = "kubeconfig")]
    cluster: String,
    /// The kubeconfig context (default: the current one).
    #[arg(long)]
    context: Option<String>,
    /// Keep kind clusters after the run (for debugging).
    #[arg(long)]
    keep: bool,
    /// Where agentk runs: `in-process` (default) or `helm` (in the cluster, with the chart).
    #[arg(long, default_value = "in-process")]
    agentk: String,
    /// `--agentk helm`: the chart (kasim's, or the upstream gitlab-agent chart).
    #[arg(long)]
    chart: Option<PathBuf>,
    /// `--agentk helm`: chart values, `key=value` (repeatable), applied last.
    #[arg(long = "set")]
    sets: Vec<String>,
    /// `--agentk helm`: where kas listens for agents.
    #[arg(long, default_value = "0.0.0.0:8150")]
    kas_listen: std::net::SocketAddr,
    /// `--agentk helm`: the address agentk in the cluster dials (default: grpc://<gateway of the
    /// `kind` Docker network>:<kas-listen port>).
    #[arg(long)]
    kas_address: Option<String>,
}

const BAD_INPUT: u8 = 2;

/// Parses `N/M` (1 ≤ N ≤ M).
fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("--shard {s:?}: want N/M with 1 <= N <= M, e.g. 2/3");
    let (n, m) = s.split_once('/').ok_or_else(bad)?;
    let (n, m): (usize, usize) = (n.trim().parse().map_err(|_| bad())?, m.trim().parse().map_err(|_| bad())?);
    if n == 0 || m == 0 || n > m {
        return Err(bad());
    }
    Ok((n, m))
}

/// Entry `i` of a plan belongs to shard `n` of `m` when `i % m == n - 1`: stable for a given set of
/// files, and every run lands in exactly one shard.
fn in_shard(i: usize, shard: Option<(usize, usize)>) -> bool {
    shard.is_none_or(|(n, m)| i % m == n - 1)
}

fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = vec![];
    for p in paths {
        if p.is_dir() {
            let rd = std::fs::read_dir(p).map_err(|e| format!("{}: {e}", p.display()))?;
            let mut files: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            files.sort();
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    if out.is_empty() {
        return Err("no scenario files found".into());
    }
    Ok(out)
}

/// Loads every file; prints every error; `None` when any file is bad.
fn load_all(paths: &[PathBuf]) -> Option<Vec<Loaded>> {
    let files = match expand(paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return None;
        }
    };
    let mut ok = true;
    let mut out = vec![];
    for f in files {
        match validate::load(&f) {
            Ok(l) => out.push(l),
            Err(errs) => {
                ok = false;
                for e in errs {
                    eprintln!("error: {e}");
                }
            }
        }
    }
    ok.then_some(out)
}

fn parse_seeds(seed: Option<u64>, seeds: Option<&str>) -> Result<Option<Vec<u64>>, String> {
    if let Some(s) = seeds {
        let (a, b) = s.split_once("..").ok_or_else(|| format!("--seeds {s:?}: want A..B"))?;
        let a: u64 = a.parse().map_err(|_| format!("--seeds {s:?}: A is not a number"))?;
        let b: u64 = b.parse().map_err(|_| format!("--seeds {s:?}: B is not a number"))?;
        if b <= a {
            return Err(format!("--seeds {s:?}: empty range"));
        }
        return Ok(Some((a..b).collect()));
    }
    Ok(seed.map(|s| vec![s]))
}

fn versions_for(l: &Loaded, k8s: Option<&str>) -> Result<Vec<KubeVersion>, String> {
    let Some(v) = k8s else { return Ok(l.versions.clone()) };
    let v = KubeVersion::parse_checked(v, l.spec.allow_unsupported_versions).map_err(|e| e.to_string())?;
    Ok(if l.versions.contains(&v) { vec![v] } else { vec![] })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Schema => {
            println!("{}", report::schema());
            ExitCode::SUCCESS
        }
        Cmd::Diff { a, b, ignore_version } => {
            let (a, b) = match (kasim_scenarios::diff::load(&a), kasim_scenarios::diff::load(&b)) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(e), _) | (_, Err(e)) => {
                    eprintln!("kasim diff: {e}");
                    return ExitCode::from(BAD_INPUT);
                }
            };
            let differences = kasim_scenarios::diff::diff(&a, &b, ignore_version);
            for d in &differences {
                println!("{d}");
            }
            println!("{} of {} requests differ", differences.len(), a.len().max(b.len()));
            if differences.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) }
        }
        Cmd::Lint { paths } => match load_all(&paths) {
            Some(ls) => {
                for l in ls {
                    println!("ok {} ({})", l.file, l.spec.name);
                }
                ExitCode::SUCCESS
            }
            None => ExitCode::from(BAD_INPUT),
        },
        Cmd::List { paths } => match load_all(&paths) {
            Some(ls) => {
                for l in ls {
                    let vs: Vec<String> = l.versions.iter().map(ToString::to_string).collect();
                    println!("{} ({}): k8s {} seed {}", l.spec.name, l.file, vs.join(", "), l.spec.seed);
                }
                ExitCode::SUCCESS
            }
            None => ExitCode::from(BAD_INPUT),
        },
        Cmd::Replay { path, seed, k8s } => {
            let Some(ls) = load_all(&[path]) else { return ExitCode::from(BAD_INPUT) };
            let l = &ls[0];
            let versions = match versions_for(l, k8s.as_deref()) {
                Ok(v) if !v.is_empty() => v,
                Ok(_) => {
                    eprintln!("error: {} does not list that Kubernetes version", l.file);
                    return ExitCode::from(BAD_INPUT);
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(BAD_INPUT);
                }
            };
            match runner::run(l, versions[0], seed.unwrap_or(l.spec.seed)) {
                Ok((r, trace)) => {
                    print!("{trace}");
                    println!("{}", report::detailed(&r));
                    if r.status == Status::Pass { ExitCode::SUCCESS } else { ExitCode::from(1) }
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(BAD_INPUT)
                }
            }
        }
        Cmd::Run { paths, seed, seeds, backend, k8s, shard, junit, json, cluster } => {
            let shard = match shard.as_deref().map(parse_shard).transpose() {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(BAD_INPUT);
                }
            };
            match backend.as_str() {
                "sim" => {}
                "cluster" => {
                    if seed.is_some() || seeds.is_some() {
                        eprintln!("error: --seed/--seeds apply to the simulator; a cluster run is not seeded");
                        return ExitCode::from(BAD_INPUT);
                    }
                    let Some(ls) = load_all(&paths) else { return ExitCode::from(BAD_INPUT) };
                    return cluster_main(&ls, k8s.as_deref(), shard, &cluster, junit.as_deref(), json.as_deref());
                }
                other => {
                    eprintln!("error: unknown backend {other:?}: want sim or cluster");
                    return ExitCode::from(BAD_INPUT);
                }
            }
            let seeds = match parse_seeds(seed, seeds.as_deref()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(BAD_INPUT);
                }
            };
            let Some(ls) = load_all(&paths) else { return ExitCode::from(BAD_INPUT) };
            let mut plan = vec![];
            for l in &ls {
                let vs = match versions_for(l, k8s.as_deref()) {
                    Ok(v) => v,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(BAD_INPUT);
                    }
                };
                for v in vs {
                    for s in seeds.clone().unwrap_or_else(|| vec![l.spec.seed]) {
                        plan.push((l, v, s));
                    }
                }
            }
            let plan: Vec<_> =
                plan.into_iter().enumerate().filter(|(i, _)| in_shard(*i, shard)).map(|(_, p)| p).collect();
            run_plan(&plan, junit.as_deref(), json.as_deref())
        }
    }
}

/// `kasim run --backend cluster`: exit 0 all passed (skips allowed), 1 a run failed, 2 no cluster
/// or bad options.
fn cluster_main(
    ls: &[Loaded],
    k8s: Option<&str>,
    shard: Option<(usize, usize)>,
    args: &ClusterArgs,
    junit: Option<&Path>,
    json: Option<&Path>,
) -> ExitCode {
    let want = match k8s.map(|v| KubeVersion::parse_checked(v, true)).transpose() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(BAD_INPUT);
        }
    };
    let agentk = match agentk_mode(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(BAD_INPUT);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: tokio runtime: {e}");
            return ExitCode::from(BAD_INPUT);
        }
    };
    let started = Instant::now();
    let outcome = rt.block_on(async {
        let mut results: Vec<(RunResult, f64)> = vec![];
        let report = |r: &RunResult, secs: f64| println!("{} ({secs:.1}s)", report::summary_line(r));
        match args.cluster.as_str() {
            "kubeconfig" => {
                let backend = kasim_conformance::ExistingCluster::from_env(args.context.clone())
                    .map_err(|e| format!("--backend cluster: {e}"))?;
                let (v, git) =
                    cluster::server_version(&backend).await.map_err(|e| format!("{}: {e}", backend.describe()))?;
                println!("cluster: {} runs Kubernetes {git}", kasim_conformance::ClusterBackend::describe(&backend));
                if let Some(w) = want
                    && w != v
                {
                    return Err(format!("the cluster runs Kubernetes {v} ({git}), not {w}"));
                }
                for (i, l) in ls.iter().enumerate() {
                    if !in_shard(i, shard) {
                        continue;
                    }
                    let t = Instant::now();
                    let r = if l.versions.contains(&v) {
                        cluster::run(&backend, l, v, &git, &agentk).await
                    } else {
                        let listed: Vec<String> = l.versions.iter().map(ToString::to_string).collect();
                        cluster::skipped(l, v, format!("lists Kubernetes {}; the cluster runs {v}", listed.join(", ")))
                    };
                    let secs = t.elapsed().as_secs_f64();
                    report(&r, secs);
                    results.push((r, secs));
                }
            }
            kind @ ("kind" | "k3s") => {
                let mut versions: Vec<KubeVersion> = match want {
                    Some(w) => vec![w],
                    None => ls.iter().flat_map(|l| l.versions.iter().copied()).collect(),
                };
                versions.sort();
                versions.dedup();
                let plan: Vec<(&Loaded, KubeVersion)> = versions
                    .iter()
                    .flat_map(|v| ls.iter().filter(|l| l.versions.contains(v)).map(move |l| (l, *v)))
                    .enumerate()
                    .filter(|(i, _)| in_shard(*i, shard))
                    .map(|(_, p)| p)
                    .collect();
                for v in versions {
                    let runs: Vec<&Loaded> = plan.iter().filter(|(_, pv)| *pv == v).map(|(l, _)| *l).collect();
                    if runs.is_empty() {
                        continue;
                    }
                    let backend = make_cluster(kind, v, args.keep, &agentk).await?;
                    let (sv, git) = cluster::server_version(backend.as_ref()).await?;
                    println!("cluster: {} runs Kubernetes {git}", backend.describe());
                    if sv != v {
                        return Err(format!("{} runs Kubernetes {sv}, not {v}", backend.describe()));
                    }
                    for l in runs {
                        let t = Instant::now();
                        let r = cluster::run(backend.as_ref(), l, v, &git, &agentk).await;
                        let secs = t.elapsed().as_secs_f64();
                        report(&r, secs);
                        results.push((r, secs));
                    }
                    backend.teardown().await.map_err(|e| e.to_string())?;
                }
            }
            other => return Err(format!("--cluster {other:?}: want kubeconfig, kind or k3s")),
        }
        Ok(results)
    });
    match outcome {
        Ok(results) => {
            let (results, wall): (Vec<RunResult>, Vec<f64>) = results.into_iter().unzip();
            finish(&results, &wall, started, junit, json)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(BAD_INPUT)
        }
    }
}

/// A kind or k3s cluster for `v`.
async fn make_cluster(
    kind: &str,
    v: KubeVersion,
    keep: bool,
    agentk: &cluster::AgentkMode,
) -> Result<Box<dyn ClusterBackend>, String> {
    let version = v.to_string();
    if kind == "kind" {
        let name = format!("kasim-{}", version.replace('.', "-"));
        let c = kasim_conformance::KindCluster::create(&version, &name, keep)
            .await
            .map_err(|e| format!("kind cluster for {version}: {e}"))?;
        // A cluster kasim creates has no registry to pull agentk from: load the chart's image.
        if let cluster::AgentkMode::Helm { chart, sets, .. } = agentk {
            let image = cluster::chart_image(chart, sets)?;
            c.load_image(&image).map_err(|e| format!("kind load docker-image {image}: {e}"))?;
        }
        return Ok(Box::new(c));
    }
    if matches!(agentk, cluster::AgentkMode::Helm { .. }) {
        return Err("--agentk helm needs --cluster kubeconfig or kind (images cannot be loaded into k3s here)".into());
    }
    kasim_conformance::K3sCluster::start(&version)
        .await
        .map(|c| Box::new(c) as Box<dyn ClusterBackend>)
        .map_err(|e| format!("k3s cluster for {version}: {e}"))
}

fn agentk_mode(args: &ClusterArgs) -> Result<cluster::AgentkMode, String> {
    match args.agentk.as_str() {
        "in-process" => {
            if args.chart.is_some() || !args.sets.is_empty() || args.kas_address.is_some() {
                return Err("--chart, --set and --kas-address need --agentk helm".into());
            }
            Ok(cluster::AgentkMode::InProcess)
        }
        "helm" => {
            let chart = args.chart.clone().unwrap_or_else(kasim_conformance::helm::default_chart);
            if !chart.join("Chart.yaml").exists() {
                return Err(format!("--chart {}: no Chart.yaml there", chart.display()));
            }
            let kas_address = match &args.kas_address {
                Some(a) => a.clone(),
                None => {
                    let gw = kasim_conformance::helm::docker_network_gateway("kind").ok_or(
                        "--agentk helm: cannot find the `kind` Docker network's gateway; pass --kas-address grpc://<host reachable from pods>:<port>",
                    )?;
                    format!("grpc://{gw}:{}", args.kas_listen.port())
                }
            };
            if !(kas_address.starts_with("grpc://") || kas_address.starts_with("grpcs://")) {
                return Err(format!("--kas-address {kas_address:?}: want grpc://host:port or grpcs://host:port"));
            }
            if let Some(bad) = args.sets.iter().find(|s| !s.contains('=')) {
                return Err(format!("--set {bad:?}: want key=value"));
            }
            cluster::helm_ready()?;
            Ok(cluster::AgentkMode::Helm { chart, sets: args.sets.clone(), kas_listen: args.kas_listen, kas_address })
        }
        other => Err(format!("--agentk {other:?}: want in-process or helm")),
    }
}

fn run_plan(plan: &[(&Loaded, KubeVersion, u64)], junit: Option<&Path>, json: Option<&Path>) -> ExitCode {
    let bar = (plan.len() > 1 && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(plan.len() as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}") {
            b.set_style(style);
        }
        b
    });
    let started = Instant::now();
    let (mut results, mut wall): (Vec<RunResult>, Vec<f64>) = (vec![], vec![]);
    for (l, v, s) in plan {
        if let Some(b) = &bar {
            b.set_message(format!("{} k8s {v} seed {s}", l.spec.name));
        }
        let t = Instant::now();
        let r = match runner::run(l, *v, *s) {
            Ok((r, _)) => r,
            Err(e) => {
                if let Some(b) = &bar {
                    b.finish_and_clear();
                }
                eprintln!("error: {e}");
                return ExitCode::from(BAD_INPUT);
            }
        };
        let secs = t.elapsed().as_secs_f64();
        let line = format!("{} ({secs:.1}s)", report::summary_line(&r));
        match &bar {
            Some(b) => b.println(line),
            None => println!("{line}"),
        }
        if let Some(b) = &bar {
            b.inc(1);
        }
        results.push(r);
        wall.push(secs);
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    finish(&results, &wall, started, junit, json)
}

/// Prints the totals, writes the reports; the exit code.
fn finish(
    results: &[RunResult],
    wall: &[f64],
    started: Instant,
    junit: Option<&Path>,
    json: Option<&Path>,
) -> ExitCode {
    let failed = results.iter().filter(|r| r.status == Status::Fail).count();
    let skipped = results.iter().filter(|r| r.status == Status::Skip).count();
    println!(
        "{} runs, {} passed, {failed} failed, {skipped} skipped in {:.1}s",
        results.len(),
        results.len() - failed - skipped,
        started.elapsed().as_secs_f64()
    );
    for (path, text) in [(junit, report::junit(results, wall)), (json, report::json(results))] {
        if let Some(p) = path
            && let Err(e) = std::fs::write(p, text)
        {
            eprintln!("error: writing {}: {e}", p.display());
            return ExitCode::from(BAD_INPUT);
        }
    }
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) }
}
