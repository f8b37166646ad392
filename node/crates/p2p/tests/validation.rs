//! The validation table, row by row, plus rate limiting, the seen-cache bound, batch
//! verification and the catch-up window.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use alloy::primitives::B256;
use alloy::signers::local::PrivateKeySigner;
use backstop_contracts::eip712::sign_digest;
use backstop_p2p::DropReason;
use backstop_p2p::Wire;
use backstop_p2p::envelope::{self, Envelope, seal};
use backstop_p2p::validation::{Acceptance, Origin, ValidationConfig, Validator, Verdict};
use backstop_types::{
    Consortium, DrawAttestation, IncidentKey, Message, NodeInfo, Signal, SignalKind,
};
use ed25519_dalek::SigningKey;

const NOW: u64 = 1_800_000_000_000;

struct Fx {
    keys: Vec<SigningKey>,
    guardians: Vec<PrivateKeySigner>,
    v: Validator,
}

fn fx(config: ValidationConfig) -> Fx {
    let keys: Vec<SigningKey> = (1..=4u8)
        .map(|i| SigningKey::from_bytes(&[i; 32]))
        .collect();
    let guardians: Vec<PrivateKeySigner> = (1..=4u8)
        .map(|i| PrivateKeySigner::from_bytes(&B256::repeat_byte(i)).unwrap())
        .collect();
    let c = Consortium::new(
        keys.iter()
            .zip(&guardians)
            .map(|(k, g)| NodeInfo {
                identity: k.verifying_key().to_bytes(),
                guardian: g.address(),
            })
            .collect(),
    )
    .unwrap();
    Fx {
        keys,
        guardians,
        v: Validator::new(Arc::new(c), config),
    }
}

impl Fx {
    fn idx(&self, k: usize) -> usize {
        self.v
            .consortium()
            .index_of_identity(&self.keys[k].verifying_key().to_bytes())
            .map(usize::from)
            .unwrap()
    }
    /// Gossip published by node `k`, forwarded by node `fwd`.
    fn gossip(&self, k: usize, fwd: usize) -> Origin {
        Origin::Gossip {
            forwarder: Some(self.idx(fwd)),
            source: Some(self.idx(k)),
        }
    }
}

fn signal(n: u8) -> Message {
    Message::Signal(Signal {
        kind: SignalKind::Depeg,
        subject: B256::repeat_byte(n),
        observed_at_ms: NOW,
        evidence: Default::default(),
    })
}

fn signed(key: &SigningKey, at: u64, m: &Message) -> Vec<u8> {
    envelope::sign(key, at, m)
}

fn reason(v: &Verdict) -> Option<DropReason> {
    match v {
        Verdict::Accept(_) => None,
        Verdict::Reject(r) | Verdict::Ignore(r) => Some(*r),
    }
}

#[test]
fn honest_envelope_is_accepted_once() {
    let mut f = fx(ValidationConfig::default());
    let bytes = signed(&f.keys[0], NOW, &signal(1));
    let v = f.v.validate(NOW, f.gossip(0, 1), &bytes);
    let Verdict::Accept(a) = v else {
        panic!("{v:?}")
    };
    assert_eq!(a.signer, f.idx(0));
    assert_eq!(a.message, signal(1));
    assert_eq!(a.envelope, bytes);
    // Same content again, whichever path: duplicate, ignored.
    let again = f.v.validate(NOW, f.gossip(0, 2), &bytes);
    assert_eq!(again, Verdict::Ignore(DropReason::Duplicate));
    let via_catch_up =
        f.v.validate(NOW, Origin::CatchUp { server: Some(3) }, &bytes);
    assert_eq!(via_catch_up, Verdict::Ignore(DropReason::Duplicate));
    let c = f.v.counters();
    assert_eq!(
        (
            c.accepted(),
            c.dropped(DropReason::Duplicate),
            c.total_dropped()
        ),
        (1, 2, 2)
    );
}

