//! Verification of a report against the chains alone.
//!
//! From the registering transaction on the home vault: its receipt's `DrawRegistered`
//! (draw hash, gap, amount, legs, block), its calldata's guardian signatures, recovered over
//! the draw's EIP-712 digest ([`crate::chains::registration_call`]), each a guardian of the
//! vault's set at that block and at least its threshold; the member's deductible there; the
//! member's `solvency()` at the pinned home block (`liabilities − assets` = the draw's gap)
//! and at the block of the last reading; the uncovered amount (gap − deductible − amount).
//! From each paid remote leg's transaction: its `LegPaid` (draw hash, amount, block) and the
//! signatures of its `releaseLeg` calldata, recovered over the `LegRelease` digest, checked
//! against that vault's guardians at that block.
//!
//! Invariants: the report is only compared, never trusted: each figure is read from a chain
//! and a difference is a [`Mismatch`] naming the field, the report's value and the chain's;
//! a failed or inconsistent RPC answer is a [`VerifyError::Rpc`] naming the chain and URL,
//! never a mismatch. The timeline, the breakers, unpaid legs and the solvency contract's
//! address are taken on trust (see the design document).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::time::Duration;

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionReceipt;
use alloy::signers::Signature;
use alloy::sol_types::SolCall;
use backstop_chain::reads::{PinnedBlock, Reader, VaultState};
use backstop_chain::retry::Backoff;
use backstop_chain::rpc::{CallError, RpcConfig, RpcPool};
use backstop_contracts::bindings::BackstopVault;
use backstop_contracts::eip712::{SIGNATURE_LEN, Signable, VaultId};

use super::{DrawFacts, LegFacts, Report};
use crate::chains::{ChainError, registration_call};

/// Most `--rpc` arguments.
const MAX_RPCS: usize = 64;

/// A figure of the report the chains do not confirm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// The report's field.
    pub field: String,
    /// What the report says.
    pub report: String,
    /// What the chain says.
    pub chain: String,
}

impl Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: the report says {}, the chain says {}",
            self.field, self.report, self.chain
        )
    }
}

/// The outcome of a verification that could read every chain it needed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Figures compared.
    pub checked: usize,
    /// Those that differ.
    pub mismatches: Vec<Mismatch>,
}

/// Why a report could not be verified (as opposed to: it was, and differs).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A `--rpc` argument is not `<chain id>=<url>`.
    #[error("bad --rpc {0:?}: expected <chain id>=<url>")]
    BadRpcArg(String),
    /// No RPC for a chain the report names.
    #[error("no --rpc given for chain {0}, which the report names")]
    NoRpc(u64),
    /// The report has no registered draw.
    #[error("the report has no registered draw: nothing on chain to check it against")]
    NothingToVerify,
    /// An RPC failed, or answered something inconsistent.
    #[error("rpc failed: chain {chain_id} ({url}): {reason}")]
    Rpc {
        /// Chain.
        chain_id: u64,
        /// Endpoint.
        url: String,
        /// Why.
        reason: String,
    },
}

/// Parses `<chain id>=<url>` arguments (one URL per chain).
pub fn parse_rpcs(args: &[String]) -> Result<BTreeMap<u64, String>, VerifyError> {
    if args.len() > MAX_RPCS {
        return Err(VerifyError::BadRpcArg(format!("{} arguments", args.len())));
    }
    let mut out = BTreeMap::new();
    for a in args {
        let bad = || VerifyError::BadRpcArg(a.chars().take(200).collect());
        let (chain, url) = a.split_once('=').ok_or_else(bad)?;
        let chain: u64 = chain.trim().parse().map_err(|_| bad())?;
        if url.trim().is_empty() || out.insert(chain, url.trim().to_owned()).is_some() {
            return Err(bad());
        }
    }
    Ok(out)
}

/// Re-derives the report's figures from the chains (`rpcs`: chain id → URL).
pub async fn verify(report: &Report, rpcs: &BTreeMap<u64, String>) -> Result<Verdict, VerifyError> {
    let draw = report.draw.as_ref().ok_or(VerifyError::NothingToVerify)?;
    let chains = Chains::connect(draw, rpcs)?;
    let mut c = Checker::default();
    let mut proven = BTreeSet::new();
    registration(&chains, report, draw, &mut c).await?;
    proven.insert(draw.registration.tx_hash);
    trigger(&chains, report, draw, &mut c).await?;
    for leg in &draw.legs {
        if leg.chain_id != draw.registration.chain_id && leg.paid {
            remote_leg(&chains, report, draw, leg, &mut c).await?;
            proven.extend(leg.tx_hash);
        }
    }
    for t in &report.transactions {
        c.check(
            proven.contains(t),
            "transactions",
            t,
            "neither the registration nor a leg payment of this draw",
        );
    }
    Ok(Verdict {
        checked: c.checked,
        mismatches: c.mismatches,
    })
}

