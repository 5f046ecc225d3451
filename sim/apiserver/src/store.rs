//! The object store: etcd plus the registry strategies, in memory.
//!
//! ## Differences from a real API server
//! * One global, contiguous `resourceVersion` counter; every create,
//!   update and delete bumps it by one and records exactly one event.
//! * `metadata.uid` is derived from a counter (UUID-shaped, deterministic)
//!   and `creationTimestamp` from virtual time since the server was built,
//!   added to a fixed epoch (2025-01-01T00:00:00Z).
//! * Deleting a namespace removes it and everything in it at once; there is
//!   no `Terminating` phase and no finalizers run.
//! * Pods are only stored: no scheduler or kubelet, `status.phase` stays
//!   `Pending`; PUT keeps the old pod status (as the status subresource
//!   split does upstream) but any spec field may change.
//! * Validation is limited to names, namespaces, the shape of RBAC objects
//!   and Secret data encoding; RBAC escalation checks (`bind`/`escalate`)
//!   are not modelled.
//! * The clusterrole-aggregation controller (in [`AggregationMode::Kind`])
//!   runs synchronously inside the write that changed a ClusterRole, rather
//!   than shortly after it.

use std::collections::{BTreeMap, VecDeque};

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::rbac::{self, AggregationMode};
use crate::resources::{self, CLUSTERROLES, NAMESPACES, PODS, ResourceType, SECRETS};
use crate::status::ApiError;

/// Start of the model's clock: 2025-01-01T00:00:00Z.
const EPOCH_SECS: u64 = 1_735_689_600;

/// Kind of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    Added,
    Modified,
    Deleted,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, kept in the bounded event history that serves watches.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub rv: u64,
    pub rt: &'static ResourceType,
    pub kind: EventKind,
    pub object: Value,
    /// The object before a modification, to turn selector transitions into
    /// ADDED/DELETED as the watch cache does.
    pub prev: Option<Value>,
}

