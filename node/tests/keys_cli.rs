//! `backstop keys`: a node's guardian key put in an encrypted keystore and in a PKCS#11 token
//! (SoftHSM2, installed by `testnet/install-system-deps`), through the binary as operators
//! run it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use backstop_signer::testing::{SOFTHSM_MODULE, SOFTHSM_TOKEN, softhsm_token};
use common::write_secret;

use std::path::Path;
use std::process::{Command, Output};

fn backstop(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_backstop"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The address on the `guardian` line of a command's output.
fn guardian(out: &Output) -> String {
    assert!(out.status.success(), "{}", text(out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("guardian").map(|a| a.trim().to_owned()))
        .unwrap_or_else(|| panic!("no guardian line: {}", text(out)))
}

/// `backstop keys generate` in `dir`; returns the plain signer key file and its address.
fn plain_key(dir: &Path) -> (String, String) {
    let out = backstop(&["keys", "generate", "--out", dir.to_str().unwrap()], &[]);
    (dir.join("signer.key").display().to_string(), guardian(&out))
}

#[test]
fn a_plain_key_moves_into_a_keystore_and_keeps_its_address() {
    let dir = tempfile::tempdir().unwrap();
    let (key, address) = plain_key(&dir.path().join("keys"));
    let pw = dir.path().join("password");
    write_secret(&pw, "correct horse battery");
    let out_file = dir.path().join("guardian.json");
    let args = [
        "keys",
        "keystore",
        "import",
        "--key",
        &key,
        "--out",
        out_file.to_str().unwrap(),
        "--password-file",
        pw.to_str().unwrap(),
    ];
    let out = backstop(&args, &[]);
    assert_eq!(guardian(&out), address);
    assert!(
        text(&out).contains("signer_keystore_file"),
        "prints the config lines"
    );

    // Never overwritten.
    let again = backstop(&args, &[]);
    assert!(!again.status.success());
    assert!(text(&again).contains("already exists"), "{}", text(&again));

    // A new key from a password in a variable.
    let fresh = dir.path().join("fresh.json");
    let out = backstop(
        &[
            "keys",
            "keystore",
            "new",
            "--out",
            fresh.to_str().unwrap(),
            "--password-env",
            "BACKSTOP_TEST_KEYSTORE_PASSWORD",
        ],
        &[(
            "BACKSTOP_TEST_KEYSTORE_PASSWORD",
            Path::new("another password"),
        )],
    );
    assert_ne!(guardian(&out), address);
    let back = backstop_signer::keystore::decrypt(&fresh, b"another password").unwrap();
    assert_eq!(back.address().to_string(), guardian(&out));
}

#[test]
fn a_guardian_key_lives_in_a_softhsm_token() {
    let dir = tempfile::tempdir().unwrap();
    let conf = softhsm_token(dir.path(), "271828");
    let env = [("SOFTHSM2_CONF", conf.as_path())];

    let (key, address) = plain_key(&dir.path().join("keys"));
    let pin = dir.path().join("pin");
    write_secret(&pin, "271828");
    let token = |label: &str, pin: &Path| -> Vec<String> {
        [
            "--module",
            SOFTHSM_MODULE,
            "--token",
            SOFTHSM_TOKEN,
            "--label",
            label,
            "--pin-file",
            pin.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let run = |sub: &[&str], rest: Vec<String>| {
        let mut args: Vec<&str> = vec!["keys", "pkcs11"];
        args.extend_from_slice(sub);
        args.extend(rest.iter().map(String::as_str));
        backstop(&args, &env)
    };

    let imported = run(&["import", "--key", &key], token("imported", &pin));
    assert_eq!(
        guardian(&imported),
        address,
        "an imported key keeps its address"
    );
    assert!(
        text(&imported).contains("[node.signer_pkcs11]"),
        "{}",
        text(&imported)
    );
    assert_eq!(guardian(&run(&["show"], token("imported", &pin))), address);

    let generated = guardian(&run(&["new"], token("generated", &pin)));
    assert_ne!(generated, address);
    assert_eq!(
        guardian(&run(&["show"], token("generated", &pin))),
        generated
    );

    // A wrong PIN fails naming the token and the key.
    let wrong = dir.path().join("wrong-pin");
    write_secret(&wrong, "000000");
    let out = run(&["show"], token("generated", &wrong));
    assert!(!out.status.success());
    let shown = text(&out);
    assert!(
        shown.contains("wrong PIN") && shown.contains("\"generated\""),
        "{shown}"
    );
    assert!(!shown.contains("000000"), "the PIN is not echoed: {shown}");
}
