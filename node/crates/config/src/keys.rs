//! The node's key files: generation, loading and format checks.
//!
//! Two secrets identify a node:
//! - `identity.key`: its ed25519 secret seed (libp2p PeerId, gossip signatures), written as
//!   64 hex digits on one line;
//! - `signer.key`: its secp256k1 secret (guardian address, EIP-712 attestations), written as
//!   `0x` and 64 hex digits on one line.
//!
//! Invariants:
//! - files are created with mode 0600 from the start (`create_new` + mode, never a chmod after
//!   writing), and an existing file is never overwritten;
//! - a key file is read only if it is a regular file of at most [`MAX_KEY_FILE_BYTES`] bytes
//!   that group and others cannot access (mode `& 0o077 == 0`, checked on the open handle);
//! - a key is exactly 32 bytes of hex (an optional `0x` prefix is accepted on reading, a
//!   single trailing newline in files, surrounding whitespace in environment variables);
//! - no error, and no `Debug` output of this module, contains secret material: format errors
//!   give positions and counts, never characters.

use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;
use ed25519_dalek::SigningKey;
use libp2p_identity::PeerId;
use multiaddr::{Multiaddr, Protocol};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::config::SecretSource;

/// File name of the identity key written by [`generate`].
pub const IDENTITY_FILE: &str = "identity.key";
/// File name of the signer key written by [`generate`].
pub const SIGNER_FILE: &str = "signer.key";
/// Largest key file read.
pub const MAX_KEY_FILE_BYTES: u64 = 1024;

/// Why a key (or other secret) could not be generated, read or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be opened or read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file could not be created or written.
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file exists already; keys are never overwritten.
    #[error("{}: already exists; refusing to overwrite a key", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// Group or others may access the file.
    #[error(
        "{}: mode {mode:04o} lets group or others access this secret; run `chmod 600` on it",
        path.display()
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Not a regular file.
    #[error("{}: not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// The file is too large to be a key.
    #[error("{}: more than {max} bytes, too large for this secret", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The bound.
        max: u64,
    },
    /// The text is not a key of the expected format (the reason never quotes the text).
    #[error("{origin}: {reason}")]
    Format {
        /// Where the text came from (a path, or "environment variable X").
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// An environment variable is not set or not UTF-8.
    #[error("environment variable {var} {reason}")]
    Env {
        /// The variable.
        var: String,
        /// What is wrong.
        reason: String,
    },
    /// The operating system's random number generator failed.
    #[error("cannot draw random bytes from the OS: {0}")]
    Rng(String),
}

/// What [`generate`] wrote: the public side of the new keys.
#[derive(Debug, Clone)]
pub struct GeneratedKeys {
    /// The identity key file.
    pub identity_path: PathBuf,
    /// The signer key file.
    pub signer_path: PathBuf,
    /// ed25519 public key.
    pub public_key: [u8; 32],
    /// PeerId of the identity key.
    pub peer_id: PeerId,
    /// Address of the signer key (the node's guardian).
    pub guardian: Address,
}

impl GeneratedKeys {
    /// The ed25519 public key as 64 lowercase hex digits.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.public_key)
    }

    /// A `[[consortium.nodes]]` entry for these keys, ready to paste into every node's config.
    /// Addresses without a `/p2p/` suffix get this node's.
    pub fn node_snippet(&self, name: &str, addresses: &[Multiaddr]) -> String {
        node_snippet(name, &self.public_key, self.guardian, addresses)
    }
}

