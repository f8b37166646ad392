//! Incident reports that anyone can check against the chains.
//!
//! A [`Report`] is built from one or more nodes' API answers ([`build`]): the trigger (the
//! gap the draw was computed for, at the pinned home block, and the gap the node last read
//! with its block), the pinned blocks, the draw and its legs with their transactions and
//! blocks, the signers, the deductible and the uncovered amount, the circuit breakers that
//! touched the member or the draw's chains, and the timeline merged across the nodes (each
//! step naming its node). It renders as Markdown, JSON or self-contained HTML
//! ([`render`]); its JSON form (`"version": 1`) is what [`verify`] re-derives from the
//! chains alone.
//!
//! Invariants: a parsed report is bounded ([`MAX_REPORT_BYTES`], [`MAX_LEGS`] legs and the
//! other `MAX_*` counts) and typed (hashes, addresses and decimal amounts are validated while
//! parsing; unknown fields and versions are refused); building never invents a fact: what
//! no node knows is left out (e.g. pinned blocks of a proposal no node saw), and [`verify`]
//! then names it as a mismatch rather than assuming it.

mod render;
mod verify;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use alloy::primitives::{Address, B256, U256};
use backstop_api::client::{self, ClientError};
use backstop_api::model::{BreakerView, IncidentId, IncidentView, LegStatus, parse_bytes32};
use backstop_types::MAX_LEGS;
use serde::{Deserialize, Serialize};

pub use render::{Format, render};
pub use verify::{Mismatch, Verdict, VerifyError, parse_rpcs, verify};

/// The report format this build writes and reads.
pub const VERSION: u32 = 1;
/// Largest report file read.
pub const MAX_REPORT_BYTES: u64 = 4 << 20;
/// Most signers in a report.
pub const MAX_SIGNERS: usize = 256;
/// Most timeline steps in a report (every node's journal keeps at most 256 per incident).
pub const MAX_STEPS: usize = 8192;
/// Most transactions in a report.
pub const MAX_TRANSACTIONS: usize = 4 * MAX_LEGS;
/// Most pinned blocks in a report.
pub const MAX_PINNED: usize = MAX_LEGS;
/// Most breakers in a report.
pub const MAX_BREAKERS: usize = 1024;
/// Most nodes a report is built from.
pub const MAX_NODES: usize = 64;

/// Why a report could not be built, read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A node's answer is unusable.
    #[error("node {node}: {field}: {reason}")]
    BadAnswer {
        /// The node.
        node: String,
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// No node knows the incident.
    #[error("no node given knows incident {0}")]
    Unknown(String),
    /// A node could not be asked.
    #[error(transparent)]
    Node(#[from] ClientError),
    /// More nodes than a report takes.
    #[error("{0} nodes given; a report takes at most {MAX_NODES}")]
    TooManyNodes(usize),
    /// `--since` is not a time.
    #[error("--since {0:?}: expected unix seconds or an age such as 90m, 2h or 7d")]
    BadSince(String),
    /// The file cannot be read.
    #[error("cannot read {path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The file is larger than [`MAX_REPORT_BYTES`].
    #[error("not a report: larger than {MAX_REPORT_BYTES} bytes")]
    TooLarge,
    /// The text is not a report (not JSON, truncated, missing or malformed fields).
    #[error("not a report: {0}")]
    NotAReport(String),
    /// A report of another version.
    #[error("unknown report version {0} (this build reads version {VERSION})")]
    UnknownVersion(u64),
    /// JSON rendering failed.
    #[error("rendering JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// An incident report (`"version": 1`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// Always [`VERSION`].
    pub version: u32,
    /// Member id.
    pub member: B256,
    /// The home vault's sequence number of the incident.
    pub seq: u64,
    /// Phase, as the furthest node saw it (`open`, …, `closed`).
    pub phase: String,
    /// The nodes the report was built from (`name (url)`); the first gave the facts.
    pub nodes: Vec<String>,
    /// The member's `solvency()` contract on its home chain, as the consortium configured it.
    pub solvency_contract: Option<Address>,
    /// The gap the node last read, and the home-chain block it read it at.
    pub observed: Option<Observed>,
    /// The blocks the draw was computed at, one per chain (ascending chain ids).
    pub pinned: Vec<Pinned>,
    /// The member's deductible on its home vault (decimal).
    #[serde(with = "decimal")]
    pub deductible: U256,
    /// The registered draw, if any.
    pub draw: Option<DrawFacts>,
    /// What the draw leaves to nobody: gap − deductible − amount (decimal).
    #[serde(with = "decimal")]
    pub uncovered: U256,
    /// Guardians whose signatures over the draw or its leg releases the nodes held.
    pub signers: Vec<Address>,
    /// Transactions of the incident (registration, leg releases).
    pub transactions: Vec<B256>,
    /// Circuit breakers touching the member or the draw's chains.
    pub breakers: Vec<BreakerFacts>,
    /// Every node's timeline, merged in time order.
    pub timeline: Vec<Step>,
}

/// A gap reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Observed {
    /// The member's home chain.
    pub chain_id: u64,
    /// Block number.
    pub block: u64,
    /// `liabilities − assets` (decimal).
    #[serde(with = "decimal")]
    pub gap: U256,
}

