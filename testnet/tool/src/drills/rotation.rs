//! Drill of a guardian key rotated by governance while an incident is open: node-3's key
//! moves from its plain file into a SoftHSM2 token. The vaults rotate it (node-3 proposes,
//! nodes 0, 1 and 2 approve), the old key is refused by every vault, and with node-0 down
//! a member's draw can only be paid once node-3 signs with the token key: the incident
//! waits until its operator reloads the configuration (SIGHUP), then is paid. The rotation
//! is then undone the same way, so the testnet ends with the keys it started with.

use super::governance::{approve, executed_everywhere, listed_everywhere, propose};
use super::*;
use alloy::consensus::Transaction as _;
use alloy::primitives::Address;
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use backstop_api::GovernanceChange;
use backstop_contracts::bindings::BackstopVault;
use backstop_contracts::eip712::{Pause, Signable, VaultId, pack_signatures, sign_digest};
use backstop_contracts::testing::guardian_keys;
use std::process::Command;

/// The node whose key is rotated.
const VICTIM: usize = 3;
/// The node stopped so that every payment needs the victim's signature.
const STOPPED: usize = 0;
/// The member whose gap is open across the reload.
const MEMBER: usize = 1;
/// The token's user PIN (a local testnet needs no secrecy).
const PIN: &str = "4711";

/// The vault's guardian set on every chain (ascending), and its rotation counter.
async fn guardian_sets(net: &Net) -> Result<Vec<(Vec<Address>, u64)>> {
    let mut out = Vec::new();
    for c in net.chain_ids() {
        let v = net.vault(c)?;
        let set = net::bounded(&format!("guardians on chain {c}"), v.guardians().call()).await?;
        let index = net::bounded(
            &format!("guardianSetIndex on chain {c}"),
            v.guardianSetIndex().call(),
        )
        .await?;
        out.push((set, index));
    }
    Ok(out)
}

/// A SoftHSM2 token for the victim with a key generated in it by `backstop keys pkcs11
/// new`; returns the key's address and the `[node.signer_pkcs11]` lines it printed.
fn token_key(net: &Net, r: &mut Report) -> Result<(Address, String)> {
    let node = net.node(VICTIM)?;
    let dir = node.dir.join("softhsm");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    let conf = backstop_signer::testing::softhsm_token(&dir, PIN);
    let pin = dir.join("pin");
    deploy::write_secret(&pin, PIN)?;
    let out = Command::new(&net.state.backstop)
        .env("SOFTHSM2_CONF", &conf)
        .args(["keys", "pkcs11", "new", "--module"])
        .arg(backstop_signer::testing::SOFTHSM_MODULE)
        .args(["--token", backstop_signer::testing::SOFTHSM_TOKEN])
        .args(["--label", "guardian"])
        .arg("--pin-file")
        .arg(&pin)
        .output()
        .context("running backstop keys pkcs11 new")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "backstop keys pkcs11 new failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let address: Address = text
        .lines()
        .find_map(|l| l.strip_prefix("guardian"))
        .map(str::trim)
        .context("no guardian address printed")?
        .parse()
        .context("the printed guardian address")?;
    let snippet = text
        .find("[node.signer_pkcs11]")
        .map(|i| text[i..].trim().to_owned())
        .context("no [node.signer_pkcs11] lines printed")?;
    r.step(format!(
        "node-{VICTIM}'s operator generates a key in a SoftHSM2 token: guardian {address}"
    ));
    Ok((address, snippet))
}

/// Node `proposer` proposes `set` (t = 3, p = 2) for every vault, nodes 0, 1 and 2 approve
/// it by its digest; returns whether every node lists it executed.
async fn rotate(net: &Net, r: &mut Report, proposer: usize, set: &[Address]) -> Result<bool> {
    let n = set.len();
    let f = (n - 1) / 3;
    let change = GovernanceChange::RotateGuardians {
        guardians: set.iter().map(|a| a.0.0).collect(),
        threshold: (n - f) as u8,
        pause_threshold: (f + 1) as u8,
    };
    let id = propose(net, r, proposer, None, change).await?;
    let Some(p) = listed_everywhere(net, r, &id).await? else {
        return Ok(false);
    };
    approve(net, r, &[0, 1, 2], &p).await?;
    executed_everywhere(net, r, &id).await
}

