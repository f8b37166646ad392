//! The validated configuration ([`Config`]) and the node's loaded secrets ([`NodeKeys`]).
//!
//! Invariants of a [`Config`] (established by [`crate::validate`], immutable afterwards):
//! - every value has its type and range (see the crate docs for each key);
//! - `nodes()` is sorted by ed25519 public key, so an index into it is the agreement core's
//!   `NodeIndex`; names, keys, PeerIds and guardians are unique; `threshold()` is n - f and
//!   `pause_threshold()` is f + 1 with f = floor((n - 1) / 3);
//! - `node.name` is one of the consortium's nodes (`me()`), and [`Config::load_keys`] refuses an
//!   identity key other than that node's, or a signer key other than its guardian's;
//! - chain ids and names, member ids and names are unique; every member's home chain is
//!   configured; relative paths are already resolved against the config file's directory;
//! - oracle names and `(chain_id, address)` pairs are unique, every oracle's chain is
//!   configured, an asset has at most one reference oracle, and a member's `oracle` is the
//!   address of an oracle on the member's home chain.

use crate::error::ConfigError;
use crate::keys::{self, KeyError};
use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use backstop_signer::{GuardianKey, TokenSigner, TokenSpec};
use ed25519_dalek::SigningKey;
use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Largest configuration file read (1 MiB).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// Most `[[consortium.nodes]]`: the consortium's own bound.
pub use backstop_types::MAX_NODES;
/// Most `[[chains]]`.
pub const MAX_CHAINS: usize = 32;
/// Most `[[members]]`.
pub const MAX_MEMBERS: usize = 1024;
/// Most `[[oracles]]`.
pub const MAX_ORACLES: usize = 256;
/// Most RPC URLs of one chain.
pub const MAX_RPC_URLS: usize = 8;
/// Most multiaddrs in one list (`network.listen`, `network.external`, a node's `addresses`).
pub const MAX_ADDRS: usize = 16;
/// Largest admin token file.
pub const MAX_TOKEN_BYTES: u64 = 4096;
/// Shortest admin token accepted.
pub const MIN_TOKEN_CHARS: usize = 16;

/// Index of a node in [`Config::nodes`] (sorted by public key, as in the agreement core).
pub use backstop_types::NodeIndex;

pub mod defaults {
    //! Default values of the optional keys (the operator's reference lists the same values).
    //! Invariant: each default lies within the range that validation accepts for its key.
    /// `chains[].confirmations`.
    pub const CONFIRMATIONS: u64 = 2;
    /// `chains[].poll_interval_ms`.
    pub const POLL_INTERVAL_MS: u64 = 500;
    /// `chains[].request_timeout_ms`.
    pub const REQUEST_TIMEOUT_MS: u64 = 2_000;
    /// `node.log_filter`.
    pub const LOG_FILTER: &str = "info";
    /// `detectors.oracle_max_deviation_bps` (5 %).
    pub const ORACLE_MAX_DEVIATION_BPS: u64 = 500;
    /// `detectors.oracle_max_staleness_secs`.
    pub const ORACLE_MAX_STALENESS_SECS: u64 = 3_600;
    /// `detectors.outflow_drop_bps` (20 %).
    pub const OUTFLOW_DROP_BPS: u64 = 2_000;
    /// `detectors.outflow_window_blocks`.
    pub const OUTFLOW_WINDOW_BLOCKS: u64 = 50;
    /// `detectors.depeg_bps` (2 %).
    pub const DEPEG_BPS: u64 = 200;
    /// `detectors.chain_halt_secs` (also the default of `chains[].halt_after_secs`).
    pub const CHAIN_HALT_SECS: u64 = 30;
    /// `detectors.signal_window_secs`.
    pub const SIGNAL_WINDOW_SECS: u64 = 300;
    /// `detectors.signal_expiry_secs`.
    pub const SIGNAL_EXPIRY_SECS: u64 = 3_600;
    /// `detectors.contagion_members`.
    pub const CONTAGION_MEMBERS: u64 = 2;
    /// `detectors.signal_interval_secs`.
    pub const SIGNAL_INTERVAL_SECS: u64 = 10;
    /// `stress.margin_window_blocks`: confirmed blocks of a member's equity the trend is
    /// fitted to.
    pub const MARGIN_WINDOW_BLOCKS: u64 = 10;
    /// `stress.margin_horizon_blocks`: a trend reaching insolvency within this many blocks
    /// raises an early warning.
    pub const MARGIN_HORIZON_BLOCKS: u64 = 20;
    /// `stress.history_blocks`: how far back the largest fall of a member's equity is taken
    /// for members without a risk view.
    pub const HISTORY_BLOCKS: u64 = 100;
    /// `stress.coverage_alert_bps`: a scenario's 24-hour coverage under this raises an
    /// early warning (10 000 = 1.0; 0 disables it).
    pub const COVERAGE_ALERT_BPS: u64 = 10_000;
    /// `stress.volatility_window_blocks`.
    pub const VOLATILITY_WINDOW_BLOCKS: u64 = 20;
    /// `stress.volatility_alert_bps`: an oracle whose per-block moves have a standard
    /// deviation above this raises an early warning (0 disables it).
    pub const VOLATILITY_ALERT_BPS: u64 = 500;
    /// `agreement.dust`.
    pub const DUST: u64 = 0;
    /// `agreement.attempt_timeout_ms`.
    pub const ATTEMPT_TIMEOUT_MS: u64 = 4_000;
    /// `agreement.submit_delay_ms`.
    pub const SUBMIT_DELAY_MS: u64 = 3_000;
    /// `agreement.settle_ms`.
    pub const SETTLE_MS: u64 = 3_000;
    /// `agreement.retain_closed_days`.
    pub const RETAIN_CLOSED_DAYS: u64 = 30;
    /// `agreement.booking_timeout_ms`.
    pub const BOOKING_TIMEOUT_MS: u64 = 60_000;
    /// `agreement.draw_ttl_secs`.
    pub const DRAW_TTL_SECS: u64 = 3_600;
    /// `agreement.leg_ttl_secs`.
    pub const LEG_TTL_SECS: u64 = 86_400;
    /// `agreement.action_ttl_secs`.
    pub const ACTION_TTL_SECS: u64 = 21_600;
}

