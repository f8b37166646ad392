//! Fixture of the chain tests: real anvil chains from `.tools/`, each with a pool token, a
//! vault guarded by four keys (t = 3, p = 2), a member and an oracle.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use alloy::node_bindings::{Anvil, AnvilInstance};
use alloy::primitives::{Address, B256, Bytes, I256, U256, keccak256};
use alloy::providers::ext::AnvilApi;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use backstop_chain::retry::{Backoff, SplitMix64};
use backstop_chain::rpc::{RpcConfig, RpcPool};
use backstop_contracts::bindings::{
    BackstopVault, IBackstopVault, MockMember, MockOracle, MockToken,
};
use backstop_contracts::eip712::{
    GuardianSignature, Signable, VaultId, pack_signatures, sign_digest,
};
use backstop_contracts::tools;

pub const UNIT: u64 = 1_000_000;
pub const THRESHOLD: usize = 3;
pub const PAUSE_THRESHOLD: usize = 2;
pub const BUCKET_CAPACITY: u64 = 10_000 * UNIT;
pub const REFILL_PER_SECOND: u64 = UNIT;
pub const RESERVE_FLOOR: u64 = 1_000 * UNIT;
pub const MEMBER_CAP: u64 = 50_000 * UNIT;
pub const MEMBER_DEDUCTIBLE: u64 = 100 * UNIT;

pub fn guardian_keys(n: usize) -> Vec<PrivateKeySigner> {
    let mut keys: Vec<PrivateKeySigner> = (0..n)
        .map(|i| {
            PrivateKeySigner::from_bytes(&keccak256(format!("backstop guardian {i}"))).unwrap()
        })
        .collect();
    keys.sort_by_key(|k| k.address());
    keys
}

pub fn member_id() -> B256 {
    keccak256("perp-dex-a")
}

pub fn recipient() -> Address {
    Address::repeat_byte(0xAB)
}

/// A free loopback port (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn spawn_anvil(chain_id: u64, port: Option<u16>) -> AnvilInstance {
    let mut a = Anvil::at(tools::tool("anvil").expect("anvil installed")).chain_id(chain_id);
    if let Some(p) = port {
        a = a.port(p);
    }
    a.try_spawn().expect("anvil starts")
}

pub struct Chain {
    pub anvil: AnvilInstance,
    /// Provider with the deployer's wallet (anvil key 0).
    pub provider: DynProvider,
    pub token: Address,
    pub vault: Address,
    pub member_contract: Address,
    pub oracle: Address,
    pub chain_id: u64,
}

impl Chain {
    pub fn id(&self) -> VaultId {
        VaultId {
            chain_id: self.chain_id,
            address: self.vault,
        }
    }

    pub fn vault(&self) -> BackstopVault::BackstopVaultInstance<DynProvider> {
        BackstopVault::new(self.vault, self.provider.clone())
    }

    pub fn token(&self) -> MockToken::MockTokenInstance<DynProvider> {
        MockToken::new(self.token, self.provider.clone())
    }

    pub fn member(&self) -> MockMember::MockMemberInstance<DynProvider> {
        MockMember::new(self.member_contract, self.provider.clone())
    }

    pub fn oracle(&self) -> MockOracle::MockOracleInstance<DynProvider> {
        MockOracle::new(self.oracle, self.provider.clone())
    }

    pub fn http(&self) -> String {
        self.anvil.endpoint()
    }

    pub fn ws(&self) -> String {
        self.anvil.ws_endpoint()
    }

    /// A pool over `urls` with fast retries and a fixed jitter seed.
    pub fn pool(&self, urls: Vec<String>) -> std::sync::Arc<RpcPool> {
        std::sync::Arc::new(fast_pool(self.chain_id, urls))
    }

    /// A funded key other than the deployer's (anvil key `i`, i >= 1).
    pub fn sender(&self, i: usize) -> PrivateKeySigner {
        self.anvil.keys()[i].clone().into()
    }

    pub async fn timestamp(&self) -> u64 {
        self.provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .unwrap()
            .unwrap()
            .header
            .timestamp
    }

    pub async fn deadline(&self) -> u64 {
        self.timestamp().await + 3_600
    }

    pub async fn balance_of(&self, who: Address) -> U256 {
        self.token().balanceOf(who).call().await.unwrap()
    }

    pub async fn head(&self) -> u64 {
        self.provider.get_block_number().await.unwrap()
    }

    pub async fn block_hash(&self, n: u64) -> B256 {
        self.provider
            .get_block_by_number(n.into())
            .await
            .unwrap()
            .unwrap()
            .header
            .hash
    }

    pub async fn mine(&self, n: u64) {
        self.provider.anvil_mine(Some(n), None).await.unwrap();
    }

    pub async fn nonce_of(&self, who: Address) -> u64 {
        self.provider.get_transaction_count(who).await.unwrap()
    }
}

pub fn fast_pool(chain_id: u64, urls: Vec<String>) -> RpcPool {
    let mut cfg = RpcConfig::new(chain_id, urls);
    cfg.request_timeout = Duration::from_millis(1_500);
    cfg.backoff = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        max_attempts: 6,
    };
    RpcPool::with_jitter(cfg, Box::new(SplitMix64(7)))
}

