//! One scenario run on one cluster: a fresh namespace, agentk's least-privilege service account,
//! fixtures applied into the namespace, and cleanup that also happens after a failure or panic.

use std::sync::Mutex;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use kube::config::{AuthInfo, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext};
use secrecy::SecretString;

use crate::access::{AccessError, ClusterAccess};
use crate::apply::{self, Applied, ApplyError};
use crate::cleanup::{self, CleanupError, Owned};
use crate::rbac::{self, RbacError};
use crate::token::{self, TokenError, TokenSource};

/// Names and token source of a run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Created by the run, deleted afterwards; must not exist yet.
    pub namespace: String,
    pub service_account: String,
    pub token: TokenSource,
}

impl RunOptions {
    /// `kasim-<run_id>` with service account `agentk` and a TokenRequest token.
    pub fn new(run_id: &str) -> Self {
        Self { namespace: format!("kasim-{run_id}"), service_account: "agentk".into(), token: TokenSource::default() }
    }
}

/// Why a run could not be set up or used.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("namespace {0} already exists (a concurrent run, or a leftover: delete it)")]
    NamespaceExists(String),
    #[error("create namespace {0}: {1}")]
    Namespace(String, Box<kube::Error>),
    #[error(transparent)]
    Rbac(#[from] RbacError),
    #[error("agentk RBAC: {0}")]
    RbacApply(Box<ApplyError>),
    #[error(transparent)]
    Fixture(Box<ApplyError>),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Cleanup(#[from] CleanupError),
    #[error("kubeconfig has no usable context {0:?}")]
    NoContext(Option<String>),
    #[error("kubeconfig: {0}")]
    Serialize(String),
}

/// A run in progress. Call [`ClusterRun::cleanup`]; if the run is dropped without it (an early
/// return or a panic), `Drop` deletes everything synchronously.
pub struct ClusterRun {
    access: ClusterAccess,
    config: kube::Config,
    client: kube::Client,
    namespace: String,
    service_account: String,
    token: Option<SecretString>,
    owned: Mutex<Vec<Owned>>,
    done: bool,
}

impl std::fmt::Debug for ClusterRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("ClusterRun")
            .field("namespace", &self.namespace)
            .field("service_account", &self.service_account)
            .finish()
    }
}

fn owned_of(a: &Applied) -> Owned {
    Owned { resource: a.resource.clone(), namespace: a.namespace.clone(), name: a.name.clone() }
}

impl From<ApplyError> for RunError {
    fn from(e: ApplyError) -> Self {
        Self::Fixture(Box::new(e))
    }
}

