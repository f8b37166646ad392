//! Guardian keys in Ethereum keystore v3 files (the Web3 Secret Storage format that geth,
//! clef, foundry's `cast wallet` and MetaMask export): the secret is encrypted with AES-128-CTR
//! under a key derived from a password by scrypt or PBKDF2.
//!
//! Invariants:
//! - a file is read only if it is a regular file of at most [`MAX_KEYSTORE_BYTES`] bytes;
//! - its structure is checked before any key derivation: version 3, `aes-128-ctr` with a
//!   16-byte IV, a 32-byte ciphertext and MAC, and KDF parameters within [`MAX_SCRYPT_N`],
//!   [`MAX_SCRYPT_R`], [`MAX_SCRYPT_P`] and [`MAX_PBKDF2_ROUNDS`] (so a crafted file can
//!   neither crash the node nor make it derive keys for hours or allocate gigabytes);
//! - a new keystore is created with mode 0600 from the start and never overwrites a file.

use crate::SignerError;
use alloy::hex;
use alloy::signers::local::{LocalSignerError, PrivateKeySigner};
use serde::Deserialize;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest keystore file read (a v3 file is about 500 bytes).
pub const MAX_KEYSTORE_BYTES: u64 = 16 * 1024;
/// Largest scrypt cost `n` accepted (geth's "standard" cost: 256 MiB with r = 8).
pub const MAX_SCRYPT_N: u64 = 1 << 18;
/// Largest scrypt block size `r` accepted.
pub const MAX_SCRYPT_R: u64 = 8;
/// Largest scrypt parallelism `p` accepted.
pub const MAX_SCRYPT_P: u64 = 4;
/// Largest PBKDF2 iteration count accepted.
pub const MAX_PBKDF2_ROUNDS: u64 = 10_000_000;
/// Shortest password accepted when creating a keystore.
pub const MIN_PASSWORD_BYTES: usize = 8;

#[derive(Deserialize)]
struct V3 {
    version: u64,
    id: String,
    crypto: Crypto,
}

#[derive(Deserialize)]
struct Crypto {
    cipher: String,
    cipherparams: CipherParams,
    ciphertext: String,
    kdf: String,
    kdfparams: serde_json::Value,
    mac: String,
}

#[derive(Deserialize)]
struct CipherParams {
    iv: String,
}

#[derive(Deserialize)]
struct Scrypt {
    dklen: u64,
    n: u64,
    r: u64,
    p: u64,
    salt: String,
}

#[derive(Deserialize)]
struct Pbkdf2 {
    c: u64,
    dklen: u64,
    prf: String,
    salt: String,
}

/// Decrypts the keystore at `path` with `password`.
pub fn decrypt(path: &Path, password: &[u8]) -> Result<PrivateKeySigner, SignerError> {
    let text = read_bounded(path)?;
    check(&text).map_err(|reason| SignerError::KeystoreFormat {
        path: path.to_owned(),
        reason,
    })?;
    PrivateKeySigner::decrypt_keystore(path, password).map_err(|e| match e {
        LocalSignerError::EthKeystoreError(eth_keystore::KeystoreError::MacMismatch) => {
            SignerError::WrongPassword {
                path: path.to_owned(),
            }
        }
        other => SignerError::KeystoreFormat {
            path: path.to_owned(),
            reason: other.to_string(),
        },
    })
}

