//! A guardian key in a real PKCS#11 token: SoftHSM2 from the distribution's packages
//! (`testnet/install-system-deps` installs it).
//!
//! SoftHSM reads its configuration (where its tokens live) from `SOFTHSM2_CONF` when the
//! module is initialised, so each test here creates a private token directory and runs its
//! checks in a child process of this test binary with that variable set: the parent test
//! passes only if the child's checks pass.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::signers::local::PrivateKeySigner;
use backstop_signer::testing::{SOFTHSM_MODULE, SOFTHSM_TOKEN, softhsm_token};
use backstop_signer::{GuardianKey, SignerError, TokenSigner, TokenSpec};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

const TOKEN: &str = SOFTHSM_TOKEN;
const PIN: &str = "482916";
/// Set in the child process: the directory of its token.
const CHILD: &str = "BACKSTOP_SOFTHSM_CHILD";

fn module() -> PathBuf {
    std::env::var_os("BACKSTOP_PKCS11_MODULE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(SOFTHSM_MODULE))
}

/// Runs the `#[ignore]`d test `name` of this binary in a child process with its own token.
fn in_child(name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let conf = softhsm_token(dir.path(), PIN);
    let out = Command::new(std::env::current_exe().unwrap())
        .env("SOFTHSM2_CONF", &conf)
        .env(CHILD, dir.path())
        .args([
            "--ignored",
            "--exact",
            name,
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{name} in its child:\n{text}"
    );
    // The child's figures, for whoever runs this with --nocapture.
    for line in text.lines().filter(|l| l.contains(" each")) {
        println!("{line}");
    }
}

fn spec(key: &str) -> TokenSpec {
    TokenSpec {
        module: module(),
        token: TOKEN.to_owned(),
        key: key.to_owned(),
    }
}

fn in_child_only() -> bool {
    std::env::var_os(CHILD).is_some()
}

#[test]
fn token_key_signs_low_s_signatures_for_its_address() {
    in_child("child_token_key_signs_low_s_signatures_for_its_address");
}

#[test]
#[ignore = "run by token_key_signs_low_s_signatures_for_its_address with its own token"]
fn child_token_key_signs_low_s_signatures_for_its_address() {
    assert!(in_child_only());
    let address = TokenSigner::generate(&spec("guardian"), PIN).unwrap();
    let key = GuardianKey::Token(Arc::new(TokenSigner::open(&spec("guardian"), PIN).unwrap()));
    assert_eq!(key.address(), address);
    assert!(key.local().is_none(), "a token key sends no transactions");
    assert!(key.location().contains("guardian"), "{}", key.location());

    // Tokens return s in either half; the vault accepts only the low half.
    let half_order = U256::from_str_radix(
        "7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0",
        16,
    )
    .unwrap();
    let started = std::time::Instant::now();
    for i in 0u64..200 {
        let digest = keccak256(i.to_be_bytes());
        let sig = key.sign(digest).unwrap();
        assert_eq!(sig.signer, address);
        sig.verify(digest).unwrap();
        assert!(
            sig.signature.s() <= half_order,
            "signature {i} has a high s"
        );
    }
    println!(
        "200 token signatures (sign, lower s, find the recovery id, verify): {:?} each",
        started.elapsed() / 200
    );

    // The same label twice is refused; the first key is intact.
    let err = TokenSigner::generate(&spec("guardian"), PIN).unwrap_err();
    assert!(err.to_string().contains("exists"), "{err}");
    assert_eq!(
        TokenSigner::open(&spec("guardian"), PIN).unwrap().address(),
        address
    );
}

#[test]
fn imported_key_keeps_its_address() {
    in_child("child_imported_key_keeps_its_address");
}

#[test]
#[ignore = "run by imported_key_keeps_its_address with its own token"]
fn child_imported_key_keeps_its_address() {
    assert!(in_child_only());
    let plain = PrivateKeySigner::random();
    let address = TokenSigner::import(&spec("imported"), PIN, &plain).unwrap();
    assert_eq!(address, plain.address());
    let token = TokenSigner::open(&spec("imported"), PIN).unwrap();
    let digest = B256::repeat_byte(7);
    let sig = token.sign(digest).unwrap();
    sig.verify(digest).unwrap();
    assert_eq!(sig.signer, plain.address());
}

#[test]
fn bad_pin_token_module_or_label_fail_naming_the_key() {
    in_child("child_bad_pin_token_module_or_label_fail_naming_the_key");
}

#[test]
#[ignore = "run by bad_pin_token_module_or_label_fail_naming_the_key with its own token"]
fn child_bad_pin_token_module_or_label_fail_naming_the_key() {
    assert!(in_child_only());
    TokenSigner::generate(&spec("guardian"), PIN).unwrap();

    let err = TokenSigner::open(&spec("guardian"), "000000")
        .err()
        .unwrap();
    let text = err.to_string();
    assert!(
        text.contains("wrong PIN") && text.contains("\"guardian\""),
        "{text}"
    );
    assert!(text.contains("\"backstop\""), "{text}");

    let err = TokenSigner::open(&spec("nobody"), PIN).err().unwrap();
    assert!(err.to_string().contains("no EC private key"), "{err}");

    let mut other = spec("guardian");
    other.token = "elsewhere".to_owned();
    let err = TokenSigner::open(&other, PIN).err().unwrap();
    assert!(matches!(err, SignerError::TokenNotFound { .. }), "{err}");
    assert!(
        err.to_string().contains("\"backstop\""),
        "lists the tokens present: {err}"
    );

    let mut missing = spec("guardian");
    missing.module = PathBuf::from("/nonexistent/libpkcs11.so");
    let err = TokenSigner::open(&missing, PIN).err().unwrap();
    assert!(matches!(err, SignerError::Module { .. }), "{err}");
    assert!(
        err.to_string().contains("/nonexistent/libpkcs11.so"),
        "{err}"
    );

    // Nothing above disturbed the key.
    let address: Address = TokenSigner::open(&spec("guardian"), PIN).unwrap().address();
    assert_ne!(address, Address::ZERO);
}
