//! Admin requests from the operator API to the node's runtime.
//!
//! The gRPC layer authenticates the caller, parses and validates every field (hex lengths,
//! kinds, chain ids, reason length) and only then sends an [`AdminCommand`] over a bounded
//! `tokio::sync::mpsc` channel ([`channel`]) to the runtime, which answers once on the
//! command's `oneshot` with what it started, or an [`AdminError`]. So the runtime only ever
//! receives well-formed requests: bytes32 values are already decoded, chain ids are non-zero
//! and the reason is at most [`MAX_REASON_LEN`] bytes. A governance proposal
//! ([`AdminRequest::Propose`]) also has its amounts decoded and its [`GovernanceChange`]
//! checked field by field ([`GovernanceChange::validate`]); rules that need the
//! consortium (a guardian set's thresholds against n and f, a member's home chain) are the
//! runtime's.
//!
//! The API never waits for room in the queue (a full queue is RESOURCE_EXHAUSTED) and waits
//! at most [`REPLY_TIMEOUT`] for the reply; the runtime should reply as soon as the action
//! is started, not when it completes on chain.

use std::fmt;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::logsafe::Escaped;
use crate::model::{FieldError, SignalKind, to_hex, uint256_to_decimal};

/// Longest operator reason accepted, in bytes.
pub const MAX_REASON_LEN: usize = 256;

/// How long the API waits for the runtime's reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Suggested capacity of the admin queue.
pub const DEFAULT_QUEUE: usize = 16;

/// Most guardians a proposed guardian set may have (a vault holds at most this many).
pub use backstop_types::governance::MAX_GUARDIANS;

/// A change to the consortium's vaults, as an operator proposes it
/// ([`AdminRequest::Propose`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GovernanceChange {
    /// Add a member or change its terms.
    SetMember {
        /// bytes32 member id.
        member: [u8; 32],
        /// Address its payouts go to (not the zero address).
        recipient: [u8; 20],
        /// Chain id of its home vault (non-zero).
        home_chain_id: u64,
        /// Per-incident cap.
        cap: u128,
        /// Deductible it always bears.
        deductible: u128,
        /// What its home vault may pay it within one coverage window.
        coverage_limit: u128,
        /// Length of the coverage window in seconds (non-zero).
        coverage_window_s: u64,
    },
    /// Remove a member.
    DisableMember {
        /// bytes32 member id.
        member: [u8; 32],
    },
    /// Change the vault limits.
    SetLimits {
        /// Outflow token bucket capacity.
        bucket_capacity: u128,
        /// Outflow bucket refill per second.
        refill_per_second: u128,
        /// Reserve floor, a big-endian uint256.
        reserve_floor: [u8; 32],
        /// Withdrawal cooldown in seconds.
        withdraw_cooldown_s: u64,
        /// How long an emergency lasts, in seconds.
        emergency_duration_s: u64,
    },
    /// Replace the guardian set.
    RotateGuardians {
        /// The new guardians: 1 to [`MAX_GUARDIANS`], distinct, none the zero address.
        guardians: Vec<[u8; 20]>,
        /// Signatures to pay or lift, in `1..=guardians.len()`.
        threshold: u8,
        /// Signatures to stop, in `1..=guardians.len()`.
        pause_threshold: u8,
    },
}

