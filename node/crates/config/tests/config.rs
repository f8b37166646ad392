//! Configuration file tests: the example parses; every kind of fault is refused with the
//! file, the key path and the reason; secrets load from files and environment variables and
//! are checked against the consortium.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use backstop_config::{Config, ConfigError, LogFormat, SecretSource};
use std::path::{Path, PathBuf};

const EXAMPLE: &str = include_str!("../example.toml");
/// Identity seed of node "alpha" in the example.
const ALPHA_SEED: &str = "0101010101010101010101010101010101010101010101010101010101010101";
/// Identity seed of node "bravo".
const BRAVO_SEED: &str = "0202020202020202020202020202020202020202020202020202020202020202";
/// Seed of no node.
const STRANGER_SEED: &str = "0909090909090909090909090909090909090909090909090909090909090909";
/// Signer of alpha's guardian 0xf39F… (a well-known local test key).
const ALPHA_SIGNER: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
/// Signer of bravo's guardian 0x7099….
const BRAVO_SIGNER: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
const TOKEN: &str = "s3cr3t-admin-token-0123456789";

/// `text` with `from` (which must occur exactly once) replaced by `to`.
fn edit(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "{from:?} must occur once");
    text.replacen(from, to, 1)
}

fn refuse(text: &str) -> ConfigError {
    Config::from_str(text, "node.toml").expect_err("must be refused")
}

/// Asserts the error's file, path and that its message reads `node.toml: PATH: ...REASON...`.
fn assert_refused(e: &ConfigError, path: &str, reason: &str) {
    let shown = e.to_string();
    assert_eq!(e.file(), "node.toml", "{shown}");
    assert_eq!(e.path(), path, "{shown}");
    assert!(
        shown.starts_with(&format!("node.toml: {path}: ")),
        "{shown}"
    );
    assert!(
        shown.contains(reason),
        "{shown:?} should contain {reason:?}"
    );
}

#[cfg(unix)]
fn write_secret(path: &Path, text: &str, mode: u32) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

#[cfg(not(unix))]
fn write_secret(path: &Path, text: &str, _mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A directory with the example turned file-only (admin token file, no chain override) and
/// the given key files; returns it and the config path.
fn node_dir(identity: &str, signer: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let text = edit(
        EXAMPLE,
        "admin_token_env = \"BACKSTOP_ADMIN_TOKEN\"",
        "admin_token_file = \"keys/admin.token\"",
    );
    let text = edit(
        &text,
        "signer_key_env = \"BACKSTOP_ARBITRUM_SENDER_KEY\"",
        "",
    );
    let config = dir.path().join("node.toml");
    std::fs::write(&config, text).unwrap();
    write_secret(
        &dir.path().join("keys/identity.key"),
        &format!("{identity}\n"),
        0o600,
    );
    write_secret(
        &dir.path().join("keys/signer.key"),
        &format!("{signer}\n"),
        0o600,
    );
    write_secret(
        &dir.path().join("keys/admin.token"),
        &format!("{TOKEN}\n"),
        0o600,
    );
    (dir, config)
}

#[test]
fn example_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("example.toml");
    let c = Config::load(&path).unwrap();
    assert_eq!(c.file(), path.display().to_string());
    assert_eq!(c.node().name, "alpha");
    assert_eq!(c.node().log_format, LogFormat::Text);
    assert_eq!(
        c.node().data_dir,
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data")
    );
    assert_eq!(
        c.node().identity_key,
        SecretSource::File(Path::new(env!("CARGO_MANIFEST_DIR")).join("keys/identity.key"))
    );
    assert_eq!(c.network().listen.len(), 2);
    assert_eq!(
        c.api().unwrap().admin_token,
        SecretSource::Env("BACKSTOP_ADMIN_TOKEN".into())
    );
    assert_eq!(c.metrics().unwrap().listen.port(), 9100);

    assert_eq!(c.nodes().len(), 4);
    assert!(
        c.nodes()
            .windows(2)
            .all(|w| w[0].public_key < w[1].public_key)
    );
    assert_eq!(
        (c.threshold(), c.pause_threshold(), c.max_faulty()),
        (3, 2, 1)
    );
    assert_eq!(c.my_node().name, "alpha");
    assert_eq!(c.nodes()[usize::from(c.me())].name, "alpha");
    assert_eq!(c.peers().count(), 3);
    let (_, charlie) = c.node_by_name("charlie").unwrap();
    assert_eq!(
        hex::encode(charlie.public_key),
        "ed4928c628d1c2c6eae90338905995612959273a5c63f93636c14614ac8737d1"
    );
    assert_eq!(c.node_by_peer(&charlie.peer_id).unwrap().1.name, "charlie");
    assert_eq!(
        c.node_by_key(&charlie.public_key).unwrap().1.name,
        "charlie"
    );
    assert_eq!(
        c.node_by_guardian(&charlie.guardian).unwrap().1.name,
        "charlie"
    );
    let (_, bravo) = c.node_by_name("bravo").unwrap();
    assert_eq!(
        bravo.addresses[0].to_string(),
        "/ip4/10.0.0.2/tcp/9000",
        "/p2p/ removed"
    );

    assert_eq!(c.chains().len(), 2);
    let arb = c.chain(42161).unwrap();
    assert_eq!(
        arb.halt_after_secs, 30,
        "defaults to detectors.chain_halt_secs"
    );
    assert_eq!(
        arb.signer_key,
        Some(SecretSource::Env("BACKSTOP_ARBITRUM_SENDER_KEY".into()))
    );
    assert_eq!(c.chain_by_name("ethereum").unwrap().confirmations, 12);
    assert_eq!(c.chain(1).unwrap().rpc_url_strings().len(), 2);
    assert_eq!(c.members_homed_on(42161).count(), 1);
    let perp = c.member_by_name("perpdex").unwrap();
    assert_eq!(perp.incident_cap.unwrap().to_string(), "5000000000000");
    assert_eq!(c.member(&perp.id).unwrap().name, "perpdex");
    assert_eq!(c.agreement().dust.to_string(), "1000000");
    assert_eq!(c.detectors().depeg_bps, 200);
    assert_eq!(c.detectors().contagion_members, 2);
    assert_eq!(c.detectors().signal_interval_secs, 10);

    assert_eq!(
        c.chain(1).unwrap().pool_token_oracle.unwrap().to_string(),
        "0x5FC8d32690cc91D4c39d9d3abcBD16989F875707"
    );
    assert_eq!(arb.pool_token_oracle, None);
    assert_eq!(c.oracles().len(), 4);
    let eth = c.oracle_by_name("eth-usd-ethereum").unwrap();
    assert_eq!(
        (eth.chain_id, eth.asset.as_str(), eth.reference),
        (1, "ETH-USD", true)
    );
    assert_eq!(c.reference_oracle("ETH-USD"), Some(eth));
    assert_eq!(c.reference_oracle("USDC-USD"), None);
    assert_eq!(c.oracles_of_asset("USDC-USD").count(), 2);
    let perp_oracle = c.oracle_at(42161, &perp.oracle.unwrap()).unwrap();
    assert_eq!(perp_oracle.name, "eth-usd-arbitrum");
    assert!(!perp_oracle.reference, "reference defaults to false");
    assert_eq!(c.oracle_at(1, &perp.oracle.unwrap()), None);
}

