//! `backstop admin propose|approve` as operators type them: malformed fields are refused
//! before anything is sent, naming the field; a well-formed request goes to the API (here one
//! that does not answer, so the error is the connection's, not the request's).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

/// An API address nothing listens on.
const NO_API: &str = "http://127.0.0.1:9";

fn admin(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("admin.token");
    std::fs::write(&token, "secret\n").unwrap();
    Command::new(env!("CARGO_BIN_EXE_backstop"))
        .arg("admin")
        .args(args)
        .args(["--token-file", token.to_str().unwrap(), "--api", NO_API])
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const MEMBER: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";
const RECIPIENT: &str = "0x2222222222222222222222222222222222222222";

fn set_member(member: &str, cap: &str) -> Output {
    admin(&[
        "propose",
        "set-member",
        member,
        "--recipient",
        RECIPIENT,
        "--home-chain",
        "31337",
        "--cap",
        cap,
        "--deductible",
        "10",
        "--coverage-limit",
        "1000",
        "--coverage-window-s",
        "86400",
    ])
}

#[test]
fn malformed_fields_are_refused_naming_them_before_anything_is_sent() {
    let short_member = &MEMBER[..64];
    let cases = [
        (set_member(short_member, "100"), "member"),
        (set_member(MEMBER, "12x"), "cap"),
        (
            set_member(MEMBER, "340282366920938463463374607431768211456"),
            "cap",
        ),
        (
            admin(&[
                "propose",
                "rotate-guardians",
                "--guardian",
                "0xnothex",
                "--threshold",
                "1",
                "--pause-threshold",
                "1",
            ]),
            "guardian",
        ),
        (admin(&["approve", MEMBER, "0x1234"]), "digest"),
        (admin(&["approve", "0x12", MEMBER]), "id"),
    ];
    for (out, field) in cases {
        let err = stderr(&out);
        assert!(!out.status.success(), "{err}");
        assert!(
            err.contains(&format!("{field}:")),
            "expected the error to name {field}: {err}"
        );
        assert!(!err.contains("127.0.0.1:9"), "nothing is sent: {err}");
    }
}

#[test]
fn a_well_formed_proposal_goes_to_the_api() {
    let out = set_member(MEMBER, "340282366920938463463374607431768211455");
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("127.0.0.1:9"),
        "the request was parsed and sent to the API: {err}"
    );
}
