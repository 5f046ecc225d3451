//! The container images: agentk, kas and the GitLab stand-in, `FROM scratch` with static binaries
//! (see `conformance/images/` and `ci/build-images.sh`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::backend::BackendError;

/// Tag used for locally built images.
pub const DEV_TAG: &str = "dev";
/// (image name, Dockerfile under `conformance/images/`).
pub const IMAGES: [(&str, &str); 3] = [
    ("kasim/agentk", "agentk.Dockerfile"),
    ("kasim/kas", "kas.Dockerfile"),
    ("kasim/gitlab-stand-in", "gitlab-stand-in.Dockerfile"),
];

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `Ok` when a Docker engine answers; else the one-line skip reason.
pub fn docker_available() -> Result<(), BackendError> {
    match Command::new("docker").args(["version", "--format", "{{.Server.Version}}"]).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(BackendError::Unavailable(format!(
            "Docker engine not reachable: {}",
            String::from_utf8_lossy(&o.stderr).lines().next().unwrap_or("").trim()
        ))),
        Err(e) => Err(BackendError::Unavailable(format!("no docker CLI on PATH ({e})"))),
    }
}

/// Runs `ci/build-images.sh` (static release build, then `docker build` of every image).
pub fn build_images(tag: &str) -> Result<(), BackendError> {
    let script = repo_root().join("ci/build-images.sh");
    let out = Command::new("bash")
        .arg(&script)
        .env("KASIM_IMAGE_TAG", tag)
        .output()
        .map_err(|source| BackendError::Io { what: script.display().to_string(), source })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
        return Err(BackendError::Command {
            command: script.display().to_string(),
            status: out.status.to_string(),
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    Ok(())
}