#[test]
fn readme_example_parses() {
    let readme = include_str!("../README.md");
    let start = readme.find("```toml\n").unwrap() + "```toml\n".len();
    let len = readme[start..].find("```").unwrap();
    let c = Config::from_str(&readme[start..start + len], "README.md").unwrap();
    assert_eq!((c.threshold(), c.pause_threshold()), (1, 1));
    // Defaults.
    assert_eq!(c.chains()[0].confirmations, 2);
    assert_eq!(c.agreement().attempt_timeout_ms, 4000);
    assert_eq!(c.node().log_filter, "info");
    assert!(c.metrics().is_none());
    assert!(c.oracles().is_empty());
    assert_eq!(c.chains()[0].pool_token_oracle, None);
    assert_eq!(c.detectors().contagion_members, 2);
    assert_eq!(c.detectors().signal_interval_secs, 10);
}

#[test]
fn unknown_keys_are_refused() {
    let top = refuse(&format!("bogus = 1\n{EXAMPLE}"));
    assert_refused(&top, "bogus", "unknown field `bogus`");
    assert_eq!(top.location().map(|l| l.0), Some(1));

    let nested = refuse(&edit(
        EXAMPLE,
        "poll_interval_ms = 250",
        "poll_interval_ms = 250\nvualt = 1",
    ));
    assert_refused(&nested, "chains[1].vualt", "unknown field `vualt`");

    let table = refuse(&edit(
        EXAMPLE,
        "[metrics]\n",
        "[metrics]\nlisten_addr = \"1.2.3.4:5\"\n",
    ));
    assert_refused(&table, "metrics.listen_addr", "unknown field `listen_addr`");
}

#[test]
fn bad_address_is_refused() {
    let e = refuse(&edit(
        EXAMPLE,
        "vault = \"0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512\"",
        "vault = \"0x123\"",
    ));
    assert_refused(
        &e,
        "chains[1].vault",
        "invalid address \"0x123\": odd number of digits",
    );
    let (line, _) = e.location().unwrap();
    assert_eq!(
        EXAMPLE
            .lines()
            .nth(line - 1)
            .unwrap()
            .trim_start()
            .split('=')
            .next()
            .unwrap()
            .trim(),
        "vault"
    );

    let e = refuse(&edit(
        EXAMPLE,
        "guardian = \"0x90F79bf6EB2c4f870365E785982E1f101E93b906\"",
        "guardian = \"0x90F79bf6EB2c4f870365E785982E1f101E93b907\"",
    ));
    assert_refused(&e, "consortium.nodes[3].guardian", "bad EIP-55 checksum");
}

