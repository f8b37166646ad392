//! Anvil test fixtures shared by every crate's tests and the local testnet (feature `testing`).
//!
//! What it does: spawns the project's pinned anvil (`.tools/bin/anvil`, see [`crate::tools`]),
//! deploys on it a pool token, a [`BackstopVault`] funded by a deposit, a mock member
//! protocol and a mock oracle ([`deploy_chain`], [`deploy_on`], [`deploy_contracts`]),
//! registers members on vaults with guardian signatures ([`set_member_on`]), moves the mock
//! numbers ([`set_solvency`], [`set_oracle_answer`]), and deploys a whole multi-chain
//! consortium in one call ([`deploy_consortium`]). [`spawn_miner`] mines a chain on a timer.
//!
//! Invariants:
//! - Deterministic: guardian keys come from fixed seeds and are sorted by ascending address
//!   (the order the vault requires); the deployer and depositor is anvil's key 0; contracts
//!   are deployed in a fixed order (token, vault, deposit, oracle, member), so a fresh chain
//!   always gets the same addresses.
//! - Thresholds default to the design's `t = n - f`, `p = f + 1` with `f = floor((n-1)/3)`
//!   ([`thresholds`]); every registration is signed by exactly the vault's current `t`.
//! - Chains deployed here mine instantly (one block per transaction) and every helper that
//!   sends a transaction returns only once it is mined, so a helper's effect is visible to
//!   the next read. Timed mining is opt-in: [`spawn_miner`] (on top of instant mining) or
//!   the `block_time` of [`spawn_anvil`].
//! - A [`Consortium`] has one vault per chain, all with the same guardian set, and every
//!   member registered on every vault with the same home chain; chains are deployed
//!   concurrently.
//! - An anvil process lives as long as its [`Chain`] (dropping the [`AnvilInstance`] kills it).
//! - Test support: a failed step panics with a message that names the step and the chain.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use alloy::contract::{CallBuilder, CallDecoder};
use alloy::node_bindings::{Anvil, AnvilInstance};
use alloy::primitives::{Address, B256, Bytes, I256, U256, keccak256};
use alloy::providers::ext::AnvilApi;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionReceipt;
use alloy::signers::local::PrivateKeySigner;

use crate::bindings::{BackstopVault, IBackstopVault, MockMember, MockOracle, MockToken};
use crate::eip712::{GuardianSignature, Signable, VaultId, pack_signatures, sign_digest};
use crate::tools;

/// One pool-token unit (the mock token has 6 decimals).
pub const UNIT: u64 = 1_000_000;
/// Default outflow bucket capacity of a vault.
pub const BUCKET_CAPACITY: u64 = 10_000 * UNIT;
/// Default bucket refill per second.
pub const REFILL_PER_SECOND: u64 = UNIT;
/// Default reserve floor: a vault never pays below it.
pub const RESERVE_FLOOR: u64 = 1_000 * UNIT;
/// Default withdrawal cooldown, seconds.
pub const WITHDRAW_COOLDOWN: u64 = 86_400;
/// Default duration of a freeze, pause or alert raised with p signatures, seconds.
pub const EMERGENCY_DURATION: u64 = 3_600;
/// Default deposit into a vault.
pub const DEPOSIT: u64 = 50_000 * UNIT;
/// Default per-incident cap of a member.
pub const MEMBER_CAP: u64 = 50_000 * UNIT;
/// Default deductible of a member.
pub const MEMBER_DEDUCTIBLE: u64 = 100 * UNIT;
/// Default coverage limit of a member: what one vault pays it at most within one coverage
/// window. Generous (ten caps), so that it only binds in tests that lower it.
pub const MEMBER_COVERAGE_LIMIT: u64 = 10 * MEMBER_CAP;
/// Default coverage window of a member, seconds.
pub const MEMBER_COVERAGE_WINDOW: u64 = 86_400;
/// Default initial `solvency()` of a mock member: assets and liabilities both at this value.
pub const MEMBER_SOLVENCY: u64 = 1_000 * UNIT;
/// Decimals of the mock oracle.
pub const ORACLE_DECIMALS: u8 = 8;
/// Default answer of the mock oracle (1.00 at 8 decimals).
pub const ORACLE_ANSWER: i64 = 100_000_000;
/// How far in the future the deadlines of fixture-signed actions are, seconds.
pub const DEADLINE_AHEAD: u64 = 3_600;
/// Default ether balance given to every guardian address on every consortium chain (wei).
pub const GUARDIAN_BALANCE_WEI: u128 = 1_000_000_000_000_000_000_000;

