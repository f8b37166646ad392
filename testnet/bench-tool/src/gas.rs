//! Gas of the payout paths by number of signatures: what the Foundry gas test logs
//! (`contracts-bindings/test/BackstopVault.gas.t.sol`: execution gas around the call), and
//! whole transactions on anvil (receipt `gasUsed`: intrinsic 21,000 + calldata + execution),
//! signed here with the fixtures' guardian keys.

use std::process::Command;
use std::time::Duration;

use alloy::primitives::U256;
use anyhow::{Context, Result, bail};
use backstop_contracts::eip712::{Draw, Leg, LegRelease, Signable};
use backstop_contracts::testing::{
    ChainParams, ConsortiumParams, UNIT, default_limits, deploy_consortium, mined, sign_all,
    thresholds,
};

use crate::{CHAINS, Ctx};

/// One number the Foundry test logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForgeGas {
    /// The test that logged it.
    pub test: String,
    /// `registerDraw` or `releaseLeg`.
    pub function: String,
    /// Signatures.
    pub k: usize,
    /// Guardian set size.
    pub n: usize,
    /// Legs of the draw (`registerDraw` only).
    pub legs: Option<usize>,
    /// Execution gas.
    pub gas: u64,
}

/// What the Foundry test logged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ForgeLog {
    /// One line per dedicated test (`test_gas_<function>_<k>of<n>`).
    pub rows: Vec<ForgeGas>,
    /// "marginal cost of signature k: X" lines: (k, gas).
    pub marginal: Vec<(usize, u64)>,
}

/// Parses the `-vv` output: `[PASS] test_…()` headers, then their logs, e.g.
/// "releaseLeg 3-of-4 signatures: gas 12345",
/// "registerDraw 3-of-4 signatures, 2 legs: gas 12345",
/// "marginal cost of signature 4: 5939". Lines of the marginal-cost test that repeat the
/// per-size measurements are left out (the dedicated tests give them).
pub fn parse_forge(text: &str) -> ForgeLog {
    let mut out = ForgeLog::default();
    let mut test = String::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line
            .strip_prefix("[PASS] ")
            .or_else(|| line.strip_prefix("[FAIL"))
        {
            test = rest
                .split(|c: char| c == '(' || c.is_whitespace())
                .find(|w| w.starts_with("test"))
                .unwrap_or_default()
                .to_owned();
            continue;
        }
        if let Some(rest) = line.strip_prefix("marginal cost of signature ") {
            if let Some((k, gas)) = rest.split_once(": ")
                && let (Ok(k), Ok(gas)) = (k.trim().parse(), gas.trim().parse())
            {
                out.marginal.push((k, gas));
            }
            continue;
        }
        if test.contains("marginal") {
            continue;
        }
        let Some((head, gas)) = line.split_once(": gas ") else {
            continue;
        };
        let Ok(gas) = gas.trim().parse::<u64>() else {
            continue;
        };
        let mut words = head.split_whitespace();
        let (Some(function), Some(kn)) = (words.next(), words.next()) else {
            continue;
        };
        if function != "registerDraw" && function != "releaseLeg" {
            continue;
        }
        let Some((k, n)) = kn.split_once("-of-") else {
            continue;
        };
        let (Ok(k), Ok(n)) = (k.parse(), n.parse()) else {
            continue;
        };
        let legs = head
            .split_once(", ")
            .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok());
        out.rows.push(ForgeGas {
            test: test.clone(),
            function: function.to_owned(),
            k,
            n,
            legs,
            gas,
        });
    }
    out
}

/// Transactions measured on anvil for one guardian set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnChainGas {
    /// Guardian set size.
    pub n: usize,
    /// Signatures sent (t).
    pub t: usize,
    /// `registerDraw` of a three-leg draw (receipt gas).
    pub register: u64,
    /// `releaseLeg` (receipt gas).
    pub release: u64,
}

/// What the gas section reports.
#[derive(Clone, Debug, Default)]
pub struct Gas {
    /// The Foundry test's log, parsed.
    pub forge: ForgeLog,
    /// Why the Foundry run failed, if it did.
    pub forge_error: Option<String>,
    /// Transactions on anvil.
    pub onchain: Vec<OnChainGas>,
}

