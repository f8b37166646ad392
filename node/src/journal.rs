//! The node's account of each incident for operators: phase, draw, legs, attestations,
//! transaction hashes and a timeline, built from what the core saw and did.
//!
//! It is an observer, never an input of decisions. Invariants: bounded (at most
//! [`MAX_CLOSED`] closed incidents, the first closed evicted first: the store and the chains keep
//! them, and memory stays flat however many incidents a node sees; at most
//! [`MAX_INCIDENTS`] incidents in all; at most [`MAX_TIMELINE`] entries,
//! [`MAX_ATTESTATIONS`] attestations and [`MAX_PROPOSALS`] remembered proposals per
//! incident); phases only move forward; the pinned blocks shown for a registered draw are
//! those of a proposal of exactly that draw, or none.

use std::collections::BTreeMap;
use std::sync::Arc;

use alloy::primitives::{Address, B256, U256};
use backstop_agreement::IncidentKey;
use backstop_agreement::state::IncidentRecord;
use backstop_contracts::eip712::{Draw, VaultId};
use backstop_types::{IncidentPhase, PinnedBlock};

/// Most incidents kept, open ones included (a node has at most one open per member).
pub const MAX_INCIDENTS: usize = 4096;
/// Most closed incidents kept, the last closed: what operators look back on without
/// reading the store.
pub const MAX_CLOSED: usize = 256;
/// Most timeline entries per incident.
pub const MAX_TIMELINE: usize = 256;
/// Most attestations remembered per incident.
pub const MAX_ATTESTATIONS: usize = 1024;
/// Most distinct proposed draws remembered per incident (with their pinned blocks).
pub const MAX_PROPOSALS: usize = 16;

/// Which stored incidents the journal shows after a restart, oldest first: every open one
/// and the newest [`MAX_CLOSED`] closed ones, [`MAX_INCIDENTS`] in all (a store may hold
/// far more).
pub fn to_restore(mut stored: Vec<IncidentRecord>) -> Vec<IncidentRecord> {
    stored.sort_by_key(|r| (r.closed.is_some(), std::cmp::Reverse(r.opened_at)));
    let open = stored.partition_point(|r| r.closed.is_none());
    stored.truncate(MAX_INCIDENTS.min(open + MAX_CLOSED));
    stored.sort_by_key(|r| r.opened_at);
    stored
}

/// One leg of the registered draw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegEntry {
    /// Paying vault.
    pub vault: VaultId,
    /// Amount.
    pub amount: U256,
    /// Paid.
    pub paid: bool,
    /// The paying transaction.
    pub tx_hash: Option<B256>,
    /// Its block.
    pub block: Option<u64>,
}

/// Where the draw was registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegistrationEntry {
    /// The member's home vault.
    pub vault: VaultId,
    /// The registering transaction.
    pub tx_hash: B256,
    /// Its block.
    pub block: u64,
}

/// One timeline entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Wall-clock time (ms since the epoch).
    pub at_ms: u64,
    /// Block, where one applies.
    pub block: Option<u64>,
    /// What happened.
    pub what: String,
}

/// One incident as operators see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncidentEntry {
    /// Key.
    pub key: IncidentKey,
    /// Phase.
    pub phase: IncidentPhase,
    /// Latest attempt seen.
    pub attempt: u32,
    /// Gap at the latest observation.
    pub gap: U256,
    /// Home-chain block of the latest observation.
    pub gap_block: Option<u64>,
    /// Blocks the draw shown was computed at (empty when its proposal was not seen here).
    pub pinned: Vec<PinnedBlock>,
    /// Proposed draws with their pinned blocks, oldest first (at most [`MAX_PROPOSALS`]).
    proposals: Vec<(Draw, Vec<PinnedBlock>)>,
    /// The registration, once seen.
    pub registration: Option<RegistrationEntry>,
    /// The draw (registered, or the latest proposed).
    pub draw: Option<Draw>,
    /// The member's deductible (read with the gap; it bears it itself).
    pub deductible: U256,
    /// The registered draw's hash.
    pub draw_hash: Option<B256>,
    /// Legs of the registered draw.
    pub legs: Vec<LegEntry>,
    /// Attestations seen: (signer, digest).
    pub attestations: Vec<(Address, B256)>,
    /// Transactions (registration, releases) seen.
    pub transactions: Vec<B256>,
    /// Timeline.
    pub timeline: Vec<Entry>,
    /// Opened (ms).
    pub opened_ms: u64,
    /// Proposed (ms), first time.
    pub proposed_ms: Option<u64>,
    /// Closed (ms).
    pub closed_ms: Option<u64>,
}

