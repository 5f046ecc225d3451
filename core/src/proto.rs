//! Generated protocol types, wire-compatible with the upstream GitLab agent (v16 tree).
//!
//! Package and field numbers follow `../shared/reference/agent-protocol.md` §1 and §4; the order rules
//! the upstream protos express with custom options live in [`crate::tunnel::automaton`]. Module
//! nesting mirrors the proto packages (generated code refers across packages with `super::`);
//! shorter aliases follow.
#![allow(clippy::all, clippy::pedantic, missing_docs)]

pub mod google {
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
}

pub mod gitlab {
    pub mod agent {
        pub mod prototool {
            tonic::include_proto!("gitlab.agent.prototool");
        }
        pub mod reverse_tunnel {
            pub mod info {
                tonic::include_proto!("gitlab.agent.reverse_tunnel.info");
            }
            pub mod rpc {
                tonic::include_proto!("gitlab.agent.reverse_tunnel.rpc");
            }
        }
        pub mod grpctool {
            tonic::include_proto!("gitlab.agent.grpctool");
            pub mod test {
                tonic::include_proto!("gitlab.agent.grpctool.test");
            }
        }
        pub mod kubernetes_api {
            pub mod rpc {
                tonic::include_proto!("gitlab.agent.kubernetes_api.rpc");
            }
        }
        pub mod kas {
            tonic::include_proto!("gitlab.agent.kas");
        }
    }
}

pub use gitlab::agent::{grpctool, kas, kubernetes_api, prototool, reverse_tunnel};

/// The encoded `FileDescriptorSet` of every proto above, used to describe services to kas.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));