/// `node.log_format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Where a secret comes from: a file (mode 0600) or an environment variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A file, path resolved against the config file's directory.
    File(PathBuf),
    /// An environment variable, by name.
    Env(String),
}

/// Where the guardian key is held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardianKeySource {
    /// A plain key file or environment variable (`signer_key_file`, `signer_key_env`): the
    /// testnet's form.
    Plain(SecretSource),
    /// An Ethereum keystore v3 file (`signer_keystore_file`), opened with a password from
    /// `signer_keystore_password_file` or `signer_keystore_password_env`.
    Keystore {
        /// The keystore file.
        file: PathBuf,
        /// Its password.
        password: SecretSource,
    },
    /// A key in a PKCS#11 token (`[node.signer_pkcs11]`), opened with a user PIN from
    /// `pin_file` or `pin_env`.
    Pkcs11 {
        /// Module, token label and key label.
        spec: TokenSpec,
        /// The user PIN.
        pin: SecretSource,
    },
}

/// `[node]`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NodeSection {
    /// This node's name; one of `consortium.nodes[].name`.
    pub name: String,
    /// Directory of the node's database and state.
    pub data_dir: PathBuf,
    /// The ed25519 identity key (`identity_key_file` or `identity_key_env`).
    pub identity_key: SecretSource,
    /// The secp256k1 guardian key: a plain key, a keystore or a PKCS#11 token.
    pub signer_key: GuardianKeySource,
    /// Log line format.
    pub log_format: LogFormat,
    /// `tracing` filter directives (`EnvFilter` syntax).
    pub log_filter: String,
}

/// `[network]`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NetworkSection {
    /// Listen multiaddrs (TCP and/or QUIC).
    pub listen: Vec<Multiaddr>,
    /// Addresses announced to peers, besides what they observe.
    pub external: Vec<Multiaddr>,
}

/// `[api]`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ApiSection {
    /// Listen socket of the gRPC API.
    pub listen: SocketAddr,
    /// The admin token's source.
    pub admin_token: SecretSource,
}

/// `[metrics]`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MetricsSection {
    /// Listen socket of the metrics endpoint.
    pub listen: SocketAddr,
}

/// One `[[consortium.nodes]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsortiumNode {
    /// Its name.
    pub name: String,
    /// Its ed25519 identity public key.
    pub public_key: [u8; 32],
    /// Its libp2p PeerId (derived from the key).
    pub peer_id: PeerId,
    /// Its guardian address (secp256k1 signer).
    pub guardian: Address,
    /// Where to dial it, `/p2p/` suffix removed (it was checked against the key).
    pub addresses: Vec<Multiaddr>,
}

