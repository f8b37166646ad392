//! From a validated configuration and its loaded keys to the runtime's [`Params`].
//!
//! The configuration crate has already refused unknown keys and bad values; this module
//! only reshapes. Invariant: nothing here reads files or the environment.

use std::time::Duration;

use backstop_config::{Config, NodeKeys};

use crate::detect::{DetectorConfig, OracleSpec};
use crate::runtime::{
    AgreementParams, ChainParams, MemberParams, Params, PeerParams, SignalParams,
};
use crate::warning::WarningConfig;

/// Why the configuration cannot become runtime parameters.
#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    /// An address the gossip layer cannot use.
    #[error("{file}: {key}: {reason}")]
    Invalid {
        /// Config file.
        file: String,
        /// Key path.
        key: String,
        /// Why.
        reason: String,
    },
}

fn multiaddr(file: &str, key: String, a: &impl ToString) -> Result<libp2p::Multiaddr, ParamsError> {
    a.to_string().parse().map_err(|e| ParamsError::Invalid {
        file: file.to_string(),
        key,
        reason: format!("{e}"),
    })
}

/// The runtime parameters of `config` with `keys`.
pub fn params(config: &Config, keys: &NodeKeys) -> Result<Params, ParamsError> {
    let file = config.file().to_string();
    let node = config.node();
    let listen = config
        .network()
        .listen
        .iter()
        .enumerate()
        .map(|(i, a)| multiaddr(&file, format!("network.listen[{i}]"), a))
        .collect::<Result<_, _>>()?;
    let peers = config
        .nodes()
        .iter()
        .enumerate()
        .map(|(i, n)| {
            Ok(PeerParams {
                name: n.name.clone(),
                public_key: n.public_key,
                guardian: n.guardian,
                addrs: n
                    .addresses
                    .iter()
                    .enumerate()
                    .map(|(j, a)| {
                        multiaddr(&file, format!("consortium.nodes[{i}].addresses[{j}]"), a)
                    })
                    .collect::<Result<_, _>>()?,
            })
        })
        .collect::<Result<_, ParamsError>>()?;
    let chains = config
        .chains()
        .iter()
        .map(|c| ChainParams {
            chain_id: c.chain_id,
            name: c.name.clone(),
            rpc_urls: c.rpc_url_strings(),
            vault: c.vault,
            confirmations: c.confirmations,
            poll_interval: c.poll_interval(),
            halt_after: c.halt_after(),
            request_timeout: c.request_timeout(),
            sender: keys.signer_for(c.chain_id).cloned(),
            pool_token_oracle: c.pool_token_oracle,
        })
        .collect();
    let members = config
        .members()
        .iter()
        .map(|m| MemberParams {
            name: m.name.clone(),
            id: m.id,
            home_chain_id: m.home_chain_id,
            solvency: m.solvency_contract,
            local_cap: m.incident_cap,
            oracle: m.oracle,
        })
        .collect();
    let d = config.detectors();
    let signals = SignalParams {
        detectors: DetectorConfig {
            max_deviation_bps: u64::from(d.oracle_max_deviation_bps),
            max_staleness_s: d.oracle_max_staleness_secs,
            outflow_drop_bps: u64::from(d.outflow_drop_bps),
            outflow_window_blocks: d.outflow_window_blocks,
            depeg_bps: u64::from(d.depeg_bps),
            interval_ms: d.signal_interval_secs.saturating_mul(1000),
            booking_timeout_ms: config.agreement().booking_timeout_ms,
            dust: config.agreement().dust,
            oracles: oracle_specs(config),
            pool_oracles: config
                .chains()
                .iter()
                .filter_map(|c| Some((c.chain_id, c.pool_token_oracle?)))
                .collect(),
            members: config
                .members()
                .iter()
                .map(|m| (m.id, m.home_chain_id))
                .collect(),
        },
        window: Duration::from_secs(d.signal_window_secs),
        expiry: Duration::from_secs(d.signal_expiry_secs),
        contagion_members: d.contagion_members,
        warnings: warning_config(config),
        scenarios: config.stress().scenarios.clone(),
    };
    let a = config.agreement();
    Ok(Params {
        name: node.name.clone(),
        data_dir: node.data_dir.clone(),
        identity: keys.identity().clone(),
        signer: keys.signer().clone(),
        listen,
        peers,
        chains,
        members,
        signals,
        agreement: AgreementParams {
            dust: a.dust,
            attempt_timeout: Duration::from_millis(a.attempt_timeout_ms),
            submit_delay: Duration::from_millis(a.submit_delay_ms),
            settle: Duration::from_millis(a.settle_ms),
            draw_ttl_s: a.draw_ttl_secs,
            leg_ttl_s: a.leg_ttl_secs,
            action_ttl_s: a.action_ttl_secs,
            retain_closed: Duration::from_secs(a.retain_closed_days.saturating_mul(86_400)),
        },
        api_listen: config.api().map(|a| a.listen),
        admin_token: keys.admin_token().map(|t| t.expose().to_string()),
        metrics_listen: config.metrics().map(|m| m.listen),
    })
}

/// The early warnings' thresholds, members and oracles.
fn warning_config(config: &Config) -> WarningConfig {
    let s = config.stress();
    WarningConfig {
        margin_window_blocks: s.margin_window_blocks,
        margin_horizon_blocks: s.margin_horizon_blocks,
        history_blocks: s.history_blocks,
        coverage_alert_bps: s.coverage_alert_bps,
        volatility_window_blocks: s.volatility_window_blocks,
        volatility_alert_bps: s.volatility_alert_bps,
        members: config
            .members()
            .iter()
            .map(|m| (m.id, m.home_chain_id))
            .collect(),
        oracles: oracle_specs(config),
    }
}

/// The configured oracles, as the detectors see them.
fn oracle_specs(config: &Config) -> Vec<OracleSpec> {
    config
        .oracles()
        .iter()
        .map(|o| OracleSpec {
            chain_id: o.chain_id,
            address: o.address,
            asset: o.asset.clone(),
            reference: o.reference,
        })
        .collect()
}
