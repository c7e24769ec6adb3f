//! Compiles the gateway's `.proto` (beside this file) with protox, so no `protoc` is needed, and
//! keeps its descriptor set for gRPC server reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto = root.join("studyspot/gateway/v1/gateway.proto");
    println!("cargo:rerun-if-changed={}", proto.display());
    let descriptors = protox::compile([&proto], [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("gateway_descriptor.bin"), prost::Message::encode_to_vec(&descriptors))?;
    // Maps as BTreeMap: a message encodes to the same bytes each time, so a retried request hashes
    // the same for its idempotency key.
    // Serialize: the gateway checks every string of a request for NUL characters by walking the
    // message as JSON (gateway/src/nul.rs), field names included.
    tonic_prost_build::configure()
        .btree_map(".")
        .type_attribute(".", "#[derive(serde::Serialize)]")
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