/// A pause signed by `old` (rotated out) and `other` (a guardian) is refused by every vault,
/// naming `old`.
async fn old_key_refused(
    net: &Net,
    r: &mut Report,
    old: &PrivateKeySigner,
    other: &PrivateKeySigner,
) -> Result<()> {
    let pause = Pause {
        id: B256::repeat_byte(0x0d),
        deadline: now_ms() / 1000 + 600,
    };
    for c in net.chain_ids() {
        let vault = VaultId {
            chain_id: c,
            address: net.chain(c)?.vault,
        };
        let digest = pause.digest(&vault);
        let sigs = [sign_digest(old, digest)?, sign_digest(other, digest)?];
        let call = net
            .vault(c)?
            .pause(pause.clone(), pack_signatures(&sigs)?)
            .call()
            .await;
        let refused = call
            .as_ref()
            .err()
            .and_then(|e| e.as_decoded_interface_error::<BackstopVault::BackstopVaultErrors>());
        let named = matches!(
            &refused,
            Some(BackstopVault::BackstopVaultErrors::SignerNotGuardian(e)) if e.signer == old.address()
        );
        r.check(
            named,
            format!(
                "chain {c}: a pause signed by the old key {} is refused (SignerNotGuardian({}))",
                old.address(),
                old.address()
            ),
        );
    }
    Ok(())
}

/// The guardians whose signatures the registration of member `i`'s draw `seq` carried.
async fn registration_signers(net: &Net, i: usize, seq: u64) -> Result<Vec<Address>> {
    let m = net.member(i)?;
    let vault = net.vault(m.home_chain_id)?;
    let logs = net::bounded(
        "DrawRegistered logs",
        vault.DrawRegistered_filter().from_block(0).query(),
    )
    .await?;
    let Some(tx) = logs
        .into_iter()
        .find(|(e, _)| e.member == m.id && e.seq == seq)
        .and_then(|(_, log)| log.transaction_hash)
    else {
        bail!("no registration of {} seq {seq}", m.name);
    };
    let sent = net::bounded(
        "the registering transaction",
        net.provider(m.home_chain_id)?.get_transaction_by_hash(tx),
    )
    .await?
    .context("the registering transaction is gone")?;
    let call = BackstopVault::registerDrawCall::abi_decode(sent.input())?;
    let digest = net::bounded("hashDraw", vault.hashDraw(call.draw).call()).await?;
    call.signatures
        .chunks(65)
        .map(|s| {
            let sig = alloy::primitives::Signature::from_raw(s)?;
            Ok(sig.recover_address_from_prehash(&digest)?)
        })
        .collect()
}

/// Rewrites node `i`'s configuration with `edit` and sends it SIGHUP.
fn reload(net: &Net, r: &Report, i: usize, edit: impl FnOnce(&str) -> String) -> Result<()> {
    let node = net.node(i)?;
    let path = node.config();
    let text = std::fs::read_to_string(&path)?;
    std::fs::write(&path, edit(&text))?;
    Proc::node(node).signal("HUP")?;
    r.step(format!("{} reloads its configuration (SIGHUP)", node.name));
    Ok(())
}

/// The victim's configuration with its guardian key in the token (`snippet`), `new` as its
/// guardian, and its old key sending transactions on every chain.
fn with_token(text: &str, old: Address, new: Address, snippet: &str) -> String {
    text.replace("signer_key_file = \"signer.key\"\n", "")
        .replace("[network]", &format!("{snippet}\n\n[network]"))
        .replace(
            &format!("guardian = \"{old}\""),
            &format!("guardian = \"{new}\""),
        )
        .replace(
            "[[chains]]\n",
            "[[chains]]\nsigner_key_file = \"signer.key\"\n",
        )
}

/// The length of node `i`'s log now (lines written later are this drill's).
fn log_len(net: &Net, i: usize) -> Result<usize> {
    Ok(std::fs::read_to_string(net.node(i)?.log())?.len())
}

/// Waits until node `i`'s log, past `from`, has a line containing every one of `parts`.
async fn logged(net: &Net, i: usize, from: usize, parts: &[&str]) -> Result<bool> {
    let log = net.node(i)?.log();
    Ok(wait_until(PATIENCE, async || {
        let text = std::fs::read_to_string(&log)?;
        Ok(text
            .get(from..)
            .is_some_and(|t| t.lines().any(|l| parts.iter().all(|p| l.contains(p)))))
    })
    .await)
}

