//! From TOML text to a [`Config`]: parsing with exact key paths, then the semantic rules
//! (ranges, list bounds, uniqueness, cross-references, thresholds, secret sources).
//!
//! Invariants: every rule failure is a [`ConfigError`] naming the file, the key path of the
//! value at fault and the reason; the first failure found (section by section) is reported; a [`Config`]
//! is only ever built here, from a file that passed every rule.

use crate::config::{
    AgreementSection, ApiSection, ChainEntry, Config, ConsortiumNode, DetectorsSection,
    GuardianKeySource, MAX_ADDRS, MAX_CHAINS, MAX_MEMBERS, MAX_NODES, MAX_ORACLES, MAX_RPC_URLS,
    MetricsSection, NetworkSection, NodeIndex, NodeSection, OracleSection, SecretSource,
    StressSection,
};
use crate::error::ConfigError;
use crate::raw::{
    RawChain, RawConsortium, RawFile, RawMember, RawNode, RawOracle, RawPkcs11, RawScenario,
};
use crate::value::{EnvName, FilePath, Parsed, ed25519_of_peer, peer_id_of};
use backstop_signer::TokenSpec;
use multiaddr::Protocol;
use std::collections::HashMap;
use std::path::Path;

/// Parses `text` into the raw structures, reporting the key path and position of a fault.
pub(crate) fn parse(text: &str, file: &str) -> Result<RawFile, ConfigError> {
    let de =
        toml::Deserializer::parse(text).map_err(|e| parse_error(file, String::new(), &e, text))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        parse_error(file, path, e.inner(), text)
    })
}

fn parse_error(file: &str, mut path: String, e: &toml::de::Error, text: &str) -> ConfigError {
    let reason = e.message().trim().to_owned();
    // Name an unknown key in the path itself, not only in the message.
    if let Some(key) = reason
        .strip_prefix("unknown field `")
        .and_then(|r| r.split_once('`'))
        .map(|(k, _)| k)
    {
        let already = path == key || path.ends_with(&format!(".{key}"));
        if !already {
            path = if path.is_empty() {
                key.to_owned()
            } else {
                format!("{path}.{key}")
            };
        }
    }
    let location = e.span().and_then(|span| line_column(text, span.start));
    ConfigError::Parse {
        file: file.to_owned(),
        path,
        reason,
        location,
    }
}

/// 1-based line and column (in characters) of byte `offset`.
fn line_column(text: &str, offset: usize) -> Option<(usize, usize)> {
    let before = text.get(..offset)?;
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..)?.chars().count() + 1;
    Some((line, column))
}

struct Ctx<'a> {
    file: &'a str,
    base: &'a Path,
}

impl Ctx<'_> {
    fn err(&self, path: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_owned(),
            path: path.into(),
            reason: reason.into(),
        }
    }

    fn resolve(&self, p: &Parsed<FilePath>) -> std::path::PathBuf {
        let p = &p.0.0;
        if p.is_absolute() {
            p.clone()
        } else {
            self.base.join(p)
        }
    }

    /// Exactly one (or, if `optional`, at most one) of `{key}_file` and `{key}_env`.
    fn secret(
        &self,
        table: &str,
        key: &str,
        file: &Option<Parsed<FilePath>>,
        env: &Option<Parsed<EnvName>>,
        inline: bool,
        optional: bool,
    ) -> Result<Option<SecretSource>, ConfigError> {
        if inline {
            return Err(self.err(
                format!("{table}.{key}"),
                format!(
                    "secrets are never written in the config file; use {key}_file or {key}_env"
                ),
            ));
        }
        match (file, env) {
            (Some(f), None) => Ok(Some(SecretSource::File(self.resolve(f)))),
            (None, Some(e)) => Ok(Some(SecretSource::Env(e.0.0.clone()))),
            (Some(_), Some(_)) => Err(self.err(
                format!("{table}.{key}_env"),
                format!("{key}_file is set too; set exactly one of {key}_file and {key}_env"),
            )),
            (None, None) if optional => Ok(None),
            (None, None) => Err(self.err(
                table,
                format!("missing {key}_file or {key}_env (exactly one is needed)"),
            )),
        }
    }

    fn range(
        &self,
        path: &str,
        value: u64,
        min: u64,
        max: u64,
        unit: &str,
    ) -> Result<(), ConfigError> {
        if value < min || value > max {
            return Err(self.err(path, format!("{value} is out of range {min}..={max}{unit}")));
        }
        Ok(())
    }

    fn count(
        &self,
        path: &str,
        len: usize,
        min: usize,
        max: usize,
        what: &str,
    ) -> Result<(), ConfigError> {
        if len < min || len > max {
            return Err(self.err(path, format!("{len} {what}, expected {min} to {max}")));
        }
        Ok(())
    }
}