/// `n` deterministic guardian keys (seeds `"backstop guardian {i}"`), sorted by ascending
/// address.
pub fn guardian_keys(n: usize) -> Vec<PrivateKeySigner> {
    let mut keys: Vec<PrivateKeySigner> = (0..n)
        .map(|i| {
            PrivateKeySigner::from_bytes(&keccak256(format!("backstop guardian {i}")))
                .expect("keccak of a seed is a valid secp256k1 key")
        })
        .collect();
    keys.sort_by_key(|k| k.address());
    keys
}

/// The design's thresholds for `n` guardians: `(t, p) = (n - f, f + 1)`, `f = floor((n-1)/3)`.
pub fn thresholds(n: usize) -> (u8, u8) {
    assert!(
        (1..=32).contains(&n),
        "a vault has 1 to 32 guardians, not {n}"
    );
    let f = (n - 1) / 3;
    ((n - f) as u8, (f + 1) as u8)
}

/// Id of the default member, `keccak256("perp-dex-a")` (= [`member_id_of`]`(0)`).
pub fn member_id() -> B256 {
    keccak256("perp-dex-a")
}

/// Id of member `i`: [`member_id`] for 0, `keccak256("backstop member {i}")` otherwise.
pub fn member_id_of(i: usize) -> B256 {
    if i == 0 {
        member_id()
    } else {
        keccak256(format!("backstop member {i}"))
    }
}

/// Payout recipient of the default member on every chain, `0xABAB…AB`
/// (= [`recipient_of`]`(0)`).
pub fn recipient() -> Address {
    Address::repeat_byte(0xAB)
}

/// Recipient of member `i`: [`recipient`] for 0, the last 20 bytes of
/// `keccak256("backstop recipient {i}")` otherwise.
pub fn recipient_of(i: usize) -> Address {
    if i == 0 {
        recipient()
    } else {
        Address::from_word(keccak256(format!("backstop recipient {i}")))
    }
}

/// A free loopback port (bound, then released: another process may take it in between).
/// Never the same port twice in one process: the kernel may hand out a just-released port
/// again, and tests running in parallel would then give two listeners one port.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<BTreeSet<u16>> = std::sync::Mutex::new(BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind a loopback port")
            .local_addr()
            .expect("local address of a bound socket")
            .port();
        let mut given = GIVEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if given.insert(port) {
            return port;
        }
    }
}

/// Spawns the project's anvil with `chain_id` on `port` (any free port if `None`).
/// `block_time`: `None` mines a block per transaction at once (instant mining); `Some(d)`
/// mines only every `d` (sub-second allowed), so every transaction waits for the next block.
///
/// Panics if anvil is not installed (`testnet/install-tools`) or does not start.
pub fn spawn_anvil(
    chain_id: u64,
    port: Option<u16>,
    block_time: Option<Duration>,
) -> AnvilInstance {
    let bin = tools::tool("anvil").unwrap_or_else(|e| panic!("{e}"));
    let mut anvil = Anvil::at(bin).chain_id(chain_id);
    if let Some(p) = port {
        anvil = anvil.port(p);
    }
    if let Some(d) = block_time {
        anvil = anvil.block_time_f64(d.as_secs_f64());
    }
    anvil
        .try_spawn()
        .unwrap_or_else(|e| panic!("anvil for chain {chain_id} (port {port:?}) did not start: {e}"))
}

/// A provider over `anvil`'s HTTP endpoint that signs with `key`.
pub fn wallet_provider(anvil: &AnvilInstance, key: PrivateKeySigner) -> DynProvider {
    ProviderBuilder::new()
        .wallet(key)
        .connect_http(anvil.endpoint_url())
        .erased()
}

/// A provider over `anvil`'s HTTP endpoint that signs with the deployer's key (anvil key 0).
pub fn deployer_provider(anvil: &AnvilInstance) -> DynProvider {
    let deployer: PrivateKeySigner = anvil
        .keys()
        .first()
        .expect("anvil has prefunded keys")
        .clone()
        .into();
    wallet_provider(anvil, deployer)
}

/// Sends a contract call and waits for its receipt (which may report a revert: check
/// `receipt.status()`). Panics if the transaction cannot be sent or its receipt fetched.
pub async fn mined<P: Provider, D: CallDecoder>(call: CallBuilder<P, D>) -> TransactionReceipt {
    call.send()
        .await
        .unwrap_or_else(|e| panic!("transaction not sent: {e}"))
        .get_receipt()
        .await
        .unwrap_or_else(|e| panic!("receipt not received: {e}"))
}

