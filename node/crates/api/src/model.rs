//! What the operator API shows, as plain Rust data, and [`ApiState`], the shared handle
//! through which the node's runtime publishes it.
//!
//! The runtime owns an [`ApiState`] (cheap to clone) and replaces or updates each part of
//! the [`Model`] as its view changes; the gRPC service only reads snapshots. Values are
//! already in their display form: hashes, ids and addresses as `0x`-prefixed lowercase hex,
//! token amounts (uint256) as decimal strings. The model does not check them: the runtime
//! renders them from typed values. The one exception is the stress report
//! ([`Model::stress`]): the runtime's typed [`StressReport`], shared as an `Arc` and rendered
//! only by the API's protobuf conversion (one evaluation is never copied).
//!
//! Invariants kept here:
//! - readers never see a half-applied update: every update takes the write lock once;
//! - the event broadcast is bounded ([`ApiState::with_event_capacity`]); a subscriber that
//!   falls more than the capacity behind loses the oldest events, and the number lost is
//!   counted ([`ApiState::events_lost`]) and reported to that subscriber (see
//!   `server`), never blocking the publisher;
//! - the ready flag and the model's `ready` field always agree (the health service
//!   follows the flag);
//! - at most [`MAX_PROPOSALS`] governance proposals are held (the ended ones proposed
//!   first are left out first), whatever the runtime writes;
//! - every member's `breakers` lists exactly the active breakers whose `members_blocked`
//!   names it (ids compared without regard to case), in the order of [`Model::breakers`]:
//!   [`ApiState`] derives it after every update, so the runtime only publishes breakers.
//!
//! The module also parses the identifiers and amounts the API accepts ([`parse_bytes32`],
//! [`parse_address`], [`IncidentId`], [`parse_u128`], [`parse_uint256`]), with errors that
//! name the offending field.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use backstop_stress::StressReport;
use backstop_types::time::now_ms;
pub use backstop_types::{BreakerKind, IncidentPhase, SignalKind};
use serde::Serialize;
use tokio::sync::{broadcast, watch};

/// Default capacity of the event broadcast (events a subscriber may fall behind).
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;

/// Longest incident id accepted ("0x" + 64 hex + ":" + 20 digits is 87).
pub const MAX_ID_LEN: usize = 128;

/// Most governance proposals shown ([`ApiState::set_proposals`]).
pub const MAX_PROPOSALS: usize = 256;

/// Error in a field of a request or of a user-supplied identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// Not `0x` followed by the expected number of hex digits.
    #[error("{field}: expected 0x followed by {digits} hex digits, got {got:?}")]
    Hex {
        /// Name of the field.
        field: &'static str,
        /// Expected number of hex digits.
        digits: usize,
        /// The value received (shortened when long).
        got: String,
    },
    /// Longer than allowed.
    #[error("{field}: at most {max} bytes allowed, got {len}")]
    TooLong {
        /// Name of the field.
        field: &'static str,
        /// Largest length allowed.
        max: usize,
        /// Length received.
        len: usize,
    },
    /// Empty or zero where a value is required.
    #[error("{field}: required")]
    Missing {
        /// Name of the field.
        field: &'static str,
    },
    /// Not an incident id.
    #[error("incident id: expected \"0x<64 hex digits>:<seq>\", got {0:?}")]
    IncidentId(String),
    /// Not an unsigned decimal integer (digits only).
    #[error("{field}: expected an unsigned decimal integer, got {got:?}")]
    Decimal {
        /// Name of the field.
        field: &'static str,
        /// The value received (shortened when long).
        got: String,
    },
    /// A decimal integer larger than its type allows.
    #[error("{field}: larger than uint{bits} allows (2^{bits} - 1), got {got:?}")]
    Overflow {
        /// Name of the field.
        field: &'static str,
        /// Width of the type, in bits.
        bits: u32,
        /// The value received (shortened when long).
        got: String,
    },
    /// Well-formed but not allowed (zero address, duplicate, out of range).
    #[error("{field}: {reason}")]
    Invalid {
        /// Name of the field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Shortens `s` for an error message.
fn shorten(s: &str) -> String {
    const MAX: usize = 80;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Parses `0x` + exactly `N * 2` hex digits (either case) into bytes.
pub fn parse_hex<const N: usize>(field: &'static str, s: &str) -> Result<[u8; N], FieldError> {
    let err = || FieldError::Hex {
        field,
        digits: N * 2,
        got: shorten(s),
    };
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .ok_or_else(err)?;
    if digits.len() != N * 2 {
        return Err(err());
    }
    let mut out = [0u8; N];
    for (i, pair) in digits.as_bytes().chunks_exact(2).enumerate() {
        let hi = hex_value(pair[0]).ok_or_else(err)?;
        let lo = hex_value(pair[1]).ok_or_else(err)?;
        out[i] = (hi << 4) | lo;
    }
    Ok(out)
}

/// Value of one hex digit.
fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Parses a bytes32 value (`0x` + 64 hex digits).
pub fn parse_bytes32(field: &'static str, s: &str) -> Result<[u8; 32], FieldError> {
    parse_hex::<32>(field, s)
}

/// Parses an EVM address (`0x` + 40 hex digits, either case; no checksum check).
pub fn parse_address(field: &'static str, s: &str) -> Result<[u8; 20], FieldError> {
    parse_hex::<20>(field, s)
}

/// The digits of an unsigned decimal integer: ASCII digits only, at least one.
fn decimal_digits<'a>(field: &'static str, s: &'a str) -> Result<&'a [u8], FieldError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FieldError::Decimal {
            field,
            got: shorten(s),
        });
    }
    Ok(s.as_bytes())
}

