//! The in-process gRPC services agentk exposes through its tunnels.

use std::convert::Infallible;

use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::Routes;

use super::descriptor::{UnknownService, describe};
use crate::proto::reverse_tunnel::info::AgentDescriptor;

/// A set of services plus their descriptor.
#[derive(Debug, Clone, Default)]
pub struct AgentServices {
    routes: Routes,
    names: Vec<&'static str>,
}

impl AgentServices {
    pub fn add_service<S>(mut self, svc: S) -> Self
    where
        S: tower_service::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.routes = self.routes.add_service(svc);
        self.names.push(S::NAME);
        self
    }

    pub fn routes(&self) -> Routes {
        self.routes.clone()
    }

    pub fn descriptor(&self) -> Result<AgentDescriptor, UnknownService> {
        describe(&self.names)
    }
}