impl IncidentEntry {
    fn new(key: IncidentKey, now: u64) -> Self {
        Self {
            key,
            phase: IncidentPhase::Open,
            attempt: 0,
            gap: U256::ZERO,
            gap_block: None,
            pinned: Vec::new(),
            proposals: Vec::new(),
            registration: None,
            draw: None,
            deductible: U256::ZERO,
            draw_hash: None,
            legs: Vec::new(),
            attestations: Vec::new(),
            transactions: Vec::new(),
            timeline: Vec::new(),
            opened_ms: now,
            proposed_ms: None,
            closed_ms: None,
        }
    }

    /// Adds a timeline entry in time order (an observation may be journaled after what it
    /// caused).
    fn log(&mut self, at_ms: u64, block: Option<u64>, what: String) {
        if self.timeline.len() < MAX_TIMELINE {
            let at = self.timeline.partition_point(|e| e.at_ms <= at_ms);
            self.timeline.insert(at, Entry { at_ms, block, what });
        }
    }

    fn advance(&mut self, phase: IncidentPhase) -> bool {
        if phase > self.phase {
            self.phase = phase;
            true
        } else {
            false
        }
    }

    /// What the draw leaves to nobody (socialized loss): the gap beyond the deductible the
    /// member bears and the amount drawn.
    pub fn uncovered(&self) -> U256 {
        self.draw.as_ref().map_or(U256::ZERO, |d| {
            d.gap
                .saturating_sub(self.deductible)
                .saturating_sub(d.amount)
        })
    }

    /// The id operators use: `0x<member>:<seq>`.
    pub fn id(&self) -> String {
        format!("{}:{}", self.key.member, self.key.seq)
    }
}

/// The pinned blocks of the remembered proposal of exactly `draw`; none if it is not known.
fn pinned_of(proposals: &[(Draw, Vec<PinnedBlock>)], draw: &Draw) -> Vec<PinnedBlock> {
    proposals
        .iter()
        .find(|(d, _)| d == draw)
        .map(|(_, p)| p.clone())
        .unwrap_or_default()
}

/// A phase change, reported to observers (API event stream, metrics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Incident.
    pub key: IncidentKey,
    /// New phase.
    pub phase: IncidentPhase,
    /// Human-readable line.
    pub text: String,
}

/// All incidents. Entries are shared (`Arc`) with the snapshots the core publishes every
/// few hundred milliseconds, so a snapshot copies pointers, not incidents; an entry is
/// copied only when it changes while a snapshot still holds it (`Arc::make_mut`).
#[derive(Debug, Default)]
pub struct Journal {
    incidents: BTreeMap<IncidentKey, Arc<IncidentEntry>>,
    by_draw: BTreeMap<B256, IncidentKey>,
}

impl Journal {
    /// The incidents, by key.
    pub fn incidents(&self) -> impl Iterator<Item = &IncidentEntry> {
        self.incidents.values().map(|e| &**e)
    }

    /// The incidents, by key, as shared entries (for snapshots).
    pub fn shared(&self) -> impl Iterator<Item = &Arc<IncidentEntry>> {
        self.incidents.values()
    }

    /// One incident.
    pub fn get(&self, key: &IncidentKey) -> Option<&IncidentEntry> {
        self.incidents.get(key).map(|e| &**e)
    }

    /// One incident, to change (copied first if a snapshot still shares it).
    fn get_mut(&mut self, key: &IncidentKey) -> Option<&mut IncidentEntry> {
        self.incidents.get_mut(key).map(Arc::make_mut)
    }

