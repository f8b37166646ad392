//! alloy bindings of the vault and its test fixtures, from the committed artifacts.
//!
//! `IBackstopVault` holds the signed structs (`Draw`, `Leg`, `LegRelease`, the actions),
//! the stored records, the custom errors and the events; `BackstopVault` the functions.
//! `IBackstopMember` is what a member protocol exposes to the nodes.

#![allow(missing_docs, clippy::too_many_arguments)]

use alloy::sol;

sol!(
    #[sol(rpc, all_derives)]
    BackstopVault,
    "artifacts/BackstopVault.json"
);

sol!(
    #[sol(rpc, all_derives)]
    IBackstopMember,
    "artifacts/IBackstopMember.json"
);

sol!(
    #[sol(rpc, all_derives)]
    MockToken,
    "artifacts/MockToken.json"
);

sol!(
    #[sol(rpc, all_derives)]
    MockMember,
    "artifacts/MockMember.json"
);

sol!(
    #[sol(rpc, all_derives)]
    MockOracle,
    "artifacts/MockOracle.json"
);
