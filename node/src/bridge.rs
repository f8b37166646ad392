//! The bridge between the running node and its operator surfaces: it turns the core's
//! [`Snapshot`]s and [`Notice`]s into the API model (signals and breakers included), the
//! event stream and the Prometheus metrics, and operator requests from the API into core
//! commands.
//!
//! Invariants: it only reads the node's state and forwards operator requests; nothing it
//! computes feeds a decision (signals and breakers live in the core's policy).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, B256, U256};
use backstop_api::model::{
    self as m, ApiState, BreakerEffectView, BreakerView, ChainView, ClockView, EventKind,
    IncidentPhase, IncidentView, LegStatus, LegView, MemberView, NodeEvent, PeerView, SignalView,
    VaultView,
};
use backstop_api::model::{ProposalChainStatus, ProposalChainView, ProposalStatus, ProposalView};
use backstop_api::{
    AdminCommand, AdminError, AdminRequest, GovernanceChange as ApiChange, Metrics,
};
use backstop_contracts::eip712::{RotateGuardians, SetLimits, SetMember};
use backstop_types::ThresholdAction;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, warn};

use crate::core::{AdminCommand as CoreCommand, AdminError as CoreAdminError, Notice};
use crate::governance::{self, GovernanceChange, Status};
use crate::journal::IncidentEntry;
use crate::policy::{Breaker, EffectStatus};
use crate::runtime::{Observers, Params};
use backstop_types::{Effect, IncidentKey};

/// How often the model and metrics are refreshed.
const REFRESH: Duration = Duration::from_millis(250);

/// Static facts about the node the bridge shows.
#[derive(Clone, Debug)]
pub struct Facts {
    /// Consortium nodes in the consortium's order: (name, peer id, first configured
    /// address).
    pub peers: Vec<(String, libp2p::PeerId, String)>,
    /// Chain names by id.
    pub chain_names: BTreeMap<u64, String>,
    /// Members: id → (name, home chain).
    pub members: BTreeMap<B256, (String, u64)>,
    /// Members' `solvency()` contracts on their home chains.
    pub solvency_contracts: BTreeMap<B256, Address>,
    /// Assertions count for this long (ms).
    pub signal_window_ms: u64,
}

impl Facts {
    /// From the node's parameters.
    pub fn of(params: &Params) -> Self {
        // In the consortium's order (by public key), which gossip indices follow.
        let mut nodes: Vec<_> = params.peers.iter().collect();
        nodes.sort_by_key(|n| n.public_key);
        Self {
            peers: nodes
                .into_iter()
                .filter_map(|n| {
                    let id = backstop_p2p::network::peer_id_of(&n.public_key).ok()?;
                    let addr = n.addrs.first().map(|a| a.to_string()).unwrap_or_default();
                    Some((n.name.clone(), id, addr))
                })
                .collect(),
            chain_names: params
                .chains
                .iter()
                .map(|c| (c.chain_id, c.name.clone()))
                .collect(),
            members: params
                .members
                .iter()
                .map(|m| (m.id, (m.name.clone(), m.home_chain_id)))
                .collect(),
            solvency_contracts: params.members.iter().map(|m| (m.id, m.solvency)).collect(),
            signal_window_ms: params.signals.window.as_millis() as u64,
        }
    }
}

