//! The behaviour every [`Kv`] backend must have for the node state, as one reusable check.
//!
//! [`check_store_contract`] runs the same assertions against any backend: the in-memory one
//! here, RocksDB in `backstop-store`. It covers schema versioning, the sign-guard (record,
//! repeat, conflict, persistence across reopen), every record type round-tripping through a
//! reopen, atomic batches, and refusal of corrupt values. It panics with a message naming
//! the broken rule; call it from a test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::kv::{Cf, Kv, WriteBatch};
use crate::state::{
    ActionRecord, CloseReason, GuardKey, GuardVerdict, IncidentRecord, NodeStore, Registration,
    SCHEMA_KEY, SCHEMA_VERSION, StoreError, SubmissionRecord,
};
use crate::types::{Certificate, DrawProposal, IncidentKey, PinnedBlock, Subject, ThresholdAction};
use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use backstop_contracts::eip712::{Draw, Leg, Pause, Signable, VaultId, sign_digest};
use std::collections::BTreeMap;

/// A place a backend can be (re)opened from: a directory, a shared memory table...
pub trait Reopen {
    /// The backend.
    type Kv: Kv;
    /// Opens the backend (the previous handle was dropped).
    fn open(&mut self) -> Self::Kv;
}

fn vault(c: u64) -> VaultId {
    VaultId {
        chain_id: c,
        address: Address::with_last_byte(c as u8),
    }
}

fn draw() -> Draw {
    Draw {
        member: B256::repeat_byte(1),
        seq: 4,
        gap: U256::from(10),
        amount: U256::from(9),
        legs: vec![Leg {
            chainId: 1,
            vault: Address::with_last_byte(1),
            amount: U256::from(9),
        }],
        deadline: 50,
        legDeadline: 60,
    }
}

/// Runs every check; `fresh` gives an empty location each time it is called.
pub fn check_store_contract<R: Reopen>(mut fresh: impl FnMut() -> R) {
    schema_is_written_and_checked(fresh());
    guard_records_once_and_refuses_conflicts(fresh());
    records_survive_reopen(fresh());
    closed_incidents_move_out_and_are_pruned(fresh());
    version_1_stores_are_migrated(fresh());
    batches_are_atomic_and_scans_ordered(fresh());
    corrupt_values_are_refused(fresh());
}

fn schema_is_written_and_checked<R: Reopen>(mut place: R) {
    let store = NodeStore::open(place.open()).expect("open an empty store");
    let raw = store.kv().get(Cf::Meta, SCHEMA_KEY).unwrap();
    assert_eq!(
        raw,
        Some(SCHEMA_VERSION.to_le_bytes().to_vec()),
        "an empty store gets the schema version"
    );
    drop(store);
    let mut kv = place.open();
    let mut b = WriteBatch::default();
    b.put(Cf::Meta, SCHEMA_KEY.to_vec(), 99u32.to_le_bytes().to_vec());
    kv.write(b, true).unwrap();
    let err = NodeStore::open(kv).expect_err("a store of another schema must be refused");
    assert_eq!(err, StoreError::UnknownSchema { found: 99 });
    assert!(
        err.to_string().contains("99"),
        "the error names the version"
    );
}

fn guard_records_once_and_refuses_conflicts<R: Reopen>(mut place: R) {
    let k1 = GuardKey::Draw {
        key: IncidentKey {
            member: B256::repeat_byte(1),
            seq: 2,
        },
        attempt: 0,
    };
    let k2 = GuardKey::Leg {
        draw_hash: B256::repeat_byte(2),
        vault: vault(2),
    };
    let k3 = GuardKey::Action {
        vault: vault(3),
        id: B256::repeat_byte(3),
    };
    let (a, b) = (B256::repeat_byte(0xa), B256::repeat_byte(0xb));
    {
        let mut s = NodeStore::open(place.open()).unwrap();
        assert_eq!(s.guard(k1, a).unwrap(), GuardVerdict::Recorded);
        assert_eq!(s.guard(k1, a).unwrap(), GuardVerdict::AlreadyRecorded);
        assert_eq!(
            s.guard(k1, b).unwrap(),
            GuardVerdict::Conflict { recorded: a }
        );
        assert_eq!(s.guard(k2, b).unwrap(), GuardVerdict::Recorded);
        assert_eq!(s.guard(k3, a).unwrap(), GuardVerdict::Recorded);
    }
    let mut s = NodeStore::open(place.open()).unwrap();
    assert_eq!(
        s.guard(k1, b).unwrap(),
        GuardVerdict::Conflict { recorded: a },
        "the guard survives a reopen"
    );
    assert_eq!(s.guard(k2, b).unwrap(), GuardVerdict::AlreadyRecorded);
    let mut entries = s.guard_entries().unwrap();
    entries.sort();
    let mut want = vec![(k1, a), (k2, b), (k3, a)];
    want.sort();
    assert_eq!(
        entries, want,
        "guard entries list exactly what was recorded"
    );
}

