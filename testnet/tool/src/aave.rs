//! The Aave member of the testnet: a real Aave v3.0 market (npm `@aave/core-v3`'s bytecode,
//! deployed by [`backstop_contracts::aave`]) on chain [`AAVE_HOME`], whose borrowable reserve
//! is that chain's pool token, and the `AaveV3Member` adapter over it, registered on every
//! vault as member [`AAVE_MEMBER`] (recipient: the adapter at home, the member's bridge
//! elsewhere).
//!
//! The actors are keys derived from fixed labels ([`actor`]), funded with ether on the home
//! chain: the market's admin (ACL and pool admin, also the member's treasury and
//! bookkeeper), the member's bridge (on every chain), a liquidity supplier, a liquidator, and
//! one borrower per drill run.
//!
//! Invariants: the bridge is the drill's: a remote leg it receives on chain X it locks there
//! (sends to [`bridge_escrow`]) and releases on the home chain (the same amount of the home
//! pool token, minted: the bridge's transfer, simulated) into the adapter with `bringHome`;
//! nothing else moves the adapter's books.

use std::collections::BTreeMap;

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::providers::ext::AnvilApi;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, Result, anyhow, bail};
use backstop_contracts::aave::{
    self, AaveMarket, AaveV3Member, IBackstopVault as AaveVault, IMintableErc20,
};
use backstop_contracts::bindings::BackstopVault;
use serde::{Deserialize, Serialize};

use crate::deploy::CHAINS;
use crate::net::{Net, bounded, mined};

/// Index of the Aave member (after the three mock members, so theirs do not change).
pub const AAVE_MEMBER: usize = 3;

/// Its home chain: the third chain, where no other member lives, so that its trouble never
/// adds to another member's in the nodes' per-chain contagion count, and its market's
/// transactions never delay another member's drill.
pub const AAVE_HOME: u64 = CHAINS[2];

/// Name of the member in the nodes' configuration.
pub const AAVE_NAME: &str = "aave-v3";

/// Most accounts the adapter tracks.
pub const MAX_TRACKED: u64 = 16;

/// Ether given to every actor (wei).
const ACTOR_ETHER: u128 = 1_000_000_000_000_000_000_000;

/// The market behind the Aave member, as recorded in `state.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AaveState {
    /// `PoolAddressesProvider`.
    pub addresses_provider: Address,
    /// The Pool (proxy).
    pub pool: Address,
    /// `AaveOracle`.
    pub oracle: Address,
    /// WETH, the collateral reserve.
    pub weth: Address,
    /// The pool token, the borrowable reserve.
    pub pool_token: Address,
    /// Variable debt token of the pool-token reserve.
    pub variable_debt: Address,
    /// WETH's feed at deployment.
    pub weth_feed: Address,
    /// The adapter (`solvency()`, recipient at home).
    pub adapter: Address,
    /// The member's bridge (recipient on the other chains).
    pub bridge: Address,
    /// Gas used deploying the market (every transaction).
    pub deploy_gas: u64,
    /// Transactions deploying the market.
    pub deploy_transactions: u64,
    /// Drill runs so far (each gets a fresh borrower).
    #[serde(default)]
    pub runs: u64,
}

impl AaveState {
    /// The market as the contracts crate names it.
    pub fn market(&self) -> AaveMarket {
        AaveMarket {
            addresses_provider: self.addresses_provider,
            acl_manager: Address::ZERO,
            pool: self.pool,
            pool_configurator: Address::ZERO,
            oracle: self.oracle,
            weth: self.weth,
            pool_token: self.pool_token,
            weth_feed: self.weth_feed,
            pool_token_feed: Address::ZERO,
            strategy: Address::ZERO,
            pool_token_variable_debt: self.variable_debt,
        }
    }
}

/// The key of actor `label` (`admin`, `bridge`, `supplier`, `liquidator`, `borrower N`).
#[allow(clippy::expect_used)]
pub fn actor(label: &str) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&keccak256(format!("backstop testnet aave {label}")))
        .expect("keccak of a label is a valid secp256k1 key")
}

/// Where the bridge locks what it received on a remote chain.
pub fn bridge_escrow() -> Address {
    Address::from_word(keccak256("backstop testnet aave bridge escrow"))
}

/// A provider on `rpc` signing as `key`.
pub fn provider_as(rpc: &str, key: &PrivateKeySigner) -> Result<DynProvider> {
    Ok(ProviderBuilder::new()
        .wallet(key.clone())
        .connect_http(rpc.parse().with_context(|| format!("RPC URL {rpc}"))?)
        .erased())
}

/// Gives `who` ether on the chain of `provider`.
pub async fn fund(provider: &DynProvider, who: Address) -> Result<()> {
    bounded(
        "anvil_setBalance",
        provider.anvil_set_balance(who, U256::from(ACTOR_ETHER)),
    )
    .await
}