/// Runs the bridge until `shutdown`.
pub async fn run(
    obs: Observers,
    facts: Facts,
    api: ApiState,
    metrics: Arc<Metrics>,
    mut admin_rx: mpsc::Receiver<AdminCommand>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut notices = obs.notices.subscribe();
    let mut refresh = tokio::time::interval(REFRESH);
    let mut rejects_seen: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut refusals_seen: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut conflicts_seen = 0u64;
    let mut views = IncidentViews::default();
    let mut subs_seen: BTreeMap<(u64, &'static str), (u64, u64)> = BTreeMap::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = refresh.tick() => {
                let snap = obs.snapshot.borrow().clone();
                refresh_model(&api, &facts, &obs, &snap, &mut views);
                api.read(|model| metrics.refresh_from(model));
                for (reason, total) in obs.net.counters().snapshot() {
                    metrics.add_gossip_rejects(reason, since_seen(&mut rejects_seen, reason, total));
                }
                for (&reason, &total) in &snap.stats.refusals {
                    metrics.add_refusals(reason, since_seen(&mut refusals_seen, reason, total));
                }
                let conflicts = snap.stats.guard_conflicts;
                metrics.add_sign_guard_conflicts(conflicts.saturating_sub(conflicts_seen));
                conflicts_seen = conflicts_seen.max(conflicts);
                for (&(chain, kind), &(sent, failed)) in &snap.submissions {
                    let seen = subs_seen.entry((chain, kind)).or_default();
                    for _ in seen.0..sent {
                        metrics.inc_submission(chain, kind);
                    }
                    for _ in seen.1..failed {
                        metrics.inc_submission_failure(chain, kind);
                    }
                    *seen = (sent, failed);
                }
                // After a rotation of this node's key and a reload: the guardian it signs as.
                if let Some(guardian) = snap.guardian.map(|g| g.to_string())
                    && api.read(|m| m.info.guardian_address != guardian)
                {
                    let mut info = api.read(|m| m.info.clone());
                    info.guardian_address = guardian;
                    api.set_info(info);
                }
                let ready = !snap.chains.is_empty()
                    && snap.chains.values().all(|c| c.confirmed.is_some());
                if ready != api.is_ready() {
                    api.set_ready(ready);
                }
            }
            n = notices.recv() => match n {
                Ok(Notice::Incident { change, since_open_s, since_proposal_s }) => {
                    match change.phase {
                        IncidentPhase::Certified => if let Some(s) = since_proposal_s {
                            metrics.observe_proposal_to_certificate(Duration::from_secs_f64(s));
                        },
                        IncidentPhase::Closed => metrics.observe_gap_to_closed(Duration::from_secs_f64(since_open_s)),
                        _ => {}
                    }
                    api.publish(NodeEvent::now(
                        EventKind::Incident,
                        format!("{}:{}", change.key.member, change.key.seq),
                        change.text,
                    ));
                }
                Ok(Notice::Stress { scenario, text }) => {
                    api.publish(NodeEvent::now(EventKind::Stress, scenario, text));
                }
                Ok(Notice::Text(t)) => {
                    api.publish(NodeEvent::now(EventKind::Chain, "", t));
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    warn!(missed = n, "bridge lagged behind notices");
                }
                Err(_) => return,
            },
            cmd = admin_rx.recv() => {
                let Some(AdminCommand { request, reply }) = cmd else { return };
                let result = admin(&obs, request).await;
                let _ = reply.send(result);
            }
        }
    }
}

async fn admin(obs: &Observers, request: AdminRequest) -> Result<String, AdminError> {
    let cmd = match request {
        AdminRequest::RaiseSignal {
            kind,
            subject,
            reason,
        } => CoreCommand::RaiseSignal {
            kind,
            subject: B256::from(subject),
            reason,
        },
        AdminRequest::Unfreeze { chain_id, member } => CoreCommand::Unfreeze {
            chain_id,
            member: B256::from(member),
        },
        AdminRequest::Unpause { chain_id } => CoreCommand::Unpause { chain_id },
        AdminRequest::ClearAlert { chain_id, subject } => CoreCommand::ClearAlert {
            chain_id,
            subject: B256::from(subject),
        },
        AdminRequest::Propose { chain_id, change } => CoreCommand::Propose {
            chain_id,
            change: governance_change(change),
        },
        AdminRequest::Approve { id, digest } => CoreCommand::Approve {
            id: B256::from(id),
            digest: B256::from(digest),
        },
    };
    let (tx, rx) = oneshot::channel();
    obs.admin
        .send((cmd, tx))
        .await
        .map_err(|_| AdminError::Unavailable("the node's core is stopping".into()))?;
    match rx.await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(CoreAdminError::NotFound(s))) => Err(AdminError::NotFound(s)),
        Ok(Err(CoreAdminError::Unavailable(s))) => Err(AdminError::Unavailable(s)),
        Ok(Err(CoreAdminError::Rejected(s))) => Err(AdminError::Rejected(s)),
        Err(_) => Err(AdminError::Unavailable(
            "the node's core did not answer".into(),
        )),
    }
}