/// Records first occurrences of a value and refuses a second one.
fn unique<K: std::hash::Hash + Eq>(
    ctx: &Ctx<'_>,
    seen: &mut HashMap<K, String>,
    key: K,
    path: String,
    what: impl Fn() -> String,
) -> Result<(), ConfigError> {
    if let Some(first) = seen.get(&key) {
        return Err(ctx.err(path, format!("duplicate {} (also at {first})", what())));
    }
    seen.insert(key, path);
    Ok(())
}

/// Applies every rule to `raw` and builds the [`Config`].
pub(crate) fn validate(raw: RawFile, file: &str, base: &Path) -> Result<Config, ConfigError> {
    let ctx = Ctx { file, base };
    let node = node_section(&ctx, raw.node)?;

    ctx.count(
        "network.listen",
        raw.network.listen.len(),
        1,
        MAX_ADDRS,
        "listen addresses",
    )?;
    ctx.count(
        "network.external",
        raw.network.external.len(),
        0,
        MAX_ADDRS,
        "external addresses",
    )?;
    let network = NetworkSection {
        listen: raw.network.listen.into_iter().map(|a| a.0.0).collect(),
        external: raw.network.external.into_iter().map(|a| a.0.0).collect(),
    };

    let api = match raw.api {
        None => None,
        Some(api) => {
            let admin_token = ctx
                .secret(
                    "api",
                    "admin_token",
                    &api.admin_token_file,
                    &api.admin_token_env,
                    api.admin_token.is_some(),
                    false,
                )?
                .ok_or_else(|| ctx.err("api", "missing admin_token_file or admin_token_env"))?;
            Some(ApiSection {
                listen: api.listen.0,
                admin_token,
            })
        }
    };
    let metrics = raw.metrics.map(|m| MetricsSection { listen: m.listen.0 });
    if let (Some(api), Some(metrics)) = (&api, &metrics)
        && api.listen == metrics.listen
        && api.listen.port() != 0
    {
        return Err(ctx.err(
            "metrics.listen",
            format!("{} is also api.listen", metrics.listen),
        ));
    }

    let (threshold, pause_threshold, nodes) = consortium(&ctx, raw.consortium)?;
    let me = nodes
        .iter()
        .position(|n| n.name == node.name)
        .ok_or_else(|| {
            ctx.err(
                "node.name",
                format!(
                    "{:?} is not the name of any consortium.nodes entry",
                    node.name
                ),
            )
        })?;

    let detectors = detectors(&ctx, raw.detectors)?;
    let chains = chains(&ctx, raw.chains, detectors.chain_halt_secs)?;
    let oracles = oracles(&ctx, raw.oracles, &chains)?;
    let members = members(&ctx, raw.members, &chains, &oracles)?;
    let agreement = agreement(&ctx, raw.agreement)?;
    let stress = stress(&ctx, raw.stress, &chains, &oracles)?;

    for chain in &chains {
        if chain.confirmations == 0 {
            tracing::warn!(
                file,
                chain = %chain.name,
                "confirmations = 0: reorgs can make this node act on state that disappears"
            );
        }
    }

    Ok(Config {
        file: file.to_owned(),
        node,
        network,
        api,
        metrics,
        threshold,
        pause_threshold,
        nodes,
        // At most MAX_NODES (255) nodes.
        me: me as NodeIndex,
        chains,
        members,
        oracles,
        detectors,
        agreement,
        stress,
    })
}

