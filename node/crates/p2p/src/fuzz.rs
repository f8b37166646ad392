//! Entry point shared by the cargo-fuzz target (`fuzz/`) and the stable seeded driver
//! test (`tests/fuzz_driver.rs`): feeds arbitrary bytes to envelope decoding, to the
//! validator and to payload decoding.
//!
//! Invariants checked (a violation panics, which is what a fuzzer reports): no input
//! panics the decoders or the validator; every input yields exactly one counted verdict;
//! nothing unsigned is accepted; a payload that decodes re-encodes to a message that
//! decodes to the same value.

use std::sync::Arc;

use alloy::primitives::Address;
use ed25519_dalek::SigningKey;

use crate::envelope;
use crate::message::Wire;
use crate::validation::{Origin, ValidationConfig, Validator, Verdict};
use backstop_types::Message;
use backstop_types::{Consortium, NodeInfo};

/// Fixed time the fuzz inputs are validated at.
pub const FUZZ_NOW_MS: u64 = 1_700_000_000_000;

/// A validator over a fixed 4-node consortium, and the nodes' keys.
pub fn fixture() -> (Validator, Vec<SigningKey>) {
    let keys: Vec<SigningKey> = (1..=4u8)
        .map(|i| SigningKey::from_bytes(&[i; 32]))
        .collect();
    let nodes = keys
        .iter()
        .enumerate()
        .map(|(i, k)| NodeInfo {
            identity: k.verifying_key().to_bytes(),
            guardian: Address::repeat_byte(i as u8 + 1),
        })
        .collect();
    let consortium = match Consortium::new(nodes) {
        Ok(c) => Arc::new(c),
        Err(e) => panic!("fixed fuzz consortium is valid: {e}"),
    };
    let validator = Validator::new(
        consortium,
        ValidationConfig {
            seen_capacity: 1024,
            // A fuzzer sends millions of inputs at one fixed time; do not let the rate
            // limit hide the checks behind it.
            rate_burst: u32::MAX,
            ..ValidationConfig::default()
        },
    );
    (validator, keys)
}

/// A validator and keys, reused across inputs (as the seen-cache and buckets would be in
/// a running node).
pub struct Harness {
    validator: Validator,
    keys: Vec<SigningKey>,
}

impl Default for Harness {
    fn default() -> Self {
        let (validator, keys) = fixture();
        Self { validator, keys }
    }
}

impl Harness {
    /// Runs one input; panics if an invariant breaks.
    pub fn run(&mut self, data: &[u8]) {
        run(&mut self.validator, &self.keys, data);
    }

    /// Envelopes accepted so far.
    pub fn accepted(&self) -> u64 {
        self.validator.counters().accepted()
    }

    /// A valid signed envelope around `payload` (a seed for mutation).
    pub fn seal(&self, payload: &[u8]) -> Vec<u8> {
        envelope::seal(&self.keys[0], FUZZ_NOW_MS, payload.to_vec()).encode()
    }
}

/// Runs one input through every decoder and the validator.
pub fn run(validator: &mut Validator, keys: &[SigningKey], data: &[u8]) {
    let counters = validator.counters();
    let before = counters.accepted() + counters.total_dropped();

    // 1. The raw bytes as a gossip envelope and as a catch-up entry: nobody signed
    //    them with a member key, so acceptance would be a forgery.
    let signer = validator
        .consortium()
        .index_of_identity(&keys[0].verifying_key().to_bytes())
        .map(usize::from);
    for origin in [
        Origin::Gossip {
            forwarder: Some(1),
            source: signer,
        },
        Origin::CatchUp { server: Some(2) },
    ] {
        if let Verdict::Accept(v) = validator.validate(FUZZ_NOW_MS, origin, data) {
            // Only possible if the input contains a valid member signature, which a
            // fuzzer cannot produce; re-verify to be sure it is not a validator bug.
            let env = envelope::Envelope::decode(&v.envelope, usize::MAX)
                .unwrap_or_else(|e| panic!("accepted bytes do not decode: {e}"));
            let key = validator.consortium().verifying_keys()[v.signer];
            assert!(
                env.verify(&key),
                "accepted an envelope with a bad signature"
            );
        }
    }

    // 2. The bytes as a payload, correctly signed by a member: exercises payload
    //    decoding and the guardian check behind a valid signature.
    let sealed = envelope::seal(&keys[0], FUZZ_NOW_MS, data.to_vec()).encode();
    let verdict = validator.validate(
        FUZZ_NOW_MS,
        Origin::Gossip {
            forwarder: Some(1),
            source: signer,
        },
        &sealed,
    );
    let decoded = Message::decode(data);
    if let Verdict::Accept(v) = &verdict {
        assert_eq!(
            Some(&v.message),
            decoded.as_ref().ok(),
            "accepted a payload that does not decode"
        );
    }

    // 3. Payload round trip.
    if let Ok(m) = decoded {
        let again = Message::decode(&m.encode())
            .unwrap_or_else(|e| panic!("re-encoded payload does not decode: {e}"));
        assert_eq!(again, m, "payload round trip changed the message");
    }

    let after = counters.accepted() + counters.total_dropped();
    assert_eq!(
        after - before,
        3,
        "every validation is counted exactly once"
    );
}
