//! Shared fixture of the parity tests: real anvil chains from `.tools/`, each with a pool
//! token and a vault guarded by four keys (t = 3, p = 2), and a member whose home is the
//! first chain.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use alloy::contract::{CallBuilder, CallDecoder};
use alloy::node_bindings::{Anvil, AnvilInstance};
use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionReceipt;
use alloy::signers::local::PrivateKeySigner;
use backstop_contracts::bindings::{BackstopVault, IBackstopVault, MockToken};
use backstop_contracts::eip712::{
    GuardianSignature, Signable, VaultId, pack_signatures, sign_digest,
};
use backstop_contracts::tools;

/// One pool-token unit (6 decimals).
pub const UNIT: u64 = 1_000_000;
pub const THRESHOLD: u8 = 3;
pub const PAUSE_THRESHOLD: u8 = 2;
pub const BUCKET_CAPACITY: u64 = 10_000 * UNIT;
pub const REFILL_PER_SECOND: u64 = UNIT;
pub const RESERVE_FLOOR: u64 = 1_000 * UNIT;
pub const EMERGENCY_DURATION: u64 = 3_600;
pub const MEMBER_CAP: u64 = 50_000 * UNIT;
pub const MEMBER_DEDUCTIBLE: u64 = 100 * UNIT;

/// Guardian keys, sorted by ascending address.
pub fn guardian_keys(n: usize) -> Vec<PrivateKeySigner> {
    let mut keys: Vec<PrivateKeySigner> = (0..n)
        .map(|i| {
            PrivateKeySigner::from_bytes(&keccak256(format!("backstop guardian {i}")))
                .expect("valid key")
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

pub struct Chain {
    pub anvil: AnvilInstance,
    pub provider: DynProvider,
    pub token: Address,
    pub vault: Address,
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

    pub async fn timestamp(&self) -> u64 {
        let block = self
            .provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .unwrap()
            .unwrap();
        block.header.timestamp
    }

    pub async fn deadline(&self) -> u64 {
        self.timestamp().await + 3_600
    }

    pub async fn balance_of(&self, who: Address) -> U256 {
        self.token().balanceOf(who).call().await.unwrap()
    }
}

/// Sends a contract call and waits for its receipt.
pub async fn mined<P: Provider, D: CallDecoder>(call: CallBuilder<P, D>) -> TransactionReceipt {
    call.send().await.unwrap().get_receipt().await.unwrap()
}

/// Spawns anvil with `chain_id`, deploys a token and a vault guarded by `keys`, and
/// deposits `deposit` pool-token units.
pub async fn start_chain(chain_id: u64, keys: &[PrivateKeySigner], deposit: u64) -> Chain {
    let anvil_bin = tools::tool("anvil").expect("anvil installed");
    let anvil = Anvil::at(anvil_bin)
        .chain_id(chain_id)
        .try_spawn()
        .expect("anvil starts");
    let deployer: PrivateKeySigner = anvil.keys()[0].clone().into();
    let depositor = deployer.address();
    let provider = ProviderBuilder::new()
        .wallet(deployer)
        .connect_http(anvil.endpoint_url())
        .erased();

    let token = MockToken::deploy(provider.clone(), "Pool USD".into(), "pUSD".into())
        .await
        .unwrap();
    let guardians: Vec<Address> = keys.iter().map(|k| k.address()).collect();
    let limits = IBackstopVault::Limits {
        bucketCapacity: BUCKET_CAPACITY.into(),
        refillPerSecond: REFILL_PER_SECOND.into(),
        reserveFloor: U256::from(RESERVE_FLOOR),
        withdrawCooldown: 86_400,
        emergencyDuration: EMERGENCY_DURATION,
    };
    let vault = BackstopVault::deploy(
        provider.clone(),
        *token.address(),
        "Backstop pUSD".into(),
        "bpUSD".into(),
        guardians,
        THRESHOLD,
        PAUSE_THRESHOLD,
        limits,
    )
    .await
    .unwrap();

    let amount = U256::from(deposit);
    mined(token.mint(depositor, amount)).await;
    mined(token.approve(*vault.address(), amount)).await;
    let receipt = mined(vault.deposit(amount, depositor)).await;
    assert!(receipt.status(), "deposit succeeds");

    Chain {
        anvil,
        provider,
        token: *token.address(),
        vault: *vault.address(),
        chain_id,
    }
}

/// Signs `value` for `chain`'s vault with `keys` and packs the signatures.
pub fn sign_all<T: Signable>(value: &T, vault: &VaultId, keys: &[PrivateKeySigner]) -> Bytes {
    let digest = value.digest(vault);
    let sigs: Vec<GuardianSignature> = keys
        .iter()
        .map(|k| sign_digest(k, digest).unwrap())
        .collect();
    pack_signatures(&sigs).unwrap()
}

/// Registers the member on `chain` (home chain `home`) with t signatures.
pub async fn set_member(chain: &Chain, keys: &[PrivateKeySigner], home: u64) {
    let action = IBackstopVault::SetMember {
        member: member_id(),
        recipient: recipient(),
        homeChainId: home,
        cap: MEMBER_CAP.into(),
        deductible: MEMBER_DEDUCTIBLE.into(),
        id: keccak256(format!("set-member {}", chain.chain_id)),
        deadline: chain.deadline().await,
    };
    let sigs = sign_all(&action, &chain.id(), &keys[..THRESHOLD as usize]);
    let receipt = mined(chain.vault().setMember(action, sigs)).await;
    assert!(receipt.status(), "setMember succeeds");
}

/// Two chains: 31337 (the member's home, 50,000 units) and 31338 (remote, 5,000 units).
pub struct Consortium {
    pub keys: Vec<PrivateKeySigner>,
    pub home: Chain,
    pub remote: Chain,
}

impl Consortium {
    pub async fn start() -> Self {
        let keys = guardian_keys(4);
        let home = start_chain(31337, &keys, 50_000 * UNIT).await;
        let remote = start_chain(31338, &keys, 5_000 * UNIT).await;
        set_member(&home, &keys, home.chain_id).await;
        set_member(&remote, &keys, home.chain_id).await;
        Consortium { keys, home, remote }
    }

    /// A draw of `home_amount + remote_amount` for seq 0, gap large enough.
    pub async fn draw(&self, home_amount: u64, remote_amount: u64) -> IBackstopVault::Draw {
        let mut legs = Vec::new();
        if home_amount > 0 {
            legs.push(IBackstopVault::Leg {
                chainId: self.home.chain_id,
                vault: self.home.vault,
                amount: U256::from(home_amount),
            });
        }
        if remote_amount > 0 {
            legs.push(IBackstopVault::Leg {
                chainId: self.remote.chain_id,
                vault: self.remote.vault,
                amount: U256::from(remote_amount),
            });
        }
        let deadline = self.home.deadline().await;
        IBackstopVault::Draw {
            member: member_id(),
            seq: 0,
            gap: U256::from(home_amount + remote_amount + MEMBER_DEDUCTIBLE + 7 * UNIT),
            amount: U256::from(home_amount + remote_amount),
            legs,
            deadline,
            legDeadline: deadline + 86_400,
        }
    }

    pub async fn leg_release(&self, draw_hash: B256, amount: u64) -> IBackstopVault::LegRelease {
        IBackstopVault::LegRelease {
            drawHash: draw_hash,
            member: member_id(),
            seq: 0,
            amount: U256::from(amount),
            deadline: self.remote.deadline().await,
        }
    }
}