/// Store-level failures, mapped 1:1 onto upstream `Status` errors.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum StoreError {
    #[error("{plural} {name:?} not found", plural = .0.plural, name = .1)]
    NotFound(&'static ResourceType, String),
    #[error("namespace {0:?} not found")]
    NamespaceNotFound(String),
    #[error("{plural} {name:?} already exists", plural = .0.plural, name = .1)]
    AlreadyExists(&'static ResourceType, String),
    #[error("conflict on {plural} {name:?}", plural = .0.plural, name = .1)]
    Conflict(&'static ResourceType, String),
    #[error("{kind} {name:?} is invalid: {field}: {detail}", kind = .rt.kind)]
    Invalid { rt: &'static ResourceType, name: String, field: &'static str, reason: &'static str, detail: String },
    #[error("{0}")]
    BadRequest(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(rt, name) => ApiError::not_found_rt(rt, &name),
            StoreError::NamespaceNotFound(ns) => ApiError::not_found("namespaces", "", &ns),
            StoreError::AlreadyExists(rt, name) => ApiError::already_exists(rt, &name),
            StoreError::Conflict(rt, name) => ApiError::conflict(rt, &name),
            StoreError::Invalid { rt, name, field, reason, detail } => {
                ApiError::invalid(rt.kind, rt.group, &name, field, reason, detail)
            }
            StoreError::BadRequest(m) => ApiError::bad_request(m),
        }
    }
}

type Key = (&'static str, String, String);

/// All objects, the resourceVersion counter and the event history.
pub(crate) struct Store {
    objects: BTreeMap<Key, Value>,
    rv: u64,
    uids: u64,
    generated_names: u64,
    events: VecDeque<Event>,
    history: usize,
    /// Highest resourceVersion whose event has been dropped from history.
    evicted_through: u64,
    aggregation: AggregationMode,
    started: tokio::time::Instant,
    /// Tokens from the TokenRequest API.
    issued: crate::token_request::Issued,
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata").and_then(|m| m.get(field)).and_then(Value::as_str).unwrap_or("")
}

/// The `metadata` map of `obj`, created if missing.
fn meta_mut(obj: &mut Map<String, Value>) -> Result<&mut Map<String, Value>, StoreError> {
    let m = obj.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    if m.is_null() {
        *m = Value::Object(Map::new());
    }
    m.as_object_mut().ok_or_else(|| StoreError::BadRequest("metadata must be an object".into()))
}

/// RFC 3339 UTC time for `secs` since the Unix epoch.
pub(crate) fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

impl Store {
    pub fn new(aggregation: AggregationMode, history: usize) -> Self {
        Self {
            objects: BTreeMap::new(),
            rv: 0,
            uids: 0,
            generated_names: 0,
            events: VecDeque::new(),
            history: history.max(1),
            evicted_through: 0,
            aggregation,
            started: tokio::time::Instant::now(),
            issued: Default::default(),
        }
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// Current virtual time as an RFC 3339 timestamp.
    pub fn now(&self) -> String {
        rfc3339(EPOCH_SECS + self.started.elapsed().as_secs())
    }

    /// Virtual time `secs` from now, as an RFC 3339 timestamp.
    pub fn timestamp_after(&self, secs: u64) -> String {
        rfc3339(EPOCH_SECS + self.started.elapsed().as_secs() + secs)
    }

    /// Tokens the TokenRequest API issued.
    pub fn issued_tokens(&mut self) -> &mut crate::token_request::Issued {
        &mut self.issued
    }

    fn key(rt: &ResourceType, ns: &str, name: &str) -> Key {
        let ns = if rt.namespaced { ns } else { "" };
        (rt.plural, ns.to_string(), name.to_string())
    }

    pub fn get(&self, rt: &'static ResourceType, ns: &str, name: &str) -> Result<&Value, StoreError> {
        self.objects.get(&Self::key(rt, ns, name)).ok_or_else(|| StoreError::NotFound(rt, name.to_string()))
    }

    /// Objects of `rt`, in `namespace` if given, ordered by namespace/name.
    pub fn list<'a>(
        &'a self,
        rt: &'static ResourceType,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects
            .range((rt.plural, String::new(), String::new())..)
            .take_while(move |((p, _, _), _)| *p == rt.plural)
            .filter(move |((_, ns, _), _)| namespace.is_none_or(|want| want == ns))
            .map(|(_, v)| v)
    }

    fn record(&mut self, rt: &'static ResourceType, kind: EventKind, object: Value, prev: Option<Value>) {
        self.events.push_back(Event { rv: self.rv, rt, kind, object, prev });
        while self.events.len() > self.history {
            if let Some(e) = self.events.pop_front() {
                self.evicted_through = e.rv;
            }
        }
    }

    /// Events after `rv`, or `Err(oldest - 1)` when some were evicted.
    pub fn events_after(&self, rv: u64) -> Result<impl Iterator<Item = &Event>, u64> {
        if rv < self.evicted_through {
            return Err(self.evicted_through);
        }
        Ok(self.events.iter().filter(move |e| e.rv > rv))
    }

    fn generate_name(&mut self, prefix: &str) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        self.generated_names += 1;
        let mut n = self.generated_names;
        let mut suffix = String::new();
        for _ in 0..5 {
            suffix.push(ALPHABET[(n % ALPHABET.len() as u64) as usize] as char);
            n /= ALPHABET.len() as u64;
        }
        format!("{prefix}{suffix}")
    }

    /// Checks `kind`/`apiVersion`, fills them in, and checks the namespace.
    fn normalize(rt: &'static ResourceType, ns: &str, obj: Value) -> Result<Map<String, Value>, StoreError> {
        let Value::Object(mut obj) = obj else {
            return Err(StoreError::BadRequest("the body of the request must be a JSON object".into()));
        };
        let api_version = rt.api_version();
        if let Some(k) = obj.get("kind").and_then(Value::as_str).filter(|k| !k.is_empty())
            && k != rt.kind
        {
            return Err(StoreError::BadRequest(format!(
                "the kind of the provided object ({k}) does not match the expected kind ({})",
                rt.kind
            )));
        }
        if let Some(a) = obj.get("apiVersion").and_then(Value::as_str).filter(|a| !a.is_empty())
            && a != api_version
        {
            return Err(StoreError::BadRequest(format!(
                "the API version in the data ({a}) does not match the expected API version ({api_version})"
            )));
        }
        obj.insert("apiVersion".into(), api_version.into());
        obj.insert("kind".into(), rt.kind.into());
        let meta = meta_mut(&mut obj)?;
        if rt.namespaced {
            let body_ns = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
            if !body_ns.is_empty() && body_ns != ns {
                return Err(StoreError::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request".into(),
                ));
            }
            meta.insert("namespace".into(), ns.into());
        } else {
            meta.remove("namespace");
        }
        Ok(obj)
    }

    /// Per-kind defaulting and validation shared by create and update.
    fn prepare(rt: &'static ResourceType, name: &str, obj: &mut Map<String, Value>) -> Result<(), StoreError> {
        if rt == &SECRETS {
            if let Some(Value::Object(sd)) = obj.remove("stringData") {
                let data = obj.entry("data").or_insert_with(|| Value::Object(Map::new()));
                if data.is_null() {
                    *data = Value::Object(Map::new());
                }
                if let Some(data) = data.as_object_mut() {
                    for (k, v) in sd {
                        let s = v.as_str().unwrap_or_default();
                        data.insert(k, base64::engine::general_purpose::STANDARD.encode(s).into());
                    }
                }
            }
            if let Some(data) = obj.get("data").and_then(Value::as_object) {
                for (k, v) in data {
                    let ok = v.as_str().is_some_and(|s| base64::engine::general_purpose::STANDARD.decode(s).is_ok());
                    if !ok {
                        return Err(StoreError::BadRequest(format!(
                            "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data in data[{k:?}]"
                        )));
                    }
                }
            }
            obj.entry("type").or_insert_with(|| "Opaque".into());
        }
        if rt == &NAMESPACES {
            let meta = meta_mut(obj)?;
            let labels = meta.entry("labels").or_insert_with(|| Value::Object(Map::new()));
            if labels.is_null() {
                *labels = Value::Object(Map::new());
            }
            if let Some(l) = labels.as_object_mut() {
                l.insert("kubernetes.io/metadata.name".into(), name.into());
            }
        }
        rbac::validate_object(rt, &Value::Object(obj.clone())).map_err(|e| {
            StoreError::BadRequest(format!("{} in version \"v1\" cannot be handled as a {}: {e}", rt.kind, rt.kind))
        })
    }

    /// Creates an object (the registry's `Create`).
    pub fn create(&mut self, rt: &'static ResourceType, ns: &str, obj: Value) -> Result<Value, StoreError> {
        let mut obj = Self::normalize(rt, ns, obj)?;
        let meta = meta_mut(&mut obj)?;
        let mut name = meta.get("name").and_then(Value::as_str).unwrap_or("").to_string();
        let generate = meta.get("generateName").and_then(Value::as_str).unwrap_or("").to_string();
        if name.is_empty() && !generate.is_empty() {
            name = self.generate_name(&generate);
        }
        if name.is_empty() {
            return Err(StoreError::Invalid {
                rt,
                name,
                field: "metadata.name",
                reason: "FieldValueRequired",
                detail: "Required value: name or generateName is required".into(),
            });
        }
        if let Err(msg) = resources::validate_name(rt, &name) {
            return Err(StoreError::Invalid {
                rt,
                field: "metadata.name",
                reason: "FieldValueInvalid",
                detail: format!("Invalid value: {name:?}: {msg}"),
                name,
            });
        }
        if meta.get("resourceVersion").and_then(Value::as_str).is_some_and(|r| !r.is_empty()) {
            return Err(StoreError::BadRequest("resourceVersion should not be set on objects to be created".into()));
        }
        meta.insert("name".into(), name.clone().into());
        if rt.namespaced && !self.objects.contains_key(&Self::key(&NAMESPACES, "", ns)) {
            return Err(StoreError::NamespaceNotFound(ns.to_string()));
        }
        let key = Self::key(rt, ns, &name);
        if self.objects.contains_key(&key) {
            return Err(StoreError::AlreadyExists(rt, name));
        }
        Self::prepare(rt, &name, &mut obj)?;
        if rt == &NAMESPACES {
            obj.insert("spec".into(), json!({"finalizers": ["kubernetes"]}));
            obj.insert("status".into(), json!({"phase": "Active"}));
        }
        if rt == &PODS {
            obj.insert("status".into(), json!({"phase": "Pending"}));
        }
        self.uids += 1;
        self.rv += 1;
        let uid = format!("6b617369-6d00-4000-8000-{:012x}", self.uids);
        let now = self.now();
        let meta = meta_mut(&mut obj)?;
        meta.insert("uid".into(), uid.into());
        meta.insert("resourceVersion".into(), self.rv.to_string().into());
        meta.insert("creationTimestamp".into(), now.into());
        let obj = Value::Object(obj);
        self.objects.insert(key, obj.clone());
        self.record(rt, EventKind::Added, obj.clone(), None);
        if rt == &CLUSTERROLES {
            self.reaggregate();
        }
        Ok(obj)
    }

    /// Replaces an object (the registry's `Update`); `Ok((obj, true))` when
    /// the resource allows create-on-update and the object was created.
    pub fn update(
        &mut self,
        rt: &'static ResourceType,
        ns: &str,
        name: &str,
        obj: Value,
    ) -> Result<(Value, bool), StoreError> {
        let mut obj = Self::normalize(rt, ns, obj)?;
        let body_name = meta_str(&Value::Object(obj.clone()), "name").to_string();
        if body_name != name {
            return Err(StoreError::BadRequest(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let key = Self::key(rt, ns, name);
        let Some(existing) = self.objects.get(&key).cloned() else {
            if rt.create_on_update {
                if let Ok(meta) = meta_mut(&mut obj) {
                    meta.remove("resourceVersion");
                }
                return self.create(rt, ns, Value::Object(obj)).map(|o| (o, true));
            }
            return Err(StoreError::NotFound(rt, name.to_string()));
        };
        let current_rv = meta_str(&existing, "resourceVersion").to_string();
        let body_rv = meta_str(&Value::Object(obj.clone()), "resourceVersion").to_string();
        if !body_rv.is_empty() {
            if body_rv.parse::<u64>().is_err() {
                return Err(StoreError::BadRequest(format!("invalid resource version: {body_rv:?}")));
            }
            if body_rv != current_rv {
                return Err(StoreError::Conflict(rt, name.to_string()));
            }
        }
        Self::prepare(rt, name, &mut obj)?;
        // Fields owned by the server survive updates.
        let meta = meta_mut(&mut obj)?;
        for f in ["uid", "creationTimestamp"] {
            if let Some(v) = existing.get("metadata").and_then(|m| m.get(f)) {
                meta.insert(f.into(), v.clone());
            }
        }
        meta.insert("resourceVersion".into(), current_rv.into());
        if rt == &PODS || rt == &NAMESPACES {
            if let Some(s) = existing.get("status") {
                obj.insert("status".into(), s.clone());
            }
            if rt == &NAMESPACES && !obj.contains_key("spec") {
                obj.insert("spec".into(), existing.get("spec").cloned().unwrap_or(Value::Null));
            }
        }
        let mut obj = Value::Object(obj);
        if obj == existing {
            // A no-op write does not bump the resourceVersion upstream.
            return Ok((existing, false));
        }
        self.rv += 1;
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("resourceVersion".into(), self.rv.to_string().into());
        }
        self.objects.insert(key, obj.clone());
        self.record(rt, EventKind::Modified, obj.clone(), Some(existing));
        if rt == &CLUSTERROLES {
            self.reaggregate();
        }
        Ok((obj, false))
    }

    /// Deletes an object; deleting a namespace deletes its contents first.
    pub fn delete(&mut self, rt: &'static ResourceType, ns: &str, name: &str) -> Result<Value, StoreError> {
        let key = Self::key(rt, ns, name);
        if !self.objects.contains_key(&key) {
            return Err(StoreError::NotFound(rt, name.to_string()));
        }
        if rt == &NAMESPACES {
            let inner: Vec<Key> = self.objects.keys().filter(|(_, kns, _)| kns == name).cloned().collect();
            for (plural, kns, kname) in inner {
                if let Some(irt) = resources::ALL.iter().copied().find(|r| r.plural == plural) {
                    self.remove(irt, &(plural, kns, kname));
                }
            }
        }
        let obj = self.remove(rt, &key);
        if rt == &CLUSTERROLES {
            self.reaggregate();
        }
        obj.ok_or_else(|| StoreError::NotFound(rt, name.to_string()))
    }

    fn remove(&mut self, rt: &'static ResourceType, key: &Key) -> Option<Value> {
        let mut obj = self.objects.remove(key)?;
        self.rv += 1;
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("resourceVersion".into(), self.rv.to_string().into());
        }
        self.record(rt, EventKind::Deleted, obj.clone(), None);
        Some(obj)
    }

    /// The clusterrole-aggregation controller: recompute `rules` of every
    /// ClusterRole with an `aggregationRule` until nothing changes.
    fn reaggregate(&mut self) {
        if self.aggregation != AggregationMode::Kind {
            return;
        }
        // Aggregation chains (view → edit → admin) converge in a few rounds;
        // the bound guards against selector cycles.
        for _ in 0..8 {
            let roles: Vec<Value> = self.list(&CLUSTERROLES, None).cloned().collect();
            let mut changed = false;
            for role in &roles {
                let Some(rules) = rbac::aggregated_rules(role, &roles) else {
                    continue;
                };
                let name = meta_str(role, "name").to_string();
                // Re-read: an earlier iteration of this round may have changed it.
                let Ok(current) = self.get(&CLUSTERROLES, "", &name).cloned() else {
                    continue;
                };
                if current.get("rules") == Some(&rules) {
                    continue;
                }
                let mut next = current.clone();
                if let Some(m) = next.as_object_mut() {
                    m.insert("rules".into(), rules);
                }
                let key = Self::key(&CLUSTERROLES, "", &name);
                self.rv += 1;
                if let Some(m) = next.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.insert("resourceVersion".into(), self.rv.to_string().into());
                }
                self.objects.insert(key, next.clone());
                self.record(&CLUSTERROLES, EventKind::Modified, next, Some(current));
                changed = true;
            }
            if !changed {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::CONFIGMAPS;

    fn store() -> Store {
        let mut s = Store::new(AggregationMode::Kind, 4);
        s.create(&NAMESPACES, "", json!({"metadata": {"name": "default"}})).unwrap();
        s
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(EPOCH_SECS), "2025-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(EPOCH_SECS + 86_400 * 59 + 3661), "2025-03-01T01:01:01Z");
    }

    #[test]
    fn create_sets_server_fields_and_rejects_duplicates() {
        let mut s = store();
        let cm = s.create(&CONFIGMAPS, "default", json!({"metadata": {"name": "c"}})).unwrap();
        assert_eq!(cm["metadata"]["resourceVersion"], "2");
        assert_eq!(cm["metadata"]["uid"], "6b617369-6d00-4000-8000-000000000002");
        assert_eq!(cm["kind"], "ConfigMap");
        assert_eq!(cm["metadata"]["namespace"], "default");
        assert_eq!(
            s.create(&CONFIGMAPS, "default", json!({"metadata": {"name": "c"}})),
            Err(StoreError::AlreadyExists(&CONFIGMAPS, "c".into()))
        );
        assert_eq!(
            s.create(&CONFIGMAPS, "nope", json!({"metadata": {"name": "c"}})),
            Err(StoreError::NamespaceNotFound("nope".into()))
        );
        let g = s.create(&CONFIGMAPS, "default", json!({"metadata": {"generateName": "x-"}})).unwrap();
        assert!(meta_str(&g, "name").starts_with("x-"));
    }

    #[test]
    fn update_checks_resource_version_and_skips_noops() {
        let mut s = store();
        s.create(&CONFIGMAPS, "default", json!({"metadata": {"name": "c"}})).unwrap();
        let stale = json!({"metadata": {"name": "c", "resourceVersion": "1"}, "data": {"a": "b"}});
        assert_eq!(s.update(&CONFIGMAPS, "default", "c", stale), Err(StoreError::Conflict(&CONFIGMAPS, "c".into())));
        let (u, created) = s
            .update(
                &CONFIGMAPS,
                "default",
                "c",
                json!({"metadata": {"name": "c", "resourceVersion": "2"}, "data": {"a": "b"}}),
            )
            .unwrap();
        assert!(!created);
        assert_eq!(u["metadata"]["resourceVersion"], "3");
        let (same, _) =
            s.update(&CONFIGMAPS, "default", "c", json!({"metadata": {"name": "c"}, "data": {"a": "b"}})).unwrap();
        assert_eq!(same["metadata"]["resourceVersion"], "3");
    }

    #[test]
    fn history_is_bounded() {
        let mut s = store();
        for i in 0..6 {
            s.create(&CONFIGMAPS, "default", json!({"metadata": {"name": format!("c{i}")}})).unwrap();
        }
        assert_eq!(s.resource_version(), 7);
        assert!(s.events_after(2).is_err());
        assert_eq!(s.events_after(3).unwrap().count(), 4);
    }

    #[test]
    fn namespace_delete_cascades() {
        let mut s = store();
        s.create(&CONFIGMAPS, "default", json!({"metadata": {"name": "c"}})).unwrap();
        s.delete(&NAMESPACES, "", "default").unwrap();
        assert_eq!(s.list(&CONFIGMAPS, None).count(), 0);
    }
}