#[test]
fn bad_multiaddr_is_refused() {
    let e = refuse(&edit(
        EXAMPLE,
        "\"/ip4/0.0.0.0/udp/9000/quic-v1\"]",
        "\"/ip4/0.0.0.0/udp/9000\"]",
    ));
    assert_refused(
        &e,
        "network.listen[1]",
        "invalid listen multiaddr \"/ip4/0.0.0.0/udp/9000\": UDP is only used as /udp/PORT/quic-v1",
    );

    let e = refuse(&edit(
        EXAMPLE,
        "/ip4/10.0.0.2/tcp/9000",
        "/ip4/10.0.0.256/tcp/9000",
    ));
    assert_refused(&e, "consortium.nodes[1].addresses[0]", "invalid multiaddr");

    // A /p2p/ suffix of another node.
    let e = refuse(&edit(
        EXAMPLE,
        "/ip4/10.0.0.2/tcp/9000/p2p/12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq",
        "/ip4/10.0.0.2/tcp/9000/p2p/12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5",
    ));
    assert_refused(
        &e,
        "consortium.nodes[1].addresses[0]",
        "does not match this node's key",
    );
}

#[test]
fn bad_url_is_refused() {
    let e = refuse(&edit(
        EXAMPLE,
        "\"wss://eth-ws.rpc.example\"",
        "\"ftp://eth.rpc.example\"",
    ));
    assert_refused(
        &e,
        "chains[0].rpc_urls[1]",
        "invalid URL \"ftp://eth.rpc.example\": scheme \"ftp\"",
    );
    let e = refuse(&edit(
        EXAMPLE,
        "\"https://arb.rpc.example\"",
        "\"arb.rpc.example\"",
    ));
    assert_refused(&e, "chains[1].rpc_urls[0]", "invalid URL");
    let e = refuse(&edit(
        EXAMPLE,
        "rpc_urls = [\"https://arb.rpc.example\"]",
        "rpc_urls = []",
    ));
    assert_refused(&e, "chains[1].rpc_urls", "0 RPC URLs, expected 1 to 8");
}

#[test]
fn duplicate_chain_id_is_refused() {
    let e = refuse(&edit(
        EXAMPLE,
        "\nchain_id = 42161\nname = \"arbitrum\"",
        "\nchain_id = 1\nname = \"arbitrum\"",
    ));
    assert_refused(
        &e,
        "chains[1].chain_id",
        "duplicate chain id 1 (also at chains[0].chain_id)",
    );
    let e = refuse(&edit(EXAMPLE, "name = \"arbitrum\"", "name = \"ethereum\""));
    assert_refused(&e, "chains[1].name", "duplicate chain name");
}

#[test]
fn member_on_unknown_chain_is_refused() {
    let e = refuse(&edit(
        EXAMPLE,
        "home_chain_id = 1\n",
        "home_chain_id = 10\n",
    ));
    assert_refused(
        &e,
        "members[1].home_chain_id",
        "chain 10 is not configured in [[chains]]",
    );
    let e = refuse(&edit(
        EXAMPLE,
        "id = \"0x6c656e6472000000000000000000000000000000000000000000000000000002\"",
        "id = \"0x7065727064657800000000000000000000000000000000000000000000000001\"",
    ));
    assert_refused(&e, "members[1].id", "duplicate member id");
}

/// The first `[[oracles]]` entry of the example, as written.
const ETH_ORACLE: &str = "name = \"eth-usd-ethereum\"\nchain_id = 1\naddress = \"0x0165878A594ca255338adfa4d48449f69242Eb8F\"\nasset = \"ETH-USD\"\nreference = true";

