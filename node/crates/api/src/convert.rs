//! Conversions between the model and the `backstop.v1` protobuf messages.
//!
//! Model → protobuf is total (the server side). Protobuf → model is what the client uses
//! to render answers; it fails only on enum values this build does not know, so a newer
//! server's answer is reported instead of being shown wrongly.
//!
//! The stress report has no view type: the runtime's typed
//! [`StressReport`] goes straight to protobuf here (ids as `0x` hex, amounts as decimal
//! strings), and the client renders the protobuf answer, checking only its enums.

use backstop_proto::v1 as pb;
use backstop_stress::{BasisKind, MemberResult, RiskStatus, ScenarioResult, StressReport};

use crate::admin::GovernanceChange;
use crate::model::{
    AttestationView, BreakerEffectView, BreakerKind, BreakerView, ChainView, ClockView,
    EffectStatus, EventKind, IncidentPhase, IncidentView, LegStatus, LegView, MemberView,
    NodeEvent, NodeInfo, NodeStatus, PeerView, PinnedBlockView, ProposalChainStatus,
    ProposalChainView, ProposalStatus, ProposalView, RegistrationView, SignalKind, SignalView,
    StatusCounts, TimelineEntry, VaultView, to_hex, uint256_to_decimal,
};

/// An enum value the model does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} value {value}")]
pub struct UnknownEnum {
    /// Which enum.
    pub what: &'static str,
    /// The value received.
    pub value: i32,
}

pub fn phase_to_pb(p: IncidentPhase) -> pb::IncidentPhase {
    match p {
        IncidentPhase::Open => pb::IncidentPhase::Open,
        IncidentPhase::Proposed => pb::IncidentPhase::Proposed,
        IncidentPhase::Certified => pb::IncidentPhase::Certified,
        IncidentPhase::Registered => pb::IncidentPhase::Registered,
        IncidentPhase::Releasing => pb::IncidentPhase::Releasing,
        IncidentPhase::Closed => pb::IncidentPhase::Closed,
    }
}

pub fn phase_from_pb(v: i32) -> Result<IncidentPhase, UnknownEnum> {
    let unknown = UnknownEnum {
        what: "incident phase",
        value: v,
    };
    Ok(
        match pb::IncidentPhase::try_from(v).map_err(|_| unknown.clone())? {
            pb::IncidentPhase::Open => IncidentPhase::Open,
            pb::IncidentPhase::Proposed => IncidentPhase::Proposed,
            pb::IncidentPhase::Certified => IncidentPhase::Certified,
            pb::IncidentPhase::Registered => IncidentPhase::Registered,
            pb::IncidentPhase::Releasing => IncidentPhase::Releasing,
            pb::IncidentPhase::Closed => IncidentPhase::Closed,
            pb::IncidentPhase::Unspecified => return Err(unknown),
        },
    )
}

pub fn leg_status_to_pb(s: LegStatus) -> pb::LegStatus {
    match s {
        LegStatus::Pending => pb::LegStatus::Pending,
        LegStatus::Submitted => pb::LegStatus::Submitted,
        LegStatus::Executed => pb::LegStatus::Executed,
        LegStatus::Expired => pb::LegStatus::Expired,
    }
}

pub fn leg_status_from_pb(v: i32) -> Result<LegStatus, UnknownEnum> {
    let unknown = UnknownEnum {
        what: "leg status",
        value: v,
    };
    Ok(
        match pb::LegStatus::try_from(v).map_err(|_| unknown.clone())? {
            pb::LegStatus::Pending => LegStatus::Pending,
            pb::LegStatus::Submitted => LegStatus::Submitted,
            pb::LegStatus::Executed => LegStatus::Executed,
            pb::LegStatus::Expired => LegStatus::Expired,
            pb::LegStatus::Unspecified => return Err(unknown),
        },
    )
}

pub fn kind_to_pb(k: SignalKind) -> pb::SignalKind {
    match k {
        SignalKind::OracleDeviation => pb::SignalKind::OracleDeviation,
        SignalKind::OracleStale => pb::SignalKind::OracleStale,
        SignalKind::AbnormalOutflow => pb::SignalKind::AbnormalOutflow,
        SignalKind::Depeg => pb::SignalKind::Depeg,
        SignalKind::ChainHalt => pb::SignalKind::ChainHalt,
        SignalKind::Operator => pb::SignalKind::Operator,
        SignalKind::PayoutNotBooked => pb::SignalKind::PayoutNotBooked,
        SignalKind::MarginTrend => pb::SignalKind::MarginTrend,
        SignalKind::CoverageLow => pb::SignalKind::CoverageLow,
        SignalKind::VolatilitySpike => pb::SignalKind::VolatilitySpike,
    }
}