/// A `[[consortium.nodes]]` entry. Addresses without a `/p2p/` suffix get the key's PeerId.
pub fn node_snippet(
    name: &str,
    public_key: &[u8; 32],
    guardian: Address,
    addresses: &[Multiaddr],
) -> String {
    let peer = crate::value::peer_id_of(public_key);
    let addresses: Vec<String> = addresses
        .iter()
        .map(|a| {
            let mut a = a.clone();
            if let Some(peer) = peer
                && !matches!(a.iter().last(), Some(Protocol::P2p(_)))
            {
                a.push(Protocol::P2p(peer));
            }
            toml_string(&a.to_string())
        })
        .collect();
    let peer_comment = peer.map(|p| format!("  # PeerId {p}")).unwrap_or_default();
    format!(
        "[[consortium.nodes]]\nname = {}\npublic_key = \"{}\"{peer_comment}\nguardian = \"{}\"\naddresses = [{}]\n",
        toml_string(name),
        hex::encode(public_key),
        guardian.to_checksum(None),
        addresses.join(", "),
    )
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Writes a new identity key and a new signer key into `dir` (created with mode 0700 if
/// missing) as [`IDENTITY_FILE`] and [`SIGNER_FILE`], mode 0600. Refuses if either exists.
pub fn generate(dir: &Path) -> Result<GeneratedKeys, KeyError> {
    let identity_path = dir.join(IDENTITY_FILE);
    let signer_path = dir.join(SIGNER_FILE);
    for path in [&identity_path, &signer_path] {
        if path.symlink_metadata().is_ok() {
            return Err(KeyError::Exists { path: path.clone() });
        }
    }
    if !dir.exists() {
        create_private_dir(dir).map_err(|source| KeyError::Write {
            path: dir.to_owned(),
            source,
        })?;
    }

    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| KeyError::Rng(e.to_string()))?;
    let identity = SigningKey::from_bytes(&seed);
    wipe(&mut seed);
    let signer = random_signer()?;

    let public_key = identity.verifying_key().to_bytes();
    let peer_id = crate::value::peer_id_of(&public_key).ok_or_else(|| KeyError::Format {
        origin: "generated identity key".into(),
        reason: "not a valid ed25519 key".into(),
    })?;
    let guardian = signer.address();

    let mut identity_text = format!("{}\n", hex::encode(identity.to_bytes()));
    let written = write_new_secret(&identity_path, &identity_text);
    wipe_string(&mut identity_text);
    written?;
    let mut signer_text = format!("0x{}\n", hex::encode(signer.to_bytes()));
    let written = write_new_secret(&signer_path, &signer_text);
    wipe_string(&mut signer_text);
    if let Err(e) = written {
        // Leave no half-generated pair behind; the identity file is ours, just created.
        let _ = std::fs::remove_file(&identity_path);
        return Err(e);
    }
    Ok(GeneratedKeys {
        identity_path,
        signer_path,
        public_key,
        peer_id,
        guardian,
    })
}

/// A new random secp256k1 key from the operating system's generator.
pub fn random_signer() -> Result<PrivateKeySigner, KeyError> {
    // A uniformly random 32-byte string is a valid secp256k1 scalar except with
    // probability ~2^-128; retry a few times anyway.
    for _ in 0..8 {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| KeyError::Rng(e.to_string()))?;
        let candidate = PrivateKeySigner::from_bytes(&B256::from(bytes));
        wipe(&mut bytes);
        if let Ok(signer) = candidate {
            return Ok(signer);
        }
    }
    Err(KeyError::Rng(
        "no valid secp256k1 key in 8 draws".to_string(),
    ))
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Creates `path` (which must not exist) with mode 0600 and writes `text`, synced to disk.
fn write_new_secret(path: &Path, text: &str) -> Result<(), KeyError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            KeyError::Exists {
                path: path.to_owned(),
            }
        } else {
            KeyError::Write {
                path: path.to_owned(),
                source,
            }
        }
    })?;
    let result = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all());
    if let Err(source) = result {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(KeyError::Write {
            path: path.to_owned(),
            source,
        });
    }
    if let Some(parent) = path.parent()
        && let Ok(dir) = File::open(if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        })
    {
        // Make the new directory entry durable; failure here is not fatal.
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Reads a secret file: a regular file of at most `max` bytes, of UTF-8 text, that group and
/// others cannot access (on unix). The checks are made on the open handle.
pub fn read_secret_file(path: &Path, max: u64) -> Result<String, KeyError> {
    let read_err = |source| KeyError::Read {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(KeyError::NotAFile {
            path: path.to_owned(),
        });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions {
                path: path.to_owned(),
                mode,
            });
        }
    }
    if meta.len() > max {
        return Err(KeyError::TooLarge {
            path: path.to_owned(),
            max,
        });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(max).unwrap_or(1024).min(1 << 16));
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > max {
        wipe(&mut bytes);
        return Err(KeyError::TooLarge {
            path: path.to_owned(),
            max,
        });
    }
    String::from_utf8(bytes).map_err(|e| {
        let mut bytes = e.into_bytes();
        wipe(&mut bytes);
        KeyError::Format {
            origin: path.display().to_string(),
            reason: "not UTF-8 text".into(),
        }
    })
}

/// Reads a password or PIN: a secret file's one line (one optional trailing newline) or an
/// environment variable's value. Refuses an empty value and more than one line.
pub fn read_passphrase(src: &SecretSource) -> Result<String, KeyError> {
    let (mut text, origin) = match src {
        SecretSource::File(p) => (
            read_secret_file(p, MAX_KEY_FILE_BYTES)?,
            p.display().to_string(),
        ),
        SecretSource::Env(v) => (read_secret_env(v)?, format!("environment variable {v}")),
    };
    let mut line = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text)
        .to_owned();
    wipe_string(&mut text);
    if line.is_empty() || line.contains(['\r', '\n']) {
        wipe_string(&mut line);
        return Err(KeyError::Format {
            origin,
            reason: "expected one non-empty line".into(),
        });
    }
    Ok(line)
}

/// Reads an environment variable holding a secret.
pub fn read_secret_env(var: &str) -> Result<String, KeyError> {
    match std::env::var(var) {
        Ok(v) => Ok(v),
        Err(std::env::VarError::NotPresent) => Err(KeyError::Env {
            var: var.to_owned(),
            reason: "is not set".into(),
        }),
        Err(std::env::VarError::NotUnicode(_)) => Err(KeyError::Env {
            var: var.to_owned(),
            reason: "is not valid UTF-8".into(),
        }),
    }
}