#[test]
fn every_row_of_the_table_gives_its_reason_and_acceptance() {
    let mut f = fx(ValidationConfig {
        max_envelope_bytes: 4096,
        ..Default::default()
    });
    let outsider = SigningKey::from_bytes(&[99; 32]);
    let good = |f: &Fx, n: u8| signed(&f.keys[0], NOW, &signal(n));

    let mut forged = Envelope::decode(&good(&f, 2), usize::MAX).unwrap();
    forged.signature[0] ^= 1;
    let mut v2 = seal(&f.keys[0], NOW, signal(3).encode());
    v2.version = 2;
    let not_member_payload = signed(&outsider, NOW, &signal(4));
    // A valid envelope of node 1 published under node 0's gossipsub identity.
    let replayed = signed(&f.keys[1], NOW, &signal(5));
    // A draw attestation whose guardian is node 1's, signed (envelope) by node 0.
    let digest = B256::repeat_byte(0xdd);
    let wrong_guardian = Message::DrawAttestation(DrawAttestation {
        key: IncidentKey {
            member: B256::repeat_byte(1),
            seq: 0,
        },
        attempt: 0,
        digest,
        signature: sign_digest(&f.guardians[1], digest).unwrap(),
    });
    let right_guardian = Message::DrawAttestation(DrawAttestation {
        key: IncidentKey {
            member: B256::repeat_byte(1),
            seq: 0,
        },
        attempt: 0,
        digest,
        signature: sign_digest(&f.guardians[0], digest).unwrap(),
    });
    // Node 0 is guardian 0 in `fx` only up to sorting: look its guardian up.
    let g0 = f.v.consortium().nodes()[f.idx(0)].guardian;
    assert_eq!(g0, f.guardians[0].address());

    let cases: Vec<(&str, Origin, Vec<u8>, DropReason)> = vec![
        (
            "unknown forwarder",
            Origin::Gossip {
                forwarder: None,
                source: Some(f.idx(0)),
            },
            good(&f, 1),
            DropReason::UnknownPeer,
        ),
        (
            "oversized",
            f.gossip(0, 1),
            signed(
                &f.keys[0],
                NOW,
                &Message::Signal(Signal {
                    kind: SignalKind::Depeg,
                    subject: B256::ZERO,
                    observed_at_ms: 0,
                    evidence: vec![0; 1024].into(),
                }),
            )
            .repeat(5),
            DropReason::Oversized,
        ),
        (
            "undecodable",
            f.gossip(0, 1),
            vec![0xff, 0xff, 0x01],
            DropReason::Undecodable,
        ),
        (
            "unsupported version",
            f.gossip(0, 1),
            v2.encode(),
            DropReason::UnsupportedVersion,
        ),
        (
            "not a member",
            f.gossip(0, 1),
            not_member_payload,
            DropReason::NotMember,
        ),
        (
            "signer is not the publisher",
            f.gossip(0, 1),
            replayed,
            DropReason::SignerMismatch,
        ),
        (
            "too old",
            f.gossip(0, 1),
            signed(&f.keys[0], NOW - 5 * 60 * 1000 - 1, &signal(6)),
            DropReason::TooOld,
        ),
        (
            "from the future",
            f.gossip(0, 1),
            signed(&f.keys[0], NOW + 5_001, &signal(7)),
            DropReason::FromFuture,
        ),
        (
            "invalid payload",
            f.gossip(0, 1),
            seal(&f.keys[0], NOW, vec![0x0a, 0x01, 0x00]).encode(),
            DropReason::InvalidPayload,
        ),
        (
            "forged signature",
            f.gossip(0, 1),
            forged.encode(),
            DropReason::BadSignature,
        ),
        (
            "guardian of another node",
            f.gossip(0, 1),
            signed(&f.keys[0], NOW, &wrong_guardian),
            DropReason::GuardianMismatch,
        ),
    ];
    for (name, origin, bytes, expected) in &cases {
        let v = f.v.validate(NOW, *origin, bytes);
        assert_eq!(reason(&v), Some(*expected), "{name}: {v:?}");
        let want = expected.acceptance();
        assert_eq!(v.acceptance(), want, "{name}");
        assert_eq!(f.v.counters().dropped(*expected), 1, "{name} counted once");
    }
    // Ignore exactly for what an honest peer can cause.
    let ignored: Vec<DropReason> = DropReason::ALL
        .into_iter()
        .filter(|r| r.acceptance() == Acceptance::Ignore)
        .collect();
    assert_eq!(
        ignored,
        [
            DropReason::UnsupportedVersion,
            DropReason::TooOld,
            DropReason::FromFuture,
            DropReason::Duplicate,
            DropReason::RateLimited
        ]
    );
    // Edges of the window are inside it.
    assert!(matches!(
        f.v.validate(
            NOW,
            f.gossip(0, 1),
            &signed(&f.keys[0], NOW - 5 * 60 * 1000, &signal(8))
        ),
        Verdict::Accept(_)
    ));
    assert!(matches!(
        f.v.validate(
            NOW,
            f.gossip(0, 1),
            &signed(&f.keys[0], NOW + 5_000, &signal(9))
        ),
        Verdict::Accept(_)
    ));
    // The attestation with the signer's own guardian passes.
    assert!(matches!(
        f.v.validate(
            NOW,
            f.gossip(0, 1),
            &signed(&f.keys[0], NOW, &right_guardian)
        ),
        Verdict::Accept(_)
    ));
    assert_eq!(f.v.counters().accepted(), 3);
    assert_eq!(f.v.counters().total_dropped(), cases.len() as u64);
}

