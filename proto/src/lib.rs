//! Wire formats of Backstop.
//!
//! This crate will hold the `.proto` definitions of the gossip envelope and payloads
//! (`backstop.gossip.v1`) and of the operator gRPC API (`backstop.v1`), compiled with
//! prost through protox. Until those land it only pins the package names, so that the
//! rest of the workspace can refer to them.

/// Protobuf package of the gossip wire format.
pub const GOSSIP_PACKAGE: &str = "backstop.gossip.v1";

/// Protobuf package of the operator gRPC API.
pub const API_PACKAGE: &str = "backstop.v1";