#[test]
fn oracle_rules() {
    assert!(
        EXAMPLE.contains(ETH_ORACLE),
        "the example's first oracle changed"
    );
    let oracle = |fields: &str| edit(EXAMPLE, ETH_ORACLE, fields);

    let e = refuse(&oracle(
        "name = \"eth-usd-ethereum\"\nchain_id = 10\naddress = \"0x0165878A594ca255338adfa4d48449f69242Eb8F\"\nasset = \"ETH-USD\"",
    ));
    assert_refused(
        &e,
        "oracles[0].chain_id",
        "chain 10 is not configured in [[chains]] (configured: 1, 42161)",
    );

    let e = refuse(&oracle(
        "name = \"usdc-usd-arbitrum\"\nchain_id = 1\naddress = \"0x0165878A594ca255338adfa4d48449f69242Eb8F\"\nasset = \"ETH-USD\"",
    ));
    assert_refused(
        &e,
        "oracles[3].name",
        "duplicate oracle name \"usdc-usd-arbitrum\" (also at oracles[0].name)",
    );

    // The same address on the same chain twice; on another chain it is fine.
    let e = refuse(&oracle(
        "name = \"eth-usd-ethereum\"\nchain_id = 1\naddress = \"0xa513E6E4b8f2a923D98304ec87F64353C4D5C853\"\nasset = \"ETH-USD\"",
    ));
    assert_refused(
        &e,
        "oracles[2].address",
        "duplicate oracle 0xa513E6E4b8f2a923D98304ec87F64353C4D5C853 on chain 1 (also at oracles[0].address)",
    );
    let c = Config::from_str(
        &oracle(
            "name = \"eth-usd-ethereum\"\nchain_id = 1\naddress = \"0x2279B7A0a67DB372996a5FaB50D91eAA73d2eBe6\"\nasset = \"ETH-USD\"",
        ),
        "node.toml",
    )
    .unwrap();
    assert_eq!(c.reference_oracle("ETH-USD"), None);

    // Two references for one asset; one per asset is fine.
    let usdc_ethereum = "0xa513E6E4b8f2a923D98304ec87F64353C4D5C853\"\nasset = \"USDC-USD\"";
    let e = refuse(&edit(
        EXAMPLE,
        usdc_ethereum,
        "0xa513E6E4b8f2a923D98304ec87F64353C4D5C853\"\nasset = \"ETH-USD\"\nreference = true",
    ));
    assert_refused(
        &e,
        "oracles[2].reference",
        "duplicate reference oracle of asset \"ETH-USD\": an asset has at most one (also at oracles[0].reference)",
    );
    let c = Config::from_str(
        &edit(
            EXAMPLE,
            usdc_ethereum,
            &format!("{usdc_ethereum}\nreference = true"),
        ),
        "node.toml",
    )
    .unwrap();
    assert_eq!(
        c.reference_oracle("USDC-USD").unwrap().name,
        "usdc-usd-ethereum"
    );

    let e = refuse(&oracle(&format!("{ETH_ORACLE}\nasset_class = \"fx\"")));
    assert_refused(&e, "oracles[0].asset_class", "unknown field `asset_class`");
    let e = refuse(&oracle(&ETH_ORACLE.replace("ETH-USD", "ETH/USD")));
    assert_refused(&e, "oracles[0].asset", "invalid name \"ETH/USD\"");
    let e = refuse(&oracle(
        &ETH_ORACLE.replace("reference = true", "reference = \"yes\""),
    ));
    assert_refused(&e, "oracles[0].reference", "invalid type");
    let e = refuse(&oracle(&ETH_ORACLE.replace("chain_id = 1\n", "")));
    assert_refused(&e, "oracles[0]", "missing field `chain_id`");

    let mut many = String::from(EXAMPLE);
    for i in 0..252 {
        many.push_str(&format!(
            "\n[[oracles]]\nname = \"o{i}\"\nchain_id = 1\naddress = \"0x{:040x}\"\nasset = \"X\"\n",
            i + 1
        ));
    }
    let c = Config::from_str(&many, "node.toml").unwrap();
    assert_eq!(c.oracles().len(), 256);
    many.push_str("\n[[oracles]]\nname = \"one-too-many\"\nchain_id = 1\naddress = \"0x00000000000000000000000000000000000000ff\"\nasset = \"X\"\n");
    assert_refused(&refuse(&many), "oracles", "257 oracles, expected 0 to 256");
}

#[test]
fn member_oracle_must_be_an_oracle_on_its_home_chain() {
    // perpdex (home 42161) names an address no [[oracles]] entry has.
    let e = refuse(&edit(
        EXAMPLE,
        "oracle = \"0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9\"",
        "oracle = \"0x8A791620dd6260079BF849Dc5567aDC3F2FdC318\"",
    ));
    assert_refused(
        &e,
        "members[0].oracle",
        "0x8A791620dd6260079BF849Dc5567aDC3F2FdC318 is not the address of any [[oracles]] entry; add one with chain_id = 42161",
    );
    // An oracle that exists, but on chain 1.
    let e = refuse(&edit(
        EXAMPLE,
        "oracle = \"0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9\"",
        "oracle = \"0x0165878A594ca255338adfa4d48449f69242Eb8F\"",
    ));
    assert_refused(
        &e,
        "members[0].oracle",
        "0x0165878A594ca255338adfa4d48449f69242Eb8F is oracles[0] on chain 1, not on the member's home chain 42161",
    );
    // Once the oracle is moved to the member's home chain, it is accepted.
    let text = edit(
        EXAMPLE,
        "oracle = \"0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9\"",
        "oracle = \"0x0165878A594ca255338adfa4d48449f69242Eb8F\"",
    );
    let text = edit(
        &text,
        "chain_id = 1\naddress = \"0x0165878A594ca255338adfa4d48449f69242Eb8F\"",
        "chain_id = 42161\naddress = \"0x0165878A594ca255338adfa4d48449f69242Eb8F\"",
    );
    let c = Config::from_str(&text, "node.toml").unwrap();
    assert_eq!(
        c.member_by_name("perpdex").unwrap().oracle,
        Some(c.oracle_by_name("eth-usd-ethereum").unwrap().address)
    );
    // No oracle at all is fine.
    let c = Config::from_str(
        &edit(
            EXAMPLE,
            "oracle = \"0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9\"\n",
            "",
        ),
        "node.toml",
    )
    .unwrap();
    assert_eq!(c.member_by_name("perpdex").unwrap().oracle, None);
}