/// One `[[chains]]`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ChainEntry {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// Its name.
    pub name: String,
    /// RPC endpoints in order of preference.
    pub rpc_urls: Vec<Url>,
    /// The consortium's vault.
    pub vault: Address,
    /// Confirmation depth.
    pub confirmations: u64,
    /// Head polling period, ms.
    pub poll_interval_ms: u64,
    /// No new head for this long: the chain is halted (s).
    pub halt_after_secs: u64,
    /// Timeout of one RPC request, ms.
    pub request_timeout_ms: u64,
    /// Key sending this chain's transactions, if not the node's signer.
    pub signer_key: Option<SecretSource>,
    /// AggregatorV3 feed pricing this chain's pool token in its peg (1.0 = 10^decimals),
    /// read by the depeg detector; none: the pool token's peg is not watched here.
    pub pool_token_oracle: Option<Address>,
}

impl ChainEntry {
    /// The RPC URLs as strings (the chain crate's `RpcConfig::urls`).
    pub fn rpc_url_strings(&self) -> Vec<String> {
        self.rpc_urls.iter().map(|u| u.to_string()).collect()
    }
    /// `poll_interval_ms` as a duration.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }
    /// `halt_after_secs` as a duration.
    pub fn halt_after(&self) -> Duration {
        Duration::from_secs(self.halt_after_secs)
    }
    /// `request_timeout_ms` as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

/// One `[[members]]`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MemberEntry {
    /// Its name.
    pub name: String,
    /// Its id, as registered in the vaults.
    pub id: B256,
    /// Its home chain (configured in `[[chains]]`).
    pub home_chain_id: u64,
    /// The member contract exposing `solvency()` on the home chain.
    pub solvency_contract: Address,
    /// Its price oracle (AggregatorV3), if any: the address of an [`OracleSection`] on its
    /// home chain.
    pub oracle: Option<Address>,
    /// This node's cap per incident, pool-token units, if any.
    pub incident_cap: Option<U256>,
    /// Free text for operators.
    pub notes: Option<String>,
}

/// One `[[oracles]]`: a price feed the oracle detector watches.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OracleSection {
    /// Its name.
    pub name: String,
    /// The chain it is deployed on (configured in `[[chains]]`).
    pub chain_id: u64,
    /// Its address (AggregatorV3).
    pub address: Address,
    /// What it prices; the oracles of one asset are compared with one another.
    pub asset: String,
    /// The asset's reference: the asset's other oracles are compared with it (at most one
    /// per asset). An asset without one compares each oracle with the median of the
    /// asset's oracles (itself included).
    pub reference: bool,
}

/// `[detectors]`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DetectorsSection {
    /// Oracle deviation from the reference that raises a signal, basis points.
    pub oracle_max_deviation_bps: u32,
    /// Oracle answer older than this raises a signal, s.
    pub oracle_max_staleness_secs: u64,
    /// Drop of a member's balance within the window that raises an outflow signal, bps.
    pub outflow_drop_bps: u32,
    /// Outflow measurement window, blocks.
    pub outflow_window_blocks: u64,
    /// Pool-token deviation from its peg that raises a depeg signal, bps.
    pub depeg_bps: u32,
    /// Default `chains[].halt_after_secs`: no head for this long raises a chain-halt signal.
    pub chain_halt_secs: u64,
    /// p nodes asserting one (kind, subject) within this window confirm a signal, s.
    pub signal_window_secs: u64,
    /// A confirmed signal not asserted again for this long stops acting, s.
    pub signal_expiry_secs: u64,
    /// Members of one chain in trouble within `signal_window_secs` that quarantine the
    /// chain (2 to 1024).
    pub contagion_members: usize,
    /// While a condition holds, a detector re-asserts its signal this often, s.
    pub signal_interval_secs: u64,
}