/// Exactly one of the guardian key's three forms: plain, keystore, PKCS#11 token.
fn guardian_source(ctx: &Ctx<'_>, raw: &RawNode) -> Result<GuardianKeySource, ConfigError> {
    let plain = ctx.secret(
        "node",
        "signer_key",
        &raw.signer_key_file,
        &raw.signer_key_env,
        raw.signer_key.is_some(),
        true,
    )?;
    let password = ctx.secret(
        "node",
        "signer_keystore_password",
        &raw.signer_keystore_password_file,
        &raw.signer_keystore_password_env,
        false,
        true,
    )?;
    let keystore = match (&raw.signer_keystore_file, password) {
        (Some(file), Some(password)) => Some(GuardianKeySource::Keystore {
            file: ctx.resolve(file),
            password,
        }),
        (Some(_), None) => {
            return Err(ctx.err(
                "node",
                "signer_keystore_file needs signer_keystore_password_file or signer_keystore_password_env",
            ));
        }
        (None, Some(_)) => {
            return Err(ctx.err(
                "node",
                "signer_keystore_password_* is set but signer_keystore_file is not",
            ));
        }
        (None, None) => None,
    };
    let token = raw
        .signer_pkcs11
        .as_ref()
        .map(|p| pkcs11_source(ctx, p))
        .transpose()?;
    let mut forms = [plain.map(GuardianKeySource::Plain), keystore, token]
        .into_iter()
        .flatten();
    match (forms.next(), forms.next()) {
        (Some(one), None) => Ok(one),
        (None, _) => Err(ctx.err(
            "node",
            "missing the guardian key: set signer_key_file, signer_key_env, signer_keystore_file or [node.signer_pkcs11]",
        )),
        (Some(_), Some(_)) => Err(ctx.err(
            "node",
            "the guardian key is given twice: set only one of signer_key_*, signer_keystore_file and [node.signer_pkcs11]",
        )),
    }
}

fn pkcs11_source(ctx: &Ctx<'_>, raw: &RawPkcs11) -> Result<GuardianKeySource, ConfigError> {
    let token = raw.token.0.0.clone();
    if token.len() > MAX_TOKEN_LABEL {
        return Err(ctx.err(
            "node.signer_pkcs11.token",
            format!("a PKCS#11 token label has at most {MAX_TOKEN_LABEL} characters"),
        ));
    }
    let pin = ctx
        .secret(
            "node.signer_pkcs11",
            "pin",
            &raw.pin_file,
            &raw.pin_env,
            raw.pin.is_some(),
            false,
        )?
        .ok_or_else(|| ctx.err("node.signer_pkcs11", "missing pin_file or pin_env"))?;
    Ok(GuardianKeySource::Pkcs11 {
        spec: TokenSpec {
            module: ctx.resolve(&raw.module),
            token,
            key: raw.key.0.0.clone(),
        },
        pin,
    })
}

/// A PKCS#11 token label is a 32-byte field.
const MAX_TOKEN_LABEL: usize = 32;

fn node_section(ctx: &Ctx<'_>, raw: RawNode) -> Result<NodeSection, ConfigError> {
    let identity_key = ctx
        .secret(
            "node",
            "identity_key",
            &raw.identity_key_file,
            &raw.identity_key_env,
            raw.identity_key.is_some(),
            false,
        )?
        .ok_or_else(|| ctx.err("node", "missing identity_key_file or identity_key_env"))?;
    let signer_key = guardian_source(ctx, &raw)?;
    Ok(NodeSection {
        name: raw.name.0.0,
        data_dir: ctx.resolve(&raw.data_dir),
        identity_key,
        signer_key,
        log_format: raw.log_format,
        log_filter: raw
            .log_filter
            .map_or_else(|| crate::config::defaults::LOG_FILTER.to_owned(), |f| f.0.0),
    })
}

