//! Reads of contract state pinned to one block.
//!
//! Every read names its block by hash ([`PinnedBlock`]), so two nodes reading the same pinned
//! block read the same state, and a block replaced by a reorg is never read by number by
//! mistake. Answers are validated before they are returned: values that the contracts can
//! never produce together (a guardian set out of order, thresholds out of range, a payout
//! capacity that disagrees with the balance, bucket and floor read at the same block, an
//! oracle time beyond u64) are [`ReadError::Inconsistent`], never values.
//!
//! A member's optional views (`bookedDraws()`, `riskExposures()`) may be absent: a call that
//! reverts or returns no data is a fact of the block, on which every node agrees, and reads
//! as "none"; only a failed request is an error. A risk view that answers garbage is
//! [`RiskView::Invalid`]: its return data is refused unread beyond [`MAX_RISK_VIEW_BYTES`],
//! then decoded strictly and checked ([`MAX_EXPOSURES`] entries, distinct non-zero oracles,
//! magnitudes below [`EXPOSURE_BOUND`]), so a hostile member costs a bounded decode.
//!
//! Many members are read in one call ([`Reader::members`]), and a vault's state
//! ([`Reader::vault_state`]) and a chain's oracles ([`Reader::oracles`]) in one call each,
//! through `SnapshotLens`, whose code the call places at [`LENS_ADDRESS`] with a state
//! override. Invariant: the lens path and the call-by-call path read the same values. A view
//! counts from the lens only when it returned whole within [`LENS_VIEW_GAS`] and the bytes
//! kept, and decoded strictly; any other view is called directly (a vault's state then
//! wholly), and a request the lens cannot answer is made call by call.

use backstop_types::governance::MAX_GUARDIANS;
use std::collections::BTreeSet;
use std::future::IntoFuture;

use alloy::eips::{BlockId, RpcBlockHash};
use alloy::primitives::{Address, B256, Bytes, I256, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::TransactionRequest;
use alloy::rpc::types::state::{StateOverride, StateOverridesBuilder};
use alloy::sol_types::SolCall;
use backstop_contracts::bindings::{
    BackstopVault, IBackstopMember, IBackstopRisk, IBackstopVault, MockOracle, MockToken,
    SnapshotLens,
};

use crate::rpc::{CallError, RpcError, RpcPool};

/// A block that reads are pinned to (the one definition, in `backstop-types`).
pub use backstop_types::PinnedBlock;

/// The block id used in calls: the hash (EIP-1898), so a replaced block is never read by
/// number by mistake.
pub fn block_id(block: &PinnedBlock) -> BlockId {
    BlockId::Hash(RpcBlockHash {
        block_hash: block.hash,
        require_canonical: None,
    })
}

/// Why a pinned read failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The RPC failed (after retries).
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The answers contradict each other or the contract's invariants.
    #[error("inconsistent state of {contract} at block {block}: {reason}")]
    Inconsistent {
        /// Contract read.
        contract: Address,
        /// Block number.
        block: u64,
        /// What is wrong.
        reason: String,
    },
}

/// A member protocol's books at a block (`IBackstopMember`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Solvency {
    /// Assets, pool-token units.
    pub assets: U256,
    /// Liabilities, pool-token units.
    pub liabilities: U256,
    /// `bookedDraws()`: how many of its draws are settled in the books (every leg paid and
    /// booked, or past its deadline); `None` when the member has no such view (the call
    /// reverts or returns nothing).
    pub booked_draws: Option<u64>,
}

impl Solvency {
    /// `liabilities - assets` when positive.
    pub fn gap(&self) -> Option<U256> {
        self.liabilities
            .checked_sub(self.assets)
            .filter(|g| !g.is_zero())
    }
}

/// Most exposures a member may report.
pub const MAX_EXPOSURES: usize = 16;

/// Most bytes of `riskExposures()` return data that are decoded: [`MAX_EXPOSURES`] entries
/// ABI-encode to 1,600 bytes; a longer answer is [`RiskView::Invalid`] without decoding.
pub const MAX_RISK_VIEW_BYTES: usize = 4096;

/// Exclusive bound of `|delta|` and `|gamma|`, 2^127: the product of any two reported values
/// fits in an `I256`.
pub const EXPOSURE_BOUND: U256 = U256::from_limbs([0, 1 << 63, 0, 0]);

/// One exposure as read (`IBackstopRisk.Exposure`), pool-token units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exposure {
    /// The asset's price feed on the member's home chain (non-zero).
    pub oracle: Address,
    /// Change of the member's equity for a +100% move of the asset's price (first order);
    /// `|delta| <` [`EXPOSURE_BOUND`].
    pub delta: I256,
    /// Second derivative of the equity in the relative move; `|gamma| <` [`EXPOSURE_BOUND`].
    pub gamma: I256,
}

/// What a member's risk view (`IBackstopRisk.riskExposures()`) said at a block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RiskView {
    /// No such view: the call reverts or returns no data (no code, or a fallback).
    Missing,
    /// It answered garbage: more than [`MAX_RISK_VIEW_BYTES`], undecodable, more than
    /// [`MAX_EXPOSURES`] entries, a zero or duplicate oracle, `|delta|` or `|gamma|` at
    /// least [`EXPOSURE_BOUND`]. The reason names what.
    Invalid(String),
    /// Valid exposures, in the order given.
    Exposures(Vec<Exposure>),
}