/// `[agreement]`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AgreementSection {
    /// Gaps at or below this (pool-token units) open no incident.
    pub dust: U256,
    /// Timeout of attempt 0, ms.
    pub attempt_timeout_ms: u64,
    /// Delay step of the submitter fallbacks, ms.
    pub submit_delay_ms: u64,
    /// Time a member gets to book a payout before a gap still standing opens its next
    /// incident, ms.
    pub settle_ms: u64,
    /// Time a covered member gets for its books to show a payout before this node raises
    /// the "payout not booked" signal, ms.
    pub booking_timeout_ms: u64,
    /// Validity of a draw's digest (deadline = proposal time + this), s.
    pub draw_ttl_secs: u64,
    /// Validity of a leg release, s.
    pub leg_ttl_secs: u64,
    /// Lifetime of a freeze, pause or alert raised with p signatures unless renewed, s.
    pub action_ttl_secs: u64,
    /// Days a closed incident's records stay in the store (counted from its opening, and
    /// never before its legs' deadline) before they are pruned.
    pub retain_closed_days: u64,
}

/// `[stress]`: the stress scenarios evaluated at every confirmed head, and the early
/// warnings' thresholds.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StressSection {
    /// Scenarios, in file order (names unique).
    pub scenarios: Vec<backstop_stress::Scenario>,
    /// Confirmed blocks of a member's equity the trend is fitted to.
    pub margin_window_blocks: u64,
    /// A trend reaching insolvency within this many blocks raises an early warning.
    pub margin_horizon_blocks: u64,
    /// Blocks over which the largest fall of a member's equity is taken (members without a
    /// risk view).
    pub history_blocks: u64,
    /// A scenario's 24-hour coverage under this (bps of 1.0) raises an early warning; 0:
    /// never.
    pub coverage_alert_bps: u64,
    /// Confirmed blocks of an oracle's price the volatility is measured over.
    pub volatility_window_blocks: u64,
    /// A volatility above this (bps) raises an early warning; 0: never.
    pub volatility_alert_bps: u64,
}

/// A validated configuration file. See the crate docs for the file's reference.
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) file: String,
    pub(crate) node: NodeSection,
    pub(crate) network: NetworkSection,
    pub(crate) api: Option<ApiSection>,
    pub(crate) metrics: Option<MetricsSection>,
    pub(crate) threshold: usize,
    pub(crate) pause_threshold: usize,
    pub(crate) nodes: Vec<ConsortiumNode>,
    pub(crate) me: NodeIndex,
    pub(crate) chains: Vec<ChainEntry>,
    pub(crate) members: Vec<MemberEntry>,
    pub(crate) oracles: Vec<OracleSection>,
    pub(crate) detectors: DetectorsSection,
    pub(crate) agreement: AgreementSection,
    pub(crate) stress: StressSection,
}