/// The comparisons made so far.
#[derive(Default)]
struct Checker {
    checked: usize,
    mismatches: Vec<Mismatch>,
}

impl Checker {
    fn same<T: PartialEq + Display>(&mut self, field: impl Into<String>, report: T, chain: T) {
        let ok = report == chain;
        self.check(ok, field, report, chain);
    }

    fn check(
        &mut self,
        ok: bool,
        field: impl Into<String>,
        report: impl Display,
        chain: impl Display,
    ) {
        self.checked += 1;
        if !ok {
            self.mismatches.push(Mismatch {
                field: field.into(),
                report: report.to_string(),
                chain: chain.to_string(),
            });
        }
    }
}

/// One RPC pool per chain the report needs.
struct Chains {
    pools: BTreeMap<u64, (String, RpcPool)>,
}

impl Chains {
    fn connect(draw: &DrawFacts, rpcs: &BTreeMap<u64, String>) -> Result<Self, VerifyError> {
        let mut needed = BTreeSet::from([draw.registration.chain_id]);
        needed.extend(draw.legs.iter().filter(|l| l.paid).map(|l| l.chain_id));
        let mut pools = BTreeMap::new();
        for chain_id in needed {
            let url = rpcs.get(&chain_id).ok_or(VerifyError::NoRpc(chain_id))?;
            let config = RpcConfig {
                chain_id,
                urls: vec![url.clone()],
                request_timeout: Duration::from_secs(5),
                backoff: Backoff {
                    initial: Duration::from_millis(100),
                    max: Duration::from_secs(1),
                    max_attempts: 3,
                },
            };
            pools.insert(chain_id, (url.clone(), RpcPool::new(config)));
        }
        Ok(Self { pools })
    }

    fn pool(&self, chain_id: u64) -> Result<&RpcPool, VerifyError> {
        self.pools
            .get(&chain_id)
            .map(|(_, p)| p)
            .ok_or(VerifyError::NoRpc(chain_id))
    }

    fn failed(&self, chain_id: u64, reason: impl Display) -> VerifyError {
        VerifyError::Rpc {
            chain_id,
            url: self
                .pools
                .get(&chain_id)
                .map(|(u, _)| u.clone())
                .unwrap_or_default(),
            reason: reason.to_string(),
        }
    }

    /// A transaction's receipt; `None` when the chain has no such transaction.
    async fn receipt(
        &self,
        chain_id: u64,
        hash: B256,
    ) -> Result<Option<TransactionReceipt>, VerifyError> {
        let r = self
            .pool(chain_id)?
            .call("eth_getTransactionReceipt", |p| async move {
                Ok(p.get_transaction_receipt(hash).await?)
            })
            .await
            .map_err(|e| self.failed(chain_id, e))?;
        match r {
            Some(r) if r.transaction_hash != hash => Err(self.failed(
                chain_id,
                format!("asked the receipt of {hash}, got {}", r.transaction_hash),
            )),
            Some(r) if r.block_number.is_none() => Ok(None),
            r => Ok(r),
        }
    }

    /// A transaction's calldata.
    async fn input(&self, chain_id: u64, hash: B256) -> Result<Bytes, VerifyError> {
        self.pool(chain_id)?
            .call("eth_getTransactionByHash", |p| async move {
                let tx = p.get_transaction_by_hash(hash).await?.ok_or_else(|| {
                    CallError::Invalid(format!("transaction {hash} has a receipt but no body"))
                })?;
                Ok(alloy::consensus::Transaction::input(&tx).clone())
            })
            .await
            .map_err(|e| self.failed(chain_id, e))
    }

    /// The canonical block `number`.
    async fn block(&self, chain_id: u64, number: u64) -> Result<PinnedBlock, VerifyError> {
        let b = self
            .pool(chain_id)?
            .block_ref(number)
            .await
            .map_err(|e| self.failed(chain_id, e))?;
        Ok(PinnedBlock {
            chain_id,
            number,
            hash: b.hash,
        })
    }

