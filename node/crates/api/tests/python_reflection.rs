//! A Python client that knows nothing but server reflection (grpcio, grpcio-reflection
//! from PyPI, installed by `testnet/install-python-deps`) lists the services of the real
//! server and calls `backstop.v1.Backstop/GetStatus` (`testnet/reflect.py`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{filled_state, start};

/// The repository root.
fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_reflection_client_calls_get_status() {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("SKIPPED python_reflection_client_calls_get_status: python3 is not installed");
        return;
    }
    let root = repo_root();
    let install = tokio::task::spawn_blocking({
        let root = root.clone();
        move || {
            Command::new(root.join("testnet/install-python-deps"))
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        install.status.success(),
        "install-python-deps failed:\n{}",
        String::from_utf8_lossy(&install.stderr)
    );
    let python = String::from_utf8(install.stdout).unwrap().trim().to_owned();

    let server = start(filled_state(), None).await;
    let target = server.addr.to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(root.join("testnet/reflect.py"))
            .arg(target)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "reflect.py failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    println!("reflect.py output:\n{stdout}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let services: Vec<&str> = doc["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    for expected in [
        "backstop.v1.Backstop",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    ] {
        assert!(services.contains(&expected), "{services:?}");
    }
    let status = &doc["status"]["status"];
    assert_eq!(status["node_name"], "alpha");
    assert_eq!(status["peer_id"], "12D3KooWAlpha");
    assert_eq!(status["guardian_address"], format!("0x{}", "a1".repeat(20)));
    assert_eq!(status["version"], "0.1.0-test");
    assert_eq!(status["ready"], true);
    assert_eq!(
        (
            status["n"].as_u64(),
            status["t"].as_u64(),
            status["p"].as_u64()
        ),
        (Some(4), Some(3), Some(2))
    );
    assert_eq!(status["incidents_open"], 1);
    assert_eq!(status["peers_connected"], 1);
    // uint64 is a JSON string in protobuf's JSON mapping.
    assert!(status["uptime_seconds"].is_string(), "{status}");
    server.stop().await;
}