/// Like [`mined`], and panics unless the transaction succeeded; `what` names it.
async fn succeeded<P: Provider, D: CallDecoder>(
    what: &str,
    call: CallBuilder<P, D>,
) -> TransactionReceipt {
    let receipt = call
        .send()
        .await
        .unwrap_or_else(|e| panic!("{what}: not sent: {e}"))
        .get_receipt()
        .await
        .unwrap_or_else(|e| panic!("{what}: no receipt: {e}"));
    assert!(receipt.status(), "{what}: reverted ({receipt:?})");
    receipt
}

/// Signs `value` for `vault` with every key of `keys` and packs the signatures as the vault
/// reads them (ascending signer order).
pub fn sign_all<T: Signable>(value: &T, vault: &VaultId, keys: &[PrivateKeySigner]) -> Bytes {
    let digest = value.digest(vault);
    let sigs: Vec<GuardianSignature> = keys
        .iter()
        .map(|k| sign_digest(k, digest).expect("a local key signs a digest"))
        .collect();
    pack_signatures(&sigs).expect("distinct guardian keys")
}

/// The default limits: bucket [`BUCKET_CAPACITY`] refilled at [`REFILL_PER_SECOND`],
/// reserve floor [`RESERVE_FLOOR`], cooldown [`WITHDRAW_COOLDOWN`], emergency duration
/// [`EMERGENCY_DURATION`].
pub fn default_limits() -> IBackstopVault::Limits {
    IBackstopVault::Limits {
        bucketCapacity: BUCKET_CAPACITY.into(),
        refillPerSecond: REFILL_PER_SECOND.into(),
        reserveFloor: U256::from(RESERVE_FLOOR),
        withdrawCooldown: WITHDRAW_COOLDOWN,
        emergencyDuration: EMERGENCY_DURATION,
    }
}

/// What [`deploy_chain`] deploys and how. [`Default`] gives the test defaults of this module.
#[derive(Clone, Debug)]
pub struct ChainParams {
    /// t, signatures to pay, lift or change parameters; `None`: `n - f` ([`thresholds`]).
    pub threshold: Option<u8>,
    /// p, signatures to freeze, pause or alert; `None`: `f + 1` ([`thresholds`]).
    pub pause_threshold: Option<u8>,
    /// Outflow bucket, reserve floor, withdrawal cooldown, emergency duration.
    pub limits: IBackstopVault::Limits,
    /// Pool tokens minted to the deployer and deposited into the vault (raw units).
    pub deposit: U256,
    /// Initial assets reported by the chain's mock member(s).
    pub member_assets: U256,
    /// Initial liabilities reported by the chain's mock member(s).
    pub member_liabilities: U256,
    /// Initial answer of the chain's mock oracle ([`ORACLE_DECIMALS`] decimals).
    pub oracle_answer: I256,
    /// Port of the anvil that [`deploy_chain`] spawns; `None`: any free port.
    pub port: Option<u16>,
}

impl Default for ChainParams {
    fn default() -> Self {
        Self {
            threshold: None,
            pause_threshold: None,
            limits: default_limits(),
            deposit: U256::from(DEPOSIT),
            member_assets: U256::from(MEMBER_SOLVENCY),
            member_liabilities: U256::from(MEMBER_SOLVENCY),
            oracle_answer: I256::try_from(ORACLE_ANSWER).expect("small constant"),
            port: None,
        }
    }
}

impl ChainParams {
    /// The default parameters with another deposit.
    pub fn with_deposit(deposit: u64) -> Self {
        Self {
            deposit: U256::from(deposit),
            ..Self::default()
        }
    }

    /// `(t, p)` for a vault guarded by `n` keys under these parameters.
    pub fn thresholds_for(&self, n: usize) -> (u8, u8) {
        let (t, p) = thresholds(n);
        (
            self.threshold.unwrap_or(t),
            self.pause_threshold.unwrap_or(p),
        )
    }
}

/// Addresses of one vault set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Contracts {
    /// Pool token ([`MockToken`], 6 decimals).
    pub token: Address,
    /// The vault ([`BackstopVault`]).
    pub vault: Address,
    /// A mock member protocol ([`MockMember`]) reading `oracle`.
    pub member_contract: Address,
    /// A mock price oracle ([`MockOracle`]).
    pub oracle: Address,
}