#[test]
fn pool_token_oracle_and_new_detector_keys() {
    let e = refuse(&edit(
        EXAMPLE,
        "pool_token_oracle = \"0x5FC8d32690cc91D4c39d9d3abcBD16989F875707\"",
        "pool_token_oracle = \"0x0000000000000000000000000000000000000000\"",
    ));
    assert_refused(&e, "chains[0].pool_token_oracle", "invalid address");

    for (from, to, path, reason) in [
        (
            "contagion_members = 2",
            "contagion_members = 1",
            "detectors.contagion_members",
            "1 is out of range 2..=1024",
        ),
        (
            "contagion_members = 2",
            "contagion_members = 1025",
            "detectors.contagion_members",
            "1025 is out of range 2..=1024",
        ),
        (
            "signal_interval_secs = 10",
            "signal_interval_secs = 0",
            "detectors.signal_interval_secs",
            "0 is out of range 1..=3600",
        ),
        (
            "signal_interval_secs = 10",
            "signal_interval_secs = 3601",
            "detectors.signal_interval_secs",
            "3601 is out of range 1..=3600",
        ),
    ] {
        assert_refused(&refuse(&edit(EXAMPLE, from, to)), path, reason);
    }
    let c = Config::from_str(
        &edit(
            &edit(EXAMPLE, "contagion_members = 2", "contagion_members = 1024"),
            "signal_interval_secs = 10",
            "signal_interval_secs = 3600",
        ),
        "node.toml",
    )
    .unwrap();
    assert_eq!(c.detectors().contagion_members, 1024);
    assert_eq!(c.detectors().signal_interval_secs, 3600);
}

/// The example's scenarios parse; a bad scenario is refused naming the scenario and key.
#[test]
fn stress_scenarios_are_validated() {
    let c = Config::from_str(EXAMPLE, "node.toml").unwrap();
    let s = c.stress();
    assert_eq!(s.scenarios.len(), 4);
    assert_eq!(s.scenarios[0].name, "eth-crash-30");
    assert_eq!(s.scenarios[0].moves_bps["ETH-USD"], -3000);
    assert_eq!(s.scenarios[1].all_assets_bps, -4000);
    assert!(s.scenarios[2].halted_chains.contains(&42161));
    assert_eq!(s.scenarios[3].depeg_bps, 1000);
    assert_eq!((s.margin_window_blocks, s.coverage_alert_bps), (10, 10_000));

    for (from, to, path, reason) in [
        (
            "moves = { \"ETH-USD\" = -3000 }",
            "moves = { \"BTC-USD\" = -3000 }",
            "stress.scenarios[eth-crash-30].moves.BTC-USD",
            "no [[oracles]] entry prices this asset",
        ),
        (
            "moves = { \"ETH-USD\" = -3000 }",
            "moves = { \"ETH-USD\" = -10001 }",
            "stress.scenarios[eth-crash-30].moves.ETH-USD",
            "-10001 bps is out of range -10000..=100000",
        ),
        (
            "all_assets_bps = -4000",
            "all_assets_bps = 100001",
            "stress.scenarios[correlated-crash-40].all_assets_bps",
            "out of range",
        ),
        (
            "halted_chains = [42161]",
            "halted_chains = [7]",
            "stress.scenarios[arbitrum-halt].halted_chains",
            "chain 7 is not configured",
        ),
        (
            "depeg_bps = 1000",
            "depeg_bps = 10001",
            "stress.scenarios[pool-depeg-10].depeg_bps",
            "10001 is out of range 0..=10000",
        ),
        (
            "name = \"pool-depeg-10\"",
            "name = \"eth-crash-30\"",
            "stress.scenarios[eth-crash-30]",
            "duplicate scenario name",
        ),
        (
            "margin_window_blocks = 10",
            "margin_window_blocks = 2",
            "stress.margin_window_blocks",
            "2 is out of range 3..=1000",
        ),
    ] {
        assert_refused(&refuse(&edit(EXAMPLE, from, to)), path, reason);
    }
    let e = refuse(&edit(
        EXAMPLE,
        "depeg_bps = 1000",
        "depeg_bps = 10\nshock = 1",
    ));
    assert!(e.to_string().contains("shock"), "{e}");
}

#[test]
fn thresholds_must_match_n() {
    let e = refuse(&edit(EXAMPLE, "threshold = 3", "threshold = 2"));
    assert_refused(
        &e,
        "consortium.threshold",
        "must be n - f = 3 (n = 4 nodes, f = floor((n - 1) / 3) = 1), got 2",
    );
    let e = refuse(&edit(EXAMPLE, "pause_threshold = 2", "pause_threshold = 1"));
    assert_refused(&e, "consortium.pause_threshold", "must be f + 1 = 2");
}

#[test]
fn consortium_rules() {
    // Duplicate key given once as a key and once as a PeerId.
    let e = refuse(&edit(
        EXAMPLE,
        "peer_id = \"12D3KooWRndVhVZPCiQwHBBBdg769GyrPUW13zxwqQyf9r3ANaba\"",
        "peer_id = \"12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5\"",
    ));
    assert_refused(&e, "consortium.nodes[2].peer_id", "duplicate node key");
    let e = refuse(&edit(
        EXAMPLE,
        "guardian = \"0x90F79bf6EB2c4f870365E785982E1f101E93b906\"",
        "guardian = \"0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266\"",
    ));
    assert_refused(&e, "consortium.nodes[3].guardian", "duplicate guardian");
    let e = refuse(&edit(
        EXAMPLE,
        "name = \"alpha\"                       #",
        "name = \"zulu\" #",
    ));
    assert_refused(
        &e,
        "node.name",
        "\"zulu\" is not the name of any consortium.nodes entry",
    );
    let e = refuse(&edit(
        EXAMPLE,
        "public_key = \"ca93ac17",
        "public_key = \"ca93ac18",
    ));
    assert_eq!(e.path(), "consortium.nodes[3].public_key", "{e}");
}