    /// The vault's state (guardian set, threshold) at a block.
    async fn vault(&self, block: &PinnedBlock, vault: Address) -> Result<VaultState, VerifyError> {
        let reader = Reader::new(self.pool(block.chain_id)?);
        let failed = |e| self.failed(block.chain_id, e);
        let token = reader.vault_token(block, vault).await.map_err(failed)?;
        reader
            .vault_state(block, vault, token)
            .await
            .map_err(|e| self.failed(block.chain_id, e))
    }

    /// The member's gap (`liabilities − assets`, or 0) at a block.
    async fn gap(&self, block: &PinnedBlock, solvency: Address) -> Result<U256, VerifyError> {
        let s = Reader::new(self.pool(block.chain_id)?)
            .solvency(block, solvency)
            .await
            .map_err(|e| self.failed(block.chain_id, e))?;
        Ok(s.liabilities.saturating_sub(s.assets))
    }
}

/// A value that may be absent, as shown in a mismatch.
fn opt<T: Display>(v: Option<T>) -> String {
    v.map_or_else(|| "none".into(), |v| v.to_string())
}

/// The guardians whose signatures `blob` holds over `digest`.
fn recover(blob: &Bytes, digest: B256) -> Result<Vec<Address>, String> {
    if !blob.len().is_multiple_of(SIGNATURE_LEN) {
        return Err(format!("{} bytes of signatures", blob.len()));
    }
    blob.chunks(SIGNATURE_LEN)
        .map(|s| {
            Signature::try_from(s)
                .and_then(|s| s.recover_address_from_prehash(&digest))
                .map_err(|e| format!("a signature does not recover: {e}"))
        })
        .collect()
}

/// The registration: event, block, signers, deductible, uncovered amount, home leg.
async fn registration(
    chains: &Chains,
    report: &Report,
    draw: &DrawFacts,
    c: &mut Checker,
) -> Result<(), VerifyError> {
    let reg = &draw.registration;
    let Some(receipt) = chains.receipt(reg.chain_id, reg.tx_hash).await? else {
        c.check(
            false,
            "draw.registration.tx_hash",
            reg.tx_hash,
            "no such transaction",
        );
        return Ok(());
    };
    c.same(
        "draw.registration.block",
        opt(Some(reg.block)),
        opt(receipt.block_number),
    );
    c.check(
        receipt.status(),
        "draw.registration.tx_hash",
        "a registration",
        "a reverted transaction",
    );
    let event = receipt.inner.logs().iter().find_map(|l| {
        (l.address() == reg.vault)
            .then(|| l.log_decode::<BackstopVault::DrawRegistered>().ok())
            .flatten()
    });
    let Some(event) = event.map(|e| e.inner.data) else {
        c.check(
            false,
            "draw.registration",
            "a DrawRegistered of the vault",
            "none in this transaction",
        );
        return Ok(());
    };
    c.same("member", report.member, event.member);
    c.same("seq", report.seq, event.seq);
    c.same("draw.hash", draw.hash, event.drawHash);
    c.same("draw.gap", draw.gap, event.gap);
    c.same("draw.amount", draw.amount, event.amount);
    c.same("draw.legs (count)", draw.legs.len(), event.legs.len());
    for (mine, theirs) in draw.legs.iter().zip(&event.legs) {
        let field = |what: &str| format!("draw.legs[chain {}].{what}", mine.chain_id);
        c.same(field("chain_id"), mine.chain_id, theirs.chainId);
        c.same(field("vault"), mine.vault, theirs.vault);
        c.same(field("amount"), mine.amount, theirs.amount);
    }
    let home = VaultId {
        chain_id: reg.chain_id,
        address: reg.vault,
    };
    let call = match registration_call(
        chains.pool(reg.chain_id)?,
        home,
        reg.tx_hash,
        event.drawHash,
    )
    .await
    {
        Ok(call) => call,
        Err(ChainError::Inconsistent { reason, .. }) => {
            c.check(
                false,
                "draw.registration.tx_hash",
                "a registerDraw call",
                reason,
            );
            return Ok(());
        }
        Err(e) => return Err(chains.failed(reg.chain_id, e)),
    };
    let block = chains
        .block(reg.chain_id, receipt.block_number.unwrap_or(reg.block))
        .await?;
    let state = chains.vault(&block, reg.vault).await?;
    signers(
        c,
        report,
        "registration",
        &call.signatures,
        event.drawHash,
        &state,
        true,
    );
    let member = Reader::new(chains.pool(reg.chain_id)?)
        .member(&block, reg.vault, report.member)
        .await
        .map_err(|e| chains.failed(reg.chain_id, e))?;
    let deductible = member.map_or(U256::ZERO, |m| U256::from(m.deductible));
    c.same("deductible", report.deductible, deductible);
    let uncovered = event
        .gap
        .saturating_sub(deductible)
        .saturating_sub(event.amount);
    c.same("uncovered", report.uncovered, uncovered);
    if let Some(leg) = draw.legs.iter().find(|l| l.chain_id == reg.chain_id) {
        let paid = leg_paid(&receipt, reg.vault, event.drawHash);
        c.same(
            "draw.legs[home].tx_hash",
            opt(leg.tx_hash),
            opt(Some(reg.tx_hash)),
        );
        c.same(
            "draw.legs[home].block",
            opt(leg.block),
            opt(receipt.block_number),
        );
        c.same("draw.legs[home].amount", opt(Some(leg.amount)), opt(paid));
    }
    Ok(())
}