impl RiskView {
    /// Judges the return data of `riskExposures()`: empty is [`RiskView::Missing`]; beyond
    /// [`MAX_RISK_VIEW_BYTES`] it is refused unread; otherwise decoded strictly, then checked.
    pub fn from_return_data(data: &[u8]) -> Self {
        if data.is_empty() {
            return RiskView::Missing;
        }
        if data.len() > MAX_RISK_VIEW_BYTES {
            return Self::oversized(data.len());
        }
        let raw = match IBackstopRisk::riskExposuresCall::abi_decode_returns_validate(data) {
            Ok(raw) => raw,
            Err(e) => return RiskView::Invalid(format!("undecodable: {e}")),
        };
        match validate_exposures(&raw) {
            Ok(exposures) => RiskView::Exposures(exposures),
            Err(reason) => RiskView::Invalid(reason),
        }
    }

    /// An answer of `size` bytes, more than [`MAX_RISK_VIEW_BYTES`]: refused unread.
    fn oversized(size: usize) -> Self {
        RiskView::Invalid(format!(
            "{size} bytes of return data, more than {MAX_RISK_VIEW_BYTES}"
        ))
    }
}

/// Checks decoded exposures against the bounds of [`RiskView::Invalid`].
fn validate_exposures(raw: &[IBackstopRisk::Exposure]) -> Result<Vec<Exposure>, String> {
    if raw.len() > MAX_EXPOSURES {
        return Err(format!(
            "{} exposures, more than {MAX_EXPOSURES}",
            raw.len()
        ));
    }
    let mut seen = BTreeSet::new();
    raw.iter()
        .map(|e| {
            if e.oracle == Address::ZERO {
                return Err("zero oracle".to_string());
            }
            if !seen.insert(e.oracle) {
                return Err(format!("oracle {} listed twice", e.oracle));
            }
            for (name, v) in [("delta", e.delta), ("gamma", e.gamma)] {
                if v.unsigned_abs() >= EXPOSURE_BOUND {
                    return Err(format!(
                        "{name} {v} of oracle {} out of range (|{name}| >= 2^127)",
                        e.oracle
                    ));
                }
            }
            Ok(Exposure {
                oracle: e.oracle,
                delta: e.delta,
                gamma: e.gamma,
            })
        })
        .collect()
}

/// An oracle's latest answer at a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OracleAnswer {
    /// Round id.
    pub round_id: u128,
    /// Answer (signed, feed decimals).
    pub answer: I256,
    /// Last update time (unix seconds).
    pub updated_at: u64,
}

/// A vault's state at a block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultState {
    /// Where it was read.
    pub block: PinnedBlock,
    /// Vault address.
    pub vault: Address,
    /// Pool token.
    pub token: Address,
    /// Pool-token balance of the vault.
    pub balance: U256,
    /// Outflow limits, reserve floor, cooldown and emergency duration.
    pub limits: IBackstopVault::Limits,
    /// What the outflow bucket allows now.
    pub bucket_available: U256,
    /// What the vault can pay now: `min(bucket, balance - reserve floor)`.
    pub available_for_payout: U256,
    /// Whether the vault is paused.
    pub paused: bool,
    /// End of the pause (unix seconds; zero or past when not paused).
    pub paused_until: u64,
    /// Guardian set, strictly ascending.
    pub guardians: Vec<Address>,
    /// t.
    pub threshold: u8,
    /// p.
    pub pause_threshold: u8,
    /// Rotations since deployment.
    pub guardian_set_index: u64,
}

/// A member as a vault stores it, at a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberRecord {
    /// Recipient of payouts on this chain.
    pub recipient: Address,
    /// Home chain.
    pub home_chain_id: u64,
    /// Freeze expiry (unix seconds).
    pub frozen_until: u64,
    /// Whether payouts are frozen at that block.
    pub frozen: bool,
    /// Next draw seq (meaningful on the home vault).
    pub next_seq: u64,
    /// Per-incident cap.
    pub cap: u128,
    /// Deductible.
    pub deductible: u128,
    /// Coverage per window: most the vault pays the member within `coverage_window` s.
    pub coverage_limit: u128,
    /// Length of the coverage window (s).
    pub coverage_window: u64,
    /// What the vault may still pay the member at the block, by its coverage window.
    pub coverage_available: U256,
}

impl MemberRecord {
    /// The record of `m` (`member(id)`) with `isFrozen(id)` and `coverageAvailable(id)` read
    /// at the same block; `None` when the vault does not know the member (zero recipient).
    fn of(m: IBackstopVault::Member, frozen: bool, coverage_available: U256) -> Option<Self> {
        if m.recipient == Address::ZERO {
            return None;
        }
        Some(MemberRecord {
            recipient: m.recipient,
            home_chain_id: m.homeChainId,
            frozen_until: m.frozenUntil,
            frozen,
            next_seq: m.nextSeq,
            cap: m.cap,
            deductible: m.deductible,
            coverage_limit: m.coverageLimit,
            coverage_window: u64::from(m.coverageWindow),
            coverage_available,
        })
    }
}

/// Where a node places [`SnapshotLens`]'s code for its reads: an `eth_call` state override,
/// nothing deployed. No key or `CREATE` reaches an address this low in practice.
pub const LENS_ADDRESS: Address = Address::new([
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x1e, 0x45,
]);