#[test]
fn secrets_are_never_inline_and_sources_are_exclusive() {
    let e = refuse(&edit(
        EXAMPLE,
        "[api]\n",
        "[api]\nadmin_token = \"hunter2hunter2hunter2\"\n",
    ));
    assert_refused(
        &e,
        "api.admin_token",
        "secrets are never written in the config file",
    );
    assert!(!e.to_string().contains("hunter2"));
    let e = refuse(&edit(
        EXAMPLE,
        "log_format = \"text\"",
        "signer_key_env = \"X\"",
    ));
    assert_refused(
        &e,
        "node.signer_key_env",
        "set exactly one of signer_key_file and signer_key_env",
    );
    let e = refuse(&edit(
        EXAMPLE,
        "identity_key_file = \"keys/identity.key\"",
        "",
    ));
    assert_refused(&e, "node", "missing identity_key_file or identity_key_env");
}

#[test]
fn parse_errors_have_positions_and_ranges_are_checked() {
    let e = refuse("[node]\nname = \n");
    assert_eq!(e.path(), "");
    assert_eq!(e.location().map(|l| l.0), Some(2), "{e}");
    assert!(e.to_string().starts_with("node.toml: "), "{e}");

    let e = refuse(&edit(EXAMPLE, "confirmations = 12", "confirmations = 65"));
    assert_refused(&e, "chains[0].confirmations", "65 is out of range 0..=64");
    let e = refuse(&edit(EXAMPLE, "confirmations = 12", "confirmations = -1"));
    assert_refused(&e, "chains[0].confirmations", "invalid value");
    let e = refuse(&edit(
        EXAMPLE,
        "log_format = \"text\"",
        "log_format = \"xml\"",
    ));
    assert_refused(&e, "node.log_format", "unknown variant `xml`");
    let e = refuse(&edit(EXAMPLE, "depeg_bps = 200", "depeg_bps = 10001"));
    assert_refused(&e, "detectors.depeg_bps", "out of range 1..=10000");
    let e = refuse(&edit(EXAMPLE, "dust = \"1000000\"", "dust = \"1e6\""));
    assert_refused(&e, "agreement.dust", "invalid amount \"1e6\"");
    let e = refuse(&edit(
        EXAMPLE,
        "booking_timeout_ms = 60000",
        "booking_timeout_ms = 999",
    ));
    assert_refused(
        &e,
        "agreement.booking_timeout_ms",
        "999 is out of range 1000..=86400000 ms",
    );
    let ok = Config::from_str(
        &edit(
            EXAMPLE,
            "booking_timeout_ms = 60000",
            "booking_timeout_ms = 1000",
        ),
        "node.toml",
    );
    assert_eq!(ok.unwrap().agreement().booking_timeout_ms, 1000);
}

#[test]
fn list_and_size_bounds() {
    let mut big = String::from(EXAMPLE);
    for i in 0..40 {
        big.push_str(&format!(
            "\n[[chains]]\nchain_id = {}\nname = \"c{i}\"\nrpc_urls = [\"http://x\"]\nvault = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\n",
            1000 + i
        ));
    }
    assert_refused(&refuse(&big), "chains", "42 chains, expected 1 to 32");

    let huge = format!("{EXAMPLE}\n#{}\n", "x".repeat(1 << 20));
    assert!(matches!(refuse(&huge), ConfigError::TooLarge { .. }));
}

#[test]
fn missing_file_is_a_clear_error() {
    let e = Config::load("/nonexistent/backstop/node.toml").unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(
        e.to_string()
            .starts_with("/nonexistent/backstop/node.toml: cannot read: "),
        "{e}"
    );
}

#[test]
fn keys_load_from_files() {
    let (dir, config) = node_dir(ALPHA_SEED, ALPHA_SIGNER);
    let c = Config::load(&config).unwrap();
    assert_eq!(c.node().data_dir, dir.path().join("data"));
    let keys = c.load_keys().unwrap();
    assert_eq!(keys.me(), c.me());
    assert_eq!(keys.peer_id(), c.my_node().peer_id);
    assert_eq!(keys.signer().address(), c.my_node().guardian);
    assert_eq!(
        keys.signer_for(42161).unwrap().address(),
        c.my_node().guardian
    );
    let token = keys.admin_token().unwrap();
    assert_eq!(token.expose(), TOKEN);
    assert!(token.verify(TOKEN.as_bytes()));
    assert!(!token.verify(b"s3cr3t-admin-token-012345678"));
    let shown = format!("{keys:?}");
    assert!(
        !shown.contains(TOKEN) && !shown.contains(&ALPHA_SIGNER[2..]),
        "{shown}"
    );
}

