//! Keystore v3 files: written and read back, refused with a wrong password, never
//! overwritten, and crafted files refused before any key derivation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloy::signers::local::PrivateKeySigner;
use backstop_signer::{GuardianKey, SignerError, keystore};

#[test]
fn a_key_round_trips_and_only_its_password_opens_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("guardian.json");
    let key = PrivateKeySigner::random();
    keystore::create(&path, &key, b"correct horse").unwrap();

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "a keystore is private from the start");
    }
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains(&key.to_bytes().to_string()[2..]),
        "the secret is not in clear"
    );

    let back = keystore::decrypt(&path, b"correct horse").unwrap();
    assert_eq!(back.address(), key.address());

    let err = keystore::decrypt(&path, b"correct horsf").unwrap_err();
    assert!(matches!(err, SignerError::WrongPassword { .. }), "{err}");
    assert!(
        err.to_string().contains("guardian.json"),
        "names the file: {err}"
    );
    assert!(err.to_string().contains("wrong password"), "{err}");
}

#[test]
fn a_keystore_is_never_overwritten_and_short_passwords_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("guardian.json");
    let first = PrivateKeySigner::random();
    keystore::create(&path, &first, b"password-1").unwrap();
    let err = keystore::create(&path, &PrivateKeySigner::random(), b"password-2").unwrap_err();
    assert!(matches!(err, SignerError::KeystoreExists { .. }), "{err}");
    assert_eq!(
        keystore::decrypt(&path, b"password-1").unwrap().address(),
        first.address(),
        "the first key is intact"
    );

    let short = dir.path().join("short.json");
    let err = keystore::create(&short, &first, b"1234").unwrap_err();
    assert!(err.to_string().contains("at least"), "{err}");
    assert!(!short.exists(), "nothing written");
}

#[test]
fn crafted_and_oversized_files_are_refused_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("guardian.json");
    keystore::create(&path, &PrivateKeySigner::random(), b"password-1").unwrap();
    let good = std::fs::read_to_string(&path).unwrap();
    let v: serde_json::Value = serde_json::from_str(&good).unwrap();

    let mut cases: Vec<(String, &str)> = Vec::new();
    let mut edit = |f: &dyn Fn(&mut serde_json::Value), want: &'static str| {
        let mut c = v.clone();
        f(&mut c);
        cases.push((c.to_string(), want));
    };
    // A cost that would take the node hours and gigabytes to derive.
    edit(
        &|c| c["crypto"]["kdfparams"]["n"] = (1u64 << 30).into(),
        "kdfparams.n",
    );
    // A short IV and a short derived key made the keystore library panic.
    edit(
        &|c| c["crypto"]["cipherparams"]["iv"] = "00".into(),
        "cipherparams.iv",
    );
    edit(
        &|c| c["crypto"]["kdfparams"]["dklen"] = 8.into(),
        "kdfparams.dklen",
    );
    edit(&|c| c["version"] = 1.into(), "version 1");
    cases.push(("{".to_owned(), "not a keystore v3"));
    cases.push((" ".repeat(20_000), "too large"));

    for (i, (text, want)) in cases.iter().enumerate() {
        let p = dir.path().join(format!("crafted-{i}.json"));
        std::fs::write(&p, text).unwrap();
        let err = keystore::decrypt(&p, b"password-1").unwrap_err();
        assert!(
            matches!(err, SignerError::KeystoreFormat { .. }),
            "{want}: {err}"
        );
        assert!(err.to_string().contains(want), "{want}: {err}");
    }
}

#[test]
fn a_keystore_key_signs_as_the_guardian() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("guardian.json");
    let key = PrivateKeySigner::random();
    keystore::create(&path, &key, b"password-1").unwrap();
    let guardian = GuardianKey::Local(keystore::decrypt(&path, b"password-1").unwrap());
    let digest = alloy::primitives::keccak256(b"draw");
    let sig = guardian.sign(digest).unwrap();
    sig.verify(digest).unwrap();
    assert_eq!(sig.signer, key.address());
    assert!(
        guardian.local().is_some(),
        "an in-memory key can also send transactions"
    );
    assert!(!format!("{guardian:?}").contains(&key.to_bytes().to_string()[2..]));
}