/// Most members one lens call reads: its gas stays far below any endpoint's `eth_call` cap.
pub const LENS_MEMBERS: usize = 64;

/// Gas the lens gives each view of a member protocol (a view that needs more is called
/// directly, with the endpoint's own cap).
pub const LENS_VIEW_GAS: u64 = 1_000_000;

/// Bytes the lens keeps of `solvency()` and `bookedDraws()` (well-formed answers take 64
/// and 32).
pub const LENS_BOOKS_BYTES: usize = 256;

/// Bytes the lens keeps of a vault's or an oracle's view ([`Reader::vault_state`],
/// [`Reader::oracles`]): the longest well-formed answer, `guardians()`, takes
/// 64 + 32 × [`MAX_GUARDIANS`].
pub const LENS_CALL_BYTES: usize = 64 + 32 * MAX_GUARDIANS;

/// What a snapshot reads of one member on one vault.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberRead {
    /// The vault's record; `None` when the vault does not know the member.
    pub record: Option<MemberRecord>,
    /// Its protocol's books, read only when the protocol was given and the vault knows it.
    pub solvency: Option<Solvency>,
    /// Its protocol's risk view, read with the books; `None` also when the request failed
    /// (the stress test then projects the member from its history).
    pub risk: Option<RiskView>,
}

/// A protocol's view as the lens called it, when that is the whole answer of a call that
/// returned (not cut, not failed).
fn whole(v: &SnapshotLens::View) -> Option<&[u8]> {
    (v.ok && v.size == U256::from(v.data.len())).then_some(&v.data[..])
}

/// The bounds the lens applies to a member protocol's views.
fn lens_bounds() -> SnapshotLens::Bounds {
    SnapshotLens::Bounds {
        viewGas: U256::from(LENS_VIEW_GAS),
        booksBytes: U256::from(LENS_BOOKS_BYTES),
        riskBytes: U256::from(MAX_RISK_VIEW_BYTES),
    }
}

/// The state override that places [`SnapshotLens`]'s code at [`LENS_ADDRESS`].
fn lens_override() -> StateOverride {
    StateOverridesBuilder::default()
        .with_code(LENS_ADDRESS, SnapshotLens::DEPLOYED_BYTECODE.clone())
        .build()
}

/// A view for [`SnapshotLens`]'s `calls`, bounded as a member protocol's views are.
fn lens_call<C: SolCall>(target: Address, call: C) -> SnapshotLens::Call {
    SnapshotLens::Call {
        target,
        data: call.abi_encode().into(),
        gas: U256::from(LENS_VIEW_GAS),
        maxBytes: U256::from(LENS_CALL_BYTES),
    }
}

/// A view's answer decoded strictly, when the lens called it whole; `None` sends the reader
/// to the direct call, whose (laxer) decoding gives the same value where this one succeeds.
fn decoded<C: SolCall>(view: &SnapshotLens::View) -> Option<C::Return> {
    C::abi_decode_returns_validate(whole(view)?).ok()
}

/// What `latestRoundData()` answered, as the node keeps it.
fn oracle_answer(
    block: &PinnedBlock,
    oracle: Address,
    r: MockOracle::latestRoundDataReturn,
) -> Result<OracleAnswer, ReadError> {
    let updated_at = u64::try_from(r.updatedAt).map_err(|_| ReadError::Inconsistent {
        contract: oracle,
        block: block.number,
        reason: format!("updatedAt {} beyond u64", r.updatedAt),
    })?;
    Ok(OracleAnswer {
        round_id: r.roundId.to::<u128>(),
        answer: r.answer,
        updated_at,
    })
}

/// The ten views of a vault's state, in [`VaultState`]'s order from `balance` on.
type VaultViews = (
    U256,
    IBackstopVault::Limits,
    U256,
    U256,
    bool,
    u64,
    Vec<Address>,
    u8,
    u8,
    u64,
);

/// Pinned reads over one chain's RPC pool.
#[derive(Debug)]
pub struct Reader<'a> {
    pool: &'a RpcPool,
}

fn vault_at(p: DynProvider, a: Address) -> BackstopVault::BackstopVaultInstance<DynProvider> {
    BackstopVault::new(a, p)
}

impl<'a> Reader<'a> {
    /// Reads through `pool`.
    pub fn new(pool: &'a RpcPool) -> Self {
        Self { pool }
    }

    fn check(&self, block: &PinnedBlock) -> Result<BlockId, ReadError> {
        if block.chain_id != self.pool.chain_id() {
            return Err(ReadError::Inconsistent {
                contract: Address::ZERO,
                block: block.number,
                reason: format!(
                    "block of chain {} read on chain {}",
                    block.chain_id,
                    self.pool.chain_id()
                ),
            });
        }
        Ok(block_id(block))
    }

    /// `solvency()` and `bookedDraws()` of a member protocol, at the same block.
    pub async fn solvency(
        &self,
        block: &PinnedBlock,
        member: Address,
    ) -> Result<Solvency, ReadError> {
        let id = self.check(block)?;
        let books = self.pool.call("solvency", |p| async move {
            Ok(IBackstopMember::new(member, p)
                .solvency()
                .block(id)
                .call()
                .await?)
        });
        let (books, booked_draws) = tokio::try_join!(books, self.booked_draws(id, member))?;
        Ok(Solvency {
            assets: books.assets,
            liabilities: books.liabilities,
            booked_draws,
        })
    }

