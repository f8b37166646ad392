//! Test support (feature `testing`): a SoftHSM2 token in a private directory, for the tests
//! of this crate and of the node. SoftHSM2 comes from the distribution's packages
//! (`testnet/install-system-deps` installs it); it reads where its tokens live from
//! `SOFTHSM2_CONF` when the module is initialised, so a caller sets that variable to the
//! path [`softhsm_token`] returns, in the process that opens the token.
//!
//! Fixtures panic on failure, naming what failed.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian's SoftHSM2 PKCS#11 module.
pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// The label of the token [`softhsm_token`] creates.
pub const SOFTHSM_TOKEN: &str = "backstop";
/// The security officer's PIN of that token (tests never use it again).
const SO_PIN: &str = "736251";

/// Creates a SoftHSM2 configuration under `dir` with one initialised token
/// ([`SOFTHSM_TOKEN`], user PIN `pin`); returns the configuration, for `SOFTHSM2_CONF`.
pub fn softhsm_token(dir: &Path, pin: &str) -> PathBuf {
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens)
        .unwrap_or_else(|e| panic!("creating {}: {e}", tokens.display()));
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap_or_else(|e| panic!("writing {}: {e}", conf.display()));
    let init = Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &conf)
        .args(["--init-token", "--free", "--label", SOFTHSM_TOKEN])
        .args(["--pin", pin, "--so-pin", SO_PIN])
        .output()
        .unwrap_or_else(|e| panic!("softhsm2-util (run testnet/install-system-deps): {e}"));
    assert!(
        init.status.success(),
        "softhsm2-util --init-token: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    conf
}