/// The API's decoded change as the core's: the vault action (id and deadline set by the
/// core) or a member to disable.
fn governance_change(change: ApiChange) -> GovernanceChange {
    let action = match change {
        ApiChange::DisableMember { member } => {
            return GovernanceChange::DisableMember(B256::from(member));
        }
        ApiChange::SetMember {
            member,
            recipient,
            home_chain_id,
            cap,
            deductible,
            coverage_limit,
            coverage_window_s,
        } => ThresholdAction::SetMember(SetMember {
            member: B256::from(member),
            recipient: Address::from(recipient),
            homeChainId: home_chain_id,
            cap,
            deductible,
            coverageLimit: coverage_limit,
            coverageWindow: coverage_window_s,
            id: B256::ZERO,
            deadline: 0,
        }),
        ApiChange::SetLimits {
            bucket_capacity,
            refill_per_second,
            reserve_floor,
            withdraw_cooldown_s,
            emergency_duration_s,
        } => ThresholdAction::SetLimits(SetLimits {
            bucketCapacity: bucket_capacity,
            refillPerSecond: refill_per_second,
            reserveFloor: U256::from_be_bytes(reserve_floor),
            withdrawCooldown: withdraw_cooldown_s,
            emergencyDuration: emergency_duration_s,
            id: B256::ZERO,
            deadline: 0,
        }),
        ApiChange::RotateGuardians {
            guardians,
            threshold,
            pause_threshold,
        } => ThresholdAction::RotateGuardians(RotateGuardians {
            guardians: guardians.into_iter().map(Address::from).collect(),
            threshold,
            pauseThreshold: pause_threshold,
            id: B256::ZERO,
            deadline: 0,
        }),
    };
    GovernanceChange::Action(action)
}

/// Governance proposals as `ListProposals` shows them.
fn proposal_views(snap: &crate::core::Snapshot, facts: &Facts) -> Vec<ProposalView> {
    let quorum = snap.governance_quorum;
    snap.proposals
        .iter()
        .map(|p| {
            let (status, reason) = match &p.status {
                Status::Open => (ProposalStatus::Open, String::new()),
                Status::Executed => (ProposalStatus::Executed, String::new()),
                Status::Expired => (ProposalStatus::Expired, String::new()),
                Status::Rejected(why) => (ProposalStatus::Rejected, why.clone()),
                Status::Conflicting(other) => (
                    ProposalStatus::Conflicting,
                    format!("changes what open proposal {other} changes"),
                ),
            };
            let chains = p
                .targets
                .iter()
                .map(|(chain_id, t)| ProposalChainView {
                    chain_id: *chain_id,
                    chain_name: facts.chain_names.get(chain_id).cloned().unwrap_or_default(),
                    status: if t.executed {
                        ProposalChainStatus::Executed
                    } else if p.status == Status::Expired {
                        ProposalChainStatus::Expired
                    } else if t.approvers.len() >= quorum {
                        ProposalChainStatus::Certified
                    } else {
                        ProposalChainStatus::Waiting
                    },
                    signatures: t.approvers.len() as u32,
                    quorum: quorum as u32,
                    tx_hash: t.tx_hash.map(|h| h.to_string()).unwrap_or_default(),
                })
                .collect();
            ProposalView {
                id: p.proposal.id().to_string(),
                digest: p.digest.to_string(),
                kind: p.proposal.action.name().to_string(),
                summary: governance::summary(&p.proposal.action),
                proposer: facts
                    .peers
                    .get(usize::from(p.proposal.proposer))
                    .map_or_else(|| format!("node {}", p.proposal.proposer), |n| n.0.clone()),
                proposed_at_ms: p.seen_ms,
                deadline_s: p.proposal.action.deadline(),
                status,
                reason,
                approved_here: p.approved_here,
                chains,
            }
        })
        .collect()
}

