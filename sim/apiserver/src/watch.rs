//! Watch: newline-delimited JSON events streamed from the event history.
//!
//! A spawned task pumps events into a channel; the response body turns
//! every event into its own data frame, so hyper flushes each one as it
//! happens (chunked on HTTP/1.1, a DATA frame on HTTP/2).
//!
//! ## Differences from a real API server
//! * Without `resourceVersion` (or with `"0"`) the watch starts with
//!   synthetic `ADDED` events for the current objects, as upstream does.
//! * `sendInitialEvents=true` (watch-list) sends the current objects then
//!   one `BOOKMARK` annotated `k8s.io/initial-events-end`, in every
//!   modelled version; upstream gates it behind the `WatchList` feature
//!   gate, whose defaults are not modelled. `resourceVersionMatch` is
//!   ignored, and no periodic bookmarks are sent.
//! * A `resourceVersion` newer than the store's simply waits for events
//!   after it, instead of upstream's "Too large resource version" 504.
//! * Without `timeoutSeconds` the watch ends after 1800 s, the lower bound
//!   of upstream's random 30–60 min, to stay deterministic.
//! * The event history is a fixed number of events (see
//!   `ApiServerBuilder::watch_history`) shared by all resources, where the
//!   watch cache keeps a window per resource.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::BoxBody;
use crate::body::ChannelBody;
use crate::resources::ResourceType;
use crate::selector::{FieldSelector, LabelSelector};
use crate::server::Shared;
use crate::status::ApiError;
use crate::store::{Event, EventKind};

/// Default watch duration when the client gives no `timeoutSeconds`.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// Which objects a watch (or list) selects.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    pub rt: &'static ResourceType,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    pub fn matches(&self, obj: &Value) -> bool {
        let ns_ok = self.namespace.as_deref().is_none_or(|want| {
            obj.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                == want
        });
        ns_ok && self.labels.matches_object(obj) && self.fields.matches_object(obj)
    }

    /// The event type a watcher with this filter sees for `e`, if any;
    /// objects moving into or out of the selection become ADDED/DELETED.
    fn translate(&self, e: &Event) -> Option<&'static str> {
        if e.rt != self.rt {
            return None;
        }
        let now = self.matches(&e.object);
        match e.kind {
            EventKind::Added | EventKind::Deleted => now.then(|| e.kind.as_str()),
            EventKind::Modified => {
                let before = e.prev.as_ref().is_some_and(|p| self.matches(p));
                match (before, now) {
                    (true, true) => Some("MODIFIED"),
                    (false, true) => Some("ADDED"),
                    (true, false) => Some("DELETED"),
                    (false, false) => None,
                }
            }
        }
    }
}

fn line(kind: &str, object: &str) -> Bytes {
    Bytes::from(format!("{{\"type\":\"{kind}\",\"object\":{object}}}\n"))
}

fn object_line(kind: &str, object: &Value) -> Bytes {
    line(
        kind,
        &serde_json::to_string(object).unwrap_or_else(|_| "null".into()),
    )
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// Current objects as `ADDED`, then changes; with `bookmark`, a
    /// `BOOKMARK` marks the end of the initial events (watch-list).
    Now { bookmark: bool },
    /// Changes after this resourceVersion.
    After(u64),
}

fn bookmark(rt: &ResourceType, rv: u64) -> Bytes {
    let obj = serde_json::json!({
        "kind": rt.kind,
        "apiVersion": rt.api_version(),
        "metadata": {
            "resourceVersion": rv.to_string(),
            "creationTimestamp": null,
            "annotations": {"k8s.io/initial-events-end": "true"},
        },
    });
    object_line("BOOKMARK", &obj)
}

/// Starts a watch.
pub(crate) fn start(
    shared: Arc<Shared>,
    filter: Filter,
    start: Start,
    timeout: Duration,
) -> Response<BoxBody> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut changes = shared.subscribe();
    let (initial, cursor) = {
        let store = shared.lock();
        match start {
            Start::After(rv) => (Vec::new(), rv),
            Start::Now {
                bookmark: with_bookmark,
            } => {
                let rv = store.resource_version();
                let mut lines: Vec<Bytes> = store
                    .list(filter.rt, filter.namespace.as_deref())
                    .filter(|o| filter.matches(o))
                    .map(|o| object_line("ADDED", o))
                    .collect();
                if with_bookmark {
                    lines.push(bookmark(filter.rt, rv));
                }
                (lines, rv)
            }
        }
    };
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        for b in initial {
            if tx.send(b).await.is_err() {
                return;
            }
        }
        let mut cursor = cursor;
        loop {
            changes.borrow_and_update();
            let batch: Result<Vec<Bytes>, u64> = {
                let store = shared.lock();
                store.events_after(cursor).map(|events| {
                    let mut out = Vec::new();
                    for e in events {
                        cursor = e.rv;
                        if let Some(kind) = filter.translate(e) {
                            out.push(object_line(kind, &e.object));
                        }
                    }
                    out
                })
            };
            match batch {
                Err(oldest) => {
                    let err =
                        ApiError::expired(format!("too old resource version: {cursor} ({oldest})"));
                    let _ = tx.send(line("ERROR", &err.to_json_string())).await;
                    return;
                }
                Ok(lines) => {
                    for b in lines {
                        if tx.send(b).await.is_err() {
                            return;
                        }
                    }
                }
            }
            tokio::select! {
                r = changes.changed() => if r.is_err() { return },
                _ = tx.closed() => return,
                _ = tokio::time::sleep_until(deadline) => return,
            }
        }
    });
    let mut resp = Response::new(ChannelBody::new(rx).boxed());
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache, private"),
    );
    resp
}
