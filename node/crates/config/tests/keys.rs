//! Key file tests: generation (mode 0600, no overwrite, reload gives the same identities, the
//! snippet configures a working node) and the refusals on loading (loose mode, truncation,
//! bad text, size), with no secret in any error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use backstop_config::keys::{self, KeyError};
use backstop_config::{Config, peer_id_of};
use std::path::Path;

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
fn write_with_mode(path: &Path, text: &str, mode: u32) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
    // The umask may have cleared bits: set exactly what the test wants.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[cfg(not(unix))]
fn write_with_mode(path: &Path, text: &str, _mode: u32) {
    std::fs::write(path, text).unwrap();
}

#[test]
fn generate_writes_private_files_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let keydir = dir.path().join("keys");
    let g = keys::generate(&keydir).unwrap();
    assert_eq!(g.identity_path, keydir.join(keys::IDENTITY_FILE));
    assert_eq!(g.signer_path, keydir.join(keys::SIGNER_FILE));
    #[cfg(unix)]
    {
        assert_eq!(mode(&g.identity_path), 0o600);
        assert_eq!(mode(&g.signer_path), 0o600);
        assert_eq!(mode(&keydir), 0o700);
    }
    let identity_text = std::fs::read_to_string(&g.identity_path).unwrap();
    assert_eq!(identity_text.len(), 65);
    assert!(identity_text.ends_with('\n') && identity_text.lines().count() == 1);
    let signer_text = std::fs::read_to_string(&g.signer_path).unwrap();
    assert!(signer_text.starts_with("0x") && signer_text.len() == 67);

    let identity = keys::load_identity(&g.identity_path).unwrap();
    assert_eq!(identity.verifying_key().to_bytes(), g.public_key);
    assert_eq!(keys::peer_id(&identity), Some(g.peer_id));
    assert_eq!(peer_id_of(&g.public_key), Some(g.peer_id));
    assert_eq!(g.public_key_hex(), hex::encode(g.public_key));
    let signer = keys::load_signer(&g.signer_path).unwrap();
    assert_eq!(signer.address(), g.guardian);

    // A second pair is different.
    let other = keys::generate(&dir.path().join("other")).unwrap();
    assert_ne!(other.public_key, g.public_key);
    assert_ne!(other.guardian, g.guardian);
}

#[test]
fn generate_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let g = keys::generate(dir.path()).unwrap();
    let before = std::fs::read(&g.identity_path).unwrap();
    let e = keys::generate(dir.path()).unwrap_err();
    assert!(matches!(e, KeyError::Exists { .. }), "{e}");
    assert!(e.to_string().contains("refusing to overwrite"), "{e}");
    assert_eq!(std::fs::read(&g.identity_path).unwrap(), before);

    // Only one of the two present: still refused, nothing written.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(keys::SIGNER_FILE), "x").unwrap();
    assert!(matches!(
        keys::generate(dir.path()),
        Err(KeyError::Exists { .. })
    ));
    assert!(!dir.path().join(keys::IDENTITY_FILE).exists());
}

#[test]
fn snippet_configures_a_working_node() {
    let dir = tempfile::tempdir().unwrap();
    let g = keys::generate(&dir.path().join("keys")).unwrap();
    let addr: multiaddr::Multiaddr = "/dns4/solo.example/tcp/9000".parse().unwrap();
    let snippet = g.node_snippet("solo", &[addr]);
    assert!(
        snippet.contains(&format!("/p2p/{}", g.peer_id)),
        "{snippet}"
    );
    let text = format!(
        r#"[node]
name = "solo"
data_dir = "data"
identity_key_file = "keys/identity.key"
signer_key_file = "keys/signer.key"

[network]
listen = ["/ip4/127.0.0.1/tcp/0"]

[consortium]
threshold = 1
pause_threshold = 1

{snippet}
[[chains]]
chain_id = 31337
name = "local"
rpc_urls = ["http://127.0.0.1:8545"]
vault = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
"#
    );
    let path = dir.path().join("node.toml");
    std::fs::write(&path, text).unwrap();
    let c = Config::load(&path).unwrap();
    assert_eq!(c.my_node().peer_id, g.peer_id);
    assert_eq!(c.my_node().guardian, g.guardian);
    assert_eq!(
        c.my_node().addresses[0].to_string(),
        "/dns4/solo.example/tcp/9000"
    );
    let k = c.load_keys().unwrap();
    assert_eq!(k.me(), 0);
    assert!(k.admin_token().is_none());
}

