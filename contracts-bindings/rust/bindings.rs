//! alloy bindings of the vault and its test fixtures, from the committed artifacts.
//!
//! `IBackstopVault` holds the signed structs (`Draw`, `Leg`, `LegRelease`, the actions),
//! the stored records, the custom errors and the events; `BackstopVault` the functions.
//! `IBackstopMember` is what a member protocol exposes to the nodes, `IBackstopRisk` its
//! optional risk view (`IBackstopRisk::Exposure`). `HostileRisk` is a test member whose
//! risk view answers whatever a test sets. `SnapshotLens` is never deployed: nodes call its
//! code through a state override to read many members in one call.
//!
//! `sol!` gives every contract whose ABI uses `IBackstopRisk.Exposure` its own module
//! `IBackstopRisk` holding the struct; `MockMember`'s binding lives in a private module so
//! that the exported `IBackstopRisk` is the interface's, the one `Exposure` type.

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
    IBackstopRisk,
    "artifacts/IBackstopRisk.json"
);

sol!(
    #[sol(rpc, all_derives)]
    MockToken,
    "artifacts/MockToken.json"
);

pub use mock_member::MockMember;

mod mock_member {
    alloy::sol!(
        #[sol(rpc, all_derives)]
        MockMember,
        "artifacts/MockMember.json"
    );
}

sol!(
    #[sol(rpc, all_derives)]
    MockOracle,
    "artifacts/MockOracle.json"
);

sol!(
    #[sol(rpc, all_derives)]
    HostileRisk,
    "artifacts/HostileRisk.json"
);

sol!(
    #[sol(rpc, all_derives)]
    SnapshotLens,
    "artifacts/SnapshotLens.json"
);