/// Parses an unsigned decimal integer (`"0"`, `"1500"`; digits only, no sign, no spaces)
/// that fits 128 bits.
pub fn parse_u128(field: &'static str, s: &str) -> Result<u128, FieldError> {
    let overflow = || FieldError::Overflow {
        field,
        bits: 128,
        got: shorten(s),
    };
    decimal_digits(field, s)?.iter().try_fold(0_u128, |acc, d| {
        acc.checked_mul(10)
            .and_then(|v| v.checked_add(u128::from(d - b'0')))
            .ok_or_else(overflow)
    })
}

/// Parses an unsigned decimal integer that fits 256 bits into its 32 big-endian bytes.
pub fn parse_uint256(field: &'static str, s: &str) -> Result<[u8; 32], FieldError> {
    let mut out = [0u8; 32];
    for d in decimal_digits(field, s)? {
        // out = out * 10 + d, from the least significant byte up.
        let mut carry = u16::from(d - b'0');
        for byte in out.iter_mut().rev() {
            let v = u16::from(*byte) * 10 + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
        }
        if carry != 0 {
            return Err(FieldError::Overflow {
                field,
                bits: 256,
                got: shorten(s),
            });
        }
    }
    Ok(out)
}

/// The decimal form of a big-endian unsigned 256-bit integer (`"0"` for zero).
pub fn uint256_to_decimal(value: &[u8; 32]) -> String {
    let mut n = *value;
    let mut digits = Vec::with_capacity(78);
    while n.iter().any(|&b| b != 0) {
        // n = n / 10, remainder the next digit, from the most significant byte down.
        let mut rem = 0_u16;
        for byte in &mut n {
            let v = (rem << 8) | u16::from(*byte);
            *byte = (v / 10) as u8;
            rem = v % 10;
        }
        digits.push(b'0' + rem as u8);
    }
    if digits.is_empty() {
        return "0".to_owned();
    }
    digits.iter().rev().map(|&d| char::from(d)).collect()
}

/// `0x` + lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(2 + bytes.len() * 2);
    s.push_str("0x");
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// An incident's identifier: the member and its draw sequence number, written
/// `0x<member, 64 hex digits>:<seq>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IncidentId {
    /// Member id (bytes32).
    pub member: [u8; 32],
    /// The home vault's sequence number of the draw.
    pub seq: u64,
}

impl fmt::Display for IncidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", to_hex(&self.member), self.seq)
    }
}

impl FromStr for IncidentId {
    type Err = FieldError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || FieldError::IncidentId(shorten(s));
        if s.len() > MAX_ID_LEN {
            return Err(bad());
        }
        let (member, seq) = s.rsplit_once(':').ok_or_else(bad)?;
        let member = parse_bytes32("incident id member", member).map_err(|_| bad())?;
        if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let seq = seq.parse::<u64>().map_err(|_| bad())?;
        Ok(Self { member, seq })
    }
}

/// The node's identity and configuration, set by the runtime.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NodeInfo {
    /// Operator-chosen node name.
    pub node_name: String,
    /// libp2p PeerId (base58).
    pub peer_id: String,
    /// The node's guardian address (`0x` + 40 hex).
    pub guardian_address: String,
    /// Software version.
    pub version: String,
    /// Consortium size.
    pub n: u32,
    /// Pay/lift threshold t = n - f.
    pub t: u32,
    /// Stop threshold p = f + 1.
    pub p: u32,
}

/// Summary counts derived from the model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatusCounts {
    /// Peers with an open connection.
    pub peers_connected: u32,
    /// Peers known.
    pub peers_total: u32,
    /// Chains configured.
    pub chains: u32,
    /// Chains flagged halted.
    pub chains_halted: u32,
    /// Member protocols.
    pub members: u32,
    /// Incidents not closed.
    pub incidents_open: u32,
    /// Incidents known.
    pub incidents_total: u32,
    /// Signals not cleared.
    pub signals_active: u32,
    /// Breakers active (neither lifted nor expired).
    pub breakers_active: u32,
}

/// What `GetStatus` answers: identity, readiness, uptime and counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    /// Identity and configuration.
    #[serde(flatten)]
    pub info: NodeInfo,
    /// True once the node has loaded its state and started its components.
    pub ready: bool,
    /// Seconds since the [`ApiState`] was created.
    pub uptime_seconds: u64,
    /// Counts derived from the model.
    #[serde(flatten)]
    pub counts: StatusCounts,
    /// This node's clock against the chains.
    #[serde(flatten)]
    pub clock: ClockView,
}

/// This node's clock against the chains' block timestamps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClockView {
    /// `now - timestamp` of the freshest confirmed block over the chains (ms); `None`
    /// before the first block.
    pub clock_offset_ms: Option<i64>,
    /// Empty while the clock agrees with the chains; else what is wrong and what it does.
    pub clock_warning: String,
}

/// Another consortium node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PeerView {
    /// libp2p PeerId (base58).
    pub peer_id: String,
    /// Node name from the consortium configuration.
    pub name: String,
    /// True while a connection is open.
    pub connected: bool,
    /// Last known multiaddress, empty if none.
    pub address: String,
}

/// A chain's vault state at the confirmed head.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VaultView {
    /// Vault address.
    pub address: String,
    /// Pool-token balance (decimal).
    pub balance: String,
    /// What the vault could pay now (decimal).
    pub available_for_payout: String,
    /// Outflow bucket level (decimal).
    pub bucket_available: String,
    /// Reserve floor (decimal).
    pub reserve: String,
    /// Vault paused.
    pub paused: bool,
    /// Index of the current guardian set.
    pub guardian_set_index: u64,
    /// Signatures to pay or lift.
    pub threshold: u32,
    /// Signatures to stop.
    pub pause_threshold: u32,
}

