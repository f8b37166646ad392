//! `backstop-config`: the configuration file and the key files of a Backstop node.
//!
//! [`Config::load`] reads a TOML file, refuses unknown keys, parses every value to its type
//! and checks the rules relating values (thresholds against the node count, uniqueness,
//! cross-references); every error reads `FILE: KEY.PATH: REASON`. [`Config::load_keys`] then
//! reads the node's secrets (files of mode 0600 or environment variables) and checks them
//! against the consortium. [`keys`] generates and loads key files.
//!
//! Invariants: a [`Config`] exists only if the whole file passed validation, and never holds
//! a secret (only where secrets are); [`NodeKeys`] exist only if they match this node's
//! consortium entry. No error or `Debug` output contains secret material.
//!
//! The operator's reference follows (also in `node/crates/config/README.md`).
//!
#![doc = include_str!("../README.md")]

mod config;
mod error;
pub mod keys;
mod raw;
mod validate;
mod value;

pub use config::{
    AdminToken, AgreementSection, ApiSection, ChainEntry, Config, ConsortiumNode, DetectorsSection,
    GuardianKeySource, LogFormat, MAX_ADDRS, MAX_CHAINS, MAX_CONFIG_BYTES, MAX_MEMBERS, MAX_NODES,
    MAX_ORACLES, MAX_RPC_URLS, MAX_TOKEN_BYTES, MIN_TOKEN_CHARS, MemberEntry, MetricsSection,
    NetworkSection, NodeIndex, NodeKeys, NodeSection, OracleSection, SecretSource, StressSection,
    defaults,
};
pub use error::ConfigError;
pub use keys::KeyError;
pub use value::peer_id_of;