/// Runs the Foundry gas test and parses what it logs.
fn forge(ctx: &Ctx) -> Result<ForgeLog> {
    let out = Command::new(ctx.repo.join("contracts-bindings/forge.sh"))
        .args([
            "test",
            "--match-path",
            "test/BackstopVault.gas.t.sol",
            "-vv",
        ])
        .current_dir(&ctx.repo)
        .output()
        .context("run contracts-bindings/forge.sh")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "forge test failed:\n{}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let parsed = parse_forge(&text);
    if parsed.rows.is_empty() {
        bail!("forge test logged no gas line:\n{text}");
    }
    Ok(parsed)
}

/// `registerDraw` of a three-leg draw and `releaseLeg` of one of its remote legs, each with
/// exactly `t` signatures, on fresh vaults of a set of `n` guardians (cold recipients).
async fn onchain(n: usize) -> Result<OnChainGas> {
    let mut limits = default_limits();
    limits.refillPerSecond = limits.bucketCapacity;
    let params = ConsortiumParams {
        chain: ChainParams {
            limits,
            ..ChainParams::default()
        },
        ..Default::default()
    };
    let net = deploy_consortium(&CHAINS, n, &params).await;
    let (t, _) = thresholds(n);
    let t = usize::from(t);
    let keys = &net.keys[..t];
    let home = &net.chains[0];
    let remote = &net.chains[1];
    let member = net.member(0).spec.id;
    let now = home.timestamp().await;
    let legs: Vec<Leg> = net
        .chains
        .iter()
        .zip([10_000u64, 3_000, 3_000])
        .map(|(c, amount)| Leg {
            chainId: c.chain_id,
            vault: c.vault,
            amount: U256::from(amount * UNIT),
        })
        .collect();
    let draw = Draw {
        member,
        seq: 0,
        gap: U256::from(16_100 * UNIT),
        amount: U256::from(16_000 * UNIT),
        legs,
        deadline: now + 3600,
        legDeadline: now + 86_400,
    };
    let sigs = sign_all(&draw, &home.id(), keys);
    let r = mined(home.vault().registerDraw(draw.clone(), sigs)).await;
    if !r.status() {
        bail!("registerDraw {t}-of-{n} reverted");
    }
    let register = r.gas_used;
    let leg = LegRelease {
        drawHash: draw.digest(&home.id()),
        member,
        seq: 0,
        amount: U256::from(3_000 * UNIT),
        deadline: now + 86_400,
    };
    let sigs = sign_all(&leg, &remote.id(), keys);
    let r = mined(remote.vault().releaseLeg(leg, sigs)).await;
    if !r.status() {
        bail!("releaseLeg {t}-of-{n} reverted");
    }
    Ok(OnChainGas {
        n,
        t,
        register,
        release: r.gas_used,
    })
}

/// The gas section: the Foundry test, then transactions on anvil for 4, 7 and 10 guardians.
pub async fn run(ctx: &Ctx) -> Result<Gas> {
    let mut gas = Gas::default();
    ctx.progress("gas: contracts-bindings/forge.sh test --match-path test/BackstopVault.gas.t.sol");
    match forge(ctx) {
        Ok(v) => gas.forge = v,
        Err(e) => {
            ctx.progress(&format!("gas: forge failed: {e:#}"));
            gas.forge_error = Some(format!("{e:#}"));
        }
    }
    for n in [4, 7, 10] {
        let g = tokio::time::timeout(Duration::from_secs(180), onchain(n))
            .await
            .context("on-chain gas measurement timed out")??;
        ctx.progress(&format!(
            "gas on anvil, {}-of-{n}: registerDraw {}, releaseLeg {}",
            g.t, g.register, g.release
        ));
        gas.onchain.push(g);
    }
    Ok(gas)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forge_lines() {
        let text = "[PASS] test_gas_releaseLeg_5of7() (gas: 158359)\nLogs:\n  releaseLeg 5-of-7 signatures: gas 71234\n\n[PASS] test_gas_registerDraw_3of4() (gas: 1)\nLogs:\n  registerDraw 3-of-4 signatures, 2 legs: gas 140000\n[PASS] test_gas_releaseLeg_marginalCostPerSignature() (gas: 1553432)\nLogs:\n  releaseLeg 3-of-4 signatures: gas 99526\n  releaseLeg 4-of-4 signatures: gas 105465\n    marginal cost of signature 4: 5939\n";
        let v = parse_forge(text);
        assert_eq!(v.rows.len(), 2);
        assert_eq!((v.rows[0].k, v.rows[0].n, v.rows[0].gas), (5, 7, 71_234));
        assert_eq!(v.rows[0].test, "test_gas_releaseLeg_5of7");
        assert_eq!(v.rows[1].legs, Some(2));
        assert_eq!(v.marginal, vec![(4, 5939)]);
    }
}