/// Writes `key` to a new keystore at `path`, encrypted with `password` (scrypt, n = 2^13),
/// and checks that it decrypts back to the same address.
pub fn create(path: &Path, key: &PrivateKeySigner, password: &[u8]) -> Result<(), SignerError> {
    if password.len() < MIN_PASSWORD_BYTES {
        return Err(SignerError::KeystoreFormat {
            path: path.to_owned(),
            reason: format!("the password must be at least {MIN_PASSWORD_BYTES} bytes"),
        });
    }
    let (dir, name) = split(path)?;
    reserve(path)?;
    let written = PrivateKeySigner::encrypt_keystore(
        dir,
        &mut rand::thread_rng(),
        key.to_bytes(),
        password,
        Some(name),
    );
    if let Err(e) = written {
        // Leave no half-written keystore behind: the file was created empty by `reserve`.
        let _ = std::fs::remove_file(path);
        return Err(SignerError::KeystoreFormat {
            path: path.to_owned(),
            reason: e.to_string(),
        });
    }
    let back = decrypt(path, password)?;
    if back.address() != key.address() {
        return Err(SignerError::KeystoreFormat {
            path: path.to_owned(),
            reason: "written keystore does not decrypt to the key".to_owned(),
        });
    }
    Ok(())
}

fn split(path: &Path) -> Result<(&Path, &str), SignerError> {
    let name = path.file_name().and_then(|n| n.to_str());
    match (path.parent(), name) {
        (Some(dir), Some(name)) => {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            Ok((dir, name))
        }
        _ => Err(SignerError::KeystoreFormat {
            path: path.to_owned(),
            reason: "not a file path".to_owned(),
        }),
    }
}

/// Creates `path` empty with mode 0600, failing if it exists: the keystore writer then
/// truncates it and keeps its mode.
fn reserve(path: &Path) -> Result<(), SignerError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(SignerError::KeystoreExists {
                path: path.to_owned(),
            })
        }
        Err(source) => Err(SignerError::KeystoreIo {
            path: path.to_owned(),
            source,
        }),
    }
}

