//! `kasim`: lint, list, run and replay scenario files; print their JSON Schema.
//!
//! Exit codes: 0 all passed, 1 a scenario failed, 2 bad input (unreadable or invalid file, unknown
//! backend, version outside the window).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
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
        #[arg(long, default_value = "sim")]
        backend: String,
        /// Only this Kubernetes version (must be one the file lists).
        #[arg(long)]
        k8s: Option<String>,
        #[arg(long)]
        junit: Option<PathBuf>,
        #[arg(long)]
        json: Option<PathBuf>,
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

const BAD_INPUT: u8 = 2;

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
        Cmd::Run { paths, seed, seeds, backend, k8s, junit, json } => {
            if backend != "sim" {
                if backend == "cluster" {
                    eprintln!("error: the cluster backend is not wired into this build yet");
                } else {
                    eprintln!("error: unknown backend {backend:?}: want sim (or cluster, once wired)");
                }
                return ExitCode::from(BAD_INPUT);
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
            run_plan(&plan, junit.as_deref(), json.as_deref())
        }
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
    let failed = results.iter().filter(|r| r.status == Status::Fail).count();
    println!(
        "{} runs, {} passed, {failed} failed in {:.1}s",
        results.len(),
        results.len() - failed,
        started.elapsed().as_secs_f64()
    );
    for (path, text) in [(junit, report::junit(&results, &wall)), (json, report::json(&results))] {
        if let Some(p) = path
            && let Err(e) = std::fs::write(p, text)
        {
            eprintln!("error: writing {}: {e}", p.display());
            return ExitCode::from(BAD_INPUT);
        }
    }
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) }
}