impl GovernanceChange {
    /// What it changes, as `ListProposals` names it: `set_member`, `disable_member`,
    /// `set_limits` or `rotate_guardians`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::SetMember { .. } => "set_member",
            Self::DisableMember { .. } => "disable_member",
            Self::SetLimits { .. } => "set_limits",
            Self::RotateGuardians { .. } => "rotate_guardians",
        }
    }

    /// Checks the fields the types do not: non-zero home chain and coverage window, a
    /// recipient that is not the zero address, and a guardian set of 1 to
    /// [`MAX_GUARDIANS`] distinct non-zero addresses with both thresholds in
    /// `1..=guardians.len()` (see [`check_guardian_set`]).
    pub fn validate(&self) -> Result<(), FieldError> {
        match self {
            Self::SetMember {
                recipient,
                home_chain_id,
                coverage_window_s,
                ..
            } => {
                if *recipient == [0; 20] {
                    return Err(FieldError::Invalid {
                        field: "recipient",
                        reason: "the zero address cannot receive payouts".into(),
                    });
                }
                if *home_chain_id == 0 {
                    return Err(FieldError::Missing {
                        field: "home_chain_id",
                    });
                }
                if *coverage_window_s == 0 {
                    return Err(FieldError::Missing {
                        field: "coverage_window_s",
                    });
                }
                Ok(())
            }
            Self::DisableMember { .. } | Self::SetLimits { .. } => Ok(()),
            Self::RotateGuardians {
                guardians,
                threshold,
                pause_threshold,
            } => check_guardian_set(
                guardians,
                u32::from(*threshold),
                u32::from(*pause_threshold),
            ),
        }
    }
}

/// Checks a proposed guardian set: 1 to [`MAX_GUARDIANS`] guardians, distinct, none the
/// zero address, and both thresholds in `1..=guardians.len()` (given as on the wire, so
/// that a value too large for `u8` is reported as it was sent).
pub fn check_guardian_set(
    guardians: &[[u8; 20]],
    threshold: u32,
    pause_threshold: u32,
) -> Result<(), FieldError> {
    if guardians.is_empty() {
        return Err(FieldError::Missing { field: "guardians" });
    }
    check_guardian_count(guardians.len())?;
    for (i, g) in guardians.iter().enumerate() {
        if *g == [0; 20] {
            return Err(FieldError::Invalid {
                field: "guardians",
                reason: format!("entry {i} is the zero address"),
            });
        }
        if let Some(first) = guardians[..i].iter().position(|x| x == g) {
            return Err(FieldError::Invalid {
                field: "guardians",
                reason: format!("{} is listed twice (entries {first} and {i})", to_hex(g)),
            });
        }
    }
    let n = guardians.len();
    for (field, value) in [
        ("threshold", threshold),
        ("pause_threshold", pause_threshold),
    ] {
        if value == 0 || usize::try_from(value).map_or(true, |v| v > n) {
            return Err(FieldError::Invalid {
                field,
                reason: format!("must be in 1..={n} (the number of guardians), got {value}"),
            });
        }
    }
    Ok(())
}

/// Refuses more than [`MAX_GUARDIANS`] guardians.
pub(crate) fn check_guardian_count(count: usize) -> Result<(), FieldError> {
    if count > MAX_GUARDIANS {
        return Err(FieldError::Invalid {
            field: "guardians",
            reason: format!("at most {MAX_GUARDIANS} allowed, got {count}"),
        });
    }
    Ok(())
}

/// Human form of the change's parameters (hex and decimal only: safe to log).
impl fmt::Display for GovernanceChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SetMember {
                member,
                recipient,
                home_chain_id,
                cap,
                deductible,
                coverage_limit,
                coverage_window_s,
            } => write!(
                f,
                "set member {} recipient {} home {home_chain_id} cap {cap} deductible \
                 {deductible} coverage limit {coverage_limit} per {coverage_window_s} s",
                to_hex(member),
                to_hex(recipient)
            ),
            Self::DisableMember { member } => write!(f, "disable member {}", to_hex(member)),
            Self::SetLimits {
                bucket_capacity,
                refill_per_second,
                reserve_floor,
                withdraw_cooldown_s,
                emergency_duration_s,
            } => write!(
                f,
                "set limits bucket {bucket_capacity} refill {refill_per_second}/s reserve \
                 floor {} withdraw cooldown {withdraw_cooldown_s} s emergency \
                 {emergency_duration_s} s",
                uint256_to_decimal(reserve_floor)
            ),
            Self::RotateGuardians {
                guardians,
                threshold,
                pause_threshold,
            } => {
                let list: Vec<String> = guardians.iter().map(|g| to_hex(g)).collect();
                write!(
                    f,
                    "rotate guardians to [{}] threshold {threshold} pause threshold \
                     {pause_threshold}",
                    list.join(", ")
                )
            }
        }
    }
}

