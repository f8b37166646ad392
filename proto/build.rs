//! Compiles the `.proto` files under `proto/` with protox (pure Rust, no system protoc)
//! and generates prost types into `OUT_DIR`.
//!
//! Each package is listed in [`PACKAGES`] with its files; a later gRPC package
//! (`backstop.v1`, with tonic services) is added there and generated with
//! `tonic-prost-build` from the same file descriptor set.

use std::path::Path;

/// Include root of the `.proto` files.
const PROTO_ROOT: &str = "proto";

/// `(package, files)` compiled by this crate.
const PACKAGES: &[(&str, &[&str])] =
    &[("backstop.gossip.v1", &["backstop/gossip/v1/gossip.proto"])];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    let files: Vec<String> = PACKAGES
        .iter()
        .flat_map(|(_, files)| files.iter())
        .map(|f| Path::new(PROTO_ROOT).join(f).display().to_string())
        .collect();
    for file in &files {
        println!("cargo:rerun-if-changed={file}");
    }
    let fds = protox::compile(&files, [PROTO_ROOT])?;
    prost_build::Config::new().compile_fds(fds)?;
    Ok(())
}