pub fn kind_from_pb(v: i32) -> Result<SignalKind, UnknownEnum> {
    let unknown = UnknownEnum {
        what: "signal kind",
        value: v,
    };
    Ok(
        match pb::SignalKind::try_from(v).map_err(|_| unknown.clone())? {
            pb::SignalKind::OracleDeviation => SignalKind::OracleDeviation,
            pb::SignalKind::OracleStale => SignalKind::OracleStale,
            pb::SignalKind::AbnormalOutflow => SignalKind::AbnormalOutflow,
            pb::SignalKind::Depeg => SignalKind::Depeg,
            pb::SignalKind::ChainHalt => SignalKind::ChainHalt,
            pb::SignalKind::Operator => SignalKind::Operator,
            pb::SignalKind::PayoutNotBooked => SignalKind::PayoutNotBooked,
            pb::SignalKind::MarginTrend => SignalKind::MarginTrend,
            pb::SignalKind::CoverageLow => SignalKind::CoverageLow,
            pb::SignalKind::VolatilitySpike => SignalKind::VolatilitySpike,
            pb::SignalKind::Unspecified => return Err(unknown),
        },
    )
}

pub fn breaker_kind_to_pb(k: BreakerKind) -> pb::BreakerKind {
    match k {
        BreakerKind::Oracle => pb::BreakerKind::Oracle,
        BreakerKind::Exploit => pb::BreakerKind::Exploit,
        BreakerKind::ChainHalt => pb::BreakerKind::ChainHalt,
        BreakerKind::Contagion => pb::BreakerKind::Contagion,
        BreakerKind::Depeg => pb::BreakerKind::Depeg,
        BreakerKind::Operator => pb::BreakerKind::Operator,
        BreakerKind::PayoutNotBooked => pb::BreakerKind::PayoutNotBooked,
        BreakerKind::EarlyWarning => pb::BreakerKind::EarlyWarning,
    }
}

pub fn breaker_kind_from_pb(v: i32) -> Result<BreakerKind, UnknownEnum> {
    let unknown = UnknownEnum {
        what: "breaker kind",
        value: v,
    };
    Ok(
        match pb::BreakerKind::try_from(v).map_err(|_| unknown.clone())? {
            pb::BreakerKind::Oracle => BreakerKind::Oracle,
            pb::BreakerKind::Exploit => BreakerKind::Exploit,
            pb::BreakerKind::ChainHalt => BreakerKind::ChainHalt,
            pb::BreakerKind::Contagion => BreakerKind::Contagion,
            pb::BreakerKind::Depeg => BreakerKind::Depeg,
            pb::BreakerKind::Operator => BreakerKind::Operator,
            pb::BreakerKind::PayoutNotBooked => BreakerKind::PayoutNotBooked,
            pb::BreakerKind::EarlyWarning => BreakerKind::EarlyWarning,
            pb::BreakerKind::Unspecified => return Err(unknown),
        },
    )
}

pub fn effect_status_to_pb(s: EffectStatus) -> pb::EffectStatus {
    match s {
        EffectStatus::Pending => pb::EffectStatus::Pending,
        EffectStatus::Executed => pb::EffectStatus::Executed,
        EffectStatus::Lifted => pb::EffectStatus::Lifted,
    }
}

pub fn effect_status_from_pb(v: i32) -> Result<EffectStatus, UnknownEnum> {
    let unknown = UnknownEnum {
        what: "effect status",
        value: v,
    };
    Ok(
        match pb::EffectStatus::try_from(v).map_err(|_| unknown.clone())? {
            pb::EffectStatus::Pending => EffectStatus::Pending,
            pb::EffectStatus::Executed => EffectStatus::Executed,
            pb::EffectStatus::Lifted => EffectStatus::Lifted,
            pb::EffectStatus::Unspecified => return Err(unknown),
        },
    )
}

