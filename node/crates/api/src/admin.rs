//! Admin requests from the operator API to the node's runtime.
//!
//! The gRPC layer authenticates the caller, parses and validates every field (hex lengths,
//! kinds, chain ids, reason length) and only then sends an [`AdminCommand`] over a bounded
//! `tokio::sync::mpsc` channel ([`channel`]) to the runtime, which answers once on the
//! command's `oneshot` with what it started, or an [`AdminError`]. So the runtime only ever
//! receives well-formed requests: bytes32 values are already decoded, chain ids are non-zero
//! and the reason is at most [`MAX_REASON_LEN`] bytes.
//!
//! The API never waits for room in the queue (a full queue is RESOURCE_EXHAUSTED) and waits
//! at most [`REPLY_TIMEOUT`] for the reply; the runtime should reply as soon as the action
//! is started, not when it completes on chain.

use std::fmt;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::logsafe::Escaped;
use crate::model::{FieldError, SignalKind, to_hex};

/// Longest operator reason accepted, in bytes.
pub const MAX_REASON_LEN: usize = 256;

/// How long the API waits for the runtime's reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Suggested capacity of the admin queue.
pub const DEFAULT_QUEUE: usize = 16;

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
}

impl AdminRequest {
    /// Checks the fields that the types do not: non-zero chain ids, reason length.
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
            | Self::ClearAlert { chain_id: 0, .. } => {
                Err(FieldError::Missing { field: "chain_id" })
            }
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
}