    /// `bookedDraws()` of a member protocol; `None` when it has no such view: the call
    /// reverts, or returns no data (no code, or a fallback). Both are facts of the block, so
    /// every node reading it agrees; a failed request or undecodable data is an error, never
    /// `None`.
    pub async fn booked_draws(
        &self,
        id: BlockId,
        member: Address,
    ) -> Result<Option<u64>, RpcError> {
        let input = IBackstopMember::bookedDrawsCall {}.abi_encode();
        self.optional_view("bookedDraws", id, member, input, |data| {
            IBackstopMember::bookedDrawsCall::abi_decode_returns(&data)
                .map_err(|e| CallError::Invalid(format!("bookedDraws: {e}")))
        })
        .await
    }

    /// `riskExposures()` of a member protocol (`IBackstopRisk`), judged by
    /// [`RiskView::from_return_data`]: [`RiskView::Missing`] when the call reverts or returns
    /// no data, [`RiskView::Invalid`] when it answers garbage; both are facts of the block.
    /// Only a failed request (or a block of another chain) is an error.
    pub async fn risk(&self, block: &PinnedBlock, member: Address) -> Result<RiskView, ReadError> {
        let id = self.check(block)?;
        let input = IBackstopRisk::riskExposuresCall {}.abi_encode();
        let view = self
            .optional_view("riskExposures", id, member, input, |data| {
                Ok(RiskView::from_return_data(&data))
            })
            .await?
            .unwrap_or(RiskView::Missing);
        if let RiskView::Invalid(reason) = &view {
            tracing::debug!(%member, block = block.number, reason, "invalid risk view");
        }
        Ok(view)
    }

    /// A view a contract may lack: `eth_call` of `input` on `to` at `id`, its return data
    /// passed to `decode`. `None` when the call reverts or returns no data (no code, or a
    /// fallback): facts of the block, so every node reading it agrees. A failed request is
    /// an error, never `None`; so is a `decode` error (retried on another endpoint).
    async fn optional_view<T>(
        &self,
        what: &'static str,
        id: BlockId,
        to: Address,
        input: Vec<u8>,
        decode: impl Fn(Bytes) -> Result<T, CallError>,
    ) -> Result<Option<T>, RpcError> {
        let tx = TransactionRequest::default().to(to).input(input.into());
        let decode = &decode;
        let read = self
            .pool
            .call(what, |p| {
                let tx = tx.clone();
                async move {
                    let data = p.call(tx).block(id).await?;
                    if data.is_empty() {
                        return Ok(None);
                    }
                    decode(data).map(Some)
                }
            })
            .await;
        match read {
            Err(e) if e.is_revert() => Ok(None),
            other => other,
        }
    }

    /// `latestRoundData()` of an AggregatorV3 oracle.
    pub async fn oracle(
        &self,
        block: &PinnedBlock,
        oracle: Address,
    ) -> Result<OracleAnswer, ReadError> {
        let id = self.check(block)?;
        let r = self
            .pool
            .call("latestRoundData", |p| async move {
                Ok(MockOracle::new(oracle, p)
                    .latestRoundData()
                    .block(id)
                    .call()
                    .await?)
            })
            .await?;
        oracle_answer(block, oracle, r)
    }

    /// `latestRoundData()` and `decimals()` of each of `oracles` at `block`, in the order
    /// given: through [`SnapshotLens`] in one request, and an oracle whose views the lens
    /// could not answer whole is called directly, so both ways read the same values.
    pub async fn oracles(
        &self,
        block: &PinnedBlock,
        oracles: &[Address],
    ) -> Vec<Result<(OracleAnswer, u8), ReadError>> {
        let calls = oracles
            .iter()
            .flat_map(|&o| {
                [
                    lens_call(o, MockOracle::latestRoundDataCall {}),
                    lens_call(o, MockOracle::decimalsCall {}),
                ]
            })
            .collect();
        let views = self.lens_calls(block, calls).await.unwrap_or_else(|e| {
            tracing::debug!(chain_id = block.chain_id, error = %e, "lens unavailable; reading each oracle");
            Vec::new()
        });
        let each = oracles.iter().enumerate().map(|(i, &o)| {
            let from_lens = views.get(2 * i..2 * i + 2).and_then(|v| {
                Some((
                    decoded::<MockOracle::latestRoundDataCall>(&v[0])?,
                    decoded::<MockOracle::decimalsCall>(&v[1])?,
                ))
            });
            async move {
                match from_lens {
                    Some((r, decimals)) => Ok((oracle_answer(block, o, r)?, decimals)),
                    None => tokio::try_join!(self.oracle(block, o), self.oracle_decimals(block, o)),
                }
            }
        });
        futures::future::join_all(each).await
    }

    /// One request making `calls` through [`SnapshotLens`]; one view per call.
    async fn lens_calls(
        &self,
        block: &PinnedBlock,
        calls: Vec<SnapshotLens::Call>,
    ) -> Result<Vec<SnapshotLens::View>, ReadError> {
        let id = self.check(block)?;
        let asked = calls.len();
        let code = lens_override();
        let views = self
            .pool
            .call("lens calls", |p| {
                let (calls, code) = (calls.clone(), code.clone());
                async move {
                    Ok(SnapshotLens::new(LENS_ADDRESS, p)
                        .calls(calls)
                        .block(id)
                        .state(code)
                        .call()
                        .await?)
                }
            })
            .await?;
        if views.len() != asked {
            return Err(ReadError::Inconsistent {
                contract: LENS_ADDRESS,
                block: block.number,
                reason: format!("lens answered {} calls for {asked}", views.len()),
            });
        }
        Ok(views)
    }

