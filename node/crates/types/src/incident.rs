//! Incidents: the key that names one, its attempts, and the phases it goes through.

use std::fmt;

use alloy::primitives::B256;
use serde::Serialize;

/// Attempt number of an incident, starting at 0.
pub type Attempt = u32;

/// An incident: the member and the home vault's `nextSeq(member)` when it opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IncidentKey {
    /// Member identifier (the same on every chain).
    pub member: B256,
    /// Draw sequence on the member's home vault.
    pub seq: u64,
}

/// Where an incident stands in the draw protocol; phases only move forward.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IncidentPhase {
    /// Gap observed, no proposal yet.
    #[default]
    Open,
    /// A draw is proposed and being attested.
    Proposed,
    /// t signatures over one draw digest.
    Certified,
    /// The home vault registered the draw.
    Registered,
    /// Remote legs are being released.
    Releasing,
    /// Every leg paid or past its deadline, or the gap resolved.
    Closed,
}

impl IncidentPhase {
    /// Every phase, in protocol order.
    pub const ALL: [IncidentPhase; 6] = [
        Self::Open,
        Self::Proposed,
        Self::Certified,
        Self::Registered,
        Self::Releasing,
        Self::Closed,
    ];

    /// Upper-case name (`OPEN`, …), as in the API and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "OPEN",
            Self::Proposed => "PROPOSED",
            Self::Certified => "CERTIFIED",
            Self::Registered => "REGISTERED",
            Self::Releasing => "RELEASING",
            Self::Closed => "CLOSED",
        }
    }

    /// Lower-case name (`open`, …), as in logs and timelines.
    pub fn name(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Proposed => "proposed",
            Self::Certified => "certified",
            Self::Registered => "registered",
            Self::Releasing => "releasing",
            Self::Closed => "closed",
        }
    }
}

impl fmt::Display for IncidentPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
