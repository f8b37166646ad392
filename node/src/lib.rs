//! The Backstop node as a library: the pieces the `backstop` binary assembles.
//!
//! Pure decision logic (no I/O, no async runtime, no network or chain client; `now` is an
//! input), layered so that nothing imports upwards:
//! - [`view`]: the node's view of chain state for the agreement core (snapshots, oracle
//!   reads, what the breakers decide as the view applies it);
//! - [`detect`]: detectors turning snapshots into signal assertions (imports `view`);
//! - [`policy`]: signals and circuit breakers (imports `view`);
//! - [`clock`]: this node's clock against the chains' block timestamps;
//! - [`journal`]: the operators' account of each incident;
//! - [`governance`]: governance proposals, approvals by digest and their progress;
//! - [`rotation`]: following the vaults' guardian set after a rotation;
//! - [`core`]: the node's decisions as one state machine over all of the above and the
//!   agreement machine, fed inputs with an injected `now`, returning actions.
//!
//! The shared vocabulary (consortium, thresholds, messages, signal and breaker kinds,
//! effects, incident phases) lives in `backstop-types`.
//!
//! Adapters around it:
//! - [`chains`]: chain adapters (snapshots, observations, vault facts, start-up checks);
//! - [`service`]: the tokio task around [`core`], carrying inputs in and actions out;
//! - [`runtime`]: assembly, supervision and shutdown; [`params`]: configuration to runtime;
//! - [`bridge`]: the API model, event stream, metrics and operator requests;
//! - [`report`]: incident reports built from nodes' APIs and verified against the chains.
//!
//! Behind the `sim` feature (tests, the soak example; not the binary): `sim`, the whole
//! node under deterministic simulation.

pub mod bridge;
pub mod chains;
pub mod clock;
pub mod core;
pub mod detect;
pub mod governance;
pub mod journal;
pub mod params;
pub mod policy;
pub mod report;
pub mod rotation;
pub mod runtime;
pub mod service;
#[cfg(feature = "sim")]
pub mod sim;
pub mod stress;
pub mod view;
pub mod warning;