/// Parses key file text: one line of 64 hex digits, with an optional `0x` prefix and one
/// optional trailing newline.
fn key_bytes_from_file_text(text: &str, origin: &str) -> Result<[u8; 32], KeyError> {
    let line = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text);
    key_bytes(line, origin)
}

/// 32 bytes from 64 hex digits (optional `0x`). Errors never quote the text.
fn key_bytes(text: &str, origin: &str) -> Result<[u8; 32], KeyError> {
    let format = |reason: String| KeyError::Format {
        origin: origin.to_owned(),
        reason,
    };
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    if let Some(i) = digits.chars().position(|c| !c.is_ascii_hexdigit()) {
        return Err(format(format!(
            "expected one line of 64 hex digits; character {} is not a hex digit",
            i + 1 + (text.len() - digits.len())
        )));
    }
    if digits.len() != 64 {
        return Err(format(format!(
            "expected one line of 64 hex digits, found {} (truncated or wrong file?)",
            digits.len()
        )));
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(digits, &mut out).map_err(|_| format("invalid hex".into()))?;
    Ok(out)
}

fn identity_from_bytes(mut bytes: [u8; 32]) -> SigningKey {
    let key = SigningKey::from_bytes(&bytes);
    wipe(&mut bytes);
    key
}

fn signer_from_bytes(mut bytes: [u8; 32], origin: &str) -> Result<PrivateKeySigner, KeyError> {
    let signer = PrivateKeySigner::from_bytes(&B256::from(bytes));
    wipe(&mut bytes);
    signer.map_err(|_| KeyError::Format {
        origin: origin.to_owned(),
        reason: "not a valid secp256k1 secret key (zero, or not below the curve order)".into(),
    })
}

/// Loads an ed25519 identity key file (see the module docs for the checks).
pub fn load_identity(path: &Path) -> Result<SigningKey, KeyError> {
    let mut text = read_secret_file(path, MAX_KEY_FILE_BYTES)?;
    let bytes = key_bytes_from_file_text(&text, &path.display().to_string());
    wipe_string(&mut text);
    Ok(identity_from_bytes(bytes?))
}

/// Loads a secp256k1 signer key file (see the module docs for the checks).
pub fn load_signer(path: &Path) -> Result<PrivateKeySigner, KeyError> {
    let mut text = read_secret_file(path, MAX_KEY_FILE_BYTES)?;
    let origin = path.display().to_string();
    let bytes = key_bytes_from_file_text(&text, &origin);
    wipe_string(&mut text);
    signer_from_bytes(bytes?, &origin)
}

/// Parses an identity key from text (e.g. an environment variable's value); `origin` names
/// the source in errors. Surrounding whitespace is ignored.
pub fn identity_from_text(text: &str, origin: &str) -> Result<SigningKey, KeyError> {
    key_bytes(text.trim(), origin).map(identity_from_bytes)
}

/// Parses a signer key from text (e.g. an environment variable's value); `origin` names the
/// source in errors. Surrounding whitespace is ignored.
pub fn signer_from_text(text: &str, origin: &str) -> Result<PrivateKeySigner, KeyError> {
    signer_from_bytes(key_bytes(text.trim(), origin)?, origin)
}

/// Loads an identity key from environment variable `var`.
pub fn identity_from_env(var: &str) -> Result<SigningKey, KeyError> {
    let mut text = read_secret_env(var)?;
    let key = identity_from_text(&text, &format!("environment variable {var}"));
    wipe_string(&mut text);
    key
}

/// Loads a signer key from environment variable `var`.
pub fn signer_from_env(var: &str) -> Result<PrivateKeySigner, KeyError> {
    let mut text = read_secret_env(var)?;
    let key = signer_from_text(&text, &format!("environment variable {var}"));
    wipe_string(&mut text);
    key
}

/// The PeerId of an identity key.
pub fn peer_id(identity: &SigningKey) -> Option<PeerId> {
    crate::value::peer_id_of(&identity.verifying_key().to_bytes())
}

/// Best-effort overwrite of secret bytes before they are freed.
fn wipe(bytes: &mut [u8]) {
    bytes.fill(0);
    std::hint::black_box(bytes);
}

/// Best-effort overwrite of a secret string before it is freed.
pub fn wipe_string(s: &mut String) {
    let mut bytes = std::mem::take(s).into_bytes();
    wipe(&mut bytes);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn format_errors_do_not_quote() {
        let secret = "zz".repeat(32);
        let e = identity_from_text(&secret, "x").unwrap_err().to_string();
        assert!(!e.contains("zz"), "{e}");
        let e = signer_from_text(&"0".repeat(64), "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a valid secp256k1"), "{e}");
    }

    #[test]
    fn snippet_quotes() {
        let s = toml_string("a\"b\\c\n");
        assert_eq!(s, "\"a\\\"b\\\\c\\u000A\"");
    }
}
