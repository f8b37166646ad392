//! `backstop admin propose ...`: governance changes as operators type them, parsed into the
//! API's [`GovernanceChange`] (decimal amounts, hex ids and addresses, checked here and
//! again by the node).

use backstop_api::GovernanceChange;
use backstop_api::model::{FieldError, parse_address, parse_bytes32, parse_u128, parse_uint256};
use clap::Subcommand;

/// A governance change to propose.
#[derive(Subcommand, Debug)]
pub enum ProposeCommand {
    /// Add a member, or change its terms, on its home vault and every other vault.
    SetMember {
        /// bytes32 member id.
        member: String,
        /// Address its payouts go to.
        #[arg(long)]
        recipient: String,
        /// Chain id of its home vault.
        #[arg(long)]
        home_chain: u64,
        /// Per-incident cap (pool-token base units).
        #[arg(long)]
        cap: String,
        /// Deductible it always bears.
        #[arg(long)]
        deductible: String,
        /// Most its vaults pay it within one coverage window.
        #[arg(long)]
        coverage_limit: String,
        /// Length of the coverage window (s).
        #[arg(long)]
        coverage_window_s: u64,
    },
    /// Disable a member: its cap, deductible and coverage limit set to zero.
    DisableMember {
        /// bytes32 member id.
        member: String,
    },
    /// Change the vaults' outflow bucket, reserve floor, cooldown and emergency duration.
    SetLimits {
        /// Outflow bucket capacity.
        #[arg(long)]
        bucket_capacity: String,
        /// Outflow bucket refill per second.
        #[arg(long)]
        refill_per_second: String,
        /// Reserve floor (uint256).
        #[arg(long)]
        reserve_floor: String,
        /// Withdrawal cooldown (s).
        #[arg(long)]
        withdraw_cooldown_s: u64,
        /// How long an emergency pause or freeze lasts (s).
        #[arg(long)]
        emergency_duration_s: u64,
    },
    /// Replace the guardian set; t and p must be n − f and f + 1 of the new set.
    RotateGuardians {
        /// A guardian address (repeat for each; ascending order).
        #[arg(long = "guardian", required = true)]
        guardians: Vec<String>,
        /// Signatures to pay or lift (n − f).
        #[arg(long)]
        threshold: u8,
        /// Signatures to stop (f + 1).
        #[arg(long)]
        pause_threshold: u8,
    },
}

impl ProposeCommand {
    /// The change, its fields parsed.
    pub fn change(self) -> Result<GovernanceChange, FieldError> {
        Ok(match self {
            Self::SetMember {
                member,
                recipient,
                home_chain,
                cap,
                deductible,
                coverage_limit,
                coverage_window_s,
            } => GovernanceChange::SetMember {
                member: parse_bytes32("member", &member)?,
                recipient: parse_address("recipient", &recipient)?,
                home_chain_id: home_chain,
                cap: parse_u128("cap", &cap)?,
                deductible: parse_u128("deductible", &deductible)?,
                coverage_limit: parse_u128("coverage_limit", &coverage_limit)?,
                coverage_window_s,
            },
            Self::DisableMember { member } => GovernanceChange::DisableMember {
                member: parse_bytes32("member", &member)?,
            },
            Self::SetLimits {
                bucket_capacity,
                refill_per_second,
                reserve_floor,
                withdraw_cooldown_s,
                emergency_duration_s,
            } => GovernanceChange::SetLimits {
                bucket_capacity: parse_u128("bucket_capacity", &bucket_capacity)?,
                refill_per_second: parse_u128("refill_per_second", &refill_per_second)?,
                reserve_floor: parse_uint256("reserve_floor", &reserve_floor)?,
                withdraw_cooldown_s,
                emergency_duration_s,
            },
            Self::RotateGuardians {
                guardians,
                threshold,
                pause_threshold,
            } => GovernanceChange::RotateGuardians {
                guardians: guardians
                    .iter()
                    .map(|g| parse_address("guardian", g))
                    .collect::<Result<_, _>>()?,
                threshold,
                pause_threshold,
            },
        })
    }
}
