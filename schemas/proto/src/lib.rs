//! The gateway's gRPC API (`studyspot/gateway/v1/gateway.proto`): the generated messages, the
//! client (`gateway_client`) every caller uses and the server trait (`gateway_server`) the gateway
//! implements, so no client depends on the server.
#![allow(clippy::all, clippy::pedantic, missing_docs, reason = "generated code")]

tonic::include_proto!("studyspot.gateway.v1");

/// For server reflection.
pub const DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("gateway_descriptor");