/// A block a draw was computed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pinned {
    /// Chain.
    pub chain_id: u64,
    /// Number.
    pub number: u64,
    /// Hash.
    pub hash: B256,
}

/// The registered draw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrawFacts {
    /// Its EIP-712 digest (the vault's `drawHash`).
    pub hash: B256,
    /// The gap it was computed for (decimal): the trigger.
    #[serde(with = "decimal")]
    pub gap: U256,
    /// Amount drawn (decimal).
    #[serde(with = "decimal")]
    pub amount: U256,
    /// Where it was registered.
    pub registration: TxAt,
    /// Legs, ascending chain ids.
    pub legs: Vec<LegFacts>,
}

/// A transaction on a vault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TxAt {
    /// Chain.
    pub chain_id: u64,
    /// Vault.
    pub vault: Address,
    /// Transaction.
    pub tx_hash: B256,
    /// Its block.
    pub block: u64,
}

/// One leg of the draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegFacts {
    /// Chain of the paying vault.
    pub chain_id: u64,
    /// Paying vault.
    pub vault: Address,
    /// Amount (decimal).
    #[serde(with = "decimal")]
    pub amount: U256,
    /// Paid.
    pub paid: bool,
    /// The paying transaction, when known.
    pub tx_hash: Option<B256>,
    /// Its block, when known.
    pub block: Option<u64>,
}

/// A circuit breaker involved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerFacts {
    /// `<kind>:<subject>`.
    pub id: String,
    /// Why it tripped.
    pub cause: String,
    /// When (ms since the epoch).
    pub tripped_ms: u64,
    /// Still active when the report was built.
    pub active: bool,
    /// How it ended (empty while active).
    pub ended: String,
}

/// One step of the merged timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// When (ms since the epoch, by that node's clock).
    pub at_ms: u64,
    /// The node that logged it.
    pub node: String,
    /// Block the step refers to, if any.
    pub block: Option<u64>,
    /// What happened.
    pub what: String,
}

/// Decimal strings for amounts (`"16000000000"`), the form operators read.
mod decimal {
    use alloy::primitives::U256;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(v: &U256, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<U256, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_amount(&s).map_err(D::Error::custom)
    }
}

/// A decimal amount: digits only, at most 78 of them, within 256 bits.
fn parse_amount(s: &str) -> Result<U256, String> {
    if s.is_empty() || s.len() > 78 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("amount {:?} is not a decimal number", shorten(s)));
    }
    U256::from_str_radix(s, 10).map_err(|e| format!("amount {:?}: {e}", shorten(s)))
}

fn shorten(s: &str) -> String {
    s.chars().take(80).collect()
}

/// One node's answers about an incident.
#[derive(Clone, Debug)]
pub struct NodeAnswer {
    /// `name (url)`.
    pub node: String,
    /// The incident as it knows it.
    pub incident: IncidentView,
    /// Its circuit breakers.
    pub breakers: Vec<BreakerView>,
}