/// One chain of the pool.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChainView {
    /// EVM chain id.
    pub chain_id: u64,
    /// Chain name from the configuration.
    pub name: String,
    /// Latest head number.
    pub head_number: u64,
    /// Latest head hash (`0x` + 64 hex).
    pub head_hash: String,
    /// Latest head's block timestamp, seconds since the Unix epoch.
    pub head_time: u64,
    /// Latest confirmed head number.
    pub confirmed_head: u64,
    /// No new head within the bound.
    pub halted: bool,
    /// Allocations skip this chain's vault.
    pub quarantined: bool,
    /// Reorgs deeper than the confirmation depth seen since the node started.
    pub deep_reorgs: u64,
    /// The vault, once read.
    pub vault: Option<VaultView>,
}

/// A member protocol.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MemberView {
    /// Member id (`0x` + 64 hex).
    pub id: String,
    /// Name from the configuration.
    pub name: String,
    /// Chain id of its home vault.
    pub home_chain_id: u64,
    /// Payouts to it frozen.
    pub frozen: bool,
    /// The home vault's `nextSeq(member)`.
    pub next_seq: u64,
    /// Last observed assets (decimal).
    pub assets: String,
    /// Last observed liabilities (decimal).
    pub liabilities: String,
    /// max(0, liabilities - assets) (decimal).
    pub gap: String,
    /// Per-incident cap (decimal).
    pub cap: String,
    /// Deductible it always bears (decimal).
    pub deductible: String,
    /// Ids of the active breakers blocking it (derived by [`ApiState`] from
    /// [`Model::breakers`]; whatever the runtime writes here is replaced).
    pub breakers: Vec<String>,
}

/// State of one leg of a draw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LegStatus {
    /// Not paid yet.
    #[default]
    Pending,
    /// A transaction paying it is in flight.
    Submitted,
    /// Paid.
    Executed,
    /// Past its deadline unpaid.
    Expired,
}

impl LegStatus {
    /// Upper-case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Submitted => "SUBMITTED",
            Self::Executed => "EXECUTED",
            Self::Expired => "EXPIRED",
        }
    }
}

impl fmt::Display for LegStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One chain's share of a draw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LegView {
    /// Chain of the paying vault.
    pub chain_id: u64,
    /// Paying vault address.
    pub vault: String,
    /// Amount (decimal).
    pub amount: String,
    /// Leg state.
    pub status: LegStatus,
    /// Transaction paying it, empty if none.
    pub tx_hash: String,
    /// Block of the transaction that paid it, when paid.
    pub block_number: Option<u64>,
}

/// A block a draw was computed at.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PinnedBlockView {
    /// Chain.
    pub chain_id: u64,
    /// Block number.
    pub number: u64,
    /// Block hash (`0x` + 64 hex).
    pub hash: String,
}

/// Where a draw was registered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RegistrationView {
    /// The member's home chain.
    pub chain_id: u64,
    /// The home vault.
    pub vault: String,
    /// The registering transaction.
    pub tx_hash: String,
    /// Its block.
    pub block_number: u64,
}

/// A guardian signature the node holds for the draw digest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AttestationView {
    /// Guardian address.
    pub signer: String,
    /// Digest signed.
    pub digest: String,
}

/// One step of an incident's history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TimelineEntry {
    /// When, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Block the step refers to, if any.
    pub block_number: Option<u64>,
    /// What happened.
    pub what: String,
}

/// An incident: a member's draw sequence number on its home vault.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IncidentView {
    /// Member id (`0x` + 64 hex).
    pub member: String,
    /// Draw sequence number.
    pub seq: u64,
    /// Protocol phase.
    pub phase: IncidentPhase,
    /// Current proposal attempt.
    pub attempt: u32,
    /// Gap that opened it (decimal).
    pub gap: String,
    /// Draw amount (decimal).
    pub draw_amount: String,
    /// What nobody can cover (decimal).
    pub uncovered_amount: String,
    /// Draw digest, empty before a proposal.
    pub draw_hash: String,
    /// Legs of the draw.
    pub legs: Vec<LegView>,
    /// Signatures held.
    pub attestations: Vec<AttestationView>,
    /// Transactions sent for it.
    pub tx_hashes: Vec<String>,
    /// History.
    pub timeline: Vec<TimelineEntry>,
    /// Home-chain block at which `gap` was read (the latest reading).
    pub gap_block: Option<u64>,
    /// Blocks the draw was computed at, one per chain (empty when not seen here).
    pub pinned: Vec<PinnedBlockView>,
    /// The gap the draw was computed for (decimal), "0" before a proposal.
    pub draw_gap: String,
    /// The member's deductible read with the gap (decimal).
    pub deductible: String,
    /// The registration on the home vault, once registered.
    pub registration: Option<RegistrationView>,
    /// The member's `solvency()` contract (as configured), empty if unknown.
    pub solvency_contract: String,
}

impl IncidentView {
    /// The incident id, `<member>:<seq>`.
    pub fn id(&self) -> String {
        format!("{}:{}", self.member, self.seq)
    }

    /// True when this view is the incident `id` (member compared without regard to case).
    pub fn is(&self, id: &IncidentId) -> bool {
        self.seq == id.seq && parse_bytes32("member", &self.member).is_ok_and(|m| m == id.member)
    }
}

/// A `(kind, subject)` signal and who asserted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignalView {
    /// Kind.
    pub kind: SignalKind,
    /// Subject (`0x` + 64 hex).
    pub subject: String,
    /// Nodes that asserted it within the window.
    pub raised_by: Vec<String>,
    /// At least p distinct nodes asserted it.
    pub confirmed: bool,
    /// First assertion, ms since the Unix epoch.
    pub first_seen_ms: u64,
    /// Latest assertion, ms since the Unix epoch.
    pub last_seen_ms: u64,
    /// When it lapses unless renewed.
    pub expires_ms: Option<u64>,
    /// Lifted.
    pub cleared: bool,
}

