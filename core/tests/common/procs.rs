//! Running the real `kas` and `agentk` binaries on loopback, with a GitLab stand-in served over HTTP.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use kasim_gitlab::{Clock, GitLab, Settings};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

/// The stand-in checks kas's JWTs against real time, because the kas binary signs with it.
#[derive(Debug)]
pub struct WallClock;

impl Clock for WallClock {
    fn now_unix(&self) -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
    }
}

/// A GitLab stand-in with one agent, served on 127.0.0.1.
pub struct GitLabServer {
    pub gitlab: GitLab,
    pub project: kasim_gitlab::ProjectId,
    pub addr: String,
    pub agent_id: i64,
    pub token: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GitLabServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn gitlab_server() -> GitLabServer {
    let gl = GitLab::new(
        Settings { kas_jwt_secret: SECRET.to_vec(), k8s_proxy_url: "http://127.0.0.1/k8s-proxy".into(), token_seed: 1 },
        Arc::new(WallClock),
    );
    let group = gl.add_group(None, None, "group").unwrap();
    let project = gl.add_project(Some(kasim_gitlab::ProjectId(150)), group, "agents").unwrap();
    let agent = gl.add_agent(None, project, "prod").unwrap();
    let token = gl.create_agent_token(agent).unwrap();
    let gitlab = gl.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else { return };
            let gl = gl.clone();
            tokio::spawn(async move {
                let _ = gl.serve_connection(s).await;
            });
        }
    });
    GitLabServer { gitlab, project, addr, agent_id: agent.0, token, task }
}

/// A child process killed on drop, whose stdout lines can be awaited.
pub struct Proc {
    pub child: Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Proc {
    pub async fn spawn(bin: &str, args: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(bin);
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::inherit()).kill_on_drop(true);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {bin}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut r = BufReader::new(stdout).lines();
            while let Ok(Some(l)) = r.next_line().await {
                let _ = tx.send(l);
            }
        });
        Self { child, lines }
    }

    /// Waits for a stdout line containing `needle` and returns it.
    pub async fn line(&mut self, needle: &str) -> String {
        let wait = async {
            while let Some(l) = self.lines.recv().await {
                if l.contains(needle) {
                    return l;
                }
            }
            panic!("process ended before printing {needle:?}");
        };
        tokio::time::timeout(Duration::from_secs(30), wait).await.unwrap_or_else(|_| panic!("no {needle:?} line"))
    }
}

/// Writes `name` with `contents` in `dir`.
pub fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, contents).unwrap();
    p
}

pub fn secret_b64() -> String {
    base64::engine::general_purpose::STANDARD.encode(SECRET)
}

/// A fresh temporary directory under the target dir.
pub fn tempdir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Extracts `host:port` after `on ` in a kas startup line.
pub fn addr_after(line: &str, marker: &str) -> String {
    let rest = &line[line.find(marker).unwrap() + marker.len()..];
    rest.split_whitespace().next().unwrap().to_owned()
}

/// A test PKI: (CA PEM, certificate PEM for `name` (DNS name or IP), key PEM).
pub fn pki(name: &str) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec![name.to_owned()]).unwrap().signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}