fn records_survive_reopen<R: Reopen>(mut place: R) {
    let key = IncidentKey {
        member: B256::repeat_byte(1),
        seq: 4,
    };
    let incident = IncidentRecord {
        key,
        home: vault(1),
        opened_at: 10,
        attempt: 3,
        attempt_started: 20,
        registration: Some(Registration {
            draw_hash: B256::repeat_byte(7),
            draw: draw(),
            finalized: true,
            block: 1,
            rewound: false,
        }),
        legs_done: BTreeMap::from([(vault(2), 1)]),
        closed: None,
    };
    let proposal = DrawProposal {
        key,
        attempt: 3,
        proposer: 1,
        pinned: vec![PinnedBlock {
            chain_id: 1,
            number: 5,
            hash: B256::repeat_byte(5),
        }],
        draw: draw(),
    };
    let signer = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x11)).unwrap();
    let subject = Subject::Draw {
        key,
        attempt: 3,
        vault: vault(1),
        draw: draw(),
    };
    let digest = subject.digest();
    let sig = sign_digest(&signer, digest).unwrap();
    let cert = Certificate {
        subject,
        digest,
        signatures: vec![sig],
    };
    let sub = SubmissionRecord {
        last_at: 77,
        count: 2,
    };
    let action = ActionRecord {
        vault: vault(2),
        action: ThresholdAction::Pause(Pause {
            id: B256::repeat_byte(9),
            deadline: 99,
        }),
        first_seen: 5,
        approved: true,
        executed: false,
    };
    {
        let mut s = NodeStore::open(place.open()).unwrap();
        s.put_incident(&incident).unwrap();
        s.put_proposal(&proposal).unwrap();
        s.put_attestation(digest, &sig).unwrap();
        s.put_certificate(&cert).unwrap();
        s.put_submission(digest, &sub).unwrap();
        s.put_action(&action).unwrap();
    }
    let s = NodeStore::open(place.open()).unwrap();
    assert_eq!(s.open_incidents().unwrap(), vec![incident.clone()]);
    assert_eq!(s.proposals_of(&key).unwrap(), vec![proposal]);
    assert_eq!(s.attestations_of(&digest).unwrap(), vec![sig]);
    assert_eq!(s.get_certificate(&digest).unwrap(), Some(cert));
    assert_eq!(s.get_submission(&digest).unwrap(), Some(sub));
    assert_eq!(s.actions().unwrap(), vec![action]);
    // Replacing an incident keeps one record.
    drop(s);
    let mut s = NodeStore::open(place.open()).unwrap();
    let mut open = incident;
    open.registration.as_mut().unwrap().rewound = true;
    s.put_incident(&open).unwrap();
    assert_eq!(s.open_incidents().unwrap(), vec![open.clone()]);
    // Version-1 records (no blocks) still load, with block 0 where none was kept; those
    // of the first booking rule end with a flag it kept, which is ignored.
    let (k, _) = s.kv().scan(Cf::Incidents).unwrap().remove(0);
    let mut v = v1_record(&open);
    let mut old = open.clone();
    for b in old.legs_done.values_mut() {
        *b = 0;
    }
    if let Some(r) = old.registration.as_mut() {
        r.block = 0;
        r.rewound = false;
    }
    for flag in [false, true] {
        if flag {
            v.push(1);
        }
        drop(s);
        s = NodeStore::open(put_raw(&mut place, Cf::Incidents, k.clone(), v.clone())).unwrap();
        assert_eq!(
            s.open_incidents().unwrap(),
            vec![old.clone()],
            "old records still load"
        );
    }
    // Anything beyond that flag is corruption.
    drop(s);
    v.push(0);
    let s = NodeStore::open(put_raw(&mut place, Cf::Incidents, k, v)).unwrap();
    assert_incidents_corrupt(&s, "trailing bytes are refused");
}

