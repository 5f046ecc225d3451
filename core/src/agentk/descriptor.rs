//! Builds the `AgentDescriptor` agentk sends first on every tunnel, from the same descriptor set the
//! gRPC code was generated from, so the advertised methods can never drift from the served ones.

use prost::Message;
use prost_types::FileDescriptorSet;

use crate::proto::FILE_DESCRIPTOR_SET;
use crate::proto::reverse_tunnel::info::{AgentDescriptor, Method, Service};

/// A service name that is not in kasim's protos.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown gRPC service {0:?}")]
pub struct UnknownService(pub String);

/// Describes `services` (fully qualified names) with all their methods.
pub fn describe(services: &[&str]) -> Result<AgentDescriptor, UnknownService> {
    let fds = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("descriptor set built by build.rs");
    let mut out = Vec::new();
    for name in services {
        let found = fds.file.iter().find_map(|f| {
            let pkg = f.package();
            f.service.iter().find(|s| format!("{pkg}.{}", s.name()) == *name)
        });
        let svc = found.ok_or_else(|| UnknownService((*name).to_owned()))?;
        out.push(Service {
            name: (*name).to_owned(),
            methods: svc.method.iter().map(|m| Method { name: m.name().to_owned() }).collect(),
        });
    }
    Ok(AgentDescriptor { services: out })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_real_services() {
        let d =
            describe(&["gitlab.agent.kubernetes_api.rpc.KubernetesApi", "gitlab.agent.grpctool.test.Testing"]).unwrap();
        assert_eq!(d.services[0].name, "gitlab.agent.kubernetes_api.rpc.KubernetesApi");
        assert_eq!(d.services[0].methods, vec![Method { name: "MakeRequest".into() }]);
        let names: Vec<_> = d.services[1].methods.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, vec!["RequestResponse", "StreamingRequestResponse", "Hold"]);
        assert_eq!(describe(&["nope.Svc"]).unwrap_err(), UnknownService("nope.Svc".into()));
    }
}