/// Deploys the market on the home chain (`rpc`, whose pool token is `pool_token`) and the
/// adapter for member `member_id` homed on `vault`. The chain should mine instantly meanwhile
/// (30 transactions).
pub async fn deploy(
    rpc: &str,
    pool_token: Address,
    vault: Address,
    member_id: B256,
) -> Result<AaveState> {
    let admin = actor("admin");
    let bridge = actor("bridge").address();
    let p = provider_as(rpc, &admin)?;
    fund(&p, admin.address()).await?;
    let (market, cost) = aave::deploy_market(&p, admin.address(), pool_token).await?;
    let adapter =
        aave::deploy_adapter(&p, &market, vault, member_id, admin.address(), MAX_TRACKED).await?;
    Ok(AaveState {
        addresses_provider: market.addresses_provider,
        pool: market.pool,
        oracle: market.oracle,
        weth: market.weth,
        pool_token,
        variable_debt: market.pool_token_variable_debt,
        weth_feed: market.weth_feed,
        adapter,
        bridge,
        deploy_gas: cost.gas,
        deploy_transactions: cost.transactions + 1,
        runs: 0,
    })
}

/// The recipients of the Aave member: the adapter at home, the bridge on the other chains.
pub fn recipients(state: &AaveState) -> BTreeMap<u64, Address> {
    CHAINS
        .iter()
        .map(|&c| {
            (
                c,
                if c == AAVE_HOME {
                    state.adapter
                } else {
                    state.bridge
                },
            )
        })
        .collect()
}

/// The draw the home vault registered for (`member`, `seq`), from its registration's
/// calldata (as the nodes read it), in the adapter's ABI types.
pub async fn registered_draw(net: &Net, member: B256, seq: u64) -> Result<AaveVault::Draw> {
    let vault = net.vault(AAVE_HOME)?;
    let logs = bounded(
        "DrawRegistered logs",
        vault.DrawRegistered_filter().from_block(0).query(),
    )
    .await?;
    let (_, log) = logs
        .into_iter()
        .find(|(e, _)| e.member == member && e.seq == seq)
        .ok_or_else(|| anyhow!("no DrawRegistered for seq {seq}"))?;
    let tx_hash = log
        .transaction_hash
        .ok_or_else(|| anyhow!("registration log without a transaction"))?;
    let tx = bounded(
        "registration transaction",
        net.provider(AAVE_HOME)?.get_transaction_by_hash(tx_hash),
    )
    .await?
    .ok_or_else(|| anyhow!("registration {tx_hash} not found"))?;
    let input = alloy::consensus::Transaction::input(&tx).clone();
    let d = <BackstopVault::registerDrawCall as alloy::sol_types::SolCall>::abi_decode(&input)
        .map_err(|e| anyhow!("registration {tx_hash} is not a registerDraw call: {e}"))?
        .draw;
    Ok(AaveVault::Draw {
        member: d.member,
        seq: d.seq,
        gap: d.gap,
        amount: d.amount,
        legs: d
            .legs
            .iter()
            .map(|l| AaveVault::Leg {
                chainId: l.chainId,
                vault: l.vault,
                amount: l.amount,
            })
            .collect(),
        deadline: d.deadline,
        legDeadline: d.legDeadline,
    })
}

/// The bridge carries remote legs `indices` of `draw` home: locks each on its chain (all
/// chains at once), releases their sum on the home chain (minted, at the same time), approves
/// the adapter and brings each into its books (`bringHome`). Returns the transactions.
pub async fn bring_home(
    net: &Net,
    state: &AaveState,
    draw: &AaveVault::Draw,
    indices: &[usize],
) -> Result<Vec<B256>> {
    let bridge = actor("bridge");
    let home = net.chain(AAVE_HOME)?;
    let on_home = provider_as(&home.rpc, &bridge)?;
    fund(&on_home, bridge.address()).await?;
    let total = indices
        .iter()
        .map(|&k| draw.legs[k].amount)
        .fold(U256::ZERO, |a, b| a + b);
    let locks = futures::future::join_all(indices.iter().map(|&k| {
        let leg = draw.legs[k].clone();
        let bridge = bridge.clone();
        async move {
            let remote = net.chain(leg.chainId)?;
            let on_remote = provider_as(&remote.rpc, &bridge)?;
            fund(&on_remote, bridge.address()).await?;
            let token = IMintableErc20::new(remote.token, on_remote);
            let held = bounded("balanceOf", token.balanceOf(bridge.address()).call()).await?;
            // A leg the bridge never received (`repair` after an interrupted drill) has
            // nothing to lock.
            if held < leg.amount {
                return Ok(None);
            }
            mined(
                &format!("bridge locks the leg on chain {}", leg.chainId),
                token.transfer(bridge_escrow(), leg.amount),
            )
            .await
            .map(Some)
        }
    }));
    let token = IMintableErc20::new(home.token, on_home.clone());
    let release = mined(
        "bridge releases the legs on the home chain",
        token.mint(bridge.address(), total),
    );
    let (locks, release) = futures::join!(locks, release);
    let mut txs = Vec::new();
    for l in locks {
        txs.extend(l?);
    }
    txs.push(release?);
    txs.push(
        mined(
            "bridge approves the adapter",
            token.approve(state.adapter, total),
        )
        .await?,
    );
    let a = AaveV3Member::new(state.adapter, on_home);
    for &k in indices {
        txs.push(
            mined(
                "bringHome",
                a.bringHome(draw.clone(), U256::from(k)).gas(aave::USER_GAS),
            )
            .await?,
        );
    }
    Ok(txs)
}

