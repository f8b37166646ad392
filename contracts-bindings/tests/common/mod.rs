//! Fixture of the parity tests, over [`backstop_contracts::testing`]: two anvil chains, each
//! with a pool token and a vault guarded by four keys (t = 3, p = 2), and the default member
//! whose home is the first chain.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use alloy::primitives::{B256, U256};
use alloy::signers::local::PrivateKeySigner;
use backstop_contracts::bindings::IBackstopVault;

pub use backstop_contracts::testing::*;

/// t of the fixture's four guardians.
pub const THRESHOLD: u8 = 3;
/// p of the fixture's four guardians.
pub const PAUSE_THRESHOLD: u8 = 2;

/// Two chains: 31337 (the member's home, 50,000 units) and 31338 (remote, 5,000 units).
pub struct Consortium {
    pub keys: Vec<PrivateKeySigner>,
    pub home: Chain,
    pub remote: Chain,
}

impl Consortium {
    pub async fn start() -> Self {
        let mut params = ConsortiumParams::default();
        params
            .per_chain
            .insert(31338, ChainParams::with_deposit(5_000 * UNIT));
        let c = deploy_consortium(&[31337, 31338], 4, &params).await;
        let mut chains = c.chains.into_iter();
        let (home, remote) = (chains.next().unwrap(), chains.next().unwrap());
        Consortium {
            keys: c.keys,
            home,
            remote,
        }
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