fn consortium(
    ctx: &Ctx<'_>,
    raw: RawConsortium,
) -> Result<(usize, usize, Vec<ConsortiumNode>), ConfigError> {
    ctx.count("consortium.nodes", raw.nodes.len(), 1, MAX_NODES, "nodes")?;
    let mut names = HashMap::new();
    let mut keys = HashMap::new();
    let mut guardians = HashMap::new();
    let mut nodes = Vec::with_capacity(raw.nodes.len());
    for (i, n) in raw.nodes.into_iter().enumerate() {
        let at = format!("consortium.nodes[{i}]");
        let name = n.name.0.0;
        unique(ctx, &mut names, name.clone(), format!("{at}.name"), || {
            format!("node name {name:?}")
        })?;
        let (public_key, key_path) = match (&n.public_key, &n.peer_id) {
            (Some(k), None) => (k.0.0, format!("{at}.public_key")),
            (None, Some(p)) => {
                let key = ed25519_of_peer(&p.0)
                    .ok_or_else(|| ctx.err(format!("{at}.peer_id"), "not an ed25519 PeerId"))?;
                (key, format!("{at}.peer_id"))
            }
            (Some(_), Some(_)) => {
                return Err(ctx.err(
                    format!("{at}.peer_id"),
                    "public_key is set too; set exactly one of public_key and peer_id",
                ));
            }
            (None, None) => {
                return Err(ctx.err(at, "missing public_key or peer_id (exactly one is needed)"));
            }
        };
        let peer_id = peer_id_of(&public_key)
            .ok_or_else(|| ctx.err(key_path.clone(), "not a valid ed25519 public key"))?;
        unique(ctx, &mut keys, public_key, key_path, || {
            format!("node key (PeerId {peer_id})")
        })?;
        let guardian = n.guardian.0;
        unique(
            ctx,
            &mut guardians,
            guardian,
            format!("{at}.guardian"),
            || format!("guardian {guardian}"),
        )?;
        ctx.count(
            &format!("{at}.addresses"),
            n.addresses.len(),
            0,
            MAX_ADDRS,
            "addresses",
        )?;
        let mut addresses = Vec::with_capacity(n.addresses.len());
        for (j, a) in n.addresses.into_iter().enumerate() {
            let mut addr = a.0.0;
            if let Some(Protocol::P2p(peer)) = addr.iter().last() {
                if peer != peer_id {
                    return Err(ctx.err(
                        format!("{at}.addresses[{j}]"),
                        format!("/p2p/{peer} does not match this node's key (PeerId {peer_id})"),
                    ));
                }
                addr.pop();
            }
            addresses.push(addr);
        }
        nodes.push(ConsortiumNode {
            name,
            public_key,
            peer_id,
            guardian,
            addresses,
        });
    }
    nodes.sort_by_key(|n| n.public_key);

    let backstop_types::Thresholds { n, f, t, p } = backstop_types::Thresholds::of(nodes.len());
    let explain = format!("n = {n} nodes, f = floor((n - 1) / 3) = {f}");
    if raw.threshold != t as u64 {
        return Err(ctx.err(
            "consortium.threshold",
            format!("must be n - f = {t} ({explain}), got {}", raw.threshold),
        ));
    }
    if raw.pause_threshold != p as u64 {
        return Err(ctx.err(
            "consortium.pause_threshold",
            format!(
                "must be f + 1 = {p} ({explain}), got {}",
                raw.pause_threshold
            ),
        ));
    }
    Ok((t, p, nodes))
}