pub fn event_kind_to_pb(k: EventKind) -> pb::EventKind {
    match k {
        EventKind::Incident => pb::EventKind::Incident,
        EventKind::Signal => pb::EventKind::Signal,
        EventKind::Chain => pb::EventKind::Chain,
        EventKind::Peer => pb::EventKind::Peer,
        EventKind::Action => pb::EventKind::Action,
        EventKind::Node => pb::EventKind::Node,
        EventKind::EventsLost => pb::EventKind::EventsLost,
        EventKind::Stress => pb::EventKind::Stress,
    }
}

pub fn event_kind_from_pb(v: i32) -> Result<EventKind, UnknownEnum> {
    let unknown = UnknownEnum {
        what: "event kind",
        value: v,
    };
    Ok(
        match pb::EventKind::try_from(v).map_err(|_| unknown.clone())? {
            pb::EventKind::Incident => EventKind::Incident,
            pb::EventKind::Signal => EventKind::Signal,
            pb::EventKind::Chain => EventKind::Chain,
            pb::EventKind::Peer => EventKind::Peer,
            pb::EventKind::Action => EventKind::Action,
            pb::EventKind::Node => EventKind::Node,
            pb::EventKind::EventsLost => EventKind::EventsLost,
            pb::EventKind::Stress => EventKind::Stress,
            pb::EventKind::Unspecified => return Err(unknown),
        },
    )
}

pub fn status_to_pb(s: NodeStatus) -> pb::NodeStatus {
    pb::NodeStatus {
        node_name: s.info.node_name,
        peer_id: s.info.peer_id,
        guardian_address: s.info.guardian_address,
        version: s.info.version,
        uptime_seconds: s.uptime_seconds,
        ready: s.ready,
        n: s.info.n,
        t: s.info.t,
        p: s.info.p,
        peers_connected: s.counts.peers_connected,
        peers_total: s.counts.peers_total,
        chains: s.counts.chains,
        chains_halted: s.counts.chains_halted,
        members: s.counts.members,
        incidents_open: s.counts.incidents_open,
        incidents_total: s.counts.incidents_total,
        signals_active: s.counts.signals_active,
        breakers_active: s.counts.breakers_active,
        clock_offset_ms: s.clock.clock_offset_ms,
        clock_warning: s.clock.clock_warning,
    }
}

pub fn status_from_pb(s: pb::NodeStatus) -> NodeStatus {
    NodeStatus {
        info: NodeInfo {
            node_name: s.node_name,
            peer_id: s.peer_id,
            guardian_address: s.guardian_address,
            version: s.version,
            n: s.n,
            t: s.t,
            p: s.p,
        },
        ready: s.ready,
        uptime_seconds: s.uptime_seconds,
        counts: StatusCounts {
            peers_connected: s.peers_connected,
            peers_total: s.peers_total,
            chains: s.chains,
            chains_halted: s.chains_halted,
            members: s.members,
            incidents_open: s.incidents_open,
            incidents_total: s.incidents_total,
            signals_active: s.signals_active,
            breakers_active: s.breakers_active,
        },
        clock: ClockView {
            clock_offset_ms: s.clock_offset_ms,
            clock_warning: s.clock_warning,
        },
    }
}

pub fn peer_to_pb(p: PeerView) -> pb::Peer {
    pb::Peer {
        peer_id: p.peer_id,
        name: p.name,
        connected: p.connected,
        address: p.address,
    }
}

pub fn peer_from_pb(p: pb::Peer) -> PeerView {
    PeerView {
        peer_id: p.peer_id,
        name: p.name,
        connected: p.connected,
        address: p.address,
    }
}

fn vault_to_pb(v: VaultView) -> pb::Vault {
    pb::Vault {
        address: v.address,
        balance: v.balance,
        available_for_payout: v.available_for_payout,
        bucket_available: v.bucket_available,
        reserve: v.reserve,
        paused: v.paused,
        guardian_set_index: v.guardian_set_index,
        threshold: v.threshold,
        pause_threshold: v.pause_threshold,
    }
}

fn vault_from_pb(v: pb::Vault) -> VaultView {
    VaultView {
        address: v.address,
        balance: v.balance,
        available_for_payout: v.available_for_payout,
        bucket_available: v.bucket_available,
        reserve: v.reserve,
        paused: v.paused,
        guardian_set_index: v.guardian_set_index,
        threshold: v.threshold,
        pause_threshold: v.pause_threshold,
    }
}

