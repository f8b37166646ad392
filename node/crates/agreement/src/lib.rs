//! Sans-IO agreement core of a Backstop node.
//!
//! The node's safety lives here: incidents keyed `(member, seq)` with attempts and a
//! rotating proposer, validation of proposals against the node's own view of the pinned
//! chain state, attestations and certificates, the submitter schedule, release of remote
//! legs once the home-chain registration is final, closing, and the threshold actions
//! (freeze, pause, alert and their lifts). See `docs/design.md`, "The draw protocol".
//!
//! - [`booking`]: the booking-evidence rule that gates a member's next draw after a
//!   covered incident.
//! - [`types`]: the shared vocabulary (keys, consortium and thresholds, messages).
//! - [`refusal`]: why a view refuses a draw or an action, one typed reason per rule.
//! - [`machine`]: the state machine, fed with [`machine::Event`]s, returning
//!   [`machine::Output`]s; chain reads and signing are injected traits.
//! - [`state`] and [`kv`]: the durable node state (sign-guard first) on a key-value store
//!   with column families; `backstop-store` provides the RocksDB backend.
//! - [`codec`]: the stable binary encoding of stored records.
//! - `sim` (feature `sim`, off in the node binary): the deterministic simulation harness
//!   (seeded network, chains, byzantine nodes, crashes) that checks the invariants.
//! - [`contract`]: the behaviour every [`kv::Kv`] backend must have, as a reusable check.
//!
//! Invariant of the crate: no I/O. Time is an input, randomness exists only in the
//! simulation and comes from its seed.

pub mod booking;
pub mod codec;
pub mod contract;
pub mod kv;
pub mod machine;
pub mod refusal;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
pub mod state;
pub mod types;

pub use machine::{Config, Event, GuardianSigner, Machine, MachineError, Output, StateView, Stats};
pub use refusal::Refusal;
pub use types::*;