fn chains(
    ctx: &Ctx<'_>,
    raw: Vec<RawChain>,
    default_halt: u64,
) -> Result<Vec<ChainEntry>, ConfigError> {
    if raw.is_empty() {
        return Err(ctx.err("chains", "at least one [[chains]] is needed"));
    }
    ctx.count("chains", raw.len(), 1, MAX_CHAINS, "chains")?;
    let mut ids = HashMap::new();
    let mut names = HashMap::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, c) in raw.into_iter().enumerate() {
        let at = format!("chains[{i}]");
        if c.chain_id == 0 {
            return Err(ctx.err(format!("{at}.chain_id"), "chain id 0 is not allowed"));
        }
        let id = c.chain_id;
        unique(ctx, &mut ids, id, format!("{at}.chain_id"), || {
            format!("chain id {id}")
        })?;
        let name = c.name.0.0;
        unique(ctx, &mut names, name.clone(), format!("{at}.name"), || {
            format!("chain name {name:?}")
        })?;
        ctx.count(
            &format!("{at}.rpc_urls"),
            c.rpc_urls.len(),
            1,
            MAX_RPC_URLS,
            "RPC URLs",
        )?;
        // The same vault address on two chains is fine (CREATE2 deployments).
        let vault = c.vault.0;
        ctx.range(
            &format!("{at}.confirmations"),
            c.confirmations,
            0,
            64,
            " blocks",
        )?;
        ctx.range(
            &format!("{at}.poll_interval_ms"),
            c.poll_interval_ms,
            50,
            60_000,
            " ms",
        )?;
        ctx.range(
            &format!("{at}.request_timeout_ms"),
            c.request_timeout_ms,
            100,
            60_000,
            " ms",
        )?;
        let halt_after_secs = c.halt_after_secs.unwrap_or(default_halt);
        ctx.range(
            &format!("{at}.halt_after_secs"),
            halt_after_secs,
            1,
            86_400,
            " s",
        )?;
        if halt_after_secs.saturating_mul(1000) <= c.poll_interval_ms {
            return Err(ctx.err(
                format!("{at}.halt_after_secs"),
                format!(
                    "{halt_after_secs} s is not longer than poll_interval_ms ({} ms)",
                    c.poll_interval_ms
                ),
            ));
        }
        let signer_key = ctx.secret(
            &at,
            "signer_key",
            &c.signer_key_file,
            &c.signer_key_env,
            c.signer_key.is_some(),
            true,
        )?;
        out.push(ChainEntry {
            chain_id: id,
            name,
            rpc_urls: c.rpc_urls.into_iter().map(|u| u.0.0).collect(),
            vault,
            confirmations: c.confirmations,
            poll_interval_ms: c.poll_interval_ms,
            halt_after_secs,
            request_timeout_ms: c.request_timeout_ms,
            signer_key,
            pool_token_oracle: c.pool_token_oracle.map(|o| o.0),
        });
    }
    Ok(out)
}

/// Refuses `chain_id` at `path` unless a `[[chains]]` entry has it.
fn configured_chain(
    ctx: &Ctx<'_>,
    path: String,
    chain_id: u64,
    chains: &[ChainEntry],
) -> Result<(), ConfigError> {
    if chains.iter().any(|c| c.chain_id == chain_id) {
        return Ok(());
    }
    let known: Vec<String> = chains.iter().map(|c| c.chain_id.to_string()).collect();
    Err(ctx.err(
        path,
        format!(
            "chain {chain_id} is not configured in [[chains]] (configured: {})",
            known.join(", ")
        ),
    ))
}

