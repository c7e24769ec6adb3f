//! The generated gRPC types and service traits.
#![allow(clippy::all, clippy::pedantic, missing_docs, reason = "generated code")]

tonic::include_proto!("studyspot.gateway.v1");

/// For server reflection.
pub const DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("gateway_descriptor");