#[test]
fn a_forged_copy_does_not_poison_the_seen_cache() {
    let mut f = fx(ValidationConfig::default());
    let good = signed(&f.keys[0], NOW, &signal(1));
    let mut forged = Envelope::decode(&good, usize::MAX).unwrap();
    forged.signature[10] ^= 0x40;
    assert_eq!(
        f.v.validate(NOW, f.gossip(0, 1), &forged.encode()),
        Verdict::Reject(DropReason::BadSignature)
    );
    assert!(matches!(
        f.v.validate(NOW, f.gossip(0, 1), &good),
        Verdict::Accept(_)
    ));
}

#[test]
fn catch_up_has_a_longer_window_and_no_publisher_check() {
    let mut f = fx(ValidationConfig::default());
    let day_old = signed(&f.keys[1], NOW - 24 * 3600 * 1000, &signal(1));
    assert_eq!(
        f.v.validate(NOW, f.gossip(1, 2), &day_old),
        Verdict::Ignore(DropReason::TooOld)
    );
    // Served by node 2 although node 1 signed it.
    assert!(matches!(
        f.v.validate(
            NOW,
            Origin::CatchUp {
                server: Some(f.idx(2))
            },
            &day_old
        ),
        Verdict::Accept(_)
    ));
    let too_old = signed(&f.keys[1], NOW - 8 * 24 * 3600 * 1000, &signal(2));
    assert_eq!(
        f.v.validate(NOW, Origin::CatchUp { server: None }, &too_old),
        Verdict::Ignore(DropReason::TooOld)
    );
}

#[test]
fn rate_limit_is_per_forwarder_and_refills() {
    let mut f = fx(ValidationConfig {
        rate_burst: 5,
        rate_per_sec: 10,
        ..Default::default()
    });
    let mut n = 0u8;
    let mut next = |f: &Fx| {
        n += 1;
        signed(&f.keys[0], NOW, &signal(n))
    };
    for _ in 0..5 {
        let b = next(&f);
        assert!(matches!(
            f.v.validate(NOW, f.gossip(0, 1), &b),
            Verdict::Accept(_)
        ));
    }
    let b = next(&f);
    assert_eq!(
        f.v.validate(NOW, f.gossip(0, 1), &b),
        Verdict::Ignore(DropReason::RateLimited)
    );
    // Another forwarder is unaffected; the rate-limited content was not marked seen.
    assert!(matches!(
        f.v.validate(NOW, f.gossip(0, 2), &b),
        Verdict::Accept(_)
    ));
    // 100 ms later forwarder 1 has one token again.
    let b = next(&f);
    assert!(matches!(
        f.v.validate(NOW + 100, f.gossip(0, 1), &b),
        Verdict::Accept(_)
    ));
    let b = next(&f);
    assert_eq!(
        f.v.validate(NOW + 100, f.gossip(0, 1), &b),
        Verdict::Ignore(DropReason::RateLimited)
    );
    assert_eq!(f.v.counters().dropped(DropReason::RateLimited), 2);
}

#[test]
fn seen_cache_is_bounded_and_evicts_oldest() {
    let mut f = fx(ValidationConfig {
        seen_capacity: 3,
        ..Default::default()
    });
    let msgs: Vec<Vec<u8>> = (1..=4)
        .map(|i| signed(&f.keys[0], NOW, &signal(i)))
        .collect();
    for m in &msgs {
        assert!(matches!(
            f.v.validate(NOW, f.gossip(0, 1), m),
            Verdict::Accept(_)
        ));
    }
    // The newest three are remembered, the first was evicted (delivery is at-least-once).
    for m in &msgs[1..] {
        assert_eq!(
            f.v.validate(NOW, f.gossip(0, 1), m),
            Verdict::Ignore(DropReason::Duplicate)
        );
    }
    assert!(matches!(
        f.v.validate(NOW, f.gossip(0, 1), &msgs[0]),
        Verdict::Accept(_)
    ));
}

