//! Compiles the project's .proto files without a system protoc: protox parses them, tonic-prost-build
//! generates messages and services. The encoded descriptor set is kept so that agentk can describe its
//! services (AgentDescriptor) from the same source of truth as the generated code.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/google/rpc/status.proto",
        "proto/gitlab/agent/prototool.proto",
        "proto/gitlab/agent/reverse_tunnel_info.proto",
        "proto/gitlab/agent/reverse_tunnel_rpc.proto",
        "proto/gitlab/agent/grpctool.proto",
        "proto/gitlab/agent/kubernetes_api_rpc.proto",
        "proto/gitlab/agent/kasapp.proto",
        "proto/gitlab/agent/testing.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("descriptor.bin"), prost::Message::encode_to_vec(&fds))?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(false)
        .emit_rerun_if_changed(false)
        .compile_fds(fds)?;
    Ok(())
}