    /// `decimals()` of an AggregatorV3 oracle.
    pub async fn oracle_decimals(
        &self,
        block: &PinnedBlock,
        oracle: Address,
    ) -> Result<u8, ReadError> {
        let id = self.check(block)?;
        Ok(self
            .pool
            .call("decimals", |p| async move {
                Ok(MockOracle::new(oracle, p)
                    .decimals()
                    .block(id)
                    .call()
                    .await?)
            })
            .await?)
    }

    /// A member's record on a vault; `None` when the vault does not know it.
    pub async fn member(
        &self,
        block: &PinnedBlock,
        vault: Address,
        member: B256,
    ) -> Result<Option<MemberRecord>, ReadError> {
        let id = self.check(block)?;
        let (m, frozen, coverage_available) = self
            .pool
            .call("member", |p| async move {
                let v = vault_at(p, vault);
                let m = v.member(member).block(id);
                let f = v.isFrozen(member).block(id);
                let c = v.coverageAvailable(member).block(id);
                let read = futures::try_join!(
                    m.call().into_future(),
                    f.call().into_future(),
                    c.call().into_future()
                )?;
                Ok(read)
            })
            .await?;
        Ok(MemberRecord::of(m, frozen, coverage_available))
    }

    /// Each of `members` (id, and its protocol when its books and risk view are read) as
    /// `vault` knows it at `block`, in the order given: through [`SnapshotLens`], one call per
    /// [`LENS_MEMBERS`] members. A chunk the lens cannot read (an endpoint without state
    /// overrides) is read member by member, and a protocol's view the lens could not
    /// answer (it failed, or answered more than the lens keeps) is called directly, so
    /// both ways read the same values.
    pub async fn members(
        &self,
        block: &PinnedBlock,
        vault: Address,
        members: &[(B256, Option<Address>)],
    ) -> Result<Vec<MemberRead>, ReadError> {
        let id = self.check(block)?;
        let chunks = members
            .chunks(LENS_MEMBERS)
            .map(|chunk| self.members_chunk(block, id, vault, chunk));
        let reads = futures::future::try_join_all(chunks).await?;
        Ok(reads.into_iter().flatten().collect())
    }

    async fn members_chunk(
        &self,
        block: &PinnedBlock,
        id: BlockId,
        vault: Address,
        chunk: &[(B256, Option<Address>)],
    ) -> Result<Vec<MemberRead>, ReadError> {
        let reads = match self.lens(block, id, vault, chunk).await {
            Ok(reads) => reads,
            Err(e) => {
                tracing::debug!(chain_id = block.chain_id, %vault, error = %e, "lens unavailable; reading member by member");
                let one_by_one = chunk
                    .iter()
                    .map(|&(member, books)| self.member_and_books(block, vault, member, books));
                return futures::future::try_join_all(one_by_one).await;
            }
        };
        let each = chunk
            .iter()
            .zip(reads)
            .map(|(&(_, books), read)| self.lens_member(block, id, vault, books, read));
        futures::future::try_join_all(each).await
    }

    /// One lens call for `chunk`; its answer has one entry per member.
    async fn lens(
        &self,
        block: &PinnedBlock,
        id: BlockId,
        vault: Address,
        chunk: &[(B256, Option<Address>)],
    ) -> Result<Vec<SnapshotLens::MemberRead>, ReadError> {
        let ids: Vec<B256> = chunk.iter().map(|(m, _)| *m).collect();
        let books: Vec<Address> = chunk
            .iter()
            .map(|(_, b)| b.unwrap_or(Address::ZERO))
            .collect();
        let code = lens_override();
        let reads = self
            .pool
            .call("lens", |p| {
                let (ids, books, code) = (ids.clone(), books.clone(), code.clone());
                async move {
                    Ok(SnapshotLens::new(LENS_ADDRESS, p)
                        .read(vault, ids, books, lens_bounds())
                        .block(id)
                        .state(code)
                        .call()
                        .await?)
                }
            })
            .await?;
        if reads.len() != chunk.len() {
            return Err(ReadError::Inconsistent {
                contract: vault,
                block: block.number,
                reason: format!("lens answered {} members for {}", reads.len(), chunk.len()),
            });
        }
        Ok(reads)
    }

    /// A member as the lens read it; a view it could not answer is called directly.
    async fn lens_member(
        &self,
        block: &PinnedBlock,
        id: BlockId,
        vault: Address,
        books: Option<Address>,
        read: SnapshotLens::MemberRead,
    ) -> Result<MemberRead, ReadError> {
        if read.record.is_empty() {
            return Ok(MemberRead::default());
        }
        let m =
            BackstopVault::memberCall::abi_decode_returns_validate(&read.record).map_err(|e| {
                ReadError::Inconsistent {
                    contract: vault,
                    block: block.number,
                    reason: format!("member record undecodable: {e}"),
                }
            })?;
        let record = MemberRecord::of(m, read.frozen, read.coverageAvailable);
        let (solvency, risk) = match books {
            Some(c) if record.is_some() => {
                let (books, risk) = tokio::join!(
                    self.books_from_lens(block, id, c, &read),
                    self.risk_from_lens(block, c, &read.risk)
                );
                (Some(books?), risk)
            }
            _ => (None, None),
        };
        Ok(MemberRead {
            record,
            solvency,
            risk,
        })
    }

