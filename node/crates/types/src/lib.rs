//! The shared vocabulary of Backstop, defined once and used by every other crate.
//!
//! - [`consortium`]: the sorted node set and its thresholds (f, t, p: the one definition
//!   of the fault bound), the proposer and the submitter rotation;
//! - [`incident`]: incident keys, attempts and the phases an incident goes through;
//! - [`signal`]: the kinds of signal detectors raise, and the subjects of chains and oracles;
//! - [`breaker`]: what a circuit breaker guards against and the effects it puts on vaults;
//! - [`governance`]: proposals that change members, limits and guardians, and their digest;
//! - [`message`]: every message the nodes gossip (the wire codec lives in `backstop-p2p`);
//! - [`time`]: the wall clock, read in one place.
//!
//! Invariant of the crate: no I/O but [`time::now_ms`], no async runtime, no network or
//! chain client; everything here is plain data and pure functions of it.

pub mod breaker;
pub mod consortium;
pub mod governance;
pub mod incident;
pub mod message;
pub mod signal;
pub mod time;

pub use breaker::{BreakerKind, Effect};
pub use consortium::{Consortium, ConsortiumError, MAX_NODES, NodeIndex, NodeInfo, Thresholds};
pub use incident::{Attempt, IncidentKey, IncidentPhase};
pub use message::*;
pub use signal::{SignalKind, chain_subject, oracle_subject, pool_subject};

/// The entry of `all` named `s`: its snake-case name, with `-` for `_`, in any case.
fn by_name<T: Copy>(all: &[T], name: impl Fn(T) -> &'static str, s: &str) -> Option<T> {
    let norm = s.trim().to_ascii_lowercase().replace('-', "_");
    all.iter().copied().find(|k| name(*k) == norm)
}

/// At most 64 characters of `s`, for an error message.
fn shorten(s: &str) -> String {
    s.chars().take(64).collect()
}