/// Deploys a token, a vault guarded by `keys` (thresholds and limits from `params`), an
/// oracle and a member through `provider`, whose wallet must be `depositor`, which mints and
/// deposits `params.deposit`. Several sets can share one chain.
pub async fn deploy_contracts(
    provider: &DynProvider,
    depositor: Address,
    keys: &[PrivateKeySigner],
    params: &ChainParams,
) -> Contracts {
    let token = MockToken::deploy(provider.clone(), "Pool USD".into(), "pUSD".into())
        .await
        .unwrap_or_else(|e| panic!("deploy MockToken: {e}"));
    let mut guardians: Vec<Address> = keys.iter().map(|k| k.address()).collect();
    guardians.sort();
    let (t, p) = params.thresholds_for(keys.len());
    let vault = BackstopVault::deploy(
        provider.clone(),
        *token.address(),
        "Backstop pUSD".into(),
        "bpUSD".into(),
        guardians,
        t,
        p,
        params.limits.clone(),
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "deploy BackstopVault (n = {}, t = {t}, p = {p}): {e}",
            keys.len()
        )
    });
    let amount = params.deposit;
    succeeded("mint the deposit", token.mint(depositor, amount)).await;
    succeeded("approve the vault", token.approve(*vault.address(), amount)).await;
    succeeded("deposit into the vault", vault.deposit(amount, depositor)).await;
    let oracle = MockOracle::deploy(
        provider.clone(),
        ORACLE_DECIMALS,
        "pUSD / USD".into(),
        params.oracle_answer,
    )
    .await
    .unwrap_or_else(|e| panic!("deploy MockOracle: {e}"));
    let member = deploy_member(provider, params, *oracle.address()).await;
    Contracts {
        token: *token.address(),
        vault: *vault.address(),
        member_contract: member,
        oracle: *oracle.address(),
    }
}

/// Deploys a mock member with the initial solvency of `params`, reading `oracle`.
async fn deploy_member(provider: &DynProvider, params: &ChainParams, oracle: Address) -> Address {
    *MockMember::deploy(
        provider.clone(),
        params.member_assets,
        params.member_liabilities,
        oracle,
    )
    .await
    .unwrap_or_else(|e| panic!("deploy MockMember: {e}"))
    .address()
}

/// Deploys one vault set ([`deploy_contracts`]) on a running `anvil` with its key 0 as
/// deployer and depositor. The chain id is read from the node. Ignores `params.port`.
pub async fn deploy_on(
    anvil: AnvilInstance,
    keys: &[PrivateKeySigner],
    params: &ChainParams,
) -> Chain {
    let provider = deployer_provider(&anvil);
    let chain_id = provider
        .get_chain_id()
        .await
        .unwrap_or_else(|e| panic!("eth_chainId of {}: {e}", anvil.endpoint()));
    let depositor = *anvil
        .addresses()
        .first()
        .expect("anvil has prefunded accounts");
    let c = deploy_contracts(&provider, depositor, keys, params).await;
    Chain {
        anvil,
        provider,
        token: c.token,
        vault: c.vault,
        member_contract: c.member_contract,
        oracle: c.oracle,
        chain_id,
    }
}

/// Spawns an instant-mining anvil for `chain_id` (on `params.port` if set) and deploys one
/// vault set on it, guarded by `keys` ([`deploy_on`]).
pub async fn deploy_chain(chain_id: u64, keys: &[PrivateKeySigner], params: &ChainParams) -> Chain {
    let port = params.port;
    // anvil start blocks on reading its stdout; off the runtime, chains start concurrently.
    let anvil = match tokio::task::spawn_blocking(move || spawn_anvil(chain_id, port, None)).await {
        Ok(anvil) => anvil,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("anvil start for chain {chain_id} cancelled: {e}"),
        },
    };
    deploy_on(anvil, keys, params).await
}

/// A member as registered on every vault of a consortium.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberSpec {
    /// Member id, the same on every chain.
    pub id: B256,
    /// The chain whose vault registers its draws.
    pub home_chain_id: u64,
    /// Payout recipient on every chain not in `recipients`.
    pub recipient: Address,
    /// Payout recipient per chain id, overriding `recipient`.
    pub recipients: BTreeMap<u64, Address>,
    /// Per-incident cap (raw units).
    pub cap: u128,
    /// Deductible the member always bears (raw units).
    pub deductible: u128,
    /// Most one vault pays the member within any `coverage_window` seconds (raw units; at
    /// most `u96::MAX`): whole draws on the home vault, legs on the others.
    pub coverage_limit: u128,
    /// Length of the coverage window, seconds (1 to the vault's `MAX_DURATION`).
    pub coverage_window: u64,
}