    /// A protocol's risk view from the lens's answer: judged by its length alone when longer
    /// than a risk view may be, decoded when whole; otherwise called directly (the call
    /// failed in the lens: a revert, or the lens's gas).
    async fn risk_from_lens(
        &self,
        block: &PinnedBlock,
        member: Address,
        view: &SnapshotLens::View,
    ) -> Option<RiskView> {
        let size = usize::try_from(view.size).unwrap_or(usize::MAX);
        if view.ok && size > MAX_RISK_VIEW_BYTES {
            return Some(RiskView::oversized(size));
        }
        match whole(view) {
            Some(data) => Some(RiskView::from_return_data(data)),
            None => self.risk_or_none(block, member).await,
        }
    }

    /// [`Reader::risk`], `None` when the request failed (logged).
    async fn risk_or_none(&self, block: &PinnedBlock, member: Address) -> Option<RiskView> {
        match self.risk(block, member).await {
            Ok(view) => Some(view),
            Err(e) => {
                tracing::debug!(chain_id = block.chain_id, %member, error = %e, "risk view unreadable");
                None
            }
        }
    }

    /// A protocol's books from the lens's two views, each called directly where the lens's
    /// answer is not the whole answer of a call that returned.
    async fn books_from_lens(
        &self,
        block: &PinnedBlock,
        id: BlockId,
        member: Address,
        read: &SnapshotLens::MemberRead,
    ) -> Result<Solvency, ReadError> {
        let books = whole(&read.solvency)
            .and_then(|d| IBackstopMember::solvencyCall::abi_decode_returns_validate(d).ok());
        let Some(books) = books else {
            return self.solvency(block, member).await;
        };
        let booked_draws = match whole(&read.bookedDraws) {
            Some([]) => None,
            Some(d) => match IBackstopMember::bookedDrawsCall::abi_decode_returns(d) {
                Ok(n) => Some(n),
                Err(_) => self.booked_draws(id, member).await?,
            },
            None => self.booked_draws(id, member).await?,
        };
        Ok(Solvency {
            assets: books.assets,
            liabilities: books.liabilities,
            booked_draws,
        })
    }

    /// One member without the lens: its record, and its books when it is known.
    async fn member_and_books(
        &self,
        block: &PinnedBlock,
        vault: Address,
        member: B256,
        books: Option<Address>,
    ) -> Result<MemberRead, ReadError> {
        let Some(record) = self.member(block, vault, member).await? else {
            return Ok(MemberRead::default());
        };
        let (solvency, risk) = match books {
            Some(c) => {
                let (books, risk) =
                    tokio::join!(self.solvency(block, c), self.risk_or_none(block, c));
                (Some(books?), risk)
            }
            None => (None, None),
        };
        Ok(MemberRead {
            record: Some(record),
            solvency,
            risk,
        })
    }

    /// The draw a vault settled for `(member, seq)` (zero when none): on the member's home
    /// vault the registered draw, on another vault the draw whose leg it paid.
    pub async fn draw_of(
        &self,
        block: &PinnedBlock,
        vault: Address,
        member: B256,
        seq: u64,
    ) -> Result<B256, ReadError> {
        let id = self.check(block)?;
        Ok(self
            .pool
            .call("drawOf", |p| async move {
                Ok(vault_at(p, vault)
                    .drawOf(member, seq)
                    .block(id)
                    .call()
                    .await?)
            })
            .await?)
    }

    /// Whether a vault consumed an action id.
    pub async fn action_used(
        &self,
        block: &PinnedBlock,
        vault: Address,
        action: B256,
    ) -> Result<bool, ReadError> {
        let id = self.check(block)?;
        Ok(self
            .pool
            .call("actionUsed", |p| async move {
                Ok(vault_at(p, vault)
                    .actionUsed(action)
                    .block(id)
                    .call()
                    .await?)
            })
            .await?)
    }

    /// Alert level of a subject on a vault.
    pub async fn alert_level(
        &self,
        block: &PinnedBlock,
        vault: Address,
        subject: B256,
    ) -> Result<u8, ReadError> {
        let id = self.check(block)?;
        Ok(self
            .pool
            .call("alertLevel", |p| async move {
                Ok(vault_at(p, vault)
                    .alertLevel(subject)
                    .block(id)
                    .call()
                    .await?)
            })
            .await?)
    }

    /// The pool token of a vault (ERC-4626 `asset()`).
    pub async fn vault_token(
        &self,
        block: &PinnedBlock,
        vault: Address,
    ) -> Result<Address, ReadError> {
        let id = self.check(block)?;
        let token = self
            .pool
            .call("asset", |p| async move {
                Ok(vault_at(p, vault).asset().block(id).call().await?)
            })
            .await?;
        if token == Address::ZERO {
            return Err(ReadError::Inconsistent {
                contract: vault,
                block: block.number,
                reason: "zero pool token".into(),
            });
        }
        Ok(token)
    }