impl Config {
    /// Reads and validates the file at `path` (at most [`MAX_CONFIG_BYTES`]). Relative paths
    /// in it are resolved against its directory. Secrets are not read: see
    /// [`Config::load_keys`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let read_err = |source| ConfigError::Read {
            file: file.clone(),
            source,
        };
        let handle = std::fs::File::open(path).map_err(read_err)?;
        let meta = handle.metadata().map_err(read_err)?;
        if !meta.is_file() {
            return Err(ConfigError::Read {
                file,
                source: std::io::Error::other("not a regular file"),
            });
        }
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge {
                file,
                size: meta.len(),
                max: MAX_CONFIG_BYTES,
            });
        }
        let mut bytes = Vec::new();
        handle
            .take(MAX_CONFIG_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
        if bytes.len() as u64 > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge {
                file,
                size: bytes.len() as u64,
                max: MAX_CONFIG_BYTES,
            });
        }
        let text = String::from_utf8(bytes).map_err(|_| ConfigError::Parse {
            file: file.clone(),
            path: String::new(),
            reason: "not UTF-8 text".into(),
            location: None,
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        Self::from_str_in(&text, &file, base)
    }

    /// Parses and validates `text`; `origin` names it in errors and, read as a path, gives the
    /// directory relative paths are resolved against (its parent; none for a bare file name,
    /// so they stay relative to the working directory).
    pub fn from_str(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let base = Path::new(origin).parent().unwrap_or(Path::new(""));
        Self::from_str_in(text, origin, base)
    }

    /// Parses and validates `text`; `origin` names it in errors; relative paths are resolved
    /// against `base_dir`.
    pub fn from_str_in(text: &str, origin: &str, base_dir: &Path) -> Result<Self, ConfigError> {
        if text.len() as u64 > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge {
                file: origin.to_owned(),
                size: text.len() as u64,
                max: MAX_CONFIG_BYTES,
            });
        }
        let raw = crate::validate::parse(text, origin)?;
        crate::validate::validate(raw, origin, base_dir)
    }

    /// The configuration file's name, as given to [`Config::load`] or [`Config::from_str`].
    pub fn file(&self) -> &str {
        &self.file
    }

    /// What differs in `new` that a running node takes only at its next start: everything
    /// but the guardian key (`node.signer_*`), the chains' RPC URLs and the consortium
    /// nodes' network addresses, which a reload applies, and the nodes' guardian addresses
    /// (the node follows the vaults' set). Named by section.
    pub fn restart_needed(&self, new: &Config) -> Vec<&'static str> {
        fn parts(c: &Config) -> [(&'static str, String); 11] {
            let nodes: Vec<_> = c.nodes.iter().map(|n| (&n.name, n.public_key)).collect();
            let node = &c.node;
            [
                (
                    "node",
                    format!(
                        "{:?}",
                        (
                            &node.name,
                            &node.data_dir,
                            &node.identity_key,
                            node.log_format,
                            &node.log_filter
                        )
                    ),
                ),
                ("network", format!("{:?}", c.network)),
                ("api", format!("{:?}", c.api)),
                ("metrics", format!("{:?}", c.metrics)),
                (
                    "consortium",
                    format!("{:?}", (nodes, c.threshold, c.pause_threshold)),
                ),
                ("chains", format!("{:?}", without_urls(&c.chains))),
                ("members", format!("{:?}", c.members)),
                ("oracles", format!("{:?}", c.oracles)),
                ("detectors", format!("{:?}", c.detectors)),
                ("agreement", format!("{:?}", c.agreement)),
                ("stress", format!("{:?}", c.stress)),
            ]
        }
        fn without_urls(chains: &[ChainEntry]) -> Vec<ChainEntry> {
            let mut chains = chains.to_vec();
            for c in &mut chains {
                c.rpc_urls.clear();
            }
            chains
        }
        parts(self)
            .into_iter()
            .zip(parts(new))
            .filter(|((_, a), (_, b))| a != b)
            .map(|((name, _), _)| name)
            .collect()
    }

    /// `[node]`.
    pub fn node(&self) -> &NodeSection {
        &self.node
    }

    /// `[network]`.
    pub fn network(&self) -> &NetworkSection {
        &self.network
    }

    /// `[api]`, if the API is enabled.
    pub fn api(&self) -> Option<&ApiSection> {
        self.api.as_ref()
    }

    /// `[metrics]`, if the metrics endpoint is enabled.
    pub fn metrics(&self) -> Option<&MetricsSection> {
        self.metrics.as_ref()
    }

    /// The consortium's nodes, sorted by public key (index = agreement `NodeIndex`).
    pub fn nodes(&self) -> &[ConsortiumNode] {
        &self.nodes
    }

    /// Signatures needed to pay or lift (t = n - f).
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// Signatures needed to freeze, pause or alert (p = f + 1).
    pub fn pause_threshold(&self) -> usize {
        self.pause_threshold
    }

    /// Most faulty nodes tolerated (f = floor((n - 1) / 3)).
    pub fn max_faulty(&self) -> usize {
        backstop_types::Thresholds::of(self.nodes.len()).f
    }

    /// This node's index in [`Config::nodes`] (the entry named `node.name`).
    pub fn me(&self) -> NodeIndex {
        self.me
    }

    /// This node's entry.
    pub fn my_node(&self) -> &ConsortiumNode {
        &self.nodes[usize::from(self.me)]
    }

    /// The other nodes, with their indices.
    pub fn peers(&self) -> impl Iterator<Item = (NodeIndex, &ConsortiumNode)> {
        let me = self.me;
        self.indexed_nodes().filter(move |(i, _)| *i != me)
    }

    fn indexed_nodes(&self) -> impl Iterator<Item = (NodeIndex, &ConsortiumNode)> {
        // At most MAX_NODES (255) nodes, so every index fits.
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (i as NodeIndex, n))
    }

    /// The node with this public key.
    pub fn node_by_key(&self, public_key: &[u8; 32]) -> Option<(NodeIndex, &ConsortiumNode)> {
        let i = self
            .nodes
            .binary_search_by(|n| n.public_key.cmp(public_key))
            .ok()?;
        Some((i as NodeIndex, &self.nodes[i]))
    }

    /// The node with this PeerId.
    pub fn node_by_peer(&self, peer: &PeerId) -> Option<(NodeIndex, &ConsortiumNode)> {
        self.indexed_nodes().find(|(_, n)| n.peer_id == *peer)
    }

    /// The node with this guardian.
    pub fn node_by_guardian(&self, guardian: &Address) -> Option<(NodeIndex, &ConsortiumNode)> {
        self.indexed_nodes().find(|(_, n)| n.guardian == *guardian)
    }

    /// The node with this name.
    pub fn node_by_name(&self, name: &str) -> Option<(NodeIndex, &ConsortiumNode)> {
        self.indexed_nodes().find(|(_, n)| n.name == name)
    }

    /// `[[chains]]`, in file order.
    pub fn chains(&self) -> &[ChainEntry] {
        &self.chains
    }

    /// The chain with this id.
    pub fn chain(&self, chain_id: u64) -> Option<&ChainEntry> {
        self.chains.iter().find(|c| c.chain_id == chain_id)
    }

    /// The chain with this name.
    pub fn chain_by_name(&self, name: &str) -> Option<&ChainEntry> {
        self.chains.iter().find(|c| c.name == name)
    }

    /// `[[members]]`, in file order.
    pub fn members(&self) -> &[MemberEntry] {
        &self.members
    }

    /// The member with this id.
    pub fn member(&self, id: &B256) -> Option<&MemberEntry> {
        self.members.iter().find(|m| m.id == *id)
    }

    /// The member with this name.
    pub fn member_by_name(&self, name: &str) -> Option<&MemberEntry> {
        self.members.iter().find(|m| m.name == name)
    }

    /// The members whose home is `chain_id`.
    pub fn members_homed_on(&self, chain_id: u64) -> impl Iterator<Item = &MemberEntry> {
        self.members
            .iter()
            .filter(move |m| m.home_chain_id == chain_id)
    }

    /// `[[oracles]]`, in file order.
    pub fn oracles(&self) -> &[OracleSection] {
        &self.oracles
    }

    /// The oracle with this name.
    pub fn oracle_by_name(&self, name: &str) -> Option<&OracleSection> {
        self.oracles.iter().find(|o| o.name == name)
    }

    /// The oracle at `address` on chain `chain_id`.
    pub fn oracle_at(&self, chain_id: u64, address: &Address) -> Option<&OracleSection> {
        self.oracles
            .iter()
            .find(|o| o.chain_id == chain_id && o.address == *address)
    }

    /// The oracles of `asset`, in file order.
    pub fn oracles_of_asset(&self, asset: &str) -> impl Iterator<Item = &OracleSection> {
        self.oracles.iter().filter(move |o| o.asset == asset)
    }

    /// The reference oracle of `asset`, if it has one.
    pub fn reference_oracle(&self, asset: &str) -> Option<&OracleSection> {
        self.oracles_of_asset(asset).find(|o| o.reference)
    }

    /// `[detectors]`.
    pub fn detectors(&self) -> &DetectorsSection {
        &self.detectors
    }

    /// `[agreement]`.
    pub fn agreement(&self) -> &AgreementSection {
        &self.agreement
    }

    /// `[stress]`.
    pub fn stress(&self) -> &StressSection {
        &self.stress
    }

    /// Reads this node's secrets: the identity key, the signer key, the chains' signer
    /// overrides and the admin token. Refuses an identity key that is not `node.name`'s entry
    /// in the consortium and a signer key whose address is not that entry's guardian.
    pub fn load_keys(&self) -> Result<NodeKeys, ConfigError> {
        let (identity_path, identity_src) =
            secret_path("node", "identity_key", &self.node.identity_key);
        let identity = match identity_src {
            SecretSource::File(p) => keys::load_identity(p),
            SecretSource::Env(v) => keys::identity_from_env(v),
        }
        .map_err(|e| self.secret_err(&identity_path, e))?;
        let public_key = identity.verifying_key().to_bytes();
        let mine = self.my_node();
        if public_key != mine.public_key {
            let peer = crate::value::peer_id_of(&public_key)
                .map(|p| p.to_string())
                .unwrap_or_else(|| hex::encode(public_key));
            let reason = match self.node_by_key(&public_key) {
                Some((_, other)) => format!(
                    "identity key (PeerId {peer}) is consortium node {:?}'s, but node.name is {:?}",
                    other.name, self.node.name
                ),
                None => format!(
                    "identity key (PeerId {peer}) is not in consortium.nodes (node {:?} has PeerId {})",
                    mine.name, mine.peer_id
                ),
            };
            return Err(self.invalid(&identity_path, reason));
        }

        let (signer_path, signer) = self.load_guardian()?;
        if signer.address() != mine.guardian {
            return Err(self.invalid(
                &signer_path,
                format!(
                    "signer key's address {} is not node {:?}'s guardian {}",
                    signer.address(),
                    mine.name,
                    mine.guardian
                ),
            ));
        }

        let mut chain_signers = BTreeMap::new();
        for (i, chain) in self.chains.iter().enumerate() {
            if let Some(src) = &chain.signer_key {
                let (path, src) = secret_path(&format!("chains[{i}]"), "signer_key", src);
                let key = load_signer(src).map_err(|e| self.secret_err(&path, e))?;
                chain_signers.insert(chain.chain_id, key);
            } else if signer.local().is_none() {
                return Err(self.invalid(
                    &format!("chains[{i}]"),
                    format!(
                        "the guardian key is in a PKCS#11 token, which signs attestations only; set signer_key_file or signer_key_env for the key that sends transactions on chain {}",
                        chain.chain_id
                    ),
                ));
            }
        }

        let admin_token = match &self.api {
            None => None,
            Some(api) => {
                let (path, src) = secret_path("api", "admin_token", &api.admin_token);
                Some(self.load_token(&path, src)?)
            }
        };

        tracing::debug!(
            node = %mine.name,
            peer_id = %mine.peer_id,
            guardian = %mine.guardian,
            "node keys loaded"
        );
        Ok(NodeKeys {
            me: self.me,
            peer_id: mine.peer_id,
            identity,
            signer,
            chain_signers,
            admin_token,
        })
    }

    /// Opens the guardian key where `node` says it is; returns the key path named in errors.
    fn load_guardian(&self) -> Result<(String, GuardianKey), ConfigError> {
        match &self.node.signer_key {
            GuardianKeySource::Plain(src) => {
                let (path, src) = secret_path("node", "signer_key", src);
                let key = load_signer(src).map_err(|e| self.secret_err(&path, e))?;
                Ok((path, GuardianKey::Local(key)))
            }
            GuardianKeySource::Keystore { file, password } => {
                let (pw_path, pw_src) = secret_path("node", "signer_keystore_password", password);
                let mut password = self.load_passphrase(&pw_path, pw_src)?;
                let opened = backstop_signer::keystore::decrypt(file, password.as_bytes());
                keys::wipe_string(&mut password);
                let path = "node.signer_keystore_file".to_owned();
                let key = opened.map_err(|source| self.guardian_err(&path, source))?;
                Ok((path, GuardianKey::Local(key)))
            }
            GuardianKeySource::Pkcs11 { spec, pin } => {
                let (pin_path, pin_src) = secret_path("node.signer_pkcs11", "pin", pin);
                let mut pin = self.load_passphrase(&pin_path, pin_src)?;
                let opened = TokenSigner::open(spec, &pin);
                keys::wipe_string(&mut pin);
                let path = "node.signer_pkcs11".to_owned();
                let token = opened.map_err(|source| self.guardian_err(&path, source))?;
                Ok((path, GuardianKey::Token(Arc::new(token))))
            }
        }
    }

    /// A password or PIN: a file's first line or a variable's value, not empty.
    fn load_passphrase(&self, path: &str, src: &SecretSource) -> Result<String, ConfigError> {
        keys::read_passphrase(src).map_err(|e| self.secret_err(path, e))
    }

    fn guardian_err(&self, path: &str, source: backstop_signer::SignerError) -> ConfigError {
        ConfigError::Guardian {
            file: self.file.clone(),
            path: path.to_owned(),
            source: Box::new(source),
        }
    }

    fn load_token(&self, path: &str, src: &SecretSource) -> Result<AdminToken, ConfigError> {
        let mut text = match src {
            SecretSource::File(p) => {
                let mut t = keys::read_secret_file(p, MAX_TOKEN_BYTES)
                    .map_err(|e| self.secret_err(path, e))?;
                let trimmed = t
                    .strip_suffix("\r\n")
                    .or_else(|| t.strip_suffix('\n'))
                    .map(str::to_owned);
                if let Some(trimmed) = trimmed {
                    keys::wipe_string(&mut t);
                    trimmed
                } else {
                    t
                }
            }
            SecretSource::Env(v) => {
                let mut t = keys::read_secret_env(v).map_err(|e| self.secret_err(path, e))?;
                let trimmed = t.trim().to_owned();
                keys::wipe_string(&mut t);
                trimmed
            }
        };
        let len = text.chars().count();
        let ok = len >= MIN_TOKEN_CHARS
            && text.len() as u64 <= MAX_TOKEN_BYTES
            && text.chars().all(|c| c.is_ascii_graphic());
        if !ok {
            keys::wipe_string(&mut text);
            return Err(self.invalid(
                path,
                format!(
                    "the admin token must be at least {MIN_TOKEN_CHARS} printable ASCII characters without spaces (found {len} characters)"
                ),
            ));
        }
        Ok(AdminToken(text))
    }

    fn invalid(&self, path: &str, reason: String) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.clone(),
            path: path.to_owned(),
            reason,
        }
    }

    fn secret_err(&self, path: &str, e: KeyError) -> ConfigError {
        match e {
            KeyError::Env { var, reason } => ConfigError::Env {
                file: self.file.clone(),
                path: path.to_owned(),
                var,
                reason,
            },
            source => ConfigError::Secret {
                file: self.file.clone(),
                path: path.to_owned(),
                source,
            },
        }
    }
}

