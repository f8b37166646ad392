//! Compiles the `.proto` files under `proto/` with protox (pure Rust, no system protoc)
//! and generates Rust code into `OUT_DIR`.
//!
//! - `backstop.gossip.v1` (always): prost types, through `prost-build`.
//! - `backstop.v1` (feature `api` only): prost types plus the tonic server and client of
//!   `backstop.v1.Backstop`, through `tonic-prost-build` from protox's file descriptor set,
//!   and that set's encoding in `OUT_DIR/backstop_v1_descriptor.bin` for server reflection.
//!   Without the feature neither tonic nor its code generator is built.

use std::path::Path;

/// Include root of the `.proto` files.
const PROTO_ROOT: &str = "proto";

/// Files of `backstop.gossip.v1`.
const GOSSIP_FILES: &[&str] = &["backstop/gossip/v1/gossip.proto"];

/// Files of `backstop.v1` (feature `api`).
#[cfg(feature = "api")]
const API_FILES: &[&str] = &["backstop/v1/api.proto"];

/// Paths of `files` under [`PROTO_ROOT`], with a rerun trigger for each.
fn proto_paths(files: &[&str]) -> Vec<String> {
    let paths: Vec<String> = files
        .iter()
        .map(|f| Path::new(PROTO_ROOT).join(f).display().to_string())
        .collect();
    for path in &paths {
        println!("cargo:rerun-if-changed={path}");
    }
    paths
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    let fds = protox::compile(proto_paths(GOSSIP_FILES), [PROTO_ROOT])?;
    prost_build::Config::new().compile_fds(fds)?;
    #[cfg(feature = "api")]
    compile_api()?;
    Ok(())
}

/// Generates `backstop.v1` (types, server, client) and writes its descriptor set.
#[cfg(feature = "api")]
fn compile_api() -> Result<(), Box<dyn std::error::Error>> {
    use protox::prost::Message as _;

    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let fds = protox::compile(proto_paths(API_FILES), [PROTO_ROOT])?;
    std::fs::write(
        out_dir.join("backstop_v1_descriptor.bin"),
        fds.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // The generated `connect` helper would need tonic's transport in this crate;
        // clients build a `Channel` themselves and use `with_origin`/`new`.
        .build_transport(false)
        .emit_rerun_if_changed(false)
        .compile_fds(fds)?;
    Ok(())
}