    /// Everything about a vault the node decides on, read at one block and cross-checked:
    /// through [`SnapshotLens`] in one request, or view by view where the lens cannot answer
    /// every view whole (both ways read the same values).
    pub async fn vault_state(
        &self,
        block: &PinnedBlock,
        vault: Address,
        token: Address,
    ) -> Result<VaultState, ReadError> {
        let views = match self.vault_views_from_lens(block, vault, token).await {
            Some(views) => views,
            None => self.vault_views(block, vault, token).await?,
        };
        let state = VaultState::of(*block, vault, token, views);
        state.validate().map_err(|reason| ReadError::Inconsistent {
            contract: vault,
            block: block.number,
            reason,
        })?;
        Ok(state)
    }

    /// A vault's views through the lens; `None` when any is not answered whole.
    async fn vault_views_from_lens(
        &self,
        block: &PinnedBlock,
        vault: Address,
        token: Address,
    ) -> Option<VaultViews> {
        use BackstopVault as V;
        let calls = vec![
            lens_call(token, MockToken::balanceOfCall { account: vault }),
            lens_call(vault, V::limitsCall {}),
            lens_call(vault, V::bucketAvailableCall {}),
            lens_call(vault, V::availableForPayoutCall {}),
            lens_call(vault, V::pausedCall {}),
            lens_call(vault, V::pausedUntilCall {}),
            lens_call(vault, V::guardiansCall {}),
            lens_call(vault, V::thresholdCall {}),
            lens_call(vault, V::pauseThresholdCall {}),
            lens_call(vault, V::guardianSetIndexCall {}),
        ];
        let views = match self.lens_calls(block, calls).await {
            Ok(views) => views,
            Err(e) => {
                tracing::debug!(chain_id = block.chain_id, %vault, error = %e, "lens unavailable; reading the vault view by view");
                return None;
            }
        };
        let [b, l, bu, a, p, pu, g, t, pt, si] = <[_; 10]>::try_from(views).ok()?;
        Some((
            decoded::<MockToken::balanceOfCall>(&b)?,
            decoded::<V::limitsCall>(&l)?,
            decoded::<V::bucketAvailableCall>(&bu)?,
            decoded::<V::availableForPayoutCall>(&a)?,
            decoded::<V::pausedCall>(&p)?,
            decoded::<V::pausedUntilCall>(&pu)?,
            decoded::<V::guardiansCall>(&g)?,
            decoded::<V::thresholdCall>(&t)?,
            decoded::<V::pauseThresholdCall>(&pt)?,
            decoded::<V::guardianSetIndexCall>(&si)?,
        ))
    }

    /// A vault's views, one call each.
    async fn vault_views(
        &self,
        block: &PinnedBlock,
        vault: Address,
        token: Address,
    ) -> Result<VaultViews, ReadError> {
        let id = self.check(block)?;
        Ok(self
            .pool
            .call("vault state", |p| async move {
                let v = vault_at(p.clone(), vault);
                let t = MockToken::new(token, p);
                let balance = t.balanceOf(vault).block(id);
                let limits = v.limits().block(id);
                let bucket = v.bucketAvailable().block(id);
                let available = v.availableForPayout().block(id);
                let paused = v.paused().block(id);
                let paused_until = v.pausedUntil().block(id);
                let guardians = v.guardians().block(id);
                let threshold = v.threshold().block(id);
                let pause_threshold = v.pauseThreshold().block(id);
                let set_index = v.guardianSetIndex().block(id);
                let r = futures::try_join!(
                    balance.call().into_future(),
                    limits.call().into_future(),
                    bucket.call().into_future(),
                    available.call().into_future(),
                    paused.call().into_future(),
                    paused_until.call().into_future(),
                    guardians.call().into_future(),
                    threshold.call().into_future(),
                    pause_threshold.call().into_future(),
                    set_index.call().into_future(),
                )
                .map_err(CallError::from)?;
                Ok(r)
            })
            .await?)
    }
}

impl VaultState {
    /// The state from its views read at `block`.
    fn of(block: PinnedBlock, vault: Address, token: Address, views: VaultViews) -> Self {
        let (balance, limits, bucket, available, paused, paused_until, guardians, t, p, index) =
            views;
        Self {
            block,
            vault,
            token,
            balance,
            limits,
            bucket_available: bucket,
            available_for_payout: available,
            paused,
            paused_until,
            guardians,
            threshold: t,
            pause_threshold: p,
            guardian_set_index: index,
        }
    }

