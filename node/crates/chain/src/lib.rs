//! Chain access of a Backstop node: everything the node knows about money comes from the
//! chains, and everything it does to money goes through them.
//!
//! Decision logic is sans-IO (plain state machines fed with events), wrapped by thin async
//! adapters over alloy providers:
//!
//! | sans-IO core | adapter |
//! | --- | --- |
//! | [`tracker::ConfirmationTracker`] (confirmed head, reorgs) | [`watcher::Watcher`] (heads, confirmed vault events, pinned member reads) |
//! | [`halt::HaltDetector`] (no head within a bound) | [`watcher::Watcher`] |
//! | [`retry::Backoff`] (backoff with injectable jitter) | [`rpc::RpcPool`] (timeouts, retries, failover) |
//! | [`allocation::allocate`] (legs of a draw) | (pure; fed with [`reads::VaultState`]s) |
//! | [`txpolicy::NonceTracker`], [`txpolicy::FeePolicy`] | [`submit::Submitter`] (one signer per chain) |
//!
//! Invariants kept across the crate: an RPC answer is validated before it is used (a garbage
//! or inconsistent answer is an error, never a value); vault events reach the node only once
//! their block is confirmed, and a reorg is reported; a submitter never sends an action that
//! is already done on chain and never sends one action twice concurrently.

pub mod allocation;
pub mod halt;
pub mod reads;
pub mod retry;
pub mod rpc;
pub mod submit;
pub mod tracker;
pub mod txpolicy;
pub mod watcher;