    /// The closed incident closed first (then opened first).
    fn oldest_closed(&self) -> Option<IncidentKey> {
        self.incidents
            .iter()
            .filter(|(_, e)| e.phase == IncidentPhase::Closed)
            .min_by_key(|(_, e)| (e.closed_ms, e.opened_ms))
            .map(|(k, _)| *k)
    }

    fn evict(&mut self, key: &IncidentKey) {
        if let Some(e) = self.incidents.remove(key)
            && let Some(h) = e.draw_hash
        {
            self.by_draw.remove(&h);
        }
    }

    /// Evicts the oldest closed incidents beyond [`MAX_CLOSED`].
    fn bound_closed(&mut self) {
        let closed = self
            .incidents
            .values()
            .filter(|e| e.phase == IncidentPhase::Closed)
            .count();
        for _ in MAX_CLOSED..closed {
            if let Some(k) = self.oldest_closed() {
                self.evict(&k);
            }
        }
    }

    fn entry(&mut self, key: IncidentKey, now: u64) -> &mut IncidentEntry {
        if !self.incidents.contains_key(&key) && self.incidents.len() >= MAX_INCIDENTS {
            let oldest = self.oldest_closed();
            if let Some(k) = oldest.or_else(|| self.incidents.keys().next().copied()) {
                self.evict(&k);
            }
        }
        Arc::make_mut(
            self.incidents
                .entry(key)
                .or_insert_with(|| Arc::new(IncidentEntry::new(key, now))),
        )
    }

    /// A gap observed at `block` (only acted on when the core has the incident open).
    pub fn observed(
        &mut self,
        key: IncidentKey,
        gap: U256,
        deductible: U256,
        block: u64,
        now: u64,
    ) -> Option<Change> {
        let e = self.entry(key, now);
        // The first observation of the gap (a proposal may have created the entry first).
        let fresh = e.gap.is_zero();
        e.gap = gap;
        e.gap_block = Some(block);
        e.deductible = deductible;
        if fresh {
            e.log(now, Some(block), format!("gap of {gap} seen"));
            return Some(Change {
                key,
                phase: IncidentPhase::Open,
                text: format!("incident {} opened: gap {gap} at block {block}", e.id()),
            });
        }
        None
    }