fn oracles(
    ctx: &Ctx<'_>,
    raw: Vec<RawOracle>,
    chains: &[ChainEntry],
) -> Result<Vec<OracleSection>, ConfigError> {
    ctx.count("oracles", raw.len(), 0, MAX_ORACLES, "oracles")?;
    let mut names = HashMap::new();
    let mut places = HashMap::new();
    let mut references = HashMap::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, o) in raw.into_iter().enumerate() {
        let at = format!("oracles[{i}]");
        let name = o.name.0.0;
        unique(ctx, &mut names, name.clone(), format!("{at}.name"), || {
            format!("oracle name {name:?}")
        })?;
        let chain_id = o.chain_id;
        configured_chain(ctx, format!("{at}.chain_id"), chain_id, chains)?;
        let address = o.address.0;
        unique(
            ctx,
            &mut places,
            (chain_id, address),
            format!("{at}.address"),
            || format!("oracle {address} on chain {chain_id}"),
        )?;
        let asset = o.asset.0.0;
        if o.reference {
            unique(
                ctx,
                &mut references,
                asset.clone(),
                format!("{at}.reference"),
                || format!("reference oracle of asset {asset:?}: an asset has at most one"),
            )?;
        }
        out.push(OracleSection {
            name,
            chain_id,
            address,
            asset,
            reference: o.reference,
        });
    }
    for (i, o) in out.iter().enumerate() {
        let comparable = out
            .iter()
            .any(|other| other.asset == o.asset && other.name != o.name);
        if !comparable {
            tracing::warn!(
                file = ctx.file,
                oracle = %o.name,
                asset = %o.asset,
                "oracles[{i}] has nothing to be compared with (no other oracle of its asset): its deviation is not checked"
            );
        }
    }
    Ok(out)
}

fn members(
    ctx: &Ctx<'_>,
    raw: Vec<RawMember>,
    chains: &[ChainEntry],
    oracles: &[OracleSection],
) -> Result<Vec<crate::config::MemberEntry>, ConfigError> {
    ctx.count("members", raw.len(), 0, MAX_MEMBERS, "members")?;
    let mut ids = HashMap::new();
    let mut names = HashMap::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, m) in raw.into_iter().enumerate() {
        let at = format!("members[{i}]");
        let name = m.name.0.0;
        unique(ctx, &mut names, name.clone(), format!("{at}.name"), || {
            format!("member name {name:?}")
        })?;
        let id = m.id.0;
        unique(ctx, &mut ids, id, format!("{at}.id"), || {
            format!("member id {id}")
        })?;
        let home = m.home_chain_id;
        configured_chain(ctx, format!("{at}.home_chain_id"), home, chains)?;
        if let Some(oracle) = &m.oracle {
            let address = oracle.0;
            let on_home = oracles
                .iter()
                .any(|o| o.chain_id == home && o.address == address);
            if !on_home {
                let elsewhere: Vec<String> = oracles
                    .iter()
                    .enumerate()
                    .filter(|(_, o)| o.address == address)
                    .map(|(j, o)| format!("oracles[{j}] on chain {}", o.chain_id))
                    .collect();
                let reason = if elsewhere.is_empty() {
                    format!(
                        "{address} is not the address of any [[oracles]] entry; add one with chain_id = {home} (the member's home_chain_id)"
                    )
                } else {
                    format!(
                        "{address} is {}, not on the member's home chain {home}",
                        elsewhere.join(" and ")
                    )
                };
                return Err(ctx.err(format!("{at}.oracle"), reason));
            }
        }
        if let Some(notes) = &m.notes
            && notes.chars().count() > 1024
        {
            return Err(ctx.err(format!("{at}.notes"), "longer than 1024 characters"));
        }
        out.push(crate::config::MemberEntry {
            name,
            id,
            home_chain_id: home,
            solvency_contract: m.solvency_contract.0,
            oracle: m.oracle.map(|o| o.0),
            incident_cap: m.incident_cap.map(|c| c.0),
            notes: m.notes,
        });
    }
    Ok(out)
}

fn bps(ctx: &Ctx<'_>, path: &str, value: u64) -> Result<u32, ConfigError> {
    ctx.range(path, value, 1, 10_000, " bps")?;
    // ≤ 10 000, so it fits.
    Ok(value as u32)
}