/// The adapter on the home chain, sending as the admin.
pub fn adapter(
    net: &Net,
    state: &AaveState,
) -> Result<AaveV3Member::AaveV3MemberInstance<DynProvider>> {
    let home = net.chain(AAVE_HOME)?;
    Ok(AaveV3Member::new(
        state.adapter,
        provider_as(&home.rpc, &actor("admin"))?,
    ))
}

/// The member's treasury (the admin) pays `amount` of the home pool token into the adapter.
pub async fn pay_in(net: &Net, state: &AaveState, amount: U256) -> Result<B256> {
    let home = net.chain(AAVE_HOME)?;
    let p = provider_as(&home.rpc, &actor("admin"))?;
    mined(
        "the member pays into its adapter",
        IMintableErc20::new(home.token, p).mint(state.adapter, amount),
    )
    .await
}

/// Books every draw the home vault registered and the adapter has not booked: remote legs
/// brought home, then `bookDraw`; then any gap left is paid in by the member and settled.
/// Returns what it did (nothing when the books are clean).
pub async fn book_outstanding(net: &Net, i: usize) -> Result<Vec<String>> {
    let m = net.member(i)?.clone();
    let Some(state) = m.aave.clone() else {
        bail!("{} is not the Aave member", m.name);
    };
    let mut done = Vec::new();
    let a = adapter(net, &state)?;
    let booked = bounded("bookedDraws()", a.bookedDraws().call()).await?;
    let next = net.next_seq(i).await?;
    for seq in booked..next {
        if net.draw_of(i, seq).await?.is_zero() {
            break;
        }
        let draw = registered_draw(net, m.id, seq).await?;
        let hash = bounded(
            "hashDraw",
            net.vault(AAVE_HOME)?
                .hashDraw(crate::aave::to_vault_draw(&draw))
                .call(),
        )
        .await?;
        let mut pending = Vec::new();
        for (k, leg) in draw.legs.iter().enumerate() {
            if leg.chainId == AAVE_HOME {
                continue;
            }
            // 0 = Pending: the bridge received it (or the leg was never paid: the testnet's
            // bridge brings it home anyway, the member's own money).
            if bounded("legState", a.legState(hash, leg.chainId).call()).await? == 0 {
                pending.push(k);
            }
        }
        if !pending.is_empty() {
            bring_home(net, &state, &draw, &pending).await?;
        }
        mined("bookDraw", a.bookDraw(draw).gas(aave::USER_GAS)).await?;
        done.push(format!("{}: draw {seq} booked", m.name));
    }
    // Whatever the adapter holds goes to bad debt left by an interrupted run.
    if !net.balance(AAVE_HOME, state.adapter).await?.is_zero() {
        mined("settle", adapter(net, &state)?.settle().gas(aave::USER_GAS)).await?;
    }
    let (assets, liabilities) = net.solvency(i).await?;
    if liabilities > assets {
        pay_in(net, &state, liabilities - assets).await?;
        // A fresh provider: the admin's nonce moved under the cached one (pay_in).
        let a = adapter(net, &state)?;
        mined("settle", a.settle().gas(aave::USER_GAS)).await?;
        done.push(format!(
            "{}: a gap of {} paid in by the member and settled",
            m.name,
            crate::net::pusd(liabilities - assets)
        ));
    }
    Ok(done)
}

/// `draw` in the vault's ABI types.
pub fn to_vault_draw(d: &AaveVault::Draw) -> backstop_contracts::bindings::IBackstopVault::Draw {
    backstop_contracts::bindings::IBackstopVault::Draw {
        member: d.member,
        seq: d.seq,
        gap: d.gap,
        amount: d.amount,
        legs: d
            .legs
            .iter()
            .map(|l| backstop_contracts::bindings::IBackstopVault::Leg {
                chainId: l.chainId,
                vault: l.vault,
                amount: l.amount,
            })
            .collect(),
        deadline: d.deadline,
        legDeadline: d.legDeadline,
    }
}