#[test]
fn identity_not_in_consortium_is_refused() {
    let (_dir, config) = node_dir(STRANGER_SEED, ALPHA_SIGNER);
    let c = Config::load(&config).unwrap();
    let e = c.load_keys().unwrap_err();
    let shown = e.to_string();
    assert_eq!(e.file(), config.display().to_string());
    assert_eq!(e.path(), "node.identity_key_file");
    assert!(
        shown.starts_with(&format!("{}: node.identity_key_file: ", config.display())),
        "{shown}"
    );
    assert!(shown.contains("is not in consortium.nodes"), "{shown}");
    assert!(!shown.contains(STRANGER_SEED), "{shown}");

    // Another node's key under this node's name.
    let (_dir, config) = node_dir(BRAVO_SEED, ALPHA_SIGNER);
    let e = Config::load(&config).unwrap().load_keys().unwrap_err();
    assert!(
        e.to_string()
            .contains("is consortium node \"bravo\"'s, but node.name is \"alpha\""),
        "{e}"
    );

    // The right identity with another node's signer.
    let (_dir, config) = node_dir(ALPHA_SEED, BRAVO_SIGNER);
    let e = Config::load(&config).unwrap().load_keys().unwrap_err();
    assert_eq!(e.path(), "node.signer_key_file");
    assert!(
        e.to_string().contains("is not node \"alpha\"'s guardian"),
        "{e}"
    );
}

#[cfg(unix)]
#[test]
fn loose_key_file_mode_is_refused_via_config() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, config) = node_dir(ALPHA_SEED, ALPHA_SIGNER);
    let path = dir.path().join("keys/signer.key");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = Config::load(&config).unwrap().load_keys().unwrap_err();
    assert!(matches!(e, ConfigError::Secret { .. }));
    assert_eq!(e.path(), "node.signer_key_file");
    assert!(e.to_string().contains("mode 0644"), "{e}");
}

#[test]
fn missing_env_var_is_a_clear_error() {
    let text = edit(
        EXAMPLE,
        "signer_key_file = \"keys/signer.key\"",
        "signer_key_env = \"BACKSTOP_TEST_SURELY_UNSET_7F3A\"",
    );
    let dir = tempfile::tempdir().unwrap();
    write_secret(
        &dir.path().join("keys/identity.key"),
        &format!("{ALPHA_SEED}\n"),
        0o600,
    );
    let c = Config::from_str_in(&text, "node.toml", dir.path()).unwrap();
    let e = c.load_keys().unwrap_err();
    assert_eq!(
        e.to_string(),
        "node.toml: node.signer_key_env: environment variable BACKSTOP_TEST_SURELY_UNSET_7F3A is not set"
    );
}

/// Environment variables cannot be set from this process (`set_var` is unsafe and the
/// workspace forbids unsafe code), so the env-var test re-runs this binary with them set.
#[test]
fn env_var_secrets_work() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "env_var_secrets_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("BACKSTOP_CONFIG_TEST_CHILD", "1")
        .env("BACKSTOP_TEST_IDENTITY", format!("  {ALPHA_SEED}\n"))
        .env("BACKSTOP_TEST_SIGNER", ALPHA_SIGNER)
        .env("BACKSTOP_ADMIN_TOKEN", TOKEN)
        .env("BACKSTOP_ARBITRUM_SENDER_KEY", BRAVO_SIGNER)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
}

#[test]
fn env_var_secrets_child() {
    if std::env::var_os("BACKSTOP_CONFIG_TEST_CHILD").is_none() {
        return;
    }
    let text = edit(
        EXAMPLE,
        "identity_key_file = \"keys/identity.key\"",
        "identity_key_env = \"BACKSTOP_TEST_IDENTITY\"",
    );
    let text = edit(
        &text,
        "signer_key_file = \"keys/signer.key\"",
        "signer_key_env = \"BACKSTOP_TEST_SIGNER\"",
    );
    let c = Config::from_str(&text, "node.toml").unwrap();
    let keys = c.load_keys().unwrap();
    assert_eq!(keys.me(), c.me());
    assert_eq!(keys.signer().address(), c.my_node().guardian);
    assert_eq!(keys.admin_token().unwrap().expose(), TOKEN);
    let bravo = c.node_by_name("bravo").unwrap().1.guardian;
    assert_eq!(keys.signer_for(42161).unwrap().address(), bravo);
    assert_eq!(keys.signer_for(1).unwrap().address(), c.my_node().guardian);

    // A malformed value names the variable, never the value.
    let text = edit(&text, "BACKSTOP_TEST_SIGNER", "BACKSTOP_ADMIN_TOKEN");
    let e = Config::from_str(&text, "node.toml")
        .unwrap()
        .load_keys()
        .unwrap_err();
    let shown = e.to_string();
    assert!(
        shown.starts_with(
            "node.toml: node.signer_key_env: environment variable BACKSTOP_ADMIN_TOKEN: "
        ),
        "{shown}"
    );
    assert!(!shown.contains(TOKEN), "{shown}");
}