impl MemberSpec {
    /// Member `i` ([`member_id_of`], [`recipient_of`] on every chain) with home
    /// `home_chain_id`, cap [`MEMBER_CAP`], deductible [`MEMBER_DEDUCTIBLE`] and coverage
    /// [`MEMBER_COVERAGE_LIMIT`] per [`MEMBER_COVERAGE_WINDOW`].
    pub fn new(i: usize, home_chain_id: u64) -> Self {
        Self {
            id: member_id_of(i),
            home_chain_id,
            recipient: recipient_of(i),
            recipients: BTreeMap::new(),
            cap: MEMBER_CAP.into(),
            deductible: MEMBER_DEDUCTIBLE.into(),
            coverage_limit: MEMBER_COVERAGE_LIMIT.into(),
            coverage_window: MEMBER_COVERAGE_WINDOW,
        }
    }

    /// The recipient on `chain_id`.
    pub fn recipient_on(&self, chain_id: u64) -> Address {
        self.recipients
            .get(&chain_id)
            .copied()
            .unwrap_or(self.recipient)
    }
}

/// Latest block timestamp through `provider`.
async fn latest_timestamp(provider: &DynProvider) -> u64 {
    provider
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .await
        .unwrap_or_else(|e| panic!("latest block: {e}"))
        .expect("a latest block exists")
        .header
        .timestamp
}

/// Makes every fixture action id unique within the process.
static ACTION_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Registers (or updates) `member` on `vault` through `provider`: recipient
/// `member.recipient_on(vault.chain_id)`, its home chain, cap, deductible and coverage, signed by the
/// first `t` of `keys`, `t` being read from the vault. Panics unless the call succeeds.
pub async fn set_member_on(
    provider: &DynProvider,
    vault: VaultId,
    keys: &[PrivateKeySigner],
    member: &MemberSpec,
) -> TransactionReceipt {
    let contract = BackstopVault::new(vault.address, provider.clone());
    let t = usize::from(
        contract
            .threshold()
            .call()
            .await
            .unwrap_or_else(|e| panic!("threshold of vault {vault:?}: {e}")),
    );
    assert!(
        keys.len() >= t,
        "setMember on {vault:?} needs {t} guardian keys, {} given",
        keys.len()
    );
    let n = ACTION_COUNTER.fetch_add(1, Ordering::Relaxed);
    let action = IBackstopVault::SetMember {
        member: member.id,
        recipient: member.recipient_on(vault.chain_id),
        homeChainId: member.home_chain_id,
        cap: member.cap,
        deductible: member.deductible,
        coverageLimit: member.coverage_limit,
        coverageWindow: member.coverage_window,
        id: keccak256(format!(
            "set-member {} {} {} {n}",
            vault.chain_id, vault.address, member.id
        )),
        deadline: latest_timestamp(provider).await + DEADLINE_AHEAD,
    };
    let sigs = sign_all(&action, &vault, &keys[..t]);
    succeeded(
        &format!("setMember {} on {vault:?}", member.id),
        contract.setMember(action, sigs),
    )
    .await
}

/// Sets what the mock member at `member_contract` reports from `solvency()`.
pub async fn set_solvency(
    provider: &DynProvider,
    member_contract: Address,
    assets: U256,
    liabilities: U256,
) -> TransactionReceipt {
    succeeded(
        &format!("setSolvency on {member_contract}"),
        MockMember::new(member_contract, provider.clone()).setSolvency(assets, liabilities),
    )
    .await
}

/// Books payouts on the mock member at `member_contract`: its numbers and how many of its
/// draws they include (`bookedDraws()`), in one transaction.
pub async fn set_books(
    provider: &DynProvider,
    member_contract: Address,
    (assets, liabilities): (U256, U256),
    booked_draws: u64,
) -> TransactionReceipt {
    succeeded(
        &format!("setBooks on {member_contract}"),
        MockMember::new(member_contract, provider.clone()).setBooks(
            assets,
            liabilities,
            booked_draws,
        ),
    )
    .await
}

/// Sets the answer of the mock oracle at `oracle` (a new round, updated now).
pub async fn set_oracle_answer(
    provider: &DynProvider,
    oracle: Address,
    answer: I256,
) -> TransactionReceipt {
    succeeded(
        &format!("setAnswer on {oracle}"),
        MockOracle::new(oracle, provider.clone()).setAnswer(answer),
    )
    .await
}