/// What the cumulative counter `key` added since it was last seen at `seen` (which then
/// remembers `total`).
fn since_seen(seen: &mut BTreeMap<&'static str, u64>, key: &'static str, total: u64) -> u64 {
    let last = seen.entry(key).or_default();
    let added = total.saturating_sub(*last);
    *last = total;
    added
}

/// The API view of a journal entry (`facts` name the member's solvency contract).
pub fn incident_view(e: &IncidentEntry, facts: &Facts) -> IncidentView {
    let amount = e.draw.as_ref().map_or(U256::ZERO, |d| d.amount);
    IncidentView {
        member: e.key.member.to_string(),
        seq: e.key.seq,
        phase: e.phase,
        attempt: e.attempt,
        gap: e.gap.to_string(),
        draw_amount: amount.to_string(),
        uncovered_amount: e.uncovered().to_string(),
        draw_hash: e.draw_hash.map(|h| h.to_string()).unwrap_or_default(),
        legs: e
            .legs
            .iter()
            .map(|l| LegView {
                chain_id: l.vault.chain_id,
                vault: l.vault.address.to_string(),
                amount: l.amount.to_string(),
                status: if l.paid {
                    LegStatus::Executed
                } else {
                    LegStatus::Pending
                },
                tx_hash: l.tx_hash.map(|h| h.to_string()).unwrap_or_default(),
                block_number: l.block,
            })
            .collect(),
        attestations: e
            .attestations
            .iter()
            .map(|(s, d)| m::AttestationView {
                signer: s.to_string(),
                digest: d.to_string(),
            })
            .collect(),
        tx_hashes: e.transactions.iter().map(|h| h.to_string()).collect(),
        timeline: e
            .timeline
            .iter()
            .map(|t| m::TimelineEntry {
                timestamp_ms: t.at_ms,
                block_number: t.block,
                what: t.what.clone(),
            })
            .collect(),
        gap_block: e.gap_block,
        pinned: e
            .pinned
            .iter()
            .map(|b| m::PinnedBlockView {
                chain_id: b.chain_id,
                number: b.number,
                hash: b.hash.to_string(),
            })
            .collect(),
        draw_gap: e.draw.as_ref().map_or(U256::ZERO, |d| d.gap).to_string(),
        deductible: e.deductible.to_string(),
        registration: e.registration.map(|r| m::RegistrationView {
            chain_id: r.vault.chain_id,
            vault: r.vault.address.to_string(),
            tx_hash: r.tx_hash.to_string(),
            block_number: r.block,
        }),
        solvency_contract: facts
            .solvency_contracts
            .get(&e.key.member)
            .map(|a| a.to_string())
            .unwrap_or_default(),
    }
}

/// Rendered incident views, each kept while the journal entry it was rendered from is the
/// same allocation (`Arc::ptr_eq`; the journal copies an entry it changes while this holds
/// it), so a refresh renders only the incidents that changed. Holds exactly the incidents
/// of the latest snapshot (the journal's bound).
#[derive(Default)]
struct IncidentViews(BTreeMap<IncidentKey, (Arc<IncidentEntry>, IncidentView)>);

impl IncidentViews {
    /// The views of `entries`, in their order.
    fn refresh(&mut self, entries: &[Arc<IncidentEntry>], facts: &Facts) -> Vec<IncidentView> {
        let mut next = BTreeMap::new();
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let view = match self.0.remove(&e.key) {
                Some((old, view)) if Arc::ptr_eq(&old, e) => view,
                _ => incident_view(e, facts),
            };
            out.push(view.clone());
            next.insert(e.key, (e.clone(), view));
        }
        self.0 = next;
        out
    }
}