#[test]
fn guardian_in_a_keystore_loads_and_a_wrong_password_names_the_key() {
    let (dir, config) = node_dir(ALPHA_SEED, ALPHA_SIGNER);
    let text = edit(
        &std::fs::read_to_string(&config).unwrap(),
        "signer_key_file = \"keys/signer.key\"",
        "signer_keystore_file = \"keys/guardian.json\"\nsigner_keystore_password_file = \"keys/guardian.password\"",
    );
    std::fs::write(&config, text).unwrap();
    let key: alloy::signers::local::PrivateKeySigner = ALPHA_SIGNER.parse().unwrap();
    let keystore = dir.path().join("keys/guardian.json");
    backstop_signer::keystore::create(&keystore, &key, b"correct horse battery").unwrap();
    let password = dir.path().join("keys/guardian.password");
    write_secret(&password, "correct horse battery\n", 0o600);

    let c = Config::load(&config).unwrap();
    let keys = c.load_keys().unwrap();
    assert_eq!(keys.signer().address(), c.my_node().guardian);
    assert!(
        keys.signer().local().is_some(),
        "a keystore key also sends transactions"
    );

    std::fs::remove_file(&password).unwrap();
    write_secret(&password, "correct horse battery staple\n", 0o600);
    let e = c.load_keys().unwrap_err();
    assert!(matches!(e, ConfigError::Guardian { .. }), "{e}");
    assert_eq!(e.path(), "node.signer_keystore_file");
    let shown = e.to_string();
    assert!(
        shown.contains("guardian.json") && shown.contains("wrong password"),
        "{shown}"
    );
    assert!(!shown.contains("staple"), "{shown}");

    // An empty password file is refused before any derivation.
    std::fs::remove_file(&password).unwrap();
    write_secret(&password, "\n", 0o600);
    let e = c.load_keys().unwrap_err();
    assert_eq!(e.path(), "node.signer_keystore_password_file");
}

#[test]
fn guardian_key_forms_are_exclusive_and_complete() {
    let cases = [
        (
            "signer_key_file = \"keys/signer.key\"\nsigner_keystore_file = \"g.json\"\nsigner_keystore_password_env = \"PW\"",
            "node",
            "the guardian key is given twice",
        ),
        (
            "signer_keystore_file = \"g.json\"",
            "node",
            "needs signer_keystore_password_file",
        ),
        ("", "node", "missing the guardian key"),
        (
            "signer_pkcs11 = { module = \"m.so\", token = \"a-token-label-longer-than-32-bytes\", key = \"k\", pin_env = \"PIN\" }",
            "node.signer_pkcs11.token",
            "at most 32 characters",
        ),
        (
            "signer_pkcs11 = { module = \"m.so\", token = \"t\", key = \"k\", pin = \"1234\" }",
            "node.signer_pkcs11.pin",
            "never written",
        ),
    ];
    for (to, path, reason) in cases {
        let text = edit(EXAMPLE, "signer_key_file = \"keys/signer.key\"", to);
        assert_refused(&refuse(&text), path, reason);
    }
}

#[test]
fn a_reload_names_what_needs_a_restart_but_not_the_guardian_key_urls_or_addresses() {
    let running = Config::from_str(EXAMPLE, "node.toml").unwrap();
    let same = Config::from_str(EXAMPLE, "node.toml").unwrap();
    assert!(running.restart_needed(&same).is_empty());

    // The key moved into a keystore, and this node's guardian with it: a reload takes both.
    let rotated = edit(
        &edit(
            EXAMPLE,
            "signer_key_file = \"keys/signer.key\"",
            "signer_key_env = \"GUARDIAN\"",
        ),
        "guardian = \"0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266\"",
        "guardian = \"0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65\"",
    );
    let new = Config::from_str(&rotated, "node.toml").unwrap();
    assert!(
        running.restart_needed(&new).is_empty(),
        "{:?}",
        running.restart_needed(&new)
    );

    // So do new RPC URLs.
    let moved = edit(
        EXAMPLE,
        "rpc_urls = [\"https://eth.rpc.example/v1\", \"wss://eth-ws.rpc.example\"]",
        "rpc_urls = [\"https://eth2.rpc.example/v1\"]",
    );
    let new = Config::from_str(&moved, "node.toml").unwrap();
    assert!(running.restart_needed(&new).is_empty());
    // And a node's new network address.
    let readdressed = edit(
        EXAMPLE,
        "addresses = [\"/dns4/charlie.backstop.example/udp/9000/quic-v1\"]",
        "addresses = [\"/dns4/charlie2.backstop.example/udp/9000/quic-v1\"]",
    );
    let new = Config::from_str(&readdressed, "node.toml").unwrap();
    assert!(running.restart_needed(&new).is_empty());
    let polled = edit(EXAMPLE, "poll_interval_ms = 2000", "poll_interval_ms = 500");
    let filtered = edit(
        &polled,
        "log_filter = \"info,backstop_p2p=debug\"",
        "log_filter = \"debug\"",
    );
    let new = Config::from_str(&filtered, "node.toml").unwrap();
    assert_eq!(running.restart_needed(&new), vec!["node", "chains"]);
}
