//! Rust side of the Backstop vault contracts.
//!
//! - [`bindings`]: alloy `sol!` bindings generated from the committed artifacts in
//!   `contracts-bindings/artifacts/` (ABI and bytecode, so every contract is deployable).
//! - [`eip712`]: the vault's EIP-712 domain, the digests of every signed struct and the
//!   packing of guardian signatures in the order the vault requires.
//! - `testing` (feature `testing`): anvil fixtures that deploy vaults, members and whole
//!   multi-chain consortia for tests and the local testnet.
//! - `aave` (feature `testing`): a real Aave v3.0 market deployed from npm `@aave/core-v3`'s
//!   artifacts (libraries linked by hand) and the `AaveV3Member` adapter over it.
//!
//! Invariant: the struct definitions come from the contract's ABI, never from a second
//! hand-written copy, so a digest computed here is the digest the vault verifies (the
//! parity tests check this against a live vault and against `cast`).

pub mod bindings;
pub mod eip712;
pub mod tools;

#[cfg(feature = "testing")]
pub mod aave;
#[cfg(feature = "testing")]
pub mod testing;

pub use alloy;
pub use eip712::{DOMAIN_NAME, DOMAIN_VERSION};
