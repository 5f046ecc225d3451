//! k3s in a container via testcontainers: the lightweight alternative to kind behind the same trait.
//! Needs Docker and the `rancher/k3s` image locally (or a reachable registry).

use std::path::PathBuf;

use kube::config::Kubeconfig;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, ImageExt};
use testcontainers_modules::k3s::{K3s, KUBE_SECURE_PORT};

use crate::access::{AccessError, ClusterAccess};
use crate::backend::{BackendError, BoxFuture, ClusterBackend};

/// The k3s image tag per Kubernetes minor version. Patch releases as published on Docker Hub
/// (`rancher/k3s`, tag = the k3s release with `+` replaced by `-`).
pub fn k3s_tag(version: &str) -> Option<&'static str> {
    match version {
        "1.31" => Some("v1.31.1-k3s1"),
        "1.32" => Some("v1.32.1-k3s1"),
        "1.33" => Some("v1.33.1-k3s1"),
        _ => None,
    }
}

/// `Ok` when Docker answers and `image` is present locally; else the one-line skip reason. Checking
/// first avoids waiting on a pull where no registry is reachable.
pub fn image_available(image: &str) -> Result<(), BackendError> {
    crate::images::docker_available()?;
    match std::process::Command::new("docker").args(["image", "inspect", image]).output() {
        Ok(o) if o.status.success() => Ok(()),
        _ if std::env::var_os("KASIM_PULL_IMAGES").is_some() => Ok(()),
        _ => Err(BackendError::Unavailable(format!(
            "image {image} is not present locally (docker pull it, or set KASIM_PULL_IMAGES=1)"
        ))),
    }
}

/// A k3s server container; removed when dropped (testcontainers' guard).
pub struct K3sCluster {
    version: String,
    container: ContainerAsync<K3s>,
    access: ClusterAccess,
    _conf_dir: PathBuf,
}

impl K3sCluster {
    /// Starts k3s for Kubernetes `version` (e.g. `1.32`).
    pub async fn start(version: &str) -> Result<Self, BackendError> {
        let tag = k3s_tag(version)
            .ok_or_else(|| BackendError::Unavailable(format!("no k3s image known for Kubernetes {version}")))?;
        image_available(&format!("rancher/k3s:{tag}"))?;
        let conf_dir = std::env::temp_dir().join(format!("kasim-k3s-{}-{version}", std::process::id()));
        std::fs::create_dir_all(&conf_dir)
            .map_err(|source| BackendError::Io { what: conf_dir.display().to_string(), source })?;
        let container = K3s::default()
            .with_conf_mount(&conf_dir)
            .with_tag(tag)
            .with_privileged(true)
            .with_userns_mode("host")
            .start()
            .await
            .map_err(|e| BackendError::Container(e.to_string()))?;
        let port =
            container.get_host_port_ipv4(KUBE_SECURE_PORT).await.map_err(|e| BackendError::Container(e.to_string()))?;
        let yaml = container
            .image()
            .read_kube_config()
            .map_err(|source| BackendError::Io { what: "k3s.yaml".into(), source })?;
        let mut kubeconfig = Kubeconfig::from_yaml(&yaml).map_err(AccessError::from)?;
        for c in &mut kubeconfig.clusters {
            if let Some(cluster) = c.cluster.as_mut() {
                cluster.server = Some(format!("https://127.0.0.1:{port}"));
            }
        }
        Ok(Self {
            version: version.to_owned(),
            container,
            access: ClusterAccess { kubeconfig, context: None },
            _conf_dir: conf_dir,
        })
    }
}

impl ClusterBackend for K3sCluster {
    fn describe(&self) -> String {
        format!("k3s container {} (Kubernetes {})", self.container.id(), self.version)
    }

    fn access(&self) -> &ClusterAccess {
        &self.access
    }

    fn teardown(self: Box<Self>) -> BoxFuture<'static, Result<(), BackendError>> {
        Box::pin(async move {
            let _ = std::fs::remove_dir_all(&self._conf_dir);
            self.container.rm().await.map_err(|e| BackendError::Container(e.to_string()))
        })
    }
}
