//! Focused behaviour of the state machine with a scripted view: proposal validation,
//! attestation filtering, certificates and the submitter schedule, legs after finality,
//! closing, threshold actions, restart from the store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::signers::local::PrivateKeySigner;
use backstop_agreement::kv::MemoryKv;
use backstop_agreement::machine::{StateView, ViewError};
use backstop_agreement::state::{GuardKey, GuardVerdict, NodeStore};
use backstop_agreement::{
    Config, Consortium, DrawAttestation, DrawProposal, Event, GapObservation, IncidentKey, Machine,
    Message, NodeIndex, NodeInfo, Output, PinnedBlock, Subject, ThresholdAction,
};
use backstop_contracts::eip712::{
    Draw, GuardianSignature, Leg, Pause, Signable, Unpause, VaultId, sign_digest,
};
use std::collections::BTreeSet;

const HOME: VaultId = VaultId {
    chain_id: 1,
    address: Address::repeat_byte(1),
};
const REMOTE: VaultId = VaultId {
    chain_id: 2,
    address: Address::repeat_byte(2),
};
const NOW: u64 = 1_700_000_000_000;

fn member() -> B256 {
    B256::repeat_byte(0x33)
}

fn key() -> IncidentKey {
    IncidentKey {
        member: member(),
        seq: 0,
    }
}

/// The draw for pinned block `b`: the amount depends on the block, so two blocks give two
/// different draws.
fn draw_at(b: u64) -> Draw {
    let amount = U256::from(1000 + b);
    Draw {
        member: member(),
        seq: 0,
        gap: U256::from(5000),
        amount,
        legs: vec![
            Leg {
                chainId: 1,
                vault: HOME.address,
                amount: U256::from(400),
            },
            Leg {
                chainId: 2,
                vault: REMOTE.address,
                amount: amount - U256::from(400),
            },
        ],
        deadline: NOW / 1000 + 600,
        legDeadline: NOW / 1000 + 1200,
    }
}

fn pinned(b: u64) -> Vec<PinnedBlock> {
    vec![PinnedBlock {
        chain_id: 1,
        number: b,
        hash: keccak256(b.to_le_bytes()),
    }]
}

#[derive(Clone)]
struct View {
    head: u64,
    approved: BTreeSet<B256>,
}

impl StateView for View {
    fn home_vault(&self, m: &B256) -> Option<VaultId> {
        (*m == member()).then_some(HOME)
    }
    fn propose(
        &mut self,
        key: &IncidentKey,
        _: u64,
    ) -> Result<(Vec<PinnedBlock>, Draw), ViewError> {
        if *key != self::key() {
            // Only seq 0 is scripted.
            return Err(backstop_agreement::Refusal::SeqMismatch {
                seq: key.seq,
                next_seq: 0,
            }
            .into());
        }
        Ok((pinned(self.head), draw_at(self.head)))
    }
    fn recompute(&mut self, _: &IncidentKey, p: &[PinnedBlock], _: u64) -> Result<Draw, ViewError> {
        match p {
            [b] if b.number <= self.head && b.hash == keccak256(b.number.to_le_bytes()) => {
                Ok(draw_at(b.number))
            }
            _ => Err(ViewError::UnknownBlock("not a confirmed block".into())),
        }
    }
    fn covered(&mut self, _rec: &backstop_agreement::state::IncidentRecord, _closed_ms: u64) {}

    fn approve_action(
        &mut self,
        _: &VaultId,
        a: &ThresholdAction,
        _: u64,
    ) -> Result<(), ViewError> {
        if self.approved.contains(&a.id()) {
            Ok(())
        } else {
            Err(backstop_agreement::Refusal::NotWanted.into())
        }
    }
}

type M = Machine<View, PrivateKeySigner, MemoryKv>;

struct Cluster {
    consortium: Consortium,
    keys: Vec<PrivateKeySigner>,
    kvs: Vec<MemoryKv>,
    nodes: Vec<M>,
    view: View,
}

impl Cluster {
    fn new(n: usize) -> Self {
        let keys: Vec<PrivateKeySigner> = (0..n)
            .map(|i| PrivateKeySigner::from_bytes(&keccak256([i as u8, 7])).unwrap())
            .collect();
        let consortium = Consortium::new(
            keys.iter()
                .map(|k| NodeInfo {
                    identity: ed25519_dalek::SigningKey::from_bytes(&keccak256(k.address()).0)
                        .verifying_key()
                        .to_bytes(),
                    guardian: k.address(),
                })
                .collect(),
        )
        .unwrap();
        // Order keys as the consortium does, so node i is index i.
        let mut keys = keys;
        keys.sort_by_key(|k| consortium.index_of_guardian(&k.address()).unwrap());
        let view = View {
            head: 10,
            approved: BTreeSet::new(),
        };
        let kvs: Vec<MemoryKv> = (0..n).map(|_| MemoryKv::new()).collect();
        let mut c = Self {
            consortium,
            keys,
            kvs,
            nodes: Vec::new(),
            view,
        };
        for i in 0..n {
            let m = c.start(i);
            c.nodes.push(m);
        }
        c
    }

    fn config(&self, i: usize) -> Config {
        Config::new(self.consortium.clone(), i as NodeIndex)
    }

    fn start(&self, i: usize) -> M {
        Machine::restore(
            self.config(i),
            self.view.clone(),
            self.keys[i].clone(),
            NodeStore::open(self.kvs[i].clone()).unwrap(),
            NOW,
        )
        .unwrap()
    }

    fn observation(&self) -> Event {
        Event::Observed(GapObservation {
            key: key(),
            home_chain_id: 1,
            block_number: self.view.head,
            block_hash: B256::ZERO,
            assets: U256::from(1),
            liabilities: U256::from(5001),
        })
    }

    fn proposer(&self, attempt: u32) -> usize {
        usize::from(self.consortium.proposer(&key(), attempt))
    }