/// Rotate a guardian: see the module documentation.
pub(super) async fn rotate_guardian(net: &mut Net, r: &mut Report) -> Result<Option<(usize, u64)>> {
    let keys = guardian_keys(net.state.nodes.len());
    let old_key = keys[VICTIM].clone();
    let old = old_key.address();
    let before = guardian_sets(net).await?;
    let original = before.first().map(|(s, _)| s.clone()).unwrap_or_default();
    if !r.check(
        before.iter().all(|(s, _)| *s == original) && original.contains(&old),
        format!("every vault holds the testnet's guardian set, node-{VICTIM}'s {old} in it"),
    ) {
        return Ok(None);
    }
    let config = std::fs::read_to_string(net.node(VICTIM)?.config())?;
    let from = log_len(net, VICTIM)?;
    let (new, snippet) = token_key(net, r)?;
    let mut rotated: Vec<Address> = original
        .iter()
        .map(|g| if *g == old { new } else { *g })
        .collect();
    rotated.sort();

    r.step(format!(
        "rotating node-{VICTIM}'s guardian {old} to the token key {new}"
    ));
    if !rotate(net, r, VICTIM, &rotated).await? {
        return Ok(None);
    }
    let after = guardian_sets(net).await?;
    for ((c, (set, index)), (_, was)) in net.chain_ids().into_iter().zip(&after).zip(&before) {
        r.check(
            *set == rotated && *index == was + 1,
            format!("chain {c}: the vault's guardians are {set:?}, rotation {was} -> {index}"),
        );
    }
    r.check(
        logged(net, VICTIM, from, &["guardian key was rotated out"]).await?,
        format!("node-{VICTIM} says its key was rotated out and it signs nothing"),
    );
    old_key_refused(net, r, &old_key, &keys[1]).await?;

    let stopped = net.node(STOPPED)?.clone();
    Proc::node(&stopped).signal("TERM")?;
    let dead = wait_until(Duration::from_secs(15), async || Ok(!alive(stopped.pid))).await;
    r.check(
        dead,
        format!(
            "{} is stopped: every signature set now needs node-{VICTIM}",
            stopped.name
        ),
    );
    avoid_contagion(net, r, MEMBER).await?;
    let recipients = net.recipients(MEMBER).await?;
    let vaults = net.vault_balances().await?;
    let name = net.member(MEMBER)?.name.clone();
    r.step(format!("{name} books a loss of 2,100 pUSD"));
    let seq = net.open_gap(MEMBER, units(2_100)).await?;
    tokio::time::sleep(QUIET).await;
    r.check(
        net.draw_of(MEMBER, seq).await?.is_zero(),
        format!(
            "after {} s the draw is not registered: node-{VICTIM} does not sign with its rotated-out key",
            QUIET.as_secs()
        ),
    );

    reload(net, r, VICTIM, |t| with_token(t, old, new, &snippet))?;
    let api = net.node(VICTIM)?.api.clone();
    let mut shown = String::new();
    let reported = wait_until(Duration::from_secs(10), async || {
        shown = net::status(&api).await?.guardian_address;
        Ok(shown.parse::<Address>().is_ok_and(|a| a == new))
    })
    .await;
    r.check(
        reported,
        format!("node-{VICTIM}'s GetStatus shows the guardian it signs as: {shown}"),
    );
    let hash = net.book(MEMBER, seq, PATIENCE).await?;
    r.check(
        hash.is_some(),
        format!(
            "the home vault registered the draw (drawOf = {})",
            hash.unwrap_or_default()
        ),
    );
    if hash.is_some() {
        let signers = registration_signers(net, MEMBER, seq).await?;
        r.check(
            signers.contains(&new) && !signers.contains(&old),
            format!("the registration carries the token key's signature: signers {signers:?}"),
        );
    }
    let pid = deploy::restart_node(net, STOPPED)?;
    r.step(format!("{} started again (pid {pid})", stopped.name));
    let node = net.node(STOPPED)?.clone();
    deploy::wait_ready(&net.state, &[&node], Duration::from_secs(90)).await?;
    let closed = closed_everywhere(net, MEMBER, seq, PATIENCE).await?;
    r.check(closed, "every node reports the incident closed");
    if closed {
        let inc = api_incident(net, VICTIM, MEMBER, seq).await?;
        check_payout(net, r, MEMBER, &inc, &recipients, Some(&vaults)).await?;
    } else {
        note_phases(net, r, MEMBER, seq).await;
    }

    r.step(format!(
        "rotating node-{VICTIM}'s guardian back to its file key {old}"
    ));
    if rotate(net, r, VICTIM, &original).await? {
        let back = guardian_sets(net).await?;
        r.check(
            back.iter().all(|(s, _)| *s == original),
            "every vault holds the testnet's guardian set again",
        );
    }
    std::fs::write(net.node(VICTIM)?.config(), &config)?;
    Proc::node(net.node(VICTIM)?).signal("HUP")?;
    r.step(format!("node-{VICTIM}'s configuration put back; SIGHUP"));
    r.check(
        logged(
            net,
            VICTIM,
            from,
            &["guardian key reloaded", &format!("guardian={old}")],
        )
        .await?,
        format!("node-{VICTIM} signs with its file key {old} again"),
    );
    Ok(Some((MEMBER, seq)))
}