fn refresh_model(
    api: &ApiState,
    facts: &Facts,
    obs: &Observers,
    snap: &crate::core::Snapshot,
    views: &mut IncidentViews,
) {
    let connected: BTreeSet<libp2p::PeerId> = obs.net.peers().into_iter().collect();
    let me = obs.net.local_peer_id();
    let peers = facts
        .peers
        .iter()
        .filter(|(_, id, _)| *id != me)
        .map(|(name, id, address)| PeerView {
            peer_id: id.to_string(),
            name: name.clone(),
            connected: connected.contains(id),
            address: address.clone(),
        })
        .collect();
    let chains = snap
        .chains
        .iter()
        .map(|(id, st)| ChainView {
            chain_id: *id,
            name: facts.chain_names.get(id).cloned().unwrap_or_default(),
            head_number: st.head,
            head_hash: String::new(),
            head_time: st.confirmed.as_ref().map_or(0, |c| c.timestamp),
            confirmed_head: st.confirmed.as_ref().map_or(0, |c| c.block.number),
            halted: st.halted,
            quarantined: snap.quarantined.contains(id),
            deep_reorgs: st.deep_reorgs,
            vault: st.confirmed.as_ref().map(|c| VaultView {
                address: c.vault.vault.to_string(),
                balance: c.vault.balance.to_string(),
                available_for_payout: c.vault.available_for_payout.to_string(),
                bucket_available: c.vault.bucket_available.to_string(),
                reserve: c.vault.limits.reserveFloor.to_string(),
                paused: c.vault.paused,
                guardian_set_index: c.vault.guardian_set_index,
                threshold: u32::from(c.vault.threshold),
                pause_threshold: u32::from(c.vault.pause_threshold),
            }),
        })
        .collect();
    let members = facts
        .members
        .iter()
        .map(|(id, (name, home))| {
            let at = snap
                .chains
                .get(home)
                .and_then(|c| c.confirmed.as_ref())
                .and_then(|c| c.members.get(id));
            let (assets, liabilities) = at
                .and_then(|a| a.solvency)
                .map_or((U256::ZERO, U256::ZERO), |s| (s.assets, s.liabilities));
            MemberView {
                id: id.to_string(),
                name: name.clone(),
                home_chain_id: *home,
                frozen: at.is_some_and(|a| a.record.frozen),
                next_seq: at.map_or(0, |a| a.record.next_seq),
                assets: assets.to_string(),
                liabilities: liabilities.to_string(),
                gap: liabilities.saturating_sub(assets).to_string(),
                cap: at.map_or(0, |a| a.record.cap).to_string(),
                deductible: at.map_or(0, |a| a.record.deductible).to_string(),
                breakers: snap
                    .breakers
                    .iter()
                    .filter(|b| b.ended.is_none() && b.blocked_members.contains(id))
                    .map(|b| b.id.to_string())
                    .collect(),
            }
        })
        .collect();
    let incidents = views.refresh(&snap.incidents, facts);
    let name_of = |i: usize| {
        facts
            .peers
            .get(i)
            .map_or_else(|| format!("node {i}"), |p| p.0.clone())
    };
    let signal_views = snap
        .signals
        .iter()
        .map(|(s, confirmed)| SignalView {
            kind: s.kind,
            subject: s.subject.to_string(),
            raised_by: s.raisers.keys().map(|&i| name_of(i)).collect(),
            confirmed: *confirmed,
            first_seen_ms: s.first_ms,
            last_seen_ms: s.last_ms,
            expires_ms: Some(s.last_ms.saturating_add(facts.signal_window_ms)),
            cleared: s.lifted_ms >= s.last_ms,
        })
        .collect();
    let breakers = snap
        .breakers
        .iter()
        .map(|b| breaker_view(b, snap.expiry_ms))
        .collect();
    let proposals = proposal_views(snap, facts);
    api.update(|model| {
        model.proposals = proposals;
        model.peers = peers;
        model.chains = chains;
        model.members = members;
        model.incidents = incidents;
        model.signals = signal_views;
        model.breakers = breakers;
        model.stress = snap.stress.clone();
        model.clock = ClockView {
            clock_offset_ms: snap.clock.as_ref().map(|c| c.offset_ms),
            clock_warning: snap
                .clock
                .as_ref()
                .map(|c| c.warning.clone())
                .unwrap_or_default(),
        };
    });
    debug!("api model refreshed");
}

