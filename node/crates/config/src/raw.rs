//! The configuration file exactly as written: serde structures mirroring the TOML, with
//! defaults. Values are parsed to their types here (see [`crate::value`]); rules that relate
//! values to one another are checked by [`crate::validate`].
//!
//! Invariants: every table refuses unknown keys (`deny_unknown_fields`); the keys that would
//! hold a secret inline (`identity_key`, `signer_key`, `admin_token`) are recognised only to be
//! refused with a pointed message.

use crate::value::{
    DialAddr, Ed25519Public, EnvName, ExternalAddr, FilePath, ListenAddr, LogFilter, Name, Parsed,
    RpcUrl,
};
use alloy::primitives::{Address, B256, U256};
use libp2p_identity::PeerId;
use serde::Deserialize;
use serde::de::IgnoredAny;
use std::net::SocketAddr;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFile {
    pub node: RawNode,
    pub network: RawNetwork,
    pub api: Option<RawApi>,
    pub metrics: Option<RawMetrics>,
    pub consortium: RawConsortium,
    #[serde(default)]
    pub chains: Vec<RawChain>,
    #[serde(default)]
    pub members: Vec<RawMember>,
    #[serde(default)]
    pub oracles: Vec<RawOracle>,
    #[serde(default)]
    pub detectors: RawDetectors,
    #[serde(default)]
    pub agreement: RawAgreement,
    #[serde(default)]
    pub stress: RawStress,
}

/// `[node]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNode {
    pub name: Parsed<Name>,
    pub data_dir: Parsed<FilePath>,
    pub identity_key_file: Option<Parsed<FilePath>>,
    pub identity_key_env: Option<Parsed<EnvName>>,
    pub signer_key_file: Option<Parsed<FilePath>>,
    pub signer_key_env: Option<Parsed<EnvName>>,
    pub signer_keystore_file: Option<Parsed<FilePath>>,
    pub signer_keystore_password_file: Option<Parsed<FilePath>>,
    pub signer_keystore_password_env: Option<Parsed<EnvName>>,
    pub signer_pkcs11: Option<RawPkcs11>,
    #[serde(default)]
    pub log_format: crate::LogFormat,
    pub log_filter: Option<Parsed<LogFilter>>,
    /// Refused: secrets never go inline.
    pub identity_key: Option<IgnoredAny>,
    /// Refused: secrets never go inline.
    pub signer_key: Option<IgnoredAny>,
}

/// `[node.signer_pkcs11]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPkcs11 {
    pub module: Parsed<FilePath>,
    pub token: Parsed<Name>,
    pub key: Parsed<Name>,
    pub pin_file: Option<Parsed<FilePath>>,
    pub pin_env: Option<Parsed<EnvName>>,
    /// Refused: secrets never go inline.
    pub pin: Option<IgnoredAny>,
}

/// `[network]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNetwork {
    pub listen: Vec<Parsed<ListenAddr>>,
    #[serde(default)]
    pub external: Vec<Parsed<ExternalAddr>>,
}

/// `[api]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApi {
    pub listen: Parsed<SocketAddr>,
    pub admin_token_env: Option<Parsed<EnvName>>,
    pub admin_token_file: Option<Parsed<FilePath>>,
    /// Refused: secrets never go inline.
    pub admin_token: Option<IgnoredAny>,
}

/// `[metrics]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMetrics {
    pub listen: Parsed<SocketAddr>,
}

/// `[consortium]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConsortium {
    pub threshold: u64,
    pub pause_threshold: u64,
    pub nodes: Vec<RawConsortiumNode>,
}

/// `[[consortium.nodes]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConsortiumNode {
    pub name: Parsed<Name>,
    pub public_key: Option<Parsed<Ed25519Public>>,
    pub peer_id: Option<Parsed<PeerId>>,
    pub guardian: Parsed<Address>,
    #[serde(default)]
    pub addresses: Vec<Parsed<DialAddr>>,
}

/// `[[chains]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawChain {
    pub chain_id: u64,
    pub name: Parsed<Name>,
    pub rpc_urls: Vec<Parsed<RpcUrl>>,
    pub vault: Parsed<Address>,
    #[serde(default = "default_confirmations")]
    pub confirmations: u64,
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    pub halt_after_secs: Option<u64>,
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    pub signer_key_file: Option<Parsed<FilePath>>,
    pub signer_key_env: Option<Parsed<EnvName>>,
    /// Refused: secrets never go inline.
    pub signer_key: Option<IgnoredAny>,
    pub pool_token_oracle: Option<Parsed<Address>>,
}