fn detectors(ctx: &Ctx<'_>, d: crate::raw::RawDetectors) -> Result<DetectorsSection, ConfigError> {
    const DAY: u64 = 86_400;
    let out = DetectorsSection {
        oracle_max_deviation_bps: bps(
            ctx,
            "detectors.oracle_max_deviation_bps",
            d.oracle_max_deviation_bps,
        )?,
        oracle_max_staleness_secs: d.oracle_max_staleness_secs,
        outflow_drop_bps: bps(ctx, "detectors.outflow_drop_bps", d.outflow_drop_bps)?,
        outflow_window_blocks: d.outflow_window_blocks,
        depeg_bps: bps(ctx, "detectors.depeg_bps", d.depeg_bps)?,
        chain_halt_secs: d.chain_halt_secs,
        signal_window_secs: d.signal_window_secs,
        signal_expiry_secs: d.signal_expiry_secs,
        // Checked to be at most 1024 below.
        contagion_members: d.contagion_members as usize,
        signal_interval_secs: d.signal_interval_secs,
    };
    ctx.range(
        "detectors.oracle_max_staleness_secs",
        out.oracle_max_staleness_secs,
        1,
        7 * DAY,
        " s",
    )?;
    ctx.range(
        "detectors.outflow_window_blocks",
        out.outflow_window_blocks,
        1,
        100_000,
        " blocks",
    )?;
    ctx.range(
        "detectors.chain_halt_secs",
        out.chain_halt_secs,
        1,
        DAY,
        " s",
    )?;
    ctx.range(
        "detectors.signal_window_secs",
        out.signal_window_secs,
        1,
        DAY,
        " s",
    )?;
    ctx.range(
        "detectors.signal_expiry_secs",
        out.signal_expiry_secs,
        1,
        30 * DAY,
        " s",
    )?;
    ctx.range(
        "detectors.contagion_members",
        d.contagion_members,
        2,
        1024,
        " members",
    )?;
    ctx.range(
        "detectors.signal_interval_secs",
        out.signal_interval_secs,
        1,
        3_600,
        " s",
    )?;
    if out.signal_interval_secs >= out.signal_window_secs {
        tracing::warn!(
            file = ctx.file,
            signal_interval_secs = out.signal_interval_secs,
            signal_window_secs = out.signal_window_secs,
            "detectors.signal_interval_secs is not shorter than signal_window_secs: a held condition's assertions may fall outside the confirmation window"
        );
    }
    Ok(out)
}

/// Most `[[stress.scenarios]]`.
pub(crate) const MAX_SCENARIOS: usize = 32;
/// A scenario's price moves, bps: at most a fall of 100 % and a rise of 1,000 %.
const MOVE_BPS: std::ops::RangeInclusive<i64> =
    backstop_stress::MIN_MOVE_BPS..=backstop_stress::MAX_MOVE_BPS;

fn stress(
    ctx: &Ctx<'_>,
    s: crate::raw::RawStress,
    chains: &[ChainEntry],
    oracles: &[OracleSection],
) -> Result<StressSection, ConfigError> {
    for (key, value, min, max) in [
        ("margin_window_blocks", s.margin_window_blocks, 3, 1_000),
        ("margin_horizon_blocks", s.margin_horizon_blocks, 1, 100_000),
        ("history_blocks", s.history_blocks, 1, 1_000),
        ("coverage_alert_bps", s.coverage_alert_bps, 0, 1_000_000),
        (
            "volatility_window_blocks",
            s.volatility_window_blocks,
            3,
            1_000,
        ),
        ("volatility_alert_bps", s.volatility_alert_bps, 0, 100_000),
    ] {
        ctx.range(&format!("stress.{key}"), value, min, max, "")?;
    }
    ctx.count(
        "stress.scenarios",
        s.scenarios.len(),
        0,
        MAX_SCENARIOS,
        "scenarios",
    )?;
    let mut names = HashMap::new();
    let mut scenarios = Vec::with_capacity(s.scenarios.len());
    for raw in s.scenarios {
        let name = raw.name.0.0.clone();
        unique(
            ctx,
            &mut names,
            name.clone(),
            format!("stress.scenarios[{name}]"),
            || format!("scenario name {name:?}"),
        )?;
        scenarios.push(scenario(ctx, raw, chains, oracles)?);
    }
    Ok(StressSection {
        scenarios,
        margin_window_blocks: s.margin_window_blocks,
        margin_horizon_blocks: s.margin_horizon_blocks,
        history_blocks: s.history_blocks,
        coverage_alert_bps: s.coverage_alert_bps,
        volatility_window_blocks: s.volatility_window_blocks,
        volatility_alert_bps: s.volatility_alert_bps,
    })
}