fn breaker_view(b: &Breaker, expiry_ms: u64) -> BreakerView {
    let kind = b.id.kind;
    BreakerView {
        id: b.id.to_string(),
        kind,
        subject: b.id.subject.to_string(),
        cause: b.cause.clone(),
        tripped_ms: b.tripped_ms,
        expires_ms: b.ended.is_none().then(|| b.expires_ms(expiry_ms)),
        members_blocked: b.blocked_members.iter().map(|m| m.to_string()).collect(),
        chains_quarantined: b.quarantined.iter().copied().collect(),
        effects: b
            .effects
            .iter()
            .map(|((chain_id, effect), st)| {
                let (status, tx_hash) = match st.status {
                    EffectStatus::Pending => (m::EffectStatus::Pending, String::new()),
                    EffectStatus::Executed(tx) => (m::EffectStatus::Executed, tx.to_string()),
                    EffectStatus::Lifted => (m::EffectStatus::Lifted, String::new()),
                };
                BreakerEffectView {
                    chain_id: *chain_id,
                    action: effect.action().to_owned(),
                    subject: effect.subject().to_string(),
                    level: match effect {
                        Effect::Alert { level, .. } => u32::from(*level),
                        Effect::Freeze(_) => 0,
                    },
                    status,
                    tx_hash,
                }
            })
            .collect(),
        active: b.ended.is_none(),
        lifted_by: b.ended.clone().unwrap_or_default(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::journal::Journal;

    fn facts() -> Facts {
        Facts {
            peers: Vec::new(),
            chain_names: BTreeMap::new(),
            members: BTreeMap::new(),
            solvency_contracts: BTreeMap::new(),
            signal_window_ms: 0,
        }
    }

    fn key(seq: u64) -> IncidentKey {
        IncidentKey {
            member: B256::repeat_byte(7),
            seq,
        }
    }

    #[test]
    fn views_are_rendered_again_only_for_changed_incidents_and_snapshots_stay_as_taken() {
        let mut journal = Journal::default();
        for seq in [0, 1] {
            journal.observed(key(seq), U256::from(500), U256::from(100), 10, 1_000);
        }
        let first: Vec<Arc<IncidentEntry>> = journal.shared().cloned().collect();
        let mut views = IncidentViews::default();
        let shown = views.refresh(&first, &facts());
        assert_eq!(shown.len(), 2);
        assert!(shown.iter().all(|v| v.phase == IncidentPhase::Open));

        // Closing seq 0 copies its entry: the earlier snapshot still shows it open, the new
        // one closed; seq 1 is the same allocation and keeps its view.
        journal.closed(key(0), "resolved", 2_000).unwrap();
        let second: Vec<Arc<IncidentEntry>> = journal.shared().cloned().collect();
        assert_eq!(first[0].phase, IncidentPhase::Open);
        assert!(!Arc::ptr_eq(&first[0], &second[0]));
        assert!(Arc::ptr_eq(&first[1], &second[1]));
        let shown = views.refresh(&second, &facts());
        assert_eq!(shown[0].phase, IncidentPhase::Closed);
        assert_eq!(shown[1].phase, IncidentPhase::Open);
        assert!(Arc::ptr_eq(&views.0[&key(1)].0, &first[1]));

        // An incident the journal no longer holds leaves the cache.
        let shown = views.refresh(&second[1..], &facts());
        assert_eq!(shown.len(), 1);
        assert_eq!(views.0.len(), 1);
    }
}