/// Builds the report of one incident from the nodes' answers (at least one). The facts come
/// from the node that saw the incident furthest (phase, then paid legs with a transaction;
/// the first given on a tie); signers, breakers and the timeline from every node.
pub fn build(answers: &[NodeAnswer]) -> Result<Report, ReportError> {
    let best = answers
        .iter()
        .enumerate()
        .max_by_key(|(i, a)| (a.incident.phase, paid_with_tx(&a.incident), usize::MAX - i))
        .map(|(_, a)| a)
        .ok_or_else(|| ReportError::Unknown("(no node given)".into()))?;
    let i = &best.incident;
    let bad = |field: &'static str, reason: String| ReportError::BadAnswer {
        node: best.node.clone(),
        field,
        reason,
    };
    let member = parse_b256(&i.member).map_err(|e| bad("member", e))?;
    let draw = draw_facts(i).map_err(|(f, e)| bad(f, e))?;
    let mut nodes = vec![best.node.clone()];
    nodes.extend(
        answers
            .iter()
            .filter(|a| a.node != best.node)
            .map(|a| a.node.clone()),
    );
    Ok(Report {
        version: VERSION,
        member,
        seq: i.seq,
        phase: i.phase.name().to_owned(),
        nodes,
        solvency_contract: optional(&i.solvency_contract)
            .map(parse_address)
            .transpose()
            .map_err(|e| bad("solvency_contract", e))?,
        observed: observed(i, draw.as_ref()).map_err(|e| bad("gap", e))?,
        pinned: i
            .pinned
            .iter()
            .map(|b| {
                Ok(Pinned {
                    chain_id: b.chain_id,
                    number: b.number,
                    hash: parse_b256(&b.hash)?,
                })
            })
            .collect::<Result<_, String>>()
            .map_err(|e| bad("pinned", e))?,
        deductible: parse_amount(&i.deductible).map_err(|e| bad("deductible", e))?,
        uncovered: parse_amount(&i.uncovered_amount).map_err(|e| bad("uncovered_amount", e))?,
        signers: signers(answers, draw.as_ref().map(|d| d.hash)),
        transactions: i
            .tx_hashes
            .iter()
            .map(|h| parse_b256(h))
            .collect::<Result<_, _>>()
            .map_err(|e| bad("tx_hashes", e))?,
        breakers: breakers(answers, &i.member, draw.as_ref()),
        timeline: timeline(answers),
        draw,
    })
}

fn paid_with_tx(i: &IncidentView) -> usize {
    i.legs
        .iter()
        .filter(|l| l.status == LegStatus::Executed && !l.tx_hash.is_empty())
        .count()
}