/// An operator request, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminRequest {
    /// Gossip an operator-raised signal.
    RaiseSignal {
        /// Signal kind.
        kind: SignalKind,
        /// bytes32 subject.
        subject: [u8; 32],
        /// Why (at most [`MAX_REASON_LEN`] bytes).
        reason: String,
    },
    /// Start an early unfreeze of `member` (t signatures).
    Unfreeze {
        /// One chain, or every chain whose vault has the member frozen.
        chain_id: Option<u64>,
        /// bytes32 member id.
        member: [u8; 32],
    },
    /// Start an early unpause of a chain's vault (t signatures).
    Unpause {
        /// Chain of the vault (non-zero).
        chain_id: u64,
    },
    /// Start an early clear of an alert on a chain's vault (t signatures).
    ClearAlert {
        /// Chain of the vault (non-zero).
        chain_id: u64,
        /// bytes32 alert subject.
        subject: [u8; 32],
    },
    /// Propose a change to the consortium's vaults (gossiped; t approvals execute it).
    Propose {
        /// One chain's vault (non-zero), or every chain's.
        chain_id: Option<u64>,
        /// The change.
        change: GovernanceChange,
    },
    /// Approve a governance proposal as this node's operator.
    Approve {
        /// bytes32 action id of the proposal.
        id: [u8; 32],
        /// bytes32 digest the operator saw: the runtime signs only if it is exactly the
        /// proposal's.
        digest: [u8; 32],
    },
}

impl AdminRequest {
    /// Checks the fields that the types do not: non-zero chain ids, reason length, and a
    /// proposed change's fields ([`GovernanceChange::validate`]).
    pub fn validate(&self) -> Result<(), FieldError> {
        match self {
            Self::RaiseSignal { reason, .. } if reason.len() > MAX_REASON_LEN => {
                Err(FieldError::TooLong {
                    field: "reason",
                    max: MAX_REASON_LEN,
                    len: reason.len(),
                })
            }
            Self::Unfreeze {
                chain_id: Some(0), ..
            }
            | Self::Unpause { chain_id: 0 }
            | Self::ClearAlert { chain_id: 0, .. }
            | Self::Propose {
                chain_id: Some(0), ..
            } => Err(FieldError::Missing { field: "chain_id" }),
            Self::Propose { change, .. } => change.validate(),
            _ => Ok(()),
        }
    }

    /// Name of the gRPC method carrying this request.
    pub fn method(&self) -> &'static str {
        match self {
            Self::RaiseSignal { .. } => "RaiseSignal",
            Self::Unfreeze { .. } => "RequestUnfreeze",
            Self::Unpause { .. } => "RequestUnpause",
            Self::ClearAlert { .. } => "RequestAlertClear",
            Self::Propose { .. } => "ProposeGovernance",
            Self::Approve { .. } => "ApproveProposal",
        }
    }
}

/// Safe to log: the reason is escaped ([`Escaped`]).
impl fmt::Display for AdminRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RaiseSignal {
                kind,
                subject,
                reason,
            } => write!(
                f,
                "raise {kind} signal on {} (\"{}\")",
                to_hex(subject),
                Escaped(reason)
            ),
            Self::Unfreeze {
                chain_id: Some(c),
                member,
            } => write!(f, "unfreeze member {} on chain {c}", to_hex(member)),
            Self::Unfreeze {
                chain_id: None,
                member,
            } => write!(f, "unfreeze member {} on every chain", to_hex(member)),
            Self::Unpause { chain_id } => write!(f, "unpause the vault on chain {chain_id}"),
            Self::ClearAlert { chain_id, subject } => {
                write!(f, "clear alert {} on chain {chain_id}", to_hex(subject))
            }
            Self::Propose {
                chain_id: Some(c),
                change,
            } => write!(f, "propose to {change} on chain {c}"),
            Self::Propose {
                chain_id: None,
                change,
            } => write!(f, "propose to {change} on every chain"),
            Self::Approve { id, digest } => write!(
                f,
                "approve proposal {} with digest {}",
                to_hex(id),
                to_hex(digest)
            ),
        }
    }
}