/// One anvil chain with a vault set deployed on it.
pub struct Chain {
    /// The anvil process; the chain dies with it.
    pub anvil: AnvilInstance,
    /// Provider with the deployer's wallet (anvil key 0, also the depositor).
    pub provider: DynProvider,
    /// Pool token.
    pub token: Address,
    /// The vault.
    pub vault: Address,
    /// The chain's first mock member protocol.
    pub member_contract: Address,
    /// The chain's mock oracle.
    pub oracle: Address,
    /// EIP-155 chain id.
    pub chain_id: u64,
}

impl Chain {
    /// The vault's identity (EIP-712 domain).
    pub fn id(&self) -> VaultId {
        VaultId {
            chain_id: self.chain_id,
            address: self.vault,
        }
    }

    /// The vault contract, sending as the deployer.
    pub fn vault(&self) -> BackstopVault::BackstopVaultInstance<DynProvider> {
        BackstopVault::new(self.vault, self.provider.clone())
    }

    /// The pool token contract.
    pub fn token(&self) -> MockToken::MockTokenInstance<DynProvider> {
        MockToken::new(self.token, self.provider.clone())
    }

    /// The chain's first mock member.
    pub fn member(&self) -> MockMember::MockMemberInstance<DynProvider> {
        MockMember::new(self.member_contract, self.provider.clone())
    }

    /// The mock oracle.
    pub fn oracle(&self) -> MockOracle::MockOracleInstance<DynProvider> {
        MockOracle::new(self.oracle, self.provider.clone())
    }

    /// HTTP endpoint.
    pub fn http(&self) -> String {
        self.anvil.endpoint()
    }

    /// Websocket endpoint.
    pub fn ws(&self) -> String {
        self.anvil.ws_endpoint()
    }

    /// A prefunded key other than the deployer's (anvil key `i`, `1 <= i < 10`).
    pub fn sender(&self, i: usize) -> PrivateKeySigner {
        self.anvil
            .keys()
            .get(i)
            .unwrap_or_else(|| panic!("anvil has no key {i}"))
            .clone()
            .into()
    }

    /// A provider on this chain signing with `key`.
    pub fn provider_for(&self, key: PrivateKeySigner) -> DynProvider {
        wallet_provider(&self.anvil, key)
    }

    /// Timestamp of the latest block.
    pub async fn timestamp(&self) -> u64 {
        latest_timestamp(&self.provider).await
    }

    /// A deadline [`DEADLINE_AHEAD`] seconds after the latest block.
    pub async fn deadline(&self) -> u64 {
        self.timestamp().await + DEADLINE_AHEAD
    }

    /// Latest block number.
    pub async fn head(&self) -> u64 {
        self.provider
            .get_block_number()
            .await
            .unwrap_or_else(|e| panic!("head of chain {}: {e}", self.chain_id))
    }

    /// Hash of block `n`.
    pub async fn block_hash(&self, n: u64) -> B256 {
        self.provider
            .get_block_by_number(n.into())
            .await
            .unwrap_or_else(|e| panic!("block {n} of chain {}: {e}", self.chain_id))
            .unwrap_or_else(|| panic!("chain {} has no block {n}", self.chain_id))
            .header
            .hash
    }

    /// Mines `n` empty blocks.
    pub async fn mine(&self, n: u64) {
        self.provider
            .anvil_mine(Some(n), None)
            .await
            .unwrap_or_else(|e| panic!("anvil_mine on chain {}: {e}", self.chain_id));
    }

    /// Pool-token balance of `who`.
    pub async fn balance_of(&self, who: Address) -> U256 {
        self.token()
            .balanceOf(who)
            .call()
            .await
            .unwrap_or_else(|e| panic!("balanceOf on chain {}: {e}", self.chain_id))
    }

    /// Transaction count of `who` at the latest block.
    pub async fn nonce_of(&self, who: Address) -> u64 {
        self.provider
            .get_transaction_count(who)
            .await
            .unwrap_or_else(|e| panic!("nonce on chain {}: {e}", self.chain_id))
    }

    /// Sets the ether balance of `who` (wei).
    pub async fn fund(&self, who: Address, wei: U256) {
        self.provider
            .anvil_set_balance(who, wei)
            .await
            .unwrap_or_else(|e| panic!("anvil_setBalance on chain {}: {e}", self.chain_id));
    }

    /// Registers `member` on this vault with `t` of `keys` ([`set_member_on`]).
    pub async fn set_member(
        &self,
        keys: &[PrivateKeySigner],
        member: &MemberSpec,
    ) -> TransactionReceipt {
        set_member_on(&self.provider, self.id(), keys, member).await
    }