    /// Delivers every broadcast to every other node until quiet; returns the submissions
    /// emitted by each node.
    fn flood(&mut self, now: u64, first: Vec<(usize, Output)>) -> Vec<(usize, Output)> {
        let mut queue = first;
        let mut submits = Vec::new();
        while let Some((from, out)) = queue.pop() {
            match out {
                Output::Broadcast(msg) => {
                    for to in 0..self.nodes.len() {
                        if to == from {
                            continue;
                        }
                        let outs = self.nodes[to]
                            .handle(
                                now,
                                Event::Received {
                                    from: from as NodeIndex,
                                    message: msg.clone(),
                                },
                            )
                            .unwrap();
                        queue.extend(outs.into_iter().map(|o| (to, o)));
                    }
                }
                Output::Submit(_) | Output::Rewound { .. } => submits.push((from, out)),
                Output::WakeAt(_) => {}
            }
        }
        submits
    }

    fn observe_all(&mut self, now: u64) -> Vec<(usize, Output)> {
        let mut first = Vec::new();
        for i in 0..self.nodes.len() {
            let ev = self.observation();
            let outs = self.nodes[i].handle(now, ev).unwrap();
            first.extend(outs.into_iter().map(|o| (i, o)));
        }
        self.flood(now, first)
    }

    fn tick_all(&mut self, now: u64) -> Vec<(usize, Output)> {
        let mut first = Vec::new();
        for i in 0..self.nodes.len() {
            let outs = self.nodes[i].handle(now, Event::Tick).unwrap();
            first.extend(outs.into_iter().map(|o| (i, o)));
        }
        self.flood(now, first)
    }
}