/// The amount a vault's `LegPaid` of `draw_hash` in `receipt` paid.
fn leg_paid(receipt: &TransactionReceipt, vault: Address, draw_hash: B256) -> Option<U256> {
    receipt.inner.logs().iter().find_map(|l| {
        let e = (l.address() == vault)
            .then(|| l.log_decode::<BackstopVault::LegPaid>().ok())
            .flatten()?;
        (e.inner.data.drawHash == draw_hash).then_some(e.inner.data.amount)
    })
}

/// Signers recovered from a transaction: enough guardians of the vault's set at its
/// block, each named in the report; with `report_side`, each signer the report names is a
/// guardian of that set.
fn signers(
    c: &mut Checker,
    report: &Report,
    what: &str,
    blob: &Bytes,
    digest: B256,
    state: &VaultState,
    report_side: bool,
) {
    let recovered = match recover(blob, digest) {
        Ok(r) => r,
        Err(e) => {
            c.check(
                false,
                format!("{what} signatures"),
                "guardian signatures",
                e,
            );
            return;
        }
    };
    let valid = recovered
        .iter()
        .filter(|s| state.guardians.contains(s))
        .count();
    c.check(
        valid >= usize::from(state.threshold),
        format!("{what} signatures"),
        format!("at least {} guardians", state.threshold),
        format!("{valid} of the set at block {}", state.block.number),
    );
    for s in &recovered {
        c.check(
            report.signers.contains(s),
            "signers",
            "(missing)",
            format!("{s} signed the {what}"),
        );
    }
    if report_side {
        for s in &report.signers {
            c.check(
                state.guardians.contains(s),
                "signers",
                s,
                format!(
                    "not a guardian of vault {} at block {}",
                    state.vault, state.block.number
                ),
            );
        }
    }
}

/// The trigger: the member's gap at the pinned home block, and at the last reading.
async fn trigger(
    chains: &Chains,
    report: &Report,
    draw: &DrawFacts,
    c: &mut Checker,
) -> Result<(), VerifyError> {
    let home = draw.registration.chain_id;
    let Some(solvency) = report.solvency_contract else {
        c.check(
            false,
            "solvency_contract",
            "unknown",
            "needed to read the member's gap",
        );
        return Ok(());
    };
    match report.pinned.iter().find(|p| p.chain_id == home) {
        None => c.check(
            false,
            "pinned",
            "no block of the home chain",
            "needed to check the trigger gap",
        ),
        Some(p) => {
            let canonical = chains.block(home, p.number).await?;
            c.same(format!("pinned[chain {home}].hash"), p.hash, canonical.hash);
            if p.hash == canonical.hash {
                let gap = chains.gap(&canonical, solvency).await?;
                c.same(
                    "draw.gap (solvency() at the pinned home block)",
                    draw.gap,
                    gap,
                );
            }
        }
    }
    if let Some(o) = &report.observed {
        c.same("observed.chain_id", o.chain_id, home);
        let block = chains.block(home, o.block).await?;
        let gap = chains.gap(&block, solvency).await?;
        c.same(
            format!("observed.gap (solvency() at block {})", o.block),
            o.gap,
            gap,
        );
    }
    Ok(())
}