    /// Sets what the chain's first mock member reports ([`set_solvency`]).
    pub async fn set_solvency(&self, assets: U256, liabilities: U256) -> TransactionReceipt {
        set_solvency(&self.provider, self.member_contract, assets, liabilities).await
    }

    /// Sets the answer of the chain's mock oracle ([`set_oracle_answer`]).
    pub async fn set_oracle_answer(&self, answer: I256) -> TransactionReceipt {
        set_oracle_answer(&self.provider, self.oracle, answer).await
    }
}

/// What [`deploy_consortium`] deploys. [`Default`]: the defaults of [`ChainParams`] on every
/// chain, one default member homed on the first chain, no timer mining, guardians funded.
#[derive(Clone, Debug)]
pub struct ConsortiumParams {
    /// Parameters of every chain not in `per_chain` (leave its `port` at `None`).
    pub chain: ChainParams,
    /// Parameters of single chains, by chain id, replacing `chain` for them.
    pub per_chain: BTreeMap<u64, ChainParams>,
    /// Members registered on every vault. Empty: one member, [`MemberSpec::new`]`(0, first
    /// chain)`.
    pub members: Vec<MemberSpec>,
    /// Mine a block on every chain at this period, on top of instant mining ([`spawn_miner`]).
    pub mine_every: Option<Duration>,
    /// Ether (wei) given to every guardian address on every chain, so that nodes can send
    /// transactions with their guardian key; `None` leaves them unfunded.
    pub guardian_balance: Option<U256>,
}

impl Default for ConsortiumParams {
    fn default() -> Self {
        Self {
            chain: ChainParams::default(),
            per_chain: BTreeMap::new(),
            members: Vec::new(),
            mine_every: None,
            guardian_balance: Some(U256::from(GUARDIAN_BALANCE_WEI)),
        }
    }
}

impl ConsortiumParams {
    /// The parameters of chain `chain_id`.
    pub fn for_chain(&self, chain_id: u64) -> &ChainParams {
        self.per_chain.get(&chain_id).unwrap_or(&self.chain)
    }
}

/// A member of a deployed consortium.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsortiumMember {
    /// How it is registered on every vault.
    pub spec: MemberSpec,
    /// Its mock member protocol, on its home chain.
    pub contract: Address,
    /// The oracle its mock member names, on its home chain.
    pub oracle: Address,
}

/// Vaults on several chains with one guardian set and the same members.
pub struct Consortium {
    /// The guardian keys, sorted by ascending address.
    pub keys: Vec<PrivateKeySigner>,
    /// Timer miners of the chains (empty without [`ConsortiumParams::mine_every`]); declared
    /// before `chains` so that they stop before the anvils do.
    pub miners: Vec<Miner>,
    /// One chain per requested chain id, in the requested order.
    pub chains: Vec<Chain>,
    /// The members, in the order of [`ConsortiumParams::members`].
    pub members: Vec<ConsortiumMember>,
}

impl Consortium {
    /// The chain with id `chain_id`. Panics if it is not part of the consortium.
    pub fn chain(&self, chain_id: u64) -> &Chain {
        self.chains
            .iter()
            .find(|c| c.chain_id == chain_id)
            .unwrap_or_else(|| panic!("chain {chain_id} is not in the consortium"))
    }

    /// Home chain of member `i`.
    pub fn home(&self, i: usize) -> &Chain {
        self.chain(self.member(i).spec.home_chain_id)
    }

    /// Member `i`. Panics if there is no such member.
    pub fn member(&self, i: usize) -> &ConsortiumMember {
        self.members
            .get(i)
            .unwrap_or_else(|| panic!("the consortium has {} members, no {i}", self.members.len()))
    }

    /// Guardian addresses, ascending.
    pub fn guardians(&self) -> Vec<Address> {
        self.keys.iter().map(|k| k.address()).collect()
    }

    /// Every vault, in chain order.
    pub fn vaults(&self) -> Vec<VaultId> {
        self.chains.iter().map(Chain::id).collect()
    }

    /// Sets what member `i`'s mock protocol reports on its home chain.
    pub async fn set_solvency(
        &self,
        i: usize,
        assets: U256,
        liabilities: U256,
    ) -> TransactionReceipt {
        let home = self.home(i);
        set_solvency(&home.provider, self.member(i).contract, assets, liabilities).await
    }

    /// Books member `i`'s payouts on its home chain's mock ([`set_books`]).
    pub async fn set_books(
        &self,
        i: usize,
        books: (U256, U256),
        booked_draws: u64,
    ) -> TransactionReceipt {
        let home = self.home(i);
        set_books(&home.provider, self.member(i).contract, books, booked_draws).await
    }