/// `rec` as version 1 of the incident record wrote it (before blocks were kept).
fn v1_record(rec: &IncidentRecord) -> Vec<u8> {
    let mut w = crate::codec::Writer::new();
    w.u8(1)
        .key(&rec.key)
        .vault(&rec.home)
        .u64(rec.opened_at)
        .u32(rec.attempt)
        .u64(rec.attempt_started);
    match &rec.registration {
        None => w.u8(0),
        Some(r) => w.u8(1).b256(&r.draw_hash).draw(&r.draw).bool(r.finalized),
    };
    w.u32(rec.legs_done.len() as u32);
    for v in rec.legs_done.keys() {
        w.vault(v);
    }
    w.u8(match rec.closed {
        None => 0,
        Some(CloseReason::Covered) => 1,
        Some(CloseReason::Resolved) => 2,
    });
    w.into_bytes()
}

/// Writes `value` under `key` in `cf` directly, bypassing the store's encoding; returns the
/// backend for a [`NodeStore`] to open.
fn put_raw<R: Reopen>(place: &mut R, cf: Cf, key: Vec<u8>, value: Vec<u8>) -> R::Kv {
    let mut kv = place.open();
    let mut b = WriteBatch::default();
    b.put(cf, key, value);
    kv.write(b, true).unwrap();
    kv
}

/// Loading `s` fails on a corrupt incident record.
fn assert_incidents_corrupt<K: Kv>(s: &NodeStore<K>, why: &str) {
    assert!(
        matches!(
            s.open_incidents(),
            Err(StoreError::Corrupt {
                cf: "incidents",
                ..
            })
        ),
        "{why}"
    );
}

fn batches_are_atomic_and_scans_ordered<R: Reopen>(mut place: R) {
    let mut kv = place.open();
    let mut b = WriteBatch::default();
    b.put(Cf::Proposals, vec![3], vec![30])
        .put(Cf::Proposals, vec![1], vec![10])
        .put(Cf::Proposals, vec![2], vec![20])
        .delete(Cf::Proposals, vec![2]);
    kv.write(b, true).unwrap();
    drop(kv);
    let kv = place.open();
    assert_eq!(
        kv.scan(Cf::Proposals).unwrap(),
        vec![(vec![1], vec![10]), (vec![3], vec![30])],
        "one batch applied in order, scan ascending"
    );
    assert!(
        kv.scan(Cf::Certificates).unwrap().is_empty(),
        "families are separate"
    );
    assert_eq!(kv.get(Cf::Proposals, &[2]).unwrap(), None);
}

fn corrupt_values_are_refused<R: Reopen>(mut place: R) {
    {
        let _ = NodeStore::open(place.open()).unwrap();
    }
    let s = NodeStore::open(put_raw(&mut place, Cf::Incidents, vec![1], vec![1, 2, 3])).unwrap();
    assert_incidents_corrupt(&s, "a value that does not decode is an error");
    // Data without a schema version is refused too.
    drop(s);
    let mut kv = place.open();
    let mut b = WriteBatch::default();
    b.delete(Cf::Meta, SCHEMA_KEY.to_vec());
    kv.write(b, true).unwrap();
    assert_eq!(
        NodeStore::open(kv).err(),
        Some(StoreError::MissingSchema),
        "data without a version is refused"
    );
}

/// A covered incident of `member` with a remote leg on chain 2, opened at `opened_at`.
fn covered(member: u8, seq: u64, opened_at: u64, leg_deadline: u64) -> IncidentRecord {
    let mut d = draw();
    d.member = B256::repeat_byte(member);
    d.seq = seq;
    d.legDeadline = leg_deadline;
    d.legs.push(Leg {
        chainId: 2,
        vault: Address::with_last_byte(2),
        amount: U256::from(1),
    });
    IncidentRecord {
        key: IncidentKey {
            member: d.member,
            seq,
        },
        home: vault(1),
        opened_at,
        attempt: 0,
        attempt_started: opened_at,
        registration: Some(Registration {
            draw_hash: B256::with_last_byte(seq as u8),
            draw: d,
            finalized: true,
            block: 1,
            rewound: false,
        }),
        legs_done: BTreeMap::from([(vault(2), 1)]),
        closed: Some(CloseReason::Covered),
    }
}

