//! A forwarded call as kas sees it, independent of where the tunnel is (local registry or another kas).

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::grpc::metadata::Meta;
use crate::proto::google::rpc::Status as RpcStatus;

/// A call kas sends to an agent: method, request metadata and the client's messages.
/// The `requests` channel closing is the client's half-close (`close_send`).
#[derive(Debug)]
pub struct OutboundCall {
    pub method: String,
    pub meta: Meta,
    pub requests: mpsc::Receiver<Bytes>,
    /// Messages a previous tunnel already took from `requests` before it died without an answer from
    /// the agent; they are sent first when the call is retried on another tunnel.
    pub replay: Vec<Bytes>,
}

impl OutboundCall {
    pub fn new(method: impl Into<String>, meta: Meta, requests: mpsc::Receiver<Bytes>) -> Self {
        Self { method: method.into(), meta, requests, replay: Vec::new() }
    }
}

/// What comes back from the agent, in the `ConnectRequest` order after the descriptor.
#[derive(Debug, Clone, PartialEq)]
pub enum CallEvent {
    Header(Meta),
    Message(Bytes),
    Trailer(Meta),
    Error(RpcStatus),
}

/// One event of a running call; an `Err` means the tunnel itself failed (not the remote method).
pub type CallItem = Result<CallEvent, tonic::Status>;

/// Events of a running call.
#[derive(Debug)]
pub struct CallEvents {
    first: Option<CallItem>,
    rx: mpsc::Receiver<CallItem>,
}

impl CallEvents {
    pub fn new(rx: mpsc::Receiver<CallItem>) -> Self {
        Self { first: None, rx }
    }

    /// Puts an already received event back in front.
    pub fn with_first(first: Option<CallItem>, rx: mpsc::Receiver<CallItem>) -> Self {
        Self { first, rx }
    }

    pub async fn recv(&mut self) -> Option<CallItem> {
        match self.first.take() {
            Some(f) => Some(f),
            None => self.rx.recv().await,
        }
    }

    /// [`recv`](Self::recv) for hand-written futures and bodies.
    pub fn poll_recv(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<CallItem>> {
        match self.first.take() {
            Some(f) => std::task::Poll::Ready(Some(f)),
            None => self.rx.poll_recv(cx),
        }
    }
}

/// `/pkg.Service/Method` split into its service and method parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodName<'a> {
    pub service: &'a str,
    pub method: &'a str,
}

/// Why a full method name was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed gRPC method name {0:?}: want /package.Service/Method")]
pub struct MethodNameError(pub String);

impl<'a> MethodName<'a> {
    pub fn parse(full: &'a str) -> Result<Self, MethodNameError> {
        let err = || MethodNameError(full.to_owned());
        let rest = full.strip_prefix('/').ok_or_else(err)?;
        let (service, method) = rest.split_once('/').ok_or_else(err)?;
        if service.is_empty() || method.is_empty() || method.contains('/') {
            return Err(err());
        }
        Ok(Self { service, method })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names() {
        let m = MethodName::parse("/gitlab.agent.kubernetes_api.rpc.KubernetesApi/MakeRequest").unwrap();
        assert_eq!(m.service, "gitlab.agent.kubernetes_api.rpc.KubernetesApi");
        assert_eq!(m.method, "MakeRequest");
        for bad in ["", "/", "//", "/a/", "//b", "a/b", "/a/b/c"] {
            assert!(MethodName::parse(bad).is_err(), "{bad}");
        }
    }
}