pub fn chain_to_pb(c: ChainView) -> pb::Chain {
    pb::Chain {
        chain_id: c.chain_id,
        name: c.name,
        head_number: c.head_number,
        head_hash: c.head_hash,
        head_time: c.head_time,
        confirmed_head: c.confirmed_head,
        halted: c.halted,
        quarantined: c.quarantined,
        vault: c.vault.map(vault_to_pb),
        deep_reorgs: c.deep_reorgs,
    }
}

pub fn chain_from_pb(c: pb::Chain) -> ChainView {
    ChainView {
        chain_id: c.chain_id,
        name: c.name,
        head_number: c.head_number,
        head_hash: c.head_hash,
        head_time: c.head_time,
        confirmed_head: c.confirmed_head,
        halted: c.halted,
        quarantined: c.quarantined,
        deep_reorgs: c.deep_reorgs,
        vault: c.vault.map(vault_from_pb),
    }
}

pub fn member_to_pb(m: MemberView) -> pb::Member {
    pb::Member {
        id: m.id,
        name: m.name,
        home_chain_id: m.home_chain_id,
        frozen: m.frozen,
        next_seq: m.next_seq,
        assets: m.assets,
        liabilities: m.liabilities,
        gap: m.gap,
        cap: m.cap,
        deductible: m.deductible,
        breakers: m.breakers,
    }
}

pub fn member_from_pb(m: pb::Member) -> MemberView {
    MemberView {
        id: m.id,
        name: m.name,
        home_chain_id: m.home_chain_id,
        frozen: m.frozen,
        next_seq: m.next_seq,
        assets: m.assets,
        liabilities: m.liabilities,
        gap: m.gap,
        cap: m.cap,
        deductible: m.deductible,
        breakers: m.breakers,
    }
}

pub fn incident_to_pb(i: IncidentView) -> pb::Incident {
    pb::Incident {
        id: i.id(),
        phase: phase_to_pb(i.phase).into(),
        member: i.member,
        seq: i.seq,
        attempt: i.attempt,
        gap: i.gap,
        draw_amount: i.draw_amount,
        uncovered_amount: i.uncovered_amount,
        draw_hash: i.draw_hash,
        legs: i
            .legs
            .into_iter()
            .map(|l| pb::Leg {
                chain_id: l.chain_id,
                vault: l.vault,
                amount: l.amount,
                status: leg_status_to_pb(l.status).into(),
                tx_hash: l.tx_hash,
                block_number: l.block_number,
            })
            .collect(),
        attestations: i
            .attestations
            .into_iter()
            .map(|a| pb::Attestation {
                signer: a.signer,
                digest: a.digest,
            })
            .collect(),
        tx_hashes: i.tx_hashes,
        timeline: i
            .timeline
            .into_iter()
            .map(|t| pb::TimelineEntry {
                timestamp_ms: t.timestamp_ms,
                block_number: t.block_number,
                what: t.what,
            })
            .collect(),
        gap_block: i.gap_block,
        pinned: i
            .pinned
            .into_iter()
            .map(|b| pb::PinnedBlock {
                chain_id: b.chain_id,
                number: b.number,
                hash: b.hash,
            })
            .collect(),
        draw_gap: i.draw_gap,
        deductible: i.deductible,
        registration: i.registration.map(|r| pb::Registration {
            chain_id: r.chain_id,
            vault: r.vault,
            tx_hash: r.tx_hash,
            block_number: r.block_number,
        }),
        solvency_contract: i.solvency_contract,
    }
}

pub fn incident_from_pb(i: pb::Incident) -> Result<IncidentView, UnknownEnum> {
    Ok(IncidentView {
        phase: phase_from_pb(i.phase)?,
        member: i.member,
        seq: i.seq,
        attempt: i.attempt,
        gap: i.gap,
        draw_amount: i.draw_amount,
        uncovered_amount: i.uncovered_amount,
        draw_hash: i.draw_hash,
        legs: i
            .legs
            .into_iter()
            .map(|l| {
                Ok(LegView {
                    status: leg_status_from_pb(l.status)?,
                    chain_id: l.chain_id,
                    vault: l.vault,
                    amount: l.amount,
                    tx_hash: l.tx_hash,
                    block_number: l.block_number,
                })
            })
            .collect::<Result<_, UnknownEnum>>()?,
        attestations: i
            .attestations
            .into_iter()
            .map(|a| AttestationView {
                signer: a.signer,
                digest: a.digest,
            })
            .collect(),
        tx_hashes: i.tx_hashes,
        timeline: i
            .timeline
            .into_iter()
            .map(|t| TimelineEntry {
                timestamp_ms: t.timestamp_ms,
                block_number: t.block_number,
                what: t.what,
            })
            .collect(),
        gap_block: i.gap_block,
        pinned: i
            .pinned
            .into_iter()
            .map(|b| PinnedBlockView {
                chain_id: b.chain_id,
                number: b.number,
                hash: b.hash,
            })
            .collect(),
        draw_gap: i.draw_gap,
        deductible: i.deductible,
        registration: i.registration.map(|r| RegistrationView {
            chain_id: r.chain_id,
            vault: r.vault,
            tx_hash: r.tx_hash,
            block_number: r.block_number,
        }),
        solvency_contract: i.solvency_contract,
    })
}

