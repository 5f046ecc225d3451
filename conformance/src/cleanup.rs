//! Removing what a run created: its objects (cluster-scoped ones included, which namespace deletion
//! would not reach) and its namespace. Deleting something already gone is success, so cleanup can
//! run twice (explicitly, then from a guard) without failing.

use kube::api::{Api, DeleteParams, DynamicObject};
use kube::core::ApiResource;

/// One object to delete.
#[derive(Debug, Clone)]
pub struct Owned {
    pub resource: ApiResource,
    pub namespace: Option<String>,
    pub name: String,
}

/// Why cleanup left something behind; names every object that could not be deleted.
#[derive(Debug, thiserror::Error)]
#[error("cleanup left {}: {}", .0.len(), .0.join("; "))]
pub struct CleanupError(pub Vec<String>);

/// Deletes `owned` (newest first), then `namespace`.
pub async fn delete_all(client: &kube::Client, namespace: &str, owned: &[Owned]) -> Result<(), CleanupError> {
    let mut failures = Vec::new();
    for o in owned.iter().rev() {
        let api: Api<DynamicObject> = match &o.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &o.resource),
            None => Api::all_with(client.clone(), &o.resource),
        };
        if let Err(e) = ignore_missing(api.delete(&o.name, &DeleteParams::background()).await.map(|_| ())) {
            failures.push(format!("{}/{}: {e}", o.resource.kind, o.name));
        }
    }
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    if let Err(e) = ignore_missing(ns.delete(namespace, &DeleteParams::background()).await.map(|_| ())) {
        failures.push(format!("Namespace/{namespace}: {e}"));
    }
    if failures.is_empty() { Ok(()) } else { Err(CleanupError(failures)) }
}

fn ignore_missing(r: Result<(), kube::Error>) -> Result<(), kube::Error> {
    match r {
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        other => other,
    }
}

/// Cleanup from synchronous code (a `Drop` during a panic): runs on a fresh thread with its own
/// runtime and a fresh client, because the caller's runtime may be the one unwinding, or a
/// current-thread runtime this thread is blocking.
pub fn delete_all_blocking(config: kube::Config, namespace: String, owned: Vec<Owned>) -> Result<(), String> {
    let worker = std::thread::spawn(move || -> Result<(), String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cleanup runtime: {e}"))?;
        rt.block_on(async move {
            let client = kube::Client::try_from(config).map_err(|e| format!("cleanup client: {e}"))?;
            let work = delete_all(&client, &namespace, &owned);
            match tokio::time::timeout(std::time::Duration::from_secs(60), work).await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err(format!("cleanup of {namespace} timed out after 60s")),
            }
        })
    });
    worker.join().map_err(|_| "cleanup thread panicked".to_owned())?
}