pub fn deployer_provider(anvil: &AnvilInstance) -> DynProvider {
    let deployer: PrivateKeySigner = anvil.keys()[0].clone().into();
    ProviderBuilder::new()
        .wallet(deployer)
        .connect_http(anvil.endpoint_url())
        .erased()
}

/// Contracts of one vault set.
pub struct Contracts {
    pub token: Address,
    pub vault: Address,
    pub member_contract: Address,
    pub oracle: Address,
}

/// Deploys token, vault (guarded by `keys`, t = 3, p = 2), member and oracle through
/// `provider` (whose wallet is `depositor`), and deposits `deposit` units.
pub async fn deploy_contracts(
    provider: &DynProvider,
    depositor: Address,
    keys: &[PrivateKeySigner],
    deposit: u64,
) -> Contracts {
    let provider = provider.clone();
    let token = MockToken::deploy(provider.clone(), "Pool USD".into(), "pUSD".into())
        .await
        .unwrap();
    let guardians: Vec<Address> = keys.iter().map(|k| k.address()).collect();
    let limits = IBackstopVault::Limits {
        bucketCapacity: BUCKET_CAPACITY.into(),
        refillPerSecond: REFILL_PER_SECOND.into(),
        reserveFloor: U256::from(RESERVE_FLOOR),
        withdrawCooldown: 86_400,
        emergencyDuration: 3_600,
    };
    let vault = BackstopVault::deploy(
        provider.clone(),
        *token.address(),
        "Backstop pUSD".into(),
        "bpUSD".into(),
        guardians,
        THRESHOLD as u8,
        PAUSE_THRESHOLD as u8,
        limits,
    )
    .await
    .unwrap();
    let amount = U256::from(deposit);
    token
        .mint(depositor, amount)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    token
        .approve(*vault.address(), amount)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let r = vault
        .deposit(amount, depositor)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(r.status());
    let oracle = MockOracle::deploy(
        provider.clone(),
        8,
        "pUSD / USD".into(),
        I256::try_from(100_000_000i64).unwrap(),
    )
    .await
    .unwrap();
    let member = MockMember::deploy(
        provider.clone(),
        U256::from(1_000 * UNIT),
        U256::from(1_000 * UNIT),
        *oracle.address(),
    )
    .await
    .unwrap();
    Contracts {
        token: *token.address(),
        vault: *vault.address(),
        member_contract: *member.address(),
        oracle: *oracle.address(),
    }
}

/// Deploys one vault set on `anvil` (see [`deploy_contracts`]).
pub async fn deploy(
    anvil: AnvilInstance,
    chain_id: u64,
    keys: &[PrivateKeySigner],
    deposit: u64,
) -> Chain {
    let provider = deployer_provider(&anvil);
    let depositor: Address = anvil.addresses()[0];
    let c = deploy_contracts(&provider, depositor, keys, deposit).await;
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

pub async fn start_chain(chain_id: u64, keys: &[PrivateKeySigner], deposit: u64) -> Chain {
    deploy(spawn_anvil(chain_id, None), chain_id, keys, deposit).await
}

/// Signs `value` for `vault` with `keys` and packs the signatures.
pub fn sign_all<T: Signable>(value: &T, vault: &VaultId, keys: &[PrivateKeySigner]) -> Bytes {
    let digest = value.digest(vault);
    let sigs: Vec<GuardianSignature> = keys
        .iter()
        .map(|k| sign_digest(k, digest).unwrap())
        .collect();
    pack_signatures(&sigs).unwrap()
}

/// Registers the member on `chain` with home chain `home` (t signatures).
pub async fn set_member(chain: &Chain, keys: &[PrivateKeySigner], home: u64) {
    set_member_on(&chain.provider, chain.id(), keys, home).await;
}

/// Registers the member on the vault `vault` through `provider` (t signatures).
pub async fn set_member_on(
    provider: &DynProvider,
    vault: VaultId,
    keys: &[PrivateKeySigner],
    home: u64,
) {
    let now = provider
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .await
        .unwrap()
        .unwrap()
        .header
        .timestamp;
    let action = IBackstopVault::SetMember {
        member: member_id(),
        recipient: recipient(),
        homeChainId: home,
        cap: MEMBER_CAP.into(),
        deductible: MEMBER_DEDUCTIBLE.into(),
        id: keccak256(format!("set-member {} {}", vault.chain_id, vault.address)),
        deadline: now + 3_600,
    };
    let sigs = sign_all(&action, &vault, &keys[..THRESHOLD]);
    let r = BackstopVault::new(vault.address, provider.clone())
        .setMember(action, sigs)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(r.status(), "setMember succeeds");
}

/// Mines a block every `period` until dropped.
pub struct Miner(tokio::task::JoinHandle<()>);

impl Drop for Miner {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub fn spawn_miner(url: String, period: Duration) -> Miner {
    Miner(tokio::spawn(async move {
        let Ok(p) = ProviderBuilder::new().connect(&url).await else {
            return;
        };
        loop {
            tokio::time::sleep(period).await;
            let _ = p.anvil_mine(Some(1), None).await;
        }
    }))
}
