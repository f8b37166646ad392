//! The Backstop node as a library: the pieces the `backstop` binary assembles.
//!
//! - [`view`]: the node's view of chain state for the agreement core (pure).
//! - [`chains`]: chain adapters (snapshots, observations, vault facts, start-up checks).
//! - [`journal`]: the operators' account of each incident.
//! - [`core`]: the task that owns the agreement machine.
//! - [`runtime`]: assembly, supervision and shutdown; [`params`]: configuration to runtime.
//! - [`detect`]: detectors turning chain state into signal assertions (pure).
//! - [`policy`]: signals and circuit breakers (pure).
//! - [`bridge`]: the API model, event stream, metrics and operator requests.

pub mod bridge;
pub mod chains;
pub mod clock;
pub mod core;
pub mod detect;
pub mod journal;
pub mod params;
pub mod policy;
pub mod runtime;
pub mod view;