/// The key path (`node.signer_key_file`) of a secret source.
fn secret_path<'a>(table: &str, key: &str, src: &'a SecretSource) -> (String, &'a SecretSource) {
    let suffix = match src {
        SecretSource::File(_) => "file",
        SecretSource::Env(_) => "env",
    };
    (format!("{table}.{key}_{suffix}"), src)
}

fn load_signer(src: &SecretSource) -> Result<PrivateKeySigner, KeyError> {
    match src {
        SecretSource::File(p) => keys::load_signer(p),
        SecretSource::Env(v) => keys::signer_from_env(v),
    }
}

/// The API's admin token. `Debug` does not show it.
#[derive(Clone)]
pub struct AdminToken(String);

impl AdminToken {
    /// The token text.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is the token, in time independent of where they differ.
    pub fn verify(&self, candidate: &[u8]) -> bool {
        let ours = self.0.as_bytes();
        let mut diff = u8::from(ours.len() != candidate.len());
        for (i, a) in ours.iter().enumerate() {
            diff |= a ^ candidate.get(i).copied().unwrap_or(0);
        }
        std::hint::black_box(diff) == 0
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

impl Drop for AdminToken {
    fn drop(&mut self) {
        keys::wipe_string(&mut self.0);
    }
}

/// This node's secrets, checked against the configuration. `Debug` shows only public parts.
#[derive(Clone)]
pub struct NodeKeys {
    me: NodeIndex,
    peer_id: PeerId,
    identity: SigningKey,
    signer: GuardianKey,
    chain_signers: BTreeMap<u64, PrivateKeySigner>,
    admin_token: Option<AdminToken>,
}

impl NodeKeys {
    /// This node's index in [`Config::nodes`] (the same as [`Config::me`]).
    pub fn me(&self) -> NodeIndex {
        self.me
    }

    /// This node's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The ed25519 identity key (libp2p identity, gossip signatures).
    pub fn identity(&self) -> &SigningKey {
        &self.identity
    }

    /// The guardian key (EIP-712 attestations).
    pub fn signer(&self) -> &GuardianKey {
        &self.signer
    }

    /// The key sending transactions on `chain_id`: its override, else the guardian key when it
    /// is in memory. Never `None` for a configured chain: [`Config::load_keys`] refuses a token
    /// guardian on a chain without an override.
    pub fn signer_for(&self, chain_id: u64) -> Option<&PrivateKeySigner> {
        self.chain_signers
            .get(&chain_id)
            .or_else(|| self.signer.local())
    }

    /// The admin token, when `[api]` is configured.
    pub fn admin_token(&self) -> Option<&AdminToken> {
        self.admin_token.as_ref()
    }
}

impl fmt::Debug for NodeKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let overrides: BTreeMap<u64, Address> = self
            .chain_signers
            .iter()
            .map(|(id, s)| (*id, s.address()))
            .collect();
        f.debug_struct("NodeKeys")
            .field("me", &self.me)
            .field("peer_id", &self.peer_id)
            .field("guardian", &self.signer.address())
            .field("chain_signers", &overrides)
            .field("admin_token", &self.admin_token)
            .finish_non_exhaustive()
    }
}