impl ClusterRun {
    /// Creates the namespace, agentk's service account and RBAC (`conformance/rbac/agentk.yaml`),
    /// and obtains its token. A failure half-way cleans up what was created.
    pub async fn create(access: &ClusterAccess, opts: RunOptions) -> Result<Self, RunError> {
        let rbac_objects = rbac::render(&opts.namespace, &opts.service_account)?;
        let config = access.config().await?;
        let client = kube::Client::try_from(config.clone()).map_err(AccessError::from)?;
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": opts.namespace, "labels": {"app.kubernetes.io/managed-by": apply::FIELD_MANAGER}}
        }))
        .map_err(|e| RunError::Serialize(e.to_string()))?;
        match Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => return Err(RunError::NamespaceExists(opts.namespace)),
            Err(e) => return Err(RunError::Namespace(opts.namespace, Box::new(e))),
        }
        // From here on the guard owns the namespace.
        let mut run = Self {
            access: access.clone(),
            config,
            client,
            namespace: opts.namespace,
            service_account: opts.service_account,
            token: None,
            owned: Mutex::new(Vec::new()),
            done: false,
        };
        for obj in &rbac_objects {
            let applied = apply::apply_all(&run.client, &run.namespace, std::slice::from_ref(obj))
                .await
                .map_err(|e| RunError::RbacApply(Box::new(e)))?;
            run.remember(&applied);
        }
        run.token = Some(token::obtain(&run.client, &run.namespace, &run.service_account, &opts.token).await?);
        Ok(run)
    }

    fn remember(&self, applied: &[Applied]) {
        let mut owned = self.owned.lock().unwrap_or_else(|p| p.into_inner());
        owned.extend(applied.iter().map(owned_of));
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The username the API server gives agentk's service account.
    pub fn service_account_username(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.service_account)
    }

    /// The admin client (fixtures, checks).
    pub fn admin_client(&self) -> &kube::Client {
        &self.client
    }

    /// Applies fixture YAML into the run namespace (server-side apply; see [`apply`]).
    pub async fn apply_fixtures(&self, yaml: &str) -> Result<Vec<Applied>, RunError> {
        let objects = apply::parse_documents(yaml).map_err(ApplyError::from)?;
        let mut all = Vec::new();
        // One at a time, remembering each, so a failure half-way still cleans up what was applied.
        for obj in objects {
            let applied = apply::apply_all(&self.client, &self.namespace, &[obj]).await?;
            self.remember(&applied);
            all.extend(applied);
        }
        Ok(all)
    }

    fn token(&self) -> SecretString {
        self.token.clone().unwrap_or_else(|| SecretString::from(String::new()))
    }

    /// agentk's client configuration: the admin's cluster, the service account's token.
    pub fn agent_config(&self) -> kube::Config {
        let mut c = self.config.clone();
        c.auth_info = AuthInfo { token: Some(self.token()), ..Default::default() };
        c
    }

    /// agentk's kubeconfig (for `agentk --kubeconfig`); contains the token, so write it with care.
    pub fn agent_kubeconfig(&self) -> Result<Kubeconfig, RunError> {
        let kc = &self.access.kubeconfig;
        let ctx_name = self.access.context.clone().or_else(|| kc.current_context.clone());
        let ctx = ctx_name
            .as_ref()
            .and_then(|n| kc.contexts.iter().find(|c| &c.name == n))
            .and_then(|c| c.context.clone())
            .ok_or_else(|| RunError::NoContext(ctx_name.clone()))?;
        let cluster = kc
            .clusters
            .iter()
            .find(|c| c.name == ctx.cluster)
            .and_then(|c| c.cluster.clone())
            .ok_or_else(|| RunError::NoContext(ctx_name.clone()))?;
        Ok(Kubeconfig {
            clusters: vec![NamedCluster { name: "cluster".into(), cluster: Some(cluster) }],
            auth_infos: vec![NamedAuthInfo {
                name: self.service_account.clone(),
                auth_info: Some(AuthInfo { token: Some(self.token()), ..Default::default() }),
            }],
            contexts: vec![NamedContext {
                name: "agentk".into(),
                context: Some(Context {
                    cluster: "cluster".into(),
                    user: Some(self.service_account.clone()),
                    namespace: Some(self.namespace.clone()),
                    extensions: None,
                }),
            }],
            current_context: Some("agentk".into()),
            ..Default::default()
        })
    }

    /// The agent kubeconfig as YAML.
    pub fn agent_kubeconfig_yaml(&self) -> Result<String, RunError> {
        serde_yaml_ng::to_string(&self.agent_kubeconfig()?).map_err(|e| RunError::Serialize(e.to_string()))
    }

    fn take_owned(&self) -> Vec<Owned> {
        std::mem::take(&mut *self.owned.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Deletes everything the run created. Errors name each object left behind.
    pub async fn cleanup(mut self) -> Result<(), RunError> {
        self.done = true;
        let owned = self.take_owned();
        cleanup::delete_all(&self.client, &self.namespace, &owned).await?;
        Ok(())
    }
}

impl Drop for ClusterRun {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let owned = self.take_owned();
        if let Err(e) = cleanup::delete_all_blocking(self.config.clone(), self.namespace.clone(), owned) {
            eprintln!("kasim-conformance: cleanup of run {} after a failure: {e}", self.namespace);
        }
    }
}