#[test]
fn batch_gives_the_same_verdicts_as_one_by_one() {
    let f0 = fx(ValidationConfig::default());
    let mut inputs: Vec<(Origin, Vec<u8>)> = Vec::new();
    for i in 0..40u8 {
        let k = (i % 4) as usize;
        let mut bytes = signed(&f0.keys[k], NOW, &signal(i));
        if i % 7 == 3 {
            let mut e = Envelope::decode(&bytes, usize::MAX).unwrap();
            e.signature[5] ^= 1;
            bytes = e.encode();
        }
        if i % 11 == 5 {
            bytes = vec![1, 2, 3];
        }
        inputs.push((f0.gossip(k, (k + 1) % 4), bytes));
    }
    // A duplicate inside the batch.
    inputs.push(inputs[0].clone());
    let items: Vec<(Origin, &[u8])> = inputs.iter().map(|(o, b)| (*o, b.as_slice())).collect();
    let mut single = fx(ValidationConfig::default());
    let expected: Vec<Verdict> = items
        .iter()
        .map(|(o, b)| single.v.validate(NOW, *o, b))
        .collect();
    let mut batch = fx(ValidationConfig::default());
    let got = batch.v.validate_batch(NOW, &items);
    assert_eq!(got, expected);
    assert!(
        got.iter()
            .filter(|v| matches!(v, Verdict::Accept(_)))
            .count()
            > 20
    );
    assert!(
        got.iter()
            .any(|v| *v == Verdict::Reject(DropReason::BadSignature))
    );
    assert_eq!(
        batch.v.counters().snapshot(),
        single.v.counters().snapshot()
    );
    assert_eq!(
        batch.v.counters().accepted(),
        single.v.counters().accepted()
    );
    // An all-good batch takes the batch path.
    let good: Vec<Vec<u8>> = (100..120u8)
        .map(|i| signed(&batch.keys[0], NOW, &signal(i)))
        .collect();
    let items: Vec<(Origin, &[u8])> = good
        .iter()
        .map(|b| (Origin::CatchUp { server: None }, b.as_slice()))
        .collect();
    assert!(
        batch
            .v
            .validate_batch(NOW, &items)
            .iter()
            .all(|v| matches!(v, Verdict::Accept(_)))
    );
}

#[test]
fn own_publications_are_duplicates_when_echoed() {
    let mut f = fx(ValidationConfig::default());
    let env = seal(&f.keys[0], NOW, signal(1).encode());
    f.v.mark_seen(env.content_id());
    assert_eq!(
        f.v.validate(NOW, f.gossip(0, 1), &env.encode()),
        Verdict::Ignore(DropReason::Duplicate)
    );
}

#[test]
fn a_rotated_guardian_is_checked_against_its_new_key_once_followed() {
    let mut f = fx(ValidationConfig::default());
    let me = f.idx(0);
    let new_key = PrivateKeySigner::from_bytes(&B256::repeat_byte(9)).unwrap();
    let digest = B256::repeat_byte(0xd1);
    let attestation = |g: &PrivateKeySigner, seq: u64| {
        Message::DrawAttestation(DrawAttestation {
            key: IncidentKey {
                member: B256::repeat_byte(1),
                seq,
            },
            attempt: 0,
            digest,
            signature: sign_digest(g, digest).unwrap(),
        })
    };
    let with_new = signed(&f.keys[0], NOW, &attestation(&new_key, 1));
    let v = f.v.validate(NOW, f.gossip(0, 1), &with_new);
    assert_eq!(
        reason(&v),
        Some(DropReason::GuardianMismatch),
        "not yet rotated"
    );

    let mut set = f.v.consortium().guardians();
    set[me] = new_key.address();
    let rotated = Arc::new(f.v.consortium().rebind(&set).unwrap());
    f.v.follow_guardians(rotated).unwrap();
    let with_new = signed(&f.keys[0], NOW + 1, &attestation(&new_key, 2));
    let v = f.v.validate(NOW + 1, f.gossip(0, 1), &with_new);
    assert!(
        matches!(v, Verdict::Accept(_)),
        "the new key is node 0's: {v:?}"
    );
    let with_old = signed(&f.keys[0], NOW + 2, &attestation(&f.guardians[0], 3));
    let v = f.v.validate(NOW + 2, f.gossip(0, 1), &with_old);
    assert_eq!(
        reason(&v),
        Some(DropReason::GuardianMismatch),
        "the old key is no one's"
    );

    // Another node set is not a rotation: refused, the set kept.
    let other = Consortium::new(vec![NodeInfo {
        identity: f.keys[0].verifying_key().to_bytes(),
        guardian: new_key.address(),
    }])
    .unwrap();
    assert!(f.v.follow_guardians(Arc::new(other)).is_err());
    assert_eq!(f.v.consortium().n(), 4);
}