fn submitted(outs: &[(usize, Output)]) -> Vec<(usize, Subject)> {
    outs.iter()
        .filter_map(|(i, o)| match o {
            Output::Submit(c) => Some((*i, c.subject.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn happy_path_certifies_and_designated_submitter_submits_alone_first() {
    let mut c = Cluster::new(4);
    c.observe_all(NOW);
    for n in &c.nodes {
        assert_eq!(
            n.stats().certificates,
            1,
            "every node forms the certificate"
        );
        assert_eq!(n.stats().signed, 1);
    }
    let digest = draw_at(10).digest(&HOME);
    let designated = usize::from(c.consortium.designated_submitter(&digest));
    // At once: only the designated submitter.
    let subs = submitted(&c.tick_all(NOW));
    assert_eq!(subs.len(), 1, "{subs:?}");
    assert_eq!(subs[0].0, designated);
    match &subs[0].1 {
        Subject::Draw { draw, vault, .. } => {
            assert_eq!(*draw, draw_at(10));
            assert_eq!(*vault, HOME);
        }
        other => panic!("unexpected {other:?}"),
    }
    // Registration seen before the first fallback's delay: nobody else submits.
    for n in &mut c.nodes {
        n.handle(
            NOW + 1_000,
            Event::DrawRegistered {
                key: key(),
                draw_hash: digest,
                draw: draw_at(10),
                finalized: false,
                block: 20,
            },
        )
        .unwrap();
    }
    let later = submitted(&c.tick_all(NOW + 60_000));
    assert!(
        later
            .iter()
            .all(|(_, s)| !matches!(s, Subject::Draw { .. })),
        "no draw resubmitted once seen: {later:?}"
    );
}

#[test]
fn fallbacks_submit_after_growing_delays_when_registration_is_not_seen() {
    let mut c = Cluster::new(4);
    c.observe_all(NOW);
    let digest = draw_at(10).digest(&HOME);
    let designated = usize::from(c.consortium.designated_submitter(&digest));
    let delay = c.config(0).submit_delay_ms;
    let mut order = Vec::new();
    for step in 0..=8 {
        let now = NOW + step * delay;
        for (i, s) in submitted(&c.tick_all(now)) {
            if matches!(s, Subject::Draw { .. }) && !order.iter().any(|(j, _)| *j == i) {
                order.push((i, now - NOW));
            }
        }
    }
    let ranks: Vec<usize> = order
        .iter()
        .map(|(i, _)| {
            c.consortium
                .submitter_rank(designated as NodeIndex, *i as NodeIndex)
        })
        .collect();
    assert_eq!(
        ranks,
        vec![0, 1, 2, 3],
        "fallbacks in rotation order: {order:?}"
    );
    assert_eq!(order[0].1, 0);
    assert_eq!(order[1].1, delay);
    assert_eq!(order[2].1, 3 * delay);
    assert_eq!(order[3].1, 7 * delay);
}

#[test]
fn legs_are_signed_only_after_final_registration_and_incident_closes() {
    let mut c = Cluster::new(4);
    c.observe_all(NOW);
    let digest = draw_at(10).digest(&HOME);
    let reg = |finalized| Event::DrawRegistered {
        key: key(),
        draw_hash: digest,
        draw: draw_at(10),
        finalized,
        block: 20,
    };
    let mut first = Vec::new();
    for i in 0..4 {
        let outs = c.nodes[i].handle(NOW + 1000, reg(false)).unwrap();
        assert!(
            !outs
                .iter()
                .any(|o| matches!(o, Output::Broadcast(Message::LegAttestation(_)))),
            "no leg signed before finality"
        );
        first.extend(outs.into_iter().map(|o| (i, o)));
    }
    c.flood(NOW + 1000, first);
    let mut first = Vec::new();
    for i in 0..4 {
        let outs = c.nodes[i].handle(NOW + 3000, reg(true)).unwrap();
        assert!(
            outs.iter().any(|o| matches!(o, Output::Broadcast(Message::LegAttestation(a)) if a.vault == REMOTE && a.release.drawHash == digest)),
            "leg signed once final"
        );
        first.extend(outs.into_iter().map(|o| (i, o)));
    }
    c.flood(NOW + 3000, first);
    let subs = submitted(&c.tick_all(NOW + 3000));
    assert!(
        subs.iter()
            .any(|(_, s)| matches!(s, Subject::Leg { vault, .. } if *vault == REMOTE)),
        "leg certificate submitted: {subs:?}"
    );
    for n in &mut c.nodes {
        assert_eq!(n.open_incidents().len(), 1);
        n.handle(
            NOW + 4000,
            Event::LegExecuted {
                draw_hash: digest,
                vault: REMOTE,
                block: 30,
            },
        )
        .unwrap();
        assert!(
            n.open_incidents().is_empty(),
            "closed once every leg executed"
        );
        assert_eq!(n.closed_through(&member()), Some(0));
    }
}

#[test]
fn incident_closes_when_legs_pass_their_deadline() {
    let mut c = Cluster::new(4);
    c.observe_all(NOW);
    let digest = draw_at(10).digest(&HOME);
    let n = &mut c.nodes[0];
    n.handle(
        NOW,
        Event::DrawRegistered {
            key: key(),
            draw_hash: digest,
            draw: draw_at(10),
            finalized: true,
            block: 20,
        },
    )
    .unwrap();
    n.handle(NOW + 10_000, Event::Tick).unwrap();
    assert_eq!(n.open_incidents().len(), 1, "leg still releasable");
    let after = (draw_at(10).legDeadline + 1) * 1000;
    n.handle(after, Event::Tick).unwrap();
    assert!(
        n.open_incidents().is_empty(),
        "closed past the leg deadline"
    );
}

fn solvency(seq: u64, block: u64, assets: u64) -> Event {
    Event::Observed(GapObservation {
        key: IncidentKey {
            member: member(),
            seq,
        },
        home_chain_id: 1,
        block_number: block,
        block_hash: B256::ZERO,
        assets: U256::from(assets),
        liabilities: U256::from(5001),
    })
}

#[test]
fn an_incident_resolved_without_a_draw_reopens_when_its_gap_returns_or_its_draw_registers() {
    let mut c = Cluster::new(4);
    c.observe_all(NOW);
    for n in &mut c.nodes {
        n.handle(NOW + 500, solvency(0, 11, 5001)).unwrap();
        assert!(!n.is_open(&key()), "resolved once the gap is gone");
        assert_eq!(n.resolved_seq(&member()), Some(0));
        assert_eq!(n.closed_through(&member()), None, "seq 0 is unused");
    }

    // The gap comes back before any draw: the unused seq reopens.
    c.nodes[0].handle(NOW + 1000, solvency(0, 12, 1)).unwrap();
    assert!(c.nodes[0].is_open(&key()));
    assert_eq!(c.nodes[0].resolved_seq(&member()), None);

    // The draw certified before the gap resolved lands on chain: the home vault's word
    // wins, and a node that had resolved the incident signs its legs.
    let digest = draw_at(10).digest(&HOME);
    let outs = c.nodes[1]
        .handle(
            NOW + 1000,
            Event::DrawRegistered {
                key: key(),
                draw_hash: digest,
                draw: draw_at(10),
                finalized: true,
                block: 20,
            },
        )
        .unwrap();
    assert!(c.nodes[1].is_open(&key()));
    assert!(
        outs.iter().any(|o| matches!(o, Output::Broadcast(Message::LegAttestation(a)) if a.release.drawHash == digest)),
        "legs of the registered draw are signed: {outs:?}"
    );

    // A restart keeps the seq reopenable.
    let mut n2 = c.start(2);
    assert_eq!(n2.resolved_seq(&member()), Some(0));
    n2.handle(NOW + 2000, solvency(0, 13, 1)).unwrap();
    assert!(n2.is_open(&key()));
}

#[test]
fn a_view_behind_its_peers_does_not_resolve_an_incident_it_learnt_of_from_a_proposal() {
    let mut c = Cluster::new(4);
    // Only the proposer of attempt 0 has seen the gap (at block 10); the others open the
    // incident on its proposal, which their views validate at block 10.
    let p = c.proposer(0);
    let ev = c.observation();
    let outs = c.nodes[p].handle(NOW, ev).unwrap();
    c.flood(NOW, outs.into_iter().map(|o| (p, o)).collect());
    let other = (p + 1) % 4;
    assert!(c.nodes[other].is_open(&key()));

    // Its own reads are still at block 9, from before the gap: older news, not a recovery.
    c.nodes[other]
        .handle(NOW + 100, solvency(0, 9, 5001))
        .unwrap();
    assert!(c.nodes[other].is_open(&key()), "block 9 resolves nothing");
    assert_eq!(c.nodes[other].incident(&key()).map(|r| r.attempt), Some(0));

    // A block past the one the proposal pinned, without the gap: resolved.
    c.nodes[other]
        .handle(NOW + 200, solvency(0, 11, 5001))
        .unwrap();
    assert!(!c.nodes[other].is_open(&key()));
    assert_eq!(c.nodes[other].resolved_seq(&member()), Some(0));
}

#[test]
fn a_reopened_incident_starts_past_its_attempts_so_honest_nodes_sign_again() {
    let mut c = Cluster::new(4);
    c.observe_all(NOW);
    assert!(
        c.nodes.iter().all(|n| n.stats().signed >= 1),
        "attempt 0 signed"
    );
    for n in &mut c.nodes {
        n.handle(NOW + 500, solvency(0, 11, 5001)).unwrap();
    }
    // Restarted (the attempt must survive it) with a newer head: the reopened incident's
    // draw differs from the one every node signed for attempt 0.
    c.view.head = 11;
    for i in 0..c.nodes.len() {
        c.nodes[i] = c.start(i);
    }
    c.observe_all(NOW + 1000);
    for (i, n) in c.nodes.iter().enumerate() {
        assert_eq!(n.incident(&key()).map(|r| r.attempt), Some(1), "node {i}");
        assert_eq!(n.stats().guard_conflicts, 0, "node {i} refused to sign");
        assert_eq!(n.stats().equivocations, 0, "node {i} saw equivocation");
        assert_eq!(n.stats().certificates, 1, "node {i}: attempt 1 certified");
    }
}

#[test]
fn a_proposal_is_recorded_before_it_leaves_so_a_restart_does_not_propose_again() {
    let mut c = Cluster::new(4);
    let p = c.proposer(0);
    let seen = c.observation();
    let sent: Vec<_> = c.nodes[p]
        .handle(NOW, seen)
        .unwrap()
        .into_iter()
        .filter_map(|o| match o {
            Output::Broadcast(Message::DrawProposal(d)) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(sent.len(), 1);
    // Killed once the proposal left; restarted with a newer head, at which a new proposal
    // would pin another block. The attempt has not timed out: nothing new is proposed, and
    // the proposal it sent is known (a copy coming back is a duplicate).
    c.view.head = 11;
    c.nodes[p] = c.start(p);
    let seen = c.observation();
    let outs = c.nodes[p].handle(NOW + 100, seen).unwrap();
    assert!(
        !outs
            .iter()
            .any(|o| matches!(o, Output::Broadcast(Message::DrawProposal(_)))),
        "a second proposal for attempt 0: {outs:?}"
    );
    c.nodes[p]
        .handle(
            NOW + 200,
            Event::Received {
                from: p as NodeIndex,
                message: Message::DrawProposal(sent[0].clone()),
            },
        )
        .unwrap();
    assert_eq!(c.nodes[p].stats().dropped_duplicate, 1);
}

#[test]
fn a_gap_left_after_a_covered_incident_opens_the_next_seq_only_once_the_member_settled() {
    let mut c = Cluster::new(4);
    c.observe_all(NOW);
    let digest = draw_at(10).digest(&HOME);
    let settle = c.config(0).settle_ms;
    let n = &mut c.nodes[0];
    n.handle(
        NOW,
        Event::DrawRegistered {
            key: key(),
            draw_hash: digest,
            draw: draw_at(10),
            finalized: true,
            block: 20,
        },
    )
    .unwrap();
    n.handle(
        NOW + 1000,
        Event::LegExecuted {
            draw_hash: digest,
            vault: REMOTE,
            block: 30,
        },
    )
    .unwrap();
    assert_eq!(n.closed_through(&member()), Some(0));

    // The member's solvency still shows the loss it was just paid for.
    let next = IncidentKey {
        member: member(),
        seq: 1,
    };
    n.handle(NOW + 1000 + settle - 1, solvency(1, 11, 1))
        .unwrap();
    assert!(
        !n.is_open(&next),
        "no new incident while the member settles"
    );
    n.handle(NOW + 1000 + settle, solvency(1, 12, 1)).unwrap();
    assert!(
        n.is_open(&next),
        "a gap still standing after it opens seq 1"
    );
}

#[test]
fn equivocation_is_not_signed_twice_and_wrong_proposer_is_ignored() {
    let mut c = Cluster::new(4);
    let proposer = c.proposer(0);
    let other = (proposer + 1) % 4;
    let target = (proposer + 2) % 4;
    c.view.head = 10;
    let mk = |b: u64, from: usize| DrawProposal {
        key: key(),
        attempt: 0,
        proposer: from as NodeIndex,
        pinned: pinned(b),
        draw: draw_at(b),
    };
    let n = &mut c.nodes[target];
    // Not the proposer of attempt 0.
    let outs = n
        .handle(
            NOW,
            Event::Received {
                from: other as NodeIndex,
                message: Message::DrawProposal(mk(10, other)),
            },
        )
        .unwrap();
    assert!(outs.iter().all(|o| matches!(o, Output::WakeAt(_))));
    assert_eq!(n.stats().dropped_not_authorized, 1);
    // The proposer, twice with two valid but different draws.
    let a = n
        .handle(
            NOW,
            Event::Received {
                from: proposer as NodeIndex,
                message: Message::DrawProposal(mk(10, proposer)),
            },
        )
        .unwrap();
    assert!(
        a.iter()
            .any(|o| matches!(o, Output::Broadcast(Message::DrawAttestation(_))))
    );
    let b = n
        .handle(
            NOW,
            Event::Received {
                from: proposer as NodeIndex,
                message: Message::DrawProposal(mk(9, proposer)),
            },
        )
        .unwrap();
    assert!(
        !b.iter()
            .any(|o| matches!(o, Output::Broadcast(Message::DrawAttestation(_))))
    );
    assert_eq!(n.stats().equivocations, 1);
    assert_eq!(n.stats().signed, 1);
    // A proposal pinned at a block the node does not have is refused.
    let mut bad = mk(10, proposer);
    bad.pinned[0].hash = B256::repeat_byte(0xff);
    let mut c2 = Cluster::new(4);
    let outs = c2.nodes[target]
        .handle(
            NOW,
            Event::Received {
                from: proposer as NodeIndex,
                message: Message::DrawProposal(bad),
            },
        )
        .unwrap();
    assert!(outs.iter().all(|o| matches!(o, Output::WakeAt(_))));
    assert_eq!(c2.nodes[target].stats().rejected_by_view, 1);
    // A proposal whose draw differs from the view's is refused.
    let mut inflated = mk(10, proposer);
    inflated.draw.amount += U256::from(1);
    let outs = c2.nodes[target]
        .handle(
            NOW,
            Event::Received {
                from: proposer as NodeIndex,
                message: Message::DrawProposal(inflated),
            },
        )
        .unwrap();
    assert!(outs.iter().all(|o| matches!(o, Output::WakeAt(_))));
    assert_eq!(c2.nodes[target].stats().rejected_by_view, 2);
}

#[test]
fn attestations_from_outsiders_forged_duplicate_or_unknown_are_dropped() {
    let mut c = Cluster::new(4);
    let proposer = c.proposer(0);
    let target = (proposer + 1) % 4;
    let p = DrawProposal {
        key: key(),
        attempt: 0,
        proposer: proposer as NodeIndex,
        pinned: pinned(10),
        draw: draw_at(10),
    };
    c.nodes[target]
        .handle(
            NOW,
            Event::Received {
                from: proposer as NodeIndex,
                message: Message::DrawProposal(p),
            },
        )
        .unwrap();
    let digest = draw_at(10).digest(&HOME);
    let att = |sig: GuardianSignature, digest: B256, attempt: u32| Event::Received {
        from: proposer as NodeIndex,
        message: Message::DrawAttestation(DrawAttestation {
            key: key(),
            attempt,
            digest,
            signature: sig,
        }),
    };
    let outsider = PrivateKeySigner::random();
    let n = &mut c.nodes[target];
    n.handle(NOW, att(sign_digest(&outsider, digest).unwrap(), digest, 0))
        .unwrap();
    assert_eq!(n.stats().dropped_not_authorized, 1);
    // Claimed by a guardian, signed by someone else.
    let forged = GuardianSignature {
        signer: c.keys[proposer].address(),
        signature: sign_digest(&outsider, digest).unwrap().signature,
    };
    n.handle(NOW, att(forged, digest, 0)).unwrap();
    assert_eq!(n.stats().dropped_bad_signature, 1);
    let good = sign_digest(&c.keys[proposer], digest).unwrap();
    n.handle(NOW, att(good, digest, 0)).unwrap();
    n.handle(NOW, att(good, digest, 0)).unwrap();
    assert_eq!(n.stats().dropped_duplicate, 1);
    // A garbage digest for the attempt whose proposal the node holds.
    let garbage = B256::repeat_byte(0x99);
    n.handle(
        NOW,
        att(sign_digest(&c.keys[proposer], garbage).unwrap(), garbage, 0),
    )
    .unwrap();
    assert_eq!(n.stats().dropped_unknown_digest, 1);
    assert_eq!(
        n.stats().certificates,
        0,
        "2 of 3 signatures: no certificate"
    );
}

#[test]
fn attestations_ahead_of_their_proposal_are_buffered_then_counted() {
    let mut c = Cluster::new(4);
    let proposer = c.proposer(0);
    let target = (proposer + 1) % 4;
    let others: Vec<usize> = (0..4).filter(|i| *i != target && *i != proposer).collect();
    let digest = draw_at(10).digest(&HOME);
    for &o in &others {
        let sig = sign_digest(&c.keys[o], digest).unwrap();
        c.nodes[target]
            .handle(
                NOW,
                Event::Received {
                    from: o as NodeIndex,
                    message: Message::DrawAttestation(DrawAttestation {
                        key: key(),
                        attempt: 0,
                        digest,
                        signature: sig,
                    }),
                },
            )
            .unwrap();
    }
    assert_eq!(c.nodes[target].stats().certificates, 0);
    let p = DrawProposal {
        key: key(),
        attempt: 0,
        proposer: proposer as NodeIndex,
        pinned: pinned(10),
        draw: draw_at(10),
    };
    c.nodes[target]
        .handle(
            NOW,
            Event::Received {
                from: proposer as NodeIndex,
                message: Message::DrawProposal(p),
            },
        )
        .unwrap();
    // Own signature + the two buffered ones = t = 3.
    assert_eq!(c.nodes[target].stats().certificates, 1);
}

#[test]
fn attempt_timeout_moves_to_the_next_proposer_and_wake_at_says_when() {
    let mut c = Cluster::new(4);
    let p0 = c.proposer(0);
    // Attempt 0's proposer is silent: every node opens by observation; drop p0's output.
    let mut wake = None;
    for i in 0..4 {
        let ev = c.observation();
        let outs = c.nodes[i].handle(NOW, ev).unwrap();
        if i != p0 {
            wake = outs.iter().find_map(|o| match o {
                Output::WakeAt(t) => Some(*t),
                _ => None,
            });
        }
    }
    let timeout = c.config(0).attempt_timeout(0);
    assert_eq!(wake, Some(NOW + timeout), "woken at the attempt's deadline");
    // Before the timeout nothing happens; after it, attempt 1's proposer proposes.
    let quiet = c.tick_all(NOW + timeout - 1);
    assert!(quiet.is_empty());
    let mut first = Vec::new();
    for i in 0..4 {
        let outs = c.nodes[i].handle(NOW + timeout, Event::Tick).unwrap();
        if outs
            .iter()
            .any(|o| matches!(o, Output::Broadcast(Message::DrawProposal(p)) if p.attempt == 1))
        {
            assert_eq!(i, c.proposer(1));
        }
        first.extend(outs.into_iter().map(|o| (i, o)));
    }
    c.flood(NOW + timeout, first);
    for n in &c.nodes {
        assert_eq!(n.open_incidents(), vec![(key(), 1)]);
        assert!(n.stats().certificates >= 1);
    }
    assert!(c.config(0).attempt_timeout(1) > timeout, "timeouts grow");
}

#[test]
fn a_certified_attempt_is_timed_out_only_a_whole_timeout_after_its_first_fallback_submitter() {
    let mut c = Cluster::new(4);
    let p0 = c.proposer(0);
    let timeout = c.config(0).attempt_timeout(0);
    // Every node opens at NOW; attempt 0's proposal reaches the others late.
    let mut late = Vec::new();
    for i in 0..4 {
        let ev = c.observation();
        let outs = c.nodes[i].handle(NOW, ev).unwrap();
        if i == p0 {
            late.extend(outs.into_iter().map(|o| (i, o)));
        }
    }
    let certified_at = NOW + timeout / 2;
    c.flood(certified_at, late);
    for n in &c.nodes {
        assert_eq!(n.stats().certificates, 1);
    }
    // The timer restarts at the first fallback submitter's turn.
    let restarted_at = certified_at + c.config(0).submit_delay(1);
    // The registration is still unseen when attempt 0's own timeout passes, and a whole
    // timeout after the certificate: no new attempt.
    c.tick_all(NOW + timeout);
    c.tick_all(certified_at + timeout);
    for n in &c.nodes {
        assert_eq!(n.open_incidents(), vec![(key(), 0)]);
        assert_eq!(n.incident(&key()).unwrap().attempt_started, restarted_at);
    }
    // The restarted timer is recorded: a node restarted now keeps it.
    let restarted = c.start(p0);
    assert_eq!(
        restarted.incident(&key()).unwrap().attempt_started,
        restarted_at
    );
    // A whole timeout after the first fallback's turn, the next proposer takes over.
    c.tick_all(restarted_at + timeout - 1);
    for n in &c.nodes {
        assert_eq!(n.open_incidents(), vec![(key(), 0)]);
    }
    c.tick_all(restarted_at + timeout);
    for n in &c.nodes {
        assert_eq!(n.open_incidents(), vec![(key(), 1)]);
    }
}

#[test]
fn restart_rebuilds_from_the_store_and_never_signs_a_second_digest() {
    let mut c = Cluster::new(4);
    c.observe_all(NOW);
    let target = (c.proposer(0) + 1) % 4;
    let digest = draw_at(10).digest(&HOME);
    // Crash and restart: the certificate and submission schedule come back.
    let restored = c.start(target);
    c.nodes[target] = restored;
    assert_eq!(c.nodes[target].open_incidents(), vec![(key(), 0)]);
    let mut store = NodeStore::open(c.kvs[target].clone()).unwrap();
    assert_eq!(
        store
            .guard(
                GuardKey::Draw {
                    key: key(),
                    attempt: 0
                },
                B256::repeat_byte(1)
            )
            .unwrap(),
        GuardVerdict::Conflict { recorded: digest }
    );
    // An equivocating second proposal for attempt 0 after restart is not signed.
    let proposer = c.proposer(0);
    let p = DrawProposal {
        key: key(),
        attempt: 0,
        proposer: proposer as NodeIndex,
        pinned: pinned(9),
        draw: draw_at(9),
    };
    let outs = c.nodes[target]
        .handle(
            NOW + 10,
            Event::Received {
                from: proposer as NodeIndex,
                message: Message::DrawProposal(p),
            },
        )
        .unwrap();
    assert!(
        !outs
            .iter()
            .any(|o| matches!(o, Output::Broadcast(Message::DrawAttestation(_))))
    );
    // The restored certificate is submitted on schedule.
    let designated = c.consortium.designated_submitter(&digest);
    let rank = c.consortium.submitter_rank(designated, target as NodeIndex);
    let due = NOW + c.config(target).submit_delay(rank);
    let outs = c.nodes[target].handle(due, Event::Tick).unwrap();
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::Submit(cert) if cert.digest == digest))
    );
}

#[test]
fn threshold_actions_need_approval_and_their_own_quorum() {
    let mut c = Cluster::new(4); // p = 2, t = 3
    let pause = ThresholdAction::Pause(Pause {
        id: B256::repeat_byte(1),
        deadline: NOW / 1000 + 100,
    });
    let unpause = ThresholdAction::Unpause(Unpause {
        id: B256::repeat_byte(2),
        deadline: NOW / 1000 + 100,
    });
    // Only nodes 0 and 1 approve the pause; nobody approves the unpause but node 0.
    for i in 0..4 {
        let mut v = c.view.clone();
        if i < 2 {
            v.approved.insert(pause.id());
        }
        if i == 0 {
            v.approved.insert(unpause.id());
        }
        c.nodes[i] = Machine::restore(
            c.config(i),
            v,
            c.keys[i].clone(),
            NodeStore::open(MemoryKv::new()).unwrap(),
            NOW,
        )
        .unwrap();
    }
    let outs = c.nodes[0]
        .handle(
            NOW,
            Event::RequestAction {
                vault: HOME,
                action: pause.clone(),
            },
        )
        .unwrap();
    let first = outs.into_iter().map(|o| (0, o)).collect();
    c.flood(NOW, first);
    let outs = c.nodes[0]
        .handle(
            NOW,
            Event::RequestAction {
                vault: HOME,
                action: unpause.clone(),
            },
        )
        .unwrap();
    let first = outs.into_iter().map(|o| (0, o)).collect();
    c.flood(NOW, first);
    assert_eq!(
        c.nodes[0].stats().certificates,
        1,
        "pause certified with p = 2; unpause not with 1 < t"
    );
    assert_eq!(
        c.nodes[2].stats().signed,
        0,
        "nodes that do not approve do not sign"
    );
    // And they count why, by rule, each time a message asks: node 2 refused the pause
    // (its proposal, the attestations of nodes 0 and 1) and the unpause (its proposal and
    // node 0's attestation), node 1 only the unpause.
    let refused = |i: usize| c.nodes[i].stats().refusals.get("not_wanted").copied();
    assert_eq!(
        (refused(2), refused(1), refused(0)),
        (Some(5), Some(2), None)
    );
    let subs: Vec<_> = submitted(&c.tick_all(NOW + 100_000))
        .into_iter()
        .filter(|(_, s)| matches!(s, Subject::Action { action, .. } if *action == pause))
        .collect();
    assert!(!subs.is_empty());
}

// ------------------------------------------------------------------ deep reorgs

/// Every node sees `event` at `now`; what they broadcast is delivered until quiet.
fn all_see(c: &mut Cluster, now: u64, event: Event) -> Vec<(usize, Output)> {
    let mut first = Vec::new();
    for i in 0..c.nodes.len() {
        let outs = c.nodes[i].handle(now, event.clone()).unwrap();
        first.extend(outs.into_iter().map(|o| (i, o)));
    }
    c.flood(now, first)
}

fn registered(block: u64) -> Event {
    Event::DrawRegistered {
        key: key(),
        draw_hash: draw_at(10).digest(&HOME),
        draw: draw_at(10),
        finalized: true,
        block,
    }
}

fn leg_paid(block: u64) -> Event {
    Event::LegExecuted {
        draw_hash: draw_at(10).digest(&HOME),
        vault: REMOTE,
        block,
    }
}

/// The reports of a deep reorg among `outs`: (node, registration taken, legs, reopened).
fn rewinds(outs: &[(usize, Output)]) -> Vec<(usize, bool, Vec<VaultId>, bool)> {
    outs.iter()
        .filter_map(|(i, o)| match o {
            Output::Rewound {
                key: k,
                registration,
                legs,
                reopened,
                ..
            } if *k == key() => Some((*i, *registration, legs.clone(), *reopened)),
            _ => None,
        })
        .collect()
}

/// Certified, registered at block 20 on the home chain, the remote leg certified and paid
/// at block 30 on chain 2: closed covered on every node.
fn covered_cluster() -> Cluster {
    let mut c = Cluster::new(4);
    c.observe_all(NOW);
    all_see(&mut c, NOW + 1000, registered(20));
    let subs = submitted(&c.tick_all(NOW + 1000));
    assert!(
        subs.iter().any(|(_, s)| matches!(s, Subject::Leg { .. })),
        "{subs:?}"
    );
    all_see(&mut c, NOW + 2000, leg_paid(30));
    for n in &c.nodes {
        assert!(!n.is_open(&key()) && n.closed_through(&member()) == Some(0));
    }
    c
}

#[test]
fn a_deep_reorg_of_the_registration_after_the_legs_were_paid_registers_the_same_draw_again() {
    let mut c = covered_cluster();
    let digest = draw_at(10).digest(&HOME);
    // Blocks above 19 of the home chain are replaced: the registration (and the home leg
    // it paid) are gone. A reorg that keeps block 20 takes nothing back.
    assert!(
        rewinds(&all_see(
            &mut c,
            NOW + 3000,
            Event::Rewound {
                chain_id: 1,
                after: 20
            }
        ))
        .is_empty()
    );
    let outs = all_see(
        &mut c,
        NOW + 3000,
        Event::Rewound {
            chain_id: 1,
            after: 19,
        },
    );
    let r = rewinds(&outs);
    assert_eq!(r.len(), 4, "every node reports it: {r:?}");
    assert!(
        r.iter()
            .all(|(_, reg, legs, reopened)| *reg && legs.is_empty() && *reopened)
    );
    for n in &c.nodes {
        assert!(
            n.is_open(&key()),
            "never covered while the chain does not show it"
        );
        let rec = n.incident(&key()).unwrap();
        let reg = rec.registration.as_ref().unwrap();
        assert!(reg.rewound && !reg.finalized && reg.draw_hash == digest);
        assert!(
            rec.legs_done.contains_key(&REMOTE),
            "the remote leg stays paid"
        );
    }
    // The same certificate goes to the home vault again; no new attempt, no new draw, no
    // leg signed again.
    let outs = c.tick_all(NOW + 4000);
    let subs = submitted(&outs);
    assert!(!subs.is_empty());
    assert!(
        subs.iter()
            .all(|(_, s)| matches!(s, Subject::Draw { draw, .. } if *draw == draw_at(10))),
        "{subs:?}"
    );
    assert!(
        outs.iter()
            .all(|(_, o)| !matches!(o, Output::Broadcast(Message::DrawProposal(_))))
    );
    // Registered again (a replacement block): closed covered again, nothing else to pay.
    let outs = all_see(&mut c, NOW + 5000, registered(21));
    assert!(submitted(&outs).is_empty());
    for n in &mut c.nodes {
        assert!(
            !n.is_open(&key()),
            "covered again once the chain shows it again"
        );
        assert_eq!(n.closed_through(&member()), Some(0));
        let later = n.handle(NOW + 60_000, Event::Tick).unwrap();
        assert!(
            !later.iter().any(|o| matches!(o, Output::Submit(_))),
            "{later:?}"
        );
    }
}

#[test]
fn a_deep_reorg_of_a_paid_leg_releases_the_same_leg_again() {
    let mut c = covered_cluster();
    let outs = all_see(
        &mut c,
        NOW + 3000,
        Event::Rewound {
            chain_id: 2,
            after: 29,
        },
    );
    let r = rewinds(&outs);
    assert_eq!(r.len(), 4, "{r:?}");
    assert!(
        r.iter()
            .all(|(_, reg, legs, reopened)| !*reg && *legs == vec![REMOTE] && *reopened)
    );
    let subs = submitted(&c.tick_all(NOW + 4000));
    let releases: Vec<_> = subs
        .iter()
        .filter_map(|(_, s)| match s {
            Subject::Leg { vault, release } => Some((*vault, release.clone())),
            _ => None,
        })
        .collect();
    assert!(!releases.is_empty(), "{subs:?}");
    assert!(releases.iter().all(|(v, rel)| *v == REMOTE
        && rel.drawHash == draw_at(10).digest(&HOME)
        && rel.amount == draw_at(10).legs[1].amount));
    all_see(&mut c, NOW + 5000, leg_paid(31));
    assert!(c.nodes.iter().all(|n| !n.is_open(&key())));
}

#[test]
fn a_deep_reorg_before_the_legs_are_paid_or_before_anything_registered() {
    // Nothing registered yet: nothing to take back.
    let mut c = Cluster::new(4);
    c.observe_all(NOW);
    assert!(
        rewinds(&all_see(
            &mut c,
            NOW + 500,
            Event::Rewound {
                chain_id: 1,
                after: 0
            }
        ))
        .is_empty()
    );
    // Registered, legs not paid: the registration is taken back from the open incident and
    // its certificate submitted again; a restart in between keeps that.
    all_see(&mut c, NOW + 1000, registered(20));
    let r = rewinds(&all_see(
        &mut c,
        NOW + 2000,
        Event::Rewound {
            chain_id: 1,
            after: 10,
        },
    ));
    assert!(
        r.len() == 4 && r.iter().all(|(_, reg, _, reopened)| *reg && *reopened),
        "{r:?}"
    );
    for i in 0..4 {
        c.nodes[i] = c.start(i);
    }
    let subs = submitted(&c.tick_all(NOW + 3000));
    assert!(
        subs.iter()
            .any(|(_, s)| matches!(s, Subject::Draw { draw, .. } if *draw == draw_at(10))),
        "{subs:?}"
    );
    all_see(&mut c, NOW + 4000, registered(22));
    all_see(&mut c, NOW + 5000, leg_paid(30));
    assert!(c.nodes.iter().all(|n| !n.is_open(&key())));
}

#[test]
fn a_deep_reorg_past_the_draw_deadline_is_reported_and_not_reopened() {
    let mut c = covered_cluster();
    let late = (draw_at(10).deadline + 1) * 1000;
    let r = rewinds(&all_see(
        &mut c,
        late,
        Event::Rewound {
            chain_id: 1,
            after: 19,
        },
    ));
    assert_eq!(r.len(), 4, "{r:?}");
    assert!(r.iter().all(|(_, reg, _, reopened)| *reg && !*reopened));
    assert!(c.nodes.iter().all(|n| !n.is_open(&key())));
}

/// Leg certificates submitted in `outs`, with their signers.
fn leg_certificates(outs: &[(usize, Output)]) -> Vec<Vec<Address>> {
    outs.iter()
        .filter_map(|(_, o)| match o {
            Output::Submit(cert) if matches!(cert.subject, Subject::Leg { .. }) => {
                Some(cert.signatures.iter().map(|s| s.signer).collect())
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_guardian_rotation_between_a_leg_certificate_and_its_payment_signs_the_leg_again() {
    let mut c = Cluster::new(4);
    c.observe_all(NOW);
    let digest = draw_at(10).digest(&HOME);
    let registered = Event::DrawRegistered {
        key: key(),
        draw_hash: digest,
        draw: draw_at(10),
        finalized: true,
        block: 20,
    };
    // Node 3 signs the leg first, so every leg certificate carries its (old) key.
    for i in [3, 0, 1, 2] {
        let outs = c.nodes[i].handle(NOW + 1000, registered.clone()).unwrap();
        let first = outs.into_iter().map(|o| (i, o)).collect();
        c.flood(NOW + 1000, first);
    }
    let old = c.keys[3].address();
    let before = leg_certificates(&c.tick_all(NOW + 1000));
    assert!(
        !before.is_empty() && before.iter().all(|s| s.contains(&old)),
        "the leg certificate carries node 3's old key: {before:?}"
    );

    // The vaults rotate node 3's key; every node follows.
    let new_key = PrivateKeySigner::from_bytes(&keccak256([9u8, 9])).unwrap();
    let mut set = c.consortium.guardians();
    set[3] = new_key.address();
    let rotated = c.consortium.rebind(&set).unwrap();
    for n in &mut c.nodes {
        n.follow_guardians(rotated.clone()).unwrap();
    }
    assert!(c.nodes[0].signing() && !c.nodes[3].signing());
    let signed = c.nodes[3].stats().signed;

    // Rebroadcasts re-form the certificate from the set's other guardians; nothing old
    // goes to the vault again.
    let mut after = Vec::new();
    for dt in [6_000, 12_000, 20_000, 40_000] {
        after.extend(leg_certificates(&c.tick_all(NOW + 1000 + dt)));
    }
    assert!(!after.is_empty(), "the leg is submitted again");
    for signers in &after {
        assert_eq!(signers.len(), 3);
        assert!(
            signers
                .iter()
                .all(|s| rotated.index_of_guardian(s).is_some()),
            "only guardians of the new set: {signers:?}"
        );
    }
    assert_eq!(
        c.nodes[3].stats().signed,
        signed,
        "a rotated-out node signs nothing"
    );

    // Node 3 loads its new key: it signs again what it had signed, with that key.
    let wrong = PrivateKeySigner::from_bytes(&keccak256([8u8, 8])).unwrap();
    assert!(c.nodes[3].replace_signer(wrong).is_err());
    c.nodes[3].replace_signer(new_key.clone()).unwrap();
    assert!(c.nodes[3].signing());
    assert!(
        c.nodes[3].stats().signed > signed,
        "re-signed with the new key"
    );

    // A restart with the new set: the old key is refused, the new one restores.
    let cfg = Config::new(rotated.clone(), 3);
    let store = || NodeStore::open(c.kvs[3].clone()).unwrap();
    let refused = Machine::restore(cfg.clone(), c.view.clone(), c.keys[3].clone(), store(), NOW);
    assert!(refused.is_err(), "the rotated-out key does not start");
    let restored: M =
        Machine::restore(cfg, c.view.clone(), new_key, store(), NOW + 50_000).unwrap();
    assert!(restored.signing());
    assert_eq!(
        restored.open_incidents().len(),
        1,
        "the incident is still open"
    );
}

#[test]
fn a_node_rotated_out_before_a_proposal_signs_it_once_it_holds_its_new_key() {
    let mut c = Cluster::new(4);
    let victim = (c.proposer(0) + 1) % 4;
    let new_key = PrivateKeySigner::from_bytes(&keccak256([7u8, 7])).unwrap();
    let mut set = c.consortium.guardians();
    set[victim] = new_key.address();
    let rotated = c.consortium.rebind(&set).unwrap();
    for n in &mut c.nodes {
        n.follow_guardians(rotated.clone()).unwrap();
    }
    c.observe_all(NOW);
    assert_eq!(
        c.nodes[victim].stats().signed,
        0,
        "rotated out: signs nothing"
    );

    let outs = c.nodes[victim].replace_signer(new_key.clone()).unwrap();
    let digest = draw_at(10).digest(&HOME);
    assert!(
        outs.iter().any(|o| matches!(
            o,
            Output::Broadcast(Message::DrawAttestation(a))
                if a.digest == digest && a.signature.signer == new_key.address()
        )),
        "the held proposal is signed with the new key: {outs:?}"
    );
    // Signed once: a second reload signs nothing more.
    let again = c.nodes[victim].replace_signer(new_key).unwrap();
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn closed_incidents_are_pruned_after_their_retention_and_stay_closed_across_a_restart() {
    const DAY: u64 = 86_400_000;
    let mut c = covered_cluster();
    let store = |c: &Cluster| NodeStore::open(c.kvs[0].clone()).unwrap();
    assert_eq!(store(&c).newest_closed(10).unwrap().len(), 1);
    assert!(store(&c).open_incidents().unwrap().is_empty());
    assert!(!store(&c).guard_entries().unwrap().is_empty());
    // Within the retention (30 days by default) nothing is pruned.
    c.nodes[0].handle(NOW + 29 * DAY, Event::Tick).unwrap();
    assert_eq!(store(&c).newest_closed(10).unwrap().len(), 1);
    c.nodes[0].handle(NOW + 31 * DAY, Event::Tick).unwrap();
    let s = store(&c);
    assert!(s.newest_closed(10).unwrap().is_empty(), "pruned");
    assert!(s.proposals_of(&key()).unwrap().is_empty());
    assert!(
        s.guard_entries().unwrap().is_empty(),
        "its sign-guard entries went with it: the member record refuses its seq"
    );
    // The member's record survives the pruning and the restart: seq 0 stays covered, and a
    // proposal for it is not signed.
    let mut restored = c.start(0);
    assert_eq!(restored.closed_through(&member()), Some(0));
    assert!(restored.open_incidents().is_empty());
    let proposer = c.proposer(0);
    let outs = restored
        .handle(
            NOW + 10,
            Event::Received {
                from: proposer as NodeIndex,
                message: Message::DrawProposal(DrawProposal {
                    key: key(),
                    attempt: 0,
                    proposer: proposer as NodeIndex,
                    pinned: pinned(9),
                    draw: draw_at(9),
                }),
            },
        )
        .unwrap();
    assert!(
        !outs
            .iter()
            .any(|o| matches!(o, Output::Broadcast(Message::DrawAttestation(_)))),
        "{outs:?}"
    );
}