pub fn signal_to_pb(s: SignalView) -> pb::Signal {
    pb::Signal {
        kind: kind_to_pb(s.kind).into(),
        subject: s.subject,
        raised_by: s.raised_by,
        confirmed: s.confirmed,
        first_seen_ms: s.first_seen_ms,
        last_seen_ms: s.last_seen_ms,
        expires_ms: s.expires_ms,
        cleared: s.cleared,
    }
}

pub fn signal_from_pb(s: pb::Signal) -> Result<SignalView, UnknownEnum> {
    Ok(SignalView {
        kind: kind_from_pb(s.kind)?,
        subject: s.subject,
        raised_by: s.raised_by,
        confirmed: s.confirmed,
        first_seen_ms: s.first_seen_ms,
        last_seen_ms: s.last_seen_ms,
        expires_ms: s.expires_ms,
        cleared: s.cleared,
    })
}

pub fn breaker_to_pb(b: BreakerView) -> pb::Breaker {
    pb::Breaker {
        id: b.id,
        kind: breaker_kind_to_pb(b.kind).into(),
        subject: b.subject,
        cause: b.cause,
        tripped_ms: b.tripped_ms,
        expires_ms: b.expires_ms,
        members_blocked: b.members_blocked,
        chains_quarantined: b.chains_quarantined,
        effects: b
            .effects
            .into_iter()
            .map(|e| pb::BreakerEffect {
                chain_id: e.chain_id,
                action: e.action,
                subject: e.subject,
                level: e.level,
                status: effect_status_to_pb(e.status).into(),
                tx_hash: e.tx_hash,
            })
            .collect(),
        active: b.active,
        lifted_by: b.lifted_by,
    }
}

pub fn breaker_from_pb(b: pb::Breaker) -> Result<BreakerView, UnknownEnum> {
    Ok(BreakerView {
        id: b.id,
        kind: breaker_kind_from_pb(b.kind)?,
        subject: b.subject,
        cause: b.cause,
        tripped_ms: b.tripped_ms,
        expires_ms: b.expires_ms,
        members_blocked: b.members_blocked,
        chains_quarantined: b.chains_quarantined,
        effects: b
            .effects
            .into_iter()
            .map(|e| {
                Ok(BreakerEffectView {
                    status: effect_status_from_pb(e.status)?,
                    chain_id: e.chain_id,
                    action: e.action,
                    subject: e.subject,
                    level: e.level,
                    tx_hash: e.tx_hash,
                })
            })
            .collect::<Result<_, UnknownEnum>>()?,
        active: b.active,
        lifted_by: b.lifted_by,
    })
}

pub fn proposal_status_to_pb(s: ProposalStatus) -> pb::ProposalStatus {
    match s {
        ProposalStatus::Open => pb::ProposalStatus::Open,
        ProposalStatus::Executed => pb::ProposalStatus::Executed,
        ProposalStatus::Expired => pb::ProposalStatus::Expired,
        ProposalStatus::Rejected => pb::ProposalStatus::Rejected,
        ProposalStatus::Conflicting => pb::ProposalStatus::Conflicting,
    }
}

pub fn proposal_status_from_pb(v: i32) -> Result<ProposalStatus, UnknownEnum> {
    let unknown = UnknownEnum {
        what: "proposal status",
        value: v,
    };
    Ok(
        match pb::ProposalStatus::try_from(v).map_err(|_| unknown.clone())? {
            pb::ProposalStatus::Open => ProposalStatus::Open,
            pb::ProposalStatus::Executed => ProposalStatus::Executed,
            pb::ProposalStatus::Expired => ProposalStatus::Expired,
            pb::ProposalStatus::Rejected => ProposalStatus::Rejected,
            pb::ProposalStatus::Conflicting => ProposalStatus::Conflicting,
            pb::ProposalStatus::Unspecified => return Err(unknown),
        },
    )
}