/// State of one on-chain effect of a breaker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EffectStatus {
    /// Not executed yet (gathering signatures or in flight).
    #[default]
    Pending,
    /// Executed on chain.
    Executed,
    /// Undone on chain (lifted early or expired).
    Lifted,
}

impl EffectStatus {
    /// Upper-case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Executed => "EXECUTED",
            Self::Lifted => "LIFTED",
        }
    }
}

impl fmt::Display for EffectStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One on-chain action a breaker takes on one chain's vault.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BreakerEffectView {
    /// Chain of the vault acted on.
    pub chain_id: u64,
    /// What is done: `freeze member`, `raise alert` or `pause`.
    pub action: String,
    /// Subject of the action (`0x` + 64 hex: the member frozen, the alert subject); empty
    /// for a pause.
    pub subject: String,
    /// Alert level for `raise alert`, 0 otherwise.
    pub level: u32,
    /// Where it stands.
    pub status: EffectStatus,
    /// Transaction that executed it, empty until executed.
    pub tx_hash: String,
}

/// A circuit breaker: a confirmed signal turned into protective measures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BreakerView {
    /// `<kind>:<subject>`, e.g. `exploit:0x<64 hex>`.
    pub id: String,
    /// What tripped it.
    pub kind: BreakerKind,
    /// Subject (`0x` + 64 hex): a member id, an oracle id or a chain subject.
    pub subject: String,
    /// Why it tripped, human-readable.
    pub cause: String,
    /// When it tripped, ms since the Unix epoch.
    pub tripped_ms: u64,
    /// When it lapses unless renewed.
    pub expires_ms: Option<u64>,
    /// Member ids (`0x` + 64 hex) whose draws this node refuses to attest while it is
    /// active.
    pub members_blocked: Vec<String>,
    /// Chains whose vaults allocations skip while it is active.
    pub chains_quarantined: Vec<u64>,
    /// Its on-chain actions.
    pub effects: Vec<BreakerEffectView>,
    /// False once lifted or expired (kept for a while for history).
    pub active: bool,
    /// How it ended (`lifted on chain <id> (tx …)`, `expired`); empty while active.
    pub lifted_by: String,
}

impl BreakerView {
    /// True when it is active and blocks member `id` (compared without regard to case).
    pub fn blocks_member(&self, id: &str) -> bool {
        self.active
            && self
                .members_blocked
                .iter()
                .any(|m| m.eq_ignore_ascii_case(id))
    }

    /// True when it is active and quarantines chain `chain_id`.
    pub fn quarantines_chain(&self, chain_id: u64) -> bool {
        self.active && self.chains_quarantined.contains(&chain_id)
    }
}

/// Where a governance proposal stands as a whole.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProposalStatus {
    /// Collecting approvals, or executing on some of its vaults.
    #[default]
    Open,
    /// Executed on every target vault.
    Executed,
    /// Past its deadline before it executed everywhere.
    Expired,
    /// Refused by the node ([`ProposalView::reason`] says why).
    Rejected,
    /// Another proposal with the same id but a different digest is known
    /// ([`ProposalView::reason`] says which).
    Conflicting,
}

impl ProposalStatus {
    /// Upper-case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "OPEN",
            Self::Executed => "EXECUTED",
            Self::Expired => "EXPIRED",
            Self::Rejected => "REJECTED",
            Self::Conflicting => "CONFLICTING",
        }
    }
}

impl fmt::Display for ProposalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a governance proposal stands on one target vault.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProposalChainStatus {
    /// Collecting approvals.
    #[default]
    Waiting,
    /// t signatures held, submission pending.
    Certified,
    /// A transaction executing it is in flight.
    Submitted,
    /// Executed on this vault.
    Executed,
    /// Past its deadline unexecuted on this vault.
    Expired,
}

impl ProposalChainStatus {
    /// Upper-case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "WAITING",
            Self::Certified => "CERTIFIED",
            Self::Submitted => "SUBMITTED",
            Self::Executed => "EXECUTED",
            Self::Expired => "EXPIRED",
        }
    }
}

impl fmt::Display for ProposalChainStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A governance proposal on one target vault.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProposalChainView {
    /// Chain of the vault.
    pub chain_id: u64,
    /// Chain name from the configuration.
    pub chain_name: String,
    /// Where it stands on this vault.
    pub status: ProposalChainStatus,
    /// Approvals (guardian signatures) held for this vault.
    pub signatures: u32,
    /// Signatures this vault needs (its threshold).
    pub quorum: u32,
    /// Transaction that executes it (`0x` + 64 hex), empty until submitted.
    pub tx_hash: String,
}

/// A governance proposal: one change to the consortium's vaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProposalView {
    /// Action id (`0x` + 64 hex), the same on every target vault.
    pub id: String,
    /// Proposal digest (`0x` + 64 hex): what an operator approves.
    pub digest: String,
    /// What it changes: `set_member`, `disable_member`, `set_limits` or `rotate_guardians`
    /// (see [`crate::admin::GovernanceChange::kind`]).
    pub kind: String,
    /// Its parameters, human-readable.
    pub summary: String,
    /// Name of the node whose operator proposed it.
    pub proposer: String,
    /// When it was proposed, ms since the Unix epoch.
    pub proposed_at_ms: u64,
    /// Unix time in seconds after which the vaults refuse it.
    pub deadline_s: u64,
    /// Where it stands as a whole.
    pub status: ProposalStatus,
    /// Why it is rejected or conflicting; empty otherwise.
    pub reason: String,
    /// This node's operator approved it.
    pub approved_here: bool,
    /// One entry per target vault.
    pub chains: Vec<ProposalChainView>,
}