/// One scenario: every asset it moves is an oracle's asset, every move within
/// [`MOVE_BPS`], every halted chain configured, the depeg at most 100 %. Errors name the
/// scenario and the key (`stress.scenarios[<name>].moves.<asset>`).
fn scenario(
    ctx: &Ctx<'_>,
    raw: RawScenario,
    chains: &[ChainEntry],
    oracles: &[OracleSection],
) -> Result<backstop_stress::Scenario, ConfigError> {
    let name = raw.name.0.0;
    let path = format!("stress.scenarios[{name}]");
    let in_range = |key: String, v: i64| {
        if MOVE_BPS.contains(&v) {
            Ok(())
        } else {
            Err(ctx.err(
                key,
                format!(
                    "{v} bps is out of range {}..={} bps",
                    MOVE_BPS.start(),
                    MOVE_BPS.end()
                ),
            ))
        }
    };
    for (asset, v) in &raw.moves {
        let key = format!("{path}.moves.{asset}");
        if !oracles.iter().any(|o| o.asset == *asset) {
            return Err(ctx.err(key, "no [[oracles]] entry prices this asset"));
        }
        in_range(key, *v)?;
    }
    in_range(format!("{path}.all_assets_bps"), raw.all_assets_bps)?;
    if let Some(c) = raw
        .halted_chains
        .iter()
        .find(|c| !chains.iter().any(|e| e.chain_id == **c))
    {
        return Err(ctx.err(
            format!("{path}.halted_chains"),
            format!("chain {c} is not configured"),
        ));
    }
    ctx.range(
        &format!("{path}.depeg_bps"),
        raw.depeg_bps,
        0,
        10_000,
        " bps",
    )?;
    Ok(backstop_stress::Scenario {
        name,
        moves_bps: raw.moves,
        all_assets_bps: raw.all_assets_bps,
        halted_chains: raw.halted_chains.into_iter().collect(),
        depeg_bps: raw.depeg_bps,
    })
}

fn agreement(ctx: &Ctx<'_>, a: crate::raw::RawAgreement) -> Result<AgreementSection, ConfigError> {
    const DAY: u64 = 86_400;
    ctx.range(
        "agreement.attempt_timeout_ms",
        a.attempt_timeout_ms,
        100,
        600_000,
        " ms",
    )?;
    ctx.range(
        "agreement.submit_delay_ms",
        a.submit_delay_ms,
        0,
        600_000,
        " ms",
    )?;
    ctx.range("agreement.settle_ms", a.settle_ms, 0, 600_000, " ms")?;
    ctx.range(
        "agreement.booking_timeout_ms",
        a.booking_timeout_ms,
        1_000,
        DAY * 1_000,
        " ms",
    )?;
    ctx.range(
        "agreement.draw_ttl_secs",
        a.draw_ttl_secs,
        60,
        30 * DAY,
        " s",
    )?;
    ctx.range("agreement.leg_ttl_secs", a.leg_ttl_secs, 60, 30 * DAY, " s")?;
    ctx.range(
        "agreement.action_ttl_secs",
        a.action_ttl_secs,
        60,
        30 * DAY,
        " s",
    )?;
    ctx.range(
        "agreement.retain_closed_days",
        a.retain_closed_days,
        1,
        3650,
        " days",
    )?;
    Ok(AgreementSection {
        dust: a.dust.0,
        attempt_timeout_ms: a.attempt_timeout_ms,
        submit_delay_ms: a.submit_delay_ms,
        settle_ms: a.settle_ms,
        booking_timeout_ms: a.booking_timeout_ms,
        draw_ttl_secs: a.draw_ttl_secs,
        leg_ttl_secs: a.leg_ttl_secs,
        action_ttl_secs: a.action_ttl_secs,
        retain_closed_days: a.retain_closed_days,
    })
}