pub fn proposal_chain_status_to_pb(s: ProposalChainStatus) -> pb::ProposalChainStatus {
    match s {
        ProposalChainStatus::Waiting => pb::ProposalChainStatus::Waiting,
        ProposalChainStatus::Certified => pb::ProposalChainStatus::Certified,
        ProposalChainStatus::Submitted => pb::ProposalChainStatus::Submitted,
        ProposalChainStatus::Executed => pb::ProposalChainStatus::Executed,
        ProposalChainStatus::Expired => pb::ProposalChainStatus::Expired,
    }
}

pub fn proposal_chain_status_from_pb(v: i32) -> Result<ProposalChainStatus, UnknownEnum> {
    let unknown = UnknownEnum {
        what: "proposal chain status",
        value: v,
    };
    Ok(
        match pb::ProposalChainStatus::try_from(v).map_err(|_| unknown.clone())? {
            pb::ProposalChainStatus::Waiting => ProposalChainStatus::Waiting,
            pb::ProposalChainStatus::Certified => ProposalChainStatus::Certified,
            pb::ProposalChainStatus::Submitted => ProposalChainStatus::Submitted,
            pb::ProposalChainStatus::Executed => ProposalChainStatus::Executed,
            pb::ProposalChainStatus::Expired => ProposalChainStatus::Expired,
            pb::ProposalChainStatus::Unspecified => return Err(unknown),
        },
    )
}

pub fn proposal_to_pb(p: ProposalView) -> pb::Proposal {
    pb::Proposal {
        id: p.id,
        digest: p.digest,
        kind: p.kind,
        summary: p.summary,
        proposer: p.proposer,
        proposed_at_ms: p.proposed_at_ms,
        deadline_s: p.deadline_s,
        status: proposal_status_to_pb(p.status).into(),
        reason: p.reason,
        approved_here: p.approved_here,
        chains: p
            .chains
            .into_iter()
            .map(|c| pb::ProposalChain {
                chain_id: c.chain_id,
                chain_name: c.chain_name,
                status: proposal_chain_status_to_pb(c.status).into(),
                signatures: c.signatures,
                quorum: c.quorum,
                tx_hash: c.tx_hash,
            })
            .collect(),
    }
}

pub fn proposal_from_pb(p: pb::Proposal) -> Result<ProposalView, UnknownEnum> {
    Ok(ProposalView {
        id: p.id,
        digest: p.digest,
        kind: p.kind,
        summary: p.summary,
        proposer: p.proposer,
        proposed_at_ms: p.proposed_at_ms,
        deadline_s: p.deadline_s,
        status: proposal_status_from_pb(p.status)?,
        reason: p.reason,
        approved_here: p.approved_here,
        chains: p
            .chains
            .into_iter()
            .map(|c| {
                Ok(ProposalChainView {
                    status: proposal_chain_status_from_pb(c.status)?,
                    chain_id: c.chain_id,
                    chain_name: c.chain_name,
                    signatures: c.signatures,
                    quorum: c.quorum,
                    tx_hash: c.tx_hash,
                })
            })
            .collect::<Result<_, UnknownEnum>>()?,
    })
}

/// The wire form of a proposed change (the client side of `ProposeGovernance`): ids and
/// addresses as `0x` hex, amounts as decimal strings.
pub fn change_to_pb(c: &GovernanceChange) -> pb::propose_governance_request::Change {
    use pb::propose_governance_request::Change;
    match c {
        GovernanceChange::SetMember {
            member,
            recipient,
            home_chain_id,
            cap,
            deductible,
            coverage_limit,
            coverage_window_s,
        } => Change::SetMember(pb::SetMemberChange {
            member: to_hex(member),
            recipient: to_hex(recipient),
            home_chain_id: *home_chain_id,
            cap: cap.to_string(),
            deductible: deductible.to_string(),
            coverage_limit: coverage_limit.to_string(),
            coverage_window_s: *coverage_window_s,
        }),
        GovernanceChange::DisableMember { member } => {
            Change::DisableMember(pb::DisableMemberChange {
                member: to_hex(member),
            })
        }
        GovernanceChange::SetLimits {
            bucket_capacity,
            refill_per_second,
            reserve_floor,
            withdraw_cooldown_s,
            emergency_duration_s,
        } => Change::SetLimits(pb::SetLimitsChange {
            bucket_capacity: bucket_capacity.to_string(),
            refill_per_second: refill_per_second.to_string(),
            reserve_floor: uint256_to_decimal(reserve_floor),
            withdraw_cooldown_s: *withdraw_cooldown_s,
            emergency_duration_s: *emergency_duration_s,
        }),
        GovernanceChange::RotateGuardians {
            guardians,
            threshold,
            pause_threshold,
        } => Change::RotateGuardians(pb::RotateGuardiansChange {
            guardians: guardians.iter().map(|g| to_hex(g)).collect(),
            threshold: u32::from(*threshold),
            pause_threshold: u32::from(*pause_threshold),
        }),
    }
}