/// Stores what a node keeps for `rec`: its proposal, this node's signature of the draw and
/// of the leg (sign-guard and attestation), the draw's certificate and submission.
fn keep_records<K: Kv>(s: &mut NodeStore<K>, rec: &IncidentRecord) -> Vec<B256> {
    let signer = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x11)).unwrap();
    let draw = rec.registration.as_ref().unwrap().draw.clone();
    s.put_proposal(&DrawProposal {
        key: rec.key,
        attempt: 0,
        proposer: 0,
        pinned: vec![],
        draw: draw.clone(),
    })
    .unwrap();
    let draw_digest = draw.digest(&rec.home);
    let (leg_vault, release) = rec.leg_releases().remove(0);
    let leg_digest = release.digest(&leg_vault);
    let guards = [
        GuardKey::Draw {
            key: rec.key,
            attempt: 0,
        },
        GuardKey::Leg {
            draw_hash: release.drawHash,
            vault: leg_vault,
        },
    ];
    for (guard, digest) in guards.into_iter().zip([draw_digest, leg_digest]) {
        assert_eq!(s.guard(guard, digest).unwrap(), GuardVerdict::Recorded);
        s.put_attestation(digest, &sign_digest(&signer, digest).unwrap())
            .unwrap();
    }
    let subject = Subject::Draw {
        key: rec.key,
        attempt: 0,
        vault: rec.home,
        draw,
    };
    s.put_certificate(&Certificate {
        subject,
        digest: draw_digest,
        signatures: vec![],
    })
    .unwrap();
    s.put_submission(
        draw_digest,
        &SubmissionRecord {
            last_at: 1,
            count: 1,
        },
    )
    .unwrap();
    vec![draw_digest, leg_digest]
}

fn closed_incidents_move_out_and_are_pruned<R: Reopen>(mut place: R) {
    use crate::state::MemberRecord;
    let mut s = NodeStore::open(place.open()).unwrap();
    let (old, newer) = (covered(1, 0, 100, 50), covered(1, 1, 200, 50));
    let mut digests = Vec::new();
    let mut member = MemberRecord::default();
    for rec in [&old, &newer] {
        let mut open = rec.clone();
        open.closed = None;
        s.put_incident(&open).unwrap();
        digests.push(keep_records(&mut s, rec));
        member.closed(rec);
        s.close_incident(rec, &member).unwrap();
    }
    assert_eq!(member.closed_through, Some(1));
    assert_eq!(member.last_covered.as_ref(), Some(&newer));
    drop(s);
    let mut s = NodeStore::open(place.open()).unwrap();
    assert!(
        s.open_incidents().unwrap().is_empty(),
        "closed ones moved out"
    );
    assert_eq!(s.newest_closed(1).unwrap(), vec![newer.clone()]);
    assert_eq!(
        s.newest_closed(5).unwrap(),
        vec![newer.clone(), old.clone()]
    );
    assert_eq!(s.members().unwrap(), vec![(old.key.member, member.clone())]);
    // Reopening moves it back, with the member's record, in one write.
    let mut reopened = newer.clone();
    reopened.closed = None;
    member.closed_through = Some(0);
    s.reopen_incident(&reopened, reopened.opened_at, &member)
        .unwrap();
    assert_eq!(s.open_incidents().unwrap(), vec![reopened.clone()]);
    assert_eq!(s.newest_closed(5).unwrap(), vec![old.clone()]);
    assert_eq!(s.members().unwrap()[0].1.closed_through, Some(0));
    // Pruning stops at the retention and at a leg deadline still ahead.
    assert_eq!(
        s.prune_closed(100, 60, 10).unwrap(),
        0,
        "opened at the bound"
    );
    assert_eq!(
        s.prune_closed(101, 50, 10).unwrap(),
        0,
        "legs still payable"
    );
    assert_eq!(s.prune_closed(101, 51, 10).unwrap(), 1);
    assert!(s.newest_closed(5).unwrap().is_empty());
    assert!(s.proposals_of(&old.key).unwrap().is_empty());
    for d in &digests[0] {
        assert!(
            s.attestations_of(d).unwrap().is_empty(),
            "attestations pruned"
        );
        assert_eq!(s.get_certificate(d).unwrap(), None);
        assert_eq!(s.get_submission(d).unwrap(), None);
    }
    let guards: Vec<B256> = s
        .guard_entries()
        .unwrap()
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    assert_eq!(
        guards.len(),
        2,
        "only the open incident's guard entries remain"
    );
    assert!(digests[1].iter().all(|d| guards.contains(d)));
    // The open incident's records are untouched.
    assert_eq!(s.proposals_of(&newer.key).unwrap().len(), 1);
    assert!(s.get_certificate(&digests[1][0]).unwrap().is_some());
    let leg = newer.leg_releases().remove(0);
    assert_eq!(leg.1.digest(&leg.0), digests[1][1]);
}