fn default_confirmations() -> u64 {
    crate::defaults::CONFIRMATIONS
}
fn default_poll_interval_ms() -> u64 {
    crate::defaults::POLL_INTERVAL_MS
}
fn default_request_timeout_ms() -> u64 {
    crate::defaults::REQUEST_TIMEOUT_MS
}

/// `[[members]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMember {
    pub name: Parsed<Name>,
    pub id: Parsed<B256>,
    pub home_chain_id: u64,
    pub solvency_contract: Parsed<Address>,
    pub oracle: Option<Parsed<Address>>,
    pub incident_cap: Option<Parsed<U256>>,
    pub notes: Option<String>,
}

/// `[[oracles]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOracle {
    pub name: Parsed<Name>,
    pub chain_id: u64,
    pub address: Parsed<Address>,
    pub asset: Parsed<Name>,
    #[serde(default)]
    pub reference: bool,
}

/// `[detectors]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawDetectors {
    pub oracle_max_deviation_bps: u64,
    pub oracle_max_staleness_secs: u64,
    pub outflow_drop_bps: u64,
    pub outflow_window_blocks: u64,
    pub depeg_bps: u64,
    pub chain_halt_secs: u64,
    pub signal_window_secs: u64,
    pub signal_expiry_secs: u64,
    pub contagion_members: u64,
    pub signal_interval_secs: u64,
}

impl Default for RawDetectors {
    fn default() -> Self {
        use crate::defaults as d;
        Self {
            oracle_max_deviation_bps: d::ORACLE_MAX_DEVIATION_BPS,
            oracle_max_staleness_secs: d::ORACLE_MAX_STALENESS_SECS,
            outflow_drop_bps: d::OUTFLOW_DROP_BPS,
            outflow_window_blocks: d::OUTFLOW_WINDOW_BLOCKS,
            depeg_bps: d::DEPEG_BPS,
            chain_halt_secs: d::CHAIN_HALT_SECS,
            signal_window_secs: d::SIGNAL_WINDOW_SECS,
            signal_expiry_secs: d::SIGNAL_EXPIRY_SECS,
            contagion_members: d::CONTAGION_MEMBERS,
            signal_interval_secs: d::SIGNAL_INTERVAL_SECS,
        }
    }
}

/// `[agreement]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawAgreement {
    pub dust: Parsed<U256>,
    pub attempt_timeout_ms: u64,
    pub submit_delay_ms: u64,
    pub settle_ms: u64,
    pub booking_timeout_ms: u64,
    pub draw_ttl_secs: u64,
    pub leg_ttl_secs: u64,
    pub action_ttl_secs: u64,
    pub retain_closed_days: u64,
}

impl Default for RawAgreement {
    fn default() -> Self {
        use crate::defaults as d;
        Self {
            dust: Parsed(U256::from(d::DUST)),
            attempt_timeout_ms: d::ATTEMPT_TIMEOUT_MS,
            submit_delay_ms: d::SUBMIT_DELAY_MS,
            settle_ms: d::SETTLE_MS,
            booking_timeout_ms: d::BOOKING_TIMEOUT_MS,
            draw_ttl_secs: d::DRAW_TTL_SECS,
            leg_ttl_secs: d::LEG_TTL_SECS,
            action_ttl_secs: d::ACTION_TTL_SECS,
            retain_closed_days: d::RETAIN_CLOSED_DAYS,
        }
    }
}

/// `[stress]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawStress {
    pub margin_window_blocks: u64,
    pub margin_horizon_blocks: u64,
    pub history_blocks: u64,
    pub coverage_alert_bps: u64,
    pub volatility_window_blocks: u64,
    pub volatility_alert_bps: u64,
    pub scenarios: Vec<RawScenario>,
}

impl Default for RawStress {
    fn default() -> Self {
        use crate::defaults as d;
        Self {
            margin_window_blocks: d::MARGIN_WINDOW_BLOCKS,
            margin_horizon_blocks: d::MARGIN_HORIZON_BLOCKS,
            history_blocks: d::HISTORY_BLOCKS,
            coverage_alert_bps: d::COVERAGE_ALERT_BPS,
            volatility_window_blocks: d::VOLATILITY_WINDOW_BLOCKS,
            volatility_alert_bps: d::VOLATILITY_ALERT_BPS,
            scenarios: Vec::new(),
        }
    }
}

/// `[[stress.scenarios]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScenario {
    pub name: Parsed<Name>,
    /// Asset name → price move (bps).
    #[serde(default)]
    pub moves: std::collections::BTreeMap<String, i64>,
    #[serde(default)]
    pub all_assets_bps: i64,
    #[serde(default)]
    pub halted_chains: Vec<u64>,
    #[serde(default)]
    pub depeg_bps: u64,
}