    /// A draw proposed (by anyone) for `attempt`, computed at `pinned`.
    pub fn proposed(
        &mut self,
        key: IncidentKey,
        attempt: u32,
        draw: &Draw,
        pinned: &[PinnedBlock],
        proposer: u16,
        now: u64,
    ) -> Option<Change> {
        let e = self.entry(key, now);
        e.attempt = e.attempt.max(attempt);
        if !e.proposals.iter().any(|(d, _)| d == draw) {
            if e.proposals.len() >= MAX_PROPOSALS {
                e.proposals.remove(0);
            }
            e.proposals.push((draw.clone(), pinned.to_vec()));
        }
        if e.phase < IncidentPhase::Registered {
            e.draw = Some(draw.clone());
            e.pinned = pinned.to_vec();
        }
        e.log(
            now,
            None,
            format!(
                "attempt {attempt}: node {proposer} proposed {} over {} legs, pinned {}",
                draw.amount,
                draw.legs.len(),
                pinned
                    .iter()
                    .map(|p| format!("{}#{}", p.chain_id, p.number))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        );
        e.proposed_ms.get_or_insert(now);
        e.advance(IncidentPhase::Proposed).then(|| Change {
            key,
            phase: IncidentPhase::Proposed,
            text: format!("incident {}: draw of {} proposed", e.id(), draw.amount),
        })
    }

    /// An attestation seen for the incident.
    pub fn attested(&mut self, key: IncidentKey, signer: Address, digest: B256, now: u64) {
        let e = self.entry(key, now);
        if e.attestations.len() < MAX_ATTESTATIONS && !e.attestations.contains(&(signer, digest)) {
            e.attestations.push((signer, digest));
        }
    }

    /// A certificate over the incident's draw formed here.
    pub fn certified(&mut self, key: IncidentKey, digest: B256, now: u64) -> Option<Change> {
        let e = self.entry(key, now);
        e.log(now, None, format!("certificate over {digest}"));
        e.advance(IncidentPhase::Certified).then(|| Change {
            key,
            phase: IncidentPhase::Certified,
            text: format!("incident {}: certified", e.id()),
        })
    }

    /// The home vault registered `draw`.
    #[allow(clippy::too_many_arguments)]
    pub fn registered(
        &mut self,
        key: IncidentKey,
        draw_hash: B256,
        draw: &Draw,
        home: VaultId,
        tx_hash: B256,
        block: u64,
        now: u64,
    ) -> Option<Change> {
        self.by_draw.insert(draw_hash, key);
        let e = self.entry(key, now);
        let registration = RegistrationEntry {
            vault: home,
            tx_hash,
            block,
        };
        if e.draw_hash == Some(draw_hash) {
            // The same draw again (registered anew after a deep reorg): where it is now.
            e.registration = Some(registration);
            return None;
        }
        e.draw_hash = Some(draw_hash);
        e.draw = Some(draw.clone());
        e.pinned = pinned_of(&e.proposals, draw);
        e.registration = Some(registration);
        e.legs = draw
            .legs
            .iter()
            .map(|l| LegEntry {
                vault: VaultId {
                    chain_id: l.chainId,
                    address: l.vault,
                },
                amount: l.amount,
                paid: l.chainId == home.chain_id,
                tx_hash: (l.chainId == home.chain_id).then_some(tx_hash),
                block: (l.chainId == home.chain_id).then_some(block),
            })
            .collect();
        if !e.transactions.contains(&tx_hash) {
            e.transactions.push(tx_hash);
        }
        e.log(
            now,
            Some(block),
            format!(
                "registered on chain {} in {tx_hash} (draw {draw_hash})",
                home.chain_id
            ),
        );
        let remote = e.legs.iter().any(|l| !l.paid);
        e.advance(IncidentPhase::Registered);
        if remote {
            e.advance(IncidentPhase::Releasing);
        }
        Some(Change {
            key,
            phase: e.phase,
            text: format!("incident {}: draw of {} registered", e.id(), draw.amount),
        })
    }

    /// A leg paid.
    pub fn leg_paid(
        &mut self,
        draw_hash: B256,
        vault: VaultId,
        tx_hash: B256,
        block: u64,
        now: u64,
    ) -> Option<Change> {
        let key = *self.by_draw.get(&draw_hash)?;
        let e = self.get_mut(&key)?;
        let leg = e.legs.iter_mut().find(|l| l.vault == vault)?;
        if leg.paid && leg.tx_hash == Some(tx_hash) {
            return None;
        }
        leg.paid = true;
        leg.tx_hash = Some(tx_hash);
        leg.block = Some(block);
        let amount = leg.amount;
        if !e.transactions.contains(&tx_hash) {
            e.transactions.push(tx_hash);
        }
        e.log(
            now,
            Some(block),
            format!(
                "leg of {amount} paid on chain {} in {tx_hash}",
                vault.chain_id
            ),
        );
        Some(Change {
            key,
            phase: e.phase,
            text: format!("incident {}: leg on chain {} paid", e.id(), vault.chain_id),
        })
    }

    /// This node sent the registration of the incident's certified draw.
    pub fn registration_sent(&mut self, key: IncidentKey, chain_id: u64, now: u64) {
        if let Some(e) = self.get_mut(&key) {
            e.log(now, None, format!("registration sent to chain {chain_id}"));
        }
    }

    /// The core closed the incident.
    pub fn closed(&mut self, key: IncidentKey, reason: &str, now: u64) -> Option<Change> {
        let e = self.get_mut(&key)?;
        if !e.advance(IncidentPhase::Closed) {
            return None;
        }
        e.closed_ms = Some(now);
        e.log(now, None, format!("closed: {reason}"));
        let text = format!("incident {} closed: {reason}", e.id());
        self.bound_closed();
        Some(Change {
            key,
            phase: IncidentPhase::Closed,
            text,
        })
    }

    /// An incident as this node's store kept it across a restart (the timeline before the
    /// restart is not kept; the record says where the incident stands).
    pub fn restored(&mut self, rec: &IncidentRecord, now: u64) {
        let e = self.entry(rec.key, rec.opened_at);
        e.attempt = rec.attempt;
        if let Some(r) = &rec.registration {
            e.draw = Some(r.draw.clone());
            e.draw_hash = Some(r.draw_hash);
            e.legs = r
                .draw
                .legs
                .iter()
                .map(|l| {
                    let vault = VaultId {
                        chain_id: l.chainId,
                        address: l.vault,
                    };
                    LegEntry {
                        vault,
                        amount: l.amount,
                        paid: vault == rec.home || rec.legs_done.contains_key(&vault),
                        tx_hash: None,
                        block: None,
                    }
                })
                .collect();
            self.by_draw.insert(r.draw_hash, rec.key);
        }
        let e = self.get_mut(&rec.key);
        let Some(e) = e else { return };
        let phase = match (&rec.closed, &rec.registration) {
            (Some(_), _) => IncidentPhase::Closed,
            (None, Some(_)) if e.legs.iter().any(|l| !l.paid) => IncidentPhase::Releasing,
            (None, Some(_)) => IncidentPhase::Registered,
            (None, None) => IncidentPhase::Open,
        };
        e.advance(phase);
        if phase == IncidentPhase::Closed {
            e.closed_ms = Some(now);
        }
        e.log(
            now,
            None,
            format!("restored from the store ({})", phase.name()),
        );
    }

    /// The core reopened an incident that had resolved without a draw: a fresh entry.
    pub fn reopened(&mut self, key: IncidentKey, now: u64) -> Option<Change> {
        let old = self.incidents.get(&key)?;
        if old.phase != IncidentPhase::Closed || old.draw_hash.is_some() {
            return None;
        }
        let e = IncidentEntry::new(key, now);
        let text = format!("incident {} reopened: its gap is back", e.id());
        let e = Arc::make_mut(
            self.incidents
                .entry(key)
                .insert_entry(Arc::new(e))
                .into_mut(),
        );
        e.log(now, None, "reopened: the gap is back".into());
        Some(Change {
            key,
            phase: IncidentPhase::Open,
            text,
        })
    }

    /// A deep reorg on `chain_id` took back the registration (`registration`) and the
    /// remote `legs` the journal showed: they show unpaid again and the phase moves back
    /// (the one way it does) to where the chain now stands, unless the incident could not
    /// be reopened (then it stays as it was, with the loss in its timeline).
    pub fn rewound(
        &mut self,
        key: IncidentKey,
        chain_id: u64,
        registration: bool,
        legs: &[VaultId],
        reopened: bool,
        now: u64,
    ) -> Option<Change> {
        let e = self.get_mut(&key)?;
        let what = match (registration, legs.len()) {
            (true, _) => "the registration".to_string(),
            (false, n) => format!("{n} paid leg(s)"),
        };
        let mut line = format!("a deep reorg on chain {chain_id} took back {what}");
        if reopened {
            for leg in &mut e.legs {
                if legs.contains(&leg.vault) || (registration && leg.vault.chain_id == chain_id) {
                    leg.paid = false;
                    leg.tx_hash = None;
                    leg.block = None;
                }
            }
            e.phase = if registration {
                IncidentPhase::Certified
            } else {
                IncidentPhase::Releasing
            };
            e.closed_ms = None;
            line.push_str("; reopened to put it back");
        } else {
            line.push_str("; it could not be reopened: operators must act");
        }
        e.log(now, None, line.clone());
        Some(Change {
            key,
            phase: e.phase,
            text: format!("incident {}: {line}", e.id()),
        })
    }

    /// Counts by phase.
    pub fn by_phase(&self) -> BTreeMap<IncidentPhase, usize> {
        let mut m = BTreeMap::new();
        for e in self.incidents.values() {
            *m.entry(e.phase).or_default() += 1;
        }
        m
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use backstop_contracts::eip712::Leg;

    #[test]
    fn phases_move_forward_and_legs_are_tracked() {
        let mut j = Journal::default();
        let key = IncidentKey {
            member: B256::repeat_byte(1),
            seq: 0,
        };
        let home = VaultId {
            chain_id: 1,
            address: Address::with_last_byte(1),
        };
        let remote = VaultId {
            chain_id: 2,
            address: Address::with_last_byte(2),
        };
        let draw = Draw {
            member: key.member,
            seq: 0,
            gap: U256::from(100),
            amount: U256::from(90),
            legs: vec![
                Leg {
                    chainId: 1,
                    vault: home.address,
                    amount: U256::from(40),
                },
                Leg {
                    chainId: 2,
                    vault: remote.address,
                    amount: U256::from(50),
                },
            ],
            deadline: 1,
            legDeadline: 2,
        };
        let pinned = [PinnedBlock {
            chain_id: 1,
            number: 4,
            hash: B256::repeat_byte(4),
        }];
        assert!(j.observed(key, U256::from(100), U256::ZERO, 5, 1).is_some());
        assert!(j.observed(key, U256::from(100), U256::ZERO, 6, 2).is_none());
        assert_eq!(
            j.proposed(key, 0, &draw, &pinned, 2, 3).unwrap().phase,
            IncidentPhase::Proposed
        );
        // A later attempt proposes another draw; the first one is registered.
        let mut other = draw.clone();
        other.deadline = 9;
        assert!(j.proposed(key, 1, &other, &[], 1, 3).is_none());
        assert!(j.get(&key).unwrap().pinned.is_empty());
        let h = B256::repeat_byte(9);
        let c = j
            .registered(key, h, &draw, home, B256::repeat_byte(7), 8, 4)
            .unwrap();
        assert_eq!(c.phase, IncidentPhase::Releasing);
        let e = j.get(&key).unwrap();
        assert_eq!(
            e.pinned, pinned,
            "the pinned blocks of the registered draw's proposal"
        );
        assert_eq!(e.gap_block, Some(6));
        assert_eq!(
            e.registration.map(|r| (r.tx_hash, r.block)),
            Some((B256::repeat_byte(7), 8))
        );
        assert_eq!(
            e.legs[0].block,
            Some(8),
            "the home leg is paid at registration"
        );
        // A late proposal does not move the phase back.
        assert!(j.proposed(key, 1, &draw, &[], 3, 5).is_none());
        assert_eq!(j.get(&key).unwrap().phase, IncidentPhase::Releasing);
        assert!(j.leg_paid(h, remote, B256::repeat_byte(8), 9, 6).is_some());
        assert!(j.leg_paid(h, remote, B256::repeat_byte(8), 9, 6).is_none());
        assert_eq!(
            j.closed(key, "covered", 7).unwrap().phase,
            IncidentPhase::Closed
        );
        let e = j.get(&key).unwrap();
        assert!(e.legs.iter().all(|l| l.paid));
        assert_eq!(e.legs[1].block, Some(9));
        assert_eq!(e.transactions.len(), 2);
        assert_eq!(e.uncovered(), U256::from(10));
        assert_eq!(j.by_phase()[&IncidentPhase::Closed], 1);

        // After a restart: what the store kept, in the phase it says.
        let mut rec = IncidentRecord {
            key,
            home,
            opened_at: 1,
            attempt: 2,
            attempt_started: 1,
            registration: Some(backstop_agreement::state::Registration {
                draw_hash: h,
                draw: draw.clone(),
                finalized: true,
                block: 1,
                rewound: false,
            }),
            legs_done: BTreeMap::new(),
            closed: None,
        };
        let mut j = Journal::default();
        j.restored(&rec, 10);
        let e = j.get(&key).unwrap();
        assert_eq!(e.phase, IncidentPhase::Releasing);
        assert_eq!(e.legs.iter().filter(|l| l.paid).count(), 1, "the home leg");
        rec.key.seq = 1;
        rec.legs_done = BTreeMap::from([(remote, 1)]);
        rec.closed = Some(backstop_agreement::state::CloseReason::Covered);
        j.restored(&rec, 11);
        let e = j.get(&rec.key).unwrap();
        assert_eq!(e.phase, IncidentPhase::Closed);
        assert!(e.legs.iter().all(|l| l.paid));
    }

    #[test]
    fn a_restart_shows_every_open_incident_and_the_newest_closed_ones() {
        let rec = |seq: u64, opened_at: u64, closed: bool| IncidentRecord {
            key: IncidentKey {
                member: B256::repeat_byte(1),
                seq,
            },
            home: VaultId {
                chain_id: 1,
                address: Address::with_last_byte(1),
            },
            opened_at,
            attempt: 0,
            attempt_started: opened_at,
            registration: None,
            legs_done: BTreeMap::new(),
            closed: closed.then_some(backstop_agreement::state::CloseReason::Resolved),
        };
        let mut stored: Vec<IncidentRecord> = (0..MAX_INCIDENTS as u64 + 10)
            .map(|i| rec(i, 100 + i, true))
            .collect();
        stored.push(rec(u64::MAX, 1, false));
        let kept = to_restore(stored);
        assert_eq!(kept.len(), 1 + MAX_CLOSED);
        assert!(
            kept.iter().any(|r| r.closed.is_none()),
            "the open one, however old"
        );
        assert!(kept.windows(2).all(|w| w[0].opened_at <= w[1].opened_at));
        let newest_closed = 100 + MAX_INCIDENTS as u64 + 10 - MAX_CLOSED as u64;
        assert!(
            kept.iter()
                .all(|r| r.closed.is_none() || r.opened_at >= newest_closed)
        );
    }

    /// A node that sees incident after incident holds the same memory: every open incident,
    /// and only the last [`MAX_CLOSED`] closed ones with their draw hashes.
    #[test]
    fn closed_incidents_are_bounded_and_open_ones_kept() {
        let mut j = Journal::default();
        let key = |member: u8, seq: u64| IncidentKey {
            member: B256::repeat_byte(member),
            seq,
        };
        let home = VaultId {
            chain_id: 1,
            address: Address::with_last_byte(1),
        };
        let draw = |seq: u64| Draw {
            member: B256::repeat_byte(1),
            seq,
            gap: U256::from(10),
            amount: U256::from(10),
            legs: vec![Leg {
                chainId: 1,
                vault: home.address,
                amount: U256::from(10),
            }],
            deadline: 1,
            legDeadline: 2,
        };
        // One incident stays open from the start; 3 × MAX_CLOSED others open and close.
        let long = key(2, 0);
        assert!(j.observed(long, U256::from(5), U256::ZERO, 1, 0).is_some());
        let total = 3 * MAX_CLOSED as u64;
        for seq in 0..total {
            let (k, now) = (key(1, seq), 10 + seq);
            j.observed(k, U256::from(10), U256::ZERO, now, now);
            let hash = B256::from(U256::from(seq + 1));
            j.registered(k, hash, &draw(seq), home, hash, now, now);
            assert!(j.closed(k, "covered", now).is_some());
        }
        assert_eq!(j.by_phase()[&IncidentPhase::Closed], MAX_CLOSED);
        assert_eq!(j.by_draw.len(), MAX_CLOSED, "draw hashes go with them");
        assert!(j.get(&long).is_some(), "the open incident, however old");
        assert!(j.get(&key(1, total - 1)).is_some(), "the last closed");
        assert!(j.get(&key(1, total - MAX_CLOSED as u64 - 1)).is_none());
        // An old incident that closes late is kept: it is among the last closed.
        assert!(j.closed(long, "resolved", 10 + total).is_some());
        assert!(j.get(&long).is_some());
        assert_eq!(j.by_phase()[&IncidentPhase::Closed], MAX_CLOSED);
    }
}