#[cfg(unix)]
#[test]
fn group_readable_key_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("identity.key");
    let seed = "ab".repeat(32);
    write_with_mode(&path, &format!("{seed}\n"), 0o644);
    let e = keys::load_identity(&path).unwrap_err();
    assert!(
        matches!(e, KeyError::Permissions { mode: 0o644, .. }),
        "{e}"
    );
    let shown = e.to_string();
    assert!(
        shown.contains("mode 0644") && shown.contains("chmod 600"),
        "{shown}"
    );
    assert!(!shown.contains(&seed));

    let path = dir.path().join("signer.key");
    write_with_mode(&path, &format!("0x{seed}\n"), 0o640);
    assert!(matches!(
        keys::load_signer(&path),
        Err(KeyError::Permissions { .. })
    ));
}

#[test]
fn truncated_and_malformed_key_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let seed = "cd".repeat(32);

    let truncated = dir.path().join("truncated.key");
    write_with_mode(&truncated, &seed[..63], 0o600);
    let e = keys::load_identity(&truncated).unwrap_err();
    let shown = e.to_string();
    assert!(matches!(e, KeyError::Format { .. }), "{shown}");
    assert!(
        shown.contains("expected one line of 64 hex digits, found 63"),
        "{shown}"
    );
    assert!(!shown.contains(&seed[..63]), "{shown}");

    let bad = dir.path().join("bad.key");
    write_with_mode(&bad, &format!("0x{}zz\n", &seed[..62]), 0o600);
    let shown = keys::load_signer(&bad).unwrap_err().to_string();
    assert!(shown.contains("character 65 is not a hex digit"), "{shown}");
    assert!(!shown.contains(&seed[..62]), "{shown}");

    let two_lines = dir.path().join("two.key");
    write_with_mode(&two_lines, &format!("{seed}\n{seed}\n"), 0o600);
    assert!(matches!(
        keys::load_identity(&two_lines),
        Err(KeyError::Format { .. })
    ));

    let empty = dir.path().join("empty.key");
    write_with_mode(&empty, "", 0o600);
    assert!(matches!(
        keys::load_identity(&empty),
        Err(KeyError::Format { .. })
    ));

    let zero = dir.path().join("zero.key");
    write_with_mode(&zero, &format!("0x{}\n", "0".repeat(64)), 0o600);
    let shown = keys::load_signer(&zero).unwrap_err().to_string();
    assert!(
        shown.contains("not a valid secp256k1 secret key"),
        "{shown}"
    );

    let large = dir.path().join("large.key");
    write_with_mode(&large, &"a".repeat(4096), 0o600);
    assert!(matches!(
        keys::load_identity(&large),
        Err(KeyError::TooLarge { .. })
    ));

    let missing = keys::load_identity(&dir.path().join("missing.key")).unwrap_err();
    assert!(matches!(missing, KeyError::Read { .. }));
    assert!(matches!(
        keys::load_identity(dir.path()),
        Err(KeyError::NotAFile { .. }) | Err(KeyError::Read { .. })
    ));
}

#[test]
fn keys_from_text() {
    let seed = "01".repeat(32);
    let a = keys::identity_from_text(&format!("  {seed}\n"), "test").unwrap();
    let b = keys::identity_from_text(&format!("0x{seed}"), "test").unwrap();
    assert_eq!(a.to_bytes(), b.to_bytes());
    let e = keys::identity_from_text(&seed[..10], "environment variable X").unwrap_err();
    assert_eq!(
        e.to_string(),
        "environment variable X: expected one line of 64 hex digits, found 10 (truncated or wrong file?)"
    );
    let s = keys::signer_from_text(
        "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
        "test",
    )
    .unwrap();
    assert_eq!(
        s.address().to_string(),
        "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    );
    let e = keys::identity_from_env("BACKSTOP_TEST_SURELY_UNSET_7F3A").unwrap_err();
    assert_eq!(
        e.to_string(),
        "environment variable BACKSTOP_TEST_SURELY_UNSET_7F3A is not set"
    );
}