fn optional(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

fn parse_b256(s: &str) -> Result<B256, String> {
    s.parse()
        .map_err(|_| format!("{:?} is not a 32-byte hash", shorten(s)))
}

fn parse_address(s: &str) -> Result<Address, String> {
    s.parse()
        .map_err(|_| format!("{:?} is not an address", shorten(s)))
}

/// The draw of a registered incident; `None` before a registration.
fn draw_facts(i: &IncidentView) -> Result<Option<DrawFacts>, (&'static str, String)> {
    let Some(r) = &i.registration else {
        return Ok(None);
    };
    let legs = i
        .legs
        .iter()
        .map(|l| {
            Ok(LegFacts {
                chain_id: l.chain_id,
                vault: parse_address(&l.vault).map_err(|e| ("legs", e))?,
                amount: parse_amount(&l.amount).map_err(|e| ("legs", e))?,
                paid: l.status == LegStatus::Executed,
                tx_hash: optional(&l.tx_hash)
                    .map(parse_b256)
                    .transpose()
                    .map_err(|e| ("legs", e))?,
                block: l.block_number,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(DrawFacts {
        hash: parse_b256(&i.draw_hash).map_err(|e| ("draw_hash", e))?,
        gap: parse_amount(&i.draw_gap).map_err(|e| ("draw_gap", e))?,
        amount: parse_amount(&i.draw_amount).map_err(|e| ("draw_amount", e))?,
        registration: TxAt {
            chain_id: r.chain_id,
            vault: parse_address(&r.vault).map_err(|e| ("registration", e))?,
            tx_hash: parse_b256(&r.tx_hash).map_err(|e| ("registration", e))?,
            block: r.block_number,
        },
        legs,
    }))
}

/// The node's latest gap reading, placed on the home chain (known once registered).
fn observed(i: &IncidentView, draw: Option<&DrawFacts>) -> Result<Option<Observed>, String> {
    let (Some(block), Some(d)) = (i.gap_block, draw) else {
        return Ok(None);
    };
    Ok(Some(Observed {
        chain_id: d.registration.chain_id,
        block,
        gap: parse_amount(&i.gap)?,
    }))
}

/// Signers over the draw hash (draw and leg attestations are both recorded under it),
/// every node's, without repeats, ascending.
fn signers(answers: &[NodeAnswer], draw_hash: Option<B256>) -> Vec<Address> {
    let Some(h) = draw_hash else {
        return Vec::new();
    };
    let set: BTreeSet<Address> = answers
        .iter()
        .flat_map(|a| &a.incident.attestations)
        .filter(|a| parse_b256(&a.digest).is_ok_and(|d| d == h))
        .filter_map(|a| parse_address(&a.signer).ok())
        .collect();
    set.into_iter().take(MAX_SIGNERS).collect()
}

/// Breakers whose subject or blocked members name the member, or that quarantined a chain
/// of the draw, and that tripped before the incident's last step.
fn breakers(answers: &[NodeAnswer], member: &str, draw: Option<&DrawFacts>) -> Vec<BreakerFacts> {
    let chains: BTreeSet<u64> = draw
        .map(|d| d.legs.iter().map(|l| l.chain_id).collect())
        .unwrap_or_default();
    let last = answers
        .iter()
        .flat_map(|a| &a.incident.timeline)
        .map(|t| t.timestamp_ms)
        .max()
        .unwrap_or(u64::MAX);
    let mut out: Vec<BreakerFacts> = Vec::new();
    for b in answers.iter().flat_map(|a| &a.breakers) {
        let touches = b.subject.eq_ignore_ascii_case(member)
            || b.members_blocked
                .iter()
                .any(|m| m.eq_ignore_ascii_case(member))
            || b.chains_quarantined.iter().any(|c| chains.contains(c));
        let seen = out
            .iter()
            .any(|o| o.id == b.id && o.tripped_ms == b.tripped_ms);
        if touches && b.tripped_ms <= last && !seen && out.len() < MAX_BREAKERS {
            out.push(BreakerFacts {
                id: b.id.clone(),
                cause: b.cause.clone(),
                tripped_ms: b.tripped_ms,
                active: b.active,
                ended: b.lifted_by.clone(),
            });
        }
    }
    out.sort_by(|a, b| (a.tripped_ms, &a.id).cmp(&(b.tripped_ms, &b.id)));
    out
}

/// Every node's steps, each naming its node, in time order (node order on a tie).
fn timeline(answers: &[NodeAnswer]) -> Vec<Step> {
    let mut steps: Vec<Step> = answers
        .iter()
        .flat_map(|a| {
            a.incident.timeline.iter().map(|t| Step {
                at_ms: t.timestamp_ms,
                node: a.node.clone(),
                block: t.block_number,
                what: t.what.clone(),
            })
        })
        .take(MAX_STEPS)
        .collect();
    steps.sort_by_key(|s| s.at_ms);
    steps
}

/// Which incidents to report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Which {
    /// One incident.
    Incident(IncidentId),
    /// Every incident first seen (its earliest step on any node) at or after this time, ms.
    Since(u64),
}

/// Reads `--since`: unix seconds, or an age before `now_ms` (`90s`, `30m`, `2h`, `7d`); ms.
pub fn parse_since(s: &str, now_ms: u64) -> Result<u64, ReportError> {
    let bad = || ReportError::BadSince(shorten(s));
    let s = s.trim();
    let unit_ms = match s.chars().last() {
        Some('s') => 1_000,
        Some('m') => 60_000,
        Some('h') => 3_600_000,
        Some('d') => 86_400_000,
        Some(c) if c.is_ascii_digit() => {
            let secs: u64 = s.parse().map_err(|_| bad())?;
            return secs.checked_mul(1000).ok_or_else(bad);
        }
        _ => return Err(bad()),
    };
    let n: u64 = s[..s.len() - 1].parse().map_err(|_| bad())?;
    let age = n.checked_mul(unit_ms).ok_or_else(bad)?;
    Ok(now_ms.saturating_sub(age))
}

/// The incidents first seen (earliest step on any node) at or after `since` ms, oldest
/// first.
fn first_seen_since<'a>(
    incidents: impl Iterator<Item = &'a IncidentView>,
    since: u64,
) -> Vec<IncidentId> {
    let mut first: BTreeMap<([u8; 32], u64), u64> = BTreeMap::new();
    for i in incidents {
        let (Ok(member), Some(at)) = (
            parse_bytes32("member", &i.member),
            i.timeline.iter().map(|t| t.timestamp_ms).min(),
        ) else {
            continue;
        };
        let slot = first.entry((member, i.seq)).or_insert(at);
        *slot = (*slot).min(at);
    }
    let mut seen: Vec<_> = first.into_iter().filter(|(_, at)| *at >= since).collect();
    seen.sort_by_key(|(_, at)| *at);
    seen.into_iter()
        .map(|((member, seq), _)| IncidentId { member, seq })
        .collect()
}

/// Asks every node in `apis` (at most [`MAX_NODES`]) and builds the reports of `which`,
/// oldest first.
pub async fn from_nodes(apis: &[String], which: &Which) -> Result<Vec<Report>, ReportError> {
    if apis.len() > MAX_NODES {
        return Err(ReportError::TooManyNodes(apis.len()));
    }
    let mut nodes = Vec::with_capacity(apis.len());
    for url in apis {
        let name = client::node_name(url).await?;
        let incidents = client::incidents(url).await?;
        let breakers = client::breakers(url).await?;
        nodes.push((format!("{name} ({url})"), incidents, breakers));
    }
    let ids: Vec<IncidentId> = match which {
        Which::Incident(id) => vec![*id],
        Which::Since(since) => first_seen_since(nodes.iter().flat_map(|n| &n.1), *since),
    };
    ids.iter()
        .map(|id| {
            let answers: Vec<NodeAnswer> = nodes
                .iter()
                .filter_map(|(node, incidents, breakers)| {
                    Some(NodeAnswer {
                        node: node.clone(),
                        incident: incidents.iter().find(|i| i.is(id))?.clone(),
                        breakers: breakers.clone(),
                    })
                })
                .collect();
            if answers.is_empty() {
                return Err(ReportError::Unknown(id.to_string()));
            }
            build(&answers)
        })
        .collect()
}

/// Parses a report from its JSON text, refusing what is not a version-1 report.
pub fn parse(text: &[u8]) -> Result<Report, ReportError> {
    if text.len() as u64 > MAX_REPORT_BYTES {
        return Err(ReportError::TooLarge);
    }
    let value: serde_json::Value =
        serde_json::from_slice(text).map_err(|e| ReportError::NotAReport(e.to_string()))?;
    let version = value
        .as_object()
        .ok_or_else(|| ReportError::NotAReport("not a JSON object".into()))?
        .get("version")
        .ok_or_else(|| ReportError::NotAReport("no \"version\" field".into()))?;
    let version = version
        .as_u64()
        .ok_or_else(|| ReportError::NotAReport(format!("version {version} is not a number")))?;
    if version != u64::from(VERSION) {
        return Err(ReportError::UnknownVersion(version));
    }
    let report: Report =
        serde_json::from_value(value).map_err(|e| ReportError::NotAReport(e.to_string()))?;
    check_bounds(&report)?;
    Ok(report)
}

fn check_bounds(r: &Report) -> Result<(), ReportError> {
    let legs = r.draw.as_ref().map_or(0, |d| d.legs.len());
    let counts = [
        ("legs", legs, MAX_LEGS),
        ("signers", r.signers.len(), MAX_SIGNERS),
        ("transactions", r.transactions.len(), MAX_TRANSACTIONS),
        ("pinned", r.pinned.len(), MAX_PINNED),
        ("breakers", r.breakers.len(), MAX_BREAKERS),
        ("timeline", r.timeline.len(), MAX_STEPS),
        ("nodes", r.nodes.len(), MAX_NODES),
    ];
    for (what, n, max) in counts {
        if n > max {
            return Err(ReportError::NotAReport(format!(
                "{n} {what}, more than the {max} a report may hold"
            )));
        }
    }
    Ok(())
}

/// Reads and parses a report file (at most [`MAX_REPORT_BYTES`]).
pub fn read(path: &Path) -> Result<Report, ReportError> {
    let io = |e: std::io::Error| ReportError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let mut text = Vec::new();
    std::fs::File::open(path)
        .map_err(io)?
        .take(MAX_REPORT_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(io)?;
    parse(&text)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod tests {
    use super::*;
    use backstop_api::model::{
        AttestationView, LegView, PinnedBlockView, RegistrationView, TimelineEntry,
    };
    use backstop_types::IncidentPhase;

    pub(crate) fn answer(node: &str, t0: u64) -> NodeAnswer {
        let member = format!("0x{}", "aa".repeat(32));
        let hash = format!("0x{}", "d0".repeat(32));
        let leg = |chain_id: u64, amount: &str, tx: &str, block: u64| LegView {
            chain_id,
            vault: format!("0x{}", format!("{chain_id:02x}").repeat(20)),
            amount: amount.into(),
            status: LegStatus::Executed,
            tx_hash: format!("0x{}", tx.repeat(32)),
            block_number: Some(block),
        };
        NodeAnswer {
            node: node.into(),
            incident: IncidentView {
                member: member.clone(),
                seq: 0,
                phase: IncidentPhase::Closed,
                attempt: 0,
                gap: "1000".into(),
                draw_amount: "900".into(),
                uncovered_amount: "0".into(),
                draw_hash: hash.clone(),
                legs: vec![leg(1, "600", "e1", 10), leg(2, "300", "e2", 20)],
                attestations: vec![AttestationView {
                    signer: format!("0x{}", "a1".repeat(20)),
                    digest: hash,
                }],
                tx_hashes: vec![format!("0x{}", "e1".repeat(32))],
                timeline: vec![
                    TimelineEntry {
                        timestamp_ms: t0,
                        block_number: Some(9),
                        what: "gap of 1000 seen".into(),
                    },
                    TimelineEntry {
                        timestamp_ms: t0 + 10,
                        block_number: None,
                        what: "closed: <covered> & done".into(),
                    },
                ],
                gap_block: Some(9),
                pinned: vec![PinnedBlockView {
                    chain_id: 1,
                    number: 8,
                    hash: format!("0x{}", "b8".repeat(32)),
                }],
                draw_gap: "1000".into(),
                deductible: "100".into(),
                registration: Some(RegistrationView {
                    chain_id: 1,
                    vault: format!("0x{}", "01".repeat(20)),
                    tx_hash: format!("0x{}", "e1".repeat(32)),
                    block_number: 10,
                }),
                solvency_contract: format!("0x{}", "5c".repeat(20)),
            },
            breakers: vec![BreakerView {
                id: format!("exploit:{member}"),
                kind: backstop_types::BreakerKind::Exploit,
                subject: member,
                cause: "outflow".into(),
                tripped_ms: t0 + 1,
                expires_ms: None,
                members_blocked: Vec::new(),
                chains_quarantined: Vec::new(),
                effects: Vec::new(),
                active: false,
                lifted_by: "expired".into(),
            }],
        }
    }

    #[test]
    fn the_report_merges_the_nodes_and_takes_the_facts_from_the_furthest() {
        let a = answer("a", 1000);
        let mut b = answer("b", 1003);
        // The same breaker, as another node saw it.
        b.breakers = a.breakers.clone();
        b.incident.attestations[0].signer = format!("0x{}", "a2".repeat(20));
        // An attestation over another digest is not a signer of this draw.
        b.incident.attestations.push(AttestationView {
            signer: format!("0x{}", "a3".repeat(20)),
            digest: format!("0x{}", "ff".repeat(32)),
        });
        let mut behind = a.clone();
        behind.node = "c".into();
        behind.incident.phase = IncidentPhase::Releasing;
        behind.incident.draw_amount = "1".into();
        let r = build(&[behind, a, b]).unwrap();
        assert_eq!(r.nodes, ["a", "c", "b"], "the furthest node first");
        assert_eq!(r.draw.as_ref().unwrap().amount, U256::from(900));
        assert_eq!(r.signers.len(), 2);
        assert_eq!(r.breakers.len(), 1, "the same breaker once");
        assert_eq!(r.timeline.len(), 6);
        let order: Vec<(u64, &str)> = r
            .timeline
            .iter()
            .map(|s| (s.at_ms, s.node.as_str()))
            .collect();
        assert_eq!(order[..3], [(1000, "c"), (1000, "a"), (1003, "b")]);
        assert_eq!(
            r.observed,
            Some(Observed {
                chain_id: 1,
                block: 9,
                gap: U256::from(1000)
            })
        );
    }

    #[test]
    fn since_is_unix_seconds_or_an_age() {
        let now = 10_000_000;
        assert_eq!(parse_since("1700", now).unwrap(), 1_700_000);
        assert_eq!(parse_since("2h", now).unwrap(), now - 7_200_000);
        assert_eq!(parse_since("90m", now).unwrap(), now - 5_400_000);
        assert_eq!(
            parse_since("7d", now).unwrap(),
            0,
            "before the epoch: from the start"
        );
        for bad in ["", "h", "2w", "-5", "1.5h", "99999999999999999999"] {
            assert!(
                matches!(parse_since(bad, now), Err(ReportError::BadSince(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_node_answer_with_garbage_is_refused_naming_node_and_field() {
        let mut a = answer("a", 1);
        a.incident.legs[1].amount = "12x".into();
        let e = build(&[a]).unwrap_err().to_string();
        assert!(e.contains("node a") && e.contains("legs"), "{e}");
    }

    #[test]
    fn json_round_trips_and_what_is_not_a_report_is_refused() {
        let r = build(&[answer("a", 1)]).unwrap();
        let text = serde_json::to_string_pretty(&r).unwrap();
        assert_eq!(parse(text.as_bytes()).unwrap(), r);
        assert!(text.contains("\"amount\": \"900\""), "amounts in decimal");

        let not = |t: &str| match parse(t.as_bytes()) {
            Err(ReportError::NotAReport(e)) => e,
            other => panic!("{t}: {other:?}"),
        };
        assert!(not("[1, 2]").contains("not a JSON object"));
        assert!(not("{\"hello\": 1}").contains("version"));
        assert!(not(&text[..text.len() / 2]).contains("EOF"));
        let e = not(&text.replace("\"amount\": \"900\"", "\"amount\": \"-9\""));
        assert!(e.contains("not a decimal"), "{e}");
        let e = not(&text.replace("\"seq\": 0", "\"seq\": 0, \"extra\": 1"));
        assert!(e.contains("unknown field"), "{e}");

        let v2 = text.replace("\"version\": 1", "\"version\": 2");
        let e = parse(v2.as_bytes()).unwrap_err();
        assert!(matches!(e, ReportError::UnknownVersion(2)), "{e}");
        assert!(e.to_string().contains("unknown report version 2"));

        let mut big = r.clone();
        big.signers = vec![Address::ZERO; MAX_SIGNERS + 1];
        let e = parse(serde_json::to_string(&big).unwrap().as_bytes()).unwrap_err();
        assert!(e.to_string().contains("signers"), "{e}");
        let huge = vec![b' '; MAX_REPORT_BYTES as usize + 1];
        assert!(matches!(parse(&huge), Err(ReportError::TooLarge)));
    }
}