fn read_bounded(path: &Path) -> Result<String, SignerError> {
    let io = |source| SignerError::KeystoreIo {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(format_err(path, "not a regular file"));
    }
    if meta.len() > MAX_KEYSTORE_BYTES {
        return Err(format_err(
            path,
            &format!("more than {MAX_KEYSTORE_BYTES} bytes, too large for a keystore"),
        ));
    }
    let mut text = String::new();
    file.take(MAX_KEYSTORE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(io)?;
    Ok(text)
}

fn format_err(path: &Path, reason: &str) -> SignerError {
    SignerError::KeystoreFormat {
        path: PathBuf::from(path),
        reason: reason.to_owned(),
    }
}

/// Checks a keystore's structure and bounds; the reason never quotes secret fields.
fn check(text: &str) -> Result<(), String> {
    let v3: V3 = serde_json::from_str(text).map_err(|e| format!("not a keystore v3: {e}"))?;
    if v3.version != 3 {
        return Err(format!(
            "version {} (only version 3 is supported)",
            v3.version
        ));
    }
    if v3.id.is_empty() {
        return Err("empty id".to_owned());
    }
    let c = &v3.crypto;
    if c.cipher != "aes-128-ctr" {
        return Err(format!(
            "cipher {:?} (only aes-128-ctr is supported)",
            c.cipher
        ));
    }
    hex_len("cipherparams.iv", &c.cipherparams.iv, 16..=16)?;
    hex_len("ciphertext", &c.ciphertext, 32..=32)?;
    hex_len("mac", &c.mac, 32..=32)?;
    match c.kdf.as_str() {
        "scrypt" => check_scrypt(&c.kdfparams),
        "pbkdf2" => check_pbkdf2(&c.kdfparams),
        other => Err(format!("kdf {other:?} (scrypt or pbkdf2 expected)")),
    }
}

fn check_scrypt(params: &serde_json::Value) -> Result<(), String> {
    let p: Scrypt =
        serde_json::from_value(params.clone()).map_err(|e| format!("kdfparams (scrypt): {e}"))?;
    if p.dklen != 32 {
        return Err(format!("kdfparams.dklen {} (32 expected)", p.dklen));
    }
    if !p.n.is_power_of_two() || !(2..=MAX_SCRYPT_N).contains(&p.n) {
        return Err(format!(
            "kdfparams.n {} (a power of two from 2 to {MAX_SCRYPT_N} expected)",
            p.n
        ));
    }
    if !(1..=MAX_SCRYPT_R).contains(&p.r) {
        return Err(format!(
            "kdfparams.r {} (1 to {MAX_SCRYPT_R} expected)",
            p.r
        ));
    }
    if !(1..=MAX_SCRYPT_P).contains(&p.p) {
        return Err(format!(
            "kdfparams.p {} (1 to {MAX_SCRYPT_P} expected)",
            p.p
        ));
    }
    hex_len("kdfparams.salt", &p.salt, 16..=64)
}

fn check_pbkdf2(params: &serde_json::Value) -> Result<(), String> {
    let p: Pbkdf2 =
        serde_json::from_value(params.clone()).map_err(|e| format!("kdfparams (pbkdf2): {e}"))?;
    if p.dklen != 32 {
        return Err(format!("kdfparams.dklen {} (32 expected)", p.dklen));
    }
    if p.prf != "hmac-sha256" {
        return Err(format!("kdfparams.prf {:?} (hmac-sha256 expected)", p.prf));
    }
    if !(1..=MAX_PBKDF2_ROUNDS).contains(&p.c) {
        return Err(format!(
            "kdfparams.c {} (1 to {MAX_PBKDF2_ROUNDS} expected)",
            p.c
        ));
    }
    hex_len("kdfparams.salt", &p.salt, 16..=64)
}

fn hex_len(field: &str, text: &str, bytes: std::ops::RangeInclusive<usize>) -> Result<(), String> {
    let decoded = hex::decode(text).map_err(|_| format!("{field} is not hex"))?;
    if !bytes.contains(&decoded.len()) {
        return Err(format!(
            "{field} is {} bytes ({} to {} expected)",
            decoded.len(),
            bytes.start(),
            bytes.end()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const GOOD: &str = r#"{"version":3,"id":"3198bc9c-6672-5ab3-d995-4942343ae5b6",
        "crypto":{"cipher":"aes-128-ctr","cipherparams":{"iv":"6087dab2f9fdbbfaddc31a909735c1e6"},
        "ciphertext":"5318b4d5bcd28de64ee5559e671353e16f075ecae9f99c7a79a38af5f869aa46",
        "kdf":"scrypt","kdfparams":{"dklen":32,"n":262144,"p":1,"r":8,
        "salt":"ab0c7876052600dd703518d6fc3fe8984592145b591fc8fb5c6d43190334ba19"},
        "mac":"517ead924a9d0dc3124507e3393d175ce3ff7c1e96529c6c555ce9e51205e9b2"}}"#;

    #[test]
    fn accepts_a_standard_v3_file() {
        check(GOOD).unwrap();
    }

    #[test]
    fn refuses_crafted_files_naming_the_field() {
        let cases = [
            (GOOD.replace("\"version\":3", "\"version\":4"), "version 4"),
            (GOOD.replace("aes-128-ctr", "aes-256-gcm"), "cipher"),
            (
                GOOD.replace("6087dab2f9fdbbfaddc31a909735c1e6", "6087"),
                "cipherparams.iv",
            ),
            (
                GOOD.replace("\"n\":262144", "\"n\":4294967296"),
                "kdfparams.n",
            ),
            (GOOD.replace("\"n\":262144", "\"n\":1000"), "kdfparams.n"),
            (GOOD.replace("\"r\":8", "\"r\":4096"), "kdfparams.r"),
            (GOOD.replace("\"p\":1", "\"p\":100000"), "kdfparams.p"),
            (
                GOOD.replace("\"dklen\":32", "\"dklen\":8"),
                "kdfparams.dklen",
            ),
            (
                GOOD.replace("\"kdf\":\"scrypt\"", "\"kdf\":\"argon2\""),
                "kdf",
            ),
            (GOOD.replace("517ead92", "zz"), "mac"),
            ("[]".to_owned(), "not a keystore v3"),
        ];
        for (text, field) in cases {
            let err = check(&text).unwrap_err();
            assert!(err.contains(field), "{field}: {err}");
        }
    }
}
