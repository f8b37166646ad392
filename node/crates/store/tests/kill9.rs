//! The sign-guard survives kill -9.
//!
//! The test re-executes its own binary as a child (`BACKSTOP_KILL9_DIR` set) that records
//! then signs in a loop, printing each signature after the guard answered. The parent
//! kills it with SIGKILL mid-loop, several times, restarting it on the same RocksDB
//! directory with a different digest per key each run. It checks that no key was ever
//! signed with two digests, that everything printed is in the guard, and that restarted
//! children were refused for keys recorded before.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloy::primitives::{B256, keccak256};
use alloy::signers::local::PrivateKeySigner;
use backstop_agreement::IncidentKey;
use backstop_agreement::state::{GuardKey, GuardVerdict};
use backstop_contracts::eip712::sign_digest;
use backstop_store::open_node_store;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

const KEYS: u64 = 100_000;

fn guard_key(i: u64) -> GuardKey {
    GuardKey::Draw {
        key: IncidentKey {
            member: B256::repeat_byte(0x42),
            seq: i / 4,
        },
        attempt: (i % 4) as u32,
    }
}

/// Child: walks the keys from 0, trying this run's digest for each.
fn child(dir: &str, run: u64) {
    let mut store = open_node_store(dir).unwrap();
    let signer = PrivateKeySigner::from_bytes(&B256::repeat_byte(7)).unwrap();
    let out = std::io::stdout();
    let mut out = out.lock();
    for i in 0..KEYS {
        let digest = keccak256([i.to_le_bytes(), run.to_le_bytes()].concat());
        match store.guard(guard_key(i), digest).unwrap() {
            GuardVerdict::Recorded | GuardVerdict::AlreadyRecorded => {
                let sig = sign_digest(&signer, digest).unwrap();
                sig.verify(digest).unwrap();
                writeln!(out, "S {i} {digest}").unwrap();
            }
            GuardVerdict::Conflict { recorded } => {
                writeln!(out, "R {i} {recorded}").unwrap();
            }
        }
        out.flush().unwrap();
    }
}

#[test]
fn sign_guard_survives_kill_9() {
    if let Ok(dir) = std::env::var("BACKSTOP_KILL9_DIR") {
        let run = std::env::var("BACKSTOP_KILL9_RUN")
            .unwrap()
            .parse()
            .unwrap();
        child(&dir, run);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    // key → digest signed (over every run).
    let mut signed: BTreeMap<u64, B256> = BTreeMap::new();
    let mut refused_after_restart = 0;
    for run in 0..4u64 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "sign_guard_survives_kill_9",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("BACKSTOP_KILL9_DIR", dir.path())
            .env("BACKSTOP_KILL9_RUN", run.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut new_signatures = 0;
        // Each run signs 150 new keys, then is killed mid-loop.
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let parts: Vec<&str> = line.split_whitespace().collect();
            let (kind, i, digest) = match parts.as_slice() {
                [k, i, d] if *k == "S" || *k == "R" => {
                    (*k, i.parse::<u64>().unwrap(), d.parse::<B256>().unwrap())
                }
                _ => continue, // test harness chatter
            };
            if kind == "S" {
                if let Some(prev) = signed.insert(i, digest) {
                    assert_eq!(
                        prev, digest,
                        "key {i} signed with two digests across kill -9"
                    );
                }
                new_signatures += 1;
                if new_signatures == 150 {
                    child.kill().unwrap(); // SIGKILL
                    break;
                }
            } else {
                refused_after_restart += 1;
            }
        }
        let status = child.wait().unwrap();
        assert!(!status.success(), "the child was killed, not finished");
        // Everything printed is in the guard, with its digest.
        let store = open_node_store(dir.path()).unwrap();
        let entries: BTreeMap<GuardKey, B256> =
            store.guard_entries().unwrap().into_iter().collect();
        for (i, d) in &signed {
            assert_eq!(
                entries.get(&guard_key(*i)),
                Some(d),
                "signed key {i} missing from the guard"
            );
        }
    }
    assert!(signed.len() >= 4 * 150 - 3, "{} keys signed", signed.len());
    assert!(
        refused_after_restart >= 150,
        "restarted children were refused old keys: {refused_after_restart}"
    );
    println!(
        "kill -9 x4: {} keys signed once each, {refused_after_restart} refusals after restart",
        signed.len()
    );
}