/// What a node event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Incident phase change, proposal, certificate, registration, leg.
    Incident,
    /// Signal raised, confirmed, cleared.
    Signal,
    /// Chain halt, resume, quarantine, reorg.
    Chain,
    /// Peer connected or lost.
    Peer,
    /// On-chain action (freeze, pause, alert) started or done.
    Action,
    /// Node lifecycle.
    Node,
    /// The subscriber missed events (only ever produced by the API for a slow subscriber).
    EventsLost,
    /// A stress scenario's 24-hour coverage crossed 1.0, down or back up.
    Stress,
}

impl EventKind {
    /// Snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Incident => "incident",
            Self::Signal => "signal",
            Self::Chain => "chain",
            Self::Peer => "peer",
            Self::Action => "action",
            Self::Node => "node",
            Self::EventsLost => "events_lost",
            Self::Stress => "stress",
        }
    }
}

/// Something that happened in the node, as streamed by `StreamEvents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeEvent {
    /// When, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// What it is about.
    pub kind: EventKind,
    /// Incident id, chain id, subject or peer id; may be empty.
    pub subject: String,
    /// Human-readable description.
    pub text: String,
}

impl NodeEvent {
    /// An event stamped with the current time.
    pub fn now(kind: EventKind, subject: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            timestamp_ms: now_ms(),
            kind,
            subject: subject.into(),
            text: text.into(),
        }
    }
}

/// Everything the API shows, as one value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Model {
    /// Identity and configuration.
    pub info: NodeInfo,
    /// Readiness (kept equal to the health flag by [`ApiState`]).
    pub ready: bool,
    /// Other nodes.
    pub peers: Vec<PeerView>,
    /// Chains, in the runtime's order.
    pub chains: Vec<ChainView>,
    /// Member protocols.
    pub members: Vec<MemberView>,
    /// Incidents, oldest first.
    pub incidents: Vec<IncidentView>,
    /// Signals.
    pub signals: Vec<SignalView>,
    /// Circuit breakers, active and recently ended.
    pub breakers: Vec<BreakerView>,
    /// Governance proposals, open and recently ended, in the runtime's order (at most
    /// [`MAX_PROPOSALS`], see [`ApiState::set_proposals`]).
    pub proposals: Vec<ProposalView>,
    /// This node's clock against the chains.
    pub clock: ClockView,
    /// The latest evaluation of the stress scenarios, shared with the runtime as it is
    /// (`None` before the first).
    pub stress: Option<Arc<StressReport>>,
}

impl Model {
    /// Counts shown by `GetStatus`.
    pub fn counts(&self) -> StatusCounts {
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        StatusCounts {
            peers_connected: count(self.peers.iter().filter(|p| p.connected).count()),
            peers_total: count(self.peers.len()),
            chains: count(self.chains.len()),
            chains_halted: count(self.chains.iter().filter(|c| c.halted).count()),
            members: count(self.members.len()),
            incidents_open: count(
                self.incidents
                    .iter()
                    .filter(|i| i.phase != IncidentPhase::Closed)
                    .count(),
            ),
            incidents_total: count(self.incidents.len()),
            signals_active: count(self.signals.iter().filter(|s| !s.cleared).count()),
            breakers_active: count(self.breakers.iter().filter(|b| b.active).count()),
        }
    }

    /// True when chain `chain_id` is quarantined: its view says so, or an active breaker
    /// lists it.
    pub fn chain_quarantined(&self, chain_id: u64) -> bool {
        self.chains
            .iter()
            .any(|c| c.chain_id == chain_id && c.quarantined)
            || self.breakers.iter().any(|b| b.quarantines_chain(chain_id))
    }

    /// Sets every member's `breakers` to the ids of the active breakers blocking it.
    fn derive_member_breakers(&mut self) {
        let breakers = &self.breakers;
        for member in &mut self.members {
            member.breakers = breakers
                .iter()
                .filter(|b| b.blocks_member(&member.id))
                .map(|b| b.id.clone())
                .collect();
        }
    }
}

/// Keeps at most [`MAX_PROPOSALS`] of `proposals`, in their order: the ones left out are
/// the ended ones (not open) proposed first, then, if still too many, the open ones
/// proposed first.
fn bound_proposals(proposals: &mut Vec<ProposalView>) {
    if proposals.len() <= MAX_PROPOSALS {
        return;
    }
    let excess = proposals.len() - MAX_PROPOSALS;
    let mut order: Vec<usize> = (0..proposals.len()).collect();
    order.sort_by_key(|&i| {
        let p = &proposals[i];
        (p.status == ProposalStatus::Open, p.proposed_at_ms, i)
    });
    let mut keep = vec![true; proposals.len()];
    for &i in &order[..excess] {
        keep[i] = false;
    }
    let mut flags = keep.into_iter();
    proposals.retain(|_| flags.next().unwrap_or(true));
}

/// Replaces the element of `items` matching `same`, or appends `item`.
fn upsert<T>(items: &mut Vec<T>, item: T, same: impl Fn(&T, &T) -> bool) {
    match items.iter_mut().find(|x| same(x, &item)) {
        Some(slot) => *slot = item,
        None => items.push(item),
    }
}

/// State shared by the runtime (writer) and the API (reader).
struct Shared {
    model: RwLock<Model>,
    events: broadcast::Sender<NodeEvent>,
    ready: watch::Sender<bool>,
    started: Instant,
    events_lost: AtomicU64,
}

/// Handle on what the API shows; clone it freely. The runtime writes, the API reads.
#[derive(Clone)]
pub struct ApiState {
    shared: Arc<Shared>,
}

impl fmt::Debug for ApiState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiState")
            .field("ready", &*self.shared.ready.borrow())
            .field("subscribers", &self.shared.events.receiver_count())
            .finish_non_exhaustive()
    }
}

impl ApiState {
    /// A new state for node `info`, not ready, with [`DEFAULT_EVENT_CAPACITY`]; uptime
    /// counts from now.
    pub fn new(info: NodeInfo) -> Self {
        Self::with_event_capacity(info, DEFAULT_EVENT_CAPACITY)
    }