/// Why the runtime did not start an admin request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// Refused in the current state (e.g. the member is not frozen): FAILED_PRECONDITION.
    #[error("rejected: {0}")]
    Rejected(String),
    /// Names something the node does not know (chain, member): NOT_FOUND.
    #[error("not found: {0}")]
    NotFound(String),
    /// The runtime cannot act now (not synced, shutting down): UNAVAILABLE.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Anything else: INTERNAL.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Reply the runtime sends for one command: what it started (e.g. an action id).
pub type AdminReply = Result<String, AdminError>;

/// A validated request and the channel for its single reply.
#[derive(Debug)]
pub struct AdminCommand {
    /// The request.
    pub request: AdminRequest,
    /// Where the runtime answers; dropping it unanswered gives the caller UNAVAILABLE.
    pub reply: oneshot::Sender<AdminReply>,
}

/// The bounded admin queue between the API (sender) and the runtime (receiver).
pub fn channel(capacity: usize) -> (mpsc::Sender<AdminCommand>, mpsc::Receiver<AdminCommand>) {
    mpsc::channel(capacity.max(1))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn validation_catches_zero_chains_and_long_reasons() {
        assert!(AdminRequest::Unpause { chain_id: 0 }.validate().is_err());
        assert!(AdminRequest::Unpause { chain_id: 1 }.validate().is_ok());
        assert!(
            AdminRequest::Unfreeze {
                chain_id: None,
                member: [1; 32]
            }
            .validate()
            .is_ok()
        );
        let long = AdminRequest::RaiseSignal {
            kind: SignalKind::Operator,
            subject: [0; 32],
            reason: "x".repeat(MAX_REASON_LEN + 1),
        };
        assert_eq!(
            long.validate().unwrap_err().to_string(),
            "reason: at most 256 bytes allowed, got 257"
        );
    }

    fn set_member() -> GovernanceChange {
        GovernanceChange::SetMember {
            member: [0x0a; 32],
            recipient: [0xbe; 20],
            home_chain_id: 31337,
            cap: 1000,
            deductible: 10,
            coverage_limit: 5000,
            coverage_window_s: 86_400,
        }
    }

    fn rotate(guardians: Vec<[u8; 20]>, threshold: u8, pause_threshold: u8) -> GovernanceChange {
        GovernanceChange::RotateGuardians {
            guardians,
            threshold,
            pause_threshold,
        }
    }

    fn message(change: GovernanceChange) -> String {
        AdminRequest::Propose {
            chain_id: None,
            change,
        }
        .validate()
        .unwrap_err()
        .to_string()
    }

    #[test]
    fn governance_changes_are_checked_field_by_field() {
        assert!(set_member().validate().is_ok());
        assert!(
            GovernanceChange::DisableMember { member: [0; 32] }
                .validate()
                .is_ok()
        );
        let propose = |chain_id| AdminRequest::Propose {
            chain_id,
            change: set_member(),
        };
        assert!(propose(None).validate().is_ok());
        assert!(propose(Some(31337)).validate().is_ok());
        assert_eq!(
            propose(Some(0)).validate().unwrap_err().to_string(),
            "chain_id: required"
        );

        let with = |f: fn(&mut GovernanceChange)| {
            let mut c = set_member();
            f(&mut c);
            message(c)
        };
        assert_eq!(
            with(
                |c| if let GovernanceChange::SetMember { recipient, .. } = c {
                    *recipient = [0; 20];
                }
            ),
            "recipient: the zero address cannot receive payouts"
        );
        assert_eq!(
            with(
                |c| if let GovernanceChange::SetMember { home_chain_id, .. } = c {
                    *home_chain_id = 0;
                }
            ),
            "home_chain_id: required"
        );
        assert_eq!(
            with(|c| {
                if let GovernanceChange::SetMember {
                    coverage_window_s, ..
                } = c
                {
                    *coverage_window_s = 0;
                }
            }),
            "coverage_window_s: required"
        );

        let (a, b, c) = ([1; 20], [2; 20], [3; 20]);
        assert!(rotate(vec![a, b, c], 2, 2).validate().is_ok());
        assert!(rotate(vec![a], 1, 1).validate().is_ok());
        assert_eq!(message(rotate(vec![], 1, 1)), "guardians: required");
        assert_eq!(
            message(rotate(vec![a, b, a], 2, 2)),
            format!(
                "guardians: {} is listed twice (entries 0 and 2)",
                to_hex(&a)
            )
        );
        assert_eq!(
            message(rotate(vec![a, [0; 20]], 1, 1)),
            "guardians: entry 1 is the zero address"
        );
        assert_eq!(
            message(rotate(vec![a, b, c], 0, 1)),
            "threshold: must be in 1..=3 (the number of guardians), got 0"
        );
        assert_eq!(
            message(rotate(vec![a, b, c], 4, 1)),
            "threshold: must be in 1..=3 (the number of guardians), got 4"
        );
        assert_eq!(
            message(rotate(vec![a, b, c], 3, 0)),
            "pause_threshold: must be in 1..=3 (the number of guardians), got 0"
        );
        let many: Vec<[u8; 20]> = (1..=33_u8).map(|i| [i; 20]).collect();
        assert_eq!(
            message(rotate(many.clone(), 1, 1)),
            "guardians: at most 32 allowed, got 33"
        );
        assert!(rotate(many[..32].to_vec(), 32, 32).validate().is_ok());
        assert_eq!(
            check_guardian_set(&[a], 300, 1).unwrap_err().to_string(),
            "threshold: must be in 1..=1 (the number of guardians), got 300"
        );
    }

    #[test]
    fn governance_requests_have_methods_kinds_and_log_safe_text() {
        let propose = AdminRequest::Propose {
            chain_id: Some(31337),
            change: set_member(),
        };
        assert_eq!(propose.method(), "ProposeGovernance");
        assert_eq!(
            propose.to_string(),
            format!(
                "propose to set member {} recipient {} home 31337 cap 1000 deductible 10 \
                 coverage limit 5000 per 86400 s on chain 31337",
                to_hex(&[0x0a; 32]),
                to_hex(&[0xbe; 20])
            )
        );
        let mut floor = [0; 32];
        floor[31] = 7;
        let limits = AdminRequest::Propose {
            chain_id: None,
            change: GovernanceChange::SetLimits {
                bucket_capacity: 5,
                refill_per_second: 1,
                reserve_floor: floor,
                withdraw_cooldown_s: 60,
                emergency_duration_s: 3600,
            },
        };
        assert_eq!(
            limits.to_string(),
            "propose to set limits bucket 5 refill 1/s reserve floor 7 withdraw cooldown 60 s \
             emergency 3600 s on every chain"
        );
        let guardians = rotate(vec![[1; 20], [2; 20]], 2, 1);
        assert_eq!(guardians.kind(), "rotate_guardians");
        assert_eq!(
            guardians.to_string(),
            format!(
                "rotate guardians to [{}, {}] threshold 2 pause threshold 1",
                to_hex(&[1; 20]),
                to_hex(&[2; 20])
            )
        );
        assert_eq!(set_member().kind(), "set_member");
        assert_eq!(
            GovernanceChange::DisableMember { member: [1; 32] }.kind(),
            "disable_member"
        );
        let approve = AdminRequest::Approve {
            id: [0x1d; 32],
            digest: [0xd1; 32],
        };
        assert_eq!(approve.method(), "ApproveProposal");
        assert!(approve.validate().is_ok());
        assert_eq!(
            approve.to_string(),
            format!(
                "approve proposal {} with digest {}",
                to_hex(&[0x1d; 32]),
                to_hex(&[0xd1; 32])
            )
        );
        for text in [propose.to_string(), limits.to_string(), approve.to_string()] {
            assert!(!text.chars().any(char::is_control), "{text}");
        }
    }
}