fn version_1_stores_are_migrated<R: Reopen>(mut place: R) {
    let mut kv = place.open();
    let open = {
        let mut r = covered(2, 3, 300, 50);
        r.closed = None;
        r
    };
    let mut resolved = covered(1, 2, 250, 50);
    resolved.registration = None;
    resolved.legs_done.clear();
    resolved.closed = Some(CloseReason::Resolved);
    resolved.attempt = 4;
    let records = [
        covered(1, 0, 100, 50),
        covered(1, 1, 200, 50),
        resolved,
        open.clone(),
    ];
    let mut b = WriteBatch::default();
    b.put(Cf::Meta, SCHEMA_KEY.to_vec(), 1u32.to_le_bytes().to_vec());
    for rec in &records {
        let mut k = crate::codec::Writer::new();
        k.key(&rec.key);
        b.put(Cf::Incidents, k.into_bytes(), v1_record(rec));
    }
    kv.write(b, true).unwrap();
    let s = NodeStore::open(kv).expect("a version-1 store is migrated");
    assert_eq!(
        s.kv().get(Cf::Meta, SCHEMA_KEY).unwrap(),
        Some(SCHEMA_VERSION.to_le_bytes().to_vec())
    );
    let v1 = |r: &IncidentRecord| {
        let mut r = r.clone();
        for b in r.legs_done.values_mut() {
            *b = 0;
        }
        if let Some(g) = r.registration.as_mut() {
            g.block = 0;
        }
        r
    };
    assert_eq!(s.open_incidents().unwrap(), vec![v1(&open)]);
    let closed: Vec<u64> = s
        .newest_closed(10)
        .unwrap()
        .iter()
        .map(|r| r.key.seq)
        .collect();
    assert_eq!(closed, vec![2, 1, 0], "closed ones moved, newest first");
    let members = s.members().unwrap();
    assert_eq!(members.len(), 1, "only members with closed incidents");
    let m = &members[0].1;
    assert_eq!(m.closed_through, Some(1));
    assert_eq!(m.last_covered.as_ref(), Some(&v1(&records[1])));
    let r = m.resolved.expect("the resolved seq is kept");
    assert_eq!((r.seq, r.next_attempt, r.opened_at), (2, 5, 250));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::MemoryKv;

    struct Mem(MemoryKv);
    impl Reopen for Mem {
        type Kv = MemoryKv;
        fn open(&mut self) -> MemoryKv {
            self.0.clone()
        }
    }

    #[test]
    fn memory_kv_keeps_the_store_contract() {
        check_store_contract(|| Mem(MemoryKv::new()));
    }

    #[test]
    fn guard_writes_are_synced() {
        let kv = MemoryKv::new();
        let mut s = NodeStore::open(kv.clone()).unwrap();
        let before = kv.synced_writes();
        s.guard(
            GuardKey::Action {
                vault: vault(1),
                id: B256::ZERO,
            },
            B256::ZERO,
        )
        .unwrap();
        assert_eq!(kv.synced_writes(), before + 1);
    }
}
