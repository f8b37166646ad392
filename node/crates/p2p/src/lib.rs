//! Gossip network of a Backstop node over libp2p.
//!
//! Nodes of the consortium talk only through this crate. It carries every message of
//! `docs/design.md` in a signed envelope, only between consortium members, and validates every
//! byte that arrives before anything else sees it.
//!
//! - [`message`]: the checked conversion of the messages (`backstop_types::Message`) from
//!   and to the `backstop.gossip.v1` wire format ([`message::Wire`]). The consortium (its
//!   nodes, their identity keys and the thresholds) is `backstop_types::Consortium`.
//! - [`envelope`]: the signed envelope, its domain-separated signing bytes, bounded
//!   decoding.
//! - [`validation`]: the sans-IO [`validation::Validator`], its validation table (reason,
//!   gossipsub acceptance, peer penalty) and drop counters.
//! - [`catchup`]: the catch-up store trait, an in-memory store, the bounded codec.
//! - [`network`]: the swarm task (TCP+noise+yamux, QUIC, gossipsub, identify, ping,
//!   request-response, allow list) and its cloneable [`network::NetworkHandle`].
//!
//! - [`fuzz`]: the input driver shared by the fuzz target and its stable test.
//!
//! The validation table is in [`validation`] and in this crate's README.

pub mod catchup;
pub mod envelope;
pub mod fuzz;
pub mod message;
#[cfg(feature = "network")]
pub mod network;
pub mod validation;

pub use catchup::{CatchUpStore, MemoryCatchUpStore};
pub use message::Wire;
#[cfg(feature = "network")]
pub use network::{NetworkConfig, NetworkHandle, PeerAddr, spawn};
pub use validation::{DropReason, ValidationConfig, Validator, Verdict};