/// A paid remote leg: its transaction's `LegPaid`, block and signers.
async fn remote_leg(
    chains: &Chains,
    report: &Report,
    draw: &DrawFacts,
    leg: &LegFacts,
    c: &mut Checker,
) -> Result<(), VerifyError> {
    let field = |what: &str| format!("draw.legs[chain {}].{what}", leg.chain_id);
    let Some(tx) = leg.tx_hash else {
        c.check(
            false,
            field("tx_hash"),
            "none",
            "a paid leg is checked by its transaction",
        );
        return Ok(());
    };
    let Some(receipt) = chains.receipt(leg.chain_id, tx).await? else {
        c.check(false, field("tx_hash"), tx, "no such transaction");
        return Ok(());
    };
    c.same(field("block"), opt(leg.block), opt(receipt.block_number));
    c.check(
        receipt.status(),
        field("tx_hash"),
        "a leg payment",
        "a reverted transaction",
    );
    c.same(
        field("amount"),
        opt(Some(leg.amount)),
        opt(leg_paid(&receipt, leg.vault, draw.hash)),
    );
    let input = chains.input(leg.chain_id, tx).await?;
    let call = match BackstopVault::releaseLegCall::abi_decode(&input) {
        Ok(call) => call,
        Err(e) => {
            c.check(
                false,
                field("tx_hash"),
                "a releaseLeg call",
                format!("other calldata: {e}"),
            );
            return Ok(());
        }
    };
    c.same(field("draw hash released"), draw.hash, call.leg.drawHash);
    let vault = VaultId {
        chain_id: leg.chain_id,
        address: leg.vault,
    };
    let block = chains
        .block(leg.chain_id, receipt.block_number.unwrap_or_default())
        .await?;
    let state = chains.vault(&block, leg.vault).await?;
    let what = format!("leg release on chain {}", leg.chain_id);
    signers(
        c,
        report,
        &what,
        &call.signatures,
        call.leg.digest(&vault),
        &state,
        false,
    );
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::report::{build, tests::answer};
    use alloy::signers::local::PrivateKeySigner;
    use backstop_contracts::eip712::{pack_signatures, sign_digest};

    #[test]
    fn rpc_arguments_are_chain_equals_url() {
        let args = ["1=http://a".to_string(), "2 = http://b".to_string()];
        let m = parse_rpcs(&args).unwrap();
        assert_eq!(m[&2], "http://b");
        for bad in ["http://a", "x=http://a", "1=", "1=http://again"] {
            let args: Vec<String> = ["1=http://z", bad].iter().map(|s| s.to_string()).collect();
            assert!(
                matches!(parse_rpcs(&args), Err(VerifyError::BadRpcArg(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn signatures_recover_to_their_signers() {
        let keys: Vec<PrivateKeySigner> = (0..3).map(|_| PrivateKeySigner::random()).collect();
        let digest = B256::repeat_byte(7);
        let sigs: Vec<_> = keys
            .iter()
            .map(|k| sign_digest(k, digest).unwrap())
            .collect();
        let blob = pack_signatures(&sigs).unwrap();
        let got: BTreeSet<Address> = recover(&blob, digest).unwrap().into_iter().collect();
        let want: BTreeSet<Address> = keys.iter().map(|k| k.address()).collect();
        assert_eq!(got, want);
        let cut = Bytes::from(blob[..64].to_vec());
        assert!(recover(&cut, digest).unwrap_err().contains("64 bytes"));
    }

    #[tokio::test]
    async fn a_chain_without_rpc_or_an_rpc_that_is_down_is_named() {
        let r = build(&[answer("a", 1)]).unwrap();
        let e = verify(&r, &BTreeMap::new()).await.unwrap_err();
        assert!(matches!(e, VerifyError::NoRpc(1)), "{e}");
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let down = format!("http://127.0.0.1:{port}");
        let rpcs = BTreeMap::from([(1, down.clone()), (2, down.clone())]);
        let e = verify(&r, &rpcs).await.unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, VerifyError::Rpc { chain_id: 1, .. }), "{text}");
        assert!(
            text.starts_with("rpc failed: chain 1") && text.contains(&down),
            "{text}"
        );
        let mut none = r.clone();
        none.draw = None;
        assert!(matches!(
            verify(&none, &rpcs).await,
            Err(VerifyError::NothingToVerify)
        ));
    }
}