    /// Checks the state against the vault's invariants.
    pub fn validate(&self) -> Result<(), String> {
        let n = self.guardians.len();
        if n == 0 || n > MAX_GUARDIANS {
            return Err(format!("{n} guardians"));
        }
        if self.guardians.windows(2).any(|w| w[0] >= w[1]) || self.guardians[0] == Address::ZERO {
            return Err("guardian set not strictly ascending".into());
        }
        let (t, p) = (self.threshold as usize, self.pause_threshold as usize);
        if p == 0 || p > t || t > n || 2 * t <= n {
            return Err(format!("thresholds t={t} p={p} for {n} guardians"));
        }
        let capacity = U256::from(self.limits.bucketCapacity);
        if self.bucket_available > capacity {
            return Err(format!(
                "bucket {} above capacity {capacity}",
                self.bucket_available
            ));
        }
        let above_floor = self.balance.saturating_sub(self.limits.reserveFloor);
        let expected = self.bucket_available.min(above_floor);
        if self.available_for_payout != expected {
            return Err(format!(
                "availableForPayout {} but min(bucket {}, balance {} - floor {}) = {expected}",
                self.available_for_payout,
                self.bucket_available,
                self.balance,
                self.limits.reserveFloor
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn state() -> VaultState {
        VaultState {
            block: PinnedBlock {
                chain_id: 1,
                number: 1,
                hash: B256::ZERO,
            },
            vault: Address::repeat_byte(1),
            token: Address::repeat_byte(2),
            balance: U256::from(5_000),
            limits: IBackstopVault::Limits {
                bucketCapacity: 3_000,
                refillPerSecond: 1,
                reserveFloor: U256::from(1_000),
                withdrawCooldown: 0,
                emergencyDuration: 1,
            },
            bucket_available: U256::from(3_000),
            available_for_payout: U256::from(3_000),
            paused: false,
            paused_until: 0,
            guardians: (1..=4).map(Address::with_last_byte).collect(),
            threshold: 3,
            pause_threshold: 2,
            guardian_set_index: 0,
        }
    }

    #[test]
    fn consistent_state_passes() {
        state().validate().unwrap();
    }

    fn exposure(oracle: u8, delta: I256, gamma: I256) -> IBackstopRisk::Exposure {
        IBackstopRisk::Exposure {
            oracle: Address::with_last_byte(oracle),
            delta,
            gamma,
        }
    }

    fn answer(exposures: Vec<IBackstopRisk::Exposure>) -> Vec<u8> {
        IBackstopRisk::riskExposuresCall::abi_encode_returns(&exposures)
    }

    fn invalid(data: &[u8]) -> String {
        match RiskView::from_return_data(data) {
            RiskView::Invalid(reason) => reason,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn risk_view_accepts_bounded_exposures_in_order() {
        let max = I256::from_raw(EXPOSURE_BOUND - U256::from(1));
        let min = -max;
        let raw: Vec<_> = (1..=MAX_EXPOSURES as u8)
            .rev()
            .map(|i| exposure(i, max, min))
            .collect();
        let data = answer(raw.clone());
        assert!(data.len() <= MAX_RISK_VIEW_BYTES);
        let RiskView::Exposures(got) = RiskView::from_return_data(&data) else {
            panic!("16 bounded exposures are valid");
        };
        assert_eq!(got.len(), MAX_EXPOSURES);
        assert_eq!(got[0].oracle, Address::with_last_byte(16));
        assert_eq!((got[0].delta, got[0].gamma), (max, min));
        assert_eq!(got[15].oracle, Address::with_last_byte(1));
        assert_eq!(
            RiskView::from_return_data(&answer(vec![])),
            RiskView::Exposures(vec![])
        );
        assert_eq!(RiskView::from_return_data(&[]), RiskView::Missing);
    }

    #[test]
    fn risk_view_garbage_is_invalid_and_named() {
        let one = I256::ONE;
        let bound = I256::from_raw(EXPOSURE_BOUND);
        let raw: Vec<_> = (1..=17).map(|i| exposure(i, one, one)).collect();
        assert!(invalid(&answer(raw)).contains("17 exposures"));
        let dup = vec![
            exposure(1, one, one),
            exposure(2, one, one),
            exposure(1, one, one),
        ];
        assert!(invalid(&answer(dup)).contains("listed twice"));
        assert!(invalid(&answer(vec![exposure(0, one, one)])).contains("zero oracle"));
        assert!(invalid(&answer(vec![exposure(1, bound, one)])).contains("delta"));
        assert!(invalid(&answer(vec![exposure(1, one, -bound)])).contains("gamma"));
        assert!(invalid(&answer(vec![exposure(1, I256::MIN, one)])).contains("delta"));
        assert!(invalid(&answer(vec![exposure(1, one, I256::MAX)])).contains("gamma"));
        // Beyond the byte bound: refused before decoding, even if well formed.
        let many: Vec<_> = (0..100u32)
            .map(|i| IBackstopRisk::Exposure {
                oracle: Address::from_word(B256::from(U256::from(i + 1))),
                delta: one,
                gamma: one,
            })
            .collect();
        assert!(invalid(&answer(many)).contains("bytes of return data"));
        // A header claiming 100,000 entries with no body, a truncated word, a dirty address.
        let mut lying = U256::from(0x20).to_be_bytes::<32>().to_vec();
        lying.extend(U256::from(100_000).to_be_bytes::<32>());
        assert!(invalid(&lying).starts_with("undecodable"));
        assert!(invalid(&[0u8; 31]).starts_with("undecodable"));
        let mut dirty = answer(vec![exposure(1, one, one)]);
        dirty[64] = 0xff;
        assert!(invalid(&dirty).starts_with("undecodable"));
    }

    #[test]
    fn inconsistent_states_are_rejected() {
        let mut s = state();
        s.available_for_payout = U256::from(3_001);
        assert!(s.validate().is_err());
        let mut s = state();
        s.guardians.swap(0, 1);
        assert!(s.validate().is_err());
        let mut s = state();
        s.threshold = 2; // not a majority of 4
        assert!(s.validate().is_err());
        let mut s = state();
        s.pause_threshold = 4;
        assert!(s.validate().is_err());
        let mut s = state();
        s.bucket_available = U256::from(3_001);
        assert!(s.validate().is_err());
        let mut s = state();
        s.guardians.clear();
        assert!(s.validate().is_err());
    }
}