    /// Like [`ApiState::new`] with `capacity` events of broadcast buffer (at least 1).
    pub fn with_event_capacity(info: NodeInfo, capacity: usize) -> Self {
        let (events, _) = broadcast::channel(capacity.max(1));
        let (ready, _) = watch::channel(false);
        Self {
            shared: Arc::new(Shared {
                model: RwLock::new(Model {
                    info,
                    ..Model::default()
                }),
                events,
                ready,
                started: Instant::now(),
                events_lost: AtomicU64::new(0),
            }),
        }
    }

    /// Applies `f` to the model under the write lock. `ready` is managed by
    /// [`ApiState::set_ready`]; a change made to it here is undone. Members' `breakers` are
    /// derived from [`Model::breakers`] afterwards, and the proposals are bounded as
    /// [`ApiState::set_proposals`] does.
    pub fn update<R>(&self, f: impl FnOnce(&mut Model) -> R) -> R {
        let mut model = self
            .shared
            .model
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let ready = model.ready;
        let out = f(&mut model);
        model.ready = ready;
        model.derive_member_breakers();
        bound_proposals(&mut model.proposals);
        out
    }

    /// Reads the model under the read lock.
    pub fn read<R>(&self, f: impl FnOnce(&Model) -> R) -> R {
        let model = self
            .shared
            .model
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        f(&model)
    }

    /// A copy of the whole model.
    pub fn snapshot(&self) -> Model {
        self.read(Model::clone)
    }

    /// Replaces the node's identity.
    pub fn set_info(&self, info: NodeInfo) {
        self.update(|m| m.info = info);
    }

    /// Sets readiness; the health service reports the Backstop service SERVING exactly
    /// while it is true.
    pub fn set_ready(&self, ready: bool) {
        let mut model = self
            .shared
            .model
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        model.ready = ready;
        self.shared.ready.send_replace(ready);
    }

    /// Current readiness.
    pub fn is_ready(&self) -> bool {
        *self.shared.ready.borrow()
    }

    /// Watches readiness (used by the health reporter).
    pub fn watch_ready(&self) -> watch::Receiver<bool> {
        self.shared.ready.subscribe()
    }

    /// Replaces the peer list.
    pub fn set_peers(&self, peers: Vec<PeerView>) {
        self.update(|m| m.peers = peers);
    }

    /// Replaces or adds one peer (by peer id).
    pub fn upsert_peer(&self, peer: PeerView) {
        self.update(|m| upsert(&mut m.peers, peer, |a, b| a.peer_id == b.peer_id));
    }

    /// Replaces the chain list.
    pub fn set_chains(&self, chains: Vec<ChainView>) {
        self.update(|m| m.chains = chains);
    }

    /// Replaces or adds one chain (by chain id).
    pub fn upsert_chain(&self, chain: ChainView) {
        self.update(|m| upsert(&mut m.chains, chain, |a, b| a.chain_id == b.chain_id));
    }

    /// Replaces the member list.
    pub fn set_members(&self, members: Vec<MemberView>) {
        self.update(|m| m.members = members);
    }

    /// Replaces or adds one member (by id, case-insensitive).
    pub fn upsert_member(&self, member: MemberView) {
        self.update(|m| {
            upsert(&mut m.members, member, |a, b| {
                a.id.eq_ignore_ascii_case(&b.id)
            })
        });
    }

    /// Replaces the incident list (oldest first).
    pub fn set_incidents(&self, incidents: Vec<IncidentView>) {
        self.update(|m| m.incidents = incidents);
    }

    /// Replaces or appends one incident (by member and seq).
    pub fn upsert_incident(&self, incident: IncidentView) {
        self.update(|m| {
            upsert(&mut m.incidents, incident, |a, b| {
                a.seq == b.seq && a.member.eq_ignore_ascii_case(&b.member)
            })
        });
    }

    /// Replaces the signal list.
    pub fn set_signals(&self, signals: Vec<SignalView>) {
        self.update(|m| m.signals = signals);
    }

    /// Replaces or adds one signal (by kind and subject).
    pub fn upsert_signal(&self, signal: SignalView) {
        self.update(|m| {
            upsert(&mut m.signals, signal, |a, b| {
                a.kind == b.kind && a.subject.eq_ignore_ascii_case(&b.subject)
            })
        });
    }

    /// Replaces the breaker list.
    pub fn set_breakers(&self, breakers: Vec<BreakerView>) {
        self.update(|m| m.breakers = breakers);
    }

    /// Replaces or adds one breaker (by id, case-insensitive).
    pub fn upsert_breaker(&self, breaker: BreakerView) {
        self.update(|m| {
            upsert(&mut m.breakers, breaker, |a, b| {
                a.id.eq_ignore_ascii_case(&b.id)
            })
        });
    }

    /// Replaces the governance proposals (in the order to show them, oldest first). At most
    /// [`MAX_PROPOSALS`] are kept: above that, the ended ones (not open) proposed first are
    /// left out, then the open ones proposed first.
    pub fn set_proposals(&self, proposals: Vec<ProposalView>) {
        self.update(|m| m.proposals = proposals);
    }

    /// The governance proposals shown.
    pub fn proposals(&self) -> Vec<ProposalView> {
        self.read(|m| m.proposals.clone())
    }

    /// The breakers, or only the active ones.
    pub fn breakers(&self, active_only: bool) -> Vec<BreakerView> {
        self.read(|m| {
            m.breakers
                .iter()
                .filter(|b| !active_only || b.active)
                .cloned()
                .collect()
        })
    }

    /// The status `GetStatus` answers.
    pub fn status(&self) -> NodeStatus {
        let uptime_seconds = self.shared.started.elapsed().as_secs();
        self.read(|m| NodeStatus {
            info: m.info.clone(),
            ready: m.ready,
            uptime_seconds,
            counts: m.counts(),
            clock: m.clock.clone(),
        })
    }

