//! Where the pinned external tools live.
//!
//! `testnet/install-tools` installs anvil, forge and cast into the repository's `.tools/`;
//! tests and scripts look for them there and nowhere else, so every run uses the same
//! pinned versions.

use std::path::PathBuf;

/// A pinned tool is missing.
#[derive(Debug, thiserror::Error)]
#[error("{tool} not found at {}: run testnet/install-tools first", path.display())]
pub struct ToolMissing {
    /// Tool name.
    pub tool: String,
    /// Where it was expected.
    pub path: PathBuf,
}

/// Root of the repository this crate was built from.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// Path of a pinned tool (`anvil`, `forge`, `cast`, `solc`), if installed.
pub fn tool(name: &str) -> Result<PathBuf, ToolMissing> {
    let path = repo_root().join(".tools").join("bin").join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(ToolMissing {
            tool: name.to_owned(),
            path,
        })
    }
}