pub fn event_to_pb(e: NodeEvent) -> pb::Event {
    pb::Event {
        timestamp_ms: e.timestamp_ms,
        kind: event_kind_to_pb(e.kind).into(),
        subject: e.subject,
        text: e.text,
    }
}

pub fn event_from_pb(e: pb::Event) -> Result<NodeEvent, UnknownEnum> {
    Ok(NodeEvent {
        timestamp_ms: e.timestamp_ms,
        kind: event_kind_from_pb(e.kind)?,
        subject: e.subject,
        text: e.text,
    })
}

pub fn basis_to_pb(b: BasisKind) -> pb::StressBasis {
    match b {
        BasisKind::Exposures => pb::StressBasis::Exposures,
        BasisKind::History => pb::StressBasis::History,
        BasisKind::InvalidView => pb::StressBasis::InvalidView,
    }
}

pub fn basis_from_pb(v: i32) -> Result<BasisKind, UnknownEnum> {
    let unknown = UnknownEnum {
        what: "stress basis",
        value: v,
    };
    Ok(
        match pb::StressBasis::try_from(v).map_err(|_| unknown.clone())? {
            pb::StressBasis::Exposures => BasisKind::Exposures,
            pb::StressBasis::History => BasisKind::History,
            pb::StressBasis::InvalidView => BasisKind::InvalidView,
            pb::StressBasis::Unspecified => return Err(unknown),
        },
    )
}

/// `GetStressReport`'s answer for the latest report (`None`: no evaluation yet).
pub fn stress_response_to_pb(report: Option<&StressReport>) -> pb::GetStressReportResponse {
    pb::GetStressReportResponse {
        evaluated: report.is_some(),
        report: report.map(stress_to_pb),
    }
}

pub fn stress_to_pb(r: &StressReport) -> pb::StressReport {
    pb::StressReport {
        evaluated_ms: r.evaluated_ms,
        heads: r
            .heads
            .iter()
            .map(|&(chain_id, block_number)| pb::StressHead {
                chain_id,
                block_number,
            })
            .collect(),
        risk: r.risk.iter().map(risk_to_pb).collect(),
        scenarios: r.scenarios.iter().map(scenario_to_pb).collect(),
    }
}

fn risk_to_pb(r: &RiskStatus) -> pb::StressRisk {
    pb::StressRisk {
        member: to_hex(r.id.as_slice()),
        basis: basis_to_pb(r.basis).into(),
        invalid_reason: r.reason.clone().unwrap_or_default(),
    }
}

fn scenario_to_pb(s: &ScenarioResult) -> pb::StressScenario {
    pb::StressScenario {
        name: s.name.clone(),
        need: s.need.to_string(),
        payable_next_block: s.payable_next_block.to_string(),
        payable_day: s.payable_day.to_string(),
        coverage_next_block_bps: s.coverage_next_block_bps,
        coverage_day_bps: s.coverage_day_bps,
        shortfall: s.shortfall.to_string(),
        members: s.members.iter().map(stress_member_to_pb).collect(),
    }
}

fn stress_member_to_pb(m: &MemberResult) -> pb::StressMember {
    pb::StressMember {
        id: to_hex(m.id.as_slice()),
        projected_gap: m.projected_gap.to_string(),
        need: m.need.to_string(),
        covered: m.covered.to_string(),
        shortfall: m.shortfall.to_string(),
        basis: basis_to_pb(m.basis).into(),
        invalid_reason: m.invalid_reason.clone().unwrap_or_default(),
    }
}