    /// Replaces the latest stress report (the runtime's, after every evaluation).
    pub fn set_stress(&self, report: Arc<StressReport>) {
        self.update(|m| m.stress = Some(report));
    }

    /// The latest stress report, if any (the read lock is held only to clone the `Arc`).
    pub fn stress(&self) -> Option<Arc<StressReport>> {
        self.read(|m| m.stress.clone())
    }

    /// One incident by id.
    pub fn incident(&self, id: &IncidentId) -> Option<IncidentView> {
        self.read(|m| m.incidents.iter().find(|i| i.is(id)).cloned())
    }

    /// Publishes an event to the current subscribers; returns how many there are.
    /// Never blocks: a subscriber that is too far behind loses the oldest events.
    pub fn publish(&self, event: NodeEvent) -> usize {
        tracing::debug!(
            kind = event.kind.as_str(),
            subject = %crate::logsafe::Escaped(&event.subject),
            text = %crate::logsafe::Escaped(&event.text),
            "node event"
        );
        self.shared.events.send(event).unwrap_or(0)
    }

    /// Subscribes to events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.shared.events.subscribe()
    }

    /// Total events that slow subscribers lost since start.
    pub fn events_lost(&self) -> u64 {
        self.shared.events_lost.load(Ordering::Relaxed)
    }

    /// Counts `n` events lost by one subscriber.
    pub(crate) fn record_lost(&self, n: u64) {
        self.shared.events_lost.fetch_add(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn incident_id_round_trips_and_rejects_garbage() {
        let id = IncidentId {
            member: [0xab; 32],
            seq: 7,
        };
        let s = id.to_string();
        assert_eq!(s, format!("0x{}:7", "ab".repeat(32)));
        assert_eq!(s.parse::<IncidentId>().unwrap(), id);
        assert_eq!(
            s.to_uppercase()
                .replace("0X", "0x")
                .parse::<IncidentId>()
                .unwrap(),
            id
        );
        for bad in [
            "",
            ":1",
            "0x12:1",
            &format!("0x{}", "ab".repeat(32)),
            &format!("0x{}:", "ab".repeat(32)),
            &format!("0x{}:+1", "ab".repeat(32)),
            &format!("0x{}:18446744073709551616", "ab".repeat(32)),
            &format!("0x{}:1", "zz".repeat(32)),
            &format!("{}:1", "ab".repeat(32)),
        ] {
            assert!(
                matches!(bad.parse::<IncidentId>(), Err(FieldError::IncidentId(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn hex_parsing_names_the_field() {
        let err = parse_bytes32("subject", "0x1234").unwrap_err();
        assert_eq!(
            err.to_string(),
            "subject: expected 0x followed by 64 hex digits, got \"0x1234\""
        );
        assert_eq!(to_hex(&parse_hex::<2>("x", "0xA0ff").unwrap()), "0xa0ff");
    }

    #[test]
    fn upserts_replace_by_key_and_ready_survives_update() {
        let api = ApiState::new(NodeInfo::default());
        api.set_ready(true);
        api.upsert_chain(ChainView {
            chain_id: 1,
            ..ChainView::default()
        });
        api.upsert_chain(ChainView {
            chain_id: 1,
            head_number: 9,
            ..ChainView::default()
        });
        api.update(|m| m.ready = false);
        let m = api.snapshot();
        assert_eq!(m.chains.len(), 1);
        assert_eq!(m.chains[0].head_number, 9);
        assert!(m.ready && api.is_ready());
        api.set_ready(false);
        assert!(!api.status().ready);
    }

    fn breaker(id: &str, blocked: &[&str], chains: &[u64], active: bool) -> BreakerView {
        BreakerView {
            id: id.to_owned(),
            kind: BreakerKind::Operator,
            subject: String::new(),
            cause: String::new(),
            tripped_ms: 0,
            expires_ms: None,
            members_blocked: blocked.iter().map(|m| (*m).to_owned()).collect(),
            chains_quarantined: chains.to_vec(),
            effects: Vec::new(),
            active,
            lifted_by: String::new(),
        }
    }

    #[test]
    fn member_breakers_follow_the_active_breakers() {
        let api = ApiState::new(NodeInfo::default());
        let (a, b) = ("0xaa", "0xbb");
        api.set_members(vec![
            MemberView {
                id: a.into(),
                // Replaced: the model derives it.
                breakers: vec!["stale".into()],
                ..MemberView::default()
            },
            MemberView {
                id: b.into(),
                ..MemberView::default()
            },
        ]);
        assert!(api.snapshot().members.iter().all(|m| m.breakers.is_empty()));

        api.set_breakers(vec![
            breaker("operator:1", &["0xAA", b], &[5], true),
            breaker("operator:2", &[b], &[6], false),
        ]);
        let m = api.snapshot();
        assert_eq!(m.members[0].breakers, ["operator:1"]);
        assert_eq!(m.members[1].breakers, ["operator:1"]);
        assert_eq!(m.counts().breakers_active, 1);
        assert!(m.chain_quarantined(5));
        assert!(
            !m.chain_quarantined(6),
            "inactive breakers do not quarantine"
        );

        // A member added later gets them too; upsert replaces by id, case-insensitively.
        api.upsert_member(MemberView {
            id: "0xcc".into(),
            ..MemberView::default()
        });
        api.upsert_breaker(breaker("OPERATOR:2", &["0xcc", b], &[], true));
        let m = api.snapshot();
        assert_eq!(m.breakers.len(), 2);
        assert_eq!(m.members[1].breakers, ["operator:1", "OPERATOR:2"]);
        assert_eq!(m.members[2].breakers, ["OPERATOR:2"]);
        assert_eq!(m.counts().breakers_active, 2);
        assert_eq!(api.breakers(true).len(), 2);

        api.upsert_breaker(breaker("operator:1", &["0xAA", b], &[5], false));
        let m = api.snapshot();
        assert!(m.members[0].breakers.is_empty());
        assert_eq!(api.breakers(true).len(), 1);
        assert_eq!(api.breakers(false).len(), 2);
        assert!(!m.chain_quarantined(5));
    }

    #[test]
    fn decimals_parse_within_their_width() {
        let max128 = u128::MAX.to_string();
        assert_eq!(parse_u128("cap", "0").unwrap(), 0);
        assert_eq!(parse_u128("cap", "001500").unwrap(), 1500);
        assert_eq!(parse_u128("cap", &max128).unwrap(), u128::MAX);
        let over = "340282366920938463463374607431768211456";
        assert_eq!(
            parse_u128("cap", over).unwrap_err().to_string(),
            format!("cap: larger than uint128 allows (2^128 - 1), got \"{over}\"")
        );
        for bad in ["", "-1", "+1", " 1", "1 ", "1.0", "0x10", "1e3", "１"] {
            assert_eq!(
                parse_u128("cap", bad).unwrap_err(),
                FieldError::Decimal {
                    field: "cap",
                    got: bad.to_owned()
                },
                "{bad:?}"
            );
            assert!(
                matches!(
                    parse_uint256("reserve_floor", bad),
                    Err(FieldError::Decimal { .. })
                ),
                "{bad:?}"
            );
        }

        let max256 =
            "115792089237316195423570985008687907853269984665640564039457584007913129639935";
        assert_eq!(parse_uint256("reserve_floor", max256).unwrap(), [0xff; 32]);
        assert_eq!(uint256_to_decimal(&[0xff; 32]), max256);
        let over = "115792089237316195423570985008687907853269984665640564039457584007913129639936";
        assert_eq!(
            parse_uint256("reserve_floor", over)
                .unwrap_err()
                .to_string(),
            format!("reserve_floor: larger than uint256 allows (2^256 - 1), got \"{over}\"")
        );
        // Far larger: still an overflow, not a wrap-around.
        assert!(matches!(
            parse_uint256("reserve_floor", &"9".repeat(100)),
            Err(FieldError::Overflow { bits: 256, .. })
        ));
        let mut n = [0u8; 32];
        n[31] = 1;
        n[30] = 1;
        assert_eq!(parse_uint256("x", "257").unwrap(), n);
        assert_eq!(parse_uint256("x", "0000").unwrap(), [0; 32]);
        assert_eq!(uint256_to_decimal(&[0; 32]), "0");
        for v in [
            "1",
            "10",
            "1000000000000000000000",
            &max128,
            "340282366920938463463374607431768211456",
            "98765432109876543210987654321098765432109876543210",
        ] {
            assert_eq!(uint256_to_decimal(&parse_uint256("x", v).unwrap()), v);
        }
        // The low 16 bytes of a uint128 are its big-endian bytes.
        let v = parse_uint256("x", &max128).unwrap();
        assert_eq!(v[..16], [0; 16]);
        assert_eq!(v[16..], u128::MAX.to_be_bytes());
    }

    #[test]
    fn addresses_parse_as_20_bytes() {
        assert_eq!(
            parse_address("recipient", &format!("0x{}", "Ab".repeat(20))).unwrap(),
            [0xab; 20]
        );
        assert_eq!(
            parse_address("recipient", "0x12").unwrap_err().to_string(),
            "recipient: expected 0x followed by 40 hex digits, got \"0x12\""
        );
    }

    fn proposal(n: u64, status: ProposalStatus) -> ProposalView {
        ProposalView {
            id: format!("0x{n:064x}"),
            proposed_at_ms: 1_000 + n,
            status,
            ..ProposalView::default()
        }
    }

    #[test]
    fn proposals_are_bounded_ended_ones_first() {
        let api = ApiState::new(NodeInfo::default());
        // 300 proposals, every third open.
        let all: Vec<ProposalView> = (0..300)
            .map(|n| {
                let status = if n % 3 == 0 {
                    ProposalStatus::Open
                } else {
                    ProposalStatus::Executed
                };
                proposal(n, status)
            })
            .collect();
        api.set_proposals(all.clone());
        let shown = api.proposals();
        assert_eq!(shown.len(), MAX_PROPOSALS);
        // Every open one is kept, the 44 oldest ended ones are dropped, order is kept.
        assert_eq!(
            shown
                .iter()
                .filter(|p| p.status == ProposalStatus::Open)
                .count(),
            100
        );
        let dropped: Vec<u64> = all
            .iter()
            .filter(|p| !shown.contains(p))
            .map(|p| p.proposed_at_ms - 1_000)
            .collect();
        assert_eq!(dropped.len(), 44);
        assert!(dropped.iter().all(|n| n % 3 != 0 && *n < 70), "{dropped:?}");
        assert!(
            shown
                .windows(2)
                .all(|w| w[0].proposed_at_ms < w[1].proposed_at_ms)
        );

        // Only open ones: the oldest go; an update() through the model is bounded too.
        api.update(|m| {
            m.proposals = (0..260)
                .map(|n| proposal(n, ProposalStatus::Open))
                .collect();
        });
        let shown = api.proposals();
        assert_eq!(shown.len(), MAX_PROPOSALS);
        assert_eq!(shown[0].proposed_at_ms, 1_004);

        api.set_proposals(vec![proposal(1, ProposalStatus::Rejected)]);
        assert_eq!(api.snapshot().proposals.len(), 1);
    }

    #[test]
    fn zero_capacity_is_clamped() {
        let api = ApiState::with_event_capacity(NodeInfo::default(), 0);
        let mut rx = api.subscribe();
        assert_eq!(api.publish(NodeEvent::now(EventKind::Node, "", "up")), 1);
        assert_eq!(rx.try_recv().unwrap().text, "up");
    }
}