    /// Sets the answer of the mock oracle of chain `chain_id`.
    pub async fn set_oracle_answer(&self, chain_id: u64, answer: I256) -> TransactionReceipt {
        self.chain(chain_id).set_oracle_answer(answer).await
    }
}

/// Deploys a consortium: for each of `chain_ids` (distinct), an instant-mining anvil with a
/// vault set ([`deploy_chain`], parameters [`ConsortiumParams::for_chain`]) guarded by the
/// same [`guardian_keys`]`(n_guardians)`; a mock member per member on its home chain (the
/// chain's own for its first member, a new one for each further member); every member
/// registered on every vault with `t` signatures; guardians funded. Chains are deployed
/// concurrently.
pub async fn deploy_consortium(
    chain_ids: &[u64],
    n_guardians: usize,
    params: &ConsortiumParams,
) -> Consortium {
    assert!(
        !chain_ids.is_empty(),
        "a consortium needs at least one chain"
    );
    for (i, id) in chain_ids.iter().enumerate() {
        assert!(
            !chain_ids[..i].contains(id),
            "chain id {id} appears twice in {chain_ids:?}"
        );
    }
    let members = if params.members.is_empty() {
        vec![MemberSpec::new(0, chain_ids[0])]
    } else {
        params.members.clone()
    };
    for m in &members {
        assert!(
            chain_ids.contains(&m.home_chain_id),
            "member {} has home chain {}, not among {chain_ids:?}",
            m.id,
            m.home_chain_id
        );
    }
    let keys = guardian_keys(n_guardians);
    let deployed = futures::future::join_all(chain_ids.iter().map(|&chain_id| {
        consortium_chain(
            chain_id,
            &keys,
            params.for_chain(chain_id),
            &members,
            params,
        )
    }))
    .await;

    let mut chains = Vec::with_capacity(deployed.len());
    let mut contracts: BTreeMap<usize, (Address, Address)> = BTreeMap::new();
    for (chain, homed) in deployed {
        for (i, contract) in homed {
            contracts.insert(i, (contract, chain.oracle));
        }
        chains.push(chain);
    }
    let members = members
        .into_iter()
        .enumerate()
        .map(|(i, spec)| {
            let (contract, oracle) = contracts[&i];
            ConsortiumMember {
                spec,
                contract,
                oracle,
            }
        })
        .collect();
    let miners = match params.mine_every {
        Some(period) => chains
            .iter()
            .map(|c| spawn_miner(c.http(), period))
            .collect(),
        None => Vec::new(),
    };
    Consortium {
        keys,
        miners,
        chains,
        members,
    }
}

/// One chain of [`deploy_consortium`]; returns it with the mock member of each member
/// (by index) homed on it.
async fn consortium_chain(
    chain_id: u64,
    keys: &[PrivateKeySigner],
    chain_params: &ChainParams,
    members: &[MemberSpec],
    params: &ConsortiumParams,
) -> (Chain, Vec<(usize, Address)>) {
    let chain = deploy_chain(chain_id, keys, chain_params).await;
    let mut homed = Vec::new();
    for (i, m) in members.iter().enumerate() {
        if m.home_chain_id != chain_id {
            continue;
        }
        let contract = if homed.is_empty() {
            chain.member_contract
        } else {
            deploy_member(&chain.provider, chain_params, chain.oracle).await
        };
        homed.push((i, contract));
    }
    if let Some(wei) = params.guardian_balance {
        for k in keys {
            chain.fund(k.address(), wei).await;
        }
    }
    for m in members {
        chain.set_member(keys, m).await;
    }
    (chain, homed)
}

/// Mines a block every period on one chain until dropped.
pub struct Miner(tokio::task::JoinHandle<()>);

impl Drop for Miner {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Spawns a task that mines one block every `period` on the anvil at the HTTP endpoint
/// `url`, ignoring failures (the node may be down for a while). Needs a tokio runtime.
pub fn spawn_miner(url: impl AsRef<str>, period: Duration) -> Miner {
    let url = url.as_ref();
    let endpoint = url
        .parse()
        .unwrap_or_else(|e| panic!("miner endpoint {url:?} is not a URL: {e}"));
    let provider = ProviderBuilder::new().connect_http(endpoint);
    Miner(tokio::spawn(async move {
        loop {
            tokio::time::sleep(period).await;
            let _ = provider.anvil_mine(Some(1), None).await;
        }
    }))
}
